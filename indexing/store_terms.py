"""Keyword statistics in the record store, and the write transaction a shared search backend joins.

A search backend that several caselink processes share (Milvus) cannot keep BM25L's corpus
statistics itself: Milvus has no atomic increment, so two writers reading and writing a document
frequency would lose one of the updates. The record store keeps them instead, in three tables
(schema version 4, :mod:`indexing.store_db`):

- ``record_terms``: per indexed record id, its length (``dl``) and its distinct term ids, so a
  write knows what the previous version contributed without asking the backend;
- ``term_df``: per term id, how many indexed records hold it, changed only by ``df = df + d``;
- ``corpus``: ``n`` (records counted), ``total_len`` (their summed length), both changed only by
  ``value = value + d``, and ``avgdl``, the mean length the backend's stored weights were computed
  with.

:class:`WriteTx` is one open write transaction of the store (the store's write lock held: SQLite's
``BEGIN IMMEDIATE``, PostgreSQL's advisory lock). The record write, its change-log rows, these
statistics and the backend's own write all happen inside it, so writers from any number of
processes are applied in commit order, and the statistics always equal a recount of
``record_terms``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from indexing.records import Record, record_from_json

CHUNK = 500  # ids or terms per IN list / per multi-row statement


@dataclass(frozen=True)
class Corpus:
    """The keyword corpus as the store counts it."""

    n: int  # records with terms
    total_len: float  # their summed document length
    avgdl: float  # the mean length the backend's stored weights use (0: not set yet)

    @property
    def mean(self) -> float:
        return self.total_len / self.n if self.n else 0.0


def _terms_text(keys: Iterable[int]) -> str:
    return ",".join(str(int(k)) for k in keys)


def _terms_of(text: str) -> list[int]:
    return [int(k) for k in text.split(",")] if text else []


def _marks(n: int) -> str:
    return ",".join("?" * n)


@dataclass
class WriteTx:
    """One write transaction of the record store, for a shared backend's write to join.

    ``seq`` is the newest change-log position this transaction can see (its own rows included).
    ``after_commit`` callbacks run once the transaction has committed (not when it rolls back).
    """

    conn: Connection
    sql: Callable[[str], str]
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    # -- keyword statistics ------------------------------------------------------------------
    def apply_terms(self, upserts: Sequence[tuple[str, float, Sequence[int]]], deletes: Iterable[str] = ()) -> Corpus:
        """Set each ``(id, dl, distinct term ids)`` of ``upserts`` and forget ``deletes``; the
        document frequencies and totals move by the difference to what was stored (an id in both
        is set). Idempotent: applying the same twice changes nothing. Returns the corpus after."""
        rows = {rid: (float(dl), sorted(set(int(k) for k in keys))) for rid, dl, keys in upserts}
        drop = [rid for rid in dict.fromkeys(deletes) if rid not in rows]
        ids = list(rows) + drop
        old: dict[str, tuple[float, list[int]]] = {}
        for start in range(0, len(ids), CHUNK):
            part = tuple(ids[start:start + CHUNK])
            for rid, dl, text in self.conn.exec_driver_sql(
                    self.sql(f"SELECT id, dl, terms FROM record_terms WHERE id IN ({_marks(len(part))})"), part):
                old[rid] = (float(dl), _terms_of(text))
        delta: Counter = Counter()
        dn, dlen = 0, 0.0
        for rid in drop:
            if rid in old:
                delta.subtract(old[rid][1])
                dn, dlen = dn - 1, dlen - old[rid][0]
        changed = []
        for rid, (dl, keys) in rows.items():
            before = old.get(rid)
            if before == (dl, keys):
                continue
            if before is None:
                dn += 1
            else:
                delta.subtract(before[1])
                dlen -= before[0]
            delta.update(keys)
            dlen += dl
            changed.append((rid, dl, _terms_text(keys)))
        gone = [rid for rid in drop if rid in old]
        for start in range(0, len(gone), CHUNK):
            part = tuple(gone[start:start + CHUNK])
            self.conn.exec_driver_sql(self.sql(f"DELETE FROM record_terms WHERE id IN ({_marks(len(part))})"), part)
        if changed:
            self.conn.exec_driver_sql(self.sql(
                "INSERT INTO record_terms (id, dl, terms) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE "
                "SET dl = excluded.dl, terms = excluded.terms"), changed)
        moved = sorted((k, d) for k, d in delta.items() if d)
        if moved:
            # The increment is the database's (df = df + d), never a value read here and written back.
            self.conn.exec_driver_sql(self.sql(
                "INSERT INTO term_df (term, df) VALUES (?, ?) ON CONFLICT (term) DO UPDATE "
                "SET df = term_df.df + excluded.df"), moved)
            fell = tuple(k for k, d in moved if d < 0)
            for start in range(0, len(fell), CHUNK):
                part = fell[start:start + CHUNK]
                self.conn.exec_driver_sql(
                    self.sql(f"DELETE FROM term_df WHERE df <= 0 AND term IN ({_marks(len(part))})"), part)
        if dn or dlen:
            self.conn.exec_driver_sql(self.sql("UPDATE corpus SET value = value + ? WHERE name = ?"),
                                      [(float(dn), "n"), (dlen, "total_len")])
        return self.corpus()

    def corpus(self) -> Corpus:
        return read_corpus(self.conn)

    def set_avgdl(self, value: float) -> None:
        self.conn.execute(sa.text("UPDATE corpus SET value = :v WHERE name = 'avgdl'"), {"v": float(value)})

    def reset_terms(self) -> None:
        """Forget every record's terms (a backend built from scratch counts them again)."""
        for table in ("record_terms", "term_df"):
            self.conn.exec_driver_sql(f"DELETE FROM {table}")
        self.conn.exec_driver_sql("UPDATE corpus SET value = 0")

    # -- what a backend catching up inside the transaction reads ------------------------------
    def last_seq(self) -> int:
        return int(self.conn.execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM changes")).scalar_one())

    def changes_since(self, seq: int) -> list[tuple[int, str | None]]:
        rows = self.conn.execute(sa.text("SELECT seq, id FROM changes WHERE seq > :seq ORDER BY seq"), {"seq": seq})
        return [(int(s), rid) for s, rid in rows]

    def records(self, ids: Sequence[str]) -> dict[str, Record]:
        out: dict[str, Record] = {}
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), CHUNK):
            part = tuple(ids[start:start + CHUNK])
            out.update((rid, record_from_json(body)) for rid, body in self.conn.exec_driver_sql(
                self.sql(f"SELECT id, body FROM records WHERE id IN ({_marks(len(part))})"), part))
        return out


def read_corpus(conn: Connection) -> Corpus:
    values = dict(conn.execute(sa.text("SELECT name, value FROM corpus")).all())
    return Corpus(int(round(values.get("n", 0.0))), float(values.get("total_len", 0.0)), float(values.get("avgdl", 0.0)))


def read_term_stats(conn: Connection, sql: Callable[[str], str], keys: Sequence[int]) -> tuple[dict[int, int], Corpus]:
    """Document frequency of each of ``keys`` that some record holds, and the corpus, in one view."""
    df: dict[int, int] = {}
    keys = list(dict.fromkeys(int(k) for k in keys))
    for start in range(0, len(keys), CHUNK):
        part = tuple(keys[start:start + CHUNK])
        df.update((int(k), int(d)) for k, d in conn.exec_driver_sql(
            sql(f"SELECT term, df FROM term_df WHERE term IN ({_marks(len(part))})"), part))
    return df, read_corpus(conn)
