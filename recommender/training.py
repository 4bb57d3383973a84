"""Training the learned ranker from labeled pairs: split, gather, fit, calibrate, validate.

Labels are pairs ``(id_a, id_b, label)``: the store's links and feedback votes
(:func:`eval.links.pairs_from_links` derives them), or a pairs file in the eval format. Two
records in one connected component of label-1 pairs are related; a query is a record of a
component and its relevant set the rest of the component.

**No leakage.** Every split here is by connected component, never by pair or by query: a
component's queries, their partners and every pair touching them go to one side together, so
the held-out side asks about records the model never saw labeled (:func:`recommender.splits.split_by_component`).
The training side is split the same way again: the model is fitted on one part, and the other
part (``valid_fraction``) stops the boosting and gives the validation figures saved with the
model. The calibration is cross-fitted over every training component (each fold's scores from a
model fitted without it: :mod:`recommender.calibration`).

**Model.** LightGBM's ``lambdarank`` (LambdaMART) over the hybrid candidate list of each query
(:meth:`recommender.service.CaselinkService.ranking_features`): gradient-boosted trees take the
mixed-scale features (cosines, shares of BM25, ranks, facet agreement) without scaling, learn
"whom to trust" per query from the lists' own standing, and the model is a text file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from caselink.errors import InvalidQuery
from recommender.calibration import cross_fitted, expected_calibration_error, top10
from recommender.features import FEATURES
from recommender.learned import Prior, RankerModel
from recommender.splits import LabeledQuery, labeled_queries


Progress = Callable[[int, int], None]


@dataclass
class Gathered:
    """Candidate lists of labeled queries: features, labels, today's fused scores, list sizes."""

    X: np.ndarray
    y: np.ndarray
    fused: np.ndarray
    groups: np.ndarray  # candidates per query, in order
    components: np.ndarray  # component of each query
    missed: int  # queries none of whose relevant records was among the candidates
    names: tuple[str, ...] = FEATURES  # the columns of X
    # Those queries' lists (every label 0): nothing to rank by, but a user is shown them too, so
    # the calibration needs them (without them it overstates: 21% of bq's lists). Not kept by take().
    missed_lists: "Gathered | None" = None

    def hybrid(self) -> np.ndarray:
        """A score per candidate whose order within each list is hybrid's as served: the fused
        order with the exact-code rule on top (what learned is measured against)."""
        return HYBRID_ORDER.scores(self.X, self.names)

    def take(self, which: np.ndarray) -> "Gathered":
        """The queries where ``which`` (one bool per query) is set."""
        starts = np.concatenate([[0], np.cumsum(self.groups)[:-1]])
        rows = np.concatenate([np.arange(s, s + g) for s, g, w in zip(starts, self.groups, which) if w] or
                              [np.zeros(0, dtype=np.int64)]).astype(np.int64)
        return Gathered(self.X[rows], self.y[rows], self.fused[rows], self.groups[which], self.components[which],
                        0, self.names)


def gather(service, queries: Sequence[LabeledQuery], *, kinds: list[str] | None = None,
           progress: Progress | None = None) -> Gathered:
    """Rank each query's hybrid candidates with ``service`` and label them by its relevant set."""
    found, empty = _Lists(), _Lists()
    names = service.feature_names()
    for n, q in enumerate(queries, 1):
        ids, fused, X = service.ranking_features(q.query_id, kinds=kinds)
        y = np.fromiter((i in q.relevant for i in ids), dtype=np.float32, count=len(ids))
        if progress is not None and (n % 50 == 0 or n == len(queries)):
            progress(n, len(queries))
        if len(ids):
            (found if y.any() else empty).add(X, y, fused, q.component)
    missed = len(queries) - len(found.groups)
    return found.gathered(names, missed, missed_lists=empty.gathered(names, 0))


@dataclass
class _Lists:
    """Candidate lists as :func:`gather` collects them."""

    X: list = field(default_factory=list)
    y: list = field(default_factory=list)
    fused: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    comps: list = field(default_factory=list)

    def add(self, X: np.ndarray, y: np.ndarray, fused: np.ndarray, component: int) -> None:
        self.X.append(X)
        self.y.append(y)
        self.fused.append(fused)
        self.groups.append(len(y))
        self.comps.append(component)

    def gathered(self, names: tuple[str, ...], missed: int, missed_lists: Gathered | None = None) -> Gathered:
        if not self.X:
            return Gathered(np.zeros((0, len(names)), dtype=np.float32), np.zeros(0), np.zeros(0),
                            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), missed, names, missed_lists)
        return Gathered(np.vstack(self.X), np.concatenate(self.y), np.concatenate(self.fused),
                        np.asarray(self.groups), np.asarray(self.comps), missed, names, missed_lists)


