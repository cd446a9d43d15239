"""QuiverVectorStore: a LlamaIndex vector store on a Quiver collection."""
from __future__ import annotations

import asyncio
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from quiver_client import (AsyncQuiverClient, CollectionInfo, F, Filter, Hit, Hits, Point, QuiverClient, QuiverNotFound,
                           QuiverResourceExhausted)

#: The attribute holding each point's node id (so that ``node_ids`` restrictions combine with filters on the server).
NODE_ID_KEY = "_node_id"
#: The attribute a node's ``ref_doc_id`` is kept in (``delete(ref_doc_id)`` and ``doc_ids`` filter on it).
REF_DOC_ID_KEY = "ref_doc_id"
#: The server-side model of a collection the store creates for nodes without embeddings.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_KEYWORDS_MAX = 4096


def _attribute(key: Any, value: Any) -> tuple[bool, Any]:
    """(True, value) when Quiver stores this metadata entry exactly as a typed, filterable attribute."""
    if not isinstance(key, str) or not 1 <= len(key.encode("utf-8", "surrogatepass")) <= 64 or "\x00" in key:
        return False, None
    if isinstance(value, (bool, np.bool_)):
        return True, bool(value)
    if isinstance(value, (int, np.integer)):
        return _INT64_MIN <= int(value) <= _INT64_MAX, int(value)
    if isinstance(value, (float, np.floating)):
        return math.isfinite(float(value)), float(value)
    if isinstance(value, str):
        return "\x00" not in value, value
    if isinstance(value, (list, tuple)) and len(value) <= _KEYWORDS_MAX:
        return all(isinstance(v, str) and "\x00" not in v for v in value), list(value)
    return False, None


def _scalar(f: MetadataFilter) -> Any:
    if f.value is None or isinstance(f.value, (list, tuple)):
        raise ValueError(f"filter on '{f.key}': operator {f.operator.name} takes one value, not {f.value!r}")
    return f.value


def _values(f: MetadataFilter) -> list[Any]:
    if f.value is None:
        raise ValueError(f"filter on '{f.key}': operator {f.operator.name} takes a list of values, not None")
    vals = list(f.value) if isinstance(f.value, (list, tuple)) else [f.value]
    if not vals:
        raise ValueError(f"filter on '{f.key}': operator {f.operator.name} with an empty list")
    return vals


def _condition(f: MetadataFilter) -> Filter:
    op = f.operator
    if op == FilterOperator.EQ:
        return F.eq(f.key, _scalar(f))
    if op == FilterOperator.NE:
        return ~F.eq(f.key, _scalar(f))
    if op == FilterOperator.GT:
        return F.gt(f.key, _scalar(f))
    if op == FilterOperator.GTE:
        return F.gte(f.key, _scalar(f))
    if op == FilterOperator.LT:
        return F.lt(f.key, _scalar(f))
    if op == FilterOperator.LTE:
        return F.lte(f.key, _scalar(f))
    if op in (FilterOperator.IN, FilterOperator.ANY):
        return F.any_of(f.key, _values(f))
    if op == FilterOperator.NIN:
        return ~F.any_of(f.key, _values(f))
    if op == FilterOperator.ALL:
        return F.all(*[F.eq(f.key, v) for v in _values(f)])
    if op == FilterOperator.CONTAINS:
        return F.eq(f.key, _scalar(f))
    raise ValueError(f"filter on '{f.key}': operator {op.name} is not supported by Quiver "
                     "(supported: EQ, NE, GT, GTE, LT, LTE, IN, NIN, ANY, ALL, CONTAINS)")


