"""Turn the bytes of a text export into text without ever mis-decoding it silently.

Ticketing systems on Chinese Windows still write GBK, on Taiwanese Windows Big5, and the same
bytes often decode without error in both; a wrong guess would index mojibake that nobody
notices until searches fail. So: a BOM is honoured; strict UTF-8 is tried next (a short file
whose few non-ASCII characters are odd as UTF-8 but common Chinese as GBK/Big5 is refused as
ambiguous: two GBK bytes are valid UTF-8 about one time in ten); otherwise
GB18030 (a superset of GBK) and CP950 (Windows Big5) are tried and judged by how many of the
decoded characters are common Chinese characters (GB2312 or Big5 level-1, which together hold
the everyday characters of both scripts; a wrong decoding yields rare characters and symbols);
charset-normalizer is consulted for everything that is not Chinese, and may veto a Chinese
reading only in favour of Korean (EUC-KR bytes read as common Chinese characters). When the
evidence is thin (a handful of characters, tied code pages) the caller gets a LoaderError
asking for an explicit encoding rather than a guess.

Known limits: Western single-byte files (cp1252...) are usually refused, because the code pages
tie; a file whose only non-ASCII text is one or two characters can still be misread (see
``plausible_utf8``), as can a very short Korean EUC-KR text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import charset_normalizer

from caselink.errors import LoaderError

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CHINESE = ("gb18030", "cp950")  # what GBK and Big5 exports are decoded with (supersets)
_KOREAN = frozenset({"cp949", "euc_kr"})
_CHINESE_NAMES = {"gb2312", "gbk", "gb18030", "cp936", "hz", "big5", "big5hkscs", "cp950"}
_MIN_SCORE = 0.9  # share of common characters a right decoding reaches (real text: 0.97-1.0)
_MIN_MARGIN = 0.2  # how far ahead of the other Chinese decoding it must be (wrong ones: 0.2-0.75)
_MIN_CHARS = 4  # fewer non-ASCII characters than this cannot tell GBK from Big5
_MAX_CHAOS = 0.1  # charset-normalizer's mess ratio above which its guess is not trusted
_CLEARLY_LESS_MESSY = 0.05  # mess-ratio lead another encoding needs to overrule a Chinese reading
SAMPLE_BYTES = 1 << 20  # a streamed file's encoding is judged on its first MiB of lines...
_SAMPLE_NON_ASCII = 4096  # ...and, when those hold fewer non-ASCII bytes, on later lines that have some
_SAMPLE_CAP = 4 << 20  # at most this much in all
_ASCII = bytes(range(128))
_CUTS = bytes(0 if b < 0x40 else 1 for b in range(256))  # translate: a byte after which a sample may be cut
_MIN_UTF8_EVIDENCE = 8  # this many non-ASCII characters that decode as UTF-8 make it UTF-8
# Characters a short real UTF-8 export contains: Latin-1, punctuation and symbols, CJK
# punctuation, kana, full-width forms, emoji (and common Chinese characters, checked apart).
# Not: Latin Extended, Greek, Cyrillic, Hebrew, Arabic, rare ideographs, unassigned planes...,
# which is where GBK/Big5 byte pairs land when read as UTF-8. Nor hangul: three GBK/Big5 bytes
# make one UTF-8 hangul syllable often enough ('電检壓' in GBK is the UTF-8 '늼쉺'), so a short
# text that reads as hangul is UTF-8 only if it does not also read as common Chinese.
_UTF8_PLAUSIBLE = re.compile(
    "[\u00a0-\u00ff\u2000-\u27bf\u3000-\u30ff\ufe30-\ufe4f\uff00-\uffef\U0001f000-\U0001faff]"
)


@dataclass(frozen=True)
class Decoded:
    """Decoded text and how the encoding was chosen."""

    text: str
    encoding: str
    detected: bool  # True when the encoding was guessed (not UTF-8, not given, no BOM)


def bom_encoding(data: bytes) -> str | None:
    """The encoding ``data``'s byte-order mark names (``utf-8-sig``, ``utf-16``, ``utf-32``), if any."""
    return next((name for bom, name in _BOMS if data.startswith(bom)), None)


