"""``caselink eval``: relevance of caselink's modes (and reference baselines) against labeled pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.errors import CaselinkError, InvalidQuery

MODES = ("hybrid", "dense", "keyword")


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
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a Markdown report with plots here.",
                                                   show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", show_default=False)] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", show_default=False)] = None,
) -> None:
    """Measure relevance against labeled pairs: hit@k, recall@k, MRR@10, nDCG@10 per mode, with 95% CIs."""
    from caselink.cli import _progress, _settings, err, out
    from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
    from eval.runner import evaluate

    settings = _settings(config, data_dir)
    modes = MODES if mode == "all" else (mode,)
    if any(m not in MODES for m in modes):
        raise InvalidQuery(f"--mode expects hybrid, dense, keyword or all, got '{mode}'", field="mode")
    try:
        ks = tuple(int(x) for x in k.split(",") if x.strip())
    except ValueError:
        raise InvalidQuery(f"--k expects comma-separated whole numbers, got '{k}'", field="k") from None
    name, eval_records, full, labeled = _sources(records, pairs, demo, from_links, settings)
    engine = CaselinkEngine(settings, cache_path=settings.cache_path, full_records=full)
    retrievers = {m: CaselinkRetriever(engine, m) for m in modes}
    if baselines:
        from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever

        tfidf, use = TfidfRetriever(), UseDenseRetriever()
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
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        return
    from rich.table import Table

    names = list(result.to_json()["modes"][next(iter(result.modes))])
    table = Table(title=f"{result.dataset}: {result.n_queries} queries")
    table.add_column("mode")
    for m in names:
        table.add_column(m, justify="right")
    for mode_name, mres in result.modes.items():
        table.add_row(mode_name, *(f"{mres.metrics[m]:.3f}" for m in names))
    out.print(table)
