"""Emerging problems: bursts of similar recent cases that no open problem order covers yet.

How a report is made (:func:`find_emerging`):

1. *Recent cases* are cases created in ``(as_of - window_days, as_of]``. ``as_of`` defaults to the
   latest case date in the store, so a replayed history works regardless of today's date.
2. Cases linked (in either direction) to a problem order that was *open at* ``as_of`` are dropped:
   someone already owns them. A problem order is open at ``as_of`` when it existed then
   (``created <= as_of``) and its status is not closed-like, or it was closed only later.
3. The rest are clustered with average-linkage agglomerative clustering on cosine distance of
   their embeddings; pairs sharing an error code get ``code_boost`` added to their similarity.
   Average linkage merges two clusters only while their *mean* pairwise similarity exceeds
   ``similarity``, so a group is mutually similar rather than a chain. Clusters of at least
   ``min_size`` cases are flagged.
4. Per group: ``baseline`` = mean number of cases in each of the ``history_windows`` previous
   windows whose cosine to the group centroid is >= ``similarity``;
   ``growth = (size + 1) / (baseline + 1)`` (add-one smoothing: a brand-new fault of 4 cases has
   growth 5, the same 4 cases over a baseline of 4 a month have growth 1);
   ``score = size * growth``. Groups are ranked by score.

``similarity=0.6`` was tuned with the bundled multilingual USE encoder (``python -m
eval.emerging_eval``). In the demo history pairs of cases linked to the same problem order have
median cosine 0.50 (95th percentile 0.69), unrelated pairs 0.26 (95th percentile 0.42); the
injected mixed-script bursts have median within-burst cosine 0.70, 0.49 and 0.68. On the weekly
replay every threshold from 0.45 to 0.65 finds all three bursts with no unexplained flag; lower
thresholds find the loosest burst sooner (7 days at 0.45, 21 at 0.6), but with a 90-day window
(three times the cases, a stand-in for a busier history) 0.45 and 0.5 start grouping unrelated
one-offs (6 and 2 unexplained flags) while 0.55-0.65 raise none; 0.7 misses the loose burst.

Each group and rising problem order carries ``weekly``, its case count per week of the span
compared (``weeks`` gives each week's first day, :mod:`recommender.trends`): what the page charts
and ``caselink emerging`` prints as a sparkline.

Known problem orders (open or investigating at ``as_of``) are *rising* when the number of cases
linked to them, or with cosine >= ``similarity`` to them, in the current window is >= 2 and above
their average over the previous windows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import date

import numpy as np
from scipy import sparse
from sklearn.cluster import AgglomerativeClustering

from caselink.errors import InvalidQuery
from indexing.normalize import fold, normalize
from indexing.records import CLOSED_STATUSES, Record, is_closed_status  # noqa: F401 (re-exported)
from indexing.tokenize import canonical_code, is_code
from recommender.emerging_report import EmergingGroup, EmergingReport, RisingProblem, SimilarProblem
from recommender.limits import MIN_GROUP_SIZE, WINDOW_DAYS_MAX, WINDOW_DAYS_MIN
from recommender.trends import days_before, week_starts, weekly_counts

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD_CHAR = re.compile(r"[a-z0-9'\-]")
_CODE_SPAN = re.compile(r"[A-Za-z0-9]+(?:[-_./][A-Za-z0-9]+)*")
# Ticket boilerplate that says nothing about the fault (simplified; text is folded before matching).
_BOILERPLATE = frozenset(
    "客户 反映 发现 出现 检查 确认 正常 恢复 问题 机台 现场 之后 以后 时候 已经 没有 只有 变成 需要 可以 目前 情况 "
    "导致 进行 一直 怀疑 后来 今天 昨天 一次 多次 还是 然后 但是 如果 因为 所以 全部 部分 直接".split())
_TOP_TERMS = 5


def open_at(problem: Record, as_of: date) -> bool:
    """Whether a problem order existed and was open on ``as_of`` (for replaying history)."""
    if problem.created and problem.created > as_of:
        return False
    if not is_closed_status(problem.status):
        return True
    return problem.closed is not None and problem.closed > as_of


def find_emerging(service, *, window_days: int = 30, as_of: date | None = None, product: str | None = None,
                  min_size: int = 3, similarity: float = 0.6, history_windows: int = 3,
                  code_boost: float = 0.1) -> EmergingReport:
    """Flag bursts of similar recent cases not covered by an open problem order, and rising problem orders.

    Parameters: ``service`` a :class:`recommender.service.CaselinkService`; ``window_days`` (30)
    the window length; ``as_of`` (latest case date) the window's last day; ``product`` only cases
    (and problem orders) of this product, case-insensitive; ``min_size`` (3) smallest flagged
    group; ``similarity`` (0.6) cosine threshold; ``history_windows`` (3) previous windows for the
    baseline; ``code_boost`` (0.1) added to a pair's similarity when they share an error code.

    Raises :class:`caselink.errors.InvalidQuery` for out-of-range parameters.

    >>> report = find_emerging(service, window_days=30)          # doctest: +SKIP
    >>> [(g.title, g.size, g.growth) for g in report.groups]     # doctest: +SKIP
    """
    _check(WINDOW_DAYS_MIN <= window_days <= WINDOW_DAYS_MAX, "window_days",
           f"between {WINDOW_DAYS_MIN} and {WINDOW_DAYS_MAX}", window_days)
    _check(min_size >= MIN_GROUP_SIZE, "min_size", f">= {MIN_GROUP_SIZE}", min_size)
    _check(-1.0 <= similarity <= 1.0, "similarity", "between -1 and 1", similarity)
    _check(history_windows >= 0, "history_windows", ">= 0", history_windows)
    _check(0.0 <= code_boost <= 1.0, "code_boost", "between 0 and 1", code_boost)
    want = normalize(product) if product else None
    cases, problems = [], []
    for r in service.iter_records():
        if r.kind == "problem":
            problems.append(r)
        elif r.kind == "case" and r.created is not None and (want is None or normalize(r.product) == want):
            cases.append(r)
    if as_of is None:
        as_of = max((c.created for c in cases), default=None)
    report = EmergingReport(as_of=as_of, window_start=None, window_days=window_days, product=product,
                            similarity=similarity, min_size=min_size, history_windows=history_windows,
                            recent_cases=0, excluded_linked=0, groups=[], rising_problems=[])
    if as_of is None:
        return report
    report.window_start = days_before(as_of, window_days - 1)  # windows before year 1 simply hold no case

    def window_of(c: Record) -> int:
        days = (as_of - c.created).days
        return days // window_days if days >= 0 else -1

    span = [c for c in cases if 0 <= window_of(c) <= history_windows]
    win = np.array([window_of(c) for c in span], dtype=np.int64)
    span_days = window_days * (history_windows + 1)
    report.weeks = week_starts(as_of, span_days)

    def series(picked: np.ndarray) -> list[int]:
        """Weekly counts of the span's cases where ``picked`` (a boolean mask over the span)."""
        return weekly_counts((span[i].created for i in np.flatnonzero(picked)), as_of, span_days)
    known = [p for p in problems if open_at(p, as_of)]
    open_ids = {p.id for p in known}
    linked_open = {lid for p in known for lid in p.links}
    linked_open |= {c.id for c in span if open_ids.intersection(c.links)}
    mine = [p for p in problems if (p.created is None or p.created <= as_of)]
    docs = service.documents
    # Raw encoder vectors, not the index's centred ones (LiveIndex.embed): ``similarity`` was
    # tuned on raw USE cosines, and centring would shift every pair's cosine under it.
    vecs = service.encode([docs.embedding_text(r) for r in span + mine])
    case_vecs, prob_vecs = vecs[:len(span)], vecs[len(span):]

    recent_idx = [i for i, c in enumerate(span) if win[i] == 0]
    report.recent_cases = len(recent_idx)
    cand = [i for i in recent_idx if span[i].id not in linked_open]
    report.excluded_linked = len(recent_idx) - len(cand)
    labels = _cluster([span[i] for i in cand], case_vecs[cand], docs, similarity, code_boost)
    for label, n in Counter(labels).items():
        if n < min_size:
            continue
        members = [cand[j] for j in range(len(cand)) if labels[j] == label]
        report.groups.append(_describe(members, span, case_vecs, win, mine, prob_vecs, docs, series,
                                       similarity=similarity, history_windows=history_windows))
    report.groups.sort(key=lambda g: (-g.score, -g.size, g.case_ids[0]))

    watched = [(p, pv) for p, pv in zip(mine, prob_vecs) if p.id in open_ids
               and (want is None or not p.product or normalize(p.product) == want)]
    report.rising_problems = _rising(watched, span, case_vecs, win, series, similarity=similarity,
                                     history_windows=history_windows)
    return report


