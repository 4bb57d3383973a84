"""BM25 keyword index with add, update and delete, without a full rebuild.

Layout: a *main* segment, a term-major CSC matrix of term frequencies (rows = slots, columns =
term ids), plus a *delta* of postings for documents added since the last compaction. Deleting a
document only clears its ``alive`` flag; document frequencies are counted from live postings at
query time (we touch those postings to score anyway), so a delete never has to find the terms of
the deleted document. ``compact`` folds the delta into main and drops dead slots; it runs
automatically when the delta grows past a fraction of the index, and before saving.

Scoring is BM25L (Lv & Zhai, "When documents are very long, BM25 fails!", SIGIR 2011) with
Lucene's idf = ln(1 + (N - df + 0.5) / (df + 0.5)): a term's length-normalised frequency
c = tf / (1 - b + b * len / avglen) is shifted to c + delta before the usual saturation
(k1 + 1) * c / (k1 + c). Classic BM25 over-penalises long documents: a manual section or a long
report that holds every word of a short question scores below a two-line record holding one of
them. The shift puts a floor under a matched term; delta = 0 is exactly classic BM25, and the
saturation bound idf * (k1 + 1) is unchanged, so normalised scores stay on a 0-1 scale.

Persistence (see docs/index-format.md): a folder with ``data.npy`` / ``indices.npy`` /
``indptr.npy`` (the CSC main segment), ``delta_rows/cols/vals.npy`` (postings of documents added
since the last compaction), ``doc_len.npy``, ``keys.npy``, ``alive.npy`` (per slot) and
``vocab.json``. Saving never compacts: at a million documents a compaction rewrites gigabytes,
and a snapshot must not hold up the searches and writes waiting on the index.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

# Adds of at least this many documents take the bulk path; the delta is compacted past it.
_BULK = 1000
FILES = ("data.npy", "indices.npy", "indptr.npy", "delta_rows.npy", "delta_cols.npy", "delta_vals.npy",
         "doc_len.npy", "keys.npy", "alive.npy", "vocab.json")


class BM25Index:
    """Incremental BM25 over pre-tokenised documents, addressed by integer keys.

    Parameters
    ----------
    k1, b : the usual BM25 parameters.
    delta : BM25L's shift of the normalised term frequency (0 = classic BM25; 0.5 as published).
        Unrelated to the *delta segment* of recently added postings.
    compact_ratio : compact when the delta holds more than this share of live documents.

    Example
    -------
    >>> idx = BM25Index()
    >>> idx.add([1, 2], [["vacuum", "leak"], ["robot", "arm"]])
    >>> idx.search(["leak"], k=1)[0].tolist()
    [1]
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, delta: float = 0.0, compact_ratio: float = 0.1):
        self.k1 = k1
        self.b = b
        self.delta = delta
        self.compact_ratio = compact_ratio
        self.vocab_: dict[str, int] = {}
        self._main = sp.csc_matrix((0, 0), dtype=np.float32)
        self._delta: dict[int, list[tuple[int, float]]] = {}
        self._delta_docs = 0
        self._doc_len = np.zeros(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._keys = np.zeros(0, dtype=np.int64)
        # slot of each key, -1 when absent: keys are record-store row numbers (small, dense), and an
        # array costs 8 bytes per key where a dict costs over 100.
        self._slot_by_key = np.zeros(0, dtype=np.int64)
        self._n_live = 0
        self._total_len = 0.0

    # -- size -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, key: int) -> bool:
        return self._slot(int(key)) >= 0

    def _slot(self, key: int) -> int:
        return int(self._slot_by_key[key]) if 0 <= key < len(self._slot_by_key) else -1

    def _index_keys(self) -> None:
        """Rebuild the key -> slot array from ``_keys`` (all slots live)."""
        size = int(self._keys.max()) + 1 if len(self._keys) else 0
        self._slot_by_key = np.full(size, -1, dtype=np.int64)
        self._slot_by_key[self._keys] = np.arange(len(self._keys))
        self._n_live = len(self._keys)

    # -- writes -----------------------------------------------------------------------------
    def add(self, keys: Sequence[int], docs: Iterable[Sequence[str]]) -> None:
        """Add documents; a key that is already present (or repeated in ``keys``) is replaced."""
        pairs = list(zip((int(k) for k in keys), docs, strict=True))
        last = {k: i for i, (k, _) in enumerate(pairs)}
        pairs = [pr for i, pr in enumerate(pairs) if last[pr[0]] == i]
        self.delete([k for k, _ in pairs if k in self])
        if len(pairs) >= _BULK:
            self.add_batches([([k for k, _ in pairs], [d for _, d in pairs])])
            return
        start = self._n_slots()
        self._grow(start + len(pairs))
        for i, (key, tokens) in enumerate(pairs):
            slot = start + i
            counts = Counter(tokens)
            for term, tf in counts.items():
                tid = self.vocab_.get(term)
                if tid is None:
                    tid = self.vocab_[term] = len(self.vocab_)
                self._delta.setdefault(tid, []).append((slot, float(tf)))
            self._place(slot, key, float(sum(counts.values())))
        self._delta_docs += len(pairs)
        if self._delta_docs > max(_BULK, self.compact_ratio * len(self)):
            self.compact()

    def _place(self, slot: int, key: int, length: float) -> None:
        if key < 0:
            raise ValueError(f"BM25 keys must be non-negative integers, got {key}")
        if key >= len(self._slot_by_key):
            grown = np.full(max(key + 1, int(len(self._slot_by_key) * 1.5) + 16), -1, dtype=np.int64)
            grown[: len(self._slot_by_key)] = self._slot_by_key
            self._slot_by_key = grown
        self._doc_len[slot] = length
        self._alive[slot] = True
        self._keys[slot] = key
        self._slot_by_key[key] = slot
        self._n_live += 1
        self._total_len += length

    def add_batches(self, batches: Iterable[tuple[Sequence[int], Iterable[Sequence[str]]]]) -> int:
        """Bulk-load a stream of ``(keys, docs)`` batches; returns how many documents were added.

        Postings go straight into compact arrays (about 8 bytes each) and the main segment is
        rebuilt once at the end, so building from a stream never holds every document's tokens
        (Python lists of ``str`` cost over 10x the postings) and never re-sorts a growing matrix
        per batch. A key already present, or repeated later in the stream, is replaced.
        """
        self.compact()
        main = self._main.tocsr()
        data, indices, lengths = [main.data.astype(np.float32)], [main.indices.astype(np.int32)], [np.diff(main.indptr)]
        start = main.shape[0]
        added = 0
        vocab = self.vocab_
        for keys, docs in batches:
            pairs = list(zip((int(k) for k in keys), docs, strict=True))
            self._grow(start + added + len(pairs))
            cols, vals, counts = array("i"), array("f"), array("q")
            for key, tokens in pairs:
                tf_of = Counter(tokens)
                for term, tf in tf_of.items():
                    tid = vocab.get(term)
                    if tid is None:
                        tid = vocab[term] = len(vocab)
                    cols.append(tid)
                    vals.append(tf)
                counts.append(len(tf_of))
                if key in self:  # already indexed, or repeated within this stream: the later one wins
                    self.delete([key])
                self._place(start + added, key, float(sum(tf_of.values())))
                added += 1
            data.append(np.frombuffer(vals, dtype=np.float32))
            indices.append(np.frombuffer(cols, dtype=np.int32))
            lengths.append(np.frombuffer(counts, dtype=np.int64))
        n_rows = start + added
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths), out=indptr[1:])
        csr = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=(n_rows, len(vocab)))
        del data, indices, main
        self._main = csr.tocsc().astype(np.float32, copy=False)
        self._main.sort_indices()
        if not self._alive[:n_rows].all():  # replaced documents leave dead slots behind
            self.compact()
        return added

    def delete(self, keys: Iterable[int]) -> int:
        """Remove documents by key; unknown keys are ignored. Returns how many were removed."""
        removed = 0
        for key in keys:
            slot = self._slot(int(key))
            if slot >= 0:
                self._slot_by_key[int(key)] = -1
                self._n_live -= 1
                self._alive[slot] = False
                self._total_len -= float(self._doc_len[slot])
                removed += 1
        return removed

    def _grow(self, n: int) -> None:
        if n <= len(self._keys):
            return
        cap = max(n, int(len(self._keys) * 1.5) + 16)
        for name, dtype in (("_doc_len", np.float32), ("_alive", bool), ("_keys", np.int64)):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def compact(self) -> None:
        """Fold the delta into the main segment and drop deleted slots (no-op when there is neither)."""
        self._fold(*self._delta_arrays())

    def _delta_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The delta's postings as (slots, term ids, tfs)."""
        if not self._delta:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        parts = [np.asarray(p, dtype=np.float64) for p in self._delta.values()]
        pairs = np.concatenate(parts)
        cols = np.repeat(np.fromiter(self._delta.keys(), dtype=np.int64, count=len(parts)), [len(p) for p in parts])
        return pairs[:, 0].astype(np.int64), cols, pairs[:, 1].astype(np.float32)

    def _fold(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Make the main segment hold every live posting: its own, plus (rows, cols, vals) for slots
        past it. Works on the CSC arrays directly (no COO copy of the whole index: at a million
        documents that is gigabytes), so the peak is about one extra copy of the postings."""
        n = self._n_slots()
        alive = self._alive[:n]
        if not len(rows) and alive.all() and self._main.shape == (n, len(self.vocab_)):
            self._delta, self._delta_docs = {}, 0
            return
        n_terms = len(self.vocab_)
        m = self._main
        indptr = np.concatenate([m.indptr.astype(np.int64), np.full(n_terms - m.shape[1], m.indptr[-1], np.int64)])
        main = sp.csc_matrix((m.data, m.indices, indptr), shape=(n, n_terms))
        if len(rows):  # new slots only, so the sum is the union of the two sets of postings
            main = (main + sp.csc_matrix((vals, (rows, cols)), shape=(n, n_terms), dtype=np.float32)).tocsc()
        if not alive.all():
            live = np.flatnonzero(alive)
            new_slot = np.full(n, -1, dtype=np.int64)
            new_slot[live] = np.arange(len(live))
            keep = alive[main.indices]
            col_of = np.repeat(np.arange(n_terms, dtype=np.int32), np.diff(main.indptr))[keep]
            counts = np.bincount(col_of, minlength=n_terms)
            del col_of
            indptr = np.zeros(n_terms + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            main = sp.csc_matrix((main.data[keep], new_slot[main.indices[keep]].astype(np.int32), indptr),
                                 shape=(len(live), n_terms))
            self._doc_len = self._doc_len[live].copy()
            self._keys = self._keys[live].copy()
            self._alive = np.ones(len(live), dtype=bool)
            self._index_keys()
        main.sort_indices()
        self._main = main.astype(np.float32, copy=False)
        self._delta = {}
        self._delta_docs = 0

    def _n_slots(self) -> int:
        return self._main.shape[0] + self._delta_docs

    # -- reads ------------------------------------------------------------------------------
    def _postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid < self._main.shape[1]:
            lo, hi = self._main.indptr[tid], self._main.indptr[tid + 1]
            rows, tfs = self._main.indices[lo:hi], self._main.data[lo:hi]
        else:
            rows, tfs = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        extra = self._delta.get(tid)
        if extra:
            arr = np.asarray(extra, dtype=np.float64)
            rows = np.concatenate([rows, arr[:, 0].astype(np.int32)])
            tfs = np.concatenate([tfs, arr[:, 1].astype(np.float32)])
        live = self._alive[rows]
        return rows[live], tfs[live]

    def doc_freq(self, terms: Sequence[str]) -> np.ndarray:
        """Documents holding each of ``terms`` (int64; 0 for a term the index lacks). Counts the
        postings as stored, so a document deleted since the last compaction still counts: what
        the idf of :meth:`select_terms` has always used."""
        df = np.zeros(len(terms), dtype=np.int64)
        main = self._main
        n_main_terms = main.shape[1]
        for i, t in enumerate(terms):
            tid = self.vocab_.get(t)
            if tid is None:
                continue
            if tid < n_main_terms:
                df[i] = main.indptr[tid + 1] - main.indptr[tid]
            df[i] += len(self._delta.get(tid, ()))
        return df

    def select_terms(self, query: Sequence[str], n: int) -> list[str]:
        """:func:`select_terms` over this index's document frequencies."""
        distinct = list(dict.fromkeys(query))
        return select_terms(query, n, dict(zip(distinct, self.doc_freq(distinct).tolist())), len(self))

    def lengths(self, keys: np.ndarray) -> np.ndarray:
        """Each key's document length in (weighted) terms; 0 for a key that is not indexed."""
        keys = np.asarray(keys, dtype=np.int64)
        inside = (keys >= 0) & (keys < len(self._slot_by_key))
        slots = np.full(len(keys), -1, dtype=np.int64)
        slots[inside] = self._slot_by_key[keys[inside]]
        out = np.zeros(len(keys), dtype=np.float32)
        out[slots >= 0] = self._doc_len[slots[slots >= 0]]
        return out

    def score(self, query: Sequence[str], *, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """BM25 scores of every live document that shares a term with ``query``: (keys, scores).

        With ``normalize`` the scores are divided by the most any document could score for this
        query (each term's contribution saturates at idf * (k1 + 1); terms absent from the index
        count with the highest idf), which puts them on a 0-1 scale comparable across queries
        without clipping, so the order of the best matches is never flattened into ties.
        """
        n = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        avgdl = max(self._total_len / n, 1e-9)
        scores = np.zeros(self._n_slots(), dtype=np.float32)
        touched = []
        self_score = 0.0
        for term, qtf in Counter(query).items():
            tid = self.vocab_.get(term)
            rows, tfs = self._postings(tid) if tid is not None else (np.zeros(0, dtype=np.int32), None)
            df = len(rows)
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            self_score += qtf * idf * (self.k1 + 1.0)
            if df == 0:
                continue
            # BM25L: the length-normalised tf is shifted by delta before it saturates, so a long
            # document that holds the term is not scored as if it barely did (delta 0 = classic BM25).
            ctd = tfs / (1.0 - self.b + self.b * self._doc_len[rows] / avgdl) + self.delta
            scores[rows] += qtf * idf * (self.k1 + 1.0) * ctd / (self.k1 + ctd)
            touched.append(rows)
        if not touched:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # Every touched slot scored > 0 (tf > 0, idf > 0): cheaper than np.unique of the postings.
        slots = np.flatnonzero(scores)
        out = scores[slots]
        if normalize and self_score > 0:
            out = (out / self_score).astype(np.float32)
        return self._keys[slots], out

    def score_keys(self, query: Sequence[str], keys: Sequence[int] | np.ndarray, *,
                   normalize: bool = False) -> np.ndarray:
        """:meth:`score`'s scores of ``keys`` alone (float32, one per key; 0 for a key that is not
        indexed or shares no term): the same idf over the whole index and the same formula, equal
        to :meth:`score`'s up to float32 rounding.

        The cost follows the keys, not the postings: each term's live postings are sorted by
        slot, so the keys are found in them by binary search, the arithmetic is done once for
        every (term, key) hit, and nothing the size of the index is allocated. The learned ranker
        scores its hundred candidates' titles this way; scoring every title that shares one of a
        record's 64 terms cost milliseconds at 100k records (bench/learned_cost.md).
        """
        keys = np.asarray(keys, dtype=np.int64)
        n = len(self)
        if n == 0 or len(keys) == 0:
            return np.zeros(len(keys), dtype=np.float32)
        inside = (keys >= 0) & (keys < len(self._slot_by_key))
        slots = np.full(len(keys), -1, dtype=np.int64)
        slots[inside] = self._slot_by_key[keys[inside]]
        where = np.flatnonzero(slots >= 0)
        cand = slots[where]
        counts = Counter(query)
        main = self._main
        # With no dead slot and no delta, a term's live postings are its main column as it lies
        # (a view: no copy, no liveness mask); otherwise they are gathered as score() does.
        compact = not self._delta and self._n_slots() == n
        indptr, indices = main.indptr, main.indices
        df = np.zeros(len(counts), dtype=np.int64)
        hit_term, hit_at, hit_tf = [], [], []
        # Compact main-segment terms: one searchsorted each into a (terms, keys) table of positions
        # in main.indices, checked all at once after the loop (per-term numpy calls were most of
        # the cost: a related query has ~60 terms). Hits come out in the same (term, key) order as
        # the per-term path, so the sums below are the same to the bit.
        at_main: list[int] = []
        span_main: list[tuple[int, int]] = []
        pos_main = np.empty((len(counts), len(cand)), dtype=np.int64)
        for j, term in enumerate(counts):
            tid = self.vocab_.get(term)
            if tid is None:
                continue
            if compact and tid < main.shape[1]:
                lo, hi = int(indptr[tid]), int(indptr[tid + 1])
                df[j] = hi - lo
                if hi > lo and len(cand):
                    pos_main[len(at_main)] = indices[lo:hi].searchsorted(cand)
                    at_main.append(j)
                    span_main.append((lo, hi))
                continue
            rows, tfs = self._postings(tid)
            df[j] = len(rows)
            if not len(rows) or not len(cand):
                continue
            pos = np.minimum(rows.searchsorted(cand), len(rows) - 1)
            hit = rows[pos] == cand
            if hit.any():
                hit_term.append(np.full(int(hit.sum()), j))
                hit_at.append(where[hit])
                hit_tf.append(tfs[pos[hit]])
        if at_main:
            lo_hi = np.asarray(span_main, dtype=np.int64)
            pos = np.minimum(pos_main[:len(at_main)] + lo_hi[:, :1], lo_hi[:, 1:] - 1)
            term_of, col = np.nonzero(indices[pos] == cand)  # row-major: by term, then key
            mixed = bool(hit_term)
            hit_term.append(np.asarray(at_main, dtype=np.int64)[term_of])
            hit_at.append(where[col])
            hit_tf.append(main.data[pos[term_of, col]])
            if mixed:  # hits from both paths: back to term order, as one loop gives them
                order = np.argsort(np.concatenate(hit_term), kind="stable")
                hit_term, hit_at, hit_tf = ([np.concatenate(a)[order]] for a in (hit_term, hit_at, hit_tf))
        qtf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        weight = qtf * np.log1p((n - df + 0.5) / (df + 0.5)) * (self.k1 + 1.0)
        out = np.zeros(len(keys), dtype=np.float64)
        if hit_term:
            term, at, tf = np.concatenate(hit_term), np.concatenate(hit_at), np.concatenate(hit_tf)
            avgdl = max(self._total_len / n, 1e-9)
            ctd = tf / (1.0 - self.b + self.b * self._doc_len[slots[at]] / avgdl) + self.delta
            out = np.bincount(at, weights=weight[term] * ctd / (self.k1 + ctd), minlength=len(keys))
        self_score = float(weight.sum())
        if normalize and self_score > 0:
            out = out / self_score
        return out.astype(np.float32)

    def search(self, query: Sequence[str], k: int, allow: Callable[[np.ndarray], np.ndarray] | None = None,
               *, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (keys, scores), best first. ``allow`` maps an array of keys to a keep-mask."""
        keys, scores = self.score(query, normalize=normalize)
        if allow is not None and len(keys):
            keep = allow(keys)
            keys, scores = keys[keep], scores[keep]
        if len(keys) > k:
            part = np.argpartition(-scores, k - 1)[:k]
            keys, scores = keys[part], scores[part]
        order = np.lexsort((keys, -scores))
        return keys[order], scores[order]

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        """What :meth:`write` saves, captured cheaply under the caller's lock: the main segment's
        arrays are shared (they are never changed in place once built), the delta and the small
        per-slot arrays are copied. The files can then be written while searches and writes go on."""
        n = self._n_slots()
        rows, cols, vals = self._delta_arrays()
        m = self._main
        return {"data": m.data, "indices": m.indices, "indptr": m.indptr, "delta_rows": rows, "delta_cols": cols,
                "delta_vals": vals, "doc_len": self._doc_len[:n].copy(), "keys": self._keys[:n].copy(),
                "alive": self._alive[:n].copy(), "terms": list(self.vocab_)}  # insertion order = term id

    @staticmethod
    def write(folder: Path, state: dict) -> list[str]:
        """Write a :meth:`state` into ``folder``; returns the file names."""
        folder.mkdir(parents=True, exist_ok=True)
        dtypes = {"data": np.float32, "indices": np.int32, "indptr": np.int64, "delta_rows": np.int64,
                  "delta_cols": np.int64, "delta_vals": np.float32, "doc_len": np.float32, "keys": np.int64,
                  "alive": bool}
        for name, dtype in dtypes.items():
            np.save(folder / f"{name}.npy", np.asarray(state[name]).astype(dtype, copy=False))
        (folder / "vocab.json").write_text(json.dumps(state["terms"], ensure_ascii=False), encoding="utf-8")
        return list(FILES)

    def save(self, folder: Path) -> list[str]:
        """Write the index files into ``folder``; returns the file names."""
        return self.write(folder, self.state())

    @classmethod
    def load(cls, folder: Path, *, k1: float, b: float, delta: float = 0.0) -> "BM25Index":
        """Read an index written by :meth:`save` (parameters come from the manifest); the saved
        delta and deletions are folded in, so a loaded index starts compact."""
        idx = cls(k1=k1, b=b, delta=delta)
        terms = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        idx.vocab_ = {t: i for i, t in enumerate(terms)}
        data = np.load(folder / "data.npy")
        indices = np.load(folder / "indices.npy")
        indptr = np.load(folder / "indptr.npy")
        idx._doc_len = np.load(folder / "doc_len.npy")
        idx._keys = np.load(folder / "keys.npy")
        n = len(idx._keys)
        # Format 1 had neither file: it was saved compacted (no delta, no deletions).
        idx._alive = np.load(folder / "alive.npy") if (folder / "alive.npy").exists() else np.ones(n, dtype=bool)
        if len(idx._doc_len) != n or len(idx._alive) != n or len(indptr) > len(terms) + 1:
            raise ValueError("BM25 files disagree in length")
        idx._main = sp.csc_matrix((data, indices, indptr), shape=(n, len(indptr) - 1))
        # score_keys binary-searches each term's postings: every writer saves them sorted, and a
        # file that is not (written by hand, or by a future writer) is sorted here once.
        if not idx._main.has_sorted_indices:
            idx._main.sort_indices()
        live = idx._keys[idx._alive]
        idx._slot_by_key = np.full(int(live.max()) + 1 if len(live) else 0, -1, dtype=np.int64)
        idx._slot_by_key[live] = np.flatnonzero(idx._alive)
        idx._n_live = len(live)
        idx._total_len = float(idx._doc_len[idx._alive].sum())
        if (folder / "delta_rows.npy").exists():
            idx._fold(np.load(folder / "delta_rows.npy"), np.load(folder / "delta_cols.npy"),
                      np.load(folder / "delta_vals.npy"))
        else:
            idx._fold(*idx._delta_arrays())
        return idx


def select_terms(query: Sequence[str], n: int, df: dict[str, int], n_docs: int) -> list[str]:
    """``query`` restricted to its ``n`` most distinctive indexed terms by qtf x idf (as Lucene's
    MoreLikeThis does), repeats kept; terms no document holds (``df`` 0 or absent) stay (they cost
    nothing and keep the normalisation's upper bound). Scoring cost follows the postings touched,
    and a long record's common terms have the longest postings and the least weight.

    >>> select_terms(["alarm", "alarm", "laser", "pump"], 1, {"alarm": 1, "laser": 1, "pump": 9}, 10)
    ['alarm', 'alarm']
    """
    counts = Counter(query)
    present = [t for t in counts if df.get(t, 0) > 0]
    if n <= 0 or len(present) <= n:
        return list(query)
    freq = np.fromiter((df[t] for t in present), dtype=np.float64, count=len(present))
    idf = np.log1p((max(n_docs, 1) - freq + 0.5) / (freq + 0.5))
    weight = np.fromiter((counts[t] for t in present), dtype=np.float64, count=len(present)) * idf
    keep = {present[i] for i in np.argsort(-weight, kind="stable")[:n]}
    return [t for t in query if t in keep or df.get(t, 0) == 0]
