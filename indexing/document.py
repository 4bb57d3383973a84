"""What of a record each index sees: keyword tokens (with field weights), embedding text, codes."""

from __future__ import annotations

from indexing.normalize import normalize
from indexing.records import Record
from indexing.tokenize import Tokenizer, canonical_code


class DocumentBuilder:
    """Turns records into index inputs.

    Field weighting is done by repetition, as BM25F approximations usually are: title tokens
    count ``title_weight`` times, declared error codes ``code_weight`` times, so a record whose
    title or code field names the query's terms outranks one that mentions them in passing.
    """

    def __init__(self, tokenizer: Tokenizer, *, title_weight: int = 2, code_weight: int = 2):
        self.tokenizer = tokenizer
        self.title_weight = title_weight
        self.code_weight = code_weight

    def codes(self, record: Record) -> frozenset[str]:
        """Canonical codes declared on the record or written in its title and text."""
        declared = {canonical_code(c) for c in record.error_codes}
        found = self.tokenizer.codes(" ".join((record.title, record.section, record.text)))
        return frozenset(c for c in declared | set(found) if c)

    @staticmethod
    def _title(record: Record) -> str:
        return " ".join(p for p in (record.title, record.doc_title, record.section) if p)

    def title_tokens(self, record: Record) -> list[str]:
        """The title's keyword terms alone (the learned ranker scores a query against them)."""
        return self.tokenizer.tokenize(self._title(record))

    def tokens(self, record: Record) -> list[str]:
        title = self._title(record)
        body = "\n".join(p for p in (record.text, record.cause, record.resolution, record.workaround) if p)
        tokens = self.tokenizer.tokenize(title) * self.title_weight
        tokens += self.tokenizer.tokenize(body)
        tokens += self.tokenizer.tokenize(" ".join(p for p in (record.product, record.model, record.module) if p))
        tokens += [canonical_code(c) for c in record.error_codes] * self.code_weight
        return tokens

    def embedding_text(self, record: Record) -> str:
        """Normalised text for the encoder: the same script for every record and every query."""
        return normalize(record.searchable_text() or record.facets() or record.id, opencc=self.tokenizer.opencc)
