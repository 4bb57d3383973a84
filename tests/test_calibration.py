"""The learned ranker's calibration: cross-fitted by component, Platt or isotonic, monotone."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.calibration import (
    Calibration,
    choose,
    expected_calibration_error,
    fold_of,
    isotonic,
    out_of_fold,
    platt,
    top10,
)
from recommender.features import FEATURES
from recommender.learned import RankerModel
from recommender.training import Gathered, fit

F = {name: i for i, name in enumerate(FEATURES)}


def _lists(rng, n_queries: int, g: int = 20, comps_per: int = 3) -> Gathered:
    """Lists of ``g`` candidates, one relevant, which the fused score and feature 0 both favour
    (noisily); ``comps_per`` queries per component."""
    y = np.zeros(n_queries * g, dtype=np.float32)
    y[np.arange(n_queries) * g + rng.integers(0, g, n_queries)] = 1
    X = rng.normal(size=(len(y), len(FEATURES))).astype(np.float32)
    X[:, 0] += 1.5 * y
    fused = np.clip(0.3 * y + 0.5 * rng.random(len(y)), 0, 1).astype(np.float32)
    X[:, F["fused_score"]] = fused
    return Gathered(X, y, fused, np.full(n_queries, g), np.arange(n_queries) // comps_per, 0)


@pytest.mark.parametrize("n_comps", [3, 7, 40])
def test_folds_keep_each_component_whole_and_no_score_comes_from_a_model_fitted_on_it(n_comps):
    rng = np.random.default_rng(n_comps)
    comps = rng.integers(0, n_comps, size=120)
    comps[:n_comps] = np.arange(n_comps)  # every component present
    groups = rng.integers(1, 30, size=len(comps))
    fold = fold_of(comps, folds=5, seed=1)
    if n_comps >= 5:  # a component is on one fold only
        for c in range(n_comps):
            assert len(set(fold[comps == c].tolist())) == 1
    calls = []

    def fit_predict(fit_q, held_q):
        # A leak would be a held-out query whose component the fold's model is fitted on.
        calls.append((set(comps[fit_q].tolist()), set(comps[held_q].tolist()), fit_q.copy(), held_q.copy()))
        return np.repeat(np.flatnonzero(held_q).astype(np.float64), groups[held_q])

    raw = out_of_fold(fold, groups, fit_predict)
    assert len(calls) == len(set(fold.tolist())) >= 2
    for fitted_on, held, fit_q, held_q in calls:
        assert not (fit_q & held_q).any() and (fit_q | held_q).all()
        if n_comps >= 5:
            assert not fitted_on & held, "a calibration point's score came from a model fitted on its component"
    # Every candidate row got exactly its own query's score, from the one fold holding it out.
    assert np.array_equal(raw, np.repeat(np.arange(len(comps)), groups).astype(np.float64))


def test_the_calibration_is_fitted_on_the_training_lists_shown_rows_only():
    """fit() calibrates on out-of-fold scores of the lists it is given (their top 10), nothing
    else: adding held-out lists to a separate evaluation cannot change it, and the count of
    calibration points is exactly the training lists' shown rows."""
    rng = np.random.default_rng(3)
    data = _lists(rng, 240)
    model = fit(data, rounds=40)
    cal = model.info["calibration"]
    assert cal["rows"] == int(np.minimum(data.groups, 10).sum()) and cal["folds"] == 5
    assert cal["method"] in ("platt", "isotonic")
    assert model.info["validation"]["ece@10"] == cal["cv_ece@10"][cal["method"]]
    # The kept method is the one with the lower cross-validated error.
    assert cal["cv_ece@10"][cal["method"]] == min(cal["cv_ece@10"].values())


def test_the_calibrated_score_is_monotone_in_the_raw_score(tmp_path):
    rng = np.random.default_rng(11)
    model = fit(_lists(rng, 240), rounds=40)
    loaded = RankerModel.load(model.save(tmp_path / "ranker.json"))
    raw = np.sort(np.concatenate([loaded.raw(_lists(rng, 60).X), np.linspace(-20, 20, 400)]))
    probs = loaded.calibrate(raw)
    assert np.all(np.diff(probs) >= 0) and probs.min() >= 0 and probs.max() <= 1
    assert probs[-1] > probs[0]  # and it says something: a high score is likelier relevant
    # Each method on its own, on noisy labels and on labels that fall as the score rises.
    x = rng.normal(size=3000)
    for y in ((rng.random(3000) < 1 / (1 + np.exp(-2 * x))).astype(float),
              (rng.random(3000) < 1 / (1 + np.exp(2 * x))).astype(float)):
        for cal in (platt(x, y), isotonic(x, y)):
            assert np.all(np.diff(cal(np.sort(x))) >= 0), cal.method


