"""Emerging problems on a small crafted history (real encoder, real index)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from caselink.errors import InvalidQuery
from indexing.records import Record
from recommender.emerging import find_emerging, is_closed_status, open_at
from tests._history import LINKED, OPEN_PO, case
from tests.conftest import read_only_service

AS_OF = date(2025, 6, 30)  # window (2025-05-31, 2025-06-30]; earlier windows end 05-31, 05-01, 04-01


BACKGROUND = [
    case("O-1", "2025-01-10", "工件台 X 轴定位超差", "stage 对准时定位误差超过 50nm，重新校准干涉仪后正常。", module="工件台"),
    case("O-2", "2025-02-05", "Robot fails to pick wafer", "EFEM robot vacuum grip alarm W3001 while picking wafer "
          "from FOUP slot 12.", module="晶圆传输", error_codes=["W3001"]),
    case("O-3", "2025-03-15", "HXTool 登录失败", "升级后 HXTool 登录提示 license 过期，重新导入授权文件后恢复。", module="软件"),
    case("O-4", "2025-04-10", "激光功率下降", "曝光时激光输出功率比设定值低15%，更换光学模块后恢复。", module="激光光源"),
]
BURST = [  # a new fault, not linked to anything
    case("B-1", "2025-06-03", "腔盖互锁误报 E9401", "PM1 运行中突然报 E9401 lid open interlock，腔盖实际已关好，"
          "复位后又出现。腔盖微动开关接触不良。", module="真空", error_codes=["E9401"]),
    case("B-2", "2025-06-09", "腔蓋互鎖誤報 E9401", "PM2 製程中報 E9401 腔蓋開啟互鎖，腔蓋實際關閉。檢查腔蓋微動開關接觸不良，"
          "清潔後暫時恢復。", module="真空", error_codes=["E9401"]),
    case("B-3", "2025-06-15", "False lid-open interlock E9401", "E9401 lid open interlock during process although the "
          "chamber lid is closed. The lid micro switch contact is intermittent.", module="真空", error_codes=["E9401"]),
    case("B-4", "2025-06-24", "腔盖开关误触发 E9401 导致 abort", "E9401 腔盖互锁误报，wafer abort，腔盖微动开关接触不良，"
          "更换开关后恢复。", module="真空", error_codes=["E9401"]),
]
LONE = [
    case("L-1", "2025-06-12", "客户咨询备件报价", "客户想了解 RF 匹配器备件的价格和交期。", module="射频"),
    case("L-2", "2025-06-20", "HX-Inspect 明场图像偏暗", "明场照明亮度比上月低，灯泡使用时数已超过 3000 小时。",
          module="激光光源"),
]
# Fixed long ago ('已解決' folds to the closed status); its recurrence must be flagged again.
DONE_PO = Record(id="PO-DONE", kind="problem", status="已解決", created="2024-10-01", closed="2025-02-01",
                 module="晶圆传输", title="Load port door open fail E2201", text="Load port 开门失败 E2201，门锁传感器。",
                 links=["R-1", "R-2", "R-3"])
RECUR = [
    case("R-1", "2025-06-04", "Load port 开门失败 E2201", "LP1 FOUP door open fail，报 E2201，门锁传感器信号异常。",
          module="晶圆传输", error_codes=["E2201"]),
    case("R-2", "2025-06-14", "Load port 開門失敗 E2201", "LP2 開門失敗報 E2201，門鎖感測器訊號不穩。", module="晶圆传输",
          error_codes=["E2201"]),
    case("R-3", "2025-06-26", "Load port door open failure E2201", "Door open fail E2201 on LP3, door lock sensor "
          "signal unstable.", module="晶圆传输", error_codes=["E2201"]),
]
# Open, with a steady two cases per window: not rising.
STEADY_PO = Record(id="PO-STEADY", kind="problem", status="open", created="2025-01-01", module="软件",
                   title="Recipe 编辑器保存慢", text="Recipe 编辑器保存大 recipe 时很慢。")
STEADY = [case(f"S-{i}", day, "Recipe 保存慢", "保存 recipe 需要一分钟以上。", module="软件", links=["PO-STEADY"])
          for i, day in enumerate(["2025-03-10", "2025-03-20", "2025-04-10", "2025-04-20", "2025-05-10", "2025-05-20",
                                   "2025-06-10", "2025-06-20"])]
HISTORY = BACKGROUND + BURST + LONE + [OPEN_PO] + LINKED + [DONE_PO] + RECUR + [STEADY_PO] + STEADY


@pytest.fixture(scope="module")
def service(tmp_path_factory, use_encoder):
    with read_only_service(tmp_path_factory, use_encoder, HISTORY) as svc:
        yield svc


def _group_of(report, case_id: str):
    return next((g for g in report.groups if case_id in g.case_ids), None)


def test_burst_is_flagged_and_one_offs_are_not(service):
    report = find_emerging(service, as_of=AS_OF)
    burst = _group_of(report, "B-1")
    assert burst is not None and set(burst.case_ids) == {"B-1", "B-2", "B-3", "B-4"}
    assert burst.common_codes == ["E9401"] and burst.modules[0] == "真空"
    assert burst.title.startswith("[真空] E9401")
    assert burst.history_counts == [0, 0, 0] and burst.growth == 5.0 and burst.score == 20.0
    for lone in ("L-1", "L-2", "O-4"):
        assert _group_of(report, lone) is None
    json.dumps(report.to_dict(), ensure_ascii=False)  # serialises cleanly


def test_as_of_defaults_to_latest_case_and_old_bursts_age_out(service):
    assert find_emerging(service).as_of == date(2025, 6, 26)
    assert find_emerging(service, as_of=date(2025, 9, 30)).groups == []


def test_cases_linked_to_open_problem_order_are_not_flagged(service):
    report = find_emerging(service, as_of=AS_OF)
    for k in ("K-1", "K-2", "K-3"):  # linked from the case side (K-1, K-2) or the problem order side (K-3)
        assert _group_of(report, k) is None
    assert report.excluded_linked == 5  # K-1..3 and two steady cases


def test_recurrence_of_a_closed_problem_order_is_flagged(service):
    report = find_emerging(service, as_of=AS_OF)
    recur = _group_of(report, "R-1")
    assert recur is not None and set(recur.case_ids) == {"R-1", "R-2", "R-3"}
    assert recur.similar_problem is not None and recur.similar_problem.id == "PO-DONE"
    # While PO-DONE was still open (before it closed) the same cases would have been excluded.
    assert open_at(DONE_PO, date(2025, 1, 15)) and not open_at(DONE_PO, AS_OF)


def test_rising_problem_order_is_flagged_and_steady_one_is_not(service):
    rising = {r.id: r for r in find_emerging(service, as_of=AS_OF).rising_problems}
    assert set(rising) == {"PO-OPEN"}
    assert rising["PO-OPEN"].current == 3 and rising["PO-OPEN"].history_counts[0] == 1
    assert set(rising["PO-OPEN"].case_ids) == {"K-1", "K-2", "K-3"}


def test_product_filter_and_status_normalisation(service):
    assert find_emerging(service, as_of=AS_OF, product="HX-Nothing").groups == []
    assert is_closed_status("已關閉") and is_closed_status(" FIXED ") and is_closed_status("Resolved")
    assert not is_closed_status("investigating") and not is_closed_status("open")


@pytest.mark.parametrize("kw", [{"window_days": 0}, {"min_size": 1}, {"similarity": 1.5}, {"history_windows": -1}])
def test_bad_parameters_say_expected_and_got(kw):
    with pytest.raises(InvalidQuery, match="expected .* got"):
        find_emerging(None, **kw)


def test_weekly_counts_end_on_as_of_and_clip_the_oldest_week():
    from recommender.trends import week_starts, weekly_counts

    as_of = date(2025, 6, 30)
    assert week_starts(as_of, 14) == [date(2025, 6, 17), date(2025, 6, 24)]
    assert week_starts(as_of, 10) == [date(2025, 6, 21), date(2025, 6, 24)]  # 3 + 7 days
    days = [date(2025, 6, 30), date(2025, 6, 24), date(2025, 6, 23), date(2025, 6, 21), date(2025, 6, 20),
            date(2025, 7, 1)]  # the last two are outside the 10 days
    assert weekly_counts(days, as_of, 10) == [2, 2]
    assert weekly_counts([], as_of, 1) == [0]
