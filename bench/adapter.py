"""The representation lever in Chinese: a linear adapter on frozen sentence vectors, from labeled pairs.

The learned ranker combines what caselink already scores; on the Chinese question sets both
sides agree and combining gains nothing (bench/learned.md). The issue's other lever is the
representation: learn, from the same training pairs, a linear map W (d x d, started at the
identity) so that f(x) = normalize(x W) of related questions come closer than those of the other
pairs in a batch (InfoNCE with in-batch negatives, both directions, temperature 0.05, a pull
back toward the identity so few pairs cannot wreck the space). Everything is measured on the
split bench.learned uses (labeled pairs split 0.5 by connected component, seed 13):

- the epoch is chosen on a quarter of the *training* components kept back (never on the test half);
- the figure is dense retrieval MRR@10 of the test half's queries (the benchmark protocol:
  every other record is a candidate, at most 2,000 queries) with and without the adapter, over
  caselink's encoder (use-m3) on the text caselink embeds, both without centring; 95% bootstrap
  interval of the paired difference over queries.

    python -m bench.adapter                      # zh_bq_dev and zh_afqmc_dev, writes bench/adapter.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETS = ("zh_bq_dev", "zh_afqmc_dev")


def _embed(records, cache: Path) -> np.ndarray:
    from indexing.embedding_cache import EmbeddingCache
    from indexing.encoders import load_encoder
    from indexing.normalize import normalize

    enc = load_encoder("use-m3")
    store = EmbeddingCache(cache)
    try:
        return store.encode(enc, [normalize(r.full_text()) for r in records])[0]
    finally:
        store.close()


def _queries(pairs, pos: dict[str, int], limit: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Query rows and each query's relevant rows: every id of a label-1 pair, its component's others."""
    from recommender.training import labeled_queries

    qs = labeled_queries(pairs)
    if len(qs) > limit:
        pick = np.sort(np.random.default_rng(seed).permutation(len(qs))[:limit])
        qs = [qs[i] for i in pick]
    return (np.asarray([pos[q.query_id] for q in qs]),
            [np.asarray([pos[i] for i in q.relevant]) for q in qs])


def reciprocal_ranks(V: np.ndarray, rows: np.ndarray, relevant: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Per query, 1/rank of the first relevant record among the top ``k`` by cosine (itself excluded)."""
    out = np.zeros(len(rows))
    for start in range(0, len(rows), 512):
        block = rows[start:start + 512]
        sims = V[block] @ V.T
        sims[np.arange(len(block)), block] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1), axis=1)
        for j, q in enumerate(range(start, start + len(block))):
            hit = np.flatnonzero(np.isin(order[j], relevant[q]))
            out[q] = 1.0 / (hit[0] + 1) if len(hit) else 0.0
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def train_adapter(X: np.ndarray, pos_pairs: np.ndarray, valid: tuple, *, epochs: int = 30, batch: int = 128,
                  lr: float = 1e-3, temperature: float = 0.05, pull: float = 0.1, seed: int = 13
                  ) -> tuple[np.ndarray, list[float]]:
    """W trained on ``pos_pairs`` (rows of related records); the epoch with the best validation MRR@10."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    d = X.shape[1]
    Xt = torch.from_numpy(X.astype(np.float32))
    W = torch.nn.Parameter(torch.eye(d))
    opt = torch.optim.Adam([W], lr=lr)
    eye = torch.eye(d)
    rng = np.random.default_rng(seed)
    best, best_W, curve = -1.0, np.eye(d, dtype=np.float32), []
    for _ in range(epochs):
        order = rng.permutation(len(pos_pairs))
        for start in range(0, len(pos_pairs), batch):
            idx = pos_pairs[order[start:start + batch]]
            a = torch.nn.functional.normalize(Xt[idx[:, 0]] @ W, dim=1)
            b = torch.nn.functional.normalize(Xt[idx[:, 1]] @ W, dim=1)
            logits = a @ b.T / temperature
            target = torch.arange(len(idx))
            loss = (torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits.T, target)) / 2 + pull * ((W - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        Wn = W.detach().numpy().copy()
        score = float(reciprocal_ranks(_unit(X @ Wn), *valid).mean())
        curve.append(round(score, 4))
        if score > best:
            best, best_W = score, Wn
    return best_W, curve


def run_set(name: str, seed: int, cache: Path) -> dict:
    from eval.datasets import load_benchmark
    from eval.learned import held_back
    from eval.reference import benchmarks_dir
    from recommender.training import split_by_component

    records, pairs = load_benchmark(benchmarks_dir() / name)
    pairs = [(p[0], p[1], int(p[2])) for p in pairs]
    train_pairs, test_pairs = split_by_component(pairs, 0.5, seed)
    test_pairs = held_back(test_pairs, train_pairs)
    fit_pairs, valid_pairs = split_by_component(train_pairs, 0.75, seed)
    pos = {r.id: n for n, r in enumerate(records)}
    t0 = time.perf_counter()
    X = _unit(_embed(records, cache))
    embed_s = time.perf_counter() - t0
    rel = np.asarray([(pos[a], pos[b]) for a, b, label in fit_pairs if label == 1])
    valid = _queries(valid_pairs, pos, 2000, seed)
    t0 = time.perf_counter()
    W, curve = train_adapter(X, rel, valid, seed=seed)
    train_s = time.perf_counter() - t0
    rows, relevant = _queries(test_pairs, pos, 2000, seed)
    base = reciprocal_ranks(X, rows, relevant)
    adapted = reciprocal_ranks(_unit(X @ W), rows, relevant)
    diff = adapted - base
    boots = np.random.default_rng(seed).integers(0, len(diff), size=(2000, len(diff)))
    lo, hi = np.percentile(diff[boots].mean(axis=1), [2.5, 97.5])
    return {"set": name, "train_pairs": int(len(rel)), "test_queries": int(len(rows)),
            "dense_mrr@10": round(float(base.mean()), 4), "adapted_mrr@10": round(float(adapted.mean()), 4),
            "gain": round(float(diff.mean()), 4), "gain_ci": [round(float(lo), 4), round(float(hi), 4)],
            "valid_curve": curve, "best_epoch": int(np.argmax(curve)) + 1, "embed_seconds": round(embed_s, 1),
            "train_seconds": round(train_s, 1), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "adapter.sqlite")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "adapter.md")
    args = ap.parse_args()
    rows = []
    for name in args.sets.split(","):
        rows.append(run_set(name, args.seed, args.cache))
        print(json.dumps(rows[-1]), flush=True)
    lines = ["# A linear adapter on the frozen sentence vectors (Chinese sets)", "",
             f"`python -m bench.adapter --sets {args.sets}` (split 0.5 by component, seed {args.seed}; use-m3, no "
             "centring; the epoch chosen on a quarter of the training components). Dense retrieval MRR@10 on the "
             "test half's queries, 95% bootstrap interval of the paired gain over queries.", "",
             "| set | training pairs | test queries | dense | dense + adapter | gain [95%] | best epoch | train s | "
             "load average (1/5/15) |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['train_pairs']} | {r['test_queries']} | {r['dense_mrr@10']:.4f} | "
                     f"{r['adapted_mrr@10']:.4f} | {r['gain']:+.4f} [{r['gain_ci'][0]:+.4f}, {r['gain_ci'][1]:+.4f}] | "
                     f"{r['best_epoch']} | {r['train_seconds']} | {' / '.join(map(str, r['load_average']))} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
