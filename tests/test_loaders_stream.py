"""Streamed table loads (indexing.loaders.stream) against whole-file loads (load_table): the same
records, skipped rows and warnings; refusal before the first record; whole-file fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caselink.errors import LoaderError
from indexing.centering import KindSums, VectorCentering
from indexing.loaders import load_mapping, load_table, mapping_from_dict, stream_table
from indexing.loaders.tabular import _Table

DATA = Path(__file__).parent / "data" / "loaders"


def _peaks(open_stream, load_whole):
    """(the stream, its records counted, the peak bytes traced while opening and reading it, the
    whole load, its peak): ``open_stream()`` and then ``load_whole()`` measured one after the other."""
    import tracemalloc

    tracemalloc.start()
    try:
        stream = open_stream()
        n = sum(1 for _ in stream.records())
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = load_whole()
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return stream, n, streamed_peak, whole, whole_peak


def _same_as_whole(path: Path, mapping=None):
    whole = load_table(path, mapping)
    stream = stream_table(path, mapping)
    assert stream is not None
    records = list(stream.records())
    latest = {r.id: r for r in records}  # a later duplicate replaces the earlier one when stored
    assert list(latest.values()) == whole.records
    assert stream.result.skipped == whole.skipped
    assert sorted(stream.result.warnings) == sorted(whole.warnings)
    assert stream.summary() == whole.summary()
    return stream, records


def test_csv_with_a_mapping_streams_as_it_loads():
    stream, records = _same_as_whole(DATA / "cases.csv", load_mapping(DATA / "cases_mapping.toml"))
    assert [r.id for r in records] == ["C-2024-0113", "C-2024-0114"]
    assert stream.rows == 2


def test_jsonl_bad_lines_duplicates_and_a_line_separator_inside_a_string(tmp_path):
    lines = [json.dumps({"id": "C-1", "title": "干泵跳停", "text": "电流上涨\u2028然后跳停"}, ensure_ascii=False),
             "",
             "{not json",
             json.dumps(["a list"]),
             json.dumps({"id": "C-2", "title": ""}),  # nothing to search: a skipped row
             json.dumps({"id": "C-3", "title": "真空腔體壓力上升", "extra": 1}, ensure_ascii=False),
             json.dumps({"id": "C-1", "title": "干泵跳停 again"}, ensure_ascii=False)]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8"))  # with a UTF-8 BOM
    stream, records = _same_as_whole(path)
    assert [r.id for r in records] == ["C-1", "C-3", "C-1"]
    assert records[0].text == "电流上涨\u2028然后跳停"
    assert stream.rows == 6
    assert any("duplicate ids" in w for w in stream.result.warnings)


def test_lines_longer_than_any_buffer_and_many_rows(tmp_path):
    rows = [{"id": f"C-{i}", "title": "機台報警 E1023 " * (i % 50 + 1), "text": "干泵" * 3000} for i in range(300)]
    path = tmp_path / "big.tsv"
    path.write_text("id\ttitle\ttext\n" + "".join(f"{r['id']}\t{r['title']}\t{r['text']}\n" for r in rows),
                    encoding="utf-8")
    stream, records = _same_as_whole(path)
    assert len(records) == 300 and stream.rows == 300


def test_a_missing_mapped_column_is_refused_before_any_record(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("工单号,标题\nC-1,干泵跳停\n", encoding="utf-8")
    mapping = mapping_from_dict({"columns": {"id": "工单号", "title": "标题", "text": "问题描述"}})
    with pytest.raises(LoaderError) as whole:
        load_table(path, mapping)
    with pytest.raises(LoaderError) as streamed:
        stream_table(path, mapping)
    assert streamed.value.message == whole.value.message


def test_auto_detected_encodings_stream_as_the_whole_file_loads(tmp_path):
    rows = "".join(f"C-{i},真空腔体压力上升 {i},干泵报警后停机，检查冷却水\n" for i in range(50))
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(("id,title,text\n" + rows).encode("gbk"))
    big5 = tmp_path / "big5.tsv"
    big5.write_bytes(("id\ttitle\n" + "".join(f"C-{i}\t真空腔體壓力上升，機台報警 {i}\n" for i in range(50))).encode("big5"))
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("id,title\nC-1,干泵\nC-2,汞灯\n", encoding="utf-16")  # with its BOM
    jsonl = tmp_path / "gbk.jsonl"
    jsonl.write_bytes("\n".join(json.dumps({"id": f"C-{i}", "title": f"汞灯报警后停机，检查冷却水流量 {i}"}, ensure_ascii=False)
                                 for i in range(20)).encode("gbk"))
    for path, encoding in ((gbk, "gb18030"), (big5, "cp950"), (utf16, "utf-16"), (jsonl, "gb18030")):
        stream, records = _same_as_whole(path)
        assert stream.encoding == encoding
        assert records[0].title.startswith(("真空", "干泵", "汞灯"))
    assert any("decoded as gb18030 (detected" in w for w in _same_as_whole(gbk)[0].result.warnings)


def test_auto_judges_a_bounded_sample_and_later_non_ascii_lines(tmp_path, monkeypatch):
    from indexing.loaders import encoding as encoding_mod

    monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", 300)
    monkeypatch.setattr(encoding_mod, "_SAMPLE_NON_ASCII", 40)
    # 2,000 ASCII rows, then Big5: the first 300 bytes alone would say UTF-8
    ascii_rows = "".join(f"C-{i},pump trip {i}\n" for i in range(2000))
    late = "".join(f"T-{i},真空腔體壓力上升，機台報警 {i}\n" for i in range(30))
    path = tmp_path / "late.csv"
    path.write_bytes(("id,title\n" + ascii_rows + late).encode("big5"))
    stream, records = _same_as_whole(path)
    assert stream.encoding == "cp950" and stream.sampled < 2000
    assert records[-1].title == "真空腔體壓力上升，機台報警 29"
    # a sample boundary that falls inside a line of two-byte characters cuts no character
    for size in range(280, 320, 3):
        monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", size)
        text = "id,title\n" + "".join(f"C-{i},干泵报警后停机检查冷却水流量{i}\n" for i in range(40))
        path.write_bytes(text.encode("gbk"))
        stream, records = _same_as_whole(path)
        assert stream.encoding == "gb18030" and len(records) == 40


def test_bytes_after_the_sample_that_do_not_decode_are_refused_before_any_record(tmp_path, monkeypatch):
    from indexing.loaders import encoding as encoding_mod

    monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", 200)
    monkeypatch.setattr(encoding_mod, "_SAMPLE_NON_ASCII", 40)
    good = "id,title\n" + "".join(f"C-{i},真空腔体压力上升{i}\n" for i in range(100))
    path = tmp_path / "cut.csv"
    path.write_bytes(good.encode("gbk") + b"C-bad,\xff\xfe\n" + "C-200,干泵\n".encode("gbk"))
    with pytest.raises(LoaderError) as streamed:
        stream_table(path)  # the first pass: nothing has been yielded, so nothing stored
    offset = len(good.encode("gbk")) + len("C-bad,")
    assert streamed.value.field == "encoding"
    assert str(streamed.value).startswith(
        f"{path}: expected gb18030 text (chosen by 'auto' on a ")
    assert f"got bytes it cannot decode (ff fe 0a 43) at offset {offset} (line 102)" in str(streamed.value)
    with pytest.raises(LoaderError) as whole:  # the whole-file load refuses it too (its own words)
        load_table(path)
    assert whole.value.field == "encoding"
    # a named encoding: the very error the whole-file load gives
    gbk = mapping_from_dict({"encoding": "gbk"})
    with pytest.raises(LoaderError) as streamed:
        stream_table(path, gbk)
    with pytest.raises(LoaderError) as whole:
        load_table(path, gbk)
    assert str(streamed.value) == str(whole.value)
    assert f"at offset {offset} (line 102)" in str(whole.value)


def test_an_encoding_auto_cannot_tell_is_refused_with_the_whole_file_error(tmp_path):
    path = tmp_path / "short.csv"
    path.write_bytes("id,title\nC-1,停機\n".encode("big5"))
    with pytest.raises(LoaderError) as whole:
        load_table(path)
    with pytest.raises(LoaderError) as streamed:
        stream_table(path)
    assert str(streamed.value) == str(whole.value) and "cannot tell the text encoding" in str(whole.value)


def test_a_streamed_gbk_file_is_never_held_whole(tmp_path, monkeypatch):
    from indexing.loaders import encoding as encoding_mod

    monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", 1 << 14)  # a sample well under the file
    path = tmp_path / "big.csv"
    with path.open("wb") as fh:
        fh.write("id,title,text\n".encode("gbk"))
        for i in range(8_000):
            fh.write(f"C-{i},真空腔体压力上升 {i},干泵报警后停机，检查冷却水流量与排气压力 {i}\n".encode("gbk"))
    size = path.stat().st_size
    stream, n, streamed_peak, whole, whole_peak = _peaks(lambda: stream_table(path), lambda: load_table(path))
    assert n == len(whole.records) == 8_000 and stream.encoding == "gb18030"
    assert whole_peak > 5 * size  # the bytes, the text and every row and record
    print(f"file {size:,} B; peak {streamed_peak:,} B streamed, {whole_peak:,} B whole")
    # one row at a time; what grows with the file is the ids seen (for the duplicates warning)
    assert streamed_peak * 8 < whole_peak


def test_centring_fitted_from_batches_is_bit_for_bit_the_whole_fit():
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(40_000, 8)).astype(np.float32)
    kinds = rng.choice(["case", "problem", "sop"], size=len(vecs), p=[0.7, 0.25, 0.05]).tolist()
    whole = VectorCentering([(8, 1.0)], min_records=100).fit(vecs, kinds)
    sums = KindSums(8)
    start = 0
    for size in (1, 2000, 16_384, 5, 20_000):  # batches that straddle the summing slices
        sums.add(vecs[start:start + size], kinds[start:start + size])
        start += size
    sums.add(vecs[start:], kinds[start:])
    batched = VectorCentering([(8, 1.0)], min_records=100).fit_sums(sums)
    assert list(batched.means_) == list(whole.means_)
    for k in whole.means_:
        assert np.array_equal(batched.means_[k], whole.means_[k])
    assert batched.fitted_on_ == whole.fitted_on_ == len(vecs)


def test_parquet_streams_batch_by_batch_as_read_parquet_loads_it(tmp_path, monkeypatch):
    import pandas as pd

    from indexing.loaders import stream as stream_mod

    monkeypatch.setattr(stream_mod, "PARQUET_BATCH", 3)  # several batches from 10 rows
    frame = pd.DataFrame({
        "工单号": ["C-1", "C-2", "C-3", "C-4", "C-5", "C-6", "C-7", "C-2", "C-9", "C-10"],
        "标题": ["干泵跳停", "真空腔體壓力上升", "", "E1023 报警", "wafer drop", None, "汞燈", "again", "x", "y"],
        "报警代码": ["E1023", None, None, "E1023,A-4410", None, None, None, None, "W3001", None],
        "数量": [1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],  # an int column with a gap: floats
        "创建时间": pd.to_datetime(["2024-01-0%d" % (i % 9 + 1) for i in range(10)]),
    })
    path = tmp_path / "cases.parquet"
    frame.to_parquet(path, row_group_size=4)
    mapping = mapping_from_dict({"columns": {"id": "工单号", "title": "标题", "error_codes": "报警代码",
                                             "created": "创建时间"}, "attributes": {"qty": "数量"}})
    stream, records = _same_as_whole(path, mapping)
    assert stream.rows == 10
    assert [r.id for r in records][:3] == ["C-1", "C-2", "C-4"]  # C-3 and C-6 have nothing to search
    assert {s.row for s in stream.result.skipped} == {4, 7}  # spreadsheet rows, as load_table numbers them
    assert records[0].attributes == {"qty": "1"} and records[0].created.isoformat().startswith("2024-01-01")


def test_parquet_missing_column_is_refused_before_any_record_and_a_broken_file_loads_whole(tmp_path):
    import pandas as pd

    path = tmp_path / "cases.parquet"
    pd.DataFrame({"id": ["C-1"], "title": ["干泵跳停"]}).to_parquet(path)
    mapping = mapping_from_dict({"columns": {"id": "id", "title": "title", "text": "问题描述"}})
    with pytest.raises(LoaderError) as whole:
        load_table(path, mapping)
    with pytest.raises(LoaderError) as streamed:
        stream_table(path, mapping)
    assert streamed.value.message == whole.value.message
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    assert stream_table(broken) is None
    with pytest.raises(LoaderError):
        load_table(broken)


def test_a_named_encoding_is_decoded_as_the_file_is_read(tmp_path):
    gbk = mapping_from_dict({"encoding": "gbk"})
    csv_path = tmp_path / "gbk.csv"
    csv_path.write_bytes("id,title,text\nC-1,真空腔体压力上升,干泵报警后停机\nC-2,刻蚀机,\"多行\n说明\"\n".encode("gbk"))
    jsonl_path = tmp_path / "gbk.jsonl"
    jsonl_path.write_bytes("\n".join(json.dumps({"id": f"C-{i}", "title": f"汞灯点不亮 {i}"}, ensure_ascii=False)
                                     for i in range(5)).encode("gbk"))
    for path in (csv_path, jsonl_path):
        stream, records = _same_as_whole(path, gbk)
        assert stream.encoding == "gbk" and records[0].title.startswith(("真空", "汞灯"))
    # bytes GBK cannot decode: refused by the first pass, in the words of the whole-file load
    bad = tmp_path / "bad.csv"
    bad.write_bytes("id,title\nC-1,真空".encode("gbk") + b"\xff\xff\n")
    with pytest.raises(LoaderError, match="offset 17 \\(line 2\\)") as streamed:
        stream_table(bad, gbk)
    with pytest.raises(LoaderError) as whole:
        load_table(bad, gbk)
    assert str(streamed.value) == str(whole.value)


# --- Excel ------------------------------------------------------------------------------------

def _pandas_sheet(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The rows as load_table read a workbook before it streamed (pandas, openpyxl engine)."""
    import pandas as pd

    with pd.ExcelFile(path, engine="openpyxl") as book:
        frame = pd.read_excel(book, sheet_name=book.sheet_names[0], dtype=str, na_filter=False)
    columns = ["" if str(c).startswith("Unnamed: ") else str(c).strip() for c in frame.columns]
    frame.columns = columns
    return columns, [(i + 2, row) for i, row in enumerate(frame.to_dict("records"))]


