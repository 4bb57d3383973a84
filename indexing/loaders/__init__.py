"""Input loaders: ticket exports (tables) and SOP documents -> Records.

Public API::

    from indexing.loaders import load_path, load_mapping

    result = load_path("exports/", load_mapping("exports/mapping.toml"))
    result.summary()   # "loaded 312 records from 3 files; skipped 2 rows (see below)"
    for row in result.skipped:
        str(row)       # "exports/cases.csv row 14: field 'created' (column '创建时间'): expected a date ..."

Tables (``tabular``): .csv .tsv .jsonl .ndjson .json .parquet .xlsx .xlsm, one row per record,
columns mapped by a TOML mapping (``mapping``). SOPs (``sop``): .md .markdown .txt .html .htm
.pdf .docx, one record per section. Bad rows are skipped and reported, never fatal; a file that
cannot be read at all raises LoaderError when loaded alone and is reported when part of a folder.
``stream_table`` reads a JSONL/CSV/TSV export (in any encoding: named, or detected by ``auto`` on
a bounded sample) or a Parquet file a row at a time (``stream``): what ``caselink index`` does
with such a file, so a million rows are never held at once; ``stream_folder`` reads a folder file
by file (``folder_stream``), ``stream_path`` picks between them.
"""

from __future__ import annotations

from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.folder_stream import LOADED_SUFFIXES, FolderStream, ignored_files_warning, stream_folder
from indexing.loaders.folders import files_under, load_files
from indexing.loaders.mapping import Mapping, load_mapping, mapping_from_dict
from indexing.loaders.result import LoadResult, SkippedRow
from indexing.loaders.sop import SOP_SUFFIXES, UniqueDocIds, load_sop_bytes, load_sop_file, load_sop_folder
from indexing.loaders.stream import TableStream, stream_table
from indexing.loaders.tabular import TABLE_SUFFIXES, load_table

__all__ = [
    "LoadResult", "SkippedRow", "Mapping", "load_path", "load_mapping", "mapping_from_dict", "load_table",
    "load_sop_bytes", "load_sop_file", "load_sop_folder", "TABLE_SUFFIXES", "SOP_SUFFIXES", "TableStream",
    "stream_table", "stream_folder", "stream_path", "FolderStream",
]

def load_path(path: str | Path, mapping: Mapping | None = None) -> LoadResult:
    """Load a file or every loadable file under a folder.

    Args:
        path: A table file, an SOP file, or a folder (searched recursively; hidden files and
            Office lock files are left out).
        mapping: Column mapping for the table files (``None``: columns named like Record
            fields); SOP files do not use it.

    Returns:
        All records; within a file and across files a later record with the same id replaces
        the earlier one (with a warning), except that an SOP whose doc_id another SOP already
        used is skipped.

    Raises:
        LoaderError: ``path`` does not exist, or is a single file that cannot be loaded (in a
            folder such a file is reported in ``skipped`` instead).
    """
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, mapping)
    if not path.exists():
        raise LoaderError(f"{path}: file or folder not found")
    suffix = path.suffix.lower()
    if suffix in SOP_SUFFIXES:
        return load_sop_file(path)
    if suffix in TABLE_SUFFIXES or suffix == ".xls":  # load_table explains why .xls is refused
        return load_table(path, mapping)
    raise LoaderError(
        f"{path}: expected a table ({', '.join(TABLE_SUFFIXES)}) or an SOP document ({', '.join(SOP_SUFFIXES)}), "
        f"got '{path.suffix}'",
        hint="save .doc files as .docx" if suffix == ".doc" else None,
    )


def stream_path(path: str | Path, mapping: Mapping | None = None) -> TableStream | FolderStream | None:
    """What ``caselink index`` reads a source with: a folder file by file (:func:`stream_folder`),
    a table file a row at a time (:func:`stream_table`); None for a file to load whole with
    :func:`load_path` (an SOP document, a file ``stream_table`` leaves whole, a missing path).

    Raises:
        LoaderError: as ``stream_table`` (a folder reports its files' errors as skipped instead).
    """
    path = Path(path)
    if path.is_dir():
        return stream_folder(path, mapping)
    return stream_table(path, mapping)


def _load_folder(folder: Path, mapping: Mapping | None) -> LoadResult:
    unique = UniqueDocIds()

    def load_one(file: Path) -> LoadResult:
        if file.suffix.lower() in SOP_SUFFIXES:
            return unique(file, load_sop_file(file))
        return load_table(file, mapping)

    result = load_files(files_under(folder, LOADED_SUFFIXES), load_one)
    result.warnings += ignored_files_warning(folder)
    return result
