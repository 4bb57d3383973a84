"""What happens to each request: its id, its metrics and its access-log line, in one middleware.

Every response carries ``X-Request-ID``: the caller's own (a ticketing system's correlation id)
when it sent a well-formed one, else a new one. The same id is in every error body
(``request_id``) and in every log line written while the request ran, so "the call at 10:42
failed" becomes one grep. The access line has the method, the path without its query string
(search text stays out of logs; ids in paths do not), the status and the time taken; never a
header or a body, so keys and ticket text are never logged. Successful health probes and
metric scrapes are logged at DEBUG only.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import METHODS, Metrics, RouteTemplates

HEADER = b"x-request-id"
# Probes and scrapes that succeed are logged at DEBUG: every few seconds, they would drown the rest.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
_SAFE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")

access = logging.getLogger("caselink.access")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("caselink_request_id", default=None)


def request_id() -> str | None:
    """The id of the request being served in this context (None outside a request)."""
    return _current.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) for log formats that show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or "-"
        return True


class RequestObserver:
    """Pure ASGI, outermost, so it sees every answer, the guards' 400 and 413 included: picks the
    request's id and answers with it, counts the request in the metrics (by route template, so
    the label set stays bounded) and writes its access line."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, templates: RouteTemplates, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"")
        rid = given.decode("ascii") if _SAFE.match(given) else uuid.uuid4().hex
        token = _current.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (HEADER, rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = self.templates(scope["path"])
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(elapsed)
            if self.log_requests:
                client = scope.get("client")
                level = logging.DEBUG if scope["path"] in _QUIET and status < 400 else logging.INFO
                access.log(level, "%s %s %s %d %.1fms", client[0] if client else "-", scope["method"], scope["path"],
                           status, elapsed * 1000)
            _current.reset(token)


def configure_logging(level: int = logging.INFO) -> None:
    """Send caselink's log lines (the access log included) to standard error, each with the
    request id it was written under; uvicorn's own loggers are configured by uvicorn."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger("caselink")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
