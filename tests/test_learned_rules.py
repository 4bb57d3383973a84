"""One rule set for hybrid and learned: a model that kept no tree ranks every request as hybrid.

Learned against hybrid must differ by the model alone (issue 21): the model's prior holds the
exact-code rule, so the probabilities shown are the calibrated ones; trees fitted and validated
against that order may overturn it for a record's relatives, never for a typed code search.
"""

from __future__ import annotations

import numpy as np
import pytest

from caselink.config import load_settings
from indexing.demo import demo_sources
from indexing.loaders import load_path
from recommender.fusion import codes_decide
from recommender.learned import Prior, RankerModel
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from recommender.training import PRIOR_SCALE
from tests.conftest import read_only_service

K = 10


@pytest.fixture(scope="module")
def demo(tmp_path_factory, use_encoder):
    records = [r for src in demo_sources() for r in load_path(src).records]
    with read_only_service(tmp_path_factory, use_encoder, records) as svc:
        yield svc, records


def _no_trees(svc: CaselinkService, prior: Prior) -> RankerModel:
    """What training saves when validation keeps no tree: the prior alone, with a calibration."""
    return RankerModel(booster_text="", calibration_x=[0.0, 5.0, 15.0], calibration_y=[0.02, 0.3, 0.9],
                       features=svc.feature_names(), prior=prior)


def _with_codes(records) -> list[str]:
    """Ids of records whose related request gets the code rule (they name one to three codes)."""
    return [r.id for r in records if r.kind != "sop" and codes_decide(len(r.error_codes or []))]


@pytest.mark.parametrize("prior", [Prior.hybrid(PRIOR_SCALE), Prior("hybrid_score", PRIOR_SCALE)],
                         ids=["format3-prior", "format2-prior"])
@pytest.mark.parametrize("depth", [50, 4])
def test_a_model_without_trees_ranks_related_records_exactly_as_hybrid(demo, prior, depth):
    svc, records = demo
    serving = CaselinkService(load_settings(env={}, data_dir=svc.settings.data_dir, rank__learned_depth=depth),
                              svc.store, svc.index)
    serving.set_ranker(_no_trees(svc, prior))
    moved = 0
    for rid in _with_codes(records)[:60]:
        hybrid = serving.related(rid, k=K, mode="hybrid")
        learned = serving.related(rid, k=K, mode="learned")
        assert hybrid.path == "hybrid" and learned.path == "learned"
        assert [r.id for r in learned.results] == [r.id for r in hybrid.results], rid
        scores = [r.score for r in learned.results]
        assert scores == sorted(scores, reverse=True)
        # The rule must matter somewhere, or this test could not fail: hybrid's first K are not
        # in the order of their fused scores.
        _, fused, _ = svc.ranking_features(rid)
        moved += bool(np.any(np.diff(fused[:K]) > 0))
    assert moved >= 5, moved


def test_a_typed_search_naming_a_code_ranks_as_hybrid_too(demo):
    svc, records = demo
    svc.set_ranker(_no_trees(svc, Prior.hybrid(PRIOR_SCALE)))
    try:
        for rec in [r for r in records if r.kind == "case" and r.error_codes][:10]:
            q = SearchQuery(text=f"{rec.title} {rec.error_codes[0]}", k=K)
            hybrid = svc.search(q.model_copy(update={"mode": "hybrid"}))
            learned = svc.search(q.model_copy(update={"mode": "learned"}))
            assert learned.path == "learned" and [r.id for r in learned.results] == [r.id for r in hybrid.results]
    finally:
        svc.set_ranker(None)


@pytest.mark.parametrize("depth", [50, 0])
def test_the_prior_holds_the_code_rule_so_shown_scores_are_the_calibrated_ones(demo, depth):
    """The prior puts code matches first itself, and the model scores hybrid's first candidates as
    hybrid shows them (code matches from far down the fused list among them), so serving's code
    rule moves nothing and lifts no score: each shown score is the calibration of that
    candidate's own raw score."""
    svc, records = demo
    whole = CaselinkService(load_settings(env={}, data_dir=svc.settings.data_dir, rank__learned_depth=depth),
                            svc.store, svc.index)
    model = _no_trees(svc, Prior.hybrid(PRIOR_SCALE))
    whole.set_ranker(model)
    for rid in _with_codes(records)[:20]:
        ids, _, X = whole.ranking_features(rid)
        raw = model.raw(X)
        order = np.lexsort((np.arange(len(raw)), -raw))[:K]
        served = whole.related(rid, k=K, mode="learned")
        assert [r.id for r in served.results] == [ids[i] for i in order]
        assert [r.score for r in served.results] == [round(float(p), 4) for p in model.calibrate(raw[order])]


