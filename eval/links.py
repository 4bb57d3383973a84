"""Labeled pairs from caselink's own data: record links and user feedback.

- A link between two records (either direction: case -> problem order, case -> SOP section,
  or any other) is a related pair (label 1).
- Two cases linked to the same problem order are related (label 1). Cases that merely share an
  SOP section are not paired directly: an SOP section serves many unrelated cases.
- Feedback ``(query_id, result_id, helpful)`` gives label 1 when helpful, 0 when not; it
  overrides what the links say about the same pair (the last feedback on a pair wins).
- Negatives (label 0): for each related pair ``(a, b)``, one record sampled from ``a``'s
  module (falling back to its product; records with neither are matched among themselves)
  that is not in ``a``'s component of related pairs, not linked to it and not already labeled
  with it. None is added when no such record exists: easy negatives from other modules would
  flatter the score distributions.

Links and feedback naming unknown ids are skipped. The output is deterministic for a given
``seed`` and input order, sorted with positives first.

Note that :func:`eval.protocol.build_protocol` takes connected components over label-1 pairs,
so two cases linked to the same SOP section end up in one component there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.protocol import UnionFind
from indexing.records import Record

__all__ = ["pairs_from_links"]

Key = tuple[str, str]
_DRAWS = 32


def _key(a: str, b: str) -> Key:
    return (a, b) if a <= b else (b, a)


def _link_labels(records: Sequence[Record], known: dict[str, Record]) -> dict[Key, int]:
    labels: dict[Key, int] = {}
    adjacent: dict[str, set[str]] = {r.id: set() for r in records}
    for rec in records:
        for target in rec.links:
            if target in known and target != rec.id:
                labels[_key(rec.id, target)] = 1
                adjacent[rec.id].add(target)
                adjacent[target].add(rec.id)
    for rec in records:
        if rec.kind != "problem":
            continue
        cases = sorted(i for i in adjacent[rec.id] if known[i].kind == "case")
        for i, a in enumerate(cases):
            for b in cases[i + 1 :]:
                labels[_key(a, b)] = 1
    return labels


def _pool_keys(rec: Record) -> list[tuple[str, str]]:
    """Where to look for a record's negatives: same module, then same product; records with
    neither are matched with the other records that have neither."""
    keys = [("module", rec.module)] if rec.module else []
    if rec.product:
        keys.append(("product", rec.product))
    return keys or [("none", "")]


def _sample_negatives(
    records: Sequence[Record], labels: dict[Key, int], seed: int
) -> dict[Key, int]:
    uf = UnionFind()
    for (a, b), label in labels.items():
        if label == 1:
            uf.union(a, b)
    pools: dict[tuple[str, str], list[str]] = {}
    for rec in records:
        for key in _pool_keys(rec):
            pools.setdefault(key, []).append(rec.id)
    by_id = {r.id: r for r in records}
    rng = np.random.default_rng(seed)
    negatives: dict[Key, int] = {}
    positives = sorted(k for k, v in labels.items() if v == 1)
    for a, _ in positives:
        anchor = by_id[a]
        root = uf.find(a)

        def usable(c: str) -> bool:
            return (
                c != a
                and uf.find(c) != root
                and c not in anchor.links
                and a not in by_id[c].links
                and _key(a, c) not in labels
                and _key(a, c) not in negatives
            )

        for key in _pool_keys(anchor):
            pool = pools.get(key, [])
            if not pool:
                continue
            # A bounded number of draws keeps this O(pairs), not O(pairs x records).
            picks = [pool[i] for i in rng.integers(len(pool), size=_DRAWS)]
            chosen = next((c for c in picks if usable(c)), None)
            if chosen is not None:
                negatives[_key(a, chosen)] = 0
                break
    return negatives


def pairs_from_links(
    records: list[Record],
    feedback: list[tuple[str, str, bool]] | None = None,
    seed: int = 13,
) -> list[tuple[str, str, int]]:
    """Derive ``(id_a, id_b, label)`` pairs from record links and feedback (see module doc).

    Args:
        records: caselink records; their ``links`` name other records' ids.
        feedback: ``(query_id, result_id, helpful)`` triples, in the order they were given.
        seed: seed for sampling negatives (default 13).

    Returns:
        Pairs with ``id_a <= id_b``, label-1 pairs first, each group sorted.

    Example:
        >>> from indexing.records import Record
        >>> recs = [Record(id="C1", kind="case", links=["P1"]), Record(id="C2", kind="case", links=["P1"]),
        ...         Record(id="P1", kind="problem"), Record(id="C3", kind="case")]
        >>> [p for p in pairs_from_links(recs) if p[2] == 1]
        [('C1', 'C2', 1), ('C1', 'P1', 1), ('C2', 'P1', 1)]
    """
    known = {r.id: r for r in records}
    labels = _link_labels(records, known)
    for query_id, result_id, helpful in feedback or []:
        if query_id in known and result_id in known and query_id != result_id:
            labels[_key(query_id, result_id)] = 1 if helpful else 0
    labels.update(_sample_negatives(records, labels, seed))
    ordered = sorted(labels.items(), key=lambda item: (-item[1], item[0]))
    return [(a, b, label) for (a, b), label in ordered]
