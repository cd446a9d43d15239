"""The plain Python objects quiver_client takes and returns (no protobuf in the public API).

Every object built from a server answer keeps that answer in ``raw`` (the protobuf message), so fields that a
newer server sends and this version of the client does not know yet are still reachable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

#: An attribute value: int (INT64), float (DOUBLE), str (KEYWORD), bool (BOOL) or a list of str (KEYWORDS).
AttributeValue = Union[int, float, str, bool, List[str]]

#: A vector as the client accepts it: a sequence of numbers or a 1-D NumPy array.
VectorLike = Union[Sequence[float], npt.NDArray[Any]]

#: Vectors the client returns: 1-D float32 NumPy arrays.
Vector = npt.NDArray[np.float32]


@dataclass
class Point:
    """A point to upsert, or one returned by ``get`` / ``scroll``.

    To upsert, give ``vector``, or ``text`` alone on a collection with an ``embedding_model`` (the server embeds
    it), or both (the text is stored, the vector is used). Returned points carry ``vector`` only when asked
    (``with_vectors=True``) and ``text`` only when the point has one.
    """

    id: str
    vector: Optional[VectorLike] = None
    text: Optional[str] = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass
class Hit:
    """One search result: ``score`` is the metric's (cosine similarity / inner product: higher is better;
    L2: squared distance, lower is better)."""

    id: str
    score: float
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    text: Optional[str] = None
    vector: Optional[Vector] = None
    group: Optional[str] = None  # with ``group_by``: this hit's value of that field


class Hits(List[Hit]):
    """The hits of one query, best first: a list, plus what a coordinator says about missing shards
    (``partial`` is only ever true for a search made with ``allow_partial=True``)."""

    partial: bool
    missing_shards: list[str]

    def __init__(self, hits: Sequence[Hit] = (), partial: bool = False, missing_shards: Sequence[str] = ()) -> None:
        super().__init__(hits)
        self.partial = partial
        self.missing_shards = list(missing_shards)


@dataclass
class IndexConfig:
    """How a collection is indexed. ``kind``: "hnsw" (the default) or "flat" (exact search only);
    ``m``/``ef_construction``: HNSW parameters (0: the server's default, 16 / 200); ``quantization``: "none",
    "sq8" or "pq" (``pq_m`` sub-quantisers; 0: the server picks)."""

    kind: str = "hnsw"
    m: int = 0
    ef_construction: int = 0
    quantization: str = "none"
    pq_m: int = 0


@dataclass
class SegmentInfo:
    id: int
    state: str  # "growing" | "sealed"
    rows: int
    deleted_rows: int
    bytes: int
    index_state: str  # "none" | "pending" | "building" | "ready" | "failed"
    index_progress: float
    index_bytes: int


@dataclass
class CollectionInfo:
    name: str
    dim: int
    metric: str  # "cosine" | "l2" | "ip"
    fields: dict[str, str]  # name -> "int" | "float" | "keyword" | "bool" | "keywords"
    shards: int
    live_rows: int
    wal_bytes: int
    index: IndexConfig
    embedding_model: Optional[str]
    segments: list[SegmentInfo]
    missing_shards: list[str] = field(default_factory=list)
    dynamic_attributes: bool = False  # points may carry attributes that are not in `fields`
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass
class ShardHealth:
    name: str
    address: str
    reachable: bool
    state: str
    consecutive_failures: int
    inflight: int


@dataclass
class Health:
    status: str  # "serving" | "not_serving" | "unspecified"
    version: str
    role: str
    reason: str
    shards: list[ShardHealth]
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def serving(self) -> bool:
        return self.status == "serving"


@dataclass
class CompactionJob:
    id: int
    collection: str
    state: str  # "queued" | "running" | "done" | "failed" | "abandoned"
    input_segments: list[int]
    output_segment: int
    rows_in: int
    rows_out: int
    progress: float
    automatic: bool
    error: str
    started_unix_ms: int
    finished_unix_ms: int


@dataclass
class Stats:
    collections: list[CollectionInfo]
    wal_bytes: int
    resident_bytes: int
    vector_bytes: int
    uptime_seconds: int
    simd: str
    compactions: list[CompactionJob]
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass
class UpsertResult:
    """``count``: points written; ``seq``: the highest write-ahead-log sequence number among the requests;
    ``requests``: how many Upsert calls the points were split into (each is all-or-nothing on its own)."""

    count: int
    seq: int
    requests: int


@dataclass
class CompactResult:
    """``job_id`` is 0 when there was nothing to compact; progress is in ``stats().compactions``."""

    job_id: int
    input_segments: int


__all__ = [
    "AttributeValue", "VectorLike", "Vector", "Point", "Hit", "Hits", "IndexConfig", "SegmentInfo", "CollectionInfo",
    "ShardHealth", "Health", "CompactionJob", "Stats", "UpsertResult", "CompactResult",
]
