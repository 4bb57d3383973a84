"""Property tests (hypothesis) for everything that takes text or files from outside: normalisation,
tokenisation and code extraction, record validation, and the table / SOP loaders.

Each property says what must hold for *any* input; examples are kept modest (deadline off, no
example database) so the file runs in seconds; CASELINK_PROPERTY_SCALE=20 explores longer.
"""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from caselink.errors import CaselinkError, InvalidRecord, LoaderError
from indexing.loaders import load_path, stream_table
from indexing.normalize import fold, normalize
from indexing.records import Record, parse_record, record_from_json, record_to_json
from indexing.tokenize import Tokenizer, canonical_code

SCALE = int(os.environ.get("CASELINK_PROPERTY_SCALE", "1"))  # e.g. 20 for a long exploration run
PROPS = hsettings(max_examples=150 * SCALE, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FILES = hsettings(max_examples=60 * SCALE, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

TOKENIZER = Tokenizer()
_CANONICAL = re.compile(r"^[a-z0-9]+$")

# Text as it arrives: any Unicode (no lone surrogates: they cannot come out of a decoder), with
# control characters, CJK, full-width forms and codes over-represented.
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
FULLWIDTH = st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E)
CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from("\x7f\u2028\u2029\u200b\ufeff\u3000")
CODE_TEXT = st.from_regex(r"[A-Za-z]{1,3}[-_./ ]?[0-9]{2,5}([-_./][0-9A-Za-z]{1,3})?", fullmatch=True)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)) | CJK | FULLWIDTH | CONTROL, max_size=300)
MIXED_TEXT = st.lists(ANY_TEXT | CODE_TEXT | st.sampled_from(["真空泵", "報警", "E-1023", "Ｅ１０２３", " ", "\n"]),
                      max_size=12).map("".join)


# -- normalize / fold ---------------------------------------------------------------------------------
@PROPS
@given(MIXED_TEXT)
@example("ǰ\u0345ß İ ﬀ Ｋ")  # case folding that grows or needs recomposition
@example("\x00 乾燥 \x00")
def test_normalize_never_raises_is_idempotent_and_spaced_once(text):
    out = normalize(text)
    assert isinstance(out, str)
    assert normalize(out) == out
    assert out == out.strip() and "  " not in out and "\n" not in out and "\t" not in out


@PROPS
@given(MIXED_TEXT, st.sampled_from(["t2s", ""]))
@example("乾隆ǰ\u0345İ\u3000", "t2s")
def test_fold_keeps_every_position(text, opencc):
    assert len(fold(text, opencc=opencc)) == len(text)


# -- tokenizer and codes --------------------------------------------------------------------------------
def _check_code(code: str) -> None:
    assert _CANONICAL.match(code), code
    assert re.search(r"[a-z]", code) and re.search(r"[0-9]", code), code
    assert canonical_code(code) == code


@PROPS
@given(MIXED_TEXT)
def test_tokenize_never_raises_and_codes_are_canonical(text):
    tokens = TOKENIZER.tokenize(text)
    assert all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tokens)
    assert set(TOKENIZER.tokenize(text, bigrams=False)) <= set(tokens)
    codes = TOKENIZER.codes(text)
    assert len(codes) == len(set(codes))
    for code in codes:
        _check_code(code)
        assert code in tokens
    assert TOKENIZER.codes(TOKENIZER.normalize(text), normalized=True) == codes


@PROPS
@given(CODE_TEXT, st.sampled_from(["plain", "upper", "lower", "fullwidth"]), st.sampled_from(["", "报警", "alarm "]))
def test_a_code_matches_in_any_width_and_case(code, variant, before):
    assume(re.search(r"[0-9]", code) and re.search(r"[A-Za-z]", code) and " " not in code)
    written = {"plain": code, "upper": code.upper(), "lower": code.lower(),
               "fullwidth": "".join(chr(ord(c) + 0xFEE0) if c in string.ascii_letters + string.digits else c
                                    for c in code)}[variant]
    expected = canonical_code(code)
    _check_code(expected)
    assert TOKENIZER.codes(f"{before}{written} 后") == TOKENIZER.codes(code) == [expected]


@pytest.mark.parametrize("text", [
    "设备报警E1023后无法启动，" * 20_000,  # 240,000 characters of Chinese
    ("E1023 " * 30_000),
    "a-" * 100_000 + "1",  # one very long hyphenated run: a code regex must not backtrack forever
    "\x00\x01\x02\u200b\ufeff" * 20_000,
    "".join(chr(c) for c in range(0x20, 0xD7FF, 7)) * 5,
])
def test_tokenize_huge_and_hostile_strings(text):
    tokens = TOKENIZER.tokenize(text)
    assert isinstance(tokens, list)
    for code in TOKENIZER.codes(text):
        _check_code(code)


