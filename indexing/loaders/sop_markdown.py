"""Markdown SOPs: optional front matter, ``# Title``, one section per ``##`` heading.

Format (the demo SOPs use exactly this)::

    ---
    doc_id: SOP-VAC-003
    product: HX-Etch 500
    model: HX-500A
    module: 真空
    error_codes: E1023, E1024      # or [E1023, E1024], or a "- E1023" list on the next lines
    title: 干泵异常停机诊断程序      # optional; else the first "# " line, else the file name
    ---
    # 干泵异常停机诊断程序
    开篇说明……                       # text before the first "## " -> section "概述" ("Overview")
    ## 1. 适用范围
    ...
    ### 1.1 细节                      # deeper headings stay inside their "## " section

The front matter is read as simple ``key: value`` lines, not full YAML (no YAML library is a
dependency and SOP metadata needs nothing more). Any later ``# `` line also starts a section.
Headings inside fenced code blocks are ignored.
"""

from __future__ import annotations

import re

from caselink.errors import LoaderError
from indexing.loaders.sop_document import Section, SopDocument, add_section, intro_heading

FRONT_MATTER_KEYS: tuple[str, ...] = ("doc_id", "product", "model", "module", "error_codes", "title")
_HEADING = re.compile(r"^ {0,3}(#{1,2})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")  # ATX h1/h2, optional closing #s
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def parse_markdown(text: str, source: str) -> SopDocument:
    """Parse a Markdown SOP.

    Args:
        text: The file's text (newlines normalised).
        source: The file name, for messages.

    Raises:
        LoaderError: the front matter is opened but never closed, or has a line that is not
            ``key: value``.
    """
    lines = text.split("\n")
    meta, start, warnings = _front_matter(lines, source)
    doc = SopDocument(
        doc_id=meta.get("doc_id", ""), product=meta.get("product", ""), model=meta.get("model", ""),
        module=meta.get("module", ""), warnings=warnings,
        error_codes=[c.strip() for c in re.split(r"[,;，；、\s]+", meta.get("error_codes", "")) if c.strip()],
    )
    title = meta.get("title", "")
    title_seen = False
    heading: str | None = None  # None: still before the first section heading
    body: list[str] = []
    fence: str | None = None
    for line in lines[start:]:
        marker = _FENCE.match(line)
        if marker and (fence is None or marker[1] == fence):
            fence = None if fence else marker[1]
        match = _HEADING.match(line) if fence is None and not marker else None
        if match and len(match[1]) == 1 and not title_seen:
            title_seen = True
            title = title or match[2].strip()
            continue
        if match:
            _flush(doc.sections, heading, body, title)
            heading, body = match[2], []
            continue
        body.append(line)
    _flush(doc.sections, heading, body, title)
    doc.title = title
    return doc


def _flush(sections: list[Section], heading: str | None, body: list[str], title: str) -> None:
    if heading is None:
        heading = intro_heading(title + "\n".join(body))
    add_section(sections, heading, body)


def _front_matter(lines: list[str], source: str) -> tuple[dict[str, str], int, list[str]]:
    """Return (metadata, index of the first line after the front matter, warnings)."""
    if not lines or lines[0].strip() != "---":
        return {}, 0, []
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise LoaderError(f"{source}: front matter opened with '---' on line 1 but never closed",
                          hint="add a closing '---' line after the metadata")
    meta: dict[str, str] = {}
    warnings: list[str] = []
    key = ""
    for number in range(1, end):
        line = lines[number]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("- ") and key:  # YAML block list continuing the previous key
            meta[key] = ", ".join(filter(None, [meta[key], _unquote(stripped[2:])]))
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or not key:
            raise LoaderError(
                f"{source} line {number + 1}: expected 'key: value' in the front matter, got {stripped!r}"
            )
        if key not in FRONT_MATTER_KEYS:
            expected = ", ".join(FRONT_MATTER_KEYS)
            warnings.append(f"{source}: front matter key {key!r} ignored; expected one of {expected}")
        value = value.split(" #", 1)[0].strip()
        if value.startswith("[") and value.endswith("]"):  # YAML flow list: [E1023, E1024]
            value = ", ".join(_unquote(v) for v in value[1:-1].split(","))
        meta[key] = _unquote(value)
    return meta, end + 1, warnings


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value
