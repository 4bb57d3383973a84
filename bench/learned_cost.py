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
    python -m bench.learned_cost --parts depth --sets demo,zh_bq_dev --depths 30,50,100,0

- ``depth``: MRR@10 of the learned ranker trained and served at each ``rank.learned_depth``
  (:func:`depth_relevance`).

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
               "model_rounds": model.info["rounds"], "model_features": len(model.features), "commit": _commit(),
               "load_before": _load()}
        for name, ask in asks.items():
            for i in range(10):  # warm-up: caches, first-call imports
                ask(rng.randrange(N_RECORDS), "hybrid")
                ask(rng.randrange(N_RECORDS), "learned")
            ms: dict[str, list[float]] = {"hybrid": [], "learned": []}
            cpu: dict[str, list[float]] = {"hybrid": [], "learned": []}
            reranked = 0
            for n in range(requests):
                i = rng.randrange(N_RECORDS)
                order = ("hybrid", "learned") if n % 2 == 0 else ("learned", "hybrid")
                for mode in order:
                    t, c = time.perf_counter(), time.process_time()
                    resp = ask(i, mode)
                    ms[mode].append(1000 * (time.perf_counter() - t))
                    cpu[mode].append(1000 * (time.process_time() - c))
                    reranked += mode == "learned" and resp.path == "learned"
            row = {"requests": requests, "reranked": reranked}
            # Wall-clock on a shared machine swings with the load; CPU time (the process's, the
            # requests run one at a time) is what the request costs whatever the load.
            for key, series in (("", ms), ("cpu_", cpu)):
                for mode, v in series.items():
                    row[key + mode] = {"p50": round(float(np.percentile(v, 50)), 2),
                                       "p95": round(float(np.percentile(v, 95)), 2)}
                row[key + "p50_ratio"] = round(row[key + "learned"]["p50"] / row[key + "hybrid"]["p50"], 3)
                row[key + "p95_ratio"] = round(row[key + "learned"]["p95"] / row[key + "hybrid"]["p95"], 3)
                # What the learned mode adds to the same request (paired): steadier than a ratio of
                # two percentiles, which moves with the load and with which requests land in the tail.
                added = np.asarray(series["learned"]) - np.asarray(series["hybrid"])
                row[key + "added"] = {"p50": round(float(np.percentile(added, 50)), 2),
                                      "mean": round(float(added.mean()), 2)}
                row[key + "p95_ratio_ci"] = _p95_ratio_ci(series["hybrid"], series["learned"], seed)
            out[name] = row
        out["load_after"] = _load()
        return out
    finally:
        svc.close()


def _p95_ratio_ci(hybrid: list[float], learned: list[float], seed: int, draws: int = 2000) -> list[float]:
    """95% bootstrap interval of p95(learned) / p95(hybrid), the requests resampled in pairs: how
    far one run's ratio is from the ratio the machine would give over many runs (a p95 of 200
    requests is their 10th slowest, and it moves by more than the learned mode adds)."""
    h, le = np.asarray(hybrid), np.asarray(learned)
    pick = np.random.default_rng(seed).integers(0, len(h), size=(draws, len(h)))
    ratios = np.percentile(le[pick], 95, axis=1) / np.percentile(h[pick], 95, axis=1)
    return [round(float(x), 3) for x in np.percentile(ratios, [2.5, 97.5])]


def _reranked_at(raw: np.ndarray, groups: np.ndarray, depth: int) -> np.ndarray:
    """Scores whose order per list is the model's over the first ``depth`` candidates and the
    fused order after them (what serving with ``rank.learned_depth = depth`` shows)."""
    out = np.empty(len(raw), dtype=np.float64)
    start = 0
    for g in groups:
        head = raw[start:start + min(g, depth)]
        out[start:start + len(head)] = head
        if g > depth:
            floor = float(head.min()) if len(head) else 0.0
            out[start + depth:start + g] = floor - 1.0 - np.arange(1, g - depth + 1)
        start += g
    return out


def _first(data, depth: int):
    """``data`` (a :class:`recommender.training.Gathered`) with each list cut to its first
    ``depth`` candidates, lists left with no relevant candidate dropped: what training gathers
    when serving reranks that deep."""
    from recommender.training import Gathered

    rows, groups, keep = [], [], []
    start = 0
    for g in data.groups:
        n = min(int(g), depth)
        has = bool(data.y[start:start + n].any())
        keep.append(has)
        if has:
            rows.append(np.arange(start, start + n))
            groups.append(n)
        start += g
    rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return Gathered(data.X[rows], data.y[rows], data.fused[rows], np.asarray(groups, dtype=np.int64),
                    data.components[np.asarray(keep)], 0, data.names)


