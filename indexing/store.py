"""The record store: SQLite, the source of truth. Indexes are derived from it and can be rebuilt.

Every write also appends to a ``changes`` log with a sequence number in the same transaction.
An index on disk records the last sequence it contains; on open, later changes are replayed into
it. That is what makes an acknowledged PUT or DELETE survive ``kill -9`` of the server: the
acknowledgement is sent only after the SQLite transaction commits (WAL, synchronous=FULL).

Each record has an integer ``num`` (never reused, AUTOINCREMENT) that FAISS and BM25 use as
their key, and facet columns (kind, product, ...) so filters load without parsing JSON.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from caselink.errors import CaselinkError
from indexing.normalize import normalize
from indexing.records import Record, record_from_json, record_to_json

# 2: feedback.query_key (the normalised query text) and the feedback indexes. Opening a version 1
# store adds and fills them; version 1 code can still open a version 2 store.
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    product TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    module TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    created TEXT,
    body TEXT NOT NULL,
    hash TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    num INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete'))
);
CREATE TABLE IF NOT EXISTS feedback (
    fid INTEGER PRIMARY KEY AUTOINCREMENT,
    query TEXT NOT NULL DEFAULT '',
    query_id TEXT NOT NULL DEFAULT '',
    record_id TEXT NOT NULL,
    helpful INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    query_key TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS feedback_query_id ON feedback (query_id);
CREATE INDEX IF NOT EXISTS feedback_record_id ON feedback (record_id);
CREATE INDEX IF NOT EXISTS feedback_query_key ON feedback (query_key);
"""


def lock_path(store_path: Path) -> Path:
    """Every process with the store open holds a shared lock on this file; a restore takes it
    exclusively, so it never replaces a store a server is writing to."""
    return Path(f"{store_path}.lock")


