"""The service end to end on a real SQLite store, real FAISS and BM25, and the real USE encoder."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from caselink.errors import (EncoderUnavailable, IndexFormatError, IndexNotReady, InvalidQuery, InvalidRecord,
                             RecordNotFound)
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS


@pytest.fixture
def svc(settings, use_encoder):
    service, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    yield service
    service.close()


def ids(resp):
    return [r.id for r in resp.results]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_each_mode_finds_the_case_the_symptom_describes(svc, mode):
    resp = svc.search(SearchQuery(text="机械手 取片 真空吸附报警 wafer pick", mode=mode, k=3))
    assert resp.path == mode
    assert ids(resp)[0] == "C-003"
    assert all(0.0 <= r.score <= 1.0 for r in resp.results)


def test_traditional_query_finds_simplified_records(svc):
    resp = svc.search(SearchQuery(text="乾泵異常停機", k=3))
    assert ids(resp)[0] in {"C-001", "C-002"}
    assert "PO-01" in ids(svc.search(SearchQuery(text="乾泵韌體缺陷 誤報過溫", k=3)))


def test_error_code_query_puts_exact_code_first(svc):
    resp = svc.search(SearchQuery(text="E1023", k=5))
    assert set(ids(resp)[:2]) == {"C-001", "SOP-VAC#2"}
    assert resp.path == "keyword" and "code" in resp.fallback_reason
    assert resp.results[0].explanation.matched_codes == ["E1023"]


def test_code_in_a_sentence_still_wins(svc):
    resp = svc.search(SearchQuery(text="曝光功率偏低 更换了 PN-7731-02 还是报警", k=3))
    assert resp.path == "hybrid"
    assert ids(resp)[0] == "C-004"
    assert "PN-7731-02".lower() in [h.lower() for h in resp.results[0].highlights]


def test_a_shown_score_passed_back_as_min_score_keeps_its_result(svc):
    results = svc.search(SearchQuery(text="干泵停机 腔体压力升高", k=10)).results
    for r in results:
        kept = ids(svc.search(SearchQuery(text="干泵停机 腔体压力升高", k=10, min_score=r.score)))
        assert r.id in kept and all(x.score >= r.score for x in results if x.id in kept)


def test_filters(svc):
    assert set(ids(svc.search(SearchQuery(text="干泵停机", kind=["sop"], k=10)))) == {"SOP-VAC#1", "SOP-VAC#2"}
    only_litho = svc.search(SearchQuery(text="报警", product=["hx-litho 3000"], k=10))
    assert only_litho.results and all(r.product == "HX-Litho 3000" for r in only_litho.results)
    dated = svc.search(SearchQuery(text="停机 报警 功率", k=10, created_from="2024-05-01", created_to="2024-12-31"))
    assert set(ids(dated)) <= {"C-002", "C-004"} and ids(dated)
    assert ids(svc.search(SearchQuery(text="报警", status=["open"], kind=["case"], k=10))) == ["C-003"]


def test_results_explain_themselves(svc):
    r = svc.search(SearchQuery(text="干泵停机 腔体压力升高", k=1)).results[0]
    assert r.id == "C-001"
    assert "干泵" in r.explanation.matched_terms
    assert r.explanation.dense_rank is not None and r.explanation.keyword_rank is not None
    assert "干泵" in r.highlights
    assert r.explanation.reason


def test_a_caller_changing_a_result_changes_nothing_the_next_search_shows(svc):
    q = SearchQuery(text="曝光功率偏低 更换了 PN-7731-02 还是报警", k=3)
    first = svc.search(q)
    top = first.results[0]
    # Results are built from records the store and the search path share between searches.
    top.error_codes.append("X-1")
    top.attributes["site"] = "nowhere"
    top.highlights.clear()
    top.explanation.matched_codes.clear()
    again = svc.search(q)
    assert again.model_dump(exclude={"timings_ms"}) != first.model_dump(exclude={"timings_ms"})
    assert "X-1" not in again.results[0].error_codes and "site" not in again.results[0].attributes
    assert again.results[0].highlights and again.results[0].explanation.matched_codes == ["PN-7731-02"]
    assert svc.records([top.id])[top.id].error_codes == again.results[0].error_codes


def test_sop_results_name_document_and_section(svc):
    r = svc.search(SearchQuery(text="E1023 冷却水流量", kind=["sop"], k=1)).results[0]
    assert (r.id, r.doc_id, r.section) == ("SOP-VAC#2", "SOP-VAC", "2. E1023 报警处理")


def test_related_excludes_itself_and_optionally_linked(svc):
    resp = svc.related("C-001", k=10)
    assert "C-001" not in ids(resp)
    assert {"PO-01", "SOP-VAC#2"} <= set(ids(resp)[:4])
    unlinked = svc.related("C-001", k=10, exclude_linked=True)
    assert not {"C-001", "PO-01", "SOP-VAC#2"} & set(ids(unlinked))
    with pytest.raises(RecordNotFound):
        svc.related("nope")


def test_feedback_on_a_record_reorders_the_records_related_to_it(svc, settings, use_encoder):
    before = ids(svc.related("C-001", k=10))
    assert "C-005" not in before[:3] and "PO-01" in before[:3]
    # C-005 (a stage calibration case) is marked helpful for C-001 by two engineers, PO-01 not
    # helpful by one; one engineer's first "not helpful" on C-005 was taken back.
    svc.feedback(record_id="C-005", helpful=False, query_id="C-001", source="ann")
    svc.feedback(record_id="C-005", helpful=True, query_id="C-001", source="ann")
    svc.feedback(record_id="C-005", helpful=True, query_id="C-001", source="bob")
    svc.feedback(record_id="PO-01", helpful=False, query_id="C-001", source="bob")
    resp = svc.related("C-001", k=10)
    got = ids(resp)
    assert got[0] == "C-005" and got[-1] == "PO-01" and set(got) == set(before) | {"C-005"}
    first = resp.results[0].explanation
    assert (first.helpful_votes, first.unhelpful_votes) == (2, 0)
    assert first.reason.startswith("marked helpful for this record (2 helpful, 0 not)")
    assert resp.results[-1].explanation.reason.startswith("marked not helpful")
    assert all(a.score >= b.score for a, b in zip(resp.results, resp.results[1:]))
    # Relatedness goes both ways: C-001 now leads the records related to C-005.
    assert ids(svc.related("C-005", k=10))[0] == "C-001"
    # A promoted record still obeys the request: filters, exclusions and deletions.
    assert "C-005" not in ids(svc.related("C-001", k=10, kinds=["sop", "problem"]))
    assert ids(svc.related("C-001", k=10, min_score=resp.results[0].score))[0] == "C-005"
    # Feedback given for a record does not reorder searches, and rank.feedback = false turns it off.
    assert ids(svc.search(SearchQuery(text="干泵异常停机 E1023", k=10)))[0] != "C-005"
    off = settings.model_copy(update={"rank": settings.rank.model_copy(update={"feedback": False})})
    plain = CaselinkService(off, svc.store, svc.index)
    assert ids(plain.related("C-001", k=10)) == before
    svc.delete("C-005")
    assert "C-005" not in ids(svc.related("C-001", k=10))


def test_feedback_on_a_search_reorders_the_same_search_made_again(svc):
    query = "干泵停机 腔体压力升高"
    before = ids(svc.search(SearchQuery(text=query, k=10)))
    low = before[-1]
    svc.feedback(record_id=low, helpful=True, query=query, source="ann")
    svc.feedback(record_id=before[0], helpful=False, query=query, source="ann")
    again = svc.search(SearchQuery(text=query, k=10))
    assert ids(again)[0] == low and ids(again)[-1] == before[0]
    assert again.results[0].explanation.reason.startswith("marked helpful for this search (1 helpful, 0 not)")
    # The same text in the other script, full width and other spacing is the same search ...
    assert ids(svc.search(SearchQuery(text="  乾泵停機   腔體壓力升高 ", k=10)))[0] == low
    # ... another wording is not.
    assert ids(svc.search(SearchQuery(text="干泵停机 腔体压力升高了", k=10))) == before
    # A promoted record still obeys the request's filters.
    assert low == "C-005" and low not in ids(svc.search(SearchQuery(text=query, k=10, kind=["sop", "problem"])))


def test_related_term_selection_drops_single_characters_of_a_long_record(settings, use_encoder):
    from indexing.tokenize import is_cjk_char

    on = settings.model_copy(update={"text": settings.text.model_copy(update={"cjk_unigrams": True})})
    svc, _ = CaselinkService.build(on, encoder=use_encoder, records=CORPUS)
    long_tokens = svc.index.docs_.tokens(svc.get("C-001")) * 3
    assert any(is_cjk_char(t) for t in long_tokens)
    n = len(set(long_tokens)) - 1  # one fewer than the record's distinct terms: selection applies
    picked = svc.index.select_terms(long_tokens, n)
    assert picked and not any(is_cjk_char(t) for t in picked)
    short = svc.index.docs_.tokenizer.tokenize("借款失败")  # a short query keeps every token
    assert svc.index.select_terms(short, 64) == short and "借" in short
    svc.close()


def test_bad_queries_are_clear_errors(svc):
    with pytest.raises(InvalidQuery, match="empty") as e:
        svc.search(SearchQuery(text="   "))
    assert e.value.field == "text"
    with pytest.raises(InvalidQuery, match="k <= 100"):
        svc.search(SearchQuery(text="x", k=500))


def test_upsert_is_searchable_at_once_and_delete_is_final(svc):
    rec = Record(id="C-100", kind="case", title="离子注入机束流不稳 E7788", text="束流波动 20%", error_codes=["E7788"])
    assert [(o.id, o.changed, o.created) for o in svc.upsert([rec])] == [("C-100", True, True)]
    assert ids(svc.search(SearchQuery(text="E7788")))[0] == "C-100"
    assert [(o.changed, o.created) for o in svc.upsert([rec])] == [(False, False)]
    svc.upsert([rec.model_copy(update={"title": "离子注入机束流不稳 E7789", "error_codes": ["E7789"]})])
    assert "C-100" not in ids(svc.search(SearchQuery(text="E7788")))
    svc.delete("C-100")
    assert "C-100" not in ids(svc.search(SearchQuery(text="E7789 束流波动")))
    with pytest.raises(RecordNotFound):
        svc.delete("C-100")


def test_a_record_with_nothing_to_search_is_refused_and_one_stored_earlier_relates_to_nothing(svc):
    with pytest.raises(InvalidRecord, match="nothing to search") as e:
        svc.upsert([Record(id="C-300", kind="case", title="ok"), Record(id="C-301", kind="case", status="open")])
    assert e.value.field == "text" and "C-301" in e.value.message
    assert svc.store.get("C-300") is None  # the whole call fails before anything is stored
    assert [o.id for o in svc.upsert([Record(id="C-302", kind="case", error_codes=["E1023"])])] == ["C-302"]
    # Stores written before the check may hold empty records: their only "text" is their id, so two
    # of them looked alike in meaning. They now relate to nothing, and say why.
    svc.index.upsert([Record(id="T-9001", kind="case"), Record(id="T-9002", kind="case", status="open")])
    resp = svc.related("T-9001")
    assert resp.results == [] and "no title, text or codes" in resp.fallback_reason
    assert "T-9001" not in ids(svc.related("T-9002", k=50))


def _sql(svc, statement: str) -> None:
    """Run DDL on the service's SQLite file from a connection of its own (fault injection)."""
    with closing(sqlite3.connect(svc.settings.store_path)) as conn:
        conn.execute(statement)


