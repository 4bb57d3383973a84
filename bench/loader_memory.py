"""Peak memory of reading an export the way ``caselink index`` reads it, per format and source tree.

``caselink index`` opens each source with ``stream_path`` (before it existed: ``stream_table`` for a
file) and, when that returns None, loads it whole with ``load_path`` and keeps the list until the
build has stored it; the build stores a
streamed source's records a thousand at a time as they come. This benchmark runs exactly that
source handling (the lines of ``caselink/cli/commands.py``), with each record then dropped as the
store drops it, in a fresh child process per (file, tree), and reports the child's VmHWM: the
memory the loader adds to the build's own. Two trees side by side (``--trees``: name=path, each a
checkout whose ``indexing`` package is imported) give before and after on the same files.

Files (generated once under ``--data``, ``--rows`` rows each, the same tickets in each): a GBK CSV
under ``encoding = "auto"``, a UTF-8 JSON array, an .xlsx workbook, and a folder of 20 UTF-8 CSVs.

Usage::

    python -m bench.loader_memory --rows 200000 --trees before=/path/to/old/checkout,after=.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.common import log, md_table, write_report

CHILD = r"""
import json, sys, time
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

import pandas, pyarrow.parquet, openpyxl  # what the loaders import, in the baseline
from indexing.loaders import load_path, stream_table
try:
    from indexing.loaders import stream_path
except ImportError:  # a tree from before folders streamed: caselink index then streamed files only
    stream_path = lambda p: stream_table(p) if p.is_file() else None
base = hwm()
path = Path(sys.argv[1])
t0 = time.perf_counter()
stream = stream_path(path)  # caselink index, commands.py
if stream is None:
    records = load_path(path).records  # kept until the build has stored them
    n = sum(1 for _ in records)
    how = "load_path (whole)"
else:
    n = sum(1 for _ in stream.records())
    how = type(stream).__name__  # TableStream, FolderStream
print(json.dumps({"records": n, "seconds": time.perf_counter() - t0, "peak_mb": hwm(), "base_mb": base,
                  "how": how}))
"""

WORDS = ["真空腔体压力上升", "干泵跳停", "报警后停机", "检查冷却水流量", "排气压力偏高", "更换密封圈", "刻蚀机",
         "晶圆传送失败", "机械手复位", "射频电源反射功率高", "腔体漏率超标", "温控器读数漂移"]
HEADER = ["id", "title", "text", "error_codes", "product", "created"]  # Record fields: no mapping needed


def rows(n: int):
    rng = random.Random(7)
    for i in range(n):
        text = "，".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        yield [f"C-{i:07d}", f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{i}", text, f"E{rng.randint(1000, 9999)}",
               rng.choice(["ETCH-300", "CVD-200", "PVD-100"]), f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} 10:11"]


def generate(data: Path, n: int) -> dict[str, Path]:
    data.mkdir(parents=True, exist_ok=True)
    files = {"GBK CSV (auto)": data / f"gbk-{n}.csv", "JSON array": data / f"array-{n}.json",
             "XLSX": data / f"book-{n}.xlsx", "folder of 20 CSVs": data / f"folder-{n}"}
    if not files["GBK CSV (auto)"].exists():
        with files["GBK CSV (auto)"].open("w", encoding="gbk", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(rows(n))
    if not files["JSON array"].exists():
        with files["JSON array"].open("w", encoding="utf-8") as fh:
            fh.write("[\n")
            for i, row in enumerate(rows(n)):
                fh.write(("," if i else "") + json.dumps(dict(zip(HEADER, row)), ensure_ascii=False) + "\n")
            fh.write("]\n")
    if not files["XLSX"].exists():
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("工单")
        sheet.append(HEADER)
        for row in rows(n):
            sheet.append(row)
        book.save(files["XLSX"])
    folder = files["folder of 20 CSVs"]
    if not folder.exists():
        folder.mkdir()
        handles = [(folder / f"part-{k:02d}.csv").open("w", encoding="utf-8", newline="") for k in range(20)]
        writers = [csv.writer(h) for h in handles]
        for w in writers:
            w.writerow(HEADER)
        for i, row in enumerate(rows(n)):
            writers[i * 20 // n].writerow(row)
        for h in handles:
            h.close()
    return files


def measure(tree: Path, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, cwd=tree, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--trees", default=f"after={Path(__file__).resolve().parent.parent}",
                   help="name=path,... source trees to import indexing from (default: this one)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("CASELINK_BENCH_WORK", "bench/work")) / "loaders")
    p.add_argument("--only", default="", help="comma-separated subset of the formats")
    p.add_argument("--out", type=Path, default=Path("bench/loader_memory.md"))
    args = p.parse_args()
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.trees.split(","))]
    files = generate(args.data, args.rows)
    only = [f for f in args.only.split(",") if f]
    table = []
    for label, path in files.items():
        if only and label not in only:
            continue
        size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
        for name, tree in trees:
            load = os.getloadavg()[0]
            r = measure(tree, path)
            log(f"{label} {name}: {r}")
            table.append([label, f"{size / 2**20:.0f} MB", name, r["how"], f"{r['records']:,}", f"{r['seconds']:.1f}",
                          f"{r['peak_mb']:,.0f} MB", f"{r['peak_mb'] - r['base_mb']:,.0f} MB", f"{load:.1f}"])
    body = md_table(["file", "size", "tree", "read with", "records", "seconds", "peak RSS", "above imports",
                     "load 1-min"], table)
    write_report(args.out, f"Loader peak memory, {args.rows:,} rows", body,
                 notes=[f"trees: {', '.join(f'{n}={t}' for n, t in trees)}", f"at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"])


if __name__ == "__main__":
    main()
