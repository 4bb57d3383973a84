"""Features of (query, candidate) pairs for the learned ranker, over one query's fused list.

Everything here is what caselink already knows when it has fused the two sides: each side's
score, rank and standing in its own list, today's fused score, the exact codes, the facet
columns (kind, product, model, module, created) and the keyword length of every candidate.
Nothing is read from the record store, and every feature is computed for the whole list at
once with numpy (the only per-candidate Python work is looking up exact-code sets, and only
when the query has codes), so reranking a hundred candidates costs well under a millisecond.
Two features read the index besides the fused list: the query's terms scored by BM25L on each
candidate's title alone (a title index beside the main one, same rows), and, for an ensemble
encoder, each part's own cosine from the candidate's stored vector (exact indexes only: an IVF
index keeps no vectors to give back, and those cosines are then missing).

A candidate missing from one side's list takes that side's lowest listed score (as fusion
does) and a rank one past the list, with a ``*_missing`` flag so the model can tell "scored
low" from "not retrieved". The feature order is the model file's contract: :data:`FEATURES`
is saved with every model, and a model whose features differ is refused at load.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.fusion import Fused

# Kinds in the order the kind-pair feature numbers them; a free-text query is the last.
KINDS = ("case", "problem", "sop")
FREE_TEXT = len(KINDS)

_SIDE = ("score", "missing", "log_rank", "z", "gap")
FEATURES: tuple[str, ...] = (
    *(f"dense_{f}" for f in _SIDE),
    *(f"keyword_{f}" for f in _SIDE),
    "fused_score", "fused_log_rank",
    "dense_confidence", "keyword_confidence",
    "query_log_len", "cand_log_len", "log_len_ratio",
    "codes_shared", "codes_missing", "cand_codes",
    "product_agree", "model_agree", "module_agree",
    "kind_pair", "created_log_gap",
    "title_bm25",
)


def feature_names(parts: Sequence[str] = ()) -> tuple[str, ...]:
    """The features for an encoder made of ``parts`` (their specs, in order): :data:`FEATURES`,
    and, when there are several, each part's own cosine (``cosine_minilm``), which the ensemble's
    single score averages away."""
    if len(parts) < 2:
        return FEATURES
    names = [f"cosine_{p}" for p in parts]
    if len(set(names)) < len(names):
        names = [f"cosine{i + 1}_{p}" for i, p in enumerate(parts)]
    return FEATURES + tuple(names)


@dataclass(frozen=True)
class QueryFacts:
    """What the ranker knows of the query: a stored or drafted record, or free text.

    ``kind`` is None for free text; facets are casefolded ('' = unknown); ``created_day`` is
    days since 1970 (-1 = unknown); ``length`` is the query's keyword terms.
    """

    codes: frozenset[str] = frozenset()
    kind: str | None = None
    product: str = ""
    model: str = ""
    module: str = ""
    created_day: int = -1
    length: int = 0


def _side(keys: list, side: dict[str, tuple[int, float]]) -> tuple[np.ndarray, float]:
    """(n, 5) score, missing, log rank, z within the side's list, gap to the side's best, for
    ``keys`` (a list: Python keys hash at half the cost of numpy scalars); and the side's
    confidence, how far its best stands out of its list (the adaptive fusion's z; 0 when flat or
    shorter than 3).

    The side's statistics are taken in float64 over its scores in list order: sums of at most a
    few hundred float32 scores are exact there, so no order of adding moves a bit of them (in
    float32 the last bit depended on the order, and with it, rarely, a model's split).
    """
    n = len(keys)
    out = np.zeros((n, 5), dtype=np.float32)
    if not side:
        out[:, 1] = 1.0
        return out, 0.0
    scores = np.fromiter((s for _, s in side.values()), dtype=np.float64, count=len(side))
    mean, std, best, floor = float(scores.mean()), float(scores.std()), float(scores.max()), float(scores.min())
    got = [side.get(k) for k in keys]
    s = np.fromiter((floor if g is None else g[1] for g in got), dtype=np.float64, count=n)
    r = np.fromiter((len(side) + 1 if g is None else g[0] for g in got), dtype=np.float64, count=n)
    out[:, 0] = s
    out[:, 1] = r > len(side)
    out[:, 2] = np.log1p(r)
    out[:, 3] = (s - mean) / (std or 1.0)
    out[:, 4] = best - s
    confidence = 0.0 if len(side) < 3 or std <= 1e-9 else max(0.0, (best - mean) / std)
    return out, confidence


def _agree(query_value: str, column: np.ndarray) -> np.ndarray:
    """1 same, 0 different, -1 when either side does not say."""
    if not query_value:
        return np.full(len(column), -1.0, dtype=np.float32)
    known = column != ""
    return np.where(known, (column == query_value).astype(np.float32), -1.0).astype(np.float32)


def _part_cosines(qvec: np.ndarray, vectors: np.ndarray, blocks: Sequence[tuple[int, float]]) -> np.ndarray:
    """(n, parts) cosine of the query with each candidate within each encoder's block.

    An ensemble's vectors are its parts' unit vectors scaled by the square root of their share
    (centring keeps each block's norm), so a block's inner product over its share is that
    encoder's cosine. A candidate whose vector is not known (NaN) gets NaN: LightGBM's missing.
    """
    out = np.empty((len(vectors), len(blocks)), dtype=np.float32)
    col = 0
    for j, (dim, share) in enumerate(blocks):
        out[:, j] = vectors[:, col:col + dim] @ qvec[col:col + dim] / np.float32(share)
        col += dim
    return out


def feature_matrix(fused: Fused, query: QueryFacts, facts: dict[str, np.ndarray | Sequence[Collection[str]]],
                   *, qvec: np.ndarray | None = None, blocks: Sequence[tuple[int, float]] = ()) -> np.ndarray:
    """The (len(fused.keys), len(feature_names(parts))) float32 matrix for one query's fused list.

    ``facts`` is :meth:`indexing.live.LiveIndex.candidate_facts` of ``fused.keys`` (with the
    query's terms, for ``title_bm25``, and with ``vectors`` when the encoder has several parts);
    ``qvec`` the query's index-space vector and ``blocks`` the encoder's (dimensions, share)
    per part (:func:`indexing.centering.blocks_of`): with two or more, one cosine per part.
    """
    keys = np.asarray(fused.keys).tolist()
    n = len(keys)
    per_part = len(blocks) if len(blocks) > 1 else 0
    X = np.zeros((n, len(FEATURES) + per_part), dtype=np.float32)
    if n == 0:
        return X
    X[:, 0:5], X[:, 12] = _side(keys, fused.dense)
    X[:, 5:10], X[:, 13] = _side(keys, fused.keyword)
    X[:, 10] = fused.scores
    X[:, 11] = np.log1p(np.arange(1, n + 1, dtype=np.float32))  # the position in hybrid's order, as given
    q_len = np.log1p(float(query.length))
    c_len = np.log1p(np.asarray(facts["length"], dtype=np.float32))
    X[:, 14] = q_len
    X[:, 15] = c_len
    X[:, 16] = c_len - q_len
    cand_codes = facts["codes"]
    X[:, 19] = np.fromiter((len(c) for c in cand_codes), dtype=np.float32, count=n)
    if query.codes:
        shared = np.fromiter((len(query.codes.intersection(c)) for c in cand_codes), dtype=np.float32, count=n)
        X[:, 17] = shared
        X[:, 18] = len(query.codes) - shared
    X[:, 20] = _agree(query.product, facts["product"])
    X[:, 21] = _agree(query.model, facts["model"])
    X[:, 22] = _agree(query.module, facts["module"])
    q_kind = KINDS.index(query.kind) if query.kind in KINDS else FREE_TEXT
    kind_col = facts["kind"]
    c_kind = np.select([kind_col == k for k in KINDS], list(range(len(KINDS))), default=len(KINDS))
    X[:, 23] = q_kind * (len(KINDS) + 1) + c_kind
    created = np.asarray(facts["created"], dtype=np.float32)
    if query.created_day >= 0:
        X[:, 24] = np.where(created >= 0, np.log1p(np.abs(created - query.created_day)), -1.0)
    else:
        X[:, 24] = -1.0
    if "title_bm25" in facts:
        X[:, 25] = facts["title_bm25"]
    if per_part:
        vectors = facts.get("vectors")
        if qvec is None or vectors is None:
            X[:, len(FEATURES):] = np.nan
        else:
            X[:, len(FEATURES):] = _part_cosines(np.asarray(qvec, dtype=np.float32), vectors, blocks)
    return X
