"""The record store: the source of truth. Indexes are derived from it and can be rebuilt.

One store, two databases (:mod:`indexing.store_db`): a SQLite file (the embedded default, one
host) or PostgreSQL (shared by several caselink processes on several hosts). The queries are
written once, with SQLAlchemy Core. What each schema version added, and how an older store is
brought up to date on open, is in :mod:`indexing.store_schema`.

Every write also appends to a ``changes`` log with a sequence number in the same transaction.
An index records the last sequence it contains; on open, and while a server runs, later changes
are replayed into it. That is what makes an acknowledged PUT or DELETE survive ``kill -9`` of the
server: the acknowledgement is sent only after the transaction commits (SQLite: WAL,
synchronous=FULL; PostgreSQL: its commit).

Writers go one at a time, on both databases: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
transaction-level advisory lock (:data:`~indexing.store_db.WRITE_LOCK_KEY`) taken first in every
write transaction and held until it commits. So no update is lost (the read of a record's stored
hash and the write that follows it are not interleaved with another writer), and change-log
positions are handed out in commit order: a reader that has seen position *n* has seen every
position below it. Without the lock, PostgreSQL's identity would let a transaction holding
position 10 commit after one holding 11, and a follower that read 11 first would skip 10 for
ever. Reads take no lock.

Each record has an integer ``num`` (never reused), the store's own key, and facet columns (kind,
product, ...) so filters load without parsing JSON. Search backends know records by id; each
change names the record's id so they can follow the log.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from caselink.errors import CaselinkError
from indexing.records import Record, record_from_json
from indexing.store_db import (FEEDBACK, RECORDS, SQL, WRITE_LOCK_KEY, Location, SqliteReaders, hold_shared,
                               make_engine, retrying, translated)
from indexing.store_schema import SCHEMA_VERSION, query_key, set_up  # noqa: F401 - SCHEMA_VERSION: the store's door
from indexing.store_writes import (CHUNK, UpsertResult, delete_ids, driver_sql, insert_rows, insert_votes,
                                   runs_of_distinct_ids, upsert_part)
from indexing.store_terms import Corpus, WriteTx, read_term_stats

T = TypeVar("T")


@dataclass(frozen=True)
class StoredRecord:
    num: int
    record: Record


@dataclass(frozen=True)
class Feedback:
    fid: int
    query: str
    query_id: str
    record_id: str
    helpful: bool
    source: str
    created: float


class RecordStore:
    """Records, change log and feedback in SQLite or PostgreSQL. Safe to share between threads.

    ``where``: a SQLite file path (or ``sqlite:///path``) or a ``postgresql://`` URL; the
    password, when the URL has one, is never shown (:attr:`where`). Nothing connects until
    :meth:`open`.
    """

    def __init__(self, where: str | Path):
        self.location = Location.parse(where)
        self.path = self.location.path  # the SQLite file; None on PostgreSQL
        self._lock = threading.RLock()  # one writer at a time in this process (others wait here, not in the database)
        self._engine: Engine | None = None
        self._use: int | None = None  # SQLite: the shared lock on lock_path(path) while open
        self._readers: SqliteReaders | None = None  # SQLite: the search path's read connections
        self._driver_sql = driver_sql(self.location.dialect)
        self.store_id_ = ""

    @property
    def where(self) -> str:
        """The store named for a person: the file, or the URL without its password."""
        return self.location.shown

    @property
    def shared(self) -> bool:
        """True on PostgreSQL: other hosts' caselink processes may write to this store."""
        return self.location.dialect == "postgresql"

    def open(self) -> "RecordStore":
        with self._lock:
            if self._engine is None:
                try:
                    if self.path is not None:
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        self._use = hold_shared(self.path)
                    self._engine = make_engine(self.location)
                    self.store_id_ = self._write(lambda conn: set_up(conn, postgres=self.shared))
                    if self.path is not None:  # after set_up: the file is in WAL mode by now
                        self._readers = SqliteReaders(self.path)
                except BaseException:
                    self.close()  # not left half-open for the next call to use
                    raise
        return self

    @classmethod
    def existing(cls, where: str | Path) -> "RecordStore":
        """The store at ``where``, opened; an error saying what to run when there is none yet."""
        store = cls(where)
        if store.path is not None and not store.path.is_file():
            raise CaselinkError(f"no record store at {store.where}", hint="index your records first: caselink index")
        if store.path is None:
            engine = make_engine(store.location)
            try:
                found = store._guarded(lambda: sa.inspect(engine).has_table("meta"))
            finally:
                engine.dispose()
            if not found:
                raise CaselinkError(f"no record store at {store.where}",
                                    hint="index your records first: caselink index")
        return store.open()

    def close(self) -> None:
        with self._lock:
            if self._readers is not None:
                self._readers.close()
                self._readers = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            if self._use is not None:
                os.close(self._use)  # releases the shared lock
                self._use = None

    def __enter__(self) -> "RecordStore":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------------
    def _guarded(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except sa.exc.SQLAlchemyError as exc:
            raise translated(self.location, exc) from None

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[Connection]:
        if self._engine is None:
            self.open()
        with self._engine.connect() as conn:  # type: ignore[union-attr]
            if write:
                conn.execution_options(write=True)
            yield conn

    def _write(self, fn: Callable[[Connection], T], then: Callable[[WriteTx], None] | None = None) -> T:
        """``fn`` in one write transaction: committed when it returns (acknowledged = committed),
        rolled back when it raises; retried whole after a PostgreSQL serialization failure.
        ``then`` joins the same transaction after ``fn`` (:class:`WriteTx`: a shared search
        backend's write); its after-commit callbacks run once the transaction has committed."""
        done: list[Callable[[], None]] = []

        def attempt() -> T:
            done.clear()
            with self._lock, self._connection(write=True) as conn, conn.begin():
                if self.shared:
                    conn.execute(SQL["pg_lock_timeout"])
                    conn.execute(SQL["pg_lock"], {"key": WRITE_LOCK_KEY})
                out = fn(conn)
                if then is not None:
                    tx = WriteTx(conn, self._driver_sql)
                    then(tx)
                    done.extend(tx.after_commit)
                return out
        out = self._guarded(lambda: retrying(attempt))
        for callback in done:
            callback()
        return out

    def transaction(self, fn: Callable[[WriteTx], T]) -> T:
        """``fn`` in one write transaction of its own (the write lock held), for a shared search
        backend's writes that come with no record write (catching up, a build, re-weighing)."""
        box: list[T] = []
        self._write(lambda conn: None, then=lambda tx: box.append(fn(tx)))
        return box[0]

    def _read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one read transaction (one consistent view of the store)."""
        def attempt() -> T:
            with self._connection() as conn:
                return fn(conn)
        return self._guarded(attempt)

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, records: Iterable[Record]) -> list[UpsertResult]:
        """Insert or replace records in one transaction; an identical record logs no change."""
        return self.write(records)[0]

    def delete(self, record_id: str) -> int | None:
        """Delete a record; returns its num, or None if there was no such record."""
        return self.write(deletes=[record_id])[1][0]

    def write(self, upserts: Iterable[Record] = (), deletes: Iterable[str] = (), *,
              then: Callable[[WriteTx, list[UpsertResult], list[int | None]], None] | None = None
              ) -> tuple[list[UpsertResult], list[int | None]]:
        """Upsert ``upserts``, then delete ``deletes``, in one transaction: all of it or none.

        Returns the upserts' results and, per id deleted, its num (None: it was not stored).
        A revised SOP document is written this way, so a failure between its new sections and
        the removal of its old ones cannot leave a half-replaced document. ``then(tx, results,
        gone)`` runs inside the same transaction before it commits (a shared search backend
        applying the write, so it commits with it or not at all).
        """
        rows = [(rec.id, rec.content_hash(), rec) for rec in upserts]
        ids = list(deletes)
        sql = self._driver_sql
        box: list = []

        def run(conn: Connection) -> tuple[list[UpsertResult], list[int | None]]:
            out: list[UpsertResult] = []
            now = time.time()
            for part in runs_of_distinct_ids(rows):
                out += upsert_part(conn, sql, part, now)
            box[:] = [out, delete_ids(conn, sql, ids)]
            return box[0], box[1]
        return self._write(run, None if then is None else lambda tx: then(tx, box[0], box[1]))

    def add_feedback(self, *, record_id: str, helpful: bool, query: str = "", query_id: str = "",
                     source: str = "") -> int:
        row = {"query": query, "query_id": query_id, "record_id": record_id, "helpful": int(helpful),
               "source": source, "created": time.time(), "query_key": query_key(query)}
        return int(self._write(lambda c: c.execute(sa.insert(FEEDBACK).returning(FEEDBACK.c.fid), row).scalar_one()))

    def delete_feedback(self, fid: int) -> bool:
        """Remove one vote (taken back); False when there is no vote ``fid``."""
        return self._write(lambda c: c.execute(SQL["feedback_delete"], {"fid": int(fid)}).rowcount > 0)

    def prune_changes(self, upto: int) -> int:
        """Delete change-log rows with ``seq <= upto``; remembers how far the log was pruned."""
        def run(conn: Connection) -> int:
            n = conn.execute(SQL["prune"], {"upto": upto}).rowcount
            before = int(conn.execute(SQL["meta"], {"key": "changes_pruned_upto"}).scalar() or 0)
            conn.execute(SQL["meta_set"], {"key": "changes_pruned_upto", "value": str(max(before, upto))})
            return n
        return self._write(run)

    def import_rows(self, rows: list[tuple], votes: list[Feedback] = ()) -> None:
        """Add records and votes copied from another store (:meth:`export_rows`, :meth:`feedback`)
        in one transaction, keeping their update times, vote ids and vote times."""
        sql = self._driver_sql
        vote_rows = [(v.fid, v.query, v.query_id, v.record_id, int(v.helpful), v.source, v.created,
                      query_key(v.query)) for v in votes]

        def run(conn: Connection) -> None:
            insert_rows(conn, sql, [tuple(r[1:]) for r in rows])
            insert_votes(conn, sql, vote_rows, postgres=self.shared)
        self._write(run)

    # -- reads ------------------------------------------------------------------------------
    def export_rows(self, *, after: int = 0, limit: int = 2000) -> list[tuple]:
        """Stored rows as they are, ``(num, id, kind, product, model, module, status, created, body,
        hash, updated)``, by num after ``after``: what :meth:`import_rows` takes."""
        q = sa.select(RECORDS).where(RECORDS.c.num > after).order_by(RECORDS.c.num).limit(limit)
        q = q.with_only_columns(RECORDS.c.num, RECORDS.c.id, RECORDS.c.kind, RECORDS.c.product, RECORDS.c.model,
                                RECORDS.c.module, RECORDS.c.status, RECORDS.c.created, RECORDS.c.body,
                                RECORDS.c.hash, RECORDS.c.updated)
        return [tuple(r) for r in self._read(lambda c: c.execute(q).all())]

    def get(self, record_id: str) -> StoredRecord | None:
        row = self._read(lambda c: c.execute(SQL["get"], {"id": record_id}).first())
        return None if row is None else StoredRecord(int(row[0]), record_from_json(row[1]))

    def num_of(self, record_id: str) -> int | None:
        """The record's integer key, without reading its body."""
        num = self._read(lambda c: c.execute(SQL["num_of"], {"id": record_id}).scalar())
        return None if num is None else int(num)

    def nums_of(self, record_ids: Iterable[str]) -> dict[str, int]:
        """The integer keys of the stored ones of ``record_ids``, in one query per CHUNK ids."""
        ids = list(dict.fromkeys(record_ids))
        return self._read(lambda c: {rid: int(num) for part in _chunks(ids)
                                     for rid, num in c.execute(SQL["nums_of"], {"ids": part})})

    def get_many(self, nums: Iterable[int]) -> dict[int, Record]:
        nums = [int(n) for n in nums]
        return self._read(lambda c: {int(num): record_from_json(body) for part in _chunks(nums)
                                     for num, body in c.execute(SQL["get_many"], {"nums": part})})

    def records(self, record_ids: Iterable[str], *, shared: bool = False) -> dict[str, Record]:
        """The stored ones of ``record_ids`` by id, in one query per CHUNK ids. What every search
        reads for its results: bodies parsed before are not validated again (:func:`_parsed`).

        Each record is the caller's own copy, unless ``shared``: then it is the parse cache's
        record itself, the same object for the same stored body, which the caller must not change
        (the search path, which only reads, and keys what it prepares per record on that object)."""
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return {}
        if self._engine is None:
            self.open()

        def select(cur, keys: list[str]) -> dict[str, Record]:
            out: dict[str, Record] = {}
            for part in _chunks(keys):
                cur.execute(self._driver_sql(f"SELECT id, body FROM records WHERE id IN ({','.join('?' * len(part))})"),
                            part)
                out.update((rid, _parsed(body)) for rid, body in cur.fetchall())
            return out

        def run() -> dict[str, Record]:
            # The driver's own cursor: SQLAlchemy's statement handling (expanding IN, events,
            # result objects) cost three times the query itself here, on every search; on SQLite
            # connections held open for the store's lifetime (SqliteReaders), as the pool's
            # checkout and return cost as much again, which also remember what they read until
            # anything is committed. One SELECT per chunk, each a consistent read; the driver's
            # errors become SQLAlchemy's, so they are translated as every other read's are.
            dbapi = self._engine.dialect.loaded_dbapi  # type: ignore[union-attr]
            readers = self._readers
            try:
                if readers is not None:
                    return readers.lookup(ids, select)
                conn = self._engine.raw_connection()  # type: ignore[union-attr]
                try:
                    return select(conn.cursor(), ids)
                finally:
                    conn.close()  # back to the pool, rolled back
            except dbapi.Error as exc:
                raise sa.exc.DBAPIError.instance("SELECT id, body FROM records WHERE id IN (...)", ids, exc,
                                                 dbapi.Error) from exc

        found = self._guarded(run)
        if shared:
            return found
        # deep: a shallow copy shares error_codes, links and attributes with the caches
        return {rid: rec.model_copy(deep=True) for rid, rec in found.items()}

    def iter_records(self, batch: int = 2000) -> Iterator[StoredRecord]:
        last = 0
        while True:
            rows = self._read(lambda c: c.execute(SQL["iter"], {"last": last, "n": batch}).all())
            if not rows:
                return
            for num, body in rows:
                yield StoredRecord(int(num), record_from_json(body))
            last = rows[-1][0]

    def list_ids(self, *, after: str = "", limit: int = 1000, kinds: Iterable[str] = ()
                 ) -> tuple[list[tuple[str, str, float, str]], str | None]:
        """One page of the stored records' ``(id, kind, updated, hash)`` in id order, starting
        after ``after``, and the id to pass as ``after`` for the next page (None: the last page).

        A range on the unique id index, so a walk stays consistent while records are written: an
        id stored meanwhile shows up if it sorts later, and none is listed twice."""
        q = sa.select(RECORDS.c.id, RECORDS.c.kind, RECORDS.c.updated, RECORDS.c.hash).where(RECORDS.c.id > after)
        kinds = list(kinds)
        if kinds:
            q = q.where(RECORDS.c.kind.in_(kinds))
        q = q.order_by(RECORDS.c.id).limit(int(limit) + 1)  # one more: is there a next page?
        rows = [tuple(r) for r in self._read(lambda c: c.execute(q).all())]
        return rows[:limit], (rows[limit - 1][0] if len(rows) > limit else None)

    def sections(self, doc_id: str) -> list[Record]:
        """The stored SOP sections of document ``doc_id``, in section order (#2 before #10)."""
        # Section ids are {doc_id}#{n}: a range on the unique id index ('$' sorts right after '#'),
        # not a scan of the table; the body's doc_id confirms each one.
        rows = self._read(lambda c: c.execute(SQL["sections"], {"lo": f"{doc_id}#", "hi": f"{doc_id}$"}).all())
        recs = [r for r in (record_from_json(body) for (body,) in rows) if r.doc_id == doc_id]
        return sorted(recs, key=lambda r: _section_order(r.id))

    def sections_of(self, doc_id: str) -> list[str]:
        """Ids of the stored SOP sections of document ``doc_id``, in section order."""
        return [r.id for r in self.sections(doc_id)]

    def sample(self, n: int) -> list[Record]:
        """Up to ``n`` records spread evenly over the store (every k-th by insertion order)."""
        step = max(1, self.total() // max(n, 1))
        rows = self._read(lambda c: c.execute(SQL["sample"], {"step": step, "n": n}).all())
        return [record_from_json(body) for (body,) in rows]

    def facets(self) -> list[tuple]:
        """(num, id, kind, product, model, module, status, created) of every record."""
        return [tuple(r) for r in self._read(lambda c: c.execute(SQL["facets"]).all())]

    def total(self) -> int:
        return int(self._read(lambda c: c.execute(SQL["total"]).scalar_one()))

    def count(self) -> dict[str, int]:
        return {k: int(n) for k, n in self._read(lambda c: c.execute(SQL["count"]).all())}

    def last_seq(self) -> int:
        """The newest committed change's sequence number; pruning the log never lowers it (SQLite:
        AUTOINCREMENT's high-water mark; PostgreSQL: how far the log was pruned)."""
        def run(conn: Connection) -> int:
            newest = int(conn.execute(SQL["max_seq"]).scalar_one())
            # Not PostgreSQL's sequence value: it counts positions still uncommitted, and an
            # index claiming one of those would never replay it.
            floor = (conn.execute(SQL["sqlite_seq"]).scalar_one() if not self.shared
                     else conn.execute(SQL["meta"], {"key": "changes_pruned_upto"}).scalar())
            return max(newest, int(floor or 0))
        return self._read(run)

    def pruned_upto(self) -> int:
        """Changes up to this sequence number are gone from the log (0: never pruned)."""
        value = self._read(lambda c: c.execute(SQL["meta"], {"key": "changes_pruned_upto"}).scalar())
        return int(value) if value else 0

    def changes_since(self, seq: int) -> list[tuple[int, int, str, str | None]]:
        """(seq, num, op, record id) after ``seq``, oldest first. The id is None only for a change
        logged before schema version 3 about a record deleted since."""
        rows = self._read(lambda c: c.execute(SQL["since"], {"seq": seq}).all())
        return [(int(s), int(n), op, rid) for s, n, op, rid in rows]

    def term_stats(self, term_ids: Iterable[int]) -> tuple[dict[int, int], Corpus]:
        """Document frequencies of ``term_ids`` (those some record holds) and the keyword corpus,
        as committed now: what a shared search backend weighs a query with."""
        keys = list(term_ids)
        return self._read(lambda c: read_term_stats(c, self._driver_sql, keys))

    def feedback(self) -> list[Feedback]:
        rows = self._read(lambda c: c.execute(SQL["feedback"]).all())
        return [Feedback(int(r[0]), r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def feedback_count(self) -> int:
        return int(self._read(lambda c: c.execute(SQL["feedback_count"]).scalar_one()))

    def feedback_between(self, record_id: str) -> list[tuple[str, str, bool]]:
        """Feedback pairing ``record_id`` with another record, either way round, oldest first:
        ``(other id, source, helpful)``. Feedback on free-text queries is not included."""
        rows = self._read(lambda c: c.execute(SQL["between"], {"id": record_id}).all())
        return [(other, source, bool(helpful)) for _, other, source, helpful in rows if other != record_id]

    def feedback_for_query(self, text: str) -> list[tuple[str, str, bool]]:
        """Feedback on earlier searches for the same text (:func:`query_key`), oldest first:
        ``(record id, source, helpful)``. Feedback given for a record (``query_id``) is not included."""
        key = query_key(text)
        if not key:
            return []
        rows = self._read(lambda c: c.execute(SQL["for_query"], {"key": key}).all())
        return [(rid, source, bool(helpful)) for rid, source, helpful in rows]


# Validating a stored body was half of what fetching a search's results cost (bench/query_path.md):
# a record shown again (the same problem order for many tickets) is parsed once. Keyed by the body
# itself, so an edited record is parsed afresh and never served stale; the body is still read
# from the store on every call. Callers get a deep copy (RecordStore.records), unless they ask for
# the shared record and promise not to change it. 4096 demo-sized records are about 20 MB.
@functools.lru_cache(maxsize=4096)
def _parsed(body: str) -> Record:
    return record_from_json(body)


def _chunks(items: list) -> Iterator[list]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _section_order(record_id: str) -> tuple[int, str]:
    tail = record_id.rpartition("#")[2]
    return (int(tail), "") if tail.isdigit() else (1 << 30, record_id)
