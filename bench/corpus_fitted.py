"""Two corpus-fitted dense sides measured against the bundled USE on a shared benchmark (not adopted).

Both were tried on the Chinese question sets, where the targets are missed (README, "How good
is it"). Dense-only MRR@10 on the benchmark protocol, centred USE vectors as the base:

- **LSA**: TruncatedSVD of character 1-2-gram TF-IDF over the records (``--lsa-dim``), cosine
  added to USE's with weight 0.5/1.0; and next to a TF-IDF cosine (a stand-in for the keyword
  side of hybrid), since LSA is itself lexical and what counts is what it adds to both.
- **A linear metric learned from labels** (KISSME-style): ``M = inv(C_pos) - inv(C_all)`` from
  the covariance of label-1 pair differences and of all vectors, shrunk towards the identity by
  ``lam`` and projected onto PSD; vectors mapped by ``M^1/2``. Two folds by connected component:
  fitted on one half's pairs, scored on the other half's queries (the whole corpus is ranked).

Usage::

    python -m bench.corpus_fitted --set zh_bq_dev
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.machine import REPO

SHARED = REPO.parent / "shared" / "benchmarks"


def use_vectors(records) -> np.ndarray:
    from caselink.config import load_settings
    from eval.caselink_retriever import CaselinkEngine

    s = load_settings(env={})
    s = s.model_copy(update={"vectors": s.vectors.model_copy(update={"center": False})})
    eng = CaselinkEngine(s, cache_path=REPO / "var" / "eval-cache" / "embeddings.sqlite")
    svc = eng.fit(records)
    try:
        # The encoder's vectors through the embedding cache the fit just filled (what the
        # uncentred index holds, unit length), asked of the service rather than its index.
        stored = svc.records([r.id for r in records])
        X = svc.encode([svc.documents.embedding_text(stored[r.id]) for r in records]).astype(np.float64)
    finally:
        eng.close()
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X -= X.mean(0)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def mrr10(S: np.ndarray, qi: np.ndarray, relevant: list[set[int]]) -> float:
    S = S.copy()
    S[np.arange(len(qi)), qi] = -np.inf  # the query is never a candidate
    top = np.argsort(-S, axis=1)[:, :10]
    return float(np.mean([next((1 / r for r, j in enumerate(row, 1) if j in rel), 0.0)
                          for row, rel in zip(top, relevant)]))


def unit(V: np.ndarray) -> np.ndarray:
    V = V - V.mean(0)
    return V / (np.linalg.norm(V, axis=1, keepdims=True) + 1e-9)


def shrunk(C: np.ndarray, lam: float) -> np.ndarray:
    return (1 - lam) * C + lam * np.trace(C) / len(C) * np.eye(len(C))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="zh_bq_dev")
    p.add_argument("--lsa-dim", type=int, default=256)
    a = p.parse_args()

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from eval.datasets import load_benchmark
    from eval.protocol import UnionFind, build_protocol
    from indexing.normalize import fold

    records, pairs = load_benchmark(SHARED / a.set)
    proto = build_protocol(records, pairs)
    pos = {r.id: n for n, r in enumerate(records)}
    qi = np.array([pos[q] for q in proto.queries])
    rel = [{pos[i] for i in proto.relevant[q]} for q in proto.queries]
    X = use_vectors(records)
    Su = X[qi] @ X.T
    print(f"{a.set}: {len(qi)} queries; USE dense-only MRR@10 {mrr10(Su, qi, rel):.4f}")

    T = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True).fit_transform(
        [fold(r.text) for r in records])
    St = (T[qi] @ T.T).toarray()
    L = unit(TruncatedSVD(a.lsa_dim, random_state=0).fit_transform(T))
    Sl = L[qi] @ L.T
    print(f"  LSA {a.lsa_dim}-d alone {mrr10(Sl, qi, rel):.4f}; USE + LSA (w 0.5 / 1.0) "
          f"{mrr10(Su + 0.5 * Sl, qi, rel):.4f} / {mrr10(Su + Sl, qi, rel):.4f}")
    for wt in (0.5, 1.0):
        print(f"  USE + {wt} TF-IDF {mrr10(Su + wt * St, qi, rel):.4f}; with LSA 0.5 "
              f"{mrr10(Su + wt * St + 0.5 * Sl, qi, rel):.4f}")

    uf = UnionFind()
    for pr in pairs:
        uf.find(pr.id_a), uf.find(pr.id_b)
        if pr.label:
            uf.union(pr.id_a, pr.id_b)
    roots = sorted({uf.find(r.id) for r in records})
    fold_of = dict(zip(roots, np.random.default_rng(0).integers(0, 2, len(roots))))
    side = np.array([fold_of[uf.find(r.id)] for r in records])
    Ct = np.cov(X.T)
    for test in (0, 1):
        D = np.array([X[pos[pr.id_a]] - X[pos[pr.id_b]] for pr in pairs
                      if pr.label == 1 and side[pos[pr.id_a]] != test])
        Cp = D.T @ D / len(D)
        keep = np.array([side[q] == test for q in qi])
        q, r = qi[keep], [x for x, k in zip(rel, keep) if k]
        line = [f"base {mrr10(X[q] @ X.T, q, r):.4f}"]
        for lam in (0.1, 0.3, 0.5):
            w, U = np.linalg.eigh(np.linalg.inv(shrunk(Cp, lam)) - np.linalg.inv(shrunk(Ct, lam)))
            Y = X @ (U * np.sqrt(np.maximum(w, 0))) @ U.T
            Y /= np.linalg.norm(Y, axis=1, keepdims=True) + 1e-12
            line.append(f"lam {lam}: {mrr10(Y[q] @ Y.T, q, r):.4f}")
        print(f"  learned metric, fit on fold {1 - test} ({len(D)} pairs), {len(q)} queries of fold {test}: "
              + ", ".join(line))


if __name__ == "__main__":
    main()
