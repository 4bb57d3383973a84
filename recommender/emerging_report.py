"""What an emerging-problems report holds (:func:`recommender.emerging.find_emerging` makes it).

The one definition of these shapes: the API answers with them as they are (``GET /v1/emerging``;
pydantic reads stdlib dataclasses and the ``Field`` descriptions in their annotations) and the
CLI prints :meth:`EmergingReport.to_dict`. Apart from :mod:`recommender.emerging` so the API can
declare its answer without importing scikit-learn and SciPy, which the clustering loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Annotated, Any

from pydantic import Field


@dataclass
class SimilarProblem:
    """A known problem order close to a group's centroid (a possible duplicate or regression)."""

    id: str
    title: str
    status: str
    similarity: Annotated[float, Field(description="Cosine of the problem order to the group centroid.")]


@dataclass
class EmergingGroup:
    """One flagged burst of mutually similar recent cases that no open problem order covers."""

    case_ids: Annotated[list[str], Field(description="The member cases, sorted.")]
    size: int
    title: Annotated[str, Field(description="A draft problem-order title: '[module] CODE: term, term'.")]
    products: Annotated[list[str], Field(description="Most frequent first.")] = field(default_factory=list)
    modules: Annotated[list[str], Field(description="Most frequent first.")] = field(default_factory=list)
    common_terms: Annotated[list[str], Field(description="Distinctive words, as the members spell them.")
                            ] = field(default_factory=list)
    common_codes: Annotated[list[str], Field(description="Error codes / part numbers members share.")
                            ] = field(default_factory=list)
    first_seen: date | None = None
    last_seen: date | None = None
    cohesion: Annotated[float, Field(description="Mean pairwise cosine of the members.")] = 0.0
    history_counts: Annotated[list[int], Field(description="Similar cases in each previous window, newest first.")
                              ] = field(default_factory=list)
    baseline: Annotated[float, Field(description="Mean of history_counts.")] = 0.0
    growth: Annotated[float, Field(description="(size + 1) / (baseline + 1).")] = 0.0
    score: Annotated[float, Field(description="size * growth; groups are ranked by it.")] = 0.0
    similar_problem: SimilarProblem | None = None
    weekly: Annotated[list[int], Field(description="Cases per week of `weeks`, oldest first: the members in the "
                                                   "current window, similar cases before it (the cases "
                                                   "history_counts counts).")] = field(default_factory=list)


@dataclass
class RisingProblem:
    """A known open problem order whose case rate went up in the current window."""

    id: str
    title: str
    status: str
    module: str
    current: Annotated[int, Field(description="Linked or similar cases in the current window.")]
    history_counts: Annotated[list[int], Field(description="The same count in each previous window, newest first.")]
    baseline: float
    growth: Annotated[float, Field(description="(current + 1) / (baseline + 1).")]
    case_ids: Annotated[list[str], Field(description="The current window's cases.")]
    weekly: Annotated[list[int], Field(description="Linked or similar cases per week of `weeks`, oldest first.")
                      ] = field(default_factory=list)


@dataclass
class EmergingReport:
    """Answer of GET /v1/emerging: the parameters used, the flagged groups and the rising problem orders."""

    as_of: Annotated[date | None, Field(description="Last day of the window (default: the latest case date); "
                                                    "null when there are no dated cases.")]
    window_start: Annotated[date | None, Field(description="First day of the window.")]
    window_days: int
    product: str | None
    similarity: float
    min_size: int
    history_windows: int
    recent_cases: Annotated[int, Field(description="Cases created in the window.")]
    excluded_linked: Annotated[int, Field(description="Recent cases left out: linked to an open problem order.")]
    groups: Annotated[list[EmergingGroup], Field(description="Best first (by score).")]
    rising_problems: list[RisingProblem]
    weeks: Annotated[list[date], Field(description="First day of each week the `weekly` series count, oldest "
                                                   "first, over the current and previous windows; the last week "
                                                   "ends on as_of (the oldest may be shorter than 7 days).")
                     ] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (dates as ISO strings)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
