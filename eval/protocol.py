"""The benchmark protocol: who is a query, what is relevant to it, what may be ranked.

Reproduces ``shared/benchmarks/README.md``:

- the relevant set of a record is every other record connected to it through label-1 pairs
  (a connected component, found with union-find);
- queries are the records with at least one relevant partner;
- where records carry ``kind`` ``question``/``section``, only ``kind == "question"`` records
  are queries, only records of another kind (whatever it is called: section, answer, ...) are
  candidates, and relevant sets are restricted to candidates (a question whose component holds
  no candidate is then not a query); a question set with no candidate at all is refused;
- at most ``max_queries`` queries are kept: the first ``max_queries`` of
  ``numpy.random.default_rng(seed).permutation`` over the eligible queries in record order,
  put back in record order. (``Generator.choice(..., replace=False)`` draws a different
  sample from the same seed; the permutation is the one that reproduces the README figures.)
- the query itself is never a candidate (enforced by the runner).

Label-0 pairs are kept as hard negatives for score distributions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from caselink.errors import InvalidRecord
from eval.datasets import EvalRecord

__all__ = ["QUESTION", "SECTION", "Protocol", "UnionFind", "build_protocol", "relevant_sets"]

QUESTION = "question"
SECTION = "section"


class UnionFind:
    """Disjoint sets over hashable items, with path halving and union by size."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._size: dict[str, int] = {}

    def find(self, item: str) -> str:
        parent = self._parent
        if item not in parent:
            parent[item] = item
            self._size[item] = 1
            return item
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def groups(self) -> list[set[str]]:
        """All sets, including singletons, each as a set of items."""
        out: dict[str, set[str]] = {}
        for item in self._parent:
            out.setdefault(self.find(item), set()).add(item)
        return list(out.values())


def relevant_sets(positive_pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """For every id in a label-1 pair, the other members of its connected component.

    >>> sorted(relevant_sets([("a", "b"), ("b", "c"), ("x", "y")])["a"])
    ['b', 'c']
    """
    uf = UnionFind()
    for a, b in positive_pairs:
        uf.union(a, b)
    return {item: group - {item} for group in uf.groups() for item in group}


@dataclass(frozen=True)
class Protocol:
    """The evaluation plan for one dataset.

    Attributes:
        queries: query ids, in record order (after sampling).
        relevant: for each query, the relevant candidate ids (never empty, never the query).
        candidate_ids: ids that may be ranked, or ``None`` when every record may be.
        candidate_kind_filter: ``True`` on question/section sets (questions rank sections).
        positives: label-1 pairs as given (self-pairs and duplicates dropped).
        negatives: label-0 pairs as given (hard negatives), same clean-up.
        eligible_queries: how many queries there were before sampling.
    """

    queries: list[str]
    relevant: dict[str, set[str]]
    candidate_ids: frozenset[str] | None
    candidate_kind_filter: bool
    positives: list[tuple[str, str]] = field(default_factory=list)
    negatives: list[tuple[str, str]] = field(default_factory=list)
    eligible_queries: int = 0

    def is_candidate(self, record_id: str) -> bool:
        return self.candidate_ids is None or record_id in self.candidate_ids


def _clean_pairs(
    pairs: Iterable[Sequence], known: set[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    seen: set[tuple[str, str, int]] = set()
    for n, pair in enumerate(pairs, 1):
        a, b, label = str(pair[0]), str(pair[1]), int(pair[2])
        for name, value in (("id_a", a), ("id_b", b)):
            if value not in known:
                raise InvalidRecord(f"pair {n}: field '{name}': id '{value}' is not among the records", field=name)
        if label not in (0, 1):
            raise InvalidRecord(f"pair {n}: field 'label': expected 0 or 1, got {label}", field="label")
        key = (min(a, b), max(a, b), label)
        if a == b or key in seen:
            continue
        seen.add(key)
        (positives if label == 1 else negatives).append((a, b))
    return positives, negatives


def build_protocol(
    records: Sequence[EvalRecord],
    pairs: Iterable[Sequence],
    max_queries: int = 2000,
    seed: int = 13,
) -> Protocol:
    """Build the protocol from records and labeled pairs.

    Args:
        records: every record of the dataset (ids unique).
        pairs: ``(id_a, id_b, label[, grade])`` items, e.g. :class:`eval.datasets.Pair`.
        max_queries: keep at most this many queries (default 2,000).
        seed: seed for the query sample (default 13).

    Raises:
        InvalidRecord: a pair names an unknown id or has a label other than 0/1, or a question set
            has no record of another kind to rank.
        ValueError: ``max_queries`` < 1.

    Example:
        >>> recs = [EvalRecord(i, i) for i in "abcd"]
        >>> p = build_protocol(recs, [("a", "b", 1), ("b", "c", 1), ("a", "d", 0)])
        >>> p.queries, sorted(p.relevant["a"]), p.negatives
        (['a', 'b', 'c'], ['b', 'c'], [('a', 'd')])
    """
    if max_queries < 1:
        raise ValueError(f"expected max_queries >= 1, got {max_queries}")
    by_id = {r.id: r for r in records}
    if len(by_id) != len(records):
        raise InvalidRecord("records: field 'id': ids are not unique", field="id")
    positives, negatives = _clean_pairs(pairs, set(by_id))
    components = relevant_sets(positives)

    kind_filter = any(r.kind in (QUESTION, SECTION) for r in records)
    candidate_ids = frozenset(r.id for r in records if r.kind != QUESTION) if kind_filter else None
    if candidate_ids is not None and not candidate_ids:
        # Every record is a question: nothing may be ranked, and every metric would read 0.
        raise InvalidRecord("records: field 'kind': every record is a 'question', so there is nothing to rank; "
                            "a question set needs records of another kind (answer, section, ...) as candidates",
                            field="kind")

    relevant: dict[str, set[str]] = {}
    for rec in records:  # record order keeps the sample independent of set/dict iteration order
        if kind_filter and rec.kind != QUESTION:
            continue
        rel = components.get(rec.id, set())
        if candidate_ids is not None:
            rel = rel & candidate_ids
        if rel:
            relevant[rec.id] = set(rel)

    eligible = list(relevant)
    queries = eligible
    if len(eligible) > max_queries:
        picked = np.random.default_rng(seed).permutation(len(eligible))[:max_queries]
        queries = [eligible[i] for i in np.sort(picked)]
        relevant = {q: relevant[q] for q in queries}
    return Protocol(
        queries=queries,
        relevant=relevant,
        candidate_ids=candidate_ids,
        candidate_kind_filter=kind_filter,
        positives=positives,
        negatives=negatives,
        eligible_queries=len(eligible),
    )
