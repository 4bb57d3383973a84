"""Embedding cache keyed by (encoder cache key, sha256 of the embedded text).

The cache key is the model id plus the pooling settings (``use-m3|chunk400|lead0.5``): a vector
depends on both, so changing either never serves stale vectors. An ensemble is cached part by
part, so moving between ``use-m3`` and ``use-m3+minilm`` re-embeds only the part not yet seen.

Re-indexing an unchanged corpus embeds nothing, and a record edit that does not change the text
the encoder sees (a status change, say) costs no embedding either.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexing.encoders import Encoder


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Stores float32 vectors as blobs; one table for all models."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, hash TEXT NOT NULL,"
            " vec BLOB NOT NULL, PRIMARY KEY (model, hash)) WITHOUT ROWID")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def get(self, model: str, hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(hashes), 900):
                part = list(hashes[start:start + 900])
                q = f"SELECT hash, vec FROM embeddings WHERE model = ? AND hash IN ({','.join('?' * len(part))})"
                for h, blob in self._conn.execute(q, [model, *part]):
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if len(vec) == dim:
                        out[h] = vec
        return out

    def put(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(model, h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)", rows)
            self._conn.execute("COMMIT")

    def encode(self, encoder: Encoder, texts: Sequence[str], *, progress: Callable[[int], None] | None = None,
               chunk: int = 2048) -> tuple[np.ndarray, int]:
        """Vectors for ``texts``, embedding only those not cached. Returns (vectors, number embedded);
        for an ensemble, the most any one part embedded."""
        parts = getattr(encoder, "parts", None)
        if parts:
            tick = encoder.part_progress(progress)
            done = [self.encode(part, texts, progress=tick, chunk=chunk) for part in parts]
            return encoder.combine([v for v, _ in done]), max(n for _, n in done)
        hashes = [text_hash(t) for t in texts]
        out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        key = getattr(encoder, "cache_key", encoder.model_id)
        cached = self.get(key, list(dict.fromkeys(hashes)), encoder.dim)
        missing: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            vec = cached.get(h)
            if vec is not None:
                out[i] = vec
            else:
                missing.setdefault(h, []).append(i)
        if progress is not None and len(texts) - sum(len(v) for v in missing.values()):
            progress(len(texts) - sum(len(v) for v in missing.values()))
        todo = list(missing)
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            vecs = encoder.encode([texts[missing[h][0]] for h in part],
                                  progress=None if progress is None else (lambda n, p=part: None))
            self.put(key, part, vecs)
            for h, v in zip(part, vecs):
                out[missing[h]] = v
            if progress is not None:
                progress(sum(len(missing[h]) for h in part))
        return out, len(todo)
