"""Keyword search: caselink's BM25Index versus bm25s and rank_bm25 on the same tokens.

The corpus records are tokenised once with caselink's own :class:`~indexing.document.DocumentBuilder`
(jieba words, CJK bigrams, stemmed English, whole codes, title and codes weighted by repetition,
the same user words the live index adds), and the queries from the corpus generator with the
tokenizer the service uses for a search. Every library then indexes exactly those token lists, each
in its own subprocess (so the memory it adds is its own), and answers the same queries one at a
time with top-10:

- caselink ``BM25Index.add`` + ``compact``, ``search(tokens, 10)`` (and, for reference, the call the
  service makes: 100 candidates, normalised scores);
- ``bm25s.BM25(method="lucene", k1, b)`` -- the same idf and tf formula as caselink --
  ``index`` and ``retrieve([tokens], k=10)``, plus one batched ``retrieve`` over all queries;
- ``rank_bm25.BM25Okapi(k1, b)`` ``get_scores`` + top-10 (slow: fewer queries, ``--slow-queries``).

Ratios are reported, nothing is asserted; top-10 overlap with bm25s checks the two rank alike.
bm25s and rank_bm25 are peers, installed only in the benchmark venv (``make bench-env``); a missing
one is reported as not installed.

Usage::

    bench/.env/bin/python -m bench.keyword --sizes 10000,100000 [--queries 1000] [--slow-queries 50]
"""

from __future__ import annotations

import json
import time
from importlib import util as import_util
from pathlib import Path

import numpy as np

from bench.common import (WORK, Target, base_parser, fmt, fmt_mb, log, md_table, rss_of, run_measured, size_label,
                          targets_table, write_report)
from bench.corpus import ensure_corpus, ensure_queries
from bench.prepare import read_corpus, settings_for

K1, B = 1.2, 0.75
LIBS = ("caselink", "caselink (service call)", "bm25s", "rank_bm25")


def _tokens_path(n: int, seed: int) -> Path:
    return WORK / "tokens" / f"tokens-{size_label(n)}-s{seed}.jsonl"


def tokenize_corpus(n: int, seed: int, n_queries: int) -> dict:
    """Subprocess body: tokenise the corpus and the queries with caselink's tokenizer; write JSONL."""
    from indexing.document import DocumentBuilder
    from indexing.tokenize import Tokenizer, text_params

    settings = settings_for(WORK / "tmp")
    records = read_corpus(ensure_corpus(n, seed), n)
    words = sorted({v for r in records for v in (r.product, r.model, r.module) if v})
    t = settings.text
    docs = DocumentBuilder(Tokenizer(**text_params(t.model_dump()), user_words=words),
                           title_weight=settings.bm25.title_weight, code_weight=settings.bm25.code_weight)
    docs.tokenizer.tokenize("预热")  # load jieba outside the clock
    t0 = time.perf_counter()
    token_lists = [docs.tokens(r) for r in records]
    seconds = time.perf_counter() - t0
    queries = [docs.tokenizer.tokenize(q["text"]) for q in ensure_queries(n, seed, n_queries)]
    path = _tokens_path(n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(queries, ensure_ascii=False) + "\n")
        for tl in token_lists:
            fh.write(json.dumps(tl, ensure_ascii=False) + "\n")
    lengths = np.array([len(tl) for tl in token_lists])
    return {"tokenise_s": seconds, "tokens_mean": float(lengths.mean()), "queries": len(queries),
            "query_tokens_mean": float(np.mean([len(q) for q in queries])),
            "vocab": len({tok for tl in token_lists for tok in tl})}


def _load_tokens(path: str) -> tuple[list[list[str]], list[list[str]]]:
    with open(path, encoding="utf-8") as fh:
        queries = json.loads(fh.readline())
        docs = [json.loads(line) for line in fh]
    return docs, queries


