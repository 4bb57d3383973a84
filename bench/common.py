"""Shared pieces of the benchmarks: sizes, percentiles, targets, Markdown reports, measured subprocesses.

Every measurement that reports peak memory runs in its own interpreter (:func:`run_measured`),
because a process's peak resident size (``ru_maxrss`` / ``VmHWM``) only ever grows: measured in
one process, the second measurement would inherit the first one's peak.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.machine import header
from throwaway import free_port  # noqa: F401 (the benchmarks import it from here)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = Path(os.environ.get("CASELINK_BENCH_WORK", BENCH_DIR / "work"))


# -- arguments ------------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """'10000', '10k', '1M' or '1_000_000' -> int."""
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 10000, 10k or 1M, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got '{text}'")
    return value


def parse_sizes(text: str) -> list[int]:
    return [parse_size(p) for p in text.split(",") if p.strip()]


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def base_parser(description: str, *, default_sizes: str, out_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes(default_sizes),
                   help=f"corpus sizes, comma-separated (default {default_sizes}); 10k and 1M are accepted")
    p.add_argument("--out", type=Path, default=BENCH_DIR / out_name, help=f"result file (default bench/{out_name})")
    p.add_argument("--seed", type=int, default=7, help="corpus seed (default 7)")
    return p


def add_embed_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embed-sample", default="auto", metavar="N|auto|0",
                   help="embed only the first N records of a larger corpus and derive the other vectors from "
                        "them plus noise (labelled 'synthetic' in the output); 0 embeds everything; 'auto' "
                        "(default) embeds everything up to 100k and uses a 50k sample above")
    p.add_argument("--noise", type=float, default=0.02,
                   help="std-dev per dimension of the noise added to sample vectors (default 0.02: cosine ~0.9 "
                        "to the source vector)")


def embed_sample_for(arg: str | int, n: int) -> int:
    """How many records to really embed for a corpus of ``n``: ``n`` means all (real vectors)."""
    if str(arg) == "auto":
        return n if n <= 100_000 else 50_000
    s = int(parse_size(str(arg))) if str(arg) not in ("0", "") else 0
    return n if s == 0 or s >= n else s


# -- statistics -----------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    if len(values) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def fmt(x: float | int | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else (f"{x / 1024:.2f} GB" if x >= 1024 else f"{x:.0f} MB")


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``name`` is met when ``value`` ``op`` ``threshold``."""

    name: str
    value: float | None
    op: str
    threshold: float
    unit: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "not measured"
        ok = {"<=": self.value <= self.threshold, "<": self.value < self.threshold,
              ">=": self.value >= self.threshold, ">": self.value > self.threshold}[self.op]
        return "**met**" if ok else "**missed**"

    def row(self) -> list[str]:
        v = "-" if self.value is None else fmt(self.value, 3 if abs(self.value) < 10 else 1)
        return [self.name, f"{v} {self.unit}".strip(), f"{self.op} {self.threshold:g} {self.unit}".strip(),
                self.status, self.note]


def targets_table(targets: Sequence[Target]) -> str:
    return md_table(["target", "measured", "goal", "status", "note"], [t.row() for t in targets])


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(out: Path, title: str, body: str, *, notes: list[str] | None = None) -> Path:
    """Write ``body`` under the machine header (with the command that produced it)."""
    command = f"python -m bench.{Path(sys.argv[0]).stem} " + " ".join(sys.argv[1:])
    text = header(title, command=command.strip(), notes=notes) + "\n" + body.rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- memory ---------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident size (VmHWM) in MB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_of(pid: int) -> dict[str, float]:
    """Current and peak resident size of process ``pid`` in MB (psutil when installed, else /proc)."""
    out = {"rss_mb": float("nan"), "peak_mb": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                out["peak_mb"] = int(line.split()[1]) / 1024
        return out
    except OSError:
        pass
    try:  # pragma: no cover - non-Linux
        import psutil

        out["rss_mb"] = psutil.Process(pid).memory_info().rss / 2**20
    except Exception:  # noqa: BLE001
        pass
    return out


def listening_pid(url: str) -> int | None:
    """The process listening on ``url``'s loopback port (a Milvus server this run did not start)."""
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(url).port
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident size of ``pid`` and its children (a server that forks workers), now and the sum of
    their peaks (VmHWM; an upper bound of the tree's peak)."""
    import psutil

    out = {"rss_mb": 0.0, "peak_mb": 0.0}
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return {"rss_mb": float("nan"), "peak_mb": float("nan")}
    for p in procs:
        r = rss_of(p.pid)
        if r["rss_mb"] == r["rss_mb"]:
            out["rss_mb"] += r["rss_mb"]
            out["peak_mb"] += r["peak_mb"]
    return out


def dir_size_mb(path: Path, *, follow: bool = False) -> float:
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=follow):
        for f in files:
            p = Path(root) / f
            try:
                if p.is_symlink() and not follow:
                    continue
                total += p.stat().st_size
            except OSError:
                pass
    return total / 2**20


# -- measured subprocesses ------------------------------------------------------------------------
def run_measured(target: str, kwargs: dict, *, python: str | None = None, timeout: float | None = None,
                 env: dict | None = None) -> dict:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; return its dict plus ``peak_rss_mb``.

    The function's result must be JSON-serialisable. Its stderr (progress) passes through.
    """
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".json", delete=False) as fh:
        result_path = Path(fh.name)
    try:
        cmd = [python or sys.executable, "-m", "bench._child", target, json.dumps(kwargs), str(result_path)]
        run_env = dict(os.environ if env is None else env)
        run_env["PYTHONPATH"] = str(REPO) + (os.pathsep + run_env["PYTHONPATH"] if run_env.get("PYTHONPATH") else "")
        proc = subprocess.run(cmd, cwd=REPO, env=run_env, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"measurement {target} failed with exit code {proc.returncode}")
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
