"""Evaluating the learned ranker honestly: trained on some labeled components, measured on others.

- :func:`held_back` keeps only the test pairs whose component shares no record with the
  training pairs (a query whose partner was trained on would flatter the model) and counts the
  queries it drops;
- :class:`LearnedRetriever` is the ``learned`` mode: on ``fit`` it trains a model on the training
  pairs over the engine's index (:func:`recommender.training.train`), then ranks like ``hybrid``
  reranked by that model;
- :func:`reliability` bins the shown top-k scores against what was relevant: the expected
  calibration error and the reliability curve of the report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.caselink_retriever import ANSWER_KIND, CaselinkEngine, CaselinkRetriever
from eval.datasets import EvalRecord
from eval.protocol import QUESTION, relevant_sets
from eval.retrievers import Ranked
from recommender.training import train

__all__ = ["LearnedRetriever", "Reliability", "held_back", "reliability"]


def held_back(test_pairs: Sequence[Sequence], train_pairs: Sequence[Sequence]) -> list[tuple]:
    """The test pairs whose label-1 component touches no id of ``train_pairs`` (and no label-0
    pair naming a trained id): what is left to measure a model trained on ``train_pairs``."""
    seen = {str(i) for p in train_pairs for i in (p[0], p[1])}
    test = [(str(p[0]), str(p[1]), int(p[2])) for p in test_pairs]
    comps = relevant_sets((a, b) for a, b, label in test if label == 1)
    tainted = {q for q, rest in comps.items() if q in seen or rest & seen}
    blocked = tainted | seen
    return [p for p in test if p[0] not in blocked and p[1] not in blocked]


class LearnedRetriever:
    """The ``learned`` mode: hybrid reranked by a model trained on ``train_pairs`` at ``fit``.

    ``max_queries`` caps the training queries; ``model_`` and ``train_seconds_`` are set by fit.
    """

    def __init__(self, engine: CaselinkEngine, train_pairs: Sequence[Sequence], *, max_queries: int = 5000,
                 seed: int = 13):
        self.engine = engine
        self.train_pairs = list(train_pairs)
        self.max_queries = max_queries
        self.seed = seed
        self.name = "learned"
        self.model_ = None
        self.train_seconds_ = 0.0
        self._view = CaselinkRetriever(engine, "learned")

    def fit(self, records: list[EvalRecord]) -> None:
        svc = self.engine.fit(records)
        question_set = any(r.kind == QUESTION for r in records)
        kw = {}
        if question_set:  # as the protocol: questions ask, every other kind answers
            kw = {"kinds": [ANSWER_KIND], "query_ids": [r.id for r in records if r.kind == QUESTION],
                  "candidate_ids": [r.id for r in records if r.kind != QUESTION]}
        t0 = time.perf_counter()
        self.model_ = train(svc, self.train_pairs, max_queries=self.max_queries, seed=self.seed, **kw)
        self.train_seconds_ = time.perf_counter() - t0
        svc.set_ranker(self.model_)

    def rank(self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None) -> Ranked:
        return self._view.rank(queries, k, candidate_ids)


@dataclass(frozen=True)
class Reliability:
    """Shown scores against outcomes: per bin, the mean score, the share relevant, the count."""

    ece: float
    predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    n: int


def reliability(ranked: Ranked, relevant: Sequence[set[str]], *, k: int = 10, bins: int = 10) -> Reliability:
    """Expected calibration error of the top-``k`` scores of each ranked list (equal-width bins)."""
    scores, hits = [], []
    for lst, rel in zip(ranked, relevant):
        for doc, score in lst[:k]:
            scores.append(score)
            hits.append(doc in rel)
    s, h = np.asarray(scores, dtype=float), np.asarray(hits, dtype=float)
    which = np.minimum((np.clip(s, 0, 1) * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        predicted = np.bincount(which, weights=s, minlength=bins) / counts
        observed = np.bincount(which, weights=h, minlength=bins) / counts
    ok = counts > 0
    ece = float(np.sum(counts[ok] * np.abs(predicted[ok] - observed[ok])) / max(len(s), 1))
    return Reliability(ece, predicted, observed, counts, len(s))
