"""Explanations and snippets: why a record was suggested, and the part of it worth reading."""

from __future__ import annotations

import re

from indexing.normalize import fold
from indexing.records import Record
from indexing.tokenize import Tokenizer, canonical_code
from recommender.results import Explanation
from recommender.verdicts import Verdict

SNIPPET_CHARS = 160


def _display_code(code: str, record: Record) -> str:
    """Show a canonical code the way the record writes it (E-1023 stays E-1023)."""
    for c in record.error_codes:
        if canonical_code(c) == code:
            return c
    pattern = re.compile("[-_./]?".join(re.escape(ch) for ch in code))
    for text in (record.title, record.section, record.text):
        m = pattern.search(fold(text))
        if m:
            return text[m.start():m.end()]
    return code.upper()


def explain(record: Record, *, query_words: list[str], query_codes: set[str], record_codes: frozenset[str],
            tokenizer: Tokenizer, dense: tuple[int, float] | None, keyword: tuple[int, float] | None,
            verdict: Verdict | None = None, judged: str = "this record") -> Explanation:
    text = " ".join((record.title, record.doc_title, record.section, record.text, record.cause, record.resolution,
                     record.workaround, record.product, record.model, record.module))
    # Substring tests on the normalised text instead of segmenting every result with jieba: the
    # query's words are already normalised, and a stem ('fail') is a prefix of its word ('failed').
    folded = fold(text, opencc=tokenizer.opencc)
    matched_codes = [_display_code(c, record) for c in sorted(query_codes & record_codes)]
    shown = tokenizer.surfaces(" ".join((record.title, record.section, record.text)))
    matched = [shown.get(w, w) for w in dict.fromkeys(query_words) if w not in query_codes and w in folded]
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
    return Explanation(
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


def snippet_and_highlights(record: Record, terms: list[str], *, opencc: str) -> tuple[str, list[str]]:
    """A window of the record's text around the first matched term, and the original-script
    substrings (of snippet or title) that match ``terms``, for highlighting."""
    body = record.text or record.resolution or record.cause or record.workaround or ""
    norm = fold(body, opencc=opencc)
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
    for source, src_norm in ((snippet, snippet_norm), (title, fold(title, opencc=opencc))):
        for t in terms:
            pos = src_norm.find(t)
            while pos >= 0 and t:
                highlights.append(source[pos:pos + len(t)])
                pos = src_norm.find(t, pos + len(t))
    return snippet, list(dict.fromkeys(h for h in highlights if h.strip()))
