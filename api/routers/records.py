"""Records: read, create or update, delete, batch upsert, and related records (stored or not).

Writes are searchable as soon as the call returns (the service indexes before acknowledging).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import ReadAccess, ServiceDep, SettingsDep, WriteAccess
from caselink.config import limited_by
from api.schemas import (PROBLEM_RESPONSES, BatchDeleteIn, BatchDeleteOut, BatchUpsertIn, BatchUpsertOut, RecordIn,
                         RecordListOut, RecordOut, RecordRefOut, RelatedIn, RelatedOut, UpsertOut, draft_record)
from caselink.errors import InvalidRecord
from indexing.records import ID_PATTERN, ID_RULE, Record, parse_record, require_content
from recommender.limits import MAX_ATTRIBUTE_FILTER_VALUES
from recommender.results import ATTR_PARAM_DOC, ATTR_PARAM_PATTERN, Mode, SearchResponse, parse_attr_params
from recommender.service import CaselinkService

router = APIRouter(tags=["records"])

# The pattern is Record's id rule, checked (with its message) where a record is built from the id.
RecordId = Annotated[str, Path(min_length=1, max_length=200, json_schema_extra={"pattern": ID_PATTERN},
                               description=f"Record id, URL-encoded ('#' as %23): {ID_RULE}.")]
_GROUPS = {"case": "cases", "problem": "problems", "sop": "sops"}


def _upsert(svc: CaselinkService, records: list[Record]) -> list[UpsertOut]:
    return [UpsertOut(id=o.id, created=o.created, changed=o.changed) for o in svc.upsert(records)]


@router.post("/records:batch", response_model=BatchUpsertOut, dependencies=[WriteAccess],
             responses=PROBLEM_RESPONSES, summary="Create or update many records at once")
def batch_upsert(body: BatchUpsertIn, svc: ServiceDep, settings: SettingsDep) -> BatchUpsertOut:
    """All or nothing: a bad record fails the whole batch with 422 naming it (``records.3.kind``).
    One result per id, in the order the ids first appear; a repeated id is stored as its last occurrence."""
    limit = settings.server.max_batch
    if len(body.records) > limit:
        raise InvalidRecord(f"expected at most {limit} records per batch, got {len(body.records)}", field="records")
    for i, rec in enumerate(body.records):
        try:
            require_content(rec, where=f"records.{i}")
        except InvalidRecord as exc:
            raise InvalidRecord(exc.message, field=f"records.{i}.text", hint=exc.hint) from None
    # An id sent twice is stored once, as its last occurrence: what the same PUTs in a row leave
    # (JSON Schema cannot say "unique by id", so refusing it would refuse schema-valid batches).
    last = {rec.id: rec for rec in body.records}
    results = _upsert(svc, list(last.values()))
    created = sum(r.created for r in results)
    updated = sum(r.changed and not r.created for r in results)
    return BatchUpsertOut(results=results, created=created, updated=updated,
                          unchanged=len(results) - created - updated)


@router.post("/records:batchDelete", response_model=BatchDeleteOut, dependencies=[WriteAccess],
             responses=PROBLEM_RESPONSES, summary="Delete many records at once")
def batch_delete(body: BatchDeleteIn, svc: ServiceDep, settings: SettingsDep) -> BatchDeleteOut:
    """Idempotent, like DELETE: ids that are not stored are listed in ``missing``, not an error, so a
    purge that is retried after a lost response finishes instead of failing."""
    limit = settings.server.max_batch
    if len(body.ids) > limit:
        raise InvalidRecord(f"expected at most {limit} ids per batch, got {len(body.ids)}", field="ids")
    deleted, missing = svc.delete_many(list(dict.fromkeys(body.ids)))
    return BatchDeleteOut(deleted=deleted, missing=missing)


@router.get("/records", response_model=RecordListOut, dependencies=[ReadAccess], responses=PROBLEM_RESPONSES,
            summary="Stored record ids, a page at a time (to reconcile with the source system)")
def list_records(
    svc: ServiceDep,
    after: Annotated[str, Query(max_length=200, description="Start after this id: the previous page's "
                                                            "`next_after` (empty: from the start).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000, description="Ids per page.")] = 500,
    kind: Annotated[list[Literal["case", "problem", "sop"]], Query(description="Only these kinds (repeat).")] = [],
) -> RecordListOut:
    """Walk every page to get the ids caselink holds; an id the source no longer has is a delete
    that never arrived (send it to ``POST /v1/records:batchDelete``). Writes made while walking
    are seen if their id sorts after the current page."""
    rows, next_after = svc.list_ids(after=after, limit=limit, kinds=kind)
    return RecordListOut(records=[RecordRefOut(id=i, kind=k, updated=datetime.fromtimestamp(u, timezone.utc), hash=h)
                                  for i, k, u, h in rows], next_after=next_after)


@router.get("/records/{record_id}", response_model=RecordOut, dependencies=[ReadAccess],
            responses=PROBLEM_RESPONSES, summary="One stored record")
def get_record(record_id: RecordId, svc: ServiceDep) -> RecordOut:
    return RecordOut.model_validate(svc.get(record_id).model_dump())


@router.put("/records/{record_id}", response_model=UpsertOut, dependencies=[WriteAccess],
            responses={201: {"model": UpsertOut, "description": "Created"}, **PROBLEM_RESPONSES},
            summary="Create or update a record")
def put_record(record_id: RecordId, body: RecordIn, svc: ServiceDep, response: Response) -> UpsertOut:  # type: ignore[valid-type]
    """The id is the path's. 201 when created, 200 when updated (``changed`` false when the record
    was already identical). The record needs something to search: a title, text, product, model,
    module or error code."""
    data = body.model_dump(exclude_unset=True)
    body_id = data.pop("id", None)
    if body_id is not None and body_id != record_id:
        raise InvalidRecord(f"id in the body ('{body_id}') does not match the id in the path ('{record_id}')",
                            field="id")
    record = parse_record({**data, "id": record_id}, where="body")
    out = _upsert(svc, [record])[0]
    response.status_code = status.HTTP_201_CREATED if out.created else status.HTTP_200_OK
    return out


@router.delete("/records/{record_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAccess],
               response_class=Response, responses=PROBLEM_RESPONSES, summary="Delete a record")
def delete_record(record_id: RecordId, svc: ServiceDep) -> Response:
    svc.delete(record_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/records/{record_id}/related", response_model=RelatedOut, dependencies=[ReadAccess],
            responses=PROBLEM_RESPONSES, summary="Records related to a record (never itself)")
def related(
    record_id: RecordId,
    svc: ServiceDep,
    k: Annotated[int, Query(ge=1, description="How many results in all (at most rank.max_k).",
                            json_schema_extra=limited_by("rank.max_k"))] = 10,
    kind: Annotated[list[Literal["case", "problem", "sop"]], Query(description="Only these kinds (repeat).")] = [],
    mode: Annotated[Mode | None, Query(description="hybrid, dense, keyword or learned.")] = None,
    exclude_linked: Annotated[bool, Query(description="Leave out records it already links to.")] = False,
    open_only: Annotated[bool, Query(description="Leave out finished cases and problem orders (status fixed, "
                                                 "closed, 已关闭, ...).")] = False,
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    attr: Annotated[list[str], Query(description=ATTR_PARAM_DOC, json_schema_extra={
        "items": {"type": "string", "pattern": ATTR_PARAM_PATTERN}, "maxItems": MAX_ATTRIBUTE_FILTER_VALUES})] = [],
) -> RelatedOut:
    resp = svc.related(record_id, k=k, kinds=list(kind), mode=mode, exclude_linked=exclude_linked,
                       min_score=min_score, open_only=open_only, attributes=parse_attr_params(attr))
    return _grouped(record_id, resp)


@router.post("/related", response_model=RelatedOut, dependencies=[ReadAccess], responses=PROBLEM_RESPONSES,
             summary="Records related to a record that need not be stored (a ticket being written)")
def related_to_draft(body: RelatedIn, svc: ServiceDep) -> RelatedOut:
    """Ranked as ``GET /v1/records/{id}/related`` ranks a stored record; changes nothing, so a read
    key is enough. A stored record with the posted id is never among the answers."""
    record = draft_record(body.record)
    resp = svc.related_to(record, k=body.k, kinds=list(body.kind), mode=body.mode,
                          exclude_linked=body.exclude_linked, min_score=body.min_score, open_only=body.open_only,
                          attributes=body.attributes)
    return _grouped(record.id or None, resp)


def _grouped(record_id: str | None, resp: SearchResponse) -> RelatedOut:
    results = [r for r in resp.results if r.id != record_id]  # the service already excludes it
    groups: dict[str, list] = {g: [] for g in _GROUPS.values()}
    for r in results:
        groups[_GROUPS.get(r.kind, "cases")].append(r)
    return RelatedOut(id=record_id, mode=resp.mode, path=resp.path, fallback_reason=resp.fallback_reason,
                      results=results, timings_ms=resp.timings_ms, **groups)
