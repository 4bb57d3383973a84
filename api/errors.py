"""One table from domain errors to HTTP status, and the handlers that turn every failure into a
problem-details body (``application/problem+json``) naming the field at fault.

Bad input is always 4xx: request validation (including malformed JSON) is 422 with the dotted
field (``records.3.kind``); domain errors map through :data:`STATUS`; storage failures (SQLite
errors, OSError) are 507 when the disk is full and 503 otherwise; anything unexpected is a
500 whose body says nothing about internals (the traceback goes to the log).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.observe import request_id
from indexing.records import UNKNOWN_FIELD

UNKNOWN_FILTER = ("unknown field; filters are kind, product, model, module, status, open_only, created_from, "
                  "created_to, and a record's own fields go under 'attributes', "
                  "e.g. {\"attributes\": {\"customer\": \"ACME\"}}")
from caselink.errors import (
    CaselinkError,
    ConfigError,
    EncoderUnavailable,
    IndexFormatError,
    IndexNotReady,
    InvalidQuery,
    InvalidRecord,
    LoaderError,
    RecordNotFound,
    StoreUnavailable,
    UnsupportedFormat,
    VoteNotFound,
)

log = logging.getLogger("caselink.api")

PROBLEM_JSON = "application/problem+json"

# Domain error -> (status, slug, title). Looked up along the exception's MRO, so subclasses inherit.
STATUS: dict[type[CaselinkError], tuple[int, str, str]] = {
    InvalidQuery: (422, "invalid-query", "Invalid search request"),
    InvalidRecord: (422, "invalid-record", "Invalid record"),
    UnsupportedFormat: (415, "unsupported-format", "Unsupported document type"),
    LoaderError: (400, "bad-input", "Input could not be read"),
    VoteNotFound: (404, "not-found", "Vote not found"),
    RecordNotFound: (404, "not-found", "Record not found"),
    IndexNotReady: (503, "index-not-ready", "Index not ready"),
    IndexFormatError: (503, "index-format", "Index cannot be read"),
    EncoderUnavailable: (503, "encoder-unavailable", "Sentence encoder unavailable"),
    StoreUnavailable: (503, "storage-unavailable", "Storage unavailable"),
    ConfigError: (500, "config", "Server misconfigured"),
    CaselinkError: (400, "bad-request", "Bad request"),
}
# Retry-After for errors that usually pass (an index being built, a model being fetched).
RETRY_AFTER_S = 30

# What FastAPI says when a body fails to decode before JSON parsing even starts.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"

# A storage error with one of these in its chain means the disk (or the file size limit) is full.
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_SQLITE_FULL = 13  # primary result code; sqlite3 exposes sqlite_errorcode, extended codes keep it in the low byte

_HTTP_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                405: "Method not allowed", 413: "Request body too large", 422: "Invalid input",
                500: "Internal server error", 503: "Service unavailable", 507: "Insufficient storage"}
_HTTP_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 413: "too-large", 422: "invalid-input"}


def problem(status: int, detail: str, *, slug: str | None = None, title: str | None = None,
            field: str | None = None, hint: str | None = None, errors: list[dict] | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one way this API writes an error body."""
    body: dict = {
        "type": f"urn:caselink:problem:{slug or _HTTP_SLUGS.get(status, 'error')}",
        "title": title or _HTTP_TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "field": field,
    }
    if hint:
        body["hint"] = hint
    if (rid := request_id()) is not None:
        body["request_id"] = rid
    if errors and len(errors) > 1:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def problem_bytes(status: int, detail: str, *, field: str | None = None) -> bytes:
    """A problem body for pure-ASGI middleware that answers before the app runs."""
    return problem(status, detail, field=field).body


def dotted(loc: Iterable) -> str | None:
    """('body', 'records', 3, 'kind') -> 'records.3.kind'; the 'body'/'query'/'path' prefix is dropped."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or None


def _in_a_record(loc: tuple, request: Request | None) -> bool:
    """Whether ``loc`` is a top-level field of a record in the body: a PUT's, a batch's, a draft's."""
    if loc[:2] == ("body", "record") and len(loc) == 3:
        return True
    if loc[:2] == ("body", "records") and len(loc) == 4:
        return True
    return (len(loc) == 2 and loc[0] == "body" and request is not None and request.method == "PUT"
            and request.url.path.startswith("/v1/records/"))


def _a_search_field(loc: tuple, request: Request | None) -> bool:
    """Whether ``loc`` is a top-level field of a search's body."""
    return len(loc) == 2 and loc[0] == "body" and request is not None and request.url.path == "/v1/search"


