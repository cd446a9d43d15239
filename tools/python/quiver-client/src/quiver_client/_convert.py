"""Conversions between the public Python objects (types.py) and the protobuf messages."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ._proto.quiver.v1 import quiver_pb2 as pb
from .types import (
    AttributeValue,
    CollectionInfo,
    CompactionJob,
    Health,
    Hit,
    Hits,
    IndexConfig,
    Point,
    SegmentInfo,
    ShardHealth,
    Stats,
    Vector,
)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# ---------------------------------------------------------------------------------------------------------------------
# enums
# ---------------------------------------------------------------------------------------------------------------------
_METRICS = {"cosine": pb.METRIC_COSINE, "l2": pb.METRIC_L2, "euclidean": pb.METRIC_L2, "ip": pb.METRIC_IP,
            "dot": pb.METRIC_IP, "inner_product": pb.METRIC_IP}
_METRIC_NAMES = {pb.METRIC_COSINE: "cosine", pb.METRIC_L2: "l2", pb.METRIC_IP: "ip"}

_FIELD_TYPES = {"int": pb.FIELD_TYPE_INT64, "int64": pb.FIELD_TYPE_INT64, "integer": pb.FIELD_TYPE_INT64,
                "float": pb.FIELD_TYPE_DOUBLE, "double": pb.FIELD_TYPE_DOUBLE,
                "keyword": pb.FIELD_TYPE_KEYWORD, "str": pb.FIELD_TYPE_KEYWORD, "string": pb.FIELD_TYPE_KEYWORD,
                "bool": pb.FIELD_TYPE_BOOL, "boolean": pb.FIELD_TYPE_BOOL,
                "keywords": pb.FIELD_TYPE_KEYWORDS, "list[str]": pb.FIELD_TYPE_KEYWORDS,
                "keyword[]": pb.FIELD_TYPE_KEYWORDS}
_FIELD_PY_TYPES: dict[Any, int] = {int: pb.FIELD_TYPE_INT64, float: pb.FIELD_TYPE_DOUBLE, str: pb.FIELD_TYPE_KEYWORD,
                                   bool: pb.FIELD_TYPE_BOOL, list: pb.FIELD_TYPE_KEYWORDS}
_FIELD_NAMES = {pb.FIELD_TYPE_INT64: "int", pb.FIELD_TYPE_DOUBLE: "float", pb.FIELD_TYPE_KEYWORD: "keyword",
                pb.FIELD_TYPE_BOOL: "bool", pb.FIELD_TYPE_KEYWORDS: "keywords"}

_INDEX_KINDS = {"hnsw": pb.INDEX_KIND_HNSW, "flat": pb.INDEX_KIND_FLAT}
_INDEX_NAMES = {pb.INDEX_KIND_UNSPECIFIED: "hnsw", pb.INDEX_KIND_HNSW: "hnsw", pb.INDEX_KIND_FLAT: "flat"}
_QUANT = {"none": pb.QUANTIZATION_NONE, "sq8": pb.QUANTIZATION_SQ8, "pq": pb.QUANTIZATION_PQ}
_QUANT_NAMES = {pb.QUANTIZATION_UNSPECIFIED: "none", pb.QUANTIZATION_NONE: "none", pb.QUANTIZATION_SQ8: "sq8",
                pb.QUANTIZATION_PQ: "pq"}


def _enum_suffix(enum_type: Any, value: int, prefix: str) -> str:
    """Lower-case name of an enum value without its prefix (a value unknown to these stubs: its number)."""
    try:
        name = str(enum_type.Name(value))
    except ValueError:
        return str(value)
    return name[len(prefix):].lower() if name.startswith(prefix) else name.lower()


def metric_pb(metric: Union[str, int]) -> Any:
    if isinstance(metric, int) and not isinstance(metric, bool):
        return metric
    if isinstance(metric, str) and metric.lower() in _METRICS:
        return _METRICS[metric.lower()]
    raise ValueError(f"metric must be 'cosine', 'l2' or 'ip', not {metric!r}")


def field_type_pb(name: str, t: Any) -> int:
    if isinstance(t, str) and t.lower().replace(" ", "") in _FIELD_TYPES:
        return _FIELD_TYPES[t.lower().replace(" ", "")]
    if t in _FIELD_PY_TYPES:
        return _FIELD_PY_TYPES[t]
    if isinstance(t, int) and not isinstance(t, bool) and t in _FIELD_NAMES:
        return t
    raise ValueError(f"field '{name}': unknown type {t!r} (use 'int', 'float', 'keyword', 'bool' or 'keywords')")


def index_pb(index: Any) -> Optional[pb.IndexParams]:
    """None / "hnsw" / "flat" / a dict / an IndexConfig -> IndexParams (None: the server's default)."""
    if index is None:
        return None
    if isinstance(index, pb.IndexParams):
        return index
    if isinstance(index, str):
        index = {"kind": index}
    elif isinstance(index, IndexConfig):
        index = dict(kind=index.kind, m=index.m, ef_construction=index.ef_construction,
                     quantization=index.quantization, pq_m=index.pq_m)
    if not isinstance(index, Mapping):
        raise ValueError(f"index must be 'hnsw', 'flat', a dict or an IndexConfig, not {index!r}")
    allowed = ("kind", "m", "ef_construction", "quantization", "pq_m")
    unknown = [k for k in index if k not in allowed]
    if unknown:
        raise ValueError(f"index: unknown option(s) {unknown} (options: {', '.join(allowed)})")
    p = pb.IndexParams()
    kind = index.get("kind", "hnsw")
    if not isinstance(kind, str) or kind.lower() not in _INDEX_KINDS:
        raise ValueError(f"index kind must be 'hnsw' or 'flat', not {kind!r}")
    p.kind = _INDEX_KINDS[kind.lower()]
    for k in ("m", "ef_construction", "pq_m"):
        v = index.get(k, 0) or 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"index {k} must be a non-negative int, not {v!r}")
        setattr(p, k, int(v))
    q = index.get("quantization", None)
    if q is not None:
        if not isinstance(q, str) or q.lower() not in _QUANT:
            raise ValueError(f"index quantization must be 'none', 'sq8' or 'pq', not {q!r}")
        p.quantization = _QUANT[q.lower()]
    return p


