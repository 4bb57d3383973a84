"""Write an evaluation report: ``report.md``, ``result.json`` and PNG plots.

Plots use matplotlib's object-oriented API on the Agg canvas, so writing a report never
changes the process-wide pyplot backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.metrics import metric_names
from eval.runner import EvalResult, ModeResult
from eval.scores import Threshold, best_f1_threshold

__all__ = ["write_report", "worst_queries", "thresholds", "markdown_cell"]

WORST_N = 20


def markdown_cell(text: str, limit: int = 60) -> str:
    """One-line, pipe-safe, truncated text for a Markdown table cell."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def thresholds(result: EvalResult) -> dict[str, Threshold | None]:
    """Best-F1 minimum score per mode that can score pairs (``None`` without negatives)."""
    out: dict[str, Threshold | None] = {}
    for name, mode in result.modes.items():
        if mode.positive_scores is not None:
            neg = mode.negative_scores if mode.negative_scores is not None else np.array([])
            out[name] = best_f1_threshold(mode.positive_scores, neg)
    return out


def worst_queries(result: EvalResult, mode: str, n: int = WORST_N) -> list[int]:
    """Indices of the ``n`` worst-ranked queries: no relevant record within depth first
    (those with more relevant records first), then the latest first relevant rank."""
    m = result.modes[mode]
    n_rel = np.array([len(result.relevant[q]) for q in result.queries])
    rank = np.where(m.first_relevant == 0, result.depth + 1, m.first_relevant)
    order = np.lexsort((np.arange(len(rank)), -n_rel, -rank))
    return [int(i) for i in order[:n] if rank[i] > 1]


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _plot_recall(result: EvalResult, path: Path) -> None:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ks = np.arange(1, result.depth + 1)
    for name, mode in result.modes.items():
        ax.plot(ks, mode.recall_curve, marker="o", markersize=3, label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (÷ min(|relevant|, k))")
    ax.set_title(f"{result.dataset}: recall@k, {result.n_queries} queries")
    ax.set_xticks([k for k in ks if k == 1 or k % 5 == 0])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def _plot_scores(result: EvalResult, scoring: Sequence[str], cuts: dict[str, Threshold | None], path: Path) -> None:
    fig = Figure(figsize=(4.2 * len(scoring), 3.8), layout="constrained")
    for i, name in enumerate(scoring, 1):
        mode: ModeResult = result.modes[name]
        ax = fig.add_subplot(1, len(scoring), i)
        bins = np.linspace(0, 1, 41)
        ax.hist(np.clip(mode.positive_scores, 0, 1), bins=bins, alpha=0.6, density=True, label="related (1)")
        if mode.negative_scores is not None:
            label = "unrelated (0)" if mode.negatives_source == "labeled" else "random pairs"
            ax.hist(np.clip(mode.negative_scores, 0, 1), bins=bins, alpha=0.6, density=True, label=label)
        cut = cuts.get(name)
        if cut is not None:
            ax.axvline(cut.score, color="black", linestyle="--", linewidth=1, label=f"min score {cut.score:.2f}")
        ax.set_title(name)
        ax.set_xlabel("cosine")
        ax.legend(fontsize=8)
    fig.suptitle(f"{result.dataset}: pair score distributions")
    _save(fig, path)


def _calibration_section(result: EvalResult, out: Path) -> list[str]:
    """For the learned mode, whose score claims to be a probability: is it one?"""
    from eval.learned import reliability

    cal = reliability(result.modes["learned"].ranked, [result.relevant[q] for q in result.queries])
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ok = cal.counts > 0
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot(cal.predicted[ok], cal.observed[ok], marker="o", label="learned")
    ax.set_xlabel("shown score (mean in bin)")
    ax.set_ylabel("share relevant")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{result.dataset}: reliability of the top 10, ECE {cal.ece:.3f}")
    _save(fig, out / "reliability.png")
    lines = ["## Calibration of the learned score", "",
             f"Expected calibration error over the {cal.n} shown top-10 results: **{cal.ece:.3f}** "
             "(0 = a score of 0.7 is relevant 70% of the time).", "",
             "| score bin | results | mean score | share relevant |", "|---|---:|---:|---:|"]
    bins = len(cal.counts)
    for b in np.flatnonzero(ok):
        lines.append(f"| {b / bins:.1f}–{(b + 1) / bins:.1f} | {cal.counts[b]} | {cal.predicted[b]:.3f} | "
                     f"{cal.observed[b]:.3f} |")
    return [*lines, "", "![reliability](reliability.png)", ""]


def _metrics_tables(result: EvalResult) -> list[str]:
    names = metric_names(result.ks)
    lines = ["| mode | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, mode in result.modes.items():
        lines.append(f"| {name} | " + " | ".join(f"{mode.metrics[m]:.3f}" for m in names) + " |")
    lines += ["", "95% bootstrap intervals (1,000 resamples of the queries):", ""]
    lines += ["| mode | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, mode in result.modes.items():
        cells = " | ".join(f"{mode.ci[m][0]:.3f}–{mode.ci[m][1]:.3f}" for m in names)
        lines.append(f"| {name} | {cells} |")
    return lines


def _threshold_table(result: EvalResult, scoring: Sequence[str], cuts: dict[str, Threshold | None]) -> list[str]:
    lines = [
        "| mode | related pairs | unrelated pairs | mean related | mean unrelated | min score | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in scoring:
        mode = result.modes[name]
        neg = mode.negative_scores
        n_neg = f"{len(neg)} ({mode.negatives_source})" if neg is not None else "0"
        mean_neg = f"{neg.mean():.3f}" if neg is not None and len(neg) else "–"
        cut = cuts.get(name)
        tail = f"{cut.score:.3f} | {cut.precision:.3f} | {cut.recall:.3f} | {cut.f1:.3f}" if cut else "– | – | – | –"
        lines.append(
            f"| {name} | {len(mode.positive_scores)} | {n_neg} | {mode.positive_scores.mean():.3f} | {mean_neg} | {tail} |"
        )
    return lines


def _worst_table(result: EvalResult, mode_name: str) -> list[str]:
    mode = result.modes[mode_name]
    lines = [
        "| query | text | relevant | first relevant rank | top 3 returned |",
        "|---|---|---:|---:|---|",
    ]
    for i in worst_queries(result, mode_name):
        qid = result.queries[i]
        rec = result.records.get(qid)
        text = markdown_cell(rec.full_text() if rec else "", 60)
        rank = int(mode.first_relevant[i])
        rank_cell = str(rank) if rank else f"> {result.depth}"
        top = []
        for doc, score in mode.ranked[i][:3]:
            doc_rec = result.records.get(doc)
            snippet = markdown_cell(doc_rec.full_text() if doc_rec else "", 30)
            top.append(f"`{markdown_cell(doc, 40)}` {score:.3f} {snippet}")
        top_cell = "<br>".join(top) or "(nothing returned)"
        lines.append(
            f"| `{markdown_cell(qid, 40)}` | {text} | {len(result.relevant[qid])} | {rank_cell} | {top_cell} |"
        )
    if len(lines) == 2:
        lines.append("| – | every query has a relevant record at rank 1 | | | |")
    return lines


def write_report(result: EvalResult, out_dir: str | Path) -> Path:
    """Write ``report.md``, ``result.json``, ``recall_at_k.png`` and (when a mode can score
    pairs) ``score_distributions.png`` into ``out_dir``; returns the path of ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proto = result.protocol
    scoring = [n for n, m in result.modes.items() if m.positive_scores is not None and len(m.positive_scores)]
    cuts = thresholds(result)

    _plot_recall(result, out / "recall_at_k.png")
    candidates = "questions rank sections only" if proto.candidate_kind_filter else "every other record"
    lines = [
        f"# Evaluation: {result.dataset or 'dataset'}",
        "",
        f"- queries: {result.n_queries} (of {proto.eligible_queries} with a relevant partner); candidates: {candidates}",
        f"- labeled pairs: {len(proto.positives)} related, {len(proto.negatives)} unrelated",
        "- relevance: connected components of related pairs; recall@k divides by min(|relevant|, k)",
        "",
        "## Metrics",
        "",
        *_metrics_tables(result),
        "",
        "## Recall@k",
        "",
        "![recall@k](recall_at_k.png)",
        "",
    ]
    if scoring:
        _plot_scores(result, scoring, cuts, out / "score_distributions.png")
        lines += [
            "## Pair scores and a minimum-score threshold",
            "",
            "Cosine of related (label 1) and unrelated pairs; the suggested minimum score maximises F1 "
            "when `score >= min score` predicts related.",
        ]
        if any(result.modes[n].negatives_source == "random" for n in scoring):
            lines.append(
                "This set has no labeled unrelated pairs, so random pairs from different components stand "
                "in; they are easier than real hard negatives, so precision is optimistic."
            )
        lines += ["", *_threshold_table(result, scoring, cuts), "", "![score distributions](score_distributions.png)", ""]
    if "learned" in result.modes:
        lines += _calibration_section(result, out)
    lines += ["## Worst-ranked queries", ""]
    for name in result.modes:
        lines += [f"### {name}", "", *_worst_table(result, name), ""]
    lines += ["## Timing and checks", "", "| mode | fit s | rank s | dropped non-candidates |", "|---|---:|---:|---:|"]
    for name, mode in result.modes.items():
        lines.append(f"| {name} | {mode.fit_seconds:.1f} | {mode.rank_seconds:.1f} | {mode.dropped_non_candidates} |")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "result.json").write_text(json.dumps(result.to_json(ci=True), indent=2) + "\n", encoding="utf-8")
    return report
