"""Explanations and snippets: why a record was suggested, and the part of it worth reading."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from indexing.normalize import fold
from indexing.records import Record
from indexing.tokenize import Tokenizer, canonical_code
from recommender.results import Explanation
from recommender.verdicts import Verdict

SNIPPET_CHARS = 160
# The fields an explanation looks for query words in, in the order they are joined.
_MATCHED_FIELDS = ("title", "doc_title", "section", "text", "cause", "resolution", "workaround", "product",
                   "model", "module")


@dataclass(frozen=True)
class FoldedRecord:
    """A record's fields folded once (:func:`indexing.normalize.fold`: one script, half-width,
    lower case, positions kept), shared by the explanation, the snippet and the highlights of
    one result: folding is most of what building a result costs, and each field used to be
    folded two or three times."""

    fields: Mapping[str, str]
    title: str  # the display title, folded

    joined: str  # every field, folded, space-joined: what query words are looked for in

    surfaces: Mapping[str, str]  # stem -> the word as written, of title, section and text

    @classmethod
    def of(cls, record: Record, *, tokenizer: Tokenizer) -> "FoldedRecord":
        return _folded(tuple(getattr(record, f) or "" for f in _MATCHED_FIELDS), record.display_title(), tokenizer)


# Keyed by the text itself, so an edited record can never be shown with its old fold; a result
# shown again (the same problem order for many tickets) costs a dictionary lookup. About 3 KB a
# record on the demo: 4096 of them are a few MB.
@functools.lru_cache(maxsize=4096)
def _folded(values: tuple[str, ...], title: str, tokenizer: Tokenizer) -> FoldedRecord:
    # One fold of the joined fields, cut back into fields: fold keeps every character's
    # position, and each OpenCC call has a fixed cost that ten small calls would pay ten times.
    opencc = tokenizer.opencc
    joined = fold(" ".join(values), opencc=opencc)
    fields, start = {}, 0
    for name, value in zip(_MATCHED_FIELDS, values):
        fields[name] = joined[start:start + len(value)]
        start += len(value) + 1
    surfaces = tokenizer.surfaces(" ".join((fields["title"], fields["section"], fields["text"])), normalized=True)
    return FoldedRecord(fields=MappingProxyType(fields), joined=joined, surfaces=MappingProxyType(surfaces),
                        title=fields["title"] if title == values[0] else fold(title, opencc=opencc))


def _display_code(code: str, record: Record, folded: FoldedRecord) -> str:
    """Show a canonical code the way the record writes it (E-1023 stays E-1023)."""
    for c in record.error_codes:
        if canonical_code(c) == code:
            return c
    pattern = re.compile("[-_./]?".join(re.escape(ch) for ch in code))
    for field in ("title", "section", "text"):
        m = pattern.search(folded.fields[field])
        if m:
            return getattr(record, field)[m.start():m.end()]
    return code.upper()


def explain(record: Record, *, query_words: list[str], query_codes: set[str], record_codes: frozenset[str],
            tokenizer: Tokenizer, dense: tuple[int, float] | None, keyword: tuple[int, float] | None,
            verdict: Verdict | None = None, judged: str = "this record",
            folded: FoldedRecord | None = None) -> Explanation:
    """Why ``record`` was suggested for the query (its words and codes, normalised)."""
    return Explanation(**explanation_fields(
        record, query_words=query_words, query_codes=query_codes, record_codes=record_codes, tokenizer=tokenizer,
        dense=dense, keyword=keyword, verdict=verdict, judged=judged, folded=folded))


def explanation_fields(record: Record, *, query_words: list[str], query_codes: set[str],
                       record_codes: frozenset[str], tokenizer: Tokenizer, dense: tuple[int, float] | None,
                       keyword: tuple[int, float] | None, verdict: Verdict | None = None,
                       judged: str = "this record", folded: FoldedRecord | None = None) -> dict:
    """:func:`explain`'s fields as a dict, for a caller that validates a whole answer at once
    (one pydantic call for ten results costs half of ten calls)."""
    folded = folded or FoldedRecord.of(record, tokenizer=tokenizer)
    # Substring tests on the normalised text instead of segmenting every result with jieba: the
    # query's words are already normalised, and a stem ('fail') is a prefix of its word ('failed').
    text = folded.joined
    matched_codes = [_display_code(c, record, folded) for c in sorted(query_codes & record_codes)]
    shown = folded.surfaces
    matched = [shown.get(w, w) for w in dict.fromkeys(query_words) if w not in query_codes and w in text]
    parts = []
    if verdict is not None and verdict.net:
        said = "helpful" if verdict.net > 0 else "not helpful"
        parts.append(f"marked {said} for {judged} ({verdict.helpful} helpful, {verdict.unhelpful} not)")
    if matched_codes:
        parts.append("same code " + ", ".join(matched_codes))
    if matched:
        parts.append("matches " + ", ".join(matched[:8]))
    if dense is not None and dense[0] <= 20:
        parts.append(f"similar in meaning (cosine {dense[1]:.2f})")
    if not parts:
        parts.append("related by overall content")
    return dict(
        reason="; ".join(parts),
        matched_terms=matched[:20],
        matched_codes=matched_codes,
        dense_rank=dense[0] if dense else None,
        dense_score=round(dense[1], 4) if dense else None,
        keyword_rank=keyword[0] if keyword else None,
        keyword_score=round(keyword[1], 4) if keyword else None,
        helpful_votes=verdict.helpful if verdict else 0,
        unhelpful_votes=verdict.unhelpful if verdict else 0,
    )


def snippet_and_highlights(record: Record, terms: list[str], *, folded: FoldedRecord) -> tuple[str, list[str]]:
    """A window of the record's text around the first matched term, and the original-script
    substrings (of snippet or title) that match ``terms``, for highlighting; ``folded`` is
    ``record`` folded (:meth:`FoldedRecord.of`)."""
    field = next((f for f in ("text", "resolution", "cause", "workaround") if getattr(record, f)), "text")
    body, norm = getattr(record, field) or "", folded.fields[field]
    start = 0
    if terms:
        positions = [p for p in (norm.find(t) for t in terms) if p >= 0]
        if positions:
            start = max(0, min(positions) - 40)
    snippet, snippet_norm = body[start:start + SNIPPET_CHARS], norm[start:start + SNIPPET_CHARS]
    if start > 0:
        snippet, snippet_norm = "…" + snippet, "…" + snippet_norm
    if start + SNIPPET_CHARS < len(body):
        snippet, snippet_norm = snippet + "…", snippet_norm + "…"
    highlights: list[str] = []
    title = record.display_title()
    for source, src_norm in ((snippet, snippet_norm), (title, folded.title)):
        for t in terms:
            pos = src_norm.find(t)
            while pos >= 0 and t:
                highlights.append(source[pos:pos + len(t)])
                pos = src_norm.find(t, pos + len(t))
    return snippet, list(dict.fromkeys(h for h in highlights if h.strip()))
