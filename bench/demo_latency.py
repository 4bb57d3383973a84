"""HTTP latency of search and related on the bundled demo index, with wrk (or httpx threads).

    python -m bench.demo_latency [--duration 15] [--clients 1,4] [--out bench/demo_latency.md]

Indexes the demo history into bench/work/data/demo (reusing it when present), serves it with
`caselink serve` on a free loopback port, and drives POST /v1/search with the demo cases' titles
(simplified, traditional, English and bare error codes as written), GET /v1/records/{id}/related
over every demo case, and POST /v1/related with each case's fields as a draft (no id: the record is
encoded afresh, as a ticket being written), one and several concurrent clients, default (hybrid) mode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from bench.load import Req, run, wrk_available
from bench.machine import REPO, header
from bench.server import WORK, Server


def demo_dir() -> Path:
    data = WORK / "data" / "demo"
    if not (data / "index" / "current").exists():
        env = {"CASELINK_DATA_DIR": str(data), "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-m", "caselink.cli", "index", "--demo"], check=True, env=env, cwd=REPO)
    return data


DRAFT_FIELDS = ("title", "text", "product", "model", "module", "error_codes", "cause", "resolution")


def requests() -> tuple[list[Req], list[Req], list[Req]]:
    cases = [json.loads(line) for line in (REPO / "indexing" / "demo" / "cases.jsonl").open(encoding="utf-8")]
    search = [Req("POST", "/v1/search", {"text": c["title"], "k": 10}) for c in cases]
    search += [Req("POST", "/v1/search", {"text": c["error_codes"][0], "k": 10}) for c in cases if c.get("error_codes")][:50]
    related = [Req("GET", f"/v1/records/{quote(c['id'], safe='')}/related?k=10") for c in cases]
    drafts = [Req("POST", "/v1/related", {"record": {f: c[f] for f in DRAFT_FIELDS if c.get(f)}, "k": 10})
              for c in cases]
    return search, related, drafts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--out", default=str(REPO / "bench" / "demo_latency.md"))
    args = ap.parse_args(argv)
    tool = "wrk" if wrk_available() else "httpx"
    search, related, drafts = requests()
    rows = []
    with Server(demo_dir()) as srv:
        for name, reqs in (("POST /v1/search", search), ("GET /v1/records/{id}/related", related),
                           ("POST /v1/related (draft)", drafts)):
            for clients in (int(c) for c in args.clients.split(",")):
                r = run(tool, srv.url, reqs, clients=clients, duration=args.duration, max_requests=100_000)
                rows.append((name, clients, r))
                print(name, clients, f"p50 {r.p50_ms:.1f} p95 {r.p95_ms:.1f} ms, {r.rps:.0f} req/s, {r.errors} errors",
                      flush=True)
    lines = [header("caselink HTTP latency on the demo index",
                    command="python -m bench.demo_latency " + " ".join(argv or sys.argv[1:]),
                    notes=[f"load tool: {tool}; {args.duration:.0f} s per run; k = 10; default settings (hybrid); "
                           "536 records (324 cases, 44 problem orders, 168 SOP sections)"]), "",
             "| endpoint | clients | requests | p50 ms | p95 ms | p99 ms | req/s | errors | server total ms (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, clients, r in rows:
        lines.append(f"| {name} | {clients} | {r.requests} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} "
                     f"| {r.rps:.0f} | {r.errors} | {r.timings_ms.get('total', float('nan')):.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
