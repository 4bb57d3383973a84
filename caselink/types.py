"""Value types for request fields that read JSON as JSON Schema does, so the API schema and the
validation agree: an integer is a whole number (``14`` or ``14.0``, never ``true`` or ``"14"``),
a number is never a boolean or a string, a date is ``YYYY-MM-DD`` (never a number read as a Unix
timestamp). Pydantic's lax defaults accept all of those.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import BeforeValidator, Strict, StrictBool, StrictFloat

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _whole_number(v: object) -> object:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a whole number, got {type(v).__name__} {v!r}"[:80])
    return v  # pydantic's int then refuses 14.5 and takes 14.0


def _iso_date(v: object) -> object:
    # pydantic alone reads 0, "0" or 45321 (an Excel serial) as a Unix timestamp and accepts a
    # datetime string at midnight; a date is written 2024-03-05, as the schema's format says.
    if v is None or (isinstance(v, date) and not isinstance(v, datetime)):
        return v
    if isinstance(v, str) and _ISO_DATE.fullmatch(v):
        return v
    got = "a number" if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)[:40]
    raise ValueError(f"expected a date like 2024-03-05, got {got}")


JsonInt = Annotated[int, BeforeValidator(_whole_number)]
JsonFloat = StrictFloat  # an int is a number too; a bool or a string is not
JsonBool = StrictBool
# A calendar date (or a date object); not strict itself, so the ISO string is read in any mode.
IsoDate = Annotated[date, Strict(False), BeforeValidator(_iso_date)]

# The characters Python's str.isspace() and str.strip() treat as spaces, spelt out: "\s" means
# something slightly different in the ECMA regexes of the JSON Schema world (\x85, \x1c-\x1f, \ufeff),
# so a pattern written with it would let a schema-valid value be refused here.
SPACE = r" \t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_SPACE = rf"[^{SPACE}]"
