"""``caselink sync rt``: bring caselink up to date with a configured source once (for cron, or a
first import), with a progress bar. ``caselink serve`` runs the same sync in a loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (TOML).", show_default=False)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where records and the index live.",
                                                    show_default=False)]


def sync_command(
    source: Annotated[str, typer.Argument(help="Which configured source: rt ([sources.rt]).")] = "rt",
    full: Annotated[bool, typer.Option("--full", help="Read every ticket again and delete those the source no "
                                       "longer has (tickets removed with RT's shredder).")] = False,
    notes: Annotated[bool, typer.Option("--notes/--no-notes", help="Post the related-records note on new "
                                        "tickets (default: sources.<name>.comment).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Pull the changes made in a ticketing system since the last sync into caselink."""
    from caselink.cli.common import out
    from caselink.cli.common import progress_bars as _progress
    from caselink.cli.common import settings_from as _settings
    from caselink.errors import ConfigError, IndexNotReady
    from indexing.sources import open_sources
    from indexing.sources.state import SourceState
    from recommender.service import CaselinkService
    from recommender.sync import make_syncer

    settings = _settings(config, data_dir)
    if getattr(settings.sources, source, None) is None:
        raise ConfigError(f"no source '{source}' is configured", field="source",
                          hint=f"add a section sources.{source} to caselink.toml (see README, Connecting your "
                               "ticketing system)")
    src = next(s for s in open_sources(settings) if s.name == source)
    try:
        src.check()  # a wrong URL, token, queue or field fails here, before the model is loaded
    except BaseException:
        src.close()
        raise
    try:
        svc = CaselinkService.open(settings)
    except IndexNotReady:  # a first sync into an empty data folder
        svc, _ = CaselinkService.build(settings, rebuild=False)
    state = SourceState(settings.sources_path).open()
    try:
        syncer = make_syncer(svc, src, state, notes=None if notes else False)
        with _progress() as bars:
            task = bars.add_task(source, total=None)
            report = syncer.run_once(full=full, progress=lambda _what, n: bars.advance(task, n))
    finally:
        state.close()
        src.close()
        svc.close()
    summary = {"source": source, "written": report.upserted, "unchanged": report.unchanged,
               "deleted": report.deleted, "notes": report.notes, "skipped": report.skipped,
               "warnings": report.warnings, "seconds": round(report.seconds, 2)}
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return
    out.print(f"{source}: {report.upserted} written, {report.unchanged} unchanged, {report.deleted} deleted, "
              f"{report.notes} notes posted in {report.seconds:.1f} s", highlight=False)
    for line in report.skipped:
        out.print(f"  skipped {line}", highlight=False)
    for line in report.warnings:
        out.print(f"  warning {line}", highlight=False)
