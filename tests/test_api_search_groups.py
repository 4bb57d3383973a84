"""Search by kind over real HTTP: POST /v1/search with grouped, the code card, and the flat default."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from _server import build_index, demo_records, make_settings, serve

from indexing.records import Record
from recommender.grouping import search_grouped
from recommender.results import SearchQuery

# Beside the demo's open P-2001 (E1023, investigating): a finished problem order that names E1023 in
# its title twice and so outranks it on the keyword side, and more E1023 cases, the newest last year.
EXTRA = [
    Record(id="P-2009", kind="problem", title="E1023 误报 E1023：真空泵接触器辅助触点", product="HX-L3200",
           module="真空系统", text="E1023 报警时接触器实际吸合，辅助触点氧化导致反馈丢失。", error_codes=["E1023"],
           status="closed", workaround="清洁辅助触点", created=date(2023, 11, 2)),
    Record(id="C-1010", kind="case", title="抽真空超时 E1023", product="HX-L3200", module="真空系统",
           text="开机抽真空超时，报 E1023，复位后恢复。", error_codes=["E1023"], status="closed",
           created=date(2025, 2, 14)),
    Record(id="C-1011", kind="case", title="真空泵跳停", product="HX-L3200", module="真空系统",
           text="真空泵运行中跳停，面板报警 E1023。N2 吹扫流量正常。", status="open", created=date(2025, 1, 9)),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("groups"))
    build_index(settings, demo_records() + EXTRA)
    with serve(settings) as running:
        yield running


@pytest.fixture()
def client(srv):
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        yield c


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids(results: list[dict]) -> list[str]:
    return [r["id"] for r in results]


def test_flat_stays_the_default(client):
    flat = ok(client.post("/v1/search", json={"text": "E1023", "k": 20}))
    assert set(flat) == {"query", "mode", "path", "fallback_reason", "results", "timings_ms"}
    grouped = ok(client.post("/v1/search", json={"text": "E1023", "k": 20, "grouped": True}))
    assert ids(grouped["results"]) == ids(flat["results"])  # the flat ranking is untouched


def test_error_code_leads_to_its_procedure_and_open_problem(client):
    body = ok(client.post("/v1/search", json={"text": "E1023", "grouped": True,
                                              "group_k": {"sops": 2, "problems": 3, "cases": 4}}))
    assert [r["kind"] for r in body["sops"]] == ["sop"] * len(body["sops"]) and body["sops"]
    assert body["sops"][0]["id"] == "SOP-VAC-01#3"
    assert ids(body["problems"])[:2] == ["P-2001", "P-2009"]  # open before finished, both carry E1023
    # A bare code is answered by exact keyword matches: the three cases that carry it, C-1011 only
    # in its text ("E1023。N2": the full stop ends the code).
    assert set(ids(body["cases"])) == {"C-1001", "C-1010", "C-1011"}
    card, = body["code_cards"]
    assert card["code"] == "E1023"
    assert [p["id"] for p in card["procedures"]] == ["SOP-VAC-01#3"] and card["procedures"][0]["doc_id"] == "SOP-VAC-01"
    problems = {p["id"]: p for p in card["problems"]}
    assert [p["id"] for p in card["problems"]] == ["P-2001", "P-2009"]
    assert problems["P-2001"]["open"] and problems["P-2001"]["status"] == "investigating"
    assert problems["P-2001"]["workaround"] == "临时更换为 PN-7731-02 新批次"
    assert not problems["P-2009"]["open"] and problems["P-2009"]["workaround"] == "清洁辅助触点"
    assert card["case_count"] == 3 and not card["case_count_capped"]  # C-1001, C-1010, C-1011
    assert card["last_seen"] == "2025-02-14"
    assert body["timings_ms"]["total"] > 0


def test_groups_follow_filters_and_sizes(client):
    body = ok(client.post("/v1/search", json={"text": "主轴过热 冷却", "grouped": True, "kind": ["case", "sop"],
                                              "group_k": {"sops": 1, "problems": 5, "cases": 2}}))
    assert body["problems"] == [] and len(body["sops"]) == 1 and len(body["cases"]) <= 2
    assert body["code_cards"] == []  # no code named
    assert body["cases"][0]["id"] == "C-1002"
    none = ok(client.post("/v1/search", json={"text": "E4040 unknown alarm", "grouped": True}))
    assert none["code_cards"] == []  # a code nobody carries gets no card


@pytest.mark.parametrize("body,field", [
    ({"text": "E1023", "grouped": True, "group_k": {"cases": 101}}, "group_k.cases"),
    ({"text": "E1023", "grouped": True, "group_k": {"sops": -1}}, "group_k.sops"),
    ({"text": "E1023", "grouped": True, "group_k": {"case": 3}}, "group_k.case"),
    ({"text": "E1023", "grouped": "yes"}, "grouped"),
    ({"text": "E1023", "grouped": True, "group_k": {"sops": "3"}}, "group_k.sops"),
])
def test_bad_group_input_names_the_field(client, body, field):
    resp = client.post("/v1/search", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"].endswith(field), resp.json()


def test_the_query_is_encoded_once(srv, monkeypatch):
    svc = srv.service
    calls = []
    real = svc.encode_query
    monkeypatch.setattr(svc, "encode_query", lambda text: calls.append(text) or real(text))
    encoder = svc.index.encoder
    texts = []
    real_encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda batch, *a, **kw: texts.extend(batch) or real_encode(batch, *a, **kw))
    resp = search_grouped(svc, SearchQuery(text="真空泵无法启动 抽真空超时", grouped=True))
    assert resp.path == "hybrid" and resp.sops and resp.cases
    assert calls == ["真空泵无法启动 抽真空超时"] and len(texts) == 1, texts


def _card_ids(card: dict) -> set[str]:
    return {p["id"] for p in card["procedures"]} | {p["id"] for p in card["problems"]}


@pytest.mark.parametrize("filters,procedures,problems,cases,last_seen", [
    ({"kind": ["case"]}, [], [], 3, "2025-02-14"),
    ({"kind": ["problem", "sop"]}, ["SOP-VAC-01#3"], ["P-2001", "P-2009"], 0, None),
    ({"open_only": True}, ["SOP-VAC-01#3"], ["P-2001"], 1, "2025-01-09"),  # C-1011 is the open case
    ({"created_to": "2024-12-31"}, [], ["P-2001", "P-2009"], 1, "2024-03-05"),
    ({"created_from": "2025-01-01"}, [], [], 2, "2025-02-14"),
    ({"exclude_ids": ["P-2001", "C-1010"]}, ["SOP-VAC-01#3"], ["P-2009"], 2, "2025-01-09"),
    ({"status": ["closed"]}, [], ["P-2009"], 2, "2025-02-14"),
])
def test_the_code_card_keeps_to_the_filters(client, filters, procedures, problems, cases, last_seen):
    body = ok(client.post("/v1/search", json={"text": "E1023", "grouped": True, "k": 50, **filters,
                                              "group_k": {"sops": 50, "problems": 50, "cases": 50}}))
    card, = body["code_cards"]
    assert [p["id"] for p in card["procedures"]] == procedures
    assert [p["id"] for p in card["problems"]] == problems
    assert (card["case_count"], card["last_seen"]) == (cases, last_seen)
    # Nothing on the card that the same filtered search would not list itself.
    listed = set(ids(body["results"])) | set(ids(body["sops"])) | set(ids(body["problems"]))
    assert _card_ids(card) <= listed


@pytest.mark.parametrize("filters", [{"product": ["HX-M100"]}, {"attributes": {"customer": "ACME"}},
                                     {"module": ["主轴"]}, {"created_from": "2026-01-01"}])
def test_no_code_card_when_the_filters_leave_no_carrier(client, filters):
    body = ok(client.post("/v1/search", json={"text": "E1023", "grouped": True, **filters}))
    assert body["code_cards"] == [], body["code_cards"]