def test_a_document_replacement_that_fails_halfway_leaves_the_document_as_it_was(svc):
    """The new sections and the removal of the old ones are one transaction. A failure injected
    in SQLite itself (a trigger refusing the delete of the dropped section) rolls back the
    already-written new text too, in the store and in the live index."""
    revised = Record(id="SOP-VAC#1", kind="sop", doc_id="SOP-VAC", doc_title="干泵诊断程序", section="1. 适用范围",
                     text="本程序适用于全部离子注入机冷却回路 E7321。", error_codes=["E7321"])
    _sql(svc, "CREATE TRIGGER refuse BEFORE DELETE ON records BEGIN "
                           "SELECT RAISE(ABORT, 'injected failure'); END")
    with pytest.raises(Exception, match="injected failure"):
        svc.put_document("SOP-VAC", [revised], {"SOP-VAC#1"})
    assert [r.id for r in svc.document("SOP-VAC")] == ["SOP-VAC#1", "SOP-VAC#2"]
    assert "适用于 HX-Etch 500" in svc.get("SOP-VAC#1").text
    assert "SOP-VAC#1" not in ids(svc.search(SearchQuery(text="E7321", k=5)))
    assert "SOP-VAC#2" in ids(svc.search(SearchQuery(text="E1023", k=5)))

    _sql(svc, "DROP TRIGGER refuse")
    outcomes, removed = svc.put_document("SOP-VAC", [revised], {"SOP-VAC#1"})
    assert removed == ["SOP-VAC#2"] and [(o.id, o.changed) for o in outcomes] == [("SOP-VAC#1", True)]
    assert [r.id for r in svc.document("SOP-VAC")] == ["SOP-VAC#1"]
    assert ids(svc.search(SearchQuery(text="E7321", k=5)))[0] == "SOP-VAC#1"
    assert "SOP-VAC#2" not in ids(svc.search(SearchQuery(text="E1023", k=10)))


