"""Case-history pieces shared by the emerging-problem tests, in process and over HTTP."""

from __future__ import annotations

from indexing.records import Record


def case(id: str, created: str, title: str, text: str, **kw) -> Record:
    return Record(id=id, kind="case", created=created, title=title, text=text, status=kw.pop("status", "open"), **kw)


# A known problem under investigation: one linked case last window, three this window -> rising,
# never a new group.
OPEN_PO = Record(id="PO-OPEN", kind="problem", status="Investigating", created="2025-05-01", module="真空",
                 title="TMP-2300 分子泵轴承早期失效，振动报警 E1110",
                 text="特定批号分子泵运行数月后振动报警 E1110，轴承磨损。", links=["K-3"], error_codes=["E1110"])
LINKED = [
    case("K-0", "2025-05-20", "分子泵振动报警 E1110", "TMP 振动值超限报 E1110，轴承异响。", module="真空",
         error_codes=["E1110"], links=["PO-OPEN"]),
    case("K-1", "2025-06-05", "分子泵振动报警 E1110", "TMP 运行中振动报警 E1110，听到轴承异响，更换分子泵。",
         module="真空", error_codes=["E1110"], links=["PO-OPEN"]),
    case("K-2", "2025-06-11", "分子幫浦振動 E1110", "TMP 振動報警 E1110，軸承異音，換泵後正常。", module="真空",
         error_codes=["E1110"], links=["PO-OPEN"]),
    case("K-3", "2025-06-18", "TMP vibration alarm E1110", "Turbo pump vibration alarm E1110, bearing noise, pump "
         "replaced.", module="真空", error_codes=["E1110"]),
]
