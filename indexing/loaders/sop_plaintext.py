"""Plain-text SOPs (and PDF text): the title is the first non-empty line (when it reads like a
title), sections start at numbered heading lines.

Heading lines: ``1. 适用范围``, ``1、适用范围``, ``2.3 检查真空计``, ``3 Scope`` (PDF text often
drops the dot), ``第一章 总则`` / ``第2节 ...``, ``一、适用范围``. SOPs are full of numbered
*steps* too (``1. 关闭阀门。``), so a numbered line only counts as a heading when it

- is short (at most 60 characters) and does not end like a sentence (``。；：，.`` ...);
- continues the heading numbering: after ``2`` comes ``3``, ``2.1`` or ``2.1.1``; after ``2.1``
  comes ``2.2``, ``2.1.1`` or ``3``. The first heading must be ``1``;
- and is not the next item of a numbered list that started since the last heading (steps 1, 2, 3
  under heading 3 make "4." the fourth step, not section 4). Only a list of heading-like items
  (short, no final punctuation) blocks this way: after the steps "1. 关闭阀门。 2. 确认压力。"
  under heading 2, a short "3. 注意事项" is taken as heading 3. Without layout the two cannot
  always be told apart; this rule keeps the common case of sentence-like steps right.

``第…章`` lines always count; accepting one (or a ``一、`` heading) restarts the Arabic numbering
beneath it. A document without any heading line is one section with an empty heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexing.loaders.sop_document import (
    SENTENCE_END,
    Section,
    SopDocument,
    add_section,
    intro_heading,
    looks_like_title,
)

_MAX_HEADING = 60
_ARABIC = re.compile(r"(\d{1,2}(?:\.\d{1,2}){0,3})(?:[.、．](?!\d)\s*|\s+)(\S.*)")
_CHAPTER = re.compile(r"第\s*[一二三四五六七八九十百零〇\d]+\s*[章节篇部](?:分)?(?:\s.*|[:：、]?.*)")
_CN_ENUM = re.compile(r"([一二三四五六七八九十]{1,3})[、.．]\s*(\S.*)")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def parse_plaintext(text: str) -> SopDocument:
    """Parse a text SOP: the first non-empty line is the title (unless it reads like a sentence or
    is over 100 characters; then the title is left empty), the rest is split at numbered headings."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return SopDocument()
    title = lines[first].strip() if looks_like_title(lines[first]) else ""
    body = lines[first + 1:] if title else lines[first:]
    sections, found = split_numbered(body, title)
    return SopDocument(title=title, sections=sections if found else _whole(body))


def split_numbered(lines: list[str], title: str) -> tuple[list[Section], bool]:
    """Split lines at numbered headings.

    Returns:
        The sections (text before the first heading becomes an intro section "概述"/"Overview"),
        and whether any heading was found.
    """
    sections: list[Section] = []
    finder = _HeadingFinder()
    heading: str | None = None
    body: list[str] = []
    found = False
    for line in lines:
        if finder.is_heading(line.strip()):
            _flush(sections, heading, body, title)
            heading, body, found = line.strip(), [], True
        else:
            body.append(line)
    _flush(sections, heading, body, title)
    return sections, found


def _whole(lines: list[str]) -> list[Section]:
    sections: list[Section] = []
    add_section(sections, "", lines)
    return sections


def _flush(sections: list[Section], heading: str | None, body: list[str], title: str) -> None:
    add_section(sections, intro_heading(title + "\n".join(body)) if heading is None else heading, body)


@dataclass
class _Numbering:
    """One numbering scheme's state: the last heading number and the last list item since it."""

    last: tuple[int, ...] = (0,)
    list_last: tuple[int, ...] | None = None
    list_like_headings: bool = False  # some list item since the last heading was short and unpunctuated

    def accept(self, number: tuple[int, ...], plausible: bool) -> bool:
        blocked = self.list_like_headings and _next_in_list(self.list_last, number)
        if plausible and not blocked and _next_heading(self.last, number):
            self.last, self.list_last, self.list_like_headings = number, None, False
            return True
        self.list_last = number
        self.list_like_headings = self.list_like_headings or plausible
        return False


class _HeadingFinder:
    """Decides line by line whether a line is a section heading (see the module docstring)."""

    def __init__(self) -> None:
        self.arabic = _Numbering()
        self.chinese = _Numbering()

    def is_heading(self, line: str) -> bool:
        if not line or len(line) > _MAX_HEADING * 2:
            return False
        plausible = len(line) <= _MAX_HEADING and not line.endswith(SENTENCE_END)
        if plausible and _CHAPTER.fullmatch(line):
            self.arabic, self.chinese = _Numbering(), _Numbering()
            return True
        match = _CN_ENUM.fullmatch(line)
        if match and (number := _cn_number(match[1])) is not None:
            if self.chinese.accept((number,), plausible):
                self.arabic = _Numbering()
                return True
            return False
        match = _ARABIC.fullmatch(line)
        if match:
            return self.arabic.accept(tuple(int(p) for p in match[1].split(".")), plausible)
        return False


def _next_heading(last: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """True if ``new`` may follow heading ``last``: a sibling or ancestor's sibling (+1), or a first child."""
    if len(new) <= len(last) and new[:-1] == last[: len(new) - 1] and new[-1] == last[len(new) - 1] + 1:
        return True
    return len(new) > len(last) and new[: len(last)] == last and all(n in (0, 1) for n in new[len(last):])


def _next_in_list(last: tuple[int, ...] | None, new: tuple[int, ...]) -> bool:
    return last is not None and len(new) == len(last) and new[:-1] == last[:-1] and new[-1] == last[-1] + 1


def _cn_number(text: str) -> int | None:
    """一 -> 1, 十二 -> 12, 二十 -> 20, 九十九 -> 99; None for anything else."""
    if "十" not in text:
        return _CN_DIGITS.get(text) if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return None
    t = _CN_DIGITS.get(tens, -1) if tens else 1
    o = _CN_DIGITS.get(ones, -1) if ones else 0
    return t * 10 + o if t > 0 and o >= 0 else None
