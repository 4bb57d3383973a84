"""The search path's SQLite read connections (indexing.store_db.SqliteReaders), held open for the
store's lifetime: every read sees the writes acknowledged before it, from any thread; close()
leaves no connection open, not even one lent out at the time; a forked child reads on its own."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import indexing.store as store_module
from indexing.records import Record
from indexing.store import RecordStore

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")

IDS = [f"C-{i}" for i in range(8)]


def handles(path: Path) -> int:
    """How many descriptors this process has open on the SQLite file itself."""
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += os.readlink(fd) == str(path)
        except OSError:  # closed while listed
            pass
    return n


def versions(store: RecordStore) -> dict[str, int]:
    return {rid: int(rec.title.rpartition(" v")[2]) for rid, rec in store.records(IDS, shared=True).items()}


def write(store: RecordStore, version: int) -> None:
    store.upsert([Record(id=rid, kind="case", title=f"干泵跳停 v{version}") for rid in IDS])


def test_every_read_from_any_thread_sees_the_writes_acknowledged_before_it(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path).open()
    write(store, 0)
    acked = [0]
    stop = threading.Event()
    failures: list[str] = []

    def writer() -> None:
        for v in range(1, 61):
            write(store, v)
            acked[0] = v  # after the call returned: acknowledged
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            floor = acked[0]
            seen = versions(store)
            if sorted(seen) != IDS or min(seen.values()) < floor:
                failures.append(f"read {seen} after version {floor} was acknowledged")
        floor = acked[0]
        if set(versions(store).values()) != {floor}:
            failures.append(f"the last read missed version {floor}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert failures == [] and acked[0] == 60
    assert handles(path) >= 1
    store.close()
    assert handles(path) == 0
    assert versions(store) == dict.fromkeys(IDS, 60)  # a read after close() opens the store again
    store.close()
    assert handles(path) == 0


def test_a_connection_lent_when_the_store_closes_is_closed_when_given_back(tmp_path, monkeypatch):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path).open()
    write(store, 2)
    reading, closed = threading.Event(), threading.Event()
    parse = store_module._parsed

    def slow_parse(body: str) -> Record:  # parsing happens while the connection is lent
        reading.set()
        assert closed.wait(30)
        return parse(body)

    monkeypatch.setattr(store_module, "_parsed", slow_parse)
    got: list[dict] = []
    t = threading.Thread(target=lambda: got.append(store.records(IDS[:1], shared=True)))
    t.start()
    assert reading.wait(30)
    store.close()
    closed.set()
    t.join(30)
    assert got and got[0]["C-0"].title == "干泵跳停 v2"
    assert handles(path) == 0


def test_a_forked_child_reads_on_its_own_connection_and_the_parent_goes_on(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path).open()
    write(store, 1)
    assert versions(store) == dict.fromkeys(IDS, 1)  # the parent now holds an idle read connection
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit status
        code = 1
        try:
            code = 0 if versions(store) == dict.fromkeys(IDS, 1) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    write(store, 2)
    assert versions(store) == dict.fromkeys(IDS, 2)
    store.close()
    assert handles(path) == 0
