"""Every method of the client against a real quiverd, once through QuiverClient and once through AsyncQuiverClient
(behind a blocking facade, helpers.BlockingAsync), with the same test bodies."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest
from helpers import FIELDS, BlockingAsync, exact_l2_topk, make_points

import quiver_client as qc
from quiver_client import F, Hit, Hits, Point, QuiverClient


@pytest.fixture(params=["sync", "async"])
def anyclient(request: pytest.FixtureRequest, server: qc.LocalServer) -> Iterator[Any]:
    if request.param == "sync":
        c: Any = QuiverClient(server.address, timeout=60)
    else:
        c = BlockingAsync(server.address, timeout=60)
    yield c
    c.close()
    if isinstance(c, BlockingAsync):
        c.shutdown()


def test_collection_lifecycle(anyclient: Any, name: str) -> None:
    c = anyclient
    assert not c.has_collection(name)
    c.create_collection(name, dim=8, metric="l2", fields=FIELDS, index="flat")
    info = c.describe_collection(name)
    assert (info.name, info.dim, info.metric, info.live_rows, info.embedding_model) == (name, 8, "l2", 0, None)
    assert info.fields == {"lang": "keyword", "year": "int", "score": "float", "draft": "bool", "tags": "keywords"}
    assert info.index.kind == "flat"
    assert info.raw.name == name
    assert c.has_collection(name)
    assert name in [x.name for x in c.list_collections()]
    with pytest.raises(qc.QuiverAlreadyExists, match=f"collection '{name}' already exists"):
        c.create_collection(name, dim=8)
    c.create_collection(name, dim=8, exist_ok=True)  # no error, nothing changed
    assert c.describe_collection(name).metric == "l2"
    c.drop_collection(name)
    assert not c.has_collection(name)
    with pytest.raises(qc.QuiverNotFound):
        c.describe_collection(name)
    with pytest.raises(qc.QuiverNotFound):
        c.drop_collection(name)
    c.drop_collection(name, missing_ok=True)


@pytest.mark.parametrize("metric,index,want", [
    ("cosine", None, ("cosine", "hnsw", 16, 200, "none")),  # the server fills in its defaults
    ("ip", {"kind": "hnsw", "m": 8, "ef_construction": 64, "quantization": "sq8"}, ("ip", "hnsw", 8, 64, "sq8")),
    ("L2", qc.IndexConfig(kind="hnsw", m=12, quantization="pq", pq_m=4), ("l2", "hnsw", 12, 200, "pq")),
    ("euclidean", "flat", ("l2", "flat", 16, 200, "none")),
])
def test_create_options(anyclient: Any, name: str, metric: str, index: Any, want: tuple[Any, ...]) -> None:
    anyclient.create_collection(name, dim=16, metric=metric, index=index, fields={"n": int, "x": float})
    info = anyclient.describe_collection(name)
    assert (info.metric, info.index.kind, info.index.m, info.index.ef_construction, info.index.quantization) == want
    assert info.fields == {"n": "int", "x": "float"}
    assert info.shards in (0, 1)
    anyclient.drop_collection(name)


def test_create_bad_options(anyclient: Any, name: str) -> None:
    with pytest.raises(ValueError, match="metric"):
        anyclient.create_collection(name, dim=4, metric="manhattan")
    with pytest.raises(ValueError, match="unknown type"):
        anyclient.create_collection(name, dim=4, fields={"x": "complex"})
    with pytest.raises(ValueError, match="index kind"):
        anyclient.create_collection(name, dim=4, index="ivf")
    with pytest.raises(ValueError, match="unknown option"):
        anyclient.create_collection(name, dim=4, index={"kind": "hnsw", "M": 4})
    with pytest.raises(TypeError, match="unknown option 'dynamic_attributez'"):
        anyclient.create_collection(name, dim=4, dynamic_attributez=True)
    assert not anyclient.has_collection(name)


def test_extra_request_fields() -> None:
    """**extra sets CreateCollectionRequest fields by name: those newer than the method's signature."""
    from quiver_client import _core as core
    from quiver_client._proto.quiver.v1 import quiver_pb2 as pb

    op = core.op_create_collection("c", 4, "l2", None, None, None, 0, False,
                                   {"shards": 3, "index": {"kind": "INDEX_KIND_FLAT", "m": 4}})
    req = next(op).request
    assert req.shards == 3 and req.index.kind == pb.INDEX_KIND_FLAT and req.index.m == 4
    if "dynamic_attributes" in pb.CreateCollectionRequest.DESCRIPTOR.fields_by_name:
        assert next(core.op_create_collection("c", 4, "l2", None, None, None, 0, False,
                                              {"dynamic_attributes": True})).request.dynamic_attributes
    with pytest.raises(ValueError, match="option index"):
        next(core.op_create_collection("c", 4, "l2", None, None, None, 0, False, {"index": {"kind": "nope"}}))


