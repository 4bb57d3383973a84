"""``caselink emerging`` and ``caselink suggest``: what similar history says beyond search."""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.errors import InvalidQuery

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", show_default=False)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", show_default=False)]
ServerOpt = Annotated[Optional[str], typer.Option(
    "--server", help="Ask the caselink server at this URL instead of loading the index (default: CASELINK_URL; "
                     "CASELINK_API_KEY is its key).", show_default=False)]


def _days(window: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", window)
    if not m:
        raise InvalidQuery(f"--window expects a length like 30d or 4w, got '{window}'", field="window")
    return int(m.group(1)) * (7 if m.group(2) == "w" else 1)


def emerging_command(
    window: Annotated[str, typer.Option("--window", help="Recent window: 30d, 4w, ...")] = "30d",
    product: Annotated[Optional[str], typer.Option("--product", show_default=False)] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="End of the window (YYYY-MM-DD); default: the "
                                                                 "newest case date.", show_default=False)] = None,
    min_size: Annotated[int, typer.Option("--min-size", help="Smallest group worth flagging.")] = 3,
    similarity: Annotated[float, typer.Option("--similarity", help="Cosine above which cases group.")] = 0.6,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Groups of recent, mutually similar cases not linked to an open problem order, and rising problem orders."""
    from caselink.cli.common import out
    from caselink.cli.common import open_service as _open
    from caselink.cli.remote import Remote, drop_none, server_url
    from caselink.cli.render import print_emerging

    try:
        end = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidQuery(f"--as-of expects a date like 2025-06-30, got '{as_of}'", field="as_of") from None
    url = server_url(server)
    if url:
        data = Remote(url).get("/v1/emerging", drop_none({
            "window_days": _days(window), "as_of": as_of, "product": product, "min_size": min_size,
            "similarity": similarity}))
    else:
        from recommender.emerging import find_emerging

        svc = _open(config, data_dir)
        try:
            report = find_emerging(svc, window_days=_days(window), as_of=end, product=product, min_size=min_size,
                                   similarity=similarity)
        finally:
            svc.close()
        data = report.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    print_emerging(out, data)


def suggest_command(
    record_id: Annotated[Optional[str], typer.Argument(help="A stored record's id.", show_default=False)] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Free text instead of a stored record.",
                                                show_default=False)] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Suggest category, module, priority and responsible group from the nearest historical cases."""
    from caselink.cli.common import out
    from caselink.cli.common import open_service as _open
    from caselink.cli.remote import Remote, server_url
    from caselink.cli.render import print_suggestions

    if (record_id is None) == (text is None):
        raise InvalidQuery("give a record id or --text, not both", field="record_id")
    url = server_url(server)
    if url and record_id:
        from urllib.parse import quote

        data = Remote(url).get(f"/v1/records/{quote(record_id, safe='')}/suggestions",
                               {"min_confidence": min_confidence})
    elif url:
        data = Remote(url).post("/v1/suggest", {"text": text, "min_confidence": min_confidence})
    else:
        from recommender.suggest import suggest_fields

        svc = _open(config, data_dir)
        try:
            record = svc.get(record_id) if record_id else None
            result = suggest_fields(svc, record=record, text=text, min_confidence=min_confidence)
        finally:
            svc.close()
        data = result.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    print_suggestions(out, data)
