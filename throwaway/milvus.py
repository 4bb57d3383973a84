"""A real Milvus: ``milvus-lite server`` (gRPC, the protocol a cluster speaks) on a free loopback
port, with its data in a given folder; or milvus-lite 2.5's C++ core (``milvus_core_server``) the
same way. Ready when a client can list collections (polled with a deadline), stopped and reaped
afterwards. ``tests/conftest.py`` wraps it in a session fixture;
``bench/backends.py`` runs its comparison against it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from throwaway import free_port

READY_TIMEOUT_S = 60.0
# Milvus Lite answers each request on a thread of its gRPC pool, and a FLAT search is one numpy
# product over every vector: with OpenBLAS's own threads as well, they spin against each other and
# the requests. One BLAS thread: 35% less server CPU per search, 2-3x faster at 10k on 2 busy cores
# (bench/backends.md); the caselink process is unaffected either way. The caller's value wins.
BLAS_THREADS = "1"


def milvus_lite_command() -> list[str]:
    """How to run milvus-lite from this interpreter's environment (``make install`` puts it there)."""
    exe = Path(sys.executable).with_name("milvus-lite")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "milvus_lite"]


@contextmanager
def milvus_lite_server(data_dir: Path, *, max_workers: int | None = None,
                       timeout: float = READY_TIMEOUT_S) -> Iterator[str]:
    """Start a Milvus Lite server on ``data_dir``; yields its URI (``http://127.0.0.1:PORT``).

    Its output goes to ``milvus-PORT.log`` beside ``data_dir``, whose tail the error quotes when
    the server exits before answering; ``TimeoutError`` when it does not answer within ``timeout``.
    """
    port = free_port()
    cmd = [*milvus_lite_command(), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    if max_workers:
        cmd += ["--max-workers", str(max_workers)]
    env = {"OPENBLAS_NUM_THREADS": BLAS_THREADS, **os.environ}
    with _serving(cmd, env, port, data_dir.parent / f"milvus-{port}.log", "milvus-lite server", timeout) as uri:
        yield uri


@contextmanager
def milvus_core_server(data_dir: Path, binary: Path, *, timeout: float = READY_TIMEOUT_S) -> Iterator[str]:
    """Start milvus-lite 2.5's C++ core (Milvus's segcore; the ``milvus`` program inside that
    wheel's ``milvus_lite/lib``) as a gRPC server on a free loopback port, its data in
    ``data_dir/milvus.db``; yields its URI. pymilvus reaches it as it would a Milvus server, so the
    project's own pymilvus talks to it from this interpreter; the wheel itself lives in a venv of
    its own (it pins pymilvus 2.5). It has FLAT, IVF_FLAT and AUTOINDEX dense indexes, not HNSW."""
    binary = Path(binary)
    if not binary.is_file():
        raise FileNotFoundError(f"milvus core binary {binary} not found (milvus-lite 2.5's milvus_lite/lib/milvus)")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    # the wheel ships its libraries (knowhere, OpenBLAS, ...) beside the program, unlinked
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, [str(binary.parent),
                                                                  os.environ.get("LD_LIBRARY_PATH")]))}
    cmd = [str(binary), str(data_dir / "milvus.db"), f"127.0.0.1:{port}", "ERROR"]
    with _serving(cmd, env, port, data_dir.parent / f"milvus-core-{port}.log", "milvus core server", timeout,
                  cwd=data_dir) as uri:
        yield uri


@contextmanager
def _serving(cmd: list[str], env: dict, port: int, log_path: Path, what: str, timeout: float,
             cwd: Path | None = None) -> Iterator[str]:
    """Run ``cmd`` (a Milvus listening on ``port``) until the block ends: ready when a client can
    list collections; its output in ``log_path``, whose tail the error quotes if it exits first."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what} exited with {proc.returncode}: "
                                       + log_path.read_text(errors="replace")[-2000:])
                try:  # the port first: a client made before the server listens keeps a failing channel
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    client = MilvusClient(uri=uri, timeout=2)
                    client.list_collections()
                    client.close()
                    break
                except (OSError, MilvusException):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{what} not answering on {uri} after {timeout:.0f} s") from None
                    time.sleep(0.1)  # poll interval, bounded by the deadline above
            yield uri
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
