"""Load ticket exports (cases, problem orders) from tables: one row -> one Record.

CSV and TSV are read with the ``csv`` module rather than pandas: every cell stays a string,
a row with too many cells becomes one skipped row instead of failing the file, and row numbers
are exactly the spreadsheet rows a user would look at (a cell with line breaks is still one
row). Parquet goes through pandas, XLSX through openpyxl's read-only mode (``excel``). JSON and JSONL are read with ``json`` so that list
values stay lists and a broken line costs only that line.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from caselink.errors import InvalidRecord, LoaderError
from indexing.loaders.encoding import decode_bytes
from indexing.loaders.excel import SheetShape, excel_rows, sheet_shape
from indexing.loaders.mapping import Mapping
from indexing.loaders.result import LoadResult, SkippedRow
from indexing.loaders.values import clean_cell
from indexing.records import Record

ENCODING_HINT = 'set encoding = "gbk" (or "big5", "utf-8" ...) in the mapping TOML'
_DELIMITERS = (",", ";", "\t", "|")


@dataclass
class _Table:
    """Raw rows of one file before mapping: (row number, column -> cell)."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_table(path: str | Path, mapping: Mapping | None = None) -> LoadResult:
    """Load one table file; bad rows are skipped (and reported), the rest load.

    Args:
        path: A .csv, .tsv, .jsonl/.ndjson, .json (array of objects), .parquet or .xlsx/.xlsm file.
        mapping: Column mapping; ``None`` means columns are named like Record fields, kind "case",
            encoding detected.

    Returns:
        The records, skipped rows and warnings of this file. Within the file a later row with
        the same id replaces the earlier one, with a warning.

    Raises:
        LoaderError: the file is missing, has an unsupported extension, cannot be decoded or
            parsed at all, or lacks a mapped column.
    """
    path = Path(path)
    mapping = mapping or Mapping()
    source = str(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        if path.suffix.lower() == ".xls":
            raise LoaderError(f"{source}: expected .xlsx, got .xls (Excel 97-2003), which is not supported",
                              hint="open it in Excel and save as .xlsx or CSV")
        raise LoaderError(f"{source}: expected one of {', '.join(TABLE_SUFFIXES)}, got '{path.suffix}'")
    if not path.is_file():
        raise LoaderError(f"{source}: file not found")
    table = reader(path, mapping, source)
    result = LoadResult(files=[source], warnings=table.warnings + mapping.check_columns(table.columns, source))
    skipped = list(table.skipped)
    kept: dict[str, tuple[int, Record]] = {}
    duplicates: list[str] = []
    for number, record in mapped_rows(table.rows, mapping, source, skipped):
        if record.id in kept:
            duplicates.append(f"{record.id!r} (rows {kept[record.id][0]} and {number})")
        kept[record.id] = (number, record)
    if duplicates:
        result.warnings.append(duplicates_warning(source, duplicates))
    result.records = [record for _, record in kept.values()]
    result.skipped = sorted(skipped, key=lambda s: s.row or 0)
    return result


def mapped_rows(rows: Iterable[tuple[int, dict[str, Any]]], mapping: Mapping, source: str,
                skipped: list[SkippedRow]) -> Iterator[tuple[int, Record]]:
    """(row number, record) for each row that maps to a valid record; the others are added to
    ``skipped``, blank spreadsheet rows left out."""
    for number, row in rows:
        if all(clean_cell(v) in (None, []) for v in row.values()):
            continue  # blank spreadsheet row
        try:
            yield number, mapping.to_record(row)
        except InvalidRecord as exc:
            skipped.append(SkippedRow(source, number, exc.field, exc.message))


def duplicates_warning(source: str, duplicates: list[str]) -> str:
    shown = ", ".join(duplicates[:5]) + (f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
    return f"{source}: duplicate ids, the later row kept: {shown}"


def _read_delimited(path: Path, mapping: Mapping, source: str, delimiter: str | None = None) -> _Table:
    text, warnings = _decode(path, mapping, source)
    table = _Table(warnings=warnings)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _sniff_delimiter(text))
    table.rows = list(delimited_rows(reader, table, source))
    return table


def delimited_rows(reader, table: _Table, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a ``csv.reader``, header first: sets ``table.columns``, adds rows with too
    many cells to ``table.skipped``."""
    try:
        header = next(reader, None)
        if header is None:
            table.warnings.append(f"{source}: empty file, no header row")
            return
        table.columns = _unique_columns([h.strip() for h in header], source, table.warnings)
        for number, cells in enumerate(reader, start=2):
            extra = [c for c in cells[len(header):] if c.strip()]
            if extra:
                table.skipped.append(SkippedRow(
                    source, number, None, f"expected at most {len(header)} cells (as in the header), got {len(cells)}"
                ))
                continue
            row = {}
            for col, cell in zip(table.columns, cells):
                if col and col not in row:
                    row[col] = cell
            yield number, row
    except csv.Error as exc:
        raise LoaderError(f"{source} line {reader.line_num}: expected CSV, got {exc}") from None


def _read_jsonl(path: Path, mapping: Mapping, source: str) -> _Table:
    text, warnings = _decode(path, mapping, source)
    table = _Table(warnings=warnings)
    # not splitlines: U+2028 may sit inside a string
    table.rows = list(jsonl_rows(enumerate(text.split("\n"), start=1), table, source))
    return table


def jsonl_rows(lines: Iterable[tuple[int, str]], table: _Table, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of numbered JSONL lines; a line that is not a JSON object goes to
    ``table.skipped``, each new key to ``table.columns``."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"expected a JSON object, got invalid JSON ({exc.msg}, column {exc.colno})"
            table.skipped.append(SkippedRow(source, number, None, problem))
            continue
        except (ValueError, RecursionError) as exc:  # a number over 4,300 digits, nesting too deep
            table.skipped.append(SkippedRow(source, number, None, f"expected a JSON object, got unreadable JSON ({exc})"))
            continue
        if add_object(table, number, item, source):
            yield number, item


def _read_json(path: Path, mapping: Mapping, source: str) -> _Table:
    text, warnings = _decode(path, mapping, source)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoaderError(f"{source}: expected JSON, got {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # a number over 4,300 digits, nesting too deep
        raise LoaderError(f"{source}: expected JSON, got unreadable JSON ({exc})") from None
    if not isinstance(items, list):
        raise LoaderError(f"{source}: expected a JSON array of objects, got {type(items).__name__}",
                          hint="use .jsonl for one object per line")
    table = _Table(warnings=warnings)
    table.rows = [(number, item) for number, item in enumerate(items, start=1)
                  if add_object(table, number, item, source)]
    return table


def _read_parquet(path: Path, mapping: Mapping, source: str) -> _Table:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise LoaderError(f"{source}: expected a Parquet file, got an unreadable one ({exc})") from None
    return _from_frame(frame, [])


def _read_excel(path: Path, mapping: Mapping, source: str) -> _Table:
    shape = sheet_shape(path, source)
    return _Table(columns=shape.columns, rows=list(excel_rows(path, source, shape)),
                  warnings=sheet_warnings(source, shape))


def sheet_warnings(source: str, shape: SheetShape) -> list[str]:
    if len(shape.sheets) < 2:
        return []
    first, *others = shape.sheets
    return [f"{source}: read only the first sheet {first!r}; ignored sheets: {', '.join(others)}"]


def _from_frame(frame: pd.DataFrame, warnings: list[str]) -> _Table:
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    rows = [(i + 2, row) for i, row in enumerate(frame.to_dict("records"))]  # header is row 1
    return _Table(columns=columns, rows=rows, warnings=warnings)


def add_object(table: _Table, number: int, item: Any, source: str) -> bool:
    """Note ``item``'s keys among the columns; False (and a skipped row) when it is no object."""
    if not isinstance(item, dict):
        table.skipped.append(SkippedRow(source, number, None, f"expected a JSON object, got {type(item).__name__}"))
        return False
    for key in item:
        if key not in table.columns:
            table.columns.append(key)
    return True


def _decode(path: Path, mapping: Mapping, source: str) -> tuple[str, list[str]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read file ({exc.strerror})") from None
    decoded = decode_bytes(data, mapping.encoding, source=source, hint=ENCODING_HINT)
    return decoded.text, [detected_warning(source, decoded.encoding)] if decoded.detected else []


def detected_warning(source: str, encoding: str) -> str:
    return f"{source}: not UTF-8; decoded as {encoding} (detected; {ENCODING_HINT} to override)"


def _sniff_delimiter(text: str) -> str:
    """The delimiter that occurs most in the header line; comma on a tie (the usual export). The
    line ends at a CR as well as a LF, as the csv reader's and a streamed read's lines do."""
    header = text.split("\n", 1)[0].split("\r", 1)[0]
    return max(_DELIMITERS, key=lambda d: (header.count(d), d == ","))


def _unique_columns(header: list[str], source: str, warnings: list[str]) -> list[str]:
    """Return ``header`` unchanged, adding a warning for names that occur more than once."""
    counts = Counter(c for c in header if c)
    dupes = [name for name, n in counts.items() if n > 1]
    if dupes:
        warnings.append(f"{source}: duplicate column names {', '.join(dupes)}; the first of each is used")
    return header


_Reader = Callable[[Path, Mapping, str], _Table]
_READERS: dict[str, _Reader] = {
    ".csv": _read_delimited,
    ".tsv": lambda p, m, s: _read_delimited(p, m, s, "\t"),
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
    ".xlsx": _read_excel,
    ".xlsm": _read_excel,
}
TABLE_SUFFIXES: tuple[str, ...] = tuple(_READERS)
