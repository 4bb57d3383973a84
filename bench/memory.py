"""Memory of the serving process per corpus size, of the build, and the index's size on disk.

For each size: start ``caselink serve`` on the prebuilt data directory, time start-to-ready, read
the resident size (VmRSS) when ready, run a short mixed warm-up (hybrid, dense and keyword
searches, related records) so every index structure and the encoder are touched, read it again
with the peak (VmHWM), and list the on-disk sizes of the snapshot's files, the record store and
the embedding cache. The build's peak is the data directory's own (``bench.json``): the VmHWM of
the subprocess that built it the way ``caselink index`` does (a streamed JSONL load into the store,
then ``CaselinkService.build``), measured when the directory was built.

With ``--backend milvus`` the index lives in a Milvus collection: on the server at
``--backend-uri``, or on a ``milvus-lite server`` this run starts on a loopback port (data under
the bench work folder). The figures are then the caselink process's (build and serving), with the
Milvus server's own resident size beside them (its peak covers the build when this run started it).

Usage::

    python -m bench.memory --sizes 10000,100000,1000000
    python -m bench.memory --sizes 1000000 --embed-sample 1000 --backend milvus
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from bench.common import (WORK, Target, base_parser, dir_size_mb, embed_sample_for, fmt, fmt_mb, listening_pid,
                          md_table, size_label, targets_table, tree_rss_mb, write_report)
from bench.load import run_httpx
from bench.prepare import prepare_data_dir, server_config, vector_tag
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


def add_backend_args(p) -> None:
    p.add_argument("--backend", default="local", choices=("local", "milvus"), help="search backend (default local)")
    p.add_argument("--backend-uri", default="",
                   help="Milvus to build on (http://127.0.0.1:PORT); default: a milvus-lite server started here")
    p.add_argument("--milvus-index", default="auto", choices=("auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"),
                   help="Milvus dense index; auto = FLAT below vectors.exact_below records, HNSW from there")


def milvus_uri(a, stack: ExitStack) -> str:
    """``--backend-uri``, or a milvus-lite server started for this run (stopped when ``stack`` closes)."""
    if a.backend != "milvus" or a.backend_uri:
        return a.backend_uri
    from throwaway.milvus import milvus_lite_server

    return stack.enter_context(milvus_lite_server(WORK / "milvus" / "data", timeout=300))


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000,1000000", out_name="memory.md")
    add_server_args(p)
    add_backend_args(p)
    p.add_argument("--warmup", type=int, default=300, help="warm-up requests (default 300)")
    a = p.parse_args(argv)
    with ExitStack() as stack:
        run(a, milvus_uri(a, stack))


def run(a, uri: str) -> None:
    milvus = a.backend == "milvus"
    milvus_pid = listening_pid(uri) if milvus else None
    rows, disk_rows, build_rows, targets, milvus_rows = [], [], [], [], []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        d = prepare_data_dir(n, seed=a.seed, model=a.model, sample=sample, noise=a.noise, threads=a.threads,
                             quantizer=a.quantizer, backend=a.backend, backend_uri=uri, milvus_index=a.milvus_index)
        vec_label = "real" if sample >= n else f"synthetic ({size_label(sample)} + noise)"
        if milvus_pid:
            after_build = tree_rss_mb(milvus_pid)
        with Server(d, threads=a.threads, omp_threads=a.omp_threads or None, config=server_config(d)) as srv:
            ready = srv.rss()
            reqs = []
            for mode in ("hybrid", "dense", "keyword"):
                reqs += search_requests(n, a.seed, mode)[:100] + related_requests(n, mode)[:50]
            reqs = reqs[::3] + reqs[1::3] + reqs[2::3]
            run_httpx(srv.url, reqs, clients=2, duration=120, max_requests=a.warmup)
            warm = srv.rss()
            if milvus_pid:
                served = tree_rss_mb(milvus_pid)
                milvus_rows.append([size_label(n), milvus_pid, fmt_mb(after_build["rss_mb"]), fmt_mb(served["rss_mb"]),
                                    fmt_mb(served["peak_mb"])])
        parts = disk_parts(d)
        built = json.loads((d / "bench.json").read_text()) if (d / "bench.json").exists() else {}
        build_rows.append([size_label(n), vec_label, built.get("built_with", "?"),
                           fmt(built["build_seconds"]) if "build_seconds" in built else "-",
                           fmt_mb(built["build_peak_rss_mb"]) if "build_peak_rss_mb" in built else "-"])
        if n == 1_000_000 and "build_peak_rss_mb" in built:
            how = f"milvus {built.get('milvus_index', '')}" if milvus else a.quantizer
            targets.append(Target(f"build peak RSS at 1M records ({'caselink process, ' if milvus else ''}{a.backend})",
                                  built["build_peak_rss_mb"] / 1024, "<=", 2.0 if milvus else 4.0, "GB",
                                  note=f"{how}, {vector_tag(n, sample, a.noise)}"))
        rows.append([size_label(n), vec_label, fmt(srv.startup_s), fmt_mb(ready["rss_mb"]), fmt_mb(warm["rss_mb"]),
                     fmt_mb(warm["peak_mb"]), fmt_mb(parts["index total"]),
                     fmt(warm["rss_mb"] * 2**20 / n, 0) + " B"])
        disk_rows.append([size_label(n), *[fmt_mb(parts[k]) if parts[k] == parts[k] else "shared"
                                          for k in ("vectors.faiss", "bm25/", "facets.json", "index total",
                                                    "records.sqlite", "embedding cache")]])
        if n == 1_000_000:
            targets.append(Target(f"serving RSS at 1M records ({a.backend})", warm["rss_mb"] / 1024, "<=",
                                  2.0 if milvus else 3.0, "GB", note=vector_tag(n, sample, a.noise)))
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
    if milvus:
        body[2:2] = ["\n## Milvus server (a separate process; its memory is not caselink's)\n",
                     f"{'Started by this run' if not a.backend_uri else 'Given by --backend-uri'}: the peak "
                     f"covers {'every build and serve of this run' if not a.backend_uri else 'its whole life'}.\n",
                     md_table(["size", "pid", "RSS after build", "RSS after warm-up", "peak RSS"], milvus_rows)]
    notes = server_notes(a) + ([f"backend milvus at {uri} (milvus-lite server), dense index {a.milvus_index}"]
                               if milvus else [])
    write_report(a.out, f"caselink serving memory and index size ({a.backend})", "\n".join(body), notes=notes)


if __name__ == "__main__":
    main()
