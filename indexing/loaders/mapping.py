"""Column mapping: which column of an export feeds which Record field.

Every ticketing system names its export columns differently (and in Chinese), so the mapping is
a small TOML file kept next to the export rather than code. Format::

    kind = "case"              # kind for rows without a kind column: case, problem or sop
    encoding = "auto"          # or gbk, big5, utf-8 ...; auto = detect (BOM honoured) and refuse
                               # to guess when GBK and Big5 cannot be told apart
    date_format = ""           # optional strptime format, e.g. "%d/%m/%Y"; empty = ISO and
                               # year-first forms (2024/03/05, 2024-03-05 10:11, 2024年3月5日)
    list_separator = ","       # splits error_codes/links given in one cell; , ; ， ； 、 and
                               # newlines always split too

    [columns]                  # record field = source column name
    id = "工单号"
    title = "标题"
    text = ["现象", "补充说明"]  # several columns: non-empty cells joined with newlines
    error_codes = "报警代码"     # list fields: the cells' items are concatenated
    created = "创建时间"         # date fields: the first non-empty cell is used

    [attributes]               # the customer's own fields: attribute key = source column
    customer = "客户名称"
    site = "Fab"
    serial = "机台序列号"
    sw_version = ["软件版本", "补丁"]  # several columns: non-empty cells joined with a space

Columns named exactly like a Record field (``id``, ``title``, ``product`` ...) are taken as they
are unless that field is mapped to another column; an ``attributes`` column (a JSON object in
JSON/JSONL, or its JSON text in a CSV cell) gives attributes too, the mapped ones win on the
same key; all other columns are ignored (with a warning, so a typo in the mapping does not go
unnoticed). Every mapped column must exist in the file. Record fields: see
``indexing.records.Record``; attribute bounds: ``indexing.records.MAX_ATTRIBUTES`` and beside it.
"""

from __future__ import annotations

import codecs
import difflib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from caselink.errors import ConfigError, InvalidRecord, LoaderError
from indexing.loaders.values import DATE_FIELDS, LIST_FIELDS, as_date, as_list, as_text, clean_cell
from indexing.records import KINDS, MAX_ATTRIBUTES, Record, attribute_key_error, parse_record, require_content

RECORD_FIELDS: tuple[str, ...] = tuple(Record.model_fields)
_KEYS: tuple[str, ...] = ("kind", "encoding", "date_format", "list_separator", "columns", "attributes")


