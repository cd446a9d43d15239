"""What the sync and the async client share: channel set-up, retries, and every operation written once.

Each operation is a generator ("sans I/O"): it yields the ``Call``s it needs, is sent each response (or has the
call's ``QuiverError`` thrown in, so that it may adapt, e.g. split a request the server found too large), and
returns the result. ``QuiverClient`` drives it with blocking calls, ``AsyncQuiverClient`` with awaits, so both
clients build the same requests, split batches the same way and convert answers the same way.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence, TypeVar, Union

import grpc
import numpy as np
import numpy.typing as npt

from . import _convert as cv
from . import filters as _filters
from ._proto.quiver.v1 import quiver_pb2 as pb
from .errors import QuiverAlreadyExists, QuiverError, QuiverInvalidArgument, QuiverNotFound, QuiverResourceExhausted
from .types import CollectionInfo, CompactResult, Health, Hits, Point, Stats, UpsertResult

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------------------
# server limits (storage/schema.h, server/embedder.h, README)
# ---------------------------------------------------------------------------------------------------------------------
MAX_BATCH = 10_000  # points per Upsert, ids per Delete / Get
MAX_QUERIES = 1_000  # vectors per SearchBatch
MAX_EMBED_TEXTS = 1_000  # texts per Embed, and points embedded by one Upsert
MAX_EMBED_BYTES = 1 << 20  # bytes of those texts
MAX_SCROLL_PAGE = 10_000
DEFAULT_MAX_REQUEST_BYTES = 32 << 20  # half of the server's default --max-message-mb (64)

API_KEY_HEADER = "authorization"  # server/rpc.c: `authorization: Bearer KEY`


# ---------------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How calls that failed with UNAVAILABLE are retried.

    Only idempotent calls are retried on UNAVAILABLE: every read, Health, Stats, Describe / ListCollections,
    Embed, and Upsert and Delete (both by id: repeating one leaves the same state). CreateCollection,
    DropCollection, Flush and Compact are not. ``retry_busy``: also retry RESOURCE_EXHAUSTED "server busy"
    (``--max-inflight`` reached), for every call, since the server refuses those before reading the request.

    Backoff: ``initial_backoff * multiplier**n`` seconds capped at ``max_backoff``, each with +-20% jitter; no retry
    starts once ``total_timeout`` seconds have passed since the first try. ``RetryPolicy(max_attempts=1)`` turns
    retries off.
    """

    max_attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    total_timeout: float = 15.0
    retry_busy: bool = True

    def delay(self, attempt: int, elapsed: float) -> Optional[float]:
        """Seconds to wait before try ``attempt + 1`` (attempt counts from 1), or None to give up."""
        if attempt >= self.max_attempts:
            return None
        d = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        d *= 1.0 + random.uniform(-0.2, 0.2)
        if elapsed + d > self.total_timeout:
            return None
        return max(0.0, d)


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings. Certificates and keys are PEM bytes or paths to PEM files.

    ``root_certificates``: the CA that signed the server's certificate (None: the system's roots);
    ``private_key`` + ``certificate_chain``: a client certificate (servers started with ``--tls-client-ca``);
    ``server_name``: the name to check the server's certificate against, when it differs from the address's host.
    """

    root_certificates: Union[bytes, str, os.PathLike[str], None] = None
    private_key: Union[bytes, str, os.PathLike[str], None] = None
    certificate_chain: Union[bytes, str, os.PathLike[str], None] = None
    server_name: Optional[str] = None


DEFAULT_RETRY = RetryPolicy()

TLSLike = Union[None, bool, TLSConfig, Mapping[str, Any]]


def _pem(v: Union[bytes, str, os.PathLike[str], None]) -> Optional[bytes]:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str) and "-----BEGIN" in v:
        return v.encode()
    return Path(v).read_bytes()


def tls_config(tls: TLSLike) -> Optional[TLSConfig]:
    if tls is None or tls is False:
        return None
    if tls is True:
        return TLSConfig()
    if isinstance(tls, TLSConfig):
        return tls
    if isinstance(tls, Mapping):
        allowed = ("root_certificates", "private_key", "certificate_chain", "server_name")
        unknown = [k for k in tls if k not in allowed]
        if unknown:
            raise ValueError(f"tls: unknown key(s) {unknown} (keys: {', '.join(allowed)})")
        return TLSConfig(**tls)
    raise TypeError(f"tls must be None, True, a dict or a TLSConfig, not {type(tls).__name__}")


def parse_address(address: str, tls: TLSLike) -> tuple[str, TLSLike]:
    """'host:port', optionally with a grpc:// http:// or https:// prefix (https turns TLS on)."""
    if not isinstance(address, str) or not address:
        raise ValueError(f"address must be 'host:port', not {address!r}")
    for scheme, secure in (("grpc://", False), ("http://", False), ("https://", True), ("grpcs://", True)):
        if address.startswith(scheme):
            address = address[len(scheme):].rstrip("/")
            if secure and tls is None:
                tls = True
            break
    return address, tls


