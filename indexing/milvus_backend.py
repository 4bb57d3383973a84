"""The ``milvus`` search backend: one Milvus collection per index, reached through pymilvus.

The same ``MilvusClient(uri=..., token=...)`` talks to a Milvus Lite server, a standalone Milvus
or a distributed cluster. What lives where:

- ``<collection>``: one entity per record: its dense vector, its BM25L term weights as a sparse
  vector, the filter fields and what re-weighing needs (fields in :mod:`indexing.milvus_schema`).
- ``<collection>_stats``: one meta entity (change-log position applied, BM25 parameters of the
  stored weights) and, while a write is under way, one marker per write naming the ids it is
  changing (:mod:`indexing.milvus_collections` keeps both, and the connection).
- In the **record store** (:mod:`indexing.store_terms`): each record's distinct term ids and
  length, the document frequencies and the corpus totals (N, total length, the mean length the
  stored weights use). Every caselink process reads them from there, so every replica scores a
  query alike.

Scoring (keyword = BM25L as a share of the query's own score, as :meth:`BM25Index.score` with
``normalize``): a record stores w(t) = (k1+1)·c/(k1+c), c = tf/(1-b+b·dl/avgdl) + delta; a
query sends q(t) = qtf·idf(t)/S with idf from the store's df and S = Σ qtf·idf·(k1+1) over all its
terms, so the inner product Milvus computes is exactly caselink's normalised BM25L. Milvus's
built-in BM25 function is not used: it tokenises and scores otherwise. A term's id is 32 bits of
its BLAKE2b hash (Milvus sparse dimensions are uint32), so replicas agree without a shared
vocabulary; two terms sharing an id (about 120 pairs among a million distinct terms) count as
one term.

Several writers. Milvus has no atomic increment and no conditional write, so a write here joins
the record store's write transaction (:class:`~indexing.store_terms.WriteTx`, the store's write
lock held): the record rows, their change-log rows, the document frequencies (``df = df + d`` in
SQL) and the Milvus entities are written in one critical section, and commit together. Writers
from any number of processes are therefore applied to Milvus in commit order; none overwrites a
newer version with an older one, and the statistics always equal a recount. Queries read df and N
from the store as committed, so a write acknowledged by one replica is scored by every replica.

Document weights bake in the mean document length avgdl as it was when the record was written.
Writers one after another each use the store's ``avgdl`` (the mean the other weights use), so
all weights share one avgdl until the true mean drifts by more than ``REWEIGH_DRIFT`` (or
k1/b/delta change); then the write that moved it (or :meth:`open`) re-weighs every record from its
stored tf (recovered from its weights with the parameters stored beside them) and sets the new
mean. So however writers interleave, a keyword score is within that drift (1%) of ``local``'s
between two re-weighings, and exactly ``local``'s after a build or a re-weigh.

Consistency: every call is made at the configured level; ``Strong`` (the default) makes a write
searchable by every process when ``write`` returns. If a write fails between its Milvus calls and
the store's commit (or the process dies there), its marker stays: the next writer, under the same
lock, rewrites those ids from the store (:meth:`unfinished`), so Milvus never keeps a version
the store rolled back.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from caselink.errors import IndexFormatError
from indexing.backend import TIE_SLACK, Entry, Hits, TermStats, settle_ties
from indexing.facets import Filters, attribute_items
from indexing.index_dir import REBUILD_HINT, IndexDir, merge_manifest
from indexing.milvus_collections import BATCH, FORMAT, MilvusCollections
from indexing.milvus_schema import ATTRIBUTES, BM25LWeights, day, filter_expression, term_id
from indexing.records import is_closed_status
from indexing.store import RecordStore
from indexing.store_terms import Corpus, WriteTx

__all__ = ["MilvusBackend"]

log = logging.getLogger("caselink.milvus")
REWEIGH_DRIFT = 0.01  # re-weigh every record when the mean length moved more than 1% from the stored weights'
_MAX_TOPK = 16384  # Milvus's limit on one search's results
_SEARCH_THREADS = 8  # keyword searches under way at once for search_keyword_soon (one per request being ranked)


def _spec(dense: dict) -> str:
    """A dense index for people: 'FLAT', 'IVF_FLAT (nlist 1024)'."""
    return dense["index"] + (f" (nlist {dense['nlist']})" if "nlist" in dense else "")


def _chunks(items: Sequence, n: int = BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), n):
        yield items[start:start + n]


class MilvusBackend:
    """Caselink's dense vectors, keyword weights and filter fields in Milvus. Create with :meth:`open`.

    Parameters
    ----------
    uri, token : where Milvus is and the credentials (``token`` is never logged or described).
    collection : the records' collection; ``<collection>_stats`` holds its meta and write markers.
    dim : the dense vectors' dimension (the encoder's).
    store : the record store holding the keyword statistics (:mod:`indexing.store_terms`).
    k1, b, delta : BM25L parameters of the stored weights.
    consistency : Milvus consistency level of every read ("Strong" = read-your-writes).
    dense_index, dense_nlist : the dense vectors' index: type, and lists for IVF_FLAT (a new
        collection is built with it; :meth:`reindex` brings an existing one to it).
    dense_nprobe : IVF_FLAT lists searched per query.
    timeout : seconds per Milvus call.
    """

    name = "milvus"
    shared = True  # several processes write one collection: writes join the store's write transaction

    def __init__(self, *, uri: str, token: str = "", collection: str, dim: int, store: RecordStore,
                 k1: float = 1.2, b: float = 0.75, delta: float = 0.5, consistency: str = "Strong",
                 dense_index: str = "FLAT", dense_nlist: int = 1024, dense_nprobe: int = 64, timeout: float = 30.0,
                 root: Path | None = None, sidecar=None, owns_store: bool = False):
        self.milvus = MilvusCollections(uri=uri, token=token, collection=collection, dim=dim, consistency=consistency,
                                        dense_index=dense_index, dense_nlist=dense_nlist, timeout=timeout)
        self.collection = collection
        self.dim = dim
        self.store = store
        self._owns_store = owns_store
        self.k1, self.b, self.delta = k1, b, delta
        self.weights = BM25LWeights(k1=k1, b=b, delta=delta)
        self.consistency = consistency
        self.dense_nprobe = dense_nprobe
        self.dir = IndexDir(root) if root is not None else None  # where the service's side is snapshotted
        self.sidecar = sidecar
        self.snapshot_: Path | None = None
        self.meta_: dict = {}
        self.reweigh_on_write_ = True
        self.lock_ = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # search_keyword_soon's threads, started on first use
        self._pool_lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, dim: int, *, sidecar=None, store: RecordStore | None = None) -> "MilvusBackend":
        """The backend ``settings.backend`` and ``settings.bm25`` describe (not connected yet);
        ``store`` holds the keyword statistics (None: the settings' store, opened here)."""
        cfg, bm = settings.backend, settings.bm25
        owns = store is None
        if owns:
            store = RecordStore(settings.store_url).open()
        return cls(uri=cfg.uri, token=cfg.secret(), collection=cfg.collection, dim=dim, store=store, k1=bm.k1,
                   b=bm.b, delta=bm.delta, consistency=cfg.consistency, dense_index=cfg.dense_index,
                   dense_nlist=cfg.dense_nlist, dense_nprobe=cfg.dense_nprobe, timeout=cfg.timeout,
                   root=settings.index_root, sidecar=sidecar, owns_store=owns)

    @classmethod
    def build(cls, settings, *, dim: int, total: int, batches: Iterable[Sequence[Entry]], sample: np.ndarray = None,
              seq: int, sidecar=None, store: RecordStore | None = None,
              term_total: int | None = None) -> "MilvusBackend":
        """Drop and recreate the collection, forget the store's term statistics, and write
        ``batches`` (``sample`` serves engines that train an index first; Milvus needs none).

        ``term_total``: the summed number of terms of the ``total`` entries, counted beforehand
        (:meth:`indexing.live.LiveIndex.build` does in its first pass). Then every row is written
        once, weighed with the final mean length ``term_total / total``. Without it, or when the
        entries differ from those counted (records written between the two passes), the rows are
        weighed with the first batch's mean and re-weighed once at the end, each written twice.
        Either way a fresh build scores exactly as ``local`` does.
        """
        backend = cls.open(settings, dim, fresh=True, sidecar=sidecar, store=store)
        backend.reweigh_on_write_ = False  # once at the end, not after every batch
        if term_total and total:
            # Counting first (one more tokenisation, about 1.4 ms a record) instead of writing
            # the dense side first and the keyword weights later with upsert(partial_update=True)
            # (pymilvus 3.0.2 has it): a partial update is still a second write of every entity,
            # which is what made a 10k build 188 s, 90 of them the second write.
            mean = term_total / total
            backend.store.transaction(lambda tx: tx.set_avgdl(mean))
        for batch in batches:
            backend.write(batch, seq=0)
        backend.store.transaction(lambda tx: backend._finish_build(tx, seq))
        backend.reweigh_on_write_ = True
        return backend

    def _finish_build(self, tx: WriteTx, seq: int) -> None:
        with self.lock_, self.milvus.calls("write"):
            self.meta_ = self.milvus.read_meta()
            self.meta_["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.meta_["applied_seq"] = max(int(self.meta_["applied_seq"]), seq)
            self.milvus.save_meta(self.meta_)
        c = tx.corpus()
        if c.n and c.mean != c.avgdl:  # the mean counted beforehand (or the first batch's) was not the final one
            self._reweigh(tx)

    @classmethod
    def open(cls, settings, dim: int, *, fresh: bool = False, sidecar=None,
             store: RecordStore | None = None) -> "MilvusBackend":
        """Connect, create the collections when missing (``fresh``: drop and recreate them, for a
        build from scratch), load them, and bring the store's statistics and the weights in step."""
        backend = cls.from_settings(settings, dim, sidecar=sidecar, store=store)
        try:
            backend.connect(fresh=fresh)
        except BaseException:
            backend.close()
            raise
        return backend

    @classmethod
    def load(cls, settings, snap: Path, manifest: dict, *, sidecar=None,
             store: RecordStore | None = None) -> "MilvusBackend":
        """The collection a snapshot's manifest names (the snapshot holds the service's side only)."""
        named = manifest.get("milvus", {})
        if manifest.get("backend") != "milvus" or named.get("collection") != settings.backend.collection:
            raise IndexFormatError(
                f"the index in {snap} was built on backend {manifest.get('backend', 'local')} "
                f"{named.get('collection', '')}, the settings name milvus collection '{settings.backend.collection}'",
                hint=REBUILD_HINT)
        backend = cls.open(settings, int(named["dim"]), sidecar=sidecar, store=store)
        backend.snapshot_ = snap
        return backend

    def connect(self, *, fresh: bool = False) -> None:
        self.meta_ = self.milvus.connect(fresh=fresh, meta={"format": FORMAT, "applied_seq": 0,
                                                            "params": self.weights.params, "fresh": True,
                                                            "dense": self.milvus.dense})
        self.store.transaction(self._reconcile)
        if self.milvus.dense_built != self.milvus.dense:
            log.warning("Milvus collection %s has the dense index %s, the settings ask for %s: searched as it is "
                        "until 'caselink index' rebuilds it in place", self.collection,
                        _spec(self.milvus.dense_built), _spec(self.milvus.dense))

    def reindex(self) -> bool:
        """Rebuild the dense index in place when it is not the one configured (type or lists); the
        records, vectors and keyword weights stay. True when it was rebuilt."""
        if self.milvus.dense_built == self.milvus.dense:
            return False
        log.info("rebuilding the dense index of Milvus collection %s in place: %s -> %s (%d records)",
                 self.collection, _spec(self.milvus.dense_built), _spec(self.milvus.dense), self.count())
        t0 = time.perf_counter()
        with self.lock_:
            self.meta_ = self.milvus.rebuild_dense_index()
        log.info("dense index rebuilt in %.1f s", time.perf_counter() - t0)
        return True

    def _reconcile(self, tx: WriteTx) -> None:
        """Under the store's write lock: a new collection starts the statistics afresh; one whose
        records the statistics do not count (a collection of format 1, or a store that lost them)
        is counted into the store from Milvus; drifted weights are re-weighed."""
        with self.lock_, self.milvus.calls("open"):
            self.meta_ = m = self.milvus.read_meta()
            if m.pop("fresh", False):
                tx.reset_terms()
            elif m.get("format", 1) < FORMAT or tx.corpus().n != self.milvus.count():
                log.warning("counting the records of Milvus collection %s into the record store's term statistics",
                            self.collection)
                self._recount(tx)
            m["format"] = FORMAT
            self.milvus.save_meta(m)
        if self._drifted(tx.corpus()):
            self._reweigh(tx)

    def unfinished(self) -> dict[int, list[str]]:
        """Writes that changed Milvus but may not have committed in the store (a failure or a crash
        between the two): marker key -> the ids they touched. Call under the store's write lock."""
        return self.milvus.markers()

    def finished(self, keys: Sequence[int]) -> None:
        """Drop the markers of writes whose ids have been rewritten from the store."""
        if keys:
            self.milvus.unmark(keys)

    def _drifted(self, c: Corpus) -> bool:
        if not c.n:
            return False
        moved = abs(c.mean - c.avgdl) > REWEIGH_DRIFT * c.avgdl
        return moved or self.meta_.get("params", self.weights.params) != self.weights.params

    # -- writes -------------------------------------------------------------------------------
    def _row(self, e: Entry, counts: Counter, avgdl: float) -> dict:
        dl = float(sum(counts.values()))
        return {"id": e.id, "vec": np.asarray(e.vector, dtype=np.float32).tolist(),
                "kw": self.weights.document(counts, dl, avgdl), "kind": e.kind.casefold(),
                "product": e.product.casefold(), "model": e.model.casefold(), "module": e.module.casefold(),
                "status": e.status.casefold(), "closed": is_closed_status(e.status), "created": day(e.created),
                "codes": "\n".join(e.codes), ATTRIBUTES: dict(attribute_items(e)),
                "dl": dl, "aw": avgdl, "bm": self.weights.params}

    def write(self, upserts: Sequence[Entry] = (), deletes: Collection[str] = (), *, seq: int,
              tx: WriteTx | None = None) -> None:
        """Drop ``deletes`` and index ``upserts`` (in that order, as ``local`` does: an id in both
        is indexed); idempotent. Inside ``tx``, the store's open write transaction (the service's
        record write), or else in a store transaction of its own. Searchable by every process
        when the transaction has committed (Strong consistency)."""
        if tx is None:
            return self.store.transaction(lambda t: self.write(upserts, deletes, seq=seq, tx=t))
        entries = list({e.id: e for e in upserts}.values())  # the last entry per id wins
        gone = sorted(set(deletes) - {e.id for e in entries})
        client = self.milvus.client
        with self.lock_, self.milvus.calls("write"):
            self.meta_ = m = self.milvus.read_meta()  # another process may have moved it
            if entries or gone:
                marker = self.milvus.mark([e.id for e in entries] + gone)
                tx.after_commit.append(lambda: self.milvus.unmark([marker]))
                counts = [BM25LWeights.counts(e.terms) for e in entries]
                corpus = tx.apply_terms([(e.id, float(sum(c.values())), list(c)) for e, c in zip(entries, counts)],
                                        gone)
                avgdl = corpus.avgdl
                if not avgdl and corpus.n:  # the first records set the mean length the weights use
                    avgdl = corpus.mean
                    tx.set_avgdl(avgdl)
                    m["params"] = self.weights.params
                rows = [self._row(e, c, avgdl) for e, c in zip(entries, counts)]
                for part in _chunks(rows):
                    client.upsert(self.collection, list(part))
                for part in _chunks(gone):
                    client.delete(self.collection, ids=list(part))
            if seq > m["applied_seq"] or entries or gone:
                m["applied_seq"] = max(int(m["applied_seq"]), seq)
                self.milvus.save_meta(m)
        if self.reweigh_on_write_ and (entries or gone) and self._drifted(tx.corpus()):
            self._reweigh(tx)

    def _recount(self, tx: WriteTx) -> None:
        """The store's term statistics counted again from the records in Milvus (their weights'
        keys are their distinct terms, ``dl`` their length)."""
        tx.reset_terms()
        avgdl = 0.0
        for batch in self.milvus.scan(["id", "kw", "dl", "aw"]):
            tx.apply_terms([(r["id"], float(r["dl"]), [int(k) for k in r["kw"]]) for r in batch])
            avgdl = avgdl or float(batch[0]["aw"])
        tx.set_avgdl(avgdl or tx.corpus().mean)

    def _reweigh(self, tx: WriteTx) -> None:
        """Recompute every record's weights with today's mean length and BM25 parameters."""
        with self.lock_, self.milvus.calls("re-weigh keyword terms"):
            c = tx.corpus()
            avgdl = c.mean
            log.info("re-weighing %d records in Milvus collection %s (mean length %.1f -> %.1f, params %s -> %s)",
                     c.n, self.collection, c.avgdl, avgdl, self.meta_.get("params"), self.weights.params)
            for batch in self.milvus.scan(["*"]):
                for row in batch:
                    tf = BM25LWeights.tf_of(row["kw"], float(row["dl"]), float(row["aw"]), row["bm"])
                    row["kw"] = self.weights.document(tf, float(row["dl"]), avgdl)
                    row["aw"], row["bm"] = avgdl, self.weights.params
                self.milvus.client.upsert(self.collection, batch)
            tx.set_avgdl(avgdl)
            self.meta_ = self.milvus.read_meta()
            self.meta_["params"] = self.weights.params
            self.milvus.save_meta(self.meta_)

    # -- reads --------------------------------------------------------------------------------
    def _search(self, field: str, data, k: int, filters: Filters | None, exclude: Collection[str],
                params: dict) -> Hits:
        k = min(int(k), _MAX_TOPK)
        if k <= 0:
            return Hits([], np.zeros(0, dtype=np.float32), [])
        with self.milvus.calls("search"):
            res = self.milvus.client.search(self.collection, data=[data], anns_field=field,
                                      limit=min(k + TIE_SLACK, _MAX_TOPK),
                                      filter=filter_expression(filters, exclude), output_fields=["codes"],
                                      search_params={"metric_type": "IP", "params": params},
                                      consistency_level=self.consistency)[0]
        scores = np.asarray([h["distance"] for h in res], dtype=np.float32)
        if field == "kw":  # an exact sparse search may pad with records sharing no term
            res = [h for h, s in zip(res, scores.tolist()) if s > 0]
            scores = scores[scores > 0]
        order, scores = settle_ties([h["id"] for h in res], scores, k)
        hits = [res[i] for i in order.tolist()]
        return Hits([h["id"] for h in hits], scores,
                    [tuple(h["entity"]["codes"].split("\n")) if h["entity"]["codes"] else () for h in hits])

    def search_dense(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                     exclude: Collection[str] = ()) -> Hits:
        dense = self.milvus.dense_built
        if dense["index"] == "HNSW":
            params = {"ef": max(int(k) + TIE_SLACK, 64)}  # ef >= limit
        elif dense["index"] == "IVF_FLAT":
            params = {"nprobe": min(self.dense_nprobe, dense["nlist"])}
        else:
            params = {}
        return self._search("vec", np.asarray(vector, dtype=np.float32).ravel().tolist(), k, filters, exclude,
                            params)

    def _query_weights(self, terms: Sequence[str]) -> dict[int, float]:
        qtf = BM25LWeights.counts(terms)
        if not qtf:
            return {}
        df, corpus = self.store.term_stats(list(qtf))  # as committed: every replica's writes included
        return self.weights.query(qtf, df, corpus.n)

    def search_keyword(self, terms: Sequence[str], k: int, filters: Filters | None = None,
                       exclude: Collection[str] = ()) -> Hits:
        q = self._query_weights(terms)
        if not q:
            return Hits([], np.zeros(0, dtype=np.float32), [])
        return self._search("kw", q, k, filters, exclude, {})

    def search_keyword_soon(self, terms: Sequence[str], k: int, filters: Filters | None = None,
                            exclude: Collection[str] = ()) -> "Future[Hits]":
        """:meth:`search_keyword` on a thread of this backend's, as a future: the caller encodes the
        query and searches the dense side while Milvus answers this one (each side is a round trip
        to another process, so the two overlap instead of adding up). ``result()`` gives the same
        :class:`Hits`, or raises what :meth:`search_keyword` would."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_SEARCH_THREADS, thread_name_prefix="milvus-keyword")
            pool = self._pool
        return pool.submit(self.search_keyword, list(terms), k, filters, frozenset(exclude))

    def score_keyword(self, terms: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.float32)
        q = self._query_weights(terms)
        if not q or not len(ids):
            return out
        kw = {}
        with self.milvus.calls("read records"):
            for part in _chunks(list(dict.fromkeys(ids))):
                for row in self.milvus.client.get(self.collection, ids=list(part), output_fields=["kw"]):
                    kw[row["id"]] = row["kw"]
        for i, rid in enumerate(ids):
            w = kw.get(rid)
            if w:
                out[i] = sum(qw * w.get(key, 0.0) for key, qw in q.items())
        return out

    def term_stats(self, terms: Sequence[str]) -> TermStats:
        keys = [term_id(t) for t in terms]
        df, corpus = self.store.term_stats(keys)
        return TermStats(np.asarray([df.get(k, 0) for k in keys], dtype=np.int64), corpus.n)

    def admits(self, ids: Collection[str], filters: Filters | None = None,
               exclude: Collection[str] = ()) -> set[str]:
        wanted = [i for i in dict.fromkeys(ids) if i not in set(exclude)]
        out: set[str] = set()
        with self.milvus.calls("filter records"):
            for part in _chunks(wanted):
                rows = self.milvus.client.query(self.collection, filter=filter_expression(filters, (), ids=part),
                                          output_fields=["id"], consistency_level=self.consistency)
                out.update(r["id"] for r in rows)
        return out

    def count(self) -> int:
        with self.milvus.calls("count records"):
            return self.milvus.count()

    def applied_seq(self) -> int:
        """The change-log position this collection holds, read from Milvus (another process may
        have written since)."""
        with self.lock_, self.milvus.calls("read its change-log position"):
            self.meta_ = self.milvus.read_meta()
            return int(self.meta_["applied_seq"])

    def describe(self) -> dict:
        import pymilvus

        m = self.meta_
        _, corpus = self.store.term_stats(())
        return {"backend": "milvus", "factory": self.factory, "built_at": m.get("built_at", ""),
                "uri": self.milvus.safe_uri(), "collection": self.collection,
                "consistency": self.consistency, "dense_index": _spec(self.milvus.dense_built),
                "records": self.count(),
                "applied_seq": int(m.get("applied_seq", 0)), "mean_length": round(corpus.avgdl, 3),
                "bm25": {"k1": self.k1, "b": self.b, "delta": self.delta}, "pymilvus": pymilvus.__version__}

    @property
    def factory(self) -> str:
        """The dense index as the index manifest and stats name it: ``milvus:<type>``."""
        return f"milvus:{self.milvus.dense_built['index']}"

    def persist(self) -> None:
        """Flush both collections (sealed segments, durable in Milvus's own storage) and publish a snapshot of
        the service's side (tokeniser, model, centring: the sidecar) naming this collection and
        the change-log position it holds."""
        self.milvus.flush()
        if self.dir is None:
            return
        self.dir.root.mkdir(parents=True, exist_ok=True)
        with open(self.dir.root / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            with self.lock_:
                extra, write_extra = self.sidecar.capture() if self.sidecar is not None else ({}, None)
                own = self._manifest()
            tmp = self.dir.new_snapshot()
            try:
                if write_extra is not None:
                    write_extra(tmp)
                self.snapshot_ = self.dir.publish(tmp, merge_manifest(extra, own))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def _manifest(self) -> dict:
        m = self.meta_
        return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "change_seq": int(m["applied_seq"]),
                "backend": "milvus",
                "milvus": {"collection": self.collection, "uri": self.milvus.safe_uri(), "dim": self.dim},
                "counts": {"records": self.milvus.count()},
                "params": {"bm25": {"k1": self.k1, "b": self.b, "delta": self.delta},
                           "vectors": {"factory": self.factory}}}

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # searches under way finish before their client closes
        self.milvus.close()
        if self._owns_store:
            self.store.close()
