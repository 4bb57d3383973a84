"""Moving a record store into another database: how an existing SQLite store becomes the shared
PostgreSQL one (``caselink copy-store``).

Records are copied as stored (body, hash, update time), votes with their ids and times; the copy
is a new store (its own ``store_id`` and change log), so every index built from the old one is
rebuilt by ``caselink index`` against the new one, re-embedding nothing the embedding cache holds.
Run it with the servers stopped: writes made during the copy would not be in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from caselink.errors import CaselinkError
from indexing.store import RecordStore

BATCH = 2000  # records per transaction of the copy


@dataclass(frozen=True)
class CopyReport:
    records: int
    votes: int
    seconds: float


def copy_store(source: RecordStore, target: RecordStore,
               progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every record and vote of ``source`` into ``target``, which must be empty."""
    t0 = time.perf_counter()
    if source.location == target.location:
        raise CaselinkError(f"the source and the target are the same store ({source.where})", field="target")
    held = target.total(), target.feedback_count()
    if any(held):
        raise CaselinkError(f"{target.where} already holds {held[0]} records and {held[1]} votes",
                            field="target", hint="copy into an empty database")
    total, done, last = source.total(), 0, 0
    while rows := source.export_rows(after=last, limit=BATCH):
        target.import_rows(rows)
        done += len(rows)
        last = rows[-1][0]
        if progress:
            progress(done, total)
    votes = source.feedback()
    target.import_rows([], votes)
    return CopyReport(done, len(votes), time.perf_counter() - t0)
