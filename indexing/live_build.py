"""Building a live index from scratch: two streaming passes over the record store.

The first pass embeds every record into the embedding cache, sums the vectors for the centring
and keeps the ones an approximate index trains on; the second reads each batch's vectors back from
the cache, centres them and tokenises the batch into backend entries, which the backend takes in
and drops. So peak memory is the backend's own structures plus one batch and the training sample,
not every record's vector (2 GB at a million) nor its text and tokens.

:meth:`indexing.live.LiveIndex.build` runs a :class:`StreamingBuild` and hands its entries to the
backend; :class:`BuildReport` is what a build or an in-place refresh reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caselink.config import Settings
from indexing.backend import Entry
from indexing.centering import KindSums, VectorCentering
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder
from indexing.records import Record
from indexing.store import RecordStore
from indexing.term_stash import TermStash
from indexing.tokenize import read_user_dict
from indexing.vectors import training_rows

Progress = Callable[[str, int, int], None]  # (stage, advance, total)
BUILD_BATCH = 2000  # records per step of a build or a replay: large enough for the encoder's batches


def batched(items: Iterable, n: int) -> Iterator[list]:
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


def entry_terms(docs: DocumentBuilder, record: Record) -> tuple[list[str], frozenset[str], list[str]]:
    """A record's keyword terms, codes and title terms: what an Entry takes besides the record and vector."""
    # One object per distinct term (interned): a stashed batch pickles each term once.
    return ([sys.intern(t) for t in docs.tokens(record)], docs.codes(record),
            [sys.intern(t) for t in docs.title_tokens(record)])


def dictionary(settings: Settings, facets: list[tuple]) -> list[str]:
    """Terms jieba must keep whole: stored product, model and module names plus the user dictionary."""
    words = {v for row in facets for v in row[3:6] if v}
    if settings.text.user_dict is not None:
        words.update(read_user_dict(settings.text.user_dict))
    return sorted(words)


class StreamingBuild:
    """One build's two passes over ``store``: :meth:`embed_all`, then :meth:`entries`, then :meth:`close`.

    ``total`` is the number of stored records when the build began (for the progress bar and the
    training sample); records stored or deleted while it runs are taken as they are found.
    ``centering`` is fitted by the first pass when ``vectors.center`` is on.
    """

    def __init__(self, settings: Settings, store: RecordStore, encoder: Encoder, cache: EmbeddingCache,
                 docs: DocumentBuilder, centering: VectorCentering, *, total: int,
                 progress: Progress | None = None):
        self.settings, self.store, self.encoder, self.cache = settings, store, encoder, cache
        self.docs, self.centering, self.total, self.progress = docs, centering, total, progress
        self.done = 0  # records the first pass embedded
        self.embedded = 0  # texts sent to the encoder (cache misses), both passes
        self.nums: np.ndarray | None = None  # their store nums, in the order embedded
        self.sample: np.ndarray | None = None  # the vectors an approximate index trains on, centred
        # Milvus stores each record's keyword weights, which bake in the corpus's mean length:
        # tokenising in the first pass and summing the lengths lets it write every row once with
        # the final mean (instead of each row again when the build ends); the terms wait on disk
        # for the second pass, so nothing is tokenised twice and no more than a batch is held.
        self.stash = TermStash(settings.data_dir if settings.data_dir.is_dir() else None) \
            if settings.backend.kind == "milvus" else None
        self.term_total: int | None = 0 if self.stash is not None else None

    def embed_all(self) -> None:
        """The first pass: embed every record, fit the centring, keep the training sample."""
        settings, encoder, docs, total, progress = self.settings, self.encoder, self.docs, self.total, self.progress
        nums = np.zeros(total, dtype=np.int64)
        # The vectors an approximate index trains on, in the order it takes them (VectorIndex.prepare).
        # (Only the local backend trains an index; Milvus builds its own from the entries.)
        picked = training_rows(total) if settings.backend.kind == "local" else np.zeros(0, dtype=np.int64)
        order = np.argsort(picked)
        sample = np.zeros((len(picked), encoder.dim), dtype=np.float32)
        sample_kinds: list[str] = [""] * len(picked)
        sums = KindSums(encoder.dim)
        done = embedded = 0
        for batch in batched(self.store.iter_records(BUILD_BATCH), BUILD_BATCH):
            recs = [sr.record for sr in batch]
            v, n = self.cache.encode(encoder, [docs.embedding_text(r) for r in recs],
                                     progress=(lambda k: progress("embed", k, total)) if progress else None)
            if done + len(batch) > len(nums):  # records stored while the build runs
                nums = np.concatenate([nums, np.zeros(len(batch), dtype=np.int64)])
            nums[done:done + len(batch)] = [sr.num for sr in batch]
            kinds = [r.kind for r in recs]
            sums.add(v, kinds)
            if self.stash is not None:
                terms = [entry_terms(docs, r) for r in recs]
                self.term_total += sum(len(t[0]) for t in terms)
                self.stash.put([sr.num for sr in batch], terms)
            lo, hi = np.searchsorted(picked[order], [done, done + len(batch)])
            rows = order[lo:hi]  # the sample rows whose vector is in this batch
            sample[rows] = v[picked[rows] - done]
            for row in rows:
                sample_kinds[row] = sys.intern(kinds[picked[row] - done])
            done += len(batch)
            embedded += n
        if done < total:  # records deleted while the build ran: their sample rows were never filled
            keep = picked < done
            sample, sample_kinds = sample[keep], [k for k, ok in zip(sample_kinds, keep) if ok]
        if settings.vectors.center:
            self.centering.fit_sums(sums)
            self.centering.transform(sample, sample_kinds, out=sample)
        self.nums, self.sample, self.done, self.embedded = nums[:done], sample, done, embedded

    def entries(self, embed_new: Callable[[list[Record]], tuple[np.ndarray, int]]) -> Iterator[list[Entry]]:
        """The second pass: each batch of the store as backend entries. ``embed_new`` gives the
        index-space vectors of records stored since the first pass, and how many texts it encoded."""
        settings, docs, stash = self.settings, self.docs, self.stash
        nums = self.nums
        # The store is read again in num order; a record stored between the passes is
        # embedded now, one deleted is simply not there, one changed is replayed after the
        # build's position.
        for batch in batched(self.store.iter_records(BUILD_BATCH), BUILD_BATCH):
            recs = [sr.record for sr in batch]
            pos = np.searchsorted(nums, [sr.num for sr in batch])
            known = [p < len(nums) and nums[p] == sr.num for p, sr in zip(pos, batch)]
            seen = [r for r, k in zip(recs, known) if k]
            # Every one was embedded by the first pass: read back from the cache (n is 0
            # unless the cache lost them meanwhile).
            v, n = self.cache.encode(self.encoder, [docs.embedding_text(r) for r in seen])
            if settings.vectors.center:
                self.centering.transform(v, [r.kind for r in seen], out=v)
            self.embedded += n
            old = iter(v)
            new = [r for r, k in zip(recs, known) if not k]
            extra: Iterator = iter(())
            if new:
                vecs, n = embed_new(new)
                extra = iter(vecs)
                self.embedded += n
            yield [Entry.of(r, next(old) if k else next(extra),
                            *((stash.take(sr.num) if stash is not None and k else None) or entry_terms(docs, r)))
                   for r, k, sr in zip(recs, known, batch)]
            if self.progress:
                self.progress("tokenise", len(batch), self.total)

    def close(self) -> None:
        """Delete the stashed terms and drop the first pass's arrays, once the backend has taken
        the entries and the sample (or failed to)."""
        if self.stash is not None:
            self.stash.close()
        self.nums = self.sample = None
