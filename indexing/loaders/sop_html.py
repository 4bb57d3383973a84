"""HTML SOPs (e.g. wiki or intranet page exports): title from <title> or the first <h1>,
one section per <h2> (or per <h1>, or per <h3>, whichever the page uses first in that order).

Parsed with the standard library's ``html.parser``: the loader needs only headings and block
text, in order, with <script>/<style> dropped, and this keeps HTML loading free of an extra
dependency. Headings below the split level stay inside their section as text lines; a heading
above it (an <h1> chapter when splitting at <h2>) also starts a section, except the <h1> that
gave the title.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from indexing.loaders.sop_document import Section, SopDocument, add_section, intro_heading

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
_BLOCKS = frozenset({
    "p", "div", "li", "tr", "br", "table", "ul", "ol", "section", "article", "pre", "blockquote",
    "dd", "dt", "dl", "hr", "header", "footer", "main", "nav", "aside", "figure", "figcaption",
    "caption", "thead", "tbody", "form", "fieldset", "address", "details", "summary",
})
_CELLS = frozenset({"td", "th"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


# Browsers decode these labels with the superset encoding; so do we (a "gb2312" page often holds GBK).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5": "big5hkscs"}


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in a <meta> tag within its first 4 KB, if Python knows it."""
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    label = match[1].decode("ascii").lower()
    try:
        codecs.lookup(label)
    except LookupError:
        return None
    return _SUPERSETS.get(label, label)


def parse_html(text: str) -> SopDocument:
    """Parse an HTML SOP into title and sections."""
    parser = _Blocks()
    parser.feed(text)
    parser.close()
    blocks = parser.finish()
    first_h1 = next((t for kind, t in blocks if kind == "h1"), "")
    title = next((t for kind, t in blocks if kind == "title"), "") or first_h1
    levels = [kind for kind, _ in blocks if kind in _HEADINGS]
    split = next((h for h in ("h2", "h1", "h3") if h in levels), None)
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    title_h1_used = split == "h1"  # when splitting at h1, the title's h1 is a section like the others
    for kind, text in blocks:
        if kind == "title":
            continue
        if kind == "h1" and not title_h1_used and text == first_h1:
            title_h1_used = True
            continue
        if split and kind in _HEADINGS and kind <= split:  # "h1" < "h2" < "h3": same order as the levels
            _flush(sections, heading, body, title)
            heading, body = text, []
        else:
            body.append(text)
    _flush(sections, heading, body, title, whole=split is None)
    return SopDocument(title=title, sections=sections)


def _flush(sections: list[Section], heading: str | None, body: list[str], title: str, whole: bool = False) -> None:
    if heading is None:
        heading = "" if whole else intro_heading(title + "\n".join(body))
    add_section(sections, heading, body)


class _Blocks(HTMLParser):
    """Collects (kind, text) blocks in document order: kind is "title", "h1".."h6" or "text"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._kind = "text"
        self._line: list[str] = []
        self._lines: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "title" or tag in _HEADINGS:
            self._emit()
            self._kind = tag
        elif tag in _BLOCKS:
            self._end_line()
        elif tag in _CELLS and self._line:
            self._line.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title" or tag in _HEADINGS:
            self._emit()
            self._kind = "text"
        elif tag in _BLOCKS:
            self._end_line()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._line.append(data)

    def finish(self) -> list[tuple[str, str]]:
        self._emit()
        return self.blocks

    def _end_line(self) -> None:
        line = " ".join("".join(self._line).split())
        if line and line != "|":
            self._lines.append(line)
        self._line = []

    def _emit(self) -> None:
        self._end_line()
        if self._lines:
            joiner = " " if self._kind != "text" else "\n"
            self.blocks.append((self._kind, joiner.join(self._lines)))
        self._lines = []