def _tricky_workbook(path: Path) -> Path:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "工单"
    sheet.append(["工单号", "标题", None, "工单号", 2024, "创建时间", "时刻", "flag", " 比例 ", "报警代码", None])
    sheet.append(["0012", "干泵跳停", "x", "dup", 3, dt.datetime(2024, 1, 5), dt.time(8, 30), True, 0.25, "E1023"])
    sheet.append([None] * 6)  # a blank row in the middle keeps its number
    sheet.append([12, None, None, None, 3.5, dt.date(2024, 2, 1), None, False, 1e20, "E1023,A-4410"])
    sheet.append(["C-3", "=1+1", None, None, -0.0, dt.datetime(2024, 1, 5, 13, 4, 5, 123000), None, None, 1 / 3])
    sheet.append([])
    sheet.append(["C-4", "NA", "#N/A", None, 10 ** 16, None, None, None, None, None, None, "wide"])
    sheet.append(["C-5", "  真空腔體壓力上升  ", None, None, None, "not a date"])
    sheet.append([None])
    sheet.append([None])  # trailing blank rows: not rows at all
    book.create_sheet("其他").append(["a"])
    book.save(path)
    return path


def test_the_read_only_sheet_reader_gives_the_cells_pandas_gave(tmp_path):
    from indexing.loaders.excel import excel_rows, sheet_shape

    path = _tricky_workbook(tmp_path / "tricky.xlsx")
    columns, rows = _pandas_sheet(path)
    shape = sheet_shape(path, str(path))
    streamed = list(excel_rows(path, str(path), shape))
    assert shape.columns == columns and shape.rows == len(rows) == 7
    assert [n for n, _ in streamed] == [n for n, _ in rows]
    for (_, ours), (_, theirs) in zip(streamed, rows):
        assert set(ours) == set(theirs)  # "" stands for the two unnamed columns in both
        for key, value in theirs.items():
            if isinstance(value, float):  # the #N/A cell
                assert isinstance(ours[key], float) and np.isnan(ours[key]) and np.isnan(value)
            else:
                assert ours[key] == value, key
    assert streamed[0][1]["创建时间"] == "2024-01-05 00:00:00" and streamed[0][1]["2024"] == "3"


