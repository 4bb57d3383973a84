"""Memory of the serving process per corpus size, of the build, and the index's size on disk.

For each size: start ``caselink serve`` on the prebuilt data directory, time start-to-ready, read
the resident size (VmRSS) when ready, run a short mixed warm-up (hybrid, dense and keyword
searches, related records) so every index structure and the encoder are touched, read it again
with the peak (VmHWM), and list the on-disk sizes of the snapshot's files, the record store and
the embedding cache. The build's peak is the data directory's own (``bench.json``): the VmHWM of
the subprocess that built it the way ``caselink index`` does (a streamed JSONL load into the store,
then ``CaselinkService.build``), measured when the directory was built.

Usage::

    python -m bench.memory --sizes 10000,100000,1000000
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import (Target, base_parser, dir_size_mb, embed_sample_for, fmt, fmt_mb, md_table, size_label,
                          targets_table, write_report)
from bench.load import run_httpx
from bench.prepare import prepare_data_dir, vector_tag
from bench.query import add_server_args, related_requests, search_requests, server_notes
from bench.server import Server


def _size_mb(p: Path) -> float:
    p = p.resolve()
    if p.is_dir():
        return dir_size_mb(p, follow=True)
    total = 0
    for q in (p, p.with_name(p.name + "-wal")):
        if q.exists():
            total += q.stat().st_size
    return total / 2**20


def disk_parts(d: Path) -> dict[str, float]:
    snap = (d / "index" / "current").resolve()
    parts = {"vectors.faiss": _size_mb(snap / "vectors.faiss"), "bm25/": _size_mb(snap / "bm25"),
             "facets.json": _size_mb(snap / "facets.json")}
    parts["index total"] = dir_size_mb(snap, follow=True)
    parts["records.sqlite"] = _size_mb(d / "records.sqlite")
    cache = d / "embeddings.sqlite"
    parts["embedding cache"] = _size_mb(cache) if cache.exists() and not cache.is_symlink() else float("nan")
    return parts


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000,1000000", out_name="memory.md")
    add_server_args(p)
    p.add_argument("--warmup", type=int, default=300, help="warm-up requests (default 300)")
    a = p.parse_args(argv)

    rows, disk_rows, build_rows, targets = [], [], [], []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        d = prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                             quantizer=a.quantizer)
        vec_label = "real" if sample >= n else f"synthetic ({size_label(sample)} + noise)"
        with Server(d, threads=a.threads, omp_threads=a.omp_threads or None) as srv:
            ready = srv.rss()
            reqs = []
            for mode in ("hybrid", "dense", "keyword"):
                reqs += search_requests(n, a.seed, mode)[:100] + related_requests(n, mode)[:50]
            reqs = reqs[::3] + reqs[1::3] + reqs[2::3]
            run_httpx(srv.url, reqs, clients=2, duration=120, max_requests=a.warmup)
            warm = srv.rss()
        parts = disk_parts(d)
        built = json.loads((d / "bench.json").read_text()) if (d / "bench.json").exists() else {}
        build_rows.append([size_label(n), vec_label, built.get("built_with", "?"),
                           fmt(built["build_seconds"]) if "build_seconds" in built else "-",
                           fmt_mb(built["build_peak_rss_mb"]) if "build_peak_rss_mb" in built else "-"])
        if n == 1_000_000 and "build_peak_rss_mb" in built:
            targets.append(Target("build peak RSS at 1M records", built["build_peak_rss_mb"] / 1024, "<=", 4.0, "GB",
                                  note=f"{a.quantizer}, {vector_tag(n, sample, a.noise)}"))
        rows.append([size_label(n), vec_label, fmt(srv.startup_s), fmt_mb(ready["rss_mb"]), fmt_mb(warm["rss_mb"]),
                     fmt_mb(warm["peak_mb"]), fmt_mb(parts["index total"]),
                     fmt(warm["rss_mb"] * 2**20 / n, 0) + " B"])
        disk_rows.append([size_label(n), *[fmt_mb(parts[k]) if parts[k] == parts[k] else "shared"
                                          for k in ("vectors.faiss", "bm25/", "facets.json", "index total",
                                                    "records.sqlite", "embedding cache")]])
        if n == 1_000_000:
            targets.append(Target("serving RSS at 1M records", warm["rss_mb"] / 1024, "<=", 3.0, "GB",
                                  note=vector_tag(n, sample, a.noise)))
    body = ["## Serving process\n",
            md_table(["size", "vectors", "start to ready s", "RSS ready", "RSS after warm-up", "peak RSS",
                      "index on disk", "RSS per record"], rows),
            "\n## Build (`caselink index` from the JSONL corpus, in its own process)\n",
            md_table(["size", "vectors", "how", "build s", "peak RSS"], build_rows),
            "\n## On disk\n",
            "'shared' = the embedding cache is a link to the benchmarks' shared cache (real vectors), so its "
            "size is not this corpus's.\n",
            md_table(["size", "vectors.faiss", "bm25/", "facets.json", "index total", "records.sqlite",
                      "embedding cache"], disk_rows),
            "\n## Targets\n", targets_table(targets) if targets else "The 1M size was not measured.\n"]
    write_report(a.out, "caselink serving memory and index size", "\n".join(body), notes=server_notes(a))


if __name__ == "__main__":
    main()
