"""Request and response models of the HTTP API beyond the shared search contract.

Search requests and results are :mod:`recommender.results` (``SearchQuery``, ``SearchResponse``,
``SearchResult``) and stored records are :class:`indexing.records.Record`; this module adds the
shapes only the API has: the PUT body (id optional), batch, feedback, stats, related, errors,
and the insight requests. The insight answers are the recommender's own types, not copies:
:class:`recommender.emerging_report.EmergingReport` and :class:`recommender.suggest.Suggestions`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from caselink.config import limited_by
from caselink.errors import InvalidRecord
from caselink.types import NOT_SPACE, JsonBool, JsonFloat, JsonInt
from indexing.records import ID_PATTERN, ID_RULE, Kind, Record, content_rule, parse_draft
from recommender.results import ATTRIBUTE_FILTER_DOC, AttributeFilter, Mode, SearchResult
from recommender.suggest import DEFAULT_FIELDS, SUGGESTABLE


# A string that is not blank once the server strips it (str_strip_whitespace strips Unicode White_Space,
# which unlike Python's \s leaves \x1c-\x1f alone).
NOT_BLANK = r"[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _with(extra: dict) -> Any:
    """A model's ``json_schema_extra`` that adds ``extra`` (e.g. a one-of rule) to its schema."""
    def add(schema: dict[str, Any]) -> None:
        schema.update(extra)
    return add


class RecordOut(Record):
    """A stored record as the API returns it."""


def _searchable(schema: dict[str, Any]) -> None:
    schema.update(content_rule(codes_as_text=True))
    for name in ("error_codes", "links"):  # Record also splits "E1023, E2040", and reads null as []
        prop = schema["properties"][name]
        prop["anyOf"] = [{k: prop.pop(k) for k in ("type", "items", "maxItems") if k in prop}, {"type": "string"},
                         {"type": "null"}]


class SearchableRecord(Record):
    """A record sent to be stored: one with something to search (title, text, codes...)."""

    model_config = ConfigDict(json_schema_extra=_searchable)


def _record_in_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in Record.model_fields.items():
        if name == "id":
            # Taken from the path; not in the schema, so a generated client never sends another. An id
            # equal to the path's is still read (clients written before), any other is refused.
            fields[name] = (SkipJsonSchema[str | None], Field(None))
        elif name in ("error_codes", "links"):  # Record also splits "E1023, E2040", and reads null as []
            fields[name] = (list[str] | str | None, info)
        else:
            fields[name] = (info.annotation, info)
    return fields


# Same fields and limits as Record, but ``id`` may be omitted (it is taken from the path).
# The body is then validated again as a Record, so the record's own rules apply unchanged.
_EXAMPLE_CASE = {"kind": "case", "title": "PM2 干泵跳停 E1023", "text": "PM2 干泵过流跳停，机台报 E1023，复位后跑两个 lot 又跳。",
     "product": "HX-Etch 500", "module": "真空", "error_codes": ["E1023"], "status": "open", "created": "2025-06-03"}

RecordIn = create_model(
    "RecordIn",
    __config__=ConfigDict(extra="forbid", json_schema_extra=_with(
        {"examples": [_EXAMPLE_CASE], **content_rule(codes_as_text=True)})),
    __doc__="Body of PUT /v1/records/{id}: a record whose id may be omitted.",
    **_record_in_fields(),
)


class UpsertOut(BaseModel):
    id: str
    created: bool = Field(..., description="True when no record with this id existed before.")
    changed: bool = Field(..., description="False when the stored record was already identical.")


class BatchUpsertIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": [
        {"id": "C-2025-00612", **_EXAMPLE_CASE},
        {"id": "PO-2025-021", "kind": "problem", "title": "DP-80 干泵批量过流", "status": "investigating",
         "workaround": "缩短 PM 周期至 3 个月", "error_codes": ["E1023"], "links": ["C-2025-00612"]}]}]})

    records: list[SearchableRecord] = Field(
        ..., min_length=1, description="Up to server.max_batch records. An id sent twice is stored once, as its "
                                       "last occurrence (as the same PUTs in a row would).",
        json_schema_extra=limited_by("server.max_batch"))


class BatchUpsertOut(BaseModel):
    results: list[UpsertOut]
    created: int
    updated: int
    unchanged: int


