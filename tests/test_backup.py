"""Backup and restore of the record store, and an index that is not its store's being refused.

Real SQLite files, the real index and encoder; the concurrent writer is a real thread writing
through the store while the backup runs.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest

from caselink.errors import CaselinkError, IndexFormatError
from indexing.backup import backup, restore
from indexing.records import Record
from indexing.store import RecordStore
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS


def _ids(path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM records ORDER BY num")]
    finally:
        conn.close()


def test_a_backup_taken_while_records_are_written_is_one_consistent_state(tmp_path):
    store = RecordStore(tmp_path / "data" / "records.sqlite").open()
    store.upsert([Record(id="W-00000", kind="case", title="first")])
    stop, written = threading.Event(), []

    def writer():
        n = 1
        while not stop.is_set() and n < 5000:
            store.upsert([Record(id=f"W-{n:05d}", kind="case", title=f"记录 {n} E{1000 + n % 9000}")])
            written.append(n)
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(written) < 50:  # the writer is under way
            t.join(0.01)
        reports = [backup(store.path, tmp_path / "none.sqlite", tmp_path / f"b{i}") for i in range(3)]
    finally:
        stop.set()
        t.join()
    store.close()
    for r in reports:
        ids = _ids(r.folder / "records.sqlite")
        # A prefix of the writes, whole: every record committed before the copy, none half-written.
        assert ids == [f"W-{n:05d}" for n in range(len(ids))] and r.records == len(ids) >= 51
        assert not (r.folder / "records.sqlite-wal").exists() and r.cache_bytes == 0
    with pytest.raises(CaselinkError, match="never overwrites"):
        backup(store.path, tmp_path / "none.sqlite", reports[0].folder)


def test_restore_keeps_the_replaced_store_and_the_index_is_rebuilt_from_the_backup(settings, use_encoder, tmp_path):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.store.add_feedback(record_id=CORPUS[1].id, helpful=True, query_id=CORPUS[0].id, source="t")
    svc.close()
    saved = backup(settings.store_path, settings.cache_path, tmp_path / "bk")
    assert (saved.records, saved.votes) == (len(CORPUS), 1) and saved.cache_bytes > 0

    svc = CaselinkService.open(settings, encoder=use_encoder)
    svc.upsert([Record(id="C-LATER", kind="case", title="备份之后的记录 E8765", error_codes=["E8765"])])
    with pytest.raises(CaselinkError, match="has .* open"):  # the server is still up
        restore(saved.folder, settings.store_path, settings.cache_path)
    svc.close()

    done = restore(saved.folder, settings.store_path, settings.cache_path)
    assert (done.records, done.votes, done.cache) == (len(CORPUS), 1, "kept")
    assert "C-LATER" in _ids(done.replaced)  # nothing that was stored is lost
    assert "C-LATER" not in _ids(settings.store_path)
    # The index holds C-LATER, the store does not: opening refuses rather than serve it.
    with pytest.raises(IndexFormatError, match="older copy"):
        CaselinkService.open(settings, encoder=use_encoder)
    svc, report = CaselinkService.build(settings, encoder=use_encoder, rebuild=False)  # as caselink index
    try:
        assert "older copy" in report.rebuilt_because and report.embedded == 0  # the kept cache had every text
        assert "C-LATER" not in [r.id for r in svc.search(SearchQuery(text="E8765")).results]
        assert svc.stats().feedback == 1 and svc.stats().indexed == len(CORPUS)
    finally:
        svc.close()


def test_an_index_is_refused_over_another_store(settings, use_encoder, tmp_path):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    other = RecordStore(tmp_path / "other" / "records.sqlite").open()
    other.upsert([Record(id=f"X-{i}", kind="case", title=f"别处的记录 {i}") for i in range(len(CORPUS) + 5)])
    other.close()
    settings.store_path.unlink()
    for side in ("-wal", "-shm"):
        (settings.store_path.parent / f"records.sqlite{side}").unlink(missing_ok=True)
    shutil.copy(other.path, settings.store_path)
    with pytest.raises(IndexFormatError, match="another record store") as exc:
        CaselinkService.open(settings, encoder=use_encoder)
    assert "caselink index --rebuild" in exc.value.hint


@pytest.mark.parametrize("content,message", [(None, "no records.sqlite"), (b"not a database" * 100, "not a caselink"),
                                             ("empty-sqlite", "not a caselink")])
def test_restore_refuses_what_is_not_a_caselink_backup_and_changes_nothing(settings, use_encoder, tmp_path,
                                                                            content, message):
    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    folder = tmp_path / "bad"
    folder.mkdir()
    if content == "empty-sqlite":
        sqlite3.connect(folder / "records.sqlite").execute("CREATE TABLE t (x)").connection.close()
    elif content is not None:
        (folder / "records.sqlite").write_bytes(content)
    with pytest.raises(CaselinkError, match=message):
        restore(folder, settings.store_path, settings.cache_path)
    assert sorted(_ids(settings.store_path)) == sorted(r.id for r in CORPUS)
    CaselinkService.open(settings, encoder=use_encoder).close()  # still serves as before