def decode_bytes(data: bytes, encoding: str = "auto", *, source: str, hint: str) -> Decoded:
    """Decode ``data`` with ``encoding``, or detect it when ``encoding`` is ``"auto"``.

    Args:
        data: The raw file content.
        encoding: A Python codec name (``"gbk"``, ``"big5"``, ``"utf-8"`` ...) or ``"auto"``.
        source: The file name, for error messages.
        hint: How the user sets the encoding explicitly, appended to errors.

    Raises:
        LoaderError: the bytes are not valid in the given encoding, or ``auto`` could not tell
            the encoding with confidence.
    """
    if encoding.lower() != "auto":
        return Decoded(_strict(data, encoding, source), encoding, detected=False)
    for bom, name in _BOMS:
        if data.startswith(bom):
            return Decoded(_strict(data, name, source), name, detected=False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _detect(data, source, hint)
    if plausible_utf8(text):
        return Decoded(text, "utf-8", detected=False)
    rivals = [(name, rival) for name, (rival, score, _) in _chinese(data) if score >= _MIN_SCORE]
    if not rivals:
        return Decoded(text, "utf-8", detected=False)
    name, rival = rivals[0]
    raise LoaderError(
        f"{source}: cannot tell the text encoding: it is valid UTF-8 ({_sample(text)}) "
        f"but also {name} ({_sample(rival)})",
        field="encoding", hint=hint,
    )


def plausible_utf8(text: str) -> bool:
    """False for short texts whose few non-ASCII characters are odd ones (Latin Extended-B, Cyrillic...).

    A GBK or Big5 character is valid UTF-8 about one time in ten ("乾" in GBK is the UTF-8 "Ǭ"),
    so a file with one or two Chinese characters can pass as UTF-8; with eight it practically
    never does, and real UTF-8 text this short uses common Chinese, Latin-1 or punctuation
    characters. Known blind spot: the ~1% of GBK/Big5 characters whose bytes read as a Latin-1
    letter ("漏" -> "©") are taken as UTF-8 when a file has only one or two such characters.
    """
    odd = total = 0
    for c in text:
        if c > "\x7f":
            total += 1
            odd += not (_UTF8_PLAUSIBLE.match(c) or _is_common(c))
            if total >= _MIN_UTF8_EVIDENCE:
                return True
    return odd == 0


def _sample(text: str) -> str:
    chars = "".join(c for c in text if c > "\x7f")[:12]
    return f"non-ASCII text {chars!r}"


def _strict(data: bytes, encoding: str, source: str) -> str:
    try:
        text = data.decode(encoding)
    except LookupError:
        raise LoaderError(f"{source}: unknown encoding {encoding!r}", field="encoding") from None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise undecodable(source, encoding, exc.start, data[exc.start:exc.start + 4], line) from None
    return text.removeprefix("\ufeff")


def undecodable(source: str, encoding: str, offset: int, bad: bytes, line: int, detected_on: int | None = None,
                ) -> LoaderError:
    """The error for bytes ``encoding`` cannot decode, at byte ``offset`` on ``line`` (1-based);
    ``detected_on``: the size of the sample ``auto`` chose ``encoding`` by, when it did."""
    how = f" (chosen by 'auto' on a {detected_on:,}-byte sample of it)" if detected_on is not None else ""
    return LoaderError(
        f"{source}: expected {encoding} text{how}, got bytes it cannot decode ({bad.hex(' ')}) "
        f"at offset {offset} (line {line})",
        field="encoding",
        hint="set the file's real encoding (gbk or gb18030, big5 or cp950, utf-8) or 'auto' to detect it",
    )


def ascii_compatible(encoding: str) -> bool:
    """True when ``encoding`` writes ASCII as ASCII (GBK, Big5, UTF-8...: a b"\\n" byte is a line
    end, never part of a character), False for UTF-16/32."""
    return "\n,\"".encode(encoding).removeprefix(codecs.BOM_UTF8) == b"\n,\""


def detection_sample(fh: BinaryIO) -> bytes:
    """What ``auto`` judges a file it streams by: its first ``SAMPLE_BYTES``, then, while they hold
    fewer than ``_SAMPLE_NON_ASCII`` non-ASCII bytes, later blocks that hold any (ASCII is evidence
    for no encoding), up to ``_SAMPLE_CAP`` in all; read from ``fh`` (binary), holding no more.

    Blocks are cut after a byte below 0x40 (ASCII digits, punctuation, spaces, line ends), which
    is never the second byte of a GBK, Big5, Shift-JIS or EUC character nor part of a UTF-8 one,
    so no character is cut, even in a file that is one long line. A file smaller than
    ``SAMPLE_BYTES`` is its own sample: judged exactly as when it is loaded whole.
    """
    parts: list[bytes] = []
    size = non_ascii = 0
    for piece in _pieces(fh, min(1 << 16, SAMPLE_BYTES)):
        if size >= _SAMPLE_CAP or (size >= SAMPLE_BYTES and non_ascii >= _SAMPLE_NON_ASCII):
            break
        if size < SAMPLE_BYTES or not piece.isascii():
            parts.append(piece)
            size += len(piece)
            non_ascii += len(piece.translate(None, _ASCII))
    return b"".join(parts)


def _pieces(fh: BinaryIO, block: int) -> Iterator[bytes]:
    """``fh``'s bytes in pieces of about ``block``, each ending after a byte below 0x40 (or where a
    run without one grows past ``_SAMPLE_CAP``: no text looks like that)."""
    carry = b""
    while data := fh.read(block):
        data = carry + data
        cut = data.translate(_CUTS).rfind(b"\0") + 1
        if cut == 0 and len(data) <= _SAMPLE_CAP:
            carry = data
            continue
        cut = cut or len(data)
        yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def locate_undecodable(path: Path, encoding: str) -> tuple[int, bytes, int] | None:
    """(byte offset, the bytes from there, line) of the first bytes of ``path`` that ``encoding``
    cannot decode; None when it decodes. Reads a line at a time for an ASCII-compatible encoding
    (lines decode independently), the whole file otherwise."""
    with path.open("rb") as fh:
        if not ascii_compatible(encoding):
            data = fh.read()
            try:
                data.decode(encoding)
            except UnicodeDecodeError as exc:
                line = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
                return exc.start, data[exc.start:exc.start + 4], line
            return None
        offset = 0
        for number, line in enumerate(fh, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                bad = line[exc.start:exc.start + 4]
                return offset + exc.start, bad + fh.read(4 - len(bad)), number  # 4 bytes, as _strict shows
            offset += len(line)
    return None


def _chinese(data: bytes) -> list[tuple[str, tuple[str, float, int]]]:
    """The Chinese decodings that succeed, best first: (codec, (text, common share, non-ASCII count))."""
    scored: dict[str, tuple[str, float, int]] = {}
    for name in _CHINESE:
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        scored[name] = (text, *chinese_score(text))
    return sorted(scored.items(), key=lambda kv: kv[1][1], reverse=True)


def _detect(data: bytes, source: str, hint: str) -> Decoded:
    ranked = _chinese(data)
    if ranked:
        best, (text, score, count) = ranked[0]
        if score >= _MIN_SCORE and (
            len(ranked) == 1  # the other Chinese encoding cannot even decode the bytes
            or (score - ranked[1][1][1] >= _MIN_MARGIN and count >= _MIN_CHARS)
        ):
            rival = _clearly_korean(data)
            if rival is None:
                return Decoded(text, best, detected=True)
            raise LoaderError(f"{source}: cannot tell the text encoding: it is not UTF-8 and could be {best} "
                              f"or {rival}", field="encoding", hint=hint)
    # Not (clearly) Chinese. charset-normalizer knows the other encodings; it is asked only when
    # no Chinese reading is half plausible, because on short texts it confuses GBK/Big5 with
    # Korean and Japanese encodings.
    matches = list(charset_normalizer.from_bytes(data))
    guess = matches[0] if matches else None
    looks_chinese = any(score >= 0.5 for _, (_, score, _) in ranked)
    if guess is not None and not looks_chinese and guess.encoding not in _CHINESE_NAMES and guess.chaos <= _MAX_CHAOS:
        # Single-byte code pages (cp1252, cp1250, cp775...) often tie; a tie that reads differently is a guess.
        rivals = [m for m in matches[1:] if m.chaos <= guess.chaos + _MAX_CHAOS and str(m) != str(guess)]
        if not rivals:
            return Decoded(str(guess), guess.encoding, detected=True)
        got = f"it is not UTF-8, GBK or Big5 and reads differently as {guess.encoding} or {rivals[0].encoding}"
        raise LoaderError(f"{source}: cannot tell the text encoding: {got}", field="encoding", hint=hint)
    if ranked:
        found = " or ".join(f"{name} ({score:.0%} common Chinese characters)" for name, (_, score, _) in ranked)
        got = f"it is not UTF-8 and could be {found}"
    else:
        got = f"it is not UTF-8, GBK or Big5 (best other guess: {guess.encoding if guess else 'none'})"
    raise LoaderError(f"{source}: cannot tell the text encoding: {got}", field="encoding", hint=hint)


def _clearly_korean(data: bytes) -> str | None:
    """"cp949"/"euc_kr" when charset-normalizer finds that clearly less messy than GBK/Big5, else None.

    Korean EUC-KR bytes fall in the GB2312 range and read as common (if meaningless) Chinese
    characters, so the character score cannot tell them apart; charset-normalizer's mess ratio
    can. Its other CJK guesses (johab, Shift-JIS) on short Chinese texts are mostly wrong, and
    Shift-JIS does not read as common Chinese anyway, so only Korean may overrule.
    """
    matches = list(charset_normalizer.from_bytes(data))
    chinese = [m.chaos for m in matches if m.encoding in _CHINESE_NAMES]
    other = next((m for m in matches if m.encoding in _KOREAN), None)
    if other is None:
        return None
    if not chinese or other.chaos < min(chinese) - _CLEARLY_LESS_MESSY:
        return other.encoding
    return None


def chinese_score(text: str) -> tuple[float, int]:
    """Share of the non-ASCII characters in ``text`` that are common Chinese characters or punctuation.

    Returns:
        ``(share, number of non-ASCII characters)``; share is 0.0 when there are none.
    """
    total = common = 0
    for c in text:
        if c > "\x7f":
            total += 1
            common += _is_common(c)
    return (common / total if total else 0.0), total


@lru_cache(maxsize=65536)
def _is_common(ch: str) -> bool:
    o = ord(ch)
    if 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E or o in (0xB7, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2026):
        return True  # CJK and full-width punctuation, dashes and quotes
    if not 0x4E00 <= o <= 0x9FFF:
        return False  # kana, box drawing, Cyrillic...: what a wrong GBK/Big5 decoding produces
    try:
        ch.encode("gb2312")
        return True
    except UnicodeEncodeError:
        pass
    try:
        return 0xA440 <= int.from_bytes(ch.encode("big5"), "big") <= 0xC67E  # Big5 level 1
    except UnicodeEncodeError:
        return False
