"""The live index: BM25, FAISS and facets in memory, kept in step with the record store.

Writes go to SQLite first (the source of truth) and then into the in-memory indexes under one
lock, so a record is searchable as soon as ``upsert`` returns. Snapshots are written every
``persist_every`` writes and on close; after a crash the changes logged since the last snapshot
are replayed from the store on open, so no acknowledged write is lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import platform
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caselink import __version__
from caselink.config import Settings
from caselink.errors import IndexFormatError
from indexing.bm25 import BM25Index
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder
from indexing.facets import FacetTable, Filters
from indexing.index_dir import REBUILD_HINT, IndexDir
from indexing.records import Record
from indexing.store import RecordStore, UpsertResult
from indexing.tokenize import Tokenizer
from indexing.vectors import VectorIndex

Progress = Callable[[str, int, int], None]  # (stage, advance, total)
log = logging.getLogger("caselink.index")


@dataclass
class BuildReport:
    records: int
    embedded: int
    seconds: float
    snapshot: Path
    factory: str

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _versions() -> dict[str, str]:
    import faiss
    import jieba

    return {"caselink": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "faiss": faiss.__version__, "jieba": jieba.__version__}


class LiveIndex:
    """Derived search indexes over a :class:`RecordStore`. Create with :meth:`build` or :meth:`open`."""

    def __init__(self, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache):
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.cache = cache
        self.dir = IndexDir(settings.index_root)
        self.lock = threading.RLock()
        self.seq_ = 0
        self.writes_since_snapshot_ = 0
        self.snapshot_path_: Path | None = None
        self.built_at_: str = ""
        self.docs_: DocumentBuilder | None = None
        self.bm25_: BM25Index | None = None
        self.vectors_: VectorIndex | None = None
        self.facets_ = FacetTable()

    # -- construction -----------------------------------------------------------------------
    def _make_docs(self, user_words: list[str], text: dict | None = None) -> DocumentBuilder:
        """Tokenisation as configured, or as recorded in a manifest (``text``) for an existing index."""
        t = text or self.settings.text.model_dump()
        tok = Tokenizer(opencc=t["opencc"], cjk_bigrams=t["cjk_bigrams"], word_bigrams=t.get("word_bigrams", False),
                        user_words=user_words)
        return DocumentBuilder(tok, title_weight=self.settings.bm25.title_weight,
                               code_weight=self.settings.bm25.code_weight)

    def _new_vectors(self) -> VectorIndex:
        v = self.settings.vectors
        return VectorIndex(self.encoder.dim, exact_below=v.exact_below, nlist=v.ivf_nlist, nprobe=v.nprobe,
                           quantizer=v.quantizer)

    @classmethod
    def build(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
              progress: Progress | None = None) -> tuple["LiveIndex", BuildReport]:
        """Index every record in the store from scratch and publish the snapshot atomically."""
        t0 = time.perf_counter()
        idx = cls(settings, store, encoder, cache)
        idx.seq_ = store.last_seq()  # read first: anything written during the build is replayed later
        facets = store.facets()
        words = sorted({v for row in facets for v in row[3:6] if v})
        idx.docs_ = idx._make_docs(words)
        total = len(facets)
        keys, records = [], []
        for sr in store.iter_records():
            keys.append(sr.num)
            records.append(sr.record)
            if progress and len(keys) % 500 == 0:
                progress("read", 500, total)
        if progress:
            progress("read", len(keys) % 500, total)
        docs = idx.docs_
        idx.bm25_ = BM25Index(k1=settings.bm25.k1, b=settings.bm25.b)
        token_lists = []
        for i, rec in enumerate(records):
            token_lists.append(docs.tokens(rec))
            idx.facets_.set(keys[i], rec, docs.codes(rec))
            if progress and (i + 1) % 500 == 0:
                progress("tokenise", 500, total)
        if progress:
            progress("tokenise", total % 500, total)
        idx.bm25_.add(keys, token_lists)
        idx.bm25_.compact()
        texts = [docs.embedding_text(r) for r in records]
        vecs, embedded = cache.encode(encoder, texts,
                                      progress=(lambda n: progress("embed", n, total)) if progress else None)
        idx.vectors_ = idx._new_vectors()
        idx.vectors_.build(np.asarray(keys, dtype=np.int64), vecs)
        snap = idx.snapshot()
        return idx, BuildReport(total, embedded, time.perf_counter() - t0, snap, idx.vectors_.factory_)

    @classmethod
    def open(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
             *, verify: bool = True) -> "LiveIndex":
        """Load the current snapshot, check it matches the encoder, and replay later changes."""
        idx = cls(settings, store, encoder, cache)
        snap, manifest = idx.dir.read_manifest(verify=verify)
        model = manifest["model"]
        key = getattr(encoder, "cache_key", encoder.model_id)
        if model.get("cache_key", key) != key and model["id"] == encoder.model_id:
            raise IndexFormatError(
                f"the index in {snap} was built with pooling '{model['cache_key']}', the configured encoder "
                f"pools as '{key}'", hint="set encoder.chunk_chars / encoder.lead_weight back, or " + REBUILD_HINT)
        if model["id"] != encoder.model_id or model["dim"] != encoder.dim:
            raise IndexFormatError(
                f"the index in {snap} was built with model '{model['id']}' ({model['dim']}-d), "
                f"but the configured model is '{encoder.model_id}' ({encoder.dim}-d)",
                hint="set encoder.model back, or " + REBUILD_HINT)
        p = manifest["params"]
        idx.docs_ = idx._make_docs(p["text"]["user_words"], p["text"])
        idx.docs_.title_weight = p["bm25"]["title_weight"]
        idx.docs_.code_weight = p["bm25"]["code_weight"]
        try:
            idx.bm25_ = BM25Index.load(snap / "bm25", k1=p["bm25"]["k1"], b=p["bm25"]["b"])
            idx.vectors_ = VectorIndex.load(snap, dim=model["dim"], factory=p["vectors"]["factory"],
                                            nprobe=settings.vectors.nprobe)
            idx.facets_ = FacetTable.from_json(json.loads((snap / "facets.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexFormatError(f"index in {snap} could not be read: {exc}", hint=REBUILD_HINT) from None
        idx.seq_ = manifest["change_seq"]
        idx.snapshot_path_ = snap
        idx.built_at_ = manifest.get("created", "")
        idx.replay()
        return idx

    # -- writes -----------------------------------------------------------------------------
    def _prepare(self, recs: list[Record]) -> tuple[np.ndarray, list[list[str]]]:
        """Vectors and tokens for records: the work that can fail (the encoder), done before storing."""
        vecs, _ = self.cache.encode(self.encoder, [self.docs_.embedding_text(r) for r in recs])
        return vecs, [self.docs_.tokens(r) for r in recs]

    def _apply(self, pairs: list[tuple[int, Record]], prepared: tuple[np.ndarray, list[list[str]]] | None = None
               ) -> None:
        if not pairs:
            return
        keys = np.asarray([n for n, _ in pairs], dtype=np.int64)
        recs = [r for _, r in pairs]
        vecs, tokens = prepared if prepared is not None else self._prepare(recs)
        self.bm25_.add(keys.tolist(), tokens)
        self.vectors_.upsert(keys, vecs)
        for n, r in pairs:
            self.facets_.set(n, r, self.docs_.codes(r))

    def _remove(self, keys: list[int]) -> None:
        if not keys:
            return
        self.bm25_.delete(keys)
        self.vectors_.remove(np.asarray(keys, dtype=np.int64))
        for k in keys:
            self.facets_.remove(k)

    def upsert(self, records: Iterable[Record]) -> list[UpsertResult]:
        """Store and index records; searchable when this returns.

        Embedding happens before the store is touched, so an encoder failure stores nothing and
        the store and the live index never disagree.
        """
        records = list(records)
        with self.lock:
            vecs, tokens = self._prepare(records)
            result = self.store.upsert(records)
            changed = [i for i, r in enumerate(result) if r.changed]
            self._apply([(result[i].num, records[i]) for i in changed],
                        (vecs[changed], [tokens[i] for i in changed]))
            self._catch_up(own={result[i].num for i in changed})
            self._count_writes(len(changed))
        return result

    def delete(self, record_id: str) -> bool:
        with self.lock:
            num = self.store.delete(record_id)
            if num is None:
                return False
            self._remove([num])
            self._catch_up(own={num})
            self._count_writes(1)
        return True

    def _catch_up(self, own: set[int]) -> int:
        """Advance ``seq_`` past this process's own changes, applying any another process made
        meanwhile (``caselink index`` run while the server is up) instead of skipping them.
        Returns how many records were re-read."""
        changes = self.store.changes_since(self.seq_)
        if not changes:
            return 0
        foreign = sorted({num for _, num, _ in changes if num not in own})
        if foreign:
            present = self.store.get_many(foreign)
            self._remove([n for n in foreign if n not in present])
            self._apply(sorted(present.items()))
        self.seq_ = changes[-1][0]
        return len(foreign)

    def _count_writes(self, n: int) -> None:
        self.writes_since_snapshot_ += n
        if self.writes_since_snapshot_ >= self.settings.server.persist_every:
            try:
                self.snapshot()
            except (OSError, RuntimeError) as exc:
                # The write is committed to the store and applied in memory; a snapshot is only a
                # shortcut for the next start (the change log replays the rest). Failing the
                # caller's write here would report a stored write as lost.
                log.warning("snapshot failed, will retry after %d more writes: %s",
                            self.settings.server.persist_every, exc)
                self.writes_since_snapshot_ = 0

    def replay(self) -> int:
        """Apply changes logged in the store after this index's sequence number; returns how many
        records they touched (also the way a server picks up another process's writes)."""
        with self.lock:
            n = self._catch_up(own=set())
            self.writes_since_snapshot_ += n
            return n

    def snapshot(self) -> Path:
        """Write the in-memory state as a new snapshot and make it current."""
        with self.lock:
            self.dir.root.mkdir(parents=True, exist_ok=True)
            with open(self.dir.root / ".lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)  # one writer at a time across processes
                self._catch_up(own=set())  # never claim a change_seq whose changes are not in the files
                tmp = self.dir.new_snapshot()
                try:
                    self.snapshot_path_ = self.dir.publish(tmp, self._write_files(tmp))
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                self.writes_since_snapshot_ = 0
            return self.snapshot_path_

    def _write_files(self, tmp: Path) -> dict:
        """Write the index files into ``tmp``; returns the manifest (without checksums)."""
        self.bm25_.save(tmp / "bm25")
        self.vectors_.save(tmp)
        (tmp / "facets.json").write_text(json.dumps(self.facets_.to_json(), ensure_ascii=False), encoding="utf-8")
        s = self.settings
        self.built_at_ = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            "created": self.built_at_,
            "versions": _versions(),
            "model": {"id": self.encoder.model_id, "dim": self.encoder.dim,
                      "cache_key": getattr(self.encoder, "cache_key", self.encoder.model_id)},
            "change_seq": self.seq_,
            "counts": {"records": len(self.bm25_), "vectors": self.vectors_.ntotal, "terms": len(self.bm25_.vocab_)},
            "params": {
                "bm25": s.bm25.model_dump(),
                "vectors": {"factory": self.vectors_.factory_, "nprobe": s.vectors.nprobe},
                "text": {"opencc": self.docs_.tokenizer.opencc,
                         "cjk_bigrams": self.docs_.tokenizer.cjk_bigrams,
                         "word_bigrams": self.docs_.tokenizer.word_bigrams,
                         "user_words": self.docs_.tokenizer.user_words},
                "encoder": {"chunk_chars": s.encoder.chunk_chars, "lead_weight": s.encoder.lead_weight},
            },
        }

    def close(self) -> None:
        with self.lock:
            if self.writes_since_snapshot_:
                self.snapshot()

    # -- reads ------------------------------------------------------------------------------
    def mask(self, filters: Filters | None, exclude: set[int] | None = None) -> np.ndarray | None:
        if (filters is None or filters.is_empty()) and not exclude:
            return None
        with self.lock:  # an upsert may be growing the facet arrays
            return self.facets_.mask(filters, exclude)

    def search_dense(self, qvec: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            scores, keys = self.vectors_.search(qvec.reshape(1, -1), k, mask)
        ok = keys[0] >= 0
        return keys[0][ok], scores[0][ok]

    def search_keyword(self, tokens: list[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        allow = None
        if mask is not None:
            def allow(keys: np.ndarray) -> np.ndarray:
                inside = keys < len(mask)
                out = np.zeros(len(keys), dtype=bool)
                out[inside] = mask[keys[inside]]
                return out
        with self.lock:
            return self.bm25_.search(tokens, k, allow, normalize=True)

    def count(self) -> int:
        return len(self.bm25_) if self.bm25_ is not None else 0
