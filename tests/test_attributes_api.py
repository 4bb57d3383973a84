"""The customer's own fields (Record.attributes) over real HTTP: written, returned, filtered on in
search and related (query parameters and body), and what a write with an unknown field is told."""

from __future__ import annotations

import httpx
import pytest
from _server import build_index, demo_records, make_settings, serve

QUOTED = 'Fab "12" \\ or 1==1 ] and [\'x\']'  # filter syntax as data
ATTRS = {"C-1001": {"customer": "ACME Semi", "site": QUOTED, "serial": "SN-0042"},
         "C-1002": {"customer": "Globex", "site": "F14", "sw_version": "4.2.1"},
         "P-2001": {"customer": "acme semi"}}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("attrs"))
    records = [r.model_copy(update={"attributes": ATTRS.get(r.id, {})}) for r in demo_records()]
    build_index(settings, records)
    with serve(settings) as running, httpx.Client(base_url=running.url, timeout=60) as c:
        yield c


def problem(resp: httpx.Response, field: str) -> str:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["field"] == field, body
    return body["detail"]


def ids(results) -> set[str]:
    return {r["id"] for r in results}


def test_a_record_is_returned_with_its_attributes_and_results_carry_them(client):
    assert client.get("/v1/records/C-1001").json()["attributes"] == ATTRS["C-1001"]
    assert client.get("/v1/records/C-1003").json().get("attributes", {}) == {}
    body = client.post("/v1/search", json={"text": "真空泵 E1023", "k": 20}).json()
    shown = {r["id"]: r["attributes"] for r in body["results"]}
    assert shown["C-1001"] == ATTRS["C-1001"] and shown["P-2001"] == ATTRS["P-2001"]


def test_search_filters_on_attributes(client):
    def found(attributes, **kw):
        resp = client.post("/v1/search", json={"text": "真空泵 主轴 E1023 E2040", "k": 20, "attributes": attributes, **kw})
        assert resp.status_code == 200, resp.text
        return ids(resp.json()["results"])

    assert found({"customer": "ACME SEMI"}) == {"C-1001", "P-2001"}  # values case-insensitive
    assert found({"customer": ["globex", "initech"]}) == {"C-1002"}
    assert found({"customer": "acme semi"}, kind=["problem"]) == {"P-2001"}
    assert found({"customer": "ACME Semi", "site": QUOTED}) == {"C-1001"}
    assert found({"site": 'Fab "12"'}) == set()
    grouped = client.post("/v1/search", json={"text": "真空泵 E1023", "grouped": True,
                                              "attributes": {"customer": "acme semi"}}).json()
    assert ids(grouped["cases"]) == {"C-1001"} and ids(grouped["problems"]) == {"P-2001"}


def test_related_filters_on_attributes_in_query_and_body(client):
    resp = client.get("/v1/records/C-1001/related", params=[("attr", "customer=acme semi"), ("k", 20)])
    assert resp.status_code == 200, resp.text
    assert ids(resp.json()["results"]) == {"P-2001"}
    resp = client.get("/v1/records/C-1001/related", params=[("attr", "customer=Globex"), ("attr", "customer=ACME semi"),
                                                            ("attr", "sw_version=4.2.1"), ("k", 20)])
    assert ids(resp.json()["results"]) == {"C-1002"}  # values of a key: any of; keys: all
    resp = client.get("/v1/records/C-1002/related", params=[("attr", f"site={QUOTED}"), ("k", 20)])
    assert ids(resp.json()["results"]) == {"C-1001"}  # '=' and quotes in the value are the value's
    draft = {"title": "真空泵跳停 E1023", "error_codes": ["E1023"], "attributes": {"customer": "ACME Semi"}}
    resp = client.post("/v1/related", json={"record": draft, "k": 20, "attributes": {"customer": "acme semi"}})
    assert resp.status_code == 200, resp.text
    assert ids(resp.json()["results"]) == {"C-1001", "P-2001"}


