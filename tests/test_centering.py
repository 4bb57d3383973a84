"""Vector centring: the transform itself, and how an index fits, stores, applies and refits it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.centering import FILE, VectorCentering, blocks_of
from indexing.encoders import EnsembleEncoder
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS, edited_manifest


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _anisotropic(n, dim, seed, offset=3.0):
    """Unit vectors that all lean one way, as sentence encoders' do."""
    rng = np.random.default_rng(seed)
    return _unit(rng.normal(size=(n, dim)) + offset * np.eye(dim)[0])


def test_centring_removes_the_shared_direction_and_keeps_unit_norm():
    x = _anisotropic(600, 16, 0)
    c = VectorCentering([(16, 1.0)], min_records=500).fit(x)
    y = c.transform(x)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # Unrelated vectors: high cosine before (the shared lean), about zero after.
    assert float(np.mean(x[:300] @ x[300:].T)) > 0.3
    assert abs(float(np.mean(y[:300] @ y[300:].T))) < 0.05
    assert np.array_equal(x, _anisotropic(600, 16, 0))  # the input is not changed


def test_each_ensemble_part_is_centred_alone_and_keeps_its_share():
    a, b = _anisotropic(600, 8, 1), _anisotropic(600, 4, 2, offset=10.0)
    x = np.hstack([a * np.sqrt(0.5), b * np.sqrt(0.5)]).astype(np.float32)
    y = VectorCentering([(8, 0.5), (4, 0.5)], min_records=10).fit(x).transform(x)
    assert np.allclose(np.linalg.norm(y[:, :8], axis=1) ** 2, 0.5, atol=1e-5)
    assert np.allclose(np.linalg.norm(y[:, 8:], axis=1) ** 2, 0.5, atol=1e-5)


def test_each_kind_is_centred_on_its_own_mean_and_free_text_like_a_case():
    # The same content written in two styles (a symptom and a procedure, say): each style leans its own way.
    rng = np.random.default_rng(4)
    content = rng.normal(size=(600, 16))
    case = _unit(content + 2.0 * np.eye(16)[0])
    sop = _unit(content + 2.0 * np.eye(16)[1])
    x, kinds = np.vstack([case, sop]), ["case"] * 600 + ["sop"] * 600
    per_kind = VectorCentering([(16, 1.0)], min_records=500).fit(x, kinds)
    assert sorted(per_kind.params()["kinds"]) == ["*", "case", "sop"]
    one_mean = VectorCentering([(16, 1.0)], min_records=500).fit(x)
    matched = {}
    for name, c in (("per kind", per_kind), ("corpus", one_mean)):
        y = c.transform(x, kinds)
        matched[name] = float(np.mean(np.sum(y[:600] * y[600:], axis=1)))  # a case against its own SOP
    assert matched["per kind"] > matched["corpus"] + 0.1
    # Free text (no kind) is centred like a case; a kind the fit never saw uses the corpus mean.
    q = x[:3]
    assert np.allclose(per_kind.transform(q), per_kind.transform(q, ["case"] * 3))
    assert np.allclose(per_kind.transform(q, ["problem"] * 3), one_mean.transform(q))


def test_too_few_records_leave_the_identity():
    x = _anisotropic(20, 8, 3)
    c = VectorCentering([(8, 1.0)], min_records=500).fit(x)
    assert not c.active and c.params()["active"] is False and c.params()["fitted_on"] == 20
    assert np.array_equal(c.transform(x), x)


def test_blocks_follow_the_encoder(use_encoder):
    assert blocks_of(use_encoder) == [(512, 1.0)]

    class Part:
        def __init__(self, dim):
            self.dim, self.model_id, self.spec = dim, f"p{dim}", f"p{dim}"

    assert blocks_of(EnsembleEncoder([Part(512), Part(384)])) == [(512, 0.5), (384, 0.5)]


@pytest.fixture
def centred(settings):
    """Settings that fit the centring on the small test corpus."""
    return settings.model_copy(update={"vectors": settings.vectors.model_copy(update={"center_min_records": 5})})


def test_a_build_fits_stores_and_reloads_the_centring(centred, use_encoder):
    svc, report = CaselinkService.build(centred, encoder=use_encoder, records=CORPUS)
    manifest = json.loads((report.snapshot / "manifest.json").read_text(encoding="utf-8"))
    params = manifest["params"]["vectors"]["centering"]
    # 5 cases are enough for a mean of their own; the problem order and the SOP sections use the corpus's.
    assert params == {"blocks": [[512, 1.0]], "fitted_on": len(CORPUS), "min_records": 5, "active": True,
                      "kinds": ["*", "case"]}
    assert FILE in manifest["files"]  # checksummed like every snapshot file
    mean = np.load(report.snapshot / FILE)
    raw, _ = svc.index.cache.encode(use_encoder, [svc.index.docs_.embedding_text(r) for r in CORPUS])
    cases = [i for i, r in enumerate(CORPUS) if r.kind == "case"]
    assert np.allclose(mean, [raw.mean(axis=0), raw[cases].mean(axis=0)], atol=1e-5)
    before = [(r.id, r.score) for r in svc.search(SearchQuery(text="干泵停机报警", mode="dense")).results]
    # A record added later is centred with the build's mean: its own text finds it at cosine 1.
    svc.upsert([Record(id="C-NEW", kind="case", title="冷却水流量低", text="水路滤网堵塞，流量低于 2 L/min")])
    top = svc.search(SearchQuery(text="冷却水流量低\n水路滤网堵塞，流量低于 2 L/min", mode="dense")).results[0]
    assert top.id == "C-NEW" and top.score == pytest.approx(1.0, abs=1e-3)
    svc.close()
    reopened = CaselinkService.open(centred, encoder=use_encoder)
    assert np.array_equal(reopened.index.centering_.state(), mean)
    again = [(r.id, r.score) for r in reopened.search(SearchQuery(text="干泵停机报警", mode="dense")).results]
    assert [i for i, _ in again if i != "C-NEW"] == [i for i, _ in before]
    reopened.close()


