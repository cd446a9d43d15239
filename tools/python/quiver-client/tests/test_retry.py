"""Retries: UNAVAILABLE is retried with backoff for idempotent calls only, within a bounded time; "server busy" is
retried for every call. A scripted fake server counts the tries; a real quiverd started after its client shows the
client riding out the wait."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import defaultdict
from concurrent import futures
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import grpc
import pytest

import quiver_client as qc
from quiver_client import AsyncQuiverClient, QuiverClient, RetryPolicy
from quiver_client._core import METHODS
from quiver_client._proto.quiver.v1 import quiver_pb2 as pb

FAST = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.05, total_timeout=5.0)


class FakeQuiver(grpc.GenericRpcHandler):
    """Answers every Quiver/Admin method with an empty response (Health: SERVING), after failing it as scripted."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[grpc.StatusCode, str]]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)
        self.metadata: list[dict[str, str]] = []
        self.overrides: dict[str, Callable[[Any, Any], Any]] = {}
        self.lock = threading.Lock()

    def fail(self, method: str, times: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
             message: str = "try later") -> None:
        self.script[method] += [(code, message)] * times

    def service(self, details: Any) -> Any:
        name = details.method.rsplit(".", 1)[-1]  # /quiver.v1.Admin/Health -> Admin/Health
        m = METHODS.get(name)
        if m is None:
            return None

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.calls[name] += 1
                self.metadata.append(dict(context.invocation_metadata()))
                step = self.script[name].pop(0) if self.script[name] else None
            if step is not None:
                context.abort(step[0], step[1])
            if name in self.overrides:
                return self.overrides[name](request, context)
            if name == "Admin/Health":
                return pb.HealthResponse(status=pb.HealthResponse.STATUS_SERVING, version="fake", role="fake")
            return m.response()

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=m.request.FromString,
                                                   response_serializer=m.response.SerializeToString)


@contextlib.contextmanager
def fake_server(overrides: Optional[dict[str, Callable[[Any, Any], Any]]] = None,
                handler: Optional[FakeQuiver] = None) -> Iterator[str]:
    """A FakeQuiver on a free port; overrides: method name -> handler(request, context) replacing its answer."""
    handler = handler or FakeQuiver()
    handler.overrides = overrides or {}
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.stop(None)


@pytest.fixture
def fake() -> Iterator[tuple[FakeQuiver, str]]:
    handler = FakeQuiver()
    with fake_server(handler=handler) as addr:
        yield handler, addr


