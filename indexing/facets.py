"""Facet columns (kind, product, model, module, status, created, codes) held as arrays by key,
and the records' own attributes as postings.

Filters become one vectorised boolean mask over all keys, which FAISS takes as an ID-selector
bitmap and BM25 as a keep-mask, so filtering never falls back to a Python loop over records.
Text columns are dictionary-encoded (an int32 per record into a list of distinct values): a
million records hold a few hundred products and modules, and one Python string per cell would
cost about 60 bytes each instead of 4. Codes are tuples of interned strings, only for records
that have any (a frozenset costs over 200 bytes even for one code). Attributes are postings
(key, casefolded value) -> keys: their keys are the customer's, unbounded in number across
records, so a column per key could cost a million records four bytes each per key ever seen; a
filter on one reads only the keys holding the values asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from indexing.records import Record, is_closed_status

if TYPE_CHECKING:
    from indexing.backend import Entry

_EPOCH = date(1970, 1, 1)
_COLUMNS = ("kind", "product", "model", "module", "status")


def _day(d: date | str | None) -> int:
    if d is None or d == "":
        return -1
    if isinstance(d, str):
        d = date.fromisoformat(d[:10])
    return (d - _EPOCH).days


@dataclass(frozen=True)
class Filters:
    """Equality filters (case-insensitive; a list means any of) and an inclusive date range."""

    kind: tuple[str, ...] = ()
    product: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    module: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    created_from: date | None = None
    created_to: date | None = None
    open_only: bool = False  # leave out records whose status is closed-like (indexing.records.is_closed_status)
    # The records' own attributes: ((key, (value, ...)), ...), sorted by key; every key must hold
    # one of its values (compared casefolded; keys as written).
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def is_empty(self) -> bool:
        return not any((self.kind, self.product, self.model, self.module, self.status,
                        self.created_from, self.created_to, self.open_only, self.attributes))

    @staticmethod
    def attribute_pairs(wanted: Mapping[str, str | Sequence[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``{"customer": "ACME", "site": ["F12", "F14"]}`` in the form ``attributes`` holds."""
        out = []
        for key, values in sorted((wanted or {}).items()):
            values = (values,) if isinstance(values, str) else tuple(values)
            out.append((key, tuple(dict.fromkeys(v.strip() for v in values))))
        return tuple(out)


def attribute_items(record: Record | Entry) -> tuple[tuple[str, str], ...]:
    """A record's attributes as (key, casefolded value) pairs, as filters compare them."""
    return tuple((k, v.casefold()) for k, v in sorted((getattr(record, "attributes", None) or {}).items()))


