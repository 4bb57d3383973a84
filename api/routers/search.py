"""Free-text search: POST /v1/search with a SearchQuery, answered with a SearchResponse."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ReadAccess, ServiceDep, SettingsDep
from api.schemas import PROBLEM_RESPONSES
from recommender.grouping import GroupedSearchResponse, check_group_sizes, search_grouped
from recommender.results import SearchQuery, SearchResponse
from recommender.service import CaselinkService

router = APIRouter(tags=["search"], dependencies=[ReadAccess])


@router.post("/search", response_model=SearchResponse | GroupedSearchResponse, responses=PROBLEM_RESPONSES,
             summary="Search cases, problem orders and SOP sections")
async def search(q: SearchQuery, svc: ServiceDep, settings: SettingsDep, request: Request) -> Response:
    """Symptom text, a question, or an error code / part number, in Chinese (either script) or
    English. ``k`` is limited by ``rank.max_k`` and ``text`` by ``server.max_text_chars``; both
    are checked by the service and reported as 422 naming the field.

    With ``grouped: true`` the answer also holds ``sops``, ``problems`` and ``cases``, each
    ranked on its own (``group_k`` sizes, each at most ``rank.max_k``), and a ``code_cards``
    entry per error code the text names: its procedure, its problem orders (open first, with
    status and workaround), how many cases carry it and when it was last seen. The default
    stays the flat list that ticketing systems already parse."""
    check_group_sizes(q, settings.rank.max_k)  # also when not grouped: the schema states the bound
    resp, body = await run_in_threadpool(_answer, svc, q)
    request.app.state.metrics.observe_search(resp.path, resp.fallback_reason is not None)
    return Response(body, media_type="application/json")


def _answer(svc: CaselinkService, q: SearchQuery) -> tuple[SearchResponse, str]:
    """The answer and its JSON, made in one hand-off to the thread pool. A plain function
    endpoint cost two (FastAPI checks what it returns against the response model in the pool
    too: a type check of the model the service built), and the response model's serializer, a
    union of the flat and the grouped answer, took about twice as long as the answer's own."""
    resp = search_grouped(svc, q) if q.grouped else svc.search(q)
    return resp, resp.model_dump_json()
