"""Feedback on suggestions, and its export as labeled pairs for evaluation."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from api.deps import ReadAccess, ServiceDep, WriteAccess
from api.schemas import PROBLEM_RESPONSES, FeedbackIn, FeedbackOut

router = APIRouter(tags=["feedback"])

EXPORT_COLUMNS = ("id_a", "id_b", "label", "query_type", "source", "created", "feedback_id")


@router.post("/feedback", response_model=FeedbackOut, status_code=status.HTTP_201_CREATED,
             dependencies=[WriteAccess], responses=PROBLEM_RESPONSES, summary="Record a helpful / not helpful vote")
def add_feedback(body: FeedbackIn, svc: ServiceDep, request: Request) -> FeedbackOut:
    """Give ``query`` (the search text) or ``query_id`` (the record the suggestion was related
    to); ``record_id`` must exist (404 otherwise) and differ from ``query_id`` (422).

    The vote counts in ranking at once (unless ``rank.feedback`` is off): the records related to
    ``query_id``, or the same search text made again, put what is marked helpful first and what
    is marked not helpful last. Each ``source``'s latest vote on a pair counts once."""
    fid = svc.feedback(record_id=body.record_id, helpful=body.helpful, query=body.query, query_id=body.query_id,
                       source=body.source)
    request.app.state.metrics.feedback.labels(helpful=str(body.helpful).lower()).inc()
    return FeedbackOut(id=fid)


# ':int' so that /feedback/export is never read as a vote id: a DELETE there is a 405, not a 422.
@router.delete("/feedback/{feedback_id:int}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAccess],
               response_class=Response, responses=PROBLEM_RESPONSES, summary="Take a vote back")
def delete_feedback(feedback_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="The id POST /v1/feedback returned.")],
                    svc: ServiceDep) -> Response:
    """The vote no longer counts, in ranking or in the export; the same source's earlier vote
    on the pair, if any, counts again. 404 when there is no such vote."""
    svc.delete_feedback(feedback_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/feedback/export", dependencies=[ReadAccess], response_class=Response,
            responses={200: {"content": {"text/tab-separated-values": {}}}, **PROBLEM_RESPONSES},
            summary="All feedback as labeled pairs (TSV)")
def export_feedback(svc: ServiceDep) -> Response:
    """One row per vote, oldest first, in the pairs format ``eval`` reads: ``id_a`` is the query
    record id when given, else the query text (``query_type`` says which); ``id_b`` the suggested
    record; ``label`` 1 for helpful, 0 for not; ``feedback_id`` what ``DELETE /v1/feedback/{id}`` takes."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for fb in svc.votes():
        query_type, id_a = ("id", fb.query_id) if fb.query_id else ("text", fb.query)
        created = datetime.fromtimestamp(fb.created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow((id_a, fb.record_id, int(fb.helpful), query_type, fb.source, created, fb.fid))
    return Response(buf.getvalue(), media_type="text/tab-separated-values; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="feedback-pairs.tsv"'})
