"""End to end with llama-index-core: VectorStoreIndex over QuiverVectorStore, documents split into nodes and
embedded by the server's model (QuiverEmbedding), retrievers, a query engine with a MockLLM, filters, inserts and
deletes of documents, an index rebuilt from the store alone, async retrieval. Deterministic and offline apart from
the local quiverd."""
from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from llama_index.vector_stores.quiver import QuiverEmbedding, QuiverVectorStore
from quiver_client import AsyncQuiverClient, QuiverClient

DOCS = [
    Document(id_="cats", text="The cat sat on the mat and purred in the warm afternoon sun.",
             metadata={"topic": "animals", "year": 2021}),
    Document(id_="rates", text="The central bank raised interest rates to fight inflation.",
             metadata={"topic": "finance", "year": 2023}),
    Document(id_="final", text="The striker scored twice and the team won the championship final.",
             metadata={"topic": "sport", "year": 2022}),
    Document(id_="lava", text="Lava poured from the volcano and the villages were evacuated.",
             metadata={"topic": "nature", "year": 2020}),
]


def top_ref_doc(nodes: list[Any]) -> str:
    return nodes[0].node.ref_doc_id  # type: ignore[no-any-return]


@pytest.fixture
def embed(client: QuiverClient, aclient: AsyncQuiverClient) -> QuiverEmbedding:
    return QuiverEmbedding(client, aclient)


@pytest.fixture
def index(client: QuiverClient, aclient: AsyncQuiverClient, name: str, embed: QuiverEmbedding) -> Any:
    store = QuiverVectorStore(name, client=client, aclient=aclient)
    ctx = StorageContext.from_defaults(vector_store=store)
    idx = VectorStoreIndex.from_documents([d.model_copy() for d in DOCS], storage_context=ctx, embed_model=embed)
    yield idx
    client.drop_collection(name, missing_ok=True)


def test_index_end_to_end(index: VectorStoreIndex, client: QuiverClient, name: str) -> None:
    assert client.count(name) == 4
    info = client.describe_collection(name)
    assert info.dim == 384 and info.metric == "cosine" and info.dynamic_attributes
    retriever = index.as_retriever(similarity_top_k=2)
    got = retriever.retrieve("a kitten resting on a rug")
    assert top_ref_doc(got) == "cats" and len(got) == 2
    assert got[0].score is not None and got[0].score > got[1].score  # type: ignore[operator]
    assert got[0].node.metadata == {"topic": "animals", "year": 2021}
    assert "cat sat on the mat" in got[0].node.get_content()
    assert top_ref_doc(retriever.retrieve("monetary policy and inflation")) == "rates"


def test_index_filters(index: VectorStoreIndex) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2022, operator=FilterOperator.GTE)])
    got = index.as_retriever(similarity_top_k=4, filters=filters).retrieve("a kitten resting on a rug")
    assert sorted(n.node.ref_doc_id for n in got) == ["final", "rates"]  # type: ignore[type-var]
    filters = MetadataFilters(filters=[MetadataFilter(key="topic", value=["sport", "nature"],
                                                      operator=FilterOperator.IN)])
    got = index.as_retriever(similarity_top_k=1, filters=filters).retrieve("an erupting mountain")
    assert top_ref_doc(got) == "lava"
    got = index.as_retriever(similarity_top_k=4, doc_ids=["cats", "lava"]).retrieve("anything")
    assert sorted(n.node.ref_doc_id for n in got) == ["cats", "lava"]  # type: ignore[type-var]


def test_query_engine_with_mock_llm(index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=1)
    resp = engine.query("Which animal sat on the mat?")
    assert len(resp.source_nodes) == 1 and resp.source_nodes[0].node.ref_doc_id == "cats"
    assert isinstance(resp.response, str)


def test_insert_and_delete_documents(index: VectorStoreIndex, client: QuiverClient, name: str) -> None:
    index.insert(Document(id_="bread", text="Knead the dough and bake the bread in a hot oven.",
                          metadata={"topic": "food", "year": 2024}))
    retriever = index.as_retriever(similarity_top_k=1)
    assert top_ref_doc(retriever.retrieve("baking a loaf")) == "bread"
    index.delete_ref_doc("bread")
    assert client.count(name) == 4
    assert top_ref_doc(retriever.retrieve("baking a loaf")) != "bread"
    index.delete_ref_doc("cats")
    got = index.as_retriever(similarity_top_k=4).retrieve("a kitten resting on a rug")
    assert "cats" not in {n.node.ref_doc_id for n in got}


def test_index_from_existing_store(index: VectorStoreIndex, client: QuiverClient, name: str,
                                   embed: QuiverEmbedding) -> None:
    again = VectorStoreIndex.from_vector_store(QuiverVectorStore(name, client=client), embed_model=embed)
    got = again.as_retriever(similarity_top_k=1).retrieve("goals in a football match")
    assert top_ref_doc(got) == "final"
    assert got[0].node.metadata == {"topic": "sport", "year": 2022}


async def test_async_retrieval(index: VectorStoreIndex) -> None:
    got = await index.as_retriever(similarity_top_k=1).aretrieve("an erupting mountain")
    assert top_ref_doc(got) == "lava"
    await index.ainsert(Document(id_="bread", text="Knead the dough and bake the bread in a hot oven."))
    got = await index.as_retriever(similarity_top_k=1).aretrieve("baking a loaf")
    assert top_ref_doc(got) == "bread"
    await index.adelete_ref_doc("bread")
    resp = await index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=1).aquery("bread?")
    assert resp.source_nodes[0].node.ref_doc_id != "bread"


def test_async_index_build(client: QuiverClient, aclient: AsyncQuiverClient, name: str,
                           embed: QuiverEmbedding) -> None:
    store = QuiverVectorStore(name, client=client, aclient=aclient)
    idx = VectorStoreIndex.from_documents([d.model_copy() for d in DOCS],
                                          storage_context=StorageContext.from_defaults(vector_store=store),
                                          embed_model=embed, use_async=True)
    assert client.count(name) == 4
    assert top_ref_doc(idx.as_retriever(similarity_top_k=1).retrieve("interest rates")) == "rates"
    client.drop_collection(name)


def test_mock_embedding_index(client: QuiverClient, name: str) -> None:
    """llama-index's MockEmbedding (constant vectors): every node ties, the store still returns k of them."""
    store = QuiverVectorStore(name, client=client)
    idx = VectorStoreIndex.from_documents([d.model_copy() for d in DOCS],
                                          storage_context=StorageContext.from_defaults(vector_store=store),
                                          embed_model=MockEmbedding(embed_dim=8))
    assert len(idx.as_retriever(similarity_top_k=3).retrieve("x")) == 3
    client.drop_collection(name)


def test_quiver_embedding(client: QuiverClient) -> None:
    emb = QuiverEmbedding(client)
    a, b, c = emb.get_text_embedding_batch(["a cat", "a kitten", "interest rates"])
    assert len(a) == 384
    assert emb.similarity(a, b) > emb.similarity(a, c)
    assert emb.get_query_embedding("a cat") == pytest.approx(a, abs=1e-6)
    with pytest.raises(ValueError):
        QuiverEmbedding()
