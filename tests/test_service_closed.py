"""A closed service refuses every read and write with ServiceClosed, and over HTTP a request that
still holds it while the server shuts down gets a 503 problem, not an answer or a stack trace."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest
from _server import build_index, make_settings

from api.app import create_app
from caselink.errors import IndexNotReady, ServiceClosed
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS

CALLS = {
    "search": lambda s: s.search(SearchQuery(text="干泵 停机", k=3)),
    "get": lambda s: s.get("C-001"),
    "related": lambda s: s.related("C-001", k=3),
    "records": lambda s: s.records(["C-001"]),
    "stats": lambda s: s.stats(),
    "indexed": lambda s: s.indexed(),
    "upsert": lambda s: s.upsert([Record(id="C-NEW", kind="case", title="新的干泵停机 E1023")]),
    "delete": lambda s: s.delete("C-002"),
    "feedback": lambda s: s.feedback(record_id="C-001", helpful=True, query="干泵"),
    "follow": lambda s: s.follow(),
    "encoder_error": lambda s: s.encoder_error,
}


@pytest.fixture
def closed(settings, use_encoder):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    return svc


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_every_call_on_a_closed_service_raises_service_closed(closed, call):
    with pytest.raises(ServiceClosed, match="the service is closed") as exc:
        call(closed)
    assert isinstance(exc.value, IndexNotReady)  # the API's 503 for it


def test_closing_twice_is_harmless_and_nothing_stored_changed(closed, settings, use_encoder):
    closed.close()
    copy.copy(closed)  # protocols probing dunders still see AttributeError, not ServiceClosed
    for call in CALLS.values():  # the refused writes stored nothing
        with pytest.raises(ServiceClosed):
            call(closed)
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert svc.indexed() == len(CORPUS) and svc.votes() == []
        assert set(svc.records(["C-002", "C-NEW"])) == {"C-002"}
        assert svc.search(SearchQuery(text="干泵 停机", k=3)).results[0].id in {"C-001", "C-002"}
    finally:
        svc.close()


def test_a_request_holding_the_service_as_it_closes_gets_a_503_problem(tmp_path):
    settings = make_settings(tmp_path)
    build_index(settings)
    app = create_app(settings)

    async def scenario() -> list[httpx.Response]:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        try:
            # What a request that took the service before shutdown sees once shutdown has closed it.
            await asyncio.to_thread(app.state.service.close)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return [await client.post("/v1/search", json={"text": "真空泵无法启动", "k": 3}),
                        await client.get("/v1/records/C-1001/related"),
                        await client.get("/v1/records/C-1001")]
        finally:
            await lifespan.__aexit__(None, None, None)  # closes the service a second time: harmless

    for resp in asyncio.run(scenario()):
        assert resp.status_code == 503, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        body = resp.json()
        assert body["type"] == "urn:caselink:problem:index-not-ready"
        assert "the service is closed" in body["detail"] and "Traceback" not in resp.text
