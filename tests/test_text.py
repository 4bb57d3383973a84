"""Normalisation and tokenisation: scripts, widths, codes kept whole."""

from indexing.normalize import fold, normalize
from indexing.tokenize import Tokenizer, canonical_code


def test_traditional_and_simplified_fold_to_the_same_text():
    assert normalize("乾泵跳機，腔體壓力異常") == normalize("干泵跳机，腔体压力异常")


def test_full_width_and_case_are_folded():
    assert normalize("Ｅ１０２３　Vacuum  PUMP") == "e1023 vacuum pump"


def test_fold_keeps_positions():
    text = "報警Ｅ１０２３\n\nABC"
    folded = fold(text)
    assert len(folded) == len(text)
    assert folded.startswith("报警e1023")


def test_codes_are_kept_whole_and_canonical():
    tok = Tokenizer()
    tokens = tok.tokenize("换了PN-7731-02后仍报E1023, 软件 v3.2.1, 机型 HX-L3200, 轴 F3")
    for code in ("pn773102", "e1023", "v321", "hxl3200", "f3"):
        assert code in tokens
    assert "pn" not in tokens and "7731" not in tokens


def test_code_spellings_match():
    assert canonical_code("E-1023") == canonical_code("e1023") == canonical_code("Ｅ１０２３")
    assert Tokenizer().codes("报警 E-1023 和 PN 7731") == ["e1023"]


def test_pure_numbers_and_words_are_not_codes():
    tok = Tokenizer()
    assert tok.codes("压力 50 Pa，流量 4 L/min") == []


def test_domain_words_stay_whole():
    plain = Tokenizer(cjk_bigrams=False).tokenize("晶圆传输模块报警")
    assert "晶圆传输" not in plain
    tok = Tokenizer(cjk_bigrams=False, user_words=["晶圆传输"])
    assert "晶圆传输" in tok.tokenize("晶圆传输模块报警")


def test_bigrams_and_english_stemming():
    tok = Tokenizer()
    tokens = tok.tokenize("干泵停机 pumps failed")
    assert {"干泵", "泵停", "停机"} <= set(tokens)
    assert {"pump", "fail"} <= set(tokens)
    assert "泵停" not in tok.tokenize("干泵停机", bigrams=False)


def test_single_characters_are_added_when_asked_but_not_to_explanations():
    tok = Tokenizer(cjk_unigrams=True)
    tokens = tok.tokenize("为什么借款失败了")
    assert {"借", "款", "失", "败"} <= set(tokens)
    assert "了" not in tokens  # stop characters stay out
    assert "借" not in tok.tokenize("为什么借款失败了", bigrams=False)  # explanations show words only
    assert "借" not in Tokenizer().tokenize("为什么借款失败了")  # off by default
    # a one-character run is already jieba's word: not counted twice
    assert tok.tokenize("借 钱").count("借") == 1


def test_dotted_numbers_are_one_token_and_their_parts():
    tokens = Tokenizer().tokenize("Upgrade jetty to 9.4.43; 压力 50.5 Pa")
    assert {"9.4.43", "9", "4", "43", "50.5", "50", "5"} <= set(tokens)
    assert "9.4.43" not in Tokenizer(dotted_numbers=False).tokenize("Upgrade jetty to 9.4.43")
    assert Tokenizer().codes("jetty 9.4.43") == []  # a version is a word, not a code that reorders results


def test_traditional_query_tokens_equal_simplified():
    tok = Tokenizer()
    assert tok.tokenize("機械手臂取片失敗") == tok.tokenize("机械手臂取片失败")


def test_an_ideographic_full_stop_ends_a_code():
    # The demo's "报 E1023。N2 ballast 流量..." was indexed as the one code e1023n2, so a search for
    # E1023 missed it on the exact-code side.
    tok = Tokenizer()
    assert tok.codes("干泵跳停报 E1023。N2 ballast 偏低") == ["e1023", "n2"]
    assert tok.codes("更换套件 kit｡8D 报告已提交") == ["8d"]
    tokens = tok.tokenize("报 W1032。RoR 超标")
    assert "w1032" in tokens and "w1032ror" not in tokens
    assert tok.codes("软件 v3.2.1。") == ["v321"]  # a stop after a code still leaves it whole


def test_cjk_punctuation_is_folded_to_ascii_in_place():
    text = "換了新的汞燈。還是【點不起來】、「E1023」"
    assert fold(text) == "换了新的汞灯.还是[点不起来],\"e1023\""
    assert len(fold(text)) == len(text)
    assert normalize("報警『E-1023』。") == '报警"e-1023".'


