"""Fusion: score ranges, the three methods, code-first ordering."""

import numpy as np
import pytest

from recommender.fusion import adaptive_weights, codes_first, fuse


def test_convex_combines_and_fills_missing_with_the_side_floor():
    f = fuse(["a", "b"], np.array([0.9, 0.5]), ["b", "c"], np.array([0.9, 0.4]),
             method="convex", dense_weight=0.5, keyword_weight=0.5)
    got = dict(zip(f.keys.tolist(), f.scores.tolist()))
    assert got == pytest.approx({"a": (0.9 + 0.4) / 2, "b": (0.5 + 0.9) / 2, "c": (0.5 + 0.4) / 2})
    assert f.keys.tolist() == ["b", "a", "c"]
    assert f.dense["a"] == (1, pytest.approx(0.9)) and f.keyword["c"] == (2, pytest.approx(0.4))


def test_equal_scores_are_ordered_by_record_id():
    f = fuse(["C-2", "C-10", "C-1"], np.array([0.5, 0.5, 0.5]), [], np.array([]), method="convex")
    assert f.keys.tolist() == ["C-1", "C-10", "C-2"]


def test_rrf_scores_are_normalised_to_one_at_best():
    f = fuse(["g"], np.array([0.3]), ["g"], np.array([0.1]), method="rrf")
    assert f.scores.tolist() == pytest.approx([1.0])


def test_adaptive_weights_trust_the_side_whose_best_stands_out():
    flat = np.linspace(0.50, 0.40, 50)            # the best barely stands out
    sharp = np.r_[0.90, np.linspace(0.20, 0.10, 49)]  # one clear answer
    wd, wk = adaptive_weights(flat, sharp, 0.5, 0.5)
    assert wk > 4 * wd
    wd, wk = adaptive_weights(sharp, flat, 0.5, 0.5)
    assert wd > 4 * wk
    assert adaptive_weights(sharp[:2], flat, 0.3, 0.7) == (0.3, 0.7)  # too few to judge


def test_codes_first_reorders_and_keeps_scores_non_increasing():
    f = fuse(["a", "b", "c"], np.array([0.9, 0.8, 0.7]), [], np.array([]), method="convex")
    out = codes_first(f, {"e1023"}, {"c": ("e1023",)})
    assert out.keys.tolist() == ["c", "a", "b"]
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)


def _fused(keys, scores):
    from recommender.fusion import Fused
    return Fused(np.asarray(keys, dtype=str), np.asarray(scores, dtype=np.float32), {}, {})


def test_verdicts_count_each_sources_latest_verdict_once():
    from recommender.verdicts import Verdict, tally
    rows = [("B", "ann", True), ("B", "ann", True), ("B", "bob", False), ("B", "bob", True),
            ("C", "ann", True), ("C", "ann", False), ("D", "", False), ("D", "", False), ("D", "eve", False)]
    assert tally(rows) == {"B": Verdict(2, 0), "C": Verdict(0, 1), "D": Verdict(0, 2)}
    assert tally(rows)["B"].net == 2 and tally([]) == {}


def test_verdicts_promote_demote_add_and_keep_scores_non_increasing():
    from recommender.verdicts import apply_verdicts
    f = _fused(["1", "2", "3", "4", "5"], [0.9, 0.8, 0.7, 0.6, 0.5])
    out = apply_verdicts(f, {"4": 1, "2": -1, "9": 2, "5": 1, "3": 0})
    # 9 (net 2, not found by the ranking) first, then 4 and 5 (net 1) in score order; 1 and 3 as
    # they were; 2 (net -1) last.
    assert out.keys.tolist() == ["9", "4", "5", "1", "3", "2"]
    assert out.scores.tolist() == pytest.approx([0.9, 0.9, 0.9, 0.9, 0.7, 0.7])
    assert all(a >= b for a, b in zip(out.scores, out.scores[1:]))
    assert apply_verdicts(f, {}) is f and apply_verdicts(f, {"3": 0}) is f
    only_demoted = apply_verdicts(f, {"1": -3})
    assert only_demoted.keys.tolist() == ["2", "3", "4", "5", "1"]
    assert only_demoted.scores.tolist() == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.5])
    empty = apply_verdicts(_fused([], []), {"7": 1})
    assert empty.keys.tolist() == ["7"] and empty.scores.tolist() == [0.0]