def channel_args(tls: Optional[TLSConfig], options: Sequence[tuple[str, Any]]) -> tuple[
        Optional[grpc.ChannelCredentials], list[tuple[str, Any]]]:
    opts: dict[str, Any] = {
        # the server enforces its own --max-message-mb; the client must not refuse first (gRPC's default receive
        # limit is 4 MiB)
        "grpc.max_send_message_length": -1,
        "grpc.max_receive_message_length": -1,
        # reconnect soon after the server comes back (gRPC's defaults: 1 s, growing to 120 s)
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 5000,
    }
    creds = None
    if tls is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=_pem(tls.root_certificates),
                                             private_key=_pem(tls.private_key),
                                             certificate_chain=_pem(tls.certificate_chain))
        if tls.server_name:
            opts["grpc.ssl_target_name_override"] = tls.server_name
            opts["grpc.default_authority"] = tls.server_name
    for k, v in options:
        opts[k] = v
    return creds, list(opts.items())


def metadata(api_key: Optional[str]) -> Optional[tuple[tuple[str, str], ...]]:
    if api_key is None:
        return None
    if not isinstance(api_key, str) or not api_key or any(c.isspace() for c in api_key):
        raise ValueError("api_key must be a non-empty str without white space")
    return ((API_KEY_HEADER, f"Bearer {api_key}"),)


# ---------------------------------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------------------------------
class Method(NamedTuple):
    path: str  # /quiver.v1.Quiver/Search
    name: str  # Quiver/Search
    request: Any
    response: Any


def _method_table() -> dict[str, Method]:
    """Every RPC of the proto's services, from the descriptors (the generated *_grpc module is not needed, so
    the client works with any grpcio >= 1.60, not only the one the stubs were generated with)."""
    table = {}
    for svc in pb.DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            name = f"{svc.name}/{m.name}"
            table[name] = Method(f"/{svc.full_name}/{m.name}", name, getattr(pb, m.input_type.name),
                                 getattr(pb, m.output_type.name))
    return table


METHODS = _method_table()


class Call(NamedTuple):
    method: str  # a METHODS key
    request: Any
    idempotent: bool


def retry_delay(policy: RetryPolicy, err: QuiverError, call: Call, attempt: int, elapsed: float) -> Optional[float]:
    code = err.code
    if code == grpc.StatusCode.UNAVAILABLE and call.idempotent:
        return policy.delay(attempt, elapsed)
    if (code == grpc.StatusCode.RESOURCE_EXHAUSTED and policy.retry_busy
            and err.message.startswith("server busy")):
        return policy.delay(attempt, elapsed)
    return None


# ---------------------------------------------------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------------------------------------------------
Op = Generator[Call, Any, T]

_TOO_LARGE_REQUEST = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")
_OVER_DECODE_BUDGET = re.compile(r"would decode to about \d+ bytes, over the \d+x budget")


def _response_too_large(e: QuiverError) -> bool:
    return isinstance(e, QuiverResourceExhausted) and "message limit" in e.message


