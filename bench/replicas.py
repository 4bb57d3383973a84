"""One replica against two on a shared PostgreSQL, side by side in one run.

Each replica is a ``caselink serve`` with its own data folder (the demo history, indexed into the
shared store by ``caselink index --demo``; the second replica starts from a copy of the first's
folder) and the ``local`` backend, following the shared change log every
``--follow-seconds``. ``--clients`` client threads per replica send, for ``--seconds`` each round,
a mix of hybrid ``POST /v1/search`` (70%), ``GET /v1/records/{id}/related`` (15%) and ``PUT`` of a
new record (15%). Reported per round: requests/s, p50/p95 per kind, answers by status, writes
acknowledged, acknowledged writes missing afterwards on any replica (lost), and 5xx other than
503.

The PostgreSQL is a throwaway cluster started as the tests start theirs (``throwaway/postgres.py``:
Debian's server, initdb in a temporary folder, a loopback port), or ``--store URL``::

    python -m bench.replicas --seconds 20 --clients 4
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import quote

import numpy as np

from bench.common import REPO, WORK, log
from bench.machine import header
from bench.server import Server

QUERIES = ["干泵异常停机 E1023", "乾泵跳機", "Robot fails to pick wafer", "激光功率下降 A-4410", "工件台定位超差",
           "真空泵无法启动", "wafer drop", "腔体压力异常", "E1023", "更换冷却水滤网"]


def _round(servers: list[Server], ids: list[str], clients: int, seconds: float, seed: int) -> dict:
    import httpx

    lat: dict[str, list[float]] = defaultdict(list)
    status: Counter = Counter()
    acked: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    tag = uuid.uuid4().hex[:6]
    serial = itertools.count()

    def client(base: str, k: int) -> None:
        rnd = random.Random(seed * 1000 + k)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.perf_counter() < deadline:
                pick = rnd.random()
                t0 = time.perf_counter()
                if pick < 0.70:
                    kind = "search"
                    r = http.post("/v1/search", json={"text": rnd.choice(QUERIES), "k": 10})
                elif pick < 0.85:
                    kind = "related"
                    r = http.get(f"/v1/records/{quote(rnd.choice(ids), safe='')}/related", params={"k": 10})
                else:
                    kind, rid = "write", f"C-LOAD-{tag}-{next(serial)}"
                    r = http.put(f"/v1/records/{rid}", json={
                        "kind": "case", "title": f"负载写入 {rid}", "text": f"load test write {rid} 干泵 E1023",
                        "product": "HX-Etch 500"})
                dt = time.perf_counter() - t0
                with lock:
                    lat[kind].append(dt)
                    status[r.status_code] += 1
                    if kind == "write" and r.status_code in (200, 201):
                        acked.append(rid)

    threads = [threading.Thread(target=client, args=(s.url, i)) for s in servers for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lost = 0
    with httpx.Client(timeout=60) as http:
        for s in servers:
            lost += sum(http.get(f"{s.url}/v1/records/{rid}").status_code != 200 for rid in acked)
    total = sum(len(v) for v in lat.values())
    return {"replicas": len(servers), "clients": clients * len(servers), "seconds": elapsed, "requests": total,
            "rps": total / elapsed, "lat": {k: (np.percentile(v, 50) * 1e3, np.percentile(v, 95) * 1e3, len(v))
                                            for k, v in lat.items()},
            "status": dict(status), "acked": len(acked), "lost": lost,
            "bad_5xx": sum(n for code, n in status.items() if code >= 500 and code != 503)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="", help="postgresql:// URL of an empty database (default: a throwaway cluster)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=4, help="client threads per replica (default 4)")
    p.add_argument("--follow-seconds", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "replicas.md")
    a = p.parse_args(argv)
    from throwaway.postgres import throwaway_cluster

    work = WORK / "replicas"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        url = a.store or stack.enter_context(throwaway_cluster()).new_database()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASELINK_")}
        env.update(PYTHONPATH=str(REPO), CASELINK_STORE_URL=url, CASELINK_DATA_DIR=str(work / "a"))
        log("indexing the demo history into the shared store (replica A's data folder)")
        subprocess.run([sys.executable, "-m", "caselink.cli", "index", "--demo"], env=env, cwd=REPO, check=True,
                       capture_output=True)
        shutil.copytree(work / "a", work / "b")
        from indexing.store import RecordStore

        with RecordStore(url) as store:
            ids = [row[0] for row in store.list_ids(limit=1000)[0]]
        # bench.server.Server passes no CASELINK_* variable on: the store URL goes in its config file.
        config = {"server": {"follow_seconds": a.follow_seconds}, "store": {"url": url}}
        rows = []
        for n in (1, 2):
            servers = [Server(work / name, config=config, threads=1) for name in "ab"[:n]]
            for s in servers:
                stack.enter_context(s)
            log(f"{n} replica(s), {a.clients} clients each, {a.seconds:g} s")
            rows.append(_round(servers, ids, a.clients, a.seconds, a.seed + n))
            log(str(rows[-1]))
            for s in servers:
                s.stop()
    _report(rows, a)


def _report(rows: list[dict], a: argparse.Namespace) -> None:
    command = (f"python -m bench.replicas --seconds {a.seconds:g} --clients {a.clients} "
               f"--follow-seconds {a.follow_seconds:g}")
    lines = [header("One replica against two on a shared PostgreSQL", command=command), "",
             f"Each replica a `caselink serve` on this machine with the `local` backend and its own data folder; "
             f"{a.clients} client threads per replica mixing search (70%), related (15%) and PUT (15%).", "",
             "| replicas | clients | requests/s | search p50/p95 ms | related p50/p95 ms | PUT p50/p95 ms "
             "| writes acked | lost | 5xx not 503 | answers by status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def cell(kind: str) -> str:
            v = r["lat"].get(kind)
            return f"{v[0]:.0f} / {v[1]:.0f}" if v else "-"
        lines.append(f"| {r['replicas']} | {r['clients']} | {r['rps']:.1f} | {cell('search')} | {cell('related')} "
                     f"| {cell('write')} | {r['acked']} | {r['lost']} | {r['bad_5xx']} | "
                     + ", ".join(f"{k}: {v}" for k, v in sorted(r["status"].items())) + " |")
    a.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[-len(rows) - 2:]))


if __name__ == "__main__":
    main()
