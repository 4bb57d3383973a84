"""The learned ranker against caselink's hand-set modes, on held-back labeled components.

For each set (the five shared benchmarks and the demo history): split the labeled pairs by
connected component (``--split``, default 0.5, seed 13), train the learned ranker on one half
over the set's caselink index, evaluate hybrid, dense, keyword and learned on the other half's
queries with the benchmark protocol (95% bootstrap intervals over queries), and measure:

- the calibration error of the learned mode's shown top 10;
- a learning curve: MRR@10 on the same test queries for models trained on about 100, 300,
  1,000 and all training pairs (whole components drawn in a seeded order until the count is
  reached; measured over each query's hybrid candidate list, before the code and feedback rules);
- cost: seconds to train (ranking the training queries + fitting), and milliseconds per query
  for hybrid and learned as the harness ranked them.

    python -m bench.learned                       # all sets, writes bench/learned.md
    python -m bench.learned --sets en_gitbugs_hadoop,demo --out /tmp/x.md

Embeddings are cached in var/eval-cache/ (as bench.relevance), so a rerun only re-ranks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from caselink.config import load_settings
from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
from eval.datasets import from_record, load_benchmark, load_pairs
from eval.learned import held_back, reliability
from eval.protocol import QUESTION
from eval.runner import evaluate
from recommender.training import components, fit, gather, labeled_queries, mrr_at_10, split_by_component

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "benchmarks"
SETS = ("zh_bq_dev", "zh_afqmc_dev", "en_emanual_tv_remote", "en_openoffice_dups", "en_gitbugs_hadoop", "demo")
PRIMARY = {"en_emanual_tv_remote": "hit@1", "en_openoffice_dups": "hit@10"}
CURVE = (100, 300, 1000)


def _load(name: str):
    if name == "demo":
        from indexing.demo import demo_pairs, demo_sources
        from indexing.loaders import load_path

        full = [r for src in demo_sources() for r in load_path(src).records]
        return [from_record(r) for r in full], {r.id: r for r in full}, load_pairs(demo_pairs())
    records, pairs = load_benchmark(BENCH / name)
    return records, {}, pairs


def _first_pairs(pairs: list, n: int, seed: int) -> list:
    """Pairs of whole components, drawn in a seeded order, until ``n`` label-1 pairs are in."""
    comp = components(pairs)
    by_comp: dict[int, list] = {}
    for p in pairs:
        by_comp.setdefault(comp[p[0]], []).append(p)
    out, positives = [], 0
    for c in np.random.default_rng(seed).permutation(sorted(by_comp)):
        if positives >= n:
            break
        out += by_comp[int(c)]
        positives += sum(1 for p in by_comp[int(c)] if p[2] == 1)
    return out


def run_set(name: str, split: float, seed: int, cache: Path) -> dict:
    records, full, pairs = _load(name)
    pairs = [(p[0], p[1], int(p[2])) for p in pairs]
    train_pairs, test_pairs = split_by_component(pairs, split, seed)
    test_pairs = held_back(test_pairs, train_pairs)
    engine = CaselinkEngine(load_settings(env={}), cache_path=cache, full_records=full)
    try:
        svc = engine.fit(records)
        question_set = any(r.kind == QUESTION for r in records)
        kw, kinds = {}, None
        if question_set:  # as the protocol: questions ask, every other kind answers
            kw = {"query_ids": [r.id for r in records if r.kind == QUESTION],
                  "candidate_ids": [r.id for r in records if r.kind != QUESTION]}
            kinds = ["sop"]
        # Ranking the training queries once serves the full model and every point of the curve.
        t0 = time.perf_counter()
        train_queries = labeled_queries(train_pairs, **kw)
        if len(train_queries) > 5000:
            pick = np.sort(np.random.default_rng(seed).permutation(len(train_queries))[:5000])
            train_queries = [train_queries[i] for i in pick]
        train_data = gather(svc, train_queries, kinds=kinds)
        gather_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = fit(train_data, seed=seed)
        fit_seconds = time.perf_counter() - t0
        svc.set_ranker(model)
        retrievers = {m: CaselinkRetriever(engine, m) for m in ("hybrid", "dense", "keyword", "learned")}
        result = evaluate(records, test_pairs, retrievers, dataset=name, seed=seed)
        asked = set(result.queries)
        test_data = gather(svc, [q for q in labeled_queries(test_pairs, **kw) if q.query_id in asked], kinds=kinds)
        n_train = sum(1 for p in train_pairs if p[2] == 1)
        curve = {}
        comp_of = components(train_pairs)
        for n in (*[c for c in CURVE if c < n_train], n_train):
            if n == n_train:
                sub = model
            else:
                chosen = {comp_of[p[0]] for p in _first_pairs(train_pairs, n, seed)}
                try:
                    sub = fit(train_data.take(np.isin(train_data.components, list(chosen))), seed=seed)
                except Exception as exc:  # noqa: BLE001 - too few labels for a model is a result too
                    curve[n] = f"no model ({exc})"
                    continue
            curve[n] = round(mrr_at_10(sub.raw(test_data.X), test_data.y, test_data.groups), 4)
        cal = reliability(result.modes["learned"].ranked, [result.relevant[q] for q in result.queries])
        modes = {}
        for m, mres in result.modes.items():
            modes[m] = {k: round(v, 4) for k, v in mres.metrics.items()}
            modes[m]["ci"] = {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in mres.ci.items()}
            modes[m]["ms_per_query"] = round(1000 * mres.rank_seconds / max(result.n_queries, 1), 2)
        return {
            "set": name, "queries": result.n_queries, "train_pairs": n_train,
            "test_pairs": sum(1 for p in test_pairs if p[2] == 1), "modes": modes, "ece@10": round(cal.ece, 4),
            "curve": {str(k): v for k, v in curve.items()},
            "hybrid_candidate_mrr@10": round(mrr_at_10(test_data.fused, test_data.y, test_data.groups), 4),
            "train_seconds": round(gather_seconds + fit_seconds, 1), "fit_seconds": round(fit_seconds, 1),
            "train_queries": int(len(train_data.groups)), "validation": model.info["validation"],
        }
    finally:
        engine.close()


def _markdown(rows: list[dict], split: float, seed: int) -> str:
    lines = [
        "# The learned ranker on held-back components",
        "",
        f"`python -m bench.learned` (split {split} by connected component, seed {seed}; default settings). "
        "Each set's labeled pairs are split by component; the model is trained on one half over the set's "
        "caselink index and every mode is measured on the other half's queries (the benchmark protocol, "
        "95% bootstrap intervals over queries). MRR@10 unless noted.",
        "",
        "| set | test queries | train pairs | metric | keyword | dense | hybrid | learned | learned - hybrid | "
        "ECE@10 |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for metric in dict.fromkeys(("mrr@10", PRIMARY.get(r["set"], "mrr@10"))):
            m = r["modes"]
            cells = [f"{m[k][metric]:.3f} [{m[k]['ci'][metric][0]:.3f}, {m[k]['ci'][metric][1]:.3f}]"
                     for k in ("keyword", "dense", "hybrid", "learned")]
            gain = m["learned"][metric] - m["hybrid"][metric]
            lines.append(f"| {r['set']} | {r['queries']} | {r['train_pairs']} | {metric} | " + " | ".join(cells)
                         + f" | {gain:+.3f} | {r['ece@10']:.3f} |")
    lines += ["", "## Learning curves", "",
              "MRR@10 on the same test queries, over their hybrid candidate lists (before the code and "
              "feedback rules), for models trained on whole components until about this many related "
              "pairs; `hybrid` is the same lists in fused order.", "",
              "| set | hybrid | 100 | 300 | 1,000 | all (n) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cur = r["curve"]
        all_n = str(r["train_pairs"])
        cells = [str(cur.get(str(c), "–")) if str(c) != all_n else "–" for c in CURVE]
        lines.append(f"| {r['set']} | {r['hybrid_candidate_mrr@10']} | " + " | ".join(cells)
                     + f" | {cur.get(all_n)} ({all_n}) |")
    lines += ["", "## Cost", "",
              "Training = ranking every training query's candidates through the service + fitting LightGBM "
              "(one thread); per-query times are the harness's, with the encoder's time for each query.", "",
              "| set | training queries | train s (of which fit) | hybrid ms/query | learned ms/query |",
              "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['train_queries']} | {r['train_seconds']} ({r['fit_seconds']}) | "
                     f"{r['modes']['hybrid']['ms_per_query']} | {r['modes']['learned']['ms_per_query']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--split", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "learned.md")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    args = ap.parse_args()
    rows = []
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        rows.append(run_set(name, args.split, args.seed, args.cache))
        print(json.dumps(rows[-1]), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        args.out.write_text(_markdown(rows, args.split, args.seed), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
