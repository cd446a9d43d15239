"""QuiverVectorStore beyond the standard suite: server-side embedding, metadata round trips, every filter operator,
MMR, relevance scores per metric, retrievers, deletes, constructors, the async-only mode."""
from __future__ import annotations

import datetime
import math
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from langchain_quiver import EXTRA_KEY, QuiverEmbeddings, QuiverVectorStore
from quiver_client import (AsyncQuiverClient, F, LocalServer, QuiverClient, QuiverInvalidArgument,
                           QuiverResourceExhausted)


class TableEmbeddings(Embeddings):
    """Fixed vectors per text: deterministic geometry for MMR and score tests."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(self.table[t]) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.table[text])


@pytest.fixture
def store(client: QuiverClient, name: str) -> Iterator[QuiverVectorStore]:
    """A store with client-side 3-d embeddings: the text "x,y,z" embeds to [x, y, z]."""
    s = QuiverVectorStore(client, name, _CoordEmbeddings())
    yield s
    client.drop_collection(name, missing_ok=True)


class _CoordEmbeddings(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in text.split(",")]


def ids_of(docs: list[Document]) -> list[str]:
    return [d.id for d in docs if d.id is not None]


# ---------------------------------------------------------------------------------------------------------------------
# server-side embedding
# ---------------------------------------------------------------------------------------------------------------------
PASSAGES = {
    "cat": "The cat sat on the mat and purred in the sun.",
    "stocks": "Stock markets fell sharply after the central bank raised interest rates.",
    "football": "The striker scored twice and the team won the championship final.",
    "volcano": "Lava poured from the volcano as the eruption forced villages to evacuate.",
}


def test_server_side_embedding(client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name)  # embedding=None: the server embeds
    assert store.server_embeds
    ids = store.add_texts(list(PASSAGES.values()), metadatas=[{"topic": k} for k in PASSAGES], ids=list(PASSAGES))
    assert ids == list(PASSAGES)
    info = client.describe_collection(name)
    assert info.embedding_model == "all-MiniLM-L6-v2" and info.dim == 384 and info.metric == "cosine"
    assert info.dynamic_attributes and info.fields == {}
    assert ids_of(store.similarity_search("a kitten resting on a rug", k=1)) == ["cat"]
    assert ids_of(store.similarity_search("interest rates and the economy", k=1)) == ["stocks"]
    assert ids_of(store.similarity_search("a kitten resting on a rug", k=4, filter={"topic": {"$ne": "cat"}})) \
        != ["cat"]
    scored = store.similarity_search_with_relevance_scores("soccer match results", k=4)
    assert scored[0][0].id == "football"
    assert all(0.0 <= s <= 1.0 for _, s in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    # MMR embeds the query on the server too
    assert ids_of(store.max_marginal_relevance_search("eruption of lava", k=2, fetch_k=4))[0] == "volcano"
    # the embeddings property is the server's model
    emb = store.embeddings
    assert isinstance(emb, QuiverEmbeddings)
    v = emb.embed_query("a kitten resting on a rug")
    assert len(v) == 384 and abs(np.linalg.norm(v) - 1.0) < 1e-3
    assert ids_of(store.similarity_search_by_vector(v, k=1)) == ["cat"]


async def test_server_side_embedding_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, async_client=aclient)
    await store.aadd_texts(list(PASSAGES.values()), metadatas=[{"topic": k} for k in PASSAGES], ids=list(PASSAGES))
    assert ids_of(await store.asimilarity_search("a kitten resting on a rug", k=1)) == ["cat"]
    docs = await store.amax_marginal_relevance_search("eruption of lava", k=2, fetch_k=4)
    assert ids_of(docs)[0] == "volcano"


def test_server_embedding_into_existing_collection(client: QuiverClient, name: str) -> None:
    client.create_collection(name, embedding_model="all-MiniLM-L6-v2", fields={"topic": "keyword"},
                             dynamic_attributes=True)
    store = QuiverVectorStore(client, name)
    store.add_texts(list(PASSAGES.values()), metadatas=[{"topic": k, "n": i} for i, k in enumerate(PASSAGES)])
    assert [d.metadata["topic"] for d in store.similarity_search("lava", k=1)] == ["volcano"]


# ---------------------------------------------------------------------------------------------------------------------
# collection creation and metadata
# ---------------------------------------------------------------------------------------------------------------------
def test_first_write_creates_collection(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    assert store.similarity_search("1,0,0", k=3) == []
    assert store.get_by_ids(["a"]) == []
    assert store.delete(["a"]) is True
    assert not client.has_collection(name)
    store.add_texts(["1,0,0"], metadatas=[{"year": 2020}], ids=["a"])
    info = client.describe_collection(name)
    assert (info.dim, info.metric, info.fields, info.dynamic_attributes) == (3, "cosine", {}, True)
    assert info.embedding_model is None
    # later documents may give another type of value for the same key: nothing was declared from the first
    store.add_texts(["0,1,0", "0,0,1"], metadatas=[{"year": "unknown"}, {"year": 2021.5, "new_key": True}],
                    ids=["b", "c"])
    assert [d.metadata for d in store.get_by_ids(["a", "b", "c"])] == [
        {"year": 2020}, {"year": "unknown"}, {"year": 2021.5, "new_key": True}]


def test_declared_metadata_fields_are_opt_in(client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, _CoordEmbeddings(), metadata_fields={"year": "int"})
    store.add_texts(["1,0,0"], metadatas=[{"year": 2020, "other": "x"}], ids=["a"])
    assert client.describe_collection(name).fields == {"year": "int"}
    with pytest.raises(QuiverInvalidArgument):
        store.add_texts(["0,1,0"], metadatas=[{"year": "twenty"}], ids=["b"])
    assert ids_of(store.similarity_search("1,0,0", k=5, filter={"year": {"$gte": 2000}})) == ["a"]


def test_metadata_round_trip(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    long_key = "k" * 65
    meta: dict[str, Any] = {
        "int": 7, "neg": -(1 << 63), "float": 2.5, "whole_float": 3.0, "str": "héllo", "empty_str": "",
        "true": True, "false": False, "tags": ["a", "b"], "no_tags": [], "key with spaces/é": "v",
        # not storable as typed attributes: JSON-encoded into EXTRA_KEY, still round-trip
        "none": None, "nested": {"a": [1, {"b": None}]}, "ints": [1, 2, 3], "mixed": ["a", 1], "big": 1 << 70,
        "nan": math.nan, "inf": -math.inf, "nul": "a\x00b", long_key: 1, "": "empty key", EXTRA_KEY: "reserved",
    }
    store.add_texts(["1,0,0"], metadatas=[meta], ids=["a"])
    [doc] = store.get_by_ids(["a"])
    got = dict(doc.metadata)
    assert math.isnan(got.pop("nan")) and math.isnan(meta.pop("nan"))
    assert got == meta
    for k, v in meta.items():  # types kept exactly (3.0 stays a float, True stays a bool)
        assert type(got[k]) is type(v), k
    [hit] = store.similarity_search("1,0,0", k=1)
    assert hit.metadata.keys() == doc.metadata.keys()
    # storage: typed attributes for the storable values, one JSON attribute for the rest
    [p] = client.get(name, ["a"])
    assert p.attributes["int"] == 7 and p.attributes["tags"] == ["a", "b"] and p.attributes["true"] is True
    assert "none" not in p.attributes and isinstance(p.attributes[EXTRA_KEY], str)
    # tuples are stored as keyword lists and come back as lists
    store.add_texts(["0,1,0"], metadatas=[{"t": ("x", "y")}], ids=["b"])
    assert store.get_by_ids(["b"])[0].metadata == {"t": ["x", "y"]}


def test_metadata_not_json_encodable(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    with pytest.raises(ValueError, match="'when'"):
        store.add_texts(["1,0,0"], metadatas=[{"ok": 1, "when": datetime.date(2024, 1, 1)}])
    with pytest.raises(ValueError, match="keys must be str"):
        store.add_texts(["1,0,0"], metadatas=[{1: "x"}])  # type: ignore[dict-item]
    assert not client.has_collection(name)  # refused before anything was sent


def test_add_texts_arguments(store: QuiverVectorStore) -> None:
    with pytest.raises(ValueError, match="metadatas"):
        store.add_texts(["1,0,0", "0,1,0"], metadatas=[{}])
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["1,0,0", "0,1,0"], ids=["a"])
    ids = store.add_texts(["1,0,0", "0,1,0"], ids=["a", None])  # type: ignore[list-item]
    assert ids[0] == "a" and len(ids[1]) == 36
    docs = [Document(page_content="0,0,1", metadata={"n": 1}), Document(page_content="1,1,0", id="given")]
    ids2 = store.add_documents(docs)
    assert ids2[1] == "given" and len(ids2[0]) == 36
    assert docs[0].id is None  # the documents are not mutated
    assert len(store.add_texts([f"{i},1,1" for i in range(1, 8)], batch_size=3)) == 7
    assert len(store.get_by_ids(ids + ids2)) == 4


def test_collection_dropped_behind_the_store(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    store.add_texts(["1,0,0"], ids=["a"])
    client.drop_collection(name)
    store.add_texts(["0,1,0"], ids=["b"])  # created again
    assert ids_of(store.similarity_search("0,1,0", k=5)) == ["b"]


# ---------------------------------------------------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------------------------------------------------
FILTER_DOCS = {
    "a": {"year": 2019, "lang": "en", "score": 0.5, "draft": False, "tags": ["x", "y"]},
    "b": {"year": 2020, "lang": "fr", "score": 1.5, "draft": True, "tags": ["y"]},
    "c": {"year": 2021, "lang": "en", "score": 2.5, "draft": False, "tags": []},
    "d": {"year": 2022.0, "lang": "de", "draft": True},   # no score, no tags; a float year
    "e": {"lang": "en", "score": 4, "tags": ["z"]},        # no year, no draft
}

FILTER_CASES: list[tuple[Any, set[str]]] = [
    ({"lang": "en"}, {"a", "c", "e"}),
    ({"lang": {"$eq": "fr"}}, {"b"}),
    ({"lang": {"$ne": "en"}}, {"b", "d"}),
    ({"year": 2022}, {"d"}),                                   # numbers compare as numbers
    ({"year": {"$ne": 2019}}, {"b", "c", "d", "e"}),           # a point without the key passes $ne
    ({"year": {"$gt": 2020}}, {"c", "d"}),
    ({"year": {"$gte": 2020}}, {"b", "c", "d"}),
    ({"year": {"$lt": 2020}}, {"a"}),
    ({"year": {"$lte": 2020}}, {"a", "b"}),
    ({"year": {"$gt": 2019, "$lt": 2022}}, {"b", "c"}),
    ({"year": {"$between": [2020, 2021]}}, {"b", "c"}),
    ({"score": {"$gte": 1.5, "$lte": 4}}, {"b", "c", "e"}),
    ({"lang": {"$in": ["fr", "de"]}}, {"b", "d"}),
    ({"lang": {"$nin": ["fr", "de"]}}, {"a", "c", "e"}),
    ({"year": {"$in": [2019, 2022]}}, {"a", "d"}),
    ({"year": {"$nin": [2019, 2022]}}, {"b", "c", "e"}),
    ({"draft": True}, {"b", "d"}),
    ({"draft": {"$ne": True}}, {"a", "c", "e"}),
    ({"tags": "y"}, {"a", "b"}),                               # any element of a list
    ({"tags": {"$in": ["x", "z"]}}, {"a", "e"}),
    ({"tags": {"$nin": ["y"]}}, {"c", "d", "e"}),
    ({"lang": "en", "draft": False}, {"a", "c"}),              # several keys: AND
    ({"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}, {"c"}),
    ({"$or": [{"lang": "fr"}, {"score": {"$gt": 3}}]}, {"b", "e"}),
    ({"$not": {"lang": "en"}}, {"b", "d"}),
    ({"$not": {"$or": [{"lang": "en"}, {"draft": True}]}}, set()),
    ({"$or": [{"$and": [{"lang": "en"}, {"$not": {"tags": "x"}}]}, {"year": {"$in": [2020]}}]}, {"b", "c", "e"}),
    ({"$and": [{"$or": [{"lang": "de"}, {"lang": "fr"}]}, {"$not": {"year": {"$lt": 2021}}}]}, {"d"}),
    ({"lang": "en", "$or": [{"tags": "z"}, {"year": 2019}]}, {"a", "e"}),
    ({}, {"a", "b", "c", "d", "e"}),
    (None, {"a", "b", "c", "d", "e"}),
    (F.eq("lang", "en") & ~F.eq("draft", False), {"e"}),     # a quiver_client Filter as it is
    ({"missing_key": "x"}, set()),
    ({"missing_key": {"$ne": "x"}}, {"a", "b", "c", "d", "e"}),
    ({"lang": 1}, set()),                                      # a number never equals a keyword
    ({"draft": 1}, set()),                                     # nor a boolean
]


@pytest.fixture
def filter_store(store: QuiverVectorStore) -> QuiverVectorStore:
    ids = list(FILTER_DOCS)
    store.add_texts([f"1,{i},0" for i in range(len(ids))], metadatas=list(FILTER_DOCS.values()), ids=ids)
    return store


@pytest.mark.parametrize("flt,expected", FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES])
def test_filter(filter_store: QuiverVectorStore, flt: Any, expected: set[str]) -> None:
    assert set(ids_of(filter_store.similarity_search("1,0,0", k=10, filter=flt))) == expected
    assert set(ids_of(filter_store.similarity_search_by_vector([1.0, 0.0, 0.0], k=10, filter=flt))) == expected
    assert set(ids_of(filter_store.max_marginal_relevance_search("1,0,0", k=10, fetch_k=10, filter=flt))) == expected


async def test_filter_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, _CoordEmbeddings(), async_client=aclient)
    ids = list(FILTER_DOCS)
    await store.aadd_texts([f"1,{i},0" for i in range(len(ids))], metadatas=list(FILTER_DOCS.values()), ids=ids)
    for flt, expected in FILTER_CASES:
        assert set(ids_of(await store.asimilarity_search("1,0,0", k=10, filter=flt))) == expected, flt


@pytest.mark.parametrize("flt", [
    {"$foo": []}, {"a": {"$like": "x"}}, {"$and": []}, {"$or": {}}, {"a": {"$in": []}}, {"a": {"$in": "x"}},
    {"a": ["x"]}, {"a": None}, {"a": {}}, {"a": {"$gt": "x"}}, {"a": {"$gt": 1, "$gte": 2}}, {"$not": {}},
    {"a": {"$between": [1]}}, "lang = 'en'",
])
def test_malformed_filters(filter_store: QuiverVectorStore, flt: Any) -> None:
    with pytest.raises(ValueError):
        filter_store.similarity_search("1,0,0", k=3, filter=flt)


def test_unknown_search_argument(filter_store: QuiverVectorStore) -> None:
    with pytest.raises(TypeError, match="where"):
        filter_store.similarity_search("1,0,0", k=3, where={"lang": "en"})
    assert len(filter_store.similarity_search("1,0,0", k=3, ef=100)) == 3
    assert len(filter_store.similarity_search("1,0,0", k=3, exact=True)) == 3


def test_group_by_source(store: QuiverVectorStore) -> None:
    """group_by on a metadata key: the best passage of each of the k best sources (k groups), or more per source with
    group_size; documents whose key is not a string are left out."""
    texts = ["1,0,0", "1,0.01,0", "1,0.1,0", "1,0.11,0", "1,0.3,0", "1,0.31,0", "1,0.05,0"]
    sources: list[Any] = ["s1", "s1", "s2", "s2", "s3", "s3", 7]
    ids = [f"p{i}" for i in range(len(texts))]
    store.add_texts(texts, metadatas=[{"source": s} for s in sources], ids=ids)
    assert ids_of(store.similarity_search("1,0,0", k=3)) == ["p0", "p1", "p6"]
    docs = store.similarity_search("1,0,0", k=2, group_by="source")
    assert ids_of(docs) == ["p0", "p2"] and [d.metadata["source"] for d in docs] == ["s1", "s2"]
    assert ids_of(store.similarity_search("1,0,0", k=2, group_by="source", group_size=2)) == ["p0", "p1", "p2", "p3"]
    scored = store.similarity_search_with_score("1,0,0", k=3, group_by="source")
    assert [d.id for d, _ in scored] == ["p0", "p2", "p4"]


# ---------------------------------------------------------------------------------------------------------------------
# MMR
# ---------------------------------------------------------------------------------------------------------------------
MMR_TABLE = {"q": [1.0, 0.0, 0.0], "a": [0.9, 0.1, 0.0], "a2": [0.9, 0.11, 0.0], "b": [0.6, 0.0, 0.8]}


def _mmr_store(client: QuiverClient, name: str, aclient: AsyncQuiverClient | None = None) -> QuiverVectorStore:
    store = QuiverVectorStore(client, name, TableEmbeddings(MMR_TABLE), async_client=aclient)
    store.add_texts(["a", "a2", "b"], ids=["a", "a2", "b"], metadatas=[{"g": 1}, {"g": 1}, {"g": 2}])
    return store


def test_mmr(client: QuiverClient, name: str) -> None:
    store = _mmr_store(client, name)
    assert ids_of(store.similarity_search("q", k=2)) == ["a", "a2"]           # the two near duplicates
    assert ids_of(store.max_marginal_relevance_search("q", k=2, fetch_k=3, lambda_mult=0.25)) == ["a", "b"]
    assert ids_of(store.max_marginal_relevance_search("q", k=2, fetch_k=3, lambda_mult=1.0)) == ["a", "a2"]
    assert ids_of(store.max_marginal_relevance_search_by_vector([1.0, 0, 0], k=3, fetch_k=3, lambda_mult=0.25)) \
        == ["a", "b", "a2"]
    assert ids_of(store.max_marginal_relevance_search("q", k=2, fetch_k=3, filter={"g": 1})) == ["a", "a2"]
    docs = store.max_marginal_relevance_search("q", k=1, fetch_k=3)
    assert docs == [Document(id="a", page_content="a", metadata={"g": 1})]


async def test_mmr_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = _mmr_store(client, name, aclient)
    got = await store.amax_marginal_relevance_search("q", k=2, fetch_k=3, lambda_mult=0.25)
    assert ids_of(got) == ["a", "b"]
    got = await store.amax_marginal_relevance_search_by_vector([1.0, 0, 0], k=2, fetch_k=3, lambda_mult=0.25)
    assert ids_of(got) == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------------------------------
SCORE_TABLE = {"x": [1.0, 0.0], "diag": [math.sqrt(0.5), math.sqrt(0.5)], "y": [0.0, 1.0], "-x": [-1.0, 0.0]}


@pytest.mark.parametrize("metric,expected", [
    # relevance of x, diag, y, -x to the query x: for unit vectors every metric gives max(0, cosine)
    ("cosine", [1.0, math.sqrt(0.5), 0.0, 0.0]),
    ("l2", [1.0, math.sqrt(0.5), 0.0, 0.0]),
    ("ip", [1.0, math.sqrt(0.5), 0.0, 0.0]),
])
def test_relevance_scores(client: QuiverClient, name: str, metric: str, expected: list[float]) -> None:
    client.create_collection(name, dim=2, metric=metric, dynamic_attributes=True)
    store = QuiverVectorStore(client, name, TableEmbeddings(SCORE_TABLE))
    store.add_texts(list(SCORE_TABLE), ids=list(SCORE_TABLE))
    raw = store.similarity_search_with_score("x", k=4)
    assert [d.id for d, _ in raw] == ["x", "diag", "y", "-x"]
    if metric == "l2":  # squared distances, ascending
        assert [s for _, s in raw] == pytest.approx([0.0, 2 - 2 * math.sqrt(0.5), 2.0, 4.0], abs=1e-5)
    else:
        assert [s for _, s in raw] == pytest.approx([1.0, math.sqrt(0.5), 0.0, -1.0], abs=1e-5)
    rel = store.similarity_search_with_relevance_scores("x", k=4)
    assert [s for _, s in rel] == pytest.approx(expected, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in rel)
    kept = store.similarity_search_with_relevance_scores("x", k=4, score_threshold=0.5)
    assert [d.id for d, _ in kept] == ["x", "diag"]


def test_relevance_score_override(client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, TableEmbeddings(SCORE_TABLE), relevance_score_fn=lambda s: (s + 1) / 2)
    store.add_texts(list(SCORE_TABLE), ids=list(SCORE_TABLE))
    assert [s for _, s in store.similarity_search_with_relevance_scores("x", k=4)] == \
        pytest.approx([1.0, (1 + math.sqrt(0.5)) / 2, 0.5, 0.0], abs=1e-5)


async def test_relevance_scores_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    client.create_collection(name, dim=2, metric="l2", dynamic_attributes=True)
    store = QuiverVectorStore(aclient, name, TableEmbeddings(SCORE_TABLE))  # async-only store
    await store.aadd_texts(list(SCORE_TABLE), ids=list(SCORE_TABLE))
    rel = await store.asimilarity_search_with_relevance_scores("x", k=4)
    assert [s for _, s in rel] == pytest.approx([1.0, math.sqrt(0.5), 0.0, 0.0], abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# retrievers
# ---------------------------------------------------------------------------------------------------------------------
def test_retriever(filter_store: QuiverVectorStore) -> None:
    r = filter_store.as_retriever(search_kwargs={"k": 2})
    assert ids_of(r.invoke("1,0,0")) == ["a", "b"]
    r = filter_store.as_retriever(search_kwargs={"k": 5, "filter": {"lang": "en"}})
    assert ids_of(r.invoke("1,0,0")) == ["a", "c", "e"]
    r = filter_store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5})
    assert len(r.invoke("1,0,0")) == 2
    r = filter_store.as_retriever(search_type="similarity_score_threshold",
                                  search_kwargs={"k": 5, "score_threshold": 0.7})
    assert ids_of(r.invoke("1,0,0")) == ["a", "b"]  # cosine of [1,0,0] with [1,i,0]: 1, 0.71, 0.45, ...


async def test_retriever_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, _CoordEmbeddings(), async_client=aclient)
    await store.aadd_texts(["1,0,0", "1,1,0", "0,0,1"], ids=["a", "b", "c"], metadatas=[{"n": i} for i in range(3)])
    assert ids_of(await store.as_retriever(search_kwargs={"k": 2}).ainvoke("1,0,0")) == ["a", "b"]
    r = store.as_retriever(search_kwargs={"k": 3, "filter": {"n": {"$gte": 1}}})
    assert ids_of(await r.ainvoke("1,0,0")) == ["b", "c"]


# ---------------------------------------------------------------------------------------------------------------------
# deletes, gets, constructors
# ---------------------------------------------------------------------------------------------------------------------
def test_delete(filter_store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    assert filter_store.delete([]) is True
    assert filter_store.delete(["a", "nope"]) is True
    assert client.count(name) == 4
    assert filter_store.delete(filter={"lang": "en"}) is True
    assert sorted(p.id for p in client.scroll(name)) == ["b", "d"]
    with pytest.raises(ValueError):
        filter_store.delete(["b"], filter={"lang": "fr"})
    assert filter_store.delete() is True  # None: every point; the collection stays
    assert client.count(name) == 0 and client.has_collection(name)
    filter_store.delete_collection()
    assert not client.has_collection(name)
    assert filter_store.delete(["x"]) is True and filter_store.delete() is True



def test_delete_by_filter_is_one_write(filter_store: QuiverVectorStore, client: QuiverClient, name: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """delete(filter=...) sends one Delete by filter; when the server refuses it as matching too many points
    (over 100,000), the store pages the matching ids and deletes those instead."""
    calls: list[dict[str, Any]] = []
    real = client.delete

    def spy(collection: str, ids: Any = None, *, filter: Any = None) -> int:
        calls.append({"ids": ids, "filter": filter})
        return real(collection, ids, filter=filter)

    monkeypatch.setattr(client, "delete", spy)
    assert filter_store.delete(filter={"lang": "en"}) is True
    assert len(calls) == 1 and calls[0]["ids"] is None and calls[0]["filter"] is not None
    assert sorted(p.id for p in client.scroll(name)) == ["b", "d"]

    def refuse(collection: str, ids: Any = None, *, filter: Any = None) -> int:
        if filter is not None:
            raise QuiverResourceExhausted("more than 100000 points match the filter: one delete changes at most "
                                          "100000", grpc.StatusCode.RESOURCE_EXHAUSTED, "Quiver/Delete")
        calls.append({"ids": ids, "filter": filter})
        return real(collection, ids)

    calls.clear()
    monkeypatch.setattr(client, "delete", refuse)
    assert filter_store.delete(filter={"lang": "fr"}) is True
    assert calls == [{"ids": ["b"], "filter": None}]
    assert sorted(p.id for p in client.scroll(name)) == ["d"]

async def test_delete_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = QuiverVectorStore(client, name, _CoordEmbeddings(), async_client=aclient)
    await store.aadd_texts(["1,0,0", "1,1,0", "0,0,1"], ids=["a", "b", "c"], metadatas=[{"n": i} for i in range(3)])
    assert await store.adelete(filter={"n": {"$gte": 2}})
    assert sorted(p.id for p in client.scroll(name)) == ["a", "b"]
    assert await store.adelete()
    assert client.count(name) == 0
    await store.adelete_collection()
    assert not client.has_collection(name)
    assert await store.adelete(["a"])


def test_get_by_ids(filter_store: QuiverVectorStore) -> None:
    docs = filter_store.get_by_ids(["c", "nope", "a"])
    assert ids_of(docs) == ["c", "a"]
    assert docs[1] == Document(id="a", page_content="1,0,0", metadata=FILTER_DOCS["a"])
    assert filter_store.get_by_ids([]) == []


def test_from_texts_and_documents(server: LocalServer, client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore.from_texts(["1,0,0", "0,1,0"], _CoordEmbeddings(), metadatas=[{"n": 1}, {"n": 2}],
                                         ids=["a", "b"], client=client, collection=name, metric="l2")
    assert client.describe_collection(name).metric == "l2"
    assert ids_of(store.similarity_search("0,1,0", k=1)) == ["b"]
    store2 = QuiverVectorStore.from_documents([Document(page_content="0,0,1", id="c", metadata={"n": 3})],
                                              _CoordEmbeddings(), address=server.address, collection=name)
    assert ids_of(store2.similarity_search("0,0,1", k=1)) == ["c"]
    assert store2.get_by_ids(["c"])[0].metadata == {"n": 3}
    with pytest.raises(ValueError, match="client"):
        QuiverVectorStore.from_texts(["x"], _CoordEmbeddings(), collection=name)
    store3 = QuiverVectorStore.from_texts([PASSAGES["cat"]], None, client=client, collection=name + "_srv")
    assert store3.server_embeds and ids_of(store3.similarity_search("kitten", k=1))
    client.drop_collection(name + "_srv")


async def test_afrom_texts(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    store = await QuiverVectorStore.afrom_texts(["1,0,0", "0,1,0"], _CoordEmbeddings(), ids=["a", "b"],
                                                client=client, async_client=aclient, collection=name)
    assert ids_of(await store.asimilarity_search("0,1,0", k=1)) == ["b"]
    docs = await store.aget_by_ids(["a"])
    assert docs == [Document(id="a", page_content="1,0,0", metadata={})]


async def test_async_only_store(aclient: AsyncQuiverClient, client: QuiverClient, name: str) -> None:
    store = QuiverVectorStore(aclient, name, _CoordEmbeddings())
    await store.aadd_texts(["1,0,0", "0,1,0"], ids=["a", "b"], metadatas=[{"n": 1}, {"n": 2}])
    assert ids_of(await store.asimilarity_search("1,0,0", k=2, filter={"n": {"$lte": 2}})) == ["a", "b"]
    assert [d for d, _ in await store.asimilarity_search_with_score("0,1,0", k=1)][0].id == "b"
    assert ids_of(await store.asimilarity_search_by_vector([0.0, 1.0, 0.0], k=1)) == ["b"]
    with pytest.raises(RuntimeError, match="AsyncQuiverClient"):
        store.similarity_search("1,0,0")
    await store.adelete(["a"])
    assert [p.id for p in client.scroll(name)] == ["b"]


def test_constructor_checks(client: QuiverClient) -> None:
    with pytest.raises(ValueError):
        QuiverVectorStore(None, "x")
    with pytest.raises(ValueError):
        QuiverVectorStore(client, "")
    with pytest.raises(TypeError):
        QuiverVectorStore("127.0.0.1:7700", "x")  # type: ignore[arg-type]
    assert "server-side embedding" in repr(QuiverVectorStore(client, "x"))


def test_quiver_embeddings(client: QuiverClient) -> None:
    emb = QuiverEmbeddings(client)
    vs = emb.embed_documents(["a cat", "a kitten", "stock markets"])
    assert len(vs) == 3 and all(len(v) == 384 for v in vs)
    sims = np.array(vs) @ np.array(vs).T
    assert sims[0, 1] > sims[0, 2]
    assert emb.embed_documents([]) == []
    assert emb.embed_query("a cat") == pytest.approx(vs[0], abs=1e-6)
    with pytest.raises(ValueError):
        QuiverEmbeddings()


async def test_quiver_embeddings_async(client: QuiverClient, aclient: AsyncQuiverClient) -> None:
    for emb in (QuiverEmbeddings(aclient), QuiverEmbeddings(client)):  # native, and in a thread
        v = await emb.aembed_query("a cat")
        assert len(v) == 384
        assert len(await emb.aembed_documents(["a", "b"])) == 2


def test_langchain_indexing_api(store: QuiverVectorStore, client: QuiverClient, name: str) -> None:
    """langchain_core.indexing.index (record manager): add_documents(ids=..., batch_size=...) and delete(ids)."""
    from langchain_core.indexing import InMemoryRecordManager, index

    rm = InMemoryRecordManager(namespace=name)
    rm.create_schema()
    docs = [Document(page_content="1,0,0", metadata={"source": "s1"}),
            Document(page_content="0,1,0", metadata={"source": "s2"})]
    r = index(docs, rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (r["num_added"], r["num_deleted"]) == (2, 0)
    r = index(docs[:1], rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (r["num_added"], r["num_skipped"], r["num_deleted"]) == (0, 1, 1)
    assert [d.page_content for d in store.similarity_search("0,1,0", k=5)] == ["1,0,0"]
    assert client.count(name) == 1


async def test_langchain_indexing_api_async(client: QuiverClient, aclient: AsyncQuiverClient, name: str) -> None:
    from langchain_core.indexing import InMemoryRecordManager, aindex

    store = QuiverVectorStore(client, name, _CoordEmbeddings(), async_client=aclient)
    rm = InMemoryRecordManager(namespace=name)
    await rm.acreate_schema()
    docs = [Document(page_content="1,0,0", metadata={"source": "s1"}),
            Document(page_content="0,1,0", metadata={"source": "s2"})]
    r = await aindex(docs, rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert r["num_added"] == 2
    r = await aindex(docs[1:], rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert r["num_deleted"] == 1
    assert client.count(name) == 1
