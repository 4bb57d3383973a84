"""What every ``caselink`` command module shares: the consoles, the common options, the error
wrapper, settings and progress bars, opening the service.

Its own module so the command modules (``commands.py``, ``eval_command.py``, ``insight_commands.py``,
``store_commands.py``, ``sync_command.py``, ``train_command.py``) import it instead of importing
``commands.py`` back, which imports them to register their commands.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from caselink.config import Settings, load_settings
from caselink.errors import CaselinkError

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (TOML).", show_default=False)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where records and the index live.",
                                                    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
OpenOnlyOpt = Annotated[bool, typer.Option("--open-only", help="Leave out finished cases and problem orders "
                                                         "(status fixed, closed, 已关闭, ...).")]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Search engine: local (default) or milvus "
                                                                      "(at backend.uri); overrides backend.kind.",
                                                   show_default=False)]
ServerOpt = Annotated[Optional[str], typer.Option(
    "--server", help="Ask the caselink server at this URL instead of loading the index: milliseconds instead of "
                     "seconds (default: CASELINK_URL; CASELINK_API_KEY is its key).", show_default=False)]


def friendly(fn):
    """Turn domain errors into one red line and exit code 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CaselinkError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            if exc.hint:
                err.print(f"  next: {exc.hint}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def settings_from(config: Path | None, data_dir: Path | None, **overrides) -> Settings:
    return load_settings(config, data_dir=data_dir, **overrides)


def progress_bars() -> Progress:
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False, disable=not err.is_terminal and not _force_bars())


def _force_bars() -> bool:
    import os

    return os.environ.get("CASELINK_PROGRESS") == "1"


def open_service(config: Path | None, data_dir: Path | None):
    from recommender.service import CaselinkService

    return CaselinkService.open(settings_from(config, data_dir))
