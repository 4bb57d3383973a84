"""Runs one measurement in its own interpreter: ``python -m bench._child module:function '<json kwargs>' out.json``.

Used by :func:`bench.common.run_measured`; the result gets ``peak_rss_mb`` (this process's VmHWM)
and ``seconds`` (wall time of the call) added.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from bench.common import peak_rss_mb


def main() -> None:
    target, kwargs, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    t0 = time.perf_counter()
    result = fn(**kwargs)
    result = dict(result or {})
    result.setdefault("seconds", time.perf_counter() - t0)
    result["peak_rss_mb"] = peak_rss_mb()
    out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
