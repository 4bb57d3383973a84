"""The record model: one flat schema for service cases, problem orders and SOP sections.

A flat model (kind-specific fields simply stay empty) keeps storage, the API schema and the
loaders' column mapping one thing instead of three.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema, field_validator

from caselink.errors import InvalidRecord
from caselink.types import NOT_SPACE, SPACE, IsoDate
from indexing.normalize import normalize

Kind = Literal["case", "problem", "sop"]
KINDS: tuple[str, ...] = ("case", "problem", "sop")

# Statuses that mean a case or problem order is finished (compared after normalize(): one script,
# half-width, case-folded; spaces and punctuation dropped). Anything else, empty included, is open.
CLOSED_STATUSES = frozenset({
    "fixed", "closed", "resolved", "done", "cancelled", "canceled", "rejected", "duplicate", "wontfix",
    "已关闭", "已解决", "已修复", "已完成", "关闭", "完成", "已取消",
})

_NOT_WORD = re.compile(r"[\W_]+")
# 1-200 characters, no control characters, '/' or '?', no space at either end (an id is not stripped:
# ' C-1' and 'C-1' would otherwise be one record under two spellings).
_ID_END = rf"[^\x00-\x1f\x7f/?{SPACE}]"
_ID_RE = re.compile(rf"^{_ID_END}(?:[^\x00-\x1f\x7f/?]{{0,198}}{_ID_END})?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What Record.id accepts, for the API schema; the validator below says it in words.
ID_PATTERN = _ID_RE.pattern
ID_RULE = "1-200 characters, no control characters, '/' or '?', no space at either end"

# What makes a record searchable (Record.is_empty): one of these with a visible character (control
# characters count as spaces); the SOP heading fields count for SOP sections only.
CONTENT_FIELDS: tuple[str, ...] = ("title", "text", "cause", "resolution", "workaround", "product", "model", "module",
                                   "error_codes")
SOP_CONTENT_FIELDS: tuple[str, ...] = ("doc_title", "section")
_VISIBLE = rf"[^{SPACE}\x00-\x1f\x7f]"  # a character that is neither a space nor a control character
_CODE_SEPARATORS = r",;，；、|"  # how a string of error codes is split (Record._split_list)

# The customer's own fields (Record.attributes): string keys and values, bounded so that a record
# stays small and a filter on them stays cheap on every backend. A key is ASCII so that it reads the
# same in a JSON body, a query parameter (attr=customer=ACME) and a Milvus JSON path.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 200
ATTRIBUTE_KEY_PATTERN = rf"^[A-Za-z][A-Za-z0-9_-]{{0,{MAX_ATTRIBUTE_KEY - 1}}}$"
ATTRIBUTE_KEY_RULE = (f"1-{MAX_ATTRIBUTE_KEY} ASCII letters, digits, '_' or '-', starting with a letter "
                      "(e.g. customer, site, serial, sw_version)")
_ATTRIBUTE_KEY = re.compile(ATTRIBUTE_KEY_PATTERN)
ATTRIBUTES_DOC = (f"The customer's own fields (customer, site, serial number, software version...): up to "
                  f"{MAX_ATTRIBUTES}, keys {ATTRIBUTE_KEY_RULE}, values strings of at most {MAX_ATTRIBUTE_VALUE} "
                  "characters (an empty value is dropped). Stored and returned in key order; filters compare values "
                  "case-insensitively, keys as written.")


# What a write with a field the schema has no place for is told (loaders and the API alike).
UNKNOWN_FIELD = ("unknown field; a record's own fields (customer, site, serial number, software version...) go "
                 "under 'attributes', e.g. {\"attributes\": {\"customer\": \"ACME\"}}")


def attribute_key_error(key: object) -> str | None:
    """Why ``key`` is no attribute key (None when it is one)."""
    if not isinstance(key, str) or not _ATTRIBUTE_KEY.fullmatch(key):
        return f"key {str(key)[:80]!r} must be {ATTRIBUTE_KEY_RULE}"
    return None


def attributes_schema() -> dict:
    """The JSON schema of an attributes map, as the validators below enforce it."""
    return {"type": "object", "maxProperties": MAX_ATTRIBUTES,
            "propertyNames": {"pattern": ATTRIBUTE_KEY_PATTERN, "maxLength": MAX_ATTRIBUTE_KEY},
            "additionalProperties": {"type": "string", "maxLength": MAX_ATTRIBUTE_VALUE}}



_AsSent = Annotated[str, StringConstraints(strip_whitespace=False)]  # an attribute key or value, not stripped


class Record(BaseModel):
    """A service case, a problem order or one section of an SOP document."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        ..., max_length=200, description=f"Stable id from the source system, e.g. 'C-2024-0113' or 'SOP-VAC-01#3': "
                                         f"{ID_RULE}.", json_schema_extra={"pattern": ID_PATTERN})
    kind: Kind = Field(..., description="'case', 'problem' (problem order) or 'sop' (one SOP section).")
    title: str = Field("", max_length=1000)
    text: str = Field("", max_length=200_000, description="Symptom/description, or the SOP section body.")
    product: str = Field("", max_length=200)
    model: str = Field("", max_length=200)
    module: str = Field("", max_length=200)
    error_codes: list[str] = Field(default_factory=list, max_length=100)
    status: str = Field("", max_length=50)
    priority: str = Field("", max_length=50)
    category: str = Field("", max_length=200)
    group: str = Field("", max_length=200, description="Responsible group.")
    cause: str = Field("", max_length=50_000)
    resolution: str = Field("", max_length=50_000)
    workaround: str = Field("", max_length=50_000)
    created: IsoDate | None = None
    closed: IsoDate | None = None
    doc_id: str = Field("", max_length=200, description="SOP sections: the document they belong to.")
    doc_title: str = Field("", max_length=1000)
    section: str = Field("", max_length=1000, description="SOP sections: the section heading.")
    links: list[str] = Field(default_factory=list, max_length=1000, description="Ids of linked records.")
    attributes: Annotated[dict[_AsSent, _AsSent], WithJsonSchema(attributes_schema())] = Field(
        default_factory=dict, description=ATTRIBUTES_DOC)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _ID_RE.fullmatch(v):
            raise ValueError(f"must be {ID_RULE}")
        return v

    @field_validator(
        "title", "text", "product", "model", "module", "status", "priority", "category", "group",
        "cause", "resolution", "workaround", "doc_id", "doc_title", "section",
    )
    @classmethod
    def _strip_control(cls, v: str) -> str:
        return _CONTROL.sub(" ", v)

    @field_validator("error_codes", "links", mode="before")
    @classmethod
    def _split_list(cls, v):
        if v is None:
            return []
        if isinstance(v, str):
            return [p.strip() for p in re.split(rf"[{_CODE_SEPARATORS}\s]+", v) if p.strip()]
        return v

    @field_validator("error_codes", "links")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip() for s in v if s and s.strip()))

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, v: dict[str, str]) -> dict[str, str]:
        # Checked as sent (nothing stripped first), as the schema states them; then cleaned.
        if len(v) > MAX_ATTRIBUTES:
            raise ValueError(f"{len(v)} attributes, at most {MAX_ATTRIBUTES} are allowed")
        out = {}
        for key, value in v.items():
            if problem := attribute_key_error(key):
                raise ValueError(problem)
            if len(value) > MAX_ATTRIBUTE_VALUE:
                raise ValueError(f"value of {key!r} has {len(value)} characters, at most {MAX_ATTRIBUTE_VALUE} "
                                 "are allowed")
            if value := _CONTROL.sub(" ", value).strip():
                out[key] = value
        return dict(sorted(out.items()))  # in key order: the same fields sent in another order are no change

    def content_hash(self) -> str:
        """Hash of everything that is embedded or indexed; unchanged hash means nothing to re-embed.
        A record without attributes hashes as before they existed, so an upgrade changes no hash."""
        dumped = self.model_dump_json(exclude=None if self.attributes else {"attributes"})
        return hashlib.sha256(dumped.encode("utf-8")).hexdigest()

    def searchable_text(self) -> str:
        """The text a sentence encoder sees: title first, then the body fields that describe the problem."""
        heading = [self.doc_title, self.section] if self.kind == "sop" else []
        parts = [self.title, *heading, self.text, self.cause, self.resolution, self.workaround]
        return "\n".join(p for p in parts if p)

    def facets(self) -> str:
        """Short structured context (product, module, codes) for keyword matching."""
        return " ".join(p for p in [self.product, self.model, self.module, *self.error_codes] if p)

    def is_empty(self) -> bool:
        """Nothing to search or compare by: no title, body, SOP heading, product, model, module or code
        with a visible character (:data:`CONTENT_FIELDS`; the API schema says the same, :func:`content_rule`)."""
        fields = CONTENT_FIELDS + (SOP_CONTENT_FIELDS if self.kind == "sop" else ())
        values = (getattr(self, f) for f in fields)
        return not any(v.strip() for value in values for v in (value if isinstance(value, list) else [value]))

    def display_title(self) -> str:
        if self.kind == "sop" and self.doc_title:
            return f"{self.doc_title} / {self.section}" if self.section else self.doc_title
        return self.title or self.text[:60]


