"""The ``caselink`` Typer app and the commands that build and serve (index, delete, stats, serve);
the commands in the other modules of this package (search and related, eval, train, ...) are
registered at the bottom."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.cli.common import BackendOpt, ConfigOpt, DataDirOpt, JsonOpt, err, friendly, out
from caselink.cli.common import open_service as _open
from caselink.cli.common import progress_bars as _progress
from caselink.cli.common import settings_from as _settings
from caselink.errors import CaselinkError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="caselink: find the service cases, problem orders and SOP sections related to a case or symptom.")


def _print_load(path: Path, summary: str, result) -> None:
    err.print(f"{path}: {summary}", highlight=False)
    for row in result.skipped[:20]:
        err.print(f"  [yellow]skipped[/yellow] {row}", highlight=False)
    if len(result.skipped) > 20:
        err.print(f"  … and {len(result.skipped) - 20} more skipped rows", highlight=False)
    for w in result.warnings[:10]:
        err.print(f"  [yellow]warning[/yellow] {w}", highlight=False)


def index(
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders: CSV/TSV/JSONL/Parquet/Excel "
                                                                 "exports, SOP folders (md/txt/html/pdf/docx).",
                                                            show_default=False)] = None,
    mapping: Annotated[Optional[Path], typer.Option("--mapping", "-m", help="Column mapping (TOML) for tables.",
                                                    show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Load the bundled demo history.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Encoder: auto (default), use-m3, minilm, a model "
                                                               "name / directory for sentence-transformers, or "
                                                               "several joined by '+'.",
                                                 show_default=False)] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build the index from scratch even when it could be "
                                                            "updated in place.")] = False,
    backend: BackendOpt = None,
) -> None:
    """Load records into the store and bring the search index in step with everything stored.

    Only records that changed since the last run are re-indexed, unless a setting that affects
    every record changed (encoder, tokenisation, BM25, vector index type) or --rebuild is given;
    then the index is built from scratch and the reason is printed. With no sources, the index is
    brought up to date with the records already stored.
    """
    from indexing.loaders import LoadResult, load_mapping, load_path, stream_path
    from recommender.service import CaselinkService

    settings = _settings(config, data_dir, encoder__model=model, backend__kind=backend)
    paths = list(sources or [])
    if demo:
        from indexing.demo import demo_sources

        paths = demo_sources() + paths
    table_mapping = load_mapping(mapping) if mapping else None
    # Every source is opened (a table export checked and counted, streamed later; a folder's files
    # likewise, one after the other; an SOP document loaded whole) before anything is stored: a
    # source that cannot be read stores nothing. Then the records go to the store in source
    # order, a thousand at a time.
    documents = LoadResult()  # the whole SOP documents
    sources_read = []
    skipped = 0
    for path in paths:
        if not path.exists():
            raise CaselinkError(f"source {path} does not exist", field="sources")
        stream = stream_path(path, table_mapping)
        if stream is None:
            result = load_path(path, mapping=table_mapping)
            documents.merge_documents(result)
            _print_load(path, result.summary(), result)
            skipped += len(result.skipped)
            sources_read.append(result.records)
        else:
            documents.merge_documents(stream.result)  # a folder's SOP documents, read whole
            sources_read.append(stream)

    def records():
        nonlocal skipped
        for path, src in zip(paths, sources_read):
            if isinstance(src, list):
                yield from src
            else:
                yield from src.records()
                _print_load(path, src.summary(), src.result)
                skipped += len(src.result.skipped)

    expected = sum(len(s) if isinstance(s, list) else s.rows for s in sources_read)
    with _progress() as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, advance: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total or None)
            bars.advance(tasks[stage], advance)

        svc, report = CaselinkService.build(settings, records=records(), expected=expected,
                                            documents=documents.documents, progress=progress, rebuild=rebuild)
    counts = svc.record_counts()
    model, model_reason = svc.model_id, svc.model_reason
    svc.close()
    err.print(f"encoder {model} ({model_reason})", highlight=False)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    if report.applied is not None:
        out.print(f"updated the index in place: {report.applied} changed records re-indexed, {report.records} "
                  f"records in the index ({kinds}), in {report.seconds:.1f} s; embedded {report.embedded} new texts; "
                  f"snapshot {report.snapshot}", highlight=False)
    else:
        why = f" (built from scratch: {report.rebuilt_because})" if report.rebuilt_because else ""
        out.print(f"indexed {report.records} records ({kinds}) in {report.seconds:.1f} s = "
                  f"{report.records_per_s:.0f} records/s{why}; embedded {report.embedded} new texts; "
                  f"vector index {report.factory}; snapshot {report.snapshot}", highlight=False)
    if report.removed:
        shown = ", ".join(report.removed[:10]) + (f" and {len(report.removed) - 10} more" if len(report.removed) > 10 else "")
        noun = "section" if len(report.removed) == 1 else "sections"
        out.print(f"removed {len(report.removed)} SOP {noun} no longer in their documents: {shown}", highlight=False)
    if skipped:
        out.print(f"{skipped} rows were skipped (listed above)", highlight=False)


def delete(
    record_ids: Annotated[Optional[list[str]], typer.Argument(help="Ids of stored records.", show_default=False)] = None,
    doc: Annotated[Optional[list[str]], typer.Option("--doc", help="Every section of this SOP document (repeatable).",
                                                     show_default=False)] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete records, or whole SOP documents, from the store and the index.

    All or nothing: when an id or document is not stored, nothing is deleted. A running server
    drops them from its results as it catches up with the store.
    """
    from caselink.errors import RecordNotFound

    if not record_ids and not doc:
        raise CaselinkError("give record ids, or --doc with an SOP document id", field="record_ids")
    svc = _open(config, data_dir)
    try:
        ids = list(dict.fromkeys(record_ids or []))
        stored = svc.records(ids)
        missing = [f"'{i}'" for i in ids if i not in stored]
        for d in doc or []:
            sections = svc.sections_of(d)
            if not sections:
                missing.append(f"document '{d}'")
            ids.extend(s for s in sections if s not in ids)
        if missing:
            raise RecordNotFound(f"not stored: {', '.join(missing)}; nothing was deleted", field="record_ids",
                                 hint="caselink search or GET /v1/records/{id} shows what is stored")
        svc.delete_many(ids)
    finally:
        svc.close()
    noun = "record" if len(ids) == 1 else "records"
    out.print(f"deleted {len(ids)} {noun}: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}", highlight=False)


