"""Where a search's time goes, from the server's own ``timings_ms``: the encoder against building
results and explanations (``fetch``), and what HTTP and JSON add on top, over the demo searches.

    python -m bench.query_path [--rounds 3] [--source OTHER_TREE] [--out bench/query_path.md]

Serves the demo index (built once into bench/work/data/demo) with ``caselink serve`` and sends the
demo cases' titles and error codes to POST /v1/search one at a time (k = 10, hybrid). With
``--source``, a second caselink source tree (an older commit's worktree, say) is served from the
same data too, and the two are driven in alternating rounds, so a noisy machine weighs on both
alike; compare their ratios, not their milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx

from bench.common import REPO
from bench.demo_latency import demo_dir, requests
from bench.machine import header
from bench.server import Server


def drive(server: Server, reqs, totals: dict[str, list[float]]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for r in reqs:
            t0 = time.perf_counter()
            resp = client.post(r.path, json=r.body)
            wall = (time.perf_counter() - t0) * 1000
            resp.raise_for_status()
            t = resp.json()["timings_ms"]
            if "encode" not in t:  # a bare code answers on the keyword path: nothing encoded
                continue
            totals["encode"].append(t["encode"])
            totals["fetch"].append(t["fetch"])
            totals["total"].append(t["total"])
            totals["http"].append(wall - t["total"])


def summary(name: str, t: dict[str, list[float]]) -> str:
    med = statistics.median
    return (f"| {name} | {len(t['encode'])} | {med(t['encode']):.2f} | {med(t['fetch']):.2f} | "
            f"{sum(t['fetch']) / sum(t['encode']):.3f} | {med(t['total']):.2f} | {med(t['http']):.2f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="passes over the demo searches per source tree")
    ap.add_argument("--source", type=Path, action="append", default=[],
                    help="another caselink source tree to compare with this one (repeatable)")
    ap.add_argument("--out", type=Path, help="write the markdown table here too")
    args = ap.parse_args(argv)

    data = demo_dir()
    search = [r for r in requests()[0]]
    sources = [REPO, *args.source]
    servers = [Server(data, source=src).start() for src in sources]
    totals = [{"encode": [], "fetch": [], "total": [], "http": []} for _ in servers]
    try:
        for server in servers:  # warm up: first calls load the model and fill caches
            drive(server, search[:30], {"encode": [], "fetch": [], "total": [], "http": []})
        for _ in range(args.rounds):
            for server, t in zip(servers, totals):
                drive(server, search, t)
    finally:
        for server in servers:
            server.stop()
    lines = [header("caselink query path on the demo: encode vs fetch, from the server's timings_ms",
                    command="python -m bench.query_path " + " ".join(argv or [])), "",
             "Medians in ms over every search that was encoded (bare codes take the keyword path); "
             "ratio = sum(fetch) / sum(encode); http = client wall time minus the server's total.", "",
             "| source | searches | encode p50 | fetch p50 | fetch/encode | server total p50 | http p50 |",
             "|---|---|---|---|---|---|---|"]
    lines += [summary(str(src), t) for src, t in zip(sources, totals)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
