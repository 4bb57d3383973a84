"""The runner's result shape, progress, pair scores, and the written report."""

from __future__ import annotations

import json

import pytest

from eval.baselines import NaiveRRFRetriever, TfidfRetriever
from eval.datasets import EvalRecord
from eval.report import write_report
from eval.runner import evaluate

RECORDS = [
    EvalRecord("a1", "remote control does not pair with the tv"),
    EvalRecord("a2", "tv remote will not pair"),
    EvalRecord("b1", "dry pump overheating alarm stops the tool"),
    EvalRecord("b2", "pump stops on overheating alarm"),
    EvalRecord("c1", "laser power drops below setpoint"),
    EvalRecord("c2", "stage position error after calibration"),
]
PAIRS = [("a1", "a2", 1), ("b1", "b2", 1), ("a1", "b1", 0), ("c1", "c2", 0)]


@pytest.fixture
def result():
    tfidf = TfidfRetriever()
    calls = []
    res = evaluate(
        RECORDS,
        PAIRS,
        {"tfidf": tfidf, "rrf": NaiveRRFRetriever(tfidf, TfidfRetriever(name="t2"))},
        dataset="tiny",
        progress=lambda done, total: calls.append((done, total)),
        n_bootstrap=50,
    )
    res.progress_calls = calls
    return res


def test_to_json_shape(result):
    data = result.to_json()
    assert set(data) == {"dataset", "queries", "modes"}
    assert data["dataset"] == "tiny" and data["queries"] == 4
    assert list(data["modes"]) == ["tfidf", "rrf"]
    assert list(data["modes"]["tfidf"]) == [
        "hit@1", "hit@5", "hit@10", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10",
    ]
    assert data["modes"]["tfidf"]["hit@1"] == 1.0
    json.dumps(data)  # serialisable
    with_ci = result.to_json(ci=True)["modes"]["tfidf"]["ci"]
    low, high = with_ci["mrr@10"]
    assert low <= data["modes"]["tfidf"]["mrr@10"] <= high


def test_progress_counts_queries_over_modes(result):
    assert result.progress_calls[-1] == (8, 8)
    assert [d for d, _ in result.progress_calls] == sorted(d for d, _ in result.progress_calls)


def test_pair_scores_only_for_scoring_modes(result):
    tfidf = result.modes["tfidf"]
    assert len(tfidf.positive_scores) == 2 and len(tfidf.negative_scores) == 2
    assert tfidf.negatives_source == "labeled"
    assert tfidf.positive_scores.min() > tfidf.negative_scores.max()
    assert result.modes["rrf"].positive_scores is None


def test_per_query_values_and_ranked_lists_kept(result):
    mode = result.modes["tfidf"]
    assert len(mode.ranked) == len(result.queries) == len(mode.per_query["mrr@10"])
    assert mode.first_relevant.tolist() == [1, 1, 1, 1]
    assert len(mode.recall_curve) == result.depth == 20


def test_no_queries_is_an_error():
    with pytest.raises(ValueError, match="expected at least one query"):
        evaluate(RECORDS, [("a1", "b1", 0)], {"tfidf": TfidfRetriever()})


def test_bad_ks_refused():
    with pytest.raises(ValueError, match="expected ks to be positive integers"):
        evaluate(RECORDS, PAIRS, {"tfidf": TfidfRetriever()}, ks=(0, 5))


def test_random_negatives_when_none_labeled():
    pairs = [p for p in PAIRS if p[2] == 1]
    res = evaluate(RECORDS, pairs, {"tfidf": TfidfRetriever()}, n_bootstrap=10)
    mode = res.modes["tfidf"]
    assert mode.negatives_source == "random"
    assert len(mode.negative_scores) == 2


def test_write_report(tmp_path, result):
    path = write_report(result, tmp_path / "out")
    text = path.read_text(encoding="utf-8")
    assert "# Evaluation: tiny" in text
    assert "| tfidf | 1.000 |" in text
    assert "min score" in text and "Worst-ranked queries" in text
    for name in ("recall_at_k.png", "score_distributions.png", "result.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert json.loads((tmp_path / "out" / "result.json").read_text())["queries"] == 4
