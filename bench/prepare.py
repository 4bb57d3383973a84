"""Inputs the benchmarks share: settings, embedded samples, synthetic vectors, built data directories.

Vectors
    Real vectors are embedded once into a shared embedding cache, ``bench/work/cache/embeddings.sqlite``
    (caselink's own :class:`~indexing.embedding_cache.EmbeddingCache`, keyed by model and text hash),
    which every real-vector data directory links to, so a corpus that was embedded for one benchmark
    is not embedded again for the next (the 10k corpus is the first 10k records of the 100k one).

    Embedding 1M texts on two cores takes hours, so from a size up, only a *sample* (the first
    ``embed_sample`` records) is embedded and the other records get *synthetic* vectors: a sample
    vector picked at random plus Gaussian noise (``noise`` per dimension), re-normalised. Such a data
    directory is labelled ``syn<sample>`` everywhere it is reported. Keyword indexes are always
    built from the real texts.

Data directories
    ``bench/work/data/<size>-s<seed>-<model>-<real|synN>/`` holds ``records.sqlite``, the embedding
    cache and ``index/`` exactly as ``caselink index`` leaves them; they are built once in a
    subprocess and reused while the snapshot's record count matches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.common import WORK, log, run_measured, size_label
from bench.corpus import ensure_corpus, read_records

SHARED_CACHE = WORK / "cache" / "embeddings.sqlite"


def settings_for(data_dir: Path, *, model: str = "use-m3", threads: int = 0, **overrides):
    """caselink settings for a benchmark data directory (defaults otherwise; environment ignored)."""
    from caselink.config import load_settings

    return load_settings(None, env={}, data_dir=str(data_dir), encoder__model=model, encoder__threads=threads,
                         **overrides)


def make_encoder(settings):
    """The encoder the service would build from ``settings`` (every encoder setting passed on)."""
    import inspect

    from indexing.encoders import load_encoder

    e = settings.encoder.model_dump()
    model = e.pop("model")
    accepted = inspect.signature(load_encoder).parameters
    return load_encoder(model, **{k: v for k, v in e.items() if k in accepted})


def cache_key(encoder) -> str:
    """What the embedding cache files a vector under (model id, plus pooling where the encoder has it)."""
    return getattr(encoder, "cache_key", encoder.model_id)


def read_corpus(path: Path, limit: int | None = None) -> list:
    """Records of a corpus JSONL as caselink Records (validated like the loader does)."""
    from indexing.records import Record

    return read_records(path, limit, parse=Record.model_validate_json)


def doc_builder(settings):
    from indexing.document import DocumentBuilder
    from indexing.tokenize import Tokenizer, text_params

    t = settings.text
    return DocumentBuilder(Tokenizer(**text_params(t.model_dump())),
                           title_weight=settings.bm25.title_weight, code_weight=settings.bm25.code_weight)


class Progress:
    """A caselink ``progress(stage, advance, total)`` callback that logs every ~10% per stage."""

    def __init__(self, label: str = ""):
        self.label = label
        self.done: dict[str, int] = defaultdict(int)
        self.next_log: dict[str, float] = defaultdict(float)
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, advance: int, total: int) -> None:
        now = time.perf_counter()
        self.first.setdefault(stage, now)
        self.last[stage] = now
        self.done[stage] += advance
        if total and self.done[stage] >= self.next_log[stage]:
            log(f"{self.label}{stage}: {self.done[stage]:,}/{total:,}")
            self.next_log[stage] = self.done[stage] + max(1, total // 10)


@contextmanager
def stage_timer():
    """Time spent inside caselink's build steps, by wrapping their methods in this process only.

    Yields a dict name -> seconds. Nested steps overlap (``bm25.add`` may include ``bm25.compact``).
    """
    from indexing.bm25 import BM25Index
    from indexing.document import DocumentBuilder
    from indexing.embedding_cache import EmbeddingCache
    from indexing.live import LiveIndex
    from indexing.store import RecordStore
    from indexing.vectors import VectorIndex

    spots = {
        "store.upsert": (RecordStore, "upsert"), "docs.tokens": (DocumentBuilder, "tokens"),
        "docs.codes": (DocumentBuilder, "codes"), "docs.embedding_text": (DocumentBuilder, "embedding_text"),
        "bm25.add": (BM25Index, "add"), "bm25.compact": (BM25Index, "compact"),
        "embed (cache.encode)": (EmbeddingCache, "encode"), "vectors.build": (VectorIndex, "build"),
        "open snapshot (+ replay)": (LiveIndex, "open"), "snapshot": (LiveIndex, "snapshot"),
    }
    times: dict[str, float] = defaultdict(float)
    saved = {}
    for name, (cls, attr) in spots.items():
        orig = getattr(cls, attr)
        saved[(cls, attr)] = cls.__dict__[attr]  # the raw descriptor, so a classmethod is restored as one

        def wrapper(*a, __orig=orig, __name=name, **kw):
            t = time.perf_counter()
            try:
                return __orig(*a, **kw)
            finally:
                times[__name] += time.perf_counter() - t

        setattr(cls, attr, wrapper)
    try:
        yield times
    finally:
        for (cls, attr), orig in saved.items():
            setattr(cls, attr, orig)


# -- vectors --------------------------------------------------------------------------------------
def embedded_sample(n_sample: int, *, seed: int, model: str = "use-m3", threads: int = 0,
                    corpus_size: int | None = None) -> np.ndarray:
    """Real vectors of the first ``n_sample`` records (embedded into the shared cache when missing)."""
    from indexing.embedding_cache import EmbeddingCache

    settings = settings_for(WORK / "tmp", model=model, threads=threads)
    encoder = make_encoder(settings)
    key = re.sub(r"[^A-Za-z0-9.]+", "_", cache_key(encoder))
    npy = WORK / "vectors" / f"{key}-s{seed}-{size_label(n_sample)}.npy"
    if npy.is_file():
        return np.load(npy)
    corpus = ensure_corpus(corpus_size or n_sample, seed)
    records = read_corpus(corpus, n_sample)
    docs = doc_builder(settings)
    texts = [docs.embedding_text(r) for r in records]
    SHARED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    cache = EmbeddingCache(SHARED_CACHE)
    try:
        done = [0]

        def progress(k: int) -> None:
            done[0] += k
            if done[0] % 2048 < k or done[0] == len(texts):
                log(f"embedding sample: {done[0]:,}/{len(texts):,}")

        vecs, embedded = cache.encode(encoder, texts, progress=progress)
    finally:
        cache.close()
    log(f"sample of {n_sample:,}: {embedded:,} embedded now, the rest from the shared cache")
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, vecs)
    return vecs


def synthetic_blocks(sample: np.ndarray, n: int, *, noise: float, seed: int, block: int = 50_000):
    """Yield (start, vectors) for n vectors: the sample itself first, then sample rows plus noise."""
    rng = np.random.default_rng(seed)
    s, dim = sample.shape
    for start in range(0, n, block):
        stop = min(n, start + block)
        out = np.empty((stop - start, dim), dtype=np.float32)
        real = max(0, min(stop, s) - start)
        if real:
            out[:real] = sample[start:start + real]
        m = stop - start - real
        if m:
            src = rng.integers(0, s, size=m)
            v = sample[src] + rng.normal(0.0, noise, size=(m, dim)).astype(np.float32)
            out[real:] = v / np.linalg.norm(v, axis=1, keepdims=True)
        yield start, out


def synthetic_vectors(sample: np.ndarray, n: int, *, noise: float, seed: int) -> np.ndarray:
    out = np.empty((n, sample.shape[1]), dtype=np.float32)
    for start, block in synthetic_blocks(sample, n, noise=noise, seed=seed):
        out[start:start + len(block)] = block
    return out


def merge_cache(src: Path, dst: Path = SHARED_CACHE) -> None:
    """Copy every vector of embedding cache ``src`` into ``dst`` (existing rows kept)."""
    import sqlite3

    if not src.is_file() or src.resolve() == dst.resolve():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    from indexing.embedding_cache import EmbeddingCache

    EmbeddingCache(dst).close()  # creates the table
    conn = sqlite3.connect(dst, timeout=60)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (str(src),))
        conn.execute("INSERT OR IGNORE INTO main.embeddings SELECT model, hash, vec FROM src.embeddings")
        conn.commit()
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()


# -- data directories -----------------------------------------------------------------------------
def vector_tag(n: int, sample: int, noise: float) -> str:
    return "real" if sample >= n else f"syn{size_label(sample)}-noise{noise:g}"


def data_dir_for(n: int, *, seed: int, model: str, sample: int, noise: float, quantizer: str = "flat",
                 backend: str = "local", milvus_index: str = "FLAT") -> Path:
    suffix = "" if quantizer == "flat" or backend != "local" else f"-{quantizer}"
    if backend != "local":
        suffix += f"-{backend}-{milvus_index.lower()}"
    return WORK / "data" / f"{size_label(n)}-s{seed}-{model}-{vector_tag(n, sample, noise)}{suffix}"


def milvus_index_for(n: int, choice: str = "auto") -> str:
    """The Milvus dense index for ``n`` records: as ``local`` goes from exact vectors to an
    approximate index at ``vectors.exact_below``, 'auto' goes from FLAT to HNSW there."""
    if choice != "auto":
        return choice
    from caselink.config import VectorConfig

    return "FLAT" if n < VectorConfig().exact_below else "HNSW"


def backend_overrides(data_dir: Path, backend: str, uri: str = "", milvus_index: str = "FLAT",
                      collection: str = "") -> dict:
    """caselink settings (``backend__*`` overrides) that put ``data_dir``'s index on ``backend``;
    a Milvus collection is named after the directory where it was built (``collection``: the
    name its bench.json records, kept when the directory moves), so several sizes share one server."""
    if backend == "local":
        return {}
    return {"backend__kind": backend, "backend__uri": uri, "backend__dense_index": milvus_index,
            "backend__collection": collection or "bench_" + re.sub(r"[^A-Za-z0-9]+", "_", data_dir.name)}


def milvus_rows(uri: str, collection: str) -> int:
    """Rows of ``collection`` on the Milvus at ``uri`` (0 when it has no such collection)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=60)
    try:
        if not client.has_collection(collection):
            return 0
        return int(client.get_collection_stats(collection).get("row_count", 0))
    finally:
        client.close()


