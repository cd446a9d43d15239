"""Shared plumbing for Quiver's benchmarks (run with Debian's /usr/bin/python3: python3-grpcio, -protobuf, -numpy).

- Stubs: generated at start from proto/quiver/v1/quiver.proto with Debian's `protoc` and `grpc_python_plugin` into a
  temp dir that is removed at exit.
- Server: one `quiverd --role standalone` on a free port in a temp dir of its own, in its own process group;
  stopped with SIGTERM (kill -9 of the group if it does not exit) at exit, on SIGINT/SIGTERM, or by stop().
- Machine notes: nproc, CPU model and SIMD flags, load (uptime and the head of top's second frame), taken when
  asked, so the results say what else was running when they were measured.
- Raw gRPC calls: requests are serialized before the clock starts and sent as bytes (request_serializer=None), so the
  Python message building is not measured.

Environment: QUIVERD (the binary; default <repo>/build-release/quiverd), QV_PROTO_DIR (default <repo>/proto),
QV_PROTOC, QV_GRPC_PYTHON_PLUGIN,
QV_BENCH_TMP (where the server's temp dir goes; default the system temp dir), QV_KEEP=1 keeps temp dirs and logs.
"""
import atexit
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PROTO_DIR = Path(os.environ.get("QV_PROTO_DIR") or REPO / "proto")
KEEP = bool(os.environ.get("QV_KEEP"))


def _generate_stubs():
    out = tempfile.mkdtemp(prefix="qvbench-stubs-")
    if not KEEP:
        atexit.register(shutil.rmtree, out, True)
    protoc = os.environ.get("QV_PROTOC", "protoc")
    plugin = os.environ.get("QV_GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
    cmd = [protoc, f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}",
           f"--plugin=protoc-gen-grpc_python={plugin}", "quiver/v1/quiver.proto"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"stub generation failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
    sys.path.insert(0, out)
    from quiver.v1 import quiver_pb2, quiver_pb2_grpc  # noqa: E402
    return quiver_pb2, quiver_pb2_grpc


pb, pbg = _generate_stubs()
import grpc  # noqa: E402  (after the stubs, which import grpc themselves)

MAX_MSG = 256 << 20
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)]


# ---------------------------------------------------------------------------------------------------------------------
# signals: turn SIGTERM/SIGINT into SystemExit so that atexit (server stop, temp dirs) runs
# ---------------------------------------------------------------------------------------------------------------------
def _on_signal(sig, _frame):
    print(f"qvbench: signal {sig}, cleaning up", file=sys.stderr, flush=True)
    raise SystemExit(128 + sig)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def quiverd_path():
    p = os.environ.get("QUIVERD") or str(REPO / "build-release" / "quiverd")
    if not os.access(p, os.X_OK):
        raise SystemExit(f"quiverd not found at {p}: build it (bench/run_all.sh does) or set QUIVERD")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SERVERS = []


@atexit.register
def _stop_all():
    for s in list(_SERVERS):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001  (best effort at exit)
            print(f"warning: stopping quiverd: {e}", file=sys.stderr)


