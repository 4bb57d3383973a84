"""A real Milvus for the tests: ``milvus-lite server`` (gRPC, the protocol a cluster speaks) on a
free loopback port, with its data in a temporary directory; ready when a client can list
collections (polled with a deadline), stopped and reaped afterwards.

No fixtures here: ``conftest.py`` wraps :func:`milvus_server` in a session fixture.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY_TIMEOUT_S = 60.0


def milvus_lite_command() -> list[str]:
    exe = Path(sys.executable).with_name("milvus-lite")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "milvus_lite"]


@contextmanager
def milvus_server(data_dir: Path) -> Iterator[str]:
    """Start a Milvus Lite server; yields its URI (``http://127.0.0.1:PORT``)."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    from _server import free_port

    port = free_port()
    log = open(data_dir.parent / f"milvus-{port}.log", "wb")
    proc = subprocess.Popen([*milvus_lite_command(), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                             "--port", str(port), "--max-workers", "4"], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"milvus-lite server exited with {proc.returncode}: "
                                     + (data_dir.parent / f"milvus-{port}.log").read_text(errors="replace")[-2000:])
            try:  # the port first: a client made before the server listens keeps a failing channel
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                client = MilvusClient(uri=uri, timeout=2)
                client.list_collections()
                client.close()
                break
            except (OSError, MilvusException):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"milvus-lite server not answering on {uri} after {READY_TIMEOUT_S:.0f} s")
                time.sleep(0.1)  # poll interval, bounded by the deadline above
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
