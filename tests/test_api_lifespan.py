"""The server's lifespan in process: a service the reconnect loop opens while shutdown has begun
is closed before shutdown returns, never left open behind it (holding the store, so that
``caselink restore`` would refuse it as in use)."""

from __future__ import annotations

import asyncio
import threading

from _server import build_index, make_settings

import api.app as app_module
from api.app import create_app
from caselink.errors import StoreUnavailable
from indexing.backup import backup, restore

HOLD_S = 120  # bound on each wait below, so a regression fails instead of hanging


def test_a_service_opened_by_the_reconnect_loop_while_shutting_down_is_closed(tmp_path, monkeypatch):
    settings = make_settings(tmp_path, server__reconnect_seconds=0.05)
    build_index(settings)
    saved = tmp_path / "backup"
    backup(settings.store_url, settings.cache_path, saved)
    real_open = app_module._open_service
    calls, built = [], []
    opened, release, returned = threading.Event(), threading.Event(), threading.Event()

    def held_open(s):
        """The first open fails as if PostgreSQL were down at start; the retry opens the real
        service and holds it in its worker thread until the test has begun the shutdown."""
        calls.append(s)
        if len(calls) == 1:
            raise StoreUnavailable("injected: the store is down at start")
        try:
            svc = real_open(s)
            built.append(svc)
            opened.set()
            release.wait(HOLD_S)
            return svc
        finally:
            returned.set()

    monkeypatch.setattr(app_module, "_open_service", held_open)
    app = create_app(settings)

    async def scenario() -> None:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        assert isinstance(app.state.startup_error, StoreUnavailable) and app.state.service is None
        assert await asyncio.to_thread(opened.wait, HOLD_S), "the reconnect loop never opened the service"
        shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await asyncio.sleep(0)  # one turn of the loop: the shutdown runs up to its first wait
        release.set()
        await asyncio.wait_for(shutdown, HOLD_S)
        assert await asyncio.to_thread(returned.wait, HOLD_S)

    asyncio.run(scenario())
    assert len(built) == 1 and app.state.service is None
    # Nothing holds the store any more: restore takes it (it refuses a store a process has open).
    assert restore(saved, settings.store_url, settings.cache_path).records == 12
