"""Indexing throughput: ``caselink index`` end to end versus the bare encoder on the same texts.

For each corpus size, three measurements, each in its own interpreter so peak memory is its own:

1. **end to end**: what ``caselink index corpus.jsonl`` does -- load the JSONL with the loader,
   ``CaselinkService.build`` (store in SQLite, tokenise, BM25, embed, FAISS, snapshot) -- into a
   fresh data directory with an empty embedding cache; records/s over the whole run, and the time
   inside each build step (measured by wrapping caselink's methods in the measuring process);
2. **bare encoder**: ``load_encoder(model).encode`` on the same embedding texts with the same batch
   size and threads (the texts are prepared before the clock starts; the model is loaded and
   warmed on one text first);
3. **re-index unchanged**: the same command again on the same data directory (every record
   unchanged): what ``caselink index`` does by default (compare with the store, open the current
   snapshot, apply the changes since it: none), and with ``--rebuild`` (a full build, every vector
   a cache hit).

Above the embed sample (``--embed-sample``) the data directory's cache is seeded with synthetic
vectors first, so "end to end" then measures the pipeline *without* embedding; the table says so
and gives a projected end-to-end rate, 1 / (1/encoder + 1/pipeline).

Usage::

    python -m bench.indexing --sizes 10000,100000 [--threads 0] [--model use-m3]
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import (WORK, Target, add_embed_sample, base_parser, embed_sample_for, fmt, fmt_mb, log,
                          md_table, run_measured, size_label, targets_table, write_report)
from bench.corpus import ensure_corpus
from bench.prepare import (Progress, cache_key, doc_builder, make_encoder, merge_cache, read_corpus, seed_cache,
                           settings_for, stage_timer, vector_tag)

# Peak resident size per record of a build, measured at 100k (1.13 GB, streaming build): used to skip a
# size that cannot fit before trying it, unless a smaller size in the same run gives a better estimate.
PEAK_KB_PER_RECORD = 12


def mem_available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


STAGES = ("store.upsert", "docs.tokens", "docs.codes", "docs.embedding_text", "embed (cache.encode)",
          "bm25.add", "bm25.compact", "vectors.build", "open snapshot (+ replay)", "snapshot")


def _load(path: Path) -> tuple[list, float]:
    from indexing.loaders import load_path

    t = time.perf_counter()
    result = load_path(path)
    if result.skipped:
        raise RuntimeError(f"{len(result.skipped)} rows were skipped: {result.skipped[:3]}")
    return result.records, time.perf_counter() - t


def seed_dir(n: int, seed: int, model: str, sample: int, noise: float, threads: int, data_dir: str) -> dict:
    """Subprocess body: a fresh data directory whose embedding cache holds real + synthetic vectors."""
    d = Path(data_dir)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    settings = settings_for(d, model=model, threads=threads)
    seed_cache(settings, ensure_corpus(n, seed), n=n, sample=sample, noise=noise, seed=seed, model=model,
               threads=threads)
    return {}


def measure_build(n: int, seed: int, model: str, sample: int, noise: float, threads: int, data_dir: str,
                  fresh: bool, rebuild: bool = True) -> dict:
    """Subprocess body: load + build (fresh directory, or again over an existing one).

    With synthetic vectors the directory was seeded by :func:`seed_dir` in another process, so the
    seeding's memory does not count here.
    """
    from recommender.service import CaselinkService

    d = Path(data_dir)
    corpus = ensure_corpus(n, seed)
    settings = settings_for(d, model=model, threads=threads)
    synthetic = sample < n
    if fresh and not synthetic:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    t0 = time.perf_counter()
    records, load_s = _load(corpus)
    with stage_timer() as stages:
        t1 = time.perf_counter()
        svc, report = CaselinkService.build(settings, records=records, progress=Progress(f"{size_label(n)} "),
                                            rebuild=rebuild)
        build_s = time.perf_counter() - t1
    total_s = time.perf_counter() - t0
    svc.close()
    if fresh and not synthetic:
        merge_cache(settings.cache_path)  # later benchmarks reuse these vectors (not timed)
    return {"records": report.records, "embedded": report.embedded, "load_s": load_s, "build_s": build_s,
            "total_s": total_s, "factory": report.factory, "stages": dict(stages), "applied": report.applied,
            "rebuilt_because": report.rebuilt_because}


def measure_encoder(n: int, seed: int, model: str, threads: int, limit: int) -> dict:
    """Subprocess body: the bare encoder on the embedding texts of the first ``limit`` records."""
    settings = settings_for(WORK / "tmp", model=model, threads=threads)
    records = read_corpus(ensure_corpus(n, seed), limit)
    docs = doc_builder(settings)
    texts = [docs.embedding_text(r) for r in records]
    e = settings.encoder
    encoder = make_encoder(settings)
    encoder.encode(texts[:1])  # load the model outside the clock
    t = time.perf_counter()
    done = [0]

    def progress(k: int) -> None:
        done[0] += k
        if done[0] // 2000 != (done[0] - k) // 2000:
            log(f"bare encoder: {done[0]:,}/{len(texts):,}")

    encoder.encode(texts, progress=progress)
    seconds = time.perf_counter() - t
    from indexing.encoders import chunk_text

    chunks = sum(len(chunk_text(x or " ", e.chunk_chars)) for x in texts)
    return {"texts": len(texts), "chunks": chunks, "encode_s": seconds, "threads": getattr(encoder, "threads", 0),
            "batch_size": e.batch_size, "cache_key": cache_key(encoder)}


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000,1000000", out_name="indexing.md")
    add_embed_sample(p)
    p.add_argument("--model", default="use-m3", help="encoder: use-m3 (default) or minilm")
    p.add_argument("--threads", type=int, default=0, help="encoder threads (default 0 = caselink's default: the cores)")
    p.add_argument("--bare-limit", type=int, default=0,
                   help="embed at most this many texts in the bare-encoder run (default: all real ones)")
    p.add_argument("--no-reindex", action="store_true", help="skip the unchanged re-index")
    p.add_argument("--repeat", type=int, default=3,
                   help="with real vectors, alternate end-to-end and bare-encoder runs this many times and "
                        "report the medians (default 3)")
    p.add_argument("--force", action="store_true",
                   help="measure a size even when its projected peak memory exceeds the memory available")
    a = p.parse_args(argv)

    rows, stage_rows, targets = [], [], []
    enc_key = ""
    stage_names = list(STAGES)
    kb_per_record = float(PEAK_KB_PER_RECORD)
    for n in a.sizes:
        projected_mb = kb_per_record * n / 1024
        if projected_mb > 0.9 * mem_available_mb() and not a.force:
            log(f"{size_label(n)}: skipped, projected peak {projected_mb / 1024:.1f} GB > available")
            rows.append([size_label(n), f"skipped: projected peak {fmt_mb(projected_mb)} ({kb_per_record:.0f} KB per "
                         f"record) exceeds the {fmt_mb(mem_available_mb())} available; --force to try", *["-"] * 12])
            continue
        sample = embed_sample_for(a.embed_sample, n)
        tag = vector_tag(n, sample, a.noise)
        d = WORK / "indexing" / f"{size_label(n)}-s{a.seed}-{a.model}-{tag}"
        common = {"n": n, "seed": a.seed, "model": a.model, "sample": sample, "noise": a.noise,
                  "threads": a.threads, "data_dir": str(d)}
        if sample < n:
            log(f"{size_label(n)}: seeding the embedding cache with synthetic vectors (not measured)")
            run_measured("bench.indexing:seed_dir", {k: v for k, v in common.items()})
        limit = min(n, sample, a.bare_limit or n)
        runs = []
        # The encoder's own speed drifts by up to 20% between minutes on this shared VM, so with
        # real vectors end to end and bare encoder alternate --repeat times and the medians count.
        for rep in range(a.repeat if sample >= n else 1):
            log(f"{size_label(n)}: end to end ({tag}), run {rep + 1}")
            e2e = run_measured("bench.indexing:measure_build", {**common, "fresh": True})
            log(f"{size_label(n)}: bare encoder on {limit:,} texts, run {rep + 1}")
            enc = run_measured("bench.indexing:measure_encoder", {"n": n, "seed": a.seed, "model": a.model,
                                                                  "threads": a.threads, "limit": limit})
            runs.append((e2e, enc))
        pair_ratios = [(n / e["total_s"]) / (x["texts"] / x["encode_s"]) for e, x in runs]
        e2e = sorted((r[0] for r in runs), key=lambda r: r["total_s"])[len(runs) // 2]
        enc = sorted((r[1] for r in runs), key=lambda r: r["encode_s"])[len(runs) // 2]
        enc_key = enc.get("cache_key", "")
        re = forced = None
        if not a.no_reindex:
            log(f"{size_label(n)}: re-index unchanged (caselink index: in place)")
            re = run_measured("bench.indexing:measure_build", {**common, "fresh": False, "rebuild": False})
            if re["applied"] is None:
                raise RuntimeError(f"the unchanged re-index rebuilt from scratch: {re['rebuilt_because']}")
            log(f"{size_label(n)}: re-index unchanged with --rebuild")
            forced = run_measured("bench.indexing:measure_build", {**common, "fresh": False, "rebuild": True})
        synthetic = sample < n
        if n >= 50_000:  # small sizes are dominated by the fixed part (model, interpreter)
            kb_per_record = e2e["peak_rss_mb"] * 1024 / n
        e2e_rate = n / e2e["total_s"]
        enc_rate = enc["texts"] / enc["encode_s"]
        ratio = None if synthetic else e2e_rate / enc_rate  # median over median
        projected = 1 / (1 / enc_rate + 1 / e2e_rate) if synthetic else None
        rows.append([
            size_label(n), "real" if not synthetic else f"**synthetic** ({size_label(sample)} embedded + noise)",
            fmt(e2e["load_s"]), fmt(e2e["build_s"]), fmt(e2e_rate) + (" (no embedding)" if synthetic else ""),
            fmt(enc_rate) + f" ({enc['texts']:,} texts, {enc['chunks']:,} chunks)",
            (fmt(ratio, 2) + (f" (runs: {', '.join(fmt(r, 2) for r in pair_ratios)})" if len(runs) > 1 else ""))
            if ratio is not None else f"projected e2e {fmt(projected)}/s",
            fmt(re["total_s"]) if re else "-", fmt(forced["total_s"]) if forced else "-",
            fmt_mb(e2e["peak_rss_mb"]), fmt_mb(enc["peak_rss_mb"]),
            fmt_mb(re["peak_rss_mb"]) if re else "-", f"{e2e['embedded']:,}", e2e["factory"],
        ])
        stage_names += [k for k in e2e["stages"] if k not in stage_names]
        stage_rows.append((size_label(n), tag, [("end to end", e2e["stages"]),
                                                ("re-index in place", re["stages"] if re else {}),
                                                ("re-index --rebuild", forced["stages"] if forced else {})]))
        if not synthetic:
            targets.append(Target(f"indexing throughput / bare encoder, {size_label(n)}", ratio, ">=", 0.9,
                                  note=f"{fmt(e2e_rate)} vs {fmt(enc_rate)} records/s, medians of {len(runs)} "
                                       f"alternating runs"))
        if n == 100_000 and re:
            targets.append(Target("re-index of the unchanged 100k corpus", re["total_s"], "<", 60, "s"))

    body = ["## Throughput and memory\n",
            md_table(["size", "vectors", "load s", "build s", "end-to-end records/s", "bare encoder records/s",
                      "e2e / encoder", "re-index unchanged s", "re-index --rebuild s", "peak RSS e2e",
                      "peak RSS encoder",
                      "peak RSS re-index", "embedded", "vector index"], rows),
            "\n## Time inside each build step (s)\n",
            "Measured by wrapping caselink's methods in the measuring process; nested steps overlap "
            "(`bm25.add` includes the `bm25.compact` it triggers, `embed` includes cache look-ups).\n",
            md_table(["size", "run", *stage_names],
                     [[lab, run, *[fmt(st.get(s, 0.0), 2) for s in stage_names]]
                      for lab, tag, runs in stage_rows for run, st in runs if st]),
            "\n## Targets\n", targets_table(targets) if targets else "No size with real vectors was measured.\n"]
    notes = [f"encoder: {a.model}, threads {a.threads or 'default (cores)'}, other encoder settings caselink's "
             "defaults" + (f" (cache key {enc_key})" if enc_key else ""),
             "end to end = load JSONL with indexing.loaders.load_path + CaselinkService.build, fresh data "
             "directory and empty embedding cache; peak RSS per measurement (own subprocess, VmHWM)",
             "re-index unchanged = what `caselink index corpus.jsonl` does the second time: load, compare with "
             "the store, open the current snapshot and apply the changes since it (none); re-index --rebuild = "
             "`caselink index --rebuild`: a full build with every vector from the embedding cache"]
    write_report(a.out, "caselink indexing throughput", "\n".join(body), notes=notes)


if __name__ == "__main__":
    main()
