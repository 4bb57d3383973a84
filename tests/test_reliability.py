"""Durability and faults with real processes: SIGKILL of the server and of `caselink index`, and a
disk that fills up in the middle of a write.

The server and the indexer run as child processes (``python -m caselink.cli ...``) on loopback;
faults are real (SIGKILL, RLIMIT_FSIZE) and crash points of snapshot publishing are reached
through tests/_fault_child.py. Every wait polls with a deadline.
"""

from __future__ import annotations

import errno
import json
import random
import sqlite3
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _proc import (
    PYTHON,
    TESTS,
    ServerProcess,
    child_env,
    cli_command,
    fault_command,
    record_count,
    run,
    sigkill,
    wait_until,
    write_jsonl,
)
from _server import demo_records, make_settings, serve

from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService


# -- helpers ----------------------------------------------------------------------------------------
def build(settings, use_encoder, records: list[Record]) -> str:
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=records)
    svc.close()
    return report.snapshot.name


def current_name(settings) -> str:
    return (settings.index_root / "current").resolve().name


def builds_listing(settings) -> list[str]:
    return sorted(p.name for p in (settings.index_root / "builds").iterdir())


def store_ids(settings) -> set[str]:
    conn = sqlite3.connect(f"file:{settings.store_path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM records")}
    finally:
        conn.close()


