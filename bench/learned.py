"""The learned ranker against caselink's hand-set modes, on held-back labeled components.

For each set (the five shared benchmarks and the demo history): split the labeled pairs by
connected component (``--split``, default 0.5, seed 13), train the learned ranker on one half
over the set's caselink index, evaluate hybrid, dense, keyword and learned on the other half's
queries with the benchmark protocol (95% bootstrap intervals over queries), beside the issue's
reference (naive RRF of TF-IDF and USE, the baseline its expected gains were stated against), and
measure:

- the calibration error of the learned mode's shown top 10;
- a learning curve: MRR@10 on the same test queries for models trained on about 100, 300,
  1,000 and all training pairs (whole components drawn in a seeded order until the count is
  reached; measured over each query's hybrid candidate list, with the exact-code rule, before
  the feedback rule);
- cost: seconds to train (ranking the training queries + fitting), and milliseconds per query
  for hybrid and learned as the harness ranked them.

    python -m bench.learned                       # all sets, writes bench/learned.md
    python -m bench.learned --sets en_gitbugs_hadoop,demo --out /tmp/x.md

Embeddings are cached in var/eval-cache/ (as bench.relevance), so a rerun only re-ranks. The
sets are read from ``$CASELINK_BENCHMARKS`` (default ../shared/benchmarks next to the repo).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from caselink.config import load_settings
from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever
from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
from eval.datasets import from_record, load_benchmark, load_pairs
from eval.learned import held_back, reliability
from eval.metrics import bootstrap_ci
from eval.reference import benchmarks_dir
from eval.protocol import QUESTION
from eval.runner import evaluate
from recommender.splits import components, labeled_queries, split_by_component
from recommender.training import fit, gather, mrr_at_10, reciprocal_ranks, verdict

REPO = Path(__file__).resolve().parents[1]
SETS = ("zh_bq_dev", "zh_afqmc_dev", "en_emanual_tv_remote", "en_openoffice_dups", "en_gitbugs_hadoop", "demo")
PRIMARY = {"en_emanual_tv_remote": "hit@1", "en_openoffice_dups": "hit@10"}
CURVE = (100, 300, 1000)
# What the issue measured for a learned ranking over naive RRF (its quick experiment, not caselink).
ISSUE_EXPECTED = {"zh_bq_dev": "-0.001 to +0.006", "zh_afqmc_dev": "-0.001 to +0.006",
                  "en_openoffice_dups": "+0.021", "en_gitbugs_hadoop": "+0.032"}


def _load(name: str):
    if name == "demo":
        from indexing.demo import demo_pairs, demo_sources
        from indexing.loaders import load_path

        full = [r for src in demo_sources() for r in load_path(src).records]
        return [from_record(r) for r in full], {r.id: r for r in full}, load_pairs(demo_pairs())
    records, pairs = load_benchmark(benchmarks_dir() / name)
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
        model = fit(train_data, seed=seed, depth=svc.settings.rank.learned_depth)
        fit_seconds = time.perf_counter() - t0
        svc.set_ranker(model)
        retrievers = {m: CaselinkRetriever(engine, m) for m in ("hybrid", "dense", "keyword", "learned")}
        # The issue stated its expected gains against this baseline (TF-IDF and USE, fused by plain RRF).
        retrievers["naive-rrf"] = NaiveRRFRetriever(TfidfRetriever(), UseDenseRetriever(cache_path=cache))
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
        # The paired gain on the test half, with the verdict's rule (what auto would conclude here).
        test_verdict = verdict(reciprocal_ranks(model.raw(test_data.X), test_data.y, test_data.groups),
                               reciprocal_ranks(test_data.hybrid(), test_data.y, test_data.groups),
                               test_data.components, seed=seed)
        # Paired differences on the same test queries: how far apart two rankers must be before
        # this test half can tell them apart, and where the issue's baseline stands.
        rr = {m: mres.per_query["mrr@10"] for m, mres in result.modes.items()}
        paired = {f"{a} - {b}": [round(float(np.mean(rr[a] - rr[b])), 4),
                                 *(round(x, 4) for x in bootstrap_ci(rr[a] - rr[b], seed=seed))]
                  for a, b in (("hybrid", "naive-rrf"), ("learned", "naive-rrf"), ("keyword", "hybrid"),
                               ("dense", "hybrid"))}
        modes = {}
        for m, mres in result.modes.items():
            modes[m] = {k: round(v, 4) for k, v in mres.metrics.items()}
            modes[m]["ci"] = {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in mres.ci.items()}
            modes[m]["ms_per_query"] = round(1000 * mres.rank_seconds / max(result.n_queries, 1), 2)
        return {
            "set": name, "queries": result.n_queries, "train_pairs": n_train,
            "test_pairs": sum(1 for p in test_pairs if p[2] == 1), "modes": modes, "ece@10": round(cal.ece, 4),
            "curve": {str(k): v for k, v in curve.items()}, "paired_mrr@10": paired,
            "hybrid_candidate_mrr@10": round(mrr_at_10(test_data.hybrid(), test_data.y, test_data.groups), 4),
            "train_seconds": round(gather_seconds + fit_seconds, 1), "fit_seconds": round(fit_seconds, 1),
            "train_queries": int(len(train_data.groups)), "validation": model.info["validation"],
            "test_verdict": test_verdict, "features": len(model.features), "trees": model.info["rounds"],
            "prior": model.info["prior"], "calibration": model.info.get("calibration", {}),
            "validation_queries": model.info["valid_queries"],
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
    lines += ["", "## Against the issue's reference", "",
              "The issue expected learning to gain over a plain reciprocal-rank fusion of TF-IDF and USE "
              "(`naive-rrf`, eval/baselines.py) measured the same way: +0.021 MRR@10 on OpenOffice, +0.032 on "
              "Hadoop, -0.001 to +0.006 on the Chinese sets. Here the same baseline on the same test queries: "
              "how much of that gain caselink's hand-set hybrid already holds, and what learning adds to it.", "",
              "Differences are paired, on the same queries, with 95% bootstrap intervals over queries; the "
              "last two columns show how far apart two of caselink's own modes are on each test half, a "
              "measure of how small a gain it can tell from noise.", "",
              "| set | naive RRF [95%] | hybrid - naive RRF | learned - naive RRF | issue's expected gain | "
              "keyword - hybrid | dense - hybrid |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, d = r["modes"], r.get("paired_mrr@10")
        if "naive-rrf" not in m or not d:
            continue
        ref = m["naive-rrf"]
        cell = lambda key: f"{d[key][0]:+.3f} [{d[key][1]:+.3f}, {d[key][2]:+.3f}]"  # noqa: E731
        lines.append(f"| {r['set']} | {ref['mrr@10']:.3f} [{ref['ci']['mrr@10'][0]:.3f}, {ref['ci']['mrr@10'][1]:.3f}] | "
                     f"{cell('hybrid - naive-rrf')} | {cell('learned - naive-rrf')} | "
                     f"{ISSUE_EXPECTED.get(r['set'], '–')} | {cell('keyword - hybrid')} | {cell('dense - hybrid')} |")
    lines += ["", "## The verdict: would `rank.learned = auto` use the model?", "",
              "Validation = the quarter of the training components kept back inside training (what `auto` "
              "decides on: at least 50 queries and the 95% interval of the MRR@10 gain above 0, components "
              "resampled). Trees = how many the model kept on top of the hybrid ranking it starts from (0: "
              "validation could not tell their gain from noise, so the model ranks as hybrid). Test half = the "
              "same rule applied to the paired gain on the test queries' candidate lists (what a customer "
              "would see). `auto` = MRR@10 a user gets by default: learned if used, else hybrid.", "",
              "| set | validation queries | trees | validation gain [95%] | used by auto? | test-half gain [95%] | "
              "test verdict | auto MRR@10 |", "|---|---:|---:|---:|---|---:|---|---:|"]
    for r in rows:
        v, t, m = r["validation"], r["test_verdict"], r["modes"]
        auto = m["learned"]["mrr@10"] if v["passed"] else m["hybrid"]["mrr@10"]
        lines.append(f"| {r['set']} | {r.get('validation_queries', '–')} | {r.get('trees', '–')} | "
                     f"{v['gain']:+.4f} [{v['gain_ci'][0]:+.4f}, "
                     f"{v['gain_ci'][1]:+.4f}] | {'yes' if v['passed'] else 'no'}: {v['reason']} | {t['gain']:+.4f} "
                     f"[{t['gain_ci'][0]:+.4f}, {t['gain_ci'][1]:+.4f}] | {'pass' if t['passed'] else 'refuse'} | "
                     f"{auto:.3f} |")
    lines += ["", "## The issue's targets", "",
              "English sets: learned >= hybrid + 0.015 MRR@10; every set: learned >= best of hybrid, dense, "
              "keyword - 0.005; Chinese sets: no loss against hybrid; ECE@10 <= 0.05.", "",
              "| set | learned - hybrid | English +0.015 | learned - best other | within 0.005 of best | "
              "Chinese no loss | ECE@10 <= 0.05 |", "|---|---:|---|---:|---|---|---|"]
    for r in rows:
        m = r["modes"]
        gain = m["learned"]["mrr@10"] - m["hybrid"]["mrr@10"]
        best = max(m[k]["mrr@10"] for k in ("hybrid", "dense", "keyword"))
        vs_best = m["learned"]["mrr@10"] - best
        english = r["set"].startswith("en_")
        chinese = r["set"].startswith("zh_")
        yes = lambda ok: "met" if ok else "**not met**"  # noqa: E731
        lines.append(f"| {r['set']} | {gain:+.3f} | {yes(gain >= 0.015) if english else '–'} | {vs_best:+.3f} | "
                     f"{yes(vs_best >= -0.005)} | {yes(gain >= 0) if chinese else '–'} | "
                     f"{yes(r['ece@10'] <= 0.05)} ({r['ece@10']:.3f}) |")
    lines += ["", "## Calibration", "",
              "The score a user sees is the calibrated probability of relevance: Platt or isotonic, whichever "
              "gave the lower ECE@10 on held-out folds, fitted on out-of-fold raw scores (5 folds by component, "
              "each fold scored by a model fitted without it) of every training list's top 10 "
              "(recommender/calibration.py). Test-half ECE@10 = the harness's shown top 10 of the learned mode.", "",
              "| set | trees | method | calibration points | cross-validated ECE@10 platt / isotonic | "
              "test-half ECE@10 |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        c = r.get("calibration") or {}
        cv = c.get("cv_ece@10", {})
        cvs = " / ".join(f"{cv[m]:.3f}" if m in cv else "–" for m in ("platt", "isotonic"))
        lines.append(f"| {r['set']} | {r.get('trees', '–')} | {c.get('method', 'isotonic (validation quarter)')} | "
                     f"{c.get('rows', '–')} | {cvs} | {r['ece@10']:.3f} |")
    lines += ["", "## Learning curves", "",
              "MRR@10 on the same test queries, over their hybrid candidate lists (with the exact-code "
              "rule, before the feedback rule), for models trained on whole components until about this "
              "many related pairs; `hybrid` is the same lists in hybrid's order as served.", "",
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
              "| set | training queries | train s (of which fit) | hybrid ms/query | learned ms/query | "
              "load average at the end (1/5/15 min) |",
              "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        load = " / ".join(str(x) for x in r.get("load_average", [])) or "–"
        lines.append(f"| {r['set']} | {r['train_queries']} | {r['train_seconds']} ({r['fit_seconds']}) | "
                     f"{r['modes']['hybrid']['ms_per_query']} | {r['modes']['learned']['ms_per_query']} | {load} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--split", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "learned.md")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    ap.add_argument("--rows", type=Path, default=REPO / "bench" / "learned.jsonl",
                    help="Each set's figures, one JSON line per set; a rerun of a set replaces its line, so "
                         "sets measured in separate runs make one table.")
    ap.add_argument("--render", action="store_true", help="Only write --out from --rows.")
    args = ap.parse_args()
    for name in [] if args.render else args.sets.split(","):
        t0 = time.perf_counter()
        row = run_set(name, args.split, args.seed, args.cache)
        row["load_average"] = [round(x, 2) for x in os.getloadavg()]
        row["seconds"] = round(time.perf_counter() - t0)
        print(json.dumps(row), flush=True)
        _store(args.rows, row)
    rows = _read(args.rows)
    args.out.write_text(_markdown(rows, args.split, args.seed), encoding="utf-8")
    print(f"wrote {args.out}")


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = {r["set"]: r for r in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)}
    return [rows[s] for s in SETS if s in rows]


def _store(path: Path, row: dict) -> None:
    """Replace the set's line (a file lock: two runs on different sets may finish together)."""
    with open(Path(tempfile.gettempdir()) / "caselink-bench-learned.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [r for r in _read(path) if r["set"] != row["set"]] + [row]
        rows.sort(key=lambda r: SETS.index(r["set"]))
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
