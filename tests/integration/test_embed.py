"""Built-in text embedding through the API: Embed parity with the reference model's vectors, text upserts and text
search on a collection with an embedding model, the error contract, dynamic batching under concurrency, and a server
without a model."""
import json
import os
import shutil
import threading
import urllib.request

import grpc
import numpy as np
import pytest

from qvtest import Server, free_port, pb

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "embed")


def golden():
    texts = [json.loads(line)["text"] for line in open(os.path.join(GOLDEN, "golden_embed.jsonl"), encoding="utf-8")]
    vecs = np.fromfile(os.path.join(GOLDEN, "golden_embed.f32"), dtype="<f4").reshape(len(texts), -1)
    keep = [i for i, t in enumerate(texts) if t and "\x00" not in t]  # NUL: refused by the API (own test)
    return [texts[i] for i in keep], vecs[keep]


@pytest.fixture
def server(make_server):
    port = free_port()
    srv = make_server(extra=["--metrics-listen", f"127.0.0.1:{port}", "--embed-wait-us", "20000"]).start()
    srv.metrics_port = port
    return srv


def test_embed_matches_reference(server):
    texts, want = golden()
    c = server.client
    got = []
    for s in range(0, len(texts), 100):
        r = c.q.Embed(pb.EmbedRequest(texts=texts[s:s + 100]))
        assert r.dim == 384 and r.model == "all-MiniLM-L6-v2"
        got += [np.array(v.values, np.float64) for v in r.vectors]
    got = np.array(got)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999, (cos.min(), texts[int(cos.argmin())][:80])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_text_upsert_and_search(server):
    c = server.client
    c.q.CreateCollection(pb.CreateCollectionRequest(name="docs", metric=pb.METRIC_COSINE,
                                                    embedding_model="all-MiniLM-L6-v2",
                                                    fields=[pb.FieldSchema(name="lang", type=pb.FIELD_TYPE_KEYWORD)]))
    assert c.describe("docs").dim == 384 and c.describe("docs").embedding_model == "all-MiniLM-L6-v2"
    docs = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten is sleeping on a rug.",
            "Python is a programming language.", "The dog barked at the mailman."]
    pts = []
    for i, d in enumerate(docs):
        p = pb.Point(id=str(i), text=d)
        p.attributes["lang"].keyword_value = "en"
        pts.append(p)
    c.q.Upsert(pb.UpsertRequest(collection="docs", points=pts))
    got = c.q.Get(pb.GetRequest(collection="docs", ids=["2"], with_vectors=True)).points[0]
    ref = c.q.Embed(pb.EmbedRequest(texts=[docs[2]])).vectors[0].values
    assert got.text == docs[2] and np.allclose(got.vector, ref, atol=1e-6)  # text stored, vector from the model
    r = c.q.Search(pb.SearchRequest(collection="docs", text="a feline resting on a carpet", k=2, with_text=True))
    assert {h.id for h in r.hits} == {"0", "2"}
    for i, d in enumerate(docs):  # a passage's own text finds the passage itself first
        assert c.q.Search(pb.SearchRequest(collection="docs", text=d, k=1)).hits[0].id == str(i)
    q = c.q.Embed(pb.EmbedRequest(texts=["a feline resting on a carpet"])).vectors[0].values
    rv = c.q.Search(pb.SearchRequest(collection="docs", vector=q, k=2))
    assert [h.id for h in rv.hits] == [h.id for h in r.hits]


