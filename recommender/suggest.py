"""Field suggestions for a case: category, module, priority and group from its nearest past cases.

:func:`suggest_fields` searches the history (hybrid ranking, cases only, the record itself
excluded) with the record's text, then each neighbour that has a field set votes for its value
with its search score as the weight. ``confidence`` is the winning value's share of the weight of
the neighbours that have the field set; below ``min_confidence`` nothing is suggested and the
reason says why. Each suggestion lists the neighbours that voted for it.

The query is the record's title, text, cause, resolution and workaround, plus its product, model
and error codes; a field being predicted is never part of the query (otherwise the keyword side
would match the record's own module name, say).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from pydantic import Field

from caselink.errors import InvalidQuery
from indexing.records import Record
from recommender.results import Mode, SearchQuery

SUGGESTABLE: tuple[str, ...] = ("category", "module", "priority", "group", "product", "model")
DEFAULT_FIELDS: tuple[str, ...] = ("category", "module", "priority", "group")


# These types are the API's answer as they are (``/v1/suggest``, ``/v1/records/{id}/suggestions``):
# pydantic reads stdlib dataclasses and the Field descriptions in their annotations.
@dataclass
class Neighbour:
    """A past case and its search score (0-1)."""

    id: str
    score: Annotated[float, Field(description="Search score 0-1; the neighbour's vote weight.")]


@dataclass
class Alternative:
    """A value some neighbours voted for."""

    value: str
    share: Annotated[float, Field(description="Share of the similarity-weighted vote, 0-1.")]
    votes: int


@dataclass
class FieldSuggestion:
    """The suggestion for one field; ``value`` is null when no value reached ``min_confidence``."""

    field: str
    value: str | None
    confidence: Annotated[float, Field(description="The top value's share of the weighted vote, 0-1.")]
    reason: Annotated[str, Field(description="Why this value, or why nothing is suggested.")]
    voters: Annotated[list[Neighbour], Field(description="Neighbours that voted for the top value.")
                      ] = field(default_factory=list)
    support: Annotated[int, Field(description="Neighbours that have the field set.")] = 0
    alternatives: Annotated[list[Alternative], Field(description="Every value voted for, best first.")
                            ] = field(default_factory=list)


@dataclass
class Suggestions:
    """Field suggestions from a similarity-weighted vote of the nearest past cases."""

    record_id: Annotated[str | None, Field(description="The record asked about; null for free text or a record "
                                                       "posted without an id.")]
    k: int
    min_confidence: float
    path: Annotated[Mode, Field(description="The search path that found the neighbours.")]
    neighbours: list[Neighbour]
    fields: dict[str, FieldSuggestion]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def query_text(record: Record, fields: tuple[str, ...] = DEFAULT_FIELDS) -> str:
    """What a record is searched with: its text and the known facets that are not being predicted."""
    facets = [getattr(record, f) for f in ("product", "model") if f not in fields]
    return "\n".join(p for p in [record.searchable_text(), " ".join(x for x in facets if x),
                                 " ".join(record.error_codes)] if p)


def suggest_fields(service, *, record: Record | None = None, text: str | None = None, k: int = 15,
                   min_confidence: float = 0.5,
                   fields: tuple[str, ...] | list[str] = DEFAULT_FIELDS) -> Suggestions:
    """Suggest field values for a record (or free text) by a similarity-weighted vote of its neighbours.

    Parameters: ``service`` a :class:`recommender.service.CaselinkService`; exactly one of
    ``record`` (stored or not; its id is excluded from the neighbours) and ``text``; ``k`` (15)
    neighbours; ``min_confidence`` (0.5) smallest winning weight share that is suggested;
    ``fields`` any of :data:`SUGGESTABLE`.

    Raises :class:`caselink.errors.InvalidQuery` (no or both inputs, empty text, unknown field,
    k above the configured maximum, min_confidence outside 0-1).

    >>> s = suggest_fields(service, text="干泵跳停 E1023")   # doctest: +SKIP
    >>> s.fields["module"].value, s.fields["module"].confidence   # doctest: +SKIP
    ('真空', 0.87)
    """
    if (record is None) == (text is None):
        raise InvalidQuery("give exactly one of record and text", field="text" if record is None else "record")
    fields = tuple(fields)
    for f in fields:
        if f not in SUGGESTABLE:
            raise InvalidQuery(f"expected fields among {', '.join(SUGGESTABLE)}, got '{f}'", field="fields")
    if not 0.0 <= min_confidence <= 1.0:
        raise InvalidQuery(f"expected min_confidence between 0 and 1, got {min_confidence}", field="min_confidence")
    if k < 1:
        raise InvalidQuery(f"expected k >= 1, got {k}", field="k")
    if record is not None and record.is_empty():
        raise InvalidQuery("the record has nothing to compare: no title, text, product, model, module or "
                           "error code", field="record")
    q = query_text(record, fields) if record is not None else (text or "")
    if not q.strip() and record is None:
        raise InvalidQuery("text must not be empty", field="text")
    if not q.strip():  # e.g. only a module, or only the product being suggested: a valid record, no neighbours
        why = "the record has nothing to search with but the fields being suggested (add a title, text or codes)"
        return Suggestions(record_id=record.id, k=k, min_confidence=min_confidence, path="hybrid", neighbours=[],
                           fields={f: FieldSuggestion(f, None, 0.0, why) for f in fields})
    q = q[: service.settings.server.max_text_chars]
    resp = service.search(SearchQuery(text=q, k=k, mode="hybrid", kind=["case"],
                                      exclude_ids=[record.id] if record is not None else []))
    hits = [(r.id, float(r.score)) for r in resp.results if r.score > 0]
    stored = service.records(rid for rid, _ in hits)
    neighbours = [(stored[rid], score) for rid, score in hits if rid in stored]
    out = {f: _vote(f, neighbours, min_confidence) for f in fields}
    return Suggestions(record_id=record.id if record is not None else None, k=k, min_confidence=min_confidence,
                       path=resp.path, neighbours=[Neighbour(r.id, round(s, 4)) for r, s in neighbours], fields=out)


def _vote(name: str, neighbours: list[tuple[Record, float]], min_confidence: float) -> FieldSuggestion:
    """Similarity-weighted vote; values compared case- and space-insensitively, shown as most often spelt."""
    weight: dict[str, float] = defaultdict(float)
    voters: dict[str, list[Neighbour]] = defaultdict(list)
    spelling: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec, score in neighbours:
        value = (getattr(rec, name) or "").strip()
        if not value:
            continue
        key = " ".join(value.casefold().split())
        weight[key] += score
        voters[key].append(Neighbour(rec.id, round(score, 4)))
        spelling[key][value] += 1
    if not neighbours:
        return FieldSuggestion(name, None, 0.0, "no similar past cases were found")
    support = sum(len(v) for v in voters.values())
    if not weight:
        return FieldSuggestion(name, None, 0.0, f"none of the {len(neighbours)} similar cases has '{name}' set")
    total = sum(weight.values())
    ranked = sorted(weight, key=lambda key: (-weight[key], -len(voters[key]), key))

    def shown(key: str) -> str:
        return max(spelling[key].items(), key=lambda kv: (kv[1], kv[0]))[0]

    alternatives = [Alternative(shown(key), round(weight[key] / total, 4), len(voters[key])) for key in ranked]
    best = ranked[0]
    conf = weight[best] / total if total > 0 else 0.0
    if conf < min_confidence:
        return FieldSuggestion(name, None, round(conf, 4),
                               f"neighbours disagree: the top value '{shown(best)}' has {conf:.0%} of the vote "
                               f"({len(voters[best])} of {support} cases), below min_confidence {min_confidence}",
                               voters=voters[best], support=support, alternatives=alternatives)
    return FieldSuggestion(name, shown(best), round(conf, 4),
                           f"{len(voters[best])} of {support} similar cases with '{name}' set have this value "
                           f"({conf:.0%} of the similarity-weighted vote)",
                           voters=voters[best], support=support, alternatives=alternatives)
