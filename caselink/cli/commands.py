"""The ``caselink`` Typer app and its core commands (index, search, related, delete, serve, stats, ...);
the commands in the other modules of this package are registered at the bottom."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.cli.common import (BackendOpt, ConfigOpt, DataDirOpt, JsonOpt, OpenOnlyOpt, ServerOpt, err, friendly,
                                 out)
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


@app.command()
@friendly
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
    from indexing.loaders import LoadResult, load_mapping, load_path, stream_table
    from recommender.service import CaselinkService

    settings = _settings(config, data_dir, encoder__model=model, backend__kind=backend)
    paths = list(sources or [])
    if demo:
        from indexing.demo import demo_sources

        paths = demo_sources() + paths
    table_mapping = load_mapping(mapping) if mapping else None
    # Every source is opened (a JSONL/CSV/TSV/Parquet export checked and counted, streamed later;
    # anything else loaded whole) before anything is stored: a source that cannot be read
    # stores nothing. Then the records go to the store in source order, a thousand at a time.
    documents = LoadResult()  # the whole SOP documents
    sources_read = []
    skipped = 0
    for path in paths:
        if not path.exists():
            raise CaselinkError(f"source {path} does not exist", field="sources")
        stream = stream_table(path, table_mapping) if path.is_file() else None
        if stream is None:
            result = load_path(path, mapping=table_mapping)
            documents.merge_documents(result)
            _print_load(path, result.summary(), result)
            skipped += len(result.skipped)
            sources_read.append(result.records)
        else:
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


def _print_response(resp, as_json: bool) -> None:
    from caselink.cli.render import print_response

    print_response(out, resp, as_json)


@app.command()
@friendly
def search(
    text: Annotated[str, typer.Argument(help="Symptom text, question, error code or part number.")],
    k: Annotated[Optional[int], typer.Option("--k", "-k", help="How many results: in each group (default 5 "
                                                              "procedures, 5 problems, 10 cases), or with --flat in "
                                                              "all (default 10).", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="hybrid, dense, keyword or learned.", show_default=False)] = None,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="case, problem or sop (repeatable).",
                                                      show_default=False)] = None,
    product: Annotated[Optional[list[str]], typer.Option("--product", show_default=False)] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", show_default=False)] = None,
    module: Annotated[Optional[list[str]], typer.Option("--module", show_default=False)] = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", show_default=False)] = None,
    created_from: Annotated[Optional[str], typer.Option("--from", help="Created on or after (YYYY-MM-DD).",
                                                        show_default=False)] = None,
    created_to: Annotated[Optional[str], typer.Option("--to", help="Created on or before (YYYY-MM-DD).",
                                                      show_default=False)] = None,
    open_only: OpenOnlyOpt = False,
    min_score: Annotated[float, typer.Option("--min-score", help="Drop results below this score (0-1).")] = 0.0,
    attr: Annotated[Optional[list[str]], typer.Option("--attr", help="Only records whose own attribute holds this "
                                                      "value, as key=value, e.g. --attr customer=ACME (repeatable: "
                                                      "values of one key are any of, different keys all must match).",
                                                      show_default=False)] = None,
    flat: Annotated[bool, typer.Option("--flat", help="One ranking of every kind (as the API answers by default) "
                                                      "instead of procedures, known problems and cases.")] = False,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search cases, problem orders and SOP sections by free text.

    Prints the card of each error code named, then procedures (SOP sections), known problems
    (problem orders) and past cases, each ranked on its own; --flat prints one ranking of -k results.
    """
    from pydantic import ValidationError

    from caselink.errors import InvalidQuery
    from recommender.results import GroupK, SearchQuery, parse_attr_params

    attributes = parse_attr_params(attr, field="--attr")
    try:
        q = SearchQuery(text=text, k=10 if k is None else k, mode=mode, kind=kind or [], product=product or [], model=model or [],
                        module=module or [], status=status or [], min_score=min_score, open_only=open_only,
                        created_from=_date(created_from, "--from"), created_to=_date(created_to, "--to"),
                        attributes=attributes)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InvalidQuery(f"option '{e['loc'][0]}': {e['msg']}", field=str(e["loc"][0])) from None
    from caselink.cli.remote import Remote, server_url
    from caselink.cli.render import print_grouped, print_response

    if not flat:
        sizes = GroupK() if k is None else GroupK(sops=q.k, problems=q.k, cases=q.k)
        q = q.model_copy(update={"grouped": True, "group_k": sizes})
    url = server_url(server)
    if url:
        from recommender.grouping import GroupedSearchResponse
        from recommender.results import SearchResponse

        data = Remote(url).post("/v1/search", q.model_dump(mode="json"))
        if flat:
            print_response(out, SearchResponse.model_validate(data), as_json)
        else:
            print_grouped(out, GroupedSearchResponse.model_validate(data), as_json)
        return
    svc = _open(config, data_dir)
    try:
        if flat:
            print_response(out, svc.search(q), as_json)
        else:
            from recommender.grouping import search_grouped

            print_grouped(out, search_grouped(svc, q), as_json)
    finally:
        svc.close()


def _date(value: str | None, option: str) -> date | None:
    from caselink.errors import InvalidQuery

    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidQuery(f"{option} expects a date like 2024-03-31, got '{value}'", field=option) from None