def to_quiver_filter(filters: Optional[MetadataFilters]) -> Optional[Filter]:
    """The Quiver filter for LlamaIndex MetadataFilters (nested ones included); None for no filter.

    AND: every filter holds; OR: at least one; NOT: none of them holds (as llama-index's SimpleVectorStore).
    A point that lacks a key fails every condition on it and so passes NE, NIN and NOT.
    """
    if filters is None:
        return None
    parts: list[Filter] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = to_quiver_filter(f)
            if sub is not None:
                parts.append(sub)
        else:
            parts.append(_condition(f))
    if not parts:
        return None
    cond = filters.condition or FilterCondition.AND
    if cond == FilterCondition.AND:
        return F.all(*parts)
    if cond == FilterCondition.OR:
        return F.any(*parts)
    if cond == FilterCondition.NOT:
        return ~F.any(*parts)
    raise ValueError(f"filter condition {cond!r} is not supported")


def _and(*parts: Optional[Filter]) -> Optional[Filter]:
    ps = [p for p in parts if p is not None]
    return F.all(*ps) if ps else None


class QuiverVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on a Quiver collection.

    ``collection_name``: the collection (``[A-Za-z0-9_-]{1,64}``). ``client`` (a ``QuiverClient``) and/or
    ``aclient`` (an ``AsyncQuiverClient``, for the async methods; without one they run the blocking methods in a
    thread), or ``address`` (+ ``api_key``, ``tls``, ``timeout``) to make both.

    The collection is created on the first ``add`` when it does not exist: dimension from the first embedding,
    ``metric`` (cosine), ``dynamic_attributes=True``, ``metadata_fields`` declared when given (e.g.
    ``{"year": "int"}``; a declared field keeps its type). Nodes without an embedding are embedded by the server
    (the collection then needs an embedding model: one the store creates gets ``embedding_model``).

    Each node is one point: id = node id, vector = embedding, text = the node's text, attributes = its metadata
    entries that Quiver stores as typed values (int, float, str, bool, list of str), plus ``_node_content`` (the
    node as JSON, without its text and embedding, to rebuild it), ``_node_type``, ``ref_doc_id`` / ``doc_id`` /
    ``document_id`` and ``_node_id``. Other metadata values (None, dicts, lists of numbers) live only in
    ``_node_content``: they round-trip but cannot be filtered on.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    collection_name: str
    metric: str = "cosine"
    metadata_fields: Optional[Dict[str, str]] = None
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    index_params: Optional[Any] = None
    batch_size: int = 1000

    _client: Optional[QuiverClient] = PrivateAttr(default=None)
    _aclient: Optional[AsyncQuiverClient] = PrivateAttr(default=None)
    _info: Optional[CollectionInfo] = PrivateAttr(default=None)

    def __init__(self, collection_name: str, client: Optional[QuiverClient] = None,
                 aclient: Optional[AsyncQuiverClient] = None, *, address: Optional[str] = None,
                 api_key: Optional[str] = None, tls: Any = None, timeout: Optional[float] = None,
                 **kwargs: Any) -> None:
        super().__init__(collection_name=collection_name, **kwargs)  # type: ignore[call-arg]
        if address is not None:
            client = client or QuiverClient(address, api_key=api_key, tls=tls, timeout=timeout)
            aclient = aclient or AsyncQuiverClient(address, api_key=api_key, tls=tls, timeout=timeout)
        if client is None and aclient is None:
            raise ValueError("QuiverVectorStore needs client=QuiverClient(...), aclient=AsyncQuiverClient(...) or "
                             "address=...")
        if client is not None and not isinstance(client, QuiverClient):
            raise TypeError(f"client must be a QuiverClient, not {type(client).__name__}")
        if aclient is not None and not isinstance(aclient, AsyncQuiverClient):
            raise TypeError(f"aclient must be an AsyncQuiverClient, not {type(aclient).__name__}")
        self._client = client
        self._aclient = aclient

    @classmethod
    def class_name(cls) -> str:
        return "QuiverVectorStore"

    @property
    def client(self) -> Optional[QuiverClient]:
        return self._client

    @property
    def aclient(self) -> Optional[AsyncQuiverClient]:
        return self._aclient

    def _sync(self) -> QuiverClient:
        if self._client is None:
            raise RuntimeError("this QuiverVectorStore has only an AsyncQuiverClient: use the async methods "
                               "(async_add, aquery, ...) or give it a QuiverClient")
        return self._client

    # ------------------------------------------------------------------------------------------------------------
    # nodes <-> points
    # ------------------------------------------------------------------------------------------------------------
    def _point(self, node: BaseNode) -> dict[str, Any]:
        md = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
        attrs: dict[str, Any] = {}
        for k, v in md.items():
            ok, value = _attribute(k, v)
            if ok:
                attrs[k] = value
        attrs[NODE_ID_KEY] = node.node_id
        p: dict[str, Any] = {"id": node.node_id, "attributes": attrs}
        text = node.get_content(metadata_mode=MetadataMode.NONE)
        if text:
            p["text"] = text
        if node.embedding is not None:
            p["vector"] = node.embedding
        return p

    @staticmethod
    def _node(p: Union[Hit, Point]) -> BaseNode:
        attrs = dict(p.attributes)
        if "_node_content" in attrs:
            node = metadata_dict_to_node(attrs, text=p.text)
        else:  # a point written by something else: a TextNode of its text and attributes
            attrs.pop(NODE_ID_KEY, None)
            node = TextNode(id_=p.id, text=p.text or "", metadata=attrs)
        return node

    def _similarity(self, score: float) -> float:
        """Higher is better: cosine similarity / inner product as they are, squared L2 distance d2 as 1/(1+d2)."""
        metric = self._info.metric if self._info is not None else self.metric
        return 1.0 / (1.0 + max(score, 0.0)) if metric == "l2" else float(score)

    def _create_args(self, first: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = dict(metric=self.metric, fields=self.metadata_fields, index=self.index_params,
                                    exist_ok=True, dynamic_attributes=True)
        if first.get("vector") is not None:
            args["dim"] = len(first["vector"])
        else:
            args["embedding_model"] = self.embedding_model
        return args

    def _ensure_collection(self, first: dict[str, Any]) -> None:
        if self._info is not None:
            return
        c = self._sync()
        try:
            self._info = c.describe_collection(self.collection_name)
        except QuiverNotFound:
            c.create_collection(self.collection_name, **self._create_args(first))
            self._info = c.describe_collection(self.collection_name)

    async def _aensure_collection(self, first: dict[str, Any]) -> None:
        if self._info is not None:
            return
        assert self._aclient is not None
        c = self._aclient
        try:
            self._info = await c.describe_collection(self.collection_name)
        except QuiverNotFound:
            await c.create_collection(self.collection_name, **self._create_args(first))
            self._info = await c.describe_collection(self.collection_name)

    # ------------------------------------------------------------------------------------------------------------
    # writes
    # ------------------------------------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upserts the nodes (by node id: an existing one is replaced); returns their ids."""
        points = [self._point(n) for n in nodes]
        c = self._sync()
        for s in range(0, len(points), self.batch_size):
            batch = points[s:s + self.batch_size]
            self._ensure_collection(batch[0])
            try:
                c.upsert(self.collection_name, batch)
            except QuiverNotFound:  # dropped since it was described (clear()): create it again
                self._info = None
                self._ensure_collection(batch[0])
                c.upsert(self.collection_name, batch)
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        if self._aclient is None:
            return await asyncio.to_thread(self.add, nodes, **add_kwargs)
        points = [self._point(n) for n in nodes]
        c = self._aclient
        for s in range(0, len(points), self.batch_size):
            batch = points[s:s + self.batch_size]
            await self._aensure_collection(batch[0])
            try:
                await c.upsert(self.collection_name, batch)
            except QuiverNotFound:
                self._info = None
                await self._aensure_collection(batch[0])
                await c.upsert(self.collection_name, batch)
        return [n.node_id for n in nodes]

    @staticmethod
    def _too_many(e: QuiverResourceExhausted) -> bool:
        """The server refused a Delete by filter because more points match than one such write takes (100,000)."""
        return "match the filter" in e.message

    def _delete_where(self, f: Optional[Filter]) -> None:
        """Deletes the points matching ``f`` (None: every point). With a filter: one Delete by filter, a single
        write that is atomic per shard. Without one (Delete needs a filter), or when more points match than one
        Delete by filter takes: their ids are paged with Scroll and deleted by id."""
        c = self._sync()
        if f is not None:
            try:
                c.delete(self.collection_name, filter=f)
                return
            except QuiverResourceExhausted as e:
                if not self._too_many(e):
                    raise
        ids = [p.id for p in c.scroll(self.collection_name, filter=f)]
        if ids:
            c.delete(self.collection_name, ids)

    async def _adelete_where(self, f: Optional[Filter]) -> None:
        assert self._aclient is not None
        c = self._aclient
        if f is not None:
            try:
                await c.delete(self.collection_name, filter=f)
                return
            except QuiverResourceExhausted as e:
                if not self._too_many(e):
                    raise
        ids = [p.id async for p in c.scroll(self.collection_name, filter=f)]
        if ids:
            await c.delete(self.collection_name, ids)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes the nodes of the document ``ref_doc_id`` (one Delete by filter: atomic per shard)."""
        try:
            self._delete_where(F.eq(REF_DOC_ID_KEY, ref_doc_id))
        except QuiverNotFound:
            pass

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        if self._aclient is None:
            return await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)
        try:
            await self._adelete_where(F.eq(REF_DOC_ID_KEY, ref_doc_id))
        except QuiverNotFound:
            pass

    @staticmethod
    def _selection(node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> Optional[Filter]:
        return _and(F.any_of(NODE_ID_KEY, list(node_ids)) if node_ids else None, to_quiver_filter(filters))

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        """Deletes the nodes with these ids, those matching ``filters``, or those that are both; with neither,
        every node (as llama-index's SimpleVectorStore). ``node_ids=[]`` deletes nothing. With ``filters``: one
        Delete by filter (atomic per shard)."""
        if node_ids is not None and not node_ids:
            return
        try:
            if node_ids and filters is None:
                self._sync().delete(self.collection_name, list(node_ids))
                return
            self._delete_where(self._selection(node_ids, filters))
        except QuiverNotFound:
            pass

    async def adelete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                            **delete_kwargs: Any) -> None:
        if self._aclient is None:
            return await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)
        if node_ids is not None and not node_ids:
            return
        try:
            if node_ids and filters is None:
                await self._aclient.delete(self.collection_name, list(node_ids))
                return
            await self._adelete_where(self._selection(node_ids, filters))
        except QuiverNotFound:
            pass

    def clear(self) -> None:
        """Drops the collection (no error when it does not exist); the next ``add`` creates it again."""
        self._sync().drop_collection(self.collection_name, missing_ok=True)
        self._info = None

    async def aclear(self) -> None:
        if self._aclient is None:
            return await asyncio.to_thread(self.clear)
        await self._aclient.drop_collection(self.collection_name, missing_ok=True)
        self._info = None

    # ------------------------------------------------------------------------------------------------------------
    # reads
    # ------------------------------------------------------------------------------------------------------------
    def get_nodes(self, node_ids: Optional[List[str]] = None,
                  filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """The nodes with these ids (in that order; absent ones left out), those matching ``filters`` (in id
        order), or those that are both; with neither, every node."""
        if node_ids is not None and not node_ids:
            return []
        c = self._sync()
        try:
            if node_ids and filters is None:
                return [self._node(p) for p in c.get(self.collection_name, list(node_ids))]
            return [self._node(p) for p in c.scroll(self.collection_name, filter=self._selection(node_ids, filters))]
        except QuiverNotFound:
            return []

    async def aget_nodes(self, node_ids: Optional[List[str]] = None,
                         filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        if self._aclient is None:
            return await asyncio.to_thread(self.get_nodes, node_ids, filters)
        if node_ids is not None and not node_ids:
            return []
        c = self._aclient
        try:
            if node_ids and filters is None:
                return [self._node(p) for p in await c.get(self.collection_name, list(node_ids))]
            return [self._node(p) async for p in c.scroll(self.collection_name,
                                                          filter=self._selection(node_ids, filters))]
        except QuiverNotFound:
            return []

    def _search_args(self, query: VectorStoreQuery, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
        """The search's arguments, the top k, and whether it is an MMR query."""
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise ValueError(f"QuiverVectorStore does not support query mode {query.mode!r} (DEFAULT and MMR)")
        mmr = query.mode == VectorStoreQueryMode.MMR
        # empty node_ids / doc_ids restrict nothing: VectorStoreIndex.as_retriever passes node_ids=[] for stores
        # that keep the text (its index struct lists no nodes), as other integrations read it
        f = _and(F.any_of(NODE_ID_KEY, list(query.node_ids)) if query.node_ids else None,
                 F.any_of(REF_DOC_ID_KEY, list(query.doc_ids)) if query.doc_ids else None,
                 to_quiver_filter(query.filters))
        k = query.similarity_top_k
        args: dict[str, Any] = {"filter": f}
        if query.query_embedding is not None:
            args["vector"] = query.query_embedding
        elif query.query_str and not mmr:
            args["text"] = query.query_str  # the collection's model embeds it
        else:
            raise ValueError("VectorStoreQuery needs query_embedding (or query_str on a collection with an "
                             "embedding model)")
        for opt in ("ef", "exact"):
            if opt in kwargs:
                args[opt] = kwargs[opt]
        if mmr:
            args["with_vectors"] = True
            k = max(k, int(kwargs.get("mmr_prefetch_k", 4 * k)))
        args["k"] = k
        return args, query.similarity_top_k, mmr

    def _result(self, query: VectorStoreQuery, hits: Sequence[Hit], top_k: int, mmr: bool,
                kwargs: dict[str, Any]) -> VectorStoreQueryResult:
        if mmr and hits:
            threshold = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold")
            assert query.query_embedding is not None
            sims, ids = get_top_k_mmr_embeddings(
                list(query.query_embedding), [np.asarray(h.vector, dtype=np.float32).tolist() for h in hits],
                similarity_top_k=top_k, embedding_ids=list(range(len(hits))), mmr_threshold=threshold)
            picked = [hits[i] for i in ids]
            return VectorStoreQueryResult(nodes=[self._node(h) for h in picked], similarities=list(sims),
                                          ids=[h.id for h in picked])
        return VectorStoreQueryResult(nodes=[self._node(h) for h in hits],
                                      similarities=[self._similarity(h.score) for h in hits],
                                      ids=[h.id for h in hits])

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest to ``query_embedding`` among those matching ``filters``,
        ``doc_ids`` (ref_doc_ids) and ``node_ids``; similarities are higher-is-better (see ``_similarity``).
        ``mode=MMR`` re-ranks ``mmr_prefetch_k`` (4 x top k) hits by maximal marginal relevance
        (``mmr_threshold``). kwargs ``ef`` / ``exact``: search parameters."""
        args, top_k, mmr = self._search_args(query, kwargs)
        c = self._sync()
        try:
            if self._info is None:  # the metric, for the similarities
                self._info = c.describe_collection(self.collection_name)
            hits = c.search(self.collection_name, **args)
        except QuiverNotFound:
            hits = Hits()
        return self._result(query, hits, top_k, mmr, kwargs)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if self._aclient is None:
            return await asyncio.to_thread(self.query, query, **kwargs)
        args, top_k, mmr = self._search_args(query, kwargs)
        c = self._aclient
        try:
            if self._info is None:
                self._info = await c.describe_collection(self.collection_name)
            hits = await c.search(self.collection_name, **args)
        except QuiverNotFound:
            hits = Hits()
        return self._result(query, hits, top_k, mmr, kwargs)