def test_upsert_get_delete_roundtrip(anyclient: Any, name: str) -> None:
    c = anyclient
    c.create_collection(name, dim=3, metric="l2", fields=FIELDS, index="flat")
    attrs = {"lang": "en", "year": 2024, "score": 0.5, "draft": True, "tags": ["x", "y"]}
    res = c.upsert(name, [
        {"id": "a", "vector": [1, 2, 3], "attributes": attrs, "text": "alpha"},
        Point(id="b", vector=np.array([4.0, 5.0, 6.0], dtype=np.float64), attributes={"year": -(2 ** 63)}),
        {"id": "c", "vector": np.arange(3, dtype=np.float32)},
        Point(id="d", vector=(np.float32(0.5), 1, 2.5), attributes={"score": 3, "lang": np.str_("de")}),
    ])
    assert (res.count, res.requests) == (4, 1) and res.seq > 0
    got = c.get(name, ["c", "zz", "a", "b", "d"], with_vectors=True)
    assert [p.id for p in got] == ["c", "a", "b", "d"]  # request order, absent id left out
    a = got[1]
    assert a.attributes == attrs and a.text == "alpha"
    assert [type(a.attributes[k]) for k in ("lang", "year", "score", "draft", "tags")] == [str, int, float, bool, list]
    assert isinstance(a.vector, np.ndarray) and a.vector.dtype == np.float32
    np.testing.assert_array_equal(a.vector, [1, 2, 3])
    np.testing.assert_array_equal(got[0].vector, [0, 1, 2])
    assert got[2].attributes == {"year": -(2 ** 63)} and got[2].text is None
    assert got[3].attributes == {"score": 3.0, "lang": "de"} and isinstance(got[3].attributes["score"], float)
    no_vec = c.get(name, "a")  # one id as a str
    assert [p.id for p in no_vec] == ["a"] and no_vec[0].vector is None
    # replace by id
    c.upsert(name, [{"id": "a", "vector": [0, 0, 0]}])
    a2 = c.get(name, ["a"], with_vectors=True)[0]
    assert a2.attributes == {} and a2.text is None
    np.testing.assert_array_equal(a2.vector, [0, 0, 0])
    assert c.count(name) == 4
    assert c.delete(name, ["a", "nope", "b"]) == 2
    assert c.delete(name, "a") == 0
    assert c.count(name) == 2
    assert c.upsert(name, []).count == 0
    c.drop_collection(name)


def test_search(anyclient: Any, name: str) -> None:
    c = anyclient
    pts, vecs = make_points(400, 16, seed=3)
    ids = [p["id"] for p in pts]
    c.create_collection(name, dim=16, metric="l2", fields=FIELDS, index="flat")
    c.upsert(name, pts)
    rng = np.random.default_rng(9)
    for _ in range(3):
        q = rng.standard_normal(16).astype(np.float32)
        hits = c.search(name, q, k=10)
        assert isinstance(hits, Hits) and all(isinstance(h, Hit) for h in hits)
        assert [h.id for h in hits] == exact_l2_topk(vecs, ids, q, 10)
        want = ((vecs[ids.index(hits[0].id)].astype(np.float64) - q) ** 2).sum()
        assert hits[0].score == pytest.approx(want, rel=1e-4)
        assert hits[0].attributes == pts[ids.index(hits[0].id)]["attributes"]
        assert hits[0].text == pts[ids.index(hits[0].id)]["text"] and hits[0].vector is None
        assert not hits.partial and hits.missing_shards == []
        # list input, ef / exact / rerank, no attributes / text, vectors
        h2 = c.search(name, vector=q.tolist(), k=5, ef=100, exact=True, with_attributes=False, with_text=False,
                      with_vectors=True)
        assert [h.id for h in h2] == [h.id for h in hits[:5]]
        assert h2[0].attributes == {} and h2[0].text is None
        np.testing.assert_allclose(h2[0].vector, vecs[ids.index(h2[0].id)], rtol=1e-6)
        # with a filter
        hf = c.search(name, q, k=7, filter=F.eq("lang", "de"))
        de = {i for i, p in enumerate(pts) if p["attributes"]["lang"] == "de"}
        assert [h.id for h in hf] == exact_l2_topk(vecs, ids, q, 7, keep=de.__contains__)
    assert len(c.search(name, vecs[0], k=1000)) == 400
    with pytest.raises(ValueError, match="exactly one of vector and text"):
        c.search(name, k=3)
    with pytest.raises(ValueError, match="exactly one of vector and text"):
        c.search(name, vecs[0], text="x")
    c.drop_collection(name)