@app.command()
@friendly
def related(
    record_id: Annotated[Optional[str], typer.Argument(help="Id of a stored record.", show_default=False)] = None,
    record: Annotated[Optional[Path], typer.Option(
        "--record", help="Or: a record that need not be stored, as a JSON object in the record model "
                         "(a ticket being written; '-' reads standard input).", show_default=False)] = None,
    k: Annotated[int, typer.Option("--k", "-k")] = 10,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Only these kinds (repeatable).",
                                                      show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", show_default=False)] = None,
    exclude_linked: Annotated[bool, typer.Option("--exclude-linked", help="Leave out records it already links to.")] = False,
    open_only: OpenOnlyOpt = False,
    attr: Annotated[Optional[list[str]], typer.Option("--attr", help="Only records whose own attribute holds this "
                                                      "value, as key=value, e.g. --attr customer=ACME (repeatable: "
                                                      "values of one key are any of, different keys all must match).",
                                                      show_default=False)] = None,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Records related to a stored record (never the record itself), or to a draft given with --record."""
    from pydantic import ValidationError

    from caselink.errors import InvalidQuery
    from caselink.cli.remote import server_url
    from recommender.results import parse_attr_params

    attributes = parse_attr_params(attr, field="--attr")
    if (record_id is None) == (record is None):
        raise InvalidQuery("give a stored record's id or --record FILE, not both and not neither", field="record_id",
                           hint="caselink related C-2024-0113, or caselink related --record draft.json")
    draft = _read_draft(record) if record is not None else None
    url = server_url(server)
    if url:
        _print_response(_related_remote(url, record_id, draft, k=k, kinds=kind or [], mode=mode,
                                        exclude_linked=exclude_linked, open_only=open_only, attributes=attributes),
                        as_json)
        return
    svc = _open(config, data_dir)
    try:
        try:
            if draft is not None:
                resp = svc.related_to(draft, k=k, kinds=kind, mode=mode, exclude_linked=exclude_linked,
                                      open_only=open_only, attributes=attributes)
            else:
                resp = svc.related(record_id, k=k, kinds=kind, mode=mode, exclude_linked=exclude_linked,
                                   open_only=open_only, attributes=attributes)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise InvalidQuery(f"option '{e['loc'][0]}': {e['msg']}", field=str(e["loc"][0])) from None
        _print_response(resp, as_json)
    finally:
        svc.close()


def _related_remote(url: str, record_id: str | None, draft, *, k: int, kinds: list[str], mode: str | None,
                    exclude_linked: bool, open_only: bool, attributes: dict[str, list[str]]):
    """Related records from the server: the stored record's route, or the draft's."""
    from urllib.parse import quote

    from caselink.cli.remote import Remote, drop_none
    from recommender.results import SearchResponse

    params = drop_none({"k": k, "kind": kinds, "mode": mode, "exclude_linked": exclude_linked, "open_only": open_only})
    if draft is not None:
        record = draft.model_dump(mode="json", exclude_defaults=True)
        data = Remote(url).post("/v1/related", {"record": record, **params, "attributes": attributes})
    else:
        attr = [f"{key}={value}" for key, values in attributes.items() for value in values]
        data = Remote(url).get(f"/v1/records/{quote(record_id, safe='')}/related", drop_none({**params, "attr": attr}))
    # The related routes answer without the query text the local ranking echoes: name the record.
    return SearchResponse.model_validate({"query": data.get("id") or "(unsaved record)", **data})


def _read_draft(path: Path):
    """The record in a JSON file (or standard input for '-'), validated as a draft."""
    from caselink.errors import InvalidRecord
    from indexing.records import parse_draft

    where = "standard input" if str(path) == "-" else str(path)
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRecord(f"cannot read {where}: {exc}", field="--record") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"{where} is not JSON: {exc}", field="--record",
                            hint='write one object, e.g. {"title": "...", "text": "...", "error_codes": ["E1023"]}') from None
    if not isinstance(data, dict):
        raise InvalidRecord(f"{where} must hold one JSON object (a record), not {type(data).__name__}", field="--record")
    return parse_draft(data, where=where)


@app.command()
@friendly
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


@app.command()
@friendly
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


@app.command()
@friendly
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


from caselink.cli.eval_command import eval_command  # noqa: E402  (a command of its own module, registered here)

from caselink.cli.insight_commands import emerging_command, suggest_command  # noqa: E402
from caselink.cli.store_commands import (backup_command, copy_store_command, feedback_command,  # noqa: E402
                                     ids_command, restore_command)
from caselink.cli.sync_command import sync_command  # noqa: E402
from caselink.cli.train_command import train_command  # noqa: E402

app.command("eval")(friendly(eval_command))
app.command("emerging")(friendly(emerging_command))
app.command("suggest")(friendly(suggest_command))
app.command("feedback")(friendly(feedback_command))
app.command("ids")(friendly(ids_command))
app.command("backup")(friendly(backup_command))
app.command("restore")(friendly(restore_command))
app.command("copy-store")(friendly(copy_store_command))
app.command("sync")(friendly(sync_command))
app.command("train")(friendly(train_command))
