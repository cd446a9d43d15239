# Generated from proto/quiver/v1/quiver.proto with grpcio-tools 1.85.4: do not edit.
# Regenerate with tools/python/quiver-client/gen_stubs.sh.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_IP: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_INT64: _ClassVar[FieldType]
    FIELD_TYPE_DOUBLE: _ClassVar[FieldType]
    FIELD_TYPE_KEYWORD: _ClassVar[FieldType]
    FIELD_TYPE_BOOL: _ClassVar[FieldType]
    FIELD_TYPE_KEYWORDS: _ClassVar[FieldType]

class IndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_KIND_UNSPECIFIED: _ClassVar[IndexKind]
    INDEX_KIND_HNSW: _ClassVar[IndexKind]
    INDEX_KIND_FLAT: _ClassVar[IndexKind]

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_NONE: _ClassVar[Quantization]
    QUANTIZATION_SQ8: _ClassVar[Quantization]
    QUANTIZATION_PQ: _ClassVar[Quantization]

class SegmentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_STATE_UNSPECIFIED: _ClassVar[SegmentState]
    SEGMENT_STATE_GROWING: _ClassVar[SegmentState]
    SEGMENT_STATE_SEALED: _ClassVar[SegmentState]

class IndexState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_STATE_UNSPECIFIED: _ClassVar[IndexState]
    INDEX_STATE_NONE: _ClassVar[IndexState]
    INDEX_STATE_PENDING: _ClassVar[IndexState]
    INDEX_STATE_BUILDING: _ClassVar[IndexState]
    INDEX_STATE_READY: _ClassVar[IndexState]
    INDEX_STATE_FAILED: _ClassVar[IndexState]
METRIC_UNSPECIFIED: Metric
METRIC_L2: Metric
METRIC_IP: Metric
METRIC_COSINE: Metric
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_INT64: FieldType
FIELD_TYPE_DOUBLE: FieldType
FIELD_TYPE_KEYWORD: FieldType
FIELD_TYPE_BOOL: FieldType
FIELD_TYPE_KEYWORDS: FieldType
INDEX_KIND_UNSPECIFIED: IndexKind
INDEX_KIND_HNSW: IndexKind
INDEX_KIND_FLAT: IndexKind
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_NONE: Quantization
QUANTIZATION_SQ8: Quantization
QUANTIZATION_PQ: Quantization
SEGMENT_STATE_UNSPECIFIED: SegmentState
SEGMENT_STATE_GROWING: SegmentState
SEGMENT_STATE_SEALED: SegmentState
INDEX_STATE_UNSPECIFIED: IndexState
INDEX_STATE_NONE: IndexState
INDEX_STATE_PENDING: IndexState
INDEX_STATE_BUILDING: IndexState
INDEX_STATE_READY: IndexState
INDEX_STATE_FAILED: IndexState

class FieldSchema(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ...) -> None: ...

