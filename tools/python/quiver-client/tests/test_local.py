"""quiver_client.local(): a private quiverd that starts on a free port, keeps its data, and leaves no process."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import quiver_client as qc
from quiver_client.local import _terminate


def gone(pid: int) -> bool:
    """True when no process has this pid (quiverd was waited for, so it is not even a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_local_start_stop_and_persistence(quiverd: str, tmp_path: Path) -> None:
    path = tmp_path / "data"
    c = qc.local(path, quiverd)
    pid = c.server.pid
    assert pid and not gone(pid) and c.server.running
    assert c.health().serving
    c.create_collection("kept", dim=2, metric="l2")
    c.upsert("kept", [{"id": "a", "vector": [1.0, 2.0], "attributes": {}}])
    c.close()
    assert gone(pid) and not c.server.running
    assert (path / "db").is_dir() and "server.start" in (path / "quiverd.log").read_text()
    c.close()  # idempotent
    with qc.local(path, quiverd) as c2:  # same data directory: the data is back
        assert c2.server.pid != pid
        assert c2.count("kept") == 1 and c2.get("kept", ["a"])[0].id == "a"
        pid2 = c2.server.pid
    assert gone(pid2)


def test_local_temporary_directory(quiverd: str) -> None:
    with qc.local(quiverd=quiverd) as c:
        path = c.server.path
        assert path.is_dir() and c.list_collections() == []
    assert not path.exists()


def test_local_finds_the_binary(quiverd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIVERD", quiverd)
    assert qc.find_quiverd() == quiverd
    monkeypatch.delenv("QUIVERD")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "quiverd").symlink_to(quiverd)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert qc.find_quiverd() == str(bindir / "quiverd")
    with qc.local(tmp_path / "d") as c:  # found on PATH (its model still next to the real binary)
        assert c.health().serving
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="QUIVERD"):
        qc.local(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="not an executable"):
        qc.local(tmp_path / "x", quiverd=tmp_path / "nope")


def test_local_start_failure_reports_the_log(quiverd: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exited with status.*no-such-flag"):
        qc.local(tmp_path / "bad", quiverd, args=["--no-such-flag"])


def test_data_directory_in_use(quiverd: str, tmp_path: Path) -> None:
    with qc.local(tmp_path / "shared", quiverd) as c:
        with pytest.raises(RuntimeError, match="did not start"):
            qc.local(tmp_path / "shared", quiverd, startup_timeout=20)  # the store is locked by the first
        assert c.health().serving


def test_local_server_object(quiverd: str, tmp_path: Path) -> None:
    srv = qc.LocalServer(tmp_path / "s", quiverd, args=["--seal-rows", "10"])
    with srv:
        assert "--seal-rows" in srv.command() and srv.address.startswith("127.0.0.1:")
        with qc.QuiverClient(srv.address) as c:
            c.create_collection("small", dim=2, metric="l2")
            c.upsert("small", [{"id": str(i), "vector": [float(i), 0.0]} for i in range(25)])
            assert any(s.state == "sealed" for s in c.describe_collection("small").segments)
        pid = srv.pid
        assert repr(srv).startswith("LocalServer(") and "pid" in repr(srv)
    assert pid is not None and gone(pid) and srv.stop() == 0  # stop again: the same status


def test_local_async(quiverd: str, tmp_path: Path) -> None:
    async def main() -> int:
        c = await qc.local_async(tmp_path / "a", quiverd)
        async with c:
            assert (await c.health()).serving
            await c.create_collection("x", dim=2)
            assert [x.name for x in await c.list_collections()] == ["x"]
            return c.server.pid or 0

    pid = asyncio.run(main())
    assert pid and gone(pid)


def test_terminate_kills_after_the_timeout() -> None:
    """A server that ignores SIGTERM gets SIGKILL once the timeout has passed."""
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
           "time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    t0 = time.monotonic()
    rc = _terminate(proc, 0.5)
    assert rc == -signal.SIGKILL and 0.4 < time.monotonic() - t0 < 5 and gone(proc.pid)


def test_no_server_left_behind(quiverd: str, tmp_path: Path) -> None:
    """An interpreter that exits without closing its local() client still stops the server."""
    code = ("import quiver_client, sys; c = quiver_client.local(sys.argv[1], sys.argv[2]); "
            "print(c.server.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "leak"), quiverd], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:  # not our child: it may linger as a zombie briefly
        time.sleep(0.05)
    assert gone(pid) or Path(f"/proc/{pid}/status").read_text().find("zombie") >= 0