def test_search_grouped(anyclient: Any, name: str) -> None:
    """group_by: the k best groups' hits, group_size per group, the value in hit.group (sync and async alike)."""
    c = anyclient
    pts, vecs = make_points(400, 8, seed=12)
    ids = [p["id"] for p in pts]
    c.create_collection(name, dim=8, metric="l2", fields=FIELDS, index="flat")
    c.upsert(name, pts)
    q = np.random.default_rng(13).standard_normal(8).astype(np.float32)
    order = exact_l2_topk(vecs, ids, q, 400)
    want, seen = [], {}
    for i in order:  # the reference: 3 groups (langs), 2 hits each, best first
        g = pts[ids.index(i)]["attributes"]["lang"]
        if g in seen or len(seen) < 3:
            seen.setdefault(g, 0)
            if seen[g] < 2:
                seen[g] += 1
                want.append((i, g))
    hits = c.search(name, q, k=3, group_by="lang", group_size=2)
    assert [(h.id, h.group) for h in hits] == want
    one = c.search(name, q, k=2, group_by="lang")
    assert [h.group for h in one] == [g for _, g in want[:1]] + [g for _, g in want if g != want[0][1]][:1]
    batch = c.search_batch(name, [q, q], k=3, group_by="lang", group_size=2)
    assert [[(h.id, h.group) for h in hs] for hs in batch] == [want, want]
    assert c.search(name, q, k=3)[0].group is None
    c.drop_collection(name)


def test_search_batch(anyclient: Any, name: str) -> None:
    c = anyclient
    pts, vecs = make_points(300, 8, seed=4)
    c.create_collection(name, dim=8, metric="l2", fields=FIELDS, index="flat")
    c.upsert(name, pts)
    qs = np.random.default_rng(5).standard_normal((6, 8)).astype(np.float32)
    single = [[h.id for h in c.search(name, q, k=4, filter={"draft": False})] for q in qs]
    batch = c.search_batch(name, qs, k=4, filter={"draft": False})
    assert [[h.id for h in hs] for hs in batch] == single
    assert all(isinstance(hs, Hits) for hs in batch)
    batch2 = c.search_batch(name, [list(map(float, q)) for q in qs[:2]], k=4, filter={"draft": False},
                            with_vectors=True, with_attributes=False)
    assert [[h.id for h in hs] for hs in batch2] == single[:2]
    assert batch2[0][0].vector is not None and batch2[0][0].attributes == {}
    assert c.search_batch(name, np.zeros((0, 8), np.float32), k=3) == []
    with pytest.raises(ValueError, match="exactly one of vectors and texts"):
        c.search_batch(name, k=3)
    c.drop_collection(name)


def test_scroll(anyclient: Any, name: str) -> None:
    c = anyclient
    pts, vecs = make_points(2500, 4, seed=6)
    c.create_collection(name, dim=4, metric="l2", fields=FIELDS, index="flat")
    c.upsert(name, pts)
    got = list(c.scroll(name, page_size=300))
    assert [p.id for p in got] == sorted(p["id"] for p in pts)  # every point once, in id order
    assert got[0].vector is None and got[0].attributes == pts[0]["attributes"] and got[0].text == pts[0]["text"]
    limited = list(c.scroll(name, page_size=300, limit=1000, with_vectors=True))
    assert [p.id for p in limited] == [p["id"] for p in pts[:1000]]
    np.testing.assert_array_equal(limited[7].vector, vecs[7])
    en = list(c.scroll(name, filter={"lang": "en"}, page_size=99))
    assert [p.id for p in en] == [p["id"] for p in pts if p["attributes"]["lang"] == "en"]
    assert list(c.scroll(name, filter=F.eq("lang", "xx"))) == []
    # manual pages
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = c.scroll_page(name, page_size=1000, cursor=cursor)
        seen += [p.id for p in page]
        pages += 1
        if cursor is None:
            break
    assert pages == 3 and seen == [p.id for p in got]
    with pytest.raises(ValueError, match="page_size"):
        list(c.scroll(name, page_size=0))
    c.drop_collection(name)


