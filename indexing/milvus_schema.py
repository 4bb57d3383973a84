"""How caselink's records map onto Milvus: the two collections' schema, term ids, BM25L weights
on both sides of the inner product, and filter expressions with every value escaped.

Pure functions and one schema builder, so :mod:`indexing.milvus_backend` is only the I/O. See
that module's docstring for the design.

The records' collection, one entity per record: ``id`` (primary key), ``vec`` (FLOAT_VECTOR, IP:
the index-space vectors are unit length, so IP = cosine), ``kw`` (SPARSE_FLOAT_VECTOR, IP: the
record's BM25L term weights), the filter fields ``kind``/``product``/``model``/``module``/
``status`` (case-folded, so equality is case-insensitive as in ``local``), ``closed`` (status is
closed-like, for ``open_only``), ``created`` (days since 1970, -1 when unknown), ``codes``
(canonical codes joined by newlines), ``attributes`` (JSON: the record's own fields, values
case-folded, filtered as ``attributes["customer"] == "acme"`` with key and values quoted), and
what re-weighing needs: ``dl`` (document length), ``aw`` and ``bm`` (the mean length and the
k1/b/delta the weights were computed with). ``<collection>_stats`` holds the meta entity and
the write markers (:mod:`indexing.milvus_collections`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from functools import lru_cache

import numpy as np

from indexing.facets import Filters

__all__ = ["ATTRIBUTES", "FACETS", "BM25LWeights", "create_collections", "dense_index_params", "dense_spec",
           "filter_expression", "term_id"]

_EPOCH = date(1970, 1, 1)
FACETS = ("kind", "product", "model", "module", "status")
# Filter fields with a scalar index (the ones a request filters on most; Milvus scans the rest).
# Each costs about 0.5 s at creation: pymilvus polls index builds at that interval.
_INDEXED = ("kind", "product")
# The JSON field of the records' own attributes; a collection created before it is rebuilt.
ATTRIBUTES = "attributes"


@lru_cache(maxsize=1 << 20)
def term_id(term: str) -> int:
    """A keyword term's sparse dimension: 32 bits of BLAKE2b, below Milvus's uint32 maximum."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little") % 0xFFFFFFFF


