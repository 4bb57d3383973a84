"""The Milvus backend's own promises (its settings, escaping, scoring); the behaviour every
backend shares is in tests/test_backend_contract.py."""

from __future__ import annotations

import pytest

from caselink.config import load_settings
from caselink.errors import ConfigError


def test_backend_settings_come_from_the_environment_and_the_token_is_never_shown(tmp_path):
    s = load_settings(env={"CASELINK_BACKEND": "milvus", "CASELINK_BACKEND_URI": "http://10.0.0.5:19530",
                           "CASELINK_BACKEND_TOKEN": "root:s3cret"})
    assert (s.backend.kind, s.backend.uri, s.backend.secret()) == ("milvus", "http://10.0.0.5:19530", "root:s3cret")
    assert "s3cret" not in repr(s) and "s3cret" not in s.model_dump_json()
    secret = tmp_path / "token"
    secret.write_text("key-from-a-file\n", encoding="utf-8")
    assert load_settings(env={"CASELINK_BACKEND_TOKEN_FILE": str(secret)}).backend.secret() == "key-from-a-file"
    assert load_settings(env={}).backend.kind == "local"


@pytest.mark.parametrize("env, field", [({"CASELINK_BACKEND": "mongo"}, "backend.kind"),
                                        ({"CASELINK_BACKEND_COLLECTION": "a-b"}, "backend.collection"),
                                        ({"CASELINK_BACKEND_TOKEN": "x", "CASELINK_BACKEND_TOKEN_FILE": "/t"}, "backend")])
def test_bad_backend_settings_are_refused_naming_the_setting(env, field):
    with pytest.raises(ConfigError, match=f"setting '{field}'"):
        load_settings(env=env)


# -- the backend against a real Milvus ---------------------------------------------------------

import itertools  # noqa: E402
import os  # noqa: E402
from datetime import date  # noqa: E402

import numpy as np  # noqa: E402

from indexing.backend import Entry  # noqa: E402
from indexing.bm25 import BM25Index  # noqa: E402
from indexing.facets import Filters  # noqa: E402
from indexing.milvus_backend import MilvusBackend  # noqa: E402
from indexing.milvus_schema import filter_expression, term_id  # noqa: E402

_names = itertools.count()
DIM = 8


