"""Where a search's time goes, from the server's own ``timings_ms``: the encoder against building
results and explanations (``fetch``), and what HTTP and JSON add on top, over the demo searches.

    python -m bench.query_path [--rounds 3] [--source OTHER_TREE] [--out bench/query_path.md]

Serves the demo index (built once into bench/work/data/demo) with ``caselink serve`` and sends the
demo cases' titles and error codes to POST /v1/search one at a time (k = 10, hybrid). With
``--source``, a second caselink source tree (an older commit's worktree, say) is served from the
same data too, and the two are driven in alternating rounds, so a noisy machine weighs on both
alike; compare their ratios, not their milliseconds. With ``--source``, every tree's answers are
also compared (searches as timed, grouped, dense and keyword; related by id and drafts; timings
left out): a change to the query path must not change a byte of what it answers, and the run
fails when one does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.common import REPO
from bench.demo_latency import demo_dir, requests
from bench.load import Req
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
            totals["ratio"].append(t["fetch"] / t["encode"])
            totals["encode"].append(t["encode"])
            totals["fetch"].append(t["fetch"])
            totals["total"].append(t["total"])
            totals["http"].append(wall - t["total"])


def answers(server: Server) -> list[str]:
    """Every comparison answer as canonical JSON, timings left out (they differ run to run)."""
    search, related, drafts = requests()
    reqs = list(search)
    reqs += [Req(r.method, r.path, {**r.body, "grouped": True}) for r in search[:120]]
    reqs += [Req(r.method, r.path, {**r.body, "mode": m}) for r in search[:80] for m in ("dense", "keyword")]
    reqs += related + drafts
    out = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for r in reqs:
            resp = client.request(r.method, r.path, json=r.body)
            # Keys kept in the order served: two trees' answers must match field order too.
            out.append(json.dumps([r.path, r.body, resp.status_code, _untimed(resp.json())], ensure_ascii=False))
    return out


def _untimed(v):
    if isinstance(v, dict):
        return {k: _untimed(x) for k, x in v.items() if k != "timings_ms"}
    if isinstance(v, list):
        return [_untimed(x) for x in v]
    return v


def summary(name: str, t: dict[str, list[float]]) -> str:
    med = statistics.median
    return (f"| {name} | {len(t['encode'])} | {med(t['encode']):.2f} | {med(t['fetch']):.2f} | "
            f"{sum(t['fetch']) / sum(t['encode']):.3f} | {med(t['ratio']):.3f} | {med(t['total']):.2f} | "
            f"{med(t['http']):.2f} |")


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
    totals = [{"encode": [], "fetch": [], "ratio": [], "total": [], "http": []} for _ in servers]
    try:
        for server in servers:  # warm up: first calls load the model and fill caches
            drive(server, search[:30], {"encode": [], "fetch": [], "ratio": [], "total": [], "http": []})
        for _ in range(args.rounds):
            for server, t in zip(servers, totals):
                drive(server, search, t)
        compared = [answers(server) for server in servers] if len(servers) > 1 else []
    finally:
        for server in servers:
            server.stop()
    lines = [header("caselink query path on the demo: encode vs fetch, from the server's timings_ms",
                    command="python -m bench.query_path " + " ".join(sys.argv[1:] if argv is None else argv)), "",
             "Medians in ms over every search that was encoded (bare codes take the keyword path); "
             "fetch/encode = sum(fetch) / sum(encode), the issue's figure, which a few searches slowed by a "
             "busy machine move; p50 of fetch/encode = the median of each search's own ratio; http = client "
             "wall time minus the server's total.", "",
             "| source | searches | encode p50 | fetch p50 | fetch/encode | p50 of fetch/encode | server total p50 "
             "| http p50 |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [summary(str(src), t) for src, t in zip(sources, totals)]
    differ = []
    if compared:
        first = compared[0]
        differ = [(str(src), sum(a != b for a, b in zip(first, other)))
                  for src, other in zip(sources[1:], compared[1:])]
        lines += ["", f"Answers compared with {sources[0]} ({len(first)} each: searches, 120 grouped, 160 dense or "
                      "keyword, related by id, drafts; timings left out): "
                  + "; ".join(f"{src}: {n} differ" for src, n in differ)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if any(n for _, n in differ):
        raise SystemExit("answers differ between the source trees (see above)")


if __name__ == "__main__":
    main()
