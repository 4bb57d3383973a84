"""Reference bench: the three baselines on every external benchmark set, as a Markdown table.

Run from the repository root::

    python -m eval.reference                       # all sets -> bench/reference.md
    python -m eval.reference --sets zh_bq_dev --out /tmp/ref.md --reports /tmp/reports

Benchmarks are read from ``$CASELINK_BENCHMARKS``, default ``../shared/benchmarks`` next to
the repository root.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from caselink.errors import LoaderError
from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever, available_cores
from eval.metrics import metric_names
from eval.runner import EvalResult, evaluate_benchmark

__all__ = ["SETS", "REPO_ROOT", "benchmarks_dir", "baseline_retrievers", "run_reference", "markdown_table", "main"]

SETS: tuple[str, ...] = (
    "zh_bq_dev",
    "zh_afqmc_dev",
    "en_openoffice_dups",
    "en_emanual_tv_remote",
    "en_gitbugs_hadoop",
)
REPO_ROOT = Path(__file__).resolve().parents[1]


def benchmarks_dir() -> Path:
    """``$CASELINK_BENCHMARKS`` or ``<repo root>/../shared/benchmarks``."""
    env = os.environ.get("CASELINK_BENCHMARKS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "benchmarks"


def baseline_retrievers() -> dict:
    """Fresh TF-IDF, USE and naive RRF of the two (sharing instances, so each fits once)."""
    tfidf, use = TfidfRetriever(), UseDenseRetriever()
    return {"tfidf": tfidf, "use": use, "rrf": NaiveRRFRetriever(tfidf, use, k=60)}


def _progress_printer(name: str):
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        print(f"\r{name:22s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr)
        sys.stderr.flush()

    return show


def run_reference(
    sets: Sequence[str] = SETS,
    *,
    root: Path | None = None,
    max_queries: int = 2000,
    seed: int = 13,
    quiet: bool = False,
) -> list[tuple[EvalResult, float]]:
    """Evaluate the baselines on each set; returns ``(result, wall seconds)`` per set."""
    root = root or benchmarks_dir()
    out = []
    for name in sets:
        folder = root / name
        if not folder.is_dir():
            raise LoaderError(f"{folder}: benchmark set not found (set CASELINK_BENCHMARKS?)", field="sets")
        t0 = time.perf_counter()
        result = evaluate_benchmark(
            folder,
            baseline_retrievers(),
            max_queries=max_queries,
            seed=seed,
            progress=None if quiet else _progress_printer(name),
        )
        out.append((result, time.perf_counter() - t0))
    return out


def markdown_table(results: Sequence[tuple[EvalResult, float]]) -> str:
    """One row per set and mode: every metric of :func:`eval.metrics.metric_names`, 3 decimals."""
    if not results:
        return ""
    names = metric_names(results[0][0].ks)
    lines = [
        "| set | mode | queries | " + " | ".join(names) + " | seconds |",
        "|---|---|---:|" + "---:|" * len(names) + "---:|",
    ]
    for result, seconds in results:
        for mode_name, mode in result.modes.items():
            cells = " | ".join(f"{mode.metrics[m]:.3f}" for m in names)
            secs = mode.fit_seconds + mode.rank_seconds
            lines.append(f"| {result.dataset} | {mode_name} | {result.n_queries} | {cells} | {secs:.1f} |")
    total = sum(s for _, s in results)
    lines.append("")
    lines.append(
        "Seconds per mode are fit + rank; `rrf` reuses the fitted TF-IDF and USE instances, so its fit "
        f"is free. Wall time, all sets: {total:.0f} s."
    )
    return "\n".join(lines)


def _header(args: argparse.Namespace) -> str:
    import numpy
    import sklearn

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Reference baselines on the external benchmarks\n\n"
        f"Generated {stamp} by `python -m eval.reference` (max {args.max_queries} queries, seed {args.seed}); "
        f"python {platform.python_version()}, numpy {numpy.__version__}, scikit-learn {sklearn.__version__}, "
        f"{available_cores()} cores. Protocol: `shared/benchmarks/README.md`; recall@k is normalised by "
        "min(|relevant|, k).\n\n"
        "Modes: `tfidf` = TF-IDF cosine (char 1-2 grams zh, word 1-2 grams en, sublinear tf); "
        "`use` = bundled USE multilingual encoder on the whole text, exact inner product; "
        "`rrf` = reciprocal-rank fusion (k = 60) of the two top-100 lists.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m eval.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="benchmark folders (default: all five)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "reference.md", help="Markdown output")
    parser.add_argument("--reports", type=Path, default=None, help="also write a full report per set here")
    parser.add_argument("--max-queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        results = run_reference(args.sets, max_queries=args.max_queries, seed=args.seed, quiet=args.quiet)
    except LoaderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_header(args) + "\n" + table + "\n", encoding="utf-8")
    print(table)
    if args.reports is not None:
        from eval.report import write_report

        for result, _ in results:
            write_report(result, args.reports / result.dataset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
