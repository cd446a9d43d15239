"""QuiverClient: the blocking client (AsyncQuiverClient in aio.py has the same methods, as coroutines)."""
from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc
import numpy as np
import numpy.typing as npt

from . import _core as core
from ._core import Call, Op, RetryPolicy, T, TLSLike
from .errors import QuiverError, from_rpc_error
from .filters import FilterLike
from .types import (AttributeValue, CollectionInfo, CompactResult, Health, Hits, IndexConfig, Point, Stats,
                    UpsertResult, VectorLike)

PointLike = Union[Point, Mapping[str, Any]]


class QuiverClient:
    """A connection to a Quiver server (standalone or coordinator).

    ``address``: ``"host:port"``. ``api_key``: sent as ``authorization: Bearer KEY`` on every call (servers
    started with ``--api-keys``). ``tls``: None (plain text), True (TLS, verified against the system's roots), or
    a dict / ``TLSConfig`` (``root_certificates``, ``private_key``, ``certificate_chain``, ``server_name``: PEM
    bytes or file paths). ``timeout``: the deadline of each call in seconds (None: no deadline).

    Keyword-only: ``retry`` (a ``RetryPolicy``: how UNAVAILABLE is retried), ``max_request_bytes`` (upserts are
    split to stay under this; the server's default limit is 64 MiB), ``options`` (extra gRPC channel options).

    Use as a context manager, or call ``close()``.
    """

    def __init__(self, address: str = "127.0.0.1:7700", api_key: Optional[str] = None, tls: TLSLike = None,
                 timeout: Optional[float] = None, *, retry: RetryPolicy = core.DEFAULT_RETRY,
                 max_request_bytes: int = core.DEFAULT_MAX_REQUEST_BYTES,
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        address, tls = core.parse_address(address, tls)
        self.address = address
        self.timeout = timeout
        self.retry = retry
        self.max_request_bytes = int(max_request_bytes)
        self._metadata = core.metadata(api_key)
        creds, opts = core.channel_args(core.tls_config(tls), options)
        self._channel = (grpc.secure_channel(address, creds, options=opts) if creds is not None
                         else grpc.insecure_channel(address, options=opts))
        self._callables: dict[str, Any] = {}
        self._closed = False

    # -- plumbing --
    def _callable(self, name: str) -> Any:
        c = self._callables.get(name)
        if c is None:
            m = core.METHODS[name]
            c = self._channel.unary_unary(m.path, request_serializer=m.request.SerializeToString,
                                          response_deserializer=m.response.FromString)
            self._callables[name] = c
        return c

    def _invoke(self, call: Call) -> Any:
        if self._closed:
            raise QuiverError("the client is closed", grpc.StatusCode.CANCELLED, call.method)
        fn = self._callable(call.method)
        t0 = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(call.request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e, call.method)
                delay = core.retry_delay(self.retry, err, call, attempt, time.monotonic() - t0)
                if delay is None:
                    raise err from e
                time.sleep(delay)

    def _run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    resp = self._invoke(call)
                except QuiverError as err:
                    call = op.throw(err)
                else:
                    call = op.send(resp)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Closes the channel (calls after this fail). Idempotent."""
        if not self._closed:
            self._closed = True
            self._channel.close()

    def __enter__(self) -> "QuiverClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    # -- collections --
    def create_collection(self, name: str, dim: Optional[int] = None, metric: str = "cosine",
                          fields: Optional[Mapping[str, Any]] = None, embedding_model: Optional[str] = None,
                          index: Union[str, Mapping[str, Any], IndexConfig, None] = None, shards: int = 0, *,
                          exist_ok: bool = False, **extra: Any) -> None:
        """Creates a collection.

        ``dim``: vector dimension (may be None with ``embedding_model``: the model's, 384). ``metric``: "cosine",
        "l2" (squared Euclidean distance) or "ip" (inner product). ``fields``: attribute schema, e.g.
        ``{"lang": "keyword", "year": "int", "score": "float", "draft": "bool", "tags": "keywords"}``.
        ``embedding_model``: "all-MiniLM-L6-v2" to let the server embed texts. ``index``: "hnsw" (default), "flat",
        or ``{"kind": "hnsw", "m": 16, "ef_construction": 200, "quantization": "sq8", "pq_m": 0}``. ``shards``:
        through a coordinator, the shard count (0: one per shard server). ``exist_ok``: no error when the collection
        exists (its settings are not compared). ``**extra``: other CreateCollectionRequest fields by name.
        Not retried (not idempotent).
        """
        self._run(core.op_create_collection(name, dim, metric, fields, embedding_model, index, shards, exist_ok,
                                            extra))

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        """Drops a collection and its data. ``missing_ok``: no error when it does not exist. Not retried."""
        self._run(core.op_drop_collection(name, missing_ok))

    def list_collections(self) -> list[CollectionInfo]:
        return self._run(core.op_list_collections())

    def describe_collection(self, name: str) -> CollectionInfo:
        """Schema, live rows, segments; ``QuiverNotFound`` for an unknown collection."""
        return self._run(core.op_describe_collection(name))

    def has_collection(self, name: str) -> bool:
        return self._run(core.op_has_collection(name))

    # -- points --
    def upsert(self, collection: str, points: Iterable[PointLike]) -> UpsertResult:
        """Inserts or replaces points by id.

        A point is a ``Point`` or a dict ``{"id": str, "vector": [...] or ndarray, "text": str, "attributes":
        {...}}``; give a vector, or text alone on a collection with an embedding model. The points are sent in as
        many requests as the server's limits need (10,000 points, ``max_request_bytes``, and 1,000 texts / 1 MiB of
        text to embed per request): each request is all-or-nothing, the whole call is not (re-running it is
        safe: upsert by id is idempotent). A list is checked whole before the first request (a malformed point
        fails the call with nothing written); a generator is consumed one request's worth at a time.
        """
        return self._run(core.op_upsert(collection, points, self.max_request_bytes))

    def delete(self, collection: str, ids: Union[str, Iterable[str], None] = None, *,
               filter: FilterLike = None) -> int:
        """Deletes points by id, or every point matching ``filter`` (one write, atomic per shard; at most 100,000
        points); returns how many existed."""
        return self._run(core.op_delete(collection, ids, filter))

    def update_attributes(self, collection: str, ids: Union[str, Iterable[str], None] = None, *,
                          filter: FilterLike = None, set: Optional[Mapping[str, AttributeValue]] = None,
                          unset: Optional[Iterable[str]] = None) -> int:
        """Sets (``set``) and removes (``unset``) attributes of the points with these ids, or of every point
        matching ``filter`` (at most 10,000), keeping their vectors and text; returns how many were updated."""
        return self._run(core.op_update_attributes(collection, ids, filter, set, unset))

    def get(self, collection: str, ids: Union[str, Iterable[str]], with_vectors: bool = False) -> list[Point]:
        """The points with these ids, in the order asked; absent ids are left out."""
        return self._run(core.op_get(collection, ids, with_vectors))

    def count(self, collection: str, filter: FilterLike = None, *, allow_partial: bool = False) -> int:
        """Live points, those matching ``filter`` when given."""
        return self._run(core.op_count(collection, filter, allow_partial))

    def search(self, collection: str, vector: Optional[VectorLike] = None, text: Optional[str] = None, k: int = 10,
               filter: FilterLike = None, ef: Optional[int] = None, with_attributes: bool = True,
               with_text: bool = True, with_vectors: bool = False, *, exact: bool = False,
               rerank: Optional[int] = None, allow_partial: bool = False, group_by: Optional[str] = None,
               group_size: Optional[int] = None) -> Hits:
        """The k nearest points to ``vector``, or to ``text`` (embedded by the server; the collection needs an
        embedding model), best first, among those matching ``filter``. ``ef``: HNSW search breadth (default 64);
        ``exact``: scan every point; ``rerank``: re-ranking depth of quantised indexes; ``allow_partial``: through a
        coordinator, answer from the shards that answer (then ``hits.partial`` / ``hits.missing_shards``);
        ``group_by`` (a KEYWORD field): the hits of the k best groups, at most ``group_size`` (default 1) per group,
        each hit's value in ``hit.group`` (for RAG: one passage per source document)."""
        return self._run(core.op_search(collection, vector, text, k, filter, ef, with_attributes, with_text,
                                        with_vectors, exact, rerank, allow_partial, group_by, group_size))

    def search_batch(self, collection: str, vectors: Union[Sequence[VectorLike], npt.NDArray[Any], None] = None,
                     k: int = 10, filter: FilterLike = None, ef: Optional[int] = None, with_attributes: bool = True,
                     with_text: bool = True, with_vectors: bool = False, *, texts: Optional[Sequence[str]] = None,
                     exact: bool = False, rerank: Optional[int] = None, allow_partial: bool = False,
                     group_by: Optional[str] = None, group_size: Optional[int] = None) -> list[Hits]:
        """One ``Hits`` per query vector (a 2-D array or a list of vectors), in order; or per text of ``texts``
        (embedded first with ``embed``). Sent 1,000 queries per request. ``group_by``: as in ``search``."""
        return self._run(core.op_search_batch(collection, vectors, texts, k, filter, ef, with_attributes, with_text,
                                              with_vectors, exact, rerank, allow_partial, group_by, group_size))

    def scroll(self, collection: str, filter: FilterLike = None, page_size: int = 1000, with_vectors: bool = False,
               limit: Optional[int] = None) -> Iterator[Point]:
        """Every point matching ``filter`` (at most ``limit``), in ascending id order, fetched ``page_size`` at a
        time. A point that exists unchanged for the whole iteration is yielded exactly once."""
        f = core.scroll_filter(filter)
        return self._scroll(collection, f, page_size, with_vectors, limit)

    def _scroll(self, collection: str, f: Any, page_size: int, with_vectors: bool,
                limit: Optional[int]) -> Iterator[Point]:
        cursor: Optional[str] = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else max(1, min(page_size, left))
            points, cursor, page_size = self._run(core.op_scroll_page(collection, f, size, cursor, with_vectors))
            for p in points[:left]:
                yield p
            if left is not None:
                left -= len(points)
            if cursor is None:
                return

    def scroll_page(self, collection: str, filter: FilterLike = None, page_size: int = 1000,
                    cursor: Optional[str] = None, with_vectors: bool = False) -> tuple[list[Point], Optional[str]]:
        """One page of a scroll: (points, the cursor of the next page or None at the end)."""
        points, nxt, _ = self._run(core.op_scroll_page(collection, core.scroll_filter(filter), page_size, cursor,
                                                       with_vectors))
        return points, nxt

    def embed(self, texts: Union[str, Sequence[str]]) -> npt.NDArray[np.float32]:
        """The server model's vectors (unit length) of the texts: an array of shape (len(texts), dim)."""
        return self._run(core.op_embed(texts))

    # -- admin --
    def health(self) -> Health:
        return self._run(core.op_health())

    def stats(self) -> Stats:
        return self._run(core.op_stats())

    def flush(self, collection: Optional[str] = None) -> int:
        """Seals the growing segments (of one collection, or all); returns how many were sealed."""
        return self._run(core.op_flush(collection))

    def compact(self, collection: str, target_rows: int = 0) -> CompactResult:
        """Starts a background compaction; its progress is in ``stats().compactions``."""
        return self._run(core.op_compact(collection, target_rows))
