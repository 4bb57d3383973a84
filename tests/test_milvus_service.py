"""The service end to end on the Milvus backend: the same demo records, the same answers as on
``local``; reopened from Milvus, it keeps them and takes writes searchable at once."""

from __future__ import annotations

import pytest

from _server import demo_records
from caselink.config import load_settings
from indexing.records import Record
from recommender.results import SearchQuery
from recommender.service import CaselinkService

QUERIES = ("E1023", "真空泵无法启动，抽真空超时", "真空幫浦無法啟動", "spindle vibration", "A-4410")


def _settings(tmp_path, kind: str, uri: str):
    return load_settings(env={}, data_dir=tmp_path / kind, backend__kind=kind, backend__uri=uri,
                         backend__collection=f"svc_{tmp_path.name[-20:].replace('-', '_')}")


def _answers(svc: CaselinkService) -> list:
    out = [[(r.id, round(r.score, 3)) for r in svc.search(SearchQuery(text=t, k=5)).results] for t in QUERIES]
    out.append([r.id for r in svc.related("C-1001", k=5).results])
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory, milvus_uri, use_encoder):
    tmp = tmp_path_factory.mktemp("milvus-service")
    answers = {}
    for kind in ("local", "milvus"):
        svc, _ = CaselinkService.build(_settings(tmp, kind, milvus_uri), encoder=use_encoder, records=demo_records())
        try:
            answers[kind] = _answers(svc)
        finally:
            svc.close()
    return tmp, answers


def test_the_service_on_milvus_answers_as_on_local(both):
    _, answers = both
    assert answers["milvus"][0][0][0] == "C-1001"  # the code's own case first
    assert answers["milvus"][1][0][0] in {"C-1001", "P-2001"}  # a Chinese symptom finds the vacuum pump
    assert answers["milvus"] == answers["local"]


def test_a_build_writes_each_record_to_milvus_once_and_answers_as_local(both, tmp_path, milvus_uri, use_encoder,
                                                                       milvus_upserts):
    _, answers = both
    written = milvus_upserts
    settings = _settings(tmp_path, "milvus", milvus_uri)
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=demo_records())
    try:
        assert written[settings.backend.collection] == report.records == len(demo_records())
        assert _answers(svc) == answers["local"]
    finally:
        svc.close()


def test_reopened_from_milvus_it_keeps_its_answers_and_a_write_is_searchable_at_once(both, milvus_uri, use_encoder):
    tmp, answers = both
    settings = _settings(tmp, "milvus", milvus_uri)
    svc = CaselinkService.open(settings, encoder=use_encoder)
    try:
        assert _answers(svc) == answers["milvus"]
        assert svc.stats().backend == "milvus"
        svc.upsert([Record(id="C-9001", kind="case", title="離子泵報警 Q7781", text="离子泵高压报警 Q7781，真空度下降。",
                           error_codes=["Q7781"])])
        assert svc.search(SearchQuery(text="Q7781", k=3)).results[0].id == "C-9001"
        svc.delete("C-9001")
        assert "C-9001" not in [r.id for r in svc.search(SearchQuery(text="Q7781", k=3)).results]
    finally:
        svc.close()


def test_caselink_index_migrates_a_local_index_to_milvus_from_the_store(tmp_path, milvus_uri, use_encoder):
    local = load_settings(env={}, data_dir=tmp_path / "data")
    svc, _ = CaselinkService.build(local, encoder=use_encoder, records=demo_records())
    svc.close()
    milvus = load_settings(env={}, data_dir=tmp_path / "data", backend__kind="milvus", backend__uri=milvus_uri,
                           backend__collection="svc_migrated")
    svc, report = CaselinkService.build(milvus, encoder=use_encoder, rebuild=False)  # what `caselink index` does
    try:
        assert report.rebuilt_because == "backend.kind changed (index: local, configured: milvus)"
        assert report.embedded == 0  # the embedding cache: nothing is encoded again
        assert svc.stats().backend == "milvus" and svc.search(SearchQuery(text="E1023", k=1)).results[0].id == "C-1001"
    finally:
        svc.close()


def test_caselink_index_backend_milvus_then_stats_and_search_from_it(tmp_path, milvus_uri):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in demo_records()), encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CASELINK_")}, "PYTHONPATH": str(root),
           "CASELINK_DATA_DIR": str(tmp_path / "data"), "CASELINK_BACKEND_URI": milvus_uri,
           "CASELINK_BACKEND_COLLECTION": "svc_cli", "CASELINK_THREADS": "1"}

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "caselink.cli", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("index", str(records), "--backend", "milvus")
    env["CASELINK_BACKEND"] = "milvus"
    stats = json.loads(cli("stats", "--json"))
    assert stats["backend"] == "milvus" and stats["factory"] == "milvus:FLAT" and stats["built_at"]
    assert json.loads(cli("search", "E1023", "--flat", "--json"))["results"][0]["id"] == "C-1001"


def test_caselink_index_rebuilds_a_changed_dense_index_in_place_and_serve_searches_the_one_built(
        tmp_path, milvus_uri, use_encoder, milvus_upserts, caplog):
    flat = _settings(tmp_path, "milvus", milvus_uri)
    svc, _ = CaselinkService.build(flat, encoder=use_encoder, records=demo_records())
    svc.close()
    ivf = flat.model_copy(update={"backend": flat.backend.model_copy(
        update={"dense_index": "IVF_FLAT", "dense_nlist": 2, "dense_nprobe": 2})})
    svc = CaselinkService.open(ivf, encoder=use_encoder)  # what `caselink serve` does: no rebuild
    try:
        assert svc.stats().factory == "milvus:FLAT"
        assert "has the dense index FLAT, the settings ask for IVF_FLAT (nlist 2)" in caplog.text
    finally:
        svc.close()
    milvus_upserts.clear()
    svc, report = CaselinkService.build(ivf, encoder=use_encoder, rebuild=False)  # what `caselink index` does
    try:
        assert report.rebuilt_because is None and report.embedded == 0
        assert milvus_upserts.get(flat.backend.collection, 0) == 0  # no record written again
        assert svc.stats().factory == "milvus:IVF_FLAT"
        assert svc.search(SearchQuery(text="真空泵无法启动，抽真空超时", k=3)).results[0].id in {"C-1001", "P-2001"}
    finally:
        svc.close()
    caplog.clear()
    svc = CaselinkService.open(ivf, encoder=use_encoder)
    try:
        assert svc.stats().factory == "milvus:IVF_FLAT" and "has the dense index" not in caplog.text
    finally:
        svc.close()
    # the lists are part of the index (recorded beside it): a new nlist is rebuilt too
    more = ivf.model_copy(update={"backend": ivf.backend.model_copy(update={"dense_nlist": 3})})
    caplog.set_level("INFO", logger="caselink.milvus")
    svc, report = CaselinkService.build(more, encoder=use_encoder, rebuild=False)
    try:
        assert report.rebuilt_because is None and "IVF_FLAT (nlist 2) -> IVF_FLAT (nlist 3)" in caplog.text
    finally:
        svc.close()
