"""Table exports read a row at a time: a million-row export is never held whole.

:func:`stream_table` reads a ``.jsonl``/``.ndjson``/``.json``/``.csv``/``.tsv`` file twice. The first pass
checks what :func:`~indexing.loaders.tabular.load_table` would refuse the whole file for (bytes
the encoding cannot decode, a mapped column the file lacks) and counts the rows, holding
nothing; so a file that cannot be loaded raises before a single record is stored, as it always
did. The second pass, :meth:`TableStream.records`, yields the records one by one, skipping and
reporting bad rows exactly as ``load_table`` does. The text is decoded as it is read: in the
encoding the mapping names, or under ``encoding = "auto"`` in the one a BOM names or else the one
:func:`~indexing.loaders.encoding.decode_bytes` detects on a bounded sample of the file
(:func:`~indexing.loaders.encoding.detection_sample`, read in blocks); the first pass then confirms that the
whole file decodes, and names the offset and line where it does not. A ``.parquet`` file is read
a row group batch at a time (pyarrow's ``iter_batches``, each batch converted as
``pandas.read_parquet`` converts the whole file); its row count and columns come from its footer.
An ``.xlsx``/``.xlsm`` workbook's first sheet is read a row at a time by openpyxl in read-only
mode, twice likewise (``excel``); a ``.json`` array an element at a time (``json_array``). Other
files (SOP documents, a .json file that holds no array, UTF-16/32 text without a BOM) are loaded
whole as before: ``stream_table`` returns None.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.encoding import (ascii_compatible, bom_encoding, decode_bytes, detection_sample,
                                       locate_undecodable, undecodable)
from indexing.loaders.excel import SheetShape, excel_rows, sheet_shape
from indexing.loaders.json_array import NotAnArray, json_array_items
from indexing.loaders.mapping import Mapping
from indexing.loaders.result import LoadResult
from indexing.loaders.tabular import (ENCODING_HINT, _sniff_delimiter, _Table, add_object, delimited_rows,
                                      detected_warning, duplicates_warning, jsonl_rows, mapped_rows, sheet_warnings)
from indexing.records import Record

STREAMED_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".xlsx", ".xlsm")
PARQUET_BATCH = 1000  # rows converted to Python at a time
_UTF8 = ("utf-8", "utf8", "utf-8-sig")


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
    delimiter: str | None  # of a CSV/TSV file; None for the other kinds
    result: LoadResult
    loaded: int = 0
    encoding: str = "utf-8-sig"  # of a text file
    parquet: bool = False
    sampled: int | None = None  # bytes ``auto`` chose the encoding on (None: named or a BOM)
    sheet: SheetShape | None = None  # of a workbook
    array: bool = False  # a JSON array

    def records(self) -> Iterator[Record]:
        """Every valid record in file order; a later row with an id seen before is yielded too
        (it replaces the earlier one when stored) and named in the duplicates warning."""
        source = str(self.path)
        table, skipped = _Table(), []
        seen: dict[str, int] = {}
        duplicates: list[str] = []
        for number, record in mapped_rows(self._raw_rows(table, source), self.mapping, source, skipped):
            if record.id in seen:
                duplicates.append(f"{record.id!r} (rows {seen[record.id]} and {number})")
            seen[record.id] = number
            self.loaded = len(seen)  # distinct ids, as load_table counts them
            yield record
        self.result.warnings += table.warnings
        if duplicates:
            self.result.warnings.append(duplicates_warning(source, duplicates))
        self.result.skipped = sorted(table.skipped + skipped, key=lambda s: s.row or 0)

    def _raw_rows(self, table: _Table, source: str) -> Iterator[tuple[int, dict]]:
        if self.parquet:
            yield from parquet_rows(self.path, table)
            return
        if self.sheet is not None:
            yield from excel_rows(self.path, source, self.sheet)
            return
        try:
            with self.path.open(encoding=self.encoding, newline="" if self.delimiter else "\n") as fh:
                if self.delimiter:
                    yield from delimited_rows(csv.reader(fh, delimiter=self.delimiter), table, source)
                elif self.array:
                    yield from ((n, item) for n, item in json_array_items(fh, source)
                                if add_object(table, n, item, source))
                else:  # lines split at \n only, as load_table splits them (U+2028 may sit inside a string)
                    yield from jsonl_rows(enumerate((line.rstrip("\n") for line in fh), start=1), table, source)
        except UnicodeDecodeError:  # the file changed since the first pass checked it
            raise _undecodable(self.path, source, self.encoding, self.sampled) from None

    def summary(self) -> str:
        """:meth:`LoadResult.summary`, once :meth:`records` is exhausted."""
        return self.result.summary(loaded=self.loaded)


def stream_table(path: str | Path, mapping: Mapping | None = None) -> TableStream | None:
    """A :class:`TableStream` for a CSV/TSV/JSONL file, a JSON array, a workbook or a Parquet file;
    None when the file is to be loaded whole (:func:`~indexing.loaders.load_path`, which also
    gives the error for a file it cannot read).

    Raises:
        LoaderError: the file cannot be read, decoded or parsed to its end, ``auto`` cannot tell
            its encoding, or it lacks a column the mapping names (before any record is yielded,
            so nothing is stored).
    """
    path = Path(path)
    mapping = mapping or Mapping()
    if path.suffix.lower() not in STREAMED_SUFFIXES or not path.is_file():
        return None
    source = str(path)
    if path.suffix.lower() == ".parquet":
        footer = _parquet_footer(path)
        if footer is None:
            return None
        rows, columns = footer
        warnings = mapping.check_columns(columns, source)
        return TableStream(path, mapping, rows, None, LoadResult(files=[source], warnings=warnings), parquet=True)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        sheet = sheet_shape(path, source)  # raises for a workbook that cannot be read to its end
        warnings = sheet_warnings(source, sheet) + mapping.check_columns(sheet.columns, source)
        return TableStream(path, mapping, sheet.rows, None, LoadResult(files=[source], warnings=warnings),
                           sheet=sheet)
    chosen = _text_encoding(path, mapping, source)
    if chosen is None:
        return None
    encoding, warnings, sampled = chosen
    first = _first_pass(path, source, encoding, sampled)
    if first is None:
        return None
    rows, columns, delimiter = first
    warnings += mapping.check_columns(columns, source)  # raises for a missing mapped column
    return TableStream(path, mapping, rows, delimiter, LoadResult(files=[source], warnings=warnings),
                       encoding=encoding, sampled=sampled, array=path.suffix.lower() == ".json")


def _text_encoding(path: Path, mapping: Mapping, source: str) -> tuple[str, list[str], int | None] | None:
    """(codec to read ``path`` with, warnings, size of the sample ``auto`` judged or None), or None
    for a file to load whole (``auto`` found an encoding in which a \\n byte is no line end).

    Raises:
        LoaderError: the file cannot be read, or ``auto`` cannot tell its encoding (the error
            ``decode_bytes`` gives the whole file; for a file under ``SAMPLE_BYTES`` the very same).
    """
    named = mapping.encoding  # the mapping checked that a named encoding is a codec Python has
    if named.lower() != "auto":
        return ("utf-8-sig" if named.lower().replace("_", "-") in _UTF8 else named), [], None
    try:
        with path.open("rb") as fh:
            bom = bom_encoding(fh.read(4))
            if bom is not None:
                return bom, [], None
            fh.seek(0)
            sample = detection_sample(fh)
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read file ({exc.strerror})") from None
    decoded = decode_bytes(sample, "auto", source=source, hint=ENCODING_HINT)
    if not ascii_compatible(decoded.encoding):
        return None
    warnings = [detected_warning(source, decoded.encoding)] if decoded.detected else []
    return decoded.encoding, warnings, len(sample)


def _undecodable(path: Path, source: str, encoding: str, sampled: int | None) -> LoaderError:
    where = locate_undecodable(path, encoding)
    if where is None:  # decodes now: it changed under us
        return LoaderError(f"{source}: changed while it was read; index it again", field="encoding")
    return undecodable(source, encoding, *where, detected_on=sampled)


def _parquet_footer(path: Path) -> tuple[int, list[str]] | None:
    """(rows, columns as pandas.read_parquet names them) from the file's footer, reading no data;
    None for a file pyarrow cannot open (load_table then explains)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        columns = [str(c) for c in pf.schema_arrow.empty_table().to_pandas().columns]
        return pf.metadata.num_rows, columns
    except Exception:  # noqa: BLE001 - pyarrow raises several unrelated types for a bad file
        return None