def test_a_workbook_streams_as_it_loads(tmp_path, monkeypatch):
    path = _tricky_workbook(tmp_path / "tricky.xlsx")
    mapping = mapping_from_dict({"columns": {"id": "工单号", "title": "标题", "error_codes": "报警代码",
                                             "created": "创建时间"}, "attributes": {"qty": "2024"}})
    stream, records = _same_as_whole(path, mapping)
    assert stream.rows == 7 and stream.sheet is not None
    assert [r.id for r in records] == ["0012", "12", "C-4"]
    assert records[0].created.isoformat().startswith("2024-01-05") and records[0].attributes == {"qty": "3"}
    assert any("ignored sheets: 其他" in w for w in stream.result.warnings)
    assert [(s.row, s.field) for s in stream.result.skipped] == [(5, "text"), (8, "created")]
    # the rows pandas gave: the same records
    monkeypatch.setattr("indexing.loaders.tabular._read_excel",
                        lambda p, m, s: _Table(*_pandas_sheet(p), warnings=["?"]))
    # (the records only: pandas left the sheet warnings to load_table)
    assert load_table(path, mapping).records == list({r.id: r for r in records}.values())


def test_an_unreadable_or_unmapped_workbook_is_refused_before_any_record(tmp_path):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not a workbook")
    path = _tricky_workbook(tmp_path / "tricky.xlsx")
    missing = mapping_from_dict({"columns": {"id": "工单号", "title": "标题", "text": "问题描述"}})
    for file, mapping in ((broken, None), (path, missing)):
        with pytest.raises(LoaderError) as whole:
            load_table(file, mapping)
        with pytest.raises(LoaderError) as streamed:
            stream_table(file, mapping)
        assert streamed.value.message == whole.value.message



