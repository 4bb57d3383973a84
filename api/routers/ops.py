"""Operations: liveness, readiness, stats and Prometheus metrics.

``/healthz`` and ``/readyz`` are always open (for load balancers and orchestrators). ``/v1/stats``
and ``/metrics`` need a read key once keys are configured (Prometheus: ``authorization:
{credentials: <key>}`` in the scrape config).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import ReadAccess, ServiceDep
from api.errors import problem
from api.schemas import PROBLEM_RESPONSES, Health, StatsOut

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="The index is loaded and searchable",
            responses={503: PROBLEM_RESPONSES[503]})
def readyz(request: Request) -> Response:
    svc = request.app.state.service
    if svc is None:
        exc = request.app.state.startup_error
        detail = exc.message if exc is not None else "the index is still loading"
        return problem(503, detail, slug="index-not-ready", title="Index not ready",
                       hint=getattr(exc, "hint", None), headers={"Retry-After": "5"})
    if behind := request.app.state.catching_up:
        return problem(503, f"catching up with the record store: {behind} changes to apply", slug="index-not-ready",
                       title="Index not ready", headers={"Retry-After": "5"})
    return JSONResponse(Health(status="ready", records=svc.indexed()).model_dump(exclude_none=True))


@router.get("/v1/stats", response_model=StatsOut, dependencies=[ReadAccess], summary="Counts, index and model",
            responses=PROBLEM_RESPONSES)
def stats(svc: ServiceDep) -> StatsOut:
    s = svc.stats()
    return StatsOut(records=s.records, total=sum(s.records.values()), indexed=s.indexed, model=s.model, dim=s.dim,
                    factory=s.factory, snapshot=Path(s.snapshot).name if s.snapshot else "", built_at=s.built_at,
                    change_seq=s.change_seq, centering=s.centering, feedback=s.feedback,
                    backend=s.backend, encoder_error=svc.encoder_error, learned=s.learned,
                    learned_warning=s.learned_warning)


@router.get("/metrics", dependencies=[ReadAccess], summary="Prometheus metrics (text format)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                                                **{c: PROBLEM_RESPONSES[c] for c in (401, 403)}})
def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render(request.app.state.service)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
