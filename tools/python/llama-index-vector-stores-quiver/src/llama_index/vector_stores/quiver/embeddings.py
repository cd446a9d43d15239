"""QuiverEmbedding: LlamaIndex embeddings computed by a Quiver server's built-in model (all-MiniLM-L6-v2)."""
from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from quiver_client import AsyncQuiverClient, QuiverClient


class QuiverEmbedding(BaseEmbedding):
    """Embeds texts with the server's model (``Embed``: all-MiniLM-L6-v2, 384 dimensions, unit-length vectors),
    so that no model runs in Python. ``client`` and/or ``aclient``, or ``address`` (+ ``api_key``, ``tls``,
    ``timeout``). Texts must have words (the server refuses empty or blank texts)."""

    model_name: str = "all-MiniLM-L6-v2"

    _client: Optional[QuiverClient] = PrivateAttr(default=None)
    _aclient: Optional[AsyncQuiverClient] = PrivateAttr(default=None)

    def __init__(self, client: Optional[QuiverClient] = None, aclient: Optional[AsyncQuiverClient] = None, *,
                 address: Optional[str] = None, api_key: Optional[str] = None, tls: Any = None,
                 timeout: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if address is not None:
            client = client or QuiverClient(address, api_key=api_key, tls=tls, timeout=timeout)
            aclient = aclient or AsyncQuiverClient(address, api_key=api_key, tls=tls, timeout=timeout)
        if client is None and aclient is None:
            raise ValueError("QuiverEmbedding needs client=QuiverClient(...), aclient=... or address=...")
        self._client = client
        self._aclient = aclient

    @classmethod
    def class_name(cls) -> str:
        return "QuiverEmbedding"

    def _embed(self, texts: List[str]) -> List[List[float]]:
        if not texts:
            return []
        if self._client is None:
            raise RuntimeError("this QuiverEmbedding has only an AsyncQuiverClient: use the async methods")
        return self._client.embed(list(texts)).tolist()  # type: ignore[no-any-return]

    async def _aembed(self, texts: List[str]) -> List[List[float]]:
        if not texts:
            return []
        if self._aclient is None:
            return await asyncio.to_thread(self._embed, texts)
        return (await self._aclient.embed(list(texts))).tolist()  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return (await self._aembed([query]))[0]

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return (await self._aembed([text]))[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self._embed(texts)

    async def _aget_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return await self._aembed(texts)
