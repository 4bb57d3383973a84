"""Query latency and throughput of the real server: POST /v1/search and GET /v1/records/{id}/related.

For each corpus size the data directory is built once (see :mod:`bench.prepare`), ``caselink
serve`` is started on a free loopback port, and a load tool (wrk with ``bench/wrk_caselink.lua``
when installed, else httpx threads; ``--tool``) sends realistic queries from the corpus generator
(titles, symptom sentences, bare codes, code plus words, short phrases, either Chinese script) and
related-record requests for random stored records, with 1 and 4 concurrent clients, in each mode
(hybrid, dense, keyword). Each run is bounded by ``--duration`` seconds (and ``--requests`` for
httpx). Reported: client-side p50/p95/p99 latency and throughput, the server's own ``timings_ms``
split averaged over the run, which path answered (hybrid queries that are essentially a code are
answered by keywords), and the server's resident size.

Usage::

    python -m bench.query --sizes 10000,100000 [--clients 1,4] [--duration 20] [--tool auto|wrk|httpx]
"""

from __future__ import annotations

import random
from urllib.parse import quote

from bench.common import (Target, add_embed_sample, dir_size_mb, embed_sample_for, fmt, fmt_mb, log, md_table,
                          base_parser, size_label, targets_table, write_report)
from bench.corpus import ensure_queries
from bench.load import TIMING_KEYS, Req, run, wrk_available
from bench.prepare import prepare_data_dir, vector_tag
from bench.server import Server

MODES = ("hybrid", "dense", "keyword")


def search_requests(n: int, seed: int, mode: str, count: int = 1000) -> list[Req]:
    return [Req("POST", "/v1/search", {"text": q["text"], "k": 10, "mode": mode})
            for q in ensure_queries(n, seed, count)]


def related_requests(n: int, mode: str, count: int = 1000, seed: int = 5) -> list[Req]:
    r = random.Random(seed)
    ids = [f"BC-{r.randrange(n):07d}" for _ in range(count)]
    return [Req("GET", f"/v1/records/{quote(i, safe='')}/related?k=10&mode={mode}") for i in ids]


def add_server_args(p) -> None:
    add_embed_sample(p)
    p.add_argument("--model", default="use-m3", help="encoder: use-m3 (default) or minilm")
    p.add_argument("--threads", type=int, default=0,
                   help="encoder threads in the server and for building (default 0 = caselink's default: the cores)")
    p.add_argument("--omp-threads", type=int, default=0, help="OMP_NUM_THREADS for the server (FAISS); 0 = unset")
    p.add_argument("--quantizer", default="flat", choices=("flat", "sq8", "pq"),
                   help="vectors.quantizer for the data directories (IVF storage from 50k records; default flat)")