def _rising(watched: list[tuple[Record, np.ndarray]], span: list[Record], case_vecs: np.ndarray, win: np.ndarray,
            series: Callable[[np.ndarray], list[int]], *, similarity: float, history_windows: int
            ) -> list[RisingProblem]:
    """Open problem orders whose linked-or-similar case count is >= 2 and above their previous average."""
    out = []
    for p, pv in watched:
        hit = case_vecs @ pv >= similarity
        hit |= np.array([c.id in p.links or p.id in c.links for c in span], dtype=bool)
        counts = [int(np.sum(hit & (win == i))) for i in range(history_windows + 1)]
        baseline = float(np.mean(counts[1:])) if history_windows else 0.0
        if counts[0] >= 2 and counts[0] > baseline:
            out.append(RisingProblem(
                id=p.id, title=p.title, status=p.status, module=p.module, current=counts[0],
                history_counts=counts[1:], baseline=round(baseline, 3),
                growth=round((counts[0] + 1) / (baseline + 1), 3),
                case_ids=[span[i].id for i in np.flatnonzero(hit & (win == 0))], weekly=series(hit)))
    return sorted(out, key=lambda r: (-r.growth, -r.current, r.id))


def _check(ok: bool, name: str, expected: str, got: object) -> None:
    if not ok:
        raise InvalidQuery(f"expected {name} {expected}, got {got!r}", field=name)


