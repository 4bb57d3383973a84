"""Recall@10 of caselink's IVF vector index (flat, sq8, pq storage) versus exact search, with an nprobe sweep.

For each size the vectors are the corpus's real embeddings when the whole corpus is embedded, else
an embedded sample plus noise (see :mod:`bench.prepare`; labelled *synthetic*). Queries are real:
the encoder's vectors of the generator's query texts (titles, symptoms, codes, phrases), which
are not in the index. Ground truth is exact inner product (``IndexFlatIP``) over the same vectors.

Each storage option is built with caselink's own :class:`~indexing.vectors.VectorIndex` (IVF forced
with ``exact_below=0``, so the factory string, training sample and nlist are the product's), then
searched one query at a time for 100 candidates, as the service does; recall@10 is the share of the
exact top-10 found in the first 10. Reported per option: build time (train + add), size (serialised
index, which is what it holds in memory) and per nprobe recall@10 and latency.

Usage::

    python -m bench.ann_recall --sizes 100000,1000000 [--nprobes 1,4,8,16,32,64,128] [--quantizers flat,sq8,pq]
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import (Target, add_embed_sample, base_parser, embed_sample_for, fmt, fmt_mb, log, md_table,
                          run_measured, size_label, targets_table, write_report)
from bench.corpus import ensure_queries
from bench.prepare import SHARED_CACHE, embedded_sample, synthetic_vectors


def query_vectors(n: int, seed: int, model: str, threads: int, count: int) -> np.ndarray:
    """Encoder vectors of the generator's queries (cached in the shared embedding cache)."""
    from bench.common import WORK
    from bench.prepare import doc_builder, make_encoder, settings_for
    from indexing.embedding_cache import EmbeddingCache
    from indexing.records import Record

    settings = settings_for(WORK / "tmp", model=model, threads=threads)
    docs = doc_builder(settings)
    texts = [docs.embedding_text(Record(id="q", kind="case", text=q["text"]))
             for q in ensure_queries(n, seed, count)]
    encoder = make_encoder(settings)
    SHARED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    cache = EmbeddingCache(SHARED_CACHE)
    try:
        vecs, _ = cache.encode(encoder, texts)
    finally:
        cache.close()
    return vecs