def test_embed_and_text_collection(anyclient: Any, name: str) -> None:
    c = anyclient
    e = c.embed(["The cat sat on the mat.", "Stock markets fell sharply."])
    assert e.shape == (2, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-4)
    assert c.embed("one text").shape == (1, 384)
    assert c.embed([]).shape == (0, 0)
    c.create_collection(name, embedding_model="all-MiniLM-L6-v2", fields={"lang": "keyword"})
    info = c.describe_collection(name)
    assert (info.dim, info.metric, info.embedding_model) == (384, "cosine", "all-MiniLM-L6-v2")
    docs = ["The cat sat on the mat.", "Stock markets fell sharply on Monday.", "A recipe for tomato soup.",
            "The football match ended in a draw."]
    c.upsert(name, [{"id": f"d{i}", "text": t, "attributes": {"lang": "en"}} for i, t in enumerate(docs)])
    hits = c.search(name, text="a feline resting on a rug", k=2)
    assert hits[0].id == "d0" and hits[0].text == docs[0] and hits[0].attributes == {"lang": "en"}
    # search by text == search by the embedded vector
    qv = c.embed("a feline resting on a rug")[0]
    by_vec = c.search(name, vector=qv, k=4)
    assert [h.id for h in by_vec] == [h.id for h in c.search(name, text="a feline resting on a rug", k=4)]
    # text + vector: the client's vector is kept (cosine: stored unit length), the text stored
    v = np.zeros(384, np.float32)
    v[0] = 2.0
    c.upsert(name, [Point(id="mine", vector=v, text="some text about soup")])
    p = c.get(name, ["mine"], with_vectors=True)[0]
    assert p.text == "some text about soup" and p.vector[0] == pytest.approx(1.0) and abs(p.vector[1:]).max() == 0
    # texts for search_batch are embedded first
    tb = c.search_batch(name, texts=["a feline resting on a rug", "soup"], k=1)
    assert tb[0][0].id == "d0" and tb[1][0].id in ("d2", "mine")
    c.drop_collection(name)


def test_admin(anyclient: Any, name: str) -> None:
    c = anyclient
    h = c.health()
    assert h.serving and h.status == "serving" and h.role == "standalone" and h.version and h.reason == ""
    c.create_collection(name, dim=4, metric="l2")
    for r in range(3):
        c.upsert(name, [{"id": f"r{r}-{i}", "vector": [i, r, 0, 1]} for i in range(50)])
        assert c.flush(name) == 1
    assert c.flush(name) == 0
    info = c.describe_collection(name)
    assert sum(s.rows for s in info.segments if s.state == "sealed") == 150
    st = c.stats()
    assert name in [x.name for x in st.collections] and st.uptime_seconds >= 0 and st.simd
    job = c.compact(name)
    assert isinstance(job, qc.CompactResult) and job.input_segments >= 2 and job.job_id > 0
    with pytest.raises(qc.QuiverNotFound):
        c.compact("no_such_collection")
    assert c.count(name) == 150
    c.drop_collection(name)


def test_close(anyclient: Any) -> None:
    anyclient.health()
    anyclient.close()
    anyclient.close()  # idempotent
    with pytest.raises(qc.QuiverError, match="closed"):
        anyclient.health()
    # the fixture closes it once more: that must be a no-op as well


def test_context_manager(server: qc.LocalServer) -> None:
    with QuiverClient(server.address) as c:
        assert c.health().serving
    with pytest.raises(qc.QuiverError):
        c.health()


def test_update_attributes_and_delete_by_filter(anyclient: Any, name: str) -> None:
    c = anyclient
    c.create_collection(name, dim=2, metric="l2", fields=FIELDS, index="flat", dynamic_attributes=True)
    c.upsert(name, [{"id": f"p{i}", "vector": [i, 1], "text": f"t{i}",
                     "attributes": {"lang": "en" if i % 2 else "de", "year": 2000 + i}} for i in range(10)])
    assert c.update_attributes(name, ["p1", "p2", "zz"], set={"year": 1990, "note": "x"}, unset=["lang"]) == 2
    p1 = c.get(name, ["p1"], with_vectors=True)[0]
    assert p1.attributes == {"year": 1990, "note": "x"} and p1.text == "t1"
    np.testing.assert_array_equal(p1.vector, [1, 1])
    assert c.update_attributes(name, filter=F.eq("lang", "de"), set={"flag": True}) == 4  # p0 p4 p6 p8 (p2 lost lang)
    assert c.count(name, F.eq("flag", True)) == 4
    assert c.delete(name, filter={"flag": True}) == 4
    assert c.count(name) == 6
    with pytest.raises(ValueError, match="nothing to change"):
        c.update_attributes(name, ["p1"])
    with pytest.raises(ValueError, match="ids or a filter"):
        c.update_attributes(name, ["p1"], filter=F.eq("lang", "en"), set={"year": 1})
    with pytest.raises(qc.QuiverInvalidArgument, match="year"):
        c.update_attributes(name, ["p1"], set={"year": "nope"})
