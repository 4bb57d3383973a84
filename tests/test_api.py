"""The HTTP API over real HTTP: a real index in tmp_path, the real app under uvicorn on loopback."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from _server import build_index, make_settings, serve

from api.app import NO_KEY_WARNING, check_bind
from caselink.errors import ConfigError
from recommender.results import SearchQuery

WRITE_KEY, READ_KEY = "rw-test-key", "ro-test-key"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("open"), server__max_body_bytes=64_000,
                             server__max_document_bytes=200_000, server__max_text_chars=2_000, server__max_batch=20)
    build_index(settings)
    with serve(settings) as running:
        yield running


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("keyed"), server__api_keys=[WRITE_KEY],
                             server__read_keys=[READ_KEY])
    build_index(settings)
    with serve(settings) as running:
        yield running


@pytest.fixture()
def client(srv):
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        yield c


def problem(resp: httpx.Response, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert {"type", "title", "status", "detail", "field"} <= body.keys() and body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return body


def search(client, text, **kw) -> dict:
    resp = client.post("/v1/search", json={"text": text, **kw})
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids(results) -> list[str]:
    return [r["id"] for r in results]


# -- search and related ---------------------------------------------------------------------------
def test_chinese_symptom_finds_case_with_explanation(client):
    body = search(client, "真空泵无法启动", k=5)
    top = body["results"][0]
    assert top["id"] == "C-1001" and top["kind"] == "case"
    assert "真空泵" in top["highlights"] and top["explanation"]["reason"]
    assert body["mode"] == "hybrid" and "total" in body["timings_ms"]


def test_traditional_query_finds_simplified_record(client):
    assert ids(search(client, "真空泵無法啟動，報警", k=3)["results"])[0] == "C-1001"


def test_error_code_ranks_records_with_that_code_first(client):
    body = search(client, "主轴 E2040", k=6)
    assert {"C-1002", "P-2003", "SOP-SPN-02#1"} == set(ids(body["results"][:3]))
    assert all("E2040" in r["error_codes"] for r in body["results"][:3])
    assert search(client, "e-2040")["path"] == "keyword"


def handoffs(monkeypatch) -> list[str]:
    """The names of the functions handed to the server's thread pool from now on (every hand-off
    goes through anyio.to_thread.run_sync), the store follower's own rounds left out."""
    import anyio.to_thread

    seen: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func, *args, **kwargs):
        name = getattr(getattr(func, "func", func), "__name__", repr(func))
        if name not in ("behind", "follow"):
            seen.append(name)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return seen


def test_a_search_is_one_handoff_to_the_thread_pool_and_answers_what_the_service_does(srv, client, monkeypatch):
    # Each hand-off to a worker thread and back cost 45 us at the median and milliseconds on a busy
    # machine: the dependencies (settings, service, key check) and the answer's check against the
    # response model used to take five more per search.
    seen = handoffs(monkeypatch)
    for body in ({"text": "真空泵 E1023", "k": 3}, {"text": "spindle vibration", "grouped": True}):
        resp = client.post("/v1/search", json=body)
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        assert seen == ["_answer"], seen
        seen.clear()
        want = srv.service.search(SearchQuery(**{**body, "grouped": False}))
        got = resp.json()
        assert [r["id"] for r in got["results"]] == [r.id for r in want.results]
        if not body.get("grouped"):
            assert {**got, "timings_ms": {}} == {**want.model_dump(mode="json"), "timings_ms": {}}
        else:
            assert {"sops", "problems", "cases", "code_cards"} <= got.keys()


def test_search_filters_by_kind_and_product(client):
    body = search(client, "真空泵", kind=["sop"])
    assert ids(body["results"]) == ["SOP-VAC-01#3"]
    assert {r["product"] for r in search(client, "报警", product=["hx-m100"])["results"]} == {"HX-M100"}


