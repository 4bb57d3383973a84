"""The search path's SQLite read connections (indexing.store_db.SqliteReaders), held open for the
store's lifetime: every read sees the writes acknowledged before it, from any thread or process,
also when the records were read before and are remembered; close() leaves no connection open, not
even one lent out at the time; a forked child reads on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import indexing.store as store_module
import indexing.store_db as store_db
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


def traced(monkeypatch) -> list[str]:
    """Every statement the store's read connections run from now on, in order."""
    seen: list[str] = []
    connect = store_db.sqlite3.connect

    def connect_traced(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(store_db.sqlite3, "connect", connect_traced)
    return seen


def test_records_read_again_come_from_memory_until_anything_is_committed(tmp_path, monkeypatch):
    store = RecordStore(tmp_path / "records.sqlite").open()
    write(store, 1)
    seen = traced(monkeypatch)
    first = store.records(IDS, shared=True)
    assert sum(s.startswith("SELECT") for s in seen) == 1
    seen.clear()
    again = store.records(IDS[:3], shared=True)
    assert [s for s in seen if not s.startswith("PRAGMA data_version")] == []
    assert all(again[i] is first[i] for i in IDS[:3])
    copies = store.records(IDS[:3])  # the caller's own copies, not the remembered objects
    assert all(copies[i] == first[i] and copies[i] is not first[i] for i in IDS[:3])
    copies["C-0"].error_codes.append("E9999")
    assert store.records(["C-0"], shared=True)["C-0"].error_codes == []

    seen.clear()
    write(store, 2)
    store.write(deletes=["C-7"])
    assert versions(store) == dict.fromkeys(IDS[:7], 2)  # the deleted one is not remembered either
    assert sum(s.startswith("SELECT") for s in seen) == 1
    store.close()


def test_a_write_by_another_process_is_seen_by_the_next_read(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path).open()
    write(store, 1)
    assert versions(store) == dict.fromkeys(IDS, 1)  # now remembered
    other = ("import sys; from indexing.store import RecordStore; from indexing.records import Record; "
             "s = RecordStore(sys.argv[1]).open(); "
             "s.upsert([Record(id='C-3', kind='case', title='干泵跳停 v5')]); s.write(deletes=['C-4']); s.close()")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, env=env, timeout=120)
    seen = versions(store)
    assert "C-4" not in seen and seen == {**{i: 1 for i in IDS if i not in ("C-3", "C-4")}, "C-3": 5}
    store.close()


def test_a_read_that_began_before_a_commit_is_not_remembered(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path).open()
    write(store, 1)
    readers = store_db.SqliteReaders(path)

    def stale_select(cur, keys):
        # This read started before the commit below: it returns what it saw then, while another
        # lookup (another connection) sees the commit first.
        write(store, 2)
        assert readers.lookup(["C-1"], fresh_select) == {"C-1": "v2"}
        return {k: "v1" for k in keys}

    def fresh_select(cur, keys):
        rows = cur.execute(f"SELECT id, body FROM records WHERE id IN ({','.join('?' * len(keys))})", keys)
        return {rid: "v" + json.loads(body)["title"].rpartition(" v")[2] for rid, body in rows}

    assert readers.lookup(["C-0", "C-1"], stale_select) == {"C-0": "v1", "C-1": "v1"}  # as that read saw it
    assert readers.lookup(["C-0", "C-1"], fresh_select) == {"C-0": "v2", "C-1": "v2"}  # not the stale answer
    readers.close()
    store.close()
