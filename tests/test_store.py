"""The record store's schema: a store written by an older caselink opens and is migrated."""

from __future__ import annotations

import sqlite3

from indexing.records import Record
from indexing.store import SCHEMA_VERSION, RecordStore, query_key

# The tables as caselink wrote them with schema version 1 (before feedback.query_key).
V1_SCHEMA = """
CREATE TABLE records (num INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    product TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '', module TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '', created TEXT, body TEXT NOT NULL, hash TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, num INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')));
CREATE TABLE feedback (fid INTEGER PRIMARY KEY AUTOINCREMENT, query TEXT NOT NULL DEFAULT '',
    query_id TEXT NOT NULL DEFAULT '', record_id TEXT NOT NULL, helpful INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '', created REAL NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_query_key_folds_script_width_case_and_spacing():
    assert query_key("  真空泵無法啟動   Ｅ１０２３ ") == query_key("真空泵无法启动 e1023") == "真空泵无法启动 e1023"
    assert query_key("真空泵无法启动") != query_key("真空泵不能启动")


def test_a_version_1_store_is_migrated_on_open_and_keeps_its_feedback(tmp_path):
    path = tmp_path / "records.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.executemany("INSERT INTO feedback (query, query_id, record_id, helpful, source, created) VALUES (?,?,?,?,?,?)",
                     [("真空泵無法啟動", "", "C-1", 1, "ann", 1.0), ("", "C-9", "C-2", 0, "bob", 2.0),
                      ("E1023 ", "", "C-3", 1, "", 3.0)])
    conn.commit()
    conn.close()

    with RecordStore(path) as store:
        assert store.feedback_for_query("真空泵无法启动") == [("C-1", "ann", True)]
        assert store.feedback_for_query("e1023") == [("C-3", "", True)]
        assert store.feedback_between("C-9") == [("C-2", "bob", False)]
        assert [f.fid for f in store.feedback()] == [1, 2, 3]
        store.upsert([Record(id="C-1", kind="case", title="真空泵无法启动")])
        store.add_feedback(record_id="C-1", helpful=False, query="真空泵無法啟動", source="bob")
        assert store.feedback_for_query("真空泵无法启动") == [("C-1", "ann", True), ("C-1", "bob", False)]
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    indexes = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"feedback_query_id", "feedback_record_id", "feedback_query_key"} <= indexes
    check.close()
    with RecordStore(path) as again:  # a second open finds nothing to migrate
        assert len(again.feedback()) == 4 and again.get("C-1") is not None


def test_a_version_2_store_gains_change_ids_from_the_records_still_stored(tmp_path):
    path = tmp_path / "records.sqlite"
    with RecordStore(path) as store:
        store.upsert([Record(id="C-1", kind="case", title="干泵异常"), Record(id="C-2", kind="case", title="腔体漏气")])
        store.delete("C-2")
    conn = sqlite3.connect(path)  # as caselink wrote it with schema version 2: changes without ids
    conn.executescript("""
        CREATE TABLE old_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, num INTEGER NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')));
        INSERT INTO old_changes SELECT seq, num, op FROM changes;
        DROP TABLE changes;
        ALTER TABLE old_changes RENAME TO changes;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """)
    conn.commit()
    conn.close()
    with RecordStore(path) as store:
        # C-2's row is gone: nothing names it any more, and its changes say so with None
        assert [(op, rid) for _, _, op, rid in store.changes_since(0)] == [
            ("upsert", "C-1"), ("upsert", None), ("delete", None)]
        store.delete("C-1")
        assert store.changes_since(3)[-1][2:] == ("delete", "C-1")
        assert store.records(["C-1", "C-2"]) == {}
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    check.close()


def test_a_version_3_store_gains_empty_keyword_statistics(tmp_path):
    path = tmp_path / "records.sqlite"
    with RecordStore(path) as store:
        store.upsert([Record(id="C-1", kind="case", title="干泵异常")])
    conn = sqlite3.connect(path)  # as caselink wrote it with schema version 3: no keyword statistics
    conn.executescript("""
        DROP TABLE record_terms; DROP TABLE term_df; DROP TABLE corpus;
        UPDATE meta SET value = '3' WHERE key = 'schema_version';
    """)
    conn.commit()
    conn.close()
    with RecordStore(path) as store:
        df, corpus = store.term_stats([1])
        assert (df, corpus.n, corpus.total_len, corpus.avgdl) == ({}, 0, 0.0, 0.0)
        assert store.transaction(lambda tx: tx.apply_terms([("C-1", 3.0, [1, 2])])).n == 1
        assert store.term_stats([1, 2])[0] == {1: 1, 2: 1} and store.get("C-1") is not None
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    check.close()
