"""The record store's write path: a record's row, and the few statements that write a batch.

Plain SQL with positional parameters, sent through the driver (``exec_driver_sql``) in the
transaction :class:`~indexing.store.RecordStore` opened: a PUT is one short transaction, and
SQLAlchemy's per-statement compilation of an ``IN`` list or a multi-row ``RETURNING`` insert cost
several times SQLite's own work for it (``python -m bench.store_upsert``, README). The SQL is
written once; :func:`driver_sql` only swaps SQLite's ``?`` for psycopg's ``%s``.

A batch is written in runs of at most :data:`CHUNK` distinct ids: one ``SELECT`` finds the stored
ones and their hashes, one multi-row ``INSERT ... RETURNING`` adds the new ones, one
``executemany`` updates the changed ones and one appends their change-log rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from indexing.records import Record, record_to_json

CHUNK = 500  # ids per IN list, rows per multi-row statement (5,000 parameters: under both databases' limits)
_COLUMNS = ("kind", "product", "model", "module", "status", "created", "body", "hash", "updated")


@dataclass(frozen=True)
class UpsertResult:
    """What writing one record did: the one result type of an upsert, from the store through the
    service (the API's ``UpsertOut`` is its wire form)."""

    id: str
    num: int  # the store's key for the record
    changed: bool  # False when the stored record was identical: nothing was written
    created: bool  # True when the id was new


def driver_sql(dialect: str) -> Callable[[str], str]:
    """SQL written with ``?`` placeholders, as the dialect's driver takes it."""
    if dialect == "sqlite":
        return lambda q: q
    return lambda q: q.replace("?", "%s")


def runs_of_distinct_ids(rows: list[tuple[str, str, Record]]) -> Iterator[list[tuple[str, str, Record]]]:
    """Consecutive runs of at most CHUNK rows with no id twice: a repeated id starts a new run, so
    it sees the earlier write of itself (as writing them one by one would)."""
    run: list[tuple[str, str, Record]] = []
    ids: set[str] = set()
    for row in rows:
        if row[0] in ids or len(run) == CHUNK:
            yield run
            run, ids = [], set()
        run.append(row)
        ids.add(row[0])
    if run:
        yield run


def _values(rec: Record, h: str, now: float) -> tuple:
    """A record's column values in _COLUMNS order; built only for records that are written (the
    JSON body is the costly part)."""
    return (rec.kind, rec.product, rec.model, rec.module, rec.status,
            rec.created.isoformat() if rec.created else None, record_to_json(rec), h, now)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def upsert_part(conn: Connection, sql: Callable[[str], str], part: list[tuple[str, str, Record]],
                now: float) -> list[UpsertResult]:
    ids = tuple(r[0] for r in part)
    have = {rid: (int(num), h) for rid, num, h in conn.exec_driver_sql(
        sql(f"SELECT id, num, hash FROM records WHERE id IN ({_marks(len(ids))})"), ids)}
    new = [(rid, *_values(rec, h, now)) for rid, h, rec in part if rid not in have]
    nums: dict[str, int] = {}
    if new:
        row = f"({_marks(len(_COLUMNS) + 1)})"
        q = (f"INSERT INTO records (id, {', '.join(_COLUMNS)}) VALUES {','.join([row] * len(new))}"
             " RETURNING id, num")  # matched back by id: any row order will do
        nums = {rid: int(num) for rid, num in conn.exec_driver_sql(sql(q), tuple(v for r in new for v in r))}
    changed = [(*_values(rec, h, now), have[rid][0]) for rid, h, rec in part if rid in have and have[rid][1] != h]
    if changed:
        conn.exec_driver_sql(sql(f"UPDATE records SET {', '.join(c + ' = ?' for c in _COLUMNS)} WHERE num = ?"),
                             changed)
    out = [UpsertResult(rid, nums[rid], True, True) if rid not in have
           else UpsertResult(rid, have[rid][0], have[rid][1] != h, False) for rid, h, _ in part]
    _log(conn, sql, [(r.num, r.id) for r in out if r.changed], "upsert")
    return out


def delete_ids(conn: Connection, sql: Callable[[str], str], ids: list[str]) -> list[int | None]:
    """Delete the stored ones of ``ids``; per id its num, None when it was not stored (or was
    deleted by an earlier occurrence in ``ids``)."""
    distinct = list(dict.fromkeys(ids))
    have: dict[str, int] = {}
    for start in range(0, len(distinct), CHUNK):
        part = tuple(distinct[start:start + CHUNK])
        have.update((rid, int(num)) for rid, num in conn.exec_driver_sql(
            sql(f"SELECT id, num FROM records WHERE id IN ({_marks(len(part))})"), part))
    gone = [have.pop(rid, None) for rid in ids]
    nums = [n for n in gone if n is not None]
    named = [(n, rid) for rid, n in zip(ids, gone) if n is not None]
    for start in range(0, len(nums), CHUNK):
        part = tuple(nums[start:start + CHUNK])
        conn.exec_driver_sql(sql(f"DELETE FROM records WHERE num IN ({_marks(len(part))})"), part)
    _log(conn, sql, named, "delete")
    return gone


def _log(conn: Connection, sql: Callable[[str], str], changed: list[tuple[int, str]], op: str) -> None:
    """Append the change-log rows (num, record id), in one statement per CHUNK (their seq in this
    order). The id is what a search backend knows a record by; once a row is deleted nothing
    else names it."""
    for start in range(0, len(changed), CHUNK):
        part = changed[start:start + CHUNK]
        conn.exec_driver_sql(
            sql(f"INSERT INTO changes (num, op, id) VALUES {','.join([f'(?, {op!r}, ?)'] * len(part))}"),
            tuple(v for row in part for v in row))


def insert_rows(conn: Connection, sql: Callable[[str], str], rows: list[tuple]) -> None:
    """Insert records copied from another store as they were, ``(id, *_COLUMNS)`` per row (their
    update times kept), each logged as an upsert. The ids must be new to this store."""
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        row = f"({_marks(len(_COLUMNS) + 1)})"
        q = (f"INSERT INTO records (id, {', '.join(_COLUMNS)}) VALUES {','.join([row] * len(part))}"
             " RETURNING num, id")
        added = sorted((int(n), rid) for n, rid in conn.exec_driver_sql(sql(q), tuple(v for r in part for v in r)))
        _log(conn, sql, added, "upsert")


def insert_votes(conn: Connection, sql: Callable[[str], str], votes: list[tuple], *, postgres: bool) -> None:
    """Insert votes copied from another store with their ids and times, ``(fid, query, query_id,
    record_id, helpful, source, created, query_key)``, so an id printed for ``caselink feedback
    --undo`` stays valid; PostgreSQL's identity is moved past them (SQLite's AUTOINCREMENT follows
    by itself)."""
    for start in range(0, len(votes), CHUNK):
        part = votes[start:start + CHUNK]
        q = ("INSERT INTO feedback (fid, query, query_id, record_id, helpful, source, created, query_key) VALUES "
             + ",".join([f"({_marks(8)})"] * len(part)))
        conn.exec_driver_sql(sql(q), tuple(v for r in part for v in r))
    if postgres and votes:
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('feedback', 'fid'), "
                             "(SELECT MAX(fid) FROM feedback))")