def content_rule(*, codes_as_text: bool = False) -> dict:
    """The JSON schema of :meth:`Record.is_empty` being false, for a request body that must be searchable:
    any of :data:`CONTENT_FIELDS` with a visible character, or an SOP section's heading fields.
    ``codes_as_text``: the body may also give ``error_codes`` as one string, split as Record splits it."""
    text = {"type": "string", "pattern": _VISIBLE}
    codes: dict = {"type": "array", "contains": {"type": "string", "pattern": NOT_SPACE}}
    if codes_as_text:
        codes = {"anyOf": [codes, {"type": "string", "pattern": rf"[^{_CODE_SEPARATORS}{SPACE}]"}]}
    branches = [{"required": [f], "properties": {f: codes if f == "error_codes" else text}} for f in CONTENT_FIELDS]
    branches += [{"required": ["kind", f], "properties": {"kind": {"const": "sop"}, f: text}}
                 for f in SOP_CONTENT_FIELDS]
    return {"anyOf": branches}


def is_closed_status(status: str) -> bool:
    """True for fixed/closed/resolved/won't fix/已关闭/已解決... (case, width and script folded;
    spaces and punctuation ignored)."""
    return _NOT_WORD.sub("", normalize(status)) in CLOSED_STATUSES


def parse_record(data: dict, *, where: str = "record") -> Record:
    """Validate a dict into a Record; errors name the field, e.g. ``row 12: field 'kind': ...``."""
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "record"
        message = UNKNOWN_FIELD if first["type"] == "extra_forbidden" else first["msg"]
        raise InvalidRecord(f"{where}: field '{field}': {message}", field=field) from None


