"""The ``local`` search backend: FAISS, caselink's BM25L and the facet arrays, in this process.

What caselink always ran on, behind the :class:`~indexing.backend.SearchBackend` seam. Records
are known by id outside; inside, each id has a row number (dense, from 0, never reused while the
process runs) that FAISS, BM25 and the facet arrays share, so a filter is one boolean mask over
rows that FAISS takes as an ID-selector bitmap and BM25 as a keep-mask.

Durability is a snapshot folder in the index directory (:mod:`indexing.index_dir`, format in
docs/index-format.md): :meth:`LocalBackend.persist` captures the state under the backend's lock,
writes the files with it released, and publishes the folder atomically, together with what the
service keeps beside it (model, tokeniser parameters, centring: the ``sidecar``), so one manifest
describes both and its ``change_seq`` is :meth:`applied_seq` at the capture.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from caselink.config import Settings
from caselink.errors import IndexFormatError
from indexing.backend import TIE_SLACK, Entry, Hits, TermStats, settle_ties
from indexing.bm25 import BM25Index
from indexing.facets import FacetTable, Filters
from indexing.index_dir import REBUILD_HINT, IndexDir, merge_manifest
from indexing.vectors import VectorIndex

__all__ = ["LocalBackend", "Sidecar"]


def _return_freed_memory() -> None:
    """Hand a snapshot's transient copies back to the OS. glibc keeps large freed blocks in the
    heap once its mmap threshold has risen, so at 1M records every snapshot left the serving
    process about 0.6 GB larger (2.28 -> 2.88 GB; bench/memory.md); malloc_trim returns them."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class Sidecar(Protocol):
    """What the service keeps in the same snapshot as the backend's files."""

    def capture(self) -> tuple[dict, Callable[[Path], None]]:
        """(manifest fields, a writer of the service's own files into a snapshot folder); called
        under the backend's lock, so it only takes what is immutable or copied."""
        ...