class Server:
    """One quiverd in a temp dir of its own. start() takes a fresh free port (retried if another process grabs it)."""

    def __init__(self, flags=(), tmp_parent=None):
        self.binary = quiverd_path()
        self.tmp = tempfile.mkdtemp(prefix="qvbench-", dir=tmp_parent or os.environ.get("QV_BENCH_TMP"))
        self.data = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "quiverd.log")
        self.flags = list(flags)
        self.proc = None
        self.port = None
        self.simd = None
        self.start_line = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def cmdline(self):
        return [self.binary, "--role", "standalone", "--listen", self.addr, "--data", self.data] + self.flags

    def start(self, timeout=60):
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
            _SERVERS.append(self)
            if self._wait_healthy(timeout):
                m = re.search(r"server\.start.*", self.log_text())
                self.start_line = m.group(0).strip() if m else None
                m = re.search(r"simd=(\S+)", self.start_line or "")
                self.simd = m.group(1) if m else None
                return self
            alive = self.proc.poll() is None
            self.kill9()
            if alive or not re.search(r"address|bind|in use", self.log_text(), re.I):
                break
        raise RuntimeError(f"quiverd did not start: {' '.join(self.cmdline())}\n--- log ---\n{self.log_text()[-4000:]}")

    def _wait_healthy(self, timeout):
        ch = grpc.insecure_channel(self.addr, options=CHANNEL_OPTIONS)
        admin = pbg.AdminStub(ch)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout:
                if self.proc.poll() is not None:
                    return False
                try:
                    if admin.Health(pb.HealthRequest(), timeout=2).status == pb.HealthResponse.STATUS_SERVING:
                        return True
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
            return False
        finally:
            ch.close()

    def cpu_seconds(self):
        """user+system CPU seconds the server process has used so far (all its threads), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def wait_idle(self, cores=0.05, window=1.0, timeout=600.0):
        """Waits until the server used less than `cores` CPUs over a `window`-second interval (RocksDB flushes and
        compactions run in the background after big writes and would compete with what is measured next). Returns
        the seconds waited; gives up after `timeout`."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            c0 = self.cpu_seconds()
            time.sleep(window)
            c1 = self.cpu_seconds()
            if c0 is None or c1 is None or (c1 - c0) / window < cores:
                break
        return time.monotonic() - t0

    def io_write_bytes(self):
        """Bytes the server process has caused to be written to storage so far (/proc/PID/io), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/io") as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    def stop(self, timeout=60):
        """SIGTERM, wait; kill -9 of the process group if it does not exit. Removes the temp dir unless QV_KEEP."""
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"warning: quiverd ignored SIGTERM for {timeout} s; kill -9", file=sys.stderr)
                self.kill9()
        elif self.proc is not None:
            rc = self.proc.returncode
        if self in _SERVERS:
            _SERVERS.remove(self)
        if not KEEP:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Conn:
    """A channel of its own, typed stubs with a deadline, and raw (pre-serialized) Upsert/Search/SearchBatch
    callables."""

    def __init__(self, addr, timeout=120.0):
        self.channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self.timeout = timeout
        self.q = pbg.QuiverStub(self.channel)
        self.admin = pbg.AdminStub(self.channel)
        self.raw_upsert = self.channel.unary_unary("/quiver.v1.Quiver/Upsert", request_serializer=None,
                                                   response_deserializer=pb.UpsertResponse.FromString)
        self.raw_search = self.channel.unary_unary("/quiver.v1.Quiver/Search", request_serializer=None,
                                                   response_deserializer=pb.SearchResponse.FromString)
        self.raw_search_batch = self.channel.unary_unary("/quiver.v1.Quiver/SearchBatch", request_serializer=None,
                                                         response_deserializer=pb.SearchBatchResponse.FromString)

    def ready(self):
        """Connect now (a Health call), so that connection set-up is not timed."""
        self.admin.Health(pb.HealthRequest(), timeout=self.timeout)
        return self

    def close(self):
        self.channel.close()


def index_params(kind):
    """CreateCollectionRequest keyword arguments for --index-kind: {} for 'default' (the server's default; works
    with protos that predate IndexParams), else {'index': IndexParams(kind=...)}."""
    if kind == "default":
        return {}
    if not hasattr(pb, "IndexParams"):
        raise SystemExit(f"--index-kind {kind}: this proto has no IndexParams")
    return {"index": pb.IndexParams(kind={"flat": pb.INDEX_KIND_FLAT, "hnsw": pb.INDEX_KIND_HNSW}[kind])}


# ---------------------------------------------------------------------------------------------------------------------
# request building (before the clock)
# ---------------------------------------------------------------------------------------------------------------------
def upsert_bytes(coll, ids, vecs, attrs=None):
    """One serialized UpsertRequest. attrs: optional {field: list of python values (str -> keyword)} per point."""
    req = pb.UpsertRequest(collection=coll)
    for i, (pid, v) in enumerate(zip(ids, vecs)):
        p = req.points.add(id=pid)
        p.vector.extend(v.tolist())
        if attrs:
            for name, col in attrs.items():
                val = col[i]
                if isinstance(val, str):
                    p.attributes[name].keyword_value = val
                elif isinstance(val, (bool, np.bool_)):
                    p.attributes[name].bool_value = bool(val)
                elif isinstance(val, (int, np.integer)):
                    p.attributes[name].int_value = int(val)
                else:
                    p.attributes[name].double_value = float(val)
    return req.SerializeToString()


# ---------------------------------------------------------------------------------------------------------------------
# measurements and machine notes
# ---------------------------------------------------------------------------------------------------------------------
def percentile(xs, p):
    return float(np.percentile(np.asarray(xs, dtype=np.float64), p)) if len(xs) else None


def fsync_rate(directory, seconds=2.0, block=4096, max_bytes=1 << 30):
    """Appends `block` bytes and fdatasyncs, in a loop for `seconds`, on a file in `directory` (same filesystem as a
    data dir). Returns {syncs_per_s, mb_per_s, syncs, seconds, block}. The file is new each call and removed after;
    it is truncated back to 0 whenever it would pass max_bytes."""
    path = os.path.join(directory, f".qvbench-fsync-{os.getpid()}")
    buf = os.urandom(block)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = 0
    size = 0
    try:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            if size + block > max_bytes:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                size = 0
            os.write(fd, buf)
            os.fdatasync(fd)
            size += block
            n += 1
            t = time.perf_counter()
            if t >= deadline:
                break
        dt = t - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return {"block_bytes": block, "syncs": n, "seconds": dt, "syncs_per_s": n / dt, "mb_per_s": n * block / dt / 1e6}


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def load_snapshot():
    """What else is running right now: loadavg and the head of top."""
    try:
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[:3]
    except OSError:
        loadavg = None
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": loadavg,
            "uptime": _run(["uptime"]).strip(), "top": top_now()}


def top_now(lines=15):
    """The head of top's second frame (the first one averages since boot), half a second after the first."""
    out = _run(["top", "-bn2", "-d", "0.5", "-w", "160"])
    i = out.rfind("top - ")
    return out[i:].splitlines()[:lines] if i >= 0 else out.splitlines()[:lines]


def machine_info():
    cpu, flags = None, []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    simd = [x for x in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl") if x in flags]
    return {"nproc": os.cpu_count(), "online_cpus": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "cpu_simd_flags": simd, "mem_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
            "kernel": platform.release(), "python": sys.version.split()[0], "numpy": np.__version__,
            "grpcio": grpc.__version__}


def write_json(path, obj):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=float)
        f.write("\n")
    os.replace(tmp, path)


def log(*a):
    print(*a, file=sys.stderr, flush=True)