def test_related_excludes_itself_and_groups_by_kind(client):
    body = client.get("/v1/records/C-1001/related", params={"k": 6}).json()
    flat = ids(body["results"])
    assert "C-1001" not in flat and "P-2001" in flat and "SOP-VAC-01#3" in flat
    assert sorted(flat) == sorted(ids(body["cases"] + body["problems"] + body["sops"]))
    assert all(r["kind"] == "sop" for r in body["sops"])
    only = client.get("/v1/records/C-1001/related", params=[("kind", "sop"), ("kind", "problem")]).json()
    assert {r["kind"] for r in only["results"]} <= {"sop", "problem"} and not only["cases"]
    unlinked = client.get("/v1/records/C-1001/related", params={"exclude_linked": "true"}).json()
    assert "P-2001" not in ids(unlinked["results"])


def test_related_to_an_unsaved_record_ranks_as_if_it_were_stored(client):
    """A ticket being written: POST /v1/related ranks its fields as GET .../related ranks a stored
    record's, stores nothing, and leaves the stored record with the posted id out."""
    stored = client.get("/v1/records/C-1001").json()
    draft = {f: stored[f] for f in ("title", "text", "product", "module", "error_codes", "cause", "resolution")}
    before = client.get("/v1/stats").json()

    as_new = client.post("/v1/related", json={"record": draft, "k": 6})
    assert as_new.status_code == 200, as_new.text
    body = as_new.json()
    assert body["id"] is None
    assert ids(body["results"])[0] == "C-1001"  # its stored twin, found as the closest record
    assert sorted(ids(body["results"])) == sorted(ids(body["cases"] + body["problems"] + body["sops"]))

    same = client.post("/v1/related", json={"record": {**draft, "id": "C-1001", "links": stored["links"]}, "k": 6})
    got = client.get("/v1/records/C-1001/related", params={"k": 6}).json()
    assert same.json()["id"] == "C-1001"
    assert [(r["id"], r["score"]) for r in same.json()["results"]] == [(r["id"], r["score"]) for r in got["results"]]
    unlinked = client.post("/v1/related", json={"record": {**draft, "id": "C-1001", "links": ["P-2001"]},
                                                "exclude_linked": True}).json()
    assert "P-2001" not in ids(unlinked["results"]) and "C-1001" not in ids(unlinked["results"])

    only = client.post("/v1/related", json={"record": {"title": "E2040"}, "kind": ["sop"]}).json()
    assert ids(only["results"])[0] == "SOP-SPN-02#1" and {r["kind"] for r in only["results"]} == {"sop"}
    after = client.get("/v1/stats").json()
    assert (after["total"], after["change_seq"]) == (before["total"], before["change_seq"])
    assert client.get("/v1/records/%28draft%29").status_code == 404


def test_listing_ids_page_by_page_sees_every_record_once_and_writes_in_between(client):
    """A source system reconciling: walk the pages; a delete that never arrived is an id it lacks."""
    def walk(**params):
        seen, after, pages = [], "", 0
        while True:
            page = client.get("/v1/records", params={"limit": 4, "after": after, **params})
            assert page.status_code == 200, page.text
            body = page.json()
            seen += body["records"]
            pages += 1
            if body["next_after"] is None:
                return seen, pages
            assert body["next_after"] == body["records"][-1]["id"]
            after = body["next_after"]

    rows, pages = walk()
    listed = [r["id"] for r in rows]
    stored = client.get("/v1/stats").json()["total"]
    assert len(listed) == stored and len(set(listed)) == stored and listed == sorted(listed)
    assert pages == -(-stored // 4)  # a full last page already says it is the last (no empty page after it)
    sops, _ = walk(kind="sop")
    assert {r["id"] for r in sops} == {r["id"] for r in rows if r["kind"] == "sop"} and sops

    rid = f"C-LIST-{uuid.uuid4().hex[:8]}"
    client.put(f"/v1/records/{rid}", json={"kind": "case", "title": "列表测试 E7001"})
    again = {r["id"]: r for r in walk()[0]}
    assert rid in again and again[rid]["updated"] >= max(r["updated"] for r in rows)
    unchanged = again[listed[0]]
    client.put(f"/v1/records/{rid}", json={"kind": "case", "title": "列表测试 E7001"})  # identical resend
    assert {r["id"]: r for r in walk()[0]}[rid] == again[rid]
    client.put(f"/v1/records/{rid}", json={"kind": "case", "title": "列表测试 E7002"})
    changed = {r["id"]: r for r in walk()[0]}[rid]
    assert changed["hash"] != again[rid]["hash"] and unchanged == {r["id"]: r for r in rows}[listed[0]]
    client.delete(f"/v1/records/{rid}")
    assert rid not in {r["id"] for r in walk()[0]}
    for params, field in [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"kind": "ticket"}, "kind.0"),
                          ({"after": "x" * 201}, "after")]:
        problem(client.get("/v1/records", params=params), 422, field)


