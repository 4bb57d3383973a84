"""Load drivers for the HTTP benchmarks: httpx threads (always available) or wrk (when installed).

Both send a fixed list of requests round-robin from ``clients`` concurrent connections for at most
``duration`` seconds (and, for httpx, at most ``max_requests`` requests), to a loopback URL only,
and report client-side latency percentiles, throughput, errors, and the server-side
``timings_ms`` averaged over the answered requests.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from bench.common import BENCH_DIR

TIMING_KEYS = ("prepare", "encode", "vector", "bm25", "fusion", "fetch", "total")
WRK_SCRIPT = BENCH_DIR / "wrk_caselink.lua"


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    body: dict | None = None


@dataclass
class LoadResult:
    tool: str
    clients: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)  # server-side means
    paths: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"expected a loopback URL, got {url}")


def run_httpx(base_url: str, reqs: list[Req], *, clients: int, duration: float, max_requests: int,
              offset: int = 0, stop: threading.Event | None = None) -> LoadResult:
    """``clients`` threads, one keep-alive httpx.Client each, pulling requests from a shared counter.

    Stops after ``duration`` seconds, ``max_requests`` requests, or when ``stop`` is set.
    """
    import httpx

    _check_loopback(base_url)
    counter = itertools.count()
    lock = threading.Lock()
    lat: list[float] = []
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    paths: Counter = Counter()
    errors = [0]
    deadline = time.perf_counter() + duration

    def worker() -> None:
        mine, my_errors = [], 0
        my_sums: dict[str, float] = defaultdict(float)
        my_counts: dict[str, int] = defaultdict(int)
        my_paths: Counter = Counter()
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while True:
                i = next(counter)
                if i >= max_requests or time.perf_counter() > deadline or (stop is not None and stop.is_set()):
                    break
                r = reqs[(i + offset) % len(reqs)]
                t = time.perf_counter()
                try:
                    resp = client.request(r.method, r.path, json=r.body)
                    elapsed = time.perf_counter() - t
                except httpx.HTTPError:
                    my_errors += 1
                    continue
                if resp.status_code >= 300:
                    my_errors += 1
                    continue
                mine.append(elapsed * 1000)
                try:
                    data = resp.json()
                except ValueError:
                    continue
                for k, v in (data.get("timings_ms") or {}).items():
                    my_sums[k] += v
                    my_counts[k] += 1
                if data.get("path"):
                    my_paths[data["path"]] += 1
        with lock:
            lat.extend(mine)
            errors[0] += my_errors
            for k, v in my_sums.items():
                sums[k] += v
                counts[k] += my_counts[k]
            paths.update(my_paths)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    return _result("httpx", clients, lat, seconds, errors[0], sums, counts, paths)


def _result(tool, clients, lat, seconds, errors, sums, counts, paths) -> LoadResult:
    a = np.asarray(lat) if lat else np.asarray([np.nan])
    return LoadResult(tool=tool, clients=clients, requests=len(lat), seconds=seconds, errors=errors,
                      p50_ms=float(np.percentile(a, 50)), p95_ms=float(np.percentile(a, 95)),
                      p99_ms=float(np.percentile(a, 99)), max_ms=float(np.max(a)), mean_ms=float(np.mean(a)),
                      timings_ms={k: sums[k] / counts[k] for k in TIMING_KEYS if counts.get(k)},
                      paths=dict(paths), latencies_ms=list(lat))


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, reqs: list[Req], *, clients: int, duration: float) -> LoadResult:
    """wrk with ``clients`` threads and connections for ``duration`` seconds (bench/wrk_caselink.lua)."""
    _check_loopback(base_url)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as fh:
        for r in reqs:
            body = json.dumps(r.body, ensure_ascii=False) if r.body is not None else ""
            fh.write(f"{r.method}\t{r.path}\t{body}\n")
        path = Path(fh.name)
    try:
        cmd = ["wrk", "-t", str(clients), "-c", str(clients), "-d", f"{max(1, int(round(duration)))}s",
               "--timeout", "60s", "-s", str(WRK_SCRIPT), base_url, "--", str(path)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    finally:
        path.unlink(missing_ok=True)
    m = re.search(r"^JSON (\{.*\})\s*$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(m.group(1))
    counts = d["counts"]
    ok = d["requests"] - d["non2xx"]
    return LoadResult(tool="wrk", clients=clients, requests=ok, seconds=d["duration_us"] / 1e6,
                      errors=d["errors"] + d["non2xx"], p50_ms=d["p50_us"] / 1000, p95_ms=d["p95_us"] / 1000,
                      p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000, mean_ms=d["mean_us"] / 1000,
                      timings_ms={k: d["sums"][k] / counts[k] for k in TIMING_KEYS if counts.get(k)},
                      paths={k: v for k, v in d["paths"].items() if v})


def run(tool: str, base_url: str, reqs: list[Req], *, clients: int, duration: float, max_requests: int,
        offset: int = 0) -> LoadResult:
    if tool == "wrk":
        return run_wrk(base_url, reqs, clients=clients, duration=duration)
    return run_httpx(base_url, reqs, clients=clients, duration=duration, max_requests=max_requests, offset=offset)