def reciprocal_ranks(scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per list, the reciprocal rank of the first relevant candidate within the top 10 (0 if none)."""
    out, start = np.zeros(len(groups)), 0
    for n, g in enumerate(groups):
        s, lab = scores[start:start + g], y[start:start + g]
        start += g
        order = np.lexsort((np.arange(len(s)), -s))[:10]
        hit = np.flatnonzero(lab[order] > 0)
        out[n] = 1.0 / (hit[0] + 1) if len(hit) else 0.0
    return out


def mrr_at_10(scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Mean reciprocal rank of the first relevant candidate within the top 10, per list."""
    rr = reciprocal_ranks(scores, y, groups)
    return float(rr.mean()) if len(rr) else 0.0


# The verdict's rule (README "Train on your own labels"): a model is used by default only when
# its gain is credible. Below 50 held-out queries a 95% interval of an MRR@10 difference is
# wider than the gains at stake (about +-0.05), so small label sets are refused outright.
MIN_VERDICT_QUERIES = 50
VERDICT_DRAWS = 2000


def verdict(learned_rr: np.ndarray, hybrid_rr: np.ndarray, comps: np.ndarray, *, seed: int = 13,
            min_queries: int = MIN_VERDICT_QUERIES, draws: int = VERDICT_DRAWS, level: float = 0.95) -> dict:
    """Whether a model's gain over hybrid on held-out queries is credible.

    The gain is the mean of the per-query differences of reciprocal rank (MRR@10); its 95%
    interval is a bootstrap over connected components (queries of one component share their
    relevant records, so they are not independent draws; with fewer than 10 components, over
    queries). Passed: at least ``min_queries`` queries and the interval's lower end above 0.
    ``level`` is the interval's (the figures in ``reason`` name it when it is not 95%).
    """
    diff = np.asarray(learned_rr, dtype=np.float64) - np.asarray(hybrid_rr, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return {"queries": 0, "gain": 0.0, "gain_ci": [0.0, 0.0], "passed": False,
                "reason": "no held-out query found a relevant record among its candidates"}
    _, cluster = np.unique(comps, return_inverse=True)
    if cluster.max() + 1 < 10:
        cluster = np.arange(n)
    sums = np.bincount(cluster, weights=diff)
    counts = np.bincount(cluster).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    step = max(1, 2_000_000 // len(sums))  # bounded memory: draws x clusters indices at a time
    for start in range(0, draws, step):
        pick = rng.integers(0, len(sums), size=(min(step, draws - start), len(sums)))
        means[start:start + len(pick)] = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    tail = 50.0 * (1.0 - level)
    lo, hi = (float(x) for x in np.percentile(means, [tail, 100.0 - tail]))
    gain = float(diff.mean())
    pct = f"{100 * level:g}%"
    if n < min_queries:
        reason = f"{n} held-out queries, fewer than the {min_queries} a credible verdict needs"
    elif hi < 0:
        reason = f"gain {gain:+.4f} MRR@10, {pct} interval [{lo:+.4f}, {hi:+.4f}] below 0: hybrid ranks better"
    elif lo <= 0:
        reason = f"gain {gain:+.4f} MRR@10, {pct} interval [{lo:+.4f}, {hi:+.4f}] includes 0"
    else:
        reason = f"gain {gain:+.4f} MRR@10, {pct} interval [{lo:+.4f}, {hi:+.4f}] above 0"
    return {"queries": int(n), "gain": round(gain, 4), "gain_ci": [round(lo, 4), round(hi, 4)],
            "passed": bool(n >= min_queries and lo > 0), "reason": reason}


# Boosting starts from the hybrid ranking as served (recommender.learned.Prior.hybrid): raw =
# PRIOR_SCALE * fused score + 2 * PRIOR_SCALE per exact code shared (when the query names 1-3) +
# trees. The code rule sits in the prior, not on top of the model alone, so training, validation
# and calibration see the order hybrid serves, and serving's code rule (applied to every path)
# finds it already in place. Fused scores are 0-1, a list's top and middle some 0.2-0.4 apart: at 5 that is a
# pair probability of 0.7-0.9 in lambdarank's sigmoid, a firm start that a few trees can still
# overturn where the labels disagree. Chosen over the fused position (-log(1 + rank)) and over
# scales 3 and 8 on the training halves' own data (bench/learned.md, "Choosing the prior").
PRIOR_SCALE = 5.0
# Hybrid's order as served over gathered lists (any scale gives the same order).
HYBRID_ORDER = Prior.hybrid(1.0)
# The trees are kept when the validation components say, with 80% one-sided confidence (the 60%
# interval's lower end above 0) over at least 30 queries, that they beat the ranking they start
# from; else none (hybrid order). Looser than the verdict (95%, 50 queries), which decides
# whether auto uses a model at all: a kept correction only has to be more likely right than wrong.
KEEP_MIN_QUERIES = 30
KEEP_LEVEL = 0.6
PARAMS = {"objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [10], "learning_rate": 0.05,
          "num_leaves": 15, "min_data_in_leaf": 20, "feature_fraction": 0.9, "lambdarank_truncation_level": 20,
          "num_threads": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}


def split_validation(data: Gathered, valid_fraction: float = 0.25, seed: int = 13) -> tuple[Gathered, Gathered]:
    """(fit, validation) parts of ``data``: about ``valid_fraction`` of its components, drawn with ``seed``."""
    comps = np.unique(data.components)
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(valid_fraction * len(comps))))
    is_valid = np.isin(data.components, rng.permutation(comps)[:n_valid])
    if is_valid.all() or not is_valid.any():
        is_valid = np.arange(len(data.groups)) % 4 == 3  # one component: validate on a quarter of its queries
    return data.take(~is_valid), data.take(is_valid)


def fit(data: Gathered, *, valid_fraction: float = 0.25, seed: int = 13, rounds: int = 300,
        prior_scale: float | None = PRIOR_SCALE, params: dict | None = None, info: dict | None = None,
        depth: int | None = None) -> RankerModel:
    """Fit lambdarank on part of ``data``'s components and validate on the rest; calibrate on
    out-of-fold scores of all of them (:func:`recommender.calibration.cross_fitted`).

    With ``prior_scale`` (the default) boosting starts from the hybrid ranking and the trees
    learn corrections: early stopping on the validation components picks how many, and none are
    kept unless they beat the hybrid ranking there credibly enough (:data:`KEEP_LEVEL`); the
    model then ranks as hybrid. ``None`` learns from scratch (format 1's models). ``params``
    override LightGBM's (:data:`PARAMS`). ``depth``: the ``rank.learned_depth`` the lists were
    gathered at, saved with the model so serving can say when it reranks another depth.

    Raises:
        InvalidQuery: fewer than 4 queries had a relevant record among their candidates.
    """
    import lightgbm as lgb

    n_q = len(data.groups)
    if n_q < 4:
        raise InvalidQuery(f"expected at least 4 labeled queries whose relevant records the hybrid ranking finds, "
                           f"got {n_q}", field="pairs")
    tr, va = split_validation(data, valid_fraction, seed)
    names = tuple(data.names)
    prior, lean = Prior(), None
    if prior_scale is not None:
        lean = keyword_lean(tr, va, prior_scale, seed=seed)
        prior = Prior.hybrid(prior_scale, keyword_rank=lean["keyword_rank"])
        prior = Prior.hybrid(prior_scale, round(float(prior.scores(tr.X, names).mean()), 6), lean["keyword_rank"])
    init_tr, init_va = prior.scores(tr.X, names), prior.scores(va.X, names)
    # One thread: on a shared 2-core machine two OpenMP threads spin-waited and fitted 6x slower
    # than one (81 s against 12 s for the same 100 rounds under load); one is also deterministic.
    params = {**PARAMS, "seed": seed, **(params or {})}
    t0 = time.perf_counter()
    # init_score is the prior: LightGBM boosts from it but does not keep it, so raw() adds it back.
    train_set = lgb.Dataset(tr.X, tr.y, group=tr.groups, init_score=init_tr, feature_name=list(names),
                            free_raw_data=False)
    valid_set = lgb.Dataset(va.X, va.y, group=va.groups, init_score=init_va, reference=train_set)
    booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(30, verbose=False)])
    fit_seconds = time.perf_counter() - t0
    trees = int(booster.best_iteration or rounds)
    raw_va = init_va + booster.predict(va.X, num_iteration=trees)
    hybrid_rr = reciprocal_ranks(va.hybrid(), va.y, va.groups)
    trees_rr = reciprocal_ranks(raw_va, va.y, va.groups)
    start_rr = reciprocal_ranks(init_va, va.y, va.groups) if prior.kind != "none" else hybrid_rr
    # Passed (auto uses it) is judged against hybrid: the prior is hybrid unless it leans on keyword.
    judged = verdict(trees_rr, hybrid_rr if prior.keyword_rank else start_rr, va.components, seed=seed)
    judged.pop("queries")
    keep = verdict(trees_rr, start_rr, va.components, seed=seed, min_queries=KEEP_MIN_QUERIES, level=KEEP_LEVEL)
    stopped = trees
    if prior.kind != "none" and not keep["passed"]:
        # Corrections that validation cannot tell from noise are not kept: the model is the prior
        # alone and ranks as hybrid. Few labels -> no credible gain -> hybrid, never worse.
        trees, raw_va = 0, init_va
        if prior.keyword_rank:  # the model is the leaning prior alone: judged as that against hybrid
            judged = {k: v for k, v in verdict(start_rr, hybrid_rr, va.components, seed=seed).items() if k != "queries"}
        judged["reason"] += f"; no tree kept ({keep['reason']}): ranks as {_as(prior)}"
    chosen = cross_fitted(data, prior, params, trees, seed=seed)
    model = RankerModel(booster_text=booster.model_to_string(num_iteration=trees) if trees else "",
                        calibration_x=[float(x) for x in chosen.calibration.x],
                        calibration_y=[float(y) for y in chosen.calibration.y], features=names, prior=prior,
                        depth=depth)
    learned_rr = reciprocal_ranks(raw_va, va.y, va.groups)
    model.info = {
        **(info or {}),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "queries": int(n_q), "fit_queries": int(len(tr.groups)), "valid_queries": int(len(va.groups)),
        "candidates": int(len(data.y)), "positives": int(data.y.sum()),
        "rounds": trees, "trees": trees_reason(trees, stopped, rounds, prior, keep),
        "prior": prior.to_json(), **({"prior_choice": lean["reason"]} if lean else {}),
        "fit_seconds": round(fit_seconds, 2),
        "calibration": chosen.info(),
        "validation": {
            "mrr@10_learned": round(float(learned_rr.mean()), 4), "mrr@10_hybrid": round(float(hybrid_rr.mean()), 4),
            "mrr@10_trees": round(float(trees_rr.mean()), 4),
            # Cross-validated: the kept method's held-out-fold predictions (recommender.calibration.choose).
            "ece@10": round(chosen.cv_ece[chosen.calibration.method], 4),
            # Passed: the trees' gain over the ranking they start from is credible (see verdict).
            **judged,
        },
    }
    return model


