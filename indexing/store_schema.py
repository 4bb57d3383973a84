"""The record store's tables over time: what each schema version added, and how a store written
by older code is brought up to date when it is opened (:meth:`indexing.store.RecordStore.open`).
The tables themselves, per database, are in :mod:`indexing.store_db`.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from indexing.normalize import normalize
from indexing.store_db import CORPUS_ROWS, FEEDBACK, INDEXES, POSTGRES_SCHEMA, SQL, SQLITE_SCHEMA

# 2: feedback.query_key (the normalised query text) and the feedback indexes. Opening a version 1
# store adds and fills them; version 1 code can still open a version 2 store.
# 3: changes.id, the record id each change is about: a search backend speaks record ids, and a
# deleted record's id is nowhere else once its row is gone. Opening an older store adds the column
# and fills it from the records still stored; older code can still open a version 3 store.
# 4: record_terms, term_df and corpus, the keyword statistics a shared search backend reads
# (indexing/store_terms.py). Opening an older store adds them empty; the backend counts its
# records into them when it opens (MilvusBackend). Older code can still open a version 4 store.
SCHEMA_VERSION = 4


def query_key(text: str) -> str:
    """What makes two search texts "the same search": :func:`~indexing.normalize.normalize`d
    (one script, half-width, case-folded, single spaces), independent of the text settings."""
    return normalize(text)


def set_up(conn: Connection, *, postgres: bool) -> str:
    """Create the tables, bring an older store up to :data:`SCHEMA_VERSION`, name the store, and
    return its id. Run in the store's write transaction, so two processes opening a new store at
    once do it once."""
    schema = POSTGRES_SCHEMA if postgres else SQLITE_SCHEMA
    for stmt in (s for s in schema.split(";") if s.strip()):
        conn.exec_driver_sql(stmt)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feedback")}
    if "query_key" not in columns:
        conn.exec_driver_sql("ALTER TABLE feedback ADD COLUMN query_key TEXT NOT NULL DEFAULT ''")
        rows = conn.execute(sa.text("SELECT fid, query FROM feedback WHERE query != ''")).all()
        if rows:
            conn.execute(sa.update(FEEDBACK).where(FEEDBACK.c.fid == sa.bindparam("b_fid")),
                         [{"b_fid": f, "query_key": query_key(q)} for f, q in rows])
        conn.execute(SQL["meta_set"], {"key": "schema_version", "value": str(SCHEMA_VERSION)})
    if "id" not in {c["name"] for c in sa.inspect(conn).get_columns("changes")}:
        # A change about a record deleted before version 3 keeps id NULL: nothing names it any
        # more (see changes_since).
        conn.exec_driver_sql("ALTER TABLE changes ADD COLUMN id TEXT")
        conn.exec_driver_sql("UPDATE changes SET id = (SELECT id FROM records WHERE records.num = changes.num)")
        conn.execute(SQL["meta_set"], {"key": "schema_version", "value": str(SCHEMA_VERSION)})
    for stmt in (s for s in INDEXES.split(";") if s.strip()):
        conn.exec_driver_sql(stmt)
    version = conn.execute(SQL["meta"], {"key": "schema_version"}).scalar()
    if version is not None and int(version) < SCHEMA_VERSION:  # the tables above were just added
        conn.execute(SQL["meta_set"], {"key": "schema_version", "value": str(SCHEMA_VERSION)})
    for name in CORPUS_ROWS:
        conn.execute(SQL["corpus_add"], {"name": name})
    conn.execute(SQL["meta_add"], {"key": "schema_version", "value": str(SCHEMA_VERSION)})
    # Names this store for the index built from it: an index never serves another store's
    # records (a data folder pointed at another store). A backup keeps the id.
    conn.execute(SQL["meta_add"], {"key": "store_id", "value": uuid.uuid4().hex})
    return conn.execute(SQL["meta"], {"key": "store_id"}).scalar_one()
