"""The interface the harness evaluates, and the shared top-k selection.

Any object with ``name``, ``fit`` and ``rank`` is a :class:`Retriever`; one that can also give
a similarity for an arbitrary pair of fitted records implements :class:`PairScorer` and gets
score distributions and a threshold suggestion in the report. ``caselink``'s own modes plug
in through a small adapter that implements these two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from eval.datasets import EvalRecord

__all__ = ["Retriever", "PairScorer", "Ranked", "can_score_pairs", "top_k", "candidate_mask"]

Ranked = list[list[tuple[str, float]]]
"""For each query, up to k ``(id, score)`` best first."""


@runtime_checkable
class Retriever(Protocol):
    """What the harness evaluates.

    ``fit`` receives every record of the dataset. ``rank`` returns, for each query, up to
    ``k`` ``(id, score)`` pairs best first; when ``candidate_ids`` is given only those ids may
    be returned. The harness asks for ``k + 1`` and drops the query's own id, so a retriever
    need not exclude it.
    """

    name: str

    def fit(self, records: list[EvalRecord]) -> None: ...

    def rank(
        self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None
    ) -> Ranked: ...


@runtime_checkable
class PairScorer(Protocol):
    """Optional: a similarity for pairs of fitted record ids (cosine for the baselines)."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


def can_score_pairs(retriever: object) -> bool:
    """True when the retriever implements :class:`PairScorer`."""
    return callable(getattr(retriever, "score_pairs", None))


def candidate_mask(ids: Sequence[str], candidate_ids: set[str] | frozenset[str] | None) -> np.ndarray | None:
    """Boolean mask over ``ids`` of what may be returned, ``None`` when everything may."""
    if candidate_ids is None:
        return None
    return np.fromiter((i in candidate_ids for i in ids), dtype=bool, count=len(ids))


def top_k(
    scores: np.ndarray, k: int, ids: Sequence[str], mask: np.ndarray | None = None
) -> Ranked:
    """Best ``k`` per row of a ``(queries, records)`` score matrix, ties broken by record order.

    ``mask`` (one bool per record) removes records that may not be returned. Selection uses
    ``argpartition`` and only sorts the few entries at or above each row's k-th best score,
    so the result is deterministic even with ties at the cut.

    >>> top_k(np.array([[0.1, 0.9, 0.9]]), 2, ["a", "b", "c"])
    [[('b', 0.9), ('c', 0.9)]]
    """
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")
    scores = np.asarray(scores)
    n_docs = scores.shape[1]
    if mask is not None:
        scores = np.where(mask[None, :], scores, -np.inf)
        n_allowed = int(mask.sum())
    else:
        n_allowed = n_docs
    k_eff = min(k, n_allowed)
    if k_eff == 0:
        return [[] for _ in range(scores.shape[0])]
    kth = -np.partition(-scores, k_eff - 1, axis=1)[:, k_eff - 1]
    out: Ranked = []
    for row, cut in zip(scores, kth):
        cand = np.flatnonzero(row >= cut) if np.isfinite(cut) else np.flatnonzero(np.isfinite(row))
        order = cand[np.lexsort((cand, -row[cand]))][:k_eff]
        out.append([(ids[j], float(row[j])) for j in order])
    return out