def op_create_collection(name: str, dim: Optional[int], metric: Union[str, int], fields: Any,
                         embedding_model: Optional[str], index: Any, shards: int, exist_ok: bool,
                         extra: Mapping[str, Any]) -> Op[None]:
    req = pb.CreateCollectionRequest(name=name, dim=int(dim or 0), metric=cv.metric_pb(metric), shards=int(shards))
    if fields:
        items = fields.items() if isinstance(fields, Mapping) else fields
        for fname, ftype in items:
            req.fields.add(name=fname, type=cv.field_type_pb(fname, ftype))
    if embedding_model:
        req.embedding_model = embedding_model
    ip = cv.index_pb(index)
    if ip is not None:
        req.index.CopyFrom(ip)
    cv.set_extra(req, extra, "create_collection")
    try:
        yield Call("Quiver/CreateCollection", req, False)
    except QuiverAlreadyExists:
        if not exist_ok:
            raise


def op_drop_collection(name: str, missing_ok: bool) -> Op[None]:
    try:
        yield Call("Quiver/DropCollection", pb.DropCollectionRequest(name=name), False)
    except QuiverNotFound:
        if not missing_ok:
            raise


def op_list_collections() -> Op[list[CollectionInfo]]:
    r = yield Call("Quiver/ListCollections", pb.ListCollectionsRequest(), True)
    return [cv.collection_py(c, r.missing_shards) for c in r.collections]


def op_describe_collection(name: str) -> Op[CollectionInfo]:
    r = yield Call("Quiver/DescribeCollection", pb.DescribeCollectionRequest(name=name), True)
    return cv.collection_py(r.collection, r.missing_shards)


def op_has_collection(name: str) -> Op[bool]:
    try:
        yield Call("Quiver/DescribeCollection", pb.DescribeCollectionRequest(name=name), True)
    except QuiverNotFound:
        return False
    return True


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _field_len(size: int) -> int:
    """Bytes a length-delimited field of `size` payload bytes takes (tag 1 byte for field numbers < 16)."""
    return 1 + _varint_len(size) + size


# The server refuses a request whose protobuf-c unpacking would allocate more than 16x its wire size plus 1 MiB
# (server/pbcheck.c charges each message struct, string copy and repeated array, and the per-field scan records once
# per nesting depth). decode_excess mirrors that walk for an Upsert's points (struct sizes of protobuf-c 1.4 on
# 64-bit), plus 10%, so that batches stay inside the budget; with that rule real points rarely come near it.
# Servers built before that rule (scan records charged per message: ~27x for small points with many attributes)
# refuse more: the client then halves the batch (op_upsert).
DECODE_FACTOR = 16
DECODE_SLACK = 1 << 20
_DECODE_BUDGET = int(DECODE_SLACK * 0.75)  # of the slack, what one request's excess may use
_STR = 17  # a string's copy: its NUL and malloc's overhead
_REPEATED = 8 + 16  # an element of a repeated field: its array slot and its share of the array's malloc overhead
_SCAN = 64  # a scan record of the request's top level (one per point)


def decode_excess(p: Any, wire: int) -> int:
    """How much the server's decode estimate of an Upsert's point field exceeds DECODE_FACTOR x its wire bytes
    (negative for most points)."""
    d = _REPEATED + _SCAN + 72 + 16 + len(p.id) + _STR  # the Point struct and its id
    if p.vector:
        d += 4 * len(p.vector) + 4 + 16
    if p.text:
        d += len(p.text.encode()) + _STR
    for k, v in p.attributes.items():
        d += _REPEATED + 56 + len(k) + _STR + 56  # map entry, key, Value
        kind = v.WhichOneof("kind")
        if kind == "keyword_value":
            d += len(v.keyword_value.encode()) + _STR
        elif kind == "keywords_value":
            d += 56 + sum(len(x.encode()) + _STR + _REPEATED for x in v.keywords_value.values)
    return int(d * 1.1) - DECODE_FACTOR * wire


