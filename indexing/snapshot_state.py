"""What a snapshot holds: captured from a live index under its lock, written to files after.

:func:`capture_state` is the only part that runs under the index lock, so it only shares or
copies in-memory structures (BM25's main segment is shared: it is never changed in place; FAISS
is cloned). :func:`write_state` does the slow part, files and the manifest, while searches and
writes go on. The file layout is documented in docs/index-format.md.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from caselink import __version__
from indexing.bm25 import BM25Index
from indexing.centering import VectorCentering
from indexing.tokenize import TEXT_PARAMS
from indexing.vectors import VectorIndex

if TYPE_CHECKING:
    from indexing.live import LiveIndex


def _versions() -> dict[str, str]:
    import faiss
    import jieba

    return {"caselink": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "faiss": faiss.__version__, "jieba": jieba.__version__}


def capture_state(index: "LiveIndex") -> dict:
    """Everything a snapshot writes, taken from ``index`` (the caller holds its lock)."""
    s = index.settings
    tok = index.docs_.tokenizer
    return {
        "bm25": index.bm25_.state(), "vectors": index.vectors_.state(), "facets": index.facets_.copy(),
        "centering": index.centering_.state(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": {
            "versions": _versions(),
            "model": {"id": index.encoder.model_id, "spec": getattr(index.encoder, "spec", index.encoder.model_id),
                      "dim": index.encoder.dim,
                      "cache_key": getattr(index.encoder, "cache_key", index.encoder.model_id)},
            "change_seq": index.seq_,
            "store": {"id": index.store.store_id_},
            "counts": {"records": len(index.bm25_), "vectors": index.vectors_.ntotal,
                       "terms": len(index.bm25_.vocab_)},
            "params": {
                # what this index tokenised and scores with, which may predate the settings
                "bm25": {"k1": index.bm25_.k1, "b": index.bm25_.b, "delta": index.bm25_.delta,
                         "title_weight": index.docs_.title_weight, "code_weight": index.docs_.code_weight},
                "vectors": {"factory": index.vectors_.factory_, "nprobe": s.vectors.nprobe,
                            "centering": index.centering_.params()},
                "text": {**{name: getattr(tok, name) for name in TEXT_PARAMS}, "user_words": list(tok.user_words)},
                "encoder": {"chunk_chars": s.encoder.chunk_chars, "lead_weight": s.encoder.lead_weight},
            },
        },
    }


def write_state(folder: Path, state: dict) -> dict:
    """Write a captured state's files into ``folder``; returns the manifest (without checksums)."""
    BM25Index.write(folder / "bm25", state["bm25"])
    VectorIndex.write(folder, state["vectors"])
    VectorCentering.write(folder, state["centering"])
    (folder / "facets.json").write_text(json.dumps(state["facets"].to_json(), ensure_ascii=False), encoding="utf-8")
    return {"created": state["created"], **state["manifest"]}
