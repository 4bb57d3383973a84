"""Field suggestions from nearest past cases (real encoder, real index)."""

from __future__ import annotations

import json

import pytest

from caselink.errors import InvalidQuery
from indexing.records import Record
from recommender.suggest import query_text, suggest_fields
from tests.conftest import read_only_service


def _case(id: str, title: str, text: str, **kw) -> Record:
    return Record(id=id, kind="case", title=title, text=text, status="closed", created="2024-05-01", **kw)


PUMP = dict(product="HX-Etch 500", module="真空")
HISTORY = [
    # Four close neighbours: module and group agree, category mostly, priority all different.
    _case("P-1", "干泵跳停 E1023", "PM2 干泵过流跳停，报 E1023，泵内粉尘沉积。", category="硬件故障", priority="P1",
          group="华东现场服务组", error_codes=["E1023"], **PUMP),
    _case("P-2", "乾泵跳機 E1023", "乾泵過電流跳脫，報 E1023，進氣口粉末堆積。", category="硬件故障", priority="P2",
          group="华东现场服务组", error_codes=["E1023"], **PUMP),
    _case("P-3", "Dry pump trip E1023", "Dry pump overcurrent trip with E1023, powder build-up in the pump.",
          category="硬件故障", priority="P3", group="华东现场服务组", error_codes=["E1023"], **PUMP),
    _case("P-4", "干泵频繁跳停 E1023", "干泵电流升高后跳停，E1023，N2 ballast 流量不足。", category="工艺相关",
          priority="P4", group="华东现场服务组", error_codes=["E1023"], **PUMP),
    # Unrelated history.
    _case("U-1", "激光功率下降", "曝光时激光输出功率比设定值低15%，更换光学模块。", product="HX-Litho 3000",
          module="激光光源", category="备件问题", priority="P2", group="台湾技术支持"),
    _case("U-2", "Robot fails to pick wafer", "EFEM robot vacuum grip alarm W3001 while picking a wafer.",
          product="HX-Litho 3000", module="晶圆传输", category="硬件故障", priority="P3", group="北美 FSE team",
          error_codes=["W3001"]),
    _case("U-3", "HXTool 登录失败", "升级后 HXTool 登录提示 license 过期，重新导入授权文件。", product="HX-Etch 500",
          module="软件", category="软件缺陷", priority="P4", group="远程技术支持"),
    _case("U-4", "工件台定位超差", "stage 对准时定位误差超过 50nm，重新校准干涉仪。", product="HX-Litho 3000",
          module="工件台", category="校准偏差", priority="P3", group="华北现场服务组"),
    Record(id="PO-1", kind="problem", title="干泵过流跳停 E1023", text="金属刻蚀腔干泵过流跳停。", module="真空",
           category="工艺相关", priority="P1", group="真空与气路研发组"),
]
NEW = Record(id="NEW-1", kind="case", title="干泵又跳了 E1023", text="客户 PM1 干泵过流跳停，报 E1023。",
             product="HX-Etch 500", error_codes=["E1023"])


@pytest.fixture(scope="module")
def service(tmp_path_factory, use_encoder):
    with read_only_service(tmp_path_factory, use_encoder, HISTORY) as svc:
        yield svc


def test_majority_of_close_neighbours_is_suggested_and_disagreement_is_not(service):
    s = suggest_fields(service, record=NEW, k=4)
    assert {n.id for n in s.neighbours} == {"P-1", "P-2", "P-3", "P-4"}  # cases only: PO-1 never votes
    module, group, category, priority = (s.fields[f] for f in ("module", "group", "category", "priority"))
    assert module.value == "真空" and module.confidence == 1.0
    assert group.value == "华东现场服务组" and len(group.voters) == 4
    assert category.value == "硬件故障" and 0.5 <= category.confidence < 1.0
    assert {v.id for v in category.voters} == {"P-1", "P-2", "P-3"}
    assert priority.value is None and priority.confidence < 0.5 and "disagree" in priority.reason
    assert len(priority.alternatives) == 4
    json.dumps(s.to_dict(), ensure_ascii=False)


def test_threshold_controls_what_is_suggested(service):
    s = suggest_fields(service, record=NEW, k=4, min_confidence=0.95, fields=("category", "module"))
    assert s.fields["module"].value == "真空" and s.fields["category"].value is None
    assert set(s.fields) == {"category", "module"}


def test_stored_record_never_votes_for_itself(service):
    p1 = service.get("P-1")
    s = suggest_fields(service, record=p1, k=5)
    assert "P-1" not in {n.id for n in s.neighbours}
    assert s.fields["module"].value == "真空"


def test_free_text_and_predicted_fields_stay_out_of_the_query(service):
    s = suggest_fields(service, text="dry pump overcurrent trip E1023", k=3, fields=("module",))
    assert s.record_id is None and s.fields["module"].value == "真空"
    q = query_text(Record(id="x", kind="case", title="t", module="真空", product="HX-Etch 500"), ("module",))
    assert "真空" not in q and "HX-Etch 500" in q


@pytest.mark.parametrize("kw", [{}, {"text": "x", "record": NEW}, {"text": "x", "fields": ("colour",)},
                                {"text": "x", "min_confidence": 2.0}, {"text": "x", "k": 0}])
def test_bad_requests_are_refused(kw):
    with pytest.raises(InvalidQuery):
        suggest_fields(None, **kw)
