"""Mean-centring of sentence vectors, fitted on the indexed corpus, one mean per record kind.

Sentence encoders are anisotropic: their vectors share a common direction, so unrelated texts
already have a high cosine, and how high differs by model. Measured on 2,000 random pairs of
the Chinese benchmarks, the bundled USE gives unrelated questions a mean cosine of 0.26-0.45
(spread 0.13-0.14) and multilingual-e5-small 0.87-0.91 (spread 0.02). That common part carries
no information about which record is related, but it decides how a model's cosine mixes with
BM25 in fusion and with another model in an ensemble: e5's whole useful range is 0.05 wide, so
its half of an ensemble barely moved the ranking.

Subtracting the mean and renormalising (the first step of "all-but-the-top", Mu & Viswanath,
ICLR 2018) puts every model on the same footing: unrelated records near 0, related ones clearly
above. Each part of an ensemble is centred on its own and keeps its share of the similarity.

Each record kind is centred on its own mean. Cases, problem orders and SOP sections are written
differently (a customer's symptom against a procedure's imperative steps), and that style is a
direction of its own: centred on one corpus mean, a symptom still leans away from every SOP
section alike, and the question-to-manual-section benchmark lost dense MRR@10 (0.532 -> 0.513);
centred per kind, the style offset goes and it gained (0.541). A free-text query is a symptom, so
it is centred like a case. A kind with fewer than ``min_records`` records (too few to estimate a
mean: two records centred on their mean point in opposite directions) uses the corpus mean,
and a corpus below ``min_records`` is not centred at all. On the demo history (324 cases, 168
SOP sections, 44 problem orders) hybrid MRR@10 was 0.914 without centring, 0.902 with one mean
for all but the cases (``min_records`` 200) and 0.908 with the SOP sections' own (100): mixed
corpora are where centring gains least, see bench/relevance.md for the one-kind sets.

Measured on the benchmarks (dense-only MRR@10, one-kind sets): USE 0.273 -> 0.277 (bq) and
0.172 -> 0.175 (afqmc); the USE + e5 ensemble 0.279 -> 0.290 and 0.182 -> 0.206 (its uncentred
figures measured offline on the same protocol); hybrid in bench/relevance.md.

The means are fitted once, when an index is built from scratch, and stored with the snapshot
(``centering.npy``); vectors added later and every query are centred with the same means, so
scores stay comparable. ``caselink index --rebuild`` fits them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILE = "centering.npy"
ROWS = 16_384  # rows centred at a time: temporaries of a few tens of MB even at 1M records
CORPUS = "*"  # the corpus mean, for kinds without enough records of their own
QUERY_KIND = "case"  # free text is centred like a case: engineers type symptoms


def blocks_of(encoder) -> list[tuple[int, float]]:
    """(dimensions, share of the similarity) of each part of an encoder's vectors, in order."""
    parts = getattr(encoder, "parts", None)
    if parts:
        return [(int(p.dim), float(w)) for p, w in zip(parts, encoder.weights)]
    return [(int(encoder.dim), 1.0)]


