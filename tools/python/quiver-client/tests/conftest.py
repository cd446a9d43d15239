"""Fixtures: one quiverd for the session (quiver_client.LocalServer), clients on it, unique collection names.

The binary: $QUIVERD, else <repo>/build/quiverd. Its embedding model is found by quiverd itself (model/ next to
the binary, or $QV_MODEL_DIR). QV_KEEP=1 keeps the servers' data directories and logs.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from quiver_client import AsyncQuiverClient, LocalServer, QuiverClient
from quiver_client.testing import quiverd_binary

@pytest.fixture(scope="session")
def quiverd() -> str:
    return quiverd_binary()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="qv-client-tests-"))
    yield d
    if not os.environ.get("QV_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


_servers = itertools.count()


def start_server(quiverd: str, workdir: Path, args: list[str] | None = None) -> LocalServer:
    path = workdir / f"server-{next(_servers)}"
    return LocalServer(path, quiverd, args=args or []).start()


@pytest.fixture(scope="session")
def server(quiverd: str, workdir: Path) -> Iterator[LocalServer]:
    s = start_server(quiverd, workdir)
    yield s
    rc = s.stop()
    assert rc == 0, f"quiverd exited with {rc} on SIGTERM; log: {s.log_path}"


@pytest.fixture
def client(server: LocalServer) -> Iterator[QuiverClient]:
    with QuiverClient(server.address, timeout=60) as c:
        yield c


@pytest.fixture
async def aclient(server: LocalServer):  # type: ignore[no-untyped-def]
    c = AsyncQuiverClient(server.address, timeout=60)
    yield c
    await c.close()


_names = itertools.count()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A collection name unique in the session, readable in the server log."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:48]
    return f"{base}_{next(_names)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """A failing test gets the tail of the session server's log."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        srv = item.funcargs.get("server")
        if isinstance(srv, LocalServer):
            try:
                tail = srv.log_path.read_text(errors="replace").splitlines()[-40:]
            except OSError:
                tail = []
            rep.sections.append(("quiverd log (tail)", "\n".join(tail)))
