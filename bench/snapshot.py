"""Snapshot cost on a large index, and what it does to searches running at the same time.

For each size: open the prebuilt data directory in this process (as the server does), store a few
new records, then take a snapshot while a second thread searches without pause. Reported: how
long the snapshot held the index lock (the capture), its total time (files written, fsynced,
checksummed, published), and the search latencies seen before and during it. The probe records
are deleted again afterwards (the data directory keeps two more change-log rows per record).

Usage::

    python -m bench.snapshot --sizes 100000,1000000 --quantizer sq8
"""

from __future__ import annotations

import threading
import time

import numpy as np

from bench.common import base_parser, embed_sample_for, fmt, log, md_table, size_label, write_report
from bench.prepare import prepare_data_dir, settings_for
from bench.query import add_server_args

QUERIES = ["真空泵报警 E1023 腔体压力升高", "wafer transfer robot drop", "冷卻水流量低", "PN-7731-02 更换后仍报警"]


def _search_loop(svc, stop: threading.Event, warm: threading.Event, out: list[tuple[float, float]]) -> None:
    from recommender.results import SearchQuery

    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        svc.search(SearchQuery(text=QUERIES[i % len(QUERIES)]))
        out.append((t, (time.perf_counter() - t) * 1000))
        i += 1
        if i == 200:
            warm.set()  # a baseline of searches before the snapshot


def measure(data_dir, threads: int, probes: int) -> dict:
    import indexing.live as live
    from indexing.records import Record
    from recommender.service import CaselinkService

    settings = settings_for(data_dir, threads=threads)
    t = time.perf_counter()
    svc = CaselinkService.open(settings)
    open_s = time.perf_counter() - t
    from recommender.results import SearchQuery

    svc.search(SearchQuery(text=QUERIES[0]))  # loads the encoder: not part of "before"
    captured = []
    real_capture = live.capture_state

    def timed_capture(index):
        t0 = time.perf_counter()
        try:
            return real_capture(index)
        finally:
            captured.append((time.perf_counter() - t0) * 1000)

    live.capture_state = timed_capture
    ids = [f"SNAPSHOT-PROBE-{i}" for i in range(probes)]
    upsert_ms = []
    for rid in ids:
        t = time.perf_counter()
        svc.upsert([Record(id=rid, kind="case", title=f"快照探针 {rid}", text="冷却水流量低，报警 E7001")])
        upsert_ms.append((time.perf_counter() - t) * 1000)
    stop, warm, seen = threading.Event(), threading.Event(), []
    searcher = threading.Thread(target=_search_loop, args=(svc, stop, warm, seen))
    searcher.start()
    warm.wait(300)
    t0 = time.perf_counter()
    svc.snapshot()
    t1 = time.perf_counter()
    stop.set()
    searcher.join()
    live.capture_state = real_capture
    for rid in ids:
        svc.delete(rid)
    factory, records = svc.stats().factory, svc.indexed()
    svc.close()
    before = [ms for t, ms in seen if t + ms / 1000 < t0]
    during = [ms for t, ms in seen if t < t1 and t + ms / 1000 > t0]
    return {"open_s": open_s, "records": records, "capture_ms": captured[0] if captured else float("nan"),
            "snapshot_s": t1 - t0, "upsert_ms": float(np.median(upsert_ms)),
            "before_p50": float(np.percentile(before, 50)) if before else float("nan"),
            "before_max": max(before) if before else float("nan"), "during_n": len(during),
            "during_p50": float(np.percentile(during, 50)) if during else float("nan"),
            "during_max": max(during) if during else float("nan"), "factory": factory}


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="100000,1000000", out_name="snapshot.md")
    add_server_args(p)
    p.add_argument("--probes", type=int, default=3, help="records stored before the snapshot (default 3)")
    a = p.parse_args(argv)
    rows = []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        d = prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                             quantizer=a.quantizer)
        log(f"{size_label(n)}: opening {d.name} and snapshotting under search load")
        r = measure(d, a.threads, a.probes)
        rows.append([size_label(n), r["factory"], fmt(r["open_s"]), fmt(r["upsert_ms"]), fmt(r["capture_ms"]),
                     fmt(r["snapshot_s"], 2), fmt(r["before_p50"]), fmt(r["before_max"]), r["during_n"],
                     fmt(r["during_p50"]), fmt(r["during_max"])])
    body = ["## Snapshot under search load\n",
            "One thread searches (hybrid, 4 rotating queries) without pause while the main thread takes a "
            "snapshot. The index lock is held only for the capture; the rest of the snapshot time is file "
            "writing, fsync, checksums and the atomic switch.\n",
            md_table(["size", "vector index", "open s", "upsert ms (median)", "lock held (capture) ms",
                      "snapshot total s", "search p50 before ms", "search max before ms", "searches during",
                      "search p50 during ms", "search max during ms"], rows)]
    write_report(a.out, "caselink snapshot cost", "\n".join(body),
                 notes=[f"in-process (CaselinkService.open on the benchmark data directory), vectors.quantizer "
                        f"{a.quantizer} at build, encoder {a.model}"])


if __name__ == "__main__":
    main()
