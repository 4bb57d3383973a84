"""Asking a running caselink server instead of loading the index and the models.

A local ``caselink search`` opens the store, the index and the encoder first (seconds, cold);
a server has them loaded. With ``--server URL`` or ``CASELINK_URL``, ``search``, ``related``,
``suggest`` and ``emerging`` send the request the page would send and print the answer as they
print their own. ``CASELINK_API_KEY`` is sent as the bearer key (a read key is enough).

This module imports neither numpy nor the index: the point is to answer in milliseconds.
"""

from __future__ import annotations

import os
from typing import Any

from caselink.errors import CaselinkError

TIMEOUT_S = 60.0


def server_url(option: str | None) -> str | None:
    """The server to ask: ``--server``, else ``CASELINK_URL``; None means work locally."""
    url = (option or os.environ.get("CASELINK_URL") or "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise CaselinkError(f"--server / CASELINK_URL expects an http(s) URL, got '{url}'", field="--server",
                            hint="e.g. --server http://127.0.0.1:8000")
    return url.rstrip("/")


class Remote:
    """A caselink server's /v1 API; every failure becomes a :class:`CaselinkError` naming the field."""

    def __init__(self, url: str, *, key: str | None = None, timeout: float = TIMEOUT_S):
        self.url = url
        self.key = key if key is not None else os.environ.get("CASELINK_API_KEY", "").strip() or None
        self.timeout = timeout

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kw) -> Any:
        import httpx

        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            resp = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=self.timeout, **kw)
        except httpx.HTTPError as exc:
            raise CaselinkError(f"cannot reach the caselink server at {self.url}: {exc}", field="--server",
                                hint="start it with caselink serve, or leave out --server and CASELINK_URL "
                                     "to work on the local index") from None
        if resp.is_success:
            return resp.json()
        try:
            problem = resp.json()
        except ValueError:
            problem = {}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        hint = "set CASELINK_API_KEY to a key of that server" if resp.status_code in (401, 403) else None
        raise CaselinkError(f"the server answered {resp.status_code}: {detail or resp.reason_phrase}",
                            field=(problem.get("field") if isinstance(problem, dict) else None) or "--server",
                            hint=hint)


def drop_none(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones (the server's defaults apply)."""
    return {k: v for k, v in params.items() if v is not None and v != []}
