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


def _snippet_field(record: Record) -> str:
    """The field a result's snippet is cut from: the first of these the record fills."""
    return next((f for f in ("text", "resolution", "cause", "workaround") if getattr(record, f)), "text")


class ShownRecord:
    """What showing a stored record needs that no query changes, prepared once per record: its
    fold, the result fields copied from it, which field the snippet comes from, its codes as
    written, and (on first need) its codes as the index reads them. Profiled on the demo, this
    per-record work was a third of building a search's results, repeated for every search that
    showed the record. Get one with :func:`prepare`; the record must not be changed afterwards."""

    __slots__ = ("record", "folded", "result", "snippet_field", "declared", "_codes", "_folded_codes")

    def __init__(self, record: Record, tokenizer: Tokenizer):
        self.record = record
        self.folded = FoldedRecord.of(record, tokenizer=tokenizer)
        # The fields a SearchResult takes as they are; the caller adds score, snippet and explanation.
        self.result = MappingProxyType(dict(
            id=record.id, kind=record.kind, title=record.display_title(), product=record.product, model=record.model,
            module=record.module, status=record.status, error_codes=record.error_codes, created=record.created,
            doc_id=record.doc_id, doc_title=record.doc_title, section=record.section, attributes=record.attributes))
        self.snippet_field = _snippet_field(record)
        declared: dict[str, str] = {}  # canonical -> the first declared code with that canonical form
        for c in record.error_codes:
            declared.setdefault(canonical_code(c), c)
        self.declared = MappingProxyType(declared)
        self._codes: frozenset[str] | None = None
        self._folded_codes: dict[str, str] = {}

    def codes(self, docs) -> frozenset[str]:
        """``docs.codes(record)`` (a :class:`~indexing.document.DocumentBuilder`), computed once."""
        if self._codes is None:
            self._codes = docs.codes(self.record)
        return self._codes

    def folded_code(self, code: str, opencc) -> str:
        """A code as shown (:func:`_display_code`), folded as the record's fields are."""
        out = self._folded_codes.get(code)
        if out is None:
            out = self._folded_codes[code] = fold(code, opencc=opencc)
        return out


class _Same:
    """A cache key that is one object (held, so its id cannot be reused while the entry lives)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def prepare(record: Record, *, tokenizer: Tokenizer) -> ShownRecord:
    """``record`` prepared for showing, from a cache keyed by the record object itself: the
    store's parse cache hands back the same object for the same stored body
    (``RecordStore.records(shared=True)``), so an edited record is a new object, never stale."""
    return _prepare(_Same(record), tokenizer)


@functools.lru_cache(maxsize=4096)
def _prepare(key: _Same, tokenizer: Tokenizer) -> ShownRecord:
    return ShownRecord(key.obj, tokenizer)


def _display_code(code: str, record: Record, folded: FoldedRecord,
                  declared: Mapping[str, str] | None = None) -> str:
    """Show a canonical code the way the record writes it (E-1023 stays E-1023); ``declared``:
    :attr:`ShownRecord.declared`, when prepared."""
    if declared is not None:
        if code in declared:
            return declared[code]
    else:
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
                       judged: str = "this record", folded: FoldedRecord | None = None,
                       prepared: ShownRecord | None = None) -> dict:
    """:func:`explain`'s fields as a dict, for a caller that validates a whole answer at once
    (one pydantic call for ten results costs half of ten calls); ``prepared``: :func:`prepare` of
    ``record``, when the caller has it."""
    declared = prepared.declared if prepared is not None else None
    folded = prepared.folded if prepared is not None else folded or FoldedRecord.of(record, tokenizer=tokenizer)
    words = [w for w in dict.fromkeys(query_words) if w not in query_codes]
    matched_codes, matched = _matches(words, query_codes, record_codes, record, folded, declared)
    return _explanation(matched_codes, matched, dense, keyword, verdict, judged)


def _matches(words: list[str], query_codes: set[str], record_codes, record: Record, folded: FoldedRecord,
             declared) -> tuple[list[str], list[str]]:
    """(the query's codes the record holds, as written in it; the query's ``words`` found in it,
    in its own script). ``words``: the query's words, each once, codes left out."""
    common = query_codes.intersection(record_codes)
    matched_codes = [_display_code(c, record, folded, declared) for c in sorted(common)] if common else []
    # Substring tests on the normalised text instead of segmenting every result with jieba: the
    # query's words are already normalised, and a stem ('fail') is a prefix of its word ('failed').
    text, shown = folded.joined, folded.surfaces
    return matched_codes, [shown.get(w, w) for w in words if w in text]


