"""Dependencies: the live service, and bearer-key access (read or write).

Keys come from ``settings.server.api_keys`` (read-write) and ``read_keys`` (read-only). When any
key is configured, every route except /healthz, /readyz and the static page needs one; with none
configured everything is open (and :func:`api.app.check_bind` keeps the server on loopback).
Keys are compared in constant time against every configured key and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caselink.config import Settings
from caselink.errors import IndexNotReady
from recommender.service import CaselinkService

Role = Literal["read", "write"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="caselink"'}


class KeyRing:
    """The configured keys, held as SHA-256 digests so every comparison has the same length."""

    def __init__(self, write_keys: list[str], read_keys: list[str]):
        self._keys: list[tuple[bytes, Role]] = [(_digest(k), "write") for k in write_keys if k.strip()]
        self._keys += [(_digest(k), "read") for k in read_keys if k.strip()]

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        return cls(settings.server.api_keys, settings.server.read_keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token``, or None. Compares against every key (no early exit)."""
        given = _digest(token)
        role: Role | None = None
        for key, key_role in self._keys:
            if hmac.compare_digest(given, key) and role != "write":
                role = key_role
        return role


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


# The dependencies below are coroutines: FastAPI runs a plain function dependency in its thread
# pool, one hand-off to a worker thread and back per dependency and request (45 us at the median,
# milliseconds on a busy machine), for what is an attribute read or a key comparison.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_service(request: Request) -> CaselinkService:
    svc = getattr(request.app.state, "service", None)
    if svc is None:
        error = getattr(request.app.state, "startup_error", None)
        if error is not None:
            raise error
        raise IndexNotReady("the index is still loading")
    return svc


async def caller_role(request: Request,
                      creds: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> Role:
    keys: KeyRing = request.app.state.keys
    if not keys.enabled:
        return "write"
    if creds is None:
        raise HTTPException(401, "an API key is required: send 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    role = keys.role_of(creds.credentials)
    if role is None:
        raise HTTPException(401, "the API key is not valid",
                            headers={"WWW-Authenticate": 'Bearer realm="caselink", error="invalid_token"'})
    return role


async def require_read(role: Annotated[Role, Depends(caller_role)]) -> Role:
    return role


async def require_write(role: Annotated[Role, Depends(caller_role)]) -> Role:
    if role != "write":
        raise HTTPException(403, "this API key is read-only; writes need a key from server.api_keys")
    return role


ServiceDep = Annotated[CaselinkService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