def test_platt_recovers_a_logistic_curve_and_isotonic_a_step():
    rng = np.random.default_rng(2)
    x = rng.uniform(-4, 4, size=20000)
    true = 1 / (1 + np.exp(-(1.5 * x - 1.0)))
    cal = platt(x, (rng.random(len(x)) < true).astype(float))
    grid = np.linspace(-4, 4, 50)
    assert cal.method == "platt" and np.abs(cal(grid) - 1 / (1 + np.exp(-(1.5 * grid - 1.0)))).max() < 0.03
    step = (x > 1).astype(float)
    assert np.array_equal(isotonic(x, step)(np.array([-3.0, 0.5, 1.5, 3.0])), [0, 0, 1, 1])


def test_choose_keeps_the_method_with_the_lower_held_out_error():
    rng = np.random.default_rng(4)
    # A sharp step: a logistic curve cannot follow it, isotonic can.
    x = rng.uniform(0, 1, size=4000)
    y = (rng.random(4000) < np.where(x > 0.8, 0.9, 0.05)).astype(float)
    kept = choose(x, y, np.arange(4000) % 5)
    assert kept.calibration.method == "isotonic" and kept.cv_ece["isotonic"] < kept.cv_ece["platt"]
    # A smooth curve on few points: isotonic steps on noise, Platt does not.
    x = rng.normal(size=150)
    y = (rng.random(150) < 1 / (1 + np.exp(-x))).astype(float)
    few = choose(x, y, np.arange(150) % 5)
    assert few.cv_ece[few.calibration.method] == min(few.cv_ece.values())
    assert few.info()["rows"] == 150 and few.info()["folds"] == 5


def test_top10_and_ece_helpers():
    scores = np.array([0.1, 0.9, 0.5] + list(np.arange(12.0)))
    shown = top10(scores, np.array([3, 12]))
    assert shown[:3].all() and shown[3:].sum() == 10 and not shown[3] and not shown[4]
    assert expected_calibration_error(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 1, 0, 0.0])) == pytest.approx(0.1)
    assert Calibration("platt", np.array([0.0, 1.0]), np.array([0.2, 0.8]))(np.array([-5, 0.5, 5])) == \
        pytest.approx([0.2, 0.5, 0.8])


def test_lists_without_a_relevant_record_are_calibrated_on_never_fitted_on():
    """A user is shown lists where nothing relevant was found too: calibrating on the other
    lists alone would overstate every probability on such a mix."""
    rng = np.random.default_rng(6)

    def with_empty(n, n_empty):
        found, empty = _lists(rng, n), _lists(rng, n_empty)
        empty.X[:, F["fused_score"]] = empty.fused = np.clip(empty.fused - 0.3 * empty.y, 0, 1)
        empty.y[:] = 0  # the relevant record was not among the candidates
        empty.components += 10_000
        return Gathered(found.X, found.y, found.fused, found.groups, found.components, n_empty, found.names,
                        missed_lists=empty)

    train = with_empty(240, 120)
    plain = fit(Gathered(train.X, train.y, train.fused, train.groups, train.components, 0, train.names), rounds=40)
    model = fit(train, rounds=40)
    assert model.booster_text == plain.booster_text  # the ranking is fitted on the same lists
    assert model.info["calibration"]["rows"] == plain.info["calibration"]["rows"] + 1200
    # On held-out lists in the same mix, the calibration that saw the empty lists is the closer.
    test = with_empty(240, 120)
    X = np.vstack([test.X, test.missed_lists.X])
    y = np.concatenate([test.y, test.missed_lists.y])
    groups = np.concatenate([test.groups, test.missed_lists.groups])
    raw = model.raw(X)
    shown = top10(raw, groups)
    errors = [expected_calibration_error(m.calibrate(raw[shown]), y[shown]) for m in (model, plain)]
    assert errors[0] < errors[1], errors