def iter_batches(points: Iterable[Any], collection: str, max_bytes: Union[int, list[int]],
                 max_count: int = MAX_BATCH) -> Iterator[list[Any]]:
    """Groups quiver.v1.Points into Upsert-sized lists, lazily: at most max_count points, about max_bytes per
    request, within the server's decode budget (decode_excess), and at most MAX_EMBED_TEXTS texts /
    MAX_EMBED_BYTES text bytes to embed (points with text and no vector). A point over a limit on its own goes alone
    (the server decides). max_bytes may be a one-element list, read at each point, so that a caller can lower it
    while iterating. No points: one empty list."""
    limit = max_bytes if isinstance(max_bytes, list) else [max_bytes]
    base = _field_len(len(collection.encode()))
    cur: list[Any] = []
    size, excess = base, 0
    n_embed = embed_bytes = 0
    sent = False
    for p in points:
        psize = _field_len(p.ByteSize())
        pexcess = decode_excess(p, psize)
        embeds = not p.vector and bool(p.text)
        tbytes = len(p.text.encode()) if embeds else 0
        if cur and (len(cur) >= max_count or size + psize > limit[0] or excess + pexcess > _DECODE_BUDGET
                    or (embeds and (n_embed + 1 > MAX_EMBED_TEXTS or embed_bytes + tbytes > MAX_EMBED_BYTES))):
            yield cur
            sent = True
            cur, size, excess, n_embed, embed_bytes = [], base, 0, 0, 0
        cur.append(p)
        size += psize
        excess += pexcess
        if embeds:
            n_embed += 1
            embed_bytes += tbytes
    if cur or not sent:
        yield cur


def split_points(points: Iterable[Any], collection: str, max_bytes: int,
                 max_count: int = MAX_BATCH) -> list[list[Any]]:
    """iter_batches as a list."""
    return list(iter_batches(points, collection, max_bytes, max_count))


def op_upsert(collection: str, points: Iterable[Any], max_bytes: int) -> Op[UpsertResult]:
    """A list (or other Sequence) of points is converted whole before the first request, so that a malformed
    point anywhere fails the call before anything is written; any other iterable (a generator) is converted and
    sent batch by batch, holding one batch in memory."""
    if isinstance(points, (Mapping, Point)):
        points = [points]
    if isinstance(points, Sequence):
        msgs: Iterable[Any] = [cv.point_pb(p, i) for i, p in enumerate(points)]
    else:
        msgs = (cv.point_pb(p, i) for i, p in enumerate(points))
    limit = [max_bytes]
    batches = iter_batches(msgs, collection, limit)
    retry: list[list[Any]] = []  # a stack of batches to send again, split, before the next from `batches`
    count = seq = requests = 0
    while True:
        batch = retry.pop() if retry else next(batches, None)
        if batch is None:
            break
        try:
            r = yield Call("Quiver/Upsert", pb.UpsertRequest(collection=collection, points=batch), True)
        except QuiverResourceExhausted as e:
            m = _TOO_LARGE_REQUEST.search(e.message)
            if not m or len(batch) <= 1:
                raise
            # the server's --max-message-mb is below ours: split this batch, and make the next ones, at its limit
            limit[0] = min(limit[0], int(int(m.group(2)) * 0.9))
            parts = split_points(batch, collection, limit[0])
            if len(parts) == 1:  # nothing smaller to try
                raise
            retry += reversed(parts)
            continue
        except QuiverInvalidArgument as e:
            if not _OVER_DECODE_BUDGET.search(e.message) or len(batch) <= 1:
                raise
            half = len(batch) // 2  # the server's decode estimate is above ours (an older server): halves
            retry += [batch[half:], batch[:half]]
            continue
        count += r.count
        seq = max(seq, r.seq)
        requests += 1
    return UpsertResult(count=count, seq=seq, requests=requests)


def _chunks(ids: list[str], n: int) -> list[list[str]]:
    return [ids[i:i + n] for i in range(0, len(ids), n)] or [[]]


def op_delete(collection: str, ids: Any, filter: _filters.FilterLike = None) -> Op[int]:
    f = _filters.to_proto(filter)
    if f is not None:  # every matching point, one write (atomic per shard); repeating it leaves the same state
        if ids is not None:
            raise ValueError("delete: give ids or a filter, not both")
        r = yield Call("Quiver/Delete", pb.DeleteRequest(collection=collection, filter=f), True)
        return int(r.deleted)
    if ids is None:
        raise ValueError("delete: give ids or a filter")
    deleted = 0
    for chunk in _chunks(cv.ids_list(ids), MAX_BATCH):
        r = yield Call("Quiver/Delete", pb.DeleteRequest(collection=collection, ids=chunk), True)
        deleted += r.deleted
    return deleted


