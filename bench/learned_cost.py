"""What the learned ranker costs: training on 10,000 labeled pairs, and reranking on the 100k bench.

- ``train``: ``caselink train``'s work on zh_bq_dev's 10,000 labeled pairs (5,000 related, 5,000
  not) over the set's caselink index: ranking each labeled query's candidates once through the
  service (``gather``; at most 5,000 queries, the trainer's default) and fitting LightGBM
  (one thread). Seconds on this machine's two cores, with the load average beside them.
- ``latency``: the 100k synthetic corpus of :mod:`bench.query` (the data directory
  :func:`bench.prepare.prepare_data_dir` builds: 10k real vectors, the rest synthetic, IVF from
  50k), in process, so the reranking's share is not diluted by HTTP. Each request is answered
  ``hybrid`` and ``learned`` back to back, alternating which goes first, so both see the same
  load; p50 / p95 per mode and their ratio. The model is trained on the demo history's links
  (same encoder, so the same features; the synthetic corpus has no labels to train on).

    python -m bench.learned_cost                          # both parts, writes bench/learned_cost.md
    python -m bench.learned_cost --parts latency --requests 200

Runs are bounded by ``--requests`` (latency) and the trainer's query cap (training).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_RECORDS = 100_000
EMBED_SAMPLE = 10_000


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def train_cost(cache: Path) -> dict:
    from caselink.config import load_settings
    from eval.caselink_retriever import CaselinkEngine
    from eval.datasets import load_benchmark
    from eval.reference import benchmarks_dir
    from recommender.training import train

    records, pairs = load_benchmark(benchmarks_dir() / "zh_bq_dev")
    pairs = [(p[0], p[1], int(p[2])) for p in pairs][:10_000]
    engine = CaselinkEngine(load_settings(env={}), cache_path=cache)
    try:
        svc = engine.fit(records)
        load_before = _load()
        t0 = time.perf_counter()
        model = train(svc, pairs)
        seconds = time.perf_counter() - t0
        info = model.info
        return {"pairs": len(pairs), "related_pairs": info["pairs"], "queries": info["queries"],
                "labeled_queries": info["labeled_queries"], "candidates": info["candidates"],
                "gather_seconds": info["gather_seconds"], "fit_seconds": info["fit_seconds"],
                "rounds": info["rounds"], "total_seconds": round(seconds, 1),
                "load_before": load_before, "load_after": _load()}
    finally:
        engine.close()


def _demo_model(max_queries: int):
    from caselink.config import load_settings
    from eval.links import pairs_from_links
    from indexing.demo import demo_sources
    from indexing.loaders import load_path
    from recommender.service import CaselinkService
    from recommender.training import train

    records = [r for src in demo_sources() for r in load_path(src).records]
    with tempfile.TemporaryDirectory(prefix="learned-cost-") as tmp:
        settings = load_settings(env={}, data_dir=tmp, encoder__model="use-m3")
        svc, _ = CaselinkService.build(settings, records=records)
        try:
            return train(svc, pairs_from_links(records), max_queries=max_queries)
        finally:
            svc.close()


def latency_cost(requests: int, seed: int, *, sample: int, model_queries: int) -> dict:
    from bench.corpus import ensure_queries
    from bench.prepare import prepare_data_dir, settings_for
    from recommender.results import SearchQuery
    from recommender.service import CaselinkService

    model = _demo_model(model_queries)
    d = prepare_data_dir(N_RECORDS, model="use-m3", sample=sample)
    svc = CaselinkService.open(settings_for(d, model="use-m3"))
    rng = random.Random(seed)
    texts = [q["text"] for q in ensure_queries(N_RECORDS, 7, 1000)]
    try:
        svc.set_ranker(model)
        asks = {
            "related": lambda i, mode: svc.related(f"BC-{i:07d}", k=10, mode=mode),
            "search": lambda i, mode: svc.search(SearchQuery(text=texts[i % len(texts)], k=10, mode=mode)),
        }
        out = {"records": svc.indexed(), "factory": svc.stats().factory, "embed_sample": sample,
               "model_rounds": model.info["rounds"], "model_features": len(model.features),
               "load_before": _load()}
        for name, ask in asks.items():
            for i in range(10):  # warm-up: caches, first-call imports
                ask(rng.randrange(N_RECORDS), "hybrid")
                ask(rng.randrange(N_RECORDS), "learned")
            ms: dict[str, list[float]] = {"hybrid": [], "learned": []}
            reranked = 0
            for n in range(requests):
                i = rng.randrange(N_RECORDS)
                order = ("hybrid", "learned") if n % 2 == 0 else ("learned", "hybrid")
                for mode in order:
                    t = time.perf_counter()
                    resp = ask(i, mode)
                    ms[mode].append(1000 * (time.perf_counter() - t))
                    reranked += mode == "learned" and resp.path == "learned"
            row = {"requests": requests, "reranked": reranked}
            for mode, v in ms.items():
                row[mode] = {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
            row["p50_ratio"] = round(row["learned"]["p50"] / row["hybrid"]["p50"], 3)
            row["p95_ratio"] = round(row["learned"]["p95"] / row["hybrid"]["p95"], 3)
            out[name] = row
        out["load_after"] = _load()
        return out
    finally:
        svc.close()


def _markdown(res: dict, command: str) -> str:
    lines = ["# What the learned ranker costs", "", f"`{command}` at commit {_commit()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "Two cores shared with other sessions: compare within a row, never across tables.", ""]
    if "train" in res:
        t = res["train"]
        lines += ["## Training on 10,000 labeled pairs (zh_bq_dev)", "",
                  "| pairs (related) | queries ranked | candidates | rank the queries s | fit s (rounds) | total s | "
                  "load average before / after |", "|---:|---:|---:|---:|---:|---:|---|",
                  f"| {t['pairs']:,} ({t['related_pairs']:,}) | {t['queries']:,} of {t['labeled_queries']:,} | "
                  f"{t['candidates']:,} | {t['gather_seconds']} | {t['fit_seconds']} ({t['rounds']}) | "
                  f"{t['total_seconds']} | {t['load_before']} / {t['load_after']} |", ""]
    if "latency" in res:
        lat = res["latency"]
        lines += [f"## Reranking on the 100k bench ({lat['records']:,} records, {lat.get('embed_sample', EMBED_SAMPLE):,} real vectors + synthetic, {lat['factory']})", "",
                  f"In process, each request answered hybrid and learned back to back (alternating order); model: "
                  f"{lat['model_rounds']} trees over {lat['model_features']} features, trained on the demo links. "
                  f"Load average before / after: {lat['load_before']} / {lat['load_after']}.", "",
                  "| request | n | reranked | hybrid p50 / p95 ms | learned p50 / p95 ms | p50 ratio | p95 ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name in ("related", "search"):
            r = lat[name]
            lines.append(f"| {name} | {r['requests']} | {r['reranked']} | {r['hybrid']['p50']} / {r['hybrid']['p95']} | "
                         f"{r['learned']['p50']} / {r['learned']['p95']} | {r['p50_ratio']} | {r['p95_ratio']} |")
        lines += ["", "`reranked`: requests the learned mode answered by reranking (the rest were answered by "
                  "keywords: a query that is essentially a code, or no semantic match above the floor)."]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="train,latency")
    ap.add_argument("--requests", type=int, default=300, help="paired requests per kind (latency)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--embed-sample", type=int, default=EMBED_SAMPLE,
                    help="records of the 100k corpus really embedded; the rest are those plus noise (bench.prepare)")
    ap.add_argument("--model-queries", type=int, default=5000, help="demo queries the latency model is trained on")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "learned_cost.md")
    args = ap.parse_args()
    res: dict = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    parts = args.parts.split(",")
    if "latency" in parts:
        res["latency"] = latency_cost(args.requests, args.seed, sample=args.embed_sample,
                                      model_queries=args.model_queries)
        print(json.dumps(res["latency"]), flush=True)
    if "train" in parts:
        res["train"] = train_cost(args.cache)
        print(json.dumps(res["train"]), flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    args.out.write_text(_markdown(res, "python -m bench.learned_cost " + " ".join(sys.argv[1:])), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