@pytest.mark.parametrize("body,field", [
    ({"record": {}}, "record"),  # nothing to compare
    ({"record": {"title": "  "}}, "record"),
    ({"record": {"text": "x", "kind": "ticket"}}, "record.kind"),
    ({"record": {"text": "x", "created": "yesterday"}}, "record.created"),
    ({"record": {"text": "x", "id": "a/b"}}, "record.id"),
    ({"record": {"text": "x", "colour": "red"}}, "record.colour"),
    ({"record": {"text": "x"}, "k": 0}, "k"),
    ({"record": {"text": "x"}, "k": 1000}, "k"),
    ({"record": {"text": "x"}, "mode": "fuzzy"}, "mode"),
    ({"text": "x"}, "record"),
])
def test_bad_related_bodies_name_the_field(client, body, field):
    problem(client.post("/v1/related", json=body), 422, field)


def test_open_only_drops_finished_cases_and_problem_orders_everywhere(client):
    everything = search(client, "真空泵 报警 E1023 冷却 主轴", k=50)["results"]
    assert "closed" in {r["status"] for r in everything}
    opened = search(client, "真空泵 报警 E1023 冷却 主轴", k=50, open_only=True)["results"]
    assert sorted(ids(opened)) == sorted(r["id"] for r in everything if r["status"] != "closed")
    related = client.get("/v1/records/C-1002/related", params={"open_only": "true", "k": 12}).json()["results"]
    assert "P-2003" in ids(related) and not {"C-1001", "P-2002"} & set(ids(related))
    draft = client.post("/v1/related", json={"record": {"title": "主轴过热 E2040"}, "open_only": True, "k": 12}).json()
    assert "P-2003" in ids(draft["results"]) and "C-1002" not in ids(draft["results"])  # C-1002 is closed


# -- records: get, put, delete, batch -------------------------------------------------------------
def test_get_record_with_url_encoded_id(client):
    rec = client.get("/v1/records/SOP-VAC-01%233").json()
    assert rec["id"] == "SOP-VAC-01#3" and rec["doc_id"] == "SOP-VAC-01"
    problem(client.get("/v1/records/NOPE-1"), 404, "id")


def test_put_is_searchable_at_once_then_delete_removes_it(client):
    rid = f"C-T{uuid.uuid4().hex[:8]}"
    rec = {"kind": "case", "title": "排屑器链条卡死 E7781", "text": "排屑器链条卡死，电机过载报警 E7781。",
           "error_codes": ["E7781"], "product": "HX-L3200"}
    resp = client.put(f"/v1/records/{rid}", json=rec)
    assert resp.status_code == 201 and resp.json() == {"id": rid, "created": True, "changed": True}
    assert ids(search(client, "排屑器链条卡死")["results"])[0] == rid
    assert client.get(f"/v1/records/{rid}").json()["title"] == rec["title"]
    same = client.put(f"/v1/records/{rid}", json={"id": rid, **rec})
    assert same.status_code == 200 and same.json() == {"id": rid, "created": False, "changed": False}
    changed = client.put(f"/v1/records/{rid}", json={**rec, "title": "排屑器链条断裂"})
    assert changed.status_code == 200 and changed.json()["changed"] is True
    problem(client.put(f"/v1/records/{rid}", json={"id": "OTHER", **rec}), 422, "id")
    problem(client.put(f"/v1/records/{rid}", json={**rec, "kind": "ticket"}), 422, "kind")
    # Emptied at the source: refused, and what was stored stays searchable.
    emptied = problem(client.put(f"/v1/records/{rid}", json={"kind": "case", "title": " ", "text": ""}), 422, "text")
    assert "nothing to search" in emptied["detail"] and emptied["hint"]
    assert client.get(f"/v1/records/{rid}").json()["title"] == "排屑器链条断裂"
    assert ids(search(client, "排屑器链条断裂")["results"])[0] == rid
    assert client.delete(f"/v1/records/{rid}").status_code == 204
    problem(client.get(f"/v1/records/{rid}"), 404, "id")
    assert rid not in ids(search(client, "排屑器链条卡死 E7781")["results"])
    problem(client.delete(f"/v1/records/{rid}"), 404, "id")


