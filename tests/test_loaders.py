"""Tests for indexing.loaders: real files (fixtures under tests/data/loaders, the rest built in tmp_path)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import docx
import openpyxl
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from caselink.errors import ConfigError, LoaderError, UnsupportedFormat
from indexing.loaders import (
    LoadResult,
    Mapping,
    SkippedRow,
    load_mapping,
    load_path,
    load_sop_bytes,
    load_sop_file,
    load_sop_folder,
    load_table,
    mapping_from_dict,
)
from indexing.loaders.encoding import decode_bytes
from indexing.loaders.sop import find_error_codes
from indexing.loaders.values import as_date

DATA = Path(__file__).parent / "data" / "loaders"

SIMPLIFIED = "真空腔体压力上升，干泵报警后停机。检查冷却水流量，更换密封圈后恢复正常。"
TRADITIONAL = "真空腔體壓力上升，乾泵報警後停機。檢查冷卻水流量，更換密封圈後恢復正常。"


def _csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _skips(result: LoadResult) -> list[tuple[str, int | None, str | None]]:
    return [(Path(s.file).name, s.row, s.field) for s in result.skipped]


# --- tables ---------------------------------------------------------------------------------


def test_csv_with_chinese_columns_and_mapping():
    mapping = load_mapping(DATA / "cases_mapping.toml")
    result = load_table(DATA / "cases.csv", mapping)

    assert result.skipped == []
    assert [r.id for r in result.records] == ["C-2024-0113", "C-2024-0114"]
    first, second = result.records
    assert first.kind == "case"
    assert first.title == "干泵异常停机"
    assert first.text == "真空腔体压力上升，干泵报警后停机\n已更换干泵"
    assert first.error_codes == ["E1023", "E1024"]
    assert first.created == date(2024, 3, 5)
    assert first.module == "真空"
    assert first.product == "HX-Etch 500"  # unmapped column named like a field: taken as-is
    assert second.title == "射頻電源反射功率高"
    assert second.text == "匹配器調諧失敗"
    assert second.error_codes == ["W3001", "W3002"]
    assert second.created == date(2024, 3, 6)
    assert result.warnings == [f"{DATA / 'cases.csv'}: ignored columns that feed no field: 备注"]
    assert result.summary() == "loaded 2 records from 1 file; 1 warning (see below)"


def test_gbk_csv_is_detected_and_round_trips(tmp_path):
    path = _csv(tmp_path / "gbk.csv", f"工单号,标题,现象\nC-1,干泵异常停机,{SIMPLIFIED}\n", "gbk")
    result = load_table(path, Mapping(columns={"id": ("工单号",), "title": ("标题",), "text": ("现象",)}))
    assert [(r.id, r.title, r.text) for r in result.records] == [("C-1", "干泵异常停机", SIMPLIFIED)]
    assert result.warnings == [
        f"{path}: not UTF-8; decoded as gb18030 (detected; set encoding = \"gbk\" (or \"big5\", \"utf-8\" ...) "
        "in the mapping TOML to override)"
    ]


def test_big5_csv_is_detected_and_round_trips(tmp_path):
    path = _csv(tmp_path / "big5.csv", f"id,title,text\nC-1,乾泵異常停機,{TRADITIONAL}\n", "big5")
    result = load_table(path)
    assert [(r.id, r.title, r.text) for r in result.records] == [("C-1", "乾泵異常停機", TRADITIONAL)]
    assert "decoded as cp950" in result.warnings[0]


def test_utf8_bom_and_utf16_are_honoured(tmp_path):
    bom = _csv(tmp_path / "bom.csv", f"id,text\nC-1,{SIMPLIFIED}\n", "utf-8-sig")
    utf16 = _csv(tmp_path / "u16.tsv", f"id\ttext\nC-2\t{TRADITIONAL}\n", "utf-16")
    assert [(r.id, r.text) for r in load_table(bom).records] == [("C-1", SIMPLIFIED)]
    assert [(r.id, r.text) for r in load_table(utf16).records] == [("C-2", TRADITIONAL)]
    assert load_table(bom).warnings == []


def test_ambiguous_short_big5_is_refused_unless_encoding_is_set(tmp_path):
    path = _csv(tmp_path / "short.csv", "id,title\nC-1,停機\n", "big5")
    with pytest.raises(LoaderError) as caught:
        load_table(path)
    assert caught.value.field == "encoding"
    assert "cannot tell the text encoding" in str(caught.value)
    assert 'set encoding = "gbk"' in str(caught.value)

    result = load_table(path, Mapping(encoding="big5"))
    assert [r.title for r in result.records] == ["停機"]


def test_other_encodings_are_refused_not_misread(tmp_path):
    korean = _csv(tmp_path / "kr.csv", "id,title\nK-1,펌프가 정지되었습니다. 냉각수를 확인하세요.\n", "cp949")
    with pytest.raises(LoaderError, match="could be gb18030 or cp949"):
        load_table(korean)
    western = _csv(tmp_path / "w.csv", "name,city\nJosé,Zürich\nFrançois,Besançon\nMüller,Köln\n", "cp1252")
    with pytest.raises(LoaderError, match="it is not UTF-8, GBK or Big5 and reads differently"):
        load_table(western)
    one_char = _csv(tmp_path / "one.csv", "id,title\nC-1,乾\n", "gbk")  # b"\xc7\xac" is also UTF-8 "Ǭ"
    with pytest.raises(LoaderError, match="it is valid UTF-8 .* but also gb18030"):
        load_table(one_char)
    latin_utf8 = _csv(tmp_path / "u.csv", "id,title\nC-1,Müller 25°C\n")
    assert [r.title for r in load_table(latin_utf8).records] == ["Müller 25°C"]


def test_explicit_wrong_encoding_says_expected_and_got(tmp_path):
    path = _csv(tmp_path / "gbk.csv", f"id,text\nC-1,{SIMPLIFIED}\n", "gbk")
    with pytest.raises(LoaderError, match=r"expected utf-8 text, got bytes it cannot decode \(d5 e6"):
        load_table(path, Mapping(encoding="utf-8"))


def test_bad_rows_are_skipped_and_named_rest_loads(tmp_path):
    long_title = "长" * 1001
    path = _csv(tmp_path / "bad.csv", (
        "工单号,类型,标题,创建时间\n"
        "C-1,case,好的,2024-01-02\n"          # row 2
        ",case,没有工单号,2024-01-02\n"        # row 3
        "C-3,incident,错误类型,2024-01-02\n"   # row 4
        "C-4,problem,错误日期,2024-13-45\n"    # row 5
        f"C-5,case,{long_title},\n"            # row 6
        ",,,\n"                                # row 7: blank, ignored
        "C-1,CASE,后一行覆盖,\n"               # row 8: duplicate id, kind in capitals
        "C-9,case,多一列,2024-01-02,extra\n"   # row 9
        "C-10,,默认类型,2024年3月5日\n"        # row 10
        "C-11,case,,2024-01-02\n"              # row 11: nothing to search
    ))
    mapping = mapping_from_dict({"kind": "problem", "columns": {
        "id": "工单号", "kind": "类型", "title": "标题", "created": "创建时间",
    }})
    result = load_table(path, mapping)

    assert [(r.id, r.kind, r.title, r.created) for r in result.records] == [
        ("C-1", "case", "后一行覆盖", None),
        ("C-10", "problem", "默认类型", date(2024, 3, 5)),
    ]
    assert _skips(result) == [
        ("bad.csv", 3, "id"), ("bad.csv", 4, "kind"), ("bad.csv", 5, "created"),
        ("bad.csv", 6, "title"), ("bad.csv", 9, None), ("bad.csv", 11, "text"),
    ]
    messages = [s.message for s in result.skipped]
    assert messages[0] == "field 'id' (column '工单号'): expected an id, got an empty cell"
    assert messages[1] == "field 'kind' (column '类型'): Input should be 'case', 'problem' or 'sop', got 'incident'"
    assert messages[2] == (
        "field 'created' (column '创建时间'): expected a date like 2024-03-05 or 2024/03/05 10:11 "
        "(or set date_format in the mapping), got '2024-13-45'"
    )
    assert messages[3] == "field 'title' (column '标题'): String should have at most 1000 characters, got 1001 characters"
    assert messages[4] == "expected at most 4 cells (as in the header), got 5"
    assert messages[5].startswith("field 'text': record 'C-11' has no title, text, cause")
    assert str(result.skipped[0]) == f"{path} row 3: field 'id' (column '工单号'): expected an id, got an empty cell"
    assert result.warnings == [f"{path}: duplicate ids, the later row kept: 'C-1' (rows 2 and 8)"]
    assert result.summary() == "loaded 2 records from 1 file; skipped 6 rows; 1 warning (see below)"


def test_mapped_column_missing_from_file_is_a_loader_error(tmp_path):
    path = _csv(tmp_path / "cases.csv", "编号,标题\nC-1,x\n")
    mapping = mapping_from_dict({"columns": {"id": "工单号", "title": "标题"}})
    with pytest.raises(LoaderError) as caught:
        load_table(path, mapping)
    assert str(caught.value) == (
        f"{path}: expected column '工单号' (for id), got columns 编号, 标题 (fix [columns] in the mapping TOML)"
    )


def test_jsonl_keeps_lists_and_skips_broken_lines(tmp_path):
    path = tmp_path / "problems.jsonl"
    lines = [
        json.dumps({"id": "P-1", "kind": "problem", "title": "漏率超标", "error_codes": ["E1023", "A-4410"],
                    "created": "2024-03-05T10:11:00+08:00", "links": "C-1; C-2"}, ensure_ascii=False),
        "",
        "{not json",
        json.dumps(["P-4"]),
        json.dumps({"id": "P-5", "title": "段落\u2028分隔"}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_table(path)

    assert [(r.id, r.kind, r.error_codes, r.created, r.links) for r in result.records] == [
        ("P-1", "problem", ["E1023", "A-4410"], date(2024, 3, 5), ["C-1", "C-2"]),
        ("P-5", "case", [], None, []),
    ]
    assert result.records[1].title == "段落\u2028分隔"
    assert _skips(result) == [("problems.jsonl", 3, None), ("problems.jsonl", 4, None)]
    assert result.skipped[0].message.startswith("expected a JSON object, got invalid JSON (")
    assert result.skipped[1].message == "expected a JSON object, got list"


def test_json_array(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"id": "C-1", "text": SIMPLIFIED}, {"title": "no id"}], ensure_ascii=False), "utf-8")
    result = load_table(path)
    assert [(r.id, r.text) for r in result.records] == [("C-1", SIMPLIFIED)]
    assert _skips(result) == [("cases.json", 2, "id")]

    (tmp_path / "obj.json").write_text('{"id": "C-1"}', encoding="utf-8")
    with pytest.raises(LoaderError, match="expected a JSON array of objects, got dict"):
        load_table(tmp_path / "obj.json")


def test_parquet_with_typed_columns(tmp_path):
    path = tmp_path / "cases.parquet"
    pd.DataFrame({
        "编号": [1001, 1002, 1003],
        "title": ["干泵异常", "射频反射", None],
        "text": [None, None, "腔体压力波动"],
        "created": [datetime(2024, 3, 5, 10, 11), None, datetime(2024, 3, 7)],
        "error_codes": [["E1023", "E1024"], [], None],
    }).to_parquet(path)
    result = load_table(path, Mapping(kind="problem", columns={"id": ("编号",)}))
    assert [(r.id, r.kind, r.title, r.text, r.created, r.error_codes) for r in result.records] == [
        ("1001", "problem", "干泵异常", "", date(2024, 3, 5), ["E1023", "E1024"]),
        ("1002", "problem", "射频反射", "", None, []),
        ("1003", "problem", "", "腔体压力波动", date(2024, 3, 7), []),
    ]
    assert result.skipped == [] and result.warnings == []


def test_xlsx_rows_are_numbered_like_the_spreadsheet(tmp_path):
    path = tmp_path / "orders.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "工单"
    sheet.append(["工单号", "标题", "创建时间", "报警代码"])
    sheet.append(["C-1", "干泵异常停机", datetime(2024, 3, 5, 10, 11), "E1023，E1024"])  # row 2
    sheet.append([None, None, None, None])                                               # row 3: blank
    sheet.append([1002, "编号是数字", "2024/03/06", None])                               # row 4
    sheet.append(["C-3", "坏日期", "下周一", None])                                       # row 5
    book.create_sheet("说明")
    book.save(path)
    mapping = mapping_from_dict({"columns": {
        "id": "工单号", "title": "标题", "created": "创建时间", "error_codes": "报警代码",
    }})
    result = load_table(path, mapping)

    assert [(r.id, r.title, r.created, r.error_codes) for r in result.records] == [
        ("C-1", "干泵异常停机", date(2024, 3, 5), ["E1023", "E1024"]),
        ("1002", "编号是数字", date(2024, 3, 6), []),
    ]
    assert _skips(result) == [("orders.xlsx", 5, "created")]
    assert result.warnings == [f"{path}: read only the first sheet '工单'; ignored sheets: 说明"]


def test_xls_and_unknown_extensions_are_refused_with_reason(tmp_path):
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(LoaderError, match=r"expected \.xlsx, got \.xls"):
        load_table(tmp_path / "old.xls")
    (tmp_path / "x.dat").write_text("x")
    expected = r"expected a table \(\.csv, \.tsv, .*\) or an SOP document \(\.md, .*got '\.dat'"
    with pytest.raises(LoaderError, match=expected):
        load_path(tmp_path / "x.dat")
    with pytest.raises(LoaderError, match="file or folder not found"):
        load_path(tmp_path / "missing.csv")


def test_semicolon_csv_and_tsv(tmp_path):
    semi = _csv(tmp_path / "semi.csv", "id;title;error_codes\nC-1;标题;E1023,E1024\n")
    tsv = _csv(tmp_path / "t.tsv", "id\ttitle\tcreated\nC-2\t标题, 带逗号\t2024.03.05\n")
    assert [(r.id, r.error_codes) for r in load_table(semi).records] == [("C-1", ["E1023", "E1024"])]
    assert [(r.id, r.title, r.created) for r in load_table(tsv).records] == [("C-2", "标题, 带逗号", date(2024, 3, 5))]


# --- mapping --------------------------------------------------------------------------------


def test_mapping_rejects_unknown_field_key_and_values(tmp_path):
    bad_field = tmp_path / "m.toml"
    bad_field.write_text('[columns]\nid = "工单号"\nsymptom = "现象"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_mapping(bad_field)
    assert caught.value.field == "columns.symptom"
    assert str(caught.value).startswith(
        f"{bad_field}: columns: unknown record field 'symptom'; expected one of id, kind, title, text,"
    )

    with pytest.raises(ConfigError, match=r"unknown record field 'titel'.*\(did you mean 'title'\?\)"):
        mapping_from_dict({"columns": {"titel": "标题"}})
    with pytest.raises(ConfigError, match="unknown key 'encodng'"):
        mapping_from_dict({"encodng": "gbk"})
    with pytest.raises(ConfigError, match="kind: expected one of case, problem, sop, got 'ticket'"):
        mapping_from_dict({"kind": "ticket"})
    with pytest.raises(ConfigError, match="encoding: expected 'auto' or a codec name"):
        mapping_from_dict({"encoding": "klingon"})
    with pytest.raises(ConfigError, match=r"columns.text: expected a column name or a list of column names, got \[\]"):
        mapping_from_dict({"columns": {"text": []}})
    # [columns] and [attributes] share one reader: each error names its own table and field.
    for data, message, name in (
        ({"columns": ["id"]}, "mapping: columns: expected a table [columns], got ['id']", "columns"),
        ({"attributes": "客户"}, "mapping: attributes: expected a table [attributes] of key = column, got '客户'",
         "attributes"),
        ({"columns": {"id": ["", "x"]}}, "mapping: columns.id: expected a column name or a list of column "
         "names, got ['', 'x']", "columns.id"),
        ({"attributes": {"site": [1]}}, "mapping: attributes.site: expected a column name or a list of column "
         "names, got [1]", "attributes.site"),
    ):
        with pytest.raises(ConfigError) as caught:
            mapping_from_dict(data)
        assert (caught.value.message, caught.value.field) == (message, name)
    assert mapping_from_dict({"columns": {"text": [" 现象 ", "原因"]}, "attributes": {"site": "Fab "}}).attributes \
        == {"site": ("Fab",)}
    with pytest.raises(ConfigError, match="mapping file not found"):
        load_mapping(tmp_path / "none.toml")


def test_mapping_from_code_accepts_plain_column_names(tmp_path):
    mapping = Mapping(kind="problem", columns={"id": "单号", "text": ["现象", "原因"]})
    assert mapping.columns == {"id": ("单号",), "text": ("现象", "原因")}
    path = _csv(tmp_path / "p.csv", "单号,现象,原因\nP-1,漏气,密封圈老化\n")
    assert [(r.id, r.kind, r.text) for r in load_table(path, mapping).records] == [("P-1", "problem", "漏气\n密封圈老化")]


def test_date_format_and_builtin_date_forms():
    assert as_date("05/03/2024", "%d/%m/%Y") == date(2024, 3, 5)
    assert as_date("2024-03-05 10:11") == date(2024, 3, 5)
    assert as_date("2024/3/5") == date(2024, 3, 5)
    assert as_date("2024年3月5日 08:00") == date(2024, 3, 5)
    assert as_date("20240305") == date(2024, 3, 5)
    with pytest.raises(ValueError, match="expected a date in the format '%d/%m/%Y', got '2024-03-05'"):
        as_date("2024-03-05", "%d/%m/%Y")
    with pytest.raises(ValueError, match="got '03/05/2024'"):
        as_date("03/05/2024")


# --- encoding -------------------------------------------------------------------------------

_CHINESE_CHARS = sorted(set(SIMPLIFIED + TRADITIONAL + "干泵异常停机射频电源反射功率高匹配器调谐失败頻電源調諧敗") - set("，。"))


@settings(max_examples=200, deadline=None, database=None)
@given(
    text=st.text(alphabet=st.sampled_from(_CHINESE_CHARS + list("，。 ,E0123-\n")), min_size=1, max_size=40),
    encoding=st.sampled_from(["gbk", "big5"]),
)
@example(text="電检壓", encoding="gbk")  # its GBK bytes are UTF-8 hangul (found by this test)
def test_detection_never_returns_wrong_text(text, encoding):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        decoded = decode_bytes(data, source="t.csv", hint="set encoding")
    except LoaderError:
        return  # refusing is allowed; decoding wrongly is not
    assert decoded.text == text


# --- SOP documents --------------------------------------------------------------------------


def test_markdown_sop_demo_format():
    result = load_sop_file(DATA / "SOP-VAC-003.md")
    assert result.skipped == [] and result.warnings == []
    assert [(r.id, r.section) for r in result.records] == [
        ("SOP-VAC-003#1", "概述"),
        ("SOP-VAC-003#2", "1. 适用范围"),
        ("SOP-VAC-003#3", "2. 诊断步骤"),
        ("SOP-VAC-003#4", "3. 恢复运行"),
    ]
    steps = result.records[2]
    assert steps.kind == "sop"
    assert steps.doc_id == "SOP-VAC-003"
    assert steps.doc_title == "干泵异常停机诊断程序"
    assert steps.title == ""
    assert steps.display_title() == "干泵异常停机诊断程序 / 2. 诊断步骤"
    assert steps.product == "HX-Etch 500" and steps.module == "真空"
    assert steps.error_codes == ["E1023", "E1024", "W3001", "A-4410"]
    assert steps.text == (
        "1. 确认报警代码（E1023 或 W3001）。\n2. 检查冷却水流量。\n\n### 2.1 电源检查\n"
        "测量三相电压，偏差超过 5% 时报 A-4410。\n\n```\n## 不是标题\n```"
    )
    assert result.records[0].text == "本程序用于干泵异常停机后的现场诊断。"
    assert result.records[3].error_codes == ["E1023", "E1024"]


def test_markdown_without_front_matter_uses_file_stem_and_yaml_lists(tmp_path):
    plain = tmp_path / "pump guide.md"
    plain.write_text("# Pump guide\n## Checks\nLook at E2001.\n", encoding="utf-8")
    assert [(r.id, r.doc_title, r.section, r.error_codes) for r in load_sop_file(plain).records] == [
        ("pump guide#1", "Pump guide", "Checks", ["E2001"]),
    ]
    listed = tmp_path / "listed.md"
    listed.write_text("---\ndoc_id: SOP-1\nerror_codes:\n  - E1\n  - \"E2\"\nowner: 张三\n---\nIntro only.\n", "utf-8")
    result = load_sop_file(listed)
    assert [(r.id, r.doc_title, r.section, r.error_codes) for r in result.records] == [
        ("SOP-1#1", "listed", "Overview", ["E1", "E2"]),
    ]
    assert result.warnings == [
        f"{listed}: front matter key 'owner' ignored; "
        "expected one of doc_id, product, model, module, error_codes, title"
    ]
    broken = tmp_path / "broken.md"
    broken.write_text("---\ndoc_id: X\n# never closed\n", encoding="utf-8")
    with pytest.raises(LoaderError, match="front matter opened with '---' on line 1 but never closed"):
        load_sop_file(broken)


def test_txt_sop_numbered_headings_and_steps(tmp_path):
    path = tmp_path / "SOP-RF-001.txt"
    path.write_bytes((
        "射频电源维护规程\n"
        "\n"
        "1. 适用范围\n"
        "适用于 13.56MHz 射频电源。\n"
        "2. 操作步骤\n"
        "1. 关闭射频输出。\n"
        "2. 检查匹配器，报警 W3001 时记录反射功率。\n"
        "2.1 匹配器检查\n"
        "确认电容位置。\n"
        "3. 注意事项\n"
        "高压危险。\n"
    ).encode("gbk"))
    result = load_sop_file(path)
    assert [(r.id, r.section, r.text, r.error_codes) for r in result.records] == [
        ("SOP-RF-001#1", "1. 适用范围", "适用于 13.56MHz 射频电源。", []),
        ("SOP-RF-001#2", "2. 操作步骤", "1. 关闭射频输出。\n2. 检查匹配器，报警 W3001 时记录反射功率。", ["W3001"]),
        ("SOP-RF-001#3", "2.1 匹配器检查", "确认电容位置。", []),
        ("SOP-RF-001#4", "3. 注意事项", "高压危险。", []),
    ]
    assert result.records[0].doc_title == "射频电源维护规程"
    assert result.warnings == [f"{path}: not UTF-8; decoded as gb18030 (detected)"]


def test_txt_chinese_chapters_and_no_headings(tmp_path):
    chapters = tmp_path / "ch.txt"
    chapters.write_text("规程\n第一章 总则\n总则内容\n一、目的\n目的内容\n二、范围\n范围内容\n", encoding="utf-8")
    assert [(r.section, r.text) for r in load_sop_file(chapters).records] == [
        ("第一章 总则", "总则内容"), ("一、目的", "目的内容"), ("二、范围", "范围内容"),
    ]
    flat = tmp_path / "flat.txt"
    flat.write_text("Quick note\nRestart the pump.\nThen check E1023.\n", encoding="utf-8")
    assert [(r.id, r.section, r.text, r.error_codes) for r in load_sop_file(flat).records] == [
        ("flat#1", "", "Restart the pump.\nThen check E1023.", ["E1023"]),
    ]


def test_txt_starting_with_a_paragraph_has_no_title_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("本文件记录了干泵维护时需要注意的事项，请在操作前通读。\n1. 准备\n戴手套\n", encoding="utf-8")
    assert [(r.doc_title, r.section, r.text) for r in load_sop_file(path).records] == [
        ("notes", "概述", "本文件记录了干泵维护时需要注意的事项，请在操作前通读。"),
        ("notes", "1. 准备", "戴手套"),
    ]


def test_html_sop(tmp_path):
    path = tmp_path / "SOP-HTML-1.html"
    path.write_bytes((
        '<html><head><meta charset="gb2312"><title>冷却水系统 SOP</title>'
        "<style>h2 {color: red}</style><script>var s = '<h2>fake</h2>';</script></head><body>"
        "<h1>冷却水系统 SOP</h1><p>说明 &amp; 范围</p>"
        "<h2>1. 检查流量</h2><p>流量低于 <b>4 L/min</b> 时报 E3301。</p><h3>1.1 传感器</h3><p>清洁传感器。</p>"
        "<h2>2. 记录</h2><table><tr><th>项目</th><th>值</th></tr><tr><td>流量</td><td>5</td></tr></table>"
        "</body></html>"
    ).encode("gbk"))
    result = load_sop_file(path)
    assert [(r.id, r.section, r.text, r.error_codes) for r in result.records] == [
        ("SOP-HTML-1#1", "概述", "说明 & 范围", []),
        ("SOP-HTML-1#2", "1. 检查流量", "流量低于 4 L/min 时报 E3301。\n1.1 传感器\n清洁传感器。", ["E3301"]),
        ("SOP-HTML-1#3", "2. 记录", "项目 | 值\n流量 | 5", []),
    ]
    assert result.records[0].doc_title == "冷却水系统 SOP"
    assert result.warnings == []  # the declared charset was used, nothing guessed


def test_docx_sop(tmp_path):
    path = tmp_path / "SOP-DOCX-7.docx"
    document = docx.Document()
    document.add_heading("腔体清洁作业指导书", level=0)  # style "Title"
    document.add_paragraph("本指导书适用于刻蚀腔。")
    document.add_heading("第一章 准备", level=1)
    document.add_heading("1.1 工具", level=2)
    document.add_paragraph("无尘布、异丙醇。")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "步骤", "说明"
    table.cell(1, 0).text, table.cell(1, 1).text = "1", "断开电源，确认无 E1023 报警"
    document.add_heading("第二章 清洁", level=1)
    document.add_heading("细节", level=3)
    document.add_paragraph("自上而下擦拭。")
    document.save(path)

    result = load_sop_file(path)
    assert [(r.id, r.section, r.text, r.error_codes) for r in result.records] == [
        ("SOP-DOCX-7#1", "概述", "本指导书适用于刻蚀腔。", []),
        ("SOP-DOCX-7#2", "1.1 工具", "无尘布、异丙醇。\n步骤 | 说明\n1 | 断开电源，确认无 E1023 报警", ["E1023"]),
        ("SOP-DOCX-7#3", "第二章 清洁", "细节\n自上而下擦拭。", []),
    ]
    assert result.records[0].doc_title == "腔体清洁作业指导书"

    (tmp_path / "old.docx").write_bytes(b"PK\x03\x04 not really a docx")
    with pytest.raises(LoaderError, match="expected a .docx document, got an unreadable one"):
        load_sop_file(tmp_path / "old.docx")


def _write_pdf(path: Path, pages: list[list[str]], title: str | None = None) -> Path:
    """A minimal valid PDF: one Helvetica text stream per page, one line per string."""
    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, lines in zip(page_ids, pages):
        shown = " ".join(f"({escape(s)}) Tj T*" for s in lines)  # T*: next line, 14 pt below
        stream = f"BT /F1 12 Tf 14 TL 72 740 Td {shown} ET".encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    info = None
    if title is not None:
        info = max(objects) + 1
        objects[info] = f"<< /Title ({escape(title)}) >>".encode("latin-1")
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def test_pdf_sop_with_numbered_headings(tmp_path):
    path = _write_pdf(tmp_path / "SOP-PDF-2.pdf", [
        ["Dry Pump Shutdown SOP", "Read this first.", "1 Scope", "Applies to all dry pumps (E1023)."],
        ["2 Procedure", "1. Check the breaker.", "2. Reset alarm W3001.", "2.1 Restart", "Start the pump."],
    ])
    result = load_sop_file(path)
    assert [(r.id, r.section, r.text, r.error_codes) for r in result.records] == [
        ("SOP-PDF-2#1", "Overview", "Read this first.", []),
        ("SOP-PDF-2#2", "1 Scope", "Applies to all dry pumps (E1023).", ["E1023"]),
        ("SOP-PDF-2#3", "2 Procedure", "1. Check the breaker.\n2. Reset alarm W3001.", ["W3001"]),
        ("SOP-PDF-2#4", "2.1 Restart", "Start the pump.", []),
    ]
    assert result.records[0].doc_title == "Dry Pump Shutdown SOP"


def test_pdf_without_headings_falls_back_to_pages(tmp_path):
    path = _write_pdf(tmp_path / "notes.pdf", [["Cleaning notes", "Wipe the chamber."], ["Dry with nitrogen."]],
                      title="Chamber cleaning")
    result = load_sop_file(path)
    assert [(r.id, r.doc_title, r.section, r.text) for r in result.records] == [
        ("notes#1", "Chamber cleaning", "Page 1", "Cleaning notes\nWipe the chamber."),
        ("notes#2", "Chamber cleaning", "Page 2", "Dry with nitrogen."),
    ]
    empty = _write_pdf(tmp_path / "scan.pdf", [[]])
    with pytest.raises(LoaderError, match="expected a PDF with a text layer, got no extractable text"):
        load_sop_file(empty)


def test_error_code_pattern():
    text = "报警E1023后出现W3001与A-4410；ISO9001、HX-500、e1023、E12、E123456、XE1023 不是代码；(E2002)"
    assert find_error_codes(text) == ["E1023", "W3001", "A-4410", "E2002"]


# --- folders --------------------------------------------------------------------------------


def test_load_path_folder_mixes_tables_and_sops_and_reports_bad_files(tmp_path):
    (tmp_path / "sops").mkdir()
    (tmp_path / "sops" / "SOP-VAC-003.md").write_bytes((DATA / "SOP-VAC-003.md").read_bytes())
    (tmp_path / "sops" / "copy.md").write_text("---\ndoc_id: SOP-VAC-003\n---\n# Copy\n## A\ntext\n", "utf-8")
    (tmp_path / "sops" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tmp_path / "sops" / "~$lock.docx").write_bytes(b"lock")
    (tmp_path / "sops" / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "cases.csv").write_text("id,title\nC-1,一\nC-2,二\n,缺\n", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text('{"id": "C-2", "title": "新二"}\n', encoding="utf-8")
    (tmp_path / "mapping.toml").write_text('kind = "case"\n', encoding="utf-8")

    result = load_path(tmp_path)

    assert [r.id for r in result.records] == ["C-1", "C-2", "SOP-VAC-003#1", "SOP-VAC-003#2", "SOP-VAC-003#3",
                                              "SOP-VAC-003#4"]
    assert result.records[1].title == "新二"
    assert _skips(result) == [("cases.csv", 4, "id"), ("broken.pdf", None, None), ("copy.md", None, "doc_id")]
    assert result.skipped[1].message.startswith("expected a PDF, got an unreadable one")
    assert result.skipped[2].message == (
        f"doc_id 'SOP-VAC-003' is already used by {tmp_path / 'sops' / 'SOP-VAC-003.md'} "
        "(give each SOP its own doc_id in the front matter)"
    )
    assert result.warnings == [
        f"{tmp_path / 'more.jsonl'}: id 'C-2' also loaded from {tmp_path / 'cases.csv'}; "
        f"kept the records from {tmp_path / 'more.jsonl'}",
        f"{tmp_path}: ignored files of unsupported types: sops/photo.png",
    ]
    assert result.files == [str(tmp_path / "cases.csv"), str(tmp_path / "more.jsonl"),
                            str(tmp_path / "sops" / "SOP-VAC-003.md")]
    assert result.summary() == "loaded 6 records from 3 files; skipped 1 row and 2 files; 2 warnings (see below)"


def test_load_sop_folder_only_reads_sops(tmp_path):
    (tmp_path / "a.md").write_text("# A\n## One\nfirst\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("id\nC-1\n", encoding="utf-8")
    result = load_sop_folder(tmp_path)
    assert [r.id for r in result.records] == ["a#1"]
    assert result.summary() == "loaded 1 record from 1 file"
    with pytest.raises(LoaderError, match="expected a folder of SOP documents, got a file"):
        load_sop_folder(tmp_path / "a.md")


def test_sop_documents_name_every_section_even_a_skipped_one(tmp_path):
    # A section that fails validation is skipped, but still belongs to its document: the copy stored
    # from an earlier load must not be taken for a section the revision dropped.
    (tmp_path / "a.md").write_text("# A\n## One\nfirst\n## " + "长" * 1001 + "\nsecond\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# B\n## One\nonly\n", encoding="utf-8")
    result = load_sop_folder(tmp_path)
    assert [r.id for r in result.records] == ["a#1", "b#1"] and _skips(result) == [("a.md", 2, "section")]
    assert result.documents == {"a": {"a#1", "a#2"}, "b": {"b#1"}}


def test_sop_bytes_take_the_given_doc_id_and_name_the_document_not_a_temporary_file():
    result = load_sop_bytes("## 检查\n确认 E1023。\n## 更换\n换泵。\n".encode("gbk"), doc_id="SOP-U-1", suffix=".md")
    assert [(r.id, r.doc_id, r.doc_title, r.section) for r in result.records] == [
        ("SOP-U-1#1", "SOP-U-1", "SOP-U-1", "检查"), ("SOP-U-1#2", "SOP-U-1", "SOP-U-1", "更换")]
    assert result.documents == {"SOP-U-1": {"SOP-U-1#1", "SOP-U-1#2"}} and result.files == ["document"]
    with pytest.raises(LoaderError, match="front matter says doc_id 'SOP-A', the request says 'SOP-B'") as e:
        load_sop_bytes(b"---\ndoc_id: SOP-A\n---\n# A\n## One\ntext\n", doc_id="SOP-B", suffix=".md")
    assert e.value.field == "doc_id"
    with pytest.raises(UnsupportedFormat, match="got '.doc'"):
        load_sop_bytes(b"x", doc_id="SOP-C", suffix=".doc")
    with pytest.raises(LoaderError, match=r"^document: ") as e:
        load_sop_bytes(b"%PDF-1.4 broken", doc_id="SOP-D", suffix=".pdf")
    assert "caselink-doc-" not in str(e.value)


def test_skipped_row_str_and_summary_without_problems():
    assert str(SkippedRow("x.md", None, None, "no text")) == "x.md: no text"
    assert str(SkippedRow("x.csv", 7, "id", "field 'id': bad")) == "x.csv row 7: field 'id': bad"
    assert LoadResult().summary() == "loaded 0 records from 0 files"