@dataclass(frozen=True)
class Mapping:
    """A validated column mapping (see the module docstring for the TOML form).

    Args:
        kind: Kind of rows that have no kind column (or an empty kind cell).
        encoding: Codec name for CSV/TSV/JSON text, or ``"auto"``.
        date_format: ``strptime`` format for date cells, or ``""`` for the built-in forms.
        list_separator: Extra separator for list cells.
        columns: Record field -> source columns (one or more).
        attributes: Attribute key -> source columns (one or more), the customer's own fields.

    Raises:
        ConfigError: a value is invalid (the error names the key).
    """

    kind: str = "case"
    encoding: str = "auto"
    date_format: str = ""
    list_separator: str = ","
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept {"id": "工单号"} as well as {"id": ("工单号",)} from code; a bare string would
        # otherwise be iterated character by character.
        for name in ("columns", "attributes"):
            value = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in getattr(self, name).items()}
            object.__setattr__(self, name, value)
        _check(self.kind, self.encoding, self.date_format, self.list_separator, self.columns, source="mapping",
               attributes=self.attributes)

    def to_record(self, row: dict[str, Any]) -> Record:
        """Build a Record from one raw row (column name -> cell value).

        Raises:
            InvalidRecord: a field is missing or invalid; the message names the field, its source
                column and the offending value, without the row's location (the caller adds it).
        """
        if self._value("id", row) is None:  # checked first: a row without id is reported as such
            raise InvalidRecord(f"field 'id'{self._column_note('id')}: expected an id, got an empty cell", field="id")
        data = {name: value for name in RECORD_FIELDS if (value := self._value(name, row)) is not None}
        data.setdefault("kind", self.kind)
        mapped = {key: " ".join(as_text(c) for c in cells) for key, cols in self.attributes.items()
                  if (cells := [c for c in (clean_cell(row.get(col)) for col in cols) if c not in (None, [])])}
        if mapped:
            data["attributes"] = {**data.get("attributes", {}), **mapped}
        try:
            record = parse_record(data, where="record")
        except InvalidRecord as exc:
            name = exc.field or "record"
            problem = exc.message.removeprefix(f"record: field '{name}': ")
            top = name.split(".")[0]
            got = _describe(data.get(top)) if top in data else "got nothing"
            raise InvalidRecord(f"field '{name}'{self._column_note(top)}: {problem}, {got}", field=name) from None
        try:
            return require_content(record, where="record")
        except InvalidRecord as exc:
            problem = exc.message.removeprefix("record: field 'text': ")
            raise InvalidRecord(f"field 'text'{self._column_note('text')}: {problem}", field="text") from None

    def check_columns(self, columns: Iterable[str], source: str) -> list[str]:
        """Check a file's columns against the mapping before its rows are read.

        Returns:
            Warnings (columns that feed no field).

        Raises:
            LoaderError: a mapped column is not in the file.
        """
        present = [c for c in dict.fromkeys(columns) if c]
        wanted = {**self.columns, **{f"attributes.{k}": cols for k, cols in self.attributes.items()}}
        missing = [(name, f"'{col}' (for {name})") for name, cols in wanted.items() for col in cols
                   if col not in present]
        if missing:
            table = "columns" if any(name in self.columns for name, _ in missing) else "attributes"
            raise LoaderError(
                f"{source}: expected column {', '.join(m for _, m in missing)}, got columns "
                f"{', '.join(present) or '(none)'}", field=table, hint=f"fix [{table}] in the mapping TOML")
        used = {col for cols in wanted.values() for col in cols}
        used |= {c for c in present if c in RECORD_FIELDS and c not in self.columns}
        ignored = [c for c in present if c not in used]
        return [f"{source}: ignored columns that feed no field: {', '.join(ignored)}"] if ignored else []

    def _value(self, name: str, row: dict[str, Any]) -> Any:
        """The value for field ``name`` from its source cells, or None when they are all empty."""
        sources = self.columns.get(name) or ((name,) if name in row else ())
        cells = [c for c in (clean_cell(row.get(col)) for col in sources) if c not in (None, [])]
        if not cells:
            return None
        if name in LIST_FIELDS:
            return [item for c in cells for item in as_list(c, self.list_separator)]
        if name in DATE_FIELDS:
            try:
                return as_date(cells[0], self.date_format)
            except ValueError as exc:
                raise InvalidRecord(f"field '{name}'{self._column_note(name)}: {exc}", field=name) from None
        if name == "kind":
            return as_text(cells[0]).lower()
        if name == "attributes":
            return _attributes_cell(sources, row)
        return "\n".join(as_text(c) for c in cells)

    def _column_note(self, name: str) -> str:
        cols = self.columns.get(name)
        if name == "attributes" and self.attributes:
            cols = tuple(c for cs in self.attributes.values() for c in cs)
        if not cols:
            return ""
        return f" (column {', '.join(repr(c) for c in cols)})"


def _attributes_cell(sources: Iterable[str], row: dict[str, Any]) -> Any:
    """An ``attributes`` column: an object (JSON rows) or its JSON text (a CSV cell), its values
    brought to text as any cell; anything else is handed on as it is, for the record to refuse."""
    for col in sources:
        raw = row.get(col)
        if isinstance(raw, str) and raw.strip().startswith("{"):
            try:
                raw = json.loads(raw)
            except ValueError:
                return raw
        if isinstance(raw, dict):
            out = {}
            for key, value in raw.items():
                cell = clean_cell(value)
                if cell not in (None, []):
                    out[key] = as_text(cell) if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                        else value  # a list, an object, true/false: the record says what is wrong
            return out
        if clean_cell(raw) not in (None, []):
            return raw
    return None