def store_last_seq(settings) -> int:
    conn = sqlite3.connect(f"file:{settings.store_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0] or 0)
    finally:
        conn.close()


def ids_for(svc: CaselinkService, text: str, k: int = 10) -> list[str]:
    return [r.id for r in svc.search(SearchQuery(text=text, k=k)).results]


def http_ids(client: httpx.Client, text: str, k: int = 10) -> list[str]:
    resp = client.post("/v1/search", json={"text": text, "k": k})
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def rec_path(rid: str) -> str:
    return "/v1/records/" + quote(rid, safe="")


def coded(rid: str, code: str, title: str, **extra) -> dict:
    return {"id": rid, "kind": "case", "title": f"{title} {code}", "text": f"{title}，报警 {code}。",
            "error_codes": [code], **extra}


# -- an acknowledged PUT / DELETE survives SIGKILL of the server -------------------------------------
def test_acknowledged_writes_survive_kill_9_of_the_server(tmp_path, use_encoder):
    data = tmp_path / "data"
    settings = make_settings(data)
    build(settings, use_encoder, demo_records())
    config = tmp_path / "caselink.toml"
    # 14 writes before the writer below: a snapshot after the 10th, then at least 4 left for replay
    # (the writer stops after 5 acknowledgements, before the next snapshot at 20).
    config.write_text("[server]\npersist_every = 10\n", encoding="utf-8")

    puts: dict[str, dict] = {}  # id -> the body the server acknowledged last
    deleted: dict[str, str] = {}  # id -> a query that found it before
    in_flight: list[dict] = []
    writer_errors: list[str] = []
    server = ServerProcess(data, tmp_path, config=config, name="first").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            def put(body: dict, status: int) -> None:
                resp = c.put(rec_path(body["id"]), json=body)
                assert resp.status_code == status, resp.text
                puts[body["id"]] = body

            def delete(rid: str, query: str) -> None:
                assert rid in http_ids(c, query)
                assert c.delete(rec_path(rid)).status_code == 204
                deleted[rid] = query
                puts.pop(rid, None)

            for i in range(1, 7):
                put(coded(f"N-{i}", f"KN{i:04d}", f"断电重启测试第{i}号"), 201)
            put({**demo_records()[4].model_dump(mode="json", exclude_defaults=True), "title": "液压站压力不足 KU0001",
                 "error_codes": ["KU0001"]}, 200)  # an update of C-1005
            batch = [coded(f"B-{i}", f"KB{i:04d}", f"批量写入测试{i}") for i in range(1, 4)]
            resp = c.post("/v1/records:batch", json={"records": batch})
            assert resp.status_code == 200 and resp.json()["created"] == 3, resp.text
            puts.update({b["id"]: b for b in batch})
            delete("C-1002", "主轴过热报警 E2040")
            delete("P-2002", "HMI firmware freezes after update")
            delete("SOP-HMI-01#2", "固件升级步骤 U 盘")
            delete("N-2", "KN0002")

            # A writer keeps PUTting; SIGKILL lands after its third acknowledgement, most likely while
            # the next request is in flight.
            acked_w: list[str] = []
            stop = threading.Event()

            def writer() -> None:
                with httpx.Client(base_url=server.url, timeout=30) as wc:
                    for i in range(1, 6):
                        if stop.is_set():
                            return
                        body = coded(f"W-{i}", f"KW{i:04d}", f"杀进程时写入{i}")
                        in_flight[:] = [body]
                        try:
                            resp = wc.put(f"/v1/records/W-{i}", json=body)
                        except httpx.TransportError:
                            return
                        if resp.status_code != 201:
                            writer_errors.append(f"{resp.status_code} {resp.text[:200]}")
                            return
                        acked_w.append(body["id"])
                        puts[body["id"]] = body
                        in_flight.clear()

            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            wait_until(lambda: len(acked_w) >= 3, timeout=60, what="three writes acknowledged", alive=server.proc)
            server.kill9()
            stop.set()
            thread.join(timeout=30)
    finally:
        server.stop()

    assert not writer_errors, writer_errors
    manifest = json.loads((settings.index_root / "current" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["change_seq"] < store_last_seq(settings), "nothing left to replay: the test proves nothing"

    with ServerProcess(data, tmp_path, config=config, name="second") as again, \
            httpx.Client(base_url=again.url, timeout=60) as c:
        for rid, body in puts.items():
            resp = c.get(rec_path(rid))
            assert resp.status_code == 200, f"acknowledged {rid} lost: {resp.text}"
            assert resp.json()["title"] == body["title"]
            code = body["error_codes"][0]
            assert http_ids(c, code)[0] == rid, f"acknowledged {rid} not searchable by {code}"
        for rid, query in deleted.items():
            assert c.get(rec_path(rid)).status_code == 404, f"deleted {rid} came back"
            assert rid not in http_ids(c, query, k=20), f"deleted {rid} is searchable again"
        for body in in_flight:  # sent, never acknowledged: all there or not there at all
            resp = c.get(rec_path(body["id"]))
            assert resp.status_code in (200, 404)
            if resp.status_code == 200:
                assert http_ids(c, body["error_codes"][0])[0] == body["id"], "half-written record"
    print(f"\nkill -9 of the server: {len(puts)} acknowledged upserts and {len(deleted)} deletes survived; "
          f"{len(in_flight)} in-flight write at the kill")


# -- SIGKILL during `caselink index` ------------------------------------------------------------------
_PHRASES = ["真空泵无法启动", "主轴过热报警", "觸控螢幕無反應", "液压站压力不足", "door interlock fault",
            "spindle vibration", "冷却液流量偏低", "排屑器链条卡死", "激光功率下降", "晶圆传输报警"]


def big_corpus(n: int) -> list[dict]:
    """``n`` generated cases, each with a unique code; few distinct texts, so embedding stays cheap."""
    rng = random.Random(7)
    rows = []
    for i in range(n):
        a, b = rng.sample(_PHRASES, 2)
        rows.append({"id": f"G-{i:05d}", "kind": "case", "title": f"{a} {b}", "text": f"{a}，{b}。",
                     "error_codes": [f"GX{i:05d}"], "product": rng.choice(["HX-L3200", "HX-M100"])})
    return rows


def check_previous_index_serves(settings, use_encoder, previous: str) -> None:
    """`current` still names ``previous``; the index opens (checksums verified), answers the old
    queries, and replays whatever reached the store before the kill."""
    assert current_name(settings) == previous
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert ids_for(svc, "真空泵无法启动，报警 E1023")[0] == "C-1001"
        assert svc.index.count() == sum(svc.store.count().values())
        stored = [i for i in store_ids(settings) if i.startswith("G-")]
        if stored:
            probe = max(stored)
            assert ids_for(svc, "GX" + probe[2:])[0] == probe
    finally:
        svc.close()


def test_kill_9_during_index_keeps_the_previous_index_serving(tmp_path, use_encoder):
    data = tmp_path / "data"
    settings = make_settings(data)
    previous = build(settings, use_encoder, demo_records())
    n_demo = len(demo_records())
    corpus = write_jsonl(tmp_path / "export.jsonl", big_corpus(3000))
    env = child_env(data)
    crashes = []

    def killed_run(cmd: list[str], ready, what: str) -> None:
        log = tmp_path / f"index-{len(crashes)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(ready, timeout=120, what=what, alive=proc, interval=0.01)
            assert proc.poll() is None, f"`caselink index` finished before it could be killed ({what})"
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from None
        finally:
            sigkill(proc)
        crashes.append(what)

    # 1. While loading the export into the store.
    killed_run(cli_command("index", str(corpus)), lambda: record_count(settings.store_path) > n_demo,
               "store has records")
    assert n_demo < record_count(settings.store_path) <= n_demo + 3000
    check_previous_index_serves(settings, use_encoder, previous)
    previous = current_name(settings)  # opening replayed the partial load and closing snapshotted it

    # 2. While building: every record stored, the snapshot not written yet.
    killed_run(cli_command("index", str(corpus)), lambda: record_count(settings.store_path) == n_demo + 3000,
               "store is complete")
    check_previous_index_serves(settings, use_encoder, previous)
    previous = current_name(settings)

    # 3. A full build (--rebuild) killed while publishing: files in builds/.tmp-*, not renamed yet.
    # 4. An in-place update (one edited record) killed after the rename, `current` not swapped yet.
    edit = write_jsonl(tmp_path / "edit.jsonl", [{**big_corpus(1)[0], "title": "冷却水流量低 edited"}])
    for point, args in (("publish", ["--rebuild"]), ("swap", [str(edit)])):
        marker = tmp_path / f"at-{point}"
        seen = set(builds_listing(settings))
        killed_run(fault_command("index", *args, stall_at=point, marker=marker), marker.exists, f"at {point}")
        left = set(builds_listing(settings)) - seen
        assert len(left) == 1, f"a crash at {point} should leave one folder behind, got {left}"
        assert left.pop().startswith(".tmp-") == (point == "publish")
        assert bool(list(settings.index_root.glob(".current-*"))) == (point == "swap")
        check_previous_index_serves(settings, use_encoder, previous)

    # The next run completes and cleans up after every interrupted one.
    done = run(cli_command("index", "--rebuild"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert builds_listing(settings) == [current_name(settings)] != [previous]
    assert not list(settings.index_root.glob(".current-*"))
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert svc.index.count() == n_demo + 3000
        assert ids_for(svc, "GX02999")[0] == "G-02999"
        assert ids_for(svc, "真空泵无法启动，报警 E1023")[0] == "C-1001"
    finally:
        svc.close()
    print(f"\nkill -9 of `caselink index`: survived crashes {crashes}")


# -- the disk fills up during a write -----------------------------------------------------------------
DISK_LIMIT = 200_000  # bytes per file: a small SQLite transaction fits, a 400 kB record or the vectors do not


def filler_corpus() -> list[Record]:
    """The demo records and 160 short cases (a vectors file of about 350 kB)."""
    extra = [Record(id=f"F-{i:03d}", kind="case", title=_PHRASES[i % len(_PHRASES)], text=_PHRASES[(i * 3) % 10],
                    error_codes=[f"FX{i:04d}"]) for i in range(160)]
    return demo_records() + extra


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory, use_encoder):
    """Runs tests/_disk_full_child.py once; the tests below read what it did."""
    data = tmp_path_factory.mktemp("diskfull") / "data"
    settings = make_settings(data)
    build(settings, use_encoder, filler_corpus())
    before = store_ids(settings)
    proc = run([PYTHON, str(TESTS / "_disk_full_child.py"), str(data), str(DISK_LIMIT)], env=child_env(data),
               cwd=data.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "done", proc.stdout + proc.stderr[-3000:]
    return settings, before, {e["id"]: e for e in events if "id" in e}, next(e for e in events if e["event"] == "tmp")


def test_disk_full_fails_the_write_and_keeps_store_and_index_consistent(disk_full, use_encoder):
    settings, before, outcome, _ = disk_full
    assert outcome["BIG-1"]["event"] == "failed", "the limit did not stop a 400 kB write: the test proves nothing"
    errors = outcome["BIG-1"]["errors"]
    assert any(e["type"] == "OperationalError" and ("disk" in e["message"] or "full" in e["message"])
               for e in errors), errors
    assert [outcome[i]["event"] for i in ("ACK-1", "ACK-2", "ACK-3")] == ["acked"] * 3, outcome

    stored = store_ids(settings)
    assert "BIG-1" not in stored
    assert {"ACK-1", "ACK-2", "ACK-3"} <= stored
    # SNAP-1/2 (phase B) were written to the store; whether they were acknowledged is checked below.
    assert stored - before - {"SNAP-1", "SNAP-2"} == {"ACK-1", "ACK-2", "ACK-3"}
    svc = CaselinkService.open(settings, encoder=use_encoder)  # checksums verified
    try:
        assert svc.index.count() == len(stored)
        for rid in ("ACK-1", "ACK-2", "ACK-3"):
            assert ids_for(svc, "DF" + rid.replace("-", ""))[0] == rid
        assert not ids_for(svc, "DFBIG1")
        assert ids_for(svc, "真空泵无法启动，报警 E1023")[0] == "C-1001"
    finally:
        svc.store.close()  # no snapshot: leave the directory as the child left it for the other tests
        svc.index.cache.close()


def test_disk_full_error_names_the_disk_not_the_rollback(disk_full):
    _, _, outcome, _ = disk_full
    first = outcome["BIG-1"]["errors"][0]
    assert "cannot rollback" not in first["message"], first
    assert (first["sqlite"] or "").startswith(("SQLITE_IOERR", "SQLITE_FULL")), first


def test_a_snapshot_that_does_not_fit_does_not_fail_committed_writes(disk_full):
    settings, _, outcome, tmp = disk_full
    stored = store_ids(settings)
    for rid in ("SNAP-1", "SNAP-2"):
        assert outcome[rid]["event"] == "acked" or rid not in stored, \
            f"{rid} was reported failed ({outcome[rid]['errors'][0]['message'][:120]}) but is stored"
    assert tmp["names"] == [], f"failed snapshots left {tmp['names']}"


def test_disk_full_through_the_api_is_a_problem_not_a_500(tmp_path, use_encoder):
    data = tmp_path / "data"
    settings = make_settings(data)
    build(settings, use_encoder, filler_corpus())
    before = store_ids(settings)
    big = coded("BIG-API", "KD0001", "磁盘写满") | {"links": ["L" * 400_000]}
    server = ServerProcess(data, tmp_path, fsize=DISK_LIMIT, name="diskfull").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            resp = c.put("/v1/records/BIG-API", json=big)
            assert resp.status_code in (503, 507), resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            body = resp.json()
            assert body["status"] == resp.status_code and "storage" in body["detail"], body
            assert c.get("/v1/records/BIG-API").status_code == 404
            assert "BIG-API" not in http_ids(c, "KD0001")
            small = coded("SMALL-API", "KD0002", "磁盘写满之后")
            assert c.put("/v1/records/SMALL-API", json=small).status_code == 201  # the server is not wedged
            assert http_ids(c, "KD0002")[0] == "SMALL-API"
        server.kill9()
    finally:
        server.stop()
    assert store_ids(settings) - before == {"SMALL-API"}
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert ids_for(svc, "KD0002")[0] == "SMALL-API" and not ids_for(svc, "KD0001")
    finally:
        svc.close()


def _sqlite_full_error(tmp_path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_FULL ("database or disk is full"), from a scratch database capped at a few pages."""
    conn = sqlite3.connect(tmp_path / "tiny.sqlite")
    conn.execute("PRAGMA max_page_count = 3")
    conn.execute("CREATE TABLE t (x BLOB)")
    try:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("max_page_count did not fill the database")


def test_storage_errors_map_to_507_when_full_and_503_otherwise(tmp_path):
    from api.deps import get_service

    full = _sqlite_full_error(tmp_path)

    class FailingService:  # injected with a dependency override: the failure, not the service, is under test
        def upsert(self, records):
            raise full

        def delete(self, record_id):
            raise OSError(errno.ENOSPC, "No space left on device")

        def get(self, record_id):
            raise sqlite3.OperationalError("database is locked")

    with serve(make_settings(tmp_path / "data"), wait_for="/healthz") as running, \
            httpx.Client(base_url=running.url, timeout=60) as c:
        running.app.dependency_overrides[get_service] = FailingService
        for resp, status in ((c.put("/v1/records/X-1", json={"kind": "case"}), 507),
                             (c.delete("/v1/records/X-1"), 507), (c.get("/v1/records/X-1"), 503)):
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "not acknowledged" in resp.json()["detail"] and resp.json()["hint"]
        assert resp.headers["retry-after"]


# -- a second writer process ----------------------------------------------------------------------
def test_records_indexed_by_another_process_while_serving_stay_searchable(tmp_path, use_encoder):
    settings = make_settings(tmp_path / "data")
    build(settings, use_encoder, demo_records())
    serving = CaselinkService.open(settings, encoder=use_encoder)  # stands for the running server
    try:
        other = [Record.model_validate(coded("X-1", "KX0001", "另一个进程导入的记录"))]
        svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=other)  # `caselink index export.jsonl`
        svc.close()
        serving.upsert([Record.model_validate(coded("S-1", "KS0001", "服务进程写入的记录"))])
    finally:
        serving.close()  # snapshots its in-memory index
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert ids_for(svc, "KS0001")[0] == "S-1"
        assert ids_for(svc, "KX0001")[:1] == ["X-1"], "stored by `caselink index`, gone from the index"
    finally:
        svc.close()
