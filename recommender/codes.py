"""The code card: what caselink knows of an error code a query names, at a glance.

An engineer with an alarm on the screen wants, in this order: the procedure written for that
code, the known problem (is someone on it, what is the workaround), then how often it has been
seen. :func:`code_cards` answers that for each code a query names (at most three, as the
ranking's codes-first rule), from the service's public keyword search for the code alone, so a
card agrees with what search would list: a record *carries* a code when it declares it or
writes it in its title or text.

Cases are counted from one keyword search of at most ``rank.max_k`` results; a code carried by
more cases says so (``case_count_capped``), and its ``last_seen`` is still exact: further
searches ask only for cases created after the newest one seen, until none is left.

A card keeps to the search's filters (kind, product, model, module, status, dates, open_only,
attributes, exclude_ids): every search behind it is the request's own query with only the text,
kind, mode and size replaced, so a filtered search never shows on its card a record it would not
list itself; a kind the filter leaves out stays empty, and the counts are of records within the
filters. ``min_score`` is left out: it bounds the request's scores, not those of the code alone.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, Field

from indexing.records import is_closed_status
from recommender.results import SearchQuery, SearchResult

MAX_CARDS = 3  # as recommender.fusion.CODES_FIRST_MAX: more codes than that is a report, not an alarm
_PROCEDURES = 3  # SOP documents listed on a card
_PROBLEMS = 5  # problem orders listed on a card
_POOL = 20  # SOP sections and problem orders ranked to fill a card (open problems first among them)


class CodeProcedure(BaseModel):
    """An SOP section that declares or describes the code (the best one of its document)."""

    id: str = Field(..., description="The section's record id ('{doc_id}#{n}').")
    doc_id: str
    doc_title: str = ""
    section: str = ""


class CodeProblem(BaseModel):
    """A problem order carrying the code."""

    id: str
    title: str
    status: str = ""
    open: bool = Field(..., description="False when the status says it is finished (fixed, closed, 已关闭, ...).")
    workaround: str = Field("", description="What to do meanwhile, as the problem order says.")
    created: date | None = None


class CodeCard(BaseModel):
    """An error code named by the query: its procedure, its known problems, how often it was seen."""

    code: str = Field(..., description="As the records spell it (E1023, PN-7731-02).")
    procedures: list[CodeProcedure] = Field(default_factory=list, description="Best first, one per SOP document.")
    problems: list[CodeProblem] = Field(default_factory=list, description="Open ones first, then the newest.")
    case_count: int = Field(0, description="Service cases carrying the code.")
    case_count_capped: bool = Field(False, description="True when there are more cases than rank.max_k: "
                                                       "case_count is then a lower bound.")
    last_seen: date | None = Field(None, description="Creation date of the newest case carrying the code.")


def code_cards(svc, q: SearchQuery) -> list[CodeCard]:
    """Cards for the codes ``q.text`` names that some stored record within ``q``'s filters
    carries, in the query's order."""
    cards = []
    for code in svc.query_codes(q.text)[:MAX_CARDS]:
        card = _card(svc, q, code)
        if card is not None:
            cards.append(card)
    return cards


def _carriers(svc, q: SearchQuery, code: str, kind: str, k: int, created_from: date | None = None
              ) -> list[SearchResult]:
    """Records of ``kind`` within ``q``'s filters carrying ``code``, best keyword match first (codes
    first puts them on top); none when ``q``'s kind filter leaves ``kind`` out."""
    if q.kind and kind not in q.kind:
        return []
    update = {"text": code, "kind": [kind], "mode": "keyword", "k": k, "min_score": 0.0, "grouped": False}
    if created_from is not None and (q.created_from is None or created_from > q.created_from):
        update["created_from"] = created_from
    return [r for r in svc.search(q.model_copy(update=update)).results if r.explanation.matched_codes]


def _card(svc, q: SearchQuery, code: str) -> CodeCard | None:
    max_k = svc.settings.rank.max_k
    sops = _carriers(svc, q, code, "sop", min(_POOL, max_k))
    problems = _carriers(svc, q, code, "problem", min(_POOL, max_k))
    cases = _carriers(svc, q, code, "case", max_k)
    if not (sops or problems or cases):
        return None
    spelled = next(r.explanation.matched_codes[0] for r in (*sops, *problems, *cases))
    procedures: dict[str, CodeProcedure] = {}
    for r in sops:
        doc = r.doc_id or r.id
        if doc not in procedures and len(procedures) < _PROCEDURES:
            procedures[doc] = CodeProcedure(id=r.id, doc_id=doc, doc_title=r.doc_title, section=r.section)
    problems.sort(key=lambda r: (is_closed_status(r.status), -(r.created or date.min).toordinal()))
    cards_problems = [CodeProblem(id=r.id, title=r.title, status=r.status, open=not is_closed_status(r.status),
                                  workaround=_workaround(svc, r.id), created=r.created)
                      for r in problems[:_PROBLEMS]]
    capped = len(cases) >= max_k
    last_seen = max((r.created for r in cases if r.created), default=None)
    while capped and last_seen is not None and last_seen < date.max:
        newer = _carriers(svc, q, code, "case", max_k, created_from=last_seen + timedelta(days=1))
        newest = max((r.created for r in newer if r.created), default=None)
        if newest is None:
            break
        last_seen = newest
    return CodeCard(code=spelled, procedures=list(procedures.values()), problems=cards_problems,
                    case_count=len(cases), case_count_capped=capped, last_seen=last_seen)


def _workaround(svc, record_id: str) -> str:
    from caselink.errors import RecordNotFound

    try:
        return svc.get(record_id).workaround
    except RecordNotFound:  # deleted since it was ranked
        return ""