# ---------------------------------------------------------------------------------------------------------------------
# values and vectors
# ---------------------------------------------------------------------------------------------------------------------
def value_pb(v: Any, name: str = "") -> pb.Value:
    """Python -> Value: bool, int (int64), float (double), str (keyword), list/tuple of str (keywords)."""
    if isinstance(v, (bool, np.bool_)):
        return pb.Value(bool_value=bool(v))
    if isinstance(v, (int, np.integer)):
        i = int(v)
        if not INT64_MIN <= i <= INT64_MAX:
            raise ValueError(f"attribute '{name}': {i} is out of the int64 range")
        return pb.Value(int_value=i)
    if isinstance(v, (float, np.floating)):
        return pb.Value(double_value=float(v))
    if isinstance(v, str):
        return pb.Value(keyword_value=v)
    if isinstance(v, (list, tuple)):
        if not all(isinstance(x, str) for x in v):
            raise TypeError(f"attribute '{name}': a list value must hold only str (a KEYWORDS field), got {v!r}")
        val = pb.Value()
        val.keywords_value.SetInParent()
        val.keywords_value.values.extend(v)
        return val
    if isinstance(v, pb.Value):
        return v
    if v is None:
        raise TypeError(f"attribute '{name}' is None: leave the attribute out instead")
    raise TypeError(f"attribute '{name}': {type(v).__name__} is not an attribute type "
                    "(int, float, str, bool or list of str)")


def value_py(v: pb.Value) -> AttributeValue:
    kind = v.WhichOneof("kind")
    if kind == "int_value":
        return int(v.int_value)
    if kind == "double_value":
        return float(v.double_value)
    if kind == "keyword_value":
        return str(v.keyword_value)
    if kind == "bool_value":
        return bool(v.bool_value)
    if kind == "keywords_value":
        return list(v.keywords_value.values)
    return None  # type: ignore[return-value]  # a kind unknown to these stubs


def attrs_py(m: Any) -> dict[str, AttributeValue]:
    return {k: value_py(v) for k, v in m.attributes.items()}