def codes(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_text_errors(server):
    c = server.client
    c.q.CreateCollection(pb.CreateCollectionRequest(name="m", embedding_model="all-MiniLM-L6-v2",
                                                    metric=pb.METRIC_COSINE))
    c.q.CreateCollection(pb.CreateCollectionRequest(name="plain", dim=4, metric=pb.METRIC_L2))
    bad = codes
    INV = grpc.StatusCode.INVALID_ARGUMENT
    assert bad(lambda: c.q.Search(pb.SearchRequest(collection="plain", text="hi", k=1))) == INV
    assert bad(lambda: c.q.Search(pb.SearchRequest(collection="m", text="hi", vector=[0.1] * 384, k=1))) == INV
    assert bad(lambda: c.q.Search(pb.SearchRequest(collection="m", k=1))) == INV
    assert bad(lambda: c.q.Upsert(pb.UpsertRequest(collection="plain", points=[pb.Point(id="a", text="hi")]))) == INV
    assert bad(lambda: c.q.Upsert(pb.UpsertRequest(collection="m", points=[pb.Point(id="a")]))) == INV
    assert bad(lambda: c.q.Embed(pb.EmbedRequest(texts=["ok", ""]))) == INV
    assert bad(lambda: c.q.Embed(pb.EmbedRequest(texts=["t"] * 1001))) == INV
    assert bad(lambda: c.q.Embed(pb.EmbedRequest(texts=["x" * (600 << 10)] * 2))) == INV
    assert bad(lambda: c.q.Embed(pb.EmbedRequest())) == INV
    assert bad(lambda: c.q.Embed(pb.EmbedRequest(texts=["a\x00b"]))) == INV  # would be cut short at the NUL
    # text with no words (white space and control characters only) embeds to nothing: refused everywhere
    for blank in (" ", " \t\n ", "\u3000\u00a0", "\x01\x02"):
        assert bad(lambda: c.q.Search(pb.SearchRequest(collection="m", text=blank, k=1))) == INV
        assert bad(lambda: c.q.Embed(pb.EmbedRequest(texts=["ok", blank]))) == INV
        assert bad(lambda: c.q.Upsert(pb.UpsertRequest(collection="m", points=[pb.Point(id="b", text=blank)]))) == INV
    assert bad(lambda: c.q.CreateCollection(pb.CreateCollectionRequest(name="w", dim=128, metric=pb.METRIC_COSINE,
                                                                       embedding_model="all-MiniLM-L6-v2"))) == INV
    assert bad(lambda: c.q.CreateCollection(pb.CreateCollectionRequest(name="w", metric=pb.METRIC_COSINE,
                                                                       embedding_model="gpt-9"))) == INV
    assert c.count("m") == 0 and sorted(c.names()) == ["m", "plain"]


def test_dynamic_batching_concurrent(server):
    c = server.client
    texts, _ = golden()
    texts = texts[:64]
    alone = [np.array(c.q.Embed(pb.EmbedRequest(texts=[t])).vectors[0].values) for t in texts]

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
            vals = {}
            for line in r.read().decode().splitlines():
                if line.startswith("quiver_embed_"):
                    k, v = line.split()
                    vals[k] = float(v)
            return vals

    before = scrape()
    results = [None] * len(texts)

    def one(i):
        cl = server.new_client()
        results[i] = np.array(cl.q.Embed(pb.EmbedRequest(texts=[texts[i]])).vectors[0].values)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    after = scrape()
    for a, b in zip(alone, results):
        assert float(np.dot(a, b)) >= 0.9999  # batching with other texts does not change a text's vector
    n_texts = after["quiver_embed_texts_total"] - before["quiver_embed_texts_total"]
    n_batches = after["quiver_embed_batches_total"] - before["quiver_embed_batches_total"]
    assert n_texts == len(texts) and n_batches < n_texts, (n_texts, n_batches)


def test_server_without_model(quiverd, tmp_path):
    lone = tmp_path / "quiverd"  # no model/ next to this copy, no QV_MODEL_DIR: the server starts without a model
    shutil.copy(quiverd, lone)
    env_before = os.environ.pop("QV_MODEL_DIR", None)
    try:
        srv = Server(binary=str(lone)).start()
        try:
            c = srv.client
            assert codes(lambda: c.q.Embed(pb.EmbedRequest(texts=["hi"]))) == grpc.StatusCode.FAILED_PRECONDITION
            c.q.CreateCollection(pb.CreateCollectionRequest(name="m", embedding_model="all-MiniLM-L6-v2",
                                                            metric=pb.METRIC_COSINE))
            assert codes(lambda: c.q.Search(pb.SearchRequest(collection="m", text="hi", k=1))) == \
                grpc.StatusCode.FAILED_PRECONDITION
        finally:
            srv.cleanup()
        bad = Server(binary=str(lone), extra=["--model-dir", str(tmp_path / "nothing-here")])
        with pytest.raises(RuntimeError):
            bad.start(timeout=10)  # an explicit model dir that cannot be loaded stops start-up
        bad.cleanup()
    finally:
        if env_before is not None:
            os.environ["QV_MODEL_DIR"] = env_before


def test_long_texts_are_counted_as_truncated(server):
    """A text over the model's 256-token window is embedded from its beginning only; the server counts it
    (quiver_embed_truncated_total), a short one is not counted."""
    c = server.client

    def truncated():
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("quiver_embed_truncated_total "):
                    return float(line.split()[1])
        raise AssertionError("no quiver_embed_truncated_total")

    before = truncated()
    long_text = " ".join(["word"] * 400)
    a = np.array(c.q.Embed(pb.EmbedRequest(texts=[long_text, "short text"])).vectors[0].values)
    assert truncated() == before + 1
    # the cut text embeds as its first 254 words do
    b = np.array(c.q.Embed(pb.EmbedRequest(texts=[" ".join(["word"] * 254)])).vectors[0].values)
    assert np.allclose(a, b, atol=1e-6)
    assert truncated() == before + 1