def test_delete_many_is_one_transaction(svc):
    _sql(svc, "CREATE TRIGGER refuse BEFORE DELETE ON records WHEN old.id = 'C-002' BEGIN "
                           "SELECT RAISE(ABORT, 'injected failure'); END")
    with pytest.raises(Exception, match="injected failure"):
        svc.delete_many(["C-001", "C-002"])
    assert svc.store.get("C-001") is not None
    assert ids(svc.search(SearchQuery(text="E1023", k=5)))[0] in {"C-001", "SOP-VAC#2"}
    assert "C-001" in ids(svc.search(SearchQuery(text="E1023", k=5)))
    _sql(svc, "DROP TRIGGER refuse")
    assert svc.delete_many(["C-001", "C-404", "C-002"]) == (["C-001", "C-002"], ["C-404"])
    assert not {"C-001", "C-002"} & set(ids(svc.search(SearchQuery(text="E1023 干泵停机", k=10))))


def test_writes_survive_a_crash_through_replay(settings, use_encoder):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.upsert([Record(id="C-200", kind="case", title="腔体漏率超标 E5150", error_codes=["E5150"])])
    svc.delete("C-005")
    # No close(): the snapshot on disk predates both writes, as after kill -9.
    again = CaselinkService.open(settings, encoder=use_encoder)
    assert ids(again.search(SearchQuery(text="E5150")))[0] == "C-200"
    assert "C-005" not in ids(again.search(SearchQuery(text="工件台定位超差", k=10)))
    again.close()


