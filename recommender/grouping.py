"""Search by kind: procedures, known problems and past cases, each ranked on its own.

The flat ranking mixes kinds, and past cases, which are many and written like the query, fill
its top: searching the bare code ``E1023`` on the demo history listed five cases before the SOP
written for E1023 (rank 6) and the problem order that is the known E1023 issue (rank 13). An
engineer with an alarm wants the procedure first, then the known problem, then similar cases,
as the related view groups them. :func:`search_grouped` runs the service's public search once
per kind (each group its own ``k``) beside the flat one, on one query vector encoded once.

Within a group the service's ranking stands (records sharing the query's exact codes first);
among the problem orders carrying a code the query names, open ones come before finished ones,
because a problem still being worked on is the one an engineer should join. The flat list is
the service's flat ranking, untouched.
"""

from __future__ import annotations

import time

from pydantic import Field

from caselink.errors import CaselinkError, InvalidQuery
from indexing.records import is_closed_status
from recommender.codes import CodeCard, code_cards
from recommender.results import SearchQuery, SearchResponse, SearchResult

GROUPS = (("sops", "sop"), ("problems", "problem"), ("cases", "case"))  # the order an engineer reads them
_PROBLEM_POOL = 20  # problem orders ranked before the open-first reorder cuts to the group's k


class GroupedSearchResponse(SearchResponse):
    """The flat ranking (``results``) and the same search by kind, with a card per code named."""

    sops: list[SearchResult] = Field(..., description="SOP sections, ranked among themselves (group_k.sops).")
    problems: list[SearchResult] = Field(..., description="Problem orders; those carrying a code the query names "
                                                          "first, open before finished (group_k.problems).")
    cases: list[SearchResult] = Field(..., description="Service cases (group_k.cases).")
    code_cards: list[CodeCard] = Field(default_factory=list, description="One per error code the query names "
                                                                         "that a stored record carries.")


def check_group_sizes(q: SearchQuery, max_k: int) -> None:
    """InvalidQuery naming ``group_k.<group>`` for a size above ``max_k``; checked whether or not the
    search is grouped, as the API schema states the bound."""
    for group, _ in GROUPS:
        size = getattr(q.group_k, group)
        if size > max_k:
            raise InvalidQuery(f"expected group_k.{group} <= {max_k}, got {size}", field=f"group_k.{group}")


def search_grouped(svc, q: SearchQuery) -> GroupedSearchResponse:
    """Flat search plus one search per kind (sops, problems, cases) and the code cards.

    A group whose kind the query's ``kind`` filter leaves out, or whose ``group_k`` is 0, is
    empty. Raises :class:`InvalidQuery` naming ``group_k.<group>`` for a size above
    ``rank.max_k``, and whatever :meth:`CaselinkService.search` raises for the query.
    """
    t0 = time.perf_counter()
    max_k = svc.settings.rank.max_k
    check_group_sizes(q, max_k)
    qvec = None
    timings: dict[str, float] = {}
    if (q.mode or svc.settings.rank.mode) != "keyword" and not svc.is_code_query(q.text):
        t = time.perf_counter()
        try:
            qvec = svc.encode_query(q.text)
        except CaselinkError:
            qvec = None  # each search falls back to keyword and says why
        timings["encode"] = _ms(t)
    flat = svc.search(q, query_vector=qvec)
    timings["flat"] = flat.timings_ms.get("total", 0.0)
    codes = set(svc.query_codes(q.text))
    groups: dict[str, list[SearchResult]] = {}
    for group, kind in GROUPS:
        size = getattr(q.group_k, group)
        if size == 0 or (q.kind and kind not in q.kind):
            groups[group] = []
            continue
        pool = min(max_k, max(size, _PROBLEM_POOL)) if group == "problems" and codes else size
        resp = svc.search(q.model_copy(update={"kind": [kind], "k": pool}), query_vector=qvec)
        results = resp.results
        if group == "problems" and codes:
            results = open_first(results)
        groups[group] = results[:size]
        timings[group] = resp.timings_ms.get("total", 0.0)
    t = time.perf_counter()
    cards = code_cards(svc, q) if codes else []
    timings["code_cards"] = _ms(t)
    timings["total"] = _ms(t0)
    return GroupedSearchResponse(query=flat.query, mode=flat.mode, path=flat.path,
                                 fallback_reason=flat.fallback_reason, results=flat.results,
                                 timings_ms=timings, code_cards=cards, **groups)


def open_first(results: list[SearchResult]) -> list[SearchResult]:
    """Problem orders carrying a queried code first, open before finished; otherwise the ranking's order."""
    def key(ir: tuple[int, SearchResult]) -> tuple[int, int, int]:
        i, r = ir
        carries = bool(r.explanation.matched_codes)
        return (not carries, carries and is_closed_status(r.status), i)

    return [r for _, r in sorted(enumerate(results), key=key)]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
