"""What stored feedback costs ranking: the verdict lookup and the whole request.

For each size the prepared data directory (see :mod:`bench.prepare`) is copied to a temporary
folder, so the benchmark corpus itself never holds feedback. In that copy, ``related()`` runs in
process (no HTTP, so the figure is caselink's own work) for ``--queries`` random stored records,
and ``search()`` for as many benchmark query texts, first with no feedback, then after
``--rows`` feedback rows have been stored: half between random pairs of records, half on random
query texts, a tenth of each on the measured records and texts. Reported: p50/p95 of the
verdict lookup (``feedback_between`` or ``feedback_for_query``, plus ``tally``) and of the whole
call, and the verdicts per measured record or text.

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


def measure(svc, store, queried: list[str], texts: list[str]) -> dict:
    """``store``: the lookups are the record store's own (its own connection to the service's
    store), timed apart from the whole call through the service."""
    from recommender.results import SearchQuery
    from recommender.verdicts import tally

    out = {}
    for call, items, lookup_fn, run in (
            ("related", queried, store.feedback_between, lambda x: svc.related(x, k=10)),
            ("search", texts, store.feedback_for_query, lambda x: svc.search(SearchQuery(text=x, k=10)))):
        lookup, whole, verdicts = [], [], []
        for item in items:
            ms, v = _timed(lambda x: tally(lookup_fn(x)), item)
            lookup.append(ms)
            verdicts.append(len(v))
            ms, _ = _timed(run, item)
            whole.append(ms)
        out[call] = {"lookup_p50": float(np.percentile(lookup, 50)), "lookup_p95": float(np.percentile(lookup, 95)),
                     "p50": float(np.percentile(whole, 50)), "p95": float(np.percentile(whole, 95)),
                     "verdicts": float(np.mean(verdicts))}
    return out


def add_feedback(svc, ids: list[str], queried: list[str], texts: list[str], rows: int, seed: int) -> None:
    from indexing.store import query_key

    r = random.Random(seed)
    now = time.time()
    others = [f"{t} {r.randrange(10**6)}" for t in texts]  # texts nobody measures
    batch = []
    for i in range(rows):
        vote = (r.choice(ids), int(r.random() < 0.7), f"eng-{r.randrange(50)}", now)
        if i % 2:
            q = r.choice(queried) if i % 20 == 1 else r.choice(ids)
            batch.append(("", q, *vote, ""))
        else:
            t = r.choice(texts) if i % 20 == 0 else r.choice(others)
            batch.append((t, "", *vote, query_key(t)))
    # One transaction, not add_feedback per row (a commit each): this is set-up, not what is measured.
    # Straight into the SQLite file the bench's data directory holds (the store's own writes have no bulk vote).
    import sqlite3

    with sqlite3.connect(svc.settings.store_path, timeout=30) as c:
        c.executemany("INSERT INTO feedback (query, query_id, record_id, helpful, source, created, query_key)"
                      " VALUES (?,?,?,?,?,?,?)", batch)
    c.close()


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], default_sizes="10000", out_name="feedback.md")
    p.add_argument("--rows", type=int, default=100_000, help="feedback rows to store (default 100000)")
    p.add_argument("--queries", type=int, default=400, help="related() calls per measurement (default 400)")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()

    from bench.corpus import ensure_queries
    from indexing.store import RecordStore
    from recommender.service import CaselinkService

    table = []
    for n in a.sizes:
        src = prepare_data_dir(n, seed=a.seed, sample=embed_sample_for("auto", n), threads=a.threads)
        with tempfile.TemporaryDirectory(prefix="caselink-feedback-") as tmp:
            data = Path(tmp) / "data"
            log(f"{size_label(n)}: copying {src}")
            shutil.copytree(src, data, symlinks=True)
            settings = settings_for(data, threads=a.threads)
            svc = CaselinkService.open(settings)
            store = RecordStore(settings.store_url).open()
            try:
                ids = [r.id for r in svc.iter_records()]
                queried = random.Random(a.seed).sample(ids, min(a.queries, len(ids)))
                texts = list(dict.fromkeys(q["text"] for q in ensure_queries(n, a.seed, a.queries)))
                measure(svc, store, queried, texts)  # warm: encoder, caches, SQLite pages; not reported
                before = measure(svc, store, queried, texts)
                log(f"{size_label(n)}: storing {a.rows:,} feedback rows")
                add_feedback(svc, ids, queried, texts, a.rows, a.seed)
                after = measure(svc, store, queried, texts)
            finally:
                store.close()
                svc.close()  # nothing was written through it: no snapshot of the copy
        for label, m in (("none", before), (f"{a.rows:,}", after)):
            for call in ("related", "search"):
                c = m[call]
                table.append([size_label(n), label, f"{call}()", fmt(c["verdicts"]), fmt(c["lookup_p50"], 3),
                              fmt(c["lookup_p95"], 3), fmt(c["p50"]), fmt(c["p95"])])
    body = md_table(["records", "feedback rows", "call", "verdicts per call", "lookup p50 ms", "lookup p95 ms",
                     "call p50 ms", "call p95 ms"], table)
    write_report(a.out, "Feedback in ranking: cost of the verdict lookup", body,
                 notes=["In process, k=10, hybrid; the same records and texts before and after."])


if __name__ == "__main__":
    main()
