"""The search-backend contract (indexing/backend.py), one suite every backend passes.

Each backend supplies two functions in :data:`BACKENDS`: ``make(settings, dim)`` for an empty
backend and ``reopen(settings)`` for the one last persisted. The tests speak only the Protocol:
record ids, :class:`Filters`, raw scores per side. Vectors are small random unit vectors, so the
suite needs no encoder and runs in seconds.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from caselink.config import load_settings
from indexing.backend import TIE_TOLERANCE, Entry, SearchBackend, settle_ties
from indexing.backends import build_backend, open_backend
from indexing.facets import Filters
from indexing.index_dir import IndexDir

DIM = 8


def _make_local(settings, dim):
    return build_backend(settings, dim=dim, total=0, batches=[], sample=np.zeros((0, dim), np.float32), seq=0)


def _reopen_local(settings):
    return open_backend(settings, snapshot=IndexDir(settings.index_root).read_manifest())


# Milvus goes through the same factory; its settings (below) point at the session's server.
BACKENDS = {"local": (_make_local, _reopen_local), "milvus": (_make_local, _reopen_local)}


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(rid: str, seed: int, terms: list[str], *, kind="case", codes=(), product="", status="",
          created: date | None = None, attributes: dict | None = None) -> Entry:
    return Entry(id=rid, vector=_unit(seed), terms=terms, codes=tuple(sorted(codes)), kind=kind, product=product,
                 status=status, created=created, attributes=attributes or {})


# A value full of what filter syntax is made of: it must be matched as data, never parsed.
QUOTED = 'Fab "12" \\ or 1==1 ] and [\'x\']'


ENTRIES = [
    entry("C-1", 1, ["vacuum", "pump", "stop", "e1023"], codes=["e1023"], product="HX-Etch 500", status="closed",
          created=date(2024, 3, 2), attributes={"customer": "ACME Semi", "site": QUOTED}),
    entry("C-2", 2, ["vacuum", "leak", "chamber"], product="HX-Etch 500", status="open", created=date(2025, 1, 5),
          attributes={"customer": "Globex", "site": "F14", "sw_version": "4.2.1"}),
    entry("PO-1", 3, ["pump", "overheat", "e1023"], kind="problem", codes=["e1023"], status="investigating",
          attributes={"customer": "acme semi"}),
    entry("SOP-1#1", 4, ["replace", "pump", "filter"], kind="sop", product="HX-Litho 3000"),
]


@pytest.fixture(params=sorted(BACKENDS))
def name(request):
    return request.param


@pytest.fixture
def settings(tmp_path, name, request):
    if name == "milvus":  # the session's Milvus server (throwaway/milvus.py), a collection per test
        return load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus",
                             backend__uri=request.getfixturevalue("milvus_uri"),
                             backend__collection="contract_" + request.node.name.split("[")[0][-40:])
    return load_settings(env={}, data_dir=tmp_path / "data")


@pytest.fixture
def backend(name, settings):
    b = BACKENDS[name][0](settings, DIM)
    b.write(ENTRIES, seq=4)
    yield b
    b.close()


def test_it_is_a_search_backend(backend, name):
    assert isinstance(backend, SearchBackend) and backend.name == name
    assert backend.count() == len(ENTRIES)
    assert backend.describe()["backend"] == name


def test_a_write_is_searchable_when_it_returns_with_raw_scores(backend):
    hits = backend.search_dense(_unit(2), 2)
    assert hits.ids[0] == "C-2" and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(hits.scores) == sorted(hits.scores, reverse=True)
    kw = backend.search_keyword(["leak", "chamber"], 10)
    assert kw.ids == ["C-2"] and 0.0 < kw.scores[0] <= 1.0
    assert dict(zip(backend.search_keyword(["e1023"], 10).ids, backend.search_keyword(["e1023"], 10).codes)) == {
        "C-1": ("e1023",), "PO-1": ("e1023",)}


def _near(v: np.ndarray, cos_gap: float) -> np.ndarray:
    """A unit vector whose cosine with unit ``v`` is ``1 - cos_gap`` (not the same float32 bits)."""
    other = np.roll(v, 1) - v * float(np.dot(np.roll(v, 1), v))
    w = v + np.sqrt(2 * cos_gap) * other / np.linalg.norm(other)
    return (w / np.linalg.norm(w)).astype(np.float32)


def test_ties_come_in_record_id_order_on_both_sides(backend):
    """Records with word-for-word the same text share one vector and one keyword score (the
    TV manual's and Hadoop's duplicates): every backend orders them by id, whatever order they
    were written in, and a cut through them at k keeps the lowest ids."""
    twins = ["T-3", "T-1", "T-4", "T-2"]  # written out of id order, in two writes
    backend.write([entry(t, 11, ["gasket", "seal"]) for t in twins[:2]], seq=5)
    backend.write([entry(t, 11, ["gasket", "seal"]) for t in twins[2:]], seq=6)
    # Scores 1e-6 apart: what two engines' float32 sums give for one vector, still a tie.
    v = _unit(11)
    backend.write([Entry(id="T-0", vector=_near(v, 1e-6), terms=["gasket", "seal"], codes=(), kind="case")], seq=7)
    tied = ["T-0", "T-1", "T-2", "T-3", "T-4"]
    for k in (2, 3, 5, 20):
        dense = backend.search_dense(v, k)
        assert dense.ids[:5] == tied[:k], k
        keyword = backend.search_keyword(["seal", "gasket"], k)
        assert keyword.ids == tied[:k], k
        # One tie group, one score: fusion then sees exact ties and breaks them by id as well.
        assert len(set(dense.scores[:5].tolist())) == 1 and len(set(keyword.scores.tolist())) == 1
    dense = backend.search_dense(v, 20)
    assert list(dense.scores) == sorted(dense.scores, reverse=True) and len(dense) == len(ENTRIES) + 5
    assert backend.search_dense(v, 3, exclude={"T-1"}).ids == ["T-0", "T-2", "T-3"]


def test_tie_groups_are_chains_of_close_scores_not_rounding_buckets():
    eps = TIE_TOLERANCE
    # Either side of a rounding edge (0.5), less than the tolerance apart: one group, id order.
    order, scores = settle_ties(["b", "a"], np.array([0.5 + eps / 4, 0.5 - eps / 4]), 2)
    assert order.tolist() == [1, 0] and scores.tolist() == [np.float32(0.5 + eps / 4)] * 2
    # Farther apart than the tolerance: score order stands whatever the ids.
    order, _ = settle_ties(["b", "a", "c"], np.array([0.5, 0.5 - 3 * eps, 0.9]), 3)
    assert order.tolist() == [2, 0, 1]
    order, _ = settle_ties(["z", "y", "x"], np.array([0.3, 0.7, 0.3]), 1)
    assert order.tolist() == [1]
    assert settle_ties([], np.zeros(0), 5)[0].tolist() == []


def test_writes_are_idempotent_and_updates_replace(backend):
    before = backend.search_keyword(["pump"], 10)
    backend.write(ENTRIES[:2], deletes=["NOT-THERE"], seq=4)
    assert backend.count() == len(ENTRIES)
    again = backend.search_keyword(["pump"], 10)
    assert again.ids == before.ids and np.allclose(again.scores, before.scores)
    backend.write([entry("C-2", 2, ["robot", "arm"], product="HX-Etch 500")], seq=5)
    assert backend.search_keyword(["leak"], 10).ids == [] and backend.search_keyword(["robot"], 10).ids == ["C-2"]
    assert backend.count() == len(ENTRIES)


def test_a_delete_leaves_both_sides(backend):
    backend.write(deletes=["C-2"], seq=5)
    assert "C-2" not in backend.search_dense(_unit(2), 10).ids
    assert backend.search_keyword(["leak"], 10).ids == []
    assert backend.count() == len(ENTRIES) - 1
    assert backend.score_keyword(["leak"], ["C-2"]).tolist() == [0.0]


def test_filters_and_exclusions_apply_to_both_sides(backend):
    everything = {e.id for e in ENTRIES}
    cases = {"kind": ("case",)}
    for f, want in [(Filters(**cases), {"C-1", "C-2"}),
                    (Filters(product=("hx-etch 500",)), {"C-1", "C-2"}),  # case-insensitive
                    (Filters(kind=("problem", "sop")), {"PO-1", "SOP-1#1"}),
                    (Filters(created_from=date(2024, 6, 1)), {"C-2"}),
                    (Filters(created_to=date(2024, 6, 1)), {"C-1"}),  # undated records never match a range
                    (Filters(open_only=True), {"C-2", "PO-1", "SOP-1#1"}),
                    (Filters(product=("never seen",)), set())]:
        assert set(backend.search_dense(_unit(9), 10, f).ids) == want, f
        assert set(backend.search_keyword(["pump", "vacuum", "leak", "filter"], 10, f).ids) == want, f
        assert backend.admits(everything | {"NOT-THERE"}, f) == want, f
    assert set(backend.search_dense(_unit(9), 10, exclude={"C-1", "NOT-THERE"}).ids) == everything - {"C-1"}
    assert backend.search_keyword(["e1023"], 10, Filters(**cases), exclude=["C-1"]).ids == []
    assert backend.admits(["C-1", "C-2"], exclude=["C-2"]) == {"C-1"}


def _attrs(**wanted) -> Filters:
    return Filters(attributes=Filters.attribute_pairs(wanted))


def test_attribute_filters_apply_to_both_sides(backend):
    everything = {e.id for e in ENTRIES}
    for f, want in [(_attrs(customer="ACME SEMI"), {"C-1", "PO-1"}),  # values case-insensitive
                    (_attrs(customer=["globex", "nobody"]), {"C-2"}),  # a list: any of
                    (_attrs(customer="ACME Semi", site=QUOTED), {"C-1"}),  # every key must hold
                    (_attrs(site=QUOTED.upper()), {"C-1"}),  # quotes, backslashes, brackets are data
                    (_attrs(site='Fab "12"'), set()),
                    (_attrs(site="F14 \" or 1==1 or \"\""), set()),
                    (_attrs(Customer="ACME Semi"), set()),  # keys are compared as written
                    (_attrs(sw_version="4.2.1"), {"C-2"}),
                    (Filters(kind=("problem",), attributes=Filters.attribute_pairs({"customer": "acme semi"})),
                     {"PO-1"}),
                    (_attrs(customer="Globex", site="never"), set())]:
        assert set(backend.search_dense(_unit(9), 10, f).ids) == want, f
        assert set(backend.search_keyword(["pump", "vacuum", "leak", "filter"], 10, f).ids) == want, f
        assert backend.admits(everything | {"NOT-THERE"}, f) == want, f


def test_attribute_changes_and_deletes_follow_writes(backend, name, settings):
    acme = _attrs(customer="acme semi")
    backend.write([entry("C-1", 1, ["vacuum", "pump"], attributes={"customer": "Initech"})], deletes=["PO-1"], seq=5)
    assert backend.admits({e.id for e in ENTRIES}, acme) == set()
    assert set(backend.search_dense(_unit(9), 10, _attrs(customer="initech")).ids) == {"C-1"}
    backend.write([entry("C-5", 7, ["pump"], attributes={"customer": "ACME Semi"})], seq=6)
    backend.persist()
    backend.close()
    again = BACKENDS[name][1](settings)
    try:  # attributes survive a reopen
        assert set(again.search_keyword(["pump", "vacuum"], 10, acme).ids) == {"C-5"}
        assert set(again.search_dense(_unit(9), 10, _attrs(customer="initech")).ids) == {"C-1"}
    finally:
        again.close()


def test_score_keyword_is_what_search_keyword_gives(backend):
    terms = ["pump", "e1023", "unseen"]
    hits = backend.search_keyword(terms, 10)
    assert len(hits) == 3
    scores = backend.score_keyword(terms, [*hits.ids, "C-2", "NOT-THERE"])
    assert np.allclose(scores[:3], hits.scores) and scores[3:].tolist() == [0.0, 0.0]


def test_term_stats_count_documents_per_term(backend):
    stats = backend.term_stats(["pump", "leak", "unseen"])
    assert stats.df.tolist() == [3, 1, 0] and stats.n_docs == len(ENTRIES)


def test_applied_seq_only_moves_forward(backend):
    assert backend.applied_seq() == 4
    backend.write(seq=9)
    backend.write([entry("C-9", 9, ["late"])], seq=7)  # an older position never moves it back
    assert backend.applied_seq() == 9


def test_persist_and_reopen_keep_records_scores_and_position(backend, name, settings):
    backend.write([entry("C-3", 5, ["robot", "wafer"], codes=["w3001"])], deletes=["SOP-1#1"], seq=6)
    dense, kw = backend.search_dense(_unit(5), 10), backend.search_keyword(["robot", "pump"], 10)
    backend.persist()
    backend.close()
    again = BACKENDS[name][1](settings)
    try:
        assert again.applied_seq() == 6 and again.count() == len(ENTRIES)
        d2, k2 = again.search_dense(_unit(5), 10), again.search_keyword(["robot", "pump"], 10)
        assert d2.ids == dense.ids and np.allclose(d2.scores, dense.scores, atol=1e-5)
        assert k2.ids == kw.ids and np.allclose(k2.scores, kw.scores) and k2.codes == kw.codes
        again.write([entry("C-4", 6, ["robot"])], seq=7)  # a reopened backend takes writes
        assert set(again.search_keyword(["robot"], 10).ids) == {"C-3", "C-4"}
    finally:
        again.close()