def server_config(data_dir: Path) -> dict:
    """The ``[backend]`` section a server on ``data_dir`` needs ({} for local), from its bench.json."""
    info = json.loads((data_dir / "bench.json").read_text()) if (data_dir / "bench.json").is_file() else {}
    o = backend_overrides(data_dir, info.get("backend", "local"), info.get("backend_uri", ""),
                          info.get("milvus_index", "FLAT"), info.get("collection", ""))
    return {"backend": {k.removeprefix("backend__"): v for k, v in o.items()}} if o else {}


_MILVUS_INDEXES = ("FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX")


def _built_elsewhere(n: int, *, backend_uri: str, milvus_index: str, **corpus) -> Path | None:
    """A complete Milvus data directory of the same corpus on the same server, built with another
    dense index, moved to ``milvus_index``'s name (its collection keeps its own); None when none."""
    want = data_dir_for(n, backend="milvus", milvus_index=milvus_index, **corpus)
    for other in _MILVUS_INDEXES:
        d = data_dir_for(n, backend="milvus", milvus_index=other, **corpus)
        m = manifest(d)
        if other == milvus_index or m is None or m.get("counts", {}).get("records", -1) < n:
            continue
        info = json.loads((d / "bench.json").read_text())
        collection = server_config(d)["backend"]["collection"]
        if info.get("backend_uri") != backend_uri and milvus_rows(backend_uri, collection) < n:
            continue
        info.update(backend_uri=backend_uri, collection=collection, milvus_index=milvus_index,
                    reindexed_from=other)
        (d / "bench.json").write_text(json.dumps(info))
        d.rename(want)
        return want
    return None


