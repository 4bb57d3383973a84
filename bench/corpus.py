"""Synthetic service cases at benchmark scale (10k, 100k, 1M), recombined from the demo history.

The demo's cases and problem orders (``indexing/demo/cases.jsonl``, ``problems.jsonl``; whatever
is there when this runs) supply the vocabulary: sentences and clauses of titles, symptoms, causes
and resolutions, per language and module, plus products, models, groups and categories. Each
generated case

- takes a *template* record (so product, module and the first sentence agree) in Chinese or, for
  a share (``--english-share``, default 0.15), English;
- recombines sentences of the same language and module (a few from other modules), with a long-tailed
  count (lognormal), so lengths range from one line to a couple of thousand characters (several
  encoder chunks);
- splices clauses of two sentences for a share, so word sequences are new;
- swaps codes: error codes (E1023, W3001, A-4410), part numbers (PN-7731-02), serial numbers and
  software versions are replaced consistently within the record, half of the time by a fresh code,
  so the code vocabulary grows with the corpus as it does in a real ticket system;
- swaps product/model or module for a share;
- is written, when Chinese, in one script: converted to simplified (OpenCC t2s, 75%) or traditional
  (s2t, 25%), as a record from one site would be.

Generation is deterministic for a seed and works in independent chunks of 10,000 records, each
seeded by (seed, chunk number): the first 10k records of the 100k and 1M corpora are the 10k
corpus, so embeddings cached for a smaller corpus serve the larger one. Chunks run in parallel
(``--workers``, default: the usable cores). A sidecar ``<out>.meta.json`` records the seed, the
sha256 of the demo files used and summary statistics.

Usage::

    python -m bench.corpus --size 100k [--seed 7] [--out bench/work/corpus/cases-100k-s7.jsonl]
    python -m bench.corpus --size 10k --queries 1000   # also writes realistic queries
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import WORK, log, parse_size, size_label

DEMO_DIR = Path(__file__).resolve().parent.parent / "indexing" / "demo"
DEMO_FILES = ("cases.jsonl", "problems.jsonl")
CHUNK = 10_000

# Codes swapped per record. Model names (HX-E520) and chemistry (Cl2) are vocabulary, not swapped.
_CODE = re.compile(
    r"(?<![A-Za-z0-9-])(?:(?P<err>[EW]\d{4})|(?P<alarm>A-\d{4})|(?P<part>PN-\d{4}-\d{2})"
    r"|(?P<ver>v\d\.\d+\.\d+)|(?P<sn>SN \d{2}-\d{4}))(?![A-Za-z0-9])"
)
_SENT = re.compile(r"(?<=[。！？；!?;\n])|(?<=[.])\s+")
_CLAUSE_ZH = re.compile(r"(?<=，)")
_CLAUSE_EN = re.compile(r"(?<=,)\s+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_END_PUNCT = "，,。.！!？?；;：: "
_MEANINGFUL = re.compile(r"[\w\u4e00-\u9fff]{2}")

SCRIPTS = ("simp", "trad")
SCRIPT_P = (0.75, 0.25)


def lang_of(text: str) -> str:
    """'zh' when at least a few CJK characters appear, else 'en'."""
    return "zh" if len(_CJK.findall(text)) >= 3 else "en"


# A piece of text with code slots: literal strings and (kind, original) tuples.
Piece = tuple


def _compile(text: str) -> Piece:
    parts: list = []
    last = 0
    for m in _CODE.finditer(text):
        if m.start() > last:
            parts.append(text[last:m.start()])
        parts.append((m.lastgroup, m.group(0)))
        last = m.end()
    if last < len(text):
        parts.append(text[last:])
    return tuple(parts)


def _convert(piece: Piece, conv) -> Piece:
    return tuple(conv(p) if isinstance(p, str) else p for p in piece)


@dataclass
class Vocabulary:
    """Sentence pools and facet values taken from the demo history."""

    templates: dict[str, list[dict]] = field(default_factory=lambda: {"zh": [], "en": []})
    # (lang, module, field) -> pieces; field in title/text/cause/resolution
    pools: dict[tuple[str, str, str], list[Piece]] = field(default_factory=lambda: defaultdict(list))
    clauses: dict[tuple[str, str], list[Piece]] = field(default_factory=lambda: defaultdict(list))
    models_of: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    modules: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=lambda: {"zh": [], "en": []})
    categories: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    # script variants of every piece, computed once: {script: {piece: converted piece}}
    variants: dict[str, dict[Piece, Piece]] = field(default_factory=dict)

    @classmethod
    def from_demo(cls, demo_dir: Path = DEMO_DIR) -> "Vocabulary":
        v = cls()
        records = []
        for name in DEMO_FILES:
            path = demo_dir / name
            if not path.is_file():
                continue
            data = path.read_bytes()
            v.sources[name] = hashlib.sha256(data).hexdigest()
            for line in data.decode("utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # the file may be being written right now
                    continue
        if not records:
            raise SystemExit(f"no demo records found under {demo_dir}")
        modules, categories = set(), set()
        for r in records:
            lang = lang_of(r.get("title", "") + r.get("text", ""))
            module = r.get("module", "") or "其他"
            modules.add(module)
            if r.get("category"):
                categories.add(r["category"])
            if r.get("product") and r.get("model") and r["model"] not in v.models_of[r["product"]]:
                v.models_of[r["product"]].append(r["model"])
            if r.get("group") and r["group"] not in v.groups[lang]:
                v.groups[lang].append(r["group"])
            sentences = [s.strip() for s in _SENT.split(r.get("text", "")) if s and _MEANINGFUL.search(s)]
            if not sentences:
                continue
            t = {"lang": lang, "module": module, "product": r.get("product", ""), "model": r.get("model", ""),
                 "title": _compile(r.get("title", "") or sentences[0][:40]),
                 "first": _compile(sentences[0]), "codes": tuple(r.get("error_codes", []))}
            v.templates[lang].append(t)
            v.pools[(lang, module, "title")].append(t["title"])
            for s in sentences:
                v.pools[(lang, module, "text")].append(_compile(s))
                v.pools[(lang, "*", "text")].append(_compile(s))
                splitter = _CLAUSE_ZH if lang == "zh" else _CLAUSE_EN
                for c in splitter.split(s):
                    c = c.strip().rstrip(_END_PUNCT)
                    if len(c) >= 4:
                        v.clauses[(lang, module)].append(_compile(c))
            for fld, target in (("cause", "cause"), ("resolution", "resolution"), ("workaround", "resolution")):
                for s in _SENT.split(r.get(fld, "") or ""):
                    if s and _MEANINGFUL.search(s):
                        v.pools[(lang, module, target)].append(_compile(s.strip()))
        v.modules = sorted(modules)
        v.categories = sorted(categories)
        for lang in ("zh", "en"):
            if not v.groups[lang]:
                v.groups[lang] = v.groups["zh"] or v.groups["en"] or ["service"]
        if not v.templates["en"]:
            v.templates["en"] = v.templates["zh"]
        v._variants()
        return v

    def _variants(self) -> None:
        import opencc

        s2t, t2s = opencc.OpenCC("s2t").convert, opencc.OpenCC("t2s").convert
        pieces = {p for pool in self.pools.values() for p in pool}
        pieces |= {p for pool in self.clauses.values() for p in pool}
        pieces |= {t["title"] for ts in self.templates.values() for t in ts}
        pieces |= {t["first"] for ts in self.templates.values() for t in ts}
        self.variants = {"simp": {p: _convert(p, t2s) for p in pieces}, "trad": {p: _convert(p, s2t) for p in pieces}}
        self.facet_variants = {"simp": t2s, "trad": s2t}

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.sources):
            h.update(f"{name}:{self.sources[name]}".encode())
        return h.hexdigest()[:16]


class _Gen:
    """Generates one chunk of records; all randomness from one seeded ``random.Random``."""

    STATUSES = (("closed", 0.86), ("open", 0.05), ("monitoring", 0.05), ("waiting-parts", 0.04))
    PRIORITIES = (("P1", 0.08), ("P2", 0.42), ("P3", 0.35), ("P4", 0.15))
    START = date(2019, 1, 1)
    DAYS = (date(2025, 12, 31) - date(2019, 1, 1)).days

    def __init__(self, vocab: Vocabulary, rng: random.Random, english_share: float):
        self.v = vocab
        self.r = rng
        self.english_share = english_share
        self.products = sorted(vocab.models_of)

    def _weighted(self, options):
        x = self.r.random()
        acc = 0.0
        for value, p in options:
            acc += p
            if x < acc:
                return value
        return options[-1][0]

    def _code(self, kind: str, orig: str, mapping: dict) -> str:
        new = mapping.get(orig)
        if new is not None:
            return new
        r = self.r
        if r.random() < 0.5:
            new = orig  # the common codes recur across many records
        elif kind == "err":
            new = f"{orig[0]}{r.randint(1000, 9999)}"
        elif kind == "alarm":
            new = f"A-{r.randint(1000, 9999)}"
        elif kind == "part":
            new = f"PN-{r.randint(1000, 9999)}-{r.randint(1, 99):02d}"
        elif kind == "ver":
            new = f"v{r.randint(1, 6)}.{r.randint(0, 12)}.{r.randint(0, 9)}"
        else:  # serial numbers are unique
            new = f"SN {r.randint(10, 29)}-{r.randint(0, 9999):04d}"
        mapping[orig] = new
        return new

    def _render(self, piece: Piece, script: str, mapping: dict) -> str:
        if script != "orig":
            piece = self.v.variants[script].get(piece, piece)
        return "".join(p if isinstance(p, str) else self._code(p[0], p[1], mapping) for p in piece)

    def _sentence(self, lang: str, module: str, script: str, mapping: dict) -> str:
        r = self.r
        if r.random() < 0.2:  # splice two clauses into a new sentence
            pool = self.v.clauses.get((lang, module)) or self.v.clauses.get((lang, self.v.modules[0])) or []
            if len(pool) >= 2:
                a, b = r.choice(pool), r.choice(pool)
                sep, end = ("，", "。") if lang == "zh" else (", ", ".")
                return self._render(a, script, mapping) + sep + self._render(b, script, mapping) + end
        key = (lang, module if r.random() < 0.9 else "*", "text")
        pool = self.v.pools.get(key) or self.v.pools[(lang, "*", "text")]
        return self._render(r.choice(pool), script, mapping)

    def record(self, i: int) -> dict:
        r, v = self.r, self.v
        lang = "en" if r.random() < self.english_share else "zh"
        t = r.choice(v.templates[lang])
        lang = t["lang"]
        script = self._weighted(tuple(zip(SCRIPTS, SCRIPT_P))) if lang == "zh" else "orig"
        module = t["module"] if r.random() < 0.85 else r.choice(v.modules)
        if r.random() < 0.8 and t["product"]:
            product, model = t["product"], t["model"]
        else:
            product = r.choice(self.products)
            model = r.choice(v.models_of[product])
        mapping: dict[str, str] = {}
        title_pool = v.pools.get((lang, module, "title"))
        title_piece = t["title"] if r.random() < 0.7 or not title_pool else r.choice(title_pool)
        title = self._render(title_piece, script, mapping)
        n_sent = min(1 + int(r.lognormvariate(0.7, 0.8)), 30)
        sentences = [self._render(t["first"], script, mapping)]
        for _ in range(n_sent - 1):
            s = self._sentence(lang, module, script, mapping)
            if s in sentences:  # one retry keeps repeats rare without a loop
                s = self._sentence(lang, module, script, mapping)
            if s not in sentences:
                sentences.append(s)
        joiner = "" if lang == "zh" else " "
        text = joiner.join(sentences)
        out = {"id": f"BC-{i:07d}", "kind": "case", "title": title, "text": text,
               "product": product, "model": model, "module": module}
        codes = [self._code("alarm" if c.startswith("A-") else "err", c, mapping) for c in t["codes"]]
        codes += [new for old, new in mapping.items() if _CODE.fullmatch(new) and new[0] in "EWA" and new not in codes]
        out["error_codes"] = codes[:6]
        status = self._weighted(self.STATUSES)
        out["status"] = status
        out["priority"] = self._weighted(self.PRIORITIES)
        if v.categories:
            out["category"] = r.choice(v.categories)
        out["group"] = r.choice(v.groups[lang])
        for fld, p in (("cause", 0.75), ("resolution", 0.8)):
            pool = v.pools.get((lang, module, fld)) or v.pools.get((lang, t["module"], fld))
            if pool and r.random() < p:
                k = 1 + (r.random() < 0.35) + (r.random() < 0.1)
                out[fld] = joiner.join(self._render(r.choice(pool), script, mapping) for _ in range(k))
        created = self.START + timedelta(days=r.randrange(self.DAYS))
        out["created"] = created.isoformat()
        if status == "closed":
            out["closed"] = (created + timedelta(days=r.randint(0, 40))).isoformat()
        if script != "orig":
            conv = v.facet_variants[script]
            out["module"] = conv(module)
            out["group"] = conv(out["group"])
        return out


# -- chunks and workers ---------------------------------------------------------------------------
_VOCAB: Vocabulary | None = None
_OPTS: dict = {}


def _init(demo_dir: str, opts: dict) -> None:
    global _VOCAB, _OPTS
    _VOCAB = Vocabulary.from_demo(Path(demo_dir))
    _OPTS = opts


def _chunk(args: tuple[int, int, int]) -> str:
    """JSONL text of records [start, stop) of chunk ``c``."""
    c, start, stop = args
    gen = _Gen(_VOCAB, random.Random(_OPTS["seed"] * 1_000_003 + c), _OPTS["english_share"])
    lines = []
    base = c * CHUNK
    for i in range(base, stop):
        rec = gen.record(i)
        if i >= start:
            lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + ("\n" if lines else "")


def generate(n: int, *, seed: int = 7, english_share: float = 0.15, workers: int = 0,
             demo_dir: Path = DEMO_DIR):
    """Yield JSONL text blocks for records 0..n-1 (in order)."""
    tasks = [(c, c * CHUNK, min(n, (c + 1) * CHUNK)) for c in range((n + CHUNK - 1) // CHUNK)]
    opts = {"seed": seed, "english_share": english_share}
    from indexing.encoders import available_cores

    workers = workers or available_cores()
    if workers <= 1 or len(tasks) == 1:
        _init(str(demo_dir), opts)
        for task in tasks:
            yield _chunk(task)
        return
    with mp.get_context("fork").Pool(min(workers, len(tasks)), initializer=_init,
                                     initargs=(str(demo_dir), opts)) as pool:
        yield from pool.imap(_chunk, tasks)


def default_path(n: int, seed: int) -> Path:
    return WORK / "corpus" / f"cases-{size_label(n)}-s{seed}.jsonl"


def write_corpus(n: int, out: Path | None = None, *, seed: int = 7, english_share: float = 0.15,
                 workers: int = 0) -> dict:
    """Write ``n`` records to ``out`` and its ``.meta.json``; returns the metadata."""
    out = out or default_path(n, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab = Vocabulary.from_demo()
    t0 = time.perf_counter()
    nbytes = 0
    with replacing(out) as fh:
        for block in generate(n, seed=seed, english_share=english_share, workers=workers):
            fh.write(block)
            nbytes += len(block.encode("utf-8"))
    seconds = time.perf_counter() - t0
    meta = {"records": n, "seed": seed, "english_share": english_share, "chunk": CHUNK,
            "demo_sha256": vocab.sources, "vocab_digest": vocab.digest(), "seconds": round(seconds, 2),
            "records_per_s": round(n / seconds), "bytes": nbytes,
            "templates": {k: len(v) for k, v in vocab.templates.items()}}
    with replacing(meta_path(out)) as fh:
        fh.write(json.dumps(meta, indent=2))
    return meta


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Any]:
    """A text file to write that becomes ``path`` only once the block ends without an error.

    The file has a name of its own in ``path``'s directory (a fixed ``.tmp`` name was shared by two
    runs writing the same corpus: the second truncated the first's file, and the first's rename
    left the second nothing to rename), and is renamed over ``path``, atomic on one filesystem, so
    a reader sees the old file or a whole new one. On an error it is removed.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(name, 0o644)  # mkstemp's 0600 would make a shared corpus unreadable to others
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def ensure_corpus(n: int, seed: int = 7) -> Path:
    """The corpus file for (n, seed), generated when missing or made from other demo data."""
    path = default_path(n, seed)
    mp_ = meta_path(path)
    if path.is_file() and mp_.is_file():
        meta = json.loads(mp_.read_text())
        if meta.get("records") == n and meta.get("vocab_digest") == Vocabulary.from_demo().digest():
            return path
        if meta.get("records") == n:
            log(f"{path.name}: the demo data changed since it was generated; keeping it (delete it to regenerate)")
            return path
    log(f"generating corpus of {n:,} records -> {path}")
    meta = write_corpus(n, path, seed=seed)
    log(f"generated {n:,} records in {meta['seconds']:.1f} s ({meta['records_per_s']:,} records/s)")
    return path