def measure(n: int, seed: int, model: str, sample: int, noise: float, threads: int, quantizers: list[str],
            nprobes: list[int], n_queries: int, nlist: int, candidates: int) -> dict:
    """Subprocess body: build exact and IVF indexes over the same vectors, sweep nprobe."""
    import faiss

    from indexing.vectors import VectorIndex

    base = embedded_sample(min(sample, n), seed=seed, model=model, threads=threads, corpus_size=n)
    vecs = base if sample >= n else synthetic_vectors(base, n, noise=noise, seed=seed)
    del base
    queries = query_vectors(n, seed, model, threads, n_queries)
    keys = np.arange(n, dtype=np.int64)
    exact = faiss.IndexFlatIP(vecs.shape[1])
    exact.add(vecs)
    t = time.perf_counter()
    _, truth = exact.search(queries, 10)
    exact_ms = (time.perf_counter() - t) * 1000 / len(queries)
    lat_exact = []
    for q in queries[:200]:
        t = time.perf_counter()
        exact.search(q[None], candidates)
        lat_exact.append((time.perf_counter() - t) * 1000)
    del exact
    out = {"n": n, "dim": int(vecs.shape[1]), "queries": len(queries), "exact_batch_ms": exact_ms,
           "exact_p50_ms": float(np.percentile(lat_exact, 50)), "exact_p95_ms": float(np.percentile(lat_exact, 95)),
           "omp_threads": faiss.omp_get_max_threads(), "options": []}
    for qz in quantizers:
        vi = VectorIndex(vecs.shape[1], exact_below=0, nlist=nlist, quantizer=qz)
        log(f"{size_label(n)} {qz}: training and adding")
        t = time.perf_counter()
        vi.build(keys, vecs)
        build_s = time.perf_counter() - t
        size_mb = len(faiss.serialize_index(vi.index_)) / 2**20
        sweep = []
        for p in nprobes:
            vi.nprobe = p
            found, lat = [], []
            for i, q in enumerate(queries):
                t = time.perf_counter()
                _, got = vi.search(q[None], candidates)
                lat.append((time.perf_counter() - t) * 1000)
                found.append(len(set(got[0][:10].tolist()) & set(truth[i].tolist())) / 10)
            sweep.append({"nprobe": p, "recall": float(np.mean(found)), "p50_ms": float(np.percentile(lat, 50)),
                          "p95_ms": float(np.percentile(lat, 95))})
            log(f"{size_label(n)} {qz} nprobe {p}: recall@10 {sweep[-1]['recall']:.3f}, "
                f"p50 {sweep[-1]['p50_ms']:.2f} ms")
        out["options"].append({"quantizer": qz, "factory": vi.factory_, "build_s": build_s, "size_mb": size_mb,
                               "sweep": sweep})
        del vi
    return out


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="100000,1000000", out_name="ann_recall.md")
    add_embed_sample(p)
    p.add_argument("--model", default="use-m3")
    p.add_argument("--threads", type=int, default=0, help="encoder threads for embedding (default: the cores)")
    p.add_argument("--quantizers", default="flat,sq8,pq")
    p.add_argument("--nprobes", default="1,4,8,16,32,64,128")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--nlist", type=int, default=0, help="IVF lists (default 0 = caselink's 4*sqrt(N))")
    p.add_argument("--candidates", type=int, default=100, help="k per search (default 100, as the service)")
    p.add_argument("--configured-nprobe", type=int, default=0,
                   help="nprobe the target is checked at (default: caselink's vectors.nprobe)")
    a = p.parse_args(argv)
    if not a.configured_nprobe:
        from caselink.config import VectorConfig

        a.configured_nprobe = VectorConfig().nprobe
    if a.configured_nprobe not in [int(x) for x in a.nprobes.split(",") if x]:
        a.nprobes += f",{a.configured_nprobe}"
    quantizers = [q for q in a.quantizers.split(",") if q]
    nprobes = sorted({int(x) for x in a.nprobes.split(",") if x})

    rows, opt_rows, exact_rows, targets = [], [], [], []
    for n in a.sizes:
        sample = embed_sample_for(a.embed_sample, n)
        label = "real" if sample >= n else f"**synthetic** ({size_label(sample)} embedded + noise {a.noise:g})"
        r = run_measured("bench.ann_recall:measure", {
            "n": n, "seed": a.seed, "model": a.model, "sample": sample, "noise": a.noise, "threads": a.threads,
            "quantizers": quantizers, "nprobes": nprobes, "n_queries": a.queries, "nlist": a.nlist,
            "candidates": a.candidates})
        exact_rows.append([size_label(n), label, r["queries"], fmt(r["exact_p50_ms"], 2), fmt(r["exact_p95_ms"], 2),
                           fmt(r["exact_batch_ms"], 3), r["omp_threads"], fmt_mb(r["peak_rss_mb"])])
        for o in r["options"]:
            opt_rows.append([size_label(n), o["quantizer"], o["factory"], fmt(o["build_s"]), fmt_mb(o["size_mb"]),
                             fmt(o["size_mb"] * 2**20 / n, 0) + " B"])
            for s in o["sweep"]:
                rows.append([size_label(n), label, o["quantizer"], s["nprobe"], fmt(s["recall"], 3),
                             fmt(s["p50_ms"], 2), fmt(s["p95_ms"], 2)])
                if s["nprobe"] == a.configured_nprobe:
                    targets.append(Target(f"IVF recall@10 vs exact, {o['quantizer']}, nprobe {s['nprobe']}, "
                                          f"{size_label(n)}", s["recall"], ">=", 0.95,
                                          note="synthetic vectors" if sample < n else "real vectors"))
    body = ["## Recall@10 and latency per nprobe\n",
            f"One query at a time, k = {a.candidates} (the service's candidates), recall@10 on the first 10 against "
            "exact inner product; latency in ms.\n",
            md_table(["size", "vectors", "storage", "nprobe", "recall@10", "p50 ms", "p95 ms"], rows),
            "\n## Build and memory per storage option\n",
            "Size = the serialised FAISS index, which is what the serving process holds for it.\n",
            md_table(["size", "storage", "factory", "train + add s", "index size", "per vector"], opt_rows),
            "\n## Exact search (ground truth)\n",
            md_table(["size", "vectors", "queries", "single-query p50 ms (k=100)", "p95 ms", "batched ms/query",
                      "FAISS OpenMP threads", "peak RSS of the run"], exact_rows),
            "\n## Targets\n", targets_table(targets) if targets else "The configured nprobe was not in the sweep.\n"]
    write_report(a.out, "caselink IVF recall versus exact search", "\n".join(body),
                 notes=[f"caselink's configured nprobe: {a.configured_nprobe} (the target row)",
                        f"encoder {a.model}; queries: encoder vectors of generator queries (not in the index); "
                        "synthetic vectors = a random sample vector + N(0, noise^2) per dimension, re-normalised"])


if __name__ == "__main__":
    main()
