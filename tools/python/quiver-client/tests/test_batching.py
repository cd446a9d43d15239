"""Batch splitting: upserts split by count, bytes, the server's decode budget and the embedding limits; reads split
by count, and halved when the server finds an answer over its message limit."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
from conftest import start_server
from helpers import FIELDS, BlockingAsync, make_points

import quiver_client as qc
from quiver_client import QuiverClient
from quiver_client import _convert as cv
from quiver_client import _core as core


def msgs(points: list[dict[str, Any]]) -> list[Any]:
    return [cv.point_pb(p, i) for i, p in enumerate(points)]


# ---------------------------------------------------------------------------------------------------------------------
# the splitter alone
# ---------------------------------------------------------------------------------------------------------------------
def test_split_by_count() -> None:
    pts = msgs([{"id": str(i), "vector": np.ones(8)} for i in range(25_000)])
    batches = core.split_points(pts, "c", 1 << 30)
    assert [len(b) for b in batches] == [10_000, 10_000, 5_000]
    assert [p.id for b in batches for p in b] == [p.id for p in pts]
    assert core.split_points([], "c", 100) == [[]]


def test_split_by_bytes() -> None:
    pts = msgs([{"id": f"{i:04d}", "vector": np.zeros(64)} for i in range(1000)])  # 6 + 256 bytes + framing
    batches = core.split_points(pts, "coll", 50_000)
    sizes = [core.pb.UpsertRequest(collection="coll", points=b).ByteSize() for b in batches]
    assert max(sizes) <= 50_000 and min(sizes[:-1]) > 49_000
    assert len(batches) == 6 and [p.id for b in batches for p in b] == [p.id for p in pts]
    huge = msgs([{"id": "big", "vector": np.zeros(20_000)}, {"id": "small", "vector": [1.0]}])
    assert [len(b) for b in core.split_points(huge, "c", 1000)] == [1, 1]  # too big alone: sent alone


def test_split_by_embedding_limits() -> None:
    text_only = [{"id": str(i), "text": "word"} for i in range(2500)]
    with_vec = [{"id": f"v{i}", "text": "word", "vector": np.ones(8)} for i in range(5000)]
    batches = core.split_points(msgs(text_only), "c", 1 << 30)
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert len(core.split_points(msgs(with_vec), "c", 1 << 30)) == 1  # a vector: nothing to embed
    long_texts = [{"id": str(i), "text": "x" * 300_000} for i in range(7)]  # 1 MiB of text per request
    assert [len(b) for b in core.split_points(msgs(long_texts), "c", 1 << 30)] == [3, 3, 1]


def test_split_by_decode_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(core.split_points(msgs(make_points(3000, 2)[0]), "c", 1 << 30)) == 1  # well inside the budget
    # tiny points with ten one-letter keyword lists: each costs the server more than 16x its wire bytes
    pts = msgs([{"id": str(i), "vector": [1.0], "attributes": {c: ["x", "y"] for c in "abcdefghij"}}
                for i in range(10_000)])
    excess = [core.decode_excess(p, core._field_len(p.ByteSize())) for p in pts]
    assert min(excess) > 0
    assert len(core.split_points(pts, "c", 1 << 30)) > 5  # though only 4 MB in all
    monkeypatch.setattr(core, "_DECODE_BUDGET", 20 * max(excess))
    batches = core.split_points(pts, "c", 1 << 30)
    assert len(batches) > 1 and [p.id for b in batches for p in b] == [p.id for p in pts]
    start = 0
    for b in batches:
        assert sum(excess[start:start + len(b)]) <= 20 * max(excess)
        start += len(b)


def test_decode_estimate_tracks_the_wire_size() -> None:
    """The estimate grows with what the server charges: attributes and ids, not vectors (4 bytes each)."""
    wire = lambda p: core._field_len(p.ByteSize())  # noqa: E731
    bare = msgs([{"id": "a", "vector": np.ones(64)}])[0]
    rich = msgs([{"id": "a", "vector": np.ones(64), "attributes": {f"k{i}": i for i in range(20)}}])[0]
    assert core.decode_excess(bare, wire(bare)) < 0
    assert core.decode_excess(rich, wire(rich)) > core.decode_excess(bare, wire(bare))


# ---------------------------------------------------------------------------------------------------------------------
# against the server
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(params=["sync", "async"])
def anyclient(request: pytest.FixtureRequest, server: qc.LocalServer) -> Iterator[Any]:
    c: Any = QuiverClient(server.address, timeout=60) if request.param == "sync" else BlockingAsync(
        server.address, timeout=60)
    yield c
    c.close()
    if isinstance(c, BlockingAsync):
        c.shutdown()


def test_many_points_by_count(anyclient: Any, name: str) -> None:
    c = anyclient
    c.create_collection(name, dim=2, metric="l2", index="flat")
    pts = [{"id": f"id{i:05d}", "vector": [float(i), 1.0]} for i in range(25_000)]
    res = c.upsert(name, pts)
    assert (res.count, res.requests) == (25_000, 3)
    assert c.count(name) == 25_000
    ids = [p["id"] for p in pts]
    got = c.get(name, ids[::-1])  # 25,000 ids: three Get requests, answers in the order asked
    assert [p.id for p in got] == ids[::-1]
    assert c.delete(name, ids[:24_000] + ["nope"]) == 24_000
    assert c.count(name) == 1000
    c.drop_collection(name)


def test_generator_streams_and_list_is_checked_first(anyclient: Any, name: str) -> None:
    c = anyclient
    c.create_collection(name, dim=8, metric="l2", index="flat")
    taken = []

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(21_000):
            taken.append(i)
            yield {"id": f"g{i:05d}", "vector": np.full(8, i, np.float32)}

    res = c.upsert(name, gen())
    assert (res.count, res.requests, len(taken)) == (21_000, 3, 21_000)
    assert c.count(name) == 21_000

    def broken() -> Iterator[dict[str, Any]]:
        for i in range(15_000):
            yield {"id": f"s{i:05d}", "vector": np.full(8, -i, np.float32)}
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        c.upsert(name, broken())
    assert c.count(name) == 31_000  # the first 10,000 were sent before the generator failed
    bad = [{"id": f"n{i}", "vector": np.ones(8)} for i in range(15_000)] + [{"id": "bad", "vector": [1, "x"]}]
    with pytest.raises(TypeError, match="not a number"):
        c.upsert(name, bad)
    assert c.count(name) == 31_000  # nothing of the list was written
    c.drop_collection(name)


def test_bytes_and_decode_budget(anyclient: Any, name: str, server: qc.LocalServer) -> None:
    c = anyclient
    c.create_collection(name, dim=2, metric="l2", fields=FIELDS, index="flat")
    pts, vecs = make_points(3000, 2, seed=2)
    res = c.upsert(name, pts)  # small points with 5 attributes: an older server refuses 3,000 at once (decode budget)
    assert res.count == 3000
    assert [(p.id, p.attributes) for p in c.scroll(name)] == [(p["id"], p["attributes"]) for p in pts]
    c.drop_collection(name)
    c.create_collection(name, dim=32, metric="l2", index="flat")
    pts, vecs = make_points(3000, 32, seed=2)
    small = QuiverClient(server.address, max_request_bytes=100_000)
    try:
        res2 = small.upsert(name, [{"id": p["id"], "vector": p["vector"]} for p in pts])  # 430 KB
        assert res2.count == 3000 and res2.requests == 5
    finally:
        small.close()
    got = c.get(name, [p["id"] for p in pts], with_vectors=True)
    assert len(got) == 3000
    np.testing.assert_array_equal(np.stack([p.vector for p in got]), vecs)
    c.drop_collection(name)


def test_points_heavy_for_the_decoder(client: QuiverClient, name: str) -> None:
    """Tiny points with ten keyword lists each: a 10,000-point request would be over the server's decode budget
    (whichever rule it has); the client's batches pass (an older server's refusals are halved)."""
    client.create_collection(name, dim=1, metric="l2", fields={c: "keywords" for c in "abcdefghij"}, index="flat")
    pts = [{"id": str(i), "vector": [1.0], "attributes": {c: ["x", "y"] for c in "abcdefghij"}} for i in range(10_000)]
    res = client.upsert(name, pts)
    assert res.count == 10_000 and res.requests > 5
    assert client.count(name, {"c": "y"}) == 10_000
    client.drop_collection(name)


def test_decode_budget_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose decode estimate is above the client's refuses the request as 'over the 16x budget': the
    client halves the batch until it passes (a scripted fake server that refuses more than 700 points)."""
    from test_retry import fake_server

    seen: list[int] = []

    def upsert(req: Any, ctx: Any) -> Any:
        seen.append(len(req.points))
        if len(req.points) > 700:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request of {req.ByteSize()} bytes would decode to about "
                      f"{30 * req.ByteSize()} bytes, over the 16x budget; send fewer, larger items")
        return core.pb.UpsertResponse(count=len(req.points), seq=len(seen))

    with fake_server({"Quiver/Upsert": upsert}) as addr, QuiverClient(addr) as c:
        res = c.upsert("x", [{"id": str(i), "vector": [1.0]} for i in range(3000)])
    assert res.count == 3000 and res.requests == 8  # 3000 -> 1500 -> 750 -> 375: eight of 375
    assert seen[:4] == [3000, 1500, 750, 375] and sum(n for n in seen if n <= 700) == 3000