# Stands in for the id of a draft that has none while it is validated; never stored or returned.
_DRAFT_ID = "(draft)"


def parse_draft(data: dict, *, where: str = "record") -> Record:
    """A record that need not be stored (a ticket being written): ``kind`` defaults to 'case' and
    ``id`` may be missing, null or empty, which gives ``id == ""``. Errors as :func:`parse_record`."""
    rid = data.get("id") or ""
    record = parse_record({"kind": "case", **data, "id": rid or _DRAFT_ID}, where=where)
    return record if rid else record.model_copy(update={"id": ""})


def require_content(record: Record, *, where: str = "record") -> Record:
    """``record``, or InvalidRecord when it has nothing to search: such a record could only ever
    match other empty records (by the look of their ids), so it is refused where records come in
    rather than indexed as noise. Stores written before this check may hold some; they stay."""
    if record.is_empty():
        raise InvalidRecord(f"{where}: field 'text': record '{record.id}' has no title, text, cause, resolution, "
                            "workaround, product, model, module or error code, so there is nothing to search",
                            field="text", hint="add a title or a description and send it again")
    return record


def record_to_json(record: Record) -> str:
    return record.model_dump_json(exclude_defaults=True)


def record_from_json(text: str) -> Record:
    return Record.model_validate(json.loads(text))