def _explanation(matched_codes: list[str], matched: list[str], dense: tuple[int, float] | None,
                 keyword: tuple[int, float] | None, verdict: Verdict | None, judged: str) -> dict:
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


def snippet_and_highlights(record: Record, terms: list[str], *, folded: FoldedRecord | None = None,
                           prepared: ShownRecord | None = None) -> tuple[str, list[str]]:
    """A window of the record's text around the first matched term, and the original-script
    substrings (of snippet or title) that match ``terms``, for highlighting; ``folded`` is
    ``record`` folded (:meth:`FoldedRecord.of`), or ``prepared`` is :func:`prepare` of it."""
    if prepared is not None:
        field, folded, title = prepared.snippet_field, prepared.folded, prepared.result["title"]
    else:
        field = _snippet_field(record)
        title = record.display_title()
    if folded is None:
        raise TypeError("snippet_and_highlights needs folded or prepared")
    return _cut(getattr(record, field) or "", folded.fields[field], title, folded.title, terms)


def _cut(body: str, norm: str, title: str, title_norm: str, terms: list[str]) -> tuple[str, list[str]]:
    """:func:`snippet_and_highlights` of a field ``body`` folded as ``norm`` and a title."""
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
    for source, src_norm in ((snippet, snippet_norm), (title, title_norm)):
        for t in terms:
            pos = src_norm.find(t)
            while pos >= 0 and t:
                highlights.append(source[pos:pos + len(t)])
                pos = src_norm.find(t, pos + len(t))
    return snippet, list(dict.fromkeys(h for h in highlights if h.strip()))


class Showing:
    """Showing prepared records (:func:`prepare`) as one query's results: what depends on the
    query alone (its words without duplicates or codes) is worked out once, not once a result,
    and each result is built in one call: its explanation, snippet and highlights exactly as
    :func:`explanation_fields` and :func:`snippet_and_highlights` give them."""

    __slots__ = ("words", "codes", "judged", "opencc")

    def __init__(self, query_words: list[str], query_codes: set[str], *, tokenizer: Tokenizer,
                 judged: str = "this record"):
        self.words = [w for w in dict.fromkeys(query_words) if w not in query_codes]
        self.codes = query_codes
        self.judged = judged
        self.opencc = tokenizer.opencc

    def result(self, prepared: ShownRecord, score: float, record_codes: frozenset[str] | tuple[str, ...],
               dense: tuple[int, float] | None, keyword: tuple[int, float] | None,
               verdict: Verdict | None) -> dict:
        """The fields of a :class:`~recommender.results.SearchResult`, ``score`` as given, the
        explanation as a dict (the caller may add the learned ranker's fields to it)."""
        record = prepared.record
        matched_codes, matched = _matches(self.words, self.codes, record_codes, record, prepared.folded,
                                          prepared.declared)
        ex = _explanation(matched_codes, matched, dense, keyword, verdict, self.judged)
        terms = matched[:20]
        if matched_codes:
            terms += [prepared.folded_code(c, self.opencc) for c in matched_codes]
        snippet, highlights = snippet_and_highlights(record, terms, prepared=prepared)
        return {**prepared.result, "score": score, "snippet": snippet, "highlights": highlights, "explanation": ex}