def test_idempotent_calls_are_retried(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    with QuiverClient(addr, retry=FAST) as c:
        h.fail("Admin/Health", 2)
        assert c.health().version == "fake"
        assert h.calls["Admin/Health"] == 3
        for method, call in [("Quiver/Search", lambda: c.search("x", [1.0])), ("Quiver/Get", lambda: c.get("x", "a")),
                             ("Quiver/Upsert", lambda: c.upsert("x", [{"id": "a", "vector": [1.0]}])),
                             ("Quiver/Delete", lambda: c.delete("x", ["a"])), ("Quiver/Count", lambda: c.count("x")),
                             ("Quiver/DescribeCollection", lambda: c.describe_collection("x")),
                             ("Quiver/ListCollections", c.list_collections), ("Quiver/Embed", lambda: c.embed("t")),
                             ("Admin/Stats", c.stats)]:
            h.fail(method, 1)
            call()
            assert h.calls[method] == 2, method


def test_non_idempotent_calls_are_not_retried(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    with QuiverClient(addr, retry=FAST) as c:
        for method, call in [("Quiver/CreateCollection", lambda: c.create_collection("x", dim=2)),
                             ("Quiver/DropCollection", lambda: c.drop_collection("x")),
                             ("Admin/Compact", lambda: c.compact("x")), ("Admin/Flush", c.flush)]:
            h.fail(method, 1, message="shard s1 unreachable")
            with pytest.raises(qc.QuiverUnavailable, match="shard s1 unreachable"):
                call()
            assert h.calls[method] == 1, method


def test_other_errors_are_not_retried(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    with QuiverClient(addr, retry=FAST) as c:
        h.fail("Quiver/Search", 1, grpc.StatusCode.INTERNAL, "boom")
        with pytest.raises(qc.QuiverInternal, match="boom"):
            c.search("x", [1.0])
        h.fail("Quiver/Get", 1, grpc.StatusCode.RESOURCE_EXHAUSTED, "response of 9 bytes exceeds the 1 byte limit")
        with pytest.raises(qc.QuiverResourceExhausted):
            c.get("x", ["a"])
        assert h.calls["Quiver/Search"] == 1 and h.calls["Quiver/Get"] == 1


def test_server_busy_is_retried_for_every_call(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    busy = "server busy: 64 calls in flight (--max-inflight); retry with backoff"
    with QuiverClient(addr, retry=FAST) as c:
        h.fail("Quiver/CreateCollection", 2, grpc.StatusCode.RESOURCE_EXHAUSTED, busy)
        c.create_collection("x", dim=2)  # refused unread by the server: safe to send again
        assert h.calls["Quiver/CreateCollection"] == 3
    with QuiverClient(addr, retry=RetryPolicy(retry_busy=False)) as c:
        h.fail("Quiver/CreateCollection", 1, grpc.StatusCode.RESOURCE_EXHAUSTED, busy)
        with pytest.raises(qc.QuiverResourceExhausted, match="server busy"):
            c.create_collection("x", dim=2)


def test_retries_are_bounded(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    with QuiverClient(addr, retry=RetryPolicy(max_attempts=3, initial_backoff=0.01)) as c:
        h.fail("Admin/Health", 10)
        with pytest.raises(qc.QuiverUnavailable, match="try later"):
            c.health()
        assert h.calls["Admin/Health"] == 3
    h.script.clear()
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.05, total_timeout=0.5)
    with QuiverClient(addr, retry=policy) as c:
        h.fail("Quiver/Count", 1000)
        t0 = time.monotonic()
        with pytest.raises(qc.QuiverUnavailable):
            c.count("x")
        assert time.monotonic() - t0 < 3.0 and 2 <= h.calls["Quiver/Count"] <= 15
    with QuiverClient(addr, retry=RetryPolicy(max_attempts=1)) as c:
        h.script.clear()
        h.fail("Quiver/Count", 1)
        with pytest.raises(qc.QuiverUnavailable):
            c.count("x")


def test_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(max_attempts=10, initial_backoff=0.1, multiplier=2, max_backoff=1.0, total_timeout=100)
    delays = [p.delay(a, 0.0) for a in range(1, 10)]
    assert all(d is not None for d in delays)
    assert 0.08 <= delays[0] <= 0.12 and 0.16 <= delays[1] <= 0.24 and all(0.8 <= d <= 1.2 for d in delays[4:])
    assert p.delay(10, 0.0) is None and p.delay(1, 99.99) is None


def test_async_client_retries(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake

    async def main() -> None:
        async with AsyncQuiverClient(addr, retry=FAST) as c:
            h.fail("Admin/Health", 2)
            assert (await c.health()).serving
            h.fail("Quiver/CreateCollection", 1)
            with pytest.raises(qc.QuiverUnavailable):
                await c.create_collection("x", dim=2)

    asyncio.run(main())
    assert h.calls["Admin/Health"] == 3 and h.calls["Quiver/CreateCollection"] == 1


def test_api_key_metadata(fake: tuple[FakeQuiver, str]) -> None:
    h, addr = fake
    with QuiverClient(addr, api_key="k-0123456789abcdef") as c:
        c.health()
        c.count("x")
    assert all(m.get("authorization") == "Bearer k-0123456789abcdef" for m in h.metadata)

    async def main() -> None:
        async with AsyncQuiverClient(addr, api_key="other-0123456789") as c:
            await c.count("x")

    asyncio.run(main())
    assert h.metadata[-1]["authorization"] == "Bearer other-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_client_started_before_the_server(quiverd: str, workdir: Path, kind: str) -> None:
    port = _free_port()
    srv = qc.LocalServer(workdir / f"late-{kind}", quiverd, port=port)
    starter = threading.Timer(0.7, srv.start)
    policy = RetryPolicy(max_attempts=30, total_timeout=30)
    try:
        t0 = time.monotonic()
        starter.start()
        if kind == "sync":
            with QuiverClient(f"127.0.0.1:{port}", retry=policy) as c:
                h = c.health()
                assert c.list_collections() == []
        else:
            async def main() -> qc.Health:
                async with AsyncQuiverClient(f"127.0.0.1:{port}", retry=policy) as ac:
                    return await ac.health()
            h = asyncio.run(main())
        assert h.serving and time.monotonic() - t0 >= 0.7
    finally:
        starter.join()
        srv.stop()
