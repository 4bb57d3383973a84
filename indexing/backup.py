"""Backing up the record store while it is in use, and putting a backup back.

The store is the only thing worth backing up: the index is derived from it and rebuilt by
``caselink index``, and the embedding cache only saves re-embedding (copied too when asked).

A backup is SQLite's online backup of ``records.sqlite`` (one read transaction, so it is one
consistent state even while a server writes, with the WAL folded in), written to a temporary
name, fsynced and renamed. Copying the file by hand can miss what is still in the WAL.

A restore refuses while any caselink process has the store open (each holds a shared lock on
``records.sqlite.lock``); it checks the backup is a readable caselink store, moves the current
store aside (nothing is deleted) and puts the backup in its place. The store keeps its
``store_id`` and its change-log position, so the next ``caselink index`` sees that the index is
ahead of the store and rebuilds it; a server refuses to start on it until then.

A PostgreSQL store is backed up with PostgreSQL's own tools, which keep a consistent copy of a
database in use and know its roles and settings; :func:`sqlite_only` refuses with the commands.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from caselink.errors import CaselinkError
from indexing.index_dir import fsync_dir
from indexing.store import RecordStore
from indexing.store_db import Location, lock_path

STORE_FILE = "records.sqlite"
CACHE_FILE = "embeddings.sqlite"


@dataclass(frozen=True)
class BackupReport:
    folder: Path
    records: int
    votes: int
    store_bytes: int
    cache_bytes: int  # 0: no cache copied
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    records: int
    votes: int
    replaced: Path | None  # where the store that was in place went (None: there was none)
    cache: str  # "restored", "kept" (the current one, a superset for re-embedding) or "none"


def _copy_sqlite(src: Path, dest: Path) -> int:
    """SQLite online backup of ``src`` into ``dest`` (via a temporary name); bytes written."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
    finally:
        source.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return dest.stat().st_size


def _describe(path: Path) -> tuple[int, int]:
    """(records, votes) of a caselink store; CaselinkError when it is not one or is damaged."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CaselinkError(f"{path} is damaged: {check}", hint="use another backup")
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            votes = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CaselinkError(f"{path} is not a caselink record store ({exc})",
                            hint="give the folder caselink backup wrote") from None
    if version is None:
        raise CaselinkError(f"{path} is not a caselink record store (no schema_version)",
                            hint="give the folder caselink backup wrote")
    return int(records), int(votes)


def sqlite_only(store: str | Path, verb: str) -> Path:
    """The SQLite file of ``store``; a CaselinkError naming pg_dump / pg_restore for PostgreSQL."""
    loc = Location.parse(store)
    if loc.path is not None:
        return loc.path
    raise CaselinkError(
        f"caselink {verb} copies a SQLite record store; this one is PostgreSQL ({loc.shown})",
        field="store.url",
        hint="back it up with PostgreSQL's tools: pg_dump --format=custom --file=caselink.dump DBNAME, and put it "
             "back with pg_restore --clean --dbname=DBNAME caselink.dump (servers stopped), then caselink index")


def backup(store: str | Path, cache_path: Path, folder: Path, *, with_cache: bool = True) -> BackupReport:
    """Write a consistent copy of the store (and the embedding cache) into ``folder``."""
    t0 = time.perf_counter()
    store_path = sqlite_only(store, "backup")
    if not store_path.is_file():
        raise CaselinkError(f"no record store at {store_path}", hint="nothing to back up yet: caselink index")
    RecordStore(store_path).open().close()  # migrated, and named (store_id), before it is copied
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / STORE_FILE
    if dest.exists():
        raise CaselinkError(f"{dest} already exists; a backup never overwrites one", field="folder",
                            hint="give a new folder, e.g. backups/$(date +%F)")
    store_bytes = _copy_sqlite(store_path, dest)
    records, votes = _describe(dest)
    cache_bytes = _copy_sqlite(cache_path, folder / CACHE_FILE) if with_cache and cache_path.is_file() else 0
    return BackupReport(folder, records, votes, store_bytes, cache_bytes, time.perf_counter() - t0)


def restore(folder: Path, store: str | Path, cache_path: Path) -> RestoreReport:
    """Put the store backed up in ``folder`` in place of ``store``; the one there is kept
    beside it as ``records.sqlite.replaced-<UTC time>``."""
    store_path = sqlite_only(store, "restore")
    src = folder / STORE_FILE
    if not src.is_file():
        raise CaselinkError(f"no {STORE_FILE} in {folder}", field="folder",
                            hint="give the folder caselink backup wrote")
    records, votes = _describe(src)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(store_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CaselinkError(f"a caselink process has {store_path} open (a server, or caselink index)",
                                hint="stop it, then run caselink restore again") from None
        incoming = store_path.with_name(store_path.name + ".restoring")
        _copy_sqlite(src, incoming)
        replaced = None
        if store_path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            replaced = store_path.with_name(f"{store_path.name}.replaced-{stamp}")
            try:  # fold its WAL in, so the file moved aside is whole on its own
                conn = sqlite3.connect(store_path)
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    conn.execute("PRAGMA journal_mode=DELETE")
                finally:
                    conn.close()
            except sqlite3.DatabaseError:
                pass  # a damaged store: moved aside as it is, its -wal and -shm with it
            os.replace(store_path, replaced)
        for side in ("-wal", "-shm"):  # never read against the restored file
            leftover = Path(f"{store_path}{side}")
            if leftover.exists():
                if replaced is not None:
                    os.replace(leftover, Path(f"{replaced}{side}"))
                else:
                    leftover.unlink()
        os.replace(incoming, store_path)
        fsync_dir(store_path.parent)
    finally:
        os.close(fd)
    cache = "none"
    if (folder / CACHE_FILE).is_file():
        if cache_path.is_file():
            cache = "kept"  # keyed by text, so it serves the restored records too; what it lacks is embedded
        else:
            _copy_sqlite(folder / CACHE_FILE, cache_path)
            cache = "restored"
    return RestoreReport(records, votes, replaced, cache)