class RecordRefOut(BaseModel):
    id: str
    kind: Kind
    updated: datetime = Field(..., description="When caselink last stored a change to it (UTC); an identical "
                                                "resend leaves it as it was.")
    hash: str = Field(..., description="Opaque; changes exactly when the stored record changes.")


class RecordListOut(BaseModel):
    """One page of stored record ids, in id order (byte order of the UTF-8 ids)."""

    records: list[RecordRefOut]
    next_after: str | None = Field(..., description="Pass as `after` for the next page; null on the last page.")


class BatchDeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"ids": ["C-2025-00612", "PO-2025-021"]}]})

    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        ..., min_length=1, description="Up to server.max_batch record ids.", json_schema_extra=limited_by("server.max_batch"))


class BatchDeleteOut(BaseModel):
    deleted: list[str] = Field(..., description="Ids that were stored and are now gone from search.")
    missing: list[str] = Field(..., description="Ids that were not stored (already deleted, or never sent).")


class FeedbackIn(BaseModel):
    """A vote: give ``query`` (not blank) or ``query_id`` (not empty), or both; ``query_id`` must
    differ from ``record_id`` (422: a record is not a suggestion for itself)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_with({"examples": [
        {"record_id": "PO-2023-003", "helpful": True, "query_id": "C-2023-00042", "source": "crm"},
        {"record_id": "SOP-VAC-003#4", "helpful": False, "query": "干泵跳停 E1023", "source": "engineer-117"}],
        "anyOf": [{"required": ["query"], "properties": {"query": {"pattern": NOT_SPACE}}},
                  {"required": ["query_id"], "properties": {"query_id": {"pattern": NOT_BLANK}}}]}))

    record_id: str = Field(..., min_length=1, max_length=200, description="The suggested record.",
                           json_schema_extra={"pattern": NOT_BLANK})
    helpful: JsonBool = Field(..., description="Was the suggestion useful?")
    query: str = Field("", max_length=20_000, description="The search text the suggestion answered.")
    query_id: str = Field("", max_length=200, description="Or: the record the suggestion was related to.")
    source: str = Field("", max_length=200, description="Who voted, e.g. an engineer's id or 'crm'; the search page "
                        "sends one id per browser. A source's latest verdict on a pair counts once in ranking.")


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
    centering: list[str] = Field(default_factory=list, description=(
        "Record kinds whose vectors are centred on their own mean ('*': the corpus mean, which the other kinds "
        "use); empty when vectors are not centred (vectors.center off, or too few records)."))
    feedback: int = Field(0, description="Stored helpful / not helpful votes.")
    backend: str = Field("local", description="The search backend serving (settings backend.kind).")
    encoder_error: str | None = Field(None, description="Set when the encoder failed and search fell back.")
    learned: str = Field("", description="The trained ranker in use (trees, training date, depth, whether "
                         "rank.learned = auto uses it); empty when there is none.")
    learned_warning: str | None = Field(None, description="Set when the ranker file was refused, or the model was "
                                        "trained at another rank.learned_depth than this server reranks.")


class RelatedOut(BaseModel):
    """Records related to one record, never the record itself: grouped by kind and as one ranking."""

    id: str | None = Field(..., description="The record asked about; null for a record posted without an id.")
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
    request_id: str | None = Field(None, description="This request's id, as in the X-Request-ID header and the "
                                                     "server's log: quote it when reporting a failure.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in ((400, "Body not UTF-8, bad Content-Length, or (no API key configured) a non-loopback Host"),
                       (401, "Missing or wrong API key"), (403, "Read-only key on a write route"),
                       (404, "Unknown record id"),
                       (413, "Request body too large"), (422, "Invalid input (names the field)"),
                       (503, "Index not ready or not readable, or storage unavailable"),
                       (507, "Out of storage space: the request was not acknowledged"))
}


# -- insights: field suggestions --------------------------------------------------------------------
SuggestField = Literal[SUGGESTABLE]  # type: ignore[valid-type]  # the fields suggest_fields can predict


def _draft_record_fields() -> dict[str, Any]:
    fields = _record_in_fields()
    fields["kind"] = (Kind, Field("case", description="Defaults to 'case'."))
    fields["id"] = (str | None, Field(None, description="Optional: the ticket's id if it has one. A stored record "
                                                        f"with this id is never among the answers. {ID_RULE}.",
                                      json_schema_extra={"pattern": f"^$|{ID_PATTERN}"}))
    return fields


# Like RecordIn, but ``kind`` defaults to 'case': a case being written need not be stored yet.
DraftRecordIn = create_model(
    "DraftRecordIn",
    __config__=ConfigDict(extra="forbid", json_schema_extra=_with({"examples": [
        {k: v for k, v in _EXAMPLE_CASE.items() if k != "kind"}], **content_rule(codes_as_text=True)})),
    __doc__="A record that need not be stored (a ticket being written); its id may be omitted. It needs something "
            "to compare: a title, text, product, model, module or error code.",
    **_draft_record_fields(),
)

def draft_record(body: BaseModel, field: str = "record") -> Record:
    """The :class:`Record` a posted :data:`DraftRecordIn` stands for (id ``""`` when it has none);
    errors name ``record.<field>``."""
    try:
        return parse_draft(body.model_dump(), where=field)
    except InvalidRecord as exc:
        raise InvalidRecord(exc.message, field=f"{field}.{exc.field}" if exc.field else field) from None


class SuggestIn(BaseModel):
    """Body of POST /v1/suggest: exactly one of ``text`` (not blank) and ``record``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_with({"examples": [
        {"text": "机械手取片时真空吸附报警", "k": 15}, {"record": {"title": "干泵跳停 E1023", "product": "HX-Etch 500"}}],
        "oneOf": [{"required": ["text"], "properties": {"text": {"type": "string", "pattern": NOT_SPACE},
                                                        "record": {"type": "null"}}},
                  {"required": ["record"], "properties": {"record": {"type": "object"}, "text": {"type": "null"}}}]}))

    text: str | None = Field(None, max_length=100_000, description="Free text, e.g. a new case's description.")
    record: DraftRecordIn | None = Field(  # type: ignore[valid-type]
        None, description="A record (stored or not); a stored id never votes.")
    k: JsonInt = Field(15, ge=1, description="Neighbours that vote (at most rank.max_k).",
                         json_schema_extra=limited_by("rank.max_k"))
    min_confidence: JsonFloat = Field(0.5, ge=0.0, le=1.0, description="Smallest winning share that is suggested.")
    fields: list[SuggestField] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_FIELDS), min_length=1, description="Fields to suggest.")


