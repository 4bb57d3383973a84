"""bench.learned's report: rows measured before the issue's reference was added still render."""

from __future__ import annotations

import json
from pathlib import Path

from bench.learned import _markdown

ROWS = Path(__file__).resolve().parents[1] / "bench" / "learned.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in ROWS.read_text(encoding="utf-8").splitlines() if line]


def test_the_reference_section_shows_paired_gains_and_skips_rows_measured_without_it():
    rows = _rows()
    hadoop = next(r for r in rows if r["set"] == "en_gitbugs_hadoop")
    old = json.loads(json.dumps(next(r for r in rows if r["set"] == "demo")))
    del old["paired_mrr@10"], old["modes"]["naive-rrf"]
    text = _markdown([old, hadoop], 0.5, 13)
    section = text.split("## Against the issue's reference")[1].split("## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| en_gitbugs_hadoop"]
    gain, lo, hi = hadoop["paired_mrr@10"]["hybrid - naive-rrf"]
    assert f"{gain:+.3f} [{lo:+.3f}, {hi:+.3f}]" in lines[1]
    assert "| +0.032 |" in lines[1]  # the expected gain on Hadoop
    # The rest of the report still renders the old row.
    assert text.count("| demo |") >= 4
