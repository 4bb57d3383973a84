"""What a snapshot keeps of the service's side: model, tokeniser and BM25 document parameters,
the vector centring, the store it follows.

The backend writes the snapshot (:meth:`indexing.local_backend.LocalBackend.persist`) and calls
:func:`capture_state` under its lock, so this only takes values that never change in place
(the centring's means are replaced, not edited; the tokeniser is fixed for an index's life).
The file layout is documented in docs/index-format.md.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from caselink import __version__
from indexing.centering import VectorCentering
from indexing.tokenize import TEXT_PARAMS

if TYPE_CHECKING:
    from indexing.live import LiveIndex


def _versions() -> dict[str, str]:
    import faiss
    import jieba

    return {"caselink": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "faiss": faiss.__version__, "jieba": jieba.__version__}


def capture_state(index: "LiveIndex") -> tuple[dict, Callable[[Path], None]]:
    """(the manifest fields of ``index``'s side, a writer of its files into a snapshot folder)."""
    s = index.settings
    tok = index.docs_.tokenizer
    centering = index.centering_.state()
    manifest = {
        "versions": _versions(),
        "model": {"id": index.encoder.model_id, "spec": getattr(index.encoder, "spec", index.encoder.model_id),
                  "dim": index.encoder.dim, "cache_key": getattr(index.encoder, "cache_key", index.encoder.model_id)},
        "store": {"id": index.store.store_id_},
        "params": {
            # what this index tokenised with, which may predate the settings
            "bm25": {"title_weight": index.docs_.title_weight, "code_weight": index.docs_.code_weight},
            "vectors": {"centering": index.centering_.params()},
            "text": {**{name: getattr(tok, name) for name in TEXT_PARAMS}, "user_words": list(tok.user_words)},
            "encoder": {"chunk_chars": s.encoder.chunk_chars, "lead_weight": s.encoder.lead_weight},
        },
    }
    return manifest, lambda folder: VectorCentering.write(folder, centering)