class RelatedIn(BaseModel):
    """Body of POST /v1/related: a record that need not be stored, and how to rank."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"record": {"title": "干泵又跳了 E1023", "text": "客户 PM1 干泵过流跳停，报 E1023。", "product": "HX-Etch 500",
                    "error_codes": ["E1023"]}, "k": 10, "kind": ["problem", "sop"], "open_only": True}]})

    record: DraftRecordIn = Field(  # type: ignore[valid-type]
        ..., description="The ticket as written so far: title, text, error codes, product, module...")
    k: JsonInt = Field(10, ge=1, description="How many results in all (at most rank.max_k).",
                         json_schema_extra=limited_by("rank.max_k"))
    kind: list[Kind] = Field(default_factory=list, description="Only these kinds.")
    mode: Mode | None = Field(None, description="hybrid (default), dense, keyword or learned.")
    exclude_linked: JsonBool = Field(False, description="Leave out the records it links to.")
    open_only: JsonBool = Field(False, description="Leave out finished cases and problem orders (status fixed, closed, "
                                               "已关闭, ...).")
    min_score: JsonFloat = Field(0.0, ge=0.0, le=1.0, description="Drop results scoring below this.")
    attributes: AttributeFilter = Field(default_factory=dict, description=ATTRIBUTE_FILTER_DOC)


class SectionOut(BaseModel):
    id: str = Field(..., description="The section's record id, '{doc_id}#{n}'.")
    section: str = Field(..., description="The section heading.")


class SectionTextOut(SectionOut):
    text: str = Field(..., description="The section's body.")


class DocumentOut(BaseModel):
    """An SOP document as stored: its sections in order, with their text."""

    doc_id: str
    title: str
    sections: list[SectionTextOut]


class DocumentPutOut(BaseModel):
    """What a PUT of an SOP file stored (section texts are not echoed back)."""

    doc_id: str
    title: str
    sections: list[SectionOut]
    created: int = Field(..., description="Sections that were new.")
    updated: int = Field(..., description="Sections whose text or fields changed.")
    unchanged: int
    removed: list[str] = Field(..., description="Stored sections the document no longer has, now deleted.")
    warnings: list[str] = Field(default_factory=list, description="What the parser noticed (a guessed encoding...).")
