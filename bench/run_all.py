"""Run every benchmark, one after another, each writing its Markdown file in bench/; then bench/summary.md.

Each benchmark runs as its own ``python -m bench.<name>`` process with this interpreter (use the
benchmark venv, ``bench/.env/bin/python``, so the peers are importable). ``--quick`` is a smoke
profile (10k records, short runs) for checking that everything works, not for figures.

Usage::

    bench/.env/bin/python -m bench.run_all [--only indexing,query] [--threads 0] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from bench.common import BENCH_DIR, REPO, log, md_table
from bench.machine import header

# Each benchmark runs once per argument list. The 1M runs use SQ8 vector storage (the option the
# 3 GB serving target asks for) and write their own files (``<name>-1m.md``), collected below.
FULL = {
    "corpus": [],  # the corpora are generated on demand by the others
    "indexing": [["--sizes", "10000,100000,1000000"]],
    "ann_recall": [["--sizes", "100000"],
                   ["--sizes", "1000000", "--quantizers", "flat,sq8", "--nprobes", "16,32,64,128",
                    "--out", "bench/ann_recall-1m.md"]],
    "keyword": [["--sizes", "10000,100000"]],
    "query": [["--sizes", "10000,100000"],
              ["--sizes", "1000000", "--quantizer", "sq8", "--clients", "1", "--duration", "8",
               "--out", "bench/query-1m.md"]],
    "memory": [["--sizes", "10000,100000,1000000", "--quantizer", "sq8"]],
    "upsert": [["--sizes", "10000,100000"]],
    "snapshot": [["--sizes", "100000,1000000", "--quantizer", "sq8"]],
    "peers": [[]],
}
QUICK = {
    "indexing": [["--sizes", "10000"]],
    "ann_recall": [["--sizes", "10000", "--nprobes", "1,8,32,128"]],
    "keyword": [["--sizes", "10000", "--queries", "300", "--slow-queries", "20"]],
    "query": [["--sizes", "10000", "--duration", "5"]],
    "memory": [["--sizes", "10000"]],
    "upsert": [["--sizes", "10000", "--records", "20", "--baseline", "5"]],
    "snapshot": [["--sizes", "10000"]],
    "peers": [["--max-queries", "300"]],
}
ORDER = ("indexing", "ann_recall", "keyword", "query", "memory", "upsert", "snapshot", "peers")
TAKES_THREADS = {"indexing", "ann_recall", "query", "memory", "upsert", "snapshot", "peers"}
TAKES_EMBED_SAMPLE = {"indexing", "ann_recall", "query", "memory", "upsert", "snapshot"}


def targets_of(path) -> list[list[str]]:
    """The rows of the '## Targets' table of a result file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    m = re.search(r"^## Targets\s*\n(.*?)(?:\n## |\Z)", text, re.S | re.M)
    if not m:
        return []
    rows = []
    for line in m.group(1).splitlines():
        if line.startswith("| ") and not line.startswith("| target") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(ORDER), help=f"benchmarks to run (default: {','.join(ORDER)})")
    p.add_argument("--threads", type=int, default=0, help="encoder threads, passed to every benchmark (0 = default)")
    p.add_argument("--embed-sample", default="auto", help="passed to the benchmarks that embed (default auto)")
    p.add_argument("--quick", action="store_true", help="smoke profile: 10k records, short runs")
    a = p.parse_args(argv)
    profile = QUICK if a.quick else FULL
    chosen = [b for b in ORDER if b in a.only.split(",")]
    failed = []
    for name in chosen:
        for args in profile.get(name, [[]]):
            cmd = [sys.executable, "-m", f"bench.{name}", *args]
            if name in TAKES_THREADS and a.threads:
                cmd += ["--threads", str(a.threads)]
            if name in TAKES_EMBED_SAMPLE and a.embed_sample != "auto":
                cmd += ["--embed-sample", a.embed_sample]
            log("running " + " ".join(cmd[1:]))
            t = time.perf_counter()
            rc = subprocess.run(cmd, cwd=REPO).returncode
            log(f"bench.{name} finished with exit code {rc} in {time.perf_counter() - t:.0f} s")
            if rc != 0:
                failed.append(name)
    rows = []
    for name in ORDER:
        for path in [BENCH_DIR / f"{name}.md", *sorted(BENCH_DIR.glob(f"{name}-*.md"))]:
            for r in targets_of(path):
                rows.append([f"[{path.stem}]({path.name})", *r])
    body = md_table(["benchmark", "target", "measured", "goal", "status", "note"], rows) if rows else "No targets.\n"
    text = header("caselink benchmark summary", command="python -m bench.run_all " + " ".join(sys.argv[1:]))
    text += "\nTargets from the issue, collected from each result file (see each file for its date and load).\n\n"
    text += body
    if failed:
        text += f"\nFailed in this run: {', '.join(failed)}.\n"
    (BENCH_DIR / "summary.md").write_text(text, encoding="utf-8")
    log(f"wrote {BENCH_DIR / 'summary.md'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
