"""What a load returns: the records that validated, the rows that did not, and warnings.

A load never stops at the first bad row: an export of 50,000 tickets with three malformed rows
should index 49,997 and tell the user exactly which three were left out and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indexing.records import Record


@dataclass(frozen=True)
class SkippedRow:
    """One input row (or a whole file) that was left out.

    Attributes:
        file: The file it came from, as given to the loader.
        row: Where in the file, 1-based as a user would look for it: the spreadsheet row for
            CSV/TSV/XLSX/Parquet (the header is row 1, so the first data row is 2), the line
            number for JSONL, the position in the array for JSON, the section number for an SOP
            section. ``None`` when the whole file was skipped.
        field: The record field at fault (e.g. ``"created"``), or ``None`` if it is not one field.
        message: What was expected and what was found.
    """

    file: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where}: {self.message}"


@dataclass
class LoadResult:
    """Records loaded from one or more files, plus what was skipped and why.

    Attributes:
        records: Valid records, in file order; within a file a later duplicate id replaces the
            earlier one (and a warning says so).
        skipped: Rows and files that were left out.
        warnings: Things the user should look at that did not cost a record (duplicate ids,
            ignored columns, a guessed encoding...).
        files: The files that were read (wholly skipped files are in ``skipped`` instead).
        documents: SOP documents read whole from their files: doc_id -> the ids of all its
            sections, skipped ones included. A section stored earlier under that doc_id and not
            named here is no longer in the document (see ``CaselinkService.build``).
    """

    records: list[Record] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    documents: dict[str, set[str]] = field(default_factory=dict)

    def merge_documents(self, other: "LoadResult") -> None:
        """Add ``other``'s documents; a doc_id read from two files keeps the sections of both
        (both files' records are loaded, the later file's winning per id)."""
        for doc_id, ids in other.documents.items():
            self.documents.setdefault(doc_id, set()).update(ids)

    def summary(self, loaded: int | None = None) -> str:
        """One line for the CLI, e.g. ``loaded 312 records from 3 files; skipped 2 rows (see below)``;
        ``loaded`` counts records that were streamed rather than kept in ``records``."""
        n = len(self.records) if loaded is None else loaded
        text = f"loaded {_count(n, 'record')} from {_count(len(self.files), 'file')}"
        rows = sum(1 for s in self.skipped if s.row is not None)
        files = len(self.skipped) - rows
        skipped = [_count(n, noun) for n, noun in ((rows, "row"), (files, "file")) if n]
        if skipped:
            text += "; skipped " + " and ".join(skipped)
        if self.warnings:
            text += f"; {_count(len(self.warnings), 'warning')}"
        if skipped or self.warnings:
            text += " (see below)"
        return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