def test_centring_moves_unrelated_records_towards_zero_and_keeps_the_obvious_answer(settings, centred, use_encoder):
    query = SearchQuery(text="激光功率下降 曝光能量不足", mode="dense", k=20)
    plain_settings = settings.model_copy(update={"vectors": settings.vectors.model_copy(update={"center": False})})
    mean_cos, top = {}, {}
    for name, s in (("raw", plain_settings), ("centred", centred.model_copy(update={"data_dir": settings.data_dir / "c"}))):
        svc, _ = CaselinkService.build(s, encoder=use_encoder, records=CORPUS)
        cases = [r for r in CORPUS if r.kind == "case"]
        v, _ = svc.index.embed([svc.index.docs_.embedding_text(r) for r in cases], [r.kind for r in cases])
        sims = v @ v.T
        mean_cos[name] = float(sims[~np.eye(len(cases), dtype=bool)].mean())
        top[name] = svc.search(query).results[0].id
        svc.close()
    # n vectors centred on their own mean sum to zero: their mean pairwise cosine is about -1/(n-1).
    assert mean_cos["raw"] > 0.15 and mean_cos["centred"] == pytest.approx(-1 / (len(cases) - 1), abs=0.03)
    assert top == {"raw": "C-004", "centred": "C-004"}


def test_reindex_fits_the_centring_once_the_corpus_is_large_enough(settings, use_encoder):
    small = settings.model_copy(update={"vectors": settings.vectors.model_copy(update={"center_min_records": 10})})
    svc, first = CaselinkService.build(small, encoder=use_encoder, records=CORPUS[:5])
    assert not svc.index.centering_.active  # 5 records: too few to estimate a mean
    svc.close()
    svc, report = CaselinkService.build(small, encoder=use_encoder, records=CORPUS[5:], rebuild=False)
    assert report.applied == len(CORPUS) - 5 and report.rebuilt_because is None  # 8 records: still too few
    svc.close()
    more = [Record(id=f"C-X{i}", kind="case", title=f"腔体漏率偏高 {i}", text="氦检漏发现法兰密封不良") for i in range(2)]
    svc, report = CaselinkService.build(small, encoder=use_encoder, records=more, rebuild=False)
    assert "enough to fit vector centring" in report.rebuilt_because and report.applied is None
    assert svc.index.centering_.active
    svc.close()


def test_turning_centring_off_or_on_rebuilds(settings, use_encoder, centred):
    svc, _ = CaselinkService.build(centred, encoder=use_encoder, records=CORPUS)
    svc.close()
    off = centred.model_copy(update={"vectors": centred.vectors.model_copy(update={"center": False})})
    svc, report = CaselinkService.build(off, encoder=use_encoder, rebuild=False)
    assert report.rebuilt_because == "vectors.center is off but the index was built with vector centring"
    assert not svc.index.centering_.active and report.embedded == 0
    svc.close()
    svc, report = CaselinkService.build(centred, encoder=use_encoder, rebuild=False)
    assert report.rebuilt_because == "vectors.center is on but the index was built without vector centring"
    svc.close()


def test_a_damaged_centring_file_is_refused_and_plain_index_rebuilds(centred, use_encoder):
    from caselink.errors import IndexFormatError

    svc, report = CaselinkService.build(centred, encoder=use_encoder, records=CORPUS)
    svc.close()
    path = report.snapshot / FILE
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(IndexFormatError, match="corrupt") as exc:
        CaselinkService.open(centred, encoder=use_encoder)
    assert "caselink index" in exc.value.hint
    # Without the checksum check the shape is still checked, so a bad file never centres a query.
    with pytest.raises(IndexFormatError):
        CaselinkService.open(centred, encoder=use_encoder, verify=False)
    svc, again = CaselinkService.build(centred, encoder=use_encoder, rebuild=False)
    assert "unusable" in again.rebuilt_because and svc.index.centering_.active
    svc.close()


def test_a_format_2_snapshot_is_read_uncentred_and_caselink_index_centres_it(centred, use_encoder):
    """Format 2 = format 3 without centring (no centering.npy, no params.vectors.centering)."""
    svc, report = CaselinkService.build(centred, encoder=use_encoder, records=CORPUS)
    svc.close()
    with edited_manifest(report.snapshot) as m:
        assert m["format_version"] == 3
        (report.snapshot / FILE).unlink()
        del m["files"][FILE], m["params"]["vectors"]["centering"]
        m["format_version"] = 2
    svc = CaselinkService.open(centred, encoder=use_encoder)
    assert not svc.index.centering_.active  # queries stay raw, like the vectors it was built with
    assert svc.search(SearchQuery(text="E1023")).results[0].id == "C-001"
    svc.close()
    svc, again = CaselinkService.build(centred, encoder=use_encoder, rebuild=False)
    assert again.rebuilt_because == "vectors.center is on but the index was built without vector centring"
    assert svc.index.centering_.active and again.embedded == 0
    svc.close()
