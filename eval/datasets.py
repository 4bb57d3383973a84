"""Evaluation inputs: records to rank and labeled pairs that say which records are related.

Two record forms are accepted, in JSONL or CSV:

- the simple benchmark form ``{"id", "text"[, "title", "kind"]}`` (other keys, such as the
  benchmarks' ``qtype`` or ``component``, are ignored);
- the full caselink :class:`indexing.records.Record` form, recognised by ``kind`` being one of
  ``case``, ``problem`` or ``sop``; it is validated with :func:`indexing.records.parse_record`.

Pairs are TSV or CSV with the header ``id_a, id_b, label`` and an optional ``grade`` column.
Every error names the file, the line and the field, e.g.
``pairs.tsv:12: field 'label': expected 0 or 1, got 'yes'``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from caselink.errors import InvalidRecord, LoaderError
from indexing.records import KINDS, Record, parse_record

__all__ = ["EvalRecord", "Pair", "from_record", "load_records", "load_pairs", "load_benchmark"]


@dataclass(frozen=True)
class EvalRecord:
    """One record as the harness sees it: an id, the text to match and an optional kind.

    ``kind`` is ``"question"`` / ``"section"`` on question-to-section sets (see
    :mod:`eval.protocol`), a caselink kind (``case``, ``problem``, ``sop``) for caselink
    records, or ``None``.
    """

    id: str
    text: str
    title: str = ""
    kind: str | None = None

    def full_text(self) -> str:
        r"""Title and text joined by a newline; the title is not repeated when the text opens with it.

        The benchmarks' English sets store the title as the text's first line already; adding it
        again would double its weight and move the TF-IDF reference off the README figures.

        >>> EvalRecord("a", "No signal. Check the cable.", title="No signal").full_text()
        'No signal. Check the cable.'
        >>> EvalRecord("b", "body", title="Title").full_text()
        'Title\nbody'
        """
        title = self.title.strip()
        if not title or self.text.lstrip().startswith(title):
            return self.text
        return f"{title}\n{self.text}"


class Pair(NamedTuple):
    """A labeled pair: ``label`` 1 = related, 0 = labeled as not related (a hard negative)."""

    id_a: str
    id_b: str
    label: int
    grade: float | None = None


def from_record(record: Record) -> EvalRecord:
    """Map a caselink record: title and text, kind kept as-is.

    SOP sections often have no title of their own; their section heading stands in for it.
    """
    title = record.title or (record.section if record.kind == "sop" else "")
    return EvalRecord(id=record.id, text=record.text, title=title, kind=record.kind)


def _open_text(path: Path):
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise LoaderError(f"{path}: cannot open: {exc.strerror or exc}", field="path") from None


def _simple_record(row: dict, where: str) -> EvalRecord:
    def text_field(name: str, required: bool) -> str:
        value = row.get(name)
        if value is None:
            if required:
                raise InvalidRecord(f"{where}: field '{name}': missing", field=name)
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
            value = str(value)
        if not isinstance(value, str):
            raise InvalidRecord(
                f"{where}: field '{name}': expected a string, got {type(value).__name__}", field=name
            )
        return value

    rid = text_field("id", True).strip()
    if not rid:
        raise InvalidRecord(f"{where}: field 'id': empty", field="id")
    kind = row.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise InvalidRecord(f"{where}: field 'kind': expected a string, got {type(kind).__name__}", field="kind")
    return EvalRecord(
        id=rid, text=text_field("text", True), title=text_field("title", False), kind=(kind or None)
    )


def _to_eval_record(row: dict, where: str) -> EvalRecord:
    if row.get("kind") in KINDS:
        return from_record(parse_record(row, where=where))
    return _simple_record(row, where)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoaderError(f"{path}:{lineno}: invalid JSON: {exc.msg}", field="line") from None
            if not isinstance(row, dict):
                raise LoaderError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}", field="line"
                )
            yield lineno, row


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise LoaderError(f"{path}:1: empty file, expected a header row", field="header")
        for row in reader:
            if None in row:
                raise LoaderError(
                    f"{path}:{reader.line_num}: expected {len(reader.fieldnames)} columns, got more",
                    field="line",
                )
            # Empty cells mean "not given" (an empty date cell must not fail validation).
            yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix == ".csv":
        return _csv_rows(path, ",")
    if suffix == ".tsv":
        return _csv_rows(path, "\t")
    raise LoaderError(f"{path}: expected a .jsonl, .csv or .tsv file, got '{suffix or 'no suffix'}'", field="path")


def load_records(path: str | Path) -> list[EvalRecord]:
    """Read records from JSONL or CSV, in file order.

    Raises:
        LoaderError: the file cannot be read, a line is not valid JSON, or it is empty.
        InvalidRecord: a row misses ``id``/``text``, has a field of the wrong type, fails
            caselink Record validation, or repeats an id (the message names file, line, field).

    Example:
        >>> recs = load_records("records.jsonl")  # doctest: +SKIP
        >>> recs[0].id, recs[0].kind  # doctest: +SKIP
        ('en_emanual_tv_remote:section_0', 'section')
    """
    path = Path(path)
    records: list[EvalRecord] = []
    seen: dict[str, int] = {}
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        rec = _to_eval_record(row, where)
        if rec.id in seen:
            raise InvalidRecord(f"{where}: field 'id': duplicate of line {seen[rec.id]} ('{rec.id}')", field="id")
        seen[rec.id] = lineno
        records.append(rec)
    if not records:
        raise LoaderError(f"{path}: no records", field="path")
    return records


def _parse_label(value: str, where: str) -> int:
    text = value.strip()
    if text in ("1", "0"):
        return int(text)
    raise InvalidRecord(f"{where}: field 'label': expected 0 or 1, got '{value}'", field="label")


def _parse_grade(value: str | None, where: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidRecord(f"{where}: field 'grade': expected a number, got '{value}'", field="grade") from None


def load_pairs(path: str | Path) -> list[Pair]:
    """Read labeled pairs from TSV (``.tsv``) or CSV (any other suffix), in file order.

    Raises:
        LoaderError: the file cannot be read or the header lacks ``id_a``, ``id_b`` or ``label``.
        InvalidRecord: an empty id or a label other than 0/1 (message names file, line, field).
    """
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    pairs: list[Pair] = []
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [c for c in ("id_a", "id_b", "label") if c not in header]
        if missing:
            raise LoaderError(
                f"{path}:1: header: expected columns id_a, id_b, label, missing {', '.join(missing)} "
                f"(got {', '.join(header) or 'nothing'})",
                field=missing[0],
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            ids = []
            for name in ("id_a", "id_b"):
                value = (row.get(name) or "").strip()
                if not value:
                    raise InvalidRecord(f"{where}: field '{name}': empty", field=name)
                ids.append(value)
            label = _parse_label(row.get("label") or "", where)
            pairs.append(Pair(ids[0], ids[1], label, _parse_grade(row.get("grade"), where)))
    return pairs


def load_benchmark(folder: str | Path) -> tuple[list[EvalRecord], list[Pair]]:
    """Load ``records.jsonl`` and ``pairs.tsv`` from one benchmark folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoaderError(f"{folder}: not a benchmark folder (expected records.jsonl and pairs.tsv)", field="path")
    return load_records(folder / "records.jsonl"), load_pairs(folder / "pairs.tsv")
