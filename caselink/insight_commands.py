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
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Groups of recent, mutually similar cases not linked to an open problem order, and rising problem orders."""
    from caselink.cli import _open, out
    from caselink.render import sparkline
    from recommender.emerging import find_emerging

    try:
        end = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidQuery(f"--as-of expects a date like 2025-06-30, got '{as_of}'", field="as_of") from None
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
    out.print(f"window {data['window_start']} .. {data['as_of']}: {data['recent_cases']} recent cases, "
              f"{data['excluded_linked']} already linked to an open problem order", highlight=False)
    if data["weeks"]:
        out.print(f"weekly cases, {len(data['weeks'])} weeks from {data['weeks'][0]}, the last ending {data['as_of']}",
                  highlight=False)
    if not data["groups"]:
        out.print("no emerging groups", highlight=False)
    for g in data["groups"]:
        out.print(f"\n[bold]{g['title']}[/bold]  size {g['size']}, growth x{g['growth']:.1f}, "
                  f"score {g['score']:.1f}", highlight=False)
        out.print(f"  weekly {sparkline(g['weekly'])}  {sum(g['weekly'][-4:])} in the last 4 weeks", highlight=False)
        out.print(f"  cases: {', '.join(g['case_ids'])}", highlight=False)
        if g["common_codes"] or g["common_terms"]:
            out.print(f"  codes: {', '.join(g['common_codes']) or '-'}; terms: {', '.join(g['common_terms'][:8])}",
                      highlight=False)
    for p in data["rising_problems"]:
        out.print(f"\nrising: {p['id']} {p['title']} ({p['current']} this window vs {p['baseline']:.1f} before)",
                  highlight=False)
        out.print(f"  weekly {sparkline(p['weekly'])}", highlight=False)


def suggest_command(
    record_id: Annotated[Optional[str], typer.Argument(help="A stored record's id.", show_default=False)] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Free text instead of a stored record.",
                                                show_default=False)] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Suggest category, module, priority and responsible group from the nearest historical cases."""
    from caselink.cli import _open, out
    from recommender.suggest import suggest_fields

    if (record_id is None) == (text is None):
        raise InvalidQuery("give a record id or --text, not both", field="record_id")
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
    for f in data["fields"].values():
        value = f["value"] if f["value"] is not None else "(no suggestion)"
        out.print(f"{f['field']:<9} {value}  confidence {f['confidence']:.2f}  - {f['reason']}", highlight=False)
