"""The caselink service object: everything the CLI and the API do, over one live index.

Ranking for a query (the engine below is a search backend, indexing/backend.py; the tokenising,
encoding, fusion and explanations are the service's whatever engine it is):

1. Normalise and tokenise; pull out exact codes (E1023, PN-7731-02).
2. Dense side: encode the query, the backend's top-N by cosine under the filters.
3. Keyword side: the backend's BM25 top-N under the same filters, scores as a share of the
   query's own score.
4. Fuse (convex combination or RRF, from config), then put records sharing the query's exact
   codes first.
5. Keyword fallback: if the encoder is unavailable, the best cosine is below ``dense_floor``,
   or the query is essentially a code, the keyword ranking answers and the response says why.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from caselink.config import Settings
from caselink.errors import CaselinkError, EncoderUnavailable, InvalidQuery, RecordNotFound
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder, load_encoder
from indexing.facets import FacetTable, Filters
from indexing.live import BuildReport, LiveIndex, Progress
from indexing.model_choice import resolve_model
from indexing.normalize import fold
from indexing.records import Record, require_content
from indexing.store import Feedback, RecordStore, UpsertResult
from recommender.explain import FoldedRecord, explain, snippet_and_highlights
from recommender.features import QueryFacts, feature_matrix
from recommender.fusion import Fused, codes_first, fuse, single
from recommender.learned import RankerModel, RankerSlot, factors, ranker_path, rerank
from recommender.results import SearchQuery, SearchResponse, SearchResult
from recommender.verdicts import Verdict, apply_verdicts, record_feedback, take_back, tally

# A query is "essentially a code" when codes are all it has besides at most this many words.
_CODE_QUERY_MAX_WORDS = 2
# Exact codes decide the order only when the query names a few of them: an engineer typing
# "E1023 after PM" means that code; a long report mentioning thirty versions, hosts and class
# names does not, and ordering by how many of those overlap was measured to hurt (see bench/relevance.md).
_CODES_FIRST_MAX = 3
SCORE_DECIMALS = 4
_LEARNED_FACTORS_SHOWN = 3


@dataclass
class Stats:
    records: dict[str, int]
    indexed: int
    model: str
    dim: int
    factory: str
    snapshot: str
    built_at: str
    change_seq: int
    centering: list[str]  # kinds centred on their own mean ("*": the corpus mean); empty: not centred
    feedback: int  # stored votes
    backend: str = "local"  # the engine behind the seam (settings backend.kind)


class CaselinkService:
    """Owns the store, the encoder and the live index. Create with :meth:`open` or :meth:`build`."""

    def __init__(self, settings: Settings, store: RecordStore, index: LiveIndex, *, model_reason: str = ""):
        self.settings = settings
        self.store = store
        self.index = index
        self.encoder_error: str | None = None
        self.model_reason = model_reason  # why this encoder: given, configured, or what "auto" resolved to
        self._documents = threading.Lock()  # one document replacement at a time: stale = stored - sent
        self._ranker = RankerSlot(ranker_path(settings))  # nothing read until a query needs it

    # -- lifecycle --------------------------------------------------------------------------
    @staticmethod
    def _open_parts(settings: Settings) -> tuple[RecordStore, EmbeddingCache]:
        return RecordStore(settings.store_url).open(), EmbeddingCache(settings.cache_path)

    @staticmethod
    def _encoder(settings: Settings, store: RecordStore, given: Encoder | None, *, fresh: bool) -> tuple[Encoder, str]:
        """``given``, or the configured encoder (``auto`` resolved against the store and index), and why."""
        if given is not None:
            return given, "given"
        e = settings.encoder
        spec, why = resolve_model(e.model, store, settings.index_root, fresh=fresh)
        return load_encoder(spec, threads=e.threads, batch_size=e.batch_size, chunk_chars=e.chunk_chars,
                            lead_weight=e.lead_weight), why

    @classmethod
    def open(cls, settings: Settings, *, encoder: Encoder | None = None, verify: bool = True) -> "CaselinkService":
        store, cache = cls._open_parts(settings)
        try:
            encoder, why = cls._encoder(settings, store, encoder, fresh=False)
            index = LiveIndex.open(settings, store, encoder, cache, verify=verify)
        except BaseException:
            store.close()
            cache.close()
            raise
        return cls(settings, store, index, model_reason=why)

    @classmethod
    def build(cls, settings: Settings, *, encoder: Encoder | None = None, records: list[Record] | None = None,
              documents: Mapping[str, Collection[str]] | None = None, progress: Progress | None = None,
              rebuild: bool = True) -> tuple["CaselinkService", BuildReport]:
        """Store ``records`` (if given) and index the whole store.

        ``documents`` (doc_id -> the ids of all its sections, as a loader read the document whole)
        replaces SOP documents: a stored section of one of them that is not named any more is
        deleted, so a revised SOP never leaves its old last sections behind to be suggested.
        The report's ``removed`` lists them.

        ``rebuild=True`` builds a fresh index; ``rebuild=False`` updates the current one in place
        when its settings still match (see :meth:`LiveIndex.refresh`), which is what ``caselink
        index`` does by default. With ``encoder.model = "auto"`` the encoder is chosen after the
        records are stored (see :mod:`indexing.model_choice`).
        """
        for r in records or ():
            require_content(r)
        store, cache = cls._open_parts(settings)
        try:
            if records:
                for start in range(0, len(records), 1000):
                    store.upsert(records[start:start + 1000])
                    if progress:
                        progress("store", min(1000, len(records) - start), len(records))
            removed = _stale_sections(store, documents or {})
            store.write(deletes=removed)
            encoder, why = cls._encoder(settings, store, encoder, fresh=rebuild)
            make = LiveIndex.build if rebuild else LiveIndex.refresh
            index, report = make(settings, store, encoder, cache, progress=progress)
            report.removed = removed
        except BaseException:
            store.close()
            cache.close()
            raise
        return cls(settings, store, index, model_reason=why), report

    def close(self) -> None:
        self.index.close()
        self.index.cache.close()
        self.store.close()

    # -- reads ------------------------------------------------------------------------------
    def get(self, record_id: str) -> Record:
        sr = self.store.get(record_id)
        if sr is None:
            raise RecordNotFound(f"no record with id '{record_id}'", field="id")
        return sr.record

    def search(self, q: SearchQuery, *, query_vector: np.ndarray | None = None) -> SearchResponse:
        """Rank for free text. ``query_vector``: :meth:`encode_query` of the same text, when one
        text is searched several times (by kind, :mod:`recommender.grouping`) and encoded once."""
        text = q.text.strip()
        if not text:
            raise InvalidQuery("text must not be empty", field="text")
        if len(q.text) > self.settings.server.max_text_chars:  # as sent: the API schema's maxLength counts so
            raise InvalidQuery(f"text is {len(q.text)} characters, the limit is {self.settings.server.max_text_chars}",
                               field="text")
        docs = self.index.documents
        verdicts = tally(self.store.feedback_for_query(text)) if self.settings.rank.feedback else {}
        return self._rank(q, text=text, tokens=docs.tokenizer.tokenize(text), qvec=query_vector, verdicts=verdicts,
                          judged="this search")

    def encode_query(self, text: str) -> np.ndarray:
        """The vector :meth:`search` ranks ``text`` by (1 x dim, index space). Raises
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
        return bool(codes) and len(words) <= _CODE_QUERY_MAX_WORDS

    def query_codes(self, text: str) -> list[str]:
        """The exact codes ``text`` names (canonical: 'E-1023' -> 'e1023'), in order."""
        return self.index.documents.tokenizer.codes(text)

    def related(self, record_id: str, *, k: int = 10, kinds: list[str] | None = None, mode: str | None = None,
                exclude_linked: bool = False, min_score: float = 0.0, open_only: bool = False) -> SearchResponse:
        """Records related to an existing record, excluding itself (and its linked records if asked)."""
        rec = self.get(record_id)
        if rec.is_empty():
            # Stored before require_content: its only "text" would be its id, which matches other
            # ids, not related records.
            m = mode or self.settings.rank.mode
            return SearchResponse(query=rec.display_title() or rec.id, mode=m, path=m, results=[],
                                  fallback_reason=f"record '{rec.id}' has no title, text or codes to compare")
        return self._related(rec, k=k, kinds=kinds, mode=mode, exclude_linked=exclude_linked, min_score=min_score,
                             open_only=open_only, cached=True)

    def related_to(self, rec: Record, *, k: int = 10, kinds: list[str] | None = None, mode: str | None = None,
                   exclude_linked: bool = False, min_score: float = 0.0, open_only: bool = False) -> SearchResponse:
        """Records related to a record that need not be stored: a ticket being written.

        Ranked exactly as :meth:`related` ranks a stored record (its fields weighted, its error
        codes first, feedback on its id). A stored record with the same id is never returned:
        it is the same ticket. Nothing is written, not even to the embedding cache.
        Raises :class:`InvalidQuery` (field ``record``) for a record with nothing to compare.
        """
        if rec.is_empty():
            raise InvalidQuery("the record has nothing to compare: no title, text, product, model, module or "
                               "error code", field="record")
        return self._related(rec, k=k, kinds=kinds, mode=mode, exclude_linked=exclude_linked, min_score=min_score,
                             open_only=open_only, cached=False)

    def _related(self, rec: Record, *, k: int, kinds: list[str] | None, mode: str | None, exclude_linked: bool,
                 min_score: float, open_only: bool, cached: bool, collect: list | None = None) -> SearchResponse:
        exclude = [i for i in [rec.id, *(rec.links if exclude_linked else [])] if i]
        try:
            q = SearchQuery(text=rec.display_title() or rec.id or "(unsaved record)", k=k, mode=mode,
                            kind=kinds or [], exclude_ids=exclude, min_score=min_score, open_only=open_only)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(x) for x in first["loc"])
            raise InvalidQuery(f"field '{field}': {first['msg']}", field=field) from None
        docs = self.index.documents
        qvec = None
        t = time.perf_counter()
        try:
            # A stored record's vector is in the cache already; a draft's text would only fill it.
            qvec, _ = self.index.embed([docs.embedding_text(rec)], [rec.kind], cached=cached)
        except CaselinkError:
            qvec = None
        encode_ms = _ms(t)
        tokens = docs.tokens(rec)
        if self.settings.rank.related_max_terms:
            tokens = self.index.select_terms(tokens, self.settings.rank.related_max_terms)
        verdicts = tally(self.store.feedback_between(rec.id)) if self.settings.rank.feedback and rec.id else {}
        facts = QueryFacts(codes=frozenset(docs.codes(rec)), kind=rec.kind, product=(rec.product or "").casefold(),
                           model=(rec.model or "").casefold(), module=(rec.module or "").casefold(),
                           created_day=FacetTable.day(rec.created), length=len(tokens))
        return self._rank(q, text=rec.searchable_text(), tokens=tokens, qvec=qvec, query_codes=set(docs.codes(rec)),
                          verdicts=verdicts, encode_ms=encode_ms, facts=facts, collect=collect)

    def _rank(self, q: SearchQuery, *, text: str, tokens: list[str], qvec: np.ndarray | None,
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
        model, learned_reason = self._ranker.for_request(s.learned, asked=q.mode, mode=mode)
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
                          created_from=q.created_from, created_to=q.created_to, open_only=q.open_only)
        backend = self.index.backend
        n_cand = max(s.candidates, q.k)
        timings["prepare"] = _ms(t0)

        path, reason = ("hybrid", learned_reason) if mode == "learned" else (mode, None)
        if mode != "keyword" and query_codes and len(words) <= _CODE_QUERY_MAX_WORDS:
            path, reason = "keyword", "the query is essentially a code: exact keyword matches answer"
        dense = keyword = None
        if path != "keyword":
            try:
                t = time.perf_counter()
                if qvec is None:
                    qvec = self.encode_query(text)
                    timings["encode"] = _ms(t)
                t = time.perf_counter()
                dense = backend.search_dense(qvec[0], n_cand, filters, exclude)
                timings["vector"] = _ms(t)
            except EncoderUnavailable as exc:
                self.encoder_error = str(exc)
                path, reason = "keyword", f"the encoder is unavailable ({exc.message})"
        if path != "dense":
            t = time.perf_counter()
            keyword = backend.search_keyword(tokens, n_cand, filters, exclude)
            timings["bm25"] = _ms(t)
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
        learned_rows = None
        if path == "hybrid" and (model is not None or collect is not None):
            # The learned ranker reorders the fused list before the hard rules (codes, verdicts).
            X = feature_matrix(fused, facts or QueryFacts(codes=frozenset(query_codes), length=len(tokens)),
                               self.index.candidate_facts(fused.keys))
            if collect is not None:
                collect.append((fused, X))
            if model is not None:
                fused, X = rerank(model, fused, X)
                learned_rows = dict(zip(fused.keys.tolist(), X))
                path = "learned"
        codes = {}  # each candidate's exact codes, as the backend returned them
        for hits in (dense, keyword):
            if hits is not None:
                codes.update(zip(hits.ids, hits.codes))
        # A typed search that names a code gets its exact matches first in every path. Related to a
        # record, the learned ranker has the shared and missing codes among its features and weighs
        # them as the labels taught it; the hard rule on top would undo that and, lifting scores to
        # keep them non-increasing, break the calibrated probabilities.
        if len(query_codes) <= _CODES_FIRST_MAX and not (path == "learned" and facts is not None):
            fused = codes_first(fused, query_codes, codes)
        shown = self._shown_verdicts(verdicts or {}, fused, filters, exclude)
        fused = apply_verdicts(fused, {k: v.net for k, v in shown.items()})
        timings["fusion"] = _ms(t)

        t = time.perf_counter()
        results = self._results(fused, q, words, query_codes, codes, shown, judged,
                                learned=(model, learned_rows) if learned_rows is not None else None)
        timings["fetch"] = _ms(t)
        timings["total"] = round(_ms(t0) + encode_ms, 3)
        return SearchResponse(query=q.text, mode=mode, path=path, fallback_reason=reason, results=results,
                              timings_ms=timings)

    def set_ranker(self, model: RankerModel | None) -> None:
        """Rank with ``model`` from now on, whatever the model file says (evaluation and tests);
        ``None`` goes back to the file next to the index."""
        self._ranker.pin(model)

    def ranker(self) -> tuple[RankerModel | None, str | None]:
        """The trained ranker in use (None when there is none) and why a model file was refused."""
        return self._ranker.current(), self._ranker.error

    def ranking_features(self, record_id: str, *, kinds: list[str] | None = None
                         ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The hybrid candidates for records related to a stored record, before any reranking:
        their ids, today's fused scores and the learned ranker's feature matrix (what
        :mod:`recommender.training` learns from). Empty when the keyword path would answer."""
        rec = self.get(record_id)
        collect: list = []
        if not rec.is_empty():
            self._related(rec, k=1, kinds=kinds, mode="hybrid", exclude_linked=False, min_score=0.0,
                          open_only=False, cached=True, collect=collect)
        if not collect:
            return [], np.zeros(0, dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
        fused, X = collect[0]
        return [str(k) for k in fused.keys], np.asarray(fused.scores), X

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

    def _results(self, fused: Fused, q: SearchQuery, words: list[str], query_codes: set[str],
                 codes: Mapping[str, tuple[str, ...]], verdicts: Mapping[str, Verdict], judged: str,
                 learned: tuple[RankerModel, Mapping[str, np.ndarray]] | None = None) -> list[SearchResult]:
        # Compared as shown (4 decimals): a client that passes a score it was shown as min_score
        # keeps that result, even when the float behind it rounded up.
        keep = list(itertools.islice(((str(k), float(sc)) for k, sc in zip(fused.keys.tolist(), fused.scores.tolist())
                                      if round(sc, SCORE_DECIMALS) >= q.min_score), q.k))
        records = self.store.records([k for k, _ in keep])
        docs = self.index.documents
        moved: dict[str, list[str]] = {}
        if learned is not None:  # the learned score and what moved it, for the first records shown
            model, rows = learned
            # SHAP values cost about 50x a plain prediction per record (bench/learned.md): the
            # first three, which a user reads, get them.
            shown = [k for k, _ in keep if k in rows][:_LEARNED_FACTORS_SHOWN]
            if shown:
                moved = dict(zip(shown, factors(model, np.stack([rows[k] for k in shown]))))
        out = []
        for key, score in keep:
            rec = records.get(key)
            if rec is None:  # deleted between ranking and fetch
                continue
            folded = FoldedRecord.of(rec, tokenizer=docs.tokenizer)
            ex = explain(rec, query_words=words, query_codes=query_codes,
                         record_codes=frozenset(codes.get(key, ()) or docs.codes(rec)), tokenizer=docs.tokenizer,
                         dense=fused.dense.get(key), keyword=fused.keyword.get(key), verdict=verdicts.get(key),
                         judged=judged, folded=folded)
            if learned is not None and key in learned[1]:
                ex.learned_score, ex.learned_factors = round(score, SCORE_DECIMALS), moved.get(key, [])
            terms = ex.matched_terms + [fold(c, opencc=docs.tokenizer.opencc) for c in ex.matched_codes]
            snippet, highlights = snippet_and_highlights(rec, terms, folded=folded)
            out.append(SearchResult(
                id=rec.id, kind=rec.kind, title=rec.display_title(), score=round(score, SCORE_DECIMALS), snippet=snippet,
                highlights=highlights, product=rec.product, model=rec.model, module=rec.module, status=rec.status,
                error_codes=rec.error_codes, created=rec.created, doc_id=rec.doc_id, doc_title=rec.doc_title,
                section=rec.section, explanation=ex))
        return out

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, records: list[Record]) -> list[UpsertResult]:
        """Create or update records. Searchable when this returns; a record with nothing to search
        (:func:`~indexing.records.require_content`) fails the call before anything is stored."""
        for r in records:
            require_content(r)
        return self.index.upsert(records)

    def delete(self, record_id: str) -> None:
        if not self.index.delete(record_id):
            raise RecordNotFound(f"no record with id '{record_id}'", field="id")

    def delete_many(self, record_ids: list[str]) -> tuple[list[str], list[str]]:
        """Delete the stored ones of ``record_ids`` in one transaction: (deleted, not stored)."""
        _, gone = self.index.write(deletes=record_ids)
        deleted = [rid for rid, num in zip(record_ids, gone) if num is not None]
        return deleted, [rid for rid, num in zip(record_ids, gone) if num is None]

    def put_document(self, doc_id: str, records: list[Record], section_ids: Collection[str]
                     ) -> tuple[list[UpsertResult], list[str]]:
        """Replace SOP document ``doc_id`` with ``records`` (its sections; ``section_ids`` names all
        of them, as :attr:`LoadResult.documents` does): upserts them and deletes the stored
        sections the document no longer has, in one transaction. Returns the upserts and the
        deleted ids."""
        for r in records:
            require_content(r)
        with self._documents:
            removed = _stale_sections(self.store, {doc_id: section_ids})
            result, _ = self.index.write(records, removed)
        return result, removed

    def delete_document(self, doc_id: str) -> list[str]:
        """Delete every stored section of SOP document ``doc_id``; returns their ids."""
        with self._documents:
            ids = self.store.sections_of(doc_id)
            if not ids:
                raise RecordNotFound(f"no SOP document with doc_id '{doc_id}'", field="doc_id")
            self.index.write(deletes=ids)
        return ids

    def document(self, doc_id: str) -> list[Record]:
        """The stored sections of SOP document ``doc_id``, in section order."""
        recs = self.store.sections(doc_id)
        if not recs:
            raise RecordNotFound(f"no SOP document with doc_id '{doc_id}'", field="doc_id")
        return recs

    def feedback(self, *, record_id: str, helpful: bool, query: str = "", query_id: str = "",
                 source: str = "") -> int:
        return record_feedback(self.store, record_id=record_id, helpful=helpful, query=query, query_id=query_id,
                               source=source)

    def delete_feedback(self, fid: int) -> None:
        take_back(self.store, fid)

    # -- what the API, the CLI, eval, emerging and suggest ask of the store and index ---------
    @property
    def model_id(self) -> str:
        return self.index.encoder.model_id

    @property
    def documents(self) -> DocumentBuilder:
        """How records are tokenised and turned into codes and embedding text here."""
        return self.index.documents

    def encode(self, texts: list[str]) -> np.ndarray:
        """The encoder's own vectors (not centred as the index's are), through the embedding cache."""
        return self.index.encode(texts)

    def indexed(self) -> int:
        """Records the search backend holds."""
        return self.index.count()

    def record_counts(self) -> dict[str, int]:
        """Stored records per kind."""
        return self.store.count()

    def records(self, record_ids: Iterable[str]) -> dict[str, Record]:
        """The stored ones of ``record_ids``, by id."""
        return self.store.records(record_ids)

    def iter_records(self) -> Iterator[Record]:
        """Every stored record, in the order they were first stored."""
        return (sr.record for sr in self.store.iter_records())

    def sections_of(self, doc_id: str) -> list[str]:
        """The ids of SOP document ``doc_id``'s stored sections (empty: no such document)."""
        return self.store.sections_of(doc_id)

    def list_ids(self, *, after: str = "", limit: int = 1000, kinds: Iterable[str] = ()
                 ) -> tuple[list[tuple[str, str, float, str]], str | None]:
        """A page of stored ids in id order with kind, updated and hash, and the next cursor
        (:meth:`indexing.store.RecordStore.list_ids`)."""
        return self.store.list_ids(after=after, limit=limit, kinds=kinds)

    def votes(self) -> list[Feedback]:
        """Every stored feedback vote, oldest first."""
        return self.store.feedback()

    def behind(self) -> int:
        """How many change-log positions the store has past the index's (an upper bound on the
        changes :meth:`follow` would apply)."""
        return self.index.behind()

    def follow(self) -> int:
        """Apply what other processes wrote to the store since (``caselink index`` while serving);
        returns how many records that touched."""
        return self.index.replay()

    def stats(self) -> Stats:
        idx = self.index
        engine = idx.backend.describe()
        return Stats(records=self.store.count(), indexed=idx.count(), model=idx.encoder.model_id,
                     dim=idx.encoder.dim, factory=idx.factory, snapshot=str(idx.snapshot_path or ""),
                     built_at=engine.get("built_at", ""), change_seq=idx.backend.applied_seq(),
                     centering=idx.centred_kinds, feedback=self.store.feedback_count(),
                     backend=idx.backend.name)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _stale_sections(store: RecordStore, documents: Mapping[str, Collection[str]]) -> list[str]:
    """Stored sections of ``documents`` (doc_id -> every section id it has now) that it no longer has."""
    return [rid for doc_id, ids in documents.items() for rid in store.sections_of(doc_id) if rid not in ids]
