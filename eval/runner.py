"""Run retrievers through the protocol and collect metrics, ranked lists and pair scores.

>>> from eval.baselines import TfidfRetriever
>>> recs = [EvalRecord("a", "reset remote"), EvalRecord("b", "remote reset"), EvalRecord("c", "clean filter")]
>>> result = evaluate(recs, [("a", "b", 1)], {"tfidf": TfidfRetriever()}, dataset="tiny")
>>> result.to_json()["modes"]["tfidf"]["hit@1"]
1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval.datasets import EvalRecord, load_benchmark
from eval.metrics import (
    DEFAULT_KS,
    bootstrap_ci,
    first_relevant_rank,
    mean_metrics,
    metric_names,
    per_query_metrics,
    recall_at_k,
    relevance_matrix,
)
from eval.protocol import QUESTION, Protocol, UnionFind, build_protocol
from eval.retrievers import Ranked, Retriever, can_score_pairs

__all__ = ["ModeResult", "EvalResult", "evaluate", "evaluate_benchmark", "Progress"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: queries ranked so far over all modes, and the total."""


@dataclass
class ModeResult:
    """Everything measured for one retriever.

    ``ranked`` holds, per query (in :attr:`EvalResult.queries` order), up to ``depth``
    ``(id, score)`` after the query itself was dropped. ``first_relevant`` is the 1-based rank
    of the first relevant record, 0 when none is within ``depth``. ``recall_curve[k - 1]`` is
    mean recall@k for k = 1..depth. Pair scores are ``None`` when the retriever cannot score
    pairs; ``negatives_source`` says whether negatives are the labeled label-0 pairs
    (``"labeled"``) or random unrelated pairs drawn because the set has none (``"random"``).
    """

    name: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_query: dict[str, np.ndarray]
    ranked: Ranked
    first_relevant: np.ndarray
    recall_curve: np.ndarray
    positive_scores: np.ndarray | None = None
    negative_scores: np.ndarray | None = None
    negatives_source: str = ""
    dropped_non_candidates: int = 0
    fit_seconds: float = 0.0
    rank_seconds: float = 0.0


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate` for one dataset."""

    dataset: str
    queries: list[str]
    relevant: dict[str, set[str]]
    ks: tuple[int, ...]
    depth: int
    modes: dict[str, ModeResult]
    protocol: Protocol
    records: dict[str, EvalRecord] = field(repr=False, default_factory=dict)

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    def to_json(self, *, ci: bool = False) -> dict:
        """A JSON-ready dict: ``{"dataset", "queries", "modes": {mode: {metric: mean}}}``.

        With ``ci=True`` every mode also gets ``"ci": {metric: [low, high]}``.
        """
        modes: dict[str, dict] = {}
        for name, mode in self.modes.items():
            entry: dict = {m: mode.metrics[m] for m in metric_names(self.ks)}
            if ci:
                entry["ci"] = {m: [lo, hi] for m, (lo, hi) in mode.ci.items()}
            modes[name] = entry
        return {"dataset": self.dataset, "queries": self.n_queries, "modes": modes}


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"expected ks to be positive integers, got {ks}")
    return tuple(sorted(set(int(k) for k in ks)))


def _random_negatives(
    records: Sequence[EvalRecord], protocol: Protocol, n: int, seed: int
) -> list[tuple[str, str]]:
    """``n`` random pairs in different components (question x candidate on kind sets)."""
    uf = UnionFind()
    for a, b in protocol.positives:
        uf.union(a, b)
    component = {rid: uf.find(rid) for a_b in protocol.positives for rid in a_b}
    if protocol.candidate_kind_filter:
        left = [r.id for r in records if r.kind == QUESTION]
        right = [r.id for r in records if protocol.is_candidate(r.id)]
    else:
        left = right = [r.id for r in records]
    if not left or not right:
        return []
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(20 * n):
        if len(out) >= n:
            break
        a, b = left[rng.integers(len(left))], right[rng.integers(len(right))]
        same = a == b or (a in component and component.get(b) == component[a])
        if not same and (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b))
    return out


def _rank_mode(
    retriever: Retriever,
    queries: list[EvalRecord],
    protocol: Protocol,
    depth: int,
    batch_size: int,
    tick: Callable[[int], None],
) -> tuple[Ranked, int]:
    candidates = set(protocol.candidate_ids) if protocol.candidate_ids is not None else None
    ranked: Ranked = []
    dropped = 0
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        lists = retriever.rank(batch, depth + 1, candidates)
        if len(lists) != len(batch):
            raise ValueError(f"{retriever.name}: expected {len(batch)} ranked lists, got {len(lists)}")
        for query, lst in zip(batch, lists):
            kept = [(doc, float(score)) for doc, score in lst if doc != query.id]
            allowed = [(doc, s) for doc, s in kept if protocol.is_candidate(doc)]
            dropped += len(kept) - len(allowed)
            ranked.append(allowed[:depth])
        tick(len(batch))
    return ranked, dropped


def evaluate(
    records: Sequence[EvalRecord],
    pairs: Iterable[Sequence],
    retrievers: Mapping[str, Retriever],
    ks: Sequence[int] = DEFAULT_KS,
    max_queries: int = 2000,
    seed: int = 13,
    progress: Progress | None = None,
    *,
    dataset: str = "",
    depth: int = 20,
    batch_size: int = 256,
    n_bootstrap: int = 1000,
) -> EvalResult:
    """Evaluate each retriever on the protocol built from ``records`` and ``pairs``.

    Each retriever is fitted on all records, asked for ``depth + 1`` results per query (the
    query's own id is dropped, as are ids outside the candidates, which are counted), and
    scored with :func:`eval.metrics.per_query_metrics`; 95% bootstrap intervals share the
    resamples across modes (same seed), so they are comparable.

    Args:
        records: every record of the dataset.
        pairs: ``(id_a, id_b, label[, grade])`` items.
        retrievers: mode name -> retriever.
        ks: cut-offs for hit@k and recall@k (default 1, 5, 10).
        max_queries, seed: query sampling, see :func:`eval.protocol.build_protocol`.
        progress: optional ``progress(done, total)`` called after each batch of queries.
        dataset: name shown in results and reports.
        depth: ranks kept per query for curves and error analysis (at least ``max(ks)`` and 10).
        batch_size: queries per ``rank`` call (default 256).
        n_bootstrap: bootstrap resamples for confidence intervals (default 1,000).

    Raises:
        ValueError: no retrievers, bad ``ks``, or the pairs yield no queries.
        InvalidRecord: a pair names an unknown id.
    """
    if not retrievers:
        raise ValueError("expected at least one retriever, got none")
    ks = _check_ks(ks)
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    depth = max(depth, max(ks), 10)
    records = list(records)
    protocol = build_protocol(records, pairs, max_queries=max_queries, seed=seed)
    if not protocol.queries:
        raise ValueError(f"{dataset or 'dataset'}: expected at least one query (a label-1 pair), got none")
    by_id = {r.id: r for r in records}
    queries = [by_id[q] for q in protocol.queries]
    relevant = [protocol.relevant[q] for q in protocol.queries]
    n_relevant = np.array([len(r) for r in relevant])

    negatives, neg_source = protocol.negatives, "labeled"
    if not negatives and protocol.positives:
        negatives, neg_source = _random_negatives(records, protocol, len(protocol.positives), seed), "random"

    total = len(queries) * len(retrievers)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    modes: dict[str, ModeResult] = {}
    for name, retriever in retrievers.items():
        t0 = time.perf_counter()
        retriever.fit(records)
        t1 = time.perf_counter()
        ranked, dropped = _rank_mode(retriever, queries, protocol, depth, batch_size, tick)
        t2 = time.perf_counter()
        hits = relevance_matrix([[doc for doc, _ in lst] for lst in ranked], relevant, depth)
        per_query = per_query_metrics(hits, n_relevant, ks)
        mode = ModeResult(
            name=name,
            metrics=mean_metrics(per_query),
            ci={m: bootstrap_ci(v, n=n_bootstrap, seed=seed) for m, v in per_query.items()},
            per_query=per_query,
            ranked=ranked,
            first_relevant=first_relevant_rank(hits),
            recall_curve=np.array([recall_at_k(hits, n_relevant, k).mean() for k in range(1, depth + 1)]),
            dropped_non_candidates=dropped,
            fit_seconds=t1 - t0,
            rank_seconds=t2 - t1,
        )
        if can_score_pairs(retriever) and protocol.positives:
            mode.positive_scores = np.asarray(retriever.score_pairs(protocol.positives), dtype=float)
            mode.negative_scores = np.asarray(retriever.score_pairs(negatives), dtype=float) if negatives else None
            mode.negatives_source = neg_source if negatives else ""
        modes[name] = mode
    return EvalResult(
        dataset=dataset,
        queries=list(protocol.queries),
        relevant=dict(protocol.relevant),
        ks=ks,
        depth=depth,
        modes=modes,
        protocol=protocol,
        records=by_id,
    )


def evaluate_benchmark(folder: str | Path, retrievers: Mapping[str, Retriever], **kwargs) -> EvalResult:
    """:func:`evaluate` on a benchmark folder (``records.jsonl`` + ``pairs.tsv``), named after it."""
    folder = Path(folder)
    records, pairs = load_benchmark(folder)
    kwargs.setdefault("dataset", folder.name)
    return evaluate(records, pairs, retrievers, **kwargs)
