"""caselink's own ranking modes as harness retrievers.

One :class:`CaselinkEngine` indexes a dataset once (real store, real FAISS and BM25, real
encoder, in a work folder) and serves every mode; :class:`CaselinkRetriever` is the per-mode
view the harness evaluates. Queries that are records of the dataset are ranked the way the
product ranks "related to this record" (:meth:`CaselinkService.related`), everything else as a
free-text search.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from caselink.config import Settings, load_settings
from eval.datasets import EvalRecord
from eval.protocol import QUESTION
from eval.retrievers import Ranked
from indexing.encoders import Encoder
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService

# What a question set's candidates are indexed as: whatever a set calls them (section, answer,
# article, solution), they answer a question the way an SOP section answers a symptom.
ANSWER_KIND = "sop"
_CASELINK_KINDS = ("case", "problem", "sop")


def caselink_kind(kind: str | None, *, question_set: bool) -> str:
    """The caselink kind a benchmark record is indexed as: the one place benchmark kinds are mapped.

    On a question set (:mod:`eval.protocol`: some record is a ``question``) questions are asked
    like cases and every other kind is ranked as :data:`ANSWER_KIND`. Elsewhere a caselink kind
    stays itself and anything else is a case.
    """
    if question_set:
        return "case" if kind == QUESTION else ANSWER_KIND
    return kind if kind in _CASELINK_KINDS else "case"


def to_record(r: EvalRecord, *, question_set: bool = False) -> Record:
    return Record(id=r.id, kind=caselink_kind(r.kind, question_set=question_set), title=r.title[:1000],
                  text=r.text[:200_000])


class CaselinkEngine:
    """Indexes a dataset once for all modes.

    Parameters
    ----------
    settings : caselink settings; ``data_dir`` is replaced by ``workdir``.
    workdir : folder for the store and index (a temporary folder when None).
    cache_path : embedding cache to reuse across runs (``settings.cache_path`` when None).
    encoder : the encoder to index and search with (the configured one when None).
    """

    def __init__(self, settings: Settings | None = None, *, workdir: Path | None = None,
                 cache_path: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
                 full_records: dict[str, Record] | None = None, encoder: Encoder | None = None):
        self.settings = settings or load_settings(env={})
        self.encoder = encoder  # None: the configured one (``encoder.model``, ``auto`` resolved)
        self.workdir = workdir
        # Evaluating caselink's own records: index them whole (product, module, codes, links),
        # not just the id/title/text the harness passes around.
        self.full_records = full_records or {}
        self.cache_path = cache_path
        self.progress = progress
        self.service_: CaselinkService | None = None
        self._fitted: tuple[str, ...] | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def fit(self, records: Sequence[EvalRecord]) -> CaselinkService:
        key = tuple(r.id for r in records)
        if self.service_ is not None and self._fitted == key:
            return self.service_
        self.close()
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="caselink-eval-")
            workdir = Path(self._tmp.name)
        else:
            workdir = self.workdir
        settings = self.settings.model_copy(update={"data_dir": workdir})
        if self.cache_path is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            link = settings.cache_path
            if not link.exists():
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.cache_path.resolve())
        question_set = any(r.kind == QUESTION for r in records)
        recs = [self.full_records.get(r.id) or to_record(r, question_set=question_set) for r in records]
        self.service_, _ = CaselinkService.build(settings, encoder=self.encoder, records=recs, progress=self.progress)
        self._fitted = key
        return self.service_

    def close(self) -> None:
        if self.service_ is not None:
            self.service_.close()
            self.service_ = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class CaselinkRetriever:
    """One caselink mode (hybrid, dense or keyword) behind the harness's Retriever protocol."""

    def __init__(self, engine: CaselinkEngine, mode: str):
        self.engine = engine
        self.mode = mode
        self.name = mode

    def fit(self, records: list[EvalRecord]) -> None:
        self.engine.fit(records)

    def rank(self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None) -> Ranked:
        svc = self.engine.service_
        # The protocol restricts candidates on question sets only, and those are all ANSWER_KIND.
        kinds = [ANSWER_KIND] if candidate_ids is not None else None
        stored = svc.records(q.id for q in queries)
        out: Ranked = []
        for q in queries:
            if q.id in stored:
                resp = svc.related(q.id, k=k, kinds=kinds, mode=self.mode)
            else:
                resp = svc.search(SearchQuery(text=q.full_text()[:10_000] or q.id, k=k, mode=self.mode,
                                              kind=kinds or []))
            out.append([(r.id, r.score) for r in resp.results
                        if candidate_ids is None or r.id in candidate_ids])
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The score the service shows for b among the records related to a, in this mode (its
        fusion, codes first and feedback, as served), and 0 where b is not among the best
        ``rank.max_k``: ``min_score`` filters shown scores, so a threshold is suggested from them."""
        svc = self.engine.service_
        shown: dict[str, dict[str, float]] = {}
        out = np.zeros(len(pairs), dtype=np.float32)
        for n, (a, b) in enumerate(pairs):
            if a not in shown:
                resp = svc.related(a, k=svc.settings.rank.max_k, mode=self.mode)
                shown[a] = {r.id: r.score for r in resp.results}
            out[n] = shown[a].get(b, 0.0)
        return out