def test_bad_attribute_filters_name_the_field(client):
    assert "expected key=value" in problem(client.get("/v1/records/C-1001/related", params={"attr": "customer"}),
                                           "attr")
    assert "must be 1-64 ASCII letters" in problem(
        client.get("/v1/records/C-1001/related", params={"attr": "bad key=x"}), "attr")
    assert "at most 100" in problem(client.get("/v1/records/C-1001/related",
                                               params=[("attr", f"serial=SN-{i}") for i in range(101)]), "attr")
    assert client.get("/v1/records/C-1001/related",
                      params=[("attr", f"serial=SN-{i}") for i in range(100)]).status_code == 200
    problem(client.post("/v1/search", json={"text": "x", "attributes": {"bad key": "x"}}), "attributes")
    problem(client.post("/v1/search", json={"text": "x", "attributes": {"customer": 5}}), "attributes.customer.str")
    assert "non-empty list" in problem(client.post("/v1/search", json={"text": "x", "attributes": {"c": []}}),
                                       "attributes")
    problem(client.post("/v1/related", json={"record": {"title": "x"}, "attributes": {"c": "x" * 201}}),
            "attributes")


def test_writes_store_attributes_and_refuse_unknown_fields_naming_attributes(client):
    body = {"kind": "case", "title": "机械手取片报警", "attributes": {"customer": "Initech", "serial": " SN-9 ", "site": ""}}
    assert client.put("/v1/records/C-9001", json=body).status_code == 201
    assert client.get("/v1/records/C-9001").json()["attributes"] == {"customer": "Initech", "serial": "SN-9"}
    assert client.put("/v1/records/C-9001", json=body).json()["changed"] is False
    found = client.post("/v1/search", json={"text": "机械手取片报警", "attributes": {"customer": "initech"}}).json()
    assert ids(found["results"]) == {"C-9001"}  # searchable by its attributes when the PUT returns
    body["attributes"] = {"customer": "Umbrella"}
    assert client.put("/v1/records/C-9001", json=body).json()["changed"] is True
    assert client.post("/v1/search", json={"text": "机械手取片报警", "attributes": {"customer": "initech"}}
                       ).json()["results"] == []

    for resp, field in [
            (client.put("/v1/records/C-9002", json={"kind": "case", "title": "x", "customer": "ACME"}), "customer"),
            (client.post("/v1/records:batch", json={"records": [{"id": "C-9003", "kind": "case", "title": "x"},
                                                                {"id": "C-9004", "kind": "case", "title": "y",
                                                                 "site": "F12"}]}), "records.1.site"),
            (client.post("/v1/related", json={"record": {"title": "x", "serial": "1"}}), "record.serial")]:
        detail = problem(resp, field)
        assert "'attributes'" in detail and "unknown field" in detail, detail
    assert client.get("/v1/records/C-9002").status_code == 404
    assert client.get("/v1/records/C-9003").status_code == 404  # all or nothing
    detail = problem(client.put("/v1/records/C-9002", json={"kind": "case", "title": "x",
                                                            "attributes": {"Bad Key": "x"}}), "attributes")
    assert "key 'Bad Key' must be" in detail
    problem(client.put("/v1/records/C-9002", json={"kind": "case", "title": "x",
                                                   "attributes": {f"k{i}": "v" for i in range(33)}}), "attributes")
    # A search refuses a field it does not know instead of ignoring it (a filter that would widen
    # the search without a word), naming the field and where a record's own fields go.
    for body, field in [({"text": "机械手取片报警", "customer": "initech"}, "customer"),
                        ({"text": "机械手取片报警", "prodcut": ["HX-Litho 3000"]}, "prodcut")]:
        detail = problem(client.post("/v1/search", json=body), field)
        assert "'attributes'" in detail and "unknown field" in detail, detail
    assert "unknown field" not in client.post("/v1/feedback", json={"record_id": "C-1001", "helpful": True,
                                                                     "query": "x", "bogus": 1}).json()["detail"]