class VectorCentering:
    """Subtracts a fitted mean (per record kind) from each block of a vector and restores the
    block's norm.

    Parameters
    ----------
    blocks : (dimensions, share) per encoder part; a block's norm is sqrt(share) in the
        encoder's output (see :class:`indexing.encoders.EnsembleEncoder`) and after the transform.
    min_records : fit a mean only on at least this many vectors (per kind, and for the corpus);
        a corpus with fewer leaves the transform the identity.

    Example
    -------
    >>> c = VectorCentering([(2, 1.0)], min_records=2).fit(np.array([[1, 0], [0.8, 0.6]], np.float32))
    >>> np.round(c.transform(np.array([[1, 0]], np.float32)).astype(float), 3).tolist()
    [[0.316, -0.949]]
    """

    def __init__(self, blocks: Sequence[tuple[int, float]], *, min_records: int = 100):
        self.blocks = [(int(d), float(w)) for d, w in blocks]
        self.min_records = min_records
        self.means_: dict[str, np.ndarray] = {}  # kind (or CORPUS) -> mean; empty: the identity
        self.fitted_on_ = 0

    @property
    def dim(self) -> int:
        return sum(d for d, _ in self.blocks)

    @property
    def active(self) -> bool:
        return bool(self.means_)

    def fit(self, vectors: np.ndarray, kinds: Sequence[str] | None = None) -> "VectorCentering":
        """Fit the corpus mean and, where ``kinds`` (one per vector) gives enough of a kind, its own."""
        sums = KindSums(self.dim)
        sums.add(vectors, kinds if kinds is not None else [CORPUS] * len(vectors))
        return self.fit_sums(sums)

    def fit_sums(self, sums: "KindSums") -> "VectorCentering":
        """:meth:`fit` from sums gathered a batch at a time (a build that never holds every vector)."""
        sums.flush()
        n = self.fitted_on_ = sums.n
        self.means_ = {}
        if n < self.min_records:
            return self
        names = sorted(sums.sums)
        self.means_[CORPUS] = (np.stack([sums.sums[k] for k in names]).sum(axis=0) / n).astype(np.float32)
        for kind in names:
            if self.min_records <= sums.counts[kind] < n:  # one kind alone is the corpus mean
                self.means_[str(kind)] = (sums.sums[kind] / sums.counts[kind]).astype(np.float32)
        return self

    def mean_for(self, kind: str | None) -> np.ndarray | None:
        if not self.means_:
            return None
        return self.means_.get(kind or QUERY_KIND, self.means_[CORPUS])

    def transform(self, vectors: np.ndarray, kinds: Sequence[str | None] | None = None, *,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Centred copy of ``vectors`` (or written into ``out``, which may be ``vectors``); ``kinds``
        gives each row's record kind (None or omitted: a free-text query)."""
        x = np.asarray(vectors, dtype=np.float32)
        if out is None:
            out = x.copy()
        elif out is not x:
            out[:] = x
        if not self.means_ or len(out) == 0:
            return out
        names = sorted(set(kinds), key=str) if kinds is not None else [None]
        means = np.stack([self.mean_for(k) for k in names])
        code = {k: i for i, k in enumerate(names)}
        which = np.fromiter((code[k] for k in kinds), dtype=np.int32, count=len(out)) if len(names) > 1 else None
        for start in range(0, len(out), ROWS):
            rows = out[start:start + ROWS]
            rows -= means[which[start:start + ROWS]] if which is not None else means[0]
            col = 0
            for d, share in self.blocks:
                block = rows[:, col:col + d]
                norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
                # A vector equal to the mean has no direction left; zero scores it as unrelated to all.
                block *= np.float32(np.sqrt(share)) / np.maximum(norms, np.float32(1e-6))
                col += d
        return out

    # -- persistence (docs/index-format.md) ---------------------------------------------------
    def params(self) -> dict:
        """What the manifest records (``params.vectors.centering``); ``kinds`` names the rows of
        ``centering.npy``."""
        return {"blocks": [list(b) for b in self.blocks], "fitted_on": self.fitted_on_,
                "min_records": self.min_records, "active": self.active, "kinds": list(self.means_)}

    def state(self) -> np.ndarray | None:
        return np.stack(list(self.means_.values())) if self.means_ else None

    @staticmethod
    def write(folder: Path, means: np.ndarray | None) -> None:
        if means is not None:
            np.save(folder / FILE, means)

    @classmethod
    def load(cls, folder: Path, params: dict | None, *, dim: int) -> "VectorCentering":
        """The centring a snapshot was built with; a manifest without one (older snapshots) is the identity."""
        if not params:
            return cls([(dim, 1.0)])
        c = cls([tuple(b) for b in params["blocks"]], min_records=params.get("min_records", 100))
        c.fitted_on_ = params.get("fitted_on", 0)
        if params.get("active"):
            means = np.load(folder / FILE)
            kinds = params.get("kinds") or [CORPUS]
            if means.shape != (len(kinds), c.dim) or c.dim != dim:
                raise ValueError(f"{FILE} holds {means.shape} values for {len(kinds)} means of a {dim}-d index")
            c.means_ = {k: means[i].astype(np.float32) for i, k in enumerate(kinds)}
        return c


class KindSums:
    """Float64 sums of vectors per record kind, added a batch at a time.

    Summed in slices of ``ROWS`` rows, whatever the batches' sizes, so the means come out
    bit for bit as from one array of every vector: a build of a million 512-d vectors fits its
    centring from its batches instead of a 2 GB array."""

    def __init__(self, dim: int):
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}
        self.n = 0
        self._buf = np.empty((ROWS, dim), dtype=np.float32)
        self._kinds: list[str] = []

    def add(self, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        start = 0
        while start < len(vectors):
            if not self._kinds and len(vectors) - start >= ROWS:  # a whole slice: no copy
                self._sum(vectors[start:start + ROWS], list(kinds[start:start + ROWS]))
                start += ROWS
                continue
            take = min(ROWS - len(self._kinds), len(vectors) - start)
            self._buf[len(self._kinds):len(self._kinds) + take] = vectors[start:start + take]
            self._kinds.extend(kinds[start:start + take])
            start += take
            if len(self._kinds) == ROWS:
                self.flush()

    def flush(self) -> None:
        if self._kinds:
            self._sum(self._buf[:len(self._kinds)], self._kinds)
            self._kinds = []

    def _sum(self, rows: np.ndarray, kinds: list[str]) -> None:
        which = np.asarray(kinds, dtype=object)
        for kind in sorted(set(kinds)):
            mask = which == kind
            total = self.sums.setdefault(kind, np.zeros(rows.shape[1], dtype=np.float64))
            total += rows[mask].sum(axis=0, dtype=np.float64)
            self.counts[kind] = self.counts.get(kind, 0) + int(mask.sum())
        self.n += len(rows)