def load_mapping(path: str | Path) -> Mapping:
    """Read a mapping TOML file.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or holds an invalid mapping.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"mapping file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: expected a UTF-8 TOML mapping, got: {exc}") from None
    return mapping_from_dict(data, source=str(path))


def mapping_from_dict(data: dict[str, Any], *, source: str = "mapping") -> Mapping:
    """Build a Mapping from parsed TOML (or any dict of the same shape).

    Raises:
        ConfigError: an unknown key, an unknown record field under ``[columns]`` or a bad value.
    """
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"{source}: unknown key '{key}'; expected one of {', '.join(_KEYS)}", field=key)
    for key in ("kind", "encoding", "date_format", "list_separator"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{source}: {key}: expected a string, got {data[key]!r}", field=key)
    columns = _column_table(source, data, "columns", "a table [columns]")
    attributes = _column_table(source, data, "attributes", "a table [attributes] of key = column")
    settings: dict[str, Any] = {f.name: f.default for f in fields(Mapping) if f.name not in ("columns", "attributes")}
    settings.update({k: data[k] for k in settings if k in data})
    _check(**settings, columns=columns, source=source, attributes=attributes)  # here, so that errors name the file
    return Mapping(**settings, columns=columns, attributes=attributes)


def _column_table(source: str, data: dict[str, Any], table: str, shape: str) -> dict[str, tuple[str, ...]]:
    """``[columns]`` or ``[attributes]``: each name maps to one column name or a list of them.

    Raises:
        ConfigError: the table is not a table (``shape`` says what was expected), or an entry is
            not a non-empty column name or list of them (the error names ``table.name``).
    """
    raw = data.get(table, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {table}: expected {shape}, got {raw!r}", field=table)
    out: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        cols = [value] if isinstance(value, str) else value
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c.strip() for c in cols):
            raise ConfigError(
                f"{source}: {table}.{name}: expected a column name or a list of column names, got {value!r}",
                field=f"{table}.{name}",
            )
        out[name] = tuple(c.strip() for c in cols)
    return out


def _check(
    kind: str, encoding: str, date_format: str, list_separator: str, columns: dict[str, Any], *, source: str,
    attributes: dict[str, Any] | None = None,
) -> None:
    if kind not in KINDS:
        raise ConfigError(f"{source}: kind: expected one of {', '.join(KINDS)}, got {kind!r}", field="kind")
    if encoding.lower() != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(
                f"{source}: encoding: expected 'auto' or a codec name like gbk, big5, utf-8, got {encoding!r}",
                field="encoding",
            ) from None
    if date_format and "%" not in date_format:
        raise ConfigError(
            f"{source}: date_format: expected a strptime format like '%d/%m/%Y', got {date_format!r}",
            field="date_format",
        )
    if not list_separator:
        raise ConfigError(f"{source}: list_separator: expected a non-empty string, got ''", field="list_separator")
    for key in attributes or {}:
        if problem := attribute_key_error(key):
            raise ConfigError(f"{source}: attributes: {problem}", field=f"attributes.{key}")
    if len(attributes or {}) > MAX_ATTRIBUTES:
        raise ConfigError(f"{source}: attributes: {len(attributes)} keys, at most {MAX_ATTRIBUTES} are allowed",
                          field="attributes")
    for name in columns:
        if name == "attributes":
            raise ConfigError(f"{source}: columns: 'attributes' is a table of its own: map each key to its column "
                              "under [attributes] (customer = \"客户名称\")", field="columns.attributes")
        if name not in RECORD_FIELDS:
            close = difflib.get_close_matches(name, RECORD_FIELDS, n=1)
            raise ConfigError(
                f"{source}: columns: unknown record field '{name}'; expected one of {', '.join(RECORD_FIELDS)}",
                field=f"columns.{name}",
                hint=f"did you mean '{close[0]}'?" if close else None,
            )


def _describe(value: Any) -> str:
    if isinstance(value, str) and len(value) > 60:
        return f"got {len(value)} characters"
    if isinstance(value, list) and len(value) > 5:
        return f"got {len(value)} items"
    return f"got {value!r}"