def stats(as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Record counts per kind, and what the index was built with."""
    from dataclasses import asdict

    svc = _open(config, data_dir)
    try:
        s = asdict(svc.stats())
    finally:
        svc.close()
    if as_json:
        sys.stdout.write(json.dumps(s, ensure_ascii=False, indent=2) + "\n")
    else:
        for key, value in s.items():
            out.print(f"{key:<11} {value}", highlight=False)


def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Bind address (default from config: 127.0.0.1).",
                                                show_default=False)] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default from config: 8000).",
                                                show_default=False)] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Serve the HTTP API (/v1, /docs) and the search page (/) with uvicorn."""
    import uvicorn

    from api.app import check_bind, create_app
    from api.observe import configure_logging

    settings = _settings(config, data_dir, server__host=host, server__port=port, backend__kind=backend)
    configure_logging()
    check_bind(settings)
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port, log_level="info",
                access_log=False)


from caselink.cli.eval_command import eval_command  # noqa: E402  (commands of their own modules, registered here)
from caselink.cli.insight_commands import emerging_command, suggest_command  # noqa: E402
from caselink.cli.query_commands import related_command, search_command  # noqa: E402
from caselink.cli.store_commands import (backup_command, copy_store_command, feedback_command,  # noqa: E402
                                         ids_command, restore_command)
from caselink.cli.sync_command import sync_command  # noqa: E402
from caselink.cli.train_command import train_command  # noqa: E402

# Every command in one table, in the order `caselink --help` lists them.
for _name, _command in (
    ("index", index), ("search", search_command), ("related", related_command), ("delete", delete), ("stats", stats),
    ("serve", serve), ("eval", eval_command), ("emerging", emerging_command), ("suggest", suggest_command),
    ("feedback", feedback_command), ("ids", ids_command), ("backup", backup_command), ("restore", restore_command),
    ("copy-store", copy_store_command), ("sync", sync_command), ("train", train_command),
):
    app.command(_name)(friendly(_command))
