"""The OpenAPI schema as this app serves it: the limits and the security of *these* settings.

Models are declared once, at import; what depends on the configuration is filled in when the
schema is first generated for an app:

- a field marked :func:`caselink.config.limited_by` gets the setting's value as its ``maximum``
  (a number), ``maxLength`` (a string, never above the model's own) or ``maxItems`` (a list), the
  same value the service and the routers enforce;
- bearer security is declared only when API keys are configured; without keys the server answers
  every request (loopback only, :func:`api.app.check_bind`), so the schema asks for no key and
  lists no 401 / 403 answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from caselink.config import LIMIT_KEY, Settings, limit

_MAX_KEYWORD = {"integer": "maximum", "number": "maximum", "string": "maxLength", "array": "maxItems"}
_AUTH_STATUSES = ("401", "403")


def install(app: FastAPI, settings: Settings, *, keys_enabled: bool) -> None:
    """Make ``app.openapi()`` state ``settings``' limits and the security the app applies."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # cached by FastAPI in app.openapi_schema; edited in place once
            resolve_limits(schema, settings)
            if not keys_enabled:
                drop_security(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def resolve_limits(node: Any, settings: Settings) -> None:
    """Replace every :data:`~caselink.config.LIMIT_KEY` marker under ``node`` by its bound."""
    if isinstance(node, list):
        for item in node:
            resolve_limits(item, settings)
        return
    if not isinstance(node, dict):
        return
    setting = node.pop(LIMIT_KEY, None)
    if setting is not None:
        keyword = _MAX_KEYWORD[node["type"]]
        value = limit(settings, setting)
        node[keyword] = min(node.get(keyword, value), value)
    for value in node.values():
        resolve_limits(value, settings)


def drop_security(schema: dict[str, Any]) -> None:
    """No key is asked for: no security scheme, no requirement, no 401 / 403 answer."""
    schema.get("components", {}).pop("securitySchemes", None)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            operation.pop("security", None)
            for status in _AUTH_STATUSES:
                operation.get("responses", {}).pop(status, None)