def _cluster(records: list[Record], vecs: np.ndarray, docs, similarity: float, code_boost: float) -> np.ndarray:
    """Average-linkage cluster labels over cosine similarity plus the shared-code boost."""
    n = len(records)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    sim = vecs @ vecs.T
    codes = [docs.codes(r) for r in records]
    vocab = {c: j for j, c in enumerate(sorted(set().union(*codes)))}
    if vocab and code_boost:
        rows = [i for i, cs in enumerate(codes) for _ in cs]
        cols = [vocab[c] for cs in codes for c in cs]
        m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocab)))
        sim += code_boost * ((m @ m.T).toarray() > 0)
    dist = np.clip(1.0 - sim, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=1.0 - similarity)
    return model.fit_predict(dist)


def _describe(members: list[int], span: list[Record], vecs: np.ndarray, win: np.ndarray, problems: list[Record],
              prob_vecs: np.ndarray, docs, series: Callable[[np.ndarray], list[int]], *, similarity: float,
              history_windows: int) -> EmergingGroup:
    recs = [span[i] for i in members]
    mv = vecs[members]
    centroid = mv.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    n = len(recs)
    pair = mv @ mv.T
    cohesion = float((pair.sum() - np.trace(pair)) / (n * (n - 1)))
    near = vecs @ centroid >= similarity
    history = [int(np.sum(near & (win == i))) for i in range(1, history_windows + 1)]
    baseline = float(np.mean(history)) if history else 0.0
    growth = (n + 1) / (baseline + 1)
    modules = [m for m, _ in Counter(r.module for r in recs if r.module).most_common()]
    codes = _common_codes(recs, docs)
    products = [p for p, _ in Counter(r.product for r in recs if r.product).most_common()]
    names = docs.tokenizer.tokenize(" ".join(products + modules), bigrams=False)
    terms = _common_terms(recs, span, docs, exclude=set(names) | {normalize(m) for m in modules})
    similar = None
    if len(problems):
        sims = prob_vecs @ centroid
        best = int(np.argmax(sims))
        if sims[best] >= similarity:
            p = problems[best]
            similar = SimilarProblem(id=p.id, title=p.title, status=p.status, similarity=round(float(sims[best]), 3))
    dates = sorted(r.created for r in recs)
    return EmergingGroup(
        case_ids=sorted(r.id for r in recs), size=n, title=_title(recs, modules, codes, terms),
        products=products, modules=modules,
        common_terms=terms, common_codes=codes, first_seen=dates[0], last_seen=dates[-1],
        cohesion=round(cohesion, 3), history_counts=history, baseline=round(baseline, 3),
        growth=round(growth, 3), score=round(n * growth, 3), similar_problem=similar,
        weekly=series(_members_then_similar(members, near, win)))


