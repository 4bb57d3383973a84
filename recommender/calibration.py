"""Calibrating the learned ranker's raw score into the probability that a result is relevant.

**Cross-fitted.** The calibration is fitted on out-of-fold raw scores over *every* training
component, not on the validation quarter alone: the training queries are cut into ``folds``
parts by connected component, and each part's raw scores come from a model fitted without it
(:func:`out_of_fold`, the caller supplies the fitting). So every calibration point is a score
the model gave a list it was not fitted on, as at serving, and there are four times as many of
them as the validation quarter held. A model with no tree is its prior (``scale * fused
score``), which nothing was fitted on: every training list's score is then already held out.

**Platt or isotonic, chosen on held-out folds.** Platt scaling (a logistic curve of the raw
score, two parameters) does not overfit a few dozen queries; isotonic regression follows any
monotone shape but steps on noise when the data are few. :func:`choose` fits both on all folds
but one, scores the held-out fold, and keeps the one whose cross-validated calibration error
over the shown top 10 is lower (Platt on a tie). Both are stored as the same monotone
piecewise-linear map (the model file's ``calibration.x`` / ``calibration.y``), so the file
format does not change and any caselink that reads a model reads this one.

**Which rows.** What a user is shown is each list's top 10, so the calibration is fitted and
judged on those rows (:func:`top10`): a candidate's chance of being relevant at a given raw
score is not the same at rank 3 as at rank 40, and the tail of 40 unrelated candidates per
list would otherwise pull the curve down where the shown scores live. Lists with no relevant
candidate at all are among them (:func:`cross_fitted`): nothing to rank by, but shown all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

METHODS = ("platt", "isotonic")
SHOWN = 10  # a list's rows the calibration is fitted and judged on (what a user is shown)
FOLDS = 5
PLATT_GRID = 64  # points of the stored piecewise-linear form of a Platt curve


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: the share-weighted gap between mean predicted probability and observed rate, per bin."""
    if len(probs) == 0:
        return 0.0
    which = np.minimum((np.asarray(probs) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(float(probs[m].mean()) - float(y[m].mean()))
    return total / len(probs)


def top10(scores: np.ndarray, groups: np.ndarray, depth: int = SHOWN) -> np.ndarray:
    """Row mask of each list's ``depth`` best by ``scores`` (what a user is shown); ties keep list order."""
    keep = np.zeros(len(scores), dtype=bool)
    start = 0
    for g in groups:
        order = np.lexsort((np.arange(g), -scores[start:start + g]))[:depth]
        keep[start + order] = True
        start += g
    return keep


@dataclass(frozen=True)
class Calibration:
    """A monotone map raw score -> probability, piecewise linear through (x, y), flat beyond."""

    method: str
    x: np.ndarray
    y: np.ndarray

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)


def platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """A logistic curve ``1 / (1 + exp(-(a * raw + b)))`` fitted by maximum likelihood, with
    ``a >= 0`` (a higher raw score never means a lower probability), sampled on a grid over the
    raw scores seen."""
    raw, y = np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = _logistic(raw, y)
    lo, hi = (float(raw.min()), float(raw.max())) if len(raw) else (0.0, 1.0)
    x = np.linspace(lo, hi, PLATT_GRID) if hi > lo else np.array([lo])
    return Calibration("platt", x, expit(a * x + b))


def _logistic(raw: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """(a, b) of a one-feature logistic regression by Newton's method, with Platt's smoothed
    targets ((positives + 1) / (positives + 2) and 1 / (negatives + 2)), so one-sided data
    gives a finite curve; ``a`` is held at 0 if the fit would make it negative."""
    if len(raw) == 0:
        return 0.0, 0.0
    pos = float(y.sum())
    neg = len(y) - pos
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    mu, sd = float(raw.mean()), float(raw.std()) or 1.0
    z = (raw - mu) / sd  # standardised: Newton is well conditioned whatever the raw scale
    w = np.array([0.0, np.log((pos + 1) / (neg + 1))])
    A = np.column_stack([z, np.ones_like(z)])
    for _ in range(iters):
        p = expit(A @ w)  # no overflow where a step overshoots
        grad = A.T @ (p - t)
        hess = (A * (p * (1 - p))[:, None]).T @ A + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    if w[0] < 0:  # a decreasing curve would reorder the list: the best constant instead
        return 0.0, float(np.log((t.mean()) / (1 - t.mean())))
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)


def isotonic(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Isotonic regression of ``y`` on ``raw`` (scikit-learn's, clipped to [0, 1])."""
    from sklearn.isotonic import IsotonicRegression

    if len(raw) == 0:
        return Calibration("isotonic", np.zeros(0), np.zeros(0))
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    return Calibration("isotonic", np.asarray(iso.X_thresholds_, dtype=np.float64),
                       np.asarray(iso.y_thresholds_, dtype=np.float64))


FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], Calibration]] = {"platt": platt, "isotonic": isotonic}