def op_update_attributes(collection: str, ids: Any, filter: _filters.FilterLike, set: Optional[Mapping[str, Any]],
                         unset: Optional[Iterable[str]]) -> Op[int]:
    set_ = dict(set or {})
    unset_ = [str(u) for u in (unset or [])]
    if not set_ and not unset_:
        raise ValueError("update_attributes: nothing to change (give set and/or unset)")
    f = _filters.to_proto(filter)
    if (f is None) == (ids is None):
        raise ValueError("update_attributes: give ids or a filter (exactly one)")
    req = pb.UpdateAttributesRequest(collection=collection, unset=unset_)
    for k, v in set_.items():
        req.set[k].CopyFrom(cv.value_pb(v, k))
    if f is not None:  # one write; repeating it leaves the same state
        req.filter.CopyFrom(f)
        r = yield Call("Quiver/UpdateAttributes", req, True)
        return int(r.updated)
    updated = 0
    for chunk in _chunks(cv.ids_list(ids), MAX_BATCH):
        del req.ids[:]
        req.ids.extend(chunk)
        r = yield Call("Quiver/UpdateAttributes", req, True)
        updated += r.updated
    return updated


def op_get(collection: str, ids: Any, with_vectors: bool) -> Op[list[Point]]:
    pending = _chunks(cv.ids_list(ids), MAX_BATCH)
    pending.reverse()
    out: list[Point] = []
    while pending:
        chunk = pending.pop()
        try:
            r = yield Call("Quiver/Get", pb.GetRequest(collection=collection, ids=chunk, with_vectors=with_vectors),
                           True)
        except QuiverResourceExhausted as e:
            if not _response_too_large(e) or len(chunk) <= 1:
                raise
            half = len(chunk) // 2  # the answer would be over the server's message limit: ask in halves
            pending += [chunk[half:], chunk[:half]]
            continue
        out.extend(cv.point_py(p, with_vectors) for p in r.points)
    return out


def op_count(collection: str, filter: _filters.FilterLike, allow_partial: bool) -> Op[int]:
    req = pb.CountRequest(collection=collection, allow_partial=allow_partial)
    f = _filters.to_proto(filter)
    if f is not None:
        req.filter.CopyFrom(f)
    r = yield Call("Quiver/Count", req, True)
    return int(r.count)


def _search_params(ef: Optional[int], exact: bool, rerank: Optional[int]) -> Optional[pb.SearchParams]:
    if ef is None and not exact and rerank is None:
        return None
    return pb.SearchParams(ef=int(ef or 0), exact=bool(exact), rerank=int(rerank or 0))


def op_search(collection: str, vector: Any, text: Optional[str], k: int, filter: _filters.FilterLike,
              ef: Optional[int], with_attributes: bool, with_text: bool, with_vectors: bool, exact: bool,
              rerank: Optional[int], allow_partial: bool, group_by: Optional[str] = None,
              group_size: Optional[int] = None) -> Op[Hits]:
    if (vector is None) == (text is None):
        raise ValueError("search: give exactly one of vector and text")
    req = pb.SearchRequest(collection=collection, k=int(k), with_attributes=with_attributes, with_text=with_text,
                           with_vectors=with_vectors, allow_partial=allow_partial, group_by=group_by or "",
                           group_size=int(group_size or 0))
    if vector is not None:
        req.vector.extend(cv.vector_list(vector, "search vector"))
    else:
        if not isinstance(text, str):
            raise TypeError(f"search: text must be a str, not {type(text).__name__}")
        req.text = text
    f = _filters.to_proto(filter)
    if f is not None:
        req.filter.CopyFrom(f)
    params = _search_params(ef, exact, rerank)
    if params is not None:
        req.params.CopyFrom(params)
    r = yield Call("Quiver/Search", req, True)
    return cv.hits_py(r, with_vectors)


def op_embed(texts: Any) -> Op[npt.NDArray[np.float32]]:
    items = cv.texts_list(texts)
    if not items:
        return np.zeros((0, 0), dtype=np.float32)
    out: list[Any] = []
    start = 0
    while start < len(items):  # requests of at most MAX_EMBED_TEXTS texts and MAX_EMBED_BYTES bytes
        end, nbytes = start, 0
        while end < len(items) and end - start < MAX_EMBED_TEXTS:
            b = len(items[end].encode())
            if end > start and nbytes + b > MAX_EMBED_BYTES:
                break
            nbytes += b
            end += 1
        r = yield Call("Quiver/Embed", pb.EmbedRequest(texts=items[start:end]), True)
        out.extend(v.values for v in r.vectors)
        start = end
    return np.array(out, dtype=np.float32)