def hold_shared(store_path: Path) -> int:
    """Take the shared lock on :func:`lock_path`; the descriptor holds it until closed."""
    fd = os.open(lock_path(store_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CaselinkError(f"the record store {store_path} is being restored from a backup",
                            hint="try again when caselink restore has finished") from None
    return fd


def query_key(text: str) -> str:
    """What makes two search texts "the same search": :func:`~indexing.normalize.normalize`d
    (one script, half-width, case-folded, single spaces), independent of the text settings."""
    return normalize(text)


@dataclass(frozen=True)
class StoredRecord:
    num: int
    record: Record


@dataclass(frozen=True)
class UpsertResult:
    num: int
    changed: bool  # False when the stored record was identical: nothing was written
    created: bool  # True when the id was new


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
    """SQLite-backed records, change log and feedback. Safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._use: int | None = None  # the shared lock on lock_path(path) while open
        self.store_id_ = ""

    def open(self) -> "RecordStore":
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._use = hold_shared(self.path)
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
                self._conn = conn
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                self._migrate()
                conn.executescript(_INDEXES)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                # Names this store for the index built from it: an index never serves another store's
                # records (a data folder pointed at another records.sqlite). A backup keeps the id.
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
                self.store_id_ = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
            except BaseException:
                self.close()  # not left half-open for the next call to use
                raise
        return self

    @classmethod
    def existing(cls, path: Path) -> "RecordStore":
        """The store at ``path``, opened; an error saying what to run when there is none yet."""
        if not Path(path).is_file():
            raise CaselinkError(f"no record store at {path}", hint="index your records first: caselink index")
        return cls(path).open()

    def _migrate(self) -> None:
        """Bring a store written by an older caselink up to :data:`SCHEMA_VERSION`, in one transaction."""
        def current(conn: sqlite3.Connection) -> bool:
            return "query_key" in {row[1] for row in conn.execute("PRAGMA table_info(feedback)")}

        if current(self.conn):
            return
        with self._transaction() as conn:
            if current(conn):  # another process migrated it while this one waited for the write lock
                return
            conn.execute("ALTER TABLE feedback ADD COLUMN query_key TEXT NOT NULL DEFAULT ''")
            rows = conn.execute("SELECT fid, query FROM feedback WHERE query != ''").fetchall()
            conn.executemany("UPDATE feedback SET query_key = ? WHERE fid = ?", [(query_key(q), f) for f, q in rows])
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._use is not None:
                os.close(self._use)  # releases the shared lock
                self._use = None

    def __enter__(self) -> "RecordStore":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        return self._conn  # type: ignore[return-value]

    # -- writes -----------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the store lock: committed when the block ends, rolled back
        when it raises (unless SQLite already rolled back after an I/O error)."""
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def upsert(self, records: Iterable[Record]) -> list[UpsertResult]:
        """Insert or replace records in one transaction; an identical record logs no change."""
        return self.write(records)[0]

    def delete(self, record_id: str) -> int | None:
        """Delete a record; returns its num, or None if there was no such record."""
        return self.write(deletes=[record_id])[1][0]

    def write(self, upserts: Iterable[Record] = (), deletes: Iterable[str] = ()
              ) -> tuple[list[UpsertResult], list[int | None]]:
        """Upsert ``upserts``, then delete ``deletes``, in one transaction: all of it or none.

        Returns the upserts' results and, per id deleted, its num (None: it was not stored).
        A revised SOP document is written this way, so a failure between its new sections and
        the removal of its old ones cannot leave a half-replaced document.
        """
        out: list[UpsertResult] = []
        gone: list[int | None] = []
        now = time.time()
        with self._transaction() as conn:
            for rec in upserts:
                h = rec.content_hash()
                row = conn.execute("SELECT num, hash FROM records WHERE id = ?", (rec.id,)).fetchone()
                if row is not None and row[1] == h:
                    out.append(UpsertResult(row[0], False, False))
                    continue
                values = (rec.kind, rec.product, rec.model, rec.module, rec.status,
                          rec.created.isoformat() if rec.created else None, record_to_json(rec), h, now)
                if row is None:
                    cur = conn.execute(
                        "INSERT INTO records (kind, product, model, module, status, created, body, hash,"
                        " updated, id) VALUES (?,?,?,?,?,?,?,?,?,?)", (*values, rec.id))
                    num = cur.lastrowid
                else:
                    num = row[0]
                    conn.execute(
                        "UPDATE records SET kind=?, product=?, model=?, module=?, status=?, created=?,"
                        " body=?, hash=?, updated=? WHERE num=?", (*values, num))
                conn.execute("INSERT INTO changes (num, op) VALUES (?, 'upsert')", (num,))
                out.append(UpsertResult(int(num), True, row is None))
            for record_id in deletes:
                row = conn.execute("SELECT num FROM records WHERE id = ?", (record_id,)).fetchone()
                if row is None:
                    gone.append(None)  # nothing written for it
                    continue
                conn.execute("DELETE FROM records WHERE num = ?", (row[0],))
                conn.execute("INSERT INTO changes (num, op) VALUES (?, 'delete')", (row[0],))
                gone.append(int(row[0]))
        return out, gone

    def add_feedback(self, *, record_id: str, helpful: bool, query: str = "", query_id: str = "",
                     source: str = "") -> int:
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO feedback (query, query_id, record_id, helpful, source, created, query_key)"
                " VALUES (?,?,?,?,?,?,?)",
                (query, query_id, record_id, int(helpful), source, time.time(), query_key(query)))
            return int(cur.lastrowid)

    def delete_feedback(self, fid: int) -> bool:
        """Remove one vote (taken back); False when there is no vote ``fid``."""
        with self._lock:
            return self.conn.execute("DELETE FROM feedback WHERE fid = ?", (fid,)).rowcount > 0

    # -- reads ------------------------------------------------------------------------------
    def get(self, record_id: str) -> StoredRecord | None:
        with self._lock:
            row = self.conn.execute("SELECT num, body FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else StoredRecord(row[0], record_from_json(row[1]))

    def num_of(self, record_id: str) -> int | None:
        """The record's integer key, without reading its body."""
        with self._lock:
            row = self.conn.execute("SELECT num FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else int(row[0])

    def nums_of(self, record_ids: Iterable[str]) -> dict[str, int]:
        """The integer keys of the stored ones of ``record_ids``, in one query per 900 ids."""
        ids = list(dict.fromkeys(record_ids))
        out: dict[str, int] = {}
        with self._lock:
            for start in range(0, len(ids), 900):
                part = ids[start:start + 900]
                q = f"SELECT id, num FROM records WHERE id IN ({','.join('?' * len(part))})"
                out.update((rid, int(num)) for rid, num in self.conn.execute(q, part))
        return out

    def get_many(self, nums: Iterable[int]) -> dict[int, Record]:
        nums = [int(n) for n in nums]
        out: dict[int, Record] = {}
        with self._lock:
            for start in range(0, len(nums), 900):
                part = nums[start:start + 900]
                q = f"SELECT num, body FROM records WHERE num IN ({','.join('?' * len(part))})"
                for num, body in self.conn.execute(q, part):
                    out[num] = record_from_json(body)
        return out

    def iter_records(self, batch: int = 2000) -> Iterator[StoredRecord]:
        last = 0
        while True:
            with self._lock:
                rows = self.conn.execute(
                    "SELECT num, body FROM records WHERE num > ? ORDER BY num LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            for num, body in rows:
                yield StoredRecord(num, record_from_json(body))
            last = rows[-1][0]

    def list_ids(self, *, after: str = "", limit: int = 1000, kinds: Iterable[str] = ()
                 ) -> tuple[list[tuple[str, str, float, str]], str | None]:
        """One page of the stored records' ``(id, kind, updated, hash)`` in id order, starting
        after ``after``, and the id to pass as ``after`` for the next page (None: the last page).

        A range on the unique id index, so a walk stays consistent while records are written: an
        id stored meanwhile shows up if it sorts later, and none is listed twice."""
        kinds = list(kinds)
        where = f" AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        with self._lock:
            rows = self.conn.execute(
                f"SELECT id, kind, updated, hash FROM records WHERE id > ?{where} ORDER BY id LIMIT ?",
                (after, *kinds, int(limit) + 1)).fetchall()  # one more: is there a next page?
        return rows[:limit], (rows[limit - 1][0] if len(rows) > limit else None)

    def sections(self, doc_id: str) -> list[Record]:
        """The stored SOP sections of document ``doc_id``, in section order (#2 before #10)."""
        # Section ids are {doc_id}#{n}: a range on the unique id index ('$' sorts right after '#'),
        # not a scan of the table; the body's doc_id confirms each one.
        with self._lock:
            rows = self.conn.execute("SELECT body FROM records WHERE id >= ? AND id < ? AND kind = 'sop'",
                                     (f"{doc_id}#", f"{doc_id}$")).fetchall()
        recs = [r for r in (record_from_json(body) for (body,) in rows) if r.doc_id == doc_id]
        return sorted(recs, key=lambda r: _section_order(r.id))

    def sections_of(self, doc_id: str) -> list[str]:
        """Ids of the stored SOP sections of document ``doc_id``, in section order."""
        return [r.id for r in self.sections(doc_id)]

    def sample(self, n: int) -> list[Record]:
        """Up to ``n`` records spread evenly over the store (every k-th by insertion order)."""
        step = max(1, self.total() // max(n, 1))
        with self._lock:
            rows = self.conn.execute("SELECT body FROM records WHERE num % ? = 0 ORDER BY num LIMIT ?",
                                     (step, n)).fetchall()
        return [record_from_json(body) for (body,) in rows]

    def facets(self) -> list[tuple]:
        """(num, id, kind, product, model, module, status, created) of every record."""
        with self._lock:
            return self.conn.execute(
                "SELECT num, id, kind, product, model, module, status, created FROM records ORDER BY num").fetchall()

    def total(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def count(self) -> dict[str, int]:
        with self._lock:
            rows = self.conn.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind").fetchall()
        return {k: n for k, n in rows}

    def last_seq(self) -> int:
        """The newest change's sequence number: AUTOINCREMENT's high-water mark, which pruning
        the log never lowers."""
        with self._lock:
            row = self.conn.execute(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM changes), 0),"
                " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0))").fetchone()
        return int(row[0] or 0)

    def prune_changes(self, upto: int) -> int:
        """Delete change-log rows with ``seq <= upto``; remembers how far the log was pruned."""
        with self._transaction() as conn:
            n = conn.execute("DELETE FROM changes WHERE seq <= ?", (upto,)).rowcount
            conn.execute("INSERT INTO meta VALUES ('changes_pruned_upto', ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (str(upto),))
        return n

    def pruned_upto(self) -> int:
        """Changes up to this sequence number are gone from the log (0: never pruned)."""
        with self._lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'changes_pruned_upto'").fetchone()
        return int(row[0]) if row else 0

    def changes_since(self, seq: int) -> list[tuple[int, int, str]]:
        """(seq, num, op) after ``seq``, oldest first."""
        with self._lock:
            return self.conn.execute(
                "SELECT seq, num, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def feedback(self) -> list[Feedback]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT fid, query, query_id, record_id, helpful, source, created FROM feedback ORDER BY fid").fetchall()
        return [Feedback(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def feedback_count(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def feedback_between(self, record_id: str) -> list[tuple[str, str, bool]]:
        """Feedback pairing ``record_id`` with another record, either way round, oldest first:
        ``(other id, source, helpful)``. Feedback on free-text queries is not included."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT fid, record_id, source, helpful FROM feedback WHERE query_id = ?"
                " UNION ALL SELECT fid, query_id, source, helpful FROM feedback WHERE record_id = ? AND query_id != ''"
                " ORDER BY fid", (record_id, record_id)).fetchall()
        return [(other, source, bool(helpful)) for _, other, source, helpful in rows if other != record_id]

    def feedback_for_query(self, text: str) -> list[tuple[str, str, bool]]:
        """Feedback on earlier searches for the same text (:func:`query_key`), oldest first:
        ``(record id, source, helpful)``. Feedback given for a record (``query_id``) is not included."""
        key = query_key(text)
        if not key:
            return []
        with self._lock:
            rows = self.conn.execute(
                "SELECT record_id, source, helpful FROM feedback WHERE query_key = ? AND query_id = ''"
                " ORDER BY fid", (key,)).fetchall()
        return [(rid, source, bool(helpful)) for rid, source, helpful in rows]


def _section_order(record_id: str) -> tuple[int, str]:
    tail = record_id.rpartition("#")[2]
    return (int(tail), "") if tail.isdigit() else (1 << 30, record_id)
