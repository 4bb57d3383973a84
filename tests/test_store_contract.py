"""The record-store contract, proven on both databases: every test runs on a SQLite file and on a
fresh database of a real PostgreSQL (the ``store_url`` fixture), and two writer processes at once
lose no update and never let a follower of the change log skip a position."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import indexing.store as store_module
from caselink.errors import StoreUnavailable
from indexing.records import Record
from indexing.store import CHUNK, SCHEMA_VERSION, RecordStore

REPO = Path(__file__).resolve().parent.parent


def case(rid: str, text: str = "干泵异常停机 E1023", **kw) -> Record:
    return Record(id=rid, kind=kw.pop("kind", "case"), title=text, **kw)


@pytest.fixture
def store(store_url):
    with RecordStore(store_url) as s:
        yield s


def test_upsert_reports_created_changed_and_unchanged_and_logs_only_changes(store):
    first = store.upsert([case("C-1"), case("C-2", "Robot fails to pick wafer W3001")])
    assert [(r.created, r.changed) for r in first] == [(True, True), (True, True)]
    again = store.upsert([case("C-1"), case("C-2", "Robot drops wafer W3001")])
    assert [(r.created, r.changed) for r in again] == [(False, False), (False, True)]
    assert [r.num for r in again] == [r.num for r in first]  # a record keeps its key
    assert store.get("C-2").record.title == "Robot drops wafer W3001"
    log = store.changes_since(0)
    assert [(n, op, rid) for _, n, op, rid in log] == [(first[0].num, "upsert", "C-1"), (first[1].num, "upsert", "C-2"),
                                                       (first[1].num, "upsert", "C-2")]
    assert [s for s, *_ in log] == sorted({s for s, *_ in log}) and store.last_seq() == log[-1][0]
    assert store.count() == {"case": 2} and store.total() == 2


def test_attributes_are_stored_with_the_body_and_a_change_to_them_is_logged(store):
    attrs = {"customer": "ACME 半导体", "site": 'Fab "12" \\ \'x\'', "sw_version": "4.2.1"}
    first = store.upsert([case("C-1", attributes=attrs), case("C-2")])
    assert store.get("C-1").record.attributes == attrs and store.records(["C-2"])["C-2"].attributes == {}
    assert [r.changed for r in store.upsert([case("C-1", attributes=dict(reversed(attrs.items())))])] == [False]
    seq = store.last_seq()
    assert [r.changed for r in store.upsert([case("C-1", attributes={"customer": "Globex"})])] == [True]
    assert [(n, op, rid) for _, n, op, rid in store.changes_since(seq)] == [(first[0].num, "upsert", "C-1")]
    assert store.get("C-1").record.attributes == {"customer": "Globex"}


def test_a_repeated_id_in_one_batch_sees_its_earlier_write(store):
    out = store.upsert([case("C-1", "first"), case("C-1", "second"), case("C-1", "second")])
    assert [(r.created, r.changed) for r in out] == [(True, True), (False, True), (False, False)]
    assert len({r.num for r in out}) == 1 and store.get("C-1").record.title == "second"


def test_a_write_is_all_or_nothing(store, monkeypatch):
    store.upsert([case("C-1", "as stored")])
    seq = store.last_seq()

    def fail(*args, **kw):  # a failure inside the transaction, after its upserts were written
        raise RuntimeError("injected failure")

    monkeypatch.setattr(store_module, "delete_ids", fail)
    with pytest.raises(RuntimeError, match="injected"):
        store.write([case("C-1", "changed"), case("C-NEW")], deletes=["C-1"])
    monkeypatch.undo()
    assert store.get("C-1").record.title == "as stored" and store.get("C-NEW") is None
    assert store.last_seq() == seq and store.changes_since(seq) == []


def test_delete_returns_the_key_once_and_logs_it(store):
    num = store.upsert([case("C-1")])[0].num
    assert store.write(deletes=["C-1", "C-404", "C-1"])[1] == [num, None, None]
    assert store.get("C-1") is None and store.changes_since(0)[-1][1:] == (num, "delete", "C-1")
    assert store.delete("C-1") is None


def test_many_ids_are_read_and_written_in_chunks(store):
    n = 2 * CHUNK + 7
    out = store.upsert([case(f"C-{i:05d}", f"记录 {i}") for i in range(n)])
    nums = [r.num for r in out]
    assert len(set(nums)) == n
    assert store.nums_of([f"C-{i:05d}" for i in range(n)] + ["C-nope"]) == {f"C-{i:05d}": nums[i] for i in range(n)}
    got = store.get_many(nums[::-1])
    assert len(got) == n and got[nums[-1]].title == f"记录 {n - 1}"
    assert [s.record.id for s in store.iter_records(batch=300)] == [f"C-{i:05d}" for i in range(n)]
    assert len(store.facets()) == n and len(store.sample(10)) == 10


def test_ids_page_and_sections_range_in_byte_order(store):
    ids = ["a-1", "B-2", "SOP-A#1", "SOP-A#10", "SOP-A#2", "SOP-A-B#1", "SOP-A$", "工单-1", "C-1"]
    store.upsert([Record(id=i, kind="sop", doc_id="SOP-A", section=i, text="步骤 " + i) if i.startswith("SOP-A#")
                  else case(i) for i in ids])
    seen, after = [], ""
    while after is not None:
        page, after = store.list_ids(after=after, limit=4)
        seen += [row[0] for row in page]
        assert all(isinstance(row[2], float) and len(row[3]) > 8 for row in page)
    assert seen == sorted(ids, key=lambda s: s.encode())  # SQLite's BINARY order, on PostgreSQL too
    assert store.list_ids(kinds=["sop"])[0][0][0] == "SOP-A#1"
    assert store.sections_of("SOP-A") == ["SOP-A#1", "SOP-A#2", "SOP-A#10"]


def test_feedback_is_stored_found_and_taken_back(store):
    a = store.add_feedback(record_id="C-2", helpful=True, query="真空泵無法啟動", source="ann")
    b = store.add_feedback(record_id="C-3", helpful=False, query_id="C-1", source="bob")
    assert b > a and store.feedback_count() == 2
    assert store.feedback_for_query("真空泵无法启动") == [("C-2", "ann", True)]
    assert store.feedback_between("C-1") == [("C-3", "bob", False)]
    assert store.feedback_between("C-3") == [("C-1", "bob", False)]
    assert store.delete_feedback(a) and not store.delete_feedback(a)
    assert [(f.fid, f.helpful) for f in store.feedback()] == [(b, False)]


def test_pruning_keeps_the_high_water_mark(store):
    for i in range(5):
        store.upsert([case(f"C-{i}")])
    last = store.last_seq()
    assert store.prune_changes(last) == 5 and store.changes_since(0) == []
    assert store.pruned_upto() == last and store.last_seq() == last
    store.prune_changes(1)  # never lowers how far the log was pruned
    assert store.pruned_upto() == last
    store.upsert([case("C-9")])
    assert store.changes_since(last)[0][0] > last


def test_the_store_keeps_its_id_and_schema_version_across_opens(store_url):
    with RecordStore(store_url) as s:
        sid = s.store_id_
        s.upsert([case("C-1")])
    with RecordStore.existing(store_url) as again:
        assert again.store_id_ == sid and again.get("C-1") is not None
        assert again._read(lambda c: c.exec_driver_sql(
            "SELECT value FROM meta WHERE key = 'schema_version'").scalar()) == str(SCHEMA_VERSION)


def test_a_store_that_does_not_exist_is_named_without_its_password(postgres, tmp_path):
    url = postgres.new_database()
    with pytest.raises(Exception, match="no record store") as info:
        RecordStore.existing(url)
    assert postgres.url().split(":")[2].split("@")[0] not in str(info.value)  # the password
    wrong = url.replace(url.split(":")[2].split("@")[0], "not-the-password")
    with pytest.raises(StoreUnavailable) as info:
        RecordStore(wrong).open()
    assert "not-the-password" not in str(info.value) and "***" in str(info.value)


WRITER = textwrap.dedent("""
    import json, sys
    from indexing.records import Record
    from indexing.store import RecordStore
    url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = [f"C-{i:04d}" for i in range(n)]
    if name == "b":
        ids.reverse()  # the two writers meet in the middle, each creating what the other has not
    out = []
    with RecordStore(url) as store:
        for rid in ids:
            r = store.upsert([Record(id=rid, kind="case", title=f"{name} wrote {rid}")])[0]
            own = store.upsert([Record(id=f"{name}-{rid}", kind="case", title="own record")])[0]
            out.append([rid, r.num, r.created, r.changed, own.num])
    print(json.dumps(out))
