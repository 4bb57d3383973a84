"""Stateless replicas: two ``caselink serve`` processes, each with its own data folder and in-memory
(``local``) index, share one record store on a real PostgreSQL (the session's throwaway cluster).
A write acknowledged by one is read at once by the other (the store is shared) and found by its
search within the follow bound (``server.follow_seconds`` plus the time to embed it), polled
with a deadline; with the database stopped, writes are 503s with Retry-After and nothing else,
and after it restarts every acknowledged write is there."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from _proc import ServerProcess, wait_until

from caselink.config import load_settings
from recommender.service import CaselinkService
from tests.conftest import CORPUS

FOLLOW_S = 0.5
# The bound a test waits for: the poll interval, plus embedding and applying one small batch on a
# busy 2-core machine (measured well under a second; see the README's replica section).
FOUND_WITHIN_S = FOLLOW_S + 10


@pytest.fixture(scope="module")
def replicas(postgres, tmp_path_factory, use_encoder):
    """Replica A built the store from CORPUS; replica B built its index from the shared store."""
    url = postgres.new_database()
    work = tmp_path_factory.mktemp("replicas")
    for name, records in (("a", CORPUS), ("b", None)):
        svc, _ = CaselinkService.build(load_settings(env={}, data_dir=work / name, store__url=url),
                                       encoder=use_encoder, records=records)
        svc.close()
    config = work / "caselink.toml"
    config.write_text(f"[server]\nfollow_seconds = {FOLLOW_S}\n")
    servers = [ServerProcess(work / name, work, config=config, name=name) for name in "ab"]
    for srv in servers:
        srv.env["CASELINK_STORE_URL"] = url
    try:
        with ThreadPoolExecutor(len(servers)) as pool:  # both load their encoder at once
            for started in [pool.submit(srv.start) for srv in servers]:
                started.result()
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def found(client: httpx.Client, base: str, text: str) -> list[str]:
    resp = client.post(f"{base}/v1/search", json={"text": text, "k": 5, "mode": "keyword"})
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def test_a_write_on_one_replica_is_read_at_once_and_found_within_the_bound_on_the_other(replicas):
    a, b = replicas
    code = f"ZX-{uuid.uuid4().hex[:6].upper()}"
    rid = f"C-{code}"
    with httpx.Client(timeout=30) as client:
        put = client.put(f"{a.url}/v1/records/{rid}", json={
            "kind": "case", "title": f"真空泵报警 {code}", "text": f"alarm {code} on the dry pump", "error_codes": [code]})
        assert put.status_code == 201, put.text
        t0 = time.monotonic()
        assert client.get(f"{b.url}/v1/records/{rid}").status_code == 200  # the store is shared
        wait_until(lambda: rid in found(client, b.url, code), timeout=FOUND_WITHIN_S, what="found on B",
                   interval=0.05)
        print(f"\nwrite on A found by search on B after {time.monotonic() - t0:.2f} s (follow_seconds {FOLLOW_S})")

        batch = [{"id": f"{rid}-{i}", "kind": "case", "title": f"批量 {code} {i}", "text": f"batch {code} part {i}"}
                 for i in range(3)]
        assert client.post(f"{a.url}/v1/records:batch", json={"records": batch}).status_code == 200
        assert client.delete(f"{a.url}/v1/records/{rid}").status_code == 204
        assert client.get(f"{b.url}/v1/records/{rid}").status_code == 404
        want = {f"{rid}-{i}" for i in range(3)}
        wait_until(lambda: set(found(client, b.url, code)) == want, timeout=FOUND_WITHIN_S,
                   what="the batch found and the deleted record gone on B", interval=0.05)

        vote = client.post(f"{a.url}/v1/feedback", json={"record_id": f"{rid}-1", "query_id": "C-001",
                                                          "helpful": True})
        assert vote.status_code in (200, 201), vote.text
        export = client.get(f"{b.url}/v1/feedback/export")
        assert f"{rid}-1" in export.text  # votes are read from the shared store, not the index


def test_readiness_and_stats_never_show_the_store_password(replicas, postgres):
    a, b = replicas
    password = postgres.url().split(":")[2].split("@")[0]
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{b.url}/readyz").status_code == 200
        assert client.get(f"{b.url}/healthz").status_code == 200
        stats = client.get(f"{b.url}/v1/stats")
        assert stats.status_code == 200 and password not in stats.text
    assert password not in a.log_text() and password not in b.log_text()


def test_with_the_database_stopped_writes_are_503_and_after_restart_every_acknowledged_write_is_there(
        replicas, postgres):
    a, b = replicas
    acked: list[str] = []
    statuses: set[int] = set()
    with httpx.Client(timeout=30) as client:
        def put(base: str, i: int) -> int:
            rid = f"C-DOWN-{i}"
            resp = client.put(f"{base}/v1/records/{rid}", json={"kind": "case", "title": f"停机测试 {i}",
                                                               "text": f"database outage write {i}"})
            if resp.status_code in (200, 201):
                acked.append(rid)
            else:
                assert resp.headers.get("retry-after"), resp.text
            statuses.add(resp.status_code)
            return resp.status_code

        for i in range(3):
            put(a.url if i % 2 else b.url, i)
        postgres.stop()
        try:
            down = [put(a.url if i % 2 else b.url, i) for i in range(3, 9)]
            assert set(down) == {503}, down
            search = client.post(f"{b.url}/v1/search", json={"text": "停机测试", "k": 5})
            assert search.status_code in (200, 503), search.text  # served from memory, or a 503: never a 500
        finally:
            postgres.start()
        wait_until(lambda: put(a.url, 100) in (200, 201), timeout=30, what="writes accepted again on A")
        wait_until(lambda: put(b.url, 101) in (200, 201), timeout=30, what="writes accepted again on B")
        assert statuses <= {200, 201, 503}, statuses
        for rid in acked:
            assert client.get(f"{a.url}/v1/records/{rid}").status_code == 200
            assert client.get(f"{b.url}/v1/records/{rid}").status_code == 200


def test_a_replica_killed_mid_writes_loses_no_acknowledged_write_and_the_other_keeps_answering(replicas):
    """Last in this module: replica A does not come back."""
    a, b = replicas
    token = uuid.uuid4().hex[:6].upper()
    acked: list[str] = []

    def write() -> None:  # PUTs back to back until A is gone; only answered ones count
        with httpx.Client(timeout=30) as client:
            for i in range(500):
                code = f"KL-{token}-{i}"
                try:
                    resp = client.put(f"{a.url}/v1/records/C-{code}", json={
                        "kind": "case", "title": f"写入 {code}", "text": f"kill test {code}", "error_codes": [code]})
                except httpx.TransportError:
                    return
                if resp.status_code in (200, 201):
                    acked.append(code)

    writer = threading.Thread(target=write)
    writer.start()
    with httpx.Client(timeout=30) as reader:
        statuses = []
        wait_until(lambda: statuses.append(reader.post(f"{b.url}/v1/search", json={"text": "kill test", "k": 3})
                                           .status_code) or len(acked) >= 5, timeout=60, what="5 writes on A")
        a.kill9()  # while the writer is sending its next PUT
        writer.join(timeout=60)
        assert not writer.is_alive() and len(acked) >= 5
        statuses.append(reader.post(f"{b.url}/v1/search", json={"text": "kill test", "k": 3}).status_code)
        assert set(statuses) == {200}, statuses
        for code in acked:
            assert reader.get(f"{b.url}/v1/records/C-{code}").status_code == 200
        wait_until(lambda: all(f"C-{code}" in found(reader, b.url, code) for code in acked), timeout=FOUND_WITHIN_S,
                   what="A's acknowledged writes searchable on B", interval=0.1)


def test_a_replica_started_while_the_database_is_down_serves_503s_and_becomes_ready_once_it_is_up(
        postgres, tmp_path, use_encoder):
    url = postgres.new_database()
    svc, _ = CaselinkService.build(load_settings(env={}, data_dir=tmp_path / "c", store__url=url),
                                   encoder=use_encoder, records=CORPUS[:5])
    svc.close()
    config = tmp_path / "caselink.toml"
    config.write_text("[server]\nreconnect_seconds = 0.5\n")
    srv = ServerProcess(tmp_path / "c", tmp_path, config=config, name="c")
    srv.env["CASELINK_STORE_URL"] = url
    postgres.stop()
    try:
        srv.start(probe="/healthz")  # up without its database
        with httpx.Client(timeout=30) as client:
            ready = client.get(f"{srv.url}/readyz")
            assert ready.status_code == 503 and ready.headers.get("retry-after"), ready.text
            for resp in (client.post(f"{srv.url}/v1/search", json={"text": "pump", "k": 3}),
                         client.get(f"{srv.url}/v1/records/{CORPUS[0].id}")):
                assert resp.status_code == 503 and resp.headers.get("retry-after"), resp.text
            postgres.start()
            wait_until(lambda: client.get(f"{srv.url}/readyz").status_code == 200, timeout=120,
                       what="ready once the database is up", interval=0.1)
            assert client.get(f"{srv.url}/v1/records/{CORPUS[0].id}").status_code == 200
            assert client.post(f"{srv.url}/v1/search", json={"text": CORPUS[0].title, "k": 3}).status_code == 200
    finally:
        if not _accepting(postgres):  # the session's other tests need it
            postgres.start()
        srv.stop()


def _accepting(postgres) -> bool:
    return postgres.pg_ctl("status", check=False).returncode == 0