# -- records ------------------------------------------------------------------------------------------
_FIELDS = list(Record.model_fields)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | ANY_TEXT | CODE_TEXT
    | st.sampled_from(["case", "problem", "sop", "2024-03-05", "2024-13-45", " C-1 ", "a/b", "#"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
RECORD_DICTS = st.one_of(
    st.dictionaries(st.sampled_from(_FIELDS) | ANY_TEXT, JSONISH, max_size=8),
    st.fixed_dictionaries({"id": ANY_TEXT | CODE_TEXT, "kind": st.sampled_from(["case", "problem", "sop", "x"])},
                          optional={f: JSONISH for f in _FIELDS if f not in ("id", "kind")}),
)


@PROPS
@given(RECORD_DICTS)
@example({"id": "C-1", "kind": "case", "title": "x" * 1001})
@example({"id": "C-1", "kind": "case", "error_codes": "E1023, E2040；A-4410"})
def test_parse_record_raises_only_invalid_record(data):
    try:
        record = parse_record(data)
    except InvalidRecord as exc:
        assert exc.field and exc.message
        return
    assert isinstance(record, Record)
    assert record_from_json(record_to_json(record)) == record
    assert record.content_hash() == parse_record(json.loads(record.model_dump_json())).content_hash()


# -- loaders ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("loaders")


def _load(workdir: Path, data: bytes, suffix: str):
    """load_path on ``data`` saved as a file: the result, or None when it refused with a CaselinkError
    (LoaderError, InvalidRecord...). Any other exception fails the test."""
    path = workdir / f"input{suffix}"
    path.write_bytes(data)
    try:
        return load_path(path)
    except CaselinkError:
        return None


CSV_HEADER = b"id,kind,title,text,error_codes,created\n"
JSON_LINES = st.lists(JSONISH | st.fixed_dictionaries({"id": CODE_TEXT, "kind": st.just("case")},
                                                     optional={"title": JSONISH, "created": JSONISH}),
                      max_size=5).map(lambda items: "\n".join(json.dumps(i, ensure_ascii=False) for i in items))
LOADER_INPUT = st.one_of(
    st.binary(max_size=2000),
    st.binary(max_size=600).map(lambda b: CSV_HEADER + b),
    JSON_LINES.map(lambda t: t.encode("utf-8")),
    MIXED_TEXT.flatmap(lambda t: st.sampled_from(["utf-8", "gb18030", "big5", "utf-16"]).map(
        lambda enc: t.encode(enc, errors="ignore"))),
    MIXED_TEXT.map(lambda t: ("---\ndoc_id: SOP-X\n---\n# 标题\n## 1. 步骤\n" + t).encode("utf-8")),
)


@FILES
@given(data=LOADER_INPUT, suffix=st.sampled_from([".csv", ".jsonl", ".md"]))
@example(data=b"\xef\xbb\xbf" + CSV_HEADER + b"C-1,case,t,x,,2024-02-30\n", suffix=".csv")
@example(data=b"\xff\xfe\x00", suffix=".md")
def test_loaders_raise_only_loader_errors_on_arbitrary_bytes(workdir, data, suffix):
    result = _load(workdir, data, suffix)
    if result is not None:
        assert all(isinstance(r, Record) for r in result.records)
        assert result.summary()


JSON_ARRAY = st.lists(JSONISH | st.fixed_dictionaries({"id": CODE_TEXT, "kind": st.just("case")},
                                                     optional={"title": JSONISH, "created": JSONISH}),
                      max_size=5).map(lambda items: json.dumps(items, ensure_ascii=False, indent=1))


@FILES
@given(data=LOADER_INPUT | JSON_ARRAY.map(lambda t: t.encode("utf-8")) | st.binary(max_size=300).map(
           lambda b: b"[" + b), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
@example(data=b'[{"id": "C-1", "title": "x"}, 1', suffix=".json")
@example(data=b"\r\x00\t", suffix=".csv")  # a CR-ended header: the whole file was sniffed as its header line
def test_a_streamed_load_is_the_whole_load_on_arbitrary_bytes(workdir, data, suffix):
    """stream_table either leaves the file whole (None), or refuses it as load_path does, or yields
    the records load_path returns, with its skipped rows; it raises nothing but LoaderErrors."""
    path = workdir / f"input{suffix}"
    path.write_bytes(data)
    try:
        whole = load_path(path)
    except CaselinkError as exc:
        whole = exc
    try:
        stream = stream_table(path)
        if stream is None:
            return
        latest = {r.id: r for r in stream.records()}
    except LoaderError as exc:
        assert isinstance(whole, LoaderError), (exc, whole)
        return
    assert not isinstance(whole, Exception), whole
    assert list(latest.values()) == whole.records
    assert stream.result.skipped == whole.skipped and stream.summary() == whole.summary()


@pytest.mark.parametrize("name,data", [
    ("huge-int.jsonl", b'{"id": "C-1", "kind": "case", "title": ' + b"9" * 5000 + b"}\n"),
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000),
])
def test_json_loaders_refuse_pathological_json_with_a_loader_error(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        result = load_path(path)
    except LoaderError:
        return
    assert result.skipped  # a bad line is skipped and reported, like any invalid JSON line


# Real sentences, as exported by ticketing systems on Chinese (GBK) and Taiwanese (Big5) Windows.
SIMPLIFIED = [
    "客户反馈设备开机后真空泵无法启动，面板显示报警。", "加工时主轴温度升高到八十五度后停机。",
    "液压站压力只有三兆帕，夹具夹紧力不足，工件松动。", "更换接触器后设备恢复正常运行。",
    "冷却泵滤网堵塞，清洗滤网并更换冷却液。", "夜班干泵无预警停止，控制器显示过温保护。",
    "机械手从片盒取片时真空吸附报警。", "曝光时激光输出功率比设定值低百分之十五。",
    "工件台对准时定位误差超过规定范围，重新校准后正常。", "请现场工程师检查门禁开关的接线是否松动。",
    "升级固件过程中不得断电，升级后校准触摸屏。", "多台设备出现同样的故障，疑似供应商批次问题。",
]
TRADITIONAL = [
    "客戶反饋設備開機後真空泵無法啟動，面板顯示報警。", "加工時主軸溫度升高到八十五度後停機。",
    "液壓站壓力只有三兆帕，夾具夾緊力不足，工件鬆動。", "更換接觸器後設備恢復正常運行。",
    "冷卻泵濾網堵塞，清洗濾網並更換冷卻液。", "夜班乾泵無預警停止，控制器顯示過溫保護。",
    "機械手從片盒取片時真空吸附報警。", "曝光時雷射輸出功率比設定值低百分之十五。",
    "工件台對準時定位誤差超過規定範圍，重新校準後正常。", "請現場工程師檢查門禁開關的接線是否鬆動。",
    "升級韌體過程中不得斷電，升級後校準觸控螢幕。", "多台設備出現同樣的故障，疑似供應商批次問題。",
]
for _s in SIMPLIFIED:
    _s.encode("gbk")
for _t in TRADITIONAL:
    _t.encode("big5")

ROWS = st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from(range(len(SIMPLIFIED))), min_size=n, max_size=n),
    st.lists(st.sampled_from(range(len(SIMPLIFIED))), min_size=n, max_size=n),
    st.lists(st.sampled_from(["E1023", "A-4410", "", "PN-7731-02"]), min_size=n, max_size=n)))