def test_snapshot_now_publishes_the_writes_so_far(settings, use_encoder):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    try:
        before = svc.stats()
        svc.upsert([Record(id="C-201", kind="case", title="腔体漏率超标 E5151", error_codes=["E5151"])])
        path = svc.snapshot()
        after = svc.stats()
        assert path is not None and str(path) == after.snapshot != before.snapshot
        assert after.change_seq > before.change_seq
        assert json.loads((path / "manifest.json").read_text())["change_seq"] == after.change_seq
    finally:
        svc.close()


class _BrokenEncoder:
    """Injects the failure of a model that cannot run (same id/dim, so the index opens)."""

    def __init__(self, real):
        self.model_id, self.dim, self.cache_key = real.model_id, real.dim, real.cache_key

    def encode(self, texts, progress=None):
        raise EncoderUnavailable("model weights missing")


def test_keyword_fallback_when_the_encoder_is_unavailable(svc, settings, use_encoder):
    svc.close()
    broken = CaselinkService.open(settings, encoder=_BrokenEncoder(use_encoder))
    resp = broken.search(SearchQuery(text="干泵停机"))
    assert resp.path == "keyword" and "encoder is unavailable" in resp.fallback_reason
    assert ids(resp)[0] in {"C-001", "C-002"}
    broken.close()


def test_keyword_fallback_when_dense_confidence_is_low(settings, use_encoder):
    from caselink.config import load_settings

    strict = load_settings(env={}, data_dir=settings.data_dir, rank__dense_floor=0.99)
    svc, _ = CaselinkService.build(strict, encoder=use_encoder, records=CORPUS)
    resp = svc.search(SearchQuery(text="干泵停机"))
    assert resp.path == "keyword" and "dense_floor" in resp.fallback_reason
    svc.close()


