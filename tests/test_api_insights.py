"""Emerging problems and field suggestions over real HTTP: a crafted history in tmp_path, the real app
under uvicorn on loopback, with keys configured (every other test calls with the read key)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from _server import build_index, demo_records, make_settings, serve

from recommender.emerging_report import EmergingGroup, EmergingReport, RisingProblem, SimilarProblem
from recommender.suggest import Alternative, FieldSuggestion, Neighbour, Suggestions
from tests._history import LINKED, OPEN_PO, case

WRITE_KEY, READ_KEY = "rw-insights-key", "ro-insights-key"
AS_OF = "2025-06-30"  # window (2025-05-31, 2025-06-30]


# A new fault in the current window, not linked to anything: four mixed-script reports of one symptom.
BURST = [
    case("B-1", "2025-06-03", "腔盖互锁误报 E9401", "PM1 运行中突然报 E9401 lid open interlock，腔盖实际已关好，"
          "复位后又出现。腔盖微动开关接触不良。", module="真空", product="HX-Etch 500", error_codes=["E9401"]),
    case("B-2", "2025-06-09", "腔蓋互鎖誤報 E9401", "PM2 製程中報 E9401 腔蓋開啟互鎖，腔蓋實際關閉。檢查腔蓋微動開關接觸不良，"
          "清潔後暫時恢復。", module="真空", product="HX-Etch 500", error_codes=["E9401"]),
    case("B-3", "2025-06-15", "False lid-open interlock E9401", "E9401 lid open interlock during process although "
          "the chamber lid is closed. The lid micro switch contact is intermittent.", module="真空",
          product="HX-Etch 500", error_codes=["E9401"]),
    case("B-4", "2025-06-24", "腔盖开关误触发 E9401 导致 abort", "E9401 腔盖互锁误报，wafer abort，腔盖微动开关接触不良，"
          "更换开关后恢复。", module="真空", product="HX-Etch 500", error_codes=["E9401"]),
]
# One-offs in the same window; L-1 is the only case of its product.
LONE = [
    case("L-1", "2025-06-12", "客户咨询备件报价", "客户想了解 RF 匹配器备件的价格和交期。", module="射频",
          product="HX-Solo"),
    case("L-2", "2025-06-20", "HX-Inspect 明场图像偏暗", "明场照明亮度比上月低，灯泡使用时数已超过 3000 小时。",
          module="激光光源", product="HX-Inspect"),
]
# Past dry-pump cases whose module and group agree (category mostly, priority not at all): suggestion material.
PUMP = dict(product="HX-Etch 500", module="真空", status="closed", error_codes=["E1023"])
PUMPS = [
    case("P-1", "2024-05-01", "干泵跳停 E1023", "PM2 干泵过流跳停，报 E1023，泵内粉尘沉积。", category="硬件故障",
          priority="P1", group="华东现场服务组", **PUMP),
    case("P-2", "2024-05-02", "乾泵跳機 E1023", "乾泵過電流跳脫，報 E1023，進氣口粉末堆積。", category="硬件故障",
          priority="P2", group="华东现场服务组", **PUMP),
    case("P-3", "2024-05-03", "Dry pump trip E1023", "Dry pump overcurrent trip with E1023, powder build-up in the "
          "pump.", category="硬件故障", priority="P3", group="华东现场服务组", **PUMP),
    case("P-4", "2024-05-04", "干泵频繁跳停 E1023", "干泵电流升高后跳停，E1023，N2 ballast 流量不足。",
          category="工艺相关", priority="P4", group="华东现场服务组", **PUMP),
]
HISTORY = demo_records() + BURST + LONE + [OPEN_PO] + LINKED + PUMPS
NEW_CASE = {"title": "干泵又跳了 E1023", "text": "客户 PM1 干泵过流跳停，报 E1023。", "product": "HX-Etch 500",
            "error_codes": ["E1023"]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("insights"), server__api_keys=[WRITE_KEY],
                             server__read_keys=[READ_KEY])
    build_index(settings, HISTORY)
    with serve(settings) as running:
        yield running


@pytest.fixture()
def client(srv):
    with httpx.Client(base_url=srv.url, timeout=60, headers={"Authorization": f"Bearer {READ_KEY}"}) as c:
        yield c


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def problem(resp: httpx.Response, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    return body


def _group_of(report: dict, case_id: str) -> dict | None:
    return next((g for g in report["groups"] if case_id in g["case_ids"]), None)


# -- emerging --------------------------------------------------------------------------------------
def test_burst_is_flagged_lone_and_linked_cases_are_not(client):
    report = ok(client.get("/v1/emerging", params={"as_of": AS_OF}))
    assert report["as_of"] == AS_OF and report["window_start"] == "2025-06-01" and report["window_days"] == 30
    burst = _group_of(report, "B-1")
    assert burst is not None and burst["case_ids"] == ["B-1", "B-2", "B-3", "B-4"] and burst["size"] == 4
    assert burst["common_codes"] == ["E9401"] and burst["modules"] == ["真空"] and burst["products"] == ["HX-Etch 500"]
    assert burst["title"].startswith("[真空] E9401")
    assert burst["history_counts"] == [0, 0, 0] and burst["growth"] == 5.0 and burst["score"] == 20.0
    assert burst["first_seen"] == "2025-06-03" and burst["last_seen"] == "2025-06-24"
    for other in ("L-1", "L-2", "K-1", "K-2", "K-3"):
        assert _group_of(report, other) is None, other
    assert report["excluded_linked"] == 3
    rising = {r["id"]: r for r in report["rising_problems"]}
    assert set(rising) == {"PO-OPEN"} and rising["PO-OPEN"]["current"] == 3
    assert set(rising["PO-OPEN"]["case_ids"]) == {"K-1", "K-2", "K-3"}


def test_weekly_series_over_the_windows_compared(client):
    report = ok(client.get("/v1/emerging", params={"as_of": AS_OF}))
    weeks = report["weeks"]  # 4 windows of 30 days = 120 days: 17 whole weeks and one day
    assert len(weeks) == 18 and weeks[-1] == "2025-06-24" and weeks[-2] == "2025-06-17"
    assert weeks[0] == "2025-03-03"  # the span's first day: the oldest week is partial
    burst = _group_of(report, "B-1")
    # B-1 06-03, B-2 06-09 | B-3 06-15 | - | B-4 06-24; nothing similar before (history_counts 0, 0, 0)
    assert burst["weekly"] == [0] * 14 + [2, 1, 0, 1]
    rising = report["rising_problems"][0]
    assert len(rising["weekly"]) == 18 and rising["weekly"][-4:] == [1, 1, 1, 0]  # K-1, K-2, K-3
    assert sum(rising["weekly"]) == rising["current"] + sum(rising["history_counts"])  # K-0 the window before


def test_defaults_and_filters(client):
    latest = ok(client.get("/v1/emerging", params={"product": ""}))  # empty product = any
    assert latest["as_of"] == "2025-06-24" and latest["product"] is None and latest["similarity"] == 0.6
    assert _group_of(latest, "B-4") is not None
    lone = ok(client.get("/v1/emerging", params={"as_of": AS_OF, "product": "hx-solo"}))
    assert lone["recent_cases"] == 1 and lone["groups"] == [] and lone["product"] == "hx-solo"
    assert ok(client.get("/v1/emerging", params={"as_of": AS_OF, "min_size": 5}))["groups"] == []
    assert ok(client.get("/v1/emerging", params={"as_of": "2025-10-31"}))["groups"] == []  # the burst aged out


@pytest.mark.parametrize("params,field", [
    ({"window_days": 0}, "window_days"),
    ({"window_days": "month"}, "window_days"),
    ({"similarity": 2}, "similarity"),
    ({"min_size": 1}, "min_size"),
    ({"history_windows": -1}, "history_windows"),
    ({"code_boost": 1.5}, "code_boost"),
    ({"as_of": "2025-13-45"}, "as_of"),
])
def test_bad_emerging_params_name_the_field(client, params, field):
    problem(client.get("/v1/emerging", params=params), 422, field)


# -- suggestions -----------------------------------------------------------------------------------
def test_suggestions_for_a_stored_record(client):
    s = ok(client.get("/v1/records/P-1/suggestions", params={"k": 5}))
    assert s["record_id"] == "P-1" and s["k"] == 5 and s["min_confidence"] == 0.5 and s["path"] == "hybrid"
    assert "P-1" not in {n["id"] for n in s["neighbours"]} and {"P-2", "P-3", "P-4"} <= {n["id"] for n in s["neighbours"]}
    assert list(s["fields"]) == ["category", "module", "priority", "group"]
    module = s["fields"]["module"]
    assert module["value"] == "真空" and module["confidence"] >= 0.5 and module["voters"] and module["reason"]
    assert s["fields"]["group"]["value"] == "华东现场服务组"
    priority = s["fields"]["priority"]
    assert priority["value"] is None and "disagree" in priority["reason"] and len(priority["alternatives"]) >= 3
    only = ok(client.get("/v1/records/P-1/suggestions",
                         params=[("field", "module"), ("field", "priority"), ("min_confidence", "0.99")]))
    assert set(only["fields"]) == {"module", "priority"} and only["min_confidence"] == 0.99


def test_suggestions_for_free_text_and_an_unsaved_record(client):
    s = ok(client.post("/v1/suggest", json={"text": "dry pump overcurrent trip E1023", "k": 4, "fields": ["module"]}))
    assert s["record_id"] is None and list(s["fields"]) == ["module"] and s["fields"]["module"]["value"] == "真空"
    r = ok(client.post("/v1/suggest", json={"record": NEW_CASE, "k": 4}))
    assert r["record_id"] is None and r["fields"]["group"]["value"] == "华东现场服务组"
    assert {n["id"] for n in r["neighbours"]} == {"P-1", "P-2", "P-3", "P-4"}
    stored = ok(client.post("/v1/suggest", json={"record": {"id": "P-2", **NEW_CASE}, "min_confidence": 0.9}))
    assert stored["record_id"] == "P-2" and "P-2" not in {n["id"] for n in stored["neighbours"]}


def test_unknown_record_is_404(client):
    problem(client.get("/v1/records/NOPE-1/suggestions"), 404, "id")


@pytest.mark.parametrize("body,field", [
    ({}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "E1023", "record": NEW_CASE}, "record"),
    ({"text": "E1023", "fields": ["colour"]}, "fields.0"),
    ({"text": "E1023", "fields": []}, "fields"),
    ({"text": "E1023", "min_confidence": 2}, "min_confidence"),
    ({"text": "E1023", "k": 0}, "k"),
    ({"text": "E1023", "k": 1000}, "k"),  # above rank.max_k: the service's own check
    ({"record": {**NEW_CASE, "kind": "ticket"}}, "record.kind"),
    ({"record": {**NEW_CASE, "id": "a/b"}}, "record.id"),
    ({"text": "E1023", "colour": "red"}, "colour"),
])
def test_bad_suggest_bodies_name_the_field(client, body, field):
    problem(client.post("/v1/suggest", json=body), 422, field)


@pytest.mark.parametrize("params,field", [
    ({"k": 0}, "k"),
    ({"min_confidence": 2}, "min_confidence"),
    ({"field": "colour"}, "field.0"),
])
def test_bad_suggestion_params_name_the_field(client, params, field):
    problem(client.get("/v1/records/P-1/suggestions", params=params), 422, field)


# -- auth, schema ----------------------------------------------------------------------------------
def test_auth_required_and_read_key_is_enough(srv):
    calls = [("GET", "/v1/emerging", None), ("GET", "/v1/records/P-1/suggestions", None),
             ("POST", "/v1/suggest", {"text": "E1023"})]
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        for method, path, body in calls:
            resp = c.request(method, path, json=body)
            problem(resp, 401)
            assert resp.headers["www-authenticate"].startswith("Bearer")
            problem(c.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}), 401)
            for key in (READ_KEY, WRITE_KEY):
                assert c.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_openapi_documents_the_typed_answers(client):
    schema = client.get("/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]

    def answer(path: str, method: str) -> str:
        return paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    assert answer("/v1/emerging", "get").endswith("/EmergingReport")
    assert answer("/v1/records/{record_id}/suggestions", "get").endswith("/Suggestions")
    assert answer("/v1/suggest", "post").endswith("/Suggestions")
    assert {p["name"] for p in paths["/v1/emerging"]["get"]["parameters"]} >= {
        "window_days", "as_of", "product", "min_size", "similarity"}
    # Typed to the leaves: the search path is one of the modes, alternatives are objects, not free dicts.
    assert components["Suggestions"]["properties"]["path"]["enum"] == ["hybrid", "dense", "keyword", "learned"]
    assert components["FieldSuggestion"]["properties"]["alternatives"]["items"]["$ref"].endswith("/Alternative")
    assert components["Alternative"]["required"] == ["value", "share", "votes"]


@pytest.mark.parametrize("dc", [EmergingReport, EmergingGroup, RisingProblem, SimilarProblem, Suggestions,
                                FieldSuggestion, Neighbour, Alternative])
def test_answers_are_the_recommenders_dataclasses(client, dc):
    """One type per idea: the schema the API serves is the dataclass's, field for field; a field
    without a default is required and a field's description comes from its annotation."""
    component = client.get("/openapi.json").json()["components"]["schemas"][dc.__name__]
    fields = dataclasses.fields(dc)
    assert list(component["properties"]) == [f.name for f in fields]
    assert component.get("required", []) == [f.name for f in fields if f.default is dataclasses.MISSING
                                             and f.default_factory is dataclasses.MISSING]
    assert component["description"] == dc.__doc__