def _members_then_similar(members: list[int], near: np.ndarray, win: np.ndarray) -> np.ndarray:
    """The cases a group's series counts: its members in the current window and, before it, the
    cases similar to its centroid (what ``history_counts`` counts), so the series sums to them."""
    picked = near & (win >= 1)
    picked[members] = True
    return picked


def _common_codes(recs: list[Record], docs) -> list[str]:
    """Codes in at least two members (or the only one): declared error codes first, then codes written
    in the text (part numbers, versions); most frequent first, spelt as the members spell them."""
    declared: Counter[str] = Counter()
    found: Counter[str] = Counter()
    spelling: dict[str, Counter[str]] = {}
    for r in recs:
        own = {canonical_code(c) for c in r.error_codes}
        declared.update(own)
        found.update(docs.codes(r) - own)
        for m in _CODE_SPAN.finditer(f"{r.title} {r.text} {' '.join(r.error_codes)}"):
            spelling.setdefault(canonical_code(m.group(0)), Counter())[m.group(0)] += 1
    need = min(2, len(recs))
    ranked = [c for c, k in declared.most_common() if k >= need]
    ranked += [c for c, k in (declared + found).most_common() if k >= need and c not in ranked]
    return [spelling[c].most_common(1)[0][0] if c in spelling else c.upper() for c in ranked]


def _common_terms(recs: list[Record], background: list[Record], docs, *, exclude: set[str]) -> list[str]:
    """Top words by (share of members using them) x idf over the background cases, in members' spelling."""
    tok = docs.tokenizer

    def words(r: Record) -> set[str]:
        return {w for w in tok.tokenize(f"{r.title}\n{r.text}", bigrams=False)
                if len(w) >= (2 if _CJK.match(w) else 3) and not w.isdigit() and not is_code(w)
                and w not in exclude and w not in _BOILERPLATE}

    bg = [words(r) for r in background]
    df = Counter(w for ws in bg for w in ws)
    mine = [words(r) for r in recs]
    in_group = Counter(w for ws in mine for w in ws)
    need = max(2, math.ceil(len(recs) / 3)) if len(recs) > 1 else 1
    n_bg = len(bg)
    scored = [((k / len(recs)) * (math.log((n_bg + 1) / (df[w] + 1)) + 1.0), w)
              for w, k in in_group.items() if k >= need]
    scored.sort(key=lambda t: (-t[0], t[1]))
    out: list[str] = []
    for _, w in scored:
        s = _surface(w, recs, tok.opencc)
        if all(s.casefold() not in o.casefold() and o.casefold() not in s.casefold() for o in out):
            out.append(s)
        if len(out) == _TOP_TERMS:
            break
    return out


def _surface(term: str, recs: list[Record], opencc: str) -> str:
    """The members' own spelling of a folded/stemmed token: script, case and the full English word."""
    seen: Counter[str] = Counter()
    for r in recs:
        orig = f"{r.title}\n{r.text}"
        folded = fold(orig, opencc=opencc)
        if len(folded) != len(orig):
            continue
        start = folded.find(term)
        while start >= 0:
            end = start + len(term)
            if not _CJK.match(term):
                while end < len(folded) and _LATIN_WORD_CHAR.match(folded[end]):
                    end += 1
            seen[orig[start:end]] += 1
            start = folded.find(term, end)
    return seen.most_common(1)[0][0] if seen else term


def _title(recs: list[Record], modules: list[str], codes: list[str], terms: list[str]) -> str:
    """'[module] CODE：term、term、term' for Chinese members, '[module] CODE: term, term, term' for English."""
    zh = sum(1 for r in recs if _CJK.search(f"{r.title}{r.text}")) * 2 >= len(recs)
    head = f"[{modules[0]}] " if modules else ""
    words = ("、" if zh else ", ").join(terms[:3])
    if codes:
        return f"{head}{codes[0]}{'：' if zh else ': '}{words}" if words else f"{head}{codes[0]}"
    return f"{head}{words}".strip() or (recs[0].title or recs[0].id)
