"""The caselink command line, run as a user would: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CASELINK_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "caselink.cli", *args], capture_output=True, text=True, env=env,
                          cwd=data_dir.parent, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli") / "data"
    proc = run("index", "--demo", data_dir=data)
    assert "indexed 536 records" in proc.stdout
    return data


def test_search_returns_case_problem_and_sop_for_a_chinese_symptom(demo_dir):
    out = json.loads(run("search", "刻蚀机前级干泵抽真空时电流一直往上涨然后跳停，进气口全是粉", "-k", "10",
                         "--json", data_dir=demo_dir).stdout)
    ids = [r["id"] for r in out["results"]]
    assert "PO-2023-003" in ids[:5]
    assert {"C-2023-00042", "C-2023-00026"} & set(ids[:5])
    assert any(i.startswith("SOP-VAC-003#") for i in ids)


def test_traditional_query_finds_simplified_records(demo_dir):
    out = json.loads(run("search", "換了新的汞燈還是點不起來，燈箱裡一直有放電聲", "--json", data_dir=demo_dir).stdout)
    ids = [r["id"] for r in out["results"]]
    assert "C-2025-00174" in ids[:5]  # written in simplified script
    assert "PO-2025-013" in ids[:5]


def test_error_code_query_puts_exact_code_first(demo_dir):
    out = json.loads(run("search", "A-4410", "-k", "10", "--json", data_dir=demo_dir).stdout)
    top = out["results"][:7]
    assert all("A-4410" in r["explanation"]["matched_codes"] for r in top)
    assert "PO-2024-043" in {r["id"] for r in top}
    assert any(r["id"].startswith("SOP-GAS-002#") for r in out["results"])


def test_search_prints_the_code_card_then_procedures_problems_and_cases(demo_dir):
    flat = json.loads(run("search", "E1023", "--flat", "-k", "20", "--json", data_dir=demo_dir).stdout)
    assert "sops" not in flat  # --flat: the old answer
    grouped = json.loads(run("search", "E1023", "--json", data_dir=demo_dir).stdout)
    assert grouped["sops"][0]["id"].startswith("SOP-VAC-003#") and grouped["problems"][0]["id"] == "PO-2023-003"
    card = grouped["code_cards"][0]
    assert card["code"] == "E1023" and card["procedures"][0]["doc_id"] == "SOP-VAC-003"
    assert card["problems"][0]["id"] == "PO-2023-003" and card["problems"][0]["workaround"]
    carried = [r for r in flat["results"] if r["kind"] == "case" and r["explanation"]["matched_codes"]]
    assert card["case_count"] >= len(carried) > 0
    text = run("search", "E1023", data_dir=demo_dir).stdout
    order = [text.index(s) for s in ("E1023: ", "procedure  SOP-VAC-003#", "problem    PO-2023-003", "workaround:",
                                     "Procedures (SOP sections)", "Known problems", "Past cases")]
    assert order == sorted(order), text
    old = run("search", "E1023", "--flat", data_dir=demo_dir).stdout
    assert old.startswith("10 results, path keyword") and "Procedures" not in old


def test_sparkline_scales_to_the_busiest_week_and_keeps_zero_apart():
    from caselink.cli.render import sparkline

    assert sparkline([0, 1, 4]) == "▁▂█"
    assert sparkline([0, 1, 1]) == "▁██" and sparkline([0, 0]) == "▁▁" and sparkline([]) == ""
    assert sparkline([3, 2, 1, 0]) == "█▅▂▁"


def test_related_and_stats(demo_dir):
    out = json.loads(run("related", "C-2023-00026", "--json", data_dir=demo_dir).stdout)
    ids = [r["id"] for r in out["results"]]
    assert "C-2023-00026" not in ids and "PO-2023-003" in ids[:5]
    stats = json.loads(run("stats", "--json", data_dir=demo_dir).stdout)
    assert stats["records"] == {"case": 324, "problem": 44, "sop": 168} and stats["model"] == "use-m3"
    assert stats["centering"] == ["*", "case", "sop"]  # the 44 problem orders use the corpus mean


def test_related_to_a_draft_in_a_json_file(demo_dir, tmp_path):
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps({"title": "刻蚀腔干泵又跳停", "text": "PM2 干泵过流跳停，报 E1023，进气口粉尘多",
                                 "error_codes": ["E1023"], "product": "HX-Etch 500"}, ensure_ascii=False),
                     encoding="utf-8")
    out = json.loads(run("related", "--record", str(draft), "--json", data_dir=demo_dir).stdout)
    ids = [r["id"] for r in out["results"]]
    assert "PO-2023-003" in ids[:5] and all("E1023" in r["explanation"]["matched_codes"] for r in out["results"][:5])
    for content, message in [("[1]", "must hold one JSON object"), ("{", "is not JSON"),
                             ('{"title": "x", "kind": "ticket"}', "field 'kind'"), ("{}", "nothing to compare")]:
        draft.write_text(content, encoding="utf-8")
        proc = run("related", "--record", str(draft), data_dir=demo_dir, check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = run("related", "C-2023-00026", "--record", str(draft), data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "not both" in proc.stderr


def test_attr_filters_search_and_related_and_the_table_shows_attributes(demo_dir):
    # The demo cases carry customer, site, serial and sw_version (indexing/demo/cases.jsonl).
    out = json.loads(run("search", "干泵跳停 E1023", "--flat", "-k", "20", "--attr", "customer=东海晶圆", "--json",
                         data_dir=demo_dir).stdout)
    assert out["results"] and {r["attributes"]["customer"] for r in out["results"]} == {"东海晶圆"}
    either = json.loads(run("search", "干泵跳停 E1023", "--flat", "-k", "20", "--attr", "customer=东海晶圆",
                            "--attr", "customer=pacific semi", "--json", data_dir=demo_dir).stdout)
    assert {r["attributes"]["customer"] for r in either["results"]} == {"东海晶圆", "Pacific Semi"}
    related = json.loads(run("related", "C-2023-00026", "--attr", "site=F12B", "--attr", "sw_version=5.1.2", "-k", "20",
                             "--json", data_dir=demo_dir).stdout)
    assert related["results"] and all((r["attributes"]["site"], r["attributes"]["sw_version"]) == ("F12B", "5.1.2")
                                      for r in related["results"])
    table = run("search", "干泵跳停 E1023", "--flat", "-k", "3", "--attr", "customer=东海晶圆", data_dir=demo_dir).stdout
    assert "attributes" in table and "customer=东海晶圆" in table
    for bad, says in (("customer", "--attr: expected key=value"), ("bad key=x", "--attr: key 'bad key' must be")):
        proc = run("search", "E1023", "--attr", bad, data_dir=demo_dir, check=False)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_ids_lists_every_stored_record_in_id_order(demo_dir):
    ids = run("ids", data_dir=demo_dir).stdout.split()
    assert len(ids) == 536 and ids == sorted(ids, key=lambda i: i.encode("utf-8"))
    problems = [json.loads(line) for line in run("ids", "--kind", "problem", "--json", data_dir=demo_dir).stdout.splitlines()]
    assert len(problems) == 44 and {p["kind"] for p in problems} == {"problem"}
    assert {"id", "kind", "updated", "hash"} <= problems[0].keys() and problems[0]["updated"].endswith("Z")
    proc = run("ids", "--kind", "ticket", data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "--kind expects one of case, problem, sop" in proc.stderr


def test_backup_then_restore_and_index_brings_the_backed_up_records_back(tmp_path):
    data = tmp_path / "data"
    run("index", "--demo", data_dir=data)
    proc = run("backup", str(tmp_path / "bk"), data_dir=data)
    assert proc.stdout.startswith("backed up 536 records and 0 votes") and "caselink restore" in proc.stdout
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps({"id": "C-LATER", "kind": "case", "title": "备份之后 E8765"}, ensure_ascii=False),
                     encoding="utf-8")
    run("index", str(later), data_dir=data)
    proc = run("restore", str(tmp_path / "bk"), data_dir=data)
    assert "restored 536 records" in proc.stdout and "Next: caselink index" in proc.stdout
    proc = run("search", "E8765", data_dir=data, check=False)
    assert proc.returncode == 2 and "older copy" in proc.stderr and "caselink index --rebuild" in proc.stderr
    assert "built from scratch" in run("index", data_dir=data).stdout
    assert "C-LATER" not in run("ids", data_dir=data).stdout.split()
    proc = run("backup", str(tmp_path / "bk"), data_dir=data, check=False)
    assert proc.returncode == 2 and "never overwrites" in proc.stderr
    proc = run("restore", str(tmp_path / "nowhere"), data_dir=data, check=False)
    assert proc.returncode == 2 and "no records.sqlite in" in proc.stderr


def test_errors_are_one_clear_line_and_exit_2(demo_dir, tmp_path):
    proc = run("related", "NO-SUCH-ID", data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "no record with id 'NO-SUCH-ID'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run("search", "泵", "--from", "yesterday", data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "--from expects a date" in proc.stderr
    proc = run("search", "泵", data_dir=tmp_path / "empty", check=False)
    assert proc.returncode == 2 and "caselink index" in proc.stderr


def test_index_reports_bad_rows_and_keeps_the_rest(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("id,kind,title,created\nX-1,case,真空泵报警 E1023,2024-01-02\nX-2,incident,坏行,2024-01-02\n"
                   "X-3,case,机械手报错,not-a-date\n,case,没有编号,2024-01-02\nX-5,case,激光功率下降,2024-02-03\n"
                   "X-6,case,,2024-03-01\n",
                   encoding="utf-8")
    proc = run("index", str(csv), data_dir=tmp_path / "data")
    assert "indexed 2 records" in proc.stdout
    assert "row 3" in proc.stderr and "kind" in proc.stderr
    assert "row 4" in proc.stderr and "created" in proc.stderr
    assert "row 7: field 'text'" in proc.stderr and "nothing to search" in proc.stderr


def test_index_streams_a_folder_and_stores_nothing_when_a_later_byte_cannot_be_decoded(tmp_path):
    import openpyxl

    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "array.json").write_text(json.dumps([{"id": "J-1", "title": "干泵跳停 E1023"},
                                                   {"id": "J-2", "title": "wafer drop"}]), encoding="utf-8")
    book = openpyxl.Workbook()
    book.active.append(["id", "title", "created"])
    book.active.append(["X-1", "真空腔体压力上升", "2024-01-02"])
    book.save(folder / "book.xlsx")
    (folder / "gbk.csv").write_bytes("id,title\nG-1,干泵报警后停机，检查冷却水流量\n".encode("gbk"))
    proc = run("index", str(folder), data_dir=tmp_path / "data")
    assert "indexed 4 records" in proc.stdout and "decoded as gb18030 (detected" in proc.stderr
    assert run("search", "冷却水", "--json", data_dir=tmp_path / "data").stdout.count('"G-1"') >= 1

    good = tmp_path / "good.csv"
    good.write_text("id,title\nOK-1,机械手报错\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"  # GBK, then, far past the part auto judges the encoding on, bytes GBK lacks
    bad.write_bytes(("id,title\n" + "".join(f"B-{i},真空腔体压力上升{i}\n" for i in range(60_000))).encode("gbk")
                    + b"B-x,\xff\xff\n")
    proc = run("index", str(good), str(bad), data_dir=tmp_path / "data2", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(r"bad\.csv: expected gb18030 text \(chosen by 'auto' on a [0-9,]+-byte sample of it\), "
                     r"got bytes it cannot decode \(ff ff 0a\) at offset \d+ \(line 60002\)",
                     " ".join(proc.stderr.split()))  # rich wraps long lines
    stats = run("stats", "--json", data_dir=tmp_path / "data2", check=False)
    assert stats.returncode != 0 or json.loads(stats.stdout)["records"] == {}  # nothing stored, not even OK-1


def test_eval_on_the_demo_history(demo_dir):
    out = json.loads(run("eval", "--demo", "--max-queries", "60", "--json", data_dir=demo_dir).stdout)
    assert out["dataset"] == "demo" and out["queries"] == 60
    assert set(out["modes"]) == {"hybrid", "dense", "keyword"}
    assert out["modes"]["hybrid"]["hit@10"] >= 0.9
    assert set(out["modes"]["hybrid"]) >= {"hit@1", "recall@10", "mrr@10", "ndcg@10"}


def test_emerging_and_suggest_commands(demo_dir):
    report = json.loads(run("emerging", "--window", "90d", "--json", data_dir=demo_dir).stdout)
    assert report["window_days"] == 90 and report["recent_cases"] > 0
    assert {p["id"] for p in report["rising_problems"]} >= {"PO-2025-036"}
    text = run("emerging", "--window", "90d", data_dir=demo_dir).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("  weekly "))  # PO-2025-036's, the first rising
    bars = line.split()[1]
    assert len(bars) == 52 and set(bars) <= set("▁▂▃▄▅▆▇█") and "█" in bars
    bad = run("emerging", "--window", "3x", data_dir=demo_dir, check=False)
    assert bad.returncode == 2 and "--window expects" in bad.stderr
    sugg = json.loads(run("suggest", "C-2023-00026", "--json", data_dir=demo_dir).stdout)
    assert sugg["fields"]["module"]["value"] == "真空"


def test_a_revised_sop_drops_its_old_sections_and_delete_takes_records_or_documents(tmp_path):
    sops, data = tmp_path / "sops", tmp_path / "data"
    sops.mkdir()
    doc = sops / "SOP-T-1.md"
    first = "# 干泵更换\n## 1. 准备\n关闭电源，确认 E1023 已复位。\n## 2. 拆卸\n拆下泵体与排气管。\n"
    doc.write_text(first + "## 3. 校准\n使用旧版工装 PN-0001-01 校准转速。\n", encoding="utf-8")
    (sops / "SOP-T-2.md").write_text("# 闸板阀保养\n## 1. 检查\n检查 O-ring，PN-7731-02。\n", encoding="utf-8")
    assert "indexed 4 records" in run("index", str(sops), data_dir=data).stdout

    def found(query: str) -> list[str]:
        return [r["id"] for r in json.loads(run("search", query, "--json", data_dir=data).stdout)["results"]]

    assert found("PN-0001-01")[0] == "SOP-T-1#3"
    doc.write_text(first, encoding="utf-8")  # the revision has no section 3 any more
    proc = run("index", str(sops), data_dir=data)
    assert "removed 1 SOP section no longer in their documents: SOP-T-1#3" in proc.stdout
    assert "SOP-T-1#3" not in found("PN-0001-01 旧版工装 校准")
    assert run("index", str(sops), data_dir=data).stdout.count("removed") == 0  # nothing more to remove

    proc = run("delete", "SOP-T-2#1", "--doc", "SOP-NONE", data_dir=data, check=False)
    assert proc.returncode == 2 and "not stored: document 'SOP-NONE'; nothing was deleted" in proc.stderr
    assert found("PN-7731-02 O-ring")[0] == "SOP-T-2#1"
    assert "deleted 3 records: SOP-T-2#1, SOP-T-1#1, SOP-T-1#2" in run(
        "delete", "SOP-T-2#1", "--doc", "SOP-T-1", data_dir=data).stdout
    assert json.loads(run("stats", "--json", data_dir=data).stdout)["records"] == {}


def test_related_of_a_record_stored_empty_says_why_it_has_nothing(tmp_path):
    from caselink.config import load_settings
    from indexing.records import Record
    from recommender.service import CaselinkService

    data = tmp_path / "data"
    run("index", "--demo", data_dir=data)
    svc = CaselinkService.open(load_settings(data_dir=data, env={}))
    try:  # as an older caselink could store it: the live index itself does not refuse it
        svc.index.upsert([Record(id="T-EMPTY", kind="case", status="open")])
    finally:
        svc.close()
    proc = run("related", "T-EMPTY", data_dir=data)
    assert "0 results, path hybrid (record 'T-EMPTY' has no title, text or codes to compare)" in proc.stdout
    assert "fell back" not in proc.stdout


def test_feedback_marks_a_suggestion_and_reorders_what_is_related(demo_dir):
    def related():
        return [r for r in json.loads(run("related", "C-2023-00042", "--json", data_dir=demo_dir).stdout)["results"]]

    tenth = related()[9]["id"]
    votes = json.loads(run("stats", "--json", data_dir=demo_dir).stdout)["feedback"]
    proc = run("feedback", tenth, "--for", "C-2023-00042", data_dir=demo_dir)
    assert proc.stdout.strip().startswith(f"marked {tenth} helpful for record C-2023-00042 (source cli:")
    top = related()[0]
    assert top["id"] == tenth and top["explanation"]["helpful_votes"] == 1
    assert top["explanation"]["reason"].startswith("marked helpful for this record (1 helpful, 0 not)")
    text = run("related", "C-2023-00042", data_dir=demo_dir).stdout
    assert "marked helpful for this record" in text
    # The same user changes their mind: one vote, the latest.
    proc = run("feedback", tenth, "--for", "C-2023-00042", "--not-helpful", data_dir=demo_dir)
    assert tenth not in [r["id"] for r in related()]
    assert json.loads(run("stats", "--json", data_dir=demo_dir).stdout)["feedback"] == votes + 2
    # Taken back: the same user's earlier "helpful" is their latest verdict again.
    vote = re.search(r"caselink feedback --undo (\d+) takes it back", proc.stdout).group(1)
    assert run("feedback", "--undo", vote, data_dir=demo_dir).stdout.strip() == f"took back vote {vote}; it no longer counts"
    assert related()[0]["id"] == tenth
    proc = run("feedback", "--undo", vote, data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and f"no vote with id {vote}" in proc.stderr
    proc = run("feedback", tenth, "--undo", vote, data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "by its id alone" in proc.stderr

    proc = run("feedback", tenth, data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "give the query text or the query record id" in proc.stderr
    proc = run("feedback", "NO-SUCH-ID", "--query", "干泵", data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "no record with id 'NO-SUCH-ID'" in proc.stderr
    proc = run("feedback", "C-2023-00042", "--for", "C-2023-00042", data_dir=demo_dir, check=False)
    assert proc.returncode == 2 and "not a suggestion for itself" in proc.stderr and "Traceback" not in proc.stderr


def _question_set(folder: Path, candidate_kind: str) -> tuple[Path, Path]:
    """A small question set whose answers are called ``candidate_kind``: Chinese in both scripts,
    English and codes, one answer per pair of questions."""
    answers = [
        ("干泵过温停机 E1023 的处理：检查冷却水流量是否大于 4 L/min，再检查泵体温度传感器。",
         ["乾泵跳機報警 E1023 怎麼處理", "dry pump trips with alarm E1023, what to check"]),
        ("激光功率下降时更换激光器电源模块 PN-7731-02，并重新标定输出功率。",
         ["激光输出功率比设定低很多要换什么件", "laser power drops 15%, which part PN-7731-02"]),
        ("机械手取片真空吸附报警 W3001：清洁吸盘并检查真空管路是否漏气。",
         ["機械手取片時吸附報警 W3001", "robot vacuum grip alarm when picking wafer"]),
        ("工件台定位误差超差时，重新校准干涉仪并检查温控。",
         ["工件臺對準定位誤差超過 50nm", "stage alignment error too large after move"]),
    ]
    records, pairs = [], ["id_a\tid_b\tlabel"]
    for i, (answer, questions) in enumerate(answers):
        records.append({"id": f"A{i}", "text": answer, "kind": candidate_kind})
        for j, q in enumerate(questions):
            records.append({"id": f"Q{i}{j}", "text": q, "kind": "question"})
            pairs.append(f"Q{i}{j}\tA{i}\t1")
    folder.mkdir()
    (folder / "records.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                                          encoding="utf-8")
    (folder / "pairs.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return folder / "records.jsonl", folder / "pairs.tsv"


def test_eval_ranks_a_question_sets_candidates_whatever_their_kind_is_called(tmp_path):
    figures = {}
    for kind in ("answer", "section"):
        recs, pairs = _question_set(tmp_path / kind, kind)
        out = json.loads(run("eval", "--records", str(recs), "--pairs", str(pairs), "--mode", "all", "--json",
                             data_dir=tmp_path / f"data-{kind}").stdout)
        assert out["queries"] == 8
        figures[kind] = out["modes"]
    assert figures["answer"] == figures["section"]  # the name of the candidate kind changes nothing
    assert figures["answer"]["hybrid"]["hit@5"] == 1.0 and figures["answer"]["hybrid"]["mrr@10"] >= 0.8


def test_eval_refuses_a_question_set_with_nothing_to_rank(tmp_path):
    recs, pairs = _question_set(tmp_path / "set", "question")  # the answers are questions too
    proc = run("eval", "--records", str(recs), "--pairs", str(pairs), "--json", data_dir=tmp_path / "data",
               check=False)
    assert proc.returncode == 2, proc.stderr
    assert "every record is a 'question'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.fixture()
def demo_server(demo_dir):
    from _server import make_settings, serve

    with serve(make_settings(demo_dir)) as running:
        yield running.url


def test_with_a_server_the_cli_asks_it_and_answers_as_locally(demo_dir, demo_server):
    def both(*args: str) -> tuple[dict, dict]:
        local = json.loads(run(*args, "--json", data_dir=demo_dir).stdout)
        remote = json.loads(run(*args, "--json", "--server", demo_server, data_dir=demo_dir).stdout)
        return local, remote

    def ids(results: list[dict]) -> list[str]:
        return [r["id"] for r in results]

    local, remote = both("search", "干泵抽真空电流上涨跳停 E1023")
    for group in ("results", "sops", "problems", "cases"):
        assert ids(remote[group]) == ids(local[group]), group
    assert remote["code_cards"] == local["code_cards"] and remote["code_cards"][0]["code"] == "E1023"
    # The code card keeps to the filters, on both paths: no procedure or problem order under
    # --kind case, and only that customer's cases counted (3 of the 10 carrying E1023).
    local, remote = both("search", "E1023", "--kind", "case", "--attr", "customer=东海晶圆")
    card, = remote["code_cards"]
    assert local["code_cards"] == remote["code_cards"] and card["procedures"] == card["problems"] == []
    unfiltered, = json.loads(run("search", "E1023", "--json", data_dir=demo_dir).stdout)["code_cards"]
    assert (card["case_count"], unfiltered["case_count"]) == (3, 10) and unfiltered["procedures"]
    assert {r["kind"] for r in remote["cases"]} == {"case"} and remote["sops"] == remote["problems"] == []
    local, remote = both("search", "A-4410", "--flat", "-k", "5")
    assert ids(remote["results"]) == ids(local["results"]) and "sops" not in remote
    local, remote = both("related", "C-2023-00026", "--kind", "problem", "-k", "5")
    assert ids(remote["results"]) == ids(local["results"]) and {r["kind"] for r in remote["results"]} == {"problem"}
    local, remote = both("search", "干泵跳停", "--attr", "customer=东海晶圆", "--attr", "customer=Pacific Semi")
    assert ids(remote["cases"]) == ids(local["cases"]) and remote["cases"] and remote["problems"] == []
    local, remote = both("related", "C-2023-00026", "--attr", "site=F12B", "-k", "20")
    assert ids(remote["results"]) == ids(local["results"]) and {r["attributes"]["site"] for r in remote["results"]} == {
        "F12B"}
    draft = demo_dir.parent / "draft-attrs.json"
    draft.write_text(json.dumps({"title": "干泵跳停 E1023", "attributes": {"customer": "东海晶圆"}}), encoding="utf-8")
    local, remote = both("related", "--record", str(draft), "--attr", "customer=东海晶圆", "-k", "10")
    assert ids(remote["results"]) == ids(local["results"]) and remote["results"]
    assert {r["attributes"]["customer"] for r in remote["results"]} == {"东海晶圆"}
    local, remote = both("emerging", "--window", "90d")
    assert [p["id"] for p in remote["rising_problems"]] == [p["id"] for p in local["rising_problems"]]
    assert remote["weeks"] == local["weeks"]
    local, remote = both("suggest", "C-2023-00026")
    assert remote["fields"]["module"]["value"] == local["fields"]["module"]["value"] == "真空"

    # CASELINK_URL does the same, and the process never loads numpy, the index or a model.
    env = {**os.environ, "CASELINK_URL": demo_server, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "caselink.cli", "search", "E1023"],
                          capture_output=True, text=True, env=env, cwd=demo_dir.parent, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "E1023: " in proc.stdout and "Procedures (SOP sections)" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "httpx" in imported and not {"numpy", "faiss", "torch", "jieba"} & imported

    missing = run("related", "NOPE-1", "--server", demo_server, data_dir=demo_dir, check=False)
    assert missing.returncode == 2 and "the server answered 404" in missing.stderr and "NOPE-1" in missing.stderr
    from _server import free_port

    down = run("search", "E1023", "--server", f"http://127.0.0.1:{free_port()}", data_dir=demo_dir, check=False)
    assert down.returncode == 2 and "cannot reach the caselink server" in down.stderr and "Traceback" not in down.stderr
    bad = run("search", "E1023", "--server", "127.0.0.1:8000", data_dir=demo_dir, check=False)
    assert bad.returncode == 2 and "expects an http(s) URL" in bad.stderr