def reindex_dir(data_dir: str, model: str, threads: int) -> dict:
    """Subprocess body: what ``caselink index`` does on an unchanged store whose settings name
    another Milvus dense index (rebuilt in place, nothing written again)."""
    from recommender.service import CaselinkService

    d = Path(data_dir)
    o = {"backend__" + k: v for k, v in server_config(d)["backend"].items()}
    t0 = time.perf_counter()
    svc, report = CaselinkService.build(settings_for(d, model=model, threads=threads, **o), rebuild=False)
    seconds = time.perf_counter() - t0
    factory = svc.stats().factory
    svc.close()
    return {"seconds": seconds, "factory": factory, "embedded": report.embedded,
            "rebuilt_because": report.rebuilt_because or ""}


def manifest(data_dir: Path) -> dict | None:
    path = data_dir / "index" / "current" / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def incompatible(m: dict, settings) -> str:
    """Why the snapshot with manifest ``m`` cannot be served with ``settings`` ('' when it can)."""
    from indexing.index_dir import READABLE_VERSIONS

    if m.get("format_version") not in READABLE_VERSIONS:
        return f"index format {m.get('format_version')}, caselink reads {READABLE_VERSIONS}"
    built = m.get("model", {})
    encoder = make_encoder(settings)
    if built.get("id") != encoder.model_id:
        return f"built with model {built.get('id')}, configured {encoder.model_id}"
    if built.get("cache_key", cache_key(encoder)) != cache_key(encoder):
        return f"built with pooling {built.get('cache_key')}, the encoder now pools as {cache_key(encoder)}"
    return ""