def vector_list(v: Any, what: str) -> list[float]:
    """A vector (sequence or 1-D array) as a list of Python floats, for a repeated float field."""
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError(f"{what}: a vector must be 1-D, got an array of shape {v.shape}")
        return v.astype(np.float32, copy=False).tolist()  # type: ignore[no-any-return]
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        raise TypeError(f"{what}: a vector must be a sequence of numbers or a 1-D array, not {type(v).__name__}")
    out = v if isinstance(v, list) else list(v)
    # fast path: NumPy checks the elements in C (a 384-d list in ~10 us instead of ~60 us element by element); a
    # list it cannot make a 1-D numeric array of (strings, None, nesting, all booleans) gets the precise check below
    try:
        arr = np.asarray(out)
    except (ValueError, TypeError):
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "iuf" and len(out):
        return arr.astype(np.float64, copy=False).tolist()  # type: ignore[no-any-return]
    for x in out:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise TypeError(f"{what}: vector element {x!r} is not a number")
    return list(out)


def vector_np(values: Any) -> Vector:
    return np.array(values, dtype=np.float32)


def vectors_2d(vectors: Any, what: str) -> list[list[float]]:
    """A 2-D array or a sequence of vectors -> a list of float lists."""
    if isinstance(vectors, np.ndarray):
        if vectors.ndim == 1:
            vectors = vectors.reshape(1, -1)
        if vectors.ndim != 2:
            raise ValueError(f"{what}: expected a 2-D array of query vectors, got shape {vectors.shape}")
        return vectors.astype(np.float32, copy=False).tolist()  # type: ignore[no-any-return]
    return [vector_list(v, f"{what}[{i}]") for i, v in enumerate(vectors)]


# ---------------------------------------------------------------------------------------------------------------------
# points
# ---------------------------------------------------------------------------------------------------------------------
_POINT_KEYS = ("id", "vector", "text", "attributes")


def point_pb(p: Any, index: int) -> pb.Point:
    """A Point, a dict {"id", "vector"?, "text"?, "attributes"?} or a quiver.v1.Point -> quiver.v1.Point."""
    if isinstance(p, pb.Point):
        return p
    pid: Any
    vec: Any
    text: Any
    attrs: Any
    if isinstance(p, Point):
        pid, vec, text, attrs = p.id, p.vector, p.text, p.attributes
    elif isinstance(p, Mapping):
        unknown = [k for k in p if k not in _POINT_KEYS]
        if unknown:
            raise ValueError(f"point {index}: unknown key(s) {unknown} (a point has {', '.join(_POINT_KEYS)})")
        pid, vec, text, attrs = p.get("id"), p.get("vector"), p.get("text"), p.get("attributes")
    else:
        raise TypeError(f"point {index}: expected a Point or a dict, not {type(p).__name__}")
    if not isinstance(pid, str) or not pid:
        raise ValueError(f"point {index}: the id must be a non-empty str, not {pid!r}")
    m = pb.Point(id=pid)
    where = f"point {index} (id {pid!r})"
    if vec is not None:
        m.vector.extend(vector_list(vec, where))
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"{where}: text must be a str, not {type(text).__name__}")
        m.text = text
    if attrs:
        if not isinstance(attrs, Mapping):
            raise TypeError(f"{where}: attributes must be a dict, not {type(attrs).__name__}")
        for k, v in attrs.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: attribute names must be str, not {k!r}")
            m.attributes[k].CopyFrom(value_pb(v, k))
    return m


def point_py(m: pb.Point, with_vector: bool) -> Point:
    return Point(id=m.id, vector=vector_np(m.vector) if with_vector else None, text=m.text or None,
                 attributes=attrs_py(m))


def hit_py(h: pb.Hit, with_vector: bool) -> Hit:
    return Hit(id=h.id, score=float(h.score), attributes=attrs_py(h), text=h.text or None,
               vector=vector_np(h.vector) if with_vector else None, group=h.group or None)


def hits_py(r: pb.SearchResponse, with_vectors: bool) -> Hits:
    return Hits([hit_py(h, with_vectors) for h in r.hits], r.partial, r.missing_shards)


