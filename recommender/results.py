"""Typed search requests and results: the contract shared by the CLI, the API and eval."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from caselink.config import limited_by
from caselink.errors import InvalidQuery
from caselink.types import NOT_SPACE, IsoDate, JsonBool, JsonFloat, JsonInt
from indexing.records import (ATTRIBUTE_KEY_PATTERN, ATTRIBUTE_KEY_RULE, MAX_ATTRIBUTE_KEY, MAX_ATTRIBUTE_VALUE,
                              attribute_key_error)
from recommender.limits import MAX_ATTRIBUTE_FILTER_VALUES

Mode = Literal["hybrid", "dense", "keyword", "learned"]

_FILTER_VALUE = {"type": "string", "maxLength": MAX_ATTRIBUTE_VALUE}
ATTRIBUTE_FILTER_DOC = (
    "Only records whose own attributes hold these values: {\"customer\": \"ACME\"}, or a list for any of "
    f"({{\"site\": [\"F12\", \"F14\"]}}); up to {MAX_ATTRIBUTE_FILTER_VALUES} keys and values a key; every key "
    "given must match. Values compare case-insensitively, keys as written; a record without the key never matches.")


def _attribute_filter(v: dict[str, str | list[str]]) -> dict[str, list[str]]:
    try:
        return check_attribute_filter(v)
    except InvalidQuery as exc:
        raise ValueError(exc.message.removeprefix("attributes: ")) from None


# An attribute filter: key -> a value or a list of values (any of), each value a list once read.
AttributeFilter = Annotated[dict[str, str | list[str]], AfterValidator(_attribute_filter), WithJsonSchema({
    "type": "object", "maxProperties": MAX_ATTRIBUTE_FILTER_VALUES,
    "propertyNames": {"pattern": ATTRIBUTE_KEY_PATTERN, "maxLength": MAX_ATTRIBUTE_KEY},
    "additionalProperties": {"anyOf": [_FILTER_VALUE, {"type": "array", "items": _FILTER_VALUE, "minItems": 1,
                                                       "maxItems": MAX_ATTRIBUTE_FILTER_VALUES}]}})]
# One attribute filter in a query string or on the command line: key=value.
ATTR_PARAM_PATTERN = rf"^[A-Za-z][A-Za-z0-9_-]{{0,{MAX_ATTRIBUTE_KEY - 1}}}=[\s\S]{{0,{MAX_ATTRIBUTE_VALUE}}}$"
ATTR_PARAM_DOC = ("Only records whose own attribute holds this value, as key=value (attr=customer=ACME); repeat it "
                  f"(up to {MAX_ATTRIBUTE_FILTER_VALUES} times): values of one key are any of, different keys must all "
                  "match. Values compare case-insensitively.")


def check_attribute_filter(wanted: dict[str, str | list[str]] | None, *, field: str = "attributes"
                           ) -> dict[str, list[str]]:
    """``wanted`` with each value a list, or InvalidQuery naming ``field`` and the key at fault."""
    out: dict[str, list[str]] = {}
    for key, values in (wanted or {}).items():
        if problem := attribute_key_error(key):
            raise InvalidQuery(f"{field}: {problem}", field=field)
        values = [values] if isinstance(values, str) else list(values)
        if not values:
            raise InvalidQuery(f"{field}.{key}: expected a value or a non-empty list of values, got []",
                               field=f"{field}.{key}")
        if len(values) > MAX_ATTRIBUTE_FILTER_VALUES:
            raise InvalidQuery(f"{field}.{key}: {len(values)} values, at most {MAX_ATTRIBUTE_FILTER_VALUES} are "
                               "allowed", field=f"{field}.{key}")
        for value in values:
            if len(value) > MAX_ATTRIBUTE_VALUE:
                raise InvalidQuery(f"{field}.{key}: a value of {len(value)} characters, at most "
                                   f"{MAX_ATTRIBUTE_VALUE} are allowed", field=f"{field}.{key}")
        out[key] = values
    if len(out) > MAX_ATTRIBUTE_FILTER_VALUES:
        raise InvalidQuery(f"{field}: {len(out)} keys, at most {MAX_ATTRIBUTE_FILTER_VALUES} are allowed", field=field)
    return out


def parse_attr_params(items: list[str] | None, *, field: str = "attr") -> dict[str, list[str]]:
    """``["customer=ACME", "site=F12", "site=F14"]`` -> ``{"customer": ["ACME"], "site": ["F12", "F14"]}``
    (the query parameter and the CLI option); InvalidQuery naming ``field`` when one is not key=value."""
    if len(items or []) > MAX_ATTRIBUTE_FILTER_VALUES:
        raise InvalidQuery(f"{field}: {len(items)} given, at most {MAX_ATTRIBUTE_FILTER_VALUES} are allowed",
                           field=field)
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidQuery(f"{field}: expected key=value (e.g. customer=ACME), got {item[:80]!r}", field=field)
        if problem := attribute_key_error(key):
            raise InvalidQuery(f"{field}: {problem}", field=field)
        out.setdefault(key, []).append(value)
    return check_attribute_filter(out, field=field)


class GroupK(BaseModel):
    """How many results each group of a grouped search holds (0 leaves the group out)."""

    model_config = ConfigDict(extra="forbid")

    sops: JsonInt = Field(5, ge=0, description="SOP sections: the procedures.", json_schema_extra=limited_by("rank.max_k"))
    problems: JsonInt = Field(5, ge=0, description="Problem orders: the known problems.",
                              json_schema_extra=limited_by("rank.max_k"))
    cases: JsonInt = Field(10, ge=0, description="Past service cases.", json_schema_extra=limited_by("rank.max_k"))


class SearchQuery(BaseModel):
    """A free-text search. Filters are case-insensitive; list values mean 'any of'."""

    # An unknown field is refused, not ignored: a misspelt filter ("prodcut") would otherwise
    # widen the search without a word. The customer's own fields go in ``attributes``.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "刻蚀机前级干泵抽真空时电流一直往上涨然后跳停", "k": 10},
        {"text": "A-4410", "kind": ["case", "problem"], "product": ["HX-Litho 3000"], "created_from": "2024-01-01"},
        {"text": "E1023", "grouped": True, "group_k": {"sops": 3, "problems": 3, "cases": 5}},
        {"text": "干泵跳停", "attributes": {"customer": "ACME", "site": ["F12", "F14"]}}]})

    # Numbers and flags read as JSON Schema reads them (caselink.types); the service enforces the
    # configured bounds (limited_by), which the API's schema states.
    text: str = Field(..., min_length=1, max_length=100_000,
                      description="Symptom text, a question, or an error code / part number; not only spaces. "
                                  "At most server.max_text_chars characters.",
                      json_schema_extra={"pattern": NOT_SPACE, **limited_by("server.max_text_chars")})
    k: JsonInt = Field(10, ge=1, description="How many results (at most rank.max_k).",
                         json_schema_extra=limited_by("rank.max_k"))
    mode: Mode | None = Field(None, description="hybrid (default), dense, keyword, or learned (hybrid reranked "
                                                "by the model `caselink train` saved; hybrid when there is none).")
    kind: list[Literal["case", "problem", "sop"]] = Field(default_factory=list)
    product: list[str] = Field(default_factory=list)
    model: list[str] = Field(default_factory=list)
    module: list[str] = Field(default_factory=list)
    status: list[str] = Field(default_factory=list)
    created_from: IsoDate | None = Field(None, description="Created on or after this day. A range that ends before "
                                                           "it starts matches nothing.")
    created_to: IsoDate | None = Field(None, description="Created on or before this day.")
    open_only: JsonBool = Field(False, description="Leave out cases and problem orders whose status says they are "
                                               "finished (fixed, closed, resolved, 已关闭, ...); SOP sections and "
                                               "records without a status stay.")
    attributes: AttributeFilter = Field(default_factory=dict, description=ATTRIBUTE_FILTER_DOC)
    min_score: JsonFloat = Field(0.0, ge=0.0, le=1.0, description="Drop results scoring below this.")
    exclude_ids: list[str] = Field(default_factory=list, description="Record ids never to return.")
    grouped: JsonBool = Field(False, description=(
        "Also answer grouped by kind, each group ranked on its own with its own size (group_k): `sops`, "
        "`problems`, `cases`, plus `code_cards` when the text names an error code. Off by default so "
        "existing clients keep the flat answer they parse."))
    group_k: GroupK = Field(default_factory=GroupK, description="Group sizes when grouped (each at most rank.max_k).")


class Explanation(BaseModel):
    """Why a record was suggested."""

    reason: str = Field(..., description="One readable sentence.")
    matched_terms: list[str] = Field(default_factory=list, description="Query words found in the record.")
    matched_codes: list[str] = Field(default_factory=list, description="Error codes / part numbers in both.")
    dense_rank: int | None = Field(None, description="Rank on the semantic side (1 = best), if found there.")
    keyword_rank: int | None = Field(None, description="Rank on the keyword side, if found there.")
    dense_score: float | None = Field(None, description="Cosine similarity of the embeddings.")
    keyword_score: float | None = Field(None, description="BM25 score as a share of the query's own score, 0-1.")
    helpful_votes: int = Field(0, description="Sources whose latest feedback marked this record helpful for the "
                                              "queried record (either way round) or for the same search text.")
    unhelpful_votes: int = Field(0, description="Sources whose latest feedback marked the pair not helpful.")
    learned_score: float | None = Field(None, description="With a trained ranker: its estimated probability that "
                                                          "the record is relevant (the result's score).")
    learned_factors: list[str] = Field(default_factory=list, description="With a trained ranker, for the first "
                                       "three results: the features that moved this record most, with their signed "
                                       "share of the model's raw score (SHAP values).")


class SearchResult(BaseModel):
    id: str
    kind: str
    title: str
    score: float = Field(..., ge=0.0, le=1.0)
    snippet: str
    highlights: list[str] = Field(default_factory=list, description="Substrings of title/snippet to highlight.")
    product: str = ""
    model: str = ""
    module: str = ""
    status: str = ""
    error_codes: list[str] = Field(default_factory=list)
    created: date | None = None
    doc_id: str = Field("", description="SOP sections: the document.")
    doc_title: str = ""
    section: str = Field("", description="SOP sections: the section heading.")
    attributes: dict[str, str] = Field(default_factory=dict, description="The record's own fields (customer, site...).")
    explanation: Explanation


class SearchResponse(BaseModel):
    query: str
    mode: Mode = Field(..., description="The mode asked for.")
    path: Mode = Field(..., description="The path that produced the ranking (keyword when it fell back).")
    fallback_reason: str | None = Field(
        None, description="Why keyword search answered instead of the mode asked for, or why nothing could be ranked.")
    results: list[SearchResult]
    timings_ms: dict[str, float] = Field(default_factory=dict)
