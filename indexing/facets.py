"""Facet columns (kind, product, model, module, status, created, codes) held as arrays by key.

Filters become one vectorised boolean mask over all keys, which FAISS takes as an ID-selector
bitmap and BM25 as a keep-mask, so filtering never falls back to a Python loop over records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from indexing.records import Record

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

    def is_empty(self) -> bool:
        return not any((self.kind, self.product, self.model, self.module, self.status,
                        self.created_from, self.created_to))


class FacetTable:
    """Per-key facet values; keys are the record store's integer ``num``."""

    def __init__(self):
        self._alive = np.zeros(0, dtype=bool)
        self._cols = {c: np.zeros(0, dtype=object) for c in _COLUMNS}
        self._created = np.zeros(0, dtype=np.int32)
        self.ids: dict[int, str] = {}
        self.codes: dict[int, frozenset[str]] = {}

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
            self._cols[c] = np.concatenate([col, np.full(cap - len(col), "", dtype=object)])

    def set(self, key: int, record: Record, codes: frozenset[str]) -> None:
        self._grow(key + 1)
        self._alive[key] = True
        for c in _COLUMNS:
            self._cols[c][key] = (getattr(record, c) or "").casefold()
        self._created[key] = _day(record.created)
        self.ids[key] = record.id
        self.codes[key] = codes

    def remove(self, key: int) -> None:
        if key < len(self._alive):
            self._alive[key] = False
        self.ids.pop(key, None)
        self.codes.pop(key, None)

    def mask(self, filters: Filters | None = None, exclude: set[int] | None = None) -> np.ndarray:
        """Boolean mask indexed by key: True where the record is alive and passes ``filters``."""
        m = self._alive.copy()
        if filters is not None:
            for c in _COLUMNS:
                wanted = getattr(filters, c)
                if wanted:
                    m &= np.isin(self._cols[c], [w.casefold() for w in wanted])
            if filters.created_from is not None:
                m &= self._created >= _day(filters.created_from)
            if filters.created_to is not None:
                m &= (self._created >= 0) & (self._created <= _day(filters.created_to))
        for key in exclude or ():
            if key < len(m):
                m[key] = False
        return m

    # -- persistence: plain JSON columns, rebuilt into arrays on load ---------------------------
    def to_json(self) -> dict:
        keys = sorted(self.ids)
        return {
            "keys": keys,
            "ids": [self.ids[k] for k in keys],
            "codes": [sorted(self.codes[k]) for k in keys],
            "created": [int(self._created[k]) for k in keys],
            **{c: [self._cols[c][k] for k in keys] for c in _COLUMNS},
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
                t._cols[c][keys] = np.asarray(data[c], dtype=object)
        t.ids = {int(k): i for k, i in zip(keys, data["ids"])}
        t.codes = {int(k): frozenset(c) for k, c in zip(keys, data["codes"])}
        return t
