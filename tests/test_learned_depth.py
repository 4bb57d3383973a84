"""The model file says the candidate depth it was trained at, and serving says when it differs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from caselink.config import load_settings
from caselink.errors import IndexFormatError
from recommender.learned import Prior, RankerModel, ranker_path
from recommender.service import CaselinkService
from recommender.training import PRIOR_SCALE, Gathered, fit
from tests.conftest import CORPUS


def _lists(rng, n_queries: int = 120, *, hybrid_knows: bool = True) -> Gathered:
    """Lists of 20 candidates, one relevant, which feature 0 tells apart; the fused score either
    already ranks it first or is noise."""
    from recommender.features import FEATURES

    g = 20
    y = np.zeros(n_queries * g, dtype=np.float32)
    y[np.arange(n_queries) * g + rng.integers(0, g, n_queries)] = 1
    X = np.zeros((len(y), len(FEATURES)), dtype=np.float32)
    X[:, 0] = rng.normal(size=len(y)) + 2.0 * y
    X[:, FEATURES.index("fused_score")] = (y * 0.5 if hybrid_knows else 0) + 0.4 * rng.random(len(y))
    return Gathered(X, y, X[:, FEATURES.index("fused_score")].copy(), np.full(n_queries, g),
                    np.arange(n_queries) // 2, 0)


def test_the_file_keeps_the_depth_and_older_files_do_not_say(tmp_path):
    model = fit(_lists(np.random.default_rng(1)), rounds=20, depth=30)
    path = model.save(tmp_path / "ranker.json")
    assert RankerModel.load(path).depth == 30
    data = json.loads(path.read_text())
    assert data["format"] == 3 and data["depth"] == 30
    assert model.depth_note(30) is None
    note = model.depth_note(50)
    assert "trained on 30 candidates" in note and "reranks 50" in note and "rank.learned_depth = 30" in note
    assert "whole list" in model.depth_note(0)
    # A format 2 file never said: it loads, and nothing is claimed about it.
    import hashlib

    def rewrite(body: dict):
        body = {k: v for k, v in body.items() if k != "sha256"}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        path.write_text(json.dumps({**body, "sha256": digest}))

    old = {k: v for k, v in data.items() if k != "depth"}
    rewrite({**old, "format": 2, "prior": {"kind": "hybrid_score", "scale": PRIOR_SCALE, "baseline": 0.0}})
    legacy = RankerModel.load(path)
    assert legacy.depth is None and legacy.depth_note(50) is None
    for bad in (-1, "50", 2.5, True):
        rewrite({**data, "depth": bad})
        with pytest.raises(IndexFormatError, match="depth"):
            RankerModel.load(path)


def test_a_model_says_how_many_trees_it_kept_and_why():
    level = fit(_lists(np.random.default_rng(2)), rounds=20)  # hybrid ranks every list right already
    assert level.info["rounds"] == 0
    assert level.info["trees"].startswith("0 trees: validation could not tell their gain from noise (")
    assert level.info["trees"].endswith("ranks as hybrid")
    gains = fit(_lists(np.random.default_rng(3), 200, hybrid_knows=False), rounds=20)
    kept = gains.info["rounds"]
    assert kept > 0 and gains.info["trees"].startswith(f"{kept} trees on top of hybrid: early stopping")
    assert "above 0" in gains.info["trees"]


@pytest.fixture
def service(tmp_path, use_encoder):
    svc, _ = CaselinkService.build(load_settings(env={}, data_dir=tmp_path / "data"), encoder=use_encoder,
                                   records=CORPUS)
    try:
        yield svc
    finally:
        svc.close()


def _model(svc: CaselinkService, depth: int | None) -> RankerModel:
    return RankerModel(booster_text="", calibration_x=[0.0, 5.0], calibration_y=[0.1, 0.9],
                       features=svc.feature_names(), prior=Prior.hybrid(PRIOR_SCALE), depth=depth,
                       info={"rounds": 0, "trained_at": "2026-12-03T07:00:00+00:00", "queries": 40})


def test_stats_say_which_model_serves_and_warn_when_its_depth_differs(service, caplog):
    assert service.stats().learned == "" and service.stats().learned_warning is None
    served = service.settings.rank.learned_depth
    path = _model(service, served).save(ranker_path(service.settings))
    service.set_ranker(None)  # read the file, as a server picks up a new model
    stats = service.stats()
    assert "0 trees" in stats.learned and f"depth {served}" in stats.learned and stats.learned_warning is None

    with caplog.at_level(logging.WARNING, logger="caselink.ranker"):
        _model(service, 100).save(path)
        service.set_ranker(None)
        stats = service.stats()
    assert "rank.learned_depth = 100" in stats.learned_warning and f"reranks {served}" in stats.learned_warning
    assert any("rank.learned_depth = 100" in r.getMessage() for r in caplog.records)  # logged once, on load
    # The model still serves: a related request is reranked, at the configured depth.
    assert service.related("C-001", k=3, mode="learned").path == "learned"

    path.write_text("{}")
    service.set_ranker(None)
    assert service.stats().learned == "" and "format" in service.stats().learned_warning
