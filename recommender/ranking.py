"""The ranking pipeline behind :class:`~recommender.service.CaselinkService` search and related.

The engine below is a search backend (indexing/backend.py); the tokenising, encoding, fusion and
explanations are the service's whatever engine it is. For a query:

1. Normalise and tokenise; pull out exact codes (E1023, PN-7731-02).
2. Dense side: encode the query, the backend's top-N by cosine under the filters.
3. Keyword side: the backend's BM25 top-N under the same filters, scores as a share of the
   query's own score.
4. Fuse (convex combination or RRF, from config), optionally rerank with the learned ranker,
   then put records sharing the query's exact codes first and apply feedback verdicts.
5. Keyword fallback: if the encoder is unavailable, the best cosine is below ``dense_floor``,
   or the query is essentially a code, the keyword ranking answers and the response says why.

The service is the only caller; this module holds the pipeline so the service stays the door
(lifecycle, reads, writes) and the ranking can be read in one place.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Mapping

import numpy as np
from pydantic import TypeAdapter

from caselink.config import Settings
from caselink.errors import EncoderUnavailable, InvalidQuery
from indexing.centering import blocks_of
from indexing.facets import Filters
from indexing.live import LiveIndex
from indexing.records import Record
from indexing.store import RecordStore
from recommender.explain import Showing, prepare
from recommender.features import QueryFacts, feature_matrix
from recommender.fusion import Fused, codes_decide, codes_first, codes_order, fuse, single
from recommender.learned import RankerModel, RankerSlot, factors, rerank
from recommender.results import SearchQuery, SearchResponse, SearchResult
from recommender.verdicts import Verdict, apply_verdicts

# A query is "essentially a code" when codes are all it has besides at most this many words.
CODE_QUERY_MAX_WORDS = 2
SCORE_DECIMALS = 4
_LEARNED_FACTORS_SHOWN = 3
# A whole answer's results are validated in one call: one call per result cost twice as much.
_RESULTS = TypeAdapter(list[SearchResult])


class Ranking:
    """Ranks one query over the live index and the record store the service owns.

    Holds no state of its own beyond ``encoder_error`` (the last encoder failure, which the
    health check reports); the learned ranker's slot is the service's, passed in.
    """

    def __init__(self, settings: Settings, store: RecordStore, index: LiveIndex, ranker: RankerSlot):
        self.settings = settings
        self.store = store
        self.index = index
        self.ranker = ranker
        self.encoder_error: str | None = None

    def encode_query(self, text: str) -> np.ndarray:
        """The vector :meth:`rank` ranks ``text`` by (1 x dim, index space). Raises
        :class:`~caselink.errors.EncoderUnavailable` when the encoder cannot run."""
        docs = self.index.documents
        qvec, _ = self.index.embed([docs.embedding_text(Record(id="q", kind="case", text=text.strip()))], cached=False)
        return qvec

    def is_code_query(self, text: str) -> bool:
        """Whether ``text`` is essentially a code (codes and at most two words), which exact keyword
        matches answer in every mode: searching it needs no query vector."""
        tok = self.index.documents.tokenizer
        codes = set(tok.codes(text))
        words = [w for w in tok.tokenize(text, bigrams=False) if w not in codes]
        return bool(codes) and len(words) <= CODE_QUERY_MAX_WORDS

    def rank(self, q: SearchQuery, *, text: str, tokens: list[str], qvec: np.ndarray | None,
              query_codes: set[str] | None = None, verdicts: Mapping[str, Verdict] | None = None,
              judged: str = "this record", encode_ms: float = 0.0, facts: QueryFacts | None = None,
              collect: list | None = None) -> SearchResponse:
        s = self.settings.rank
        if q.k > s.max_k:
            raise InvalidQuery(f"expected k <= {s.max_k}, got {q.k}", field="k")
        mode = q.mode or s.mode
        if q.created_from and q.created_to and q.created_from > q.created_to:
            # An empty range, not an error: each date is valid alone (the API schema cannot relate them).
            return SearchResponse(query=q.text, mode=mode, path=mode, results=[],
                                  fallback_reason="created_from is after created_to: no record can match")
        model, learned_reason = self.ranker.for_request(s.learned, asked=q.mode, mode=mode)
        # encode_ms: the caller encoded a record's fields already (related records), before t0.
        timings: dict[str, float] = {"encode": round(encode_ms, 3)} if encode_ms else {}
        t0 = time.perf_counter()
        docs = self.index.documents
        if query_codes is None:
            query_codes = set(docs.tokenizer.codes(text))
        words = [w for w in docs.tokenizer.tokenize(text, bigrams=False) if w not in query_codes]
        exclude = frozenset(q.exclude_ids)
        filters = Filters(kind=tuple(q.kind), product=tuple(q.product), model=tuple(q.model),
                          module=tuple(q.module), status=tuple(q.status),
                          created_from=q.created_from, created_to=q.created_to, open_only=q.open_only,
                          attributes=Filters.attribute_pairs(q.attributes))
        backend = self.index.backend
        n_cand = max(s.candidates, q.k)
        timings["prepare"] = elapsed_ms(t0)

        path, reason = ("hybrid", learned_reason) if mode == "learned" else (mode, None)
        if mode != "keyword" and query_codes and len(words) <= CODE_QUERY_MAX_WORDS:
            path, reason = "keyword", "the query is essentially a code: exact keyword matches answer"
        dense = keyword = keyword_soon = None
        # A backend in another process (Milvus) searches the keyword side while this thread encodes
        # the query and searches the dense side: two round trips at once instead of one after the other.
        soon = getattr(backend, "search_keyword_soon", None) if path == "hybrid" else None
        if soon is not None:
            keyword_soon = soon(tokens, n_cand, filters, exclude)
        if path != "keyword":
            try:
                t = time.perf_counter()
                if qvec is None:
                    qvec = self.encode_query(text)
                    timings["encode"] = elapsed_ms(t)
                t = time.perf_counter()
                dense = backend.search_dense(qvec[0], n_cand, filters, exclude)
                timings["vector"] = elapsed_ms(t)
            except EncoderUnavailable as exc:
                self.encoder_error = str(exc)
                path, reason = "keyword", f"the encoder is unavailable ({exc.message})"
        if path != "dense":
            t = time.perf_counter()
            keyword = (keyword_soon.result() if keyword_soon is not None
                       else backend.search_keyword(tokens, n_cand, filters, exclude))
            timings["bm25"] = elapsed_ms(t)  # with keyword_soon: the wait left after the dense side
        if (path == "hybrid" and dense is not None and len(keyword)
                and (len(dense) == 0 or float(dense.scores[0]) < s.dense_floor)):
            path, reason = "keyword", f"best semantic match is below dense_floor {s.dense_floor}"

        t = time.perf_counter()
        if path == "hybrid":
            fused = fuse(dense.ids, dense.scores, keyword.ids, keyword.scores, method=s.fusion,
                         dense_weight=s.dense_weight, keyword_weight=s.keyword_weight, rrf_k=s.rrf_k)
        elif path == "dense":
            fused = single(dense.ids, dense.scores, "dense")
        else:
            fused = single(keyword.ids, keyword.scores, "keyword")
        codes = {}  # each candidate's exact codes, as the backend returned them
        for hits in (dense, keyword):
            if hits is not None:
                codes.update(zip(hits.ids, hits.codes))
        rule = codes_decide(len(query_codes))
        learned_rows = None
        if path == "hybrid" and (model is not None or collect is not None):
            # The learned ranker reorders hybrid's first candidates as hybrid would show them: in
            # the code rule's order (its lifted scores aside: fused_score stays each one's own), so
            # a code match far down the fused list is among the candidates the model scores.
            ranked = _reordered(fused, codes_order(fused, query_codes, codes)) if rule else fused
            head, tail = _split(ranked, s.learned_depth and max(s.learned_depth, q.k))
            blocks = blocks_of(self.index.encoder)
            X = feature_matrix(head, facts or QueryFacts(codes=frozenset(query_codes), length=len(tokens)),
                               self.index.candidate_facts(head.keys, terms=tokens, vectors=len(blocks) > 1),
                               qvec=qvec[0], blocks=blocks)
            if collect is not None:
                collect.append((head, X))
            if model is not None:
                head, X = rerank(model, head, X)
                learned_rows = dict(zip(head.keys.tolist(), X))
                fused = _after(head, tail)
                path = "learned"
        # One rule set for every path: a query (typed, or a record's relatives) naming a few codes
        # gets its exact matches first, learned or not, so learned and hybrid differ by the model
        # alone. The model's prior holds this rule (recommender.learned.Prior, "hybrid_with_codes"),
        # so a model without trees ranks as hybrid. Trees that overturn it for a record's relatives
        # are kept: they were fitted and validated against hybrid's order, rule included, and a
        # record's "codes" are often versions and class names (re-imposing the rule on top cost
        # OpenOffice's learned ranking 0.022 MRR@10, bench/learned.md). A typed search naming a code
        # keeps the rule on top, as promised; so does an older model whose prior lacks it.
        if rule and not (path == "learned" and facts is not None and model.prior.kind == "hybrid_with_codes"):
            fused = codes_first(fused, query_codes, codes)
        shown = self._shown_verdicts(verdicts or {}, fused, filters, exclude)
        fused = apply_verdicts(fused, {k: v.net for k, v in shown.items()})
        # Compared as shown (4 decimals): a client that passes a score it was shown as min_score
        # keeps that result, even when the float behind it rounded up.
        keep = _kept(fused, q.k, q.min_score)
        # What moved the first learned results, straight after the model ranked them: a LightGBM
        # call costs about 0.3 ms more when its code and the model have left the caches, as they
        # have once the results are built (bench/learned_cost.md).
        moved = _learned_factors(model, learned_rows, keep) if learned_rows is not None else None
        timings["fusion"] = elapsed_ms(t)

        t = time.perf_counter()
        results = self._results(fused, keep, q, words, query_codes, codes, shown, judged, learned=moved)
        timings["fetch"] = elapsed_ms(t)
        timings["total"] = round(elapsed_ms(t0) + encode_ms, 3)
        return SearchResponse(query=q.text, mode=mode, path=path, fallback_reason=reason, results=results,
                              timings_ms=timings)

    def _shown_verdicts(self, verdicts: Mapping[str, Verdict], fused: Fused, filters: Filters,
                        exclude: Collection[str]) -> dict[str, Verdict]:
        """Verdicts on records that may be shown: ranked, or, if the ranking did not find them,
        indexed and passing the request's filters and exclusions."""
        voted = [rid for rid, v in verdicts.items() if v.net]
        if not voted:
            return {}
        found = set(fused.keys.tolist())
        missed = [rid for rid in voted if rid not in found]
        admitted = self.index.backend.admits(missed, filters, exclude) if missed else set()
        return {rid: verdicts[rid] for rid in voted if rid in found or rid in admitted}

    def _results(self, fused: Fused, keep: list[tuple[str, float]], q: SearchQuery, words: list[str],
                 query_codes: set[str], codes: Mapping[str, tuple[str, ...]], verdicts: Mapping[str, Verdict],
                 judged: str, learned: Mapping[str, list[str]] | None = None) -> list[SearchResult]:
        """The results for ``keep`` (:func:`_kept` of ``fused``); ``learned``: the reranked records'
        factors (:func:`_learned_factors`), None when the model did not rank."""
        # The parse cache's own records: read here, never changed, and what prepare() keys on.
        records = self.store.records([k for k, _ in keep], shared=True)
        docs = self.index.documents
        tokenizer = docs.tokenizer
        showing = Showing(words, query_codes, tokenizer=tokenizer, judged=judged)
        dense, keyword = fused.dense, fused.keyword
        # A hit's codes are the index's own (DocumentBuilder.codes, as stored), none included: only a
        # record admitted by its verdict alone, not ranked, has its codes found here.
        out = []
        for key, score in keep:
            rec = records.get(key)
            if rec is None:  # deleted between ranking and fetch
                continue
            prepared = prepare(rec, tokenizer=tokenizer)
            result = showing.result(prepared, round(score, SCORE_DECIMALS),
                                    codes[key] if key in codes else prepared.codes(docs),
                                    dense.get(key), keyword.get(key), verdicts.get(key))
            if learned is not None and key in learned:
                ex = result["explanation"]
                ex["learned_score"], ex["learned_factors"] = round(score, SCORE_DECIMALS), learned[key]
            out.append(result)
        # One validation for the whole answer; it copies the lists and dicts taken from the shared
        # records, so nothing a caller does to an answer can reach them.
        return _RESULTS.validate_python(out)


