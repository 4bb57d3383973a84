"""Read the first sheet of an .xlsx/.xlsm workbook a row at a time.

openpyxl in read-only mode parses the sheet's XML as it is iterated, so a 200,000-row export is
never a DataFrame (only the workbook's shared strings, which openpyxl reads up front, are held).
The cells come out exactly as ``pandas.read_excel(dtype=str, na_filter=False)`` with the openpyxl
engine gave them, which the loaders used before (tests compare the two): formulas as their cached
values, an empty cell ``""``, an error cell (``#N/A``) NaN, an integral number without ``.0``,
dates and times as ``str()`` of the datetime (``2024-01-05 00:00:00``, which the date parser
reads), ``True``/``False``; header cells that are empty become ``""`` and a repeated name gets
``.1``, ``.2`` as pandas names them. Row numbers are the sheet's own (the header is row 1), a blank
row included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caselink.errors import LoaderError


@dataclass(frozen=True)
class SheetShape:
    """What a first pass over the first sheet learns: its width (the last column holding
    anything, as pandas pads rows to it), its columns (named as the loaders named pandas'
    columns), its data rows (after the header, up to the last row holding anything) and the
    workbook's sheet names."""

    width: int
    columns: list[str]
    rows: int
    sheets: list[str]


def sheet_shape(path: Path, source: str) -> SheetShape:
    """Read the whole first sheet once, holding one row at a time (and the header).

    Raises:
        LoaderError: the workbook cannot be opened or its first sheet cannot be parsed.
    """
    width = last = 0
    header: list[Any] = []
    with _Sheet(path, source) as sheet:
        for number, values in enumerate(sheet.rows(), start=1):
            if number == 1:
                header = values
            if values:
                width, last = max(width, len(values)), number
        names = _dedupe([_header_name(cell, i) for i, cell in enumerate(_padded(header, width))])
        return SheetShape(width, [_column(name) for name in names], max(last - 1, 0), sheet.names)


def excel_rows(path: Path, source: str, shape: SheetShape) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, column -> cell) for each data row up to the last that holds anything, blank
    rows included.

    Raises:
        LoaderError: the sheet cannot be parsed (the first pass, :func:`sheet_shape`, found that
            already unless the file changed since).
    """
    with _Sheet(path, source) as sheet:
        for number, values in enumerate(sheet.rows(), start=1):
            if number > shape.rows + 1:
                break
            if number > 1:
                yield number, dict(zip(shape.columns, (_text(v) for v in _padded(values, shape.width))))


def _padded(values: list[Any], width: int) -> list[Any]:
    return values + [""] * (width - len(values))


class _Sheet:
    """The workbook opened read-only (cached formula values), its first sheet's rows as pandas'
    openpyxl reader converts them (trailing empty cells trimmed); every openpyxl or zip error
    becomes the LoaderError the loaders always gave for an unreadable workbook."""

    def __init__(self, path: Path, source: str) -> None:
        self.path, self.source = path, source
        self.names: list[str] = []

    def __enter__(self) -> "_Sheet":
        import openpyxl

        try:
            self.book = openpyxl.load_workbook(self.path, read_only=True, data_only=True, keep_links=False)
            self.names = list(self.book.sheetnames)
            self.sheet = self.book[self.names[0]]
            self.sheet.reset_dimensions()  # declared dimensions can be wrong (pandas GH 39486)
        except Exception as exc:  # noqa: BLE001 - openpyxl/zipfile raise many types for a broken workbook
            raise self.unreadable(exc) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.book.close()

    def unreadable(self, exc: Exception) -> LoaderError:
        return LoaderError(f"{self.source}: expected an .xlsx workbook, got an unreadable one ({exc})")

    def rows(self) -> Iterator[list[Any]]:
        try:
            for row in self.sheet.rows:
                values = [_convert(cell) for cell in row]
                while values and values[-1] == "":
                    values.pop()
                yield values
        except Exception as exc:  # noqa: BLE001 - a sheet whose XML breaks off half-way
            raise self.unreadable(exc) from None


def _convert(cell: Any) -> Any:
    """pandas' ``OpenpyxlReader._convert_cell``."""
    if cell.value is None:
        return ""
    if cell.data_type == "e":
        return math.nan
    if cell.data_type == "n":
        value = int(cell.value)
        return value if value == cell.value else float(cell.value)
    return cell.value


def _text(value: Any) -> Any:
    """``dtype=str`` without an NA filter: every cell its ``str()``, an error cell NaN."""
    return value if isinstance(value, float) and math.isnan(value) else str(value)


def _header_name(value: Any, position: int) -> str:
    """pandas' name for a header cell: ``Unnamed: i`` for an empty one, else its text."""
    return f"Unnamed: {position}" if value == "" else str(value)


def _dedupe(names: list[str]) -> list[str]:
    """pandas' ``dedup_names``: a repeated name becomes ``name.1``, ``name.2``..."""
    counts: dict[str, int] = {}
    out = []
    for name in names:
        count = counts.get(name, 0)
        while count > 0:
            counts[name] = count + 1
            name = f"{name}.{count}"
            count = counts.get(name, 0)
        out.append(name)
        counts[name] = count + 1
    return out


def _column(name: str) -> str:
    """The loaders' name for pandas' column: an unnamed one is "", the rest stripped."""
    return "" if name.startswith("Unnamed: ") else name.strip()
