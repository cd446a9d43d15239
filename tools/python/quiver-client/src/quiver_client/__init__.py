"""quiver_client: the Python client of the Quiver vector database.

    from quiver_client import QuiverClient, F
    client = QuiverClient("127.0.0.1:7700")
    client.create_collection("docs", embedding_model="all-MiniLM-L6-v2", fields={"lang": "keyword"})
    client.upsert("docs", [{"id": "1", "text": "The cat sat on the mat.", "attributes": {"lang": "en"}}])
    hits = client.search("docs", text="a feline resting on a rug", k=5, filter=F.eq("lang", "en"))

``AsyncQuiverClient`` has the same methods as coroutines; ``local(path)`` starts a private quiverd and returns a
client that stops it on close. Filters: see ``quiver_client.filters``; errors: ``quiver_client.errors``.
"""
from ._core import DEFAULT_MAX_REQUEST_BYTES, RetryPolicy, TLSConfig
from .aio import AsyncQuiverClient
from .client import QuiverClient
from .errors import (QuiverAborted, QuiverAlreadyExists, QuiverCancelled, QuiverDataLoss, QuiverDeadlineExceeded,
                     QuiverError, QuiverFailedPrecondition, QuiverInternal, QuiverInvalidArgument, QuiverNotFound,
                     QuiverOutOfRange, QuiverPermissionDenied, QuiverResourceExhausted, QuiverUnauthenticated,
                     QuiverUnavailable, QuiverUnimplemented, QuiverUnknown)
from .filters import F, Filter
from .local import AsyncLocalQuiverClient, LocalQuiverClient, LocalServer, find_quiverd, local, local_async
from .types import (AttributeValue, CollectionInfo, CompactionJob, CompactResult, Health, Hit, Hits, IndexConfig,
                    Point, SegmentInfo, ShardHealth, Stats, UpsertResult)

__version__ = "0.1.0"

__all__ = [
    "QuiverClient", "AsyncQuiverClient", "RetryPolicy", "TLSConfig", "DEFAULT_MAX_REQUEST_BYTES",
    "F", "Filter",
    "local", "local_async", "LocalServer", "LocalQuiverClient", "AsyncLocalQuiverClient", "find_quiverd",
    "Point", "Hit", "Hits", "CollectionInfo", "IndexConfig", "SegmentInfo", "Health", "ShardHealth", "Stats",
    "CompactionJob", "CompactResult", "UpsertResult", "AttributeValue",
    "QuiverError", "QuiverAborted", "QuiverAlreadyExists", "QuiverCancelled", "QuiverDataLoss",
    "QuiverDeadlineExceeded", "QuiverFailedPrecondition", "QuiverInternal", "QuiverInvalidArgument", "QuiverNotFound",
    "QuiverOutOfRange", "QuiverPermissionDenied", "QuiverResourceExhausted", "QuiverUnauthenticated",
    "QuiverUnavailable", "QuiverUnimplemented", "QuiverUnknown",
    "__version__",
]
