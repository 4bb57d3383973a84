"""``caselink eval``: relevance of caselink's modes (and reference baselines) against labeled pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.errors import CaselinkError, InvalidQuery

MODES = ("hybrid", "dense", "keyword", "learned")


def _sources(records: Path | None, pairs: Path | None, demo: bool, from_links: bool, settings):
    """(dataset name, eval records, full caselink records by id, pairs) from the chosen source."""
    from eval.datasets import from_record, load_pairs, load_records

    chosen = sum([records is not None, demo, from_links])
    if chosen != 1:
        raise InvalidQuery("choose one source: --records with --pairs, --demo, or --from-links", field="records")
    if records is not None:
        if pairs is None:
            raise InvalidQuery("--records needs --pairs (id_a, id_b, label)", field="pairs")
        for opt, path in (("--records", records), ("--pairs", pairs)):
            if not path.is_file():
                raise InvalidQuery(f"{opt} file {path} does not exist", field=opt)
        return records.parent.name or records.stem, load_records(records), {}, load_pairs(pairs)
    if demo:
        from indexing.demo import demo_pairs, demo_sources
        from indexing.loaders import load_path

        full = [r for src in demo_sources() for r in load_path(src).records]
        return "demo", [from_record(r) for r in full], {r.id: r for r in full}, load_pairs(demo_pairs())
    from eval.links import pairs_from_links
    from indexing.store import RecordStore

    with RecordStore.existing(settings.store_url) as store:
        full = [sr.record for sr in store.iter_records()]
        feedback = [(f.query_id, f.record_id, f.helpful) for f in store.feedback() if f.query_id]
    labeled = pairs_from_links(full, feedback)
    if not any(label == 1 for _, _, label in labeled):
        raise CaselinkError("the stored records have no links and no feedback to derive pairs from",
                            hint="give --records and --pairs, or add links between records")
    return "history", [from_record(r) for r in full], {r.id: r for r in full}, labeled


def eval_command(
    records: Annotated[Optional[Path], typer.Option("--records", help="Records: JSONL/CSV, caselink record "
                                                                      "form or {id, text[, title, kind]}.",
                                                    show_default=False)] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Labeled pairs: id_a, id_b, label (TSV/CSV).",
                                                  show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="The bundled demo history and its labeled pairs.")] = False,
    from_links: Annotated[bool, typer.Option("--from-links", help="Pairs derived from the indexed records' links "
                                                                   "and stored feedback.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense, keyword, or all.")] = "all",
    baselines: Annotated[bool, typer.Option("--baselines", help="Also run the reference baselines (TF-IDF, "
                                                                "USE alone, naive RRF).")] = False,
    k: Annotated[str, typer.Option("--k", help="Cut-offs for hit@k and recall@k, comma-separated.")] = "1,5,10",
    max_queries: Annotated[int, typer.Option("--max-queries", help="Sample at most this many queries.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the query sample.")] = 13,
    split: Annotated[Optional[float], typer.Option("--split", help="Train the learned mode on this share of the "
                                                                   "labeled components of --pairs, evaluate every "
                                                                   "mode on the rest.", show_default=False)] = None,
    train_pairs: Annotated[Optional[Path], typer.Option("--train-pairs", help="Train the learned mode on these "
                                                                              "pairs; queries whose component touches "
                                                                              "them are not evaluated.",
                                                        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a Markdown report with plots here.",
                                                   show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", show_default=False)] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", show_default=False)] = None,
) -> None:
    """Measure relevance against labeled pairs: hit@k, recall@k, MRR@10, nDCG@10 per mode, with 95% CIs."""
    from caselink.cli.common import err, out
    from caselink.cli.common import progress_bars as _progress
    from caselink.cli.common import settings_from as _settings
    from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
    from eval.runner import evaluate

    settings = _settings(config, data_dir)
    learning = split is not None or train_pairs is not None
    modes = (MODES if learning else MODES[:3]) if mode == "all" else (mode,)
    if any(m not in MODES for m in modes):
        raise InvalidQuery(f"--mode expects hybrid, dense, keyword, learned or all, got '{mode}'", field="mode")
    if "learned" in modes and not learning:
        raise InvalidQuery("--mode learned needs labels to train on kept apart from the test: --split FRACTION "
                           "or --train-pairs FILE", field="mode")
    try:
        ks = tuple(int(x) for x in k.split(",") if x.strip())
    except ValueError:
        raise InvalidQuery(f"--k expects comma-separated whole numbers, got '{k}'", field="k") from None
    name, eval_records, full, labeled = _sources(records, pairs, demo, from_links, settings)
    trained_on, dropped = [], 0
    if learning:
        labeled, trained_on, dropped = _learning_split(labeled, eval_records, split, train_pairs, seed)
    engine = CaselinkEngine(settings, cache_path=settings.cache_path, full_records=full)
    retrievers = {m: CaselinkRetriever(engine, m) for m in modes if m != "learned"}
    if "learned" in modes:
        from eval.learned import LearnedRetriever

        retrievers["learned"] = LearnedRetriever(engine, trained_on, seed=seed)
    if baselines:
        from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever

        tfidf, use = TfidfRetriever(), UseDenseRetriever(cache_path=settings.cache_path)
        retrievers.update({"tfidf": tfidf, "use": use, "naive-rrf": NaiveRRFRetriever(tfidf, use)})
    try:
        with _progress() as bars:
            task = bars.add_task("rank", total=None)
            result = evaluate(eval_records, labeled, retrievers, ks=ks, max_queries=max_queries, seed=seed,
                              dataset=name, progress=lambda done, total: bars.update(task, completed=done,
                                                                                      total=total))
    except ValueError as exc:
        raise InvalidQuery(str(exc), field="pairs") from None
    finally:
        engine.close()
    if report is not None:
        from eval.report import write_report

        path = write_report(result, report)
        err.print(f"report written to {path}", highlight=False)
    summary = result.to_json()
    if learning:
        summary.update(train_pairs=len(trained_on), dropped_queries=dropped)
        if "learned" in result.modes:
            from eval.learned import reliability

            cal = reliability(result.modes["learned"].ranked, [result.relevant[q] for q in result.queries])
            summary["modes"]["learned"]["ece@10"] = round(cal.ece, 4)
        err.print(f"trained the learned mode on {len(trained_on)} pairs; {dropped} queries not evaluated because "
                  "their component touches a training pair", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return
    from rich.table import Table

    names = list(summary["modes"][next(iter(result.modes))])
    table = Table(title=f"{result.dataset}: {result.n_queries} queries")
    table.add_column("mode")
    for m in names:
        table.add_column(m, justify="right")
    for mode_name, mres in result.modes.items():
        table.add_row(mode_name, *(f"{summary['modes'][mode_name].get(m, float('nan')):.3f}" for m in names))
    out.print(table)


def _learning_split(labeled, eval_records, split, train_pairs, seed):
    """(test pairs, training pairs, queries dropped): by component with --split, or the given
    --train-pairs with every test query whose component touches them dropped."""
    from eval.datasets import load_pairs
    from eval.learned import held_back
    from eval.protocol import build_protocol
    from recommender.splits import split_by_component

    if split is not None and train_pairs is not None:
        raise InvalidQuery("choose one of --split and --train-pairs", field="split")
    if split is not None:
        trained_on, test = split_by_component(labeled, split, seed)
    else:
        if not train_pairs.is_file():
            raise InvalidQuery(f"--train-pairs file {train_pairs} does not exist", field="--train-pairs")
        known = {r.id for r in eval_records}
        trained_on = [(p.id_a, p.id_b, int(p.label)) for p in load_pairs(train_pairs)]
        unknown = next((i for p in trained_on for i in p[:2] if i not in known), None)
        if unknown is not None:
            raise InvalidQuery(f"--train-pairs names '{unknown}', which is not among the records",
                               field="--train-pairs")
        test = labeled
    kept = held_back(test, trained_on)
    before = build_protocol(eval_records, test).eligible_queries if any(p[2] == 1 for p in test) else 0
    after = build_protocol(eval_records, kept).eligible_queries if any(p[2] == 1 for p in kept) else 0
    return kept, trained_on, before - after