def _quote(value: str) -> str:
    """A Milvus string literal: backslash and quote escaped, so a value is data, never filter syntax."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + out.replace("\t", "\\t") + '"'


def day(d: date | None) -> int:
    return (d - _EPOCH).days if d is not None else -1


def filter_expression(filters: Filters | None = None, exclude: Collection[str] = (),
                      ids: Collection[str] | None = None) -> str:
    """The Milvus boolean expression for ``filters``, ``exclude`` and (optionally) ``ids``."""
    parts = []
    if ids is not None:
        parts.append(f"id in [{', '.join(_quote(i) for i in ids)}]")
    if filters is not None:
        for column in FACETS:
            wanted = getattr(filters, column)
            if wanted:
                parts.append(f"{column} in [{', '.join(_quote(w.casefold()) for w in wanted)}]")
        if filters.created_from is not None:
            parts.append(f"created >= {day(filters.created_from)}")
        if filters.created_to is not None:
            parts.append(f"(created >= 0 and created <= {day(filters.created_to)})")
        if filters.open_only:
            parts.append("closed == false")
        for key, values in filters.attributes:  # the key quoted too; "in" takes no JSON path here
            path = f"{ATTRIBUTES}[{_quote(key)}]"
            parts.append("(" + " or ".join(f"{path} == {_quote(v.casefold())}" for v in values) + ")")
    if exclude:
        parts.append(f"id not in [{', '.join(_quote(i) for i in sorted(exclude))}]")
    return " and ".join(parts)


class BM25LWeights:
    """BM25L split across an inner product: a record's side w(t) = (k1+1)·c/(k1+c) with
    c = tf/(1-b+b·dl/avgdl) + delta, a query's side q(t) = qtf·idf(t)/S with S = Σ qtf·idf·(k1+1)
    over all its terms, so Σ q·w is :meth:`indexing.bm25.BM25Index.score` with ``normalize``."""

    def __init__(self, *, k1: float, b: float, delta: float):
        self.k1, self.b, self.delta = k1, b, delta

    @property
    def params(self) -> str:
        """What a record stores beside its weights, so they can be recomputed later."""
        return f"{self.k1},{self.b},{self.delta}"

    def document(self, tf: Mapping[int, float], dl: float, avgdl: float) -> dict[int, float]:
        norm = 1.0 - self.b + self.b * dl / max(avgdl, 1e-9)
        out = {}
        for key, f in tf.items():
            c = f / norm + self.delta
            out[key] = float((self.k1 + 1.0) * c / (self.k1 + c))
        return out

    @staticmethod
    def tf_of(weights: Mapping[int, float], dl: float, avgdl: float, params: str) -> dict[int, float]:
        """A record's term frequencies from its weights and the parameters they were computed with."""
        k1, b, delta = (float(x) for x in params.split(","))
        norm = 1.0 - b + b * dl / max(avgdl, 1e-9)
        return {int(k): round((k1 * w / (k1 + 1.0 - w) - delta) * norm, 3) for k, w in weights.items()}

    def query(self, qtf: Mapping[int, int], df: Mapping[int, int], n: int) -> dict[int, float]:
        """The query's weights for the terms some record holds ({} when none does)."""
        if n <= 0:
            return {}
        weights, self_score = {}, 0.0
        for key, f in qtf.items():
            d = df.get(key, 0)
            idf = float(np.log1p((n - d + 0.5) / (d + 0.5)))
            self_score += f * idf * (self.k1 + 1.0)  # terms no record holds count too, as in local
            if d:
                weights[key] = f * idf
        return {key: w / self_score for key, w in weights.items()} if self_score > 0 else {}

    @staticmethod
    def counts(terms: Sequence[str]) -> Counter:
        return Counter(term_id(t) for t in terms)


def dense_spec(index: str, nlist: int = 0) -> dict:
    """What identifies a dense index: its type, and for IVF_FLAT its number of lists."""
    return {"index": index, "nlist": int(nlist)} if index == "IVF_FLAT" else {"index": index}


def dense_index_params(spec: Mapping) -> dict:
    """Milvus build parameters of the dense index ``spec`` ({"index": type, "nlist": lists})."""
    if spec["index"] == "HNSW":
        return {"M": 16, "efConstruction": 200}
    if spec["index"] == "IVF_FLAT":
        return {"nlist": int(spec["nlist"])}
    return {}


def create_collections(client, collection: str, stats_collection: str, *, dim: int, dense: Mapping,
                       consistency: str) -> None:
    """The records' collection and its meta collection (change-log position, write markers), indexed."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=800)  # 200 characters of UTF-8
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("kw", DataType.SPARSE_FLOAT_VECTOR)
    for column in FACETS:
        schema.add_field(column, DataType.VARCHAR, max_length=1024)
    schema.add_field("closed", DataType.BOOL)
    schema.add_field("created", DataType.INT64)
    schema.add_field("codes", DataType.VARCHAR, max_length=65535)
    schema.add_field(ATTRIBUTES, DataType.JSON)  # the records' own fields, values casefolded: {} when none
    schema.add_field("dl", DataType.FLOAT)
    schema.add_field("aw", DataType.FLOAT)
    schema.add_field("bm", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("vec", index_type=dense["index"], metric_type="IP", params=dense_index_params(dense))
    index.add_index("kw", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    for column in _INDEXED:
        index.add_index(column, index_type="INVERTED")
    client.create_collection(collection, schema=schema, index_params=index, consistency_level=consistency)
    if client.has_collection(stats_collection):
        client.drop_collection(stats_collection)  # statistics of a collection that is gone
    stats = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    stats.add_field("key", DataType.INT64, is_primary=True)
    stats.add_field("df", DataType.INT64)
    stats.add_field("meta", DataType.VARCHAR, max_length=65535)
    stats.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="IP")
    client.create_collection(stats_collection, schema=stats, index_params=index, consistency_level=consistency)
