"""Write-to-searchable latency under query load: PUT a new record, poll search until it is found.

Against the real server (``caselink serve`` on a free loopback port, prebuilt data directory):

1. *baseline*: ``--load-clients`` httpx threads send hybrid ``POST /v1/search`` for ``--baseline``
   seconds, no writes;
2. *writes*: the same query load keeps running while the main thread PUTs ``--records`` new
   records, one at a time ``--interval`` seconds apart. Each record carries a unique code
   (``UPS-<run>-<n>``) in its title, text and error codes; after the PUT returns, the code is
   searched (``POST /v1/search``, default mode) until the record is among the results, at most
   ``--poll-timeout`` seconds. Reported: PUT latency, PUT-to-searchable latency and the polls it
   took, and the concurrent queries' latency with and without writes;
3. the records are deleted again (DELETE), so the data directory is left as it was.

caselink indexes before it acknowledges a write, so one poll should always suffice; a snapshot
(every ``server.persist_every`` writes, default 500) holds the index lock while it captures the
state (not while it writes files), which ``--persist-every 20`` makes visible in the latency maxima.

Usage::

    python -m bench.upsert --sizes 10000,100000 [--records 50] [--load-clients 2] [--persist-every 500]
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from bench.common import (base_parser, embed_sample_for, fmt, log, md_table, size_label,
                          write_report)
from bench.corpus import ensure_corpus, read_records
from bench.load import run_httpx
from bench.prepare import prepare_data_dir
from bench.query import add_server_args, search_requests, server_notes
from bench.server import Server


def _stats(values: list[float]) -> list[str]:
    if not values:
        return ["-"] * 5
    a = np.asarray(values)
    return [f"{len(a):,}", fmt(float(np.percentile(a, 50))), fmt(float(np.percentile(a, 95))),
            fmt(float(np.percentile(a, 99))), fmt(float(a.max()))]


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000,1000000", out_name="upsert.md")
    add_server_args(p)
    p.add_argument("--records", type=int, default=50, help="records to PUT per size (default 50)")
    p.add_argument("--interval", type=float, default=0.1, help="pause between PUTs, s (default 0.1)")
    p.add_argument("--load-clients", type=int, default=2, help="concurrent search clients (default 2)")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds of query load without writes (default 10)")
    p.add_argument("--poll-timeout", type=float, default=10.0)
    p.add_argument("--persist-every", type=int, default=0,
                   help="server.persist_every for the server (default 0 = caselink's default, 500)")
    a = p.parse_args(argv)

    rows, load_rows = [], []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        d = prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                             quantizer=a.quantizer)
        vec_label = "real" if sample >= n else f"synthetic ({size_label(sample)} + noise)"
        templates = read_records(ensure_corpus(n, a.seed), limit=min(n, 2000))
        config = {"server": {"persist_every": a.persist_every}} if a.persist_every else None
        with Server(d, threads=a.threads, omp_threads=a.omp_threads or None, config=config) as srv:
            import httpx

            reqs = search_requests(n, a.seed, "hybrid")
            log(f"{size_label(n)}: baseline query load ({a.load_clients} clients, {a.baseline:g} s)")
            base = run_httpx(srv.url, reqs, clients=a.load_clients, duration=a.baseline, max_requests=100_000)
            stop = threading.Event()
            during = {}

            def background() -> None:
                # bounded: stops when the writes are done, or after an hour at most
                during["r"] = run_httpx(srv.url, reqs, clients=a.load_clients, duration=3600,
                                        max_requests=1_000_000, offset=500, stop=stop)

            th = threading.Thread(target=background, daemon=True)
            th.start()
            run_id = uuid.uuid4().hex[:6]
            put_ms, visible_ms, polls, missing, ids = [], [], [], 0, []
            with httpx.Client(base_url=srv.url, timeout=60) as client:
                time.sleep(0.5)
                for i in range(a.records):
                    tpl = templates[i % len(templates)]
                    code = f"UPS-{run_id}-{i:04d}"
                    rid = f"BENCH-UPSERT-{run_id}-{i:04d}"
                    body = {k: v for k, v in tpl.items() if k not in ("id", "error_codes", "links")}
                    body["title"] = f"{tpl['title']} {code}"
                    body["text"] = f"{tpl['text']} 报警码 {code}。"
                    body["error_codes"] = [code]
                    t0 = time.perf_counter()
                    r = client.put(f"/v1/records/{rid}", json=body)
                    t_put = time.perf_counter() - t0
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"PUT {rid} answered {r.status_code}: {r.text[:300]}")
                    ids.append(rid)
                    found, k = False, 0
                    while time.perf_counter() - t0 < a.poll_timeout:
                        k += 1
                        s = client.post("/v1/search", json={"text": code, "k": 5})
                        if s.status_code == 200 and any(x["id"] == rid for x in s.json()["results"]):
                            found = True
                            break
                        time.sleep(0.01)
                    t_vis = time.perf_counter() - t0
                    put_ms.append(t_put * 1000)
                    if found:
                        visible_ms.append(t_vis * 1000)
                        polls.append(k)
                    else:
                        missing += 1
                    time.sleep(a.interval)
                stop.set()
                th.join()
                log(f"{size_label(n)}: deleting the {len(ids)} records again")
                del_ms = []
                for rid in ids:
                    t0 = time.perf_counter()
                    client.delete(f"/v1/records/{rid}")
                    del_ms.append((time.perf_counter() - t0) * 1000)
        dr = during.get("r")
        rows.append([size_label(n), vec_label, "PUT /v1/records/{id}", *_stats(put_ms), ""])
        rows.append([size_label(n), vec_label, "PUT -> found by search", *_stats(visible_ms),
                     f"polls: max {max(polls) if polls else '-'}; not found in {a.poll_timeout:g} s: {missing}"])
        rows.append([size_label(n), vec_label, "DELETE /v1/records/{id}", *_stats(del_ms), ""])
        for label, res in (("without writes", base), ("during writes", dr)):
            if res is None:
                continue
            load_rows.append([size_label(n), label, f"{res.requests:,}", fmt(res.p50_ms), fmt(res.p95_ms),
                              fmt(res.p99_ms), fmt(res.max_ms), fmt(res.rps), res.errors])
    persist = a.persist_every or 500
    body = ["## Write latency (ms)\n",
            f"{a.records} new records per size, {a.interval:g} s apart, under {a.load_clients} concurrent hybrid "
            f"search clients; server.persist_every = {persist} (a snapshot every {persist} writes holds the index "
            "lock only while it captures the state).\n",
            md_table(["size", "vectors", "operation", "count", "p50", "p95", "p99", "max", "note"], rows),
            "\n## Concurrent hybrid search latency (ms)\n",
            md_table(["size", "phase", "requests", "p50", "p95", "p99", "max", "req/s", "errors"], load_rows)]
    write_report(a.out, "caselink write-to-searchable latency", "\n".join(body), notes=server_notes(a))


if __name__ == "__main__":
    main()
