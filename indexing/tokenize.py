"""Tokenisation for the keyword index: codes kept whole, Chinese cut by jieba, English stemmed.

Service text is dense with identifiers: error codes (E1023, A-4410), part numbers (PN-7731-02),
versions (v3.2.1) and model numbers (HX-L3200). A general-purpose segmenter splits them into
meaningless pieces ('pn', '-', '7731'), so they are pulled out first with a pattern and kept as
single tokens in a canonical form (separators removed, so 'E-1023' and 'e1023' match).
Chinese runs go through jieba with a domain dictionary; overlapping character bigrams are added
because jieba's segmentation of the same phrase differs with context, and bigrams make the
keyword side robust to that (the classic CJK IR trick). Single characters can be added too
(``cjk_unigrams``): short questions often share only a one-character verb or noun (借, 还, 卡,
降) written inside different words. It is off by default because every Chinese match then
counts about three times (word, bigram, characters) against once for an English word or a
code, which tips mixed Chinese-English service text towards the Chinese half of a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from indexing.normalize import normalize

# A code: alphanumeric segments joined by - _ . / that contain both a letter and a digit.
_CODE = re.compile(r"(?<![a-z0-9])[a-z0-9]+(?:[-_./][a-z0-9]+)*(?![a-z0-9])")
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALPHA = re.compile(r"[a-z]")
_SEPARATORS = re.compile(r"[-_./]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z][a-z']*[a-z]|[a-z]|\d+")
# A dotted number (3.4.0, 9.4.43, 192.168.1.10, 50.5) is one word: versions and addresses are
# identifiers, and split into 3, 4, 0 they match every other version.
_WORD_DOTTED = re.compile(r"[a-z][a-z']*[a-z]|[a-z]|\d+(?:\.\d+)+|\d+")
# The ideographic full stop ends a sentence, never joins a code: normalisation folds it to '.'
# (for the encoder), which read "E1023。N2 ballast" as the one code e1023n2. Tokens see a comma
# (Tokenizer.normalize).

_EN_STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if "
    "in into is it its me my no not of on or our she so than that the their them then there these they "
    "this to was we were what when where which while who why will with would you your".split()
)
_ZH_STOP = frozenset("的 了 是 在 和 与 及 或 也 都 就 而 对 把 被 让 给 从 到 吗 呢 吧 啊 么 之 其 这 那 有 个 一 我 你 他 她 它".split())


def canonical_code(code: str) -> str:
    """'PN-7731-02' -> 'pn773102': the form codes are matched in."""
    return _SEPARATORS.sub("", normalize(code))


def read_user_dict(path: Path) -> list[str]:
    """Terms of a jieba-style user dictionary: one per line, the first field ('term [freq] [tag]')."""
    from caselink.errors import CaselinkError

    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaselinkError(f"user dictionary {path} could not be read: {exc}", field="text.user_dict") from None
    return [ln.split()[0] for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def is_code(token: str) -> bool:
    return bool(_HAS_DIGIT.search(token) and _HAS_ALPHA.search(token))


def is_cjk_char(token: str) -> bool:
    """A one-character CJK token (a unigram, or a one-character jieba word)."""
    return len(token) == 1 and _CJK_RUN.match(token) is not None


# The tokeniser settings an index's manifest records (``params.text``), and what a manifest
# written before a setting existed meant by its absence.
TEXT_PARAMS = ("opencc", "cjk_bigrams", "cjk_unigrams", "dotted_numbers", "word_bigrams", "jieba_hmm")
TEXT_PARAMS_BEFORE = {"cjk_unigrams": False, "dotted_numbers": False, "word_bigrams": False, "jieba_hmm": True}


def text_params(text: Mapping) -> dict:
    """``params.text`` of a manifest, or ``settings.text.model_dump()``, as Tokenizer arguments."""
    return {name: text.get(name, TEXT_PARAMS_BEFORE.get(name)) for name in TEXT_PARAMS}


class Tokenizer:
    """Turns raw text into keyword tokens.

    Parameters
    ----------
    opencc : OpenCC configuration for script folding ('' disables).
    cjk_bigrams : add overlapping CJK character bigrams besides jieba's words.
    cjk_unigrams : add single CJK characters (stop characters excluded) as well.
    dotted_numbers : keep 3.4.0 or 50.5 as one token besides its parts.
    stem : apply the Snowball English stemmer to Latin words.
    word_bigrams : add adjacent Latin word pairs ('power_cord') as phrase tokens.
    jieba_hmm : let jieba guess words missing from its dictionary with its HMM (slower).
    user_words : domain terms (module, product names) jieba must keep whole.

    Construction is cheap; jieba's dictionary loads on first use.
    """

    def __init__(self, *, opencc: str = "t2s", cjk_bigrams: bool = True, cjk_unigrams: bool = False,
                 dotted_numbers: bool = True, word_bigrams: bool = False, jieba_hmm: bool = True,
                 stem: bool = True, user_words: Iterable[str] = ()):
        self.opencc = opencc
        self.cjk_bigrams = cjk_bigrams
        self.cjk_unigrams = cjk_unigrams
        self.dotted_numbers = dotted_numbers
        self._word = _WORD_DOTTED if dotted_numbers else _WORD
        self.word_bigrams = word_bigrams
        self.jieba_hmm = jieba_hmm
        self.stem = stem
        self.user_words = sorted({w.strip() for w in user_words if w and w.strip()})
        self._jieba = None
        self._stemmer = None

    def _segmenter(self):
        if self._jieba is None:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            seg = jieba.Tokenizer()
            seg.initialize()
            for word in self.user_words:
                w = normalize(word, opencc=self.opencc)
                if _CJK_RUN.search(w):
                    seg.add_word(w, freq=20000)
            self._jieba = seg
        return self._jieba

    def _stem(self, words: list[str]) -> list[str]:
        if not self.stem or not words:
            return words
        if self._stemmer is None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer("english")
        return self._stemmer.stemWords(words)

    def normalize(self, text: str) -> str:
        """``text`` as tokens are read from: :func:`~indexing.normalize.normalize`, with the
        ideographic full stop a comma (a stop ends a code; '.' would join two into one)."""
        # str.replace, not translate: a table lookup per character is slow on Chinese text.
        return normalize(text.replace("。", ",").replace("｡", ","), opencc=self.opencc)

    def codes(self, text: str, *, normalized: bool = False) -> list[str]:
        """Canonical codes in ``text``, in order of appearance, without repeats (``normalized``:
        ``text`` comes from :meth:`normalize`)."""
        t = text if normalized else self.normalize(text)
        found = (m.group(0) for m in _CODE.finditer(t))
        return list(dict.fromkeys(_SEPARATORS.sub("", c) for c in found if is_code(c)))

    def surfaces(self, text: str, *, normalized: bool = False) -> dict[str, str]:
        """Stemmed token -> the word as written (first occurrence), for explanations and highlights.

        ``normalized``: ``text`` is already folded (:func:`indexing.normalize.fold` will do:
        words are ASCII letters and digits, which both forms agree on).
        """
        plain = text if normalized else self.normalize(text)
        words = [w for w in self._word.findall(plain) if w not in _EN_STOP]
        unique = list(dict.fromkeys(words))
        out: dict[str, str] = {}
        for stem, word in zip(self._stem(unique), unique):
            out.setdefault(stem, word)
        return out

    def tokenize(self, text: str, *, bigrams: bool | None = None) -> list[str]:
        """Tokens of ``text``: codes, Chinese words and bigrams, stemmed English words, numbers.

        ``bigrams`` overrides the configured ``cjk_bigrams`` and ``cjk_unigrams`` (explanations want
        words only).
        """
        unigrams = self.cjk_unigrams and bigrams is not False
        bigrams = self.cjk_bigrams if bigrams is None else bigrams
        t = self.normalize(text)
        if not t:
            return []
        tokens: list[str] = []
        rest = []
        last = 0
        for m in _CODE.finditer(t):
            if is_code(m.group(0)):
                tokens.append(_SEPARATORS.sub("", m.group(0)))
                rest.append(t[last:m.start()])
                last = m.end()
        rest.append(t[last:])
        plain = " ".join(rest)
        words = self._stem([w for w in self._word.findall(plain) if w not in _EN_STOP])
        tokens.extend(words)
        # A dotted number's parts count too, so 9.4.43 still shares 9 and 4 with 9.4.35.
        tokens.extend(part for w in words if "." in w for part in w.split("."))
        if bigrams and self.word_bigrams:
            tokens.extend(f"{a}_{b}" for a, b in zip(words, words[1:]))
        for run in _CJK_RUN.findall(plain):
            tokens.extend(w for w in self._segmenter().cut(run, HMM=self.jieba_hmm) if w not in _ZH_STOP)
            if bigrams and len(run) > 2:
                tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
            if unigrams and len(run) > 1:
                tokens.extend(c for c in run if c not in _ZH_STOP)
        return tokens
