"""Weekly case counts for the emerging view: what its charts and sparklines draw.

Weeks are counted back from ``as_of`` (the last week ends on it), over the days the emerging
report compares (the current window and the previous ones), so the series shows the same
history the growth figure was computed from. When that span is not a whole number of weeks,
the oldest week is partial: it starts on the span's first day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, timedelta


def week_count(span_days: int) -> int:
    """Weeks needed to cover ``span_days`` days."""
    return max(1, math.ceil(span_days / 7))


def days_before(day: date, days: int) -> date:
    """``day`` minus ``days``, or 0001-01-01 when that is before year 1 (such weeks hold no case)."""
    return day - timedelta(days=min(days, (day - date.min).days))


def week_starts(as_of: date, span_days: int) -> list[date]:
    """First day of each week, oldest first (the oldest clipped to the span's first day)."""
    n = week_count(span_days)
    first = days_before(as_of, span_days - 1)
    return [max(first, days_before(as_of, 7 * (n - i) - 1)) for i in range(n)]


def weekly_counts(days: Iterable[date], as_of: date, span_days: int) -> list[int]:
    """How many of ``days`` fall in each week of :func:`week_starts`, oldest first; days outside
    the span are not counted."""
    n = week_count(span_days)
    counts = [0] * n
    for d in days:
        back = (as_of - d).days
        if 0 <= back < span_days:
            counts[n - 1 - back // 7] += 1
    return counts
