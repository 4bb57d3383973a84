"""Snapshots: atomic swap, failed rebuilds leave the old index serving, corruption is refused."""

from __future__ import annotations

import json

import pytest

from caselink.errors import EncoderUnavailable, IndexFormatError
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS


class _FailingEncoder:
    """Fails halfway through embedding, like a model crashing or the process being killed."""

    def __init__(self, real):
        self.model_id, self.dim, self.cache_key, self.real = real.model_id, real.dim, real.cache_key, real

    def encode(self, texts, progress=None):
        raise EncoderUnavailable("simulated crash during embedding")


def test_failed_rebuild_leaves_previous_index_serving(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with pytest.raises(EncoderUnavailable):
        CaselinkService.build(settings, encoder=_FailingEncoder(use_encoder),
                              records=[Record(id="C-NEW", kind="case", title="全新的故障 E9999")])
    builds = list((settings.index_root / "builds").iterdir())
    assert [p.name for p in builds] == [first.snapshot.name]
    again = CaselinkService.open(settings, encoder=use_encoder)
    # The record reached the store (source of truth) and is replayed into the old snapshot.
    assert [r.id for r in again.search(SearchQuery(text="C-NEW E9999")).results][0] == "C-NEW"
    again.close()


def test_rebuild_swaps_and_cleans_interrupted_temp_folders(settings, use_encoder):
    svc, first = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    stale = settings.index_root / "builds" / ".tmp-20000101T000000Z-dead00"
    stale.mkdir()
    (stale / "vectors.faiss").write_bytes(b"half written")
    svc, second = CaselinkService.build(settings, encoder=use_encoder)
    svc.close()
    assert second.embedded == 0  # unchanged corpus: every vector came from the cache
    names = sorted(p.name for p in (settings.index_root / "builds").iterdir())
    assert names == [second.snapshot.name]
    assert (settings.index_root / "current").resolve() == second.snapshot


@pytest.mark.parametrize("victim", ["vectors.faiss", "bm25/data.npy", "facets.json"])
def test_corrupted_file_is_refused_with_the_rebuild_command(settings, use_encoder, victim):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    path = report.snapshot / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(IndexFormatError, match="corrupt") as exc:
        CaselinkService.open(settings, encoder=use_encoder)
    assert "caselink index" in exc.value.hint


def test_unknown_format_version_is_refused(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    manifest = report.snapshot / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="format version 99"):
        CaselinkService.open(settings, encoder=use_encoder)


def test_manifest_records_model_params_and_checksums(settings, use_encoder):
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    m = json.loads((report.snapshot / "manifest.json").read_text())
    assert m["model"] == {"id": "use-m3", "dim": 512, "cache_key": "use-m3|chunk400|lead0.5"}
    assert m["counts"]["records"] == len(CORPUS)
    assert m["params"]["bm25"]["k1"] == settings.bm25.k1
    assert set(m["files"]) >= {"vectors.faiss", "bm25/data.npy", "bm25/vocab.json", "facets.json"}
    assert all(len(d) == 64 for d in m["files"].values())


def test_opening_with_other_pooling_is_refused(settings, use_encoder):
    from indexing.encoders import USEEncoder

    svc, _ = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    svc.close()
    with pytest.raises(IndexFormatError, match="pooling"):
        CaselinkService.open(settings, encoder=USEEncoder(lead_weight=0.0))