def trees_reason(kept: int, stopped: int, rounds: int, prior: Prior, keep: dict) -> str:
    """How many trees a model kept and why, in a sentence (``caselink train`` prints it).

    ``stopped``: the trees early stopping chose (of at most ``rounds``); ``keep``: the
    :func:`verdict` at :data:`KEEP_LEVEL` of those trees against the prior on validation."""
    if prior.kind == "none":
        return (f"{kept} trees, learned from scratch (no prior): early stopping on the validation components "
                f"chose {stopped} of at most {rounds} rounds")
    if kept == 0:
        return (f"0 trees: validation could not tell their gain from noise ({keep['reason']}; early stopping had "
                f"chosen {stopped}); ranks as {_as(prior)}")
    return (f"{kept} trees on top of {_as(prior)}: early stopping on the validation components chose {kept} of at "
            f"most {rounds} rounds, and they beat it there ({keep['reason']})")


def _as(prior: Prior) -> str:
    return f"hybrid leaning on keyword ranks ({prior.keyword_rank:g})" if prior.keyword_rank else "hybrid"


# How far the prior may lean on the keyword side's rank (Prior.keyword_rank): 0 is hybrid.
KEYWORD_LEANS = (0.0, 0.05, 0.1, 0.2)


def keyword_lean(fit_part: Gathered, valid: Gathered, scale: float, *, seed: int = 13) -> dict:
    """Whom to trust: how far the prior leans on the keyword side's own rank, chosen on the
    lists boosting fits on (the best MRR@10 of :data:`KEYWORD_LEANS`) and kept only when the
    validation components say, as they do for trees (:data:`KEEP_LEVEL`, at least
    :data:`KEEP_MIN_QUERIES` queries), that it beats hybrid's own order; else 0 (hybrid).
    Never the held-out test labels. {"keyword_rank", "reason"}."""
    names = tuple(fit_part.names)

    def at(part: Gathered, lean: float) -> np.ndarray:
        return reciprocal_ranks(Prior.hybrid(scale, keyword_rank=lean).scores(part.X, names), part.y, part.groups)

    if "keyword_log_rank" not in names or not len(fit_part.groups) or not len(valid.groups):
        return {"keyword_rank": 0.0, "reason": "hybrid: no lists to choose on"}
    on_fit = [float(at(fit_part, lean).mean()) for lean in KEYWORD_LEANS]
    best = KEYWORD_LEANS[int(np.argmax(on_fit))]
    if best == 0.0:
        return {"keyword_rank": 0.0, "reason": f"hybrid: leaning on keyword ranks did not help the fitted lists "
                                               f"(MRR@10 {on_fit[0]:.4f} at 0, best)"}
    v = verdict(at(valid, best), at(valid, 0.0), valid.components, seed=seed, min_queries=KEEP_MIN_QUERIES,
                level=KEEP_LEVEL)
    if not v["passed"]:
        return {"keyword_rank": 0.0, "reason": f"hybrid: leaning {best:g} on keyword ranks helped the fitted lists "
                                               f"(MRR@10 {on_fit[0]:.4f} -> {max(on_fit):.4f}), not credibly the "
                                               f"validation's ({v['reason']})"}
    return {"keyword_rank": best, "reason": f"leaning {best:g} on keyword ranks: fitted lists MRR@10 "
                                            f"{on_fit[0]:.4f} -> {max(on_fit):.4f}, validation {v['reason']}"}


