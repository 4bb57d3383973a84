"""Throwaway servers for the tests and the benchmarks: started on a free loopback port with their
data in a temporary folder, waited for with a deadline, stopped and reaped at the end.

One copy for both: ``tests/`` and ``bench/`` import these (a benchmark never imports the tests).
Nothing here is part of caselink itself (not packaged, never imported by the service).

- :func:`free_port`: a free TCP port on 127.0.0.1.
- :func:`wait_ready`: poll a URL until it answers 200, with a deadline.
- :mod:`throwaway.milvus`: ``milvus-lite server`` (gRPC, the protocol a Milvus cluster speaks).
- :mod:`throwaway.postgres`: a PostgreSQL cluster from Debian's server binaries.
- :mod:`throwaway.rt`: a Request Tracker 5 from Debian's packages, with REST2 helpers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(probe: str, alive: Callable[[], None], timeout: float) -> None:
    """Poll ``probe`` until it answers 200; ``alive()`` raises if the server died meanwhile."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            alive()
            try:
                resp = client.get(probe)
                if resp.status_code == 200:
                    return
                last = f"{resp.status_code} {resp.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.05)  # poll interval, bounded by the deadline above
    raise TimeoutError(f"{probe} not 200 after {timeout:.0f} s: {last}")
