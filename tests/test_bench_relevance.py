"""bench.relevance's command line: the Milvus collection a run builds into, and bad settings refused."""

from __future__ import annotations

import json

import pytest

from bench import relevance


def _benchmark(folder):
    """A tiny benchmark folder in the shared format: four cases, each asked about twice."""
    answers = [
        ("dry pump trips with alarm E1023", ["E1023 dry pump overheat trip", "pump stops, alarm E1023"]),
        ("laser power drops, replace power module PN-7731-02", ["laser output low PN-7731-02", "laser power drop"]),
        ("robot vacuum grip alarm W3001 when picking a wafer", ["W3001 robot grip", "wafer pick vacuum alarm"]),
        ("stage alignment error after a move, recalibrate the interferometer", ["stage alignment error",
                                                                                "interferometer recalibration"]),
    ]
    records, pairs = [], ["id_a\tid_b\tlabel"]
    for i, (answer, questions) in enumerate(answers):
        records.append({"id": f"A{i}", "title": answer, "text": answer})
        for j, q in enumerate(questions):
            records.append({"id": f"Q{i}{j}", "title": q, "text": q})
            pairs.append(f"Q{i}{j}\tA{i}\t1")
    folder.mkdir()
    (folder / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    (folder / "pairs.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("args, named", [(["--collection", "bench-a"], "setting 'backend.collection'"),
                                         (["--collection", "bench_a", "--sets", "tiny,no_such_set"],
                                          "--sets: no benchmark no_such_set under")])
def test_bad_input_is_refused_naming_it_before_any_set_runs(args, named, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CASELINK_BENCHMARKS", str(tmp_path))
    _benchmark(tmp_path / "tiny")
    with pytest.raises(SystemExit) as exc:
        relevance.main(["--backend", "milvus", "--sets", "tiny", *args, "--out", str(tmp_path / "r.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "r.md").exists()


def test_two_runs_on_one_milvus_server_keep_a_collection_each(milvus_uri, tmp_path):
    from pymilvus import MilvusClient

    folder = _benchmark(tmp_path / "tiny")
    figures = {}
    for name in ("rel_first", "rel_second"):
        settings = relevance.settings_for(backend="milvus", backend_uri=milvus_uri, collection=name)
        assert settings.backend.collection == name
        figures[name] = relevance.run_set(folder, baselines=False, settings=settings,
                                          cache_path=tmp_path / "cache" / "embeddings.sqlite")["modes"]
    client = MilvusClient(uri=milvus_uri)
    try:
        # The second run built into its own collection: the first's is still there, whole.
        for name in ("rel_first", "rel_second"):
            assert client.has_collection(name)
            assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 12
    finally:
        client.close()
    assert figures["rel_first"] == figures["rel_second"]
    assert figures["rel_first"]["hybrid"]["hit@10"] == 1.0
