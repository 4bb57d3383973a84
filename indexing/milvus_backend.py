"""The ``milvus`` search backend: one Milvus collection per index, reached through pymilvus.

The same ``MilvusClient(uri=..., token=...)`` talks to a Milvus Lite server, a standalone Milvus
or a distributed cluster. What lives where:

- ``<collection>``: one entity per record. ``id`` (primary key), ``vec`` (FLOAT_VECTOR, IP: the
  index-space vectors are unit length, so IP = cosine), ``kw`` (SPARSE_FLOAT_VECTOR, IP: the
  record's BM25L term weights), the filter fields ``kind``/``product``/``model``/``module``/
  ``status`` (case-folded, so equality is case-insensitive as in ``local``), ``closed`` (status is
  closed-like, for ``open_only``), ``created`` (days since 1970, -1 when unknown), ``codes``
  (canonical codes joined by newlines), ``attributes`` (JSON: the record's own fields, values
  case-folded, filtered as ``attributes["customer"] == "acme"`` with key and values quoted), and what re-weighing needs: ``dl`` (document length),
  ``aw`` and ``bm`` (the mean length and the k1/b/delta the weights were computed with).
- ``<collection>_stats``: one entity per term (key = the term's id, ``df`` = how many records hold
  it) and one meta entity (key -1): change-log position applied, record count, total length,
  the mean length new weights use, BM25 parameters. Every caselink process reads document
  frequencies from here, so every replica scores a query alike.

Scoring (keyword = BM25L as a share of the query's own score, as :meth:`BM25Index.score` with
``normalize``): a record stores w(t) = (k1+1)·c/(k1+c), c = tf/(1-b+b·dl/avgdl) + delta; a
query sends q(t) = qtf·idf(t)/S with idf from the shared df and S = Σ qtf·idf·(k1+1) over all its
terms, so the inner product Milvus computes is exactly caselink's normalised BM25L. Milvus's
built-in BM25 function is not used: it tokenises and scores otherwise. A term's id is 32 bits of
its BLAKE2b hash (Milvus sparse dimensions are uint32), so replicas agree without a shared
vocabulary; two terms sharing an id (about 120 pairs among a million distinct terms) count as
one term.

Document weights bake in the mean document length; when it drifts by more than
``REWEIGH_DRIFT`` (or k1/b/delta change), the write that moved it (or :meth:`open`) re-weighs
every record from its stored tf (recovered from its weights with the parameters stored beside
them), so between two re-weighings a keyword score is within that drift of ``local``'s.

Consistency: every call is made at the configured level; ``Strong`` (the default) makes a write
searchable by every process when ``write`` returns. Writes from one process at a time per
collection (the service's write lock): df updates are read-modify-write, which Milvus cannot make
atomic. A crash in the middle of a write leaves the meta marked ``pending``; the next open
recounts the statistics from the records, and the service replays the change log from
``applied_seq``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from caselink.errors import IndexFormatError, IndexNotReady
from indexing.backend import Entry, Hits, TermStats
from indexing.facets import Filters
from indexing.index_dir import REBUILD_HINT, IndexDir
from indexing.facets import attribute_items
from indexing.milvus_schema import ATTRIBUTES, BM25LWeights, create_collections, day, filter_expression, term_id
from indexing.records import is_closed_status

__all__ = ["MilvusBackend"]

log = logging.getLogger("caselink.milvus")
_META_KEY = -1
REWEIGH_DRIFT = 0.01  # re-weigh every record when the mean length moved more than 1% from the stored weights'
_BATCH = 1000  # entities per upsert / ids per "in" expression: well under gRPC's message limit
_MAX_TOPK = 16384  # Milvus's limit on one search's results


def _chunks(items: Sequence, n: int = _BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), n):
        yield items[start:start + n]


class MilvusBackend:
    """Caselink's dense vectors, keyword weights and filter fields in Milvus. Create with :meth:`open`.

    Parameters
    ----------
    uri, token : where Milvus is and the credentials (``token`` is never logged or described).
    collection : the records' collection; ``<collection>_stats`` holds term statistics.
    dim : the dense vectors' dimension (the encoder's).
    k1, b, delta : BM25L parameters of the stored weights.
    consistency : Milvus consistency level of every read ("Strong" = read-your-writes).
    dense_index : Milvus index type on the dense vectors.
    timeout : seconds per Milvus call.
    """

    name = "milvus"

    def __init__(self, *, uri: str, token: str = "", collection: str, dim: int, k1: float = 1.2,
                 b: float = 0.75, delta: float = 0.5, consistency: str = "Strong", dense_index: str = "FLAT",
                 timeout: float = 30.0, root: Path | None = None, sidecar=None):
        self.uri = uri
        self._token = token
        self.collection = collection
        self.stats_collection = f"{collection}_stats"
        self.dim = dim
        self.k1, self.b, self.delta = k1, b, delta
        self.weights = BM25LWeights(k1=k1, b=b, delta=delta)
        self.consistency = consistency
        self.dense_index = dense_index
        self.timeout = timeout
        self.dir = IndexDir(root) if root is not None else None  # where the service's side is snapshotted
        self.sidecar = sidecar
        self.snapshot_: Path | None = None
        self.client_ = None
        self.meta_: dict = {}
        self.reweigh_on_write_ = True
        self.lock_ = threading.Lock()

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, dim: int, *, sidecar=None) -> "MilvusBackend":
        """The backend ``settings.backend`` and ``settings.bm25`` describe (not connected yet)."""
        cfg, bm = settings.backend, settings.bm25
        return cls(uri=cfg.uri, token=cfg.secret(), collection=cfg.collection, dim=dim, k1=bm.k1, b=bm.b,
                   delta=bm.delta, consistency=cfg.consistency, dense_index=cfg.dense_index, timeout=cfg.timeout,
                   root=settings.index_root, sidecar=sidecar)

    @classmethod
    def build(cls, settings, *, dim: int, total: int, batches: Iterable[Sequence[Entry]], sample: np.ndarray = None,
              seq: int, sidecar=None) -> "MilvusBackend":
        """Drop and recreate the collections and write ``batches`` into them (``total`` and
        ``sample`` serve engines that size or train an index first; Milvus needs neither). The
        weights are then computed once more with the final mean document length, so a fresh
        build scores exactly as ``local`` does."""
        backend = cls.open(settings, dim, fresh=True, sidecar=sidecar)
        backend.reweigh_on_write_ = False  # once at the end, not after every batch
        for batch in batches:
            backend.write(batch, seq=0)
        backend.write(seq=seq)
        with backend.lock_, backend._calls("write"):
            backend.meta_["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            backend._save_meta()
        m = backend.meta_
        if m["n"] and abs(m["total_len"] / m["n"] - m["avgdl"]) > 1e-6 * m["avgdl"]:
            backend._reweigh()
        backend.reweigh_on_write_ = True
        return backend

    @classmethod
    def open(cls, settings, dim: int, *, fresh: bool = False, sidecar=None) -> "MilvusBackend":
        """Connect, create the collections when missing (``fresh``: drop and recreate them, for a
        build from scratch), load them, and repair what a crash or a change of BM25 parameters
        left behind."""
        backend = cls.from_settings(settings, dim, sidecar=sidecar)
        backend.connect(fresh=fresh)
        return backend

    @classmethod
    def load(cls, settings, snap: Path, manifest: dict, *, sidecar=None) -> "MilvusBackend":
        """The collection a snapshot's manifest names (the snapshot holds the service's side only)."""
        named = manifest.get("milvus", {})
        if manifest.get("backend") != "milvus" or named.get("collection") != settings.backend.collection:
            raise IndexFormatError(
                f"the index in {snap} was built on backend {manifest.get('backend', 'local')} "
                f"{named.get('collection', '')}, the settings name milvus collection '{settings.backend.collection}'",
                hint=REBUILD_HINT)
        backend = cls.open(settings, int(named["dim"]), sidecar=sidecar)
        backend.snapshot_ = snap
        return backend

    def connect(self, *, fresh: bool = False) -> None:
        from pymilvus import MilvusClient

        with self._calls("connect"):
            # No keepalive pings on an idle channel: Milvus Lite's gRPC server (Python grpc defaults)
            # answers them with GOAWAY "too_many_pings" after a few; calls still ping while they run.
            # A dedicated channel: pymilvus shares one per address and token, whatever its options.
            self.client_ = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout, dedicated=True,
                                        grpc_options={"grpc.keepalive_permit_without_calls": 0})
            if fresh:
                for name in (self.collection, self.stats_collection):
                    if self.client_.has_collection(name):
                        self.client_.drop_collection(name)
            if not self.client_.has_collection(self.collection):
                create_collections(self.client_, self.collection, self.stats_collection, dim=self.dim,
                                   dense_index=self.dense_index, consistency=self.consistency)
                self.meta_ = {"format": 1, "applied_seq": 0, "n": 0, "total_len": 0.0, "avgdl": 0.0,
                              "pending": False}
                self._save_meta()
            self._check_dim()
            for name in (self.collection, self.stats_collection):
                self.client_.load_collection(name)  # a reopened collection is not searchable until loaded
            self.meta_ = self._read_meta()
        if self.meta_.get("pending"):
            log.warning("a write to Milvus collection %s was interrupted: recounting its term statistics",
                        self.collection)
            self._recount()
        if self._drifted():
            self._reweigh()

    def _check_dim(self) -> None:
        fields = self.client_.describe_collection(self.collection)["fields"]
        if not any(f["name"] == ATTRIBUTES for f in fields):
            raise IndexFormatError(
                f"Milvus collection '{self.collection}' was created before records had attributes",
                hint="run 'caselink index --rebuild' to rebuild it from the record store")
        dim = next((int(f["params"]["dim"]) for f in fields if f["name"] == "vec"), None)
        if dim != self.dim:
            raise IndexFormatError(
                f"Milvus collection '{self.collection}' holds {dim}-d vectors, the configured model gives {self.dim}-d",
                hint="run 'caselink index --rebuild' to rebuild it from the record store")

    @contextmanager
    def _calls(self, what: str):
        """Milvus failures as caselink's IndexNotReady (503 on the API), naming the server, never the token."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            raise IndexNotReady(f"Milvus at {self._safe_uri()} failed to {what}: {exc.message}",
                                hint="check backend.uri and that Milvus is running") from None

    def _safe_uri(self) -> str:
        parts = urlsplit(self.uri)
        if parts.username or parts.password:  # user:password@host: keep the host only
            parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        return urlunsplit(parts)

    # -- meta and statistics ------------------------------------------------------------------
    def _read_meta(self) -> dict:
        rows = self.client_.get(self.stats_collection, ids=[_META_KEY], output_fields=["meta"])
        if not rows:
            raise IndexFormatError(f"Milvus collection '{self.stats_collection}' has no meta entity",
                                   hint="run 'caselink index --rebuild' to rebuild it from the record store")
        return json.loads(rows[0]["meta"])

    def _save_meta(self) -> None:
        self.client_.upsert(self.stats_collection, [{"key": _META_KEY, "df": 0, "v": [0.0, 0.0],
                                                    "meta": json.dumps(self.meta_)}])

    def _stats(self, keys: Sequence[int]) -> tuple[dict[int, int], dict]:
        """Document frequency of each term id asked, and the meta entity, read together."""
        df: dict[int, int] = {}
        meta = None
        wanted = list(dict.fromkeys([_META_KEY, *keys]))
        for part in _chunks(wanted, 5 * _BATCH):
            for row in self.client_.get(self.stats_collection, ids=list(part), output_fields=["df", "meta"]):
                if row["key"] == _META_KEY:
                    meta = json.loads(row["meta"])
                else:
                    df[int(row["key"])] = int(row["df"])
        return df, meta or self.meta_

    def _drifted(self) -> bool:
        m = self.meta_
        if not m.get("n"):
            return False
        mean = m["total_len"] / m["n"]
        moved = abs(mean - m["avgdl"]) > REWEIGH_DRIFT * m["avgdl"]
        return moved or m.get("params", self.weights.params) != self.weights.params

    # -- writes -------------------------------------------------------------------------------
    def _row(self, e: Entry, avgdl: float) -> tuple[dict, dict[int, float]]:
        counts = BM25LWeights.counts(e.terms)
        dl = float(sum(counts.values()))
        kw = self.weights.document(counts, dl, avgdl)
        row = {"id": e.id, "vec": np.asarray(e.vector, dtype=np.float32).tolist(), "kw": kw,
               "kind": e.kind.casefold(), "product": e.product.casefold(), "model": e.model.casefold(),
               "module": e.module.casefold(), "status": e.status.casefold(), "closed": is_closed_status(e.status),
               "created": day(e.created), "codes": "\n".join(e.codes), ATTRIBUTES: dict(attribute_items(e)),
               "dl": dl, "aw": avgdl, "bm": self.weights.params}
        return row, kw

    def write(self, upserts: Sequence[Entry] = (), deletes: Collection[str] = (), *, seq: int) -> None:
        """Drop ``deletes`` and index ``upserts`` (in that order, as ``local`` does: an id in both
        is indexed); idempotent. Searchable by every process when this returns (Strong consistency)."""
        entries = list({e.id: e for e in upserts}.values())  # the last entry per id wins
        gone = set(deletes) - {e.id for e in entries}
        with self.lock_, self._calls("write"):
            m = self.meta_
            if not entries and not gone:
                if seq > m["applied_seq"]:
                    m["applied_seq"] = seq
                    self._save_meta()
                return
            touched = [e.id for e in entries] + sorted(gone)
            old = {}
            for part in _chunks(touched):
                for row in self.client_.get(self.collection, ids=list(part), output_fields=["kw", "dl"]):
                    old[row["id"]] = row
            m["pending"] = True
            self._save_meta()
            avgdl = m["avgdl"]
            if not m["n"] and entries:  # the first records set the mean length the weights use
                avgdl = sum(len(e.terms) for e in entries) / len(entries)
            rows, change = [], Counter()
            for e in entries:
                row, kw = self._row(e, avgdl)
                rows.append(row)
                change.update(kw.keys())
            for part in _chunks(rows):
                self.client_.upsert(self.collection, list(part))
            removed = [i for i in sorted(gone) if i in old]
            for part in _chunks(removed):
                self.client_.delete(self.collection, ids=list(part))
            for row in old.values():
                change.subtract(row["kw"].keys())
            self._apply_df({k: d for k, d in change.items() if d})
            m["n"] += sum(1 for e in entries if e.id not in old) - len(removed)
            m["total_len"] += sum(r["dl"] for r in rows) - sum(float(r["dl"]) for r in old.values())
            m["avgdl"], m["params"] = avgdl, self.weights.params
            m["applied_seq"] = max(m["applied_seq"], seq)
            m["pending"] = False
            self._save_meta()
        if self.reweigh_on_write_ and self._drifted():
            self._reweigh()


    def _apply_df(self, change: dict[int, int]) -> None:
        """Add ``change`` to the stored document frequencies (a term no record holds is removed)."""
        if not change:
            return
        current, _ = self._stats(list(change))
        upsert, drop = [], []
        for key, d in change.items():
            df = current.get(key, 0) + d
            if df > 0:
                upsert.append({"key": key, "df": df, "meta": "", "v": [0.0, 0.0]})
            else:
                drop.append(key)
        for part in _chunks(upsert, 5 * _BATCH):
            self.client_.upsert(self.stats_collection, list(part))
        for part in _chunks(drop, 5 * _BATCH):
            self.client_.delete(self.stats_collection, ids=list(part))

    def _scan(self, fields: list[str]) -> Iterator[list[dict]]:
        it = self.client_.query_iterator(self.collection, batch_size=_BATCH, filter="", output_fields=fields,
                                         consistency_level=self.consistency)
        try:
            while batch := it.next():
                yield batch
        finally:
            it.close()

    def _recount(self) -> None:
        """Term statistics, count and total length recounted from the records themselves."""
        with self.lock_, self._calls("recount term statistics"):
            df, n, total = Counter(), 0, 0.0
            for batch in self._scan(["id", "kw", "dl"]):
                for row in batch:
                    df.update(int(k) for k in row["kw"])
                    n += 1
                    total += float(row["dl"])
            stale = [k for batch in self._stat_keys() for k in batch if k != _META_KEY and k not in df]
            for part in _chunks(stale, 5 * _BATCH):
                self.client_.delete(self.stats_collection, ids=list(part))
            rows = [{"key": k, "df": v, "meta": "", "v": [0.0, 0.0]} for k, v in df.items()]
            for part in _chunks(rows, 5 * _BATCH):
                self.client_.upsert(self.stats_collection, list(part))
            self.meta_.update(n=n, total_len=total, pending=False)
            if not self.meta_.get("avgdl") and n:
                self.meta_["avgdl"] = total / n
            self._save_meta()

    def _stat_keys(self) -> Iterator[list[int]]:
        it = self.client_.query_iterator(self.stats_collection, batch_size=5 * _BATCH, filter="",
                                         output_fields=["key"], consistency_level=self.consistency)
        try:
            while batch := it.next():
                yield [int(r["key"]) for r in batch]
        finally:
            it.close()

    def _reweigh(self) -> None:
        """Recompute every record's weights with today's mean length and BM25 parameters."""
        with self.lock_, self._calls("re-weigh keyword terms"):
            m = self.meta_
            avgdl = m["total_len"] / m["n"] if m["n"] else 0.0
            log.info("re-weighing %d records in Milvus collection %s (mean length %.1f -> %.1f, params %s -> %s)",
                     m["n"], self.collection, m["avgdl"], avgdl, m.get("params"), self.weights.params)
            for batch in self._scan(["*"]):
                for row in batch:
                    tf = BM25LWeights.tf_of(row["kw"], float(row["dl"]), float(row["aw"]), row["bm"])
                    row["kw"] = self.weights.document(tf, float(row["dl"]), avgdl)
                    row["aw"], row["bm"] = avgdl, self.weights.params
                self.client_.upsert(self.collection, batch)
            m["avgdl"], m["params"] = avgdl, self.weights.params
            self._save_meta()

    # -- reads --------------------------------------------------------------------------------
    def _search(self, field: str, data, k: int, filters: Filters | None, exclude: Collection[str],
                params: dict) -> Hits:
        k = min(int(k), _MAX_TOPK)
        if k <= 0:
            return Hits([], np.zeros(0, dtype=np.float32), [])
        with self._calls("search"):
            res = self.client_.search(self.collection, data=[data], anns_field=field, limit=k,
                                      filter=filter_expression(filters, exclude), output_fields=["codes"],
                                      search_params={"metric_type": "IP", "params": params},
                                      consistency_level=self.consistency)[0]
        hits = sorted(((float(h["distance"]), h["id"], h["entity"]["codes"]) for h in res), key=lambda x: -x[0])
        if field == "kw":
            hits = [h for h in hits if h[0] > 0]  # an exact sparse search may pad with records sharing no term
        return Hits([h[1] for h in hits], np.asarray([h[0] for h in hits], dtype=np.float32),
                    [tuple(h[2].split("\n")) if h[2] else () for h in hits])

    def search_dense(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                     exclude: Collection[str] = ()) -> Hits:
        params = {"ef": max(int(k), 64)} if self.dense_index == "HNSW" else {}
        return self._search("vec", np.asarray(vector, dtype=np.float32).ravel().tolist(), k, filters, exclude,
                            params)

    def _query_weights(self, terms: Sequence[str]) -> dict[int, float]:
        qtf = BM25LWeights.counts(terms)
        if not qtf:
            return {}
        with self._calls("read term statistics"):
            df, meta = self._stats(list(qtf))
        return self.weights.query(qtf, df, int(meta.get("n", 0)))

    def search_keyword(self, terms: Sequence[str], k: int, filters: Filters | None = None,
                       exclude: Collection[str] = ()) -> Hits:
        q = self._query_weights(terms)
        if not q:
            return Hits([], np.zeros(0, dtype=np.float32), [])
        return self._search("kw", q, k, filters, exclude, {})

    def score_keyword(self, terms: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.float32)
        q = self._query_weights(terms)
        if not q or not len(ids):
            return out
        kw = {}
        with self._calls("read records"):
            for part in _chunks(list(dict.fromkeys(ids))):
                for row in self.client_.get(self.collection, ids=list(part), output_fields=["kw"]):
                    kw[row["id"]] = row["kw"]
        for i, rid in enumerate(ids):
            w = kw.get(rid)
            if w:
                out[i] = sum(qw * w.get(key, 0.0) for key, qw in q.items())
        return out

    def term_stats(self, terms: Sequence[str]) -> TermStats:
        keys = [term_id(t) for t in terms]
        with self._calls("read term statistics"):
            df, meta = self._stats(keys)
        return TermStats(np.asarray([df.get(k, 0) for k in keys], dtype=np.int64), int(meta.get("n", 0)))

    def admits(self, ids: Collection[str], filters: Filters | None = None,
               exclude: Collection[str] = ()) -> set[str]:
        wanted = [i for i in dict.fromkeys(ids) if i not in set(exclude)]
        out: set[str] = set()
        with self._calls("filter records"):
            for part in _chunks(wanted):
                rows = self.client_.query(self.collection, filter=filter_expression(filters, (), ids=part),
                                          output_fields=["id"], consistency_level=self.consistency)
                out.update(r["id"] for r in rows)
        return out

    def count(self) -> int:
        with self._calls("count records"):
            rows = self.client_.query(self.collection, filter="", output_fields=["count(*)"],
                                      consistency_level=self.consistency)
        return int(rows[0]["count(*)"])

    def applied_seq(self) -> int:
        """The change-log position this collection holds, read from Milvus (another process may
        have written since)."""
        with self.lock_, self._calls("read its change-log position"):
            self.meta_ = self._read_meta()
            return int(self.meta_["applied_seq"])

    def describe(self) -> dict:
        import pymilvus

        m = self.meta_
        return {"backend": "milvus", "factory": f"milvus:{self.dense_index}", "built_at": m.get("built_at", ""),
                "uri": self._safe_uri(), "collection": self.collection,
                "consistency": self.consistency, "dense_index": self.dense_index, "records": self.count(),
                "applied_seq": int(m.get("applied_seq", 0)), "mean_length": round(float(m.get("avgdl", 0.0)), 3),
                "bm25": {"k1": self.k1, "b": self.b, "delta": self.delta}, "pymilvus": pymilvus.__version__}

    def persist(self) -> None:
        """Flush both collections (sealed segments, durable in Milvus's own storage) and publish a snapshot of
        the service's side (tokeniser, model, centring: the sidecar) naming this collection and
        the change-log position it holds."""
        with self._calls("flush"):
            for name in (self.collection, self.stats_collection):
                self.client_.flush(name)
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
                self.snapshot_ = self.dir.publish(tmp, _merge(extra, own))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def _manifest(self) -> dict:
        m = self.meta_
        return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "change_seq": int(m["applied_seq"]),
                "backend": "milvus",
                "milvus": {"collection": self.collection, "uri": self._safe_uri(), "dim": self.dim},
                "counts": {"records": int(m["n"])},
                "params": {"bm25": {"k1": self.k1, "b": self.b, "delta": self.delta},
                           "vectors": {"factory": f"milvus:{self.dense_index}"}}}

    def close(self) -> None:
        if self.client_ is not None:
            self.client_.close()
            self.client_ = None


def _merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, nested dicts merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