def _mrr_ci(rr: np.ndarray, seed: int, draws: int = 2000) -> list[float]:
    pick = np.random.default_rng(seed).integers(0, len(rr), size=(draws, len(rr)))
    return [round(float(x), 4) for x in np.percentile(rr[pick].mean(axis=1), [2.5, 97.5])]


def depth_relevance(name: str, depths: list[int], cache: Path, *, split: float = 0.5, seed: int = 13) -> dict:
    """MRR@10 of the learned ranker trained and served at each candidate depth, on the test half
    of ``name`` (split by component as :mod:`bench.learned`), over the same test queries.

    The lists are gathered once, whole (``rank.learned_depth = 0``); a depth's training data
    is each training list's first ``depth`` candidates (every feature of a candidate is the same
    whatever the depth: they read the two sides' whole lists, not the fused list's length), and
    its test ranking is the model over each test list's first ``depth``, the fused order after.
    0 = the whole list (the depth before this setting existed).
    """
    from bench.learned import _load as load_set
    from caselink.config import load_settings
    from eval.caselink_retriever import CaselinkEngine
    from eval.learned import held_back
    from eval.protocol import QUESTION
    from recommender.splits import labeled_queries, split_by_component
    from recommender.training import fit, gather, reciprocal_ranks, verdict

    records, full, pairs = load_set(name)
    pairs = [(p[0], p[1], int(p[2])) for p in pairs]
    train_pairs, test_pairs = split_by_component(pairs, split, seed)
    test_pairs = held_back(test_pairs, train_pairs)
    engine = CaselinkEngine(load_settings(env={}, rank__learned_depth=0), cache_path=cache, full_records=full)
    try:
        svc = engine.fit(records)
        kw, kinds = {}, None
        if any(r.kind == QUESTION for r in records):  # as the protocol: questions ask, every other kind answers
            kw = {"query_ids": [r.id for r in records if r.kind == QUESTION],
                  "candidate_ids": [r.id for r in records if r.kind != QUESTION]}
            kinds = ["sop"]
        train_queries = labeled_queries(train_pairs, **kw)
        if len(train_queries) > 5000:  # the trainer's cap, drawn as bench.learned draws it
            pick = np.sort(np.random.default_rng(seed).permutation(len(train_queries))[:5000])
            train_queries = [train_queries[i] for i in pick]
        t0 = time.perf_counter()
        train_data = gather(svc, train_queries, kinds=kinds)
        test_data = gather(svc, labeled_queries(test_pairs, **kw), kinds=kinds)
        gather_seconds = time.perf_counter() - t0
    finally:
        engine.close()
    hybrid_rr = reciprocal_ranks(test_data.hybrid(), test_data.y, test_data.groups)
    full_depth = int(test_data.groups.max()) if len(test_data.groups) else 0
    rows, rr_of = [], {}
    for depth in depths:
        d = depth or max(full_depth, int(train_data.groups.max()))
        model = fit(_first(train_data, d), seed=seed, depth=depth)
        rr = reciprocal_ranks(_reranked_at(model.raw(test_data.X), test_data.groups, d), test_data.y,
                              test_data.groups)
        rr_of[depth] = rr
        rows.append({"depth": depth, "mrr@10": round(float(rr.mean()), 4), "ci": _mrr_ci(rr, seed),
                     "rounds": model.info["rounds"]})
    base = depths[-1]
    for row in rows:
        v = verdict(rr_of[row["depth"]], rr_of[base], test_data.components, seed=seed, min_queries=1)
        row["vs_whole"] = {"gain": v["gain"], "gain_ci": v["gain_ci"]}
    return {"set": name, "test_queries": int(len(test_data.groups)), "train_queries": int(len(train_data.groups)),
            "mean_list": round(float(test_data.groups.mean()), 1) if len(test_data.groups) else 0,
            "hybrid_mrr@10": round(float(hybrid_rr.mean()), 4), "hybrid_ci": _mrr_ci(hybrid_rr, seed),
            "depths": rows, "gather_seconds": round(gather_seconds, 1), "load": _load()}


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
    if res.get("depth"):
        lines += ["## Candidate depth (rank.learned_depth): MRR@10 on the test half", "",
                  "Trained and served at each depth (0 = the whole fused list), over the test queries whose "
                  "whole list holds a relevant record; 95% intervals over queries, the gain against the whole "
                  "list paired, over components.", "",
                  "| set | test queries (mean list) | hybrid | depth | learned [95%] | vs whole list [95%] | trees |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in res["depth"]:
            for d in r["depths"]:
                v = d["vs_whole"]
                lines.append(f"| {r['set']} | {r['test_queries']} ({r['mean_list']}) | {r['hybrid_mrr@10']:.4f} | "
                             f"{d['depth'] or 'whole'} | {d['mrr@10']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}] | "
                             f"{v['gain']:+.4f} [{v['gain_ci'][0]:+.4f}, {v['gain_ci'][1]:+.4f}] | {d['rounds']} |")
        lines.append("")
    if "latency" in res:
        lat = res["latency"]
        lines += [f"## Reranking on the 100k bench ({lat['records']:,} records, {lat.get('embed_sample', EMBED_SAMPLE):,} real vectors + synthetic, {lat['factory']})", "",
                  f"In process, each request answered hybrid and learned back to back (alternating order); model: "
                  f"{lat['model_rounds']} trees over {lat['model_features']} features, trained on the demo links. "
                  f"Load average before / after: {lat['load_before']} / {lat['load_after']}.", "",
                  "| request | n | reranked | clock | hybrid p50 / p95 ms | learned p50 / p95 ms | p50 ratio | p95 ratio "
                  "[95%] | added p50 / mean ms |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for name in ("related", "search"):
            r = lat[name]
            for key, clock in (("", "wall"), ("cpu_", "CPU")):
                if key + "hybrid" not in r:
                    continue
                h, le = r[key + "hybrid"], r[key + "learned"]
                a = r.get(key + "added")
                added = f"{a['p50']} / {a['mean']}" if a else "–"
                ci = r.get(key + "p95_ratio_ci")
                ratio = f"{r[key + 'p95_ratio']}" + (f" [{ci[0]}, {ci[1]}]" if ci else "")
                lines.append(f"| {name} | {r['requests']} | {r['reranked']} | {clock} | {h['p50']} / {h['p95']} | "
                             f"{le['p50']} / {le['p95']} | {r[key + 'p50_ratio']} | {ratio} | {added} |")
        lines += ["", "`reranked`: requests the learned mode answered by reranking (the rest were answered by "
                  "keywords: a query that is essentially a code, or no semantic match above the floor). "
                  "`added`: learned minus hybrid for the same request, its median and mean. `[95%]`: "
                  "the p95 ratio's bootstrap interval, requests resampled in pairs."]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """The commit of the code measured: the checkout ``recommender`` is imported from (this file
    can be run against another tree: ``PYTHONPATH=<tree> python bench/learned_cost.py``)."""
    import subprocess

    import recommender

    tree = Path(recommender.__file__).resolve().parents[1]
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="train,latency")
    ap.add_argument("--requests", type=int, default=300, help="paired requests per kind (latency)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--embed-sample", type=int, default=EMBED_SAMPLE,
                    help="records of the 100k corpus really embedded; the rest are those plus noise (bench.prepare)")
    ap.add_argument("--model-queries", type=int, default=5000, help="demo queries the latency model is trained on")
    ap.add_argument("--sets", default="demo,en_openoffice_dups,zh_bq_dev", help="sets of the depth part")
    ap.add_argument("--depths", default="50,100,0", help="candidate depths of the depth part (0 = the whole list, last)")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "learned_cost.md")
    args = ap.parse_args()
    res: dict = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    parts = args.parts.split(",")
    if "latency" in parts:
        res["latency"] = latency_cost(args.requests, args.seed, sample=args.embed_sample,
                                      model_queries=args.model_queries)
        print(json.dumps(res["latency"]), flush=True)
    if "depth" in parts:
        rows = {r["set"]: r for r in res.get("depth", [])}
        for name in args.sets.split(","):
            rows[name] = depth_relevance(name, [int(x) for x in args.depths.split(",")], args.cache)
            print(json.dumps(rows[name]), flush=True)
        res["depth"] = list(rows.values())
    if "train" in parts:
        res["train"] = train_cost(args.cache)
        print(json.dumps(res["train"]), flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    args.out.write_text(_markdown(res, "python -m bench.learned_cost " + " ".join(sys.argv[1:])), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
