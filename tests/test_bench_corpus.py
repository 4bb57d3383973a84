"""bench/corpus.py's files: two runs writing the same corpus at once never share a half-written file."""

from __future__ import annotations

import json
import threading

from bench import corpus


def _interleaved_generate(barrier: threading.Barrier):
    """corpus.generate, but each writer waits after its first block until the other has written
    its own: both temporary files are open and written at the same time, deterministically."""
    real = corpus.generate

    def generate(*args, **kwargs):
        for block in real(*args, **kwargs):
            yield block
            barrier.wait(timeout=60)

    return real, generate


def test_two_concurrent_runs_each_write_a_whole_corpus(tmp_path, monkeypatch):
    out = tmp_path / "cases.jsonl"
    expected = {}
    for seed in (1, 2):  # the two runs' contents differ, so a mix of them is visible
        single = tmp_path / f"single-{seed}.jsonl"
        corpus.write_corpus(50, single, seed=seed, workers=1)
        expected[seed] = single.read_text(encoding="utf-8")
    assert expected[1] != expected[2]

    barrier = threading.Barrier(2)
    real, interleaved = _interleaved_generate(barrier)
    monkeypatch.setattr(corpus, "generate", interleaved)
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            corpus.write_corpus(50, out, seed=seed, workers=1)
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    # The last rename wins, and what it put in place is one run's corpus whole, not a mix.
    assert out.read_text(encoding="utf-8") in (expected[1], expected[2])
    meta = json.loads(corpus.meta_path(out).read_text(encoding="utf-8"))
    assert meta["records"] == 50 and meta["seed"] in (1, 2)
    # No temporary file is left behind beside the corpus.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["cases.jsonl", "cases.jsonl.meta.json", "single-1.jsonl", "single-1.jsonl.meta.json",
         "single-2.jsonl", "single-2.jsonl.meta.json"])


def test_a_failed_run_leaves_neither_a_corpus_nor_a_temporary_file(tmp_path, monkeypatch):
    out = tmp_path / "cases.jsonl"

    def failing(*args, **kwargs):
        yield '{"id": "x"}\n'
        raise OSError("disk full")

    monkeypatch.setattr(corpus, "generate", failing)
    try:
        corpus.write_corpus(10, out, workers=1)
    except OSError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("write_corpus swallowed the generator's error")
    assert list(tmp_path.iterdir()) == []
