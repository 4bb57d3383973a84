"""The learned ranker: features, the component split (no leakage), the model file, training on
the demo history, the service's use of a model (and exactly today's ranking without one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caselink.config import load_settings
from caselink.errors import IndexFormatError, InvalidQuery
from indexing.demo import demo_sources
from indexing.loaders import load_path
from recommender.features import FEATURES, QueryFacts, feature_matrix, feature_names
from recommender.fusion import Fused
from recommender.learned import Prior, RankerModel, ranker_path
from recommender.service import CaselinkService
from recommender.calibration import expected_calibration_error
from recommender.splits import components, labeled_queries, split_by_component
from recommender.training import PRIOR_SCALE, Gathered, fit, gather, mrr_at_10, train, verdict

F = {name: i for i, name in enumerate(FEATURES)}
ROOT = Path(__file__).resolve().parents[1]


def _facts(n: int, **cols) -> dict:
    base = {c: np.array([""] * n, dtype=object) for c in ("kind", "product", "model", "module", "status")}
    base.update(created=np.full(n, -1), length=np.full(n, 10.0, dtype=np.float32), codes=[()] * n)
    base.update(cols)
    return base


def test_features_read_both_sides_ranks_codes_and_facets():
    keys = np.array([7, 3, 9])
    fused = Fused(keys, np.array([0.9, 0.5, 0.2], dtype=np.float32),
                  dense={7: (1, 0.8), 3: (2, 0.4)}, keyword={9: (1, 0.6), 7: (2, 0.3)})
    facts = _facts(3, kind=np.array(["case", "sop", "problem"], dtype=object),
                   module=np.array(["真空", "", "工件台"], dtype=object),
                   created=np.array([100, -1, 90]), codes=[("e1023",), (), ("e1023", "a4410")])
    q = QueryFacts(codes=frozenset({"e1023", "w3001"}), kind="case", module="真空", created_day=95, length=20)
    X = feature_matrix(fused, q, facts)
    assert X.shape == (3, len(FEATURES)) and X.dtype == np.float32
    # Record 9 is not on the dense side: it takes the side's lowest score, a rank past the list, and the flag.
    assert X[2, F["dense_missing"]] == 1 and X[2, F["dense_score"]] == pytest.approx(0.4)
    assert X[2, F["dense_log_rank"]] == pytest.approx(np.log1p(3))
    assert X[0, F["dense_missing"]] == 0 and X[0, F["dense_gap"]] == 0
    assert X[1, F["keyword_missing"]] == 1 and X[0, F["keyword_score"]] == pytest.approx(0.3)
    assert X[:, F["codes_shared"]].tolist() == [1, 0, 1]
    assert X[:, F["codes_missing"]].tolist() == [1, 2, 1]
    assert X[:, F["module_agree"]].tolist() == [1, -1, 0]
    assert X[:, F["product_agree"]].tolist() == [-1, -1, -1]  # the query names no product
    assert X[:, F["kind_pair"]].tolist() == [0, 2, 1]
    assert X[:, F["created_log_gap"]] == pytest.approx([np.log1p(5), -1, np.log1p(5)])
    assert X[:, F["fused_score"]] == pytest.approx([0.9, 0.5, 0.2])


def test_features_title_bm25_and_each_encoders_cosine():
    keys = np.array([1, 2, 3])
    fused = Fused(keys, np.array([0.9, 0.5, 0.2], dtype=np.float32), dense={1: (1, 0.8)}, keyword={2: (1, 0.6)})
    # Two parts of 2 dimensions, shares 0.25 / 0.75: each block's norm is sqrt(share).
    blocks = [(2, 0.25), (2, 0.75)]
    q = np.array([0.5, 0.0, np.sqrt(0.75), 0.0], dtype=np.float32)
    vectors = np.array([[0.5, 0.0, 0.0, np.sqrt(0.75)],     # first encoder agrees, second orthogonal
                        [0.0, 0.5, np.sqrt(0.75), 0.0],     # the other way round
                        [np.nan] * 4], dtype=np.float32)    # vector not known (IVF)
    facts = _facts(3, title_bm25=np.array([0.7, 0.0, 0.1], dtype=np.float32), vectors=vectors)
    X = feature_matrix(fused, QueryFacts(length=5), facts, qvec=q, blocks=blocks)
    names = feature_names(["use-m3", "minilm"])
    assert names[-2:] == ("cosine_use-m3", "cosine_minilm") and X.shape == (3, len(names))
    assert X[:, names.index("title_bm25")] == pytest.approx([0.7, 0.0, 0.1])
    assert X[:2, -2:] == pytest.approx(np.array([[1.0, 0.0], [0.0, 1.0]]), abs=1e-6)
    assert np.isnan(X[2, -2:]).all()  # missing for LightGBM, not a made-up 0
    # One encoder: no per-part columns (its cosine is dense_score already).
    assert feature_matrix(fused, QueryFacts(), facts, qvec=q[:2], blocks=[(2, 1.0)]).shape == (3, len(FEATURES))
    assert feature_names(["minilm", "minilm"])[-2:] == ("cosine1_minilm", "cosine2_minilm")


def _random_pairs(rng, n_ids=300, n_pairs=400):
    ids = [f"r{i}" for i in range(n_ids)]
    return [(ids[a], ids[b], int(rng.random() < 0.7)) for a, b in rng.integers(n_ids, size=(n_pairs, 2)) if a != b]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_keeps_every_component_on_one_side(seed):
    pairs = _random_pairs(np.random.default_rng(seed))
    train_pairs, test_pairs = split_by_component(pairs, 0.5, seed=seed)
    assert train_pairs and test_pairs
    train_ids = {i for a, b, _ in train_pairs for i in (a, b)}
    # No record of a held-out pair may be seen in training: not the query, not its partners,
    # not a hard negative. This fails if a single test component leaks.
    leaked = {i for a, b, _ in test_pairs for i in (a, b)} & train_ids
    assert not leaked
    # And the split is by component: the components of all pairs, joined, are each on one side.
    comp = components(pairs)
    side = {}
    for part, name in ((train_pairs, "train"), (test_pairs, "test")):
        for a, b, label in part:
            if label == 1:
                assert side.setdefault(comp[a], name) == name
    # Only label-0 pairs that straddle the two sides are dropped.
    assert len(train_pairs) + len(test_pairs) <= len(pairs)
    assert {p for p in pairs if p[2] == 1} <= set(train_pairs) | set(test_pairs)


def test_split_rejects_a_fraction_outside_zero_one():
    with pytest.raises(InvalidQuery) as exc:
        split_by_component([("a", "b", 1)], 1.0)
    assert exc.value.field == "split"


def test_labeled_queries_take_the_component_and_respect_candidates():
    pairs = [("q1", "s1", 1), ("q2", "s1", 1), ("q3", "s2", 1), ("q4", "s3", 0)]
    qs = labeled_queries(pairs, query_ids={"q1", "q2", "q3", "q4"}, candidate_ids={"s1", "s2", "s3"})
    assert [(q.query_id, sorted(q.relevant)) for q in qs] == [("q1", ["s1"]), ("q2", ["s1"]), ("q3", ["s2"])]
    assert qs[0].component == qs[1].component != qs[2].component


def test_metrics_of_the_trainer():
    y = np.array([0, 1, 0, 0, 0, 1], dtype=float)
    assert mrr_at_10(np.array([3, 2, 1, 3, 2, 1.0]), y, np.array([3, 3])) == pytest.approx((1 / 2 + 1 / 3) / 2)
    probs = np.array([0.9, 0.9, 0.1, 0.1])
    assert expected_calibration_error(probs, np.array([1, 1, 0, 0.0])) == pytest.approx(0.1)
    assert expected_calibration_error(probs, np.array([0, 0, 1, 1.0])) == pytest.approx(0.9)


def test_the_verdict_wants_enough_queries_and_an_interval_above_zero():
    rng = np.random.default_rng(0)
    comps = np.repeat(np.arange(60), 4)
    hybrid = rng.choice([0.0, 0.5, 1.0], size=240)
    better = np.minimum(1.0, hybrid + rng.choice([0.0, 0.5], size=240, p=[0.7, 0.3]))
    ok = verdict(better, hybrid, comps)
    assert ok["passed"] and ok["gain_ci"][0] > 0 and "above 0" in ok["reason"]
    level = verdict(hybrid[::-1].copy(), hybrid, comps)  # same spread, no systematic gain
    assert not level["passed"] and level["gain_ci"][0] <= 0 <= level["gain_ci"][1]
    worse = verdict(hybrid, better, comps)  # a real loss: the message must not say "includes 0"
    assert not worse["passed"] and worse["gain_ci"][1] < 0 and "below 0: hybrid ranks better" in worse["reason"]
    few = verdict(better[:40], hybrid[:40], comps[:40])  # a real gain, on too few queries
    assert not few["passed"] and "fewer than the 50" in few["reason"]


def _synthetic(rng, n_queries: int, *, hybrid_knows: bool) -> Gathered:
    """Lists of 20 candidates, one relevant; feature 0 tells it apart, and the fused score either
    already ranks it first (nothing left to gain) or is noise."""
    g = 20
    y = np.zeros(n_queries * g, dtype=np.float32)
    y[np.arange(n_queries) * g + rng.integers(0, g, n_queries)] = 1
    X = rng.normal(size=(len(y), len(FEATURES))).astype(np.float32)
    X[:, 0] += 2.0 * y
    fused = y + 0.01 * rng.random(len(y)) if hybrid_knows else rng.random(len(y))
    # The fused columns as feature_matrix fills them: the score, and the position in the fused order.
    X[:, F["fused_score"]] = fused
    position = np.argsort(np.argsort(-fused.reshape(n_queries, g), axis=1, kind="stable"), axis=1) + 1
    X[:, F["fused_log_rank"]] = np.log1p(position.ravel())
    X[:, [F["codes_shared"], F["codes_missing"], F["cand_codes"]]] = 0  # counts, as feature_matrix: no code here
    return Gathered(X, y, fused, np.full(n_queries, g), np.arange(n_queries) // 2, 0)


def test_a_model_that_does_not_gain_is_refused_and_auto_does_not_use_it(tmp_path):
    from recommender.learned import RankerSlot

    rng = np.random.default_rng(5)
    level = fit(_synthetic(rng, 400, hybrid_knows=True), rounds=60)
    v = level.info["validation"]
    assert v["mrr@10_hybrid"] == 1.0 and not v["passed"] and ("includes 0" in v["reason"] or "below 0" in v["reason"])
    # Nothing to correct: no tree is kept, and the model ranks exactly as the hybrid ranking.
    assert level.info["rounds"] == 0 and level.booster_text == "" and "no tree kept" in v["reason"]
    gains = fit(_synthetic(rng, 400, hybrid_knows=False), rounds=60)
    assert gains.info["validation"]["passed"], gains.info["validation"]
    slot = RankerSlot(tmp_path / "ranker.json")
    for model, used in ((level, False), (gains, True)):
        model.save(slot.path)
        slot._checked = 0.0  # noqa: SLF001 - skip the one-second stat throttle in this test
        chosen, _ = slot.for_request("auto", asked=None, mode="hybrid")
        assert (chosen is not None) is used
        assert slot.for_request("auto", asked="learned", mode="learned")[0] is not None  # asked for: any model


def _rewrite(path: Path, data: dict) -> None:
    """Write a model file's JSON with a checksum that matches it (as an older caselink wrote it)."""
    import hashlib

    body = {k: v for k, v in data.items() if k != "sha256"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    path.write_text(json.dumps({**body, "sha256": digest}))


def test_boosting_starts_from_the_hybrid_ranking_and_the_file_keeps_the_prior(tmp_path):
    import lightgbm as lgb

    from recommender.learned import PRIOR_LABEL, factors

    rng = np.random.default_rng(7)
    model = fit(_synthetic(rng, 400, hybrid_knows=False), rounds=60)
    assert model.info["rounds"] > 0 and model.prior == Prior.hybrid(PRIOR_SCALE, model.prior.baseline) and model.passed
    X = _synthetic(rng, 30, hybrid_knows=False).X
    trees = lgb.Booster(model_str=model.booster_text).predict(X)
    # The raw score is the prior (the fused score) plus the trees, at serving as in training.
    assert np.allclose(model.raw(X), model.prior.scale * X[:, F["fused_score"]].astype(np.float64) + trees)
    loaded = RankerModel.load(model.save(tmp_path / "ranker.json"))
    assert loaded.prior == model.prior and np.array_equal(loaded.raw(X), model.raw(X))

    # A model without trees ranks every list in its fused order, and says the hybrid ranking moved it.
    level = fit(_synthetic(rng, 400, hybrid_knows=True), rounds=60)
    data = _synthetic(rng, 50, hybrid_knows=False)
    raw, start = level.raw(data.X), 0
    for g in data.groups:
        assert np.array_equal(np.argsort(-raw[start:start + g], kind="stable"),
                              np.argsort(-data.fused[start:start + g], kind="stable"))
        start += g
    lines = factors(RankerModel.load(level.save(tmp_path / "level.json")), data.X[:2])
    assert [line[0].rsplit(" ", 1)[0] for line in lines] == [PRIOR_LABEL] * 2


def test_a_format_1_model_still_loads_and_a_bad_prior_is_refused(tmp_path):
    rng = np.random.default_rng(9)
    scratch = fit(_synthetic(rng, 200, hybrid_knows=False), rounds=30, prior_scale=None)
    assert scratch.prior.kind == "none"
    X = _synthetic(rng, 10, hybrid_knows=False).X
    old = {k: v for k, v in scratch.to_json().items() if k != "prior"}
    path = tmp_path / "ranker.json"
    _rewrite(path, {**old, "format": 1})  # a file from before the prior: trees alone
    assert np.array_equal(RankerModel.load(path).raw(X), scratch.raw(X))
    _rewrite(path, {**scratch.to_json(), "prior": {"kind": "bm25", "scale": 1.0}})
    with pytest.raises(IndexFormatError, match="prior of kind") as exc:
        RankerModel.load(path)
    assert "caselink train" in exc.value.hint
    _rewrite(path, {**scratch.to_json(), "prior": {"kind": "hybrid_score", "scale": "big"}})
    with pytest.raises(IndexFormatError, match="scale"):
        RankerModel.load(path)


# -- on the demo history ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory, use_encoder):
    from eval.links import pairs_from_links

    records = [r for src in demo_sources() for r in load_path(src).records]
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("ranker"))
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=records)
    pairs = pairs_from_links(records)
    train_pairs, test_pairs = split_by_component(pairs, 0.5, seed=13)
    # Enough queries that a quarter of them (the validation) can give a credible verdict.
    model = train(svc, train_pairs, max_queries=400, rounds=80, seed=13)
    try:
        yield svc, model, test_pairs
    finally:
        svc.close()


