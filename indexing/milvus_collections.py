"""The connection under the ``milvus`` backend: the two collections, their meta entity and the
write markers, with Milvus failures turned into caselink's errors.

:mod:`indexing.milvus_backend` decides what to write and how to score; this module only keeps
the collections in shape (create, drop, load, check) and the bookkeeping in ``<collection>_stats``:
one meta entity (key -1: the change-log position applied, the BM25 parameters of the stored
weights, the format) and, while a write is under way, one marker per write naming the ids it
is changing (negative keys below -1). Schema and expressions are in :mod:`indexing.milvus_schema`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from caselink.errors import IndexFormatError, IndexNotReady
from indexing.milvus_schema import ATTRIBUTES, create_collections, dense_index_params, dense_spec

__all__ = ["BATCH", "FORMAT", "MilvusCollections"]

log = logging.getLogger("caselink.milvus")
_META_KEY = -1
FORMAT = 2  # 2: term statistics in the record store (1 kept them in <collection>_stats)
BATCH = 1000  # entities per upsert / ids per "in" expression: well under gRPC's message limit
_REBUILD = "run 'caselink index --rebuild' to rebuild it from the record store"
_MILVUS_DEFAULT_NLIST = 128  # what Milvus builds an IVF_FLAT with when given no nlist


class MilvusCollections:
    """One Milvus client and the collections ``collection`` and ``<collection>_stats``.

    Parameters
    ----------
    uri, token : where Milvus is and the credentials (``token`` is never logged or shown).
    collection : the records' collection.
    dim : the dense vectors' dimension; a collection holding another is refused.
    consistency : Milvus consistency level of every read ("Strong" = read-your-writes).
    dense_index, dense_nlist : the dense vectors' index (type, and lists for IVF_FLAT) for a new
        collection or :meth:`rebuild_dense_index`.
    timeout : seconds per Milvus call.
    """

    def __init__(self, *, uri: str, token: str = "", collection: str, dim: int, consistency: str = "Strong",
                 dense_index: str = "FLAT", dense_nlist: int = 1024, timeout: float = 30.0):
        self.uri = uri
        self._token = token
        self.collection = collection
        self.stats_collection = f"{collection}_stats"
        self.dim = dim
        self.consistency = consistency
        self.dense = dense_spec(dense_index, dense_nlist)
        self.dense_built: dict = dict(self.dense)  # the collection's own dense index, read on connect
        self.timeout = timeout
        self.client = None  # a pymilvus MilvusClient once connected

    @contextmanager
    def calls(self, what: str):
        """Milvus failures as caselink's IndexNotReady (503 on the API), naming the server, never the token."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            raise IndexNotReady(f"Milvus at {self.safe_uri()} failed to {what}: {exc.message}",
                                hint="check backend.uri and that Milvus is running") from None

    def safe_uri(self) -> str:
        parts = urlsplit(self.uri)
        if parts.username or parts.password:  # user:password@host: keep the host only
            parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        return urlunsplit(parts)

    def connect(self, *, fresh: bool = False, meta: dict) -> dict:
        """Connect, create the collections when missing (``fresh``: drop and recreate them) with
        ``meta`` as their first meta entity, check and load them; returns the stored meta."""
        from pymilvus import MilvusClient

        with self.calls("connect"):
            # No keepalive pings on an idle channel: Milvus Lite's gRPC server (Python grpc defaults)
            # answers them with GOAWAY "too_many_pings" after a few; calls still ping while they run.
            # A dedicated channel: pymilvus shares one per address and token, whatever its options.
            self.client = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout, dedicated=True,
                                       grpc_options={"grpc.keepalive_permit_without_calls": 0})
            if fresh:
                for name in (self.collection, self.stats_collection):
                    if self.client.has_collection(name):
                        self.client.drop_collection(name)
            if not self.client.has_collection(self.collection):
                create_collections(self.client, self.collection, self.stats_collection, dim=self.dim,
                                   dense=self.dense, consistency=self.consistency)
                self.save_meta(meta)
            self._check_fields()
            for name in (self.collection, self.stats_collection):
                self.client.load_collection(name)  # a reopened collection is not searchable until loaded
            meta = self.read_meta()
            self.dense_built = self._dense_in_place(meta)
            return meta

    def _check_fields(self) -> None:
        fields = self.client.describe_collection(self.collection)["fields"]
        if not any(f["name"] == ATTRIBUTES for f in fields):
            raise IndexFormatError(f"Milvus collection '{self.collection}' was created before records had attributes",
                                   hint=_REBUILD)
        dim = next((int(f["params"]["dim"]) for f in fields if f["name"] == "vec"), None)
        if dim != self.dim:
            raise IndexFormatError(
                f"Milvus collection '{self.collection}' holds {dim}-d vectors, the configured model gives {self.dim}-d",
                hint=_REBUILD)

    def _dense_in_place(self, meta: dict) -> dict:
        """The collection's dense index as built (type from Milvus; lists from Milvus, else from
        ``meta``, where caselink records them, else Milvus's default)."""
        described = self.client.describe_index(self.collection, "vec")
        kind = described.get("index_type", "")
        if kind != "IVF_FLAT":
            return dense_spec(kind)
        nlist = described.get("nlist") or meta.get("dense", {}).get("nlist") or _MILVUS_DEFAULT_NLIST
        return dense_spec(kind, int(nlist))

    def rebuild_dense_index(self) -> dict:
        """Replace the dense index with :attr:`dense`, the records kept: Milvus indexes the stored
        vectors again (minutes at a million records, against an hour to write them). Searches of
        this collection fail from the release until it is loaded again. Returns the meta entity,
        which now records the index."""
        from pymilvus import MilvusClient

        with self.calls("rebuild the dense index"):
            self.client.release_collection(self.collection)
            self.client.drop_index(self.collection, "vec")
            index = MilvusClient.prepare_index_params()
            index.add_index("vec", index_type=self.dense["index"], metric_type="IP",
                            params=dense_index_params(self.dense))
            self.client.create_index(self.collection, index)
            self.client.load_collection(self.collection)
            meta = self.read_meta()
            meta["dense"] = self.dense_built = dict(self.dense)
            self.save_meta(meta)
        return meta

    # -- meta and write markers ---------------------------------------------------------------
    def read_meta(self) -> dict:
        rows = self.client.get(self.stats_collection, ids=[_META_KEY], output_fields=["meta"])
        if not rows:
            raise IndexFormatError(f"Milvus collection '{self.stats_collection}' has no meta entity", hint=_REBUILD)
        return json.loads(rows[0]["meta"])

    def save_meta(self, meta: dict) -> None:
        self.client.upsert(self.stats_collection, [{"key": _META_KEY, "df": 0, "v": [0.0, 0.0],
                                                   "meta": json.dumps(meta)}])

    def mark(self, ids: Sequence[str]) -> int:
        """Name the ids a write is about to change; removed once the store has committed it."""
        key = -2 - secrets.randbits(62)
        self.client.upsert(self.stats_collection, [{"key": key, "df": 0, "v": [0.0, 0.0], "meta": json.dumps(list(ids))}])
        return key

    def unmark(self, keys: Sequence[int]) -> None:
        try:
            with self.calls("clear a write marker"):
                self.client.delete(self.stats_collection, ids=list(keys))
        except IndexNotReady as exc:  # the next writer finds the marker and rewrites those ids: harmless
            log.warning("%s", exc.message)

    def markers(self) -> dict[int, list[str]]:
        """Every write marker: key -> the ids that write touched."""
        with self.calls("read write markers"):
            rows = self.client.query(self.stats_collection, filter=f"key < {_META_KEY}", output_fields=["key", "meta"],
                                     consistency_level=self.consistency)
        return {int(r["key"]): json.loads(r["meta"]) for r in rows}

    # -- whole-collection reads ---------------------------------------------------------------
    def scan(self, fields: list[str]) -> Iterator[list[dict]]:
        """Every record's ``fields``, ``BATCH`` at a time."""
        it = self.client.query_iterator(self.collection, batch_size=BATCH, filter="", output_fields=fields,
                                        consistency_level=self.consistency)
        try:
            while batch := it.next():
                yield batch
        finally:
            it.close()

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                 consistency_level=self.consistency)
        return int(rows[0]["count(*)"])

    def flush(self) -> None:
        """Seal both collections' segments: durable in Milvus's own storage."""
        with self.calls("flush"):
            for name in (self.collection, self.stats_collection):
                self.client.flush(name)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
