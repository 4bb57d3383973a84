"""A folder of exports and SOP documents read file by file, each table file a row at a time.

:func:`stream_folder` is what :func:`~indexing.loaders.load_path` does with a folder, without
holding the folder: a first pass opens every file in the order ``load_path`` loads them (a table
file with :func:`~indexing.loaders.stream.stream_table`, which checks and counts it holding a row at
a time; a file ``stream_table`` leaves whole, and every SOP document, loaded whole as before, the
SOPs because their sections are few and ``documents`` must be complete before the build). A file
that cannot be loaded is reported as skipped, as ``load_path`` reports it, before any record is
yielded. :meth:`FolderStream.records` then yields the records file after file; once it is
exhausted, ``result`` holds the skipped rows and warnings ``load_path`` gives, in its order (a
record loaded again from a later file replaces the earlier one when stored, and is named in
the same warning).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.folders import add_outcome, files_under, is_visible
from indexing.loaders.mapping import Mapping
from indexing.loaders.result import LoadResult, SkippedRow
from indexing.loaders.sop import SOP_SUFFIXES, UniqueDocIds, load_sop_file
from indexing.loaders.stream import TableStream, stream_table
from indexing.loaders.tabular import TABLE_SUFFIXES, load_table
from indexing.records import Record

_QUIET = frozenset({".toml"})  # mapping files live next to the exports; not worth a warning
# .xls is listed so that it is reported with the reason (not supported, save as .xlsx)
LOADED_SUFFIXES = (*SOP_SUFFIXES, *TABLE_SUFFIXES, ".xls")

_Part = TableStream | LoadResult | SkippedRow  # a file streamed, loaded whole, or skipped whole


@dataclass
class FolderStream:
    """The files of one folder, opened; their records read as they are consumed.

    Attributes:
        rows: Rows (and SOP sections) the files hold, for a progress bar's total.
        result: ``documents`` (the SOP files') is complete from the start; ``skipped`` and
            ``warnings`` once :meth:`records` is exhausted; ``records`` stays empty.
    """

    folder: Path
    parts: list[tuple[Path, _Part]]
    rows: int
    result: LoadResult
    ignored: list[str] = field(default_factory=list)  # the "ignored files" warning, when there is one
    loaded: int = 0

    def records(self) -> Iterator[Record]:
        """Every record, file after file, each file's in its order."""
        result = LoadResult(documents=self.result.documents)
        origin: dict[str, str] = {}  # id -> the file it was last loaded from
        for file, part in self.parts:
            if isinstance(part, SkippedRow):
                result.skipped.append(part)
                continue
            source = part.result.files[0] if isinstance(part, TableStream) else (part.files or [str(file)])[0]
            replaced: dict[str, list[str]] = {}  # earlier file -> ids this file replaces
            records = part.records() if isinstance(part, TableStream) else part.records
            for record in records:
                earlier = origin.get(record.id)
                if earlier is not None and earlier != source and record.id not in replaced.get(earlier, ()):
                    replaced.setdefault(earlier, []).append(record.id)
                origin[record.id] = source
                self.loaded = len(origin)
                yield record
            add_outcome(result, part.result if isinstance(part, TableStream) else part, source, replaced)
        result.warnings.extend(self.ignored)
        self.result = result

    def summary(self) -> str:
        """:meth:`LoadResult.summary`, once :meth:`records` is exhausted."""
        return self.result.summary(loaded=self.loaded)


def stream_folder(folder: str | Path, mapping: Mapping | None = None) -> FolderStream:
    """Open every loadable file under ``folder`` (recursively; hidden files and Office lock files
    left out), as :func:`~indexing.loaders.load_path` loads them.

    Raises:
        LoaderError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoaderError(f"{folder}: folder not found")
    unique = UniqueDocIds()
    result = LoadResult()
    parts: list[tuple[Path, _Part]] = []
    rows = 0
    for file in files_under(folder, LOADED_SUFFIXES):
        try:
            if file.suffix.lower() in SOP_SUFFIXES:
                part: _Part = unique(file, load_sop_file(file))
            else:
                part = stream_table(file, mapping) or load_table(file, mapping)
        except LoaderError as exc:
            parts.append((file, SkippedRow(str(file), None, exc.field, str(exc).removeprefix(f"{file}: "))))
            continue
        if isinstance(part, LoadResult):
            result.merge_documents(part)
            rows += len(part.records)
        else:
            rows += part.rows
        parts.append((file, part))
    return FolderStream(folder, parts, rows, result, ignored_files_warning(folder))


def ignored_files_warning(folder: Path) -> list[str]:
    """The warning naming the files under ``folder`` that no loader reads (none when there are none)."""
    known = {*LOADED_SUFFIXES, *_QUIET}
    others = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() not in known and is_visible(p, folder)
    )
    if not others:
        return []
    more = f" and {len(others) - 10} more" if len(others) > 10 else ""
    return [f"{folder}: ignored files of unsupported types: {', '.join(others[:10])}{more}"]
