"""Replay evaluation of :func:`recommender.emerging.find_emerging` on the demo history.

Three bursts of a *new* fault (hand-written paraphrases in simplified and traditional Chinese and
English, at known dates over 2-3 weeks) are injected into a copy of the demo history. Time is
then replayed: ``find_emerging`` runs as of every Monday of the replay period. A flagged group
*matches* a burst when at least half of its members are that burst's cases.

Reported: flag precision (matching flags / all flags, over every run), burst recall (bursts
flagged at least once), detection delay (days from a burst's first case to the first run that
flags it), and, on the demo history alone, how many flags a run raises and how many of them are
explained by a real demo problem order (>= half the members linked to one problem order: a known
problem seen before or while its order was open) versus unexplained; the same with a 90-day window
(three times the cases per window, a proxy for a busier history where one-offs collide more
often). A threshold sweep shows the trade-off around the default ``similarity``.

Run: ``python -m eval.emerging_eval`` (builds two temporary indexes; about two minutes on 2 cores).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from caselink.config import load_settings
from indexing.demo import demo_sources
from indexing.encoders import USEEncoder
from indexing.loaders import load_path
from indexing.records import Record
from recommender.emerging import find_emerging
from recommender.service import CaselinkService

_A = dict(product="HX-Etch 500", model="HX-E520", module="温控", category="硬件故障", priority="P2")
_B = dict(product="HX-Inspect 900", model="HX-I960", module="软件", category="软件缺陷", priority="P3")
_C = dict(product="HX-Litho 3000", model="HX-L3200", module="晶圆传输", category="软件缺陷", priority="P2")

# (burst, date, title, text, error codes); a new fault per burst, absent from the demo history.
BURSTS: dict[str, tuple[dict, list[tuple[str, str, str, list[str]]]]] = {
    "A-chiller-coupler-leak": (_A, [
        ("2025-03-03", "PM1 ESC chiller 冷却液液位低报警 W6320",
         "机台报 W6320 coolant level low，打开下柜发现 chiller 回水管快插接头处在滴液，地上有一滩冷却液。接头是上月 PM 新换的。拧紧接头、补液后报警消除。", ["W6320"]),
        ("2025-03-06", "冷卻水快速接頭漏液，W6320 液位低",
         "客戶反映機台底部有水漬，PM2 chiller 跳 W6320。檢查為 ESC 冷卻迴路快速接頭 O-ring 滲漏，接頭批號 QC-24B。暫時換回舊款接頭。", ["W6320"]),
        ("2025-03-09", "Coolant leak at chiller quick-disconnect, W6320 alarm",
         "Customer found a coolant puddle under the PM3 lower frame. Chiller reported W6320 coolant level low. "
         "The quick-disconnect fitting on the ESC return line was weeping; the fitting was replaced at the "
         "last PM. Re-seated and topped up coolant.", ["W6320"]),
        ("2025-03-12", "ESC 冷却回路快插漏液",
         "下柜有冷却液渗出，查到 chiller 出水快插接头密封圈变形，是新批次的接头。更换密封圈后保压 2 小时无泄漏。", []),
        ("2025-03-14", "chiller 液位报警 W6320 反复出现",
         "一周内 W6320 报了三次，每次补液后几天又低。最后发现快插接头在温度循环后松动漏液，接头为今年新采购批次。", ["W6320"]),
        ("2025-03-17", "PM1 冷卻液滴漏，快插接頭鬆動",
         "夜班巡機發現 chiller 管路接頭下方滴液，機台尚未報警。接頭為近期 PM 更換的新款快插，鎖緊後觀察。", []),
        ("2025-03-19", "W6320 coolant low - leaking quick coupler on ESC loop",
         "Recurring W6320 on HX-E520. Leak traced to the quick coupler O-ring on the ESC coolant supply, same "
         "new coupler lot as other sites. Replaced the coupler with the previous part.", ["W6320"]),
        ("2025-03-21", "冷却液泄漏导致 W6320，机台停机",
         "W6320 冷却液液位低联锁，ESC 温控停止，wafer abort。检查 chiller 到腔体的快插接头漏液，O 型圈有压痕裂纹。", ["W6320"]),
    ]),
    "B-inspectview-export-encoding": (_B, [
        ("2025-05-12", "InspectView 3.0 导出 CSV 乱码",
         "升级 InspectView v3.0 后，defect 结果导出 CSV，lot ID 和 recipe 名里的中文全部变成乱码，客户 YMS 导入失败。", []),
        ("2025-05-15", "Defect list CSV export garbled after InspectView v3.0 upgrade",
         "After upgrading to InspectView v3.0 the exported defect CSV shows garbage characters for non-ASCII "
         "lot IDs. Excel opens it as mojibake. Export in v2.9 was fine.", []),
        ("2025-05-19", "InspectView 匯出報表當機 E5611",
         "v3.0 升級後匯出 wafer map 報表時程式閃退，log 顯示 E5611 export encoding error。lot ID 含中文時必現。", ["E5611"]),
        ("2025-05-22", "结果导出失败 E5611",
         "InspectView v3.0 导出检测结果时弹出 E5611，导出文件为空。客户 lot 命名带中文字符，改成英文 lot 名可以正常导出。", ["E5611"]),
        ("2025-05-27", "E5611 when exporting results, InspectView 3.0",
         "Export of inspection results fails with E5611 on HX-I960 since the v3.0 software update. Happens "
         "only for lots with Chinese characters in the lot ID. Workaround: rename the lot.", ["E5611"]),
        ("2025-05-29", "CSV 檔中文亂碼，YMS 無法讀取",
         "客戶 YMS 讀取 InspectView 匯出的 CSV 失敗，檔案編碼由 UTF-8 變成其他格式，中文欄位亂碼。機台軟體剛升級到 v3.0。", []),
        ("2025-06-02", "v3.0 导出 defect 文件编码错误",
         "InspectView 3.0 导出的 defect 文件编码不对，中文 recipe 名显示乱码，部分情况直接报 E5611 导出中断。", ["E5611"]),
    ]),
    "C-loadport-rfid-read": (_C, [
        ("2025-07-14", "Load port 读不到 FOUP carrier ID，E2450",
         "LP2 放上 FOUP 后 RFID 读取 carrier ID 失败，报 E2450，lot 无法开始。手动输入 ID 可以继续。", ["E2450"]),
        ("2025-07-16", "RFID read failure on load port, E2450",
         "Load port 1 fails to read the FOUP RFID tag, E2450 carrier ID read error. Retry sometimes works. "
         "Started after the RFID reader firmware update to v2.1.", ["E2450"]),
        ("2025-07-19", "LP RFID 讀取失敗，carrier ID 空白",
         "機台 load port 讀 FOUP RFID 逾時，carrier ID 顯示空白，報 E2450。換另一個 FOUP 也一樣。", ["E2450"]),
        ("2025-07-22", "FOUP ID 读取超时，lot 卡在 load port",
         "客户反映最近经常出现 FOUP 放上 load port 后识别不到载具 ID，需要人工输入，RFID 读头是新版固件。", []),
        ("2025-07-24", "Intermittent carrier ID read fail (E2450) after reader FW v2.1",
         "Intermittent E2450 on all three load ports. RFID reader FW v2.1 installed two weeks ago; rolling "
         "back to v2.0 fixes the read failures.", ["E2450"]),
        ("2025-07-28", "E2450 载具 ID 读取失败频发",
         "HX-L3200 load port RFID 读取 carrier ID 失败，一天十几次 E2450，影响产能。读头天线距离正常，怀疑固件。", ["E2450"]),
        ("2025-07-30", "RFID 讀頭韌體 v2.1 讀取不穩定",
         "load port RFID 讀頭升級 v2.1 後 carrier ID 讀取成功率下降，E2450 頻繁出現，降回 v2.0 後正常。", ["E2450"]),
        ("2025-08-01", "Load port 无法识别 FOUP，报 carrier ID read error",
         "LP3 报 E2450 carrier ID read error，FOUP 标签正常，其他机台能读。RFID 读头固件 v2.1。", ["E2450"]),
    ]),
}
REPLAY = (date(2025, 2, 3), date(2025, 9, 29))  # Mondays; covers every burst plus a month either side
SWEEP = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def burst_records() -> dict[str, list[Record]]:
    """The injected cases, per burst."""
    out: dict[str, list[Record]] = {}
    for b, (facets, rows) in BURSTS.items():
        out[b] = [Record(id=f"X-{b[0]}-{i + 1:02d}", kind="case", title=title, text=text, error_codes=codes,
                         created=day, status="open", group="华东现场服务组", **facets)
                  for i, (day, title, text, codes) in enumerate(rows)]
    return out


def demo_records() -> list[Record]:
    records: list[Record] = []
    for path in demo_sources():
        records += load_path(path).records
    return records


def mondays(start: date, end: date) -> list[date]:
    start += timedelta(days=(7 - start.weekday()) % 7)
    return [start + timedelta(days=7 * i) for i in range((end - start).days // 7 + 1)]


def replay(service: CaselinkService, days: list[date], bursts: dict[str, list[Record]], po_of: dict[str, str],
           *, similarity: float, window_days: int = 30) -> dict[str, Any]:
    """Run find_emerging on each day and score its flags against the bursts and the demo problem orders."""
    members = {r.id: b for b, rs in bursts.items() for r in rs}
    starts = {b: min(r.created for r in rs) for b, rs in bursts.items()}
    first: dict[str, date] = {}
    flags = true = known = 0
    for day in days:
        for g in find_emerging(service, as_of=day, similarity=similarity, window_days=window_days).groups:
            flags += 1
            b, n = Counter(members.get(i) for i in g.case_ids).most_common(1)[0]
            if b is not None and n * 2 >= g.size:
                true += 1
                first.setdefault(b, day)
                continue
            po, n = Counter(po_of.get(i) for i in g.case_ids).most_common(1)[0]
            known += int(po is not None and n * 2 >= g.size)
    return {
        "runs": len(days), "flags": flags, "burst_flags": true, "known_problem_flags": known,
        "unexplained_flags": flags - true - known,
        "precision": round(true / flags, 3) if flags else None,
        "precision_incl_known": round((true + known) / flags, 3) if flags else None,
        "recall": round(len(first) / len(bursts), 3) if bursts else None,
        "delay_days": {b: (first[b] - starts[b]).days if b in first else None for b in bursts},
    }


def problem_of(records: list[Record]) -> dict[str, str]:
    """Case id -> the demo problem order it is linked to (either direction)."""
    pos = {r.id for r in records if r.kind == "problem"}
    out: dict[str, str] = {}
    for r in records:
        if r.kind == "problem":
            out.update({link: r.id for link in r.links})
        elif r.kind == "case":
            out.update({r.id: link for link in r.links if link in pos})
    return out


def run(*, similarities: tuple[float, ...] = SWEEP, default: float = 0.6, verbose: bool = True) -> dict[str, Any]:
    """Build both indexes, replay, print Markdown tables and return the figures."""
    demo = demo_records()
    bursts = burst_records()
    po_of = problem_of(demo)
    last_demo = max(r.created for r in demo if r.kind == "case" and r.created)
    encoder = USEEncoder()
    result: dict[str, Any] = {"default_similarity": default, "replay": [str(REPLAY[0]), str(REPLAY[1])],
                              "with_bursts": {}, "demo_only_replay": {}, "demo_only_full": {}, "demo_only_90d": {}}
    with tempfile.TemporaryDirectory(prefix="caselink-emerging-") as tmp:
        injected = load_settings(env={}, data_dir=Path(tmp) / "injected")
        svc, _ = CaselinkService.build(injected, encoder=encoder,
                                       records=demo + [r for rs in bursts.values() for r in rs])
        days = mondays(*REPLAY)
        for s in similarities:
            result["with_bursts"][s] = replay(svc, days, bursts, po_of, similarity=s)
        svc.close()
        alone = load_settings(env={}, data_dir=Path(tmp) / "demo")
        alone.data_dir.mkdir(parents=True)
        shutil.copy(injected.cache_path, alone.cache_path)  # same texts: nothing to re-embed
        svc, _ = CaselinkService.build(alone, encoder=encoder, records=demo)
        full = mondays(date(2023, 2, 6), last_demo)
        for s in similarities:
            result["demo_only_replay"][s] = replay(svc, days, {}, po_of, similarity=s)
            result["demo_only_full"][s] = replay(svc, full, {}, po_of, similarity=s)
            result["demo_only_90d"][s] = replay(svc, full, {}, po_of, similarity=s, window_days=90)
        svc.close()
    if verbose:
        print(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Replay {result['replay'][0]} .. {result['replay'][1]}, weekly, window 30 days, min_size 3.", "",
             "| similarity | flags | burst flags | precision | precision incl. known PO | recall "
             "| delay A/B/C (days) | demo-only flags (same period) "
             "| demo-only 2023-2025: known PO / unexplained / runs | same, 90-day window |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s, w in result["with_bursts"].items():
        d = result["demo_only_replay"][s]
        f = result["demo_only_full"][s]
        q = result["demo_only_90d"][s]
        delay = "/".join("-" if v is None else str(v) for v in w["delay_days"].values())
        mark = " (default)" if s == result["default_similarity"] else ""
        lines.append(f"| {s}{mark} | {w['flags']} | {w['burst_flags']} | {w['precision']} "
                     f"| {w['precision_incl_known']} | {w['recall']} | {delay} "
                     f"| {d['flags']} ({d['known_problem_flags']} known PO) "
                     f"| {f['known_problem_flags']} / {f['unexplained_flags']} / {f['runs']} "
                     f"| {q['known_problem_flags']} / {q['unexplained_flags']} / {q['runs']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run()
