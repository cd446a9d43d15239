"""A private quiverd for notebooks, scripts and tests (like Milvus Lite or ``QdrantClient(":memory:")``)::

    import quiver_client
    with quiver_client.local("./qv-data") as client:      # starts quiverd, stops it on exit
        client.create_collection("docs", embedding_model="all-MiniLM-L6-v2")

The ``quiverd`` binary is the ``quiverd`` argument, else ``$QUIVERD``, else ``quiverd`` on ``PATH``. It serves a free
port on 127.0.0.1 (metrics off), keeps its data in ``path`` (a temporary directory, removed at the end, when
``path`` is None) and logs to ``path/quiverd.log``. Stopping sends SIGTERM and waits (the server finishes its calls
and closes its store), then SIGKILL after ``stop_timeout`` seconds. A server still running when the interpreter
exits is stopped the same way.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import grpc

from . import _core as core
from ._proto.quiver.v1 import quiver_pb2 as pb
from .aio import AsyncQuiverClient
from .client import QuiverClient

PathLike = Union[str, "os.PathLike[str]"]


def find_quiverd(quiverd: Optional[PathLike] = None) -> str:
    """The quiverd binary: the argument, else $QUIVERD, else `quiverd` on PATH (FileNotFoundError if none)."""
    cand = quiverd if quiverd is not None else os.environ.get("QUIVERD")
    if cand:
        p = Path(cand)
        if not p.is_file() or not os.access(p, os.X_OK):
            raise FileNotFoundError(f"quiverd binary {str(p)!r} is not an executable file")
        return str(p)
    found = shutil.which("quiverd")
    if not found:
        raise FileNotFoundError("no quiverd: pass quiverd=PATH, set $QUIVERD, or put quiverd on PATH")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> Optional[int]:
    """SIGTERM, wait up to timeout, then SIGKILL the process group; returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        return proc.wait()


def _cleanup(proc: Optional[subprocess.Popen[bytes]], timeout: float, tmpdir: Optional[str]) -> None:
    if proc is not None:
        _terminate(proc, timeout)
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


