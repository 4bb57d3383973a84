"""A throwaway PostgreSQL for the tests and bench/replicas.py: Debian's server binaries (``make test`` installs the
``postgresql`` package), a cluster made with initdb in a temporary folder, listening on a free
loopback port with its unix socket in that folder, password authentication on TCP, stopped and
deleted at the end. initdb refuses to run as root, so as root (CI) the server runs as the
``postgres`` user that the Debian package creates.

tests/conftest.py wraps :func:`throwaway_cluster` in the session fixture ``postgres``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from throwaway import free_port

USER = "caselink"
PASSWORD = "test-" + uuid.uuid4().hex[:12]  # checked by the server (scram-sha-256), never printed by caselink


def server_bin() -> Path | None:
    """Where Debian's initdb and pg_ctl are (/usr/lib/postgresql/<version>/bin), newest first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int
    as_user: list[str]  # the command prefix that runs a server program as its owner

    def url(self, dbname: str = "postgres", *, password: str | None = PASSWORD) -> str:
        auth = f"{USER}:{password}" if password is not None else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                              capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.data.parent} "
                "-c fsync=off -c max_connections=60 -c shared_buffers=32MB")
        self.pg_ctl("-w", "-t", "60", "-l", str(self.data.parent / "server.log"), "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop", check=False)

    def new_database(self) -> str:
        """A fresh, empty database; its URL (with the password)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 40) -> str:
        path = self.data.parent / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    bindir = server_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL's initdb was not found: make test installs Debian's postgresql package")
    root = Path(tempfile.mkdtemp(prefix="caselink-pg-"))
    as_user: list[str] = []
    try:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if as_user:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        data = root / "data"
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                       capture_output=True, text=True, timeout=120, check=True)
        pwfile.unlink()
        cluster = Cluster(bindir, data, free_port(), as_user)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
