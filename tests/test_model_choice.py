"""encoder.model = "auto" and the use-m3+minilm ensemble, with the real bundled models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caselink.config import load_settings
from caselink.errors import ConfigError
from indexing.encoders import EnsembleEncoder, load_encoder
from indexing.index_dir import IndexDir
from indexing.model_choice import ENGLISH, MULTILINGUAL, choose_model, is_english, spec_from_manifest
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService

ENGLISH_RECORDS = [
    Record(id=f"en{i}", kind="case", title=t, text=x) for i, (t, x) in enumerate([
        ("Printer jams on duplex", "Paper jams in the duplex unit after the firmware update; cleaning the rollers fixed it."),
        ("Laser power drifts", "Laser power drifts during long runs; recalibrating the sensor stopped the alarm."),
        ("Touch screen frozen", "The touch screen stops responding after sleep; a cold restart brings it back."),
        ("Pump noise", "The vacuum pump gets loud after 500 hours; replacing the bearing kit PN-7731-02 fixed it."),
        ("Login fails", "Operators cannot log in after the password policy changed; reset the local accounts."),
    ])
]
CHINESE_RECORDS = [
    Record(id=f"zh{i}", kind="case", title=t, text=x) for i, (t, x) in enumerate([
        ("激光功率漂移", "长时间运行后 laser power 漂移，报 E1023，重新校准传感器后恢复。"),
        ("真空泵异响", "运行 500 小时后真空泵噪音变大，更换轴承套件 PN-7731-02 后正常。"),
        ("觸控螢幕無反應", "休眠後觸控螢幕無反應，冷啟動後恢復。"),
        ("打印机卡纸", "固件升级后双面单元卡纸，清洁搓纸轮后解决。"),
        ("登录失败", "密码策略变更后操作员无法登录，重置本地账户。"),
        ("温度报警", "腔体温度超过上限报 E2001，检查冷却风扇。"),
    ])
]


def test_script_decides_language_and_codes_do_not_make_chinese_english():
    assert is_english("Laser power drifts during long runs")
    assert not is_english("长时间运行后 laser power 漂移，报 E1023，更换 PN-7731-02")
    assert not is_english("12345 --- 。")
    assert choose_model(ENGLISH_RECORDS)[0] == ENGLISH
    assert choose_model(CHINESE_RECORDS)[0] == MULTILINGUAL
    assert choose_model(ENGLISH_RECORDS[:3] + CHINESE_RECORDS[:3])[0] == MULTILINGUAL
    assert choose_model([])[0] == MULTILINGUAL


def test_manifest_spec_and_older_manifests_by_id():
    assert spec_from_manifest({"id": "x", "spec": "use-m3+minilm"}) == "use-m3+minilm"
    assert spec_from_manifest({"id": "use-m3"}) == "use-m3"
    assert spec_from_manifest({"id": "st:all-MiniLM-L6-v2"}) == "minilm"
    assert spec_from_manifest({"id": "st:some-local-dir"}) is None


@pytest.fixture(scope="module")
def ensemble():
    return load_encoder("use-m3+minilm", threads=1)


def test_ensemble_inner_product_is_the_mean_of_the_parts_cosines(ensemble):
    assert isinstance(ensemble, EnsembleEncoder)
    assert ensemble.dim == 512 + 384 and ensemble.spec == "use-m3+minilm"
    assert ensemble.model_id == "use-m3+st:all-MiniLM-L6-v2"
    texts = ["The printer jams in the duplex unit", "Paper gets stuck when printing on both sides",
             "激光功率漂移"]
    v = ensemble.encode(texts)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    use, mini = (p.encode(texts) for p in ensemble.parts)
    expected = 0.5 * (use @ use.T) + 0.5 * (mini @ mini.T)
    assert np.allclose(v @ v.T, expected, atol=1e-5)
    # The paraphrase pair is closer than the unrelated one, in both parts and in the ensemble.
    assert (v @ v.T)[0, 1] > (v @ v.T)[0, 2]


def test_the_cache_keeps_an_ensemble_part_by_part(ensemble, tmp_path):
    from indexing.embedding_cache import EmbeddingCache, text_hash

    texts = ["Pump trips on overheat", "Robot drops wafers", "干泵过温停机"]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        use = ensemble.parts[0]
        _, n = cache.encode(use, texts[:2])  # an index built with USE alone
        assert n == 2
        seen = []
        v, n = cache.encode(ensemble, texts, progress=seen.append)
        # USE had two of the texts already; only the third (USE) and all three (MiniLM) are embedded.
        assert n == 3 and sum(seen) == 3
        hashes = [text_hash(t) for t in texts]
        assert len(cache.get(use.cache_key, hashes, use.dim)) == 3  # stored under each part's own key
        assert len(cache.get(ensemble.cache_key, hashes, ensemble.dim)) == 0
        assert np.allclose(v, ensemble.encode(texts), atol=1e-6)
        again, n = cache.encode(ensemble, texts)
        assert n == 0 and np.array_equal(again, v)
    finally:
        cache.close()


def test_ensemble_progress_counts_each_text_once(ensemble):
    seen = []
    ensemble.encode([f"text number {i}" for i in range(10)], progress=seen.append)
    assert sum(seen) == 10


def test_a_one_model_ensemble_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="encoder.model"):
        load_encoder("use-m3+")


def _manifest(settings) -> dict:
    return json.loads((IndexDir(settings.index_root).current() / "manifest.json").read_text())


def test_auto_chooses_at_build_and_keeps_the_index_model_until_rebuild(tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path)
    assert settings.encoder.model == "auto"
    svc, _ = CaselinkService.build(settings, records=ENGLISH_RECORDS)
    try:
        assert svc.stats().model == "use-m3+st:all-MiniLM-L6-v2" and svc.stats().dim == 896
        assert "English" in svc.model_reason
        assert svc.model_spec == ENGLISH  # auto resolved: what loads this encoder again
        hits = svc.search(SearchQuery(text="paper gets stuck when printing on both sides", k=3, mode="dense"))
        assert hits.results[0].id == "en0"
    finally:
        svc.close()
    assert _manifest(settings)["model"]["spec"] == ENGLISH

    # The corpus turns Chinese: an in-place update keeps the index's encoder ...
    svc, report = CaselinkService.build(settings, records=CHINESE_RECORDS + [
        Record(id=f"zh-extra{i}", kind="case", title="风扇故障", text=f"第 {i} 台设备风扇转速过低，报 E30{i}。")
        for i in range(10)], rebuild=False)
    try:
        assert report.applied is not None and svc.stats().model == "use-m3+st:all-MiniLM-L6-v2"
        assert "current index" in svc.model_reason
    finally:
        svc.close()
    # ... and so does the server opening it,
    svc = CaselinkService.open(settings)
    try:
        assert svc.stats().model == "use-m3+st:all-MiniLM-L6-v2"
    finally:
        svc.close()
    # while a rebuild chooses again from what is stored now.
    svc, report = CaselinkService.build(settings, rebuild=True)
    try:
        assert svc.stats().model == "use-m3" and svc.stats().dim == 512
        assert "not English" in svc.model_reason and svc.model_spec == MULTILINGUAL
    finally:
        svc.close()
    assert _manifest(settings)["model"]["spec"] == MULTILINGUAL


def test_an_explicit_model_is_never_second_guessed(tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path, encoder__model="use-m3")
    svc, _ = CaselinkService.build(settings, records=ENGLISH_RECORDS)
    try:
        assert svc.stats().model == "use-m3" and svc.model_reason == "configured"
    finally:
        svc.close()
