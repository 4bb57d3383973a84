"""Turn raw cell values into Record field values: empty cells, numbers, dates and list cells.

CSV and XLSX cells arrive as strings, JSON and Parquet cells as typed values (numbers, lists,
timestamps); everything is brought to the same few shapes here so that the column mapping does
not care where a row came from.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

Cell = str | list[str] | date | None  # a cleaned cell; date includes datetime

DATE_FIELDS: frozenset[str] = frozenset({"created", "closed"})
LIST_FIELDS: frozenset[str] = frozenset({"error_codes", "links"})
EXTRA_SEPARATORS: tuple[str, ...] = (",", ";", "，", "；", "、", "\n")

# Year first, any of - / . 年 between the parts, optional time: 2024-03-05, 2024/3/5 10:11, 2024年3月5日.
# Day-first and month-first forms (05/03/2024) are ambiguous and need date_format.
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")


def clean_cell(value: Any) -> Cell:
    """Normalise one raw cell: ``None`` for empty, a stripped string, a list of strings, or a date.

    Integral floats lose their ``.0`` (``1001.0`` -> ``"1001"``) because spreadsheets and Parquet
    store numeric ids as floats once a column has a gap.
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (date, datetime)):  # pandas.Timestamp is a datetime
        return value
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).to_pydatetime()
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [clean_cell(v) for v in value]
        return [as_text(v) for v in items if v not in (None, [])]
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip() or None


def as_text(value: Cell) -> str:
    """A cleaned cell as text: dates as ISO (time kept only when it is not midnight), lists comma-joined."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(value)
    return value


def as_list(value: Cell, separator: str) -> list[str]:
    """A cleaned cell as a list: list cells as they are, text split at ``separator``, ``, ; ， ； 、`` and newlines."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    seps = sorted({separator, *EXTRA_SEPARATORS} - {""}, key=len, reverse=True)
    parts = re.split("|".join(re.escape(s) for s in seps), as_text(value))
    return [p.strip() for p in parts if p.strip()]


def as_date(value: Cell, date_format: str = "") -> date:
    """A cleaned cell as a date.

    Args:
        value: A cleaned cell (not ``None``).
        date_format: A ``strptime`` format; empty means ISO and the year-first forms
            ``2024/03/05``, ``2024.03.05``, ``2024年3月5日``, each with an optional time.

    Raises:
        ValueError: the value is not a date in the expected form (message says expected vs got).
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = as_text(value)
    if date_format:
        try:
            return datetime.strptime(text, date_format).date()
        except ValueError:
            raise ValueError(f"expected a date in the format {date_format!r}, got {text!r}") from None
    match = _YMD.fullmatch(text)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        return datetime.fromisoformat(text).date()  # also 20240305, 2024-03-05T10:11:00+08:00
    except ValueError:
        raise ValueError(
            f"expected a date like 2024-03-05 or 2024/03/05 10:11 (or set date_format in the mapping), got {text!r}"
        ) from None
