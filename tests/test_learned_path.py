"""The learned request's cheaper parts rank, score and explain exactly as before, on a real index
(the demo history, a model trained on its links): each side's features against the sorted
numpy table they were read from before, and the factors of the first three results shown."""

from __future__ import annotations

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

_SIDE_COLUMNS = slice(0, 10)  # dense_* and keyword_*: what features._side gives, both sides
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


def _side_by_table(keys: list, side: dict[str, tuple[int, float]]) -> np.ndarray:
    """features._side as it was before: the side's keys as a numpy string table, sorted, searched."""
    keys = np.asarray(keys, dtype=str)
    out = np.zeros((len(keys), 5), dtype=np.float32)
    if not side:
        out[:, 1] = 1.0
        return out
    ranks = np.fromiter((r for r, _ in side.values()), dtype=np.float32, count=len(side))
    scores = np.fromiter((s for _, s in side.values()), dtype=np.float32, count=len(side))
    lookup_keys = np.asarray(list(side), dtype=str)
    order = np.argsort(lookup_keys)
    lookup_keys, ranks, scores = lookup_keys[order], ranks[order], scores[order]
    pos = np.clip(np.searchsorted(lookup_keys, keys), 0, len(lookup_keys) - 1)
    found = lookup_keys[pos] == keys
    floor = float(scores.min())
    s = np.where(found, scores[pos], floor)
    r = np.where(found, ranks[pos], len(side) + 1)
    std = float(scores.std()) or 1.0
    out[:, 0] = s
    out[:, 1] = ~found
    out[:, 2] = np.log1p(r)
    out[:, 3] = (s - float(scores.mean())) / std
    out[:, 4] = float(scores.max()) - s
    return out


def _answers(svc, queries):
    out = []
    for q in queries:
        ids, fused, X = svc.ranking_features(q)
        served = svc.related(q, k=10, mode="learned")
        shown = [(r.id, r.score, r.explanation.learned_score, r.explanation.learned_factors) for r in served.results]
        out.append((ids, fused, X, served.path, shown))
    return out


def test_each_side_s_features_are_the_sorted_table_s_to_the_bit(demo, monkeypatch):
    svc, _, queries = demo
    now = _answers(svc, queries)
    monkeypatch.setattr(features, "_side", _side_by_table)
    before = _answers(svc, queries)
    # Real lists: long, and with candidates one side did not list (the lookup's other branch).
    assert sum(path == "learned" for *_, path, _ in now) >= len(queries) // 2
    X_all = np.concatenate([X for _, _, X, _, _ in now])
    assert len(X_all) > 20 * len(queries) and all(X_all[:, j].any() for j in _MISSING)
    for (ids, fused, X, path, shown), (ids0, fused0, X0, path0, shown0) in zip(now, before):
        assert ids == ids0 and fused.tobytes() == fused0.tobytes()
        assert X[:, _SIDE_COLUMNS].tobytes() == X0[:, _SIDE_COLUMNS].tobytes() and X.tobytes() == X0.tobytes()
        assert path == path0 and shown == shown0


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