def _non_ascii(texts) -> set[str]:
    return {c for t in texts for c in t if c > "\x7f"}


@FILES
@given(encoding_and_pool=st.sampled_from([("gbk", SIMPLIFIED), ("big5", TRADITIONAL)]), rows=ROWS,
       suffix=st.sampled_from([".csv", ".jsonl", ".md"]))
def test_gbk_and_big5_exports_are_read_right_or_refused(workdir, encoding_and_pool, rows, suffix):
    encoding, pool = encoding_and_pool
    titles, texts, codes = [[pool[i] for i in rows[0]], [pool[i] for i in rows[1]], rows[2]]
    if suffix == ".csv":
        lines = ["id,kind,title,text,error_codes"]
        lines += [f"C-{i},case,{t},\"{x}\",{c}" for i, (t, x, c) in enumerate(zip(titles, texts, codes))]
        content = "\r\n".join(lines) + "\r\n"
    elif suffix == ".jsonl":
        rows_ = [{"id": f"C-{i}", "kind": "case", "title": t, "text": x, "error_codes": c}
                 for i, (t, x, c) in enumerate(zip(titles, texts, codes))]
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows_)
    else:
        content = f"# {titles[0]}\n" + "".join(f"## {i + 1}. {t}\n{x}\n" for i, (t, x) in enumerate(zip(titles, texts)))
    result = _load(workdir, content.encode(encoding), suffix)
    if result is None:
        return  # refused: asking for the encoding is fine, guessing wrong is not
    got = [f for r in result.records for f in (r.title, r.text, r.section, r.doc_title)]
    assert _non_ascii(got) <= _non_ascii([content]), f"mis-decoded as something else: {got}"
    if suffix != ".md":
        assert [(r.title, r.text) for r in result.records] == list(zip(titles, texts))