""")


def test_two_writer_processes_lose_nothing_and_followers_skip_no_position(store_url, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    n = 60
    with RecordStore(store_url) as store:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        procs = [subprocess.Popen([sys.executable, str(script), store_url, name, str(n)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
        followed, last = [], 0
        while any(p.poll() is None for p in procs):  # follow the log as a replica does, while they write
            new = store.changes_since(last)
            if new:
                followed += new
                last = new[-1][0]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out))
        followed += store.changes_since(last)
        log = store.changes_since(0)
        assert followed == log  # nothing committed behind a position a follower had already passed
        assert len({s for s, *_ in log}) == len(log)
        rows = [row for res in results for row in res]
        assert sum(1 for row in rows if row[2]) == n  # each shared id created exactly once
        assert len({row[1] for row in rows}) == n  # and both writers got its one key
        own = [row[4] for row in rows]
        assert len(set(own)) == 2 * n
        assert len(log) == sum(1 for row in rows if row[3]) + 2 * n  # every acknowledged change is in the log
        assert store.total() == 3 * n


def test_backup_and_restore_of_a_postgresql_store_name_pg_dump_and_pg_restore(postgres, tmp_path):
    from caselink.errors import CaselinkError
    from indexing.backup import backup, restore

    url = postgres.new_database()
    password = url.split(":")[2].split("@")[0]
    for attempt in (lambda: backup(url, tmp_path / "cache.sqlite", tmp_path / "bk"),
                    lambda: restore(tmp_path / "bk", url, tmp_path / "cache.sqlite")):
        with pytest.raises(CaselinkError) as info:
            attempt()
        assert "pg_dump" in str(info.value) and "pg_restore" in str(info.value)
        assert info.value.field == "store.url" and password not in str(info.value)
    assert not (tmp_path / "bk").exists()


def test_the_password_can_come_from_the_environment_or_a_pgpass_file(postgres, tmp_path, monkeypatch):
    url = postgres.new_database()
    password = url.split(":")[2].split("@")[0]
    bare = url.replace(f":{password}@", "@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(StoreUnavailable):  # no password anywhere: refused by the server
        RecordStore(bare).open()
    monkeypatch.setenv("PGPASSWORD", password)
    RecordStore(bare).open().close()
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:caselink:{password}\n")
    passfile.chmod(0o600)
    with RecordStore(f"{bare}?passfile={passfile}") as store:
        assert store.total() == 0 and password not in store.where


def test_a_transaction_postgresql_rolled_back_for_a_serialization_failure_is_run_again():
    import sqlalchemy as sa

    from indexing.store_db import retrying

    class Orig(Exception):
        def __init__(self, sqlstate: str):
            super().__init__(f"SQLSTATE {sqlstate}")
            self.sqlstate = sqlstate

    calls = []

    def transaction(fail_with: str, times: int):
        def run():
            calls.append(fail_with)
            if len(calls) <= times:
                raise sa.exc.OperationalError("UPDATE records ...", {}, Orig(fail_with))
            return "committed"
        return run

    assert retrying(transaction("40001", 2)) == "committed" and len(calls) == 3  # serialization failure
    calls.clear()
    assert retrying(transaction("40P01", 1)) == "committed" and len(calls) == 2  # deadlock
    calls.clear()
    with pytest.raises(sa.exc.OperationalError):  # anything else is not retried: it may have committed
        retrying(transaction("08006", 1))
    assert len(calls) == 1


def test_keyword_statistics_move_with_the_write_that_holds_them_and_roll_back_with_it(store):
    def put(tx, rows, deletes=()):
        return tx.apply_terms(rows, deletes)

    c = store.transaction(lambda tx: put(tx, [("C-1", 4.0, [1, 2, 3]), ("C-2", 2.0, [2, 3]), ("C-3", 6.0, [3])]))
    assert (c.n, c.total_len) == (3, 12.0)
    assert store.term_stats([1, 2, 3, 9]) == ({1: 1, 2: 2, 3: 3}, c)
    again = store.transaction(lambda tx: put(tx, [("C-1", 4.0, [1, 2, 3])]))  # the same again: nothing moves
    assert again == c
    c = store.transaction(lambda tx: put(tx, [("C-1", 1.0, [9])], ["C-2", "C-404"]))
    assert store.term_stats([1, 2, 3, 9])[0] == {3: 1, 9: 1} and (c.n, c.total_len) == (2, 7.0)

    def fails(tx):
        put(tx, [("C-4", 5.0, [1])])
        raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError):
        store.transaction(fails)
    assert store.term_stats([1])[0] == {} and store.term_stats([])[1] == c
    # a record write and the statistics in one transaction: both or neither
    store.write([case("C-5")], then=lambda tx, res, gone: put(tx, [("C-5", 3.0, [5])]))
    assert store.get("C-5") is not None and store.term_stats([5])[0] == {5: 1}


KEYWORD_WRITER = textwrap.dedent("""
    import json, sys
    from indexing.store import RecordStore
    url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with RecordStore(url) as store:
        for i in range(n):
            # the shared ids change terms on every write, from both writers: each write's delta is
            # against what the other left
            rows = [(f"S-{i % 7}", float(i % 5 + 1), [i % 11, 100 + i % 3]), (f"{name}-{i}", 2.0, [i % 13, 200])]
            store.transaction(lambda tx: tx.apply_terms(rows, [f"{name}-{i - 3}"] if i % 4 == 0 else []))