def train(service, pairs: Sequence[Sequence], *, kinds: list[str] | None = None,
          query_ids: Iterable[str] | None = None, candidate_ids: Iterable[str] | None = None,
          max_queries: int = 5000, seed: int = 13, rounds: int = 300, progress: Progress | None = None,
          info: dict | None = None) -> RankerModel:
    """Gather the candidates of the queries of ``pairs`` with ``service`` and :func:`fit` a model.

    At most ``max_queries`` queries are used (a seeded sample): gathering ranks each one, and
    beyond a few thousand lists the model gains little for the minutes it costs.
    """
    queries = labeled_queries(pairs, query_ids=query_ids, candidate_ids=candidate_ids)
    if len(queries) > max_queries:
        pick = np.sort(np.random.default_rng(seed).permutation(len(queries))[:max_queries])
        queries = [queries[i] for i in pick]
    t0 = time.perf_counter()
    data = gather(service, queries, kinds=kinds, progress=progress)
    gather_seconds = time.perf_counter() - t0
    n_pairs = sum(1 for p in pairs if int(p[2]) == 1)
    model = fit(data, seed=seed, rounds=rounds, depth=service.settings.rank.learned_depth, info={**(info or {}), "pairs": n_pairs, "labeled_queries": len(queries),
                                       "missed_queries": data.missed, "gather_seconds": round(gather_seconds, 2)})
    return model


