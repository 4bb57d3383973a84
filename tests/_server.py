"""Shared helpers for the HTTP tests: a tiny hand-written corpus, and the real app served by
uvicorn on a free loopback port in a background thread.

Import what you need from here (``from _server import ...``); there are no fixtures in this
module, so it does not depend on any conftest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import uvicorn

from caselink.config import Settings, load_settings
from indexing.records import Record
from throwaway import free_port, wait_ready  # noqa: F401 (free_port: the tests import it from here)

READY_TIMEOUT_S = 60.0


def demo_records() -> list[Record]:
    """A dozen records: cases, problem orders and SOP sections in simplified / traditional Chinese
    and English, with error codes and part numbers."""
    r = Record
    return [
        r(id="C-1001", kind="case", title="真空泵无法启动，报警 E1023", product="HX-L3200", module="真空系统",
          text="客户反馈设备开机后真空泵无法启动，面板显示报警 E1023，抽真空超时。",
          cause="真空泵接触器线圈烧毁", resolution="更换接触器 PN-7731-02 后恢复正常", error_codes=["E1023"],
          status="closed", created=date(2024, 3, 5), links=["P-2001"]),
        r(id="C-1002", kind="case", title="主轴过热报警 E2040", product="HX-L3200", module="主轴",
          text="加工时主轴温度升高到 85 度，报警 E2040 后停机。冷却液流量偏低。",
          cause="冷却泵滤网堵塞", resolution="清洗滤网并更换冷却液", error_codes=["E2040"], status="closed",
          created=date(2024, 4, 11)),
        r(id="C-1003", kind="case", title="觸控螢幕無反應", product="HX-M100", module="人机界面",
          text="設備開機後觸控螢幕沒有反應，按鍵無效，需要重新啟動才能操作。",
          resolution="更新 HMI 韌體至 v3.2.1", status="closed", created=date(2024, 5, 2)),
        r(id="C-1004", kind="case", title="Door interlock fault A-4410", product="HX-M100", module="safety",
          text="Machine stops with alarm A-4410 when the operator closes the front door. Interlock switch "
               "reading is intermittent.", resolution="Replaced door switch PN-5520-11 and re-aligned bracket",
          error_codes=["A-4410"], status="closed", created=date(2024, 6, 20)),
        r(id="C-1005", kind="case", title="液压系统压力不足", product="HX-L3200", module="液压",
          text="液压站压力只有 3 MPa，夹具夹紧力不足，工件松动。", cause="溢流阀卡滞",
          resolution="拆洗溢流阀并重新设定压力", status="open", created=date(2024, 7, 8)),
        r(id="C-1006", kind="case", title="Spindle vibration at high speed", product="HX-L3200", module="主轴",
          text="Strong vibration and noise above 8000 rpm; surface finish is poor.",
          cause="Spindle bearing wear", resolution="Replace spindle bearings and rebalance", status="closed",
          created=date(2024, 8, 1)),
        r(id="P-2001", kind="problem", title="真空泵接触器批量失效", product="HX-L3200", module="真空系统",
          text="多台设备出现真空泵接触器线圈烧毁，报警 E1023，疑似供应商批次问题。",
          cause="接触器线圈批次绝缘不良", workaround="临时更换为 PN-7731-02 新批次", error_codes=["E1023"],
          status="investigating", created=date(2024, 3, 20), links=["C-1001"]),
        r(id="P-2002", kind="problem", title="HMI firmware freezes after update", product="HX-M100",
          module="人机界面", text="After updating HMI firmware to v3.2.0 the touch screen freezes randomly.",
          resolution="Fixed in firmware v3.2.1", status="closed", created=date(2024, 4, 30)),
        r(id="P-2003", kind="problem", title="冷却系统设计余量不足", product="HX-L3200", module="主轴",
          text="夏季高温环境下主轴冷却能力不足，频繁出现 E2040 过热报警。", error_codes=["E2040"],
          status="open", created=date(2024, 7, 15)),
        r(id="SOP-VAC-01#3", kind="sop", doc_id="SOP-VAC-01", doc_title="真空系统维护规程",
          section="3. 真空泵接触器更换", module="真空系统",
          text="断开主电源并挂牌上锁。拆下真空泵接触器，安装新接触器 PN-7731-02，检查线圈电压后复位报警 E1023。",
          error_codes=["E1023"]),
        r(id="SOP-SPN-02#1", kind="sop", doc_id="SOP-SPN-02", doc_title="Spindle maintenance",
          section="1. Cooling circuit cleaning", module="主轴",
          text="Stop the spindle, drain coolant, clean the pump filter and refill. Clears overheating alarm E2040.",
          error_codes=["E2040"]),
        r(id="SOP-HMI-01#2", kind="sop", doc_id="SOP-HMI-01", doc_title="人机界面韧体更新",
          section="2. 固件升级步骤", module="人机界面",
          text="使用 U 盘将 HMI 固件升级到 v3.2.1，升级过程中不得断电。升级后校准触摸屏。"),
    ]


def make_settings(data_dir: Path, **overrides) -> Settings:
    return load_settings(env={}, data_dir=data_dir, **overrides)


def build_index(settings: Settings, records: list[Record] | None = None) -> None:
    """Build an index for ``records`` (the demo corpus by default) into ``settings.data_dir``."""
    from recommender.service import CaselinkService

    svc, _ = CaselinkService.build(settings, records=demo_records() if records is None else records)
    svc.close()


@dataclass
class RunningServer:
    url: str
    app: object  # the FastAPI app; app.state.service is the live CaselinkService
    settings: Settings

    @property
    def service(self):
        return self.app.state.service


@contextmanager
def serve(settings: Settings, *, timeout: float = READY_TIMEOUT_S, wait_for: str = "/readyz") -> Iterator[RunningServer]:
    """Run ``create_app(settings)`` with uvicorn on a free loopback port until the block exits.

    Waits (bounded by ``timeout``) until ``wait_for`` answers 200; use "/healthz" for a server
    that is expected not to become ready.
    """
    from api.app import create_app

    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + wait_for, thread, timeout)
        yield RunningServer(url, app, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_ready(probe: str, thread: threading.Thread, timeout: float) -> None:
    def alive() -> None:
        if not thread.is_alive():
            raise RuntimeError(f"server thread exited before {probe} answered")

    wait_ready(probe, alive, timeout)