""")


def test_two_processes_updating_keyword_statistics_at_once_lose_no_increment(store_url, tmp_path):
    script = tmp_path / "kw_writer.py"
    script.write_text(KEYWORD_WRITER)
    with RecordStore(store_url) as store:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        procs = [subprocess.Popen([sys.executable, str(script), store_url, name, "80"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err[-2000:]
        # a recount of every record's stored terms is what the increments left
        import sqlalchemy as sa

        engine = sa.create_engine(store.location.url or f"sqlite:///{store.path}")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT dl, terms FROM record_terms")).all()
        engine.dispose()
        recount: dict[int, int] = {}
        for _, terms in rows:
            for k in terms.split(","):
                recount[int(k)] = recount.get(int(k), 0) + 1
        df, corpus = store.term_stats(range(300))
        assert df == recount and corpus.n == len(rows) and corpus.total_len == sum(dl for dl, _ in rows)


def test_records_are_the_callers_own_copy_unless_shared(store):
    store.upsert([case("C-1", error_codes=["E1023"], attributes={"site": "F12"}, links=["PO-1"])])
    mine = store.records(["C-1"])["C-1"]
    mine.error_codes.append("W3001")  # nested fields too: a shallow copy would share these with the cache
    mine.attributes["site"] = "F14"
    mine.links.clear()
    again = store.records(["C-1"])["C-1"]
    assert (again.error_codes, again.attributes, again.links) == (["E1023"], {"site": "F12"}, ["PO-1"])
    # shared: the parse cache's record itself, the same object while the stored body is unchanged,
    # a new one once it changes (an edit is never served stale).
    shared = store.records(["C-1"], shared=True)["C-1"]
    assert store.records(["C-1"], shared=True)["C-1"] is shared and shared is not again
    store.upsert([case("C-1", "干泵跳停", error_codes=["E1023"])])
    edited = store.records(["C-1"], shared=True)["C-1"]
    assert edited is not shared and edited.title == "干泵跳停" and shared.title == "干泵异常停机 E1023"
