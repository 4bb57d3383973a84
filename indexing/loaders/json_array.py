"""Read a JSON array of objects one element at a time, with the json module's own parser.

Each element is parsed by ``json.JSONDecoder.raw_decode`` on a buffer of the text read so far, so
the values are exactly what ``json.loads`` of the whole file gives (floats, big integers, the
4,300-digit limit, nesting depth) and so are the errors, which are re-based from the buffer to the
file's line and column: "Expecting ',' delimiter at line 5 column 3" either way. A parse that
fails or ends at the end of the buffer is retried with more text (an element may straddle two
reads; a number cut after "1" may go on as "1.5"), so an error is final only when the rest of the file cannot change it.
That is why this is enough rather than a streaming parser such as ijson, a new dependency with
its own messages and its own number types (``Decimal``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from caselink.errors import LoaderError

CHUNK = 1 << 16  # characters read at a time (more when one element is longer)
_WS = re.compile(r"[ \t\n\r]*")  # what json skips between tokens
_DECODER = json.JSONDecoder()
_MAY_GO_ON = ("", ".", "e", "E", "-", "+") + tuple("0123456789")  # after a number, at the end of a read


class NotAnArray(Exception):
    """The text does not start with ``[`` (an object, a scalar, an empty file): the caller loads it
    whole, which gives the error ``load_table`` always gave."""


def json_array_items(fh: IO[str], source: str) -> Iterator[tuple[int, Any]]:
    """(position from 1, element) for each element of the array ``fh`` holds.

    Raises:
        NotAnArray: before anything is yielded, when the first token is not ``[``.
        LoaderError: the text is not valid JSON (the message ``load_table`` gives for it).
    """
    text = _Text(fh, source)
    text.skip_ws()
    if text.peek() != "[":
        raise NotAnArray
    text.pos += 1
    text.skip_ws()
    if text.peek() == "]":
        text.pos += 1
    else:
        number = 0
        while True:
            item = text.value()
            number += 1
            yield number, item
            text.skip_ws()
            c = text.peek()
            if c == "]":
                text.pos += 1
                break
            if c != ",":
                raise text.error("Expecting ',' delimiter", text.pos)
            text.pos += 1
            text.skip_ws()
    text.skip_ws()
    if text.peek():
        raise text.error("Extra data", text.pos)


class _Text:
    """A window on the text: ``buf[pos:]`` is unread; what was dropped before it is counted (its
    length, its line ends and where the last one was) so that errors name the file's line and
    column as ``json.loads`` names them."""

    def __init__(self, fh: IO[str], source: str) -> None:
        self.fh, self.source = fh, source
        self.buf, self.pos, self.eof = "", 0, False
        self.base = 0  # characters dropped before buf
        self.lines = 0  # line ends among them
        self.last_nl = -1  # file offset of the last of them

    def more(self) -> bool:
        """Read on (at least as much as is buffered, so re-parsing a long element stays linear);
        False at the end of the file."""
        if self.eof:
            return False
        chunk = self.fh.read(max(CHUNK, len(self.buf) - self.pos))
        if not chunk:
            self.eof = True
            return False
        dropped = self.buf[:self.pos]
        if "\n" in dropped:
            self.lines += dropped.count("\n")
            self.last_nl = self.base + dropped.rindex("\n")
        self.base += self.pos
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self.more():
                return

    def peek(self) -> str:
        return self.buf[self.pos:self.pos + 1]

    def value(self) -> Any:
        while True:
            try:
                item, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.more():
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except (ValueError, RecursionError) as exc:  # a number over 4,300 digits, nesting too deep
                if self.more():
                    continue
                raise LoaderError(f"{self.source}: expected JSON, got unreadable JSON ({exc})") from None
            if isinstance(item, (int, float)) and self.buf[end:end + 1] in _MAY_GO_ON and self.more():
                continue  # "12" may be the start of "1234" or "12.5", "1" of "1e5"
            self.pos = end
            return item

    def error(self, msg: str, pos: int) -> LoaderError:
        """``json.loads``'s message for an error at ``buf[pos]``."""
        line = self.lines + self.buf.count("\n", 0, pos) + 1
        nl = self.buf.rfind("\n", 0, pos)
        column = pos - nl if nl >= 0 else self.base + pos - self.last_nl
        return LoaderError(f"{self.source}: expected JSON, got {msg} at line {line} column {column}")
