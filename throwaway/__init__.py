"""Throwaway servers for the tests and the benchmarks: started on a free loopback port with their
data in a temporary folder, waited for with a deadline, stopped and reaped at the end.

One copy for both: ``tests/`` and ``bench/`` import these (a benchmark never imports the tests).
Nothing here is part of caselink itself (not packaged, never imported by the service).

- :func:`free_port`: a free TCP port on 127.0.0.1.
- :mod:`throwaway.milvus`: ``milvus-lite server`` (gRPC, the protocol a Milvus cluster speaks).
- :mod:`throwaway.postgres`: a PostgreSQL cluster from Debian's server binaries.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