def ids_list(ids: Any, what: str = "ids") -> list[str]:
    if isinstance(ids, str):
        return [ids]
    if not isinstance(ids, Iterable):
        raise TypeError(f"{what} must be a str or a sequence of str, not {type(ids).__name__}")
    out = list(ids)
    for i in out:
        if not isinstance(i, str):
            raise TypeError(f"{what}: ids are str, got {i!r}")
    return out


def texts_list(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"texts: expected str, got {type(t).__name__}")
    return out


# ---------------------------------------------------------------------------------------------------------------------
# collection info, health, stats
# ---------------------------------------------------------------------------------------------------------------------
def index_py(p: pb.IndexParams) -> IndexConfig:
    return IndexConfig(kind=_INDEX_NAMES.get(p.kind, str(p.kind)), m=p.m, ef_construction=p.ef_construction,
                       quantization=_QUANT_NAMES.get(p.quantization, str(p.quantization)), pq_m=p.pq_m)


def segment_py(s: pb.SegmentInfo) -> SegmentInfo:
    return SegmentInfo(id=s.id, state=_enum_suffix(pb.SegmentState, s.state, "SEGMENT_STATE_"), rows=s.rows,
                       deleted_rows=s.deleted_rows, bytes=s.bytes,
                       index_state=_enum_suffix(pb.IndexState, s.index_state, "INDEX_STATE_"),
                       index_progress=s.index_progress, index_bytes=s.index_bytes)


def collection_py(c: pb.CollectionInfo, missing_shards: Sequence[str] = ()) -> CollectionInfo:
    return CollectionInfo(
        name=c.name, dim=c.dim, metric=_METRIC_NAMES.get(c.metric, str(c.metric)),
        fields={f.name: _FIELD_NAMES.get(f.type, str(f.type)) for f in c.fields}, shards=c.shards,
        live_rows=c.live_rows, wal_bytes=c.wal_bytes, index=index_py(c.index),
        embedding_model=c.embedding_model or None, segments=[segment_py(s) for s in c.segments],
        missing_shards=list(missing_shards), dynamic_attributes=bool(getattr(c, "dynamic_attributes", False)),
        raw=c)


def health_py(h: pb.HealthResponse) -> Health:
    return Health(status=_enum_suffix(pb.HealthResponse.Status, h.status, "STATUS_"), version=h.version, role=h.role,
                  reason=h.reason,
                  shards=[ShardHealth(name=s.name, address=s.address, reachable=s.reachable, state=s.state,
                                      consecutive_failures=s.consecutive_failures, inflight=s.inflight)
                          for s in h.shards], raw=h)


def job_py(j: pb.CompactionJob) -> CompactionJob:
    return CompactionJob(id=j.id, collection=j.collection,
                         state=_enum_suffix(pb.CompactionJob.State, j.state, "STATE_"),
                         input_segments=list(j.input_segments), output_segment=j.output_segment, rows_in=j.rows_in,
                         rows_out=j.rows_out, progress=j.progress, automatic=j.automatic, error=j.error,
                         started_unix_ms=j.started_unix_ms, finished_unix_ms=j.finished_unix_ms)


def stats_py(s: pb.StatsResponse) -> Stats:
    return Stats(collections=[collection_py(c) for c in s.collections], wal_bytes=s.wal_bytes,
                 resident_bytes=s.resident_bytes, vector_bytes=s.vector_bytes, uptime_seconds=s.uptime_seconds,
                 simd=s.simd, compactions=[job_py(j) for j in s.compactions], raw=s)


def set_extra(msg: Any, extra: Mapping[str, Any], what: str) -> None:
    """Sets fields of msg by name: options newer than this client's signatures (a field a later proto adds, once
    the stubs are regenerated). Values are protobuf messages or JSON-like data (enums by name or number)."""
    from google.protobuf import json_format
    from google.protobuf.message import Message

    fields = msg.DESCRIPTOR.fields_by_name
    for k, v in extra.items():
        if k not in fields:
            raise TypeError(f"{what}: unknown option {k!r} (the request has no such field; "
                            "regenerate the stubs if the server's proto is newer)")
        if isinstance(v, Message):
            getattr(msg, k).CopyFrom(v)
        else:
            try:
                json_format.ParseDict({k: v}, msg)
            except json_format.ParseError as e:
                raise ValueError(f"{what}: option {k}={v!r}: {e}") from None