def prepare_data_dir(n: int, *, seed: int = 7, model: str = "use-m3", sample: int | None = None,
                     noise: float = 0.02, threads: int = 0, python: str | None = None,
                     quantizer: str = "flat", backend: str = "local", backend_uri: str = "",
                     milvus_index: str = "auto") -> Path:
    """A built data directory for the ``n``-record corpus, built in a subprocess when missing.

    ``quantizer`` is caselink's ``vectors.quantizer`` for the build (it matters from
    ``vectors.exact_below`` records up); the directory name says which. ``backend`` "milvus"
    builds into a collection on the Milvus at ``backend_uri`` (dense index ``milvus_index``,
    see :func:`milvus_index_for`); such a directory is reused only against the same URI.
    """
    sample = n if sample is None else sample
    milvus_index = milvus_index_for(n, milvus_index)
    d = data_dir_for(n, seed=seed, model=model, sample=sample, noise=noise, quantizer=quantizer, backend=backend,
                     milvus_index=milvus_index)
    m = manifest(d)
    if m is not None and backend != "local":
        # The collection lives in the Milvus server: the directory is reusable only where it is.
        info = json.loads((d / "bench.json").read_text()) if (d / "bench.json").is_file() else {}
        o = backend_overrides(d, backend, backend_uri, milvus_index, info.get("collection", ""))
        if info.get("backend_uri") != backend_uri and milvus_rows(backend_uri, o["backend__collection"]) >= n:
            info["backend_uri"] = backend_uri  # the same server's data on another port
            (d / "bench.json").write_text(json.dumps(info))
        if info.get("backend_uri") != backend_uri:
            m = None
    if m is None and backend == "milvus":
        # Another dense index over the same records: re-indexed in place (minutes), not rebuilt (an hour at 1M).
        moved = _built_elsewhere(n, backend_uri=backend_uri, milvus_index=milvus_index, seed=seed, model=model,
                                 sample=sample, noise=noise, quantizer=quantizer)
        if moved is not None:
            info = json.loads((moved / "bench.json").read_text())
            log(f"re-indexing {info['reindexed_from']} -> {milvus_index} in place (data directory {moved.name})")
            report = run_measured("bench.prepare:reindex_dir", {"data_dir": str(moved), "model": model,
                                                                 "threads": threads}, python=python)
            if report["rebuilt_because"] or report["factory"] != f"milvus:{milvus_index}":
                raise RuntimeError(f"re-indexing {moved.name} did not rebuild in place: {report}")
            log(f"re-indexed {moved.name} in {report['seconds']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
            info.update(reindex_seconds=round(report["seconds"], 1), reindex_peak_rss_mb=round(report["peak_rss_mb"]))
            (moved / "bench.json").write_text(json.dumps(info))
            return moved
    if m is not None and m.get("counts", {}).get("records", -1) >= n:
        why = incompatible(m, settings_for(d, model=model, threads=threads))
        if not why:
            return d
        log(f"rebuilding {d.name}: {why}")
    log(f"building data directory {d.name} (in a subprocess)")
    report = run_measured("bench.prepare:build_dir", {"n": n, "seed": seed, "model": model, "sample": sample,
                                                      "noise": noise, "threads": threads, "data_dir": str(d),
                                                      "quantizer": quantizer, "backend": backend,
                                                      "backend_uri": backend_uri, "milvus_index": milvus_index},
                          python=python)
    log(f"built {d.name}: {report['records']:,} records in {report['build_seconds']:.1f} s, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB")
    info = json.loads((d / "bench.json").read_text())
    info.update(build_seconds=round(report["build_seconds"], 1), build_peak_rss_mb=round(report["peak_rss_mb"]))
    (d / "bench.json").write_text(json.dumps(info))
    return d


def iter_corpus(path: Path, n: int, chunk: int):
    """Yield (start, Records) chunks of the first ``n`` records without holding them all."""
    from indexing.records import Record

    block, start = [], 0
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            block.append(Record.model_validate_json(line))
            if len(block) == chunk:
                yield start, block
                start, block = start + chunk, []
    if block:
        yield start, block


SEED_BLOCK = 50_000


def seeded_cache_path(n: int, *, seed: int, model: str, sample: int, noise: float) -> Path:
    return WORK / "seeded" / f"{size_label(n)}-s{seed}-{model}-{vector_tag(n, sample, noise)}.sqlite"


def seed_cache(settings, corpus: Path, *, n: int, sample: int, noise: float, seed: int, model: str,
               threads: int, path: Path | None = None) -> None:
    """Fill an embedding cache (``path``, default the data directory's own) with real (sample) +
    synthetic vectors."""
    from indexing.embedding_cache import EmbeddingCache, text_hash

    vecs = embedded_sample(sample, seed=seed, model=model, threads=threads, corpus_size=n)
    docs = doc_builder(settings)
    model_id = cache_key(make_encoder(settings))
    cache = EmbeddingCache(path or settings.cache_path)
    try:
        blocks = synthetic_blocks(vecs, n, noise=noise, seed=seed, block=SEED_BLOCK)
        for (start, block), (start2, records) in zip(blocks, iter_corpus(corpus, n, SEED_BLOCK), strict=True):
            assert start == start2 and len(block) == len(records)
            cache.put(model_id, [text_hash(docs.embedding_text(r)) for r in records], block)
            log(f"seeded {start + len(block):,}/{n:,} vectors ({size_label(sample)} real, rest synthetic)")
    finally:
        cache.close()


def build_dir(n: int, seed: int, model: str, sample: int, noise: float, threads: int, data_dir: str,
              quantizer: str = "flat", backend: str = "local", backend_uri: str = "",
              milvus_index: str = "FLAT") -> dict:
    """Subprocess body: build ``data_dir`` like ``caselink index`` would (store, index, snapshot)."""
    from indexing.loaders import stream_table
    from recommender.service import CaselinkService

    d = Path(data_dir)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    settings = settings_for(d, model=model, threads=threads, vectors__quantizer=quantizer,
                            **backend_overrides(d, backend, backend_uri, milvus_index))
    corpus = ensure_corpus(n, seed)
    if sample >= n:
        SHARED_CACHE.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(SHARED_CACHE.resolve(), settings.cache_path)
    else:
        # One seeded cache per (size, vectors), linked by every data directory of that corpus
        # (local and milvus, any quantizer): seeding a million vectors costs 4 GB and minutes.
        seeded = seeded_cache_path(n, seed=seed, model=model, sample=sample, noise=noise)
        if not (seeded.with_name(seeded.name + ".done")).is_file():
            seeded.parent.mkdir(parents=True, exist_ok=True)
            seeded.unlink(missing_ok=True)
            seed_cache(settings, corpus, n=n, sample=sample, noise=noise, seed=seed, model=model, threads=threads,
                       path=seeded)
            seeded.with_name(seeded.name + ".done").write_text("")
        os.symlink(seeded.resolve(), settings.cache_path)
    t0 = time.perf_counter()
    how = "stream_table + CaselinkService.build (what caselink index does)"
    stream = stream_table(corpus)
    svc, report = CaselinkService.build(settings, records=stream.records(), expected=stream.rows,
                                        progress=Progress(f"build {size_label(n)} "))
    embedded, factory = report.embedded, report.factory
    seconds = time.perf_counter() - t0
    svc.close()
    (d / "bench.json").write_text(json.dumps({"n": n, "seed": seed, "model": model, "sample": sample,
                                              "noise": noise, "vectors": vector_tag(n, sample, noise),
                                              "quantizer": quantizer, "built_with": how, "backend": backend,
                                              "backend_uri": backend_uri, "milvus_index": milvus_index}))
    return {"records": n, "embedded": embedded, "build_seconds": seconds, "factory": factory}
