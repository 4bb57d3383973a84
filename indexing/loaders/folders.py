"""Loading many files: walk a folder, load each file, keep going past the ones that fail.

Ids must be unique across a whole load, not just within a file (two SOPs copied from the same
template often keep the same doc_id), so results are merged here with the same rule as inside a
file: the later one wins, and a warning names both files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.result import LoadResult, SkippedRow


def files_under(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``folder`` (recursively) with one of ``suffixes``, sorted by path.

    Hidden files and folders (``.x``) and Office lock files (``~$x.xlsx``) are left out.
    """
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and is_visible(p, folder))


def is_visible(path: Path, folder: Path) -> bool:
    """True for a file under ``folder`` that is not hidden (``.x``, ``.x/y``) nor an Office lock file (``~$x``)."""
    return path.is_file() and not any(part.startswith((".", "~$")) for part in path.relative_to(folder).parts)


def load_files(files: Iterable[Path], load_one: Callable[[Path], LoadResult]) -> LoadResult:
    """Load each file with ``load_one`` and merge the results.

    A file whose load raises LoaderError becomes a SkippedRow with ``row=None``. A record whose
    id was already loaded from an earlier file replaces it, with a warning.
    """
    merged = LoadResult()
    origin: dict[str, tuple[int, str]] = {}  # id -> (position in merged.records, file)
    for file in files:
        try:
            part = load_one(file)
        except LoaderError as exc:
            merged.skipped.append(SkippedRow(str(file), None, exc.field, str(exc).removeprefix(f"{file}: ")))
            continue
        source = part.files[0] if part.files else str(file)
        replaced: dict[str, list[str]] = {}  # earlier file -> ids this file replaces
        for record in part.records:
            if record.id in origin:
                position, earlier = origin[record.id]
                merged.records[position] = record
                replaced.setdefault(earlier, []).append(record.id)
                origin[record.id] = (position, source)
            else:
                origin[record.id] = (len(merged.records), source)
                merged.records.append(record)
        add_outcome(merged, part, source, replaced)
        merged.merge_documents(part)
    return merged


def add_outcome(merged: LoadResult, part: LoadResult, source: str, replaced: dict[str, list[str]]) -> None:
    """Add one file's skipped rows, warnings and file names to ``merged``, with a warning for each
    earlier file some of whose ids (``replaced``: earlier file -> ids) this one replaced. One rule
    for a folder loaded whole and one streamed, whose warnings must read the same."""
    merged.skipped.extend(part.skipped)
    merged.warnings.extend(part.warnings)
    merged.warnings.extend(
        f"{source}: {id_list(ids)} also loaded from {earlier}; kept the records from {source}"
        for earlier, ids in replaced.items()
    )
    merged.files.extend(part.files)


def id_list(ids: list[str], shown: int = 5) -> str:
    """``id 'C-1'``, ``ids 'C-1', 'C-2'`` or ``12 ids ('C-1', 'C-2', ... and 7 more)``, for warnings."""
    if len(ids) == 1:
        return f"id {ids[0]!r}"
    quoted = ", ".join(repr(i) for i in ids[:shown])
    if len(ids) <= shown:
        return f"ids {quoted}"
    return f"{len(ids)} ids ({quoted} and {len(ids) - shown} more)"