class Keywords(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("int_value", "double_value", "keyword_value", "bool_value", "keywords_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    double_value: float
    keyword_value: str
    bool_value: bool
    keywords_value: Keywords
    def __init__(self, int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., keyword_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., keywords_value: _Optional[_Union[Keywords, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "vector", "attributes", "text")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    attributes: _containers.MessageMap[str, Value]
    text: str
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., attributes: _Optional[_Mapping[str, Value]] = ..., text: _Optional[str] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class FilterList(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class ValueList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: float
    gte: float
    lt: float
    lte: float
    def __init__(self, gt: _Optional[float] = ..., gte: _Optional[float] = ..., lt: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("field", "eq", "any_of", "range")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EQ_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    eq: Value
    any_of: ValueList
    range: Range
    def __init__(self, field: _Optional[str] = ..., eq: _Optional[_Union[Value, _Mapping]] = ..., any_of: _Optional[_Union[ValueList, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("all", "any", "negate", "cond")
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    COND_FIELD_NUMBER: _ClassVar[int]
    all: FilterList
    any: FilterList
    negate: Filter
    cond: Condition
    def __init__(self, all: _Optional[_Union[FilterList, _Mapping]] = ..., any: _Optional[_Union[FilterList, _Mapping]] = ..., negate: _Optional[_Union[Filter, _Mapping]] = ..., cond: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class IndexParams(_message.Message):
    __slots__ = ("kind", "m", "ef_construction", "quantization", "pq_m")
    KIND_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    PQ_M_FIELD_NUMBER: _ClassVar[int]
    kind: IndexKind
    m: int
    ef_construction: int
    quantization: Quantization
    pq_m: int
    def __init__(self, kind: _Optional[_Union[IndexKind, str]] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., pq_m: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "fields", "shards", "index", "embedding_model", "dynamic_attributes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    fields: _containers.RepeatedCompositeFieldContainer[FieldSchema]
    shards: int
    index: IndexParams
    embedding_model: str
    dynamic_attributes: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., fields: _Optional[_Iterable[_Union[FieldSchema, _Mapping]]] = ..., shards: _Optional[int] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., embedding_model: _Optional[str] = ..., dynamic_attributes: _Optional[bool] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "missing_shards")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeCollectionResponse(_message.Message):
    __slots__ = ("collection", "missing_shards")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    collection: CollectionInfo
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[_Union[CollectionInfo, _Mapping]] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class SegmentInfo(_message.Message):
    __slots__ = ("id", "state", "rows", "deleted_rows", "bytes", "index_state", "index_progress", "index_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    INDEX_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: int
    state: SegmentState
    rows: int
    deleted_rows: int
    bytes: int
    index_state: IndexState
    index_progress: float
    index_bytes: int
    def __init__(self, id: _Optional[int] = ..., state: _Optional[_Union[SegmentState, str]] = ..., rows: _Optional[int] = ..., deleted_rows: _Optional[int] = ..., bytes: _Optional[int] = ..., index_state: _Optional[_Union[IndexState, str]] = ..., index_progress: _Optional[float] = ..., index_bytes: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "fields", "shards", "live_rows", "segments", "wal_bytes", "index", "embedding_model", "dynamic_attributes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    LIVE_ROWS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    fields: _containers.RepeatedCompositeFieldContainer[FieldSchema]
    shards: int
    live_rows: int
    segments: _containers.RepeatedCompositeFieldContainer[SegmentInfo]
    wal_bytes: int
    index: IndexParams
    embedding_model: str
    dynamic_attributes: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., fields: _Optional[_Iterable[_Union[FieldSchema, _Mapping]]] = ..., shards: _Optional[int] = ..., live_rows: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[SegmentInfo, _Mapping]]] = ..., wal_bytes: _Optional[int] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., embedding_model: _Optional[str] = ..., dynamic_attributes: _Optional[bool] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("count", "seq")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    count: int
    seq: int
    def __init__(self, count: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class UpdateAttributesRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter", "set", "unset")
    class SetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    UNSET_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: Filter
    set: _containers.MessageMap[str, Value]
    unset: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., set: _Optional[_Mapping[str, Value]] = ..., unset: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateAttributesResponse(_message.Message):
    __slots__ = ("updated",)
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    updated: int
    def __init__(self, updated: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter", "allow_partial")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    allow_partial: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., allow_partial: _Optional[bool] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count", "partial", "missing_shards")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    count: int
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, count: _Optional[int] = ..., partial: _Optional[bool] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("ef", "exact", "rerank")
    EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    ef: int
    exact: bool
    rerank: int
    def __init__(self, ef: _Optional[int] = ..., exact: _Optional[bool] = ..., rerank: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vector", "k", "filter", "params", "with_attributes", "with_vectors", "with_text", "allow_partial", "text", "group_by", "group_size")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_TEXT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    filter: Filter
    params: SearchParams
    with_attributes: bool
    with_vectors: bool
    with_text: bool
    allow_partial: bool
    text: str
    group_by: str
    group_size: int
    def __init__(self, collection: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., with_attributes: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., with_text: _Optional[bool] = ..., allow_partial: _Optional[bool] = ..., text: _Optional[str] = ..., group_by: _Optional[str] = ..., group_size: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "attributes", "text", "vector", "group")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    attributes: _containers.MessageMap[str, Value]
    text: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    group: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., attributes: _Optional[_Mapping[str, Value]] = ..., text: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., group: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "partial", "missing_shards")
    HITS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., partial: _Optional[bool] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "vectors", "k", "filter", "params", "with_attributes", "with_vectors", "with_text", "allow_partial", "group_by", "group_size")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_TEXT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    k: int
    filter: Filter
    params: SearchParams
    with_attributes: bool
    with_vectors: bool
    with_text: bool
    allow_partial: bool
    group_by: str
    group_size: int
    def __init__(self, collection: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., with_attributes: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., with_text: _Optional[bool] = ..., allow_partial: _Optional[bool] = ..., group_by: _Optional[str] = ..., group_size: _Optional[int] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "limit", "cursor", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    limit: int
    cursor: str
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("points", "next_cursor")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    next_cursor: str
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("vectors", "dim", "model")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    dim: int
    model: str
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., dim: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "role", "reason", "shards")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[HealthResponse.Status]
        STATUS_SERVING: _ClassVar[HealthResponse.Status]
        STATUS_NOT_SERVING: _ClassVar[HealthResponse.Status]
    STATUS_UNSPECIFIED: HealthResponse.Status
    STATUS_SERVING: HealthResponse.Status
    STATUS_NOT_SERVING: HealthResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    status: HealthResponse.Status
    version: str
    role: str
    reason: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardHealth]
    def __init__(self, status: _Optional[_Union[HealthResponse.Status, str]] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., reason: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardHealth, _Mapping]]] = ...) -> None: ...

class ShardHealth(_message.Message):
    __slots__ = ("name", "address", "reachable", "state", "consecutive_failures", "inflight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    reachable: bool
    state: str
    consecutive_failures: int
    inflight: int
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., reachable: _Optional[bool] = ..., state: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., inflight: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("collections", "wal_bytes", "resident_bytes", "vector_bytes", "uptime_seconds", "simd", "compactions")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    VECTOR_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIMD_FIELD_NUMBER: _ClassVar[int]
    COMPACTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    wal_bytes: int
    resident_bytes: int
    vector_bytes: int
    uptime_seconds: int
    simd: str
    compactions: _containers.RepeatedCompositeFieldContainer[CompactionJob]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ..., wal_bytes: _Optional[int] = ..., resident_bytes: _Optional[int] = ..., vector_bytes: _Optional[int] = ..., uptime_seconds: _Optional[int] = ..., simd: _Optional[str] = ..., compactions: _Optional[_Iterable[_Union[CompactionJob, _Mapping]]] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("collection", "target_rows")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_ROWS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    target_rows: int
    def __init__(self, collection: _Optional[str] = ..., target_rows: _Optional[int] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("job_id", "input_segments")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    input_segments: int
    def __init__(self, job_id: _Optional[int] = ..., input_segments: _Optional[int] = ...) -> None: ...

class CompactionJob(_message.Message):
    __slots__ = ("id", "collection", "state", "input_segments", "output_segment", "rows_in", "rows_out", "progress", "automatic", "error", "started_unix_ms", "finished_unix_ms", "waiting_for")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[CompactionJob.State]
        STATE_QUEUED: _ClassVar[CompactionJob.State]
        STATE_RUNNING: _ClassVar[CompactionJob.State]
        STATE_DONE: _ClassVar[CompactionJob.State]
        STATE_FAILED: _ClassVar[CompactionJob.State]
        STATE_ABANDONED: _ClassVar[CompactionJob.State]
    STATE_UNSPECIFIED: CompactionJob.State
    STATE_QUEUED: CompactionJob.State
    STATE_RUNNING: CompactionJob.State
    STATE_DONE: CompactionJob.State
    STATE_FAILED: CompactionJob.State
    STATE_ABANDONED: CompactionJob.State
    ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    ROWS_IN_FIELD_NUMBER: _ClassVar[int]
    ROWS_OUT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    AUTOMATIC_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    collection: str
    state: CompactionJob.State
    input_segments: _containers.RepeatedScalarFieldContainer[int]
    output_segment: int
    rows_in: int
    rows_out: int
    progress: float
    automatic: bool
    error: str
    started_unix_ms: int
    finished_unix_ms: int
    waiting_for: str
    def __init__(self, id: _Optional[int] = ..., collection: _Optional[str] = ..., state: _Optional[_Union[CompactionJob.State, str]] = ..., input_segments: _Optional[_Iterable[int]] = ..., output_segment: _Optional[int] = ..., rows_in: _Optional[int] = ..., rows_out: _Optional[int] = ..., progress: _Optional[float] = ..., automatic: _Optional[bool] = ..., error: _Optional[str] = ..., started_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("sealed_segments",)
    SEALED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    sealed_segments: int
    def __init__(self, sealed_segments: _Optional[int] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupInfo(_message.Message):
    __slots__ = ("id", "created_unix", "size_bytes", "files", "copied_bytes", "directory", "server")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    COPIED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    id: int
    created_unix: int
    size_bytes: int
    files: int
    copied_bytes: int
    directory: str
    server: str
    def __init__(self, id: _Optional[int] = ..., created_unix: _Optional[int] = ..., size_bytes: _Optional[int] = ..., files: _Optional[int] = ..., copied_bytes: _Optional[int] = ..., directory: _Optional[str] = ..., server: _Optional[str] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("backup", "took_ms", "cluster_backup_id", "shards")
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    backup: BackupInfo
    took_ms: int
    cluster_backup_id: str
    shards: _containers.RepeatedCompositeFieldContainer[BackupInfo]
    def __init__(self, backup: _Optional[_Union[BackupInfo, _Mapping]] = ..., took_ms: _Optional[int] = ..., cluster_backup_id: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[BackupInfo, _Mapping]]] = ...) -> None: ...

class ClusterBackup(_message.Message):
    __slots__ = ("id", "created_unix", "shards", "collections")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_unix: int
    shards: _containers.RepeatedCompositeFieldContainer[BackupInfo]
    collections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., created_unix: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[BackupInfo, _Mapping]]] = ..., collections: _Optional[_Iterable[str]] = ...) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups", "cluster_backups")
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[BackupInfo]
    cluster_backups: _containers.RepeatedCompositeFieldContainer[ClusterBackup]
    def __init__(self, backups: _Optional[_Iterable[_Union[BackupInfo, _Mapping]]] = ..., cluster_backups: _Optional[_Iterable[_Union[ClusterBackup, _Mapping]]] = ...) -> None: ...

class VerifyBackupRequest(_message.Message):
    __slots__ = ("id", "server")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    id: int
    server: str
    def __init__(self, id: _Optional[int] = ..., server: _Optional[str] = ...) -> None: ...

class VerifyBackupResponse(_message.Message):
    __slots__ = ("bytes_checked", "files")
    BYTES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    bytes_checked: int
    files: int
    def __init__(self, bytes_checked: _Optional[int] = ..., files: _Optional[int] = ...) -> None: ...
