"""Snapshots: atomic swap, failed rebuilds leave the old index serving, corruption is refused."""

from __future__ import annotations

import json

import pytest

from caselink.errors import EncoderUnavailable, IndexFormatError
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS, edited_manifest


class _FailingEncoder:
    """Fails halfway through embedding, like a model crashing or the process being killed."""

    def __init__(self, real):
        self.model_id, self.dim, self.cache_key, self.real = real.model_id, real.dim, real.cache_key, real

    def encode(self, texts, progress=None):
        raise EncoderUnavailable("simulated crash during embedding")


def test_failed_rebuild_leaves_previous_index_serving(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with pytest.raises(EncoderUnavailable):
        CaselinkService.build(settings, encoder=_FailingEncoder(use_encoder),
                              records=[Record(id="C-NEW", kind="case", title="全新的故障 E9999")])
    builds = list((settings.index_root / "builds").iterdir())
    assert [p.name for p in builds] == [first.snapshot.name]
    again = CaselinkService.open(settings, encoder=use_encoder)
    # The record reached the store (source of truth) and is replayed into the old snapshot.
    assert [r.id for r in again.search(SearchQuery(text="C-NEW E9999")).results][0] == "C-NEW"
    again.close()


def test_rebuild_swaps_and_cleans_interrupted_temp_folders(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    stale = settings.index_root / "builds" / ".tmp-20000101T000000Z-dead00"
    stale.mkdir()
    (stale / "vectors.faiss").write_bytes(b"half written")
    svc, second = CaselinkService.build(settings, encoder=use_encoder)
    svc.close()
    assert second.embedded == 0  # unchanged corpus: every vector came from the cache
    names = sorted(p.name for p in (settings.index_root / "builds").iterdir())
    assert names == [second.snapshot.name]
    assert (settings.index_root / "current").resolve() == second.snapshot


@pytest.mark.parametrize("victim", ["vectors.faiss", "bm25/data.npy", "facets.json"])
def test_corrupted_file_is_refused_with_the_rebuild_command(settings, use_encoder, victim):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    path = report.snapshot / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(IndexFormatError, match="corrupt") as exc:
        CaselinkService.open(settings, encoder=use_encoder)
    assert "caselink index" in exc.value.hint


def test_unknown_format_version_is_refused(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    manifest = report.snapshot / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="format version 99"):
        CaselinkService.open(settings, encoder=use_encoder)


def test_manifest_records_model_params_and_checksums(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    m = json.loads((report.snapshot / "manifest.json").read_text())
    assert m["model"] == {"id": "use-m3", "spec": "use-m3", "dim": 512, "cache_key": "use-m3|chunk400|lead0.5"}
    assert m["counts"]["records"] == len(CORPUS)
    assert m["params"]["bm25"]["k1"] == settings.bm25.k1
    assert set(m["files"]) >= {"vectors.faiss", "bm25/data.npy", "bm25/vocab.json", "facets.json"}
    assert all(len(d) == 64 for d in m["files"].values())


def test_opening_with_other_pooling_is_refused(settings, use_encoder):
    from indexing.encoders import USEEncoder

    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with pytest.raises(IndexFormatError, match="pooling"):
        CaselinkService.open(settings, encoder=USEEncoder(lead_weight=0.0))


def _snapshots(settings):
    return sorted(p.name for p in (settings.index_root / "builds").iterdir())


def test_reindex_updates_in_place_when_settings_match(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    svc, again = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS, rebuild=False)
    svc.close()
    # Unchanged corpus: nothing re-indexed, nothing embedded, the same snapshot keeps serving.
    assert (again.applied, again.embedded, again.rebuilt_because) == (0, 0, None)
    assert again.snapshot == first.snapshot and _snapshots(settings) == [first.snapshot.name]

    edited = Record(id="C-001", kind="case", title="干泵异常停机 E1023", text="更换密封圈 PN-8812-07 后恢复",
                    error_codes=["E1023"])
    new = Record(id="C-NEW", kind="case", title="冷却水流量低 E7777", text="水路滤网堵塞")
    svc, third = CaselinkService.build(settings, encoder=use_encoder, records=[edited, new], rebuild=False)
    assert (third.applied, third.embedded, third.records) == (2, 2, len(CORPUS) + 1)
    assert third.snapshot != first.snapshot  # the update is published as a new snapshot
    assert svc.search(SearchQuery(text="PN-8812-07")).results[0].id == "C-001"
    assert svc.search(SearchQuery(text="E7777")).results[0].id == "C-NEW"
    svc.close()
    reopened = CaselinkService.open(settings, encoder=use_encoder)  # and survives a restart
    assert reopened.search(SearchQuery(text="E7777")).results[0].id == "C-NEW"
    reopened.close()


def test_reindex_applies_bm25_scoring_settings_without_a_rebuild(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    before = svc.search(SearchQuery(text="真空泵 E1023", mode="keyword")).results
    svc.close()
    classic = settings.model_copy(update={"bm25": settings.bm25.model_copy(update={"k1": 1.6, "delta": 0.0})})
    svc, report = CaselinkService.build(classic, encoder=use_encoder, rebuild=False)
    # k1, b and delta only enter at query time: same postings, new scores, a new snapshot that says so.
    assert (report.rebuilt_because, report.applied, report.embedded) == (None, 0, 0)
    assert report.snapshot != first.snapshot
    assert (svc.index.backend.describe()["bm25"]["k1"], svc.index.backend.describe()["bm25"]["delta"]) == (1.6, 0.0)
    after = svc.search(SearchQuery(text="真空泵 E1023", mode="keyword")).results
    assert [r.id for r in after][:1] == [r.id for r in before][:1]
    assert [r.score for r in after] != [r.score for r in before]
    svc.close()
    reopened = CaselinkService.open(settings, encoder=use_encoder)  # a restart serves what the index records
    assert (reopened.index.backend.describe()["bm25"]["k1"], reopened.index.backend.describe()["bm25"]["delta"]) == (1.6, 0.0)
    m = json.loads((report.snapshot / "manifest.json").read_text(encoding="utf-8"))
    assert m["params"]["bm25"] == {"k1": 1.6, "b": 0.75, "delta": 0.0, "title_weight": 2, "code_weight": 2}
    reopened.close()


def test_reindex_rebuilds_when_a_setting_that_shapes_every_record_changed(settings, use_encoder, tmp_path):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    changed = settings.model_copy(update={"bm25": settings.bm25.model_copy(update={"title_weight": 3})})
    svc, report = CaselinkService.build(changed, encoder=use_encoder, rebuild=False)
    assert report.applied is None and "bm25.title_weight" in report.rebuilt_because and report.embedded == 0
    assert svc.index.docs_.title_weight == 3
    svc.close()
    words = tmp_path / "words.txt"
    words.write_text("# domain terms\n腔体压力 100 n\n", encoding="utf-8")
    with_dict = changed.model_copy(update={"text": changed.text.model_copy(update={"user_dict": words})})
    svc, report = CaselinkService.build(with_dict, encoder=use_encoder, rebuild=False)
    assert "dictionary" in report.rebuilt_because and "1 new" in report.rebuilt_because
    assert "腔体压力" in svc.index.docs_.tokenizer.tokenize("腔體壓力異常")  # the user term is kept whole
    svc.close()
    no_hmm = with_dict.model_copy(update={"text": with_dict.text.model_copy(update={"jieba_hmm": False})})
    svc, report = CaselinkService.build(no_hmm, encoder=use_encoder, rebuild=False)
    assert "text.jieba_hmm" in report.rebuilt_because and svc.index.docs_.tokenizer.jieba_hmm is False
    svc.close()
    svc = CaselinkService.open(no_hmm, encoder=use_encoder)  # queries tokenise as the index was built
    assert svc.index.docs_.tokenizer.jieba_hmm is False
    svc.close()


def test_tokeniser_settings_an_older_manifest_lacks_mean_its_behaviour_then(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with edited_manifest(report.snapshot) as manifest:
        del manifest["params"]["text"]["cjk_unigrams"]  # as caselink wrote it before the setting existed
    svc, again = CaselinkService.build(settings, encoder=use_encoder, rebuild=False)
    assert again.rebuilt_because is None  # missing means off, the default: nothing to rebuild
    svc.close()
    with edited_manifest(again.snapshot) as manifest:
        del manifest["params"]["text"]["dotted_numbers"]  # an index from before versions were kept whole
    svc = CaselinkService.open(settings, encoder=use_encoder)
    assert svc.index.docs_.tokenizer.dotted_numbers is False  # queries tokenise as its postings were made
    svc.close()
    svc, again = CaselinkService.build(settings, encoder=use_encoder, rebuild=False)
    assert "text.dotted_numbers" in again.rebuilt_because and svc.index.docs_.tokenizer.dotted_numbers is True
    svc.close()
    on = settings.model_copy(update={"text": settings.text.model_copy(update={"cjk_unigrams": True})})
    svc, report = CaselinkService.build(on, encoder=use_encoder, rebuild=False)
    assert "text.cjk_unigrams" in report.rebuilt_because and report.embedded == 0
    svc.close()
    # A server started with the setting off still tokenises queries as the index was built.
    svc = CaselinkService.open(settings, encoder=use_encoder)
    assert svc.index.docs_.tokenizer.cjk_unigrams is True and "借" in svc.index.docs_.tokenizer.tokenize("借款")
    svc.close()


def test_reindex_with_a_broken_index_rebuilds_instead_of_failing(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    (report.snapshot / "manifest.json").write_text("{not json", encoding="utf-8")
    svc, again = CaselinkService.build(settings, encoder=use_encoder, rebuild=False)
    svc.close()
    assert again.applied is None and "unusable" in again.rebuilt_because and again.records == len(CORPUS)


def test_format_1_snapshot_is_still_read(settings, use_encoder):
    """Format 1 = format 2 without BM25's delta and alive files (it was always saved compacted)."""
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with edited_manifest(report.snapshot) as manifest:
        for name in ("bm25/alive.npy", "bm25/delta_rows.npy", "bm25/delta_cols.npy", "bm25/delta_vals.npy"):
            (report.snapshot / name).unlink()
            del manifest["files"][name]
        manifest["format_version"] = 1
    svc = CaselinkService.open(settings, encoder=use_encoder)
    assert svc.index.count() == len(CORPUS)
    assert svc.search(SearchQuery(text="E1023")).results[0].id == "C-001"
    svc.close()


def test_snapshot_writes_files_without_holding_up_searches_and_writes(settings, use_encoder, monkeypatch):
    import threading

    from indexing.index_dir import IndexDir

    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    writing, release = threading.Event(), threading.Event()
    real_publish = IndexDir.publish

    def slow_publish(self, tmp, manifest):  # files written, not yet published: the slow part
        writing.set()
        assert release.wait(60)
        return real_publish(self, tmp, manifest)

    monkeypatch.setattr(IndexDir, "publish", slow_publish)
    svc.index.upsert([Record(id="C-BEFORE", kind="case", title="冷却水流量低 E7001")])
    snap = threading.Thread(target=svc.index.snapshot)
    snap.start()
    try:
        assert writing.wait(60)
        # The index lock is free while the snapshot's files are written: searches and writes go on.
        assert svc.index.lock.acquire(timeout=10)
        svc.index.lock.release()
        svc.index.upsert([Record(id="C-DURING", kind="case", title="真空计读数漂移 E7002")])
        assert svc.search(SearchQuery(text="E7002")).results[0].id == "C-DURING"
    finally:
        release.set()
        snap.join(60)
    monkeypatch.setattr(IndexDir, "publish", real_publish)
    svc.index.writes_since_snapshot_ = 0  # leave the later write to the change log, as after a crash
    svc.store.close()
    svc.index.cache.close()
    again = CaselinkService.open(settings, encoder=use_encoder)
    # The snapshot holds what was there at its capture; the write made during it is replayed.
    assert again.search(SearchQuery(text="E7001")).results[0].id == "C-BEFORE"
    assert again.search(SearchQuery(text="E7002")).results[0].id == "C-DURING"
    again.close()


def _count_changes(settings) -> int:
    import sqlite3

    with sqlite3.connect(settings.store_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0]


def test_change_log_is_pruned_and_a_server_that_fell_behind_reloads(settings, use_encoder):
    small = settings.model_copy(update={"server": settings.server.model_copy(
        update={"change_log_keep": 2, "persist_every": 3})})
    svc, _ = CaselinkService.build(small, encoder=use_encoder, records=CORPUS)
    before = _count_changes(small)
    follower = CaselinkService.open(small, encoder=use_encoder)  # "a running server" on the same store
    new = [Record(id=f"C-P{i}", kind="case", title=f"冷却水流量低 E70{i:02d}") for i in range(7)]
    for rec in new:
        svc.index.upsert([rec])  # snapshots every 3 writes, pruning all but 2 rows before each
    svc.index.delete("C-001")
    assert svc.store.pruned_upto() > follower.index.backend.applied_seq()  # the follower's next changes are gone
    assert _count_changes(small) < before + len(new) + 1
    assert follower.index.replay() == len(CORPUS) + len(new) - 1  # it reloads the current snapshot
    for rec in new:
        assert follower.search(SearchQuery(text=rec.title.split()[-1])).results[0].id == rec.id
    assert "C-001" not in [r.id for r in follower.search(SearchQuery(text="E1023", k=20)).results]
    follower.store.close()
    follower.index.cache.close()
    svc.close()
    again = CaselinkService.open(small, encoder=use_encoder)  # a fresh start needs only the kept rows
    assert again.index.count() == len(CORPUS) + len(new) - 1
    again.close()


def test_a_logged_delete_that_names_no_record_rebuilds_from_the_store(settings, use_encoder):
    """A store migrated from schema version 2 has deletes without ids: the backend cannot be told
    which record went, so the index is built again from the store instead of serving it."""
    import sqlite3

    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with sqlite3.connect(settings.store_path) as conn:  # as an older caselink logged a delete
        num = conn.execute("SELECT num FROM records WHERE id = 'C-001'").fetchone()[0]
        conn.execute("DELETE FROM records WHERE num = ?", (num,))
        conn.execute("INSERT INTO changes (num, op) VALUES (?, 'delete')", (num,))
    svc = CaselinkService.open(settings, encoder=use_encoder)
    assert svc.index.count() == len(CORPUS) - 1
    assert "C-001" not in [r.id for r in svc.search(SearchQuery(text="E1023", k=20)).results]
    svc.close()
