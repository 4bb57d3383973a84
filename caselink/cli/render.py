"""How the CLI prints answers: flat and grouped search results, code cards, sparklines.

Printing only: the commands in :mod:`caselink.cli` and friends fetch, this module shows.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

_BARS = "▁▂▃▄▅▆▇█"
GROUP_TITLES = (("sops", "Procedures (SOP sections)"), ("problems", "Known problems (problem orders)"),
                ("cases", "Past cases"))


def sparkline(counts: Sequence[int]) -> str:
    """One bar per count, scaled to the largest; only a zero gets the lowest bar, so a week with
    one case never looks like a week with none: [0, 1, 4] -> '▁▂█'."""
    top = max(counts, default=0)
    steps = len(_BARS) - 2

    def bar(c: int) -> str:
        if c <= 0:
            return _BARS[0]
        return _BARS[-1] if top == 1 else _BARS[1 + round((c - 1) / (top - 1) * steps)]

    return "".join(bar(c) for c in counts)


def _note(resp) -> str:
    if not resp.fallback_reason:
        return ""
    if resp.path != resp.mode:
        return f" (fell back to keyword: {resp.fallback_reason})"
    return f" ({resp.fallback_reason})"


def _table(results, start: int = 1) -> Table:
    table = Table(show_lines=False)
    shown = any(r.attributes for r in results)  # the customer's own fields, when any result has some
    for col in ("#", "score", "kind", "id", "title", *(("attributes",) if shown else ()), "why"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(results, start):
        attrs = (" ".join(f"{k}={v}" for k, v in r.attributes.items()),) if shown else ()
        table.add_row(str(i), f"{r.score:.3f}", r.kind, r.id, r.title[:60], *attrs, r.explanation.reason)
    return table


def print_response(out: Console, resp, as_json: bool) -> None:
    """A flat ranking: one table, best first (``--json``: the response as the API gives it)."""
    if as_json:
        sys.stdout.write(resp.model_dump_json(indent=2) + "\n")
        return
    out.print(f"{len(resp.results)} results, path {resp.path}{_note(resp)}, {resp.timings_ms.get('total', 0):.1f} ms",
              highlight=False)
    out.print(_table(resp.results))


def print_grouped(out: Console, resp, as_json: bool) -> None:
    """The code cards, then procedures, known problems and past cases, each its own table."""
    if as_json:
        sys.stdout.write(resp.model_dump_json(indent=2) + "\n")
        return
    sizes = ", ".join(f"{len(getattr(resp, g))} {g}" for g, _ in GROUP_TITLES)
    out.print(f"{sizes}; path {resp.path}{_note(resp)}, {resp.timings_ms.get('total', 0):.1f} ms", highlight=False)
    for card in resp.code_cards:
        print_code_card(out, card)
    for group, title in GROUP_TITLES:
        results = getattr(resp, group)
        if results:
            out.print(f"\n[bold]{title}[/bold]", highlight=False)
            out.print(_table(results))
    if not any(getattr(resp, g) for g, _ in GROUP_TITLES):
        out.print("no matching records", highlight=False)


def print_code_card(out: Console, card) -> None:
    seen = f", last seen {card.last_seen}" if card.last_seen else ""
    count = f"{card.case_count}{'+' if card.case_count_capped else ''}"
    out.print(f"\n[bold]{card.code}[/bold]: {count} case{'' if card.case_count == 1 else 's'}{seen}", highlight=False)
    for p in card.procedures:
        title = " / ".join(x for x in (p.doc_title, p.section) if x)
        out.print(f"  procedure  {p.id}  {title}", highlight=False)
    for p in card.problems:
        state = "open" if p.open else "finished"
        out.print(f"  problem    {p.id}  [{p.status or 'no status'}, {state}] {p.title}", highlight=False)
        if p.workaround:
            out.print(f"             workaround: {' '.join(p.workaround.split())[:160]}", highlight=False)


def print_emerging(out: Console, data: dict) -> None:
    """An emerging report (``EmergingReport.to_dict()`` or the API's answer), a sparkline per trend."""
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


def print_suggestions(out: Console, data: dict) -> None:
    """Field suggestions (``Suggestions.to_dict()`` or the API's answer), one line per field."""
    for f in data["fields"].values():
        value = f["value"] if f["value"] is not None else "(no suggestion)"
        out.print(f"{f['field']:<9} {value}  confidence {f['confidence']:.2f}  - {f['reason']}", highlight=False)