def op_search_batch(collection: str, vectors: Any, texts: Any, k: int, filter: _filters.FilterLike,
                    ef: Optional[int], with_attributes: bool, with_text: bool, with_vectors: bool, exact: bool,
                    rerank: Optional[int], allow_partial: bool, group_by: Optional[str] = None,
                    group_size: Optional[int] = None) -> Op[list[Hits]]:
    if (vectors is None) == (texts is None):
        raise ValueError("search_batch: give exactly one of vectors and texts")
    if texts is not None:
        emb = yield from op_embed(texts)
        queries = emb.tolist()
    else:
        queries = cv.vectors_2d(vectors, "search_batch vectors")
    f = _filters.to_proto(filter)
    params = _search_params(ef, exact, rerank)

    def request(qs: list[list[float]]) -> pb.SearchBatchRequest:
        req = pb.SearchBatchRequest(collection=collection, k=int(k), with_attributes=with_attributes,
                                    with_text=with_text, with_vectors=with_vectors, allow_partial=allow_partial,
                                    group_by=group_by or "", group_size=int(group_size or 0))
        req.vectors.extend(pb.Vector(values=q) for q in qs)
        if f is not None:
            req.filter.CopyFrom(f)
        if params is not None:
            req.params.CopyFrom(params)
        return req

    results: list[Hits] = []
    pending = [queries[i:i + MAX_QUERIES] for i in range(0, len(queries), MAX_QUERIES)]
    if not pending:
        return results
    pending.reverse()
    while pending:
        qs = pending.pop()
        try:
            r = yield Call("Quiver/SearchBatch", request(qs), True)
        except QuiverResourceExhausted as e:
            if not _response_too_large(e) or len(qs) <= 1:
                raise
            half = len(qs) // 2
            pending += [qs[half:], qs[:half]]
            continue
        results.extend(cv.hits_py(x, with_vectors) for x in r.results)
    return results


def op_scroll_page(collection: str, filter: Any, page_size: int, cursor: Optional[str], with_vectors: bool,
                   ) -> Op[tuple[list[Point], Optional[str], int]]:
    """One page; returns (points, next cursor or None, the page size that fit under the server's limit)."""
    f = filter if isinstance(filter, pb.Filter) or filter is None else _filters.to_proto(filter)
    if not 1 <= page_size <= MAX_SCROLL_PAGE:
        raise ValueError(f"scroll: page_size must be 1..{MAX_SCROLL_PAGE}, not {page_size}")
    while True:
        req = pb.ScrollRequest(collection=collection, limit=page_size, cursor=cursor or "", with_vectors=with_vectors)
        if f is not None:
            req.filter.CopyFrom(f)
        try:
            r = yield Call("Quiver/Scroll", req, True)
        except QuiverResourceExhausted as e:
            if not _response_too_large(e) or page_size <= 1:
                raise
            page_size //= 2  # the page would be over the server's message limit
            continue
        return [cv.point_py(p, with_vectors) for p in r.points], (r.next_cursor or None), page_size


def op_health() -> Op[Health]:
    r = yield Call("Admin/Health", pb.HealthRequest(), True)
    return cv.health_py(r)


def op_stats() -> Op[Stats]:
    r = yield Call("Admin/Stats", pb.StatsRequest(), True)
    return cv.stats_py(r)


def op_flush(collection: Optional[str]) -> Op[int]:
    r = yield Call("Admin/Flush", pb.FlushRequest(collection=collection or ""), False)
    return int(r.sealed_segments)


def op_compact(collection: str, target_rows: int) -> Op[CompactResult]:
    r = yield Call("Admin/Compact", pb.CompactRequest(collection=collection, target_rows=int(target_rows)), False)
    return CompactResult(job_id=int(r.job_id), input_segments=int(r.input_segments))


def scroll_filter(filter: _filters.FilterLike) -> Optional[pb.Filter]:
    """Converts once for all pages of a scroll (and raises ValueError before the first call)."""
    return _filters.to_proto(filter)
