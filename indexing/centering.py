"""Mean-centring of sentence vectors, fitted on the indexed corpus.

Sentence encoders are anisotropic: their vectors share a common direction, so unrelated texts
already have a high cosine, and how high differs by model. Measured on 2,000 random pairs of
the Chinese benchmarks, the bundled USE gives unrelated questions a mean cosine of 0.26-0.45
(spread 0.13-0.14) and multilingual-e5-small 0.87-0.91 (spread 0.02). That common part carries
no information about which record is related, but it decides how a model's cosine mixes with
BM25 in fusion and with another model in an ensemble: e5's whole useful range is 0.05 wide, so
its half of an ensemble barely moved the ranking, and in hybrid fusion BM25 drowned it out.

Subtracting the corpus mean and renormalising (the first step of "all-but-the-top", Mu &
Viswanath, ICLR 2018) puts every model on the same footing: unrelated records near 0, related
ones clearly above. Each part of an ensemble is centred on its own and keeps its share of the
similarity. On the Chinese benchmarks, dense-only MRR@10 (bench/relevance.md for hybrid):
USE 0.273 -> 0.277 (bq) and 0.172 -> 0.176 (afqmc); the USE + e5 ensemble 0.279 -> 0.290 and
0.182 -> 0.206.

The mean is fitted once, when an index is built from scratch, from every record's vector, and
is stored with the snapshot (``centering.npy``); vectors added later and every query are
centred with the same mean, so scores stay comparable. Below ``min_records`` records the
estimate is too noisy to trust (two records centred on their mean point in opposite
directions), so the transform is the identity; ``caselink index --rebuild`` fits it again once
the corpus has grown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILE = "centering.npy"


def blocks_of(encoder) -> list[tuple[int, float]]:
    """(dimensions, share of the similarity) of each part of an encoder's vectors, in order."""
    parts = getattr(encoder, "parts", None)
    if parts:
        return [(int(p.dim), float(w)) for p, w in zip(parts, encoder.weights)]
    return [(int(encoder.dim), 1.0)]


class VectorCentering:
    """Subtracts a fitted mean from each block of a vector and restores the block's norm.

    Parameters
    ----------
    blocks : (dimensions, share) per encoder part; a block's norm is sqrt(share) in the
        encoder's output (see :class:`indexing.encoders.EnsembleEncoder`) and after the transform.
    min_records : fit only on at least this many vectors; fewer leave the transform the identity.

    Example
    -------
    >>> c = VectorCentering([(2, 1.0)], min_records=2).fit(np.array([[1, 0], [0.8, 0.6]], np.float32))
    >>> np.round(c.transform(np.array([[1, 0]], np.float32)), 3).tolist()
    [[0.316, -0.949]]
    """

    def __init__(self, blocks: Sequence[tuple[int, float]], *, min_records: int = 500):
        self.blocks = [(int(d), float(w)) for d, w in blocks]
        self.min_records = min_records
        self.mean_: np.ndarray | None = None  # None: identity (not fitted, or too few records)
        self.fitted_on_ = 0

    @property
    def dim(self) -> int:
        return sum(d for d, _ in self.blocks)

    def fit(self, vectors: np.ndarray) -> "VectorCentering":
        self.fitted_on_ = len(vectors)
        self.mean_ = None
        if len(vectors) >= self.min_records:
            self.mean_ = np.asarray(vectors, dtype=np.float64).mean(axis=0).astype(np.float32)
        return self

    def transform(self, vectors: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Centred copy of ``vectors`` (or written into ``out``, which may be ``vectors``)."""
        x = np.asarray(vectors, dtype=np.float32)
        if out is None:
            out = x.copy()
        elif out is not x:
            out[:] = x
        if self.mean_ is None or len(out) == 0:
            return out
        col = 0
        for d, share in self.blocks:
            block = out[:, col:col + d]
            block -= self.mean_[col:col + d]
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            # A vector equal to the mean has no direction left; zero scores it as unrelated to all.
            block *= np.float32(np.sqrt(share)) / np.maximum(norms, 1e-6)
            col += d
        return out

    # -- persistence (docs/index-format.md) ---------------------------------------------------
    def params(self) -> dict:
        """What the manifest records (``params.vectors.centering``)."""
        return {"blocks": [list(b) for b in self.blocks], "fitted_on": self.fitted_on_,
                "min_records": self.min_records, "active": self.mean_ is not None}

    def state(self) -> np.ndarray | None:
        return None if self.mean_ is None else self.mean_.copy()

    @staticmethod
    def write(folder: Path, mean: np.ndarray | None) -> None:
        if mean is not None:
            np.save(folder / FILE, mean)

    @classmethod
    def load(cls, folder: Path, params: dict | None, *, dim: int) -> "VectorCentering":
        """The centring a snapshot was built with; a manifest without one (older snapshots) is the identity."""
        if not params:
            return cls([(dim, 1.0)])
        c = cls([tuple(b) for b in params["blocks"]], min_records=params.get("min_records", 500))
        c.fitted_on_ = params.get("fitted_on", 0)
        if params.get("active"):
            mean = np.load(folder / FILE)
            if mean.shape != (c.dim,) or c.dim != dim:
                raise ValueError(f"{FILE} holds {mean.shape} values for a {dim}-d index")
            c.mean_ = mean.astype(np.float32)
        return c