def fold_of(components: np.ndarray, folds: int = FOLDS, seed: int = 13) -> np.ndarray:
    """A fold number per query, whole components to one fold (drawn with ``seed``); with fewer
    components than folds, queries are dealt round-robin instead (one component: nothing else
    can be held out)."""
    comps = np.unique(components)
    if len(comps) >= folds:
        order = np.random.default_rng(seed).permutation(comps)
        fold = dict(zip(order.tolist(), (np.arange(len(order)) % folds).tolist()))
        return np.array([fold[c] for c in components.tolist()], dtype=np.int64)
    return np.arange(len(components)) % folds


def out_of_fold(fold: np.ndarray, groups: np.ndarray,
                fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Raw scores per candidate row, each fold's from a model fitted on the other folds.

    ``fold`` is a fold number per query (:func:`fold_of`), ``groups`` the candidates per query;
    ``fit_predict(fit_queries, held_queries)`` (two boolean masks over the queries) fits on the
    first and returns the raw scores of the second's rows, in order.
    """
    row_fold = np.repeat(fold, groups)
    out = np.empty(len(row_fold), dtype=np.float64)
    for f in np.unique(fold):
        out[row_fold == f] = fit_predict(fold != f, fold == f)
    return out


@dataclass(frozen=True)
class Chosen:
    """The calibration kept, and the cross-validated figures that chose it."""

    calibration: Calibration
    cv_ece: dict[str, float]  # method -> ECE@10 of its held-out-fold predictions
    rows: int  # calibration points (shown rows of the training lists)
    folds: int

    def info(self) -> dict:
        return {"method": self.calibration.method, "rows": self.rows, "folds": self.folds,
                "cv_ece@10": {m: round(v, 4) for m, v in self.cv_ece.items()}}


def choose(raw: np.ndarray, y: np.ndarray, row_fold: np.ndarray, methods: tuple[str, ...] = METHODS) -> Chosen:
    """The calibration of out-of-fold ``raw`` scores (shown rows only) with the lower
    cross-validated ECE: each method fitted on all folds but one and scored on that one; the
    kept one is then fitted on every row. Platt wins a tie (fewer parameters)."""
    raw, y = np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64)
    cv = {}
    folds = np.unique(row_fold)
    for m in methods:
        pred = np.empty(len(raw))
        for f in folds:
            held = row_fold == f
            pred[held] = FITTERS[m](raw[~held], y[~held])(raw[held]) if (~held).any() else float(y.mean())
        cv[m] = expected_calibration_error(pred, y) if len(folds) > 1 else float("inf")
    best = min(methods, key=lambda m: (round(cv[m], 6), methods.index(m)))
    return Chosen(FITTERS[best](raw, y), cv, int(len(raw)), int(len(folds)))


def cross_fitted(data, prior, params: dict, trees: int, *, folds: int = FOLDS, seed: int = 13) -> Chosen:
    """The learned ranker's calibration: :func:`choose` over out-of-fold raw scores of every
    list of ``data`` (a :class:`recommender.training.Gathered`), each fold's from ``prior`` plus
    ``trees`` LightGBM rounds with ``params`` fitted on the other folds (the final model's recipe,
    no early stopping). With no tree the raw score is the prior, which nothing was fitted on, so
    every list's score is already held out and no fold is fitted.

    ``data.missed_lists`` (lists with no relevant candidate) are scored and calibrated on too,
    never fitted on (nothing to rank): a user is shown such lists, and leaving them out would
    make every probability too high."""
    import lightgbm as lgb

    names = tuple(data.names)
    extra = data.missed_lists
    parts = [data] + ([extra] if extra is not None and len(extra.groups) else [])
    X = np.vstack([p.X for p in parts])
    y = np.concatenate([p.y for p in parts])
    groups = np.concatenate([p.groups for p in parts])
    comps = np.concatenate([p.components for p in parts])
    ranked = np.arange(len(groups)) < len(data.groups)  # lists with a relevant record: the fitting ones

    def fit_predict(fit_q: np.ndarray, held_q: np.ndarray) -> np.ndarray:
        held_X = X[np.repeat(held_q, groups)]
        raw = prior.scores(held_X, names)
        part = data.take((fit_q & ranked)[:len(data.groups)])
        if trees == 0 or not len(part.groups):
            return raw
        fold_set = lgb.Dataset(part.X, part.y, group=part.groups, init_score=prior.scores(part.X, names),
                               feature_name=list(names))
        return raw + lgb.train(params, fold_set, num_boost_round=trees).predict(held_X)

    fold = fold_of(comps, folds, seed)
    raw = out_of_fold(fold, groups, fit_predict)
    shown = top10(raw, groups)
    return choose(raw[shown], y[shown], np.repeat(fold, groups)[shown])
