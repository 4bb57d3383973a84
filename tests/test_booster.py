"""LightGBM through its C API (recommender.booster) gives LightGBM's own answers, to the bit."""

from __future__ import annotations

import gc

import lightgbm as lgb
import numpy as np
import pytest

from recommender.booster import NativeBooster, NativeError, WrapperBooster, open_booster
from recommender.learned import Prior, RankerModel


def _train(rounds: int, leaves: int) -> str:
    """A lambdarank model on rows with missing values in one column (as the part cosines are)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    X[rng.random(600) < 0.3, 5] = np.nan
    y = (X[:, 0] + 0.5 * np.nan_to_num(X[:, 5]) + rng.normal(scale=0.5, size=600) > 0.8).astype(np.float32)
    data = lgb.Dataset(X, y, group=[30] * 20)
    params = {"objective": "lambdarank", "num_leaves": leaves, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 1,
              "deterministic": True, "force_row_wise": True, "seed": 1}
    return lgb.train(params, data, num_boost_round=rounds).model_to_string()


@pytest.fixture(scope="module")
def model_text() -> str:
    return _train(25, 7)


def _rows(n: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    X[::3, 5] = np.nan
    X[-1, 2] = 0.0  # a zero: LightGBM treats it apart when a feature has zero as missing
    return X


def test_native_answers_equal_the_wrapper_to_the_bit(model_text):
    native, wrapper = open_booster(model_text), WrapperBooster(model_text)
    assert isinstance(native, NativeBooster)  # the wheel installed here has the C API
    reference = lgb.Booster(model_str=model_text)
    for X in (_rows(50, 7), _rows(1, 8), _rows(500, 9)):
        assert np.array_equal(native.predict(X), reference.predict(X, num_threads=1))
        assert np.array_equal(native.predict(X), wrapper.predict(X))
        contrib = native.contributions(X[:3])
        assert np.array_equal(contrib, reference.predict(X[:3], pred_contrib=True, num_threads=1))
        assert np.array_equal(contrib, wrapper.contributions(X[:3]))
        assert np.allclose(contrib.sum(axis=1), native.predict(X[:3]))  # SHAP sums to the raw score
    # float64 rows (as a caller might pass them) are read as the float32 the model ranks with.
    X = _rows(20, 10)
    assert np.array_equal(native.predict(X.astype(np.float64)), native.predict(X))


def test_wrong_width_and_bad_text_are_clear_errors(model_text):
    native = open_booster(model_text)
    with pytest.raises(ValueError, match="expected rows of 8 features, got shape"):
        native.predict(np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(NativeError, match="load the model"):
        open_booster("tree\nnot a model\n")


def test_a_ranker_model_scores_through_the_c_api_and_frees_it(model_text):
    names = tuple(f"f{i}" for i in range(8))
    model = RankerModel(booster_text=model_text, calibration_x=[], calibration_y=[], features=names, prior=Prior())
    X = _rows(40, 11)
    assert isinstance(model._ready().booster, NativeBooster)
    assert np.array_equal(model.raw(X), lgb.Booster(model_str=model_text).predict(X, num_threads=1))
    assert model.contributions(X[:3]).shape == (3, 8)
    for _ in range(50):  # each copy loads and frees its own booster and FastConfig
        RankerModel(booster_text=model_text, calibration_x=[], calibration_y=[], features=names).raw(X)
    gc.collect()
    assert np.array_equal(model.raw(X), lgb.Booster(model_str=model_text).predict(X, num_threads=1))