def test_batch_upsert_and_all_or_nothing(client):
    tag = uuid.uuid4().hex[:6]
    good = [{"id": f"B-{tag}-{i}", "kind": "problem", "title": f"气缸漏气 批次{i}", "text": "气缸密封圈老化漏气"}
            for i in range(3)]
    resp = client.post("/v1/records:batch", json={"records": good})
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 3 and [r["id"] for r in resp.json()["results"]] == ids(good)
    assert f"B-{tag}-0" in ids(search(client, "气缸密封圈漏气")["results"])
    bad = [{"id": f"X-{tag}-{i}", "kind": "case", "title": "ok"} for i in range(5)]
    bad[3]["kind"] = "incident"
    problem(client.post("/v1/records:batch", json={"records": bad}), 422, "records.3.kind")
    problem(client.get(f"/v1/records/X-{tag}-0"), 404)
    twice = [good[0], {**good[0], "title": "气缸漏气 后发"}]  # stored once, as its last occurrence
    resp = client.post("/v1/records:batch", json={"records": twice})
    assert resp.status_code == 200 and [r["id"] for r in resp.json()["results"]] == [f"B-{tag}-0"], resp.text
    assert client.get(f"/v1/records/B-{tag}-0").json()["title"] == "气缸漏气 后发"
    empty = [{"id": f"E-{tag}-0", "kind": "case", "title": "ok"}, {"id": f"E-{tag}-1", "kind": "case", "status": "open"}]
    problem(client.post("/v1/records:batch", json={"records": empty}), 422, "records.1.text")
    problem(client.get(f"/v1/records/E-{tag}-0"), 404)
    too_many = [{"id": f"M-{tag}-{i}", "kind": "case"} for i in range(21)]
    problem(client.post("/v1/records:batch", json={"records": too_many}), 422, "records")

    # A purge: what is stored goes, what is not is listed, and a retry finishes instead of failing.
    purge = {"ids": [f"B-{tag}-0", f"B-{tag}-1", "NOT-STORED", f"B-{tag}-0"]}
    resp = client.post("/v1/records:batchDelete", json=purge)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted": [f"B-{tag}-0", f"B-{tag}-1"], "missing": ["NOT-STORED"]}
    assert client.post("/v1/records:batchDelete", json=purge).json()["deleted"] == []
    assert ids(search(client, "气缸密封圈漏气")["results"]).count(f"B-{tag}-2") == 1
    assert not {f"B-{tag}-0", f"B-{tag}-1"} & set(ids(search(client, "气缸密封圈漏气 批次")["results"]))
    problem(client.post("/v1/records:batchDelete", json={"ids": [f"x{i}" for i in range(21)]}), 422, "ids")
    problem(client.post("/v1/records:batchDelete", json={"ids": []}), 422, "ids")


# -- SOP documents as files -----------------------------------------------------------------------
MD = "text/markdown; charset=utf-8"


