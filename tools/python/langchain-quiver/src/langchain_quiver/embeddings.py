"""QuiverEmbeddings: LangChain embeddings computed by a Quiver server's built-in model (all-MiniLM-L6-v2)."""
from __future__ import annotations

from typing import Any, Optional, Union

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from quiver_client import AsyncQuiverClient, QuiverClient


class QuiverEmbeddings(Embeddings):
    """Embeds texts with the server's model (``Embed``: all-MiniLM-L6-v2, 384 dimensions, unit-length vectors).

    ``client``: a ``QuiverClient`` or an ``AsyncQuiverClient`` (or give ``address`` and the connection arguments
    of ``QuiverClient``: ``api_key``, ``tls``, ``timeout``). ``async_client``: used by ``aembed_*``; without it they
    run the blocking calls in a thread. Texts must have words (the server refuses empty or blank texts).

    >>> emb = QuiverEmbeddings(QuiverClient("127.0.0.1:7700"))
    >>> len(emb.embed_query("hello"))
    384
    """

    def __init__(self, client: Union[QuiverClient, AsyncQuiverClient, None] = None, *,
                 async_client: Optional[AsyncQuiverClient] = None, address: Optional[str] = None,
                 **client_kwargs: Any) -> None:
        if isinstance(client, AsyncQuiverClient):
            async_client, client = async_client or client, None
        if client is None and address is not None:
            client = QuiverClient(address, **client_kwargs)
            if async_client is None:
                async_client = AsyncQuiverClient(address, **client_kwargs)
        if client is None and async_client is None:
            raise ValueError("QuiverEmbeddings needs a client, an async_client or an address")
        self.client = client
        self.async_client = async_client

    def _sync(self) -> QuiverClient:
        if self.client is None:
            raise RuntimeError("this QuiverEmbeddings has only an AsyncQuiverClient: use aembed_documents / "
                               "aembed_query, or give it a QuiverClient")
        return self.client

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._sync().embed(list(texts)).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self._sync().embed([text])[0].tolist()  # type: ignore[no-any-return]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.async_client is None:
            return await run_in_executor(None, self.embed_documents, texts)
        if not texts:
            return []
        return (await self.async_client.embed(list(texts))).tolist()  # type: ignore[no-any-return]

    async def aembed_query(self, text: str) -> list[float]:
        if self.async_client is None:
            return await run_in_executor(None, self.embed_query, text)
        return (await self.async_client.embed([text]))[0].tolist()  # type: ignore[no-any-return]
