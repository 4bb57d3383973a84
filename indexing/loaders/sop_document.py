"""The shape every SOP parser produces, and the helpers they share.

Parsers only find the document's title, metadata and (heading, body) sections; turning those
into Records (ids, error codes, validation) happens once, in ``sop.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from caselink.errors import LoaderError
from indexing.loaders.encoding import decode_bytes

_CJK = re.compile(r"[\u3400-\u9fff]")
_MAX_TITLE = 100
SENTENCE_END: tuple[str, ...] = tuple("。；;：:，,！!？?.")  # a line ending so is prose, not a heading or title
TEXT_HINT = "save the file as UTF-8, or pass encoding= (e.g. gbk, big5) to the SOP loader"


@dataclass
class Section:
    """One section: its heading (``""`` when the document has no headings at all) and its text."""

    heading: str
    body: str


@dataclass
class SopDocument:
    """What a parser found in one SOP file. Empty strings mean "not given in the file"."""

    title: str = ""
    sections: list[Section] = field(default_factory=list)
    doc_id: str = ""
    product: str = ""
    model: str = ""
    module: str = ""
    error_codes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def intro_heading(sample: str) -> str:
    """Name for the text before a document's first heading: "概述" in a Chinese document, else "Overview".

    The text has no heading of its own; a fixed label keeps section lists readable ("概述, 1. 适用范围, ...").
    """
    return "概述" if _CJK.search(sample) else "Overview"


def looks_like_title(line: str) -> bool:
    """True for a line that can be a document title: short, and not ending like a sentence.

    A text file that starts straight with a paragraph has no title line; taking that paragraph
    as the title would both mislabel the document and drop the paragraph from its sections.
    """
    line = line.strip()
    return 0 < len(line) <= _MAX_TITLE and not line.endswith(SENTENCE_END)


def page_heading(number: int, sample: str) -> str:
    """Name for a PDF page used as a section when the PDF has no numbered headings."""
    return f"第 {number} 页" if _CJK.search(sample) else f"Page {number}"


def add_section(sections: list[Section], heading: str, lines: list[str]) -> None:
    """Append a section unless its body is empty (a heading alone carries no content to find)."""
    body = "\n".join(lines).strip("\n")
    if body.strip():
        sections.append(Section(heading.strip(), body.strip()))


def read_bytes(path: Path, source: str) -> bytes:
    """The file's bytes.

    Raises:
        LoaderError: the file cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read file ({exc.strerror})") from None


def decode_text(data: bytes, encoding: str, source: str) -> tuple[str, list[str]]:
    """Decode a text SOP with ``encoding`` (or detection for ``"auto"``), newlines normalised to ``\\n``.

    Returns:
        The text, and a warning when the encoding was guessed.

    Raises:
        LoaderError: the encoding cannot be told, or the bytes are invalid in it.
    """
    decoded = decode_bytes(data, encoding, source=source, hint=TEXT_HINT)
    warnings = [f"{source}: not UTF-8; decoded as {decoded.encoding} (detected)"] if decoded.detected else []
    return decoded.text.replace("\r\n", "\n").replace("\r", "\n"), warnings
