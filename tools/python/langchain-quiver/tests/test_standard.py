"""langchain-tests' standard VectorStoreIntegrationTests and EmbeddingsIntegrationTests, unchanged, against a real
quiverd: with client-side embeddings and a native AsyncQuiverClient, with a blocking client only (the async methods
then run in a thread), and with the server embedding (embedding=None)."""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests

from langchain_quiver import QuiverEmbeddings, QuiverVectorStore
from quiver_client import AsyncQuiverClient, LocalServer, QuiverClient
from quiver_client.testing import session_server


class TestQuiverVectorStore(VectorStoreIntegrationTests):
    """Client-side embeddings (the suite's DeterministicFakeEmbedding), sync and native async clients."""

    @pytest.fixture
    async def vectorstore(self, server: LocalServer, client: QuiverClient,  # type: ignore[override]
                          name: str) -> AsyncIterator[VectorStore]:
        aclient = AsyncQuiverClient(server.address, timeout=60)
        try:
            yield QuiverVectorStore(client, name, self.get_embeddings(), async_client=aclient)
        finally:
            client.drop_collection(name, missing_ok=True)
            await aclient.close()


class TestQuiverVectorStoreSyncClientOnly(VectorStoreIntegrationTests):
    """Only a blocking client: the async methods fall back to running the sync ones in a thread."""

    @pytest.fixture
    def vectorstore(self, client: QuiverClient, name: str) -> Any:  # type: ignore[override]
        try:
            yield QuiverVectorStore(client, name, self.get_embeddings())
        finally:
            client.drop_collection(name, missing_ok=True)


class TestQuiverVectorStoreServerEmbedding(VectorStoreIntegrationTests):
    """embedding=None: the collection is created with the server's model, which embeds texts and queries."""

    @pytest.fixture
    async def vectorstore(self, server: LocalServer, client: QuiverClient,  # type: ignore[override]
                          name: str) -> AsyncIterator[VectorStore]:
        aclient = AsyncQuiverClient(server.address, timeout=60)
        try:
            yield QuiverVectorStore(client, name, async_client=aclient)
        finally:
            client.drop_collection(name, missing_ok=True)
            await aclient.close()


@pytest.mark.usefixtures("server")
class TestQuiverEmbeddings(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[QuiverEmbeddings]:
        return QuiverEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"address": session_server().address, "timeout": 60}
