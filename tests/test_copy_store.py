"""Moving an existing SQLite store into PostgreSQL with ``caselink copy-store``, run as a user would
(the CLI in a child process), into a fresh database of the session's real PostgreSQL."""

from __future__ import annotations

from _proc import child_env, cli_command, run

from indexing.records import Record
from indexing.store import RecordStore
from tests.conftest import CORPUS


def test_copy_store_moves_records_and_votes_into_an_empty_postgresql_and_refuses_a_full_one(postgres, tmp_path):
    data = tmp_path / "data"
    with RecordStore(data / "records.sqlite") as src:
        src.upsert(CORPUS)
        src.upsert([Record(id="C-001", kind="case", title="干泵异常停机 E1023 (revised)", error_codes=["E1023"])])
        src.delete("C-005")
        first = src.add_feedback(record_id="PO-01", helpful=True, query_id="C-001", source="ann")
        gone = src.add_feedback(record_id="C-003", helpful=False, query="wafer", source="bob")
        src.delete_feedback(gone)
        kept = src.add_feedback(record_id="SOP-VAC#2", helpful=True, query="乾泵 E1023", source="bob")
        want_rows = [r[1:] for r in src.export_rows()]
        want_votes = src.feedback()
    url = postgres.new_database()
    password = url.split(":")[2].split("@")[0]

    done = run(cli_command("copy-store", url), env=child_env(data), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # as one line, however the terminal width wrapped it
    assert f"copied {len(want_rows)} records and 2 votes" in said and password not in said

    with RecordStore.existing(url) as dest:
        assert [r[1:] for r in dest.export_rows()] == want_rows  # bodies, hashes and update times as stored
        assert dest.feedback() == want_votes and [v.fid for v in dest.feedback()] == [first, kept]
        assert dest.feedback_for_query("乾泵 e1023") == [("SOP-VAC#2", "bob", True)]
        assert dest.add_feedback(record_id="C-002", helpful=True, query="x") > kept  # ids go on after the copied
        assert len(dest.changes_since(0)) == len(want_rows)  # a new log: every record once, for caselink index

    again = run(cli_command("copy-store", url), env=child_env(data), cwd=tmp_path)
    assert again.returncode == 2 and "already holds 7 records" in " ".join((again.stdout + again.stderr).split())
    assert password not in again.stdout + again.stderr