def _vec(*hot: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[list(hot)] = 1.0
    return v / np.linalg.norm(v)


DOCS = [
    Entry("C-1", _vec(0), ["dry", "pump", "trip", "e1023", "e1023", "vacuum"], ("e1023",), "case",
          product="HX-Etch 500", status="closed", created=date(2024, 3, 2)),
    Entry("C-2", _vec(0, 1), ["dry", "pump", "overheat", "filter", "water", "water", "cooling"], (), "case",
          product="HX-Etch 500", status="open", created=date(2024, 5, 10)),
    Entry("PO-1", _vec(1), ["pump", "trip", "firmware", "controller"], (), "problem", product="hx-etch 500",
          status="Investigating", created=date(2025, 1, 5)),
    Entry("SOP#1", _vec(2), ["replace", "pump", "filter", "procedure", "step", "step", "torque", "vacuum",
                             "leak", "check", "helium", "valve"], (), "sop", module="Vacuum"),
    Entry("X-1", _vec(3), ["laser", "power", "drop", "a4410"], ("a4410",), "case", product='a" or 1==1',
          created=date(2023, 1, 1)),
]


@pytest.fixture
def milvus(milvus_uri, tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                             backend__collection=f"t{next(_names)}")
    backend = MilvusBackend.open(settings, DIM)
    yield backend
    backend.close()


def test_keyword_scores_are_caselinks_normalised_bm25l(milvus):
    milvus.write(DOCS, seq=5)
    local = BM25Index(k1=1.2, b=0.75, delta=0.5)
    local.add(range(len(DOCS)), [d.terms for d in DOCS])
    for query in (["pump", "trip"], ["e1023", "unknownterm"], ["filter", "water", "pump", "pump"]):
        keys, want = local.score(query, normalize=True)
        hits = milvus.search_keyword(query, 10)
        got = dict(zip(hits.ids, hits.scores.tolist()))
        assert got == pytest.approx({DOCS[k].id: s for k, s in zip(keys.tolist(), want.tolist())}, rel=1e-5)
        assert list(hits.scores) == sorted(hits.scores, reverse=True)
        ids = [d.id for d in DOCS] + ["nope"]
        assert milvus.score_keyword(query, ids) == pytest.approx([got.get(i, 0.0) for i in ids], rel=1e-5)
    assert milvus.term_stats(["pump", "e1023", "nope"]).df.tolist() == [4, 1, 0]
    assert milvus.term_stats(["pump"]).n_docs == 5


def test_a_keyword_search_started_early_gives_what_the_search_gives_and_raises_what_it_raises(milvus):
    milvus.write(DOCS, seq=1)
    f = Filters(product=("hx-etch 500",))
    for args in ((["pump", "trip"], 10), (["pump", "filter"], 2, f, {"C-2"}), (["nothing"], 5)):
        soon = [milvus.search_keyword_soon(*args) for _ in range(3)]  # under way at once
        want = milvus.search_keyword(*args)
        for future in soon:
            got = future.result(timeout=60)
            assert (got.ids, got.scores.tolist(), got.codes) == (want.ids, want.scores.tolist(), want.codes)
    from caselink.errors import IndexNotReady

    milvus.milvus.client.drop_collection(milvus.collection)  # Milvus refuses the search: caselink's error
    with pytest.raises(IndexNotReady, match="failed to search"):
        milvus.search_keyword_soon(["pump"], 5).result(timeout=60)


def test_dense_search_filters_exclusions_and_codes(milvus):
    milvus.write(DOCS, seq=1)
    hits = milvus.search_dense(_vec(0), 3)
    assert hits.ids[:2] == ["C-1", "C-2"] and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert hits.codes[0] == ("e1023",)
    f = Filters(product=("hx-ETCH 500",))
    assert set(milvus.search_dense(_vec(0), 10, f).ids) == {"C-1", "C-2", "PO-1"}
    assert set(milvus.search_dense(_vec(0), 10, f, exclude={"C-1"}).ids) == {"C-2", "PO-1"}
    assert set(milvus.search_dense(_vec(0), 10, Filters(kind=("case",), open_only=True)).ids) == {"C-2", "X-1"}
    dated = Filters(created_from=date(2024, 4, 1), created_to=date(2024, 12, 31))
    assert milvus.search_dense(_vec(0), 10, dated).ids == ["C-2"]
    assert milvus.search_dense(_vec(0), 10, Filters(module=("vacuum",))).ids == ["SOP#1"]
    assert milvus.search_keyword(["pump"], 10, Filters(kind=("sop",))).ids == ["SOP#1"]
    assert milvus.admits(["C-1", "C-2", "SOP#1", "gone"], Filters(kind=("case",)), exclude={"C-2"}) == {"C-1"}


def test_an_ivf_dense_index_is_built_in_place_and_searched_with_the_configured_lists(milvus_uri, tmp_path):
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((2000, DIM)).astype(np.float32)  # Milvus indexes segments from 1,024 rows
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    entries = [Entry(f"R-{i}", v, ["term"], (), "case") for i, v in enumerate(vecs)]
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    name = f"t{next(_names)}"

    def opened(**backend):
        s = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                          backend__collection=name, **{f"backend__{k}": v for k, v in backend.items()})
        return MilvusBackend.open(s, DIM)

    flat = opened()
    flat.write(entries, seq=1)
    flat.persist()  # sealed: Milvus indexes sealed segments and searches a growing one exhaustively
    exact = [flat.search_dense(q, 20).ids for q in queries]
    flat.close()

    def recall(backend):
        return np.mean([len(set(backend.search_dense(q, 20).ids) & set(e)) / 20 for q, e in zip(queries, exact)])

    every = opened(dense_index="IVF_FLAT", dense_nlist=32, dense_nprobe=32)
    try:
        assert every.describe()["factory"] == "milvus:FLAT"  # opened, not rebuilt
        assert every.reindex() and not every.reindex()
        assert every.describe()["dense_index"] == "IVF_FLAT (nlist 32)" and every.count() == 2000
        # every list searched: exact in FAISS; Milvus Lite's server gives 0.975 here
        assert recall(every) >= 0.95
    finally:
        every.close()
    one = opened(dense_index="IVF_FLAT", dense_nlist=32, dense_nprobe=1)
    try:
        assert not one.reindex()  # the same index: nprobe is a search setting
        # One list of 32 searched. Milvus's C++ core searches segments this small exhaustively (it
        # indexes sealed segments of its own size; at 1M records IVF_FLAT is 10x faster than FLAT there).
        if not os.environ.get("CASELINK_TEST_MILVUS_CORE"):
            assert recall(one) < 0.5
    finally:
        one.close()


def test_a_filter_value_is_data_never_filter_syntax(milvus):
    milvus.write(DOCS, seq=1)
    evil = 'a" or 1==1'
    assert milvus.search_dense(_vec(0), 10, Filters(product=(evil,))).ids == ["X-1"]
    assert milvus.search_dense(_vec(0), 10, Filters(product=('x" or kind != "',))).ids == []
    assert milvus.admits(["C-1", 'C-1" or id != "'], None) == {"C-1"}
    assert filter_expression(Filters(product=('\\"',))) == 'product in ["\\\\\\""]'


