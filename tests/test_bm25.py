"""BM25: scores against the formula, incremental add/update/delete, persistence."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexing.bm25 import BM25Index

DOCS = {
    1: ["vacuum", "pump", "alarm", "e1023"],
    2: ["robot", "wafer", "alarm"],
    3: ["laser", "power", "drop", "laser"],
    4: ["vacuum", "leak", "chamber"],
}


def build(docs=DOCS, **kw):
    idx = BM25Index(**kw)
    idx.add(list(docs), list(docs.values()))
    return idx


def reference(docs, query, k1=1.2, b=0.75, delta=0.0):
    n = len(docs)
    avgdl = sum(len(d) for d in docs.values()) / n
    out = {}
    for key, doc in docs.items():
        s = 0.0
        for term in set(query):
            df = sum(term in d for d in docs.values())
            if not df or term not in doc:
                continue
            tf = doc.count(term)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            ctd = tf / (1 - b + b * len(doc) / avgdl) + delta  # BM25L; delta 0 is classic BM25
            s += query.count(term) * idf * (k1 + 1) * ctd / (k1 + ctd)
        if s:
            out[key] = s
    return out


@pytest.mark.parametrize("query", [["vacuum"], ["alarm", "vacuum"], ["laser"], ["nothing"]])
def test_scores_match_the_formula(query):
    keys, scores = build().score(query)
    assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(reference(DOCS, query), rel=1e-5)


@pytest.mark.parametrize("query", [["vacuum"], ["alarm", "vacuum", "vacuum"], ["laser", "drop"]])
def test_bm25l_scores_match_the_formula_and_stay_normalisable(query):
    idx = build(delta=0.5)
    keys, scores = idx.score(query)
    assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(reference(DOCS, query, delta=0.5), rel=1e-5)
    _, norm = idx.score(query, normalize=True)
    assert norm.max() <= 1.0 + 1e-6


def test_bm25l_lifts_a_long_document_that_matches_more_of_the_query():
    # A long section holding both query terms once against a short one holding one term: classic
    # BM25's length normalisation ranks the short one first, BM25L's shifted tf does not.
    docs = {1: ["remote", "pair"] + [f"filler{i}" for i in range(40)], 2: ["remote", "battery"],
            3: ["tv", "power"], 4: ["menu", "setting"]}
    query = ["remote", "pair"]
    plain = dict(zip(*map(np.ndarray.tolist, build(docs).score(query))))
    shifted = dict(zip(*map(np.ndarray.tolist, build(docs, delta=0.5).score(query))))
    assert plain[2] > plain[1] and shifted[1] > shifted[2]


def test_search_orders_best_first_and_respects_k():
    keys, scores = build().search(["vacuum", "alarm"], k=2)
    assert keys.tolist() == [1, 4] or keys.tolist()[0] == 1
    assert len(keys) == 2 and scores[0] >= scores[1]


def test_update_replaces_the_document():
    idx = build()
    idx.add([2], [["laser", "alignment"]])
    assert 2 not in idx.search(["robot"], k=5)[0].tolist()
    assert 2 in idx.search(["alignment"], k=5)[0].tolist()
    assert len(idx) == 4


def test_delete_removes_and_updates_statistics():
    idx = build()
    assert idx.delete([1, 99]) == 1
    remaining = {k: v for k, v in DOCS.items() if k != 1}
    keys, scores = idx.score(["vacuum", "alarm"])
    assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(reference(remaining, ["vacuum", "alarm"]), rel=1e-5)


def test_compaction_keeps_scores():
    idx = build()
    idx.delete([3])
    idx.add([5], [["vacuum", "pump", "noise"]])
    before = idx.score(["vacuum", "pump"])
    idx.compact()
    after = idx.score(["vacuum", "pump"])
    assert dict(zip(*[a.tolist() for a in before])) == pytest.approx(dict(zip(*[a.tolist() for a in after])))


def test_many_incremental_adds_equal_one_batch():
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(50)]
    docs = {i: list(rng.choice(vocab, size=rng.integers(1, 12))) for i in range(1, 3000)}
    batch = build(docs)
    incremental = BM25Index()
    for key, doc in docs.items():  # crosses the automatic compaction threshold several times
        incremental.add([key], [doc])
    q = ["t1", "t7", "t7", "t30"]
    a, b = batch.score(q), incremental.score(q)
    assert dict(zip(*[x.tolist() for x in a])) == pytest.approx(dict(zip(*[x.tolist() for x in b])), rel=1e-5)


def test_allow_mask_filters_results():
    keys, _ = build().search(["alarm"], k=5, allow=lambda ks: ks != 1)
    assert keys.tolist() == [2]


def test_normalised_scores_are_between_0_and_1():
    _, scores = build().search(["vacuum", "pump", "alarm", "e1023"], k=5, normalize=True)
    assert scores.max() <= 1.0 and scores.min() > 0


def test_save_and_load_round_trip(tmp_path):
    idx = build()
    idx.delete([4])
    idx.add([6], [["wafer", "chipping"]])
    idx.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25", k1=1.2, b=0.75)
    for q in (["alarm"], ["wafer"], ["vacuum", "leak"]):
        a, b = idx.score(q), loaded.score(q)
        assert dict(zip(*[x.tolist() for x in a])) == pytest.approx(dict(zip(*[x.tolist() for x in b])))
    assert len(loaded) == len(idx) == 4


def test_bulk_add_equals_incremental_adds_and_handles_repeated_keys():
    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(300)]
    docs = {i: list(rng.choice(vocab, size=rng.integers(1, 30))) for i in range(1, 2501)}
    bulk = BM25Index()
    bulk.add([5, 5], [["stale"], ["fresh"]])  # a key repeated in one call: the last wins
    bulk.add(list(docs), list(docs.values()))  # bulk path, replaces key 5 again
    small = BM25Index()
    for key, doc in docs.items():
        small.add([key], [doc])
    assert len(bulk) == len(small) == 2500
    assert bulk.search(["stale"], k=5)[0].tolist() == [] and bulk.search(["fresh"], k=5)[0].tolist() == []
    for q in (["w1"], ["w2", "w3", "w3"], ["w299", "w0"]):
        a, b = bulk.score(q), small.score(q)
        assert dict(zip(*[x.tolist() for x in a])) == pytest.approx(dict(zip(*[x.tolist() for x in b])), rel=1e-5)


def test_streamed_batches_equal_one_add_and_the_formula():
    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(50)]
    docs = {i: list(rng.choice(vocab, size=rng.integers(1, 12))) for i in range(1, 301)}
    keys = list(docs)
    streamed = BM25Index()
    streamed.add([7], [["old", "w1"]])  # already indexed: the stream replaces it
    batches = [(keys[i:i + 64], [docs[k] for k in keys[i:i + 64]]) for i in range(0, len(keys), 64)]
    batches.append(([9], [["again"]]))  # repeated later in the stream: the later one wins
    assert streamed.add_batches(iter(batches)) == len(keys) + 1
    expected = {**docs, 9: ["again"]}
    assert len(streamed) == len(expected) == 300
    assert streamed.search(["old"], k=3)[0].tolist() == []
    for q in (["w1"], ["w2", "w3"], ["again"], ["w49", "w0", "w0"]):
        keys_, scores = streamed.score(q)
        assert dict(zip(keys_.tolist(), scores.tolist())) == pytest.approx(reference(expected, q), rel=1e-5)


def test_save_keeps_the_delta_and_deletions_and_writes_the_state_as_captured(tmp_path):
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(40)]
    docs = {i: list(rng.choice(vocab, size=rng.integers(1, 10))) for i in range(1, 1201)}
    idx = BM25Index()
    idx.add(list(docs), list(docs.values()))  # bulk: main segment
    for key in (1201, 1202):  # small adds: delta, with a term the main segment has never seen
        idx.add([key], [["fresh", "w1"]])
        docs[key] = ["fresh", "w1"]
    idx.delete([5, 1202])
    del docs[5], docs[1202]
    assert idx._delta  # the save below must not need a compaction
    state = idx.state()
    idx.add([9999], [["later"]])  # after the capture: not in the files
    idx.delete([7])
    BM25Index.write(tmp_path / "bm25", state)
    loaded = BM25Index.load(tmp_path / "bm25", k1=1.2, b=0.75)
    assert len(loaded) == len(docs) == 1200 and 7 in loaded and 9999 not in loaded and 5 not in loaded
    for q in (["fresh"], ["w1", "w2"], ["w39"], ["later"]):
        keys, scores = loaded.score(q)
        assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(reference(docs, q), rel=1e-5)
    loaded.add([5], [["w3"]])  # a loaded index keeps working incrementally
    assert loaded.search(["w3"], k=2000)[0].tolist().count(5) == 1


def test_select_terms_keeps_the_most_distinctive_and_the_unindexed():
    idx = build()
    query = ["alarm", "alarm", "laser", "vacuum", "unseen"]
    # idf: laser (1 doc) > vacuum (2 docs) = alarm (2 docs); alarm counts twice, so it outweighs vacuum
    assert idx.select_terms(query, 2) == ["alarm", "alarm", "laser", "unseen"]
    assert idx.select_terms(query, 3) == query and idx.select_terms(query, 0) == query


_VOCAB = [f"t{i}" for i in range(12)]
_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(st.integers(0, 30), st.lists(st.sampled_from(_VOCAB), min_size=1,
                                                                                   max_size=6)), min_size=1, max_size=4)),
    st.tuples(st.just("bulk"), st.lists(st.tuples(st.integers(0, 30), st.lists(st.sampled_from(_VOCAB), min_size=1,
                                                                                    max_size=6)), min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
    st.tuples(st.just("compact"), st.none()),
    st.tuples(st.just("reload"), st.none()),
), min_size=1, max_size=25)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_any_sequence_of_writes_saves_and_loads_scores_like_the_formula(tmp_path, ops):
    """Adds (delta and bulk paths), deletes, compactions and save/load round trips, in any order,
    always score exactly as BM25 over the documents that should be there."""
    idx, docs = BM25Index(), {}
    for i, (op, arg) in enumerate(ops):
        if op == "add":
            for key, doc in arg:
                idx.add([key], [doc])
                docs[key] = doc
        elif op == "bulk":
            idx.add_batches([([k for k, _ in arg], [d for _, d in arg])])
            docs.update(dict(arg))
        elif op == "delete":
            idx.delete(arg)
            for key in arg:
                docs.pop(key, None)
        elif op == "compact":
            idx.compact()
        else:
            idx.save(tmp_path / f"b{i}")
            idx = BM25Index.load(tmp_path / f"b{i}", k1=1.2, b=0.75)
    assert len(idx) == len(docs) and all(k in idx for k in docs)
    if docs:
        for q in (["t0"], ["t1", "t2", "t2"], _VOCAB[5:9]):
            keys, scores = idx.score(q)
            assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(reference(docs, q), rel=1e-4)
            _assert_score_keys_is_score(idx, q)


def _assert_score_keys_is_score(idx, query):
    """score_keys gives each asked key what score gives it (to float32 rounding), 0 when score
    leaves it out; unknown, negative and repeated keys included."""
    for normalize in (False, True):
        keys, scores = idx.score(query, normalize=normalize)
        want = dict(zip(keys.tolist(), scores.tolist()))
        asked = [*sorted(want, reverse=True), -1, 10_000, *list(want)[:2], 0, 3]
        got = idx.score_keys(query, asked, normalize=normalize)
        assert got.dtype == np.float32 and got.shape == (len(asked),)
        assert got.tolist() == pytest.approx([want.get(k, 0.0) for k in asked], rel=1e-6, abs=0)


@pytest.mark.parametrize("query", [["vacuum"], ["alarm", "vacuum", "vacuum"], ["laser", "drop", "unseen"], []])
def test_score_keys_is_score_of_those_keys_only(query):
    idx = build(delta=0.5)
    _assert_score_keys_is_score(idx, query)
    idx.add([9, 2], [["vacuum", "laser"], ["alarm"]])  # in the delta, and a replaced document
    idx.delete([3])
    _assert_score_keys_is_score(idx, query)
    assert idx.score_keys(query, []).shape == (0,)
