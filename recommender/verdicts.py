"""The team's verdicts on suggestions: what was marked helpful comes first, what was marked not
helpful goes last.

Feedback (``POST /v1/feedback``, ``caselink feedback``, the page's buttons) is the most direct
evidence caselink gets: somebody read the suggestion and judged it. It counts in two places:

- **records related to a record**: feedback that pairs the two, with ``query_id`` A and
  ``record_id`` B ("B helped with ticket A"), counts when the records related to A are asked
  for, and, as relatedness goes both ways, when those related to B are;
- **the same search again**: feedback on a search text counts for later searches whose text is
  the same once normalised (:func:`indexing.store.query_key`: one script, half-width, case,
  spacing), such as an error code or a symptom pasted from a ticket template. Only the same
  text: a verdict on one wording says nothing sure about another.

The rules are meant to be predicted, not tuned:

- each source's latest verdict on a pair counts once, so an engineer who changes their mind is
  counted with the new verdict and a double click is not two votes; feedback without a
  ``source`` is one anonymous voter;
- a record's net verdict is its helpful voters minus its not-helpful voters;
- net above 0: placed first, most net votes first, then by score; a record the ranking did not
  find is added, provided it passes the request's filters and exclusions;
- net below 0: placed after every record without a net verdict. That drops it out of a short
  list, but it is not removed: a longer list still ends with it. A wrong click is taken back
  with ``DELETE /v1/feedback/{id}`` (the page's Undo), or outvoted by the same source's next vote;
- scores stay non-increasing down the list, as with exact codes (:func:`recommender.fusion.codes_first`):
  a promoted record scores at least as much as those below it, a demoted one at most as much as
  those above, so a ``min_score`` cut never removes a promoted record while keeping one below it.

``rank.feedback = false`` turns all of this off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from caselink.errors import InvalidQuery, RecordNotFound, VoteNotFound
from indexing.store import RecordStore
from recommender.fusion import Fused, ids_array

__all__ = ["Verdict", "record_feedback", "take_back", "tally", "apply_verdicts"]


def record_feedback(store: RecordStore, *, record_id: str, helpful: bool, query: str = "", query_id: str = "",
                    source: str = "") -> int:
    """Store one verdict on suggestion ``record_id`` for a query text or a query record; its id."""
    if not query.strip() and not query_id:
        raise InvalidQuery("give the query text or the query record id the suggestion was for", field="query")
    if store.get(record_id) is None:
        raise RecordNotFound(f"no record with id '{record_id}'", field="record_id")
    if record_id == query_id:
        raise InvalidQuery("a record is not a suggestion for itself: record_id equals query_id", field="query_id")
    return store.add_feedback(record_id=record_id, helpful=helpful, query=query, query_id=query_id, source=source)


def take_back(store: RecordStore, fid: int) -> None:
    """Delete vote ``fid`` (a wrong click): it no longer counts, and the same source's earlier
    vote on the pair, if any, is its latest again."""
    if not store.delete_feedback(fid):
        raise VoteNotFound(f"no vote with id {fid}", field="feedback_id",
                           hint="a vote's id is printed when it is cast (POST /v1/feedback returns it); "
                                 "GET /v1/feedback/export lists every vote with its feedback_id")


@dataclass(frozen=True)
class Verdict:
    helpful: int
    unhelpful: int

    @property
    def net(self) -> int:
        return self.helpful - self.unhelpful


def tally(rows: Iterable[tuple[str, str, bool]]) -> dict[str, Verdict]:
    """``(other id, source, helpful)`` rows, oldest first -> a verdict per other record."""
    latest: dict[tuple[str, str], bool] = {}
    for other, source, helpful in rows:
        latest[(other, source)] = helpful
    counts: dict[str, list[int]] = {}
    for (other, _), helpful in latest.items():
        counts.setdefault(other, [0, 0])[0 if helpful else 1] += 1
    return {other: Verdict(h, u) for other, (h, u) in counts.items()}


def apply_verdicts(fused: Fused, net: Mapping[str, int]) -> Fused:
    """Re-order ``fused`` by ``net`` votes per record id (see the module doc). Keys with a positive net
    that ``fused`` does not hold are added; the caller checks they may be shown at all."""
    net = {str(k): v for k, v in net.items() if v}
    if not net:
        return fused
    present = set(fused.keys.tolist())
    extra = ids_array(k for k, v in net.items() if v > 0 and k not in present)
    keys = np.concatenate([fused.keys, extra]) if len(extra) else fused.keys
    scores = np.concatenate([fused.scores, np.zeros(len(extra), dtype=fused.scores.dtype)])
    votes = np.asarray([net.get(str(k), 0) for k in keys])
    group = np.where(votes > 0, 0, np.where(votes < 0, 2, 1))
    # Primary key last: group, then (promoted only) most votes, then the fused order.
    order = np.lexsort((np.arange(len(keys)), np.where(group == 0, -votes, 0), group))
    s = scores[order]
    promoted = int((group == 0).sum())
    tail = np.minimum.accumulate(s[promoted:])
    head = np.maximum.accumulate(np.concatenate([s[:promoted], tail[:1]])[::-1])[::-1][:promoted]
    return Fused(keys[order], np.concatenate([head, tail]).astype(np.float32), fused.dense, fused.keyword)
