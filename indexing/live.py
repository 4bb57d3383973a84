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
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caselink.config import Settings
from caselink.errors import IndexFormatError, IndexNotReady
from indexing.bm25 import BM25Index
from indexing.centering import VectorCentering, blocks_of
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder
from indexing.facets import FacetTable, Filters
from indexing.index_dir import REBUILD_HINT, IndexDir
from indexing.records import Record
from indexing.store import RecordStore, UpsertResult
from indexing.snapshot_state import capture_state, write_state
from indexing.staleness import check_store, rebuild_reason
from indexing.tokenize import Tokenizer, is_cjk_char, read_user_dict, text_params
from indexing.vectors import VectorIndex

Progress = Callable[[str, int, int], None]  # (stage, advance, total)
log = logging.getLogger("caselink.index")
BUILD_BATCH = 2000  # records per step of a build or a replay: large enough for the encoder's batches


def _batched(items: Iterable, n: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class BuildReport:
    records: int
    embedded: int
    seconds: float
    snapshot: Path
    factory: str
    applied: int | None = None  # records re-indexed in place; None for a build from scratch
    rebuilt_because: str | None = None  # why an in-place update was not possible
    removed: list[str] = field(default_factory=list)  # SOP sections no longer in their documents, deleted

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


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
        self.embedded_ = 0  # texts this process sent to the encoder (cache misses)
        self.writes_since_snapshot_ = 0
        self.snapshot_path_: Path | None = None
        self.built_at_: str = ""
        self.docs_: DocumentBuilder | None = None
        self.bm25_: BM25Index | None = None
        self.vectors_: VectorIndex | None = None
        # the identity until fitted (build) or loaded (open)
        self.centering_ = VectorCentering(blocks_of(encoder), min_records=settings.vectors.center_min_records)
        self.facets_ = FacetTable()

    # -- construction -----------------------------------------------------------------------
    def _make_docs(self, user_words: list[str], text: dict | None = None) -> DocumentBuilder:
        """Tokenisation as configured, or as recorded in a manifest (``text``) for an existing index."""
        tok = Tokenizer(**text_params(text or self.settings.text.model_dump()), user_words=user_words)
        return DocumentBuilder(tok, title_weight=self.settings.bm25.title_weight,
                               code_weight=self.settings.bm25.code_weight)

    def _new_vectors(self) -> VectorIndex:
        v = self.settings.vectors
        return VectorIndex(self.encoder.dim, exact_below=v.exact_below, nlist=v.ivf_nlist, nprobe=v.nprobe,
                           quantizer=v.quantizer)

    @classmethod
    def build(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
              progress: Progress | None = None) -> tuple["LiveIndex", BuildReport]:
        """Index every record in the store from scratch and publish the snapshot atomically.

        One streaming pass in batches of ``BUILD_BATCH`` records: each batch is tokenised into
        BM25's compact postings and embedded into one preallocated vector array, and then
        dropped, so peak memory is the finished index plus one batch, not every record's text
        and tokens at once.
        """
        t0 = time.perf_counter()
        idx = cls(settings, store, encoder, cache)
        idx.seq_ = store.last_seq()  # read first: anything written during the build is replayed later
        facets = store.facets()
        idx.docs_ = docs = idx._make_docs(cls._dictionary(settings, facets))
        total = len(facets)
        del facets
        keys = np.zeros(total, dtype=np.int64)
        kinds: list[str] = []  # per vector, for per-kind centring
        vecs = np.zeros((total, encoder.dim), dtype=np.float32)
        done = embedded = 0

        def batches():
            nonlocal keys, vecs, done, embedded
            for batch in _batched(store.iter_records(BUILD_BATCH), BUILD_BATCH):
                recs = [sr.record for sr in batch]
                tokens = [docs.tokens(r) for r in recs]
                for sr in batch:
                    idx.facets_.set(sr.num, sr.record, docs.codes(sr.record))
                if progress:
                    progress("tokenise", len(batch), total)
                v, n = cache.encode(encoder, [docs.embedding_text(r) for r in recs],
                                    progress=(lambda k: progress("embed", k, total)) if progress else None)
                if done + len(batch) > len(keys):  # records stored while the build runs
                    keys = np.concatenate([keys, np.zeros(len(batch), dtype=np.int64)])
                    vecs = np.concatenate([vecs, np.zeros((len(batch), encoder.dim), dtype=np.float32)])
                keys[done:done + len(batch)] = [sr.num for sr in batch]
                kinds.extend(sys.intern(r.kind) for r in recs)  # one str per kind, not per record
                vecs[done:done + len(batch)] = v
                done += len(batch)
                embedded += n
                yield keys[done - len(batch):done].tolist(), tokens

        idx.bm25_ = BM25Index(k1=settings.bm25.k1, b=settings.bm25.b, delta=settings.bm25.delta)
        idx.bm25_.add_batches(batches())
        if settings.vectors.center:
            idx.centering_.fit(vecs[:done], kinds)
            idx.centering_.transform(vecs[:done], kinds, out=vecs[:done])
        idx.vectors_ = idx._new_vectors()
        idx.vectors_.build(keys[:done], vecs[:done])
        del vecs
        idx.embedded_ = embedded
        snap = idx.snapshot()
        return idx, BuildReport(done, embedded, time.perf_counter() - t0, snap, idx.vectors_.factory_)

    @staticmethod
    def _dictionary(settings: Settings, facets: list[tuple]) -> list[str]:
        """Terms jieba must keep whole: stored product, model and module names plus the user dictionary."""
        words = {v for row in facets for v in row[3:6] if v}
        if settings.text.user_dict is not None:
            words.update(read_user_dict(settings.text.user_dict))
        return sorted(words)

    @classmethod
    def refresh(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
                progress: Progress | None = None) -> tuple["LiveIndex", BuildReport]:
        """Bring the index in step with the store, in place when possible.

        When the current snapshot was built as the current settings would build it, only the
        records changed since it are re-tokenised and re-embedded (an unchanged corpus costs one
        load); otherwise, or when there is no usable index, this is :meth:`build`. The report's
        ``rebuilt_because`` says which happened and why.
        """
        t0 = time.perf_counter()
        try:
            _, manifest = IndexDir(settings.index_root).read_manifest(verify=False)
            reason = rebuild_reason(manifest, settings=settings, model_id=encoder.model_id, dim=encoder.dim,
                                    cache_key=getattr(encoder, "cache_key", encoder.model_id),
                                    user_words=cls._dictionary(settings, store.facets()), records=store.total())
        except IndexNotReady:
            reason = "no index has been built yet"
        except IndexFormatError as exc:
            reason = f"the current index is unusable ({exc.message})"
        if reason is None:
            try:
                idx = cls.open(settings, store, encoder, cache, progress=progress)
            except IndexFormatError as exc:
                reason = f"the current index is unusable ({exc.message})"
            else:
                applied = idx.writes_since_snapshot_  # what open() replayed
                retuned = idx.retune(settings.bm25.k1, settings.bm25.b, settings.bm25.delta)
                snap = idx.snapshot() if applied or retuned else idx.snapshot_path_
                return idx, BuildReport(len(idx.bm25_), idx.embedded_, time.perf_counter() - t0, snap,
                                        idx.vectors_.factory_, applied=applied)
        log.info("building the index from scratch: %s", reason)
        idx, report = cls.build(settings, store, encoder, cache, progress=progress)
        report.rebuilt_because = reason
        report.seconds = time.perf_counter() - t0
        return idx, report

    @classmethod
    def open(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
             *, verify: bool = True, progress: Progress | None = None) -> "LiveIndex":
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
        check_store(snap, manifest, store)
        p = manifest["params"]
        idx.docs_ = idx._make_docs(p["text"]["user_words"], p["text"])
        idx.docs_.title_weight = p["bm25"]["title_weight"]
        idx.docs_.code_weight = p["bm25"]["code_weight"]
        try:
            idx.bm25_ = BM25Index.load(snap / "bm25", k1=p["bm25"]["k1"], b=p["bm25"]["b"],
                                        delta=p["bm25"].get("delta", 0.0))
            idx.vectors_ = VectorIndex.load(snap, dim=model["dim"], factory=p["vectors"]["factory"],
                                            nprobe=settings.vectors.nprobe)
            idx.facets_ = FacetTable.from_json(json.loads((snap / "facets.json").read_text(encoding="utf-8")))
            idx.centering_ = VectorCentering.load(snap, p["vectors"].get("centering"), dim=model["dim"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexFormatError(f"index in {snap} could not be read: {exc}", hint=REBUILD_HINT) from None
        idx.seq_ = manifest["change_seq"]
        idx.snapshot_path_ = snap
        idx.built_at_ = manifest.get("created", "")
        idx.replay(progress)
        return idx

    def retune(self, k1: float, b: float, delta: float) -> bool:
        """Set BM25's query-time parameters; True when they changed (the next snapshot records them)."""
        bm25 = self.bm25_
        if (bm25.k1, bm25.b, bm25.delta) == (k1, b, delta):
            return False
        with self.lock:
            log.info("bm25 scoring changed from k1=%s b=%s delta=%s to k1=%s b=%s delta=%s: applied without a rebuild",
                     bm25.k1, bm25.b, bm25.delta, k1, b, delta)
            bm25.k1, bm25.b, bm25.delta = k1, b, delta
        return True

    def embed(self, texts: list[str], kinds: list[str] | None = None, *, cached: bool = True
              ) -> tuple[np.ndarray, int]:
        """Index-space vectors for embedding texts (encoded, then centred as the index was) and how
        many texts the encoder saw. ``kinds``: each text's record kind (None: free-text queries);
        ``cached=False`` skips the embedding cache (one-off query text)."""
        if cached:
            vecs, n = self.cache.encode(self.encoder, texts)
        else:
            vecs, n = self.encoder.encode(texts), len(texts)
        return self.centering_.transform(vecs, kinds), n

    # -- writes -----------------------------------------------------------------------------
    def _prepare(self, recs: list[Record]) -> tuple[np.ndarray, list[list[str]]]:
        """Vectors and tokens for records: the work that can fail (the encoder), done before storing."""
        vecs, n = self.embed([self.docs_.embedding_text(r) for r in recs], [r.kind for r in recs])
        self.embedded_ += n
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
        return self.write(records)[0]

    def delete(self, record_id: str) -> bool:
        return self.write(deletes=[record_id])[1][0] is not None

    def write(self, upserts: Iterable[Record] = (), deletes: Iterable[str] = ()
              ) -> tuple[list[UpsertResult], list[int | None]]:
        """Upsert and delete in one store transaction (:meth:`RecordStore.write`), then apply both
        to the live index: the store commits all of it or none, and the index follows the store."""
        records = list(upserts)
        with self.lock:
            vecs, tokens = self._prepare(records) if records else (None, [])
            result, gone = self.store.write(records, deletes)
            changed = [i for i, r in enumerate(result) if r.changed]
            if changed:
                self._apply([(result[i].num, records[i]) for i in changed],
                            (vecs[changed], [tokens[i] for i in changed]))
            removed = [n for n in gone if n is not None]
            self._remove(removed)
            self._catch_up(own={result[i].num for i in changed} | set(removed))
            self.writes_since_snapshot_ += len(changed) + len(removed)
        self._maybe_snapshot()
        return result, gone

    def _catch_up(self, own: set[int], progress: Progress | None = None) -> int:
        """Advance ``seq_`` past this process's own changes, applying any another process made
        meanwhile (``caselink index`` run while the server is up) instead of skipping them.
        Returns how many records were re-read."""
        if self.seq_ < self.store.pruned_upto():
            return self._resync()
        changes = self.store.changes_since(self.seq_)
        if not changes:
            return 0
        foreign = sorted({num for _, num, _ in changes if num not in own})
        for start in range(0, len(foreign), BUILD_BATCH):  # bounded memory however long the log
            part = foreign[start:start + BUILD_BATCH]
            present = self.store.get_many(part)
            self._remove([n for n in part if n not in present])
            self._apply(sorted(present.items()))
            if progress:
                progress("apply changes", len(part), len(foreign))
        self.seq_ = changes[-1][0]
        return len(foreign)

    def _resync(self) -> int:
        """Changes this index has not applied were pruned from the log (it fell further behind
        the published snapshots than ``server.change_log_keep`` rows): load the current snapshot,
        which has them, and continue from there. Returns how many records that index holds."""
        log.warning("change log pruned past this index's position (%d < %d): reloading the current snapshot",
                    self.seq_, self.store.pruned_upto())
        fresh = LiveIndex.open(self.settings, self.store, self.encoder, self.cache, verify=False)
        self.docs_, self.bm25_, self.vectors_, self.facets_ = fresh.docs_, fresh.bm25_, fresh.vectors_, fresh.facets_
        self.seq_, self.snapshot_path_, self.built_at_ = fresh.seq_, fresh.snapshot_path_, fresh.built_at_
        return len(self.bm25_)

    def _maybe_snapshot(self) -> None:
        """Snapshot once ``server.persist_every`` writes have accumulated. Called with the index
        lock released: the snapshot takes it only to capture the state."""
        if self.writes_since_snapshot_ < self.settings.server.persist_every:
            return
        try:
            self.snapshot()
        except (OSError, RuntimeError) as exc:
            # The write is committed to the store and applied in memory; a snapshot is only a
            # shortcut for the next start (the change log replays the rest). Failing the
            # caller's write here would report a stored write as lost.
            log.warning("snapshot failed, will retry after %d more writes: %s",
                        self.settings.server.persist_every, exc)
            with self.lock:
                self.writes_since_snapshot_ = 0

    def replay(self, progress: Progress | None = None) -> int:
        """Apply changes logged in the store after this index's sequence number; returns how many
        records they touched (also the way a server picks up another process's writes)."""
        with self.lock:
            n = self._catch_up(own=set(), progress=progress)
            self.writes_since_snapshot_ += n
        return n

    def behind(self) -> int:
        """How many change-log positions the store has past this index's (an upper bound on the
        changes still to apply: a rolled-back write leaves a gap). One indexed query."""
        return max(0, self.store.last_seq() - self.seq_)

    def snapshot(self) -> Path:
        """Write the in-memory state as a new snapshot and make it current.

        The state is captured under the index lock (BM25's big arrays shared, everything else
        copied, FAISS cloned); files are written, fsynced and checksummed after
        the lock is released, so searches and writes wait only for the capture. The file lock
        keeps one snapshot writer at a time, across processes too.
        """
        self.dir.root.mkdir(parents=True, exist_ok=True)
        with open(self.dir.root / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            with self.lock:
                self._catch_up(own=set())  # never claim a change_seq whose changes are not in the files
                state = capture_state(self)
                writes, self.writes_since_snapshot_ = self.writes_since_snapshot_, 0
            tmp = self.dir.new_snapshot()
            try:
                path = self.dir.publish(tmp, write_state(tmp, state))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                with self.lock:
                    self.writes_since_snapshot_ += writes
                raise
        with self.lock:
            self.snapshot_path_ = path
            self.built_at_ = state["created"]
        keep = self.settings.server.change_log_keep
        if keep:
            self.store.prune_changes(state["manifest"]["change_seq"] - keep)
        return path

    def close(self) -> None:
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

    def select_terms(self, tokens: list[str], n: int) -> list[str]:
        """The ``n`` most distinctive of a record's terms, for ranking records related to it.

        With ``text.cjk_unigrams``, a record long enough to need selecting has words and bigrams
        enough; its single CJK characters, which help short questions match, would win places on
        repetition alone (one character recurs across many words) and have the longest postings,
        so they go.
        """
        if self.docs_.tokenizer.cjk_unigrams and len(set(tokens)) > n:
            tokens = [t for t in tokens if not is_cjk_char(t)]
        with self.lock:
            return self.bm25_.select_terms(tokens, n)

    def candidate_facts(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """What the learned ranker reads of candidates besides their scores: facet columns
        (:meth:`FacetTable.columns`), keyword length (``length``) and exact-code sets (``codes``)."""
        with self.lock:
            out = self.facets_.columns(keys)
            out["length"] = self.bm25_.lengths(keys)
            codes = self.facets_.codes
            out["codes"] = [codes.get(int(k), ()) for k in keys]
        return out

    def count(self) -> int:
        return len(self.bm25_) if self.bm25_ is not None else 0
