"""What vector centring costs: fitting the per-kind means and centring a build's vectors, and one query.

    python -m bench.centering [--sizes 100000,1000000] [--dim 896] [--out bench/centering.md]

Synthetic unit vectors (a shared lean, like an encoder's), nine in ten of kind ``case`` and one
in ten ``sop``; the relevance effect is in bench/relevance.md. Peak RSS growth is measured in a
fresh child process per size, after the vectors exist, so it is what fit + transform add.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import REPO, header


def measure(n: int, dim: int) -> dict:
    from indexing.centering import VectorCentering

    rng = np.random.default_rng(0)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 10_000):
        b = rng.standard_normal((min(10_000, n - s), dim), dtype=np.float32) + 0.5
        x[s:s + len(b)] = b / np.linalg.norm(b, axis=1, keepdims=True)
    kinds = ["case"] * (n - n // 10) + ["sop"] * (n // 10)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    c = VectorCentering([(dim, 1.0)]).fit(x, kinds)
    t1 = time.perf_counter()
    c.transform(x, kinds, out=x)
    t2 = time.perf_counter()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    q = x[:1].copy()
    reps = 2000
    t3 = time.perf_counter()
    for _ in range(reps):
        c.transform(q)
    per_query = (time.perf_counter() - t3) / reps
    return {"n": n, "dim": dim, "fit_s": t1 - t0, "transform_s": t2 - t1, "rss_mb": grown,
            "vectors_mb": x.nbytes / 2**20, "query_us": per_query * 1e6}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--out", default=str(REPO / "bench" / "centering.md"))
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.dim)))
        return
    rows = []
    for n in map(int, args.sizes.split(",")):
        out = subprocess.run([sys.executable, "-m", "bench.centering", "--child", str(n), "--dim", str(args.dim)],
                             check=True, capture_output=True, text=True, cwd=REPO).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(r), flush=True)
        rows.append(f"| {r['n']:,} | {r['dim']} | {r['fit_s']:.2f} s | {r['transform_s']:.2f} s "
                    f"| {r['rss_mb']:.0f} MB (vectors: {r['vectors_mb']:,.0f} MB) | {r['query_us']:.0f} us |")
    command = "python -m bench.centering " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [header("Vector centring cost", command=command), "",
             "| records | dim | fit per-kind means | centre every vector in place | peak RSS added | one query |",
             "|---|---|---|---|---|---|", *rows, ""]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
