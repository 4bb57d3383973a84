"""Ranking metrics against hand-computed cases, bootstrap intervals and the F1 threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import (
    bootstrap_ci,
    first_relevant_rank,
    hit_at_k,
    mean_metrics,
    metric_names,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    recall_at_k,
    relevance_matrix,
)
from eval.scores import best_f1_threshold

# Ranked [x, r1, y, r2] with relevant {r1, r2, r3}: relevant at ranks 2 and 4.
RANKED = [["x", "r1", "y", "r2"]]
RELEVANT = [{"r1", "r2", "r3"}]


@pytest.fixture
def hits():
    return relevance_matrix(RANKED, RELEVANT, depth=10)


def test_relevance_matrix_marks_relevant_ranks_and_pads(hits):
    assert hits.shape == (1, 10)
    assert hits[0].tolist() == [False, True, False, True] + [False] * 6


def test_hit_at_k(hits):
    assert hit_at_k(hits, 1).tolist() == [0.0]
    assert hit_at_k(hits, 2).tolist() == [1.0]
    assert hit_at_k(hits, 5).tolist() == [1.0]


def test_recall_is_normalised_by_min_relevant_and_k(hits):
    n_rel = np.array([3])
    assert recall_at_k(hits, n_rel, 1)[0] == 0.0
    # top 2 holds 1 relevant; denominator min(3, 2) = 2 (plain recall would say 1/3)
    assert recall_at_k(hits, n_rel, 2)[0] == pytest.approx(1 / 2)
    # top 5 holds 2 of 3 relevant; denominator min(3, 5) = 3
    assert recall_at_k(hits, n_rel, 5)[0] == pytest.approx(2 / 3)
    assert recall_at_k(hits, n_rel, 10)[0] == pytest.approx(2 / 3)


def test_recall_reaches_one_when_top_k_is_all_relevant():
    hits = relevance_matrix([["a", "b"]], [{"a", "b", "c", "d"}], depth=10)
    assert recall_at_k(hits, np.array([4]), 1)[0] == 1.0
    assert recall_at_k(hits, np.array([4]), 2)[0] == 1.0


def test_mrr_is_reciprocal_rank_of_first_relevant(hits):
    assert mrr_at_k(hits, 10)[0] == pytest.approx(0.5)
    assert first_relevant_rank(hits).tolist() == [2]


def test_mrr_ignores_relevant_beyond_cutoff():
    ranked = [[f"n{i}" for i in range(10)] + ["r"]]
    hits = relevance_matrix(ranked, [{"r"}], depth=11)
    assert mrr_at_k(hits, 10)[0] == 0.0
    assert first_relevant_rank(hits).tolist() == [11]


def test_ndcg_by_hand(hits):
    # DCG  = 1/log2(2+1) + 1/log2(4+1) = 0.63093 + 0.43068 = 1.06161   (relevant at ranks 2 and 4)
    # IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5 = 2.13093   (min(3, 10) = 3 ideal hits)
    # nDCG = 1.06161 / 2.13093 = 0.49819
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert expected == pytest.approx(0.49819, abs=1e-5)
    assert ndcg_at_k(hits, np.array([3]), 10)[0] == pytest.approx(expected)


def test_ndcg_ideal_is_capped_at_ten_relevant():
    ranked = [[f"r{i}" for i in range(10)]]
    hits = relevance_matrix(ranked, [{f"r{i}" for i in range(30)}], depth=10)
    assert ndcg_at_k(hits, np.array([30]), 10)[0] == pytest.approx(1.0)


def test_per_query_metrics_keys_and_means(hits):
    pq = per_query_metrics(hits, np.array([3]))
    assert list(pq) == metric_names() == [
        "hit@1", "hit@5", "hit@10", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10",
    ]
    means = mean_metrics(pq)
    assert means["hit@1"] == 0.0
    assert means["hit@5"] == 1.0
    assert means["recall@5"] == pytest.approx(2 / 3)
    assert means["mrr@10"] == pytest.approx(0.5)


def test_metrics_average_over_queries():
    ranked = [["r"], ["x", "r"], ["x", "y"]]
    hits = relevance_matrix(ranked, [{"r"}, {"r"}, {"r"}], depth=10)
    means = mean_metrics(per_query_metrics(hits, np.array([1, 1, 1])))
    assert means["hit@1"] == pytest.approx(1 / 3)
    assert means["hit@5"] == pytest.approx(2 / 3)
    assert means["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_k_deeper_than_ranking_is_refused(hits):
    with pytest.raises(ValueError, match="expected k <= ranked depth 10, got 20"):
        hit_at_k(hits, 20)


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    values = (rng.random(500) < 0.3).astype(float)
    low, high = bootstrap_ci(values, n=1000, seed=13)
    assert low < values.mean() < high
    # roughly +-1.96 * sqrt(p(1-p)/n) = +-0.04
    assert 0.05 < high - low < 0.11
    assert bootstrap_ci(values, n=1000, seed=13) == (low, high)
    assert bootstrap_ci(values, n=1000, seed=14) != (low, high)


def test_bootstrap_ci_constant_values():
    assert bootstrap_ci([0.5] * 20) == (0.5, 0.5)


def test_best_f1_threshold():
    # at 0.8: P = 2/2, R = 2/3, F1 = 0.8; at 0.4: P = 3/5, R = 1, F1 = 0.75; so 0.8 wins
    t = best_f1_threshold(np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.45]))
    assert t.score == 0.8
    assert t.precision == 1.0
    assert t.recall == pytest.approx(2 / 3)
    assert t.f1 == pytest.approx(0.8)
    assert best_f1_threshold(np.array([0.9]), np.array([])) is None
