"""Word (.docx) SOPs: sections start at paragraphs styled Heading 1 or Heading 2 ("标题 1",
"标题 2" in Chinese Word/WPS); the title is the paragraph styled Title ("标题"), else the
document properties' title. Tables are included in their section's text, one row per line
with cells separated by " | " (merged cells once). Headers, footers and text boxes are not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from caselink.errors import LoaderError
from indexing.loaders.sop_document import Section, SopDocument, add_section, intro_heading

_HEADING_STYLE = re.compile(r"(?:heading|标题)\s*(\d)")
_TITLE_STYLES = frozenset({"title", "标题"})


def parse_docx(path: Path, source: str) -> SopDocument:
    """Parse a .docx SOP.

    Raises:
        LoaderError: the file is not a readable .docx (old .doc files are not supported).
    """
    try:
        document = docx.Document(str(path))
        blocks = list(document.iter_inner_content())
        properties_title = (document.core_properties.title or "").strip()
    except Exception as exc:  # python-docx/zipfile/lxml raise many types for a broken file
        raise LoaderError(f"{source}: expected a .docx document, got an unreadable one ({type(exc).__name__}: {exc})",
                          hint="old .doc files must be saved as .docx") from None
    title = ""
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    found = False
    for block in blocks:
        if isinstance(block, Table):
            body.extend(_table_lines(block))
            continue
        text = block.text.strip()
        style = _style_name(block)
        if style in _TITLE_STYLES and text:
            title = title or text
            continue
        match = _HEADING_STYLE.fullmatch(style)
        if match and match[1] in ("1", "2") and text:
            _flush(sections, heading, body, title)
            heading, body, found = text, [], True
        elif text:
            body.append(text)
    title = title or properties_title
    if found:
        _flush(sections, heading, body, title)
    else:
        add_section(sections, "", body)
    return SopDocument(title=title, sections=sections)


def _flush(sections: list[Section], heading: str | None, body: list[str], title: str) -> None:
    add_section(sections, intro_heading(title + "\n".join(body)) if heading is None else heading, body)


def _style_name(paragraph: Paragraph) -> str:
    try:
        return (paragraph.style.name or "").strip().lower() if paragraph.style is not None else ""
    except (KeyError, ValueError):  # a style id the styles part does not define
        return ""


def _table_lines(table: Table) -> list[str]:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell is returned once per grid column it spans
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return lines
