"""llama_index.vector_stores.quiver: LlamaIndex integration of the Quiver vector database.

    from quiver_client import QuiverClient
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.vector_stores.quiver import QuiverVectorStore
    store = QuiverVectorStore("docs", client=QuiverClient("127.0.0.1:7700"))
    index = VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(vector_store=store))
"""
from llama_index.vector_stores.quiver.base import (
    DEFAULT_EMBEDDING_MODEL,
    NODE_ID_KEY,
    REF_DOC_ID_KEY,
    QuiverVectorStore,
    to_quiver_filter,
)
from llama_index.vector_stores.quiver.embeddings import QuiverEmbedding

__all__ = ["QuiverVectorStore", "QuiverEmbedding", "to_quiver_filter", "NODE_ID_KEY", "REF_DOC_ID_KEY",
           "DEFAULT_EMBEDDING_MODEL"]
