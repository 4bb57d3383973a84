"""Record-store write throughput: ``RecordStore.upsert`` alone, no index, no server.

Three passes over ``--records`` synthetic records on a fresh store:

1. *one by one*: each record its own transaction (what a PUT costs the store; each commit is
   durable, so this is fsync-bound on SQLite);
2. *batches*: ``--batch`` records per transaction (``caselink index``, ``POST /v1/records:batch``);
3. *unchanged*: the same batches again, every record identical (a hash comparison each, nothing
   written).

``--store`` is a SQLite file path (default: a temporary one) or a ``postgresql://`` URL (its
tables are emptied first: give a throwaway database). ``--repeat`` runs alternate the passes and
report the median records/s. Run it from two checkouts to compare them side by side::

    PYTHONPATH=. python -m bench.store_upsert --records 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from indexing.records import Record
from indexing.store import RecordStore


def _records(n: int, tag: str) -> list[Record]:
    return [Record(id=f"B-{tag}-{i:06d}", kind="case", title=f"干泵异常停机 E{1000 + i % 500}",
                   text=f"客户反映干泵运行中突然停机 {i}，腔体压力升高到 50 Pa, vacuum alarm on chamber {i % 7}.",
                   product="HX-Etch 500", module="真空", error_codes=[f"E{1000 + i % 500}"], status="open")
            for i in range(n)]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_once(location: str, n: int, batch: int, single: int, tag: str) -> dict[str, float]:
    recs = _records(n, tag)
    with RecordStore(location) as store:
        one = _timed(lambda: [store.upsert([r]) for r in recs[:single]])
        rest = recs[single:]
        batched = _timed(lambda: [store.upsert(rest[i:i + batch]) for i in range(0, len(rest), batch)])
        same = _timed(lambda: [store.upsert(recs[i:i + batch]) for i in range(0, len(recs), batch)])
    return {"one by one": single / one, "batches": len(rest) / batched, "unchanged": n / same}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="", help="SQLite path or postgresql:// URL (default: a temporary SQLite file)")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--single", type=int, default=200, help="records written one per transaction (default 200)")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.repeat):
            location = a.store or str(Path(tmp) / f"records-{k}.sqlite")
            for name, rate in run_once(location, a.records, a.batch, a.single, tag=f"{k}-{time.time_ns()}").items():
                runs.setdefault(name, []).append(rate)
    print(f"store: {a.store or 'temporary SQLite file'}, {a.records} records, batch {a.batch}, "
          f"median of {a.repeat}")
    for name, rates in runs.items():
        print(f"  {name:<11} {statistics.median(rates):>10,.0f} records/s   (runs: "
              + ", ".join(f"{r:,.0f}" for r in rates) + ")")


if __name__ == "__main__":
    main()