def server_notes(a) -> list[str]:
    from caselink.config import RankConfig, VectorConfig

    r, v = RankConfig(), VectorConfig()
    return [f"encoder {a.model}, threads {a.threads or 'default (cores)'}, "
            f"OMP_NUM_THREADS {a.omp_threads or 'unset'}; server: `python -m caselink.cli serve` on 127.0.0.1, "
            f"default settings ({r.mode} {r.fusion} fusion, {r.candidates} candidates per side, exact vectors "
            f"below {v.exact_below:,}, IVF {a.quantizer} nprobe {v.nprobe} above)"]


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000,1000000", out_name="query.md")
    add_server_args(p)
    p.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated (default 1,4)")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--endpoints", default="search,related")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run (default 20)")
    p.add_argument("--requests", type=int, default=5000, help="at most this many requests per run (httpx)")
    p.add_argument("--tool", choices=("auto", "wrk", "httpx"), default="auto")
    a = p.parse_args(argv)
    tool = ("wrk" if wrk_available() else "httpx") if a.tool == "auto" else a.tool
    clients = [int(c) for c in a.clients.split(",")]
    modes = [m for m in a.modes.split(",") if m]
    endpoints = [e for e in a.endpoints.split(",") if e]

    rows, split_rows, mem_rows, targets = [], [], [], []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        tag = vector_tag(n, sample, a.noise)
        d = prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                             quantizer=a.quantizer)
        vec_label = "real" if sample >= n else f"**synthetic** ({size_label(sample)} + noise)"
        with Server(d, threads=a.threads, omp_threads=a.omp_threads or None) as srv:
            run("httpx", srv.url, search_requests(n, a.seed, "hybrid")[:40] + related_requests(n, "hybrid")[:20],
                clients=1, duration=60, max_requests=60)  # warm-up, not reported
            rss_ready = srv.rss()
            offset = 0
            for endpoint in endpoints:
                for mode in modes:
                    reqs = search_requests(n, a.seed, mode) if endpoint == "search" else related_requests(n, mode)
                    for c in clients:
                        offset += 97
                        reqs_run = reqs[offset % len(reqs):] + reqs[:offset % len(reqs)]
                        log(f"{size_label(n)} {endpoint} {mode} x{c} ({tool}, {a.duration:g} s)")
                        res = run(tool, srv.url, reqs_run, clients=c, duration=a.duration, max_requests=a.requests)
                        route = "POST /v1/search" if endpoint == "search" else "GET /v1/records/{id}/related"
                        answered = ", ".join(f"{k} {v / max(1, sum(res.paths.values())):.0%}"
                                             for k, v in sorted(res.paths.items()))
                        rows.append([size_label(n), vec_label, route, mode, c, f"{res.requests:,}", fmt(res.p50_ms),
                                     fmt(res.p95_ms), fmt(res.p99_ms), fmt(res.max_ms), fmt(res.rps),
                                     res.errors, answered])
                        t = res.timings_ms
                        split_rows.append([size_label(n), route, mode, c, *[fmt(t.get(k), 2) for k in TIMING_KEYS],
                                           fmt(res.mean_ms - t.get("total", float("nan")), 2)])
                        if endpoint == "search" and mode == "hybrid" and c == 1:
                            goal = {100_000: 25.0, 1_000_000: 50.0}.get(n)
                            if goal is not None:
                                targets.append(Target(f"/v1/search hybrid p95, one client, {size_label(n)}",
                                                      res.p95_ms, "<=", goal, "ms", note=tag))
            rss_end = srv.rss()
            index_mb = dir_size_mb(d / "index" / "current", follow=True)
            mem_rows.append([size_label(n), vec_label, fmt(srv.startup_s), fmt_mb(rss_ready.get("rss_mb")),
                             fmt_mb(rss_end.get("rss_mb")), fmt_mb(rss_end.get("peak_mb")), fmt_mb(index_mb)])
    body = ["## Latency and throughput (client side)\n",
            f"Load tool: {tool}; each run at most {a.duration:g} s"
            + (f" and {a.requests:,} requests" if tool == "httpx" else "")
            + "; k = 10; latencies in ms. 'answered by' is the ranking path the server reports (hybrid "
              "queries that are essentially a code, or whose best cosine is under the dense floor, are "
              "answered by keywords).\n",
            md_table(["size", "vectors", "endpoint", "mode", "clients", "requests", "p50", "p95", "p99", "max",
                      "req/s", "errors", "answered by"], rows),
            "\n## Server-side time split (timings_ms, mean per request, ms)\n",
            "'HTTP + queueing' is the client's mean latency minus the server's mean total: request parsing, "
            "JSON, the threadpool queue and, with several clients, waiting for the index lock.\n",
            md_table(["size", "endpoint", "mode", "clients", *TIMING_KEYS, "HTTP + queueing"], split_rows),
            "\n## Serving process\n",
            md_table(["size", "vectors", "start to ready s", "RSS after warm-up", "RSS after runs", "peak RSS",
                      "index on disk"], mem_rows),
            "\n## Targets\n", targets_table(targets) if targets else "No 100k or 1M size was measured.\n"]
    write_report(a.out, "caselink query latency (HTTP)", "\n".join(body), notes=server_notes(a))


if __name__ == "__main__":
    main()