def test_training_on_the_demo_beats_hybrid_on_held_out_components_and_is_calibrated(demo):
    svc, model, test_pairs = demo
    v = model.info["validation"]
    assert model.info["valid_queries"] >= 50 and v["passed"], v
    # Held-out components: the model never saw these queries or their partners.
    data = gather(svc, labeled_queries(test_pairs)[:80])
    raw = model.raw(data.X)
    learned, hybrid = mrr_at_10(raw, data.y, data.groups), mrr_at_10(data.hybrid(), data.y, data.groups)
    assert learned >= hybrid - 0.005
    # The calibrated score is a probability: over the shown top 10, predicted and observed agree.
    top = np.zeros(len(raw), dtype=bool)
    start = 0
    for g in data.groups:
        top[start + np.argsort(-raw[start:start + g])[:10]] = True
        start += g
    probs = model.calibrate(raw[top])
    assert 0.0 <= probs.min() and probs.max() <= 1.0
    assert expected_calibration_error(probs, data.y[top]) <= 0.1
    assert np.all(np.diff(model.calibrate(np.sort(raw))) >= -1e-12)  # monotone: ranking by it is by raw


def test_the_service_uses_a_saved_model_and_off_is_todays_ranking(demo, tmp_path):
    svc, model, test_pairs = demo
    query = labeled_queries(test_pairs)[0].query_id
    before = svc.related(query, k=10)
    assert before.path == "hybrid"
    missing = svc.related(query, k=10, mode="learned")
    assert missing.path == "hybrid" and "caselink train" in missing.fallback_reason
    assert [r.id for r in missing.results] == [r.id for r in before.results]

    path = model.save(ranker_path(svc.settings))
    assert RankerModel.load(path).booster_text == model.booster_text
    svc.set_ranker(None)  # read the file, as a server picks up a new model
    svc._ranker._checked = 0.0  # noqa: SLF001 - skip the one-second stat throttle in this test
    after = svc.related(query, k=10)
    assert after.path == "learned"
    scores = [r.score for r in after.results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    top = after.results[0].explanation
    assert top.learned_score == after.results[0].score and len(top.learned_factors) == 3
    assert top.learned_factors[0].rsplit(" ", 1)[0] in (*FEATURES, "hybrid ranking")
    assert svc.related(query, k=10, mode="hybrid").path == "hybrid"  # asking for hybrid gets hybrid

    off = load_settings(env={}, data_dir=svc.settings.data_dir, rank__learned="off")
    svc_off = CaselinkService(off, svc.store, svc.index)  # same store and index, the switch off
    plain = svc_off.related(query, k=10)
    assert plain.path == "hybrid"
    assert [(r.id, r.score) for r in plain.results] == [(r.id, r.score) for r in before.results]
    assert svc_off.related(query, k=10, mode="learned").fallback_reason.startswith("rank.learned is off")
    path.unlink()


def test_serving_ranks_by_the_very_features_training_reads(demo):
    """What `caselink train` learns from (ranking_features) is what a learned request ranks by:
    each served result is the model's choice over those rows, with that row's calibrated score."""
    svc, model, test_pairs = demo
    svc.set_ranker(model)
    try:
        for q in labeled_queries(test_pairs)[:6]:
            ids, _, X = svc.ranking_features(q.query_id)
            served = svc.related(q.query_id, k=10, mode="learned")
            assert served.path == "learned" and len(ids) > 10
            raw = model.raw(X)
            order = np.lexsort((np.arange(len(raw)), -raw))[:10]
            assert [r.id for r in served.results] == [ids[i] for i in order]
            want = np.minimum.accumulate(model.calibrate(raw[order]))
            assert [r.score for r in served.results] == [round(float(p), 4) for p in want]
    finally:
        svc.set_ranker(None)


def test_the_model_reorders_the_first_learned_depth_candidates_as_trained(demo):
    """rank.learned_depth: training reads, and serving reorders, the fused list's first ``depth``
    candidates (at least k); a candidate's features do not depend on the depth."""
    svc, model, test_pairs = demo
    at = {d: CaselinkService(load_settings(env={}, data_dir=svc.settings.data_dir, rank__learned_depth=d),
                             svc.store, svc.index) for d in (0, 12)}
    for s in at.values():
        s.set_ranker(model)
    for q in labeled_queries(test_pairs)[:4]:
        whole_ids, whole_fused, whole_X = at[0].ranking_features(q.query_id)
        ids, fused, X = at[12].ranking_features(q.query_id)
        assert len(whole_ids) > 30 and ids == whole_ids[:12]
        assert np.array_equal(X, whole_X[:12]) and np.array_equal(fused, whole_fused[:12])
        for k, depth in ((10, 12), (30, 30)):  # k above the depth: the first k are all reranked
            served = at[12].related(q.query_id, k=k, mode="learned")
            raw = model.raw(whole_X[:depth])
            order = np.lexsort((np.arange(depth), -raw))[:k]
            assert served.path == "learned" and [r.id for r in served.results] == [whole_ids[i] for i in order]
            want = np.minimum.accumulate(model.calibrate(raw[order]))
            assert [r.score for r in served.results] == [round(float(p), 4) for p in want]


def test_a_damaged_model_file_is_refused_with_the_command_that_fixes_it(demo, tmp_path):
    _, model, _ = demo
    path = model.save(tmp_path / "ranker.json")
    data = json.loads(path.read_text())
    data["info"]["queries"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="checksum") as exc:
        RankerModel.load(path)
    assert "caselink train" in exc.value.hint
    data = model.to_json()
    data["format"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="format"):
        RankerModel.load(path)


def test_the_title_index_scores_titles_alone_and_is_kept_in_the_snapshot(demo):
    svc, _, _ = demo
    docs = svc.documents
    recs = list(svc.iter_records())
    ids = [r.id for r in recs]
    title = {r.id: set(docs.title_tokens(r)) for r in recs}
    rec = next(r for r in recs if len(title[r.id]) >= 3)
    terms = docs.title_tokens(rec)
    got = svc.index.candidate_facts(ids, terms=terms)["title_bm25"]
    assert got[ids.index(rec.id)] == got.max() > 0
    # A record whose body holds the terms and whose title holds none scores nothing here.
    body_only = [r.id for r in recs if not set(terms) & title[r.id] and terms[0] in docs.tokens(r)]
    assert body_only and all(got[ids.index(i)] == 0 for i in body_only)
    svc.index.snapshot()
    again = CaselinkService.open(svc.settings, encoder=svc.index.encoder)
    try:
        assert again.index.candidate_facts(ids, terms=terms)["title_bm25"] == pytest.approx(got)
    finally:
        again.close()


def test_an_ensemble_encoder_gives_each_part_its_own_cosine(use_encoder, tmp_path):
    from indexing.encoders import EnsembleEncoder

    records = [r for src in demo_sources() for r in load_path(src).records][:80]
    ensemble = EnsembleEncoder([use_encoder, use_encoder], weights=[1, 3])
    svc, _ = CaselinkService.build(load_settings(env={}, data_dir=tmp_path), encoder=ensemble, records=records)
    try:
        names = svc.feature_names()
        assert names[-2:] == ("cosine1_use-m3", "cosine2_use-m3")
        query = next(r.id for r in records if r.kind == "case")
        ids, _, X = svc.ranking_features(query)
        assert X.shape == (len(ids), len(names))
        dense = X[:, names.index("dense_missing")] == 0
        # Both parts are the same encoder: each part's cosine is the ensemble's, for every candidate.
        assert X[:, -2] == pytest.approx(X[:, -1], abs=1e-5)
        assert X[dense, -1] == pytest.approx(X[dense, names.index("dense_score")], abs=1e-5)
    finally:
        svc.close()


# -- the commands, run as a user would (last: they write a model beside the module's index) --------
def _cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "caselink.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_caselink_train_saves_a_model_that_search_then_uses(demo):
    svc, _, _ = demo
    data_dir = svc.settings.data_dir
    text = _cli("train", "--max-queries", "100", data_dir=data_dir)  # as a user reads it: the trees and why
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("model: "))
    assert " trees" in line and "rank.learned_depth = 50" in line
    proc = _cli("train", "--json", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["path"] == str(ranker_path(svc.settings)) and info["pairs"] > 100
    assert info["depth"] == 50 and info["trees"].startswith(f"{info['rounds']} trees")
    assert info["test"]["queries"] >= 50 and info["validation"]["passed"], info["validation"]
    assert info["test"]["passed"] and info["test"]["gain_ci"][0] > 0
    out = json.loads(_cli("related", "C-2023-00026", "--json", data_dir=data_dir).stdout)
    assert out["path"] == "learned" and out["results"][0]["explanation"]["learned_factors"]
    bad = _cli("train", "--holdout", "1.5", data_dir=data_dir)
    assert bad.returncode == 2 and "--holdout" in bad.stderr
    Path(info["path"]).unlink()


def test_caselink_train_on_too_few_labels_says_how_many_a_verdict_needs(demo):
    svc, _, _ = demo
    few = _cli("train", "--max-queries", "24", "--json", data_dir=svc.settings.data_dir)
    assert few.returncode == 0, few.stderr
    info = json.loads(few.stdout)
    assert not info["validation"]["passed"] and info["valid_queries"] < 50
    text = _cli("train", "--max-queries", "24", data_dir=svc.settings.data_dir)
    assert text.returncode == 0 and "no credible gain over hybrid" in text.stderr
    line = next(x for x in text.stderr.splitlines() if x.startswith("too few labels to judge"))
    need = int(line.split("about ")[1].split(" labeled")[0])
    # A quarter of the 80% the holdout leaves validates: 50 validation queries take about 250 labeled ones.
    assert f"{info['valid_queries']} validation queries of {info['labeled_queries']} labeled" in line
    assert 150 <= need <= 400, line
    Path(info["path"]).unlink()


def test_caselink_eval_splits_by_component_and_reports_the_learned_mode(demo, tmp_path):
    svc, _, _ = demo
    proc = _cli("eval", "--demo", "--split", "0.5", "--mode", "all", "--max-queries", "150", "--json",
                "--report", str(tmp_path / "report"), data_dir=svc.settings.data_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out["modes"]) == {"hybrid", "dense", "keyword", "learned"}
    assert out["train_pairs"] > 0 and out["dropped_queries"] == 0  # a split by component drops nothing
    learned = out["modes"]["learned"]
    assert learned["mrr@10"] >= max(out["modes"][m]["mrr@10"] for m in ("hybrid", "dense", "keyword")) - 0.005
    assert 0 <= learned["ece@10"] <= 0.1
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 0
    assert "Calibration of the learned score" in (tmp_path / "report" / "report.md").read_text()
    bad = _cli("eval", "--demo", "--mode", "learned", data_dir=svc.settings.data_dir)
    assert bad.returncode == 2 and "--split" in bad.stderr


def test_train_pairs_that_touch_test_components_drop_those_queries():
    from eval.learned import held_back

    test = [("a", "b", 1), ("b", "c", 1), ("x", "y", 1), ("x", "z", 0), ("p", "q", 0)]
    train_pairs = [("c", "d", 1), ("q", "r", 1)]
    # a-b-c touches the trained c: the whole component goes; p-q names the trained q.
    assert held_back(test, train_pairs) == [("x", "y", 1), ("x", "z", 0)]
