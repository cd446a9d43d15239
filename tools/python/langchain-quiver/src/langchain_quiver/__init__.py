"""langchain_quiver: LangChain integration of the Quiver vector database.

    from quiver_client import QuiverClient
    from langchain_quiver import QuiverVectorStore
    store = QuiverVectorStore(QuiverClient("127.0.0.1:7700"), "docs")       # the server embeds
    store.add_texts(["The cat sat on the mat."], metadatas=[{"source": "wiki"}])
    store.similarity_search("a feline resting on a rug", k=3, filter={"source": "wiki"})
"""
from ._filters import to_quiver_filter
from ._metadata import EXTRA_KEY, decode_metadata, encode_metadata
from .embeddings import QuiverEmbeddings
from .vectorstores import DEFAULT_EMBEDDING_MODEL, QuiverVectorStore, cosine_relevance, ip_relevance, l2_relevance

__version__ = "0.1.0"

__all__ = [
    "QuiverVectorStore", "QuiverEmbeddings", "DEFAULT_EMBEDDING_MODEL", "to_quiver_filter", "encode_metadata",
    "decode_metadata", "EXTRA_KEY", "cosine_relevance", "l2_relevance", "ip_relevance", "__version__",
]