def test_a_document_put_replaces_it_whole_and_delete_removes_every_section(client):
    doc = f"SOP-D{uuid.uuid4().hex[:6]}"
    first = "# 干泵更换\n## 1. 准备\n关闭电源，确认 E1023 已复位。\n## 2. 拆卸\n拆下泵体与排气管。\n"
    old = first + "## 3. 校准\n用旧版工装 PN-0009-01 校准转速。\n"
    resp = client.put(f"/v1/documents/{doc}", content=old.encode(), headers={"Content-Type": MD})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["title"] == "干泵更换" and [s["id"] for s in body["sections"]] == [f"{doc}#1", f"{doc}#2", f"{doc}#3"]
    assert (body["created"], body["updated"], body["removed"]) == (3, 0, [])
    assert ids(search(client, "PN-0009-01")["results"])[0] == f"{doc}#3"

    resp = client.put(f"/v1/documents/{doc}", content=first.encode("gbk"),
                      headers={"Content-Type": "text/markdown; charset=gbk"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["unchanged"], resp.json()["removed"]) == (2, [f"{doc}#3"])
    assert f"{doc}#3" not in ids(search(client, "PN-0009-01 旧版工装 校准")["results"])
    problem(client.get(f"/v1/records/{doc}%233"), 404)
    assert [s["section"] for s in client.get(f"/v1/documents/{doc}").json()["sections"]] == ["1. 准备", "2. 拆卸"]

    assert client.delete(f"/v1/documents/{doc}").status_code == 204
    problem(client.get(f"/v1/documents/{doc}"), 404, "doc_id")
    problem(client.delete(f"/v1/documents/{doc}"), 404, "doc_id")
    assert not [i for i in ids(search(client, "干泵更换 关闭电源 拆下泵体")["results"]) if i.startswith(doc)]


def test_a_document_as_docx_and_what_is_refused(client, tmp_path):
    import docx

    doc = f"SOP-X{uuid.uuid4().hex[:6]}"
    d = docx.Document()
    d.add_heading("射频电源检修", level=1)
    d.add_heading("1. 检查反射功率", level=2)
    d.add_paragraph("反射功率超过 50 W 时报 A-4410，检查匹配器。")
    d.save(tmp_path / "rf.docx")
    resp = client.put(f"/v1/documents/{doc}?format=docx", content=(tmp_path / "rf.docx").read_bytes(),
                      headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    assert ids(search(client, "A-4410 反射功率")["results"])[0] == resp.json()["sections"][0]["id"]

    text = "# 手册\n## 1. 步骤\n内容\n".encode()
    bad = problem(client.put(f"/v1/documents/{doc}", content=text, headers={"Content-Type": "application/zip"}), 415,
                  "Content-Type")
    assert "?format=" in bad["hint"]
    front = "---\ndoc_id: SOP-OTHER\n---\n# 手册\n## 1. 步骤\n内容\n".encode()
    problem(client.put(f"/v1/documents/{doc}", content=front, headers={"Content-Type": MD}), 400, "doc_id")
    long_heading = ("# 手册\n## 1. 步骤\n内容\n## " + "长" * 1001 + "\n内容\n").encode()
    problem(client.put(f"/v1/documents/{doc}", content=long_heading, headers={"Content-Type": MD}), 422,
            "sections.2.section")
    problem(client.put(f"/v1/documents/{doc}", content=b"", headers={"Content-Type": MD}), 400, "body")
    problem(client.put(f"/v1/documents/{doc}?format=pdf", content=b"not a pdf"), 400)
    # Refused uploads changed nothing; a document is allowed more than a JSON body, up to its own limit.
    assert [s["section"] for s in client.get(f"/v1/documents/{doc}").json()["sections"]] == ["1. 检查反射功率"]
    big = ("# 大手册\n## 1. 步骤\n" + "检查真空泵。" * 12_000 + "\n").encode()  # 216 kB > 200 kB
    problem(client.put(f"/v1/documents/{doc}", content=big, headers={"Content-Type": MD}), 413, "body")
    roomy = ("# 大手册\n## 1. 步骤\n" + "检查真空泵。" * 5_000 + "\n").encode()  # 90 kB > the 64 kB JSON limit
    assert client.put(f"/v1/documents/{doc}", content=roomy, headers={"Content-Type": MD}).status_code == 200
    assert client.delete(f"/v1/documents/{doc}").status_code == 204


# -- feedback, stats, ops -------------------------------------------------------------------------
def test_feedback_is_stored_and_exported(client, srv):
    q = f"真空泵 {uuid.uuid4().hex[:6]}"
    votes = client.get("/v1/stats").json()["feedback"]
    resp = client.post("/v1/feedback", json={"record_id": "C-1001", "helpful": True, "query": q, "source": "t"})
    assert resp.status_code == 201 and isinstance(resp.json()["id"], int)
    resp = client.post("/v1/feedback", json={"record_id": "P-2001", "helpful": False, "query_id": "C-1001"})
    assert resp.status_code == 201
    stored = {(f.query, f.record_id, f.helpful) for f in srv.service.store.feedback()}
    assert (q, "C-1001", True) in stored and ("", "P-2001", False) in stored
    assert client.get("/v1/stats").json()["feedback"] == votes + 2
    export = client.get("/v1/feedback/export")
    assert export.headers["content-type"].startswith("text/tab-separated-values")
    rows = [line.split("\t") for line in export.text.splitlines()]
    assert rows[0][:3] == ["id_a", "id_b", "label"]
    assert [q, "C-1001", "1", "text"] in [r[:4] for r in rows] and ["C-1001", "P-2001", "0", "id"] in [r[:4] for r in rows]
    problem(client.post("/v1/feedback", json={"record_id": "C-1001", "helpful": True}), 422, "query")
    problem(client.post("/v1/feedback", json={"record_id": "NOPE", "helpful": True, "query": "x"}), 404, "record_id")
    problem(client.post("/v1/feedback", json={"record_id": "C-1001", "helpful": "maybe", "query": "x"}), 422, "helpful")
    problem(client.post("/v1/feedback", json={"record_id": "C-1001", "helpful": True, "query_id": "C-1001"}), 422,
            "query_id")


def test_feedback_on_a_record_reorders_what_is_related_to_it(client):
    def related(k=8):
        resp = client.get("/v1/records/C-1002/related", params={"k": k})
        assert resp.status_code == 200, resp.text
        return resp.json()["results"]

    last = related()[-1]["id"]
    source = f"eng-{uuid.uuid4().hex[:6]}"
    vote = {"record_id": last, "query_id": "C-1002", "source": source}
    assert client.post("/v1/feedback", json={**vote, "helpful": True}).status_code == 201
    top = related()[0]
    assert top["id"] == last and top["explanation"]["helpful_votes"] == 1
    assert top["explanation"]["reason"].startswith("marked helpful for this record")
    # The same engineer changes their mind: the latest verdict counts, once.
    assert client.post("/v1/feedback", json={**vote, "helpful": False}).status_code == 201
    assert last not in [r["id"] for r in related()]  # below every record nobody judged
    after = related(k=100)
    assert after[-1]["id"] == last and after[-1]["explanation"]["unhelpful_votes"] == 1
    assert after[-1]["explanation"]["helpful_votes"] == 0


def test_a_vote_taken_back_no_longer_counts(client, srv):
    def first():
        resp = client.get("/v1/records/C-1003/related", params={"k": 8})
        assert resp.status_code == 200, resp.text
        return resp.json()["results"][0]

    plain = first()["id"]
    candidates = [r["id"] for r in client.get("/v1/records/C-1003/related", params={"k": 8}).json()["results"]]
    target = candidates[-1]
    source = f"eng-{uuid.uuid4().hex[:6]}"
    earlier = client.post("/v1/feedback", json={"record_id": target, "query_id": "C-1003", "helpful": True,
                                                "source": source}).json()["id"]
    wrong = client.post("/v1/feedback", json={"record_id": target, "query_id": "C-1003", "helpful": False,
                                              "source": source}).json()["id"]
    assert first()["id"] == plain  # the latest vote (not helpful) counts
    resp = client.delete(f"/v1/feedback/{wrong}")
    assert resp.status_code == 204
    assert first()["id"] == target  # the source's earlier vote (helpful) counts again
    assert wrong not in {f.fid for f in srv.service.store.feedback()}
    assert client.delete(f"/v1/feedback/{earlier}").status_code == 204
    assert first()["id"] == plain
    body = problem(client.delete(f"/v1/feedback/{wrong}"), 404, "feedback_id")
    assert body["title"] == "Vote not found" and f"no vote with id {wrong}" in body["detail"]
    problem(client.delete("/v1/feedback/0"), 422, "feedback_id")
    problem(client.delete("/v1/feedback/abc"), 404)  # a vote id is a number: no such route


def test_stats_health_ready_docs(client):
    stats = client.get("/v1/stats").json()
    assert stats["records"]["sop"] == 3 and stats["model"] == "use-m3" and stats["dim"] == 512
    assert stats["indexed"] == stats["total"]
    assert stats["centering"] == []  # a handful of records: too few to centre
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/records:batch", "/v1/records/{record_id}/related", "/v1/feedback"} <= paths.keys()
    assert client.get("/docs").status_code == 200


def test_metrics_count_requests_by_route_template(client):
    search(client, "液压压力不足")
    client.get("/v1/records/C-1002")
    text = client.get("/metrics").text
    assert 'caselink_http_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'route="/v1/records/{record_id}"' in text and "C-1002" not in text
    assert "caselink_http_request_duration_seconds_bucket" in text and "caselink_index_records" in text


# -- auth -----------------------------------------------------------------------------------------
def test_auth_read_and_write_keys(keyed):
    rw, ro = {"Authorization": f"Bearer {WRITE_KEY}"}, {"Authorization": f"Bearer {READ_KEY}"}
    with httpx.Client(base_url=keyed.url, timeout=60) as c:
        resp = c.post("/v1/search", json={"text": "E1023"})
        problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer")
        problem(c.post("/v1/search", json={"text": "E1023"}, headers={"Authorization": "Bearer wrong"}), 401)
        problem(c.get("/metrics"), 401)
        assert c.post("/v1/search", json={"text": "E1023"}, headers=ro).status_code == 200
        assert c.get("/metrics", headers=ro).status_code == 200
        rec = {"kind": "case", "title": "read-only test"}
        problem(c.put("/v1/records/K-1", json=rec, headers=ro), 403)
        problem(c.delete("/v1/records/C-1001", headers=ro), 403)
        problem(c.post("/v1/records:batch", json={"records": [{"id": "K-2", **rec}]}, headers=ro), 403)
        problem(c.post("/v1/feedback", json={"record_id": "C-1001", "helpful": True, "query": "x"}, headers=ro), 403)
        assert c.put("/v1/records/K-1", json=rec, headers=rw).status_code == 201
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200


def test_check_bind_refuses_open_server_off_loopback(tmp_path):
    with pytest.raises(ConfigError, match="without an API key"):
        check_bind(make_settings(tmp_path, server__host="0.0.0.0"))
    assert check_bind(make_settings(tmp_path, server__host="localhost")) == NO_KEY_WARNING
    assert check_bind(make_settings(tmp_path, server__host="::1")) == NO_KEY_WARNING
    assert check_bind(make_settings(tmp_path, server__host="0.0.0.0", server__api_keys=["k"])) is None


def test_open_server_rejects_foreign_host_header(client):
    problem(client.get("/v1/stats", headers={"Host": "attacker.example"}), 400, "Host")


def test_missing_index_serves_health_and_503(tmp_path):
    with serve(make_settings(tmp_path), wait_for="/healthz") as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/healthz").status_code == 200
        problem(c.get("/readyz"), 503)
        body = problem(c.post("/v1/search", json={"text": "x"}), 503)
        assert "no index" in body["detail"]


# -- bad input: always a 4xx problem naming the field, never 5xx ----------------------------------
@pytest.mark.parametrize("payload,field", [
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"k": 5}, "text"),
    ({"text": "x", "k": "many"}, "k"),
    ({"text": "x", "k": 0}, "k"),
    ({"text": "x", "k": 101}, "k"),
    ({"text": "x", "kind": ["ticket"]}, "kind.0"),
    ({"text": "x", "mode": "fuzzy"}, "mode"),
    ({"text": "x", "min_score": 2}, "min_score"),
    ({"text": "x", "created_from": "2024-13-45"}, "created_from"),
    ({"text": "x" * 2_001}, "text"),
    ({"text": 42}, "text"),
    ([1, 2], "body"),
])
def test_bad_search_bodies_name_the_field(client, payload, field):
    problem(client.post("/v1/search", json=payload), 422, field)


