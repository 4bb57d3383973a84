"""FAISS vector index addressed by integer keys, with upsert and delete.

Below ``exact_below`` records the index is exact inner-product search (``IDMap2,Flat``); from
there up it is IVF (``IVF{nlist},Flat`` or with SQ8/PQ storage), which FAISS can also add to and
remove from by id, so upsert and delete work the same at every size. HNSW was not chosen because
FAISS cannot remove ids from it.

Vectors are L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

FILE = "vectors.faiss"


def factory_string(n: int, dim: int, *, exact_below: int, nlist: int, quantizer: str) -> str:
    """The FAISS factory string used for ``n`` vectors (recorded in the manifest)."""
    if n < exact_below:
        return "IDMap2,Flat"
    lists = nlist or max(16, int(4 * math.sqrt(n)))
    # "np": no polysemous training, which costs about a minute and which caselink never searches with.
    storage = {"flat": "Flat", "sq8": "SQ8", "pq": f"PQ{max(8, dim // 8)}x8np"}[quantizer]
    return f"IVF{lists},{storage}"


TRAIN_MAX = 200_000  # vectors an approximate index trains on, at most


def training_rows(n: int) -> np.ndarray:
    """Which of ``n`` vectors :meth:`VectorIndex.prepare` trains on, in the order it takes them:
    all up to ``TRAIN_MAX``, else ``TRAIN_MAX`` drawn at random (seed 0). A build keeps only these
    rows instead of every vector."""
    if n <= TRAIN_MAX:
        return np.arange(n)
    return np.random.default_rng(0).choice(n, TRAIN_MAX, replace=False)


class VectorIndex:
    """Keyed inner-product search over normalised vectors.

    Parameters
    ----------
    dim : vector dimension.
    exact_below, nlist, quantizer : pick the index type (see :func:`factory_string`).
    nprobe : IVF lists visited per query; more is slower and closer to exact.
    """

    def __init__(self, dim: int, *, exact_below: int = 50_000, nlist: int = 0, nprobe: int = 32,
                 quantizer: str = "flat"):
        self.dim = dim
        self.exact_below = exact_below
        self.nlist = nlist
        self.nprobe = nprobe
        self.quantizer = quantizer
        self.factory_ = "IDMap2,Flat"
        self.index_ = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def ntotal(self) -> int:
        return int(self.index_.ntotal)

    def build(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the contents with ``vectors`` under ``keys``, choosing the index type by size."""
        vectors = self._check(vectors)
        self.prepare(len(keys), vectors)
        self.add(keys, vectors)

    def prepare(self, n: int, sample: np.ndarray) -> None:
        """Empty the index and choose its type for ``n`` vectors, training an approximate one on
        ``sample`` (vectors like those to come; at most ``TRAIN_MAX`` of them are used), so a build
        can then :meth:`add` its vectors a batch at a time."""
        self.factory_ = factory_string(n, self.dim, exact_below=self.exact_below,
                                       nlist=self.nlist, quantizer=self.quantizer)
        if self.factory_.startswith("IDMap2"):
            self.index_ = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        else:
            sample = self._check(sample)
            self.index_ = faiss.index_factory(self.dim, self.factory_, faiss.METRIC_INNER_PRODUCT)
            if len(sample) > TRAIN_MAX:
                sample = sample[training_rows(len(sample))]
            self.index_.train(sample)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under keys not in the index yet (a build's batches)."""
        if len(keys):
            self.index_.add_with_ids(self._check(vectors), np.asarray(keys, dtype=np.int64))

    def upsert(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        self.remove(keys)
        self.index_.add_with_ids(self._check(vectors), keys)

    def remove(self, keys: np.ndarray) -> int:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0 or self.ntotal == 0:
            return 0
        return int(self.index_.remove_ids(faiss.IDSelectorBatch(len(keys), faiss.swig_ptr(keys))))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: (scores, keys), key -1 where fewer were found.

        ``allowed`` is a boolean mask indexed by key: only keys where it is True are returned.
        """
        queries = self._check(queries)
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        if self.ntotal == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        bitmap = None
        kwargs = {}
        if self.factory_.startswith("IVF"):
            kwargs["nprobe"] = self.nprobe
        if allowed is not None:
            bitmap = np.packbits(allowed.astype(bool), bitorder="little")
            kwargs["sel"] = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # size in bytes
        params = None
        if kwargs:
            params = (faiss.SearchParametersIVF if "nprobe" in kwargs else faiss.SearchParameters)(**kwargs)
        # One query gains nothing from OpenMP threads and loses a lot to their spin-waiting when the
        # other core is busy serving; batches keep the process's setting.
        threads = faiss.omp_get_max_threads()
        if len(queries) == 1:
            faiss.omp_set_num_threads(1)
        try:
            scores, keys = self.index_.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        del bitmap  # the selector reads it during search; only now may it go
        return scores, keys

    def reconstruct(self, keys: np.ndarray) -> np.ndarray:
        """The stored vectors of ``keys``, (len(keys), dim); NaN rows for keys not stored, and all
        NaN for an IVF index (it keeps no id-to-vector map unless asked to, and that map would
        change how removal works: the learned ranker treats NaN as "not known")."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.full((len(keys), self.dim), np.nan, dtype=np.float32)
        if not self.factory_.startswith("IDMap2") or len(keys) == 0 or self.ntotal == 0:
            return out
        try:  # candidates come from the index: all stored, but for a write in between
            return np.asarray(self.index_.reconstruct_batch(keys), dtype=np.float32)
        except RuntimeError:
            stored = np.isin(keys, faiss.vector_to_array(self.index_.id_map))
            if stored.any():
                out[stored] = self.index_.reconstruct_batch(keys[stored])
            return out

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    def state(self) -> faiss.Index:
        """A copy of the index to write later, taken under the caller's lock. ``clone_index`` copies
        the inverted lists directly: 0.2 s at a million SQ8 vectors, where serialising to bytes
        took 0.9-3 s (bench/snapshot.md)."""
        return faiss.clone_index(self.index_)

    @staticmethod
    def write(folder: Path, state: faiss.Index) -> list[str]:
        faiss.write_index(state, str(folder / FILE))
        return [FILE]

    def save(self, folder: Path) -> list[str]:
        return self.write(folder, self.index_)

    @classmethod
    def load(cls, folder: Path, *, dim: int, factory: str, **params) -> "VectorIndex":
        vi = cls(dim, **params)
        vi.index_ = faiss.read_index(str(folder / FILE))
        vi.factory_ = factory
        if vi.index_.d != dim:
            raise ValueError(f"expected a {dim}-d index, got {vi.index_.d}-d")
        return vi
