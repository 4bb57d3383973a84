"""Reference baselines on tiny crafted corpora; the real-benchmark comparison is marked slow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from eval.baselines import NaiveRRFRetriever, TfidfRetriever, UseDenseRetriever, cjk_share
from eval.datasets import EvalRecord
from eval.retrievers import PairScorer, Retriever, top_k

EN = [
    EvalRecord("r1", "The remote control does not pair with the TV after battery change", title="Remote pairing"),
    EvalRecord("r2", "Dry pump stops with overheating alarm E1023 during the night shift"),
    EvalRecord("r3", "Laser output power drops 15 percent below setpoint"),
    EvalRecord("r4", "Picture is dark, adjust the backlight and brightness settings"),
]
ZH = [
    EvalRecord("z1", "干泵运行中突然停机，报警E1023"),
    EvalRecord("z2", "激光功率下降，更换光源后恢复"),
    EvalRecord("z3", "工件台定位超差，重新校准干涉仪"),
]


def test_tfidf_english_ranks_obvious_match_first():
    r = TfidfRetriever()
    r.fit(EN)
    assert r.language_ == "en"
    out = r.rank([EvalRecord("q", "remote won't pair with tv"), EvalRecord("q2", "pump overheating alarm")], k=2)
    assert [lst[0][0] for lst in out] == ["r1", "r2"]
    assert len(out[0]) == 2
    assert out[0][0][1] > out[0][1][1] >= 0


def test_tfidf_chinese_uses_characters():
    r = TfidfRetriever()
    r.fit(ZH)
    assert r.language_ == "zh"
    # no shared word boundaries in Chinese; character bigrams still find the match
    assert r.rank([EvalRecord("q", "干泵停机了")], k=1)[0][0][0] == "z1"
    assert r.rank([EvalRecord("q", "激光功率低")], k=1)[0][0][0] == "z2"


def test_cjk_share():
    assert cjk_share(["干泵 pump"]) == pytest.approx(2 / 6)
    assert cjk_share(["", "123"]) == 0.0


def test_tfidf_respects_candidate_ids_and_scores_pairs():
    r = TfidfRetriever()
    r.fit(EN)
    out = r.rank([EvalRecord("q", "remote pair tv")], k=3, candidate_ids={"r3", "r4"})
    assert {doc for doc, _ in out[0]} <= {"r3", "r4"}
    scores = r.score_pairs([("r1", "r1"), ("r1", "r3")])
    assert scores[0] == pytest.approx(1.0)
    assert 0 <= scores[1] < 0.5
    with pytest.raises(KeyError, match="not in the fitted records"):
        r.score_pairs([("r1", "nope")])


def test_tfidf_title_is_not_repeated_when_text_starts_with_it():
    assert EN[0].full_text() == "Remote pairing\n" + EN[0].text
    same = EvalRecord("a", "Remote pairing\nbody", title="Remote pairing")
    assert same.full_text() == "Remote pairing\nbody"


def test_unfitted_retriever_refuses():
    with pytest.raises(RuntimeError, match="call fit"):
        TfidfRetriever().rank([EvalRecord("q", "x")], k=1)


def test_baselines_satisfy_the_protocols():
    assert isinstance(TfidfRetriever(), Retriever) and isinstance(TfidfRetriever(), PairScorer)
    assert isinstance(UseDenseRetriever(), PairScorer)
    assert not isinstance(NaiveRRFRetriever(TfidfRetriever(), TfidfRetriever()), PairScorer)


def test_top_k_breaks_ties_by_record_order_and_masks():
    ids = ["a", "b", "c", "d"]
    scores = np.array([[0.5, 0.9, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]])
    assert top_k(scores, 3, ids) == [[("b", 0.9), ("a", 0.5), ("c", 0.5)], [("d", 0.4), ("c", 0.3), ("b", 0.2)]]
    mask = np.array([True, False, True, False])
    assert top_k(scores, 3, ids, mask) == [[("a", 0.5), ("c", 0.5)], [("c", 0.3), ("a", 0.1)]]


class Fixed:
    """A retriever that returns preset lists."""

    def __init__(self, name, lists):
        self.name, self.lists, self.fits = name, lists, 0

    def fit(self, records):
        self.fits += 1

    def rank(self, queries, k, candidate_ids=None):
        return [[(d, 1.0) for d in self.lists[q.id][:k]] for q in queries]


def test_rrf_fuses_by_reciprocal_rank():
    records = [EvalRecord(i, i) for i in ["x", "y", "z", "w"]]
    a = Fixed("a", {"q": ["x", "y", "z"]})
    b = Fixed("b", {"q": ["y", "w", "x"]})
    rrf = NaiveRRFRetriever(a, b, k=60)
    rrf.fit(records)
    out = rrf.rank([EvalRecord("q", "")], k=4)[0]
    # y: 1/62 + 1/61; x: 1/61 + 1/63; z: 1/63; w: 1/62
    assert [d for d, _ in out] == ["y", "x", "w", "z"]
    assert out[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert rrf.name == "rrf(a+b)"
    assert a.fits == 1 and b.fits == 1


def test_rrf_ties_follow_record_order():
    records = [EvalRecord(i, i) for i in ["x", "y"]]
    rrf = NaiveRRFRetriever(Fixed("a", {"q": ["y"]}), Fixed("b", {"q": ["x"]}))
    rrf.fit(records)
    assert [d for d, _ in rrf.rank([EvalRecord("q", "")], k=2)[0]] == ["x", "y"]


def test_refit_on_same_records_is_skipped():
    r = TfidfRetriever()
    r.fit(EN)
    matrix = r.matrix_
    r.fit(list(EN))
    assert r.matrix_ is matrix
    r.fit(EN[:2])
    assert r.matrix_ is not matrix and r.matrix_.shape[0] == 2


@pytest.mark.slow
def test_use_dense_ranks_paraphrase_first():
    r = UseDenseRetriever(batch_size=2)
    r.fit(EN)
    out = r.rank([EvalRecord("q", "my remote will not connect to the television")], k=2)
    assert out[0][0][0] == "r1"
    assert r.score_pairs([("r1", "r1")])[0] == pytest.approx(1.0, abs=1e-4)


BENCH = Path(os.environ.get("CASELINK_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
README_TFIDF = {  # R@1, R@10, MRR@10 from shared/benchmarks/README.md
    "zh_bq_dev": (0.141, 0.231, 0.247),
    "zh_afqmc_dev": (0.071, 0.331, 0.140),
    "en_openoffice_dups": (0.356, 0.560, 0.430),
    "en_emanual_tv_remote": (0.477, 0.920, 0.631),
    "en_gitbugs_hadoop": (0.457, 0.744, 0.563),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(README_TFIDF))
def test_tfidf_reproduces_readme_reference(name):
    if not (BENCH / name).is_dir():
        pytest.skip(f"benchmark {name} not found under {BENCH}")
    from eval.runner import evaluate_benchmark

    result = evaluate_benchmark(BENCH / name, {"tfidf": TfidfRetriever()}, n_bootstrap=10)
    m = result.modes["tfidf"].metrics
    got = (m["recall@1"], m["recall@10"], m["mrr@10"])
    assert got == pytest.approx(README_TFIDF[name], abs=0.01)


def test_use_dense_with_a_cache_encodes_a_text_once_and_gives_the_same_vectors(tmp_path, monkeypatch):
    cache = tmp_path / "embeddings.sqlite"
    first = UseDenseRetriever(cache_path=cache)
    first.fit(EN + [EvalRecord("dup", EN[0].text, title=EN[0].title)])  # a repeated text is encoded once
    assert np.allclose(first.vectors_[0], first.vectors_[-1])
    again = UseDenseRetriever(cache_path=cache)
    monkeypatch.setattr(again, "_encode_all", lambda texts: pytest.fail(f"encoded {len(texts)} cached texts"))
    again.fit(EN)
    assert np.array_equal(again.vectors_, first.vectors_[:len(EN)])
    # The cached vectors are the model's own, and only texts not seen before are encoded.
    plain = UseDenseRetriever()
    plain.fit(EN)
    assert np.allclose(again.vectors_, plain.vectors_, atol=1e-6)
    asked: list[int] = []
    fresh = UseDenseRetriever(cache_path=cache)
    monkeypatch.setattr(fresh, "_encode_all", lambda texts: asked.append(len(texts)) or plain._encode_all(texts))
    fresh.fit(EN + [EvalRecord("new", "Vacuum leak at the load lock door seal")])
    assert asked == [1]
