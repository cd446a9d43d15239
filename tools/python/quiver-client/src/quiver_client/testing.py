"""pytest fixtures for code that talks to Quiver: one private quiverd for the session and clients on it.

Use from a conftest.py (pytest is needed only by whoever imports this module)::

    from quiver_client.testing import *  # noqa: F401,F403  (server, client, aclient, name, the log-tail hook)

The binary: $QUIVERD, else <repo>/build/quiverd when run from a checkout; its embedding model is found by quiverd
itself (model/ next to the binary, or $QV_MODEL_DIR). QV_KEEP=1 keeps the server's data directory and log. A failing
test gets the tail of the server's log in its report.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from quiver_client import AsyncQuiverClient, LocalServer, QuiverClient

__all__ = ["quiverd_binary", "session_server", "server", "client", "aclient", "name", "unique_name",
           "pytest_runtest_makereport"]

_SERVER: dict[str, LocalServer] = {}  # the session's server, for the report hook


def session_server() -> LocalServer:
    """The session's server (the `server` fixture's), for code that cannot take a fixture argument."""
    return _SERVER["server"]


def quiverd_binary() -> str:
    """$QUIVERD, else build/quiverd of the checkout this file is in; exits the run when there is none."""
    p = os.environ.get("QUIVERD") or str(Path(__file__).resolve().parents[5] / "build" / "quiverd")
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        pytest.exit(f"no quiverd binary at {p}: build it, or set QUIVERD=/path/to/quiverd", returncode=2)
    return p


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    d = Path(tempfile.mkdtemp(prefix="qv-tests-"))
    s = LocalServer(d / "server", quiverd_binary()).start()
    _SERVER["server"] = s
    yield s
    _SERVER.pop("server", None)
    rc = s.stop()
    if not os.environ.get("QV_KEEP"):
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 0, f"quiverd exited with {rc} on SIGTERM"


@pytest.fixture(scope="session")
def client(server: LocalServer) -> Iterator[QuiverClient]:
    with QuiverClient(server.address, timeout=60) as c:
        yield c


@pytest.fixture
async def aclient(server: LocalServer) -> AsyncIterator[AsyncQuiverClient]:
    c = AsyncQuiverClient(server.address, timeout=60)
    yield c
    await c.close()


_names = itertools.count()


def unique_name(base: str) -> str:
    """A collection name unique in the session, made from base (e.g. a test's name)."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', base)[:48]}_{next(_names)}"


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A collection name unique in the session, readable in the server log."""
    return unique_name(request.node.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """A failing test gets the tail of the server's log."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "server" in _SERVER:
        try:
            tail = _SERVER["server"].log_path.read_text(errors="replace").splitlines()[-40:]
        except OSError:
            tail = []
        rep.sections.append(("quiverd log (tail)", "\n".join(tail)))
