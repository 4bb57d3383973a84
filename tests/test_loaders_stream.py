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

DATA = Path(__file__).parent / "data" / "loaders"


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


def test_files_that_are_not_plain_utf8_are_loaded_whole(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("id,title\nC-1,真空腔体压力上升干泵报警后停机\n".encode("gbk"))
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("id,title\nC-1,干泵\n", encoding="utf-16")
    excel_like = tmp_path / "cases.json"
    excel_like.write_text('[{"id": "C-1", "title": "x"}]', encoding="utf-8")
    for path in (gbk, utf16, excel_like):
        assert stream_table(path) is None
        assert load_table(path).records  # and the whole-file load still reads it
    big5 = mapping_from_dict({"encoding": "big5"})
    assert stream_table(DATA / "cases.csv", big5) is None


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