def test_malformed_or_non_json_bodies(client):
    headers = {"Content-Type": "application/json"}
    body = problem(client.post("/v1/search", content=b'{"text": "x",', headers=headers), 422, "body")
    assert "not valid JSON" in body["detail"]
    problem(client.post("/v1/search", content=b'{"text": "x"}', headers={"Content-Type": "text/plain"}), 422, "body")
    problem(client.post("/v1/search", content=b"\xff\xfe{", headers=headers), 400, "body")  # not UTF-8
    problem(client.put("/v1/records/%20padded", json={"kind": "case"}), 422, "id")


def test_every_answer_carries_a_request_id_that_errors_and_the_access_log_repeat(client, caplog):
    import logging
    import re

    from api.observe import RequestIdFilter

    caplog.set_level(logging.DEBUG, logger="caselink.access")
    caplog.handler.addFilter(RequestIdFilter())
    mine = client.get("/v1/records/NOPE", headers={"X-Request-ID": "crm-4711"})
    assert mine.headers["x-request-id"] == "crm-4711" and mine.json()["request_id"] == "crm-4711"
    made = [client.get("/v1/records/NOPE", headers={"X-Request-ID": bad}) for bad in ("two words", "x" * 129)]
    made.append(client.post("/v1/search", json={"text": "真空泵 秘密的工单内容"}))
    made.append(client.post("/v1/search", content=b'{"text": "' + b"x" * 70_000 + b'"}',
                            headers={"Content-Type": "application/json"}))  # answered by the body guard
    rids = [r.headers["x-request-id"] for r in made]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in rids) and len(set(rids)) == len(rids)
    assert made[0].json()["request_id"] == rids[0] and made[3].status_code == 413 and made[3].json()["request_id"] == rids[3]
    client.get("/healthz")

    lines = {r.request_id: r for r in caplog.records if r.name == "caselink.access"}
    assert lines["crm-4711"].getMessage().startswith("127.0.0.1 GET /v1/records/NOPE 404 ")
    assert lines["crm-4711"].levelno == logging.INFO and lines[rids[2]].getMessage().startswith("127.0.0.1 POST /v1/search 200 ")
    assert lines[rids[3]].getMessage().startswith("127.0.0.1 POST /v1/search 413 ")
    assert not any("秘密" in r.getMessage() for r in caplog.records)  # search text is never logged
    probes = [r for r in caplog.records if r.name == "caselink.access" and " /healthz " in r.getMessage()]
    assert probes and all(r.levelno == logging.DEBUG for r in probes)


