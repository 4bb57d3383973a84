"""Stateless replicas on the Milvus backend: two ``caselink serve`` processes share one record store
on a real PostgreSQL and one collection on a real Milvus (the session's servers). A write
acknowledged by A is searchable on B when A's call returns: B is asked once, never polled (its
change-log follower is set to a minute, so it cannot be what finds the write). Both writing at
once lose nothing, and the document frequencies they leave equal a rebuild's."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from _proc import ServerProcess

from caselink.config import load_settings
from indexing.store import RecordStore
from recommender.service import CaselinkService
from tests.conftest import CORPUS

FOLLOW_S = 60  # B's follower stays out of it: what B finds, it finds through Milvus and the store


@pytest.fixture(scope="module")
def replicas(postgres, milvus_uri, tmp_path_factory, use_encoder):
    url = postgres.new_database()
    work = tmp_path_factory.mktemp("milvus-replicas")
    collection = f"replicas_{uuid.uuid4().hex[:8]}"
    env = {"CASELINK_STORE_URL": url, "CASELINK_BACKEND": "milvus", "CASELINK_BACKEND_URI": milvus_uri,
           "CASELINK_BACKEND_COLLECTION": collection}

    def settings(name: str):
        return load_settings(env=env, data_dir=work / name)

    # A builds the store and the collection; B builds its side (tokeniser, centring) from the same
    # store, which rebuilds the collection from it once more, before either serves.
    for name, records in (("a", CORPUS), ("b", None)):
        svc, _ = CaselinkService.build(settings(name), encoder=use_encoder, records=records)
        svc.close()
    config = work / "caselink.toml"
    config.write_text(f"[server]\nfollow_seconds = {FOLLOW_S}\n")
    servers = [ServerProcess(work / name, work, config=config, name=name) for name in "ab"]
    for srv in servers:
        srv.env.update(env)
    try:
        for srv in servers:
            srv.start()
        yield servers, settings, url
    finally:
        for srv in servers:
            srv.stop()


def found(client: httpx.Client, base: str, text: str, mode: str = "keyword") -> list[str]:
    resp = client.post(f"{base}/v1/search", json={"text": text, "k": 10, "mode": mode})
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def case(rid: str, code: str, words: str) -> dict:
    return {"kind": "case", "title": f"真空泵报警 {code}", "text": f"{words} {code} on the dry pump",
            "error_codes": [code]}


def test_writes_on_one_replica_are_searchable_on_the_other_when_the_call_returns(replicas):
    (a, b), _, _ = replicas
    code = f"ZX-{uuid.uuid4().hex[:6].upper()}"
    rid = f"C-{code}"
    with httpx.Client(timeout=60) as client:
        assert client.put(f"{a.url}/v1/records/{rid}", json=case(rid, code, "alarm")).status_code == 201
        assert found(client, b.url, code)[0] == rid  # asked once, right after A answered
        assert rid in found(client, b.url, code, mode="hybrid")[:3]

        batch = [{"id": f"{rid}-{i}", "kind": "case", "title": f"批量 {code} {i}", "text": f"batch {code} part {i}"}
                 for i in range(3)]
        assert client.post(f"{a.url}/v1/records:batch", json={"records": batch}).status_code == 200
        assert client.delete(f"{a.url}/v1/records/{rid}").status_code == 204
        assert set(found(client, b.url, code)) == {f"{rid}-{i}" for i in range(3)}

        # feedback on A: B's related records for C-001 bring the voted record, whatever its ranking
        vote = client.post(f"{a.url}/v1/feedback", json={"record_id": f"{rid}-1", "query_id": "C-001",
                                                          "helpful": True})
        assert vote.status_code in (200, 201), vote.text
        related = client.get(f"{b.url}/v1/records/C-001/related", params={"k": 10})
        assert related.status_code == 200, related.text
        assert f"{rid}-1" in [r["id"] for r in related.json()["results"]]


def test_both_writing_at_once_lose_nothing_and_leave_a_rebuilds_document_frequencies(replicas, use_encoder):
    (a, b), settings, url = replicas
    token = uuid.uuid4().hex[:5].upper()
    acked: dict[str, str] = {}  # id -> the code its last acknowledged version carries
    errors: list[str] = []
    lock = threading.Lock()

    def writer(srv: ServerProcess, name: str) -> None:
        with httpx.Client(timeout=60) as client:
            for i in range(12):
                # shared ids both replicas rewrite with other words, and ids of their own
                for rid, code in ((f"C-SH-{token}-{i % 3}", f"SH{token}{name}{i}"), (f"C-{name}-{token}-{i}",
                                                                                     f"OW{token}{name}{i}")):
                    resp = client.put(f"{srv.url}/v1/records/{rid}",
                                      json=case(rid, code, f"{name} writer round {i} " + "word " * (i % 4)))
                    if resp.status_code not in (200, 201):
                        errors.append(f"{name} {rid}: {resp.status_code} {resp.text}")
                        continue
                    with lock:
                        acked[rid] = code  # the later acknowledgement of a shared id is the later commit
                if i % 5 == 4:
                    gone = f"C-{name}-{token}-{i - 1}"
                    if client.delete(f"{srv.url}/v1/records/{gone}").status_code == 204:
                        with lock:
                            acked.pop(gone, None)

    threads = [threading.Thread(target=writer, args=(srv, name)) for srv, name in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    with RecordStore(url) as store:
        stored = store.records(acked)
        assert set(stored) == set(acked)  # every acknowledged write is stored
        for rid, code in acked.items():
            if rid.startswith("C-SH-"):
                continue  # which replica's version won is the commit order's; checked below
            assert stored[rid].error_codes == [code]
        with httpx.Client(timeout=60) as client:
            for rid in acked:  # each record's stored version is the one both replicas find
                code = stored[rid].error_codes[0]
                assert found(client, a.url, code)[0] == rid and found(client, b.url, code)[0] == rid
        before = _statistics(store)
    # a rebuild from the store counts the document frequencies again from scratch
    svc, _ = CaselinkService.build(settings("rebuild"), encoder=use_encoder)
    try:
        with RecordStore(url) as store:
            assert _statistics(store) == before
            assert svc.indexed() == store.total()
    finally:
        svc.close()


def _statistics(store: RecordStore) -> tuple:
    import sqlalchemy as sa

    engine = sa.create_engine(store.location.url)
    try:
        with engine.connect() as conn:
            df = dict(conn.execute(sa.text("SELECT term, df FROM term_df")).all())
            terms = dict(conn.execute(sa.text("SELECT id, terms FROM record_terms")).all())
    finally:
        engine.dispose()
    _, corpus = store.term_stats(())
    return df, terms, (corpus.n, round(corpus.total_len, 6))
