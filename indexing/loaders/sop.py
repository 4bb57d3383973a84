"""Load SOP documents: each section of a document becomes one Record of kind "sop".

Record fields per section: ``id`` = ``{doc_id}#{n}`` (n = 1-based position among the document's
sections that have text), ``doc_id`` (front matter, else the file name without extension),
``doc_title`` (front matter or the document's own title, else the file name), ``section`` (the
heading; "概述"/"Overview" for text before the first heading; empty when the document has no
headings), ``text`` (the section body), ``product``/``model``/``module`` (Markdown front
matter), and ``error_codes``: the front-matter codes followed by every code found in the
section's heading and text. ``title`` stays empty: the BM25 document builder and
``Record.display_title`` already combine doc_title and section, and a copy in ``title`` would
count the document title twice.

Error codes found in text match ``ERROR_CODE_PATTERN``: one capital letter, an optional hyphen
and 3-5 digits, not glued to other letters or digits: ``E1023``, ``W3001``, ``A-4410`` (also
inside Chinese text: "报警E1023后"), but not ``ISO9001``, ``HX-500`` or ``e1023``.

Formats: .md/.markdown (``sop_markdown``), .txt (``sop_plaintext``), .html/.htm (``sop_html``),
.pdf (``sop_pdf``), .docx (``sop_docx``).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from caselink.errors import InvalidRecord, LoaderError, UnsupportedFormat
from indexing.loaders.folders import files_under, load_files
from indexing.loaders.result import LoadResult, SkippedRow
from indexing.loaders.sop_docx import parse_docx
from indexing.loaders.sop_document import SopDocument, decode_text, read_bytes
from indexing.loaders.sop_html import declared_charset, parse_html
from indexing.loaders.sop_markdown import parse_markdown
from indexing.loaders.sop_pdf import parse_pdf
from indexing.loaders.sop_plaintext import parse_plaintext
from indexing.records import parse_record

ERROR_CODE_PATTERN = re.compile(r"(?<![A-Za-z0-9_-])[A-Z]-?\d{3,5}(?![A-Za-z0-9_])")
MAX_CODES = 100  # Record.error_codes holds at most this many


def load_sop_bytes(data: bytes, *, doc_id: str, suffix: str, encoding: str = "auto") -> LoadResult:
    """Load one SOP document sent as bytes (an upload), under ``doc_id``.

    Args:
        data: The file's content.
        doc_id: The document's id; front matter naming another doc_id is an error.
        suffix: The file type it would have on disk (``.md``, ``.pdf``, ...).
        encoding: As for :func:`load_sop_file`.

    Raises:
        LoaderError: as for :func:`load_sop_file`; messages name the ``document`` instead of a path.
    """
    if suffix.lower() not in SOP_SUFFIXES:
        raise UnsupportedFormat(f"document: expected one of {', '.join(SOP_SUFFIXES)}, got '{suffix}'", field="format")
    # The parsers (pypdf, python-docx, the text decoders) read files; a private folder keeps the
    # upload's name free of anything the client sent.
    with tempfile.TemporaryDirectory(prefix="caselink-doc-") as tmp:
        path = Path(tmp) / f"document{suffix.lower()}"
        path.write_bytes(data)
        doc = _parse(path, "document", encoding)
    if doc.doc_id and doc.doc_id != doc_id:
        raise LoaderError(f"document: its front matter says doc_id {doc.doc_id!r}, the request says {doc_id!r}",
                          field="doc_id", hint="send it to /v1/documents/" + doc.doc_id + " or fix the front matter")
    doc.doc_id, doc.title = doc_id, doc.title or doc_id
    return _to_records(doc, path, "document")


def load_sop_file(path: str | Path, *, encoding: str = "auto") -> LoadResult:
    """Load one SOP document, one Record per section.

    Args:
        path: A .md, .markdown, .txt, .html, .htm, .pdf or .docx file.
        encoding: For text formats (.md, .txt, .html): a codec name, or ``"auto"`` to detect
            (an HTML <meta charset> is honoured).

    Returns:
        The section records; a section that fails validation is a skipped row numbered by its
        section number.

    Raises:
        LoaderError: the file is missing, of an unsupported type, cannot be decoded or parsed,
            has an invalid doc_id, or contains no text.
    """
    path = Path(path)
    source = str(path)
    if path.suffix.lower() not in SOP_SUFFIXES:
        raise LoaderError(f"{source}: expected one of {', '.join(SOP_SUFFIXES)}, got '{path.suffix}'",
                          hint=".doc files must be saved as .docx" if path.suffix.lower() == ".doc" else None)
    if not path.is_file():
        raise LoaderError(f"{source}: file not found")
    doc = _parse(path, source, encoding)
    return _to_records(doc, path, source)


def load_sop_folder(path: str | Path, *, encoding: str = "auto") -> LoadResult:
    """Load every SOP file under a folder (recursively, in sorted path order).

    Hidden files and Office lock files (``~$x.docx``) are left out. A file that cannot be read
    becomes a skipped entry with ``row=None`` and the rest still load; so does a file whose
    doc_id an earlier file already used (the earlier document stays whole).

    Raises:
        LoaderError: ``path`` is not a folder.
    """
    folder = Path(path)
    if not folder.is_dir():
        got = "a file" if folder.exists() else "nothing"
        raise LoaderError(f"{folder}: expected a folder of SOP documents, got {got}")
    unique = UniqueDocIds()
    files = files_under(folder, SOP_SUFFIXES)
    return load_files(files, lambda file: unique(file, load_sop_file(file, encoding=encoding)))


class UniqueDocIds:
    """Refuses a second SOP file with a doc_id an earlier file used.

    Two files with one doc_id are most likely a front matter copied from another SOP; merging
    their sections by id would mix two documents, so the later file is refused whole instead.
    """

    def __init__(self) -> None:
        self._owners: dict[str, Path] = {}  # doc_id -> file

    def __call__(self, file: Path, result: LoadResult) -> LoadResult:
        """Return ``result`` of ``file`` unchanged, or raise LoaderError if its doc_id is taken."""
        for doc_id in dict.fromkeys(r.doc_id for r in result.records):
            if doc_id in self._owners:
                raise LoaderError(f"{file}: doc_id {doc_id!r} is already used by {self._owners[doc_id]}",
                                  field="doc_id", hint="give each SOP its own doc_id in the front matter")
        self._owners.update((r.doc_id, file) for r in result.records)
        return result


def find_error_codes(text: str) -> list[str]:
    """Error codes mentioned in ``text`` (see ``ERROR_CODE_PATTERN``), in order of appearance, once each."""
    return list(dict.fromkeys(ERROR_CODE_PATTERN.findall(text)))


def _to_records(doc: SopDocument, path: Path, source: str) -> LoadResult:
    doc_id = doc.doc_id or path.stem
    try:
        parse_record({"id": doc_id, "kind": "sop"}, where="doc_id")
    except InvalidRecord as exc:
        problem = exc.message.removeprefix("doc_id: field 'id': ")
        raise LoaderError(f"{source}: doc_id {doc_id!r} is not a valid id: {problem}", field="doc_id",
                          hint="set doc_id in the front matter or rename the file") from None
    if not doc.sections:
        raise LoaderError(f"{source}: expected at least one section with text, got none", hint="is the file empty?")
    title = doc.title or path.stem
    result = LoadResult(files=[source], warnings=list(doc.warnings),
                        documents={doc_id: {f"{doc_id}#{n}" for n in range(1, len(doc.sections) + 1)}})
    for number, section in enumerate(doc.sections, start=1):
        codes = list(dict.fromkeys(doc.error_codes + find_error_codes(f"{section.heading}\n{section.body}")))
        if len(codes) > MAX_CODES:
            result.warnings.append(
                f"{source} section {number}: {len(codes)} error codes found; kept the first {MAX_CODES}"
            )
            codes = codes[:MAX_CODES]
        data = {
            "id": f"{doc_id}#{number}", "kind": "sop", "doc_id": doc_id, "doc_title": title,
            "section": section.heading, "text": section.body, "product": doc.product, "model": doc.model,
            "module": doc.module, "error_codes": codes,
        }
        try:
            result.records.append(parse_record(data, where=f"section {number}"))
        except InvalidRecord as exc:
            message = exc.message.removeprefix(f"section {number}: ")
            result.skipped.append(SkippedRow(source, number, exc.field, message))
    return result


_TEXT_FORMATS: dict[str, Callable[[str, str], SopDocument]] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": lambda text, _source: parse_plaintext(text),
    ".html": lambda text, _source: parse_html(text),
    ".htm": lambda text, _source: parse_html(text),
}
SOP_SUFFIXES: tuple[str, ...] = (*_TEXT_FORMATS, ".pdf", ".docx")


def _parse(path: Path, source: str, encoding: str) -> SopDocument:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return parse_pdf(path, source)
    if suffix == ".docx":
        return parse_docx(path, source)
    data = read_bytes(path, source)
    if suffix in (".html", ".htm") and encoding.lower() == "auto":
        encoding = declared_charset(data) or "auto"
    text, warnings = decode_text(data, encoding, source)
    doc = _TEXT_FORMATS[suffix](text, source)
    doc.warnings[:0] = warnings
    return doc
