"""QuiverVectorStore: a LangChain VectorStore on a Quiver collection."""
from __future__ import annotations

import uuid
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from quiver_client import (AsyncQuiverClient, CollectionInfo, Hit, Point, QuiverClient, QuiverNotFound,
                           QuiverResourceExhausted)

from ._filters import to_quiver_filter
from ._metadata import decode_metadata, encode_metadata
from .embeddings import QuiverEmbeddings

#: The server-side model a collection gets when the store embeds on the server (``embedding=None``).
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_SEARCH_OPTIONS = ("ef", "exact", "group_by", "group_size")


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def cosine_relevance(score: float) -> float:
    """COSINE scores are cosine similarities in [-1, 1]: the relevance is the similarity, 0 below 0."""
    return _clamp01(score)


def l2_relevance(score: float) -> float:
    """L2 scores are squared Euclidean distances d2: the relevance is ``1 - d2 / 2``, clamped to [0, 1] (for
    unit-length vectors exactly their cosine similarity, 0 below 0)."""
    return _clamp01(1.0 - max(float(score), 0.0) / 2.0)


def ip_relevance(score: float) -> float:
    """IP scores are inner products: the relevance is the product clamped to [0, 1] (for unit-length vectors
    exactly their cosine similarity, 0 below 0)."""
    return _clamp01(score)


_RELEVANCE: dict[str, Callable[[float], float]] = {"cosine": cosine_relevance, "l2": l2_relevance,
                                                   "ip": ip_relevance}