def test_a_folded_record_is_cut_back_into_its_own_fields_and_follows_edits():
    from indexing.records import Record
    from recommender.explain import FoldedRecord, explain

    tok = Tokenizer()
    rec = Record(id="C-1", kind="case", title="真空泵 Failed", text="The pumps were FAILING。換了新的汞燈",
                 resolution="Replaced PN-7731-02")
    folded = FoldedRecord.of(rec, tokenizer=tok)
    for field in ("title", "text", "resolution", "section"):
        assert folded.fields[field] == fold(getattr(rec, field))
    assert folded.surfaces == tok.surfaces(" ".join((rec.title, rec.section, rec.text)))
    # Cached by content: the edited record is folded anew, never shown with its old text.
    edited = rec.model_copy(update={"text": "Pump tripped"})
    assert FoldedRecord.of(edited, tokenizer=tok).fields["text"] == "pump tripped"
    ex = explain(edited, query_words=["pump", "trip"], query_codes=set(), record_codes=frozenset(), tokenizer=tok,
                 dense=None, keyword=None)
    assert ex.matched_terms == ["pump", "tripped"]


def test_a_prepared_record_explains_snippets_and_highlights_as_the_record_itself_does():
    from indexing.records import Record
    from recommender.explain import (FoldedRecord, explanation_fields, prepare, snippet_and_highlights)

    tok = Tokenizer()
    # Traditional script, full-width code, a code written apart from its declared form, a long text
    # (the snippet window moves) and a title the display title replaces (an SOP section).
    rec = Record(id="SOP-1#2", kind="sop", doc_title="乾泵維護手冊", section="2. 報警 Ｅ１０２３ 處理",
                 text="開機後。" * 40 + "乾泵跳停，報 E-1023，冷卻水流量偏低；更換 PN-7731-02 後恢復。",
                 error_codes=["e-1023"], resolution="更換冷卻水過濾器")
    prepared = prepare(rec, tokenizer=tok)
    assert prepare(rec, tokenizer=tok) is prepared  # one preparation per record object
    assert prepare(rec.model_copy(), tokenizer=tok) is not prepared
    words, codes = ["干泵", "跳停", "冷却水", "pn", "e1023"], {"e1023", "pn773102"}
    common = dict(query_words=words, query_codes=codes, record_codes=prepared.codes(docs=_docs(tok)),
                  tokenizer=tok, dense=(3, 0.61234), keyword=(1, 0.9))
    folded = FoldedRecord.of(rec, tokenizer=tok)
    ex = explanation_fields(rec, **common, prepared=prepared)
    assert ex == explanation_fields(rec, **common, folded=folded)
    assert ex["matched_codes"] == ["e-1023", "PN-7731-02"] and "干泵" in ex["matched_terms"]
    terms = ex["matched_terms"] + [prepared.folded_code(c, tok.opencc) for c in ex["matched_codes"]]
    assert prepared.folded_code("PN-7731-02", tok.opencc) == fold("PN-7731-02")
    snippet, highlights = snippet_and_highlights(rec, terms, prepared=prepared)
    assert (snippet, highlights) == snippet_and_highlights(rec, terms, folded=folded)
    # The window starts before the first match, and each highlight is the record's own script and
    # width, cut at the folded match's offsets.
    assert snippet.startswith("…") and "乾泵跳停" in snippet
    assert {"乾泵", "跳停", "冷卻水", "E-1023", "PN-7731-02"} <= set(highlights)
    for h in highlights:
        assert h in snippet or h in rec.display_title()
    assert prepared.result["title"] == "乾泵維護手冊 / 2. 報警 Ｅ１０２３ 處理" and prepared.snippet_field == "text"

    # A search's results are built by Showing, one call a result: the same explanation, snippet
    # and highlights as the two functions give, with and without codes, words or a verdict.
    from recommender.explain import Showing
    from recommender.verdicts import Verdict

    for query_words, query_codes, verdict in ((words, codes, None), (words + words, set(), Verdict(2, 1)),
                                              ([], {"e1023"}, Verdict(0, 1)), (["无关"], set(), None)):
        showing = Showing(query_words, query_codes, tokenizer=tok, judged="this search")
        for record_codes in (prepared.codes(docs=_docs(tok)), ("e1023",), ()):
            got = showing.result(prepared, 0.5, record_codes, (3, 0.61234), None, verdict)
            ex = explanation_fields(rec, query_words=query_words, query_codes=query_codes,
                                    record_codes=frozenset(record_codes), tokenizer=tok, dense=(3, 0.61234),
                                    keyword=None, verdict=verdict, judged="this search", prepared=prepared)
            terms = ex["matched_terms"] + [prepared.folded_code(c, tok.opencc) for c in ex["matched_codes"]]
            snippet, highlights = snippet_and_highlights(rec, terms, prepared=prepared)
            assert got == {**prepared.result, "score": 0.5, "snippet": snippet, "highlights": highlights,
                           "explanation": ex}
            assert list(got) == [*prepared.result, "score", "snippet", "highlights", "explanation"]


def _docs(tok):
    from indexing.document import DocumentBuilder

    return DocumentBuilder(tok)
