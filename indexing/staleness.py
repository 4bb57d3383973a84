"""Whether an existing index can be brought up to date in place, or must be built again.

``caselink index`` applies only the changes logged since the current snapshot when that snapshot
was built the way the current settings would build it; re-indexing an unchanged corpus then costs
a load, not a rebuild. Anything that changes how *every* record is tokenised, embedded or stored
forces a full build, and the reason is reported to the user. An index that is not its store's,
or is ahead of it (:func:`check_store`), cannot be opened at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from caselink.config import Settings
from caselink.errors import IndexFormatError
from indexing.index_dir import REBUILD_HINT
from indexing.tokenize import text_params
from indexing.vectors import factory_string

if TYPE_CHECKING:
    from indexing.store import RecordStore

# An IVF index trained for N vectors keeps working as it grows, but its lists get long: past
# this growth factor in the number of lists it would now get, it is retrained from scratch.
IVF_GROWTH = 2.0
# BM25 settings baked into the postings; k1, b and delta only enter at query time, so a change
# to them is applied to the loaded index (LiveIndex.retune) instead of rebuilding it.
INDEX_TIME_BM25 = ("title_weight", "code_weight")


def _shape(factory: str) -> tuple[str, int, str]:
    """'IVF1264,SQ8' -> ('IVF', 1264, 'SQ8'); 'IDMap2,Flat' -> ('IDMap2', 0, 'Flat')."""
    head, _, storage = factory.partition(",")
    m = re.fullmatch(r"IVF(\d+)", head)
    return ("IVF", int(m.group(1)), storage) if m else (head, 0, storage)


def rebuild_reason(manifest: dict, *, settings: Settings, model_id: str, dim: int, cache_key: str,
                   user_words: list[str], records: int) -> str | None:
    """Why the index described by ``manifest`` cannot be updated in place; None when it can.

    ``user_words`` is the tokeniser dictionary a build would use now; ``records`` how many
    records the store holds now.
    """
    model = manifest.get("model", {})
    if model.get("id") != model_id or model.get("dim") != dim:
        return f"the encoder changed (index: {model.get('id')}, configured: {model_id})"
    if model.get("cache_key", cache_key) != cache_key:
        return f"the encoder's pooling changed (index: {model['cache_key']}, configured: {cache_key})"
    params = manifest.get("params", {})
    text = params.get("text", {})
    for name, built in text_params(text).items():
        now = getattr(settings.text, name)
        if built != now:
            return f"text.{name} changed (index: {built!r}, configured: {now!r})"
    if sorted(text.get("user_words", [])) != sorted(user_words):
        added = len(set(user_words) - set(text.get("user_words", [])))
        removed = len(set(text.get("user_words", [])) - set(user_words))
        return (f"the tokeniser dictionary changed ({added} new, {removed} removed product, model, module "
                f"or user-dictionary terms)")
    built = params.get("bm25", {})
    for name in INDEX_TIME_BM25:
        now = getattr(settings.bm25, name)
        if built.get(name) != now:
            return f"bm25.{name} changed (index: {built.get(name)!r}, configured: {now!r})"
    v = settings.vectors
    centering = params.get("vectors", {}).get("centering") or {}
    if centering.get("active") and not v.center:
        return "vectors.center is off but the index was built with vector centring"
    # Off, too few records, or a snapshot from before centring: fitted at the next full build
    # once there are enough records for the mean to be worth trusting.
    if v.center and not centering.get("active") and records >= v.center_min_records:
        if not centering.get("fitted_on"):
            return "vectors.center is on but the index was built without vector centring"
        return (f"the corpus has grown to {records:,} records, enough to fit vector centring "
                f"(the index was built on {centering['fitted_on']:,})")
    engine = manifest.get("backend", "local")  # snapshots before the seam: local
    if engine != settings.backend.kind:
        return f"backend.kind changed (index: {engine}, configured: {settings.backend.kind})"
    if engine == "milvus":  # Milvus sizes its own index; the collection is what must match
        collection = manifest.get("milvus", {}).get("collection")
        if collection != settings.backend.collection:
            return f"backend.collection changed (index: {collection}, configured: {settings.backend.collection})"
        return None  # a changed backend.dense_index is rebuilt in place (MilvusBackend.reindex), not from scratch
    have = params.get("vectors", {}).get("factory", "")
    want = factory_string(records, dim, exact_below=v.exact_below, nlist=v.ivf_nlist, quantizer=v.quantizer)
    (have_kind, have_lists, have_storage), (want_kind, want_lists, want_storage) = _shape(have), _shape(want)
    if (have_kind, have_storage) != (want_kind, want_storage):
        return f"the vector index type changes at {records:,} records (index: {have}, now: {want})"
    if want_lists > IVF_GROWTH * have_lists:
        return f"the corpus outgrew the vector index's training (index: {have}, now: {want})"
    return None


def check_store(snap: Path, manifest: dict, store: "RecordStore") -> None:
    """Refuse an index that is not this store's, or is ahead of it: replaying the store's later
    changes could not make it right, and it would serve records the store does not hold."""
    built_from = manifest.get("store", {}).get("id")  # absent in older snapshots: only the position is checked
    if built_from and built_from != store.store_id_:
        raise IndexFormatError(
            f"the index in {snap} was built from another record store (id {built_from[:8]}), not {store.where} "
            f"(id {store.store_id_[:8]}): was records.sqlite replaced?", hint=REBUILD_HINT)
    if manifest["change_seq"] > store.last_seq():
        raise IndexFormatError(
            f"the index in {snap} holds changes up to #{manifest['change_seq']}, but the record store's log ends "
            f"at #{store.last_seq()}: records.sqlite is an older copy (restored from a backup?)", hint=REBUILD_HINT)
