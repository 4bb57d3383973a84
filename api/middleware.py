"""Pure ASGI guards that answer before the app runs: request body size and, when no API key is
configured, the Host header (a page on another site must not reach an open loopback server
through DNS rebinding).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON, problem_bytes

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


async def _reply(send: Send, status: int, detail: str, *, field: str | None = None) -> None:
    body = problem_bytes(status, detail, field=field)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with 413.

    A declared Content-Length over the limit is refused before reading anything; a streamed
    (chunked) body is read into memory up to the limit and refused as soon as it passes it. The
    app then receives the buffered body, so it never sees more than ``max_bytes``.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, path_limits: tuple[tuple[str, int], ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits  # (path prefix, limit): SOP files are larger than JSON requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        limit = next((n for prefix, n in self.path_limits if scope["path"].startswith(prefix)), self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _reply(send, 400, "Content-Length is not a number", field="Content-Length")
                return
            if length > limit:
                await _reply(send, 413, f"request body is {length} bytes, the limit is {limit}",
                             field="body")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, 413, f"request body is over the limit of {limit} bytes", field="body")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        buffered: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> Message:
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send)


class LoopbackHostMiddleware:
    """Only answer requests addressed to a loopback name (used when no API key is configured)."""

    def __init__(self, app: ASGIApp, *, extra_hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.allowed = LOOPBACK_NAMES | extra_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if _hostname(host) not in self.allowed and not _hostname(host).startswith("127."):
            await _reply(send, 400, "this server has no API key and only answers requests for localhost",
                         field="Host")
            return
        await self.app(scope, receive, send)


def _hostname(host: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1', 'LocalHost' -> 'localhost'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