def test_an_attribute_filter_quotes_key_and_values_and_a_collection_without_them_is_refused(milvus_uri, tmp_path,
                                                                                          monkeypatch):
    f = Filters(attributes=Filters.attribute_pairs({"customer": ['ACME" or 1==1', "Globex"], "site": "F12"}))
    assert filter_expression(f) == ('(attributes["customer"] == "acme\\" or 1==1" or attributes["customer"] == '
                                    '"globex") and (attributes["site"] == "f12")')
    import indexing.milvus_collections as collections
    import indexing.milvus_schema as schema
    from caselink.errors import IndexFormatError

    settings = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                             backend__collection=f"t{next(_names)}")
    for module in (schema, collections):  # a collection as created before attributes
        monkeypatch.setattr(module, "ATTRIBUTES", "not_attributes")
    MilvusBackend.open(settings, DIM).close()
    monkeypatch.undo()
    with pytest.raises(IndexFormatError, match="created before records had attributes") as exc:
        MilvusBackend.open(settings, DIM)
    assert "caselink index --rebuild" in exc.value.hint
    MilvusBackend.open(settings, DIM, fresh=True).close()  # a rebuild recreates it with the field


def test_writes_are_idempotent_searchable_at_once_and_deletes_drop_the_terms(milvus):
    milvus.write(DOCS[:2], seq=1)
    milvus.write(DOCS[:2], seq=1)
    assert milvus.count() == 2 and milvus.term_stats(["pump"]).df.tolist() == [2]
    changed = Entry("C-2", _vec(3), ["laser", "only"], (), "case")
    milvus.write([changed], deletes=["C-1", "never-there"], seq=2)
    assert milvus.count() == 1 and milvus.search_keyword(["laser"], 5).ids == ["C-2"]
    assert milvus.term_stats(["pump", "laser"]).df.tolist() == [0, 1]
    assert milvus.search_keyword(["pump"], 5).ids == [] and milvus.search_dense(_vec(0), 5).ids == ["C-2"]
    milvus.write([], deletes=["C-2"], seq=3)
    assert milvus.count() == 0 and milvus.search_keyword(["laser"], 5).ids == []


def test_applied_seq_survives_a_reopen_and_statistics_of_an_older_collection_are_counted_into_the_store(
        milvus, milvus_uri, tmp_path):
    milvus.write(DOCS, seq=7)
    milvus.write([], seq=3)  # never backwards
    assert milvus.applied_seq() == 7
    milvus.persist()
    # a collection written by format 1 (statistics in Milvus, none in the store): opening it counts them
    milvus.milvus.save_meta({**milvus.milvus.read_meta(), "format": 1})
    milvus.store.transaction(lambda tx: tx.reset_terms())
    assert milvus.term_stats(["pump"]).n_docs == 0
    settings = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                             backend__collection=milvus.collection)
    again = MilvusBackend.open(settings, DIM)
    try:
        assert again.applied_seq() == 7 and again.count() == 5
        assert again.term_stats(["pump", "e1023"]).df.tolist() == [4, 1]
        assert again.term_stats(["pump"]).n_docs == 5
        assert again.search_keyword(["e1023"], 3).ids[0] == "C-1"
        assert "token" not in again.describe() and again.describe()["records"] == 5
    finally:
        again.close()
    with pytest.raises(Exception, match="8-d.*4-d|4-d"):
        MilvusBackend.open(settings, 4)


def test_document_frequencies_live_in_the_store_and_a_write_that_does_not_commit_leaves_a_marker(milvus):
    milvus.write(DOCS, seq=2)
    df, corpus = milvus.store.term_stats([term_id("pump"), term_id("laser")])
    assert df == {term_id("pump"): 4, term_id("laser"): 1}
    assert (corpus.n, corpus.total_len) == (5, float(sum(len(d.terms) for d in DOCS)))
    assert milvus.unfinished() == {}

    def fails(tx):
        milvus.write([Entry("X-1", _vec(3), ["laser", "laser", "gone"], (), "case")], ["C-1"], seq=3, tx=tx)
        raise RuntimeError("the store's commit failed")

    with pytest.raises(RuntimeError):
        milvus.store.transaction(fails)
    # the store rolled back its statistics; Milvus took the write, and its marker says which ids to rewrite
    assert milvus.term_stats(["pump", "gone"]).df.tolist() == [4, 0]
    assert sorted(*milvus.unfinished().values()) == ["C-1", "X-1"]
    milvus.write([DOCS[0], DOCS[4]], seq=3)  # what the service does: rewrite them from the store
    milvus.finished(list(milvus.unfinished()))
    assert milvus.unfinished() == {} and milvus.count() == 5
    assert milvus.search_keyword(["laser"], 5).ids == ["X-1"]


