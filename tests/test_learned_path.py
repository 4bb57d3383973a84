"""The learned request's cheaper parts rank, score and explain as they mean to, on a real index
(the demo history, a model trained on its links): each side's features against a reading of
them one candidate at a time, and the factors of the first three results shown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caselink.config import load_settings
from eval.links import pairs_from_links
from indexing.demo import demo_sources
from indexing.loaders import load_path
from recommender import features
from recommender.learned import factors
from recommender.service import CaselinkService
from recommender.training import train

_EXACT = [0, 1, 2, 5, 6, 7]  # each side's score, missing flag and log rank: no arithmetic on the list
_MISSING = (1, 6)  # dense_missing, keyword_missing


@pytest.fixture(scope="module")
def demo(tmp_path_factory, use_encoder):
    records = [r for src in demo_sources() for r in load_path(src).records]
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("learned-path"))
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=records)
    model = train(svc, pairs_from_links(records), max_queries=200, rounds=40, seed=13)
    svc.set_ranker(model)
    # Records of every kind, spread over the history, that others link to or from.
    linked = [r.id for r in records if r.links]
    try:
        yield svc, model, linked[:: max(1, len(linked) // 30)][:30]
    finally:
        svc.close()


def _side_by_candidate(keys: list, side: dict[str, tuple[int, float]]) -> tuple[np.ndarray, float]:
    """What features._side means, one candidate at a time, the statistics exact (math.fsum)."""
    out = np.zeros((len(keys), 5), dtype=np.float32)
    if not side:
        out[:, 1] = 1.0
        return out, 0.0
    scores = [s for _, s in side.values()]
    mean = math.fsum(scores) / len(scores)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in scores) / len(scores))
    for i, k in enumerate(keys):
        rank, score = side.get(k, (len(side) + 1, min(scores)))
        out[i] = (score, k not in side, math.log1p(rank), (score - mean) / (std or 1.0), max(scores) - score)
    return out, (0.0 if len(side) < 3 or std <= 1e-9 else max(0.0, (max(scores) - mean) / std))


def _answers(svc, queries):
    out = []
    for q in queries:
        ids, fused, X = svc.ranking_features(q)
        served = svc.related(q, k=10, mode="learned")
        shown = [(r.id, r.score, r.explanation.learned_score, r.explanation.learned_factors) for r in served.results]
        out.append((ids, fused, X, served.path, shown))
    return out


def test_each_side_s_features_are_what_they_mean(demo, monkeypatch):
    """Each side's score, missing flag, rank, z and gap, and its confidence, read per candidate
    with exact statistics: equal within float32 rounding, and the answers served the same."""
    svc, _, queries = demo
    now = _answers(svc, queries)
    monkeypatch.setattr(features, "_side", _side_by_candidate)
    reference = _answers(svc, queries)
    # Real lists: long, and with candidates one side did not list (the lookup's other branch).
    assert sum(path == "learned" for *_, path, _ in now) >= len(queries) // 2
    X_all = np.concatenate([X for _, _, X, _, _ in now])
    assert len(X_all) > 20 * len(queries) and all(X_all[:, j].any() for j in _MISSING)
    for (ids, fused, X, path, shown), (ids0, fused0, X0, path0, shown0) in zip(now, reference):
        assert ids == ids0 and fused.tobytes() == fused0.tobytes()
        assert np.allclose(X, X0, rtol=1e-6, atol=1e-6)
        assert np.array_equal(X[:, _EXACT], X0[:, _EXACT])
        assert path == path0 and [r[0] for r in shown] == [r[0] for r in shown0]


def test_the_first_three_reranked_results_shown_are_explained_by_their_own_rows(demo):
    """The factors are computed as soon as the model has ranked (before the results are built):
    still for the first three of the shown results the model ranked, from their own rows."""
    svc, model, queries = demo
    checked = 0
    for q in queries:
        ids, _, X = svc.ranking_features(q)
        served = svc.related(q, k=10, mode="learned")
        if served.path != "learned":
            continue
        raw = model.raw(X)
        order = np.lexsort((np.arange(len(raw)), -raw))
        assert [r.id for r in served.results] == [ids[i] for i in order[:len(served.results)]]
        want = factors(model, X[order[:3]])
        got = [r.explanation.learned_factors for r in served.results]
        assert got[:3] == want[:len(got[:3])] and all(f == [] for f in got[3:])
        assert all(r.explanation.learned_score == r.score for r in served.results)
        checked += 1
    assert checked >= len(queries) // 2
