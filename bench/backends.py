"""Search backends side by side: the same records and queries through the service on ``local``
(FAISS + BM25L in process) and ``milvus`` (a Milvus Lite server on a loopback port), in one run.

    python -m bench.backends [--sizes demo,10k] [--queries 300] [--out bench/backends.md]

For each corpus (the bundled demo history; the synthetic 10k cases of bench/corpus.py) the
records are indexed once per backend into one data folder (the embedding cache is shared, so the
second build only re-indexes), then the same queries run in process: ``search`` (hybrid, k=10)
and ``related`` for stored records. Latency is the service call, encoder included; the Milvus
figures include the gRPC round trips to a server that is itself Python (Milvus Lite 3), so they
say what the seam costs on one machine, not what a Milvus cluster does.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

from bench.common import fmt, md_table, pct
from bench.machine import REPO, header
from bench.server import WORK
from throwaway.milvus import milvus_lite_server

SIZES = ("demo", "10k")


def corpus(size: str, n_queries: int) -> tuple[list, list[str], list[str]]:
    """(records, free-text queries, ids for related) of a corpus."""
    from indexing.records import Record

    if size == "demo":
        from eval.emerging_eval import demo_records

        records = demo_records()
        cases = [r for r in records if r.kind == "case"]
        texts = [r.title for r in cases] + [r.error_codes[0] for r in cases if r.error_codes][:50]
    else:
        from bench.common import parse_size
        from bench.corpus import ensure_corpus, ensure_queries, read_records

        n = parse_size(size)
        records = read_records(ensure_corpus(n), limit=n, parse=lambda line: Record.model_validate_json(line))
        texts = [q["text"] for q in ensure_queries(n, n=n_queries)]
    rnd = random.Random(5)
    ids = [r.id for r in rnd.sample(records, min(n_queries, len(records)))]
    return records, texts[:n_queries], ids


def measure(settings, records, texts: list[str], ids: list[str]) -> dict:
    from recommender.results import SearchQuery
    from recommender.service import CaselinkService

    t0 = time.perf_counter()
    svc, _ = CaselinkService.build(settings, records=records)
    build_s = time.perf_counter() - t0
    try:
        for text in texts[:5]:  # warm-up: first calls load jieba, the encoder, the gRPC channel
            svc.search(SearchQuery(text=text, k=10))
        search, related, top = [], [], {}
        for text in texts:
            t = time.perf_counter()
            res = svc.search(SearchQuery(text=text, k=10))
            search.append((time.perf_counter() - t) * 1000)
            top[text] = [r.id for r in res.results]
        for rid in ids:
            t = time.perf_counter()
            svc.related(rid, k=10)
            related.append((time.perf_counter() - t) * 1000)
    finally:
        svc.close()
    return {"build_s": build_s, "search": search, "related": related, "top": top}


def main(argv: list[str] | None = None) -> None:
    from caselink.config import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", default=str(REPO / "bench" / "backends.md"))
    a = ap.parse_args(argv)
    rows = []
    root = WORK / "backends"
    shutil.rmtree(root / "milvus", ignore_errors=True)
    with milvus_lite_server(root / "milvus") as uri:
        for size in a.sizes.split(","):
            records, texts, ids = corpus(size, a.queries)
            out = {}
            for kind in ("local", "milvus"):
                settings = load_settings(env={}, data_dir=root / size, encoder__model="use-m3", backend__kind=kind,
                                         backend__uri=uri, backend__collection=f"bench_{size}")
                print(f"{size}: {kind} ...", file=sys.stderr, flush=True)
                out[kind] = m = measure(settings, records, texts, ids)
                rows.append([size, f"{len(records):,}", kind, fmt(m["build_s"]),
                             fmt(pct(m["search"], 50)), fmt(pct(m["search"], 95)),
                             fmt(pct(m["related"], 50)), fmt(pct(m["related"], 95))])
            same = sum(out["local"]["top"][t] == out["milvus"]["top"][t] for t in texts)
            rows[-1].append(f"{same}/{len(texts)}")
            rows[-2].append("")
    body = md_table(["corpus", "records", "backend", "build s", "search p50 ms", "search p95 ms",
                     "related p50 ms", "related p95 ms", "same top 10 as local"], rows)
    cmd = "python -m bench.backends " + " ".join(argv or sys.argv[1:])
    text = header("caselink search backends: local vs milvus", command=cmd.strip()) + "\n" + body + "\n"
    Path(a.out).write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps({"out": a.out}))


if __name__ == "__main__":
    main()
