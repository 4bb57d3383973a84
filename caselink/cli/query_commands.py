"""``caselink search`` and ``caselink related``: the two ways to ask, each answered from the local
index or, with --server, by a running caselink server."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.cli.common import ConfigOpt, DataDirOpt, JsonOpt, OpenOnlyOpt, ServerOpt, out
from caselink.cli.common import open_service as _open


def _print_response(resp, as_json: bool) -> None:
    from caselink.cli.render import print_response

    print_response(out, resp, as_json)


def search_command(
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


def related_command(
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