class QuiverVectorStore(VectorStore):
    """A LangChain vector store on a Quiver collection.

    ``client``: a ``quiver_client.QuiverClient`` (or an ``AsyncQuiverClient``, for a store used only through its
    async methods). ``collection``: the collection's name (``[A-Za-z0-9_-]{1,64}``). ``embedding``: a LangChain
    ``Embeddings`` to compute vectors in Python, or ``None`` to let the server embed texts and queries with its
    built-in model (the collection then needs an ``embedding_model``).

    Keyword-only:

    - ``async_client``: an ``AsyncQuiverClient`` for the async methods (``aadd_texts``, ``asimilarity_search``, ...);
      without one they run the blocking methods in a thread.
    - ``metric`` (``"cosine"``), ``metadata_fields``, ``embedding_model``, ``index``: used only when the store
      creates the collection, which it does on the first write when the collection does not exist: dimension from
      the first vector (or the server's model with ``embedding=None``), ``dynamic_attributes=True`` so that every
      metadata key is stored typed by its value. ``metadata_fields`` (e.g. ``{"year": "int"}``) declares fields
      up front; a declared field keeps its type, so a document with another type of value for it is refused.
    - ``relevance_score_fn``: maps a raw score to a relevance in [0, 1] (default: per metric, see
      ``cosine_relevance``, ``l2_relevance``, ``ip_relevance``).

    Raw scores (``similarity_search_with_score``) are the server's: cosine similarity and inner product (higher is
    better), squared Euclidean distance for L2 (lower is better). Metadata: see ``langchain_quiver._metadata``
    (typed attributes for int, float, str, bool and list of str; anything else JSON-encoded, not filterable).
    Filters: see ``langchain_quiver._filters`` (``{"k": v}``, ``$eq $ne $gt $gte $lt $lte $in $nin``,
    ``$and $or $not``).
    """

    def __init__(self, client: Union[QuiverClient, AsyncQuiverClient, None], collection: str,
                 embedding: Optional[Embeddings] = None, *, async_client: Optional[AsyncQuiverClient] = None,
                 metric: str = "cosine", metadata_fields: Optional[Mapping[str, Any]] = None,
                 embedding_model: str = DEFAULT_EMBEDDING_MODEL, index: Any = None,
                 relevance_score_fn: Optional[Callable[[float], float]] = None) -> None:
        if isinstance(client, AsyncQuiverClient):
            if async_client is not None:
                raise ValueError("client is an AsyncQuiverClient and async_client is given too")
            client, async_client = None, client
        if client is None and async_client is None:
            raise ValueError("QuiverVectorStore needs a QuiverClient (client) and/or an AsyncQuiverClient "
                             "(async_client)")
        if client is not None and not isinstance(client, QuiverClient):
            raise TypeError(f"client must be a QuiverClient, not {type(client).__name__}")
        if not isinstance(collection, str) or not collection:
            raise ValueError(f"collection must be a non-empty str, not {collection!r}")
        self.client = client
        self.async_client = async_client
        self.collection = collection
        self._embedding = embedding
        self.metric = metric
        self.metadata_fields = dict(metadata_fields) if metadata_fields else None
        self.embedding_model = embedding_model
        self.index = index
        self.override_relevance_score_fn = relevance_score_fn
        self._info: Optional[CollectionInfo] = None  # the collection as last described (None: not known yet)

    # ------------------------------------------------------------------------------------------------------------
    # plumbing
    # ------------------------------------------------------------------------------------------------------------
    @property
    def embeddings(self) -> Optional[Embeddings]:
        """The embeddings given, or (``embedding=None``) a ``QuiverEmbeddings`` on the same server."""
        if self._embedding is not None:
            return self._embedding
        return QuiverEmbeddings(self.client, async_client=self.async_client)

    @property
    def server_embeds(self) -> bool:
        """True when the server embeds texts and queries (``embedding=None``)."""
        return self._embedding is None

    def _sync(self) -> QuiverClient:
        if self.client is None:
            raise RuntimeError("this QuiverVectorStore has only an AsyncQuiverClient: use the async methods "
                               "(aadd_texts, asimilarity_search, ...) or give it a QuiverClient")
        return self.client

    def _create_args(self, dim: Optional[int]) -> dict[str, Any]:
        args: dict[str, Any] = dict(metric=self.metric, fields=self.metadata_fields, index=self.index,
                                    exist_ok=True, dynamic_attributes=True)
        if self.server_embeds:
            args["embedding_model"] = self.embedding_model
        else:
            args["dim"] = dim
        return args

    def _ensure_collection(self, dim: Optional[int]) -> None:
        if self._info is not None:
            return
        c = self._sync()
        try:
            self._info = c.describe_collection(self.collection)
        except QuiverNotFound:
            c.create_collection(self.collection, **self._create_args(dim))
            self._info = c.describe_collection(self.collection)

    async def _aensure_collection(self, dim: Optional[int]) -> None:
        if self._info is not None:
            return
        assert self.async_client is not None
        c = self.async_client
        try:
            self._info = await c.describe_collection(self.collection)
        except QuiverNotFound:
            await c.create_collection(self.collection, **self._create_args(dim))
            self._info = await c.describe_collection(self.collection)

    @staticmethod
    def _prepare(texts: Iterable[str], metadatas: Optional[Sequence[Optional[Mapping[str, Any]]]],
                 ids: Optional[Sequence[Optional[str]]]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        texts_ = list(texts)
        for t in texts_:
            if not isinstance(t, str):
                raise ValueError(f"texts must be str, got {type(t).__name__}")
        if metadatas is not None and len(metadatas) != len(texts_):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts_)} texts")
        if ids is not None and len(ids) != len(texts_):
            raise ValueError(f"{len(ids)} ids for {len(texts_)} texts")
        attrs = [encode_metadata(m) for m in metadatas] if metadatas is not None else [{} for _ in texts_]
        ids_: list[str] = []
        for i in (ids if ids is not None else [None] * len(texts_)):
            if i is None or i == "":
                ids_.append(str(uuid.uuid4()))
            elif isinstance(i, str):
                ids_.append(i)
            else:
                raise ValueError(f"ids must be str, got {i!r}")
        return texts_, attrs, ids_

    @staticmethod
    def _points(texts: list[str], attrs: list[dict[str, Any]], ids: list[str],
                vectors: Optional[Sequence[Sequence[float]]]) -> list[dict[str, Any]]:
        points = []
        for n, (t, a, i) in enumerate(zip(texts, attrs, ids, strict=True)):
            p: dict[str, Any] = {"id": i, "text": t, "attributes": a}
            if vectors is not None:
                p["vector"] = vectors[n]
            points.append(p)
        return points

    @staticmethod
    def _doc(p: Union[Hit, Point]) -> Document:
        return Document(id=p.id, page_content=p.text or "", metadata=decode_metadata(p.attributes))

    @staticmethod
    def _search_options(kwargs: dict[str, Any]) -> dict[str, Any]:
        opts = {k: kwargs.pop(k) for k in _SEARCH_OPTIONS if k in kwargs}
        if kwargs:
            raise TypeError(f"QuiverVectorStore: unexpected search argument(s) {sorted(kwargs)} "
                            f"(besides k and filter: {', '.join(_SEARCH_OPTIONS)})")
        return opts

    # ------------------------------------------------------------------------------------------------------------
    # writes
    # ------------------------------------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: Optional[list[dict[str, Any]]] = None, *,
                  ids: Optional[list[str]] = None, batch_size: int = 1000, **kwargs: Any) -> list[str]:
        """Embeds (in Python, or on the server with ``embedding=None``) and upserts the texts; returns their ids
        (those given, a uuid4 for each missing one). An existing id is replaced. ``batch_size``: texts embedded and
        upserted per round."""
        if kwargs:
            raise TypeError(f"add_texts: unexpected argument(s) {sorted(kwargs)}")
        texts_, attrs, ids_ = self._prepare(texts, metadatas, ids)
        c = self._sync()
        for s in range(0, len(texts_), max(1, batch_size)):
            t, a, i = texts_[s:s + batch_size], attrs[s:s + batch_size], ids_[s:s + batch_size]
            vectors = None if self._embedding is None else self._embedding.embed_documents(t)
            points = self._points(t, a, i, vectors)
            self._ensure_collection(len(vectors[0]) if vectors else None)
            try:
                c.upsert(self.collection, points)
            except QuiverNotFound:  # dropped since it was described: create it again
                self._info = None
                self._ensure_collection(len(vectors[0]) if vectors else None)
                c.upsert(self.collection, points)
        return ids_

    async def aadd_texts(self, texts: Iterable[str], metadatas: Optional[list[dict[str, Any]]] = None, *,
                         ids: Optional[list[str]] = None, batch_size: int = 1000, **kwargs: Any) -> list[str]:
        if self.async_client is None:
            return await run_in_executor(None, self.add_texts, texts, metadatas, ids=ids, batch_size=batch_size,
                                         **kwargs)
        if kwargs:
            raise TypeError(f"aadd_texts: unexpected argument(s) {sorted(kwargs)}")
        texts_, attrs, ids_ = self._prepare(texts, metadatas, ids)
        c = self.async_client
        for s in range(0, len(texts_), max(1, batch_size)):
            t, a, i = texts_[s:s + batch_size], attrs[s:s + batch_size], ids_[s:s + batch_size]
            vectors = None if self._embedding is None else await self._embedding.aembed_documents(t)
            points = self._points(t, a, i, vectors)
            await self._aensure_collection(len(vectors[0]) if vectors else None)
            try:
                await c.upsert(self.collection, points)
            except QuiverNotFound:
                self._info = None
                await self._aensure_collection(len(vectors[0]) if vectors else None)
                await c.upsert(self.collection, points)
        return ids_

    @staticmethod
    def _too_many(e: QuiverResourceExhausted) -> bool:
        """The server refused a Delete by filter because more points match than one such write takes (100,000)."""
        return "match the filter" in e.message

    def _delete_where(self, filter: Any) -> None:
        """Deletes the points matching ``filter`` (a dict or F filter; None: every point). With a filter: one
        Delete by filter, a single write that is atomic per shard. Without one (Delete needs a filter), or when more
        points match than one Delete by filter takes: their ids are paged with Scroll and deleted by id."""
        c = self._sync()
        f = to_quiver_filter(filter)
        if f is not None:
            try:
                c.delete(self.collection, filter=f)
                return
            except QuiverResourceExhausted as e:
                if not self._too_many(e):
                    raise
        ids = [p.id for p in c.scroll(self.collection, filter=f)]
        if ids:
            c.delete(self.collection, ids)

    async def _adelete_where(self, filter: Any) -> None:
        assert self.async_client is not None
        c = self.async_client
        f = to_quiver_filter(filter)
        if f is not None:
            try:
                await c.delete(self.collection, filter=f)
                return
            except QuiverResourceExhausted as e:
                if not self._too_many(e):
                    raise
        ids = [p.id async for p in c.scroll(self.collection, filter=f)]
        if ids:
            await c.delete(self.collection, ids)

    def delete(self, ids: Optional[list[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the points with these ids (absent ids are ignored). ``ids=None`` deletes every point (the
        base-class contract), or with ``filter=...`` the points matching it (one Delete by filter: a single write,
        atomic per shard, for up to 100,000 matching points; more are paged and deleted by id); the collection
        itself stays (see ``delete_collection``). Returns True."""
        flt = kwargs.pop("filter", None)
        if kwargs:
            raise TypeError(f"delete: unexpected argument(s) {sorted(kwargs)}")
        if ids is not None and flt is not None:
            raise ValueError("delete: give ids or filter, not both")
        c = self._sync()
        try:
            if ids is None:
                self._delete_where(flt)
            elif ids:
                c.delete(self.collection, list(ids))
        except QuiverNotFound:
            pass
        return True

    async def adelete(self, ids: Optional[list[str]] = None, **kwargs: Any) -> Optional[bool]:
        if self.async_client is None:
            return await run_in_executor(None, self.delete, ids, **kwargs)
        flt = kwargs.pop("filter", None)
        if kwargs:
            raise TypeError(f"adelete: unexpected argument(s) {sorted(kwargs)}")
        if ids is not None and flt is not None:
            raise ValueError("adelete: give ids or filter, not both")
        c = self.async_client
        try:
            if ids is None:
                await self._adelete_where(flt)
            elif ids:
                await c.delete(self.collection, list(ids))
        except QuiverNotFound:
            pass
        return True

    def delete_collection(self) -> None:
        """Drops the collection (no error when it does not exist); the next write creates it again."""
        self._sync().drop_collection(self.collection, missing_ok=True)
        self._info = None

    async def adelete_collection(self) -> None:
        if self.async_client is None:
            await run_in_executor(None, self.delete_collection)
            return
        await self.async_client.drop_collection(self.collection, missing_ok=True)
        self._info = None

    # ------------------------------------------------------------------------------------------------------------
    # reads
    # ------------------------------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order asked; absent ids are left out."""
        if not ids:
            return []
        try:
            return [self._doc(p) for p in self._sync().get(self.collection, list(ids))]
        except QuiverNotFound:
            return []

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        if self.async_client is None:
            return await run_in_executor(None, self.get_by_ids, ids)
        if not ids:
            return []
        try:
            return [self._doc(p) for p in await self.async_client.get(self.collection, list(ids))]
        except QuiverNotFound:
            return []

    def _search(self, *, text: Optional[str] = None, vector: Any = None, k: int, filter: Any,
                with_vectors: bool = False, **opts: Any) -> list[Hit]:
        try:
            return self._sync().search(self.collection, vector=vector, text=text, k=k,
                                       filter=to_quiver_filter(filter), with_vectors=with_vectors, **opts)
        except QuiverNotFound:
            return []

    async def _asearch(self, *, text: Optional[str] = None, vector: Any = None, k: int, filter: Any,
                       with_vectors: bool = False, **opts: Any) -> list[Hit]:
        assert self.async_client is not None
        try:
            return await self.async_client.search(self.collection, vector=vector, text=text, k=k,
                                                  filter=to_quiver_filter(filter), with_vectors=with_vectors,
                                                  **opts)
        except QuiverNotFound:
            return []

    def _query_args(self, query: str) -> dict[str, Any]:
        if self._embedding is None:
            return {"text": query}
        return {"vector": self._embedding.embed_query(query)}

    async def _aquery_args(self, query: str) -> dict[str, Any]:
        if self._embedding is None:
            return {"text": query}
        return {"vector": await self._embedding.aembed_query(query)}

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The k documents nearest to the query, best first, with the server's raw scores (cosine similarity,
        inner product, or squared L2 distance). ``filter``: a metadata filter dict; ``ef`` / ``exact``: search
        parameters; ``group_by`` (a metadata key with string values, e.g. "source") and ``group_size``: the
        documents of the k best groups, at most ``group_size`` (default 1) each: one passage per source."""
        opts = self._search_options(kwargs)
        hits = self._search(**self._query_args(query), k=k, filter=filter, **opts)
        return [(self._doc(h), h.score) for h in hits]

    async def asimilarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        if self.async_client is None:
            return await run_in_executor(None, self.similarity_search_with_score, query, k, filter, **kwargs)
        opts = self._search_options(kwargs)
        hits = await self._asearch(**await self._aquery_args(query), k=k, filter=filter, **opts)
        return [(self._doc(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: Any = None,
                                 **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(self, embedding: Sequence[float], k: int = 4, filter: Any = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        opts = self._search_options(kwargs)
        return [(self._doc(h), h.score) for h in self._search(vector=embedding, k=k, filter=filter, **opts)]

    async def asimilarity_search_with_score_by_vector(self, embedding: Sequence[float], k: int = 4,
                                                      filter: Any = None,
                                                      **kwargs: Any) -> list[tuple[Document, float]]:
        if self.async_client is None:
            return await run_in_executor(None, self.similarity_search_with_score_by_vector, embedding, k, filter,
                                         **kwargs)
        opts = self._search_options(kwargs)
        hits = await self._asearch(vector=embedding, k=k, filter=filter, **opts)
        return [(self._doc(h), h.score) for h in hits]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Any = None,
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Any = None,
                                           **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    # -- maximal marginal relevance --
    def _query_vector(self, query: str) -> list[float]:
        if self._embedding is None:
            return self._sync().embed([query])[0].tolist()  # type: ignore[no-any-return]
        return self._embedding.embed_query(query)

    async def _aquery_vector(self, query: str) -> list[float]:
        if self._embedding is None:
            assert self.async_client is not None
            return (await self.async_client.embed([query]))[0].tolist()  # type: ignore[no-any-return]
        return await self._embedding.aembed_query(query)

    @staticmethod
    def _mmr(query_vector: Sequence[float], hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
        if not hits:
            return []
        vectors = [np.asarray(h.vector, dtype=np.float32).tolist() for h in hits]
        picked = maximal_marginal_relevance(np.asarray(query_vector, dtype=np.float32), vectors,
                                            lambda_mult=lambda_mult, k=min(k, len(hits)))
        return [QuiverVectorStore._doc(hits[i]) for i in picked]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Any = None, **kwargs: Any) -> list[Document]:
        """k documents chosen by maximal marginal relevance among the ``fetch_k`` nearest (their vectors are
        fetched with them). ``lambda_mult``: 1 = relevance only, 0 = diversity only."""
        return self.max_marginal_relevance_search_by_vector(self._query_vector(query), k, fetch_k, lambda_mult,
                                                            filter, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, filter: Any = None,
                                             **kwargs: Any) -> list[Document]:
        if self.async_client is None:
            return await run_in_executor(None, self.max_marginal_relevance_search, query, k, fetch_k,
                                         lambda_mult, filter, **kwargs)
        return await self.amax_marginal_relevance_search_by_vector(await self._aquery_vector(query), k, fetch_k,
                                                                   lambda_mult, filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: Sequence[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Any = None,
                                                **kwargs: Any) -> list[Document]:
        opts = self._search_options(kwargs)
        hits = self._search(vector=embedding, k=max(k, fetch_k), filter=filter, with_vectors=True, **opts)
        return self._mmr(embedding, hits, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(self, embedding: Sequence[float], k: int = 4,
                                                       fetch_k: int = 20, lambda_mult: float = 0.5,
                                                       filter: Any = None, **kwargs: Any) -> list[Document]:
        if self.async_client is None:
            return await run_in_executor(None, self.max_marginal_relevance_search_by_vector, embedding, k,
                                         fetch_k, lambda_mult, filter, **kwargs)
        opts = self._search_options(kwargs)
        hits = await self._asearch(vector=embedding, k=max(k, fetch_k), filter=filter, with_vectors=True, **opts)
        return self._mmr(embedding, hits, k, lambda_mult)

    # -- relevance scores --
    def _relevance_fn_for(self, metric: str) -> Callable[[float], float]:
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        try:
            return _RELEVANCE[metric]
        except KeyError:
            raise ValueError(f"no relevance function for metric {metric!r}; pass relevance_score_fn") from None

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Per the collection's metric: see ``cosine_relevance``, ``l2_relevance``, ``ip_relevance``."""
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        metric = self.metric
        if self._info is not None:
            metric = self._info.metric
        elif self.client is not None:
            try:
                self._info = self.client.describe_collection(self.collection)
                metric = self._info.metric
            except QuiverNotFound:
                pass
        return self._relevance_fn_for(metric)

    async def _aselect_relevance_score_fn(self) -> Callable[[float], float]:
        if self.override_relevance_score_fn is not None or self._info is not None or self.async_client is None:
            return self._select_relevance_score_fn()
        metric = self.metric
        try:
            self._info = await self.async_client.describe_collection(self.collection)
            metric = self._info.metric
        except QuiverNotFound:
            pass
        return self._relevance_fn_for(metric)

    async def _asimilarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                        **kwargs: Any) -> list[tuple[Document, float]]:
        fn = await self._aselect_relevance_score_fn()
        return [(d, fn(s)) for d, s in await self.asimilarity_search_with_score(query, k, **kwargs)]

    # ------------------------------------------------------------------------------------------------------------
    # constructors
    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def _from_args(cls, embedding: Optional[Embeddings], client: Any, async_client: Any, address: Optional[str],
                   collection: str, kwargs: dict[str, Any]) -> tuple["QuiverVectorStore", dict[str, Any]]:
        add_kwargs = {k: kwargs.pop(k) for k in ("batch_size",) if k in kwargs}
        if client is None and async_client is None:
            if address is None:
                raise ValueError("from_texts: give client=QuiverClient(...), async_client=... or address=...")
            client = QuiverClient(address)
        return cls(client, collection, embedding, async_client=async_client, **kwargs), add_kwargs

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Optional[Embeddings] = None,
                   metadatas: Optional[list[dict[str, Any]]] = None, *, ids: Optional[list[str]] = None,
                   client: Union[QuiverClient, AsyncQuiverClient, None] = None, collection: str = "langchain",
                   async_client: Optional[AsyncQuiverClient] = None, address: Optional[str] = None,
                   **kwargs: Any) -> "QuiverVectorStore":
        """A store on ``collection`` (created when missing) holding the texts. ``client`` (or ``address``: a
        ``QuiverClient`` is made for it); other keyword arguments go to the constructor (``metric``,
        ``metadata_fields``, ...) or to ``add_texts`` (``batch_size``)."""
        store, add_kwargs = cls._from_args(embedding, client, async_client, address, collection, kwargs)
        store.add_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Optional[Embeddings] = None,
                          metadatas: Optional[list[dict[str, Any]]] = None, *, ids: Optional[list[str]] = None,
                          client: Union[QuiverClient, AsyncQuiverClient, None] = None, collection: str = "langchain",
                          async_client: Optional[AsyncQuiverClient] = None, address: Optional[str] = None,
                          **kwargs: Any) -> "QuiverVectorStore":
        store, add_kwargs = cls._from_args(embedding, client, async_client, address, collection, kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    def __repr__(self) -> str:
        how = "server-side embedding" if self.server_embeds else type(self._embedding).__name__
        return f"QuiverVectorStore({self.collection!r}, {how})"


__all__ = ["QuiverVectorStore", "DEFAULT_EMBEDDING_MODEL", "cosine_relevance", "l2_relevance", "ip_relevance"]
