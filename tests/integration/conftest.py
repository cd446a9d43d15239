"""pytest glue for Quiver's integration tests: import path, server fixtures, server logs on failure."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qvtest  # noqa: E402  (generates the stubs once per session)


def pytest_report_header(config):
    return f"quiverd: {qvtest.quiverd_path()}"


def _binary(path, var, what):
    if not path:
        pytest.skip(f"set {var} to the {what} binary (ctest does)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{var}={path} is not an executable file")
    return path


@pytest.fixture(scope="session")
def quiverd():
    return _binary(qvtest.quiverd_path(), "QUIVERD", "quiverd")


@pytest.fixture(scope="session")
def quiver_bin():
    """The quiver CLI ($QUIVER_CLI, else build/quiver)."""
    return _binary(qvtest.cli_path(), "QUIVER_CLI", "quiver")


@pytest.fixture
def make_server(quiverd):
    """Factory for servers owned by one test: make_server(seal_rows=300).start(); cleaned up afterwards."""
    made = []

    def make(**kw):
        s = qvtest.Server(binary=quiverd, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in list(qvtest.SERVERS):
            state = "running" if s.running else f"exited {s.proc.returncode if s.proc else '-'}"
            rep.sections.append((f"quiverd log ({state}, data {s.data}, log {s.log_path})", s.log_tail()))