def read_records(path: Path, limit: int | None = None, parse: Callable[[str], Any] = json.loads) -> list:
    """The first ``limit`` lines of a JSONL file, each through ``parse`` (dicts by default)."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            out.append(parse(line))
    return out


# -- queries --------------------------------------------------------------------------------------
QUERY_KINDS = (("title", 0.35), ("symptom", 0.25), ("code", 0.15), ("code+words", 0.10), ("short", 0.15))


def make_queries(records: list[dict], n: int, *, seed: int = 11) -> list[dict]:
    """Realistic free-text queries drawn from ``records``: titles, symptom sentences, bare codes,
    code plus words, and short keyword phrases; a share in the other Chinese script."""
    import opencc

    s2t, t2s = opencc.OpenCC("s2t").convert, opencc.OpenCC("t2s").convert
    r = random.Random(seed)
    out = []
    while len(out) < n:
        rec = records[r.randrange(len(records))]
        x, acc, kind = r.random(), 0.0, QUERY_KINDS[-1][0]
        for k, p in QUERY_KINDS:
            acc += p
            if x < acc:
                kind = k
                break
        zh = lang_of(rec["title"] + rec["text"]) == "zh"
        if kind == "title":
            text = rec["title"]
        elif kind == "symptom":
            sentences = [s for s in _SENT.split(rec["text"]) if s and _MEANINGFUL.search(s)]
            text = r.choice(sentences).strip()[:120] if sentences else rec["title"]
        elif kind in ("code", "code+words"):
            if not rec.get("error_codes"):
                continue
            text = r.choice(rec["error_codes"])
            if kind == "code+words":
                text = f"{text} {rec['module']} " + (rec["title"][:8] if zh else " ".join(rec["title"].split()[:3]))
        else:
            if zh:
                start = r.randrange(max(1, len(rec["title"]) - 6))
                text = rec["title"][start:start + r.randint(4, 8)]
            else:
                words = rec["title"].split()
                text = " ".join(r.sample(words, min(len(words), r.randint(2, 4))))
        if zh and kind != "code" and r.random() < 0.3:
            text = (s2t if r.random() < 0.5 else t2s)(text)
        text = text.strip()
        if text:
            out.append({"text": text, "kind": kind, "source": rec["id"]})
    return out


def ensure_queries(n_records: int, seed: int = 7, n: int = 1000) -> list[dict]:
    path = WORK / "corpus" / f"queries-{size_label(n_records)}-s{seed}-{n}.jsonl"
    if path.is_file():
        return read_records(path)
    corpus = ensure_corpus(n_records, seed)
    records = read_records(corpus, limit=min(n_records, 200_000))
    queries = make_queries(records, n, seed=seed + 4)
    with replacing(path) as fh:
        fh.write("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
    return queries


def stats(path: Path, limit: int = 50_000) -> dict:
    """Length, language, script and code statistics of the first ``limit`` records."""
    import numpy as np

    recs = read_records(path, limit)
    lengths = np.array([len(r["title"]) + len(r["text"]) + len(r.get("cause", "")) + len(r.get("resolution", ""))
                        for r in recs])
    langs = [lang_of(r["title"] + r["text"]) for r in recs]
    import opencc

    t2s = opencc.OpenCC("t2s").convert
    trad = sum(1 for r, lg in zip(recs, langs) if lg == "zh" and t2s(r["text"]) != r["text"])
    codes = {c for r in recs for c in r.get("error_codes", [])}
    parts = {m.group(0) for r in recs for m in re.finditer(r"PN-\d{4}-\d{2}", r["text"] + r.get("resolution", ""))}
    return {"sampled": len(recs), "chars_p50": int(np.percentile(lengths, 50)),
            "chars_p95": int(np.percentile(lengths, 95)), "chars_max": int(lengths.max()),
            "english": round(langs.count("en") / len(recs), 3),
            "traditional": round(trad / len(recs), 3), "distinct_error_codes": len(codes),
            "distinct_part_numbers": len(parts)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, required=True, help="records: 10000, 100k, 1M ...")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--english-share", type=float, default=0.15)
    p.add_argument("--workers", type=int, default=0, help="processes (default: usable cores)")
    p.add_argument("--out", type=Path, default=None, help="JSONL file (default bench/work/corpus/cases-<size>-s<seed>.jsonl)")
    p.add_argument("--queries", type=int, default=0, help="also write this many queries next to the corpus")
    a = p.parse_args(argv)
    out = a.out or default_path(a.size, a.seed)
    meta = write_corpus(a.size, out, seed=a.seed, english_share=a.english_share, workers=a.workers)
    print(f"wrote {a.size:,} records to {out} in {meta['seconds']:.1f} s ({meta['records_per_s']:,} records/s, "
          f"{meta['bytes'] / 2**20:.0f} MiB)", file=sys.stderr)
    print(json.dumps(stats(out), indent=2), file=sys.stderr)
    if a.queries:
        qs = make_queries(read_records(out, limit=200_000), a.queries, seed=a.seed + 4)
        qpath = out.with_name(out.stem + f".queries-{a.queries}.jsonl")
        with replacing(qpath) as fh:
            fh.write("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs))
        print(f"wrote {len(qs)} queries to {qpath}", file=sys.stderr)


if __name__ == "__main__":
    main()
