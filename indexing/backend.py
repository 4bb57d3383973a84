"""The search-backend seam: what any engine behind caselink does, spoken in record ids.

The service (:mod:`recommender.service`) owns the record store, the tokeniser and the encoder.
It prepares every record once (keyword terms, canonical codes, the index-space vector) and
hands a backend :class:`Entry` values; a backend only stores them, filters and searches. So the
tokenisation (OpenCC, jieba with the domain dictionary, codes whole, bigrams) and the fusion
(convex or adaptive, codes first, verdicts) are caselink's whatever engine sits below, and
swapping FAISS + BM25L (``local``) for Milvus (``milvus``) changes where vectors and postings
live, not how caselink ranks.

Contract every backend keeps (the behavioural tests run against each):

- ``write`` is idempotent: writing the same entry twice, or deleting an id that is not there,
  changes nothing. A write is searchable when ``write`` returns (read-your-writes).
- Scores are raw per side: dense = inner product of unit vectors (cosine); keyword = BM25L as a
  share of the query's own score (:meth:`indexing.bm25.BM25Index.score` with ``normalize``),
  so 0-1 and comparable across queries and engines.
- ``filters`` are :class:`indexing.facets.Filters` (case-insensitive equality, dates inclusive,
  ``open_only``, equality on the records' own ``attributes``); ``exclude`` is a collection of record ids never returned.
- Ties are ordered by record id (code-point order), the same on every backend: hits whose scores
  are within ``TIE_TOLERANCE`` of the hit ranked before them form one tie group, ordered by id and
  reported with the group's best score (:func:`settle_ties`). The tolerance absorbs the last bits
  in which engines' float32 sums differ for the same vectors (FAISS and Milvus: about 1e-7), and a
  backend fetches ``TIE_SLACK`` hits beyond ``k`` first, so a group straddling ``k`` is cut at the
  same ids everywhere (a group longer than the slack can still be cut differently).
- ``applied_seq`` is the record store's change-log position whose changes are all in the
  backend (persisted with them), so after a crash the service replays the store's change log
  from there: a backend is derived state, the store is the truth.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

import numpy as np

from indexing.facets import Filters
from indexing.records import Record

__all__ = ["Entry", "Hits", "TermStats", "SearchBackend", "TIE_SLACK", "TIE_TOLERANCE", "settle_ties"]

TIE_TOLERANCE = 1e-5  # scores closer than this to the one ranked before them are a tie
TIE_SLACK = 16  # hits fetched beyond k, so a tie group straddling k is seen whole


@dataclass(frozen=True)
class Entry:
    """One record as a backend indexes it, prepared by the service."""

    id: str
    vector: np.ndarray  # float32 (dim,), index space: encoded, centred, unit length
    terms: Sequence[str]  # keyword terms, repeated as weighted (indexing.document.DocumentBuilder.tokens)
    codes: tuple[str, ...]  # canonical exact codes (DocumentBuilder.codes), sorted
    kind: str
    product: str = ""
    model: str = ""
    module: str = ""
    status: str = ""
    created: date | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)  # the record's own fields, as written
    title_terms: Sequence[str] = ()  # the title's own keyword terms (the learned ranker's title BM25L)

    @classmethod
    def of(cls, record: Record, vector: np.ndarray, terms: Sequence[str], codes: Collection[str],
           title_terms: Sequence[str] = ()) -> "Entry":
        created = date.fromisoformat(str(record.created)[:10]) if record.created else None
        return cls(id=record.id, vector=vector, terms=terms, codes=tuple(sorted(codes)), kind=record.kind,
                   product=record.product or "", model=record.model or "", module=record.module or "",
                   status=record.status or "", created=created, attributes=dict(record.attributes),
                   title_terms=title_terms)


@dataclass(frozen=True)
class Hits:
    """One side's ranking: ids best first, their raw scores, and each hit's exact codes (what
    "codes first" needs without a second round trip)."""

    ids: list[str]
    scores: np.ndarray  # float32, descending
    codes: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.ids)


def settle_ties(ids: Sequence[str], scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The final order of one side's hits: (positions into ``ids``, their scores), at most ``k``.

    Scores best first; a hit within ``TIE_TOLERANCE`` of the hit before it joins that hit's tie
    group (so groups are chains, not rounding buckets: two engines that differ by 1e-7 never land
    either side of a bucket edge). A group is ordered by record id and every member reports the
    group's first score, so fusion sees exact ties and breaks them by id too.

    >>> order, s = settle_ties(["b", "a", "c"], np.array([0.9, 0.9000001, 0.5], np.float32), 2)
    >>> order.tolist(), s.tolist() == [np.float32(0.9000001)] * 2
    ([1, 0], True)
    """
    scores = np.asarray(scores, dtype=np.float32)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64), scores
    first = np.argsort(-scores, kind="stable")
    ranked = scores[first]
    opens = np.r_[True, ranked[:-1] - ranked[1:] > TIE_TOLERANCE]  # a hit that starts a new group
    group = np.cumsum(opens) - 1
    starts = np.flatnonzero(opens)
    order = np.lexsort((np.asarray(ids, dtype=str)[first], group))[:k]
    return first[order], ranked[starts][group[order]]


@dataclass(frozen=True)
class TermStats:
    """What the keyword side knows of terms: document frequency per term and the live count,
    so the service can weigh a record's terms (related records keep the most distinctive)."""

    df: np.ndarray  # int64, one per term asked
    n_docs: int


@runtime_checkable
class SearchBackend(Protocol):
    """One engine holding caselink's dense vectors, keyword postings and filter fields."""

    name: str  # "local", "milvus": what stats and the manifest report

    def write(self, upserts: Sequence[Entry] = (), deletes: Collection[str] = (), *, seq: int) -> None:
        """Index ``upserts`` and drop ``deletes`` (idempotent); ``seq`` is the store's change-log
        position these writes bring the backend to (never moves ``applied_seq`` backwards)."""
        ...

    def search_dense(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                     exclude: Collection[str] = ()) -> Hits: ...

    def search_keyword(self, terms: Sequence[str], k: int, filters: Filters | None = None,
                       exclude: Collection[str] = ()) -> Hits: ...

    def score_keyword(self, terms: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        """The keyword score ``search_keyword`` would give each of ``ids`` (0 where none of the
        terms match or the id is not indexed): how eval scores labeled pairs."""
        ...

    def term_stats(self, terms: Sequence[str]) -> TermStats: ...

    def admits(self, ids: Collection[str], filters: Filters | None = None,
               exclude: Collection[str] = ()) -> set[str]:
        """The ids among ``ids`` that are indexed and pass ``filters`` (feedback brings records
        the ranking missed; they must still obey the request's filters)."""
        ...

    def count(self) -> int: ...

    def describe(self) -> dict:
        """What ``caselink stats`` and ``GET /v1/stats`` report of the engine (no credentials)."""
        ...

    def applied_seq(self) -> int: ...

    def persist(self) -> None:
        """Make what was written durable in the backend's own terms (a snapshot, a flush)."""
        ...

    def close(self) -> None: ...
