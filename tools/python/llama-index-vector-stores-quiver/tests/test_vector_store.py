"""QuiverVectorStore (LlamaIndex) against a real quiverd: add / query / delete / delete_nodes / get_nodes / clear,
every filter operator and nesting, node round trips, MMR, the async methods, server-side embedding."""
from __future__ import annotations

import math
from typing import Any, Optional

import grpc
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from llama_index.vector_stores.quiver import NODE_ID_KEY, QuiverVectorStore
from quiver_client import AsyncQuiverClient, QuiverClient, QuiverInvalidArgument, QuiverResourceExhausted

META: dict[str, dict[str, Any]] = {
    "a": {"year": 2019, "lang": "en", "score": 0.5, "tags": ["x", "y"]},
    "b": {"year": 2020, "lang": "fr", "score": 1.5, "tags": ["y"]},
    "c": {"year": 2021, "lang": "en", "score": 2.5, "tags": []},
    "d": {"year": 2022.0, "lang": "de"},                 # no score, no tags; a float year
    "e": {"lang": "en", "score": 4, "tags": ["z"]},      # no year
}
DOC_OF = {"a": "doc1", "b": "doc1", "c": "doc2", "d": "doc2", "e": "doc3"}


def make_nodes() -> list[TextNode]:
    nodes = []
    for i, (nid, md) in enumerate(META.items()):
        n = TextNode(id_=nid, text=f"text of {nid}", metadata=dict(md), embedding=[1.0, float(i), 0.0])
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=DOC_OF[nid])
        nodes.append(n)
    return nodes


@pytest.fixture
def store(client: QuiverClient, name: str) -> Any:
    s = QuiverVectorStore(name, client=client)
    yield s
    client.drop_collection(name, missing_ok=True)


@pytest.fixture
def filled(store: QuiverVectorStore) -> QuiverVectorStore:
    assert store.add(make_nodes()) == list(META)
    return store


@pytest.fixture
async def astore(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> Any:
    s = QuiverVectorStore(name, client=client, aclient=aclient)
    yield s
    client.drop_collection(name, missing_ok=True)


def mf(*filters: Any, condition: str = "and") -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=FilterCondition(condition))