def _keep(mask: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """BM25's keep-mask over rows from a filter mask (rows past its end were added after it)."""
    def allow(rows: np.ndarray) -> np.ndarray:
        inside = rows < len(mask)
        out = np.zeros(len(rows), dtype=bool)
        out[inside] = mask[rows[inside]]
        return out
    return allow


class LocalBackend:
    """FAISS + BM25L + facets keyed by row, addressed by record id. Create with :meth:`empty`,
    :meth:`build` or :meth:`load` (:func:`indexing.backends.open_backend` picks)."""

    name = "local"

    def __init__(self, *, root: Path, bm25: BM25Index, vectors: VectorIndex, facets: FacetTable,
                 seq: int, sidecar: Sidecar | None = None, snapshot: Path | None = None, built_at: str = "",
                 titles: BM25Index | None = None):
        self.dir = IndexDir(root)
        self.sidecar = sidecar
        self.lock = threading.RLock()
        self.bm25_ = bm25
        # The titles' own terms, same rows: what the learned ranker's title BM25L feature reads.
        self.titles_ = titles if titles is not None else BM25Index(k1=bm25.k1, b=bm25.b, delta=bm25.delta)
        self.vectors_ = vectors
        self.facets_ = facets
        self.seq_ = seq
        self.snapshot_ = snapshot
        self.built_at_ = built_at
        self.row_of_: dict[str, int] = {}
        self.next_row_ = 0
        self.version_ = 0  # bumped by every write: the filter-mask memo's validity
        self._memo: tuple[tuple, np.ndarray] | None = None

    # -- construction -----------------------------------------------------------------------
    @staticmethod
    def _parts(settings: Settings, dim: int) -> tuple[BM25Index, VectorIndex]:
        v, b = settings.vectors, settings.bm25
        return (BM25Index(k1=b.k1, b=b.b, delta=b.delta),
                VectorIndex(dim, exact_below=v.exact_below, nlist=v.ivf_nlist, nprobe=v.nprobe,
                            quantizer=v.quantizer))

    @classmethod
    def empty(cls, settings: Settings, *, dim: int, seq: int = 0, sidecar: Sidecar | None = None) -> "LocalBackend":
        bm25, vectors = cls._parts(settings, dim)
        return cls(root=settings.index_root, bm25=bm25, vectors=vectors, facets=FacetTable(), seq=seq,
                   sidecar=sidecar)

    @classmethod
    def build(cls, settings: Settings, *, dim: int, total: int, batches: Iterable[Sequence[Entry]],
              sample: np.ndarray, seq: int, sidecar: Sidecar | None = None) -> "LocalBackend":
        """A fresh backend from a stream of entry batches (about ``total`` of them; ``sample``:
        vectors like theirs, to train an approximate index on). BM25's postings go straight into
        compact arrays and each batch is then dropped, so a build never holds every record's
        terms at once."""
        b = cls.empty(settings, dim=dim, seq=seq, sidecar=sidecar)
        b.vectors_.prepare(total, sample)

        def postings():
            for batch in batches:
                batch = list({e.id: e for e in batch}.values())
                again = [e.id in b.row_of_ for e in batch]  # an id seen in an earlier batch: replaced
                rows = [b._row(e.id) for e in batch]
                for row, e in zip(rows, batch):
                    b.facets_.set(row, e, e.codes)
                vecs, keys = np.stack([e.vector for e in batch]), np.asarray(rows, dtype=np.int64)
                if any(again):  # removing from an IVF index scans it: only when there is something to remove
                    b.vectors_.upsert(keys, vecs)
                else:
                    b.vectors_.add(keys, vecs)
                b.titles_.add(rows, [e.title_terms for e in batch])
                yield rows, [e.terms for e in batch]

        b.bm25_.add_batches(postings())
        return b

    @classmethod
    def load(cls, settings: Settings, snap: Path, manifest: dict, *, sidecar: Sidecar | None = None
             ) -> "LocalBackend":
        """The backend saved in snapshot folder ``snap`` (its ``manifest`` already read and checked)."""
        built_for = manifest.get("backend", "local")  # older snapshots are all local
        if built_for != cls.name:
            raise IndexFormatError(f"the index in {snap} is for the '{built_for}' backend, not '{cls.name}'",
                                   hint=f"set backend.kind = \"{built_for}\", or " + REBUILD_HINT)
        p = manifest["params"]
        try:
            bm25 = BM25Index.load(snap / "bm25", k1=p["bm25"]["k1"], b=p["bm25"]["b"],
                                  delta=p["bm25"].get("delta", 0.0))
            dim = p["vectors"].get("dim") or manifest["model"]["dim"]  # older snapshots: the model's
            vectors = VectorIndex.load(snap, dim=dim, factory=p["vectors"]["factory"], nprobe=settings.vectors.nprobe)
            facets = FacetTable.from_json(json.loads((snap / "facets.json").read_text(encoding="utf-8")))
            # Snapshots before the title index have none: the title feature reads 0 until a rebuild.
            titles = (BM25Index.load(snap / "bm25_title", k1=p["bm25"]["k1"], b=p["bm25"]["b"],
                                     delta=p["bm25"].get("delta", 0.0))
                      if (snap / "bm25_title").is_dir() else None)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexFormatError(f"index in {snap} could not be read: {exc}", hint=REBUILD_HINT) from None
        b = cls(root=settings.index_root, bm25=bm25, vectors=vectors, facets=facets, seq=manifest["change_seq"],
                sidecar=sidecar, snapshot=snap, built_at=manifest.get("created", ""), titles=titles)
        # A snapshot's rows are whatever numbers it was written with (older ones: the store's nums).
        b.row_of_ = {rid: row for row, rid in facets.ids.items()}
        b.next_row_ = max(facets.ids, default=-1) + 1
        return b

    def _row(self, record_id: str) -> int:
        row = self.row_of_.get(record_id)
        if row is None:
            row = self.row_of_[record_id] = self.next_row_
            self.next_row_ += 1
        return row

    # -- writes -----------------------------------------------------------------------------
    def write(self, upserts: Sequence[Entry] = (), deletes: Collection[str] = (), *, seq: int) -> None:
        upserts = list({e.id: e for e in upserts}.values())  # the last entry per id wins
        with self.lock:
            gone = [self.row_of_.pop(i) for i in deletes if i in self.row_of_]
            if gone:
                self.bm25_.delete(gone)
                self.titles_.delete(gone)
                self.vectors_.remove(np.asarray(gone, dtype=np.int64))
                for row in gone:
                    self.facets_.remove(row)
            if upserts:
                rows = [self._row(e.id) for e in upserts]
                self.bm25_.add(rows, [e.terms for e in upserts])
                self.titles_.add(rows, [e.title_terms for e in upserts])
                self.vectors_.upsert(np.asarray(rows, dtype=np.int64), np.stack([e.vector for e in upserts]))
                for row, e in zip(rows, upserts):
                    self.facets_.set(row, e, e.codes)
            self.seq_ = max(self.seq_, seq)
            self.version_ += 1

    def retune(self, k1: float, b: float, delta: float) -> bool:
        """Set BM25's query-time parameters; True when they changed (the next snapshot records them)."""
        with self.lock:
            bm25 = self.bm25_
            if (bm25.k1, bm25.b, bm25.delta) == (k1, b, delta):
                return False
            bm25.k1, bm25.b, bm25.delta = k1, b, delta
            self.titles_.k1, self.titles_.b, self.titles_.delta = k1, b, delta
        return True

    # -- reads ------------------------------------------------------------------------------
    def _mask(self, filters: Filters | None, exclude: Collection[str]) -> np.ndarray | None:
        """Rows that pass ``filters`` and are not excluded (None: every row). The dense and the
        keyword side of one query ask for the same mask: the last one is kept until a write."""
        rows = frozenset(self.row_of_[i] for i in exclude if i in self.row_of_)
        if (filters is None or filters.is_empty()) and not rows:
            return None
        key = (filters, rows, self.version_)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        mask = self.facets_.mask(filters, set(rows))
        self._memo = (key, mask)
        return mask

    def _hits(self, rows: np.ndarray, scores: np.ndarray, k: int) -> Hits:
        """The top ``k`` of ``rows`` (fetched with ``TIE_SLACK`` to spare), ties in id order."""
        ids, codes = self.facets_.ids, self.facets_.codes
        found = [ids[r] for r in rows.tolist()]
        order, scores = settle_ties(found, scores, k)
        return Hits(ids=[found[i] for i in order.tolist()], scores=scores,
                    codes=[codes.get(r, ()) for r in rows[order].tolist()])

    def search_dense(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                     exclude: Collection[str] = ()) -> Hits:
        with self.lock:
            mask = self._mask(filters, exclude)
            scores, rows = self.vectors_.search(np.asarray(vector, dtype=np.float32).reshape(1, -1),
                                                k + TIE_SLACK, mask)
            ok = rows[0] >= 0
            return self._hits(rows[0][ok], scores[0][ok], k)

    def search_keyword(self, terms: Sequence[str], k: int, filters: Filters | None = None,
                       exclude: Collection[str] = ()) -> Hits:
        with self.lock:
            mask = self._mask(filters, exclude)
            rows, scores = self.bm25_.search(list(terms), k + TIE_SLACK, None if mask is None else _keep(mask),
                                             normalize=True)
            return self._hits(rows, scores, k)

    def score_keyword(self, terms: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        with self.lock:
            rows, scores = self.bm25_.score(list(terms), normalize=True)
            wanted = [self.row_of_.get(i, -1) for i in ids]
        out = np.zeros(len(ids), dtype=np.float32)
        if len(rows) and len(ids) <= 8:  # eval asks for one pair at a time: no dict of every match
            for n, row in enumerate(wanted):
                hit = np.flatnonzero(rows == row)
                if len(hit):
                    out[n] = scores[hit[0]]
        elif len(rows):
            score_of = dict(zip(rows.tolist(), scores.tolist()))
            out[:] = [score_of.get(row, 0.0) for row in wanted]
        return out

    def term_stats(self, terms: Sequence[str]) -> TermStats:
        with self.lock:
            return TermStats(df=self.bm25_.doc_freq(list(terms)), n_docs=len(self.bm25_))

    def admits(self, ids: Collection[str], filters: Filters | None = None,
               exclude: Collection[str] = ()) -> set[str]:
        with self.lock:
            mask = self._mask(filters, exclude)
            rows = {i: self.row_of_[i] for i in ids if i in self.row_of_}
        if mask is None:
            return set(rows)
        return {i for i, row in rows.items() if row < len(mask) and mask[row]}

    def candidate_facts(self, ids: Sequence[str], *, terms: Sequence[str] | None = None,
                        vectors: bool = False) -> dict[str, np.ndarray]:
        """Facet columns (:meth:`FacetTable.columns`), keyword length and exact codes of ``ids``
        from the arrays, for the learned ranker (not part of the protocol: the service reads
        them from the stored records when a backend does not offer this). With ``terms``, also
        ``title_bm25``: their BM25L on each record's title alone, as a share of the terms' own
        score; with ``vectors``, ``vectors``: each record's index-space vector (NaN rows for an
        index that cannot give them back: IVF)."""
        # Python str and int keys: numpy scalars hash and compare at twice the cost per lookup.
        ids = ids.tolist() if isinstance(ids, np.ndarray) else ids
        with self.lock:
            row_of = self.row_of_
            rows = np.fromiter((row_of.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
            out = self.facets_.columns(rows)
            out["length"] = self.bm25_.lengths(rows)
            codes = self.facets_.codes
            out["codes"] = [codes.get(r, ()) for r in rows.tolist()]
            if terms is not None:
                out["title_bm25"] = self.titles_.score_keys(list(terms), rows, normalize=True)
            if vectors:
                out["vectors"] = self.vectors_.reconstruct(rows)
        return out

    def count(self) -> int:
        return len(self.bm25_)

    def applied_seq(self) -> int:
        return self.seq_

    def describe(self) -> dict:
        bm25 = self.bm25_
        return {"backend": self.name, "records": len(bm25), "vectors": self.vectors_.ntotal,
                "terms": len(bm25.vocab_), "factory": self.vectors_.factory_,
                "bm25": {"k1": bm25.k1, "b": bm25.b, "delta": bm25.delta},
                "snapshot": str(self.snapshot_ or ""), "built_at": self.built_at_, "change_seq": self.seq_}

    # -- persistence ------------------------------------------------------------------------
    def _capture(self) -> dict:
        """Everything a snapshot writes (the caller holds the lock): BM25's big arrays shared,
        everything else copied, FAISS cloned (bench/snapshot.md)."""
        bm25 = self.bm25_
        return {
            "bm25": bm25.state(), "titles": self.titles_.state(), "vectors": self.vectors_.state(), "facets": self.facets_.copy(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifest": {
                "backend": self.name,
                "change_seq": self.seq_,
                "counts": {"records": len(bm25), "vectors": self.vectors_.ntotal, "terms": len(bm25.vocab_)},
                "params": {"bm25": {"k1": bm25.k1, "b": bm25.b, "delta": bm25.delta},
                           "vectors": {"factory": self.vectors_.factory_, "nprobe": self.vectors_.nprobe,
                                       "dim": self.vectors_.dim}},
            },
        }

    @staticmethod
    def _write(folder: Path, state: dict) -> None:
        BM25Index.write(folder / "bm25", state["bm25"])
        BM25Index.write(folder / "bm25_title", state["titles"])
        VectorIndex.write(folder, state["vectors"])
        (folder / "facets.json").write_text(json.dumps(state["facets"].to_json(), ensure_ascii=False),
                                            encoding="utf-8")

    def persist(self) -> None:
        """Write the state as a new snapshot and make it current.

        The state is captured under the backend's lock; files are written, fsynced and
        checksummed after it is released, so searches and writes wait only for the capture.
        A file lock keeps one snapshot writer at a time, across processes too.
        """
        self.dir.root.mkdir(parents=True, exist_ok=True)
        with open(self.dir.root / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            with self.lock:
                state = self._capture()
                extra, write_extra = self.sidecar.capture() if self.sidecar is not None else ({}, None)
            tmp = self.dir.new_snapshot()
            try:
                self._write(tmp, state)
                if write_extra is not None:
                    write_extra(tmp)
                manifest = merge_manifest({"created": state["created"], **extra}, state["manifest"])
                path = self.dir.publish(tmp, manifest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        with self.lock:
            self.snapshot_ = path
            self.built_at_ = state["created"]
        del state
        _return_freed_memory()

    def close(self) -> None:
        """Nothing is held open: what was written since :meth:`persist` is in the store's change log."""
