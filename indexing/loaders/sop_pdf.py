"""PDF SOPs: text extracted with pypdf, then split like plain text at numbered headings; a PDF
without numbered headings becomes one section per page ("第 N 页" / "Page N").

The title is the document's metadata title when it looks real (not "Microsoft Word - x.docx"),
else the first non-empty line when it reads like a title (else the file name). Scanned PDFs
have no text layer and are reported as such.
"""

from __future__ import annotations

import re
from pathlib import Path

from pypdf import PdfReader

from caselink.errors import LoaderError
from indexing.loaders.sop_document import SopDocument, add_section, looks_like_title, page_heading
from indexing.loaders.sop_plaintext import split_numbered

# Metadata titles that PDF printers and converters fill in, not a real title.
_GENERATED_TITLE = re.compile(
    r"^(microsoft (word|powerpoint|excel) - |untitled)|\.(docx?|pdf|pptx?|txt)$", re.IGNORECASE
)


def parse_pdf(path: Path, source: str) -> SopDocument:
    """Parse a PDF SOP.

    Raises:
        LoaderError: the file is not a readable PDF, needs a password, or has no text layer.
    """
    pages, meta_title = _extract(path, source)
    if not any(page.strip() for page in pages):
        raise LoaderError(f"{source}: expected a PDF with a text layer, got no extractable text",
                          hint="a scanned PDF needs OCR first")
    page_lines = [page.replace("\r\n", "\n").replace("\r", "\n").split("\n") for page in pages]
    title = meta_title.strip() if meta_title and not _GENERATED_TITLE.search(meta_title.strip()) else ""
    if not title:
        title = _take_first_line(page_lines)
    sections, found = split_numbered([line for lines in page_lines for line in lines], title)
    if not found and len(pages) > 1:
        sections = []
        for number, lines in enumerate(page_lines, start=1):
            add_section(sections, page_heading(number, title + "\n".join(lines)), lines)
    elif not found:
        sections = []
        add_section(sections, "", page_lines[0])
    return SopDocument(title=title, sections=sections)


def _extract(path: Path, source: str) -> tuple[list[str], str]:
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoaderError(f"{source}: expected an unencrypted PDF, got one that needs a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoaderError:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, KeyError, ValueError...) on a broken file
        raise LoaderError(f"{source}: expected a PDF, got an unreadable one ({type(exc).__name__}: {exc})") from None
    return pages, str(meta_title)


def _take_first_line(page_lines: list[list[str]]) -> str:
    """Remove and return the first non-empty line if it looks like a title, else return ""."""
    for lines in page_lines:
        for i, line in enumerate(lines):
            if line.strip():
                if not looks_like_title(line):
                    return ""
                del lines[i]
                return line.strip()
    return ""
