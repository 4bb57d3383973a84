"""A bounded load test against the real server (``caselink serve`` as a child process, loopback).

Several client threads mix searches, upserts and deletes for a fixed time. Every acknowledged
write and delete is recorded with its timestamps, and at the end:

- no 5xx and no transport error, ever;
- no lost write: every acknowledged upsert is GET-able in its last acknowledged version and found
  by its unique code;
- no deleted record comes back from a search that started after its delete was acknowledged, and
  every search for a record acknowledged before the search started (and not being deleted while it
  ran) finds it.

Requests, errors and latency percentiles are printed (``pytest -s`` shows them). The default run
takes about 20 s; ``test_load_long`` (marker ``slow``) runs for minutes and then also SIGKILLs
and restarts the server before checking again. ``CASELINK_LOAD_SECONDS`` overrides the duration.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from _proc import ServerProcess
from _server import demo_records, make_settings

from indexing.records import Record
from recommender.service import CaselinkService

QUERIES = ["真空泵无法启动", "主轴温度高 报警", "觸控螢幕沒有反應", "door switch alarm when closing",
           "液压压力不足 夹紧力", "spindle bearing noise", "冷却泵滤网堵塞", "HMI 固件升级", "E1023", "PN-7731-02"]
PHRASES = ["真空泵跳停", "主轴异响", "触摸屏黑屏", "液压油温高", "门锁报警", "冷却水流量低", "伺服过载", "气压不足"]
# Operation mix: mostly searches, as in service work.
P_SEARCH_TEXT, P_SEARCH_CODE, P_CREATE, P_UPDATE = 0.40, 0.30, 0.15, 0.07  # the rest: delete


@dataclass
class Ledger:
    """What the clients did and when (time.monotonic seconds), shared under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    codes: dict[str, str] = field(default_factory=dict)  # id -> its unique code
    created: dict[str, float] = field(default_factory=dict)  # id -> creation acknowledged at
    titles: dict[str, str] = field(default_factory=dict)  # id -> last acknowledged title
    delete_sent: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)  # id -> delete acknowledged at
    searches: list[tuple[float, float, str, list[str]]] = field(default_factory=list)  # start, end, id, results
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    status: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _client(ledger: Ledger, url: str, worker: int, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    mine: list[str] = []  # this worker's live records; only it updates or deletes them
    n = 0
    with httpx.Client(base_url=url, timeout=60) as c:
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll >= P_SEARCH_TEXT + P_SEARCH_CODE + P_CREATE + P_UPDATE and mine:
                op, rid = "delete", mine.pop(rng.randrange(len(mine)))
            elif roll >= P_SEARCH_TEXT + P_SEARCH_CODE + P_CREATE and mine:
                op, rid = "update", rng.choice(mine)
            elif roll >= P_SEARCH_TEXT + P_SEARCH_CODE:
                n += 1
                op, rid = "create", f"L{worker}-{n}"
            elif roll >= P_SEARCH_TEXT:
                with ledger.lock:
                    rid = rng.choice(list(ledger.codes)) if ledger.codes else None
                op = "search_code" if rid else "search_text"
            else:
                op, rid = "search_text", None
            code = f"Z{worker}K{n:05d}" if op == "create" else ledger.codes.get(rid or "", "")
            if op == "create":
                with ledger.lock:
                    ledger.codes[rid] = code  # searchable from now on by other workers (maybe not yet there)
            title = f"{rng.choice(PHRASES)} v{rng.randrange(1000)} {code}"
            if op == "delete":
                with ledger.lock:
                    ledger.delete_sent[rid] = time.monotonic()
            start = time.monotonic()
            try:
                if op in ("create", "update"):
                    body = {"kind": "case", "title": title, "text": f"{title}，{rng.choice(PHRASES)}。",
                            "error_codes": [code]}
                    resp = c.put("/v1/records/" + quote(rid, safe=""), json=body)
                    ok = resp.status_code == (201 if op == "create" else 200)
                elif op == "delete":
                    resp = c.delete("/v1/records/" + quote(rid, safe=""))
                    ok = resp.status_code == 204
                else:
                    text = code if op == "search_code" else rng.choice(QUERIES)
                    resp = c.post("/v1/search", json={"text": text, "k": 10})
                    ok = resp.status_code == 200
            except httpx.TransportError as exc:
                with ledger.lock:
                    ledger.status["transport"] += 1
                    ledger.problems.append(f"{op} {rid}: {exc!r}")
                continue
            end = time.monotonic()
            with ledger.lock:
                ledger.latency[op].append(end - start)
                ledger.status[resp.status_code] += 1
                if not ok:
                    ledger.problems.append(f"{op} {rid}: {resp.status_code} {resp.text[:200]}")
                    continue
                if op == "create":
                    ledger.created[rid] = end
                    ledger.titles[rid] = title
                    mine.append(rid)
                elif op == "update":
                    ledger.titles[rid] = title
                elif op == "delete":
                    ledger.deleted[rid] = end
                    ledger.titles.pop(rid, None)
                elif op == "search_code":
                    ledger.searches.append((start, end, rid, [r["id"] for r in resp.json()["results"]]))


def _check_search_order(ledger: Ledger) -> tuple[list[str], list[str]]:
    """(deleted records returned after their delete was acknowledged, acknowledged records missed)."""
    resurrected, missed = [], []
    for start, end, rid, results in ledger.searches:
        for got in results:
            if ledger.deleted.get(got, float("inf")) < start:
                resurrected.append(f"{got} deleted {start - ledger.deleted[got]:.3f} s before a search returned it")
        if (ledger.created.get(rid, float("inf")) < start
                and ledger.delete_sent.get(rid, float("inf")) > end and rid not in results):
            missed.append(f"{rid} acknowledged {start - ledger.created[rid]:.3f} s before a search missed it")
    return resurrected, missed


def _verify_final_state(url: str, ledger: Ledger) -> list[str]:
    lost = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for rid, title in ledger.titles.items():
            resp = c.get("/v1/records/" + quote(rid, safe=""))
            if resp.status_code != 200 or resp.json()["title"] != title:
                lost.append(f"{rid}: GET {resp.status_code} {resp.text[:120]}")
                continue
            ids = [r["id"] for r in c.post("/v1/search", json={"text": ledger.codes[rid]}).json()["results"]]
            if ids[:1] != [rid]:
                lost.append(f"{rid}: search by {ledger.codes[rid]} gave {ids[:3]}")
        for rid in ledger.deleted:
            if c.get("/v1/records/" + quote(rid, safe="")).status_code != 404:
                lost.append(f"{rid}: deleted but GET still finds it")
    return lost


def _report(ledger: Ledger, seconds: float, workers: int) -> None:
    total = sum(len(v) for v in ledger.latency.values())
    lines = [f"\nload: {workers} clients for {seconds:.0f} s: {total} requests answered "
             f"({total / seconds:.1f}/s); status {dict(sorted(ledger.status.items(), key=str))}; "
             f"{len(ledger.created)} created, {len(ledger.deleted)} deleted, {len(ledger.searches)} searches by code"]
    for op, values in sorted([*ledger.latency.items(), ("all", [x for v in ledger.latency.values() for x in v])]):
        ms = np.asarray(values) * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        lines.append(f"  {op:<12} n={len(ms):<6} p50={p50:7.1f} ms  p95={p95:7.1f} ms  p99={p99:7.1f} ms"
                     f"  max={ms.max():7.1f} ms")
    print("\n".join(lines))


def run_load(tmp_path, use_encoder, *, seconds: float, workers: int = 4, restart: bool = False) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    extra = [Record(id=f"F-{i:03d}", kind="case", title=f"{PHRASES[i % 8]} {PHRASES[(i * 3) % 8]}",
                    text=PHRASES[(i * 5) % 8], error_codes=[f"FX{i:04d}"]) for i in range(200)]
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=demo_records() + extra)
    svc.close()
    config = tmp_path / "caselink.toml"
    config.write_text("[server]\npersist_every = 50\n", encoding="utf-8")  # snapshots while serving
    ledger = Ledger()
    server = ServerProcess(data, tmp_path, config=config, name="load").start()
    try:
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=_client, args=(ledger, server.url, w, deadline, 1000 + w), daemon=True)
                   for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 120)
        assert not any(t.is_alive() for t in threads), "a client is stuck"
        _report(ledger, seconds, workers)
        server_errors = {s: n for s, n in ledger.status.items() if s == "transport" or int(s) >= 500}
        assert not server_errors and not ledger.problems, (server_errors, ledger.problems[:10])
        resurrected, missed = _check_search_order(ledger)
        assert not resurrected, resurrected[:10]
        assert not missed, missed[:10]
        assert len(ledger.created) >= 10 and ledger.deleted, "too little load to prove anything"
        lost = _verify_final_state(server.url, ledger)
        assert not lost, lost[:10]
        if restart:
            server.kill9()
            server.stop()
            with ServerProcess(data, tmp_path, config=config, name="load-restart") as again:
                lost = _verify_final_state(again.url, ledger)
                assert not lost, lost[:10]
                print(f"  after kill -9 and restart: all {len(ledger.titles)} live records and "
                      f"{len(ledger.deleted)} deletes intact")
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def test_load_mixed_reads_and_writes(tmp_path, use_encoder):
    run_load(tmp_path, use_encoder, seconds=float(os.environ.get("CASELINK_LOAD_SECONDS", "20")))


@pytest.mark.slow
def test_load_long(tmp_path, use_encoder):
    run_load(tmp_path, use_encoder, seconds=float(os.environ.get("CASELINK_LOAD_SECONDS", "180")), workers=6,
             restart=True)
