"""The representation lever in Chinese: a linear adapter on frozen sentence vectors, measured through hybrid.

The learned ranker combines what caselink already scores; on the Chinese question sets both
sides agree and combining gains nothing (bench/learned.md). The issue's other lever is the
representation: learn, from the same training pairs, a linear map W (d x d, started at the
identity) so that f(x) = normalize(x W) of related questions come closer than those of the other
pairs in a batch (InfoNCE with in-batch negatives, both directions, temperature 0.05, a pull
back toward the identity so few pairs cannot wreck the space).

Measured on the split bench.learned uses (labeled pairs split 0.5 by connected component, seed
13, the test half's pairs held back from every trained id), through caselink itself:

- W is trained on the encoder's own vectors of the text caselink embeds (``embedding_text``),
  the epoch chosen by dense MRR@10 on a quarter of the *training* components kept back;
- the set is indexed twice by caselink's real pipeline (store, centring as configured, FAISS,
  BM25, fusion): once with the plain encoder, once with :class:`AdaptedEncoder`, the encoder
  wrapped so that records and queries both pass the map (the embedding cache keeps the plain
  vectors; the map is applied on the way out, before centring);
- hybrid, dense and keyword of the plain index and hybrid and dense of the adapted one are
  evaluated on the same test queries (the benchmark protocol, at most 2,000 queries), and the
  paired MRR@10 gain per query gets two 95% bootstrap intervals: over queries, and over
  connected components (queries of one component share their relevant records; the rule
  :func:`recommender.training.verdict` applies before ``auto`` uses a model).

    python -m bench.adapter                      # zh_bq_dev and zh_afqmc_dev, writes bench/adapter.md
    python -m bench.adapter --sets en_emanual_tv_remote --rows /tmp/a.jsonl --out /tmp/a.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETS = ("zh_bq_dev", "zh_afqmc_dev")


class AdaptedEncoder:
    """``inner``'s vectors through the map ``W``: normalize(inner(x) @ W), for records and queries alike.

    It presents itself to caselink as a one-part composite (``parts``/``combine``, the contract
    :class:`indexing.encoders.EnsembleEncoder` defines): the embedding cache stores and serves the
    inner encoder's vectors under their own key, so indexing with a new map re-embeds nothing, and
    the centring sees one block of the full dimension, as for the plain encoder.
    """

    def __init__(self, inner, W: np.ndarray, *, tag: str = "adapter"):
        if W.shape != (inner.dim, inner.dim):
            raise ValueError(f"expected a {inner.dim} x {inner.dim} map, got {W.shape}")
        self.parts = [inner]
        self.weights = np.ones(1)
        self.W = np.ascontiguousarray(W, dtype=np.float32)
        self.dim = inner.dim
        self.model_id = f"{inner.model_id}|{tag}"
        self.spec = inner.spec
        self.cache_key = f"{getattr(inner, 'cache_key', inner.model_id)}|{tag}"

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self.combine([self.parts[0].encode(texts, progress=progress)])

    def combine(self, part_vectors: Sequence[np.ndarray]) -> np.ndarray:
        return _unit(np.asarray(part_vectors[0], dtype=np.float32) @ self.W)

    def part_progress(self, progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
        return progress


class _RankOnly:
    """A caselink mode without ``score_pairs``: the harness then skips the pair scores, which this
    benchmark does not report and which would rank every labeled pair's first record once more."""

    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name

    def fit(self, records) -> None:
        self.inner.fit(records)

    def rank(self, queries, k, candidate_ids=None):
        return self.inner.rank(queries, k, candidate_ids)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _queries(pairs, pos: dict[str, int], limit: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Query rows and each query's relevant rows: every id of a label-1 pair, its component's others."""
    from recommender.splits import labeled_queries

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


def train_adapter(X: np.ndarray, pos_pairs: np.ndarray, valid: tuple, *, epochs: int = 30, batch: int = 128,
                  lr: float = 1e-3, temperature: float = 0.05, pull: float = 0.1, seed: int = 13,
                  negatives: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """W trained on ``pos_pairs`` (rows of related records); the epoch with the best validation MRR@10.

    ``negatives``: per pair, rows its first record must rank below its partner besides the batch's
    other partners (hard negatives: what hybrid ranks highest for it and is not related)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    d = X.shape[1]
    Xt = torch.from_numpy(X.astype(np.float32))
    W = torch.nn.Parameter(torch.eye(d))
    opt = torch.optim.Adam([W], lr=lr)
    eye = torch.eye(d)
    rng = np.random.default_rng(seed)
    # Epoch 0 is the identity: a map that never beats it on validation is not kept.
    best = float(reciprocal_ranks(_unit(X), *valid).mean())
    best_W, curve = np.eye(d, dtype=np.float32), [round(best, 4)]
    for _ in range(epochs):
        order = rng.permutation(len(pos_pairs))
        for start in range(0, len(pos_pairs), batch):
            pick = order[start:start + batch]
            idx = pos_pairs[pick]
            a = torch.nn.functional.normalize(Xt[idx[:, 0]] @ W, dim=1)
            b = torch.nn.functional.normalize(Xt[idx[:, 1]] @ W, dim=1)
            logits = a @ b.T / temperature
            target = torch.arange(len(idx))
            back = torch.nn.functional.cross_entropy(logits.T, target)
            if negatives is not None:
                n = torch.nn.functional.normalize(Xt[torch.from_numpy(negatives[pick])] @ W, dim=2)
                logits = torch.cat([logits, torch.einsum("bd,bhd->bh", a, n) / temperature], dim=1)
            loss = (torch.nn.functional.cross_entropy(logits, target) + back) / 2 + pull * ((W - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        Wn = W.detach().numpy().copy()
        score = float(reciprocal_ranks(_unit(X @ Wn), *valid).mean())
        curve.append(round(score, 4))
        if score > best:
            best, best_W = score, Wn
    return best_W, curve


def _hard_negatives(svc, fit_pairs, rel: np.ndarray, pos: dict[str, int], records, hard: int, *,
                    exclude) -> np.ndarray:
    """Per training pair, the first ``hard`` records hybrid ranks for its first record that are not in
    its component (and not in any test pair: the test half stays unseen), as rows."""
    from recommender.splits import labeled_queries

    related = {q.query_id: q.relevant for q in labeled_queries(fit_pairs)}
    unseen = {str(i) for p in exclude for i in p[:2]}
    ids = [r.id for r in records]
    out = np.zeros((len(rel), hard), dtype=np.int64)
    lists: dict[int, list[int]] = {}
    for n, (a, _) in enumerate(rel):
        if a not in lists:
            q = ids[a]
            resp = svc.related(q, k=hard + 30, mode="hybrid")
            got = [pos[r.id] for r in resp.results if r.id not in related.get(q, ()) and r.id not in unseen]
            lists[a] = (got or [a])[:hard]
        row = lists[a]
        out[n] = (row * hard)[:hard]  # fewer than asked: repeat (a repeated negative is still a negative)
    return out


def _paired(diff: np.ndarray, comps: np.ndarray, seed: int) -> dict:
    """Mean of ``diff`` with 95% bootstrap intervals over queries and over components."""
    from recommender.training import verdict

    boots = np.random.default_rng(seed).integers(0, len(diff), size=(2000, len(diff)))
    lo, hi = np.percentile(diff[boots].mean(axis=1), [2.5, 97.5])
    by_comp = verdict(diff, np.zeros(len(diff)), comps, seed=seed)
    return {"gain": round(float(diff.mean()), 4), "ci_queries": [round(float(lo), 4), round(float(hi), 4)],
            "ci_components": [round(x, 4) for x in by_comp["gain_ci"]]}


def run_set(name: str, seed: int, cache: Path, pulls: Sequence[float] = (0.1,), hard: int = 0) -> dict:
    from caselink.config import load_settings
    from eval.caselink_retriever import CaselinkEngine, CaselinkRetriever
    from eval.datasets import load_benchmark
    from eval.learned import held_back
    from eval.reference import benchmarks_dir
    from eval.runner import evaluate
    from indexing.encoders import load_encoder
    from recommender.splits import components, split_by_component

    t_start = time.perf_counter()
    records, pairs = load_benchmark(benchmarks_dir() / name)
    pairs = [(p[0], p[1], int(p[2])) for p in pairs]
    train_pairs, test_pairs = split_by_component(pairs, 0.5, seed)
    test_pairs = held_back(test_pairs, train_pairs)
    fit_pairs, valid_pairs = split_by_component(train_pairs, 0.75, seed)
    settings = load_settings(env={})
    plain = CaselinkEngine(settings, cache_path=cache)
    adapted = None
    try:
        svc = plain.fit(records)
        stored = svc.records(r.id for r in records)
        texts = [svc.documents.embedding_text(stored[r.id]) for r in records]
        X = _unit(svc.encode(texts))  # the encoder's own vectors, as the adapter will see them
        pos = {r.id: n for n, r in enumerate(records)}
        rel = np.asarray([(pos[a], pos[b]) for a, b, label in fit_pairs if label == 1])
        valid = _queries(valid_pairs, pos, 2000, seed)
        negatives = _hard_negatives(svc, fit_pairs, rel, pos, records, hard, exclude=test_pairs) if hard else None
        t0 = time.perf_counter()
        # The identity's pull chosen on validation too: the strongest pull keeps most of the space.
        tried = {p: train_adapter(X, rel, valid, seed=seed, pull=p, negatives=negatives) for p in pulls}
        pull = max(tried, key=lambda p: max(tried[p][1]))
        W, curve = tried[pull]
        train_s = time.perf_counter() - t0
        e = settings.encoder
        inner = load_encoder(svc.model_spec, threads=e.threads, batch_size=e.batch_size, chunk_chars=e.chunk_chars,
                             lead_weight=e.lead_weight)
        adapted = CaselinkEngine(settings, cache_path=cache, encoder=AdaptedEncoder(inner, W))
        retrievers = {m: _RankOnly(CaselinkRetriever(plain, m), m) for m in ("hybrid", "dense", "keyword")}
        retrievers |= {f"{m}+adapter": _RankOnly(CaselinkRetriever(adapted, m), f"{m}+adapter")
                       for m in ("hybrid", "dense")}
        result = evaluate(records, test_pairs, retrievers, dataset=name, seed=seed)
        comp = components(test_pairs)
        comps = np.asarray([comp[q] for q in result.queries])
        per = {m: r.per_query["mrr@10"] for m, r in result.modes.items()}
        modes = {m: {"mrr@10": round(float(r.metrics["mrr@10"]), 4),
                     "ci": [round(x, 4) for x in r.ci["mrr@10"]],
                     "ms_per_query": round(1000 * r.rank_seconds / max(result.n_queries, 1), 2)}
                 for m, r in result.modes.items()}
        return {"set": name, "model": svc.model_id, "centred": svc.stats().centering,
                "train_pairs": int(len(rel)), "queries": result.n_queries, "modes": modes,
                "hybrid_gain": _paired(per["hybrid+adapter"] - per["hybrid"], comps, seed),
                "dense_gain": _paired(per["dense+adapter"] - per["dense"], comps, seed),
                "hard_negatives": hard, "valid_curve": curve, "best_epoch": int(np.argmax(curve)), "pull": pull,
                "valid_best_by_pull": {str(p): max(c) for p, (_, c) in tried.items()},
                "train_seconds": round(train_s, 1),
                "seconds": round(time.perf_counter() - t_start), "load_average": [round(x, 2) for x in os.getloadavg()]}
    finally:
        plain.close()
        if adapted is not None:
            adapted.close()


def _markdown(rows: list[dict], commit: str) -> str:
    lines = ["# A linear adapter on the frozen sentence vectors, measured through hybrid", "",
             "`python -m bench.adapter` (split 0.5 by connected component, seed 13, the test queries of "
             "bench/learned.py; default settings, centring as configured). Each set is indexed twice by "
             "caselink's pipeline, with the plain encoder and with the encoder wrapped by the adapter (records "
             "and queries both mapped); MRR@10 on the test half's queries with its 95% bootstrap interval, and "
             "the paired gain per query with 95% intervals resampling queries and resampling components.", "",
             "| set | pulls tried | hard negatives | test queries | train pairs | keyword | dense | dense + adapter | "
             "dense gain [queries] "
             "[components] | hybrid | hybrid + adapter | hybrid gain [queries] [components] |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(m: dict) -> str:
        return f"{m['mrr@10']:.4f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]"

    def gain(g: dict) -> str:
        q, c = g["ci_queries"], g["ci_components"]
        return f"{g['gain']:+.4f} [{q[0]:+.4f}, {q[1]:+.4f}] [{c[0]:+.4f}, {c[1]:+.4f}]"

    for r in rows:
        m = r["modes"]
        pulls = ", ".join(str(p) for p in r.get("pulls", [0.1]))
        lines.append(f"| {r['set']} | {pulls} | {r.get('hard_negatives', 0)} | {r['queries']} | {r['train_pairs']} | "
                     f"{cell(m['keyword'])} | "
                     f"{cell(m['dense'])} | "
                     f"{cell(m['dense+adapter'])} | {gain(r['dense_gain'])} | {cell(m['hybrid'])} | "
                     f"{cell(m['hybrid+adapter'])} | {gain(r['hybrid_gain'])} |")
    lines += ["", "| set | model | centred kinds | pull (best validation MRR@10 by pull) | "
              "best epoch (validation MRR@10 by "
              "epoch; 0 = the identity where measured) | train s | run s | "
              "hybrid ms/query plain / adapted | load average at the end (1/5/15) |",
              "|---|---|---|---|---|---:|---:|---|---|"]
    for r in rows:
        m = r["modes"]
        lines.append(f"| {r['set']} | {r['model']} | {', '.join(r['centred']) or 'none'} | {r.get('pull', 0.1)} "
                     f"({', '.join(f'{p}: {v}' for p, v in r.get('valid_best_by_pull', {}).items()) or '-'}) | "
                     f"{r['best_epoch']} "
                     f"({', '.join(str(x) for x in r['valid_curve'])}) | {r['train_seconds']} | {r['seconds']} | "
                     f"{m['hybrid']['ms_per_query']} / {m['hybrid+adapter']['ms_per_query']} | "
                     f"{' / '.join(str(x) for x in r['load_average'])} |")
    lines += ["", f"Measured at commit {commit}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "adapter.md")
    ap.add_argument("--rows", type=Path, default=REPO / "bench" / "adapter.jsonl",
                    help="Each set's figures, one JSON line per set; a rerun of a set replaces its line.")
    ap.add_argument("--render", action="store_true", help="Only write --out from --rows.")
    ap.add_argument("--hard", type=int, default=0, help="Hard negatives per training pair: the records hybrid "
                                                          "ranks highest for its first record that are not related.")
    ap.add_argument("--pulls", default="0.1", help="Pulls toward the identity to train with; the one with the best "
                                                    "validation MRR@10 is kept (comma-separated).")
    args = ap.parse_args()
    for name in [] if args.render else args.sets.split(","):
        row = run_set(name, args.seed, args.cache, [float(p) for p in args.pulls.split(',')], args.hard)
        print(json.dumps(row), flush=True)
        row["pulls"] = [float(p) for p in args.pulls.split(",")]
        row["hard_negatives"] = args.hard
        rows = [r for r in _read(args.rows) if _key(r) != _key(row)] + [row]
        args.rows.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    args.out.write_text(_markdown(_read(args.rows), commit), encoding="utf-8")
    print(f"wrote {args.out}")


def _key(row: dict) -> tuple:
    """A row is a set measured with a choice of pulls: a rerun replaces only the same choice."""
    return row["set"], tuple(row.get("pulls", [0.1])), row.get("hard_negatives", 0)


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(rows, key=lambda r: (SETS.index(r["set"]) if r["set"] in SETS else len(SETS), _key(r)))


if __name__ == "__main__":
    main()
