"""Relevance on the shared benchmarks: caselink's three modes next to the reference baselines.

    python -m bench.relevance [--sets zh_bq_dev,...] [--out bench/relevance.md] [--no-baselines]
                              [--model use-m3+e5-small] [--config variant.toml]
                              [--backend milvus --backend-uri http://127.0.0.1:PORT --collection NAME]

Runs the protocol of ../shared/benchmarks/README.md (via eval.runner.evaluate) on each set with
default settings (or another ``encoder.model``, or a caselink config file's settings), and writes one Markdown table with every metric plus the issue's target metric
per set. Embeddings are cached in var/eval-cache/ so a rerun only re-ranks. Each set is built into
the Milvus collection ``--collection`` (default: the settings', ``caselink``) and replaces what it
held: runs sharing one Milvus server need a collection each.
Benchmarks are located by CASELINK_BENCHMARKS, default ../shared/benchmarks next to the repo.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.machine import REPO, header

if TYPE_CHECKING:
    from caselink.config import Settings

SETS = ("zh_bq_dev", "zh_afqmc_dev", "en_emanual_tv_remote", "en_openoffice_dups", "en_gitbugs_hadoop")
# The reference figures and targets for caselink hybrid (metric, TF-IDF, USE, naive RRF, target).
TARGETS = {
    "zh_bq_dev": ("mrr@10", 0.247, 0.272, 0.285, 0.33),
    "zh_afqmc_dev": ("mrr@10", 0.140, 0.178, 0.189, 0.22),
    "en_emanual_tv_remote": ("hit@1", 0.477, 0.307, 0.431, 0.55),
    "en_openoffice_dups": ("hit@10", 0.616, 0.635, 0.680, 0.72),
    "en_gitbugs_hadoop": ("mrr@10", 0.563, 0.443, 0.523, 0.60),
}
METRICS = ("hit@1", "hit@10", "recall@10", "mrr@10", "ndcg@10")


CACHE = REPO / "var" / "eval-cache" / "embeddings.sqlite"


def settings_for(config: Path | None = None, model: str | None = None, backend: str | None = None,
                 backend_uri: str | None = None, collection: str | None = None) -> Settings:
    """Default settings, or a config file's, with the command line's changes, checked as a config
    file is: :class:`ConfigError` names the setting at fault (``backend.collection``)."""
    from caselink.config import load_settings

    return load_settings(config, env={}, encoder__model=model, backend__kind=backend, backend__uri=backend_uri,
                         backend__collection=collection)


def run_set(folder: Path, baselines: bool, settings: Settings, cache_path: Path = CACHE) -> dict:
    from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever
    from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
    from eval.runner import evaluate_benchmark

    engine = CaselinkEngine(settings, cache_path=cache_path)
    retrievers = {m: CaselinkRetriever(engine, m) for m in ("hybrid", "dense", "keyword")}
    if baselines:
        tfidf, use = TfidfRetriever(), UseDenseRetriever(cache_path=cache_path)
        retrievers.update({"tfidf": tfidf, "use": use, "naive-rrf": NaiveRRFRetriever(tfidf, use)})
    t0 = time.perf_counter()
    try:
        result = evaluate_benchmark(folder, retrievers, n_bootstrap=200)
    finally:
        engine.close()
    out = result.to_json()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["ci"] = {m: {k: [round(x, 3) for x in r.ci[k]] for k in METRICS} for m, r in result.modes.items()}
    return out


def behind_single_modes(results: list[dict]) -> list[str]:
    """Where hybrid's MRR@10 does not beat both single modes, by how much, and whether that is noise."""
    rows = []
    for r in results:
        m, lo_hi = r["modes"], r["ci"]["hybrid"]["mrr@10"]
        best = max(("dense", "keyword"), key=lambda mode: m[mode]["mrr@10"])
        hyb, other = m["hybrid"]["mrr@10"], m[best]["mrr@10"]
        if hyb <= other:
            inside = lo_hi[0] <= other <= lo_hi[1]
            rows.append(f"| {r['dataset']} | {hyb:.3f} | {best} {other:.3f} | {hyb - other:+.3f} "
                        f"| [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}] | {'yes' if inside else 'no'} |")
    head = ["## Where hybrid does not beat both single modes (MRR@10)", ""]
    if not rows:
        return head + ["Hybrid's MRR@10 is above both dense-only and keyword-only on every set.", ""]
    return head + [
        "| set | hybrid | best single mode | difference | hybrid 95% CI | single mode inside the CI |",
        "|---|---|---|---|---|---|", *rows, "",
        "Adaptive fusion weights each side by how far its best answer stands out from its own candidates "
        "(recommender/fusion.py). When one side is much stronger on a set and the other adds no independent "
        "evidence, the best fusion can do is follow the strong side, and small losses to it are the price of "
        "not knowing per query which side that is. A difference inside hybrid's bootstrap interval is too small "
        "to tell from sampling noise.", ""]


