"""What a source sync has applied, kept durably next to the record store (``sources.sqlite``).

Per source: the watermark to resume from, and per item its record id, the version applied, the
hash of its text (a changed text earns a fresh related-records note) and the hash of the last
note posted (the same note is never posted twice). Each write is one committed transaction, so
a sync killed at any point resumes from the last batch it finished.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermarks (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    source TEXT NOT NULL, source_id TEXT NOT NULL, record_id TEXT NOT NULL, version TEXT NOT NULL,
    text_hash TEXT NOT NULL DEFAULT '', note_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (source, source_id));
CREATE TABLE IF NOT EXISTS settings (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, key));
"""


@dataclass(frozen=True)
class Item:
    source_id: str
    record_id: str
    version: str
    text_hash: str
    note_hash: str


class SourceState:
    """One SQLite file; safe to share between threads. ``open`` before use."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> "SourceState":
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("SourceState is not open")
            return self._conn.execute(sql, args).fetchall()

    # -- watermark and per-source settings ---------------------------------------------------
    def watermark(self, source: str) -> str | None:
        rows = self._run("SELECT value FROM watermarks WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def set_watermark(self, source: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO watermarks VALUES (?, ?)", (source, value))

    def setting(self, source: str, key: str) -> str | None:
        rows = self._run("SELECT value FROM settings WHERE source = ? AND key = ?", (source, key))
        return rows[0][0] if rows else None

    def set_setting(self, source: str, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO settings VALUES (?, ?, ?)", (source, key, value))

    # -- items -------------------------------------------------------------------------------
    def item(self, source: str, source_id: str) -> Item | None:
        rows = self._run("SELECT source_id, record_id, version, text_hash, note_hash FROM items"
                         " WHERE source = ? AND source_id = ?", (source, source_id))
        return Item(*rows[0]) if rows else None

    def version(self, source: str, source_id: str) -> str | None:
        it = self.item(source, source_id)
        return it.version if it else None

    def applied(self, source: str, source_id: str, record_id: str, version: str, text_hash: str) -> None:
        """Record that ``version`` of an item is in caselink (its note hash is kept)."""
        self._run("INSERT INTO items (source, source_id, record_id, version, text_hash) VALUES (?,?,?,?,?)"
                  " ON CONFLICT (source, source_id) DO UPDATE SET record_id = excluded.record_id,"
                  " version = excluded.version, text_hash = excluded.text_hash",
                  (source, source_id, record_id, version, text_hash))

    def noted(self, source: str, source_id: str, note_hash: str) -> None:
        self._run("UPDATE items SET note_hash = ? WHERE source = ? AND source_id = ?", (note_hash, source, source_id))

    def forget(self, source: str, source_id: str) -> None:
        self._run("DELETE FROM items WHERE source = ? AND source_id = ?", (source, source_id))

    def items(self, source: str) -> list[Item]:
        rows = self._run("SELECT source_id, record_id, version, text_hash, note_hash FROM items WHERE source = ?"
                         " ORDER BY source_id", (source,))
        return [Item(*r) for r in rows]
