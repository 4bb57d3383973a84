"""The disk fills up under a CaselinkService; test_reliability runs this as a child process.

    python tests/_disk_full_child.py DATA_DIR LIMIT_BYTES

RLIMIT_FSIZE (with SIGXFSZ ignored) makes every write past LIMIT_BYTES fail with EFBIG, which is
what a full disk looks like to the process. Prints one JSON object per line: ``acked`` for a
write that returned, ``failed`` (with the exception, its chain and the sqlite error names) for
one that raised, ``tmp`` for leftover snapshot folders. Two phases:

A. persist_every=500 (no snapshot on the way): a write too big for the disk fails in SQLite; a
   small write under the same limit, and one after the limit is lifted, go through.
B. persist_every=1: a small write fits in SQLite but the snapshot after it does not.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import sys
from pathlib import Path

from caselink.config import load_settings
from indexing.records import Record
from recommender.service import CaselinkService

BIG_LINK = "L" * 400_000  # not embedded or tokenised: a big row that costs no encoder time


def emit(**event) -> None:
    print(json.dumps(event, ensure_ascii=False), flush=True)


def chain(exc: BaseException) -> list[dict]:
    out = []
    while exc is not None and len(out) < 5:
        out.append({"type": type(exc).__name__, "message": str(exc)[:300],
                    "sqlite": getattr(exc, "sqlite_errorname", None), "errno": getattr(exc, "errno", None)})
        exc = exc.__cause__ or exc.__context__
    return out


def small(rid: str) -> Record:
    code = "DF" + rid.replace("-", "")
    return Record(id=rid, kind="case", title=f"磁盘写满测试 {code}", text=f"小记录 {code}", error_codes=[code])


def attempt(svc: CaselinkService, record: Record) -> None:
    try:
        svc.upsert([record])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges it
        emit(event="failed", id=record.id, errors=chain(exc))
    else:
        emit(event="acked", id=record.id)


def checkpoint(data_dir: Path) -> None:
    """Empty both WAL files, so writes start at offset 0 and the limit is about this write alone."""
    for name in ("records.sqlite", "embeddings.sqlite"):
        conn = sqlite3.connect(data_dir / name)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


def limit(nbytes: int | None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard if nbytes is None else nbytes, hard))


def leftovers(data_dir: Path) -> list[str]:
    builds = data_dir / "index" / "builds"
    return sorted(p.name for p in builds.iterdir() if p.name.startswith(".tmp-")) if builds.is_dir() else []


def main(data_dir: Path, nbytes: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    settings = load_settings(env={}, data_dir=data_dir)
    svc = CaselinkService.open(settings)
    encoder = svc.index.encoder
    # A: the record store runs out of space.
    attempt(svc, small("ACK-1"))
    checkpoint(data_dir)
    limit(nbytes)
    big = small("BIG-1").model_copy(update={"links": [BIG_LINK]})
    attempt(svc, big)
    attempt(svc, small("ACK-2"))  # still limited: a small write fits
    limit(None)
    attempt(svc, small("ACK-3"))
    svc.close()
    # B: the record store has room, the snapshot after the write does not.
    settings = load_settings(env={}, data_dir=data_dir, server__persist_every=1)
    svc = CaselinkService.open(settings, encoder=encoder)
    checkpoint(data_dir)
    limit(nbytes)
    attempt(svc, small("SNAP-1"))
    attempt(svc, small("SNAP-2"))
    emit(event="tmp", names=leftovers(data_dir))
    limit(None)
    svc.store.close()  # not svc.close(): that would snapshot, and hide what the failures left behind
    svc.index.cache.close()
    emit(event="done")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
