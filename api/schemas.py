"""Request and response models of the HTTP API beyond the shared search contract.

Search requests and results are :mod:`recommender.results` (``SearchQuery``, ``SearchResponse``,
``SearchResult``) and stored records are :class:`indexing.records.Record`; this module adds the
shapes only the API has: the PUT body (id optional), batch, feedback, stats, related, errors.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from indexing.records import Record
from recommender.results import Mode, SearchResult


class RecordOut(Record):
    """A stored record as the API returns it."""


def _record_in_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in Record.model_fields.items():
        if name == "id":
            fields[name] = (str | None, Field(None, description="Optional; must equal the id in the path."))
        elif name in ("error_codes", "links"):  # Record also splits "E1023, E2040"
            fields[name] = (list[str] | str, info)
        else:
            fields[name] = (info.annotation, info)
    return fields


# Same fields and limits as Record, but ``id`` may be omitted (it is taken from the path).
# The body is then validated again as a Record, so the record's own rules apply unchanged.
RecordIn = create_model(
    "RecordIn",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Body of PUT /v1/records/{id}: a record whose id may be omitted.",
    **_record_in_fields(),
)


class UpsertOut(BaseModel):
    id: str
    created: bool = Field(..., description="True when no record with this id existed before.")
    changed: bool = Field(..., description="False when the stored record was already identical.")


class BatchUpsertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[Record] = Field(..., min_length=1, description="Up to server.max_batch records, unique ids.")


class BatchUpsertOut(BaseModel):
    results: list[UpsertOut]
    created: int
    updated: int
    unchanged: int


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    record_id: str = Field(..., min_length=1, max_length=200, description="The suggested record.")
    helpful: StrictBool = Field(..., description="Was the suggestion useful?")
    query: str = Field("", max_length=20_000, description="The search text the suggestion answered.")
    query_id: str = Field("", max_length=200, description="Or: the record the suggestion was related to.")
    source: str = Field("", max_length=200, description="Where the vote came from, e.g. 'page' or 'crm'.")


class FeedbackOut(BaseModel):
    id: int


class StatsOut(BaseModel):
    records: dict[str, int] = Field(..., description="Stored records per kind.")
    total: int
    indexed: int = Field(..., description="Records in the live keyword index.")
    model: str
    dim: int
    factory: str = Field(..., description="FAISS index factory string.")
    snapshot: str = Field(..., description="Name of the current index snapshot.")
    built_at: str
    change_seq: int
    encoder_error: str | None = Field(None, description="Set when the encoder failed and search fell back.")


class RelatedOut(BaseModel):
    """Records related to one record, never the record itself: grouped by kind and as one ranking."""

    id: str
    mode: Mode
    path: Mode
    fallback_reason: str | None = None
    cases: list[SearchResult]
    problems: list[SearchResult]
    sops: list[SearchResult]
    results: list[SearchResult] = Field(..., description="All of the above in rank order.")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Health(BaseModel):
    status: str
    records: int | None = None
    detail: str | None = None


class ProblemItem(BaseModel):
    field: str | None
    message: str


class Problem(BaseModel):
    """An RFC 7807-style error body (``application/problem+json``)."""

    type: str = Field(..., description="A URN naming the kind of problem, e.g. urn:caselink:problem:not-found.")
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="The input at fault, dotted: 'text', 'records.3.kind'.")
    hint: str | None = Field(None, description="What to do next, when known.")
    errors: list[ProblemItem] | None = Field(None, description="Every validation error, when there are several.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in ((401, "Missing or wrong API key"), (403, "Read-only key on a write route"),
                       (404, "Unknown record id"),
                       (413, "Request body too large"), (422, "Invalid input (names the field)"),
                       (503, "Index not ready or not readable"))
}