class LocalServer:
    """One private quiverd process (see the module docstring). ``args``: more quiverd flags, e.g.
    ``["--seal-rows", "1000"]`` or ``["--api-keys", "keys.txt"]``; ``port``: serve this port rather than a free
    one; ``tls``: how to reach it when ``args`` turn TLS on (as ``QuiverClient``'s ``tls``: the start-up health
check needs it). ``start()`` / ``stop()``, or use it as a context manager."""

    def __init__(self, path: Optional[PathLike] = None, quiverd: Optional[PathLike] = None, *,
                 args: Sequence[str] = (), port: Optional[int] = None, tls: core.TLSLike = None,
                 startup_timeout: float = 60.0, stop_timeout: float = 15.0) -> None:
        self.binary = find_quiverd(quiverd)
        self.fixed_port = port
        self.tls = core.tls_config(tls)
        self._tmpdir = tempfile.mkdtemp(prefix="quiver-local-") if path is None else None
        self.path = Path(self._tmpdir if self._tmpdir is not None else path).resolve()  # type: ignore[arg-type]
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._finalizer: Optional[weakref.finalize[Any, Any]] = None

    @property
    def log_path(self) -> Path:
        return self.path / "quiverd.log"

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [self.binary, "--role", "standalone", "--listen", self.address, "--data", str(self.path),
                "--metrics-listen", "off", *self.args]

    def start(self) -> "LocalServer":
        if self.running:
            raise RuntimeError("the server is already running")
        self.path.mkdir(parents=True, exist_ok=True)
        why = ""
        for _ in range(1 if self.fixed_port else 3):  # a free port may be taken before quiverd binds it: retry
            self.port = self.fixed_port or _free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== quiver_client.local: {' '.join(self.command())}\n".encode())
                log.flush()
                offset = log.tell()
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
            if self._finalizer is not None:
                self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _cleanup, self.proc, self.stop_timeout, self._tmpdir)
            ok, why = self._wait_healthy()
            if ok:
                return self
            if self.proc.poll() is None:
                break
            if not any(w in self._log_since(offset).lower() for w in ("address", "bind", "in use")):
                break
        tail = self._log_since(0)[-4000:]
        self.stop()
        raise RuntimeError(f"quiverd did not start: {why}\ncommand: {' '.join(self.command())}\n"
                           f"--- {self.log_path} (tail) ---\n{tail}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_healthy(self) -> tuple[bool, str]:
        assert self.proc is not None
        t0 = time.monotonic()
        last = "no answer"
        health = core.METHODS["Admin/Health"]
        while time.monotonic() - t0 < self.startup_timeout:
            if self.proc.poll() is not None:
                return False, f"exited with status {self.proc.returncode}"
            # a fresh channel per try: one that was refused would wait out gRPC's reconnect backoff
            creds, opts = core.channel_args(self.tls, [("grpc.use_local_subchannel_pool", 1)])
            ch = (grpc.secure_channel(self.address, creds, options=opts) if creds is not None
                  else grpc.insecure_channel(self.address, options=opts))
            try:
                call = ch.unary_unary(health.path, request_serializer=health.request.SerializeToString,
                                      response_deserializer=health.response.FromString)
                h = call(pb.HealthRequest(), timeout=2)
                if h.status == pb.HealthResponse.STATUS_SERVING:
                    return True, ""
                last = f"health status {pb.HealthResponse.Status.Name(h.status)} {h.reason}"
            except grpc.RpcError as e:
                last = f"{e.code()} {e.details()}"
            finally:
                ch.close()
            time.sleep(0.05)
        return False, f"not healthy within {self.startup_timeout} s ({last})"

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """Stops the server (SIGTERM, then SIGKILL after timeout); returns its exit status. Idempotent. A temporary
        data directory is removed."""
        rc = None
        if self.proc is not None:
            rc = _terminate(self.proc, self.stop_timeout if timeout is None else timeout)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        return rc

    def __enter__(self) -> "LocalServer":
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid} at {self.address}" if self.running else "stopped"
        return f"LocalServer({str(self.path)!r}, {state})"


class LocalQuiverClient(QuiverClient):
    """A QuiverClient that owns its LocalServer (``server``): ``close()`` also stops the server."""

    server: LocalServer

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.stop()


class AsyncLocalQuiverClient(AsyncQuiverClient):
    """An AsyncQuiverClient that owns its LocalServer (``server``): ``await close()`` also stops the server."""

    server: LocalServer

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self.server.stop)


def local(path: Optional[PathLike] = None, quiverd: Optional[PathLike] = None, *, args: Sequence[str] = (),
          port: Optional[int] = None, startup_timeout: float = 60.0, stop_timeout: float = 15.0,
          **client_kwargs: Any) -> LocalQuiverClient:
    """Starts a private quiverd with its data in ``path`` and returns a client for it; closing the client (or
    leaving its ``with`` block) stops the server. ``client_kwargs`` go to ``QuiverClient`` (api_key, timeout,
    ...)."""
    server = LocalServer(path, quiverd, args=args, port=port, tls=client_kwargs.get("tls"),
                         startup_timeout=startup_timeout, stop_timeout=stop_timeout)
    server.start()
    try:
        client = LocalQuiverClient(server.address, **client_kwargs)
    except BaseException:
        server.stop()
        raise
    client.server = server
    return client


async def local_async(path: Optional[PathLike] = None, quiverd: Optional[PathLike] = None, *,
                      args: Sequence[str] = (), port: Optional[int] = None, startup_timeout: float = 60.0,
                      stop_timeout: float = 15.0, **client_kwargs: Any) -> AsyncLocalQuiverClient:
    """``local`` for asyncio: ``client = await quiver_client.local_async(path)``; ``await client.close()``."""
    server = LocalServer(path, quiverd, args=args, port=port, tls=client_kwargs.get("tls"),
                         startup_timeout=startup_timeout, stop_timeout=stop_timeout)
    await asyncio.to_thread(server.start)
    try:
        client = AsyncLocalQuiverClient(server.address, **client_kwargs)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    client.server = server
    return client