def test_opening_with_another_model_is_a_clear_error(svc, settings):
    svc.close()

    class Other:
        model_id, dim = "st:other", 384

        def encode(self, texts, progress=None):
            return np.zeros((len(texts), 384), np.float32)

    with pytest.raises(IndexFormatError, match="built with model 'use-m3'"):
        CaselinkService.open(settings, encoder=Other())


def test_no_index_yet_is_a_clear_error(settings, use_encoder):
    with pytest.raises(IndexNotReady, match="caselink index"):
        CaselinkService.open(settings, encoder=use_encoder)


def test_an_upsert_whose_embedding_fails_stores_nothing(settings, use_encoder):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.index.encoder = _BrokenEncoder(use_encoder)
    with pytest.raises(EncoderUnavailable):
        svc.upsert([Record(id="C-300", kind="case", title="新记录 E4242")])
    assert svc.store.get("C-300") is None and svc.store.changes_since(svc.index.backend.applied_seq()) == []
    svc.index.encoder = use_encoder
    svc.close()


def test_code_matches_come_first_with_non_increasing_scores(svc):
    resp = svc.search(SearchQuery(text="干泵 停机 报警 E1023 腔体压力", k=8))
    scores = [r.score for r in resp.results]
    assert scores == sorted(scores, reverse=True)
    assert {r.id for r in resp.results[:2]} == {"C-001", "SOP-VAC#2"}


def test_explanations_show_words_as_written(svc):
    r = svc.search(SearchQuery(text="robots picking wafers from the FOUP", k=1)).results[0]
    assert r.id == "C-003"
    written = (r.title + " " + svc.get("C-003").text).lower()
    assert {"robot", "wafer"} <= set(r.explanation.matched_terms)  # stems matched, words shown
    assert all(t in written for t in r.explanation.matched_terms)


def test_the_index_knows_how_far_behind_the_store_it_is(svc):
    """What a replica's /readyz and follow loop go by: writes another process made to the store."""
    from indexing.store import RecordStore

    assert svc.index.behind() == 0
    with RecordStore(svc.settings.store_url) as other:
        other.upsert([Record(id="C-OTHER-1", kind="case", title="另一进程写入 E5555", error_codes=["E5555"]),
                      Record(id="C-OTHER-2", kind="case", title="another process wrote this")])
    assert svc.index.behind() == 2
    assert svc.index.replay() == 2 and svc.index.behind() == 0
    assert ids(svc.search(SearchQuery(text="E5555", k=3)))[0] == "C-OTHER-1"


def test_a_code_most_records_carry_does_not_pull_them_above_a_records_relatives(settings, use_encoder):
    topics = ["触摸屏校准漂移 touchscreen calibration drift", "传送带打滑 conveyor belt slips",
              "冷却水流量低报警 coolant flow low", "门锁传感器失效 door interlock sensor fault",
              "激光功率下降 laser power drop", "网络通讯中断 network link lost"]
    # X9 (a product line's marking) on 24 unrelated records: above the floor of 20 and 1% of them
    common = [Record(id=f"F-{i:02d}", kind="case", title=f"{topics[i % 6]} #{i}", error_codes=["X9"],
                     text=f"{topics[i % 6]}，第{i}次现场记录，复位后恢复。") for i in range(24)]
    records = common + [
        Record(id="Q-1", kind="case", title="主轴轴承过热 spindle bearing overheats", error_codes=["X9", "R77"],
               text="主轴在12000转时轴承温度报警，润滑脂干涸，更换轴承后恢复。"),
        Record(id="T-1", kind="case", title="主軸軸承溫度過高", text="高速運轉時主軸軸承過熱報警，重新加注潤滑脂後正常。"),
        Record(id="R-1", kind="case", title="变频器报警 R77", error_codes=["R77"], text="变频器过流报警R77，检查电缆后恢复。"),
    ]
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=records)
    try:
        # the rare code still wins; the common one is left to the ranking, which finds the twin
        assert ids(svc.related("Q-1", k=5))[:2] == ["R-1", "T-1"]
    finally:
        svc.close()
    every = settings.model_copy(update={"rank": settings.rank.model_copy(update={"code_rule_max_share": 0.0})})
    svc = CaselinkService.open(every, encoder=use_encoder)
    try:
        got = ids(svc.related("Q-1", k=5))
        assert "T-1" not in got and all(i[0] in "FR" for i in got)  # every code counts: 25 carriers come first
    finally:
        svc.close()
