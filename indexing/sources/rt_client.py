"""Request Tracker 5's REST2 API over HTTP: the token, retries with backoff on a down or busy RT,
errors that name the setting to fix, and paged collections. ``indexing/sources/rt.py`` decides
what to ask; nothing here knows about tickets or records.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from indexing.sources import SourceError

log = logging.getLogger("caselink.sources.rt")  # one logger for the connector, client and source alike

API = "/REST/2.0"
_RETRY_STATUS = {429, 502, 503, 504}


class RTClient:
    """REST2 calls with the token, retries with backoff on a down or busy RT, and errors that say
    what to fix. The token goes only into the Authorization header, never into a message."""

    def __init__(self, *, url: str, token: str, timeout: float, retries: int):
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url + API, timeout=timeout,
                                  headers={"Authorization": f"token {token}", "Accept": "application/json"})
        self.last_date: datetime | None = None  # RT's clock, from the last response's Date header

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, params: dict | None = None, body: object = None,
             missing_ok: bool = False) -> dict | list | None:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.request(method, path, params=params,
                                          content=None if body is None else json.dumps(body).encode("utf-8"),
                                          headers={"Content-Type": "application/json"} if body is not None else None)
            except httpx.HTTPError as exc:
                problem = f"RT at {self.url} is unreachable ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code in _RETRY_STATUS or resp.status_code >= 500:
                    problem = f"RT at {self.url} answered HTTP {resp.status_code} to {method} {API}{path}"
                else:
                    return self._answer(resp, method, path, missing_ok)
            if attempt < self.retries:
                log.warning("%s; retrying in %.1f s", problem, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise SourceError(f"{problem} after {self.retries + 1} tries", field="sources.rt.url",
                          hint="check that RT is running and that sources.rt.url is its base URL; "
                               "nothing was applied from the unfinished batch, the next sync resumes")

    def _answer(self, resp: httpx.Response, method: str, path: str, missing_ok: bool) -> dict | list | None:
        if "date" in resp.headers:
            try:
                self.last_date = parsedate_to_datetime(resp.headers["date"]).astimezone(timezone.utc)
            except (TypeError, ValueError):
                pass
        if resp.status_code == 401:
            raise SourceError(f"RT at {self.url} refused the token (HTTP 401)", field="sources.rt.token_env",
                              hint="make a token in RT (Logged in as > Settings > Auth Tokens) and put it in the "
                                   "variable named by sources.rt.token_env, or in sources.rt.token_file")
        if resp.status_code == 403:
            raise SourceError(f"RT at {self.url} denied {method} {API}{path} (HTTP 403)", field="sources.rt.token_env",
                              hint="give the token's RT user the rights ShowTicket, SeeCustomField and "
                                   "CommentOnTicket on the synced queues")
        if resp.status_code == 404 and missing_ok:
            return None
        try:
            data = resp.json()
        except ValueError:
            raise SourceError(f"{self.url}{API}{path} did not answer JSON (HTTP {resp.status_code}): is this "
                              "RT 5's REST2 API?", field="sources.rt.url",
                              hint="set sources.rt.url to RT's base URL, the part before /REST/2.0") from None
        if resp.status_code >= 400:
            msg = data.get("message", "") if isinstance(data, dict) else ""
            raise SourceError(f"RT refused {method} {API}{path}: HTTP {resp.status_code} {msg}".rstrip(),
                              field="sources.rt")
        return data

    def pages(self, path: str, params: dict, *, query: list[dict] | None = None) -> Iterator[dict]:
        """Every item of a paged REST2 collection; ``query``: a JSON search, sent as the body of a
        POST (REST2 reads a POST to a collection as that search)."""
        page = 1
        while True:
            data = self.call("POST" if query is not None else "GET", path, body=query,
                             params={**params, "page": page, "per_page": 100})
            yield from data.get("items", [])
            if page >= int(data.get("pages") or 0):
                return
            page += 1
