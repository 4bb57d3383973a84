"""Run the real caselink server (``python -m caselink.cli serve``) on a free loopback port.

The server is started as its own process against a prebuilt data directory, with ``CASELINK_*``
variables from the calling environment removed (settings come from the data directory, an
optional TOML written here, and ``--threads``), and stopped with SIGINT (uvicorn's graceful
shutdown, which lets caselink write its closing snapshot) by the process id this module started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, WORK, free_port, log, rss_of


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, config: dict[str, dict]) -> Path:
    """A caselink TOML from {"section": {"key": value}}."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Server:
    """One ``caselink serve`` process.

    Parameters
    ----------
    data_dir : a data directory with a built index.
    threads : encoder threads (CASELINK_THREADS); 0 = caselink's default (the usable cores).
    omp_threads : OMP_NUM_THREADS for the server (FAISS), None = leave unset.
    config : extra settings, e.g. {"server": {"persist_every": 20}}.
    python : interpreter to run the server with (default: this one).
    source : the caselink source tree the server runs (default: this checkout), so two versions
        can be compared side by side in one run.
    """

    def __init__(self, data_dir: Path, *, threads: int = 0, omp_threads: int | None = None,
                 config: dict | None = None, python: str | None = None, source: Path | None = None):
        self.data_dir = Path(data_dir)
        self.threads = threads
        self.omp_threads = omp_threads
        self.config = config or {}
        self.python = python or sys.executable
        self.source = Path(source) if source else REPO
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = WORK / "logs" / f"server-{self.data_dir.name}-{self.port}.log"
        self.startup_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 1800) -> "Server":
        import httpx

        env = {k: v for k, v in os.environ.items() if not k.startswith("CASELINK_")}
        env["PYTHONPATH"] = str(self.source) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if self.threads:
            env["CASELINK_THREADS"] = str(self.threads)
        if self.omp_threads:
            env["OMP_NUM_THREADS"] = str(self.omp_threads)
        cmd = [self.python, "-m", "caselink.cli", "serve", "--data-dir", str(self.data_dir),
               "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config:
            cmd += ["--config", str(write_config(WORK / "run" / f"server-{self.port}.toml", self.config))]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = self.log_path.open("w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=self.source, env=env, stdout=logf, stderr=subprocess.STDOUT)
        log(f"server pid {self.proc.pid} on {self.url} ({self.data_dir.name}); log {self.log_path}")
        deadline = t0 + timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    self.stop()
                    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.2)
        self.startup_s = time.perf_counter() - t0
        log(f"server ready in {self.startup_s:.1f} s")
        return self

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rss(self) -> dict[str, float]:
        return rss_of(self.proc.pid) if self.proc else {}

    def stop(self, timeout: float = 900) -> None:
        """SIGINT, wait (the closing snapshot may take a while on large indexes), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"server {self.proc.pid} did not stop in {timeout:.0f} s; killing it")
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
