"""The caselink service object: everything the CLI and the API do, over one live index.

The one door: routers, metrics, the CLI, emerging, suggest and eval ask this object, never its
store or index. Ranking a query is :mod:`recommender.ranking`'s; this module holds the lifecycle
(open, build, close), the reads, the writes and what callers may ask of the store and the index.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from caselink.config import Settings
from caselink.errors import CaselinkError, InvalidQuery, RecordNotFound, ServiceClosed
from indexing.document import DocumentBuilder
from indexing.embedding_cache import EmbeddingCache
from indexing.encoders import Encoder, load_encoder
from indexing.facets import FacetTable
from indexing.live import BuildReport, LiveIndex, Progress
from indexing.model_choice import resolve_model
from indexing.records import Record, require_content
from indexing.store import Feedback, RecordStore, UpsertResult
from recommender.features import QueryFacts, feature_names
from recommender.learned import RankerModel, RankerSlot, ranker_path
from recommender.ranking import Ranking, elapsed_ms
from recommender.results import SearchQuery, SearchResponse
from recommender.verdicts import record_feedback, take_back, tally


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
    learned: str = ""  # the trained ranker in use, one line ("" = none)
    learned_warning: str | None = None  # its file refused, or trained at another rank.learned_depth


class CaselinkService:
    """Owns the store, the encoder and the live index. Create with :meth:`open` or :meth:`build`."""

    def __init__(self, settings: Settings, store: RecordStore, index: LiveIndex, *, model_reason: str = ""):
        self.settings = settings
        self.store = store
        self.index = index
        self.model_reason = model_reason  # why this encoder: given, configured, or what "auto" resolved to
        self._documents = threading.Lock()  # one document replacement at a time: stale = stored - sent
        # Nothing read until a query needs it; a model for other features (encoder) is refused.
        self._ranker = RankerSlot(ranker_path(settings), self.feature_names(), settings.rank.learned_depth)
        self._ranking = Ranking(settings, store, index, self._ranker)

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
    def build(cls, settings: Settings, *, encoder: Encoder | None = None,
              records: Sequence[Record] | Iterable[Record] | None = None,
              documents: Mapping[str, Collection[str]] | None = None, progress: Progress | None = None,
              rebuild: bool = True, expected: int | None = None) -> tuple["CaselinkService", BuildReport]:
        """Store ``records`` (if given) and index the whole store.

        ``records`` may be a list, checked whole before anything is stored, or any iterable
        (a loader's stream, :func:`indexing.loaders.stream_table`), stored 1,000 at a time as it
        is read, each thousand checked before it is stored, so a million rows are never held at
        once; ``expected`` is then roughly how many there are, for the progress bar.

        ``documents`` (doc_id -> the ids of all its sections, as a loader read the document whole)
        replaces SOP documents: a stored section of one of them that is not named any more is
        deleted, so a revised SOP never leaves its old last sections behind to be suggested.
        The report's ``removed`` lists them. It is read after ``records`` is exhausted.

        ``rebuild=True`` builds a fresh index; ``rebuild=False`` updates the current one in place
        when its settings still match (see :meth:`LiveIndex.refresh`), which is what ``caselink
        index`` does by default. With ``encoder.model = "auto"`` the encoder is chosen after the
        records are stored (see :mod:`indexing.model_choice`).
        """
        if isinstance(records, Sequence):
            for r in records:
                require_content(r)
            expected = len(records)
        store, cache = cls._open_parts(settings)
        try:
            rows = iter(records or ())
            while part := list(itertools.islice(rows, 1000)):
                for r in part:
                    require_content(r)
                store.upsert(part)
                if progress:
                    progress("store", len(part), expected or 0)
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

    @property
    def encoder_error(self) -> str | None:
        """Why the encoder failed on the last search that needed it (None: it has not)."""
        return self._ranking.encoder_error

    def close(self) -> None:
        """Close the index, the embedding cache and the store; a second call does nothing.

        Every later call raises :class:`ServiceClosed` (503 over HTTP): a closed SQLite store
        otherwise reopened itself for some reads and raised sqlite3's own error for others.
        """
        index, store = self.index, self.store
        if isinstance(index, _Closed):
            return
        self.index = self.store = self._ranking = _Closed()  # every read and write goes through one of them
        index.close()
        index.cache.close()
        store.close()

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
        return self._ranking.rank(q, text=text, tokens=docs.tokenizer.tokenize(text), qvec=query_vector,
                                  verdicts=verdicts, judged="this search")

    def encode_query(self, text: str) -> np.ndarray:
        """The vector :meth:`search` ranks ``text`` by (1 x dim, index space). Raises
        :class:`~caselink.errors.EncoderUnavailable` when the encoder cannot run."""
        return self._ranking.encode_query(text)

    def is_code_query(self, text: str) -> bool:
        """Whether ``text`` is essentially a code (codes and at most two words), which exact keyword
        matches answer in every mode: searching it needs no query vector."""
        return self._ranking.is_code_query(text)

    def query_codes(self, text: str) -> list[str]:
        """The exact codes ``text`` names (canonical: 'E-1023' -> 'e1023'), in order."""
        return self.index.documents.tokenizer.codes(text)

    def related(self, record_id: str, *, k: int = 10, kinds: list[str] | None = None, mode: str | None = None,
                exclude_linked: bool = False, min_score: float = 0.0, open_only: bool = False,
                attributes: Mapping[str, str | list[str]] | None = None) -> SearchResponse:
        """Records related to an existing record, excluding itself (and its linked records if asked);
        ``attributes``: only records whose own attributes hold these values (SearchQuery.attributes)."""
        rec = self.get(record_id)
        if rec.is_empty():
            # Stored before require_content: its only "text" would be its id, which matches other
            # ids, not related records.
            m = mode or self.settings.rank.mode
            return SearchResponse(query=rec.display_title() or rec.id, mode=m, path=m, results=[],
                                  fallback_reason=f"record '{rec.id}' has no title, text or codes to compare")
        return self._related(rec, k=k, kinds=kinds, mode=mode, exclude_linked=exclude_linked, min_score=min_score,
                             open_only=open_only, cached=True, attributes=attributes)

    def related_to(self, rec: Record, *, k: int = 10, kinds: list[str] | None = None, mode: str | None = None,
                   exclude_linked: bool = False, min_score: float = 0.0, open_only: bool = False,
                   attributes: Mapping[str, str | list[str]] | None = None) -> SearchResponse:
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
                             open_only=open_only, cached=False, attributes=attributes)

    def _related(self, rec: Record, *, k: int, kinds: list[str] | None, mode: str | None, exclude_linked: bool,
                 min_score: float, open_only: bool, cached: bool, collect: list | None = None,
                 attributes: Mapping[str, str | list[str]] | None = None) -> SearchResponse:
        exclude = [i for i in [rec.id, *(rec.links if exclude_linked else [])] if i]
        try:
            q = SearchQuery(text=rec.display_title() or rec.id or "(unsaved record)", k=k, mode=mode,
                            kind=kinds or [], exclude_ids=exclude, min_score=min_score, open_only=open_only,
                            attributes=dict(attributes or {}))
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
        encode_ms = elapsed_ms(t)
        rank = self.settings.rank
        tokens, codes = self.index.related_terms(docs.tokens(rec), docs.codes(rec), max_terms=rank.related_max_terms,
                                                 max_share=rank.code_rule_max_share)
        verdicts = tally(self.store.feedback_between(rec.id)) if rank.feedback and rec.id else {}
        facts = QueryFacts(codes=codes, kind=rec.kind, product=(rec.product or "").casefold(),
                           model=(rec.model or "").casefold(), module=(rec.module or "").casefold(),
                           created_day=FacetTable.day(rec.created), length=len(tokens))
        return self._ranking.rank(q, text=rec.searchable_text(), tokens=tokens, qvec=qvec,
                                  query_codes=set(codes), verdicts=verdicts, encode_ms=encode_ms, facts=facts,
                                  collect=collect)

    def set_ranker(self, model: RankerModel | None) -> None:
        """Rank with ``model`` from now on, whatever the model file says (evaluation and tests);
        ``None`` goes back to the file next to the index."""
        self._ranker.pin(model)

    def ranker(self) -> tuple[RankerModel | None, str | None]:
        """The trained ranker in use (None when there is none) and why a model file was refused."""
        return self._ranker.current(), self._ranker.error

    def feature_names(self) -> tuple[str, ...]:
        """The learned ranker's features for this service's encoder (a model must match them)."""
        return feature_names([getattr(p, "spec", p.model_id) for p in getattr(self.index.encoder, "parts", ())])

    def ranking_features(self, record_id: str, *, kinds: list[str] | None = None
                         ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The hybrid candidates for records related to a stored record, before any reranking, in
        hybrid's order (the exact-code rule's order when it applies): their ids, their own fused
        scores and the learned ranker's feature matrix (what :mod:`recommender.training` learns
        from). Empty when the keyword path would answer."""
        rec = self.get(record_id)
        collect: list = []
        if not rec.is_empty():
            self._related(rec, k=1, kinds=kinds, mode="hybrid", exclude_linked=False, min_score=0.0,
                          open_only=False, cached=True, collect=collect)
        if not collect:
            return [], np.zeros(0, dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
        fused, X = collect[0]
        return [str(k) for k in fused.keys], np.asarray(fused.scores), X

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
    def model_spec(self) -> str:
        """The spec that loads this index's encoder again (``load_encoder(spec)``): ``auto`` resolved."""
        return self.index.encoder.spec

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

    def snapshot(self) -> Path | None:
        """Persist the index now (for ``local`` a new snapshot folder, written while searches and
        writes go on) and prune the change log behind it, as :meth:`close` does after writes;
        returns the snapshot folder (None when the backend keeps no folder here)."""
        return self.index.snapshot()

    def stats(self) -> Stats:
        idx = self.index
        engine = idx.backend.describe()
        return Stats(records=self.store.count(), indexed=idx.count(), model=idx.encoder.model_id,
                     dim=idx.encoder.dim, factory=idx.factory, snapshot=str(idx.snapshot_path or ""),
                     built_at=engine.get("built_at", ""), change_seq=idx.backend.applied_seq(),
                     centering=idx.centred_kinds, feedback=self.store.feedback_count(),
                     backend=idx.backend.name, learned=_describe(model) if (model := self._ranker.current()) else "",
                     learned_warning=self._ranker.warning(model))


class _Closed:
    """What a closed service holds instead of its store, index and ranking."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy, pickle and hasattr probe dunders: they must see AttributeError
            raise AttributeError(name)
        raise ServiceClosed("the service is closed (the server is shutting down); nothing more is read or written",
                            hint="retry on a running server, or open the service again")


def _describe(model: RankerModel) -> str:
    """A trained ranker in one line: trees, when, at what depth, and whether auto uses it."""
    depth = {None: "depth not recorded", 0: "whole lists"}.get(model.depth, f"depth {model.depth}")
    used = "used by rank.learned = auto" if model.passed else "not used by auto (mode=learned asks for it)"
    return (f"{model.info.get('rounds', '?')} trees, trained {model.info.get('trained_at', '?')} on "
            f"{model.info.get('queries', '?')} queries, {depth}; {used}")


def _stale_sections(store: RecordStore, documents: Mapping[str, Collection[str]]) -> list[str]:
    """Stored sections of ``documents`` (doc_id -> every section id it has now) that it no longer has."""
    return [rid for doc_id, ids in documents.items() for rid in store.sections_of(doc_id) if rid not in ids]
