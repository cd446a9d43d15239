"""Helpers for Quiver's Python integration tests (pytest, run with Debian's /usr/bin/python3).

- Stubs: generated once per interpreter from proto/quiver/v1/quiver.proto with Debian's `protoc` and
  `grpc_python_plugin` into a temp dir (Debian's python3-grpc-tools bundles a protoc too old for this proto).
- Server: one `quiverd --role standalone` on a free port in its own temp dir, in its own process group (kill -9 of
  the group), stdout+stderr in a log file whose tail is attached to every failing test (see conftest.py).
- Builders for values, points and filters. A filter built here carries both its protobuf and a Python predicate, so
  every test computes the expected matches from the same expression it sends.
- Ground truth: exact scores in float64 with NumPy and a tie-tolerant comparison of a server top-k against them.

Environment: QUIVERD (the binary; default <repo>/build/quiverd when it exists), QV_PROTOC, QV_GRPC_PYTHON_PLUGIN,
QV_KEEP=1 keeps server data dirs and logs after the run.
"""
import atexit
import itertools
import math
import os
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

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"


# ---------------------------------------------------------------------------------------------------------------------
# stubs
# ---------------------------------------------------------------------------------------------------------------------
def _generate_stubs():
    out = tempfile.mkdtemp(prefix="qv-stubs-")
    if not os.environ.get("QV_KEEP"):
        atexit.register(shutil.rmtree, out, True)
    protoc = os.environ.get("QV_PROTOC", "protoc")
    plugin = os.environ.get("QV_GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
    cmd = [protoc, f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}",
           f"--plugin=protoc-gen-grpc_python={plugin}", "quiver/v1/quiver.proto"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"stub generation failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
    sys.path.insert(0, out)
    from quiver.v1 import quiver_pb2, quiver_pb2_grpc  # noqa: E402
    return quiver_pb2, quiver_pb2_grpc


pb, pbg = _generate_stubs()


def proto_module(rel_path, name):
    """The messages of proto/<rel_path> (e.g. grpc/reflection/v1alpha/reflection.proto) as a module named `name`,
    generated with Debian's protoc and loaded from its file: the standard gRPC protos' package `grpc` would clash with
    grpcio's on import."""
    import importlib.util
    out = tempfile.mkdtemp(prefix="qv-proto-")
    if not os.environ.get("QV_KEEP"):
        atexit.register(shutil.rmtree, out, True)
    cmd = [os.environ.get("QV_PROTOC", "protoc"), f"-I{PROTO_DIR}", f"--python_out={out}", rel_path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"stub generation failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
    spec = importlib.util.spec_from_file_location(name, os.path.join(out, rel_path[:-len(".proto")] + "_pb2.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
import grpc  # noqa: E402  (after the stubs: they import grpc themselves)

SC = grpc.StatusCode
L2, IP, COSINE = pb.METRIC_L2, pb.METRIC_IP, pb.METRIC_COSINE
INT64, DOUBLE, KEYWORD, BOOL, KEYWORDS = (pb.FIELD_TYPE_INT64, pb.FIELD_TYPE_DOUBLE, pb.FIELD_TYPE_KEYWORD,
                                          pb.FIELD_TYPE_BOOL, pb.FIELD_TYPE_KEYWORDS)
GROWING, SEALED = pb.SEGMENT_STATE_GROWING, pb.SEGMENT_STATE_SEALED
METRIC_NAME = {L2: "L2", IP: "IP", COSINE: "COSINE"}
HAS_INDEX_KINDS = hasattr(pb, "IndexParams") and hasattr(pb, "INDEX_KIND_FLAT")

MAX_MSG = 256 << 20  # client limits well above the server's 64 MiB, so that the server is the one that refuses
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)]
RPC_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------------------------------
# server process
# ---------------------------------------------------------------------------------------------------------------------
def quiverd_path():
    p = os.environ.get("QUIVERD")
    if not p:
        default = REPO / "build" / "quiverd"
        return str(default) if default.exists() else None
    return p


def cli_path():
    """The quiver CLI: $QUIVER_CLI, else build/quiver when it exists, else None."""
    p = os.environ.get("QUIVER_CLI")
    if p:
        return p
    d = REPO / "build" / "quiver"
    return str(d) if d.exists() else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVERS = []  # servers not yet cleaned up; conftest attaches their log tails to failing tests
_log_ids = itertools.count()


class Client:
    """Stubs on one channel of their own, each call with a default deadline."""

    def __init__(self, addr, timeout=RPC_TIMEOUT):
        self.addr = addr
        self.channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self.q = _Timed(pbg.QuiverStub(self.channel), timeout)
        self.admin = _Timed(pbg.AdminStub(self.channel), timeout)

    def close(self):
        self.channel.close()

    # short forms used all over the tests
    def create(self, name, dim, metric=L2, fields=(), shards=0, index=None):
        """index: an IndexParams; by default FLAT where the proto has index kinds, so that every search is exact
        (these tests compare against brute force; tests/integration/test_index.py covers the HNSW path)."""
        req = pb.CreateCollectionRequest(name=name, dim=dim, metric=metric, shards=shards,
                                         fields=[pb.FieldSchema(name=n, type=t) for n, t in fields])
        if index is None and HAS_INDEX_KINDS:
            index = pb.IndexParams(kind=pb.INDEX_KIND_FLAT)
        if index is not None:
            req.index.CopyFrom(index)
        return self.q.CreateCollection(req)

    def describe(self, name):
        return self.q.DescribeCollection(pb.DescribeCollectionRequest(name=name)).collection

    def names(self):
        return sorted(c.name for c in self.q.ListCollections(pb.ListCollectionsRequest()).collections)

    def upsert(self, coll, points):
        return self.q.Upsert(pb.UpsertRequest(collection=coll, points=points))

    def upsert_all(self, coll, points, batch=500):
        n = 0
        for s in range(0, len(points), batch):
            n += self.upsert(coll, points[s:s + batch]).count
        return n

    def delete(self, coll, ids):
        return self.q.Delete(pb.DeleteRequest(collection=coll, ids=list(ids))).deleted

    def get(self, coll, ids, with_vectors=True):
        return list(self.q.Get(pb.GetRequest(collection=coll, ids=list(ids), with_vectors=with_vectors)).points)

    def get_map(self, coll, ids, with_vectors=True, chunk=1000):
        """id -> Point for every present id (chunked Gets)."""
        ids = list(ids)
        out = {}
        for s in range(0, len(ids), chunk):
            for p in self.get(coll, ids[s:s + chunk], with_vectors):
                out[p.id] = p
        return out

    def count(self, coll, flt=None):
        req = pb.CountRequest(collection=coll)
        if flt is not None:
            req.filter.CopyFrom(filter_pb(flt))
        return self.q.Count(req).count

    def search(self, coll, vec, k, flt=None, exact=False, with_attributes=False, with_vectors=False,
               with_text=False):
        req = pb.SearchRequest(collection=coll, k=k, with_attributes=with_attributes, with_vectors=with_vectors,
                               with_text=with_text)
        req.vector.extend(np.asarray(vec, np.float32).tolist())
        if flt is not None:
            req.filter.CopyFrom(filter_pb(flt))
        if exact:
            req.params.exact = True
        return self.q.Search(req)

    def flush(self, coll=""):
        return self.admin.Flush(pb.FlushRequest(collection=coll)).sealed_segments

    def stats(self):
        return self.admin.Stats(pb.StatsRequest())


class _Timed:
    def __init__(self, stub, timeout):
        self._stub, self._timeout = stub, timeout

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        def call(request, timeout=None, **kw):
            return method(request, timeout=timeout if timeout is not None else self._timeout, **kw)

        call.__name__ = name
        return call


class Server:
    """One quiverd. start()/stop()/kill9()/restart() keep the data dir; every start takes a fresh free port."""

    def __init__(self, seal_rows=None, threads=None, extra=(), binary=None):
        self.binary = binary or quiverd_path()
        if not self.binary:
            raise RuntimeError("QUIVERD is not set and build/quiverd does not exist")
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"QUIVERD={self.binary} is not an executable file")
        self.tmp = tempfile.mkdtemp(prefix="qvit-")
        self.data = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, f"quiverd-{next(_log_ids)}.log")
        self.flags = []
        if seal_rows is not None:
            self.flags += ["--seal-rows", str(seal_rows)]
        if threads is not None:
            self.flags += ["--threads", str(threads)]
        self.flags += list(extra)
        self.proc = None
        self.env = None  # None: this process's environment
        self.port = None
        self._client = None
        self.starts = 0
        SERVERS.append(self)

    # -- lifecycle --
    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cmdline(self):
        return [self.binary, "--role", "standalone", "--listen", self.addr, "--data", self.data] + self.flags

    def start(self, timeout=90):
        assert not self.running, "server already running"
        last = None
        for _attempt in range(3):  # a free port can be taken between free_port() and bind(): retry on a new one
            self.port = free_port()
            self.starts += 1
            cmd = self.cmdline()
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== start #{self.starts}: {' '.join(cmd)} =====\n".encode())
                log.flush()
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True, env=self.env)
            ok, last = self._wait_healthy(timeout)
            if ok:
                return self
            if self.running:
                break
            if not re.search(r"address|bind|in use", self._this_start_log(), re.I):
                break
        threads = thread_dump(self.proc.pid) if self.running else ""
        self.kill9()
        raise RuntimeError(f"quiverd did not become healthy: {last}\ncommand: {' '.join(self.cmdline())}\n"
                           f"--- log tail ({self.log_path}) ---\n{self.log_tail()}{threads}")

    def _wait_healthy(self, timeout):
        t0 = time.monotonic()
        last = "no answer"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                return False, f"exited with status {self.proc.returncode} during start-up"
            # a fresh channel (and subchannel) per try: a channel that was refused waits out gRPC's reconnect
            # backoff (1 s, x1.6, ...), which would add seconds to every start
            ch = grpc.insecure_channel(self.addr, options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                h = pbg.AdminStub(ch).Health(pb.HealthRequest(), timeout=2)
                if h.status == pb.HealthResponse.STATUS_SERVING:
                    return True, None
                last = f"Health status {h.status}"
            except grpc.RpcError as e:
                last = f"Health: {e.code()} {e.details()}"
            finally:
                ch.close()
            time.sleep(0.05)
        return False, f"no healthy answer within {timeout} s ({last})"

    def _close_client(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self, timeout=60):
        """SIGTERM; returns the exit status (tests assert it is 0). kill -9 and raise if it does not exit."""
        self._close_client()
        if not self.running:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise RuntimeError(f"quiverd ignored SIGTERM for {timeout} s\n{self.log_tail()}")

    def kill9(self):
        self._close_client()
        if self.running:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def restart(self, kill=False):
        if kill:
            self.kill9()
        else:
            rc = self.stop()
            assert rc == 0, f"quiverd exited with status {rc} on SIGTERM\n{self.log_tail()}"
        return self.start()

    def cleanup(self):
        self.kill9()
        if self in SERVERS:
            SERVERS.remove(self)
        if not os.environ.get("QV_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- clients --
    @property
    def client(self):
        """The server's shared client (recreated after a restart)."""
        if self._client is None or self._client.addr != self.addr:
            self._close_client()
            self._client = Client(self.addr)
        return self._client

    def new_client(self, timeout=RPC_TIMEOUT):
        """A client on a channel of its own (for threads, or to read from another connection than the writer)."""
        return Client(self.addr, timeout)

    # -- logs --
    def log_tail(self, lines=120):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 256 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def _this_start_log(self):
        text = self.log_tail(400)
        i = text.rfind("===== start #")
        return text[i:] if i >= 0 else text


# ---------------------------------------------------------------------------------------------------------------------
# values, points
# ---------------------------------------------------------------------------------------------------------------------
class Keywords(list):
    """A KEYWORDS value (a plain list works too)."""


def value(v):
    """Python -> Value: bool, int, float (double), str (keyword), list/tuple of str (keywords); a Value passes."""
    if isinstance(v, pb.Value):
        return v
    if isinstance(v, (bool, np.bool_)):
        return pb.Value(bool_value=bool(v))
    if isinstance(v, (int, np.integer)):
        return pb.Value(int_value=int(v))
    if isinstance(v, (float, np.floating)):
        return pb.Value(double_value=float(v))
    if isinstance(v, str):
        return pb.Value(keyword_value=v)
    if isinstance(v, (list, tuple)):
        return pb.Value(keywords_value=pb.Keywords(values=list(v)))
    raise TypeError(f"no Value for {v!r}")


def from_value(v):
    """Value -> Python, type preserved (keywords become a list)."""
    kind = v.WhichOneof("kind")
    if kind == "int_value":
        return int(v.int_value)
    if kind == "double_value":
        return float(v.double_value)
    if kind == "keyword_value":
        return str(v.keyword_value)
    if kind == "bool_value":
        return bool(v.bool_value)
    if kind == "keywords_value":
        return list(v.keywords_value.values)
    return None


def attrs_of(msg):
    """attributes map of a Point or Hit -> {name: python value}."""
    return {k: from_value(v) for k, v in msg.attributes.items()}


def typed(attrs):
    """A comparable form that keeps types apart (1 vs 1.0 vs True; list order kept)."""
    return {k: (type(v).__name__, tuple(v) if isinstance(v, list) else v) for k, v in (attrs or {}).items()}


def point(pid, vec, attrs=None, text=""):
    p = pb.Point(id=pid, text=text)
    p.vector.extend(np.asarray(vec, np.float32).tolist())
    for k, v in (attrs or {}).items():
        p.attributes[k].CopyFrom(value(v))
    return p


def vec_of(msg):
    return np.array(msg.vector, dtype=np.float32)


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


# ---------------------------------------------------------------------------------------------------------------------
# filters: protobuf + predicate from one expression
# ---------------------------------------------------------------------------------------------------------------------
class Flt:
    def __init__(self, msg, match, text):
        self.pb, self.match, self.text = msg, match, text

    def __repr__(self):
        return self.text

    def mask(self, attrs_list):
        return np.array([bool(self.match(a)) for a in attrs_list], dtype=bool)


def filter_pb(f):
    return f.pb if isinstance(f, Flt) else f


def _same(a, b):
    """Typed equality: True is not 1, 1 is not 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b


def _value_matches(attr, v):
    if attr is None:
        return False
    if isinstance(attr, list):  # KEYWORDS: any element
        return any(_same(x, v) for x in attr)
    return _same(attr, v)


def eq(field, v):
    c = pb.Condition(field=field)
    c.eq.CopyFrom(value(v))
    return Flt(pb.Filter(cond=c), lambda a: _value_matches(a.get(field), v), f"{field}=={v!r}")


def any_of(field, values):
    c = pb.Condition(field=field)
    c.any_of.SetInParent()
    c.any_of.values.extend([value(v) for v in values])
    return Flt(pb.Filter(cond=c), lambda a: any(_value_matches(a.get(field), v) for v in values),
               f"{field} in {list(values)!r}")


def rng(field, gt=None, gte=None, lt=None, lte=None):
    c = pb.Condition(field=field)
    c.range.SetInParent()
    for name, b in (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)):
        if b is not None:
            setattr(c.range, name, float(b))

    def match(a):
        x = a.get(field)
        if x is None or isinstance(x, (bool, str, list)):
            return False
        return ((gt is None or x > gt) and (gte is None or x >= gte) and
                (lt is None or x < lt) and (lte is None or x <= lte))

    parts = [f"{n}{b}" for n, b in ((">", gt), (">=", gte), ("<", lt), ("<=", lte)) if b is not None]
    return Flt(pb.Filter(cond=c), match, f"{field}{''.join(parts)}")


def all_(*fs):
    f = pb.Filter()
    f.all.SetInParent()
    f.all.filters.extend([x.pb for x in fs])
    return Flt(f, lambda a: all(x.match(a) for x in fs), "all(" + ", ".join(map(repr, fs)) + ")")


def any_(*fs):
    f = pb.Filter()
    f.any.SetInParent()
    f.any.filters.extend([x.pb for x in fs])
    return Flt(f, lambda a: any(x.match(a) for x in fs), "any(" + ", ".join(map(repr, fs)) + ")")


def negate(x):
    f = pb.Filter()
    f.negate.CopyFrom(x.pb)
    return Flt(f, lambda a: not x.match(a), f"not({x!r})")


# ---------------------------------------------------------------------------------------------------------------------
# ground truth
# ---------------------------------------------------------------------------------------------------------------------
def exact_scores(base, q, metric):
    """Scores as the contract defines them, in float64: L2 squared distance, IP dot, COSINE cosine similarity."""
    base = np.asarray(base, np.float64).reshape(-1, np.asarray(q).shape[-1])
    q = np.asarray(q, np.float64)
    if metric == L2:
        return ((base - q) ** 2).sum(axis=1)
    if metric == IP:
        return base @ q
    if metric == COSINE:
        return (base / np.linalg.norm(base, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    raise ValueError(metric)


def _key(scores, metric):
    """Lower key = better hit."""
    s = np.asarray(scores, np.float64)
    return s if metric == L2 else -s


def exact_topk(ids, base, q, k, metric):
    """[(id, score)] best first, ties broken by id (only to be deterministic)."""
    if len(ids) == 0:
        return []
    s = exact_scores(base, q, metric)
    order = np.lexsort((np.asarray(ids, dtype=object).astype(str), _key(s, metric)))[:k]
    return [(ids[i], float(s[i])) for i in order]


def score_tol(s):
    return 1e-4 * max(1.0, abs(s))


def check_topk(hits, ids, base, q, k, metric, what=""):
    """Assert a server top-k equals exact search over the candidates (ids, base): the rows that are live and pass
    the filter. Tie-tolerant: an id may differ from NumPy's only where its true score ties (within tolerance) with
    the k-th score. Each returned score must match the true score of that id; hits best first; no duplicates;
    min(k, candidates) hits."""
    ids = list(ids)
    got_ids = [h.id for h in hits]
    got_scores = [float(h.score) for h in hits]
    ctx = f"{what} metric={METRIC_NAME.get(metric, metric)} k={k} candidates={len(ids)}"
    want_n = min(k, len(ids))
    want = exact_topk(ids, base, q, k, metric)
    detail = f"\n  got  {list(zip(got_ids, got_scores))[:12]}\n  want {want[:12]}"
    assert len(got_ids) == want_n, f"{ctx}: {len(got_ids)} hits, want {want_n}{detail}"
    assert len(set(got_ids)) == len(got_ids), f"{ctx}: duplicate ids in hits{detail}"
    if want_n == 0:
        return
    pos = {pid: i for i, pid in enumerate(ids)}
    stray = [g for g in got_ids if g not in pos]
    assert not stray, f"{ctx}: hits that are not live candidates (deleted, filtered out or unknown): {stray[:10]}{detail}"
    true = exact_scores(np.asarray(base)[[pos[g] for g in got_ids]], q, metric)
    for g, gs, ts in zip(got_ids, got_scores, true):
        assert abs(gs - ts) <= score_tol(ts), f"{ctx}: score of {g} is {gs}, exact {ts}{detail}"
    gk = _key(got_scores, metric)
    for i in range(len(gk) - 1):
        assert gk[i] <= gk[i + 1] + score_tol(got_scores[i]), f"{ctx}: hits not best first at {i}{detail}"
    kth = want[-1][1]
    kth_key = _key([kth], metric)[0]
    tol = score_tol(kth)
    got_set = set(got_ids)
    missing = [(pid, s) for pid, s in want if _key([s], metric)[0] < kth_key - tol and pid not in got_set]
    assert not missing, f"{ctx}: hits missing that beat the k-th score {kth}: {missing[:10]}{detail}"
    worse = [(g, t) for g, t in zip(got_ids, true) if _key([t], metric)[0] > kth_key + tol]
    assert not worse, f"{ctx}: hits worse than the k-th exact score {kth}: {worse[:10]}{detail}"


# ---------------------------------------------------------------------------------------------------------------------
# errors and describe
# ---------------------------------------------------------------------------------------------------------------------
def expect_error(fn, code, names=(), what=""):
    """Run fn, expecting an RpcError with status `code` and a non-empty message that contains every string in names
    (a string; or a tuple of alternatives, one of which must appear). Returns the message."""
    try:
        r = fn()
    except grpc.RpcError as e:
        msg = e.details() or ""
        assert e.code() == code, f"{what}: status {e.code()} ({msg!r}), want {code}"
        assert msg.strip(), f"{what}: {code} with an empty message"
        for n in names:
            alts = n if isinstance(n, tuple) else (n,)
            assert any(a in msg for a in alts), f"{what}: message {msg!r} does not name {' or '.join(map(repr, alts))}"
        return msg
    raise AssertionError(f"{what}: succeeded ({str(r)[:200]!r}), want {code}")


def point_ref(pid, index):
    """Ways a message may name a point: its id, or its index in the request."""
    alts = [f"[{index}]", f"#{index}", f"index {index}", f"point {index}", f"points[{index}]", f"{index}:"]
    if pid:
        alts.insert(0, pid if len(pid) <= 64 else pid[:32])
    return tuple(alts)


def segment_summary(info):
    g = [s for s in info.segments if s.state == GROWING]
    s = [s for s in info.segments if s.state == SEALED]
    return dict(growing_rows=sum(x.rows for x in g), sealed=len(s), sealed_rows=sum(x.rows for x in s),
                rows=sum(x.rows for x in info.segments), deleted=sum(x.deleted_rows for x in info.segments),
                states=sorted(x.state for x in info.segments))


def thread_dump(pid):
    """Where a process that hangs is waiting: each thread's name, state and kernel wait channel from /proc, and the
    user stacks when gdb is installed. For the failure message of a start that never became healthy."""
    out = [f"\n--- threads of pid {pid} ---"]
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int) if os.path.isdir(f"/proc/{pid}/task") else []:
        def rd(name):
            try:
                with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                    return f.read().strip()
            except OSError:
                return "?"
        stat = rd("stat")
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
        out.append(f"{tid} {rd('comm')} state={state} wchan={rd('wchan')}")
    if shutil.which("gdb"):
        try:
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt 20"],
                               capture_output=True, text=True, timeout=60)
            out.append(r.stdout[-20000:])
        except (subprocess.TimeoutExpired, OSError) as e:
            out.append(f"(gdb: {e})")
    return "\n".join(out)


def wait_for(pred, timeout=20.0, interval=0.05):
    t0 = time.monotonic()
    while True:
        v = pred()
        if v or time.monotonic() - t0 > timeout:
            return v
        time.sleep(interval)


def finite(x):
    return all(math.isfinite(v) for v in x)
