"""Search backends side by side: ``local`` (FAISS + BM25L in the caselink process) and ``milvus``
(a Milvus Lite server on a loopback port), the same corpus, requests and clients, in one run.

    python -m bench.backends [--sizes 10k,100k,1M] [--embed-sample 1000] [--requests 200]
                             [--clients 1,4] [--writes 300] [--out bench/backends.md]

For each size, one data directory per backend is built the way ``caselink index`` builds it
(bench/prepare.py, in a subprocess: build seconds and peak RSS; local with ``vectors.quantizer``
``--quantizer``, Milvus with FLAT below ``vectors.exact_below`` records and HNSW from there). Then
both ``caselink serve`` processes run at once and take turns, ``--round`` requests each: hybrid
``POST /v1/search`` and ``GET /v1/records/{id}/related`` with 1 and 4 concurrent HTTP clients, so
the two engines see the same machine load; then ``--writes`` new records through
``POST /v1/records:batch`` (``--write-batch`` a call, embedded by the server, alternating between
the servers; they are deleted again afterwards). Reported: latency p50/p95 per client count,
writes/s, build seconds, the caselink process's resident size (build peak, serving), the Milvus
server's, and how many of ``--compare`` searches return the same top 10 on both. From the
measured resident sizes, a linear projection to 10M and 100M records (through the two largest
sizes measured; labelled as such).

Everything after the line ``<!-- end of bench.backends output -->`` in ``--out`` is kept on rerun
(notes written by hand about earlier measurements).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import (WORK, Target, add_embed_sample, embed_sample_for, fmt, fmt_mb, listening_pid, log, md_table,
                          parse_sizes, pct, size_label, targets_table, tree_rss_mb)
from bench.load import Req, run_httpx
from bench.machine import REPO, header, load_average
from bench.prepare import prepare_data_dir, server_config
from bench.query import related_requests, search_requests
from bench.server import Server

KEEP_MARK = "<!-- end of bench.backends output -->"
KINDS = ("local", "milvus")


def interleaved(servers: dict[str, Server], reqs: list[Req], *, clients: int, total: int, round_size: int
                ) -> dict[str, dict]:
    """``total`` requests per server in rounds of ``round_size``, the servers taking turns, both
    sent the same requests in the same order. Returns per server: latencies (ms), seconds, errors."""
    out = {k: {"lat": [], "seconds": 0.0, "errors": 0} for k in servers}
    for start in range(0, total, round_size):
        n = min(round_size, total - start)
        for kind, srv in servers.items():
            r = run_httpx(srv.url, reqs, clients=clients, duration=3600, max_requests=n, offset=start)
            out[kind]["lat"] += r.latencies_ms
            out[kind]["seconds"] += r.seconds
            out[kind]["errors"] += r.errors
    return out


def write_records(corpus: Path, count: int) -> list[dict]:
    """``count`` new records: the corpus's first records with new ids and a new title, so the
    servers embed and index them as they would a new ticket."""
    out = []
    with corpus.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if len(out) >= count:
                break
            rec = json.loads(line)
            rec["id"] = f"BW-{i:07d}"
            rec["title"] = f"{rec.get('title', '')} (rewrite {i})"  # a new text: embedded, not read from a cache
            out.append(rec)
    return out


def writes(servers: dict[str, Server], records: list[dict], batch: int) -> dict[str, dict]:
    """Batch upserts, the servers taking turns batch by batch; then the records deleted again."""
    import httpx

    out = {k: {"seconds": 0.0, "records": 0, "errors": 0, "delete_s": 0.0} for k in servers}
    clients = {k: httpx.Client(base_url=s.url, timeout=600) for k, s in servers.items()}
    try:
        for start in range(0, len(records), batch):
            for kind, client in clients.items():
                # a title of each engine's own: the servers share the embedding cache, so the same
                # text would be embedded by the first and read from the cache by the second
                part = [dict(r, title=f"{r['title']} [{kind}]") for r in records[start:start + batch]]
                t = time.perf_counter()
                resp = client.post("/v1/records:batch", json={"records": part})
                out[kind]["seconds"] += time.perf_counter() - t
                if resp.status_code >= 300:
                    out[kind]["errors"] += 1
                    log(f"{kind}: batch upsert answered {resp.status_code}: {resp.text[:300]}")
                else:
                    out[kind]["records"] += len(part)
        for start in range(0, len(records), batch):
            ids = [r["id"] for r in records[start:start + batch]]
            for kind, client in clients.items():
                t = time.perf_counter()
                client.post("/v1/records:batchDelete", json={"ids": ids}).raise_for_status()
                out[kind]["delete_s"] += time.perf_counter() - t
    finally:
        for c in clients.values():
            c.close()
    return out


def same_top(servers: dict[str, Server], reqs: list[Req]) -> int:
    """How many of ``reqs`` (searches) return the same ids in the same order on every server."""
    import httpx

    tops: dict[str, list] = {}
    for kind, srv in servers.items():
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            tops[kind] = [[r["id"] for r in c.post(q.path, json=q.body).json().get("results", [])] for q in reqs]
    first, *rest = tops.values()
    return sum(all(t[i] == first[i] for t in rest) for i in range(len(reqs)))


def project(points: list[tuple[int, float]], n: int) -> float | None:
    """Linear through the two largest measured sizes: MB at ``n`` records (None with fewer than two)."""
    if len(points) < 2:
        return None
    (n1, m1), (n2, m2) = sorted(points)[-2:]
    per = (m2 - m1) / (n2 - n1)
    return m2 + per * (n - n2)


def measure_size(a, n: int, uri: str, milvus_pid: int | None) -> dict:
    sample = embed_sample_for(a.embed_sample, n)
    dirs = {kind: prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                                   quantizer=a.quantizer, backend=kind, backend_uri=uri,
                                   milvus_index=a.milvus_index if kind == "milvus" else "auto")
            for kind in KINDS}
    built = {k: json.loads((d / "bench.json").read_text()) for k, d in dirs.items()}
    res: dict = {"n": n, "sample": sample, "built": built, "latency": {}, "load": []}
    with ExitStack() as stack:
        servers = {k: stack.enter_context(Server(d, threads=a.threads, config=server_config(d)))
                   for k, d in dirs.items()}
        res["startup_s"] = {k: s.startup_s for k, s in servers.items()}
        res["rss_ready"] = {k: s.rss()["rss_mb"] for k, s in servers.items()}
        search = search_requests(n, a.seed, "hybrid")
        related = related_requests(n, "hybrid")
        random.Random(a.seed).shuffle(search)
        interleaved(servers, search[-50:] + related[-50:], clients=1, total=20, round_size=10)  # warm-up
        for clients in a.clients:
            for name, reqs in (("search", search), ("related", related)):
                res["load"].append("/".join(f"{x:.1f}" for x in load_average()))
                log(f"{size_label(n)}: {name}, {clients} client(s)")
                res["latency"][(name, clients)] = interleaved(servers, reqs, clients=clients, total=a.requests,
                                                              round_size=a.round)
        from bench.corpus import ensure_corpus

        res["same_top"] = same_top(servers, search[:a.compare]) if a.compare else None
        log(f"{size_label(n)}: writes")
        res["writes"] = writes(servers, write_records(ensure_corpus(n, a.seed), a.writes), a.write_batch) \
            if a.writes else {}
        res["rss"] = {k: s.rss() for k, s in servers.items()}
        res["milvus_rss"] = tree_rss_mb(milvus_pid) if milvus_pid else None
    return res


def report(a, results: list[dict], uri: str) -> str:
    lat_rows, size_rows, proj_rows, targets = [], [], [], []
    for r in results:
        label = size_label(r["n"])
        for (name, clients), per in r["latency"].items():
            row = [label, name, clients]
            for kind in KINDS:
                m = per[kind]
                rps = len(m["lat"]) / m["seconds"] if m["seconds"] else float("nan")
                row += [fmt(pct(m["lat"], 50)), fmt(pct(m["lat"], 95)), fmt(rps)]
            p95 = {k: pct(per[k]["lat"], 95) for k in KINDS}
            row.append(fmt(p95["milvus"] / p95["local"], 2) if p95["local"] else "-")
            errs = sum(per[k]["errors"] for k in KINDS)
            row.append(errs)
            lat_rows.append(row)
            if name == "search":
                targets.append(Target(f"hybrid search p95 milvus / local at {label}, {clients} client(s)",
                                      p95["milvus"] / p95["local"], "<=", 2.0, "x"))
        for kind in KINDS:
            b = r["built"][kind]
            w = r["writes"].get(kind, {})
            wps = w["records"] / w["seconds"] if w.get("seconds") else float("nan")
            engine = (f"milvus {b.get('milvus_index', '')}" if kind == "milvus" else f"local {a.quantizer}")
            if b.get("reindexed_from"):  # bench/prepare.py moved a build on another dense index: say so
                engine += f" (re-indexed in place from {b['reindexed_from']} in {fmt(b.get('reindex_seconds'))} s)"
            size_rows.append([label, engine, fmt(b.get("build_seconds")), fmt_mb(b.get("build_peak_rss_mb")),
                              fmt(r["startup_s"][kind]), fmt_mb(r["rss_ready"][kind]), fmt_mb(r["rss"][kind]["rss_mb"]),
                              fmt_mb(r["rss"][kind]["peak_mb"]), fmt(wps), w.get("errors", "-"),
                              fmt_mb(r["milvus_rss"]["rss_mb"]) if kind == "milvus" and r["milvus_rss"] else "-"])
    # projections from the serving resident sizes (caselink process; Milvus server for milvus)
    series = {
        "local: caselink process": [(r["n"], r["rss"]["local"]["rss_mb"]) for r in results],
        "milvus: caselink process": [(r["n"], r["rss"]["milvus"]["rss_mb"]) for r in results],
        "milvus: Milvus server (all sizes loaded)": [],
    }
    for name, pts in series.items():
        if len(pts) >= 2:
            (n1, _), (n2, _) = sorted(pts)[-2:]
            per = (project(pts, n2) - project(pts, n1)) / (n2 - n1) * 2**20
            proj_rows.append([name, f"{size_label(n1)} and {size_label(n2)}", f"{per:,.0f} B",
                              fmt_mb(project(pts, 10_000_000)), fmt_mb(project(pts, 100_000_000))])
    body = ["## Latency (ms), both servers running, taking turns every "
            f"{a.round} requests; hybrid mode, k=10\n",
            md_table(["size", "request", "clients", "local p50", "local p95", "local req/s", "milvus p50",
                      "milvus p95", "milvus req/s", "p95 milvus/local", "errors"], lat_rows),
            "\n## Build, memory and writes\n",
            "Build: `caselink index`'s path (streamed JSONL -> store -> index) in its own process; peak = its "
            "VmHWM. Serving RSS: the `caselink serve` process after the load; writes/s: records through "
            f"`POST /v1/records:batch`, {a.write_batch} a call, each a new text embedded by the server, the two servers taking turns batch by batch (then deleted). Milvus server RSS: "
            "the separate milvus-lite process holding every size's collection built so far.\n",
            md_table(["size", "engine", "build s", "build peak RSS", "start s", "RSS ready", "RSS after load",
                      "serving peak RSS", "writes/s", "write errors", "Milvus server RSS"], size_rows)]
    if any(r["same_top"] is not None for r in results):
        body.append("\nSame top 10 on both (hybrid search, first queries): "
                    + ", ".join(f"{size_label(r['n'])} {r['same_top']}/{a.compare}" for r in results) + "\n")
    if proj_rows:
        body += ["\n## Projection (linear, from the two largest sizes measured; not measured)\n",
                 md_table(["resident size of", "through", "per record", "10M", "100M"], proj_rows)]
    body += ["\n## Targets\n", targets_table(targets)]
    loads = "; ".join(f"{size_label(r['n'])}: " + ", ".join(r["load"][:1] + r["load"][-1:]) for r in results)
    notes = [f"vectors: {a.embed_sample} real sample(s) + noise {a.noise} above it (bench/prepare.py), encoder "
             f"{a.model}; Milvus: {a.milvus_label} at {uri}, dense index {a.milvus_index}",
             f"load average (1/5/15 min) at the first and last latency phase per size: {loads}"]
    cmd = "python -m bench.backends " + " ".join(sys.argv[1:])
    return header("caselink search backends: local vs milvus", command=cmd.strip(), notes=notes) + "\n" + \
        "\n".join(body)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("10k,100k,1M"))
    ap.add_argument("--seed", type=int, default=7)
    add_embed_sample(ap)
    ap.add_argument("--model", default="use-m3")
    ap.add_argument("--threads", type=int, default=0, help="encoder threads per server (0: caselink's default)")
    ap.add_argument("--quantizer", default="sq8", choices=("flat", "sq8", "pq"),
                    help="local's vectors.quantizer (IVF from vectors.exact_below records; default sq8)")
    ap.add_argument("--requests", type=int, default=200, help="requests per endpoint, client count and backend")
    ap.add_argument("--round", type=int, default=50, help="requests per turn before the other server's turn")
    ap.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    ap.add_argument("--writes", type=int, default=300, help="records written per backend (0: no writes)")
    ap.add_argument("--write-batch", type=int, default=100)
    ap.add_argument("--compare", type=int, default=50, help="searches whose top 10 are compared (0: none)")
    ap.add_argument("--backend-uri", default="", help="a running Milvus; default: a milvus-lite server started here")
    ap.add_argument("--milvus-index", default="auto", choices=("auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"),
                    help="Milvus dense index; auto = FLAT below vectors.exact_below records, HNSW from there "
                         "(milvus-lite 2.5's C++ core has no HNSW: FLAT or IVF_FLAT there)")
    ap.add_argument("--milvus-label", default="",
                    help="what the --backend-uri server is, for the report (default: milvus-lite server)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "backends.md")
    a = ap.parse_args(argv)
    a.milvus_label = a.milvus_label or "milvus-lite server"
    results = []
    with ExitStack() as stack:
        uri = a.backend_uri
        if not uri:
            from throwaway.milvus import milvus_lite_server

            uri = stack.enter_context(milvus_lite_server(WORK / "milvus" / "data", timeout=300))
        milvus_pid = listening_pid(uri)
        for n in a.sizes:
            results.append(measure_size(a, n, uri, milvus_pid))
            text = report(a, results, uri)  # after every size: a long run leaves what it measured
            kept = ""
            if a.out.is_file() and KEEP_MARK in (old := a.out.read_text(encoding="utf-8")):
                kept = old.split(KEEP_MARK, 1)[1]
            a.out.write_text(text.rstrip() + "\n\n" + KEEP_MARK + kept, encoding="utf-8")
            print(text)
    print(json.dumps({"out": str(a.out)}))


if __name__ == "__main__":
    main()
