"""What each encoder costs: texts/s for a build and milliseconds for one query, on benchmark text.

    python -m bench.encoders [--models use-m3,use-m3+minilm] [--sets en_openoffice_dups,zh_bq_dev]
                             [--texts 1000] [--queries 200] [--out bench/encoders.md]

For each set, the first ``--texts`` records' embedding texts (title and body, normalised as the
index sees them) are encoded in one call, as a build does, and ``--queries`` of them one at a
time, as a search does. No cache: every text goes through the model. Relevance of the same
models is in bench/relevance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import md_table, pct, write_report
from bench.machine import REPO


def main(argv: list[str] | None = None) -> None:
    from eval.caselink_retriever import to_record
    from eval.datasets import load_records
    from eval.reference import benchmarks_dir
    from indexing.document import DocumentBuilder
    from indexing.encoders import load_encoder
    from indexing.tokenize import Tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="use-m3,use-m3+minilm")
    ap.add_argument("--sets", default="en_openoffice_dups,en_gitbugs_hadoop,zh_bq_dev")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "bench" / "encoders.md"))
    args = ap.parse_args(argv)
    root = benchmarks_dir()
    docs = DocumentBuilder(Tokenizer())
    rows = []
    for name in args.sets.split(","):
        recs = load_records(root / name / "records.jsonl")[: args.texts]
        texts = [docs.embedding_text(to_record(r)) for r in recs]
        chars = float(np.mean([len(t) for t in texts]))
        for spec in args.models.split(","):
            enc = load_encoder(spec)
            enc.encode(texts[:8])  # load the model and warm up outside the timings
            t0 = time.perf_counter()
            enc.encode(texts)
            build = len(texts) / (time.perf_counter() - t0)
            lat = []
            for t in texts[: args.queries]:
                q0 = time.perf_counter()
                enc.encode([t[:200]])
                lat.append((time.perf_counter() - q0) * 1000)
            rows.append([name, f"{chars:.0f}", spec, f"{build:.0f}", f"{pct(lat, 50):.1f}", f"{pct(lat, 95):.1f}"])
            print(*rows[-1], flush=True)
    body = md_table(["set", "mean chars", "model", "build texts/s", "query p50 ms", "query p95 ms"], rows)
    notes = [f"{args.texts} texts per set encoded in one call (no cache); {args.queries} single queries of at "
             "most 200 characters each"]
    write_report(Path(args.out), "Encoder cost", body, notes=notes)

if __name__ == "__main__":
    main()