def _validation_items(errors: list[dict], request: Request | None = None) -> list[dict]:
    items = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "extra_forbidden" and _in_a_record(loc, request):
            items.append({"field": dotted(loc), "message": UNKNOWN_FIELD})
        elif e.get("type") == "extra_forbidden" and _a_search_field(loc, request):
            items.append({"field": dotted(loc), "message": UNKNOWN_FILTER})
        elif loc == ("body",) and e.get("type") in ("model_attributes_type", "dict_type"):
            items.append({"field": "body", "message": "expected a JSON object (Content-Type: application/json)"})
        elif e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "invalid JSON")
            pos = e["loc"][1] if len(e.get("loc", ())) > 1 else "?"
            items.append({"field": "body", "message": f"request body is not valid JSON: {reason} at position {pos}"})
        else:
            items.append({"field": dotted(e.get("loc", ())), "message": e.get("msg", "invalid")})
    return items


def _validation_response(errors: list[dict], request: Request | None = None) -> JSONResponse:
    items = _validation_items(errors, request) or [{"field": None, "message": "invalid input"}]
    first = items[0]
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    if len(items) > 1:
        detail += f" (and {len(items) - 1} more)"
    return problem(422, detail, field=first["field"], errors=items)


async def _on_request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _validation_response(list(exc.errors()), request)


async def _on_pydantic_validation(request: Request, exc: ValidationError) -> JSONResponse:
    # A model built inside a route from request values (e.g. a Record from a PUT body).
    return _validation_response(list(exc.errors()))


async def _on_domain(request: Request, exc: CaselinkError) -> JSONResponse:
    status, slug, title = next(STATUS[c] for c in type(exc).__mro__ if c in STATUS)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return problem(status, exc.message, slug=slug, title=title, field=exc.field, hint=exc.hint, headers=headers)


def _body_error(cause: BaseException | None) -> str:
    """Why a body that is not a JSON syntax error could not be parsed (FastAPI chains the cause)."""
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to be read as JSON"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return "request body holds a number with too many digits"
    return "request body could not be decoded: expected UTF-8 JSON"


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, dict):  # raised by api.deps with a field
        detail, field = str(exc.detail.get("detail", "")), exc.detail.get("field")
    elif exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:  # json.loads failed, not with a syntax error
        detail, field = _body_error(exc.__cause__), "body"
    else:
        detail, field = str(exc.detail), None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # the router names one route's methods; a path may have several routes
        allowed = request.app.state.routes.allowed(request.url.path)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {headers.get('Allow', 'none')}"
    return problem(exc.status_code, detail, field=field, headers=headers)


def _out_of_space(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it was raised from says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and (getattr(current, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL:
            return True
        current = current.__cause__ or current.__context__
    return False


async def _on_storage(request: Request, exc: Exception) -> JSONResponse:
    """The record store or the index files could not be written or read (SQLite error, OSError).

    Not the client's fault and usually not permanent: 507 when the disk is full, else 503 with
    Retry-After. The write was not acknowledged; PUT and batch upserts can simply be retried.
    """
    log.error("storage error on %s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    hint = "retry the request once the server has storage again; PUT and batch upserts are idempotent"
    if _out_of_space(exc):
        return problem(507, "the server is out of storage space; the request was not acknowledged",
                       slug="insufficient-storage", hint=hint)
    return problem(503, "the server could not read or write its storage; the request was not acknowledged",
                   slug="storage-unavailable", title="Storage unavailable", hint=hint,
                   headers={"Retry-After": str(RETRY_AFTER_S)})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal error; the server log has the details", slug="internal")


def _declare_problem_media_type(app: FastAPI) -> None:
    """Make the OpenAPI schema say what :func:`problem` sends: error bodies are
    ``application/problem+json`` (FastAPI documents every response model as ``application/json``)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()  # cached by FastAPI in app.openapi_schema; edited in place once
            for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[:1] in ("4", "5") and "application/json" in content:
                        content[PROBLEM_JSON] = content.pop("application/json")
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handler table on ``app``, and declare its media type in the OpenAPI schema."""
    _declare_problem_media_type(app)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ValidationError, _on_pydantic_validation)
    app.add_exception_handler(CaselinkError, _on_domain)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(sqlite3.Error, _on_storage)
    app.add_exception_handler(OSError, _on_storage)
    app.add_exception_handler(Exception, _on_unexpected)
