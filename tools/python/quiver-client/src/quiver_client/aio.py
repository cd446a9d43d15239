"""AsyncQuiverClient: QuiverClient's methods as coroutines, on grpc.aio."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Iterable, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio
import numpy as np
import numpy.typing as npt

from . import _core as core
from ._core import Call, Op, RetryPolicy, T, TLSLike
from .errors import QuiverError, from_rpc_error
from .filters import FilterLike
from .types import (AttributeValue, CollectionInfo, CompactResult, Health, Hits, IndexConfig, Point, Stats,
                    UpsertResult, VectorLike)

PointLike = Union[Point, Mapping[str, Any]]


class AsyncQuiverClient:
    """The asyncio client: the same constructor and methods as ``QuiverClient``, each ``async def``
    (``scroll`` is an async iterator: ``async for p in client.scroll(...)``).

    The gRPC channel is opened on first use, in the running event loop; ``await client.close()`` or
    ``async with AsyncQuiverClient(...) as client:`` closes it.
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
        self._creds, self._opts = core.channel_args(core.tls_config(tls), options)
        self._channel: Optional[grpc.aio.Channel] = None
        self._callables: dict[str, Any] = {}
        self._closed = False

    # -- plumbing --
    def _callable(self, name: str) -> Any:
        if self._channel is None:
            self._channel = (grpc.aio.secure_channel(self.address, self._creds, options=self._opts)
                             if self._creds is not None
                             else grpc.aio.insecure_channel(self.address, options=self._opts))
        c = self._callables.get(name)
        if c is None:
            m = core.METHODS[name]
            c = self._channel.unary_unary(m.path, request_serializer=m.request.SerializeToString,
                                          response_deserializer=m.response.FromString)
            self._callables[name] = c
        return c

    async def _invoke(self, call: Call) -> Any:
        if self._closed:
            raise QuiverError("the client is closed", grpc.StatusCode.CANCELLED, call.method)
        fn = self._callable(call.method)
        t0 = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn(call.request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e, call.method)
                delay = core.retry_delay(self.retry, err, call, attempt, time.monotonic() - t0)
                if delay is None:
                    raise err from e
                await asyncio.sleep(delay)

    async def _run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    resp = await self._invoke(call)
                except QuiverError as err:
                    call = op.throw(err)
                else:
                    call = op.send(resp)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Closes the channel (calls after this fail). Idempotent."""
        if not self._closed:
            self._closed = True
            if self._channel is not None:
                await self._channel.close()

    async def __aenter__(self) -> "AsyncQuiverClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    # -- collections --
    async def create_collection(self, name: str, dim: Optional[int] = None, metric: str = "cosine",
                                fields: Optional[Mapping[str, Any]] = None, embedding_model: Optional[str] = None,
                                index: Union[str, Mapping[str, Any], IndexConfig, None] = None, shards: int = 0, *,
                                exist_ok: bool = False, **extra: Any) -> None:
        """See ``QuiverClient.create_collection``."""
        await self._run(core.op_create_collection(name, dim, metric, fields, embedding_model, index, shards,
                                                  exist_ok, extra))

    async def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        await self._run(core.op_drop_collection(name, missing_ok))

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._run(core.op_list_collections())

    async def describe_collection(self, name: str) -> CollectionInfo:
        return await self._run(core.op_describe_collection(name))

    async def has_collection(self, name: str) -> bool:
        return await self._run(core.op_has_collection(name))

    # -- points --
    async def upsert(self, collection: str, points: Iterable[PointLike]) -> UpsertResult:
        """See ``QuiverClient.upsert``."""
        return await self._run(core.op_upsert(collection, points, self.max_request_bytes))

    async def delete(self, collection: str, ids: Union[str, Iterable[str], None] = None, *,
                     filter: FilterLike = None) -> int:
        """See ``QuiverClient.delete``."""
        return await self._run(core.op_delete(collection, ids, filter))

    async def update_attributes(self, collection: str, ids: Union[str, Iterable[str], None] = None, *,
                                filter: FilterLike = None, set: Optional[Mapping[str, AttributeValue]] = None,
                                unset: Optional[Iterable[str]] = None) -> int:
        """See ``QuiverClient.update_attributes``."""
        return await self._run(core.op_update_attributes(collection, ids, filter, set, unset))

    async def get(self, collection: str, ids: Union[str, Iterable[str]], with_vectors: bool = False) -> list[Point]:
        return await self._run(core.op_get(collection, ids, with_vectors))

    async def count(self, collection: str, filter: FilterLike = None, *, allow_partial: bool = False) -> int:
        return await self._run(core.op_count(collection, filter, allow_partial))

    async def search(self, collection: str, vector: Optional[VectorLike] = None, text: Optional[str] = None,
                     k: int = 10, filter: FilterLike = None, ef: Optional[int] = None, with_attributes: bool = True,
                     with_text: bool = True, with_vectors: bool = False, *, exact: bool = False,
                     rerank: Optional[int] = None, allow_partial: bool = False, group_by: Optional[str] = None,
                     group_size: Optional[int] = None) -> Hits:
        """See ``QuiverClient.search``."""
        return await self._run(core.op_search(collection, vector, text, k, filter, ef, with_attributes, with_text,
                                              with_vectors, exact, rerank, allow_partial, group_by, group_size))

    async def search_batch(self, collection: str,
                           vectors: Union[Sequence[VectorLike], npt.NDArray[Any], None] = None, k: int = 10,
                           filter: FilterLike = None, ef: Optional[int] = None, with_attributes: bool = True,
                           with_text: bool = True, with_vectors: bool = False, *,
                           texts: Optional[Sequence[str]] = None, exact: bool = False, rerank: Optional[int] = None,
                           allow_partial: bool = False, group_by: Optional[str] = None,
                           group_size: Optional[int] = None) -> list[Hits]:
        return await self._run(core.op_search_batch(collection, vectors, texts, k, filter, ef, with_attributes,
                                                    with_text, with_vectors, exact, rerank, allow_partial, group_by,
                                                    group_size))

    async def scroll(self, collection: str, filter: FilterLike = None, page_size: int = 1000,
                     with_vectors: bool = False, limit: Optional[int] = None) -> AsyncIterator[Point]:
        """``async for point in client.scroll(...)``: see ``QuiverClient.scroll``."""
        f = core.scroll_filter(filter)
        cursor: Optional[str] = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else max(1, min(page_size, left))
            points, cursor, page_size = await self._run(core.op_scroll_page(collection, f, size, cursor,
                                                                            with_vectors))
            for p in points[:left]:
                yield p
            if left is not None:
                left -= len(points)
            if cursor is None:
                return

    async def scroll_page(self, collection: str, filter: FilterLike = None, page_size: int = 1000,
                          cursor: Optional[str] = None, with_vectors: bool = False,
                          ) -> tuple[list[Point], Optional[str]]:
        points, nxt, _ = await self._run(core.op_scroll_page(collection, core.scroll_filter(filter), page_size,
                                                             cursor, with_vectors))
        return points, nxt

    async def embed(self, texts: Union[str, Sequence[str]]) -> npt.NDArray[np.float32]:
        return await self._run(core.op_embed(texts))

    # -- admin --
    async def health(self) -> Health:
        return await self._run(core.op_health())

    async def stats(self) -> Stats:
        return await self._run(core.op_stats())

    async def flush(self, collection: Optional[str] = None) -> int:
        return await self._run(core.op_flush(collection))

    async def compact(self, collection: str, target_rows: int = 0) -> CompactResult:
        return await self._run(core.op_compact(collection, target_rows))