def test_text_upsert_split_at_embedding_limits(anyclient: Any, name: str) -> None:
    c = anyclient
    c.create_collection(name, embedding_model="all-MiniLM-L6-v2")
    res = c.upsert(name, [{"id": f"t{i}", "text": f"w{i}"} for i in range(1100)])  # over 1,000 texts
    assert (res.count, res.requests) == (1100, 2)
    assert c.count(name) == 1100
    e = c.embed([f"w{i}" for i in range(1001)])  # Embed too: two requests
    assert e.shape == (1001, 384)
    c.drop_collection(name)


@pytest.fixture(scope="module")
def small_server(quiverd: str, workdir: Path) -> Iterator[qc.LocalServer]:
    """A server with --max-message-mb 1: the client learns its limit from its refusals."""
    s = start_server(quiverd, workdir, ["--max-message-mb", "1"])
    yield s
    s.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_server_with_a_small_message_limit(small_server: qc.LocalServer, kind: str) -> None:
    c: Any = QuiverClient(small_server.address) if kind == "sync" else BlockingAsync(small_server.address)
    name = f"small_limit_{kind}"
    c.create_collection(name, dim=128, metric="l2", index="flat")
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((3000, 128)).astype(np.float32)
    ids = [f"v{i:04d}" for i in range(3000)]
    res = c.upsert(name, [{"id": i, "vector": v} for i, v in zip(ids, vecs, strict=True)])  # 1.6 MB: split
    assert res.count == 3000 and res.requests >= 2
    got = c.get(name, ids, with_vectors=True)  # the answer would be 1.6 MB: asked for in halves
    assert [p.id for p in got] == ids
    np.testing.assert_array_equal(np.stack([p.vector for p in got]), vecs)
    scrolled = list(c.scroll(name, page_size=10_000, with_vectors=True))  # pages halved until they fit
    assert [p.id for p in scrolled] == ids
    hits = c.search_batch(name, vecs[:100], k=30, with_vectors=True)  # 100 x 30 x 512 bytes: halved
    assert [h[0].id for h in hits] == ids[:100]
    with pytest.raises(qc.QuiverResourceExhausted, match="message limit"):
        c.search(name, vecs[0], k=3000, with_vectors=True)  # one query: nothing to split
    c.drop_collection(name)
    c.close()
    if isinstance(c, BlockingAsync):
        c.shutdown()
