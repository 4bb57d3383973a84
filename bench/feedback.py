"""What stored feedback costs "related to a record": the verdict lookup and the whole request.

For each size the prepared data directory (see :mod:`bench.prepare`) is copied to a temporary
folder, so the benchmark corpus itself never holds feedback. In that copy, ``related()`` runs in
process (no HTTP, so the figure is caselink's own work) for ``--queries`` random stored records,
first with no feedback, then after ``--rows`` feedback rows have been stored between random
pairs of records, a tenth of them on the queried records (so about one in ten results carries a
verdict). Reported: p50/p95 of the verdict lookup (``feedback_between`` plus ``tally``) and of
the whole call, and the verdicts per queried record.

Usage::

    python -m bench.feedback --sizes 10000 [--rows 100000] [--queries 400]
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import base_parser, embed_sample_for, fmt, log, md_table, size_label, write_report
from bench.prepare import prepare_data_dir, settings_for


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t) * 1000, out


def measure(svc, ids: list[str], queried: list[str]) -> dict:
    from recommender.verdicts import tally

    lookup, whole, verdicts = [], [], []
    for rid in queried:
        ms, v = _timed(lambda r: tally(svc.store.feedback_between(r)), rid)
        lookup.append(ms)
        verdicts.append(len(v))
        ms, _ = _timed(svc.related, rid, k=10)
        whole.append(ms)
    return {"lookup_p50": float(np.percentile(lookup, 50)), "lookup_p95": float(np.percentile(lookup, 95)),
            "related_p50": float(np.percentile(whole, 50)), "related_p95": float(np.percentile(whole, 95)),
            "verdicts": float(np.mean(verdicts))}


def add_feedback(svc, ids: list[str], queried: list[str], rows: int, seed: int) -> None:
    r = random.Random(seed)
    now = time.time()
    batch = []
    for i in range(rows):
        q = r.choice(queried) if i % 10 == 0 else r.choice(ids)
        batch.append(("", q, r.choice(ids), int(r.random() < 0.7), f"eng-{r.randrange(50)}", now))
    # One transaction, not add_feedback per row (a commit each): this is set-up, not what is measured.
    with svc.store._transaction() as c:
        c.executemany("INSERT INTO feedback (query, query_id, record_id, helpful, source, created)"
                      " VALUES (?,?,?,?,?,?)", batch)


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], default_sizes="10000", out_name="feedback.md")
    p.add_argument("--rows", type=int, default=100_000, help="feedback rows to store (default 100000)")
    p.add_argument("--queries", type=int, default=400, help="related() calls per measurement (default 400)")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()

    from recommender.service import CaselinkService

    table = []
    for n in a.sizes:
        src = prepare_data_dir(n, seed=a.seed, sample=embed_sample_for("auto", n), threads=a.threads)
        with tempfile.TemporaryDirectory(prefix="caselink-feedback-") as tmp:
            data = Path(tmp) / "data"
            log(f"{size_label(n)}: copying {src}")
            shutil.copytree(src, data, symlinks=True)
            svc = CaselinkService.open(settings_for(data, threads=a.threads))
            try:
                ids = [sr.record.id for sr in svc.store.iter_records()]
                queried = random.Random(a.seed).sample(ids, min(a.queries, len(ids)))
                svc.related(queried[0])  # warm: encoder and caches
                before = measure(svc, ids, queried)
                log(f"{size_label(n)}: storing {a.rows:,} feedback rows")
                add_feedback(svc, ids, queried, a.rows, a.seed)
                after = measure(svc, ids, queried)
            finally:
                svc.store.close()  # no snapshot of the copy
                svc.index.cache.close()
        for label, m in (("none", before), (f"{a.rows:,}", after)):
            table.append([size_label(n), label, fmt(m["verdicts"]), fmt(m["lookup_p50"], 3), fmt(m["lookup_p95"], 3),
                          fmt(m["related_p50"]), fmt(m["related_p95"])])
    body = md_table(["records", "feedback rows", "verdicts per queried record", "lookup p50 ms", "lookup p95 ms",
                     "related() p50 ms", "related() p95 ms"], table)
    write_report(a.out, "Feedback in ranking: cost of the verdict lookup", body,
                 notes=["related() in process, k=10, hybrid; the same queried records before and after."])


if __name__ == "__main__":
    main()