def _learned_factors(model: RankerModel, rows: Mapping[str, np.ndarray],
                     keep: list[tuple[str, float]]) -> dict[str, list[str]]:
    """Each reranked record's factors (its feature row in ``rows``): what moved the learned score
    for the first three of ``keep`` the model ranked, [] for the rest.

    SHAP values cost about 50x a plain prediction per record (bench/learned.md): the first
    three, which a user reads, get them."""
    ranked = [k for k, _ in keep if k in rows]
    shown = ranked[:_LEARNED_FACTORS_SHOWN]
    out: dict[str, list[str]] = {k: [] for k in ranked[_LEARNED_FACTORS_SHOWN:]}
    if shown:
        out.update(zip(shown, factors(model, np.stack([rows[k] for k in shown]))))
    return out


def _reordered(fused: Fused, order: np.ndarray) -> Fused:
    """``fused`` in ``order``, each record keeping its own score."""
    return Fused(fused.keys[order], fused.scores[order], fused.dense, fused.keyword)


def _split(fused: Fused, depth: int) -> tuple[Fused, np.ndarray]:
    """The first ``depth`` of ``fused`` (all when 0) and the keys after them."""
    if not depth or len(fused.keys) <= depth:
        return fused, fused.keys[:0]
    return Fused(fused.keys[:depth], fused.scores[:depth], fused.dense, fused.keyword), fused.keys[depth:]