def test_a_build_from_batches_scores_with_the_final_mean_length_and_a_write_that_drifts_reweighs(milvus_uri, tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                             backend__collection=f"t{next(_names)}")
    backend = MilvusBackend.build(settings, dim=DIM, total=len(DOCS), batches=[DOCS[:1], DOCS[1:]], seq=4)
    try:
        local = BM25Index(k1=1.2, b=0.75, delta=0.5)
        local.add(range(len(DOCS)), [d.terms for d in DOCS])
        keys, want = local.score(["pump", "vacuum"], normalize=True)
        hits = backend.search_keyword(["pump", "vacuum"], 10)
        assert dict(zip(hits.ids, hits.scores.tolist())) == pytest.approx(
            {DOCS[k].id: s for k, s in zip(keys.tolist(), want.tolist())}, rel=1e-5)
        assert backend.applied_seq() == 4
        long = Entry("L-1", _vec(4), ["pump"] + [f"w{i}" for i in range(60)], (), "case")
        backend.write([long], deletes=["C-1"], seq=5)  # the mean length moves far: the write re-weighs
        local.delete([0])
        local.add([9], [long.terms])
        keys, want = local.score(["pump", "trip"], normalize=True)
        hits = backend.search_keyword(["pump", "trip"], 10)
        ids = {0: "C-1", 1: "C-2", 2: "PO-1", 3: "SOP#1", 4: "X-1", 9: "L-1"}
        assert dict(zip(hits.ids, hits.scores.tolist())) == pytest.approx(
            {ids[k]: s for k, s in zip(keys.tolist(), want.tolist())}, rel=1e-4)
    finally:
        backend.close()


def test_a_build_told_the_term_total_writes_each_row_once_with_the_weights_of_the_two_write_build(
        milvus_uri, tmp_path, milvus_upserts):
    written = milvus_upserts
    local = BM25Index(k1=1.2, b=0.75, delta=0.5)
    local.add(range(len(DOCS)), [d.terms for d in DOCS])
    queries = (["pump", "vacuum"], ["step", "filter", "e1023"], ["laser", "pump", "pump"])
    total = sum(len(d.terms) for d in DOCS)
    built = {}
    # None: today's path (first batch's mean, re-weighed at the end); total - 7: a count that no
    # longer matches the entries (records written between the passes), which must re-weigh too.
    for how, term_total in (("once", total), ("twice", None), ("stale count", total - 7)):
        settings = load_settings(env={}, data_dir=tmp_path / how, backend__kind="milvus", backend__uri=milvus_uri,
                                 backend__collection=f"t{next(_names)}")
        backend = MilvusBackend.build(settings, dim=DIM, total=len(DOCS), batches=[DOCS[:2], DOCS[2:]], seq=3,
                                      term_total=term_total)
        try:
            weights = {r["id"]: r["kw"] for batch in backend.milvus.scan(["id", "kw"]) for r in batch}
            scores = [dict(zip(h.ids, h.scores.tolist())) for h in (backend.search_keyword(q, 10) for q in queries)]
            built[how] = (written.get(backend.collection, 0), weights, scores)
        finally:
            backend.close()
    assert [built[how][0] for how in ("once", "twice", "stale count")] == [5, 10, 10]
    assert built["once"][1] == built["twice"][1] == built["stale count"][1]  # the same float32 weights
    assert built["once"][2] == built["twice"][2] == built["stale count"][2]
    for query, got in zip(queries, built["once"][2]):
        keys, want = local.score(query, normalize=True)
        assert got == pytest.approx({DOCS[k].id: s for k, s in zip(keys.tolist(), want.tolist())}, rel=1e-5)


class _Side:
    """The service's side of a snapshot, as the seam's Sidecar protocol hands it over."""

    def capture(self):
        return {"model": {"id": "test", "dim": DIM}}, lambda folder: (folder / "side.txt").write_text("x")


def test_persist_publishes_the_services_side_naming_the_collection_and_load_reopens_it(milvus_uri, tmp_path):
    from indexing.index_dir import IndexDir

    settings = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                             backend__collection=f"t{next(_names)}")
    built = MilvusBackend.build(settings, dim=DIM, total=2, batches=[DOCS[:2]], seq=3, sidecar=_Side())
    built.persist()
    built.close()
    snap, manifest = IndexDir(settings.index_root).read_manifest()
    assert (snap / "side.txt").read_text() == "x" and manifest["change_seq"] == 3
    assert manifest["backend"] == "milvus"
    assert manifest["milvus"] == {"collection": settings.backend.collection, "uri": milvus_uri, "dim": DIM}
    again = MilvusBackend.load(settings, snap, manifest)
    try:
        assert again.count() == 2 and again.applied_seq() == 3
    finally:
        again.close()
    other = settings.model_copy(update={"backend": settings.backend.model_copy(update={"collection": "elsewhere"})})
    with pytest.raises(Exception, match="elsewhere"):
        MilvusBackend.load(other, snap, manifest)
