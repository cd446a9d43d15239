"""Test helpers: the async client driven through a blocking facade (so one test body checks both clients), data."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

import numpy as np

from quiver_client import AsyncQuiverClient


class BlockingAsync:
    """AsyncQuiverClient behind QuiverClient's blocking interface: each coroutine runs to completion on a private
    event loop; an async iterator (scroll) is drained into a list iterator."""

    def __init__(self, address: str, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.aclient = AsyncQuiverClient(address, **kw)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aclient, name)
        if inspect.isasyncgenfunction(attr):
            def drain(*a: Any, **k: Any) -> Any:
                async def collect() -> list[Any]:
                    return [x async for x in attr(*a, **k)]
                return iter(self._loop.run_until_complete(collect()))
            return drain
        if inspect.iscoroutinefunction(attr):
            def run(*a: Any, **k: Any) -> Any:
                return self._loop.run_until_complete(attr(*a, **k))
            return run
        return attr

    def close(self) -> None:
        self._loop.run_until_complete(self.aclient.close())

    def shutdown(self) -> None:
        self.close()
        self._loop.close()


LANGS = ["en", "de", "fr", "es"]
TAGS = ["a", "b", "c", "d"]


def make_points(n: int, dim: int, seed: int = 1, prefix: str = "p") -> tuple[list[dict[str, Any]], np.ndarray]:
    """n points with vectors and attributes; some attributes are left out on purpose (every 7th point has no
    "tags", every 11th no "year") so that filters meet missing values."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    pts = []
    for i in range(n):
        attrs: dict[str, Any] = {"lang": LANGS[i % 4], "score": float(round(float(rng.random()), 3)),
                                 "draft": bool(i % 3 == 0)}
        if i % 11:
            attrs["year"] = 2000 + (i * 7) % 25
        if i % 7:
            attrs["tags"] = sorted({TAGS[i % 4], TAGS[(i // 4) % 4]})
        pts.append({"id": f"{prefix}{i:05d}", "vector": vecs[i], "attributes": attrs, "text": f"point number {i}"})
    return pts, vecs


FIELDS = {"lang": "keyword", "year": "int", "score": "float", "draft": "bool", "tags": "keywords"}


def exact_l2_topk(vecs: np.ndarray, ids: list[str], q: np.ndarray, k: int,
                  keep: Callable[[int], bool] = lambda i: True) -> list[str]:
    d = ((vecs.astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1)
    order = sorted((i for i in range(len(ids)) if keep(i)), key=lambda i: (d[i], ids[i]))
    return [ids[i] for i in order[:k]]
