"""A build from scratch (indexing/live_build.py) against the store as it changes under it: records
written between its two passes are indexed as they are at the end, deleted ones are not, on the
local backend and on Milvus (whose build keeps the first pass's terms for the second)."""

from __future__ import annotations

import itertools

import pytest

from caselink.config import load_settings
from indexing.records import Record
from indexing.store import RecordStore
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from tests.conftest import CORPUS

NEW = Record(id="C-900", kind="case", title="Chiller flow alarm F7001 on the load lock",
             text="Load lock chiller reports low coolant flow, alarm F7001, after the pump was serviced.",
             error_codes=["F7001"], module="冷却")
_names = itertools.count()


@pytest.mark.parametrize("backend", ["local", "milvus"])
def test_records_written_between_the_two_passes_are_indexed_and_a_deleted_one_is_not(
        backend, request, tmp_path, use_encoder, monkeypatch):
    extra = {}
    if backend == "milvus":
        extra = {"backend__kind": "milvus", "backend__uri": request.getfixturevalue("milvus_uri"),
                 "backend__collection": f"live_build_{next(_names)}"}
    settings = load_settings(env={}, data_dir=tmp_path / "data", **extra)
    real = RecordStore.iter_records
    calls = 0

    def iter_records(self, batch=2000):
        nonlocal calls
        calls += 1
        if calls == 2:  # the second pass begins: another writer got in after the first
            self.write([NEW], ["C-002"])
        return real(self, batch)

    monkeypatch.setattr(RecordStore, "iter_records", iter_records)
    svc, report = CaselinkService.build(settings, encoder=use_encoder, records=CORPUS)
    try:
        assert calls == 2
        # The first pass saw (and embedded) the corpus as stored; the second pass embedded NEW.
        assert report.records == len(CORPUS) and report.embedded == len(CORPUS) + 1
        assert svc.indexed() == len(CORPUS)  # one in, one out
        assert svc.records(["C-002", NEW.id]).keys() == {NEW.id}
        for mode in ("dense", "keyword"):
            found = [r.id for r in svc.search(SearchQuery(text="load lock chiller coolant flow", mode=mode,
                                                          k=3)).results]
            assert found[0] == NEW.id, (mode, found)
            assert "C-002" not in [r.id for r in svc.search(SearchQuery(text="乾泵跳機 腔體壓力異常", mode=mode,
                                                                          k=10)).results]
    finally:
        svc.close()
