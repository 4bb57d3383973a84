"""Commands that need the record store alone (no index, no encoder, so they start at once):
``caselink feedback`` (and ``--undo``), ``caselink ids``, ``caselink backup``, ``caselink restore`` and
``caselink copy-store``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (TOML).", show_default=False)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where records and the index live.",
                                                    show_default=False)]


def feedback_command(
    result_id: Annotated[Optional[str], typer.Argument(help="Id of the suggested record you judge.",
                                                       show_default=False)] = None,
    for_id: Annotated[Optional[str], typer.Option("--for", help="The record it was suggested for "
                                                  "(as by caselink related).", show_default=False)] = None,
    query: Annotated[Optional[str], typer.Option("--query", help="Or: the search text it was suggested for.",
                                                 show_default=False)] = None,
    helpful: Annotated[bool, typer.Option("--helpful/--not-helpful", help="Your verdict.")] = True,
    source: Annotated[Optional[str], typer.Option("--source", help="Who judges [default: your user name]; "
                                                  "a source's latest verdict on a pair counts once.",
                                                  show_default=False)] = None,
    undo: Annotated[Optional[int], typer.Option("--undo", help="Take back the vote with this id (as printed when "
                                                "it was cast) instead.", show_default=False)] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Mark a suggestion helpful or not. For a record (--for), it reorders what is related to it."""
    import getpass

    from caselink.cli.common import out
    from caselink.cli.common import settings_from as _settings
    from caselink.errors import InvalidQuery
    from indexing.store import RecordStore
    from recommender.verdicts import record_feedback, take_back

    settings = _settings(config, data_dir)
    if undo is not None:
        if result_id or for_id or query:
            raise InvalidQuery("--undo takes back a vote by its id alone: leave out the record, --for and --query",
                               field="--undo")
        with RecordStore.existing(settings.store_url) as store:
            take_back(store, undo)
        out.print(f"took back vote {undo}; it no longer counts", highlight=False)
        return
    if not result_id:
        raise InvalidQuery("name the suggested record you judge", field="result_id",
                           hint="caselink feedback PO-2023-003 --for C-2023-00042 [--not-helpful]")
    try:
        who = source if source is not None else f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment (a bare container)
        who = "cli"
    with RecordStore.existing(settings.store_url) as store:
        fid = record_feedback(store, record_id=result_id, helpful=helpful, query=query or "",
                              query_id=for_id or "", source=who)
    said = "helpful" if helpful else "not helpful"
    target = f"record {for_id}" if for_id else f"“{query}”"
    out.print(f"marked {result_id} {said} for {target} (source {who}, vote {fid}; "
              f"caselink feedback --undo {fid} takes it back)", highlight=False)


def ids_command(
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Only these kinds (repeatable).",
                                                      show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line: id, kind, updated, hash.")
                       ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Every stored record id, one per line in id order: to compare with the source system's ids."""
    from datetime import datetime, timezone

    from caselink.cli.common import settings_from as _settings
    from caselink.errors import InvalidQuery
    from indexing.records import KINDS
    from indexing.store import RecordStore

    for k in kind or []:
        if k not in KINDS:
            raise InvalidQuery(f"--kind expects one of {', '.join(KINDS)}, got '{k}'", field="--kind")
    settings = _settings(config, data_dir)
    with RecordStore.existing(settings.store_url) as store:
        after: str | None = ""
        while after is not None:
            rows, after = store.list_ids(after=after, limit=5000, kinds=kind or ())
            for rid, k, updated, h in rows:
                if as_json:
                    when = datetime.fromtimestamp(updated, timezone.utc).isoformat().replace("+00:00", "Z")
                    sys.stdout.write(json.dumps({"id": rid, "kind": k, "updated": when, "hash": h},
                                                ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write(rid + "\n")


def backup_command(
    folder: Annotated[Path, typer.Argument(help="A new folder for the backup (created if missing).")],
    with_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Also copy the embedding cache, so a "
                                             "restore re-embeds nothing.")] = True,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Back up the record store (records and votes), safely while a server is writing.

    The index is not copied: caselink index rebuilds it from the store.
    """
    from caselink.cli.common import out
    from caselink.cli.common import settings_from as _settings
    from indexing.backup import backup as run_backup

    settings = _settings(config, data_dir)
    r = run_backup(settings.store_url, settings.cache_path, folder, with_cache=with_cache)
    cache = f" and the embedding cache ({r.cache_bytes / 1e6:.1f} MB)" if r.cache_bytes else ""
    out.print(f"backed up {r.records} records and {r.votes} votes ({r.store_bytes / 1e6:.1f} MB){cache} to "
              f"{r.folder} in {r.seconds:.1f} s; to restore: caselink restore {r.folder}", highlight=False)


def restore_command(
    folder: Annotated[Path, typer.Argument(help="A folder caselink backup wrote.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Put a backed-up record store in place of the current one (which is kept beside it).

    Stop the server first: this refuses while any caselink process has the store open. Then run
    caselink index, which rebuilds the index from the restored records.
    """
    from caselink.cli.common import out
    from caselink.cli.common import settings_from as _settings
    from indexing.backup import restore as run_restore

    settings = _settings(config, data_dir)
    r = run_restore(folder, settings.store_url, settings.cache_path)
    aside = f"; the store it replaced is kept as {r.replaced}" if r.replaced else ""
    cache = {"restored": "; the embedding cache was restored too", "kept": "; the current embedding cache was kept",
             "none": ""}[r.cache]
    out.print(f"restored {r.records} records and {r.votes} votes from {folder}{aside}{cache}. "
              f"Next: caselink index (rebuilds the index from them), then start the server", highlight=False)


def copy_store_command(
    target: Annotated[str, typer.Argument(help="The store to copy into, empty: postgresql://user@host:5432/dbname "
                                          "(or a SQLite file path).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Copy the record store (records and votes) into another, empty one: how an existing SQLite
    store moves to PostgreSQL. Stop the servers first; then set store.url to the target and run
    caselink index on each server's data folder."""
    from caselink.cli.common import out
    from caselink.cli.common import settings_from as _settings
    from indexing.store import RecordStore
    from indexing.store_copy import copy_store

    settings = _settings(config, data_dir)
    with RecordStore.existing(settings.store_url) as source, RecordStore(target) as dest:
        r = copy_store(source, dest)
        out.print(f"copied {r.records} records and {r.votes} votes from {source.where} to {dest.where} in "
                  f"{r.seconds:.1f} s. Next: set store.url (or CASELINK_STORE_URL) to it and run caselink index",
                  highlight=False)
