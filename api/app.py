"""The FastAPI application: :func:`create_app` wires routers, error handlers, metrics and guards;
the lifespan hook opens the index (never at import time) and closes it on shutdown.

Open without a key: ``/healthz``, ``/readyz``, the search page (``/``, ``/static``), ``/docs`` and
``/openapi.json``. Everything under ``/v1`` and ``/metrics`` needs a key once any is configured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api import errors, openapi
from api.deps import KeyRing
from api.metrics import Metrics, RouteTemplates
from api.middleware import BodyLimitMiddleware, LoopbackHostMiddleware
from api.observe import RequestObserver
from api.routers import documents, feedback, insights, ops, records, search
from caselink import __version__
from caselink.config import Settings
from caselink.errors import CaselinkError, ConfigError, IndexNotReady, StoreUnavailable

log = logging.getLogger("caselink.api")

STATIC_DIR = Path(__file__).parent / "static"
NO_KEY_WARNING = "no API key configured: serving on loopback only"
# /readyz says not ready while the server has more than this many changes from the store still to apply.
NOT_READY_BEHIND = 1000
# The page loads nothing from elsewhere; this keeps it that way and blocks framing.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> str | None:
    """Refuse to serve without keys on a non-loopback address.

    Returns (and logs) a warning when no key is configured, None when keys are configured.
    Raises :class:`ConfigError` when ``server.host`` is not loopback and there is no key.
    """
    s = settings.server
    if KeyRing.from_settings(settings).enabled:
        return None
    if not is_loopback(s.host):
        raise ConfigError(f"refusing to serve on {s.host} without an API key", field="server.host",
                          hint="set server.api_keys (or CASELINK_API_KEYS), or bind 127.0.0.1")
    log.warning(NO_KEY_WARNING)
    return NO_KEY_WARNING


def _open_service(settings: Settings):
    from recommender.results import SearchQuery
    from recommender.service import CaselinkService

    svc = CaselinkService.open(settings)
    try:  # load the encoder and the segmenter now, so the first real search is not the slow one
        svc.search(SearchQuery(text="warm-up 预热 设备无法启动", k=1, mode="hybrid"))
    except Exception as exc:  # noqa: BLE001 - a failed warm-up must not stop the server
        log.warning("warm-up search failed: %s", exc)
    if svc.encoder_error:
        log.warning("encoder unavailable, searches fall back to keywords: %s", svc.encoder_error)
    return svc


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    stop_sources = None

    async def start() -> bool:
        nonlocal stop_sources
        try:
            app.state.service = await _open_or_close(settings)
            app.state.startup_error = None
            log.info("index open: %d records from %s", app.state.service.indexed(), settings.data_dir)
        except CaselinkError as exc:  # serve /healthz and 503s that say why, instead of dying
            app.state.startup_error = exc
            log.error("index could not be opened: %s", exc)
            return not isinstance(exc, (StoreUnavailable, IndexNotReady))  # those may pass: try again
        if settings.sources.rt is not None:
            from recommender.sync import start_sources

            stop_sources = start_sources(app.state.service)  # [sources.*]: pull changes in the background
        return True

    reconnect = None
    if not await start():
        reconnect = asyncio.create_task(_reconnect(start, settings.server.reconnect_seconds))
    follow = asyncio.create_task(_follow_store(app, settings.server.follow_seconds))
    try:
        yield
    finally:
        # Cancelled tasks are waited for before anything is closed: a store read in a worker
        # thread finishes first, and a service the reconnect loop was opening is closed by it
        # (see _open_or_close) rather than left open after shutdown.
        tasks = [t for t in (follow, reconnect) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if stop_sources is not None:
            await run_in_threadpool(stop_sources)
        svc, app.state.service = app.state.service, None
        if svc is not None:
            await run_in_threadpool(svc.close)


async def _open_or_close(settings: Settings):
    """:func:`_open_service` in a worker thread. A thread cannot be stopped, so when the caller is
    cancelled (the server shutting down while the reconnect loop opens the service) the open is
    waited for and what it built is closed, before the cancellation goes on."""
    opening = asyncio.ensure_future(run_in_threadpool(_open_service, settings))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        try:
            svc = await opening
        except Exception:  # noqa: BLE001 - it failed to open: nothing was built to close
            raise asyncio.CancelledError from None
        await run_in_threadpool(svc.close)
        raise


async def _reconnect(start, every: float) -> None:
    """Open the service again every ``every`` seconds until it opens (or fails for a reason that
    will not pass by itself): a replica started while PostgreSQL or Milvus was down becomes ready
    once they are up, without a restart."""
    while True:
        await asyncio.sleep(every)  # the retry interval, not a wait for a state
        if await start():
            return


async def _follow_store(app: FastAPI, every: float) -> None:
    """Apply records another process wrote to the store (``caselink index`` while serving, or
    another replica on a shared PostgreSQL), so they become searchable without a restart: within
    ``every`` seconds plus the time to embed them. Writes through this server are applied at
    once. While more than :data:`NOT_READY_BEHIND` changes are still to apply, ``/readyz`` says
    not ready, so a load balancer sends searches to a replica that is up to date."""
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        svc = getattr(app.state, "service", None)
        if svc is None:
            continue
        try:
            behind = await run_in_threadpool(svc.behind)
            app.state.catching_up = behind if behind > NOT_READY_BEHIND else 0
            n = await run_in_threadpool(svc.follow) if behind else 0
            if n:
                log.info("applied %d records written by another process", n)
        except Exception as exc:  # noqa: BLE001 - keep serving; the next round retries
            log.warning("could not apply changes from the store: %s", exc)
        finally:
            app.state.catching_up = 0


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings``. Nothing is opened until the server starts (lifespan)."""
    app = FastAPI(title="caselink", version=__version__, lifespan=_lifespan,
                  description="Related-record search over service cases, problem orders and SOP sections.",
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.keys = KeyRing.from_settings(settings)
    app.state.metrics = Metrics()
    app.state.service = None
    app.state.startup_error = None
    app.state.catching_up = 0  # changes still to apply from the store, when that many that /readyz says so
    errors.install(app)
    openapi.install(app, settings, keys_enabled=app.state.keys.enabled)
    # Route template -> its methods: metrics labels, and Allow on a 405 (api.errors).
    templates: dict[str, set[str]] = {"/": {"GET"}, "/docs": {"GET", "HEAD"}, "/openapi.json": {"GET", "HEAD"},
                                      "/static/{path:path}": {"GET", "HEAD"}}
    for module, prefix in ((search, "/v1"), (records, "/v1"), (documents, "/v1"), (feedback, "/v1"), (insights, "/v1"),
                           (ops, "")):
        app.include_router(module.router, prefix=prefix)
        for route in module.router.routes:
            templates.setdefault(prefix + route.path, set()).update(getattr(route, "methods", ()))
    app.state.routes = RouteTemplates(templates)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                                "X-Content-Type-Options": "nosniff",
                                                                "Referrer-Policy": "no-referrer"})

    # Added last = outermost: the observer (id, metrics, access line) sees every answer, the guards' 400/413 too.
    if not app.state.keys.enabled:
        extra = frozenset({settings.server.host.lower()}) if is_loopback(settings.server.host) else frozenset()
        app.add_middleware(LoopbackHostMiddleware, extra_hosts=extra)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes,
                       path_limits=(("/v1/documents/", settings.server.max_document_bytes),))
    app.add_middleware(RequestObserver, metrics=app.state.metrics, templates=app.state.routes,
                       log_requests=settings.server.access_log)
    return app
