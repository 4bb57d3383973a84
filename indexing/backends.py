"""The search-backend factory: ``backend.kind`` in the settings -> the engine behind the seam.

One module per backend (:mod:`indexing.local_backend`, ...), one interface
(:class:`indexing.backend.SearchBackend`), and these two functions, so nothing above
:mod:`indexing.live` names a backend class. A backend class offers ``build`` (fresh, from
batches of prepared entries) and ``load`` (what it persisted); the service decides which is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from caselink.config import Settings
from indexing.backend import Entry, SearchBackend
from indexing.local_backend import LocalBackend, Sidecar

__all__ = ["build_backend", "open_backend"]


def build_backend(settings: Settings, *, dim: int, total: int, batches: Iterable[Sequence[Entry]],
                  sample: np.ndarray, seq: int, sidecar: Sidecar | None = None, store=None,
                  term_total: int | None = None) -> SearchBackend:
    """A fresh backend of ``settings.backend.kind`` holding ``batches`` (about ``total`` entries;
    ``sample``: vectors like theirs for engines that train a quantizer), at change ``seq``.
    ``store``: the record store a shared backend keeps its keyword statistics in (None: the
    settings' store). ``term_total``: the summed number of terms of those ``total`` entries, for
    an engine that stores weights depending on the mean length (None: not counted)."""
    kind = settings.backend.kind
    if kind == "local":
        return LocalBackend.build(settings, dim=dim, total=total, batches=batches, sample=sample, seq=seq,
                                  sidecar=sidecar)
    if kind == "milvus":
        from indexing.milvus_backend import MilvusBackend  # pymilvus: the 'milvus' extra

        return MilvusBackend.build(settings, dim=dim, total=total, batches=batches, sample=sample, seq=seq,
                                   sidecar=sidecar, store=store, term_total=term_total)
    raise ValueError(f"unknown backend.kind '{kind}'")


def open_backend(settings: Settings, *, snapshot: tuple[Path, dict], sidecar: Sidecar | None = None,
                 store=None) -> SearchBackend:
    """The backend of ``settings.backend.kind`` as last persisted; ``snapshot`` is the index
    directory's current snapshot and its manifest (read and checked by the caller)."""
    kind = settings.backend.kind
    snap, manifest = snapshot
    if kind == "local":
        return LocalBackend.load(settings, snap, manifest, sidecar=sidecar)
    if kind == "milvus":
        from indexing.milvus_backend import MilvusBackend

        return MilvusBackend.load(settings, snap, manifest, sidecar=sidecar, store=store)
    raise ValueError(f"unknown backend.kind '{kind}'")