def parquet_rows(path: Path, table: _Table) -> Iterator[tuple[int, dict]]:
    """(row number, column -> cell) of a Parquet file, ``PARQUET_BATCH`` rows converted at a
    time as ``pandas.read_parquet`` converts the whole file (row 1 is the header, as in a sheet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    number = 2
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
        frame = pa.Table.from_batches([batch], schema=pf.schema_arrow).to_pandas()
        frame.columns = table.columns = [str(c) for c in frame.columns]
        for row in frame.to_dict("records"):
            yield number, row
            number += 1


def _first_pass(path: Path, source: str, encoding: str, sampled: int | None,
                ) -> tuple[int, list[str], str | None] | None:
    """(data rows, columns, CSV delimiter), or None for a .json file that holds no array (loaded
    whole: load_table explains). Holds one row at a time; raises the LoaderError that load_table
    would for a file the csv or json module cannot read, and for bytes ``encoding`` cannot decode
    (naming the offset and line)."""
    delimited = path.suffix.lower() in (".csv", ".tsv")
    try:
        fh = path.open(encoding=encoding, newline="" if delimited else "\n")
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read file ({exc.strerror})") from None
    rows, columns, delimiter = 0, [], None
    keys: dict[str, None] = {}  # of the JSON objects, in order
    try:
        with fh:
            if delimited:
                first = fh.readline()
                delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(first)
                table = _Table()
                reader = csv.reader(itertools.chain([first], fh), delimiter=delimiter)
                rows = sum(1 for _ in delimited_rows(reader, table, source))  # raises LoaderError like load_table
                columns = table.columns
            elif path.suffix.lower() == ".json":
                try:
                    for _, item in json_array_items(fh, source):  # raises LoaderError like load_table
                        rows += 1
                        if isinstance(item, dict):
                            keys.update(dict.fromkeys(item))
                except NotAnArray:
                    return None
                columns = list(keys)
            else:
                for line in fh:
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
        raise _undecodable(path, source, encoding, sampled) from None
    return rows, columns, delimiter