def f(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def q(filters: Optional[MetadataFilters] = None, k: int = 10, **kw: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=k, filters=filters, **kw)


FO = FilterOperator
FILTER_CASES: list[tuple[MetadataFilters, set[str]]] = [
    (mf(f("lang", "en")), {"a", "c", "e"}),
    (mf(f("lang", "en", FO.NE)), {"b", "d"}),
    (mf(f("year", 2022)), {"d"}),                                   # numbers compare as numbers
    (mf(f("year", 2019, FO.NE)), {"b", "c", "d", "e"}),             # a node without the key passes NE
    (mf(f("year", 2020, FO.GT)), {"c", "d"}),
    (mf(f("year", 2020, FO.GTE)), {"b", "c", "d"}),
    (mf(f("year", 2020, FO.LT)), {"a"}),
    (mf(f("year", 2020, FO.LTE)), {"a", "b"}),
    (mf(f("score", 1.5, FO.GTE), f("score", 4, FO.LTE)), {"b", "c", "e"}),
    (mf(f("lang", ["fr", "de"], FO.IN)), {"b", "d"}),
    (mf(f("lang", ["fr", "de"], FO.NIN)), {"a", "c", "e"}),
    (mf(f("year", [2019, 2022], FO.IN)), {"a", "d"}),
    (mf(f("year", [2019, 2022], FO.NIN)), {"b", "c", "e"}),
    (mf(f("score", [0.5, 4.0], FO.IN)), {"a", "e"}),
    (mf(f("tags", "y")), {"a", "b"}),                                 # any element of a list
    (mf(f("tags", "y", FO.CONTAINS)), {"a", "b"}),
    (mf(f("tags", ["x", "z"], FO.ANY)), {"a", "e"}),
    (mf(f("tags", ["x", "y"], FO.ALL)), {"a"}),
    (mf(f("tags", ["y"], FO.NIN)), {"c", "d", "e"}),
    (mf(f("lang", "en"), f("year", 2020, FO.GTE)), {"c"}),             # AND
    (mf(f("lang", "fr"), f("score", 3, FO.GT), condition="or"), {"b", "e"}),
    (mf(f("lang", "en"), condition="not"), {"b", "d"}),
    (mf(f("lang", "en"), f("lang", "de"), condition="not"), {"b"}),     # NOT: none of them holds
    (mf(mf(f("lang", "en"), f("tags", "x", FO.NE)), f("year", 2020), condition="or"), {"b", "c", "e"}),
    (mf(mf(f("lang", "de"), f("lang", "fr"), condition="or"), mf(f("year", 2021, FO.LT), condition="not")), {"d"}),
    (mf(mf(mf(f("lang", "en"), condition="not"), f("year", 2020, FO.GT)), f("ref_doc_id", "doc3"),
        condition="or"), {"d", "e"}),
    (mf(f("ref_doc_id", "doc2")), {"c", "d"}),
    (mf(f("doc_id", ["doc1", "doc3"], FO.IN)), {"a", "b", "e"}),
    (mf(), {"a", "b", "c", "d", "e"}),
    (mf(f("missing", "x")), set()),
    (mf(f("missing", "x", FO.NE)), {"a", "b", "c", "d", "e"}),
    (mf(f("lang", 1)), set()),                                         # a number never equals a keyword
]
CASE_IDS = [str(i) for i in range(len(FILTER_CASES))]


@pytest.mark.parametrize("filters,expected", FILTER_CASES, ids=CASE_IDS)
def test_filters(filled: QuiverVectorStore, filters: MetadataFilters, expected: set[str]) -> None:
    res = filled.query(q(filters))
    assert set(res.ids or []) == expected
    assert [n.node_id for n in res.nodes or []] == res.ids
    assert {n.node_id for n in filled.get_nodes(filters=filters)} == expected


async def test_filters_async(astore: QuiverVectorStore) -> None:
    await astore.async_add(make_nodes())
    for filters, expected in FILTER_CASES:
        assert set((await astore.aquery(q(filters))).ids or []) == expected, filters
        assert {n.node_id for n in await astore.aget_nodes(filters=filters)} == expected, filters


@pytest.mark.parametrize("filters", [
    mf(f("lang", "en", FO.TEXT_MATCH)), mf(f("lang", None, FO.IS_EMPTY)), mf(f("lang", ["en"])),
    mf(f("lang", [], FO.IN)), mf(f("year", "2020", FO.GT)), mf(f("lang", None)),
])
def test_unsupported_filters(filled: QuiverVectorStore, filters: MetadataFilters) -> None:
    with pytest.raises(ValueError):
        filled.query(q(filters))


def test_query(filled: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    res = filled.query(q(k=2))
    assert res.ids == ["a", "b"]
    assert res.similarities == pytest.approx([1.0, 1 / math.sqrt(2)], abs=1e-5)
    node = res.nodes[0]  # type: ignore[index]
    assert isinstance(node, TextNode) and node.text == "text of a" and node.metadata == META["a"]
    assert node.ref_doc_id == "doc1"
    # node_ids and doc_ids restrict the search (combined with filters on the server)
    assert filled.query(q(node_ids=["c", "e", "zz"])).ids == ["c", "e"]
    assert filled.query(q(node_ids=["c", "e"], filters=mf(f("lang", "en")), k=1)).ids == ["c"]
    assert filled.query(q(doc_ids=["doc2"])).ids == ["c", "d"]
    assert filled.query(q(doc_ids=["doc1", "doc2"], node_ids=["b", "c", "e"])).ids == ["b", "c"]
    assert filled.query(q(node_ids=[], doc_ids=[], k=2)).ids == ["a", "b"]  # empty lists restrict nothing
    assert filled.query(q(k=1), ef=200, exact=True).ids == ["a"]
    with pytest.raises(ValueError, match="mode"):
        filled.query(q(mode=VectorStoreQueryMode.HYBRID))
    with pytest.raises(ValueError, match="query_embedding"):
        filled.query(VectorStoreQuery(similarity_top_k=3))


def test_query_missing_collection(store: QuiverVectorStore) -> None:
    res = store.query(q())
    assert res.ids == [] and res.nodes == []
    assert store.get_nodes() == [] and store.get_nodes(["a"]) == []
    store.delete("doc1")
    store.delete_nodes(["a"])
    store.delete_nodes(filters=mf(f("lang", "en")))
    store.clear()


def test_l2_similarities(client: QuiverClient, name: str) -> None:
    client.create_collection(name, dim=3, metric="l2", dynamic_attributes=True)
    store = QuiverVectorStore(name, client=client)
    store.add(make_nodes())
    res = store.query(q(k=3))
    assert res.ids == ["a", "b", "c"]
    # squared distances 0, 1, 4 -> 1 / (1 + d2)
    assert res.similarities == pytest.approx([1.0, 0.5, 0.2], abs=1e-5)


def test_mmr(store: QuiverVectorStore) -> None:
    nodes = [TextNode(id_="a", text="a", embedding=[0.9, 0.1, 0.0]),
             TextNode(id_="a2", text="a2", embedding=[0.9, 0.11, 0.0]),
             TextNode(id_="b", text="b", embedding=[0.6, 0.0, 0.8])]
    store.add(nodes)
    assert store.query(q(k=2)).ids == ["a", "a2"]
    res = store.query(q(k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.25))
    assert res.ids == ["a", "b"]
    assert len(res.similarities or []) == 2
    assert store.query(q(k=2, mode=VectorStoreQueryMode.MMR), mmr_threshold=1.0).ids == ["a", "a2"]


def test_metadata_round_trip(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    md = {"int": 1, "float": 2.0, "str": "s", "bool": True, "tags": ["p", "q"], "none": None,
          "nested": {"k": [1, 2]}, "ints": [1, 2], "nan": "not a number", "k" * 70: "long key"}
    node = TextNode(id_="n1", text="hello world", metadata=md, embedding=[0.1, 0.2, 0.3],
                    excluded_embed_metadata_keys=["str"], excluded_llm_metadata_keys=["int"])
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="docX", metadata={"m": 1})
    node.relationships[NodeRelationship.NEXT] = RelatedNodeInfo(node_id="n2")
    store.add([node])
    [got] = store.get_nodes(["n1"])
    assert isinstance(got, TextNode)
    assert got.metadata == md and got.text == "hello world" and got.node_id == "n1"
    assert got.relationships == node.relationships
    assert got.excluded_embed_metadata_keys == ["str"] and got.excluded_llm_metadata_keys == ["int"]
    assert got.ref_doc_id == "docX"
    [p] = client.get(name, ["n1"])  # what the point holds
    assert p.text == "hello world"
    assert {"int": 1, "float": 2.0, "bool": True, "tags": ["p", "q"], "ref_doc_id": "docX", "doc_id": "docX",
            NODE_ID_KEY: "n1", "_node_type": "TextNode"}.items() <= p.attributes.items()
    assert "none" not in p.attributes and "nested" not in p.attributes and "hello world" not in \
        p.attributes["_node_content"]  # type: ignore[operator]
    # filters on the typed attributes work; values only in _node_content are not filterable
    assert store.query(q(mf(f("float", 2)))).ids == ["n1"]
    assert store.query(q(mf(f("tags", "q")))).ids == ["n1"]


def test_delete_by_ref_doc_id(filled: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    filled.delete("doc1")
    assert sorted(p.id for p in client.scroll(name)) == ["c", "d", "e"]
    filled.delete("doc1")  # again: nothing left to delete
    filled.delete("no such doc")
    assert client.count(name) == 3



def test_delete_by_ref_doc_id_is_one_write(filled: QuiverVectorStore, client: QuiverClient, name: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """delete(ref_doc_id) and delete_nodes(filters=...) send one Delete by filter; when the server refuses it as
    matching too many points (over 100,000), the store pages the matching ids and deletes those instead."""
    calls: list[dict[str, Any]] = []
    real = client.delete

    def spy(collection: str, ids: Any = None, *, filter: Any = None) -> int:
        calls.append({"ids": ids, "filter": filter})
        return real(collection, ids, filter=filter)

    monkeypatch.setattr(client, "delete", spy)
    filled.delete("doc1")
    filled.delete_nodes(filters=mf(f("lang", "de")))
    assert [c["ids"] for c in calls] == [None, None] and all(c["filter"] is not None for c in calls)
    assert sorted(p.id for p in client.scroll(name)) == ["c", "e"]

    def refuse(collection: str, ids: Any = None, *, filter: Any = None) -> int:
        if filter is not None:
            raise QuiverResourceExhausted("more than 100000 points match the filter: one delete changes at most "
                                          "100000", grpc.StatusCode.RESOURCE_EXHAUSTED, "Quiver/Delete")
        calls.append({"ids": ids, "filter": filter})
        return real(collection, ids)

    calls.clear()
    monkeypatch.setattr(client, "delete", refuse)
    filled.delete("doc2")
    assert calls == [{"ids": ["c"], "filter": None}]
    assert sorted(p.id for p in client.scroll(name)) == ["e"]

def test_delete_nodes(filled: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    def left() -> list[str]:
        return sorted(p.id for p in client.scroll(name))

    filled.delete_nodes([])
    assert left() == ["a", "b", "c", "d", "e"]
    filled.delete_nodes(["a", "zz"])
    assert left() == ["b", "c", "d", "e"]
    filled.delete_nodes(filters=mf(f("lang", "fr")))
    assert left() == ["c", "d", "e"]
    filled.delete_nodes(["c", "d"], filters=mf(f("lang", "en")))  # both: c only
    assert left() == ["d", "e"]
    filled.delete_nodes()  # neither: every node
    assert left() == [] and client.has_collection(name)


def test_get_nodes(filled: QuiverVectorStore) -> None:
    assert [n.node_id for n in filled.get_nodes(["e", "zz", "a"])] == ["e", "a"]
    assert [n.node_id for n in filled.get_nodes(["e", "c", "b"], filters=mf(f("lang", "en")))] == ["c", "e"]
    assert [n.node_id for n in filled.get_nodes()] == ["a", "b", "c", "d", "e"]
    assert filled.get_nodes([]) == []
    [n] = filled.get_nodes(["b"])
    assert n.get_content() == "text of b" and n.metadata == META["b"]


def test_clear(filled: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    filled.clear()
    assert not client.has_collection(name)
    filled.add(make_nodes()[:2])  # the next add creates the collection again
    assert client.count(name) == 2


def test_upsert_replaces(filled: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    n = TextNode(id_="a", text="new a", metadata={"lang": "it"}, embedding=[0.0, 0.0, 1.0])
    filled.add([n])
    assert client.count(name) == 5
    [got] = filled.get_nodes(["a"])
    assert got.get_content() == "new a" and got.metadata == {"lang": "it"}


def test_collection_created_on_first_add(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    store.add(make_nodes())
    info = client.describe_collection(name)
    assert (info.dim, info.metric, info.dynamic_attributes, info.fields) == (3, "cosine", True, {})
    # a value of another type for the same key is fine: nothing was declared
    store.add([TextNode(id_="z", text="z", metadata={"year": "unknown"}, embedding=[0.0, 1.0, 1.0])])
    assert store.get_nodes(["z"])[0].metadata == {"year": "unknown"}


def test_declared_fields_opt_in(client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(name, client=client, metadata_fields={"year": "int"})
    store.add([TextNode(id_="a", text="a", metadata={"year": 2020}, embedding=[1.0, 0.0])])
    assert client.describe_collection(name).fields == {"year": "int"}
    with pytest.raises(QuiverInvalidArgument):
        store.add([TextNode(id_="b", text="b", metadata={"year": "x"}, embedding=[1.0, 0.0])])


def test_server_side_embedding(client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(name, client=client)
    store.add([TextNode(id_="cat", text="The cat sat on the mat and purred."),
               TextNode(id_="bank", text="The central bank raised interest rates again.")])
    info = client.describe_collection(name)
    assert info.embedding_model == "all-MiniLM-L6-v2" and info.dim == 384
    res = store.query(VectorStoreQuery(query_str="a kitten on a rug", similarity_top_k=1))
    assert res.ids == ["cat"]


def test_constructor(client: QuiverClient, server: Any, name: str) -> None:
    with pytest.raises(ValueError):
        QuiverVectorStore(name)
    with pytest.raises(TypeError):
        QuiverVectorStore(name, client="127.0.0.1:1")  # type: ignore[arg-type]
    s = QuiverVectorStore(name, address=server.address, timeout=30)
    assert isinstance(s.client, QuiverClient) and isinstance(s.aclient, AsyncQuiverClient)
    assert QuiverVectorStore.class_name() == "QuiverVectorStore" and s.stores_text


# ---------------------------------------------------------------------------------------------------------------------
# async
# ---------------------------------------------------------------------------------------------------------------------
async def test_async_methods(astore: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    assert (await astore.aquery(q())).ids == []  # no collection yet
    assert await astore.async_add(make_nodes()) == list(META)
    assert (await astore.aquery(q(k=2))).ids == ["a", "b"]
    assert (await astore.aquery(q(k=2, mode=VectorStoreQueryMode.MMR))).ids is not None
    assert [n.node_id for n in await astore.aget_nodes(["d", "a"])] == ["d", "a"]
    await astore.adelete("doc1")
    assert sorted(p.id for p in client.scroll(name)) == ["c", "d", "e"]
    await astore.adelete_nodes(["c"])
    await astore.adelete_nodes(filters=mf(f("lang", "de")))
    assert [p.id for p in client.scroll(name)] == ["e"]
    await astore.adelete_nodes()
    assert client.count(name) == 0
    await astore.aclear()
    assert not client.has_collection(name)


async def test_async_only_client(aclient: AsyncQuiverClient, client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(name, aclient=aclient)
    await store.async_add(make_nodes())
    assert (await store.aquery(q(mf(f("lang", "en")), k=2))).ids == ["a", "c"]
    with pytest.raises(RuntimeError, match="AsyncQuiverClient"):
        store.query(q())
    await store.aclear()


async def test_async_falls_back_to_threads(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    await store.async_add(make_nodes())  # no aclient: the sync methods run in a thread
    assert (await store.aquery(q(k=1))).ids == ["a"]
    assert [n.node_id for n in await store.aget_nodes(["b"])] == ["b"]
    await store.adelete("doc2")
    await store.adelete_nodes(["a"])
    assert sorted(p.id for p in client.scroll(name)) == ["b", "e"]
    await store.aclear()
    assert not client.has_collection(name)