class FacetTable:
    """Per-key facet values; keys are a backend's row numbers (:mod:`indexing.local_backend`)."""

    def __init__(self):
        self._alive = np.zeros(0, dtype=bool)
        self._cols = {c: np.zeros(0, dtype=np.int32) for c in _COLUMNS}  # index into _values[c]
        self._values: dict[str, list[str]] = {c: [""] for c in _COLUMNS}
        self._index: dict[str, dict[str, int]] = {c: {"": 0} for c in _COLUMNS}
        self._created = np.zeros(0, dtype=np.int32)
        self.ids: dict[int, str] = {}
        self.codes: dict[int, tuple[str, ...]] = {}  # only records with codes
        self.attrs: dict[int, tuple[tuple[str, str], ...]] = {}  # only records with attributes
        self._postings: dict[tuple[str, str], set[int]] = {}  # (key, casefolded value) -> keys

    def __len__(self) -> int:
        return int(self._alive.sum())

    @property
    def size(self) -> int:
        return len(self._alive)

    def _grow(self, n: int) -> None:
        if n <= len(self._alive):
            return
        cap = max(n, int(len(self._alive) * 1.5) + 64)
        self._alive = np.concatenate([self._alive, np.zeros(cap - len(self._alive), dtype=bool)])
        self._created = np.concatenate([self._created, np.full(cap - len(self._created), -1, dtype=np.int32)])
        for c in _COLUMNS:
            col = self._cols[c]
            self._cols[c] = np.concatenate([col, np.zeros(cap - len(col), dtype=np.int32)])

    def _code_of(self, column: str, value: str) -> int:
        index = self._index[column]
        code = index.get(value)
        if code is None:
            code = index[value] = len(self._values[column])
            self._values[column].append(value)
        return code

    def value(self, column: str, key: int) -> str:
        return self._values[column][self._cols[column][key]] if key < len(self._alive) else ""

    def set(self, key: int, record: Record | Entry, codes: Collection[str]) -> None:
        self._grow(key + 1)
        self._alive[key] = True
        for c in _COLUMNS:
            self._cols[c][key] = self._code_of(c, (getattr(record, c) or "").casefold())
        self._created[key] = _day(record.created)
        self.ids[key] = record.id
        if codes:
            self.codes[key] = tuple(sys.intern(c) for c in sorted(codes))
        else:
            self.codes.pop(key, None)
        self._set_attributes(key, attribute_items(record))

    def _set_attributes(self, key: int, items: tuple[tuple[str, str], ...]) -> None:
        for pair in self.attrs.pop(key, ()):
            posting = self._postings.get(pair)
            if posting is not None:
                posting.discard(key)
                if not posting:
                    del self._postings[pair]
        if items:
            self.attrs[key] = items = tuple((sys.intern(k), v) for k, v in items)
            for pair in items:
                self._postings.setdefault(pair, set()).add(key)

    def remove(self, key: int) -> None:
        if key < len(self._alive):
            self._alive[key] = False
        self.ids.pop(key, None)
        self.codes.pop(key, None)
        self._set_attributes(key, ())

    def mask(self, filters: Filters | None = None, exclude: set[int] | None = None) -> np.ndarray:
        """Boolean mask indexed by key: True where the record is alive and passes ``filters``."""
        m = self._alive.copy()
        if filters is not None:
            for c in _COLUMNS:
                wanted = getattr(filters, c)
                if wanted:
                    codes = [self._index[c][w.casefold()] for w in wanted if w.casefold() in self._index[c]]
                    m &= np.isin(self._cols[c], np.asarray(codes, dtype=np.int32))
            if filters.created_from is not None:
                m &= self._created >= _day(filters.created_from)
            if filters.created_to is not None:
                m &= (self._created >= 0) & (self._created <= _day(filters.created_to))
            if filters.open_only:  # over the distinct statuses (a few dozen), not the records
                closed = [code for value, code in self._index["status"].items() if is_closed_status(value)]
                m &= ~np.isin(self._cols["status"], np.asarray(closed, dtype=np.int32))
            for name, values in filters.attributes:  # each key: any of its values
                has = np.zeros(len(m), dtype=bool)
                for value in values:
                    keys = self._postings.get((name, value.casefold()))
                    if keys:
                        has[np.fromiter(keys, dtype=np.int64, count=len(keys))] = True
                m &= has
        for key in exclude or ():
            if key < len(m):
                m[key] = False
        return m

    def columns(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Facet values of ``keys`` as arrays: each text column casefolded (object arrays, '' when
        unknown) and ``created`` as days since 1970 (-1 when unknown). Vectorised: the ranker reads
        a hundred candidates' facets per query."""
        keys = np.asarray(keys, dtype=np.int64)
        inside = (keys >= 0) & (keys < len(self._alive))
        k = np.where(inside, keys, 0)
        out: dict[str, np.ndarray] = {}
        for c in _COLUMNS:
            values = np.asarray(self._values[c], dtype=object)
            col = values[self._cols[c][k]] if len(self._alive) else np.full(len(keys), "", dtype=object)
            out[c] = np.where(inside, col, "")
        created = self._created[k] if len(self._alive) else np.full(len(keys), -1, dtype=np.int32)
        out["created"] = np.where(inside, created, -1)
        return out

    @staticmethod
    def day(d: date | str | None) -> int:
        """Days since 1970 of a date (-1 when none), as ``columns`` gives ``created``."""
        return _day(d)

    def copy(self) -> "FacetTable":
        """An independent copy (arrays and dicts copied; values are immutable strings and tuples)."""
        t = FacetTable()
        t._alive, t._created = self._alive.copy(), self._created.copy()
        t._cols = {c: a.copy() for c, a in self._cols.items()}
        t._values = {c: list(v) for c, v in self._values.items()}
        t._index = {c: dict(i) for c, i in self._index.items()}
        t.ids, t.codes, t.attrs = dict(self.ids), dict(self.codes), dict(self.attrs)
        t._postings = {pair: set(keys) for pair, keys in self._postings.items()}
        return t

    # -- persistence: plain JSON columns, rebuilt into arrays on load ---------------------------
    def to_json(self) -> dict:
        keys = sorted(self.ids)
        return {
            "keys": keys,
            "ids": [self.ids[k] for k in keys],
            "codes": [list(self.codes.get(k, ())) for k in keys],
            "created": [int(self._created[k]) for k in keys],
            **{c: [self._values[c][i] for i in self._cols[c][keys].tolist()] for c in _COLUMNS},
            "attributes": [dict(self.attrs.get(k, ())) for k in keys],
        }

    @classmethod
    def from_json(cls, data: dict) -> "FacetTable":
        t = cls()
        keys = np.asarray(data["keys"], dtype=np.int64)
        if len(keys):
            t._grow(int(keys.max()) + 1)
            t._alive[keys] = True
            t._created[keys] = np.asarray(data["created"], dtype=np.int32)
            for c in _COLUMNS:
                t._cols[c][keys] = np.fromiter((t._code_of(c, v) for v in data[c]), dtype=np.int32, count=len(keys))
        t.ids = {int(k): i for k, i in zip(keys.tolist(), data["ids"])}
        t.codes = {int(k): tuple(sys.intern(x) for x in c) for k, c in zip(keys.tolist(), data["codes"]) if c}
        for k, attrs in zip(keys.tolist(), data.get("attributes") or ()):  # none in a snapshot from before them
            if attrs:
                t._set_attributes(int(k), tuple(sorted(attrs.items())))
        return t
