"""Ranking metrics, per query first, then means and bootstrap confidence intervals.

All metrics work on a boolean relevance matrix ``hits`` of shape ``(queries, depth)``
(``hits[i, j]`` is true when the record at rank ``j + 1`` of query ``i`` is relevant) and
``n_relevant``, the size of each query's relevant set.

- ``hit@k``: 1 if any relevant record is in the top k.
- ``recall@k``: relevant records in the top k divided by ``min(|relevant|, k)``. This is the
  normalisation of the reference table in ``shared/benchmarks/README.md``; it makes
  ``recall@k`` reach 1.0 when the top k is all relevant even if more than k are relevant
  (plain ``/ |relevant|`` would cap recall@1 at ``1 / |relevant|``).
- ``mrr@10``: 1 / rank of the first relevant record within the top 10, else 0.
- ``ndcg@10``: binary gains, ``DCG = sum(1 / log2(rank + 1))`` over relevant ranks <= 10,
  divided by the ideal DCG of ``min(|relevant|, 10)`` relevant records at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_KS",
    "relevance_matrix",
    "hit_at_k",
    "recall_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "first_relevant_rank",
    "per_query_metrics",
    "mean_metrics",
    "bootstrap_ci",
    "metric_names",
]

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def relevance_matrix(
    ranked: Sequence[Sequence[str]], relevant: Sequence[set[str] | frozenset[str]], depth: int
) -> np.ndarray:
    """Boolean ``(len(ranked), depth)`` matrix; shorter lists are padded with ``False``.

    >>> relevance_matrix([["x", "r"]], [{"r"}], 3).tolist()
    [[False, True, False]]
    """
    if len(ranked) != len(relevant):
        raise ValueError(f"expected one relevant set per ranked list, got {len(relevant)} for {len(ranked)}")
    hits = np.zeros((len(ranked), depth), dtype=bool)
    for i, (ids, rel) in enumerate(zip(ranked, relevant)):
        row = [doc in rel for doc in list(ids)[:depth]]
        hits[i, : len(row)] = row
    return hits


def _check_k(hits: np.ndarray, k: int) -> None:
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")
    if k > hits.shape[1]:
        raise ValueError(f"expected k <= ranked depth {hits.shape[1]}, got {k}")


def hit_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """1.0 where a relevant record is in the top k."""
    _check_k(hits, k)
    return hits[:, :k].any(axis=1).astype(float)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant found in the top k over ``min(|relevant|, k)`` (see module docstring)."""
    _check_k(hits, k)
    n_relevant = np.asarray(n_relevant)
    denom = np.minimum(n_relevant, k).astype(float)
    found = hits[:, :k].sum(axis=1)
    return np.divide(found, denom, out=np.zeros(len(hits)), where=denom > 0)


def first_relevant_rank(hits: np.ndarray) -> np.ndarray:
    """1-based rank of the first relevant record, 0 where none is in the matrix."""
    any_hit = hits.any(axis=1)
    return np.where(any_hit, hits.argmax(axis=1) + 1, 0)


def mrr_at_k(hits: np.ndarray, k: int = 10) -> np.ndarray:
    """Reciprocal rank of the first relevant record within the top k, else 0."""
    _check_k(hits, k)
    rank = first_relevant_rank(hits[:, :k])
    return np.divide(1.0, rank, out=np.zeros(len(hits)), where=rank > 0)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int = 10) -> np.ndarray:
    """Binary-gain nDCG@k with the ideal over ``min(|relevant|, k)`` records."""
    _check_k(hits, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits[:, :k].astype(float) @ discounts
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(np.asarray(n_relevant), k)]
    return np.divide(dcg, idcg, out=np.zeros(len(hits)), where=idcg > 0)


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Metric keys in report order: ``hit@k``..., ``recall@k``..., ``mrr@10``, ``ndcg@10``."""
    return [f"hit@{k}" for k in ks] + [f"recall@{k}" for k in ks] + ["mrr@10", "ndcg@10"]


def per_query_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Every metric of :func:`metric_names` as a per-query array.

    ``hits`` must be at least ``max(max(ks), 10)`` deep.
    """
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"hit@{k}"] = hit_at_k(hits, k)
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
    out["mrr@10"] = mrr_at_k(hits, 10)
    out["ndcg@10"] = ndcg_at_k(hits, n_relevant, 10)
    return out


def mean_metrics(per_query: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean of each per-query array (0.0 for an empty one)."""
    return {name: float(values.mean()) if len(values) else 0.0 for name, values in per_query.items()}


def bootstrap_ci(
    values: np.ndarray | Sequence[float], n: int = 1000, seed: int = 13, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Resamples the per-query values ``n`` times with replacement and returns the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of per-query values, got shape {arr.shape}")
    if n < 1:
        raise ValueError(f"expected n >= 1, got {n}")
    if not 0 < level < 1:
        raise ValueError(f"expected 0 < level < 1, got {level}")
    if len(arr) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    # Resample in blocks so memory stays bounded for large query sets.
    block = max(1, min(n, 2_000_000 // max(len(arr), 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        idx = rng.integers(0, len(arr), size=(stop - start, len(arr)))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))
