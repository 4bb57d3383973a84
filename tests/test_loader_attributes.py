"""The customer's own fields (Record.attributes) from every table format the loaders read:
columns named under [attributes] in the mapping, or an `attributes` object in JSON rows."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from caselink.errors import ConfigError, LoaderError
from indexing.loaders import load_table, mapping_from_dict

MAPPING = mapping_from_dict({
    "columns": {"id": "工单号", "title": "标题"},
    "attributes": {"customer": "客户", "site": "Fab", "serial": "序列号", "sw_version": ["软件版本", "补丁"]},
})


def _by_id(result) -> dict:
    return {r.id: r.attributes for r in result.records}


def test_csv_columns_named_in_the_mapping_fill_attributes(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("工单号,标题,客户,Fab,序列号,软件版本,补丁,备注\n"
                    "C-1,干泵跳停,ACME 半导体,F12,SN-0042,4.2.1,hotfix 3,x\n"
                    "C-2,漏率超标,,F14,,4.3,,\n", encoding="utf-8")
    result = load_table(path, MAPPING)
    assert result.skipped == []
    assert _by_id(result) == {
        "C-1": {"customer": "ACME 半导体", "site": "F12", "serial": "SN-0042", "sw_version": "4.2.1 hotfix 3"},
        "C-2": {"site": "F14", "sw_version": "4.3"}}  # empty cells give no attribute
    assert result.warnings == [f"{path}: ignored columns that feed no field: 备注"]  # attribute columns are used


def test_tsv_with_a_too_long_value_skips_that_row_naming_the_field_and_column(tmp_path):
    path = tmp_path / "cases.tsv"
    path.write_text("工单号\t标题\t客户\tFab\t序列号\t软件版本\t补丁\n"
                    f"C-1\t干泵跳停\t{'A' * 201}\tF12\t\t\t\n"
                    "C-2\t漏率超标\tGlobex\t\t\t\t\n", encoding="utf-8")
    result = load_table(path, MAPPING)
    assert _by_id(result) == {"C-2": {"customer": "Globex"}}
    [skip] = result.skipped
    assert (skip.row, skip.field) == (2, "attributes")
    assert "'客户'" in skip.message and "value of 'customer' has 201 characters" in skip.message


def test_jsonl_rows_carry_an_attributes_object_and_mapped_columns_win(tmp_path):
    path = tmp_path / "cases.jsonl"
    rows = [{"id": "C-1", "kind": "case", "title": "pump trip", "attributes": {"customer": "ACME", "serial": 42}},
            {"id": "C-2", "kind": "case", "title": "leak", "attributes": {"customer": "ACME"}, "fab": "F14"},
            {"id": "C-3", "kind": "case", "title": "bad", "attributes": {"bad key": "x"}},
            {"id": "C-4", "kind": "case", "title": "bad", "attributes": ["not", "an", "object"]},
            {"id": "C-5", "kind": "case", "title": "bad", "customer": "ACME"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = load_table(path, mapping_from_dict({"attributes": {"site": "fab"}}))
    assert _by_id(result) == {"C-1": {"customer": "ACME", "serial": "42"},  # a number cell reads as text
                              "C-2": {"customer": "ACME", "site": "F14"},
                              "C-5": {}}  # a column that is no field is ignored, with a warning
    skipped = {s.row: (s.field, s.message) for s in result.skipped}
    assert skipped[3][0] == "attributes" and "key 'bad key' must be 1-64 ASCII letters" in skipped[3][1]
    assert skipped[4][0] == "attributes" and "valid dictionary" in skipped[4][1]
    assert result.warnings == [f"{path}: ignored columns that feed no field: customer"]


def test_json_array_attributes_object(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"id": "PO-1", "kind": "problem", "title": "批量过流",
                                 "attributes": {"customer": "ACME", "site": " F12 ", "empty": ""}}]), encoding="utf-8")
    assert _by_id(load_table(path)) == {"PO-1": {"customer": "ACME", "site": "F12"}}


def test_parquet_typed_cells(tmp_path):
    path = tmp_path / "cases.parquet"
    pd.DataFrame({"工单号": ["C-1", "C-2"], "标题": ["干泵跳停", "漏率"], "客户": ["ACME", None],
                  "Fab": ["F12", "F14"], "序列号": [1001.0, None], "软件版本": ["4.2", "4.3"],
                  "补丁": [None, "p1"]}).to_parquet(path)
    assert _by_id(load_table(path, MAPPING)) == {
        "C-1": {"customer": "ACME", "site": "F12", "serial": "1001", "sw_version": "4.2"},
        "C-2": {"site": "F14", "sw_version": "4.3 p1"}}


def test_xlsx_cells(tmp_path):
    path = tmp_path / "cases.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["工单号", "标题", "客户", "Fab", "序列号", "软件版本", "补丁"])
    sheet.append(["C-1", "干泵跳停", "ACME", "F12", 42, "4.2.1", None])
    sheet.append(["C-2", "漏率", None, None, None, None, None])
    book.save(path)
    assert _by_id(load_table(path, MAPPING)) == {
        "C-1": {"customer": "ACME", "site": "F12", "serial": "42", "sw_version": "4.2.1"}, "C-2": {}}


def test_csv_attributes_column_as_json_text(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text('id,title,attributes\nC-1,pump,"{""customer"": ""ACME""}"\nC-2,leak,not json\n', encoding="utf-8")
    result = load_table(path)
    assert _by_id(result) == {"C-1": {"customer": "ACME"}}
    assert [(s.row, s.field) for s in result.skipped] == [(3, "attributes")]


def test_mapping_refuses_bad_attribute_keys_columns_and_a_missing_column(tmp_path):
    with pytest.raises(ConfigError, match=r"attributes: key 'bad key' must be") as exc:
        mapping_from_dict({"attributes": {"bad key": "客户"}})
    assert exc.value.field == "attributes.bad key"
    with pytest.raises(ConfigError, match=r"attributes.customer: expected a column name"):
        mapping_from_dict({"attributes": {"customer": 3}})
    with pytest.raises(ConfigError, match=r"expected a table \[attributes\]"):
        mapping_from_dict({"attributes": "客户"})
    with pytest.raises(ConfigError, match=r"'attributes' is a table of its own"):
        mapping_from_dict({"columns": {"attributes": "客户"}})
    with pytest.raises(ConfigError, match="at most 32"):
        mapping_from_dict({"attributes": {f"k{i}": f"c{i}" for i in range(33)}})
    path = tmp_path / "cases.csv"
    path.write_text("工单号,标题\nC-1,x\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"expected column '客户' \(for attributes.customer\)") as exc:
        load_table(path, MAPPING)
    assert exc.value.field == "attributes"
