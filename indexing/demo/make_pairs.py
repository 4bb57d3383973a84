"""Derive labeled evaluation pairs (pairs.tsv) from the links in the demo data.

Run from anywhere:  python indexing/demo/make_pairs.py
Deterministic: fixed seed, sorted inputs, sorted output.

Positives (label 1):
  - a case and the problem order it links to;
  - a case and an SOP section it links to;
  - two cases linked to the same problem order (sampled per problem order).
Hard negatives (label 0), always sharing the module or the product, preferring both:
  - two cases that share no problem order and no SOP document;
  - a case and a problem order it is not linked to;
  - a case and an SOP section from a document that neither the case nor its problem's cases link to.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20251101
CASE_PAIRS_PER_PROBLEM = 6      # sampled positive case-case pairs per problem order
NEG_RATIO = 0.8                 # negatives per positive


def load_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sop_sections(folder: Path) -> dict[str, dict]:
    """Section id -> {doc_id, product, module}; n = 1-based order of '## ' headings."""
    sections = {}
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        if not m:
            raise SystemExit(f"{path.name}: missing front matter")
        meta = dict(
            (k.strip(), v.strip())
            for k, v in (line.split(":", 1) for line in m.group(1).splitlines() if ":" in line)
        )
        body = text[m.end():]
        n = sum(1 for line in body.splitlines() if line.startswith("## "))
        for i in range(1, n + 1):
            sections[f"{meta['doc_id']}#{i}"] = {
                "doc_id": meta["doc_id"], "product": meta.get("product", ""), "module": meta.get("module", ""),
            }
    return sections


def closeness(a: dict, b: dict) -> int:
    """2 = same module and product, 1 = same module or product, 0 = unrelated."""
    return (a.get("module") == b.get("module")) + (a.get("product") == b.get("product"))


def pick_hard(candidates: list[tuple[str, str, int]], k: int, rnd: random.Random) -> list[tuple[str, str]]:
    """Take k candidates, closest first (score 2 before 1), random within a score."""
    rnd.shuffle(candidates)
    candidates.sort(key=lambda c: -c[2])
    return [(a, b) for a, b, _ in candidates[:k]]


def main() -> None:
    rnd = random.Random(SEED)
    cases = sorted(load_jsonl(HERE / "cases.jsonl"), key=lambda d: d["id"])
    problems = {p["id"]: p for p in load_jsonl(HERE / "problems.jsonl")}
    sops = load_sop_sections(HERE / "sops")

    case_by_id = {c["id"]: c for c in cases}
    case_pos = {c["id"]: {l for l in c.get("links", []) if l in problems} for c in cases}
    case_sop = {c["id"]: {l for l in c.get("links", []) if l in sops} for c in cases}
    for c in cases:
        unknown = set(c.get("links", [])) - case_pos[c["id"]] - case_sop[c["id"]]
        if unknown:
            raise SystemExit(f"{c['id']}: unknown link(s) {sorted(unknown)}")
    case_docs = {cid: {sops[s]["doc_id"] for s in secs} for cid, secs in case_sop.items()}

    members = defaultdict(list)
    for cid, pids in case_pos.items():
        for pid in pids:
            members[pid].append(cid)
    # SOP documents used by the cases of each problem order: a case of that problem is related to them
    problem_docs = {pid: set().union(*(case_docs[c] for c in cids)) for pid, cids in members.items()}

    pos: set[tuple[str, str]] = set()
    for cid in case_by_id:
        for pid in case_pos[cid]:
            pos.add((cid, pid))
        for sid in case_sop[cid]:
            pos.add((cid, sid))
    for pid in sorted(members):
        combos = list(itertools.combinations(sorted(members[pid]), 2))
        rnd.shuffle(combos)
        pos.update(combos[:CASE_PAIRS_PER_PROBLEM])

    def related_docs(cid: str) -> set[str]:
        docs = set(case_docs[cid])
        for pid in case_pos[cid]:
            docs |= problem_docs.get(pid, set())
        return docs

    n_neg = int(len(pos) * NEG_RATIO)
    ids = sorted(case_by_id)

    cc = []
    for a, b in itertools.combinations(ids, 2):
        ca, cb = case_by_id[a], case_by_id[b]
        if case_pos[a] & case_pos[b] or related_docs(a) & related_docs(b):
            continue
        s = closeness(ca, cb)
        if s:
            cc.append((a, b, s))
    cp = []
    for a in ids:
        for pid, p in sorted(problems.items()):
            if pid in case_pos[a]:
                continue
            s = closeness(case_by_id[a], p)
            if s:
                cp.append((a, pid, s))
    cs = []
    for a in ids:
        rd = related_docs(a)
        for sid, sec in sorted(sops.items()):
            if sec["doc_id"] in rd:
                continue
            s = closeness(case_by_id[a], sec)
            if s:
                cs.append((a, sid, s))

    neg = set()
    neg.update(pick_hard(cc, n_neg // 2, rnd))
    neg.update(pick_hard(cp, n_neg // 4, rnd))
    neg.update(pick_hard(cs, n_neg - n_neg // 2 - n_neg // 4, rnd))
    assert not (neg & pos)

    rows = sorted([(a, b, 1) for a, b in pos] + [(a, b, 0) for a, b in neg])
    with (HERE / "pairs.tsv").open("w", encoding="utf-8", newline="\n") as f:
        f.write("id_a\tid_b\tlabel\n")
        for a, b, label in rows:
            f.write(f"{a}\t{b}\t{label}\n")
    print(f"pairs.tsv: {len(rows)} pairs, {len(pos)} positive, {len(neg)} negative")


if __name__ == "__main__":
    main()
