"""Labeled pairs as queries, and the split rule: by connected component, never by pair.

Labels are pairs ``(id_a, id_b, label)``. Two records in one connected component of label-1
pairs are related; a query is a record of a component and its relevant set the rest of the
component. Every split is by component: a component's queries, their partners and every pair
touching them go to one side together, so a held-out side asks about records no model saw
labeled. ``caselink eval --split``, ``caselink train --holdout`` and the learned ranker's own
validation (:mod:`recommender.training`) all split here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from caselink.errors import InvalidQuery

Pair = tuple[str, str, int]


@dataclass(frozen=True)
class LabeledQuery:
    """A query record, the records relevant to it, and the component it belongs to."""

    query_id: str
    relevant: frozenset[str]
    component: int


def components(pairs: Iterable[Sequence]) -> dict[str, int]:
    """Component number of every id in ``pairs``, over label-1 pairs (an id only in label-0
    pairs is a component of its own)."""
    pairs = [(str(p[0]), str(p[1]), int(p[2])) for p in pairs]
    ids = sorted({i for a, b, _ in pairs for i in (a, b)})
    pos = {i: n for n, i in enumerate(ids)}
    edges = [(pos[a], pos[b]) for a, b, label in pairs if label == 1 and a != b]
    if not ids:
        return {}
    rows = np.fromiter((a for a, _ in edges), dtype=np.int64, count=len(edges))
    cols = np.fromiter((b for _, b in edges), dtype=np.int64, count=len(edges))
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    return {i: int(labels[pos[i]]) for i in ids}


def split_by_component(pairs: Sequence[Sequence], fraction: float, seed: int = 13
                       ) -> tuple[list[Pair], list[Pair]]:
    """Split ``pairs`` into (train, test) by connected component of label-1 pairs.

    About ``fraction`` of the components (those holding a label-1 pair, drawn with ``seed``) go
    to training. A label-0 pair goes with its ids' components when both are on one side; a
    label-0 pair between a training and a test component is dropped, since keeping it on
    either side would show one side's record to the other. So no id of a test pair is in any
    training pair.

    Raises:
        InvalidQuery: ``fraction`` not strictly between 0 and 1 (field ``split``).
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidQuery(f"expected a split fraction between 0 and 1 (exclusive), got {fraction}", field="split")
    pairs = [(str(p[0]), str(p[1]), int(p[2])) for p in pairs]
    comp = components(pairs)
    labeled = sorted({comp[a] for a, _, label in pairs if label == 1})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labeled))
    n_train = int(round(fraction * len(labeled)))
    in_train = {c: False for c in labeled}
    in_train.update((labeled[i], True) for i in order[:n_train])
    # An id seen only in label-0 pairs is a component of its own: it gets a side once, by a
    # seeded draw, so it never appears on both.
    rest = sorted(set(comp.values()) - set(labeled))
    in_train.update(zip(rest, (rng.random(len(rest)) < fraction).tolist()))
    train, test = [], []
    for a, b, label in pairs:
        side = in_train[comp[a]]
        if side != in_train[comp[b]]:
            continue  # a label-0 pair across the sides (a label-1 pair never is: one component)
        (train if side else test).append((a, b, label))
    return train, test


def labeled_queries(pairs: Sequence[Sequence], *, query_ids: Iterable[str] | None = None,
                    candidate_ids: Iterable[str] | None = None) -> list[LabeledQuery]:
    """Queries of ``pairs``: every id in a label-1 pair (or only ``query_ids``), relevant = the
    rest of its component (only ``candidate_ids`` when given); those left with nothing dropped.
    In the order the ids first appear."""
    comp = components(pairs)
    members: dict[int, set[str]] = {}
    for i, c in comp.items():
        members.setdefault(c, set()).add(i)
    allowed = set(query_ids) if query_ids is not None else None
    cands = set(candidate_ids) if candidate_ids is not None else None
    out, seen = [], set()
    for a, b, label in ((str(p[0]), str(p[1]), int(p[2])) for p in pairs):
        if label != 1:
            continue
        for q in (a, b):
            if q in seen or (allowed is not None and q not in allowed):
                continue
            seen.add(q)
            rel = members[comp[q]] - {q}
            if cands is not None:
                rel &= cands
            if rel:
                out.append(LabeledQuery(q, frozenset(rel), comp[q]))
    return out
