"""Whom to trust: training may let the prior lean on the keyword side's rank, chosen on the lists
it fits and kept only when validation credibly agrees; never on held-out labels."""

from __future__ import annotations

import numpy as np
import pytest

from caselink.errors import IndexFormatError
from recommender.features import FEATURES
from recommender.learned import Prior, RankerModel
from recommender.training import KEYWORD_LEANS, PRIOR_SCALE, Gathered, fit, keyword_lean, split_validation

COL = {name: i for i, name in enumerate(FEATURES)}


def _lists(rng, n_queries: int, *, keyword_knows: bool) -> Gathered:
    """Lists of 20 candidates, one relevant. The fused score is a weak hint; the keyword side's
    rank either puts the relevant one first most of the time or is as noisy as the rest."""
    g = 20
    y = np.zeros(n_queries * g, dtype=np.float32)
    y[np.arange(n_queries) * g + rng.integers(0, g, n_queries)] = 1
    X = np.zeros((len(y), len(FEATURES)), dtype=np.float32)
    X[:, COL["fused_score"]] = 0.6 * rng.random(len(y)) + 0.15 * y
    kw = rng.random(len(y)) + (1.5 * y if keyword_knows else 0)
    rank = np.argsort(np.argsort(-kw.reshape(n_queries, g), axis=1), axis=1) + 1
    X[:, COL["keyword_log_rank"]] = np.log1p(rank.ravel())
    return Gathered(X, y, X[:, COL["fused_score"]].copy(), np.full(n_queries, g), np.arange(n_queries) // 2, 0)


def test_the_prior_leans_on_keyword_only_when_fitting_and_validation_agree(tmp_path):
    rng = np.random.default_rng(11)
    knows = _lists(rng, 300, keyword_knows=True)
    fit_part, valid = split_validation(knows, 0.25, 13)
    lean = keyword_lean(fit_part, valid, PRIOR_SCALE)
    assert lean["keyword_rank"] in KEYWORD_LEANS[1:] and lean["reason"].startswith("leaning")
    model = fit(knows, rounds=20)
    assert model.prior.keyword_rank == lean["keyword_rank"] and model.info["prior_choice"] == lean["reason"]
    assert "hybrid leaning on keyword ranks" in model.info["trees"]
    assert RankerModel.load(model.save(tmp_path / "ranker.json")).prior == model.prior

    noise = _lists(rng, 300, keyword_knows=False)
    plain = fit(noise, rounds=20)
    assert plain.prior.keyword_rank == 0.0 and plain.info["prior_choice"].startswith("hybrid")
    # A model that does not lean writes no keyword_rank: a format 3 file as c754cbd wrote it.
    assert "keyword_rank" not in plain.to_json()["prior"]


def test_the_code_rule_outweighs_any_keyword_lean():
    prior = Prior.hybrid(PRIOR_SCALE, keyword_rank=max(KEYWORD_LEANS))
    X = np.zeros((2, len(FEATURES)), dtype=np.float32)
    X[:, COL["codes_missing"]] = [0, 1]
    X[:, COL["codes_shared"]] = [1, 0]  # the query names one code; the first record has it
    X[:, COL["fused_score"]] = [0.0, 1.0]
    X[:, COL["keyword_log_rank"]] = [np.log1p(20_000), np.log1p(1)]  # and the other is keyword's first
    raw = prior.scores(X, FEATURES)
    assert raw[0] > raw[1]


def test_a_leaning_prior_must_keep_the_code_rule_on_top():
    bad = {**Prior.hybrid(PRIOR_SCALE, keyword_rank=0.2).to_json(), "code_weight": 2 * PRIOR_SCALE}
    with pytest.raises(IndexFormatError, match="code_weight"):
        Prior.from_json(bad, "ranker.json")
    with pytest.raises(IndexFormatError, match="keyword_rank"):
        Prior.from_json({**Prior.hybrid(PRIOR_SCALE).to_json(), "keyword_rank": -0.1}, "ranker.json")