def test_oversize_bodies_are_413(client):
    big = b'{"text": "' + b"x" * 70_000 + b'"}'
    problem(client.post("/v1/search", content=big, headers={"Content-Type": "application/json"}), 413, "body")
    chunks = iter([big[:40_000], big[40_000:]])  # no Content-Length: streamed, capped while reading
    problem(client.post("/v1/search", content=chunks, headers={"Content-Type": "application/json"}), 413)


@pytest.mark.parametrize("method,path,params", [
    ("GET", "/v1/records/C-1001/related", {"k": 0}),
    ("GET", "/v1/records/C-1001/related", {"k": 1000}),
    ("GET", "/v1/records/C-1001/related", {"mode": "fuzzy"}),
    ("GET", "/v1/records/C-1001/related", {"kind": "ticket"}),
    ("GET", "/v1/records/NOPE/related", {}),
    ("GET", "/nowhere", {}),
    ("POST", "/v1/records/C-1001", {}),
])
def test_bad_requests_are_4xx_problems(client, method, path, params):
    resp = client.request(method, path, params=params)
    assert 400 <= resp.status_code < 500
    problem(resp, resp.status_code)


def test_server_picks_up_records_another_process_stored(tmp_path):
    """`caselink index` run while the server is up: its records become searchable without a restart."""
    from caselink.config import load_settings
    from indexing.records import Record
    from recommender.service import CaselinkService

    settings = make_settings(tmp_path, server__follow_seconds=0.2)
    build_index(settings)
    with serve(settings) as srv:
        other = CaselinkService.open(load_settings(env={}, data_dir=settings.data_dir))
        other.upsert([Record(id="C-OTHER", kind="case", title="离线写入的记录 E6543", error_codes=["E6543"])])
        other.close()
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            while time.monotonic() < deadline:
                ids = [r["id"] for r in client.post("/v1/search", json={"text": "E6543"}).json()["results"]]
                if ids[:1] == ["C-OTHER"]:
                    break
                time.sleep(0.1)  # polling with a deadline, not papering over a race
        assert ids[:1] == ["C-OTHER"]
