"""Table exports read a row at a time: a million-row JSONL or CSV is never held whole.

:func:`stream_table` reads a UTF-8 ``.jsonl``/``.ndjson``/``.csv``/``.tsv`` file twice. The
first pass checks what :func:`~indexing.loaders.tabular.load_table` would refuse the whole file
for (bytes that are not UTF-8, a mapped column the file lacks) and counts the rows, holding
nothing; so a file that cannot be loaded raises before a single record is stored, as it always
did. The second pass, :meth:`TableStream.records`, yields the records one by one, skipping and
reporting bad rows exactly as ``load_table`` does. Other files (Excel, Parquet, a JSON array,
SOP documents, a file in GBK or Big5) are loaded whole as before: ``stream_table`` returns None.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.encoding import bom_encoding, plausible_utf8
from indexing.loaders.mapping import Mapping
from indexing.loaders.result import LoadResult
from indexing.loaders.tabular import (_sniff_delimiter, _Table, delimited_rows, duplicates_warning, jsonl_rows,
                                      mapped_rows)
from indexing.records import Record

STREAMED_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv")
_EVIDENCE = 8  # non-ASCII characters plausible_utf8 looks at, at most


@dataclass
class TableStream:
    """One table file's records, read as they are consumed.

    Attributes:
        rows: Data rows counted by the first pass (blank lines left out): a progress bar's total.
        result: Its ``skipped`` and ``warnings`` are complete once :meth:`records` is
            exhausted; ``records`` stays empty (``loaded`` counts them).
    """

    path: Path
    mapping: Mapping
    rows: int
    delimiter: str | None  # None: JSONL
    result: LoadResult
    loaded: int = 0

    def records(self) -> Iterator[Record]:
        """Every valid record in file order; a later row with an id seen before is yielded too
        (it replaces the earlier one when stored) and named in the duplicates warning."""
        source = str(self.path)
        table, skipped = _Table(), []
        seen: dict[str, int] = {}
        duplicates: list[str] = []
        with self.path.open(encoding="utf-8-sig", newline="" if self.delimiter else "\n") as fh:
            if self.delimiter:
                rows = delimited_rows(csv.reader(fh, delimiter=self.delimiter), table, source)
            else:  # lines split at \n only, as load_table splits them (U+2028 may sit inside a string)
                rows = jsonl_rows(enumerate((line.rstrip("\n") for line in fh), start=1), table, source)
            for number, record in mapped_rows(rows, self.mapping, source, skipped):
                if record.id in seen:
                    duplicates.append(f"{record.id!r} (rows {seen[record.id]} and {number})")
                seen[record.id] = number
                self.loaded = len(seen)  # distinct ids, as load_table counts them
                yield record
        self.result.warnings += table.warnings
        if duplicates:
            self.result.warnings.append(duplicates_warning(source, duplicates))
        self.result.skipped = sorted(table.skipped + skipped, key=lambda s: s.row or 0)

    def summary(self) -> str:
        """:meth:`LoadResult.summary`, once :meth:`records` is exhausted."""
        return self.result.summary(loaded=self.loaded)


def stream_table(path: str | Path, mapping: Mapping | None = None) -> TableStream | None:
    """A :class:`TableStream` for a UTF-8 JSONL/CSV/TSV file, or None when the file is to be
    loaded whole (:func:`~indexing.loaders.load_path`).

    Raises:
        LoaderError: the file cannot be read, or lacks a column the mapping names (before any
            record is yielded, so nothing is stored).
    """
    path = Path(path)
    mapping = mapping or Mapping()
    if path.suffix.lower() not in STREAMED_SUFFIXES or not path.is_file():
        return None
    if mapping.encoding.lower().replace("_", "-") not in ("auto", "utf-8", "utf8", "utf-8-sig"):
        return None
    source = str(path)
    first = _first_pass(path, source)
    if first is None:
        return None
    rows, columns, delimiter = first
    warnings = mapping.check_columns(columns, source)  # raises for a missing mapped column
    return TableStream(path, mapping, rows, delimiter, LoadResult(files=[source], warnings=warnings))


def _first_pass(path: Path, source: str) -> tuple[int, list[str], str | None] | None:
    """(data rows, columns, CSV delimiter), or None when the bytes are not plainly UTF-8
    (decode_bytes then decides on the whole file, as before). Holds one row at a time; raises
    the LoaderError that load_table would for a file the csv module cannot read."""
    delimited = path.suffix.lower() in (".csv", ".tsv")
    try:
        with path.open("rb") as fh:
            if bom_encoding(fh.read(4)) not in (None, "utf-8-sig"):
                return None
        fh = path.open(encoding="utf-8-sig", newline="" if delimited else "\n")
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read file ({exc.strerror})") from None
    evidence: list[str] = []  # the first non-ASCII characters: all plausible_utf8 reads

    def seen(line: str) -> str:
        if len(evidence) < _EVIDENCE and not line.isascii():
            evidence.extend([c for c in line if c > "\x7f"][:_EVIDENCE - len(evidence)])
        return line

    rows, columns, delimiter = 0, [], None
    try:
        with fh:
            if delimited:
                first = seen(fh.readline())
                delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(first)
                table = _Table()
                reader = csv.reader(itertools.chain([first], map(seen, fh)), delimiter=delimiter)
                rows = sum(1 for _ in delimited_rows(reader, table, source))  # raises LoaderError like load_table
                columns = table.columns
            else:
                keys: dict[str, None] = {}
                for line in map(seen, fh):
                    if not line.strip():
                        continue
                    rows += 1
                    try:
                        item = json.loads(line)
                    except (ValueError, RecursionError):
                        continue  # the second pass reports it as a skipped row
                    if isinstance(item, dict):
                        keys.update(dict.fromkeys(item))
                columns = list(keys)
    except UnicodeDecodeError:
        return None
    if not plausible_utf8("".join(evidence)):
        return None  # odd characters: maybe GBK or Big5 that happens to be valid UTF-8
    return rows, columns, delimiter
