"""AsyncQuiverClient natively (pytest-asyncio): the same methods and signatures as QuiverClient, as coroutines;
concurrent calls on one client; scroll as an async iterator. (test_api.py runs every method through it too.)"""
from __future__ import annotations

import asyncio
import inspect

import numpy as np
import pytest
from helpers import FIELDS, make_points

import quiver_client as qc
from quiver_client import AsyncQuiverClient, F, QuiverClient


def public_methods(cls: type) -> dict[str, object]:
    return {n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}


def test_same_methods_and_signatures() -> None:
    sync, aio = public_methods(QuiverClient), public_methods(AsyncQuiverClient)
    assert sync.keys() == aio.keys()
    for n in sync:
        s, a = inspect.signature(sync[n]), inspect.signature(aio[n])  # type: ignore[arg-type]
        assert [(p.name, p.kind, p.default) for p in s.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in a.parameters.values()], n
        if n == "scroll":
            assert inspect.isgeneratorfunction(sync[n]) is False and inspect.isasyncgenfunction(aio[n])
        else:
            assert inspect.iscoroutinefunction(aio[n]), n
    for want in ("create_collection", "drop_collection", "list_collections", "describe_collection", "upsert",
                 "delete", "get", "count", "search", "search_batch", "scroll", "embed", "health", "stats", "flush",
                 "compact", "close"):
        assert want in sync
    assert inspect.signature(QuiverClient.__init__) == inspect.signature(AsyncQuiverClient.__init__)


async def test_async_end_to_end(aclient: AsyncQuiverClient, name: str) -> None:
    c = aclient
    await c.create_collection(name, dim=8, metric="l2", fields=FIELDS, index="flat")
    pts, vecs = make_points(1200, 8, seed=21)
    res = await c.upsert(name, pts)
    assert res.count == 1200
    # many calls in flight on one channel
    qs = np.random.default_rng(1).standard_normal((20, 8)).astype(np.float32)
    results = await asyncio.gather(*(c.search(name, q, k=5, filter={"lang": {"in": ["en", "de"]}}) for q in qs))
    batch = await c.search_batch(name, qs, k=5, filter=F.any_of("lang", ["en", "de"]))
    assert [[h.id for h in r] for r in results] == [[h.id for h in r] for r in batch]
    counts = await asyncio.gather(c.count(name), c.count(name, F.eq("draft", True)), c.count(name, {"lang": "fr"}))
    assert counts == [1200, sum(p["attributes"]["draft"] for p in pts), 300]
    seen = [p.id async for p in c.scroll(name, page_size=250)]
    assert seen == sorted(p["id"] for p in pts)
    some = [p async for p in c.scroll(name, filter={"lang": "es"}, limit=7, with_vectors=True)]
    assert len(some) == 7 and some[0].vector is not None
    page, cursor = await c.scroll_page(name, page_size=1000)
    assert len(page) == 1000 and cursor
    got = await c.get(name, [pts[5]["id"]], with_vectors=True)
    np.testing.assert_array_equal(got[0].vector, vecs[5])
    assert await c.delete(name, [p["id"] for p in pts[:200]]) == 200
    assert (await c.describe_collection(name)).live_rows == 1000
    assert await c.flush(name) == 1
    job = await c.compact(name)  # one segment with deleted rows: purged
    assert job.job_id > 0 and job.input_segments == 1
    assert name in [s.name for s in (await c.stats()).collections]
    assert (await c.embed(["hello"])).shape == (1, 384)
    await c.drop_collection(name)
    assert not await c.has_collection(name)


async def test_async_errors(aclient: AsyncQuiverClient) -> None:
    with pytest.raises(qc.QuiverNotFound, match="collection 'nope' not found"):
        await aclient.count("nope")
    with pytest.raises(ValueError):
        await aclient.count("nope", filter={"x": {"bad": 1}})
    with pytest.raises(ValueError):
        async for _ in aclient.scroll("nope", filter={"$bad": 1}):
            pass


async def test_async_close(server: qc.LocalServer) -> None:
    c = AsyncQuiverClient(server.address)
    await c.close()  # never used: nothing to close
    async with AsyncQuiverClient(server.address) as c2:
        assert (await c2.health()).serving
    with pytest.raises(qc.QuiverError, match="closed"):
        await c2.health()
