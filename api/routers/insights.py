"""Insights over the history: emerging problems, and field suggestions for a case.

All three routes only read (a read key is enough, ``POST /v1/suggest`` included). Bad parameters
are 422 naming the field, either from request validation or from the domain functions'
:class:`caselink.errors.InvalidQuery`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ReadAccess, ServiceDep
from api.routers.records import RecordId
from api.schemas import PROBLEM_RESPONSES, SuggestField, SuggestIn, draft_record
from caselink.config import limited_by
from caselink.types import IsoDate
from recommender.emerging_report import EmergingReport
from recommender.limits import MIN_GROUP_SIZE, WINDOW_DAYS_MAX, WINDOW_DAYS_MIN
from recommender.suggest import DEFAULT_FIELDS, Suggestions, suggest_fields

router = APIRouter(tags=["insights"], dependencies=[ReadAccess])


@router.get("/emerging", response_model=EmergingReport, responses=PROBLEM_RESPONSES,
            summary="Emerging problems: bursts of similar recent cases no open problem order covers")
def emerging(
    svc: ServiceDep,
    window_days: Annotated[int, Query(ge=WINDOW_DAYS_MIN, le=WINDOW_DAYS_MAX, description="Window length in days.")
                           ] = 30,
    as_of: Annotated[IsoDate | None, Query(description="Last day of the window, YYYY-MM-DD (default: the "
                                                        "latest case date).")] = None,
    product: Annotated[str | None, Query(max_length=200, description="Only this product (case-insensitive); "
                                                                      "empty means any.")] = None,
    min_size: Annotated[int, Query(ge=MIN_GROUP_SIZE, description="Smallest flagged group.")] = 3,
    similarity: Annotated[float, Query(ge=-1.0, le=1.0, description="Cosine threshold (tuned: 0.6).")] = 0.6,
    history_windows: Annotated[int, Query(ge=0, le=24, description="Previous windows for the baseline.")] = 3,
    code_boost: Annotated[float, Query(ge=0.0, le=1.0, description="Added to a pair's similarity when "
                                                                    "they share an error code.")] = 0.1,
) -> dict[str, Any]:
    """Recent cases (in ``(as_of - window_days, as_of]``) not linked to an open problem order,
    grouped by average-linkage clustering on embedding cosine; groups of at least ``min_size``
    are flagged and ranked by ``size * growth`` against the previous windows. Also lists open
    problem orders whose case rate rose. See :mod:`recommender.emerging`."""
    from recommender.emerging import find_emerging  # sklearn/scipy: loaded on first use only

    report = find_emerging(svc, window_days=window_days, as_of=as_of, product=(product or "").strip() or None,
                           min_size=min_size, similarity=similarity, history_windows=history_windows,
                           code_boost=code_boost)
    return report.to_dict()


@router.get("/records/{record_id}/suggestions", response_model=Suggestions, responses=PROBLEM_RESPONSES,
            summary="Suggested category, module, priority, group for a stored record")
def record_suggestions(
    record_id: RecordId,
    svc: ServiceDep,
    k: Annotated[int, Query(ge=1, description="Neighbours that vote (at most rank.max_k).",
                            json_schema_extra=limited_by("rank.max_k"))] = 15,
    min_confidence: Annotated[float, Query(ge=0.0, le=1.0, description="Smallest winning share suggested.")] = 0.5,
    field: Annotated[list[SuggestField],  # type: ignore[valid-type]
                     Query(description="Fields to suggest (repeat); default category, module, priority, group.")] = [],
) -> dict[str, Any]:
    """Each of the ``k`` nearest past cases (the record itself excluded) votes for its value with
    its search score; a value is suggested when its share reaches ``min_confidence``, otherwise
    ``value`` is null and ``reason`` says why. 404 for an unknown id."""
    record = svc.get(record_id)
    out = suggest_fields(svc, record=record, k=k, min_confidence=min_confidence,
                         fields=tuple(dict.fromkeys(field)) or DEFAULT_FIELDS)
    return _out(out)


@router.post("/suggest", response_model=Suggestions, responses=PROBLEM_RESPONSES,
             summary="Suggested fields for free text or a record that need not be stored")
def suggest(body: SuggestIn, svc: ServiceDep) -> dict[str, Any]:
    """Give exactly one of ``text`` and ``record``. Changes nothing: a read key is enough."""
    record = draft_record(body.record) if body.record is not None else None
    out = suggest_fields(svc, record=record, text=body.text, k=body.k, min_confidence=body.min_confidence,
                         fields=tuple(dict.fromkeys(body.fields)))
    return _out(out)


def _out(s: Suggestions) -> dict[str, Any]:
    # Validated against the response model (Suggestions) by FastAPI, as the emerging report is.
    return {**s.to_dict(), "record_id": s.record_id or None}  # "": a draft posted without an id
