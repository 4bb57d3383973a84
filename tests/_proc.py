"""Real caselink processes for the fault and load tests: the CLI as a subprocess with a clean
environment, the server (``caselink serve``) on a free loopback port, SIGKILL, and polling
with deadlines instead of sleeps.

No fixtures here; import what you need (``from _proc import ...``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from throwaway import wait_ready  # noqa: F401 (the tests import it from here)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PYTHON = sys.executable
READY_TIMEOUT_S = 90.0  # a cold encoder load on a busy 2-core machine


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a child: ours without any CASELINK_* setting, plus ``data_dir`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASELINK_")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]), CASELINK_DATA_DIR=str(data_dir),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", CASELINK_THREADS="1")
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [PYTHON, "-m", "caselink.cli", *args]


def fault_command(*args: str, fsize: int | None = None, stall_at: str | None = None,
                  marker: Path | None = None) -> list[str]:
    """The CLI run through tests/_fault_child.py with an injected fault (see that module)."""
    cmd = [PYTHON, str(TESTS / "_fault_child.py")]
    if fsize is not None:
        cmd += ["--fsize", str(fsize)]
    if stall_at is not None:
        cmd += ["--stall-at", stall_at, "--marker", str(marker)]
    return [*cmd, "--", *args]


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.02,
               alive: subprocess.Popen | None = None) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    With ``alive``, also fail as soon as that process has exited (it will not make it true).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"process exited with {alive.returncode} before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f} s")
        time.sleep(interval)  # poll interval, bounded by the deadline above


def sigkill(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGKILL ``proc`` (started by us) and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=timeout)


def free_port() -> int:
    from _server import free_port as _free

    return _free()


class ServerProcess:
    """``caselink serve`` (or the fault wrapper around it) as a child process on 127.0.0.1.

    Output goes to ``log`` (a file, so a chatty server never blocks on a full pipe).
    """

    def __init__(self, data_dir: Path, workdir: Path, *, config: Path | None = None, keys: str | None = None,
                 read_keys: str | None = None, fsize: int | None = None, name: str = "server"):
        self.data_dir, self.workdir = data_dir, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}-{self.port}.log"
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if config is not None:
            args += ["--config", str(config)]
        self.cmd = fault_command(*args, fsize=fsize) if fsize is not None else cli_command(*args)
        extra = {}
        if keys:
            extra["CASELINK_API_KEYS"] = keys
        if read_keys:
            extra["CASELINK_READ_KEYS"] = read_keys
        self.env = child_env(data_dir, **extra)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = READY_TIMEOUT_S, probe: str = "/readyz") -> "ServerProcess":
        """Start the server and wait until ``probe`` answers 200 (``/healthz``: the process is up,
        whether or not its index could be opened)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        try:
            self._wait_ready(timeout, probe)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float, probe: str = "/readyz") -> None:
        def alive() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before it was ready:\n"
                                   f"{self.log_text()[-3000:]}")

        try:
            wait_ready(self.url + probe, alive, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_text()[-3000:]}") from None

    def kill9(self) -> None:
        sigkill(self.proc)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            sigkill(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def record_count(store_path: Path) -> int:
    """Records in a store another process is writing (read-only connection; 0 if not there yet)."""
    import sqlite3

    if not store_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # the schema is not created yet, or the file is being created
        return 0
