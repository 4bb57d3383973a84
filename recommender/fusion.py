"""Combining the dense and keyword rankings into one ranking with 0-1 scores.

``convex`` (default) adds the two sides' scores after putting them on the same 0-1 scale:
cosine similarity for dense, and for BM25 the score as a share of the query's own BM25 score
(what a record containing every query term once would get), which is comparable across queries,
unlike max-normalisation that always hands the top keyword hit 1.0 however weak it is.
A record missing from one side's top list takes that side's lowest listed score: it scored no
better than that, and 0 would punish it for a cut-off rather than for its content.

``adaptive`` (default) is the same convex combination with the weights set per query by how
much each side trusts its own answer: the z-score of a side's best score within its candidate
list (how far the best stands out from the rest), squared, times the configured weight. An
encoder that cannot tell a long English bug report's duplicate from its neighbours produces a
flat cosine list and gets little say for that query; a sharp keyword hit on a rare term gets a
lot, and vice versa for paraphrased Chinese questions with no words in common. Measured on the
five shared benchmarks it was the only combination not clearly behind the better single side
on any of them (bench/relevance.md).

``rrf`` is reciprocal-rank fusion, kept for comparison; its score is the RRF sum divided by the
best possible sum so it is 0-1 too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

# Exact codes decide the order only when the query names a few of them: an engineer typing
# "E1023 after PM" means that code; a long report mentioning thirty versions, hosts and class
# names does not, and ordering by how many of those overlap was measured to hurt (see bench/relevance.md).
CODES_FIRST_MAX = 3


def codes_decide(query_codes: int) -> bool:
    """Whether a query naming ``query_codes`` exact codes gets :func:`codes_first` (1 to
    :data:`CODES_FIRST_MAX`): the one condition hybrid and the learned ranker's prior share."""
    return 0 < query_codes <= CODES_FIRST_MAX


@dataclass
class Fused:
    keys: np.ndarray  # record ids (str), best first
    scores: np.ndarray
    dense: dict[str, tuple[int, float]]    # id -> (rank from 1, cosine)
    keyword: dict[str, tuple[int, float]]  # id -> (rank from 1, normalised BM25)


def ids_array(ids) -> np.ndarray:
    """Record ids as a numpy string array (ties are broken by id, so an order never depends on
    where a backend happens to keep a record)."""
    return np.asarray(list(ids), dtype=str)


def _ranked(keys, scores: np.ndarray) -> dict[str, tuple[int, float]]:
    return {str(k): (i + 1, float(s)) for i, (k, s) in enumerate(zip(keys, scores))}


def _confidence(scores: np.ndarray) -> float | None:
    """(best - mean) / std over a side's candidate list; None when there are too few to tell."""
    if len(scores) < 3:
        return None
    std = float(np.std(scores))
    if std <= 1e-9:
        return 0.0
    return max(0.0, (float(np.max(scores)) - float(np.mean(scores))) / std)


def adaptive_weights(dense_scores: np.ndarray, kw_scores: np.ndarray, dense_weight: float,
                     keyword_weight: float) -> tuple[float, float]:
    """Per-query weights: configured weight times the squared confidence of each side."""
    zd, zk = _confidence(dense_scores), _confidence(kw_scores)
    if zd is None or zk is None or zd + zk <= 1e-9:
        return dense_weight, keyword_weight
    wd, wk = dense_weight * zd * zd, keyword_weight * zk * zk
    if wd + wk <= 1e-12:
        return dense_weight, keyword_weight
    return wd, wk


def fuse(dense_keys, dense_scores: np.ndarray, kw_keys, kw_scores: np.ndarray,
         *, method: str = "convex", dense_weight: float = 0.5, keyword_weight: float = 0.5,
         rrf_k: int = 60) -> Fused:
    """Fuse two rankings (each best first). ``kw_scores`` must already be on a 0-1 scale."""
    dense = _ranked(dense_keys, np.clip(dense_scores, 0.0, 1.0))
    keyword = _ranked(kw_keys, np.clip(kw_scores, 0.0, 1.0))
    keys = ids_array(sorted(set(dense) | set(keyword)))
    if len(keys) == 0:
        return Fused(keys, np.zeros(0, dtype=np.float32), dense, keyword)
    if method == "adaptive":
        dense_weight, keyword_weight = adaptive_weights(np.asarray(dense_scores), np.asarray(kw_scores),
                                                        dense_weight, keyword_weight)
    total = dense_weight + keyword_weight or 1.0
    if method == "rrf":
        d = np.array([dense_weight / (rrf_k + dense[k][0]) if k in dense else 0.0 for k in keys])
        w = np.array([keyword_weight / (rrf_k + keyword[k][0]) if k in keyword else 0.0 for k in keys])
        scores = (d + w) / (total / (rrf_k + 1))
    else:
        d_floor = min((s for _, s in dense.values()), default=0.0)
        k_floor = min((s for _, s in keyword.values()), default=0.0)
        d = np.array([dense[k][1] if k in dense else d_floor for k in keys])
        w = np.array([keyword[k][1] if k in keyword else k_floor for k in keys])
        scores = (dense_weight * d + keyword_weight * w) / total
    order = np.lexsort((keys, -scores))
    return Fused(keys[order], np.clip(scores[order], 0.0, 1.0).astype(np.float32), dense, keyword)


def single(keys, scores: np.ndarray, side: str) -> Fused:
    """A one-sided ranking in the same shape as :func:`fuse` output."""
    ranked = _ranked(keys, np.clip(scores, 0.0, 1.0))
    return Fused(ids_array(keys), np.clip(scores, 0.0, 1.0).astype(np.float32),
                 ranked if side == "dense" else {}, ranked if side == "keyword" else {})


def codes_order(fused: Fused, query_codes: set[str], record_codes: Mapping[str, Collection[str]]) -> np.ndarray:
    """The permutation that puts records sharing more of the query's exact codes first, keeping
    the fused order otherwise (stable)."""
    if not query_codes or len(fused.keys) == 0:
        return np.arange(len(fused.keys))
    hits = np.array([len(query_codes.intersection(record_codes.get(str(k), ()))) for k in fused.keys])
    return np.lexsort((-fused.scores, -hits))


def codes_first(fused: Fused, query_codes: set[str], record_codes: Mapping[str, Collection[str]]) -> Fused:
    """Stable re-order: records sharing more of the query's exact codes come first.

    An engineer who types E1023 or PN-7731-02 wants the records with that code, however close
    other records are in meaning.
    """
    if not query_codes or len(fused.keys) == 0:
        return fused
    order = codes_order(fused, query_codes, record_codes)
    # Keep scores non-increasing down the list: a record that outranks another on an exact code
    # scores at least as much as it, so a score threshold never cuts a code match above a non-match.
    scores = np.maximum.accumulate(fused.scores[order][::-1])[::-1]
    return Fused(fused.keys[order], scores, fused.dense, fused.keyword)