def measure(lib: str, tokens_path: str, n_queries: int, k: int = 10, keep: int = 200) -> dict:
    """Subprocess body: index with ``lib`` and answer ``n_queries`` queries one at a time."""
    import gc
    import os

    docs, queries = _load_tokens(tokens_path)
    queries = [q for q in queries if q][:n_queries]
    gc.collect()
    rss0 = rss_of(os.getpid())["rss_mb"]
    out: dict = {"lib": lib, "docs": len(docs)}
    t0 = time.perf_counter()
    if lib.startswith("caselink"):
        from indexing.bm25 import BM25Index

        idx = BM25Index(k1=K1, b=B)
        idx.add(list(range(len(docs))), docs)
        idx.compact()
        if lib == "caselink":
            def search(q):
                return idx.search(q, k)[0]
        else:  # what LiveIndex.search_keyword asks for: 100 candidates, normalised scores
            def search(q):
                return idx.search(q, 100, normalize=True)[0][:k]
    elif lib == "bm25s":
        import bm25s

        out["version"] = bm25s.__version__
        idx = bm25s.BM25(k1=K1, b=B, method="lucene")
        idx.index(docs, show_progress=False)

        def search(q):
            return idx.retrieve([q], k=k, show_progress=False, n_threads=0)[0][0]
    elif lib == "rank_bm25":
        from rank_bm25 import BM25Okapi

        idx = BM25Okapi(docs, k1=K1, b=B)

        def search(q):
            scores = idx.get_scores(q)
            top = np.argpartition(-scores, k - 1)[:k]
            return top[np.argsort(-scores[top], kind="stable")]
    else:
        raise ValueError(f"unknown library {lib}")
    out["index_s"] = time.perf_counter() - t0
    del docs
    gc.collect()
    out["index_mb"] = rss_of(os.getpid())["rss_mb"] - rss0
    for q in queries[:5]:  # warm caches
        search(q)
    lat, results = [], []
    t_all = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        ids = search(q)
        lat.append((time.perf_counter() - t) * 1000)
        if len(results) < keep:
            results.append([int(x) for x in ids])
    total = time.perf_counter() - t_all
    out.update(queries=len(queries), p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
               qps=len(queries) / total, top=results)
    if lib == "bm25s":
        t = time.perf_counter()
        idx.retrieve(queries, k=k, show_progress=False, n_threads=0)
        out["batch_qps"] = len(queries) / (time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="10000,100000", out_name="keyword.md")
    p.add_argument("--queries", type=int, default=1000, help="queries per library (default 1000)")
    p.add_argument("--slow-queries", type=int, default=50, help="queries for rank_bm25 (default 50)")
    a = p.parse_args(argv)
    have = {"bm25s": import_util.find_spec("bm25s") is not None,
            "rank_bm25": import_util.find_spec("rank_bm25") is not None}

    rows, ratio_rows, tok_rows, targets = [], [], [], []
    for n in a.sizes:
        log(f"{size_label(n)}: tokenising with caselink's tokenizer")
        tok = run_measured("bench.keyword:tokenize_corpus", {"n": n, "seed": a.seed, "n_queries": a.queries})
        tok_rows.append([size_label(n), fmt(tok["tokenise_s"]), fmt(n / tok["tokenise_s"]), fmt(tok["tokens_mean"]),
                         f"{tok['vocab']:,}", tok["queries"], fmt(tok["query_tokens_mean"])])
        path = str(_tokens_path(n, a.seed))
        res = {}
        for lib in LIBS:
            if lib in have and not have[lib]:
                rows.append([size_label(n), lib, "not installed (make bench-env)", *["-"] * 7])
                continue
            log(f"{size_label(n)}: {lib}")
            res[lib] = run_measured("bench.keyword:measure", {"lib": lib, "tokens_path": path,
                                                              "n_queries": a.slow_queries if lib == "rank_bm25"
                                                              else a.queries})
            r = res[lib]
            rows.append([size_label(n), lib + (f" {r['version']}" if r.get("version") else ""), fmt(r["index_s"], 2),
                         fmt(n / r["index_s"]), fmt_mb(r["index_mb"]), r["queries"], fmt(r["p50_ms"], 2),
                         fmt(r["p95_ms"], 2), fmt(r["qps"]), fmt(r.get("batch_qps")) if r.get("batch_qps") else "-"])
        c = res.get("caselink")
        for peer in ("bm25s", "rank_bm25"):
            o = res.get(peer)
            if not c or not o:
                continue
            m = min(len(c["top"]), len(o["top"]))
            overlap = np.mean([len(set(c["top"][i]) & set(o["top"][i])) / max(1, len(c["top"][i]))
                               for i in range(m)]) if m else float("nan")
            ratio_rows.append([size_label(n), peer, fmt(o["index_s"] / c["index_s"], 2),
                               fmt(o["p50_ms"] / c["p50_ms"], 2), fmt(c["qps"] / o["qps"], 2), fmt(overlap, 3)])
            goal = 1.0 if peer == "bm25s" else 20.0
            targets.append(Target(f"caselink queries/s / {peer} queries/s, {size_label(n)}", c["qps"] / o["qps"],
                                  ">=", goal, "x"))
    body = ["## Tokenisation (caselink's DocumentBuilder, shared by all libraries)\n",
            md_table(["size", "tokenise s", "records/s", "tokens per record", "vocabulary", "queries",
                      "tokens per query"], tok_rows),
            "\n## Index and query\n",
            "Single queries, top-10, one thread; 'index memory' is the resident size the index adds "
            "(after the token lists are freed). 'caselink (service call)' is the call the live index makes: "
            "100 candidates with normalised scores.\n",
            md_table(["size", "library", "index s", "docs/s indexed", "index memory", "queries", "p50 ms", "p95 ms",
                      "queries/s", "batched queries/s"], rows),
            "\n## Ratios (peer / caselink: above 1 means caselink is faster)\n",
            md_table(["size", "peer", "index time ratio", "p50 latency ratio", "caselink q/s over peer q/s",
                      "top-10 overlap with caselink"], ratio_rows) if ratio_rows else "No peer installed.\n",
            "\nrank_bm25 uses its own idf (with an epsilon floor), so its top-10 differs by design; bm25s "
            "'lucene' uses caselink's formula, so its overlap should be close to 1 (ties aside).\n",
            "\n## Targets\n", targets_table(targets) if targets else "No peer installed.\n"]
    write_report(a.out, "caselink keyword search versus bm25s and rank_bm25", "\n".join(body),
                 notes=[f"BM25 k1={K1}, b={B}; identical token lists for every library"])


if __name__ == "__main__":
    main()
