"""Loaders for evaluation records and labeled pairs, and their error messages."""

from __future__ import annotations

import json

import pytest

from caselink.errors import InvalidRecord, LoaderError
from eval.datasets import EvalRecord, Pair, load_benchmark, load_pairs, load_records


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_simple_jsonl_with_extra_keys(tmp_path):
    path = write_jsonl(tmp_path / "records.jsonl", [
        {"id": "q0", "text": "how do I pair", "kind": "question", "qtype": "Normal"},
        {"id": "s0", "text": "Pairing\nPress and hold", "title": "Pairing", "kind": "section"},
        {"id": 7, "text": "numeric id"},
    ])
    recs = load_records(path)
    assert recs == [
        EvalRecord("q0", "how do I pair", "", "question"),
        EvalRecord("s0", "Pairing\nPress and hold", "Pairing", "section"),
        EvalRecord("7", "numeric id"),
    ]


def test_caselink_record_form(tmp_path):
    path = write_jsonl(tmp_path / "records.jsonl", [
        {"id": "C-1", "kind": "case", "title": "干泵停机", "text": "报警E1023", "module": "真空", "links": "PO-1"},
        {"id": "SOP#2", "kind": "sop", "section": "E1023 处理", "text": "检查冷却水"},
    ])
    recs = load_records(path)
    assert recs[0] == EvalRecord("C-1", "报警E1023", "干泵停机", "case")
    assert recs[1] == EvalRecord("SOP#2", "检查冷却水", "E1023 处理", "sop")


def test_caselink_record_errors_name_file_line_field(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "C-1", "kind": "case", "text": "ok"},
        {"id": "C-2", "kind": "case", "text": "x", "priority": ["not", "a", "string"]},
    ])
    with pytest.raises(InvalidRecord, match=r"r\.jsonl:2: field 'priority'") as err:
        load_records(path)
    assert err.value.field == "priority"


def test_csv_records_both_forms(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text(
        "id,kind,title,text,created\n"
        "a,,,plain text,\n"
        "C-9,case,Title,body,2024-01-02\n",
        encoding="utf-8",
    )
    assert load_records(path) == [EvalRecord("a", "plain text"), EvalRecord("C-9", "body", "Title", "case")]


@pytest.mark.parametrize(
    "rows, pattern, field",
    [
        ([{"text": "no id"}], r":1: field 'id': missing", "id"),
        ([{"id": "a"}], r":1: field 'text': missing", "text"),
        ([{"id": "a", "text": 3}], r":1: field 'text': expected a string, got int", "text"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], r":2: field 'id': duplicate of line 1", "id"),
    ],
)
def test_simple_record_errors(tmp_path, rows, pattern, field):
    path = write_jsonl(tmp_path / "records.jsonl", rows)
    with pytest.raises(InvalidRecord, match=pattern) as err:
        load_records(path)
    assert err.value.field == field
    assert "records.jsonl" in str(err.value)


def test_bad_json_and_bad_files(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": \n', encoding="utf-8")
    with pytest.raises(LoaderError, match=r"records\.jsonl:2: invalid JSON"):
        load_records(path)
    with pytest.raises(LoaderError, match="cannot open"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(LoaderError, match=r"expected a \.jsonl, \.csv or \.tsv file, got '\.txt'"):
        (tmp_path / "r.txt").write_text("x")
        load_records(tmp_path / "r.txt")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(LoaderError, match="no records"):
        load_records(tmp_path / "empty.jsonl")


def test_load_pairs_tsv_and_csv_with_grade(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("id_a\tid_b\tlabel\na\tb\t1\nb\tc\t0\n", encoding="utf-8")
    assert load_pairs(tsv) == [Pair("a", "b", 1), Pair("b", "c", 0)]
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("id_a,id_b,label,grade\na,b,1,2.5\na,c,0,\n", encoding="utf-8")
    assert load_pairs(csv_path) == [Pair("a", "b", 1, 2.5), Pair("a", "c", 0, None)]


@pytest.mark.parametrize(
    "body, exc, pattern",
    [
        ("id_a\tid_b\n", LoaderError, r":1: header: expected columns id_a, id_b, label, missing label"),
        ("id_a\tid_b\tlabel\na\tb\tyes\n", InvalidRecord, r":2: field 'label': expected 0 or 1, got 'yes'"),
        ("id_a\tid_b\tlabel\na\tb\t1\n\tb\t1\n", InvalidRecord, r":3: field 'id_a': empty"),
        ("id_a\tid_b\tlabel\tgrade\na\tb\t1\thigh\n", InvalidRecord, r":2: field 'grade': expected a number"),
    ],
)
def test_pair_errors(tmp_path, body, exc, pattern):
    path = tmp_path / "pairs.tsv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(exc, match=pattern):
        load_pairs(path)


def test_load_benchmark_folder(tmp_path):
    write_jsonl(tmp_path / "records.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    (tmp_path / "pairs.tsv").write_text("id_a\tid_b\tlabel\na\tb\t1\n", encoding="utf-8")
    records, pairs = load_benchmark(tmp_path)
    assert [r.id for r in records] == ["a", "b"] and pairs == [Pair("a", "b", 1)]
    with pytest.raises(LoaderError, match="not a benchmark folder"):
        load_benchmark(tmp_path / "nope")
