"""Grouped search against flat, in process on the bundled demo index, side by side in one run.

    python -m bench.grouped [--data-dir DIR] [--rounds 25]

For each query: p50 of ``CaselinkService.search`` (flat, k=20) and of
``recommender.grouping.search_grouped`` (the flat ranking plus sops 5 / problems 5 / cases 10
and the code cards), alternating so both see the same machine. Indexes the demo history into
bench/work/data/demo first when it is not there (as bench.demo_latency does).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.demo_latency import demo_dir

QUERIES = ("E1023", "干泵抽真空时电流一直往上涨然后跳停", "wafer drop on robot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()

    from caselink.config import load_settings
    from recommender.grouping import search_grouped
    from recommender.results import SearchQuery
    from recommender.service import CaselinkService

    svc = CaselinkService.open(load_settings(env={}, data_dir=args.data_dir or demo_dir()))
    try:
        svc.search(SearchQuery(text="warm up 干泵"))
        for text in QUERIES:
            flat, grouped = [], []
            for _ in range(args.rounds):
                t = time.perf_counter()
                svc.search(SearchQuery(text=text, k=20))
                flat.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                search_grouped(svc, SearchQuery(text=text, k=20, grouped=True))
                grouped.append((time.perf_counter() - t) * 1000)
            f, g = sorted(flat)[len(flat) // 2], sorted(grouped)[len(grouped) // 2]
            print(f"{text}: flat p50 {f:.1f} ms, grouped p50 {g:.1f} ms (x{g / f:.2f})")
    finally:
        svc.close()


if __name__ == "__main__":
    main()