# --- JSON array -------------------------------------------------------------------------------

def test_a_json_array_streams_as_it_loads(tmp_path, monkeypatch):
    from indexing.loaders import json_array

    items = [{"id": "C-1", "title": "干泵跳停", "error_codes": ["E1023", "A-4410"], "n": 12345678901234567890},
             ["a list"], 3, None,
             {"id": "C-2", "title": ""},  # nothing to search: a skipped row
             {"id": "C-3", "title": "真空腔體壓力上升", "text": "a\u2028b", "attributes": {"site": "F12"}, "x": 1.5e-7},
             {"id": "C-1", "title": "干泵跳停 again", "created": "2024-13-01"}]
    path = tmp_path / "cases.json"
    path.write_text("[\r\n" + ",\n  ".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n", encoding="utf-8")
    for chunk in (1, 7, 65536):  # elements and numbers cut across reads
        monkeypatch.setattr(json_array, "CHUNK", chunk)
        stream, records = _same_as_whole(path)
        assert [r.id for r in records] == ["C-1", "C-3"] and stream.rows == 7
        assert [s.row for s in stream.result.skipped] == [2, 3, 4, 5, 7]
    gbk = tmp_path / "gbk.json"
    gbk.write_bytes(json.dumps([{"id": f"C-{i}", "title": f"汞灯报警后停机，检查冷却水流量 {i}"} for i in range(30)],
                               ensure_ascii=False).encode("gbk"))
    stream, records = _same_as_whole(gbk)
    assert stream.encoding == "gb18030" and len(records) == 30
    from indexing.loaders import encoding as encoding_mod

    monkeypatch.setattr(encoding_mod, "_SAMPLE_NON_ASCII", 60)
    for size in range(100, 131, 3):  # one long line: the sample is cut after an ASCII byte, never in a character
        monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", size)
        stream, records = _same_as_whole(gbk)
        assert stream.encoding == "gb18030" and stream.sampled < 600 and len(records) == 30


@pytest.mark.parametrize("text", [
    '[{"id": "C-1", "title": "x"},\n {"id": "C-2" "title": "y"}]',  # a missing comma
    '[{"id": "C-1", "title": "x"},\n {"id": "C-2", "title": "y"},\n]',  # a trailing comma
    '[{"id": "C-1", "title": "x"}\n {"id": "C-2"}]',
    '[{"id": "C-1", "title": "x"}]\n[]',  # extra data
    '[{"id": "C-1", "title": "unterminated}]',
    '[{"id": "C-1", "title": "x"}, 1' + "2" * 5000 + ']',  # a number over the 4,300-digit limit
    '[' + '[' * 50_000 + ']' * 50_000 + ']',  # nesting too deep
    '[{"id": "C-1", "title": "x"},\n 1.5e',
])
def test_a_malformed_json_array_gives_the_whole_file_error_before_any_record(tmp_path, monkeypatch, text):
    from indexing.loaders import json_array

    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoaderError) as whole:
        load_table(path)
    for chunk in (3, 65536):
        monkeypatch.setattr(json_array, "CHUNK", chunk)
        with pytest.raises(LoaderError) as streamed:
            stream_table(path)
        assert streamed.value.message == whole.value.message