def render(results: list[dict], command: str, model: str | None = None, config: Path | None = None) -> str:
    lines = [header("Relevance on the shared benchmarks", command=command), ""]
    changes = [f"encoder.model = {model}"] if model else []
    if config:
        changes.append(f"the settings of {config}: " + Path(config).read_text(encoding="utf-8").strip().replace("\n", "; "))
    which = "default settings but " + ", ".join(changes) if changes else "default settings"
    lines += [f"## Target metric per set (hybrid = caselink {which})", "",
              "| set | metric | TF-IDF (ref) | USE (ref) | naive RRF (ref) | caselink keyword | caselink dense "
              "| caselink hybrid | target | met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        metric, tf, use, rrf, target = TARGETS[r["dataset"]]
        m = r["modes"]
        hyb = m["hybrid"][metric]
        lines.append(f"| {r['dataset']} | {metric} | {tf:.3f} | {use:.3f} | {rrf:.3f} | {m['keyword'][metric]:.3f} "
                     f"| {m['dense'][metric]:.3f} | **{hyb:.3f}** | {target:.2f} | {'yes' if hyb >= target else 'no'} |")
    lines += ["", "Reference columns are the figures given in the issue; the baselines measured here on the same "
              "protocol are in the full table below.", ""]
    lines += behind_single_modes(results)
    lines += ["## All modes, all metrics (95% bootstrap CI for hybrid)", ""]
    for r in results:
        lines += [f"### {r['dataset']} ({r['queries']} queries, {r['seconds']} s)", "",
                  "| mode | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        for mode, vals in r["modes"].items():
            lines.append(f"| {mode} | " + " | ".join(f"{vals[k]:.3f}" for k in METRICS) + " |")
        ci = r["ci"]["hybrid"]
        lines += ["", "hybrid 95% CI: " + ", ".join(f"{k} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in METRICS), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(REPO / "bench" / "relevance.md"))
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--model", default=None, help="encoder.model for caselink's modes (default: the default, auto)")
    ap.add_argument("--config", type=Path, default=None, help="a caselink config file (TOML) to run with")
    ap.add_argument("--backend", choices=("local", "milvus"), default=None,
                    help="search backend (default: the settings', local)")
    ap.add_argument("--backend-uri", default=None, help="Milvus address for --backend milvus")
    ap.add_argument("--collection", default=None,
                    help="Milvus collection each set is built into, replacing what it held (default: the "
                    "settings', caselink); give runs sharing one Milvus server a collection each")
    args = ap.parse_args(argv)
    from caselink.errors import ConfigError
    from eval.reference import benchmarks_dir

    try:  # checked before the first set, which takes minutes
        settings = settings_for(args.config, args.model, args.backend, args.backend_uri, args.collection)
    except ConfigError as exc:
        ap.error(str(exc))
    root = benchmarks_dir()
    missing = [name for name in args.sets.split(",") if not (root / name / "pairs.tsv").is_file()]
    if missing:
        ap.error(f"--sets: no benchmark {', '.join(missing)} under {root} (a folder with records.jsonl and "
                 "pairs.tsv; CASELINK_BENCHMARKS names another root)")
    results = []
    for name in args.sets.split(","):
        res = run_set(root / name, baselines=not args.no_baselines, settings=settings)
        print(json.dumps({k: res[k] for k in ("dataset", "queries", "modes")}), flush=True)
        results.append(res)
    command = "python -m bench.relevance " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.out).write_text(render(results, command, args.model, args.config), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
