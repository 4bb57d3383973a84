"""The live index: the service's side of the search-backend seam, kept in step with the record store.

It owns what caselink does whatever engine sits below (indexing/backend.py): the tokeniser and
document builder, the encoder, the embedding cache and the vector centring. It turns records into
:class:`~indexing.backend.Entry` values and hands them to the backend (indexing/backends.py).

Writes go to the store first (the source of truth) and then into the backend under one lock, so a
record is searchable as soon as ``upsert`` returns. The backend persists every ``persist_every``
writes and on close; after a crash the changes logged since its :meth:`applied_seq` are replayed
from the store on open, so no acknowledged write is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from caselink.config import Settings
from caselink.errors import IndexFormatError, IndexNotReady
from indexing.backend import Entry, SearchBackend
from indexing.backends import build_backend, open_backend
from indexing.bm25 import BM25Index, select_terms
from indexing.centering import VectorCentering, blocks_of
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder
from indexing.facets import FacetTable
from indexing.index_dir import REBUILD_HINT, IndexDir
from indexing.live_build import BUILD_BATCH, BuildReport, Progress, StreamingBuild, dictionary
from indexing.records import Record
from indexing.store import RecordStore, UpsertResult
from indexing.store_terms import WriteTx
from indexing.snapshot_state import capture_state
from indexing.staleness import check_store, rebuild_reason
from indexing.tokenize import Tokenizer, is_cjk_char, text_params

# BuildReport, Progress: callers import them here
__all__ = ["BUILD_BATCH", "CODE_RULE_FLOOR", "BuildReport", "LiveIndex", "Progress"]
log = logging.getLogger("caselink.index")
# rank.code_rule_max_share never drops a code held by this many records or fewer: in a small
# history every code is rare enough to name a problem.
CODE_RULE_FLOOR = 20


class LiveIndex:
    """The service's side of the search backend over a :class:`RecordStore`. Create with
    :meth:`build`, :meth:`refresh` or :meth:`open`."""

    def __init__(self, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache):
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.cache = cache
        self.dir = IndexDir(settings.index_root)
        self.lock = threading.RLock()
        self.backend: SearchBackend | None = None
        self.embedded_ = 0  # texts this process sent to the encoder (cache misses)
        self.writes_since_snapshot_ = 0
        self.docs_: DocumentBuilder | None = None
        # the identity until fitted (build) or loaded (open)
        self.centering_ = VectorCentering(blocks_of(encoder), min_records=settings.vectors.center_min_records)

    # -- construction -----------------------------------------------------------------------
    def _make_docs(self, user_words: list[str], text: dict | None = None) -> DocumentBuilder:
        """Tokenisation as configured, or as recorded in a manifest (``text``) for an existing index."""
        tok = Tokenizer(**text_params(text or self.settings.text.model_dump()), user_words=user_words)
        return DocumentBuilder(tok, title_weight=self.settings.bm25.title_weight,
                               code_weight=self.settings.bm25.code_weight)

    @classmethod
    def build(cls, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
              progress: Progress | None = None) -> tuple["LiveIndex", BuildReport]:
        """Index every record in the store from scratch and publish the snapshot atomically: two
        streaming passes over the store (:class:`~indexing.live_build.StreamingBuild`), so peak
        memory is the backend's own structures plus one batch and the training sample."""
        t0 = time.perf_counter()
        idx = cls(settings, store, encoder, cache)
        seq = store.last_seq()  # read first: anything written during the build is replayed later
        facets = store.facets()
        idx.docs_ = docs = idx._make_docs(dictionary(settings, facets))
        run = StreamingBuild(settings, store, encoder, cache, docs, idx.centering_, total=len(facets),
                             progress=progress)
        del facets

        def embed_new(recs: list[Record]) -> tuple[np.ndarray, int]:
            vecs, _ = idx._embed_records(recs)
            n, idx.embedded_ = idx.embedded_, 0
            return vecs, n

        try:
            run.embed_all()
            idx.backend = build_backend(settings, dim=encoder.dim, total=run.done, batches=run.entries(embed_new),
                                        sample=run.sample, seq=seq, sidecar=idx, store=store,
                                        term_total=run.term_total)
        finally:
            run.close()
        idx.embedded_ = run.embedded
        snap = idx.snapshot()
        return idx, BuildReport(run.done, run.embedded, time.perf_counter() - t0, snap, idx.factory)

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
                                    user_words=dictionary(settings, store.facets()), records=store.total())
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
                reindexed = idx.reindex()
                snap = idx.snapshot() if applied or retuned or reindexed else idx.snapshot_path
                return idx, BuildReport(idx.count(), idx.embedded_, time.perf_counter() - t0, snap,
                                        idx.factory, applied=applied)
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
            idx.centering_ = VectorCentering.load(snap, p["vectors"].get("centering"), dim=model["dim"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexFormatError(f"index in {snap} could not be read: {exc}", hint=REBUILD_HINT) from None
        idx.backend = open_backend(settings, snapshot=(snap, manifest), sidecar=idx, store=store)
        idx.replay(progress)
        return idx

    def retune(self, k1: float, b: float, delta: float) -> bool:
        """Set BM25's query-time parameters where the backend scores with them; True when they
        changed (the next snapshot records them)."""
        retune = getattr(self.backend, "retune", None)
        if retune is None or not retune(k1, b, delta):
            return False
        log.info("bm25 scoring changed to k1=%s b=%s delta=%s: applied without a rebuild", k1, b, delta)
        return True

    def reindex(self) -> bool:
        """Bring the backend's vector index to the one configured, in place, where the backend can
        (Milvus: ``backend.dense_index`` / ``dense_nlist``); True when it was rebuilt."""
        reindex = getattr(self.backend, "reindex", None)
        return bool(reindex is not None and reindex())

    def capture(self) -> tuple[dict, Callable[[Path], None]]:
        """What a snapshot keeps of this side (the backend's sidecar, :mod:`indexing.snapshot_state`)."""
        return capture_state(self)

    @property
    def documents(self) -> DocumentBuilder:
        """How this index turns records into keyword terms, codes and embedding text."""
        return self.docs_

    @property
    def centred_kinds(self) -> list[str]:
        """Kinds centred on their own mean (``*``: the corpus mean); empty when not centred."""
        return list(self.centering_.means_)

    def encode(self, texts: list[str]) -> np.ndarray:
        """The encoder's own vectors for ``texts`` (not centred), through the embedding cache."""
        return self.cache.encode(self.encoder, texts)[0]

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
    def _embed_records(self, recs: list[Record]) -> tuple[np.ndarray, list[list[str]]]:
        """Vectors and tokens for records: the work that can fail (the encoder), done before storing."""
        vecs, n = self.embed([self.docs_.embedding_text(r) for r in recs], [r.kind for r in recs])
        self.embedded_ += n
        return vecs, [self.docs_.tokens(r) for r in recs]

    def _entries(self, recs: list[Record], prepared: tuple[np.ndarray, list[list[str]]] | None = None
                 ) -> list[Entry]:
        if not recs:
            return []
        vecs, tokens = prepared if prepared is not None else self._embed_records(recs)
        return [Entry.of(r, vecs[i], tokens[i], self.docs_.codes(r), self.docs_.title_tokens(r))
                for i, r in enumerate(recs)]

    def upsert(self, records: Iterable[Record]) -> list[UpsertResult]:
        """Store and index records; searchable when this returns.

        Embedding happens before the store is touched, so an encoder failure stores nothing and
        the store and the backend never disagree.
        """
        return self.write(records)[0]

    def delete(self, record_id: str) -> bool:
        return self.write(deletes=[record_id])[1][0] is not None

    def write(self, upserts: Iterable[Record] = (), deletes: Iterable[str] = ()
              ) -> tuple[list[UpsertResult], list[int | None]]:
        """Upsert and delete in one store transaction (:meth:`RecordStore.write`), then apply both
        to the backend: the store commits all of it or none, and the backend follows the store."""
        records, deletes = list(upserts), list(deletes)
        if getattr(self.backend, "shared", False):
            return self._write_shared(records, deletes)
        with self.lock:
            vecs, tokens = self._embed_records(records) if records else (None, [])
            result, gone = self.store.write(records, deletes)
            changed = [i for i, r in enumerate(result) if r.changed]
            removed = [rid for rid, num in zip(deletes, gone) if num is not None]
            entries = self._entries([records[i] for i in changed], (vecs[changed], [tokens[i] for i in changed])
                                    ) if changed else []
            # The position moves only once the changes other processes logged meanwhile are in too.
            self.backend.write(entries, removed, seq=self.backend.applied_seq())
            self._catch_up(own={records[i].id for i in changed} | set(removed))
            self.writes_since_snapshot_ += len(changed) + len(removed)
        self._maybe_snapshot()
        return result, gone

    def _write_shared(self, records: list[Record], deletes: list[str]) -> tuple[list[UpsertResult], list[int | None]]:
        """A backend several processes write (Milvus): it is written inside the store's write
        transaction, after anything other writers left unapplied, so every process's writes
        reach it in commit order and commit or roll back with the records."""
        with self.lock:
            vecs, tokens = self._embed_records(records) if records else (None, [])

            def then(tx: WriteTx, result: list[UpsertResult], gone: list[int | None]) -> None:
                changed = [i for i, r in enumerate(result) if r.changed]
                removed = [rid for rid, num in zip(deletes, gone) if num is not None]
                self._follow_shared(tx, own={records[i].id for i in changed} | set(removed))
                entries = self._entries([records[i] for i in changed], (vecs[changed], [tokens[i] for i in changed])
                                        ) if changed else []
                self.backend.write(entries, removed, seq=tx.last_seq(), tx=tx)
                self.writes_since_snapshot_ += len(changed) + len(removed)
            out = self.store.write(records, deletes, then=then)
        self._maybe_snapshot()
        return out

    def _follow_shared(self, tx: WriteTx, own: set[str] = frozenset(), progress: Progress | None = None) -> int:
        """Inside the store's write transaction: rewrite from the store the ids of writes that may
        not have committed (their markers), then apply the changes logged after the backend's
        position that are not this transaction's own (``own``): a process on the local backend,
        or a build that ran meanwhile. Returns how many records were rewritten."""
        seq = self.backend.applied_seq()
        unfinished = self.backend.unfinished()
        redo = {rid for ids in unfinished.values() for rid in ids}
        changes = tx.changes_since(seq)
        if any(rid is None for _, rid in changes):
            raise IndexNotReady("the change log names a record deleted before caselink logged ids",
                                hint="run 'caselink index --rebuild'")
        redo.update(rid for _, rid in changes if rid not in own)
        todo = sorted(redo - set(own))
        for start in range(0, len(todo), BUILD_BATCH):
            part = todo[start:start + BUILD_BATCH]
            present = tx.records(part)
            self.backend.write(self._entries([present[i] for i in part if i in present]),
                               [i for i in part if i not in present], seq=seq, tx=tx)
            if progress:
                progress("apply changes", len(part), len(todo))
        self.backend.finished(list(unfinished))
        if changes:
            self.backend.write(seq=changes[-1][0], tx=tx)
        return len(todo)

    def _catch_up(self, own: set[str], progress: Progress | None = None) -> int:
        """Advance the backend's position past this process's own changes (ids in ``own``),
        applying any another process made meanwhile (``caselink index`` run while the server is
        up) instead of skipping them. Returns how many records were re-read."""
        if getattr(self.backend, "shared", False):
            if self.store.last_seq() <= self.backend.applied_seq() and not self.backend.unfinished():
                return 0  # nothing to do: no write lock taken
            return self.store.transaction(lambda tx: self._follow_shared(tx, own, progress))
        seq = self.backend.applied_seq()
        if seq < self.store.pruned_upto():
            return self._resync()
        changes = self.store.changes_since(seq)
        if not changes:
            return 0
        if any(rid is None for _, _, _, rid in changes):
            return self._rebuild("the change log names a record deleted before caselink logged ids")
        foreign = list(dict.fromkeys(rid for _, _, _, rid in changes if rid not in own))
        for start in range(0, len(foreign), BUILD_BATCH):  # bounded memory however long the log
            part = foreign[start:start + BUILD_BATCH]
            present = self.store.records(part)
            self.backend.write(self._entries([present[i] for i in part if i in present]),
                               [i for i in part if i not in present], seq=seq)
            if progress:
                progress("apply changes", len(part), len(foreign))
        self.backend.write(seq=changes[-1][0])
        return len(foreign)

    def _adopt(self, fresh: "LiveIndex") -> None:
        self.docs_, self.centering_, self.backend = fresh.docs_, fresh.centering_, fresh.backend
        self.backend.sidecar = self

    def _resync(self) -> int:
        """Changes this index has not applied were pruned from the log (it fell further behind
        the published snapshots than ``server.change_log_keep`` rows): load the current snapshot,
        which has them, and continue from there. Returns how many records that index holds."""
        log.warning("change log pruned past this index's position (%d < %d): reloading the current snapshot",
                    self.backend.applied_seq(), self.store.pruned_upto())
        self._adopt(LiveIndex.open(self.settings, self.store, self.encoder, self.cache, verify=False))
        return self.count()

    def _rebuild(self, reason: str) -> int:
        """The change log cannot bring the backend up to date: build it again from the store."""
        log.warning("rebuilding the index from the record store: %s", reason)
        fresh, _ = LiveIndex.build(self.settings, self.store, self.encoder, self.cache)
        self._adopt(fresh)
        return self.count()

    def _maybe_snapshot(self) -> None:
        """Snapshot once ``server.persist_every`` writes have accumulated. Called with the index
        lock released: the backend takes its own lock only to capture the state."""
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
        """Apply changes logged in the store after the backend's position; returns how many
        records they touched (also the way a server picks up another process's writes)."""
        with self.lock:
            n = self._catch_up(own=set(), progress=progress)
            self.writes_since_snapshot_ += n
        return n

    def behind(self) -> int:
        """How many change-log positions the store has past this index's (an upper bound on the
        changes still to apply: a rolled-back write leaves a gap). One indexed query."""
        return max(0, self.store.last_seq() - self.backend.applied_seq())

    def snapshot(self) -> Path | None:
        """Have the backend persist what it holds (for ``local``: a new snapshot folder, written
        while searches and writes go on), then prune the change log behind it."""
        with self.lock:
            self._catch_up(own=set())  # never persist a position whose changes are not applied
            writes, self.writes_since_snapshot_ = self.writes_since_snapshot_, 0
            seq = self.backend.applied_seq()
        try:
            self.backend.persist()
        except BaseException:
            with self.lock:
                self.writes_since_snapshot_ += writes
            raise
        keep = self.settings.server.change_log_keep
        if keep:
            self.store.prune_changes(seq - keep)
        return self.snapshot_path

    def close(self) -> None:
        if self.writes_since_snapshot_:
            self.snapshot()
        self.backend.close()

    # -- reads ------------------------------------------------------------------------------
    def select_terms(self, tokens: list[str], n: int) -> list[str]:
        """The ``n`` most distinctive of a record's terms, for ranking records related to it.

        With ``text.cjk_unigrams``, a record long enough to need selecting has words and bigrams
        enough; its single CJK characters, which help short questions match, would win places on
        repetition alone (one character recurs across many words) and have the longest postings,
        so they go.
        """
        return self.related_terms(tokens, (), max_terms=n, max_share=0.0)[0]

    def related_terms(self, tokens: list[str], codes: Iterable[str], *, max_terms: int,
                      max_share: float) -> tuple[list[str], frozenset[str]]:
        """A record's keyword terms and exact codes for ranking its relatives: :meth:`select_terms`
        of ``tokens`` (all of them when ``max_terms`` is 0), and the ``codes`` held by at most
        ``max_share`` of the records (never fewer than :data:`CODE_RULE_FLOOR`; all when 0) for the
        exact-code rule, a code's records being its keyword term's document frequency. One lookup
        of the document frequencies serves both (under Milvus a store query per related request)."""
        codes = sorted(set(codes))
        if max_terms and self.docs_.tokenizer.cjk_unigrams and len(set(tokens)) > max_terms:
            tokens = [t for t in tokens if not is_cjk_char(t)]
        wanted = list(dict.fromkeys([*(tokens if max_terms else ()), *(codes if max_share > 0 else ())]))
        if not wanted:
            return tokens, frozenset(codes)
        stats = self.backend.term_stats(wanted)
        df = dict(zip(wanted, stats.df.tolist()))
        if max_terms:
            tokens = select_terms(tokens, max_terms, df, stats.n_docs)
        if max_share > 0:
            cap = max(CODE_RULE_FLOOR, max_share * stats.n_docs)
            codes = [c for c in codes if df[c] <= cap]
        return tokens, frozenset(codes)

    def candidate_facts(self, ids: Sequence[str], *, terms: Sequence[str] | None = None,
                        vectors: bool = False) -> dict[str, np.ndarray]:
        """What the learned ranker reads of candidates besides their scores: facet columns
        (:meth:`FacetTable.columns`), keyword length (``length``) and exact-code sets (``codes``);
        with ``terms``, ``title_bm25`` (those terms' BM25L on each title alone); with ``vectors``,
        each candidate's index-space vector (NaN where not known).
        From the backend when it keeps them (``local``: its arrays), else from the stored records
        (the title's BM25L then weighs terms by the candidates' titles alone, not the index's)."""
        facts = getattr(self.backend, "candidate_facts", None)
        if facts is not None:
            return facts(ids, terms=terms, vectors=vectors)
        stored = self.store.records(ids)
        recs = [stored.get(i) for i in ids]
        out: dict[str, np.ndarray] = {c: np.asarray([(getattr(r, c) or "").casefold() if r else "" for r in recs],
                                                    dtype=object) for c in ("kind", "product", "model", "module", "status")}
        out["created"] = np.asarray([FacetTable.day(r.created) if r else -1 for r in recs], dtype=np.int32)
        out["length"] = np.asarray([len(self.docs_.tokens(r)) if r else 0 for r in recs], dtype=np.float32)
        out["codes"] = [tuple(sorted(self.docs_.codes(r))) if r else () for r in recs]
        if terms is not None:
            b = self.settings.bm25
            titles = BM25Index(k1=b.k1, b=b.b, delta=b.delta)
            titles.add(list(range(len(recs))), [self.docs_.title_tokens(r) if r else [] for r in recs])
            keys, scores = titles.score(list(terms), normalize=True)
            out["title_bm25"] = np.zeros(len(recs), dtype=np.float32)
            out["title_bm25"][keys] = scores
        if vectors:
            out["vectors"] = np.full((len(recs), self.encoder.dim), np.nan, dtype=np.float32)
        return out

    def count(self) -> int:
        return self.backend.count() if self.backend is not None else 0

    @property
    def snapshot_path(self) -> Path | None:
        snap = self.backend.describe().get("snapshot") if self.backend is not None else None
        return Path(snap) if snap else None

    @property
    def factory(self) -> str:
        """The vector index type (``IDMap2,Flat``, ``IVF...``), or the engine's name when it does
        not say."""
        return self.backend.describe().get("factory", self.backend.name)