def _after(head: Fused, tail: np.ndarray) -> Fused:
    """``head`` (reranked, scores the model's probabilities) and then ``tail`` in hybrid's order.

    The model did not score the tail: its records get 0, below every estimate, as a record a
    verdict adds does; a rule that lifts one of them (an exact code) lifts its score with it.
    """
    if not len(tail):
        return head
    return Fused(np.concatenate([head.keys, tail]),
                 np.concatenate([head.scores, np.zeros(len(tail), dtype=head.scores.dtype)]), head.dense, head.keyword)


def _kept(fused: Fused, k: int, min_score: float) -> list[tuple[str, float]]:
    """The first ``k`` of ``fused`` scoring at least ``min_score`` as shown (4 decimals), as
    (id, score). Read from a prefix first: the whole candidate list (hundreds) as Python objects
    cost more than the rest of choosing ten."""
    n = len(fused.keys)
    out: list[tuple[str, float]] = []
    start, size = 0, 2 * k
    while start < n and len(out) < k:
        keys, scores = fused.keys[start:start + size].tolist(), fused.scores[start:start + size].tolist()
        out += itertools.islice(((str(key), float(sc)) for key, sc in zip(keys, scores)
                                 if round(sc, SCORE_DECIMALS) >= min_score), k - len(out))
        start, size = start + size, n
    return out


def elapsed_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