def test_json_that_is_no_array_is_loaded_whole(tmp_path):
    for text in ('{"id": "C-1"}', "", '"x"'):
        path = tmp_path / "obj.json"
        path.write_text(text, encoding="utf-8")
        assert stream_table(path) is None
        with pytest.raises(LoaderError, match="expected"):
            load_table(path)


def test_a_streamed_json_array_is_never_held_whole(tmp_path, monkeypatch):
    from indexing.loaders import encoding as encoding_mod

    monkeypatch.setattr(encoding_mod, "SAMPLE_BYTES", 1 << 16)  # a sample well under the file, one line long
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"id": f"C-{i}", "title": f"真空腔体压力上升 {i}", "text": "干泵报警后停机，检查冷却水流量与排气压力"}
                                for i in range(8_000)], ensure_ascii=False), encoding="utf-8")
    _, n, streamed_peak, whole, whole_peak = _peaks(lambda: stream_table(path), lambda: load_table(path))
    print(f"file {path.stat().st_size:,} B; peak {streamed_peak:,} B streamed, {whole_peak:,} B whole")
    assert n == len(whole.records) == 8_000
    assert streamed_peak * 8 < whole_peak  # what grows when streamed is the ids seen (duplicates warning)


# --- folders ----------------------------------------------------------------------------------