def test_the_prior_orders_as_the_code_rule_and_only_for_one_to_three_codes():
    """Prior.hybrid over feature rows gives codes_first's order over the same fused list."""
    from recommender.features import FEATURES
    from recommender.fusion import Fused, codes_first

    rng = np.random.default_rng(3)
    col = {name: i for i, name in enumerate(FEATURES)}
    prior = Prior.hybrid(PRIOR_SCALE)
    for named in (0, 1, 2, 3, 4):
        query = {f"e{i}" for i in range(named)}
        n = 40
        fused = np.sort(rng.random(n).astype(np.float32))[::-1]
        fused[5:8] = fused[5]  # ties keep the fused order in both
        cand = [set(rng.choice([f"e{i}" for i in range(5)], size=rng.integers(0, 3), replace=False)) for _ in range(n)]
        keys = np.asarray([f"r{i:02d}" for i in range(n)])
        X = np.zeros((n, len(FEATURES)), dtype=np.float32)
        X[:, col["fused_score"]] = fused
        X[:, col["codes_shared"]] = [len(query & c) for c in cand]
        X[:, col["codes_missing"]] = [named - len(query & c) for c in cand]
        raw = prior.scores(X, FEATURES)
        by_prior = keys[np.lexsort((np.arange(n), -raw))]
        rule = codes_first(Fused(keys, fused, {}, {}), query, dict(zip(keys, cand))) if codes_decide(named) else None
        want = rule.keys if rule is not None else keys
        assert by_prior.tolist() == want.tolist(), named
        assert codes_decide(named) != np.array_equal(by_prior, keys), named  # the rule moved something


def test_format_2_and_3_files_load_and_a_code_prior_needs_format_3(tmp_path):
    import hashlib
    import json

    from caselink.errors import IndexFormatError
    from recommender.features import FEATURES

    def rewrite(data: dict):
        body = {k: v for k, v in data.items() if k != "sha256"}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        path.write_text(json.dumps({**body, "sha256": digest}))

    path = tmp_path / "ranker.json"
    three = RankerModel(booster_text="", calibration_x=[0.0, 10.0], calibration_y=[0.0, 1.0],
                        prior=Prior.hybrid(PRIOR_SCALE, 1.5))
    assert RankerModel.load(three.save(path)).prior == three.prior
    old = {**three.to_json(), "format": 2, "prior": {"kind": "hybrid_score", "scale": 5.0, "baseline": 1.0}}
    rewrite(old)
    assert RankerModel.load(path).prior == Prior("hybrid_score", 5.0, 1.0)
    rewrite({**old, "prior": three.prior.to_json()})
    with pytest.raises(IndexFormatError, match="format 2"):
        RankerModel.load(path)
    rewrite({**three.to_json(), "prior": {**three.prior.to_json(), "code_weight": 1.0}})
    with pytest.raises(IndexFormatError, match="code_weight"):
        RankerModel.load(path)
    rewrite({**three.to_json(), "features": [f for f in FEATURES if f != "codes_missing"]})
    with pytest.raises(IndexFormatError, match="codes_missing"):
        RankerModel.load(path, features=tuple(f for f in FEATURES if f != "codes_missing"))


def _demoting_codes(svc: CaselinkService, records) -> RankerModel:
    """A model whose trees learned that sharing a code counts against relevance (as on bug
    reports whose "codes" are versions): fitted on the demo's own candidate rows, the trees
    subtract 3 x the code rule's weight per shared code from the prior."""
    import lightgbm as lgb

    names = svc.feature_names()
    rows = np.vstack([svc.ranking_features(rid)[2] for rid in _with_codes(records)[:20]])
    shared = rows[:, names.index("codes_shared")]
    prior = Prior.hybrid(PRIOR_SCALE)
    target = -3.0 * prior.code_weight * shared
    booster = lgb.train({"objective": "regression", "learning_rate": 1.0, "num_leaves": 4, "min_data_in_leaf": 1,
                         "verbose": -1, "num_threads": 1}, lgb.Dataset(rows, target), num_boost_round=5)
    return RankerModel(booster_text=booster.model_to_string(), calibration_x=[-100.0, 0.0, 15.0],
                       calibration_y=[0.01, 0.3, 0.9], features=names, prior=prior)


def test_trees_that_overturn_the_code_rule_rank_a_records_relatives_a_typed_code_search_keeps_it(demo):
    """The rule is not imposed again on top of trees for a record's relatives (they were fitted and
    validated against hybrid's order, rule included): the served order is the model's own. A typed
    search naming a code keeps its exact matches first, whatever the trees say."""
    svc, records = demo
    model = _demoting_codes(svc, records)
    svc.set_ranker(model)
    try:
        overturned = 0
        for rid in _with_codes(records)[:20]:
            ids, _, X = svc.ranking_features(rid)
            raw = model.raw(X)
            order = np.lexsort((np.arange(len(raw)), -raw))[:K]
            served = svc.related(rid, k=K, mode="learned")
            assert [r.id for r in served.results] == [ids[i] for i in order], rid
            overturned += [r.id for r in served.results] != [r.id for r in svc.related(rid, k=K, mode="hybrid").results]
        assert overturned >= 5, overturned  # the trees did overturn the rule, or this proves nothing
        for rec in [r for r in records if r.kind == "case" and r.error_codes][:10]:
            q = SearchQuery(text=f"{rec.title} {rec.error_codes[0]}", k=K, mode="learned")
            got = svc.search(q)
            assert got.path == "learned"
            coded = [bool(r.explanation.matched_codes) for r in got.results]
            assert any(coded) and coded == sorted(coded, reverse=True), rec.id  # exact matches lead
    finally:
        svc.set_ranker(None)