def held_out(service, model: RankerModel, pairs: Sequence[Sequence], *, kinds: list[str] | None = None,
             query_ids: Iterable[str] | None = None, candidate_ids: Iterable[str] | None = None) -> dict:
    """Learned against hybrid on the queries of held-out ``pairs``: MRR@10 over the same
    candidate lists and the calibration error of the shown top 10 ({} when none found a partner)."""
    data = gather(service, labeled_queries(pairs, query_ids=query_ids, candidate_ids=candidate_ids), kinds=kinds)
    if not len(data.groups):
        return {}
    raw = model.raw(data.X)
    shown = top10(raw, data.groups)
    probs = model.calibrate(raw[shown])
    learned_rr = reciprocal_ranks(raw, data.y, data.groups)
    hybrid_rr = reciprocal_ranks(data.hybrid(), data.y, data.groups)
    judged = verdict(learned_rr, hybrid_rr, data.components)
    return {"queries": int(len(data.groups)), "missed_queries": data.missed,
            "mrr@10_learned": round(float(learned_rr.mean()), 4),
            "mrr@10_hybrid": round(float(hybrid_rr.mean()), 4),
            "ece@10": round(float(expected_calibration_error(probs, data.y[shown])), 4),
            "mean_score@10": round(float(np.mean(probs)), 4),
            **{k: v for k, v in judged.items() if k != "queries"}}