def test_a_folder_streams_file_by_file_as_load_path_loads_it(tmp_path):
    import openpyxl

    from indexing.loaders import FolderStream, load_path, stream_path

    (tmp_path / "sops").mkdir()
    (tmp_path / "sops" / "SOP-VAC-003.md").write_bytes((DATA / "SOP-VAC-003.md").read_bytes())
    (tmp_path / "sops" / "copy.md").write_text("---\ndoc_id: SOP-VAC-003\n---\n# Copy\n## A\ntext\n", "utf-8")
    (tmp_path / "sops" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tmp_path / "sops" / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.csv").write_text("id,title\nH-1,x\n", encoding="utf-8")
    (tmp_path / "a-cases.csv").write_text("id,title\nC-1,一\nC-2,二\n,缺\nC-1,一又\n", encoding="utf-8")
    (tmp_path / "b-more.jsonl").write_text('{"id": "C-2", "title": "新二"}\n{"id": "C-5", "title": "五"}\n', "utf-8")
    (tmp_path / "c-gbk.csv").write_bytes("id,title\nC-5,真空腔体压力上升\nC-6,干泵报警后停机检查\n".encode("gbk"))
    (tmp_path / "d-array.json").write_text('[{"id": "C-1", "title": "一再"}, 7]', encoding="utf-8")
    (tmp_path / "e-object.json").write_text('{"id": "C-9"}', encoding="utf-8")  # not an array: loaded whole, refused
    (tmp_path / "f-old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "g-missing.csv").write_text("工单号\nC-7\n", encoding="utf-8")  # no column feeds a record
    book = openpyxl.Workbook()
    book.active.append(["id", "title"])
    book.active.append(["C-8", "汞灯"])
    book.active.append(["C-2", "新新二"])
    book.save(tmp_path / "h-book.xlsx")
    (tmp_path / "mapping.toml").write_text('kind = "case"\n', encoding="utf-8")

    whole = load_path(tmp_path)
    stream = stream_path(tmp_path)
    assert isinstance(stream, FolderStream) and stream.rows == 17
    assert stream.result.documents == whole.documents  # complete before a record is read
    records = list(stream.records())
    latest = {r.id: r for r in records}  # a later record replaces the earlier one when stored
    assert list(latest.values()) == whole.records  # and in the same order
    assert latest["C-2"].title == "新新二" and latest["C-1"].title == "一再"
    assert stream.result.skipped == whole.skipped
    assert stream.result.warnings == whole.warnings  # the same, in the same order
    assert stream.result.files == whole.files
    assert stream.summary() == whole.summary()
    assert len(whole.skipped) == 7 and any("also loaded from" in w for w in whole.warnings)


def test_a_folder_stream_holds_one_file_at_a_time(tmp_path):
    from indexing.loaders import load_path, stream_path

    for k in range(5):
        with (tmp_path / f"part-{k}.csv").open("w", encoding="utf-8") as fh:
            fh.write("id,title,text\n")
            fh.writelines(f"C-{k}-{i},真空腔体压力上升 {i},干泵报警后停机，检查冷却水流量与排气压力\n" for i in range(1500))
    _, n, streamed_peak, whole, whole_peak = _peaks(lambda: stream_path(tmp_path), lambda: load_path(tmp_path))
    print(f"peak {streamed_peak:,} B streamed, {whole_peak:,} B whole")
    assert n == len(whole.records) == 7_500
    assert streamed_peak * 8 < whole_peak


def test_json_array_errors_and_values_are_json_loads_own_wherever_the_reads_fall():
    import io

    from indexing.loaders import json_array

    def whole(text):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"s: expected JSON, got {exc.msg} at line {exc.lineno} column {exc.colno}"
        return value if isinstance(value, list) else "not an array"

    def streamed(text):
        try:
            return [item for _, item in json_array.json_array_items(io.StringIO(text), "s")]
        except json_array.NotAnArray:
            return "not an array"
        except LoaderError as exc:
            return exc.message

    base = ('[{"id": "C-1", "title": "干泵\\n跳停", "n": 12345, "f": 1.5e3},\n {"l": [1, 2, {"a": null}]} ,\r\n'
            '\t 3, true, "x", -0.5 , [] ]\n')
    cases = [base]
    for i in range(len(base) + 1):  # every cut, every dropped character, a stray character anywhere
        cases += [base[:i], base[:i] + base[i + 1:]] + [base[:i] + junk + base[i:] for junk in ',]}"[{1: \\']
    original = json_array.CHUNK
    try:
        for chunk in (1, 2, 5, 64):
            json_array.CHUNK = chunk
            for text in cases:
                ours = streamed(text)
                if ours != "not an array":  # such a file is loaded whole: json.loads's error by definition
                    assert ours == whole(text), (chunk, text)
    finally:
        json_array.CHUNK = original
