#!/usr/bin/env python3
"""End-to-end benchmark (issue 6): Quiver vs milvus-lite vs chromadb on the same data, in one run, from one Python
process with the same client harness (a thin adapter per system).

Run it through bench/e2e/run.sh, which builds quiverd and the venv (build-bench/e2e-venv: pymilvus, milvus-lite,
chromadb, grpcio-tools, matplotlib) and passes its arguments here.

Data: --n x --dim float32 (default 200,000 x 128), clustered Gaussian with a fixed seed (--clusters centres drawn
N(0, 1), rows = centre + 0.5 N(0, 1), as bench/exact_search.py), and --queries queries drawn the same way (near the
data, not rows of it). Metric: L2 (squared Euclidean) everywhere. Ground truth: exact NumPy top-k (float32 GEMM for
candidates, re-ranked in float64).

Per system, in this order (all three stay up until the end, so that their timed rounds can be interleaved):
  load   ids + vectors in batches of --batch (1000) through the system's own Python client: Quiver Upsert over gRPC
         (the generated stubs; not the `quiver load` CLI), milvus-lite MilvusClient.insert, chroma Collection.add.
         Timed from the first batch to the last acknowledgement, client-side serialization included.
  build  after the load, until the index is complete: Quiver Admin.Flush, then DescribeCollection until every sealed
         segment is INDEX_STATE_READY (segments seal at quiverd's default --seal-rows 100000 and the first ones are
         indexed in the background while the load goes on); milvus-lite flush, then describe_index until no row is
         pending; chroma builds its HNSW graph inside add(), so its build time is 0 and its load time includes it.
  tune   search breadth raised along --ef-ladder until recall@10 over all queries >= --target-recall (Quiver
         SearchParams.ef, milvus search_params ef, chroma hnsw ef_search via Collection.modify(configuration=...)).
         Every system gets the same HNSW build parameters: M = --m (16), ef_construction = --ef-construction (200).
  time   --rounds rounds; in each round each system runs, for each thread count in --threads (1,4,8), a batch of
         queries (all --queries, cycled until --min-seconds have passed) from that many client threads, each thread
         with its own client/channel (chroma embedded: one shared client). QPS = queries / wall time of the batch;
         the table gives the median over rounds, and p99 over the latencies of every round.

Peers' modes (flags): milvus-lite runs by default as its own server process (`milvus-lite server`, pymilvus over
gRPC on loopback), like quiverd, so that its Python server threads do not share the benchmark process's GIL
(--milvus-mode embedded runs it inside this process, the MilvusClient("x.db") way). chroma runs by default embedded
(chromadb.PersistentClient, its Rust core inside this process, no network hop); --chroma-mode server uses `chroma
run` and chromadb.HttpClient instead.

Output: a Markdown table on stdout and in --out/e2e.md, all numbers in --out/e2e.json, the plot in --out/e2e.png.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TMP_ROOT = None  # set in main: everything this run writes outside --out goes under it
PROCS = []  # server processes we started: stopped at exit


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def start_proc(cmd, log_path, env=None):
    f = open(log_path, "ab")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                         env=env)
    PROCS.append(p)
    return p


def stop_proc(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


# =====================================================================================================================
# data and ground truth
# =====================================================================================================================
def make_data(n, dim, nq, clusters, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    base = np.empty((n, dim), np.float32)
    for s in range(0, n, 10_000):
        e = min(n, s + 10_000)
        base[s:e] = centres[rng.integers(clusters, size=e - s)] + 0.5 * rng.standard_normal((e - s, dim),
                                                                                            dtype=np.float32)
    queries = centres[rng.integers(clusters, size=nq)] + 0.5 * rng.standard_normal((nq, dim), dtype=np.float32)
    return base, np.ascontiguousarray(queries, np.float32)


def ground_truth(base, queries, k, cand=64, chunk=100):
    """Exact top-k ids by squared L2: float32 GEMM for the best `cand` candidates, re-ranked in float64."""
    norms = (base.astype(np.float64) ** 2).sum(1).astype(np.float32)
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), chunk):
        q = queries[s:s + chunk]
        d = norms[None, :] - 2.0 * (q @ base.T)
        c = np.argpartition(d, cand, axis=1)[:, :cand]
        for i in range(len(q)):
            ids = c[i]
            d64 = ((base[ids].astype(np.float64) - q[i].astype(np.float64)) ** 2).sum(1)
            out[s + i] = ids[np.lexsort((ids, d64))[:k]]
    return out


def recall_at_k(results, gt, k):
    hits = 0
    for r, g in zip(results, gt):
        hits += len(set(r[:k]) & set(g[:k].tolist()))
    return hits / (len(gt) * k)


# =====================================================================================================================
# adapters: setup(), load(base, batch) -> s, build() -> s, set_ef(ef), handle() -> h, search(h, q, k) -> [int ids]
# =====================================================================================================================
class Quiver:
    name = "quiver"

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.binary = args.quiverd
        self.ef = 64
        self.notes = []

    def setup(self):
        out = os.path.join(self.tmp, "stubs")
        os.makedirs(out, exist_ok=True)
        from grpc_tools import protoc
        import grpc_tools
        inc = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        proto = os.environ.get("QV_PROTO_DIR") or str(REPO / "proto")
        rc = protoc.main(["protoc", f"-I{proto}", f"-I{inc}", f"--python_out={out}",
                          f"--grpc_python_out={out}", "quiver/v1/quiver.proto"])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {proto}/quiver/v1/quiver.proto")
        sys.path.insert(0, out)
        import grpc
        from quiver.v1 import quiver_pb2 as pb, quiver_pb2_grpc as pbg
        self.grpc, self.pb, self.pbg = grpc, pb, pbg
        self.port = free_port()
        self.data = os.path.join(self.tmp, "quiver-data")
        self.cmd = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data", self.data, "--metrics-listen", "off"]
        self.proc = start_proc(self.cmd, os.path.join(self.tmp, "quiverd.log"))
        self.opts = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
        ch = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=self.opts)
        self.q, self.admin = pbg.QuiverStub(ch), pbg.AdminStub(ch)
        t0 = time.monotonic()
        while True:
            try:
                h = self.admin.Health(pb.HealthRequest(), timeout=2)
                if h.status == pb.HealthResponse.STATUS_SERVING:
                    self.version = h.version
                    break
            except grpc.RpcError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                raise RuntimeError(f"quiverd did not start: {' '.join(self.cmd)} (log {self.tmp}/quiverd.log)")
            time.sleep(0.05)
        self.q.CreateCollection(pb.CreateCollectionRequest(
            name="bench", dim=self.args.dim, metric=pb.METRIC_L2,
            index=pb.IndexParams(kind=pb.INDEX_KIND_HNSW, m=self.args.m, ef_construction=self.args.ef_construction)),
            timeout=60)
        self.notes.append(f"quiverd {self.version} ({self.binary}), its own process, grpcio over loopback; flags "
                          f"`--metrics-listen off`, defaults otherwise (--seal-rows 100000, --threads 16, "
                          f"--index-threads = CPUs); load: Upsert batches over gRPC from Python, not `quiver load`")

    def server_pid(self):
        return self.proc.pid

    def load(self, base, batch):
        pb = self.pb
        t0 = time.perf_counter()
        for s in range(0, len(base), batch):
            req = pb.UpsertRequest(collection="bench")
            for i in range(s, min(len(base), s + batch)):
                p = req.points.add(id=str(i))
                p.vector.extend(base[i].tolist())
            self.q.Upsert(req, timeout=600)
        return time.perf_counter() - t0

    def build(self):
        pb = self.pb
        t0 = time.perf_counter()
        self.admin.Flush(pb.FlushRequest(collection="bench"), timeout=600)
        while True:
            c = self.q.DescribeCollection(pb.DescribeCollectionRequest(name="bench"), timeout=60).collection
            sealed = [s for s in c.segments if s.state == pb.SEGMENT_STATE_SEALED]
            if any(s.index_state == pb.INDEX_STATE_FAILED for s in sealed):
                raise RuntimeError("an index build FAILED")
            # segments under --index-min-rows (1000) stay unindexed by design and are scanned exactly
            if all(s.index_state == pb.INDEX_STATE_READY or s.rows < 1000 for s in sealed) and \
                    all(s.state == pb.SEGMENT_STATE_SEALED or s.rows == 0 for s in c.segments):
                break
            time.sleep(0.1)
        dt = time.perf_counter() - t0
        self.segments = [(s.rows, pb.IndexState.Name(s.index_state)) for s in c.segments]
        self.notes.append(f"segments after build: {self.segments}")
        if c.live_rows != self.args.n:
            raise RuntimeError(f"live_rows {c.live_rows} != {self.args.n}")
        return dt

    def set_ef(self, ef):
        self.ef = ef

    def handle(self):
        ch = self.grpc.insecure_channel(f"127.0.0.1:{self.port}", options=self.opts)
        self.pbg.AdminStub(ch).Health(self.pb.HealthRequest(), timeout=10)  # connect before the clock
        return self.pbg.QuiverStub(ch)

    def search(self, h, q, k):
        r = h.Search(self.pb.SearchRequest(collection="bench", vector=q.tolist(), k=k,
                                           params=self.pb.SearchParams(ef=self.ef)), timeout=60)
        return [int(x.id) for x in r.hits]

    def close(self):
        stop_proc(self.proc)


class Milvus:
    name = "milvus-lite"

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.ef = 64
        self.notes = []
        self.proc = None

    def setup(self):
        import pymilvus
        from pymilvus import DataType, MilvusClient
        import milvus_lite
        self.MilvusClient = MilvusClient
        self.version = f"pymilvus {pymilvus.__version__}, milvus-lite {getattr(milvus_lite, '__version__', '?')}"
        data = os.path.join(self.tmp, "milvus.db")
        if self.args.milvus_mode == "server":
            self.port = free_port()
            exe = os.path.join(os.path.dirname(sys.executable), "milvus-lite")
            cmd = [exe, "server", "--data-dir", data, "--host", "127.0.0.1", "--port", str(self.port)]
            self.proc = start_proc(cmd, os.path.join(self.tmp, "milvus-lite.log"))
            if not wait_port(self.port, self.proc):
                raise RuntimeError(f"milvus-lite server did not start: {' '.join(cmd)} (log {self.tmp}/milvus-lite.log)")
            self.uri = f"http://127.0.0.1:{self.port}"
            self.notes.append(f"{self.version}: its own process, `milvus-lite server` (pure-Python gRPC server, "
                              f"FAISS HNSW per segment), pymilvus MilvusClient over loopback gRPC")
        else:
            self.uri = data
            self.notes.append(f"{self.version}: embedded, MilvusClient(\"milvus.db\") inside the benchmark process")
        self.c = self._client()
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.args.dim)
        ip = self.c.prepare_index_params()
        ip.add_index(field_name="vec", index_type="HNSW", metric_type="L2",
                     params={"M": self.args.m, "efConstruction": self.args.ef_construction})
        self.c.create_collection("bench", schema=schema, index_params=ip)

    def _client(self):
        t0 = time.monotonic()
        while True:
            try:
                return self.MilvusClient(uri=self.uri)
            except Exception:  # noqa: BLE001  (the server may still be starting)
                if time.monotonic() - t0 > 60:
                    raise
                time.sleep(0.5)

    def server_pid(self):
        return self.proc.pid if self.proc else os.getpid()

    def load(self, base, batch):
        t0 = time.perf_counter()
        for s in range(0, len(base), batch):
            e = min(len(base), s + batch)
            self.c.insert("bench", [{"id": i, "vec": base[i]} for i in range(s, e)])
        return time.perf_counter() - t0

    def build(self):
        # milvus-lite 3.x flushes synchronously but compacts segments (towards 100,000 rows) and builds their HNSW
        # indexes in a background thread, and searches segments without an index by brute force meanwhile. Its
        # describe_index reports state Finished with indexed_rows = row count unconditionally, so it cannot say when
        # the build is over: the build ends when the server process goes idle (under 0.1 cores for two 1-second
        # windows in a row; the end is the start of those windows).
        t0 = time.perf_counter()
        self.c.flush("bench")
        pid = self.server_pid()
        idle_since = None
        while True:
            w0 = time.perf_counter()
            c0 = cpu_seconds(pid)
            time.sleep(1.0)
            c1 = cpu_seconds(pid)
            cores = (c1 - c0) / (time.perf_counter() - w0) if c0 is not None and c1 is not None else 0.0
            if cores < 0.1:
                if idle_since is not None:
                    break
                idle_since = w0
            else:
                idle_since = None
            if time.perf_counter() - t0 > 3600:
                raise RuntimeError("milvus-lite did not go idle within an hour after flush")
        self.c.load_collection("bench")
        dt = idle_since - t0
        st = self.c.get_collection_stats("bench")
        d = self.c.describe_index("bench", "vec")
        self.notes.append(f"build = flush + background compaction/index build until the server process is idle "
                          f"(describe_index cannot tell: it reports {d.get('state')} with indexed_rows = row count "
                          f"at all times); stats {st}")
        if int(st.get("row_count", -1)) != self.args.n:
            raise RuntimeError(f"row_count {st} != {self.args.n}")
        return dt

    def set_ef(self, ef):
        self.ef = ef

    def handle(self):
        h = self.MilvusClient(uri=self.uri)
        h.search("bench", data=[[0.0] * self.args.dim], limit=1, output_fields=["id"])  # connect before the clock
        return h

    def search(self, h, q, k):
        r = h.search("bench", data=[q], limit=k, output_fields=["id"],
                     search_params={"metric_type": "L2", "params": {"ef": self.ef}})
        return [int(x["id"]) for x in r[0]]

    def close(self):
        try:
            self.c.close()
        except Exception:  # noqa: BLE001
            pass
        if self.proc:
            stop_proc(self.proc)


class Chroma:
    name = "chroma"

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.notes = []
        self.proc = None

    def setup(self):
        import chromadb
        self.chromadb = chromadb
        self.version = f"chromadb {chromadb.__version__}"
        self.path = path = os.path.join(self.tmp, "chroma")
        if self.args.chroma_mode == "server":
            self.port = free_port()
            exe = os.path.join(os.path.dirname(sys.executable), "chroma")
            self.cmd = cmd = [exe, "run", "--path", path, "--host", "127.0.0.1", "--port", str(self.port)]
            self.proc = start_proc(cmd, os.path.join(self.tmp, "chroma.log"))
            if not wait_port(self.port, self.proc):
                raise RuntimeError(f"chroma server did not start: {' '.join(cmd)} (log {self.tmp}/chroma.log)")
            self.client = chromadb.HttpClient(host="127.0.0.1", port=self.port)
            self.notes.append(f"{self.version}: its own process (`chroma run`), chromadb.HttpClient over loopback HTTP")
        else:
            self.client = chromadb.PersistentClient(path=path)
            self.notes.append(f"{self.version}: embedded, chromadb.PersistentClient (Rust core inside the benchmark "
                              f"process, no network hop)")
        self.col = self.client.create_collection(
            "bench", embedding_function=None,
            configuration={"hnsw": {"space": "l2", "ef_construction": self.args.ef_construction,
                                    "max_neighbors": self.args.m, "ef_search": 10}})

    def server_pid(self):
        return self.proc.pid if self.proc else os.getpid()

    def load(self, base, batch):
        t0 = time.perf_counter()
        for s in range(0, len(base), batch):
            e = min(len(base), s + batch)
            self.col.add(ids=[str(i) for i in range(s, e)], embeddings=base[s:e])
        return time.perf_counter() - t0

    def build(self):
        # the HNSW graph is built inside add(); check the count and that the index answers
        t0 = time.perf_counter()
        n = self.col.count()
        if n != self.args.n:
            raise RuntimeError(f"count {n} != {self.args.n}")
        return time.perf_counter() - t0

    def set_ef(self, ef):
        # Collection.modify stores the new ef_search, but an HNSW index already loaded keeps the ef it was loaded
        # with (checked: recall does not move). So the client is reopened after the change (embedded: chroma's
        # shared-system cache cleared, a new PersistentClient; server: the server restarted), and the index is then
        # read back from disk with the new ef on the first query, which is part of the tuning pass, not of the
        # timed rounds.
        self.col.modify(configuration={"hnsw": {"ef_search": ef}})
        if self.proc:
            stop_proc(self.proc)
            self.proc = start_proc(self.cmd, os.path.join(self.tmp, "chroma.log"))
            if not wait_port(self.port, self.proc):
                raise RuntimeError("chroma server did not restart")
            self.client = self.chromadb.HttpClient(host="127.0.0.1", port=self.port)
        else:
            from chromadb.api.client import SharedSystemClient
            SharedSystemClient.clear_system_cache()
            self.client = self.chromadb.PersistentClient(path=self.path)
        self.col = self.client.get_collection("bench", embedding_function=None)
        got = self.col.configuration_json["hnsw"]["ef_search"]
        if got != ef:
            raise RuntimeError(f"chroma ef_search is {got} after setting {ef}")

    def handle(self):
        if self.proc:  # server mode: a client per thread
            c = self.chromadb.HttpClient(host="127.0.0.1", port=self.port)
            return c.get_collection("bench", embedding_function=None)
        return None  # embedded: one client, the current collection object (set_ef replaces it)

    def search(self, h, q, k):
        r = (h or self.col).query(query_embeddings=[q], n_results=k, include=["distances"])
        return [int(x) for x in r["ids"][0]]

    def close(self):
        if self.proc:
            stop_proc(self.proc)


ADAPTERS = {"quiver": Quiver, "milvus-lite": Milvus, "chroma": Chroma}


# =====================================================================================================================
# the harness: the same for every system
# =====================================================================================================================
def run_batch(sys_, queries, threads, k, min_seconds, handles):
    """All queries once (cycled on until min_seconds have passed), from `threads` threads taking the next query off a
    shared counter. Returns (qps, latencies in s, results of the first pass by query index)."""
    nq = len(queries)
    lock = threading.Lock()
    state = {"next": 0, "stop": False}
    lat = [[] for _ in range(threads)]
    results = [None] * nq
    errors = []
    start = threading.Barrier(threads + 1)
    t_end = [0.0] * threads

    def take():
        with lock:
            i = state["next"]
            if i >= nq and state["stop"]:
                return -1
            state["next"] = i + 1
            return i

    def worker(t):
        h = handles[t]
        start.wait()
        try:
            while True:
                i = take()
                if i < 0:
                    break
                q = queries[i % nq]
                t0 = time.perf_counter()
                ids = sys_.search(h, q, k)
                lat[t].append(time.perf_counter() - t0)
                if i < nq:
                    results[i] = ids
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            with lock:
                state["stop"] = True
                state["next"] = 1 << 62
        t_end[t] = time.perf_counter()

    ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    [t.start() for t in ts]
    start.wait()
    t0 = time.perf_counter()

    def stopper():
        time.sleep(min_seconds)
        with lock:
            state["stop"] = True

    st = threading.Thread(target=stopper, daemon=True)
    st.start()
    # stop once min_seconds have passed AND every query ran once: take() returns -1 only when both hold
    [t.join() for t in ts]
    if errors:
        raise errors[0]
    wall = max(t_end) - t0
    all_lat = [x for l in lat for x in l]
    return len(all_lat) / wall, all_lat, results


def tune(sys_, queries, gt, k, ladder, target, handles):
    """Raises ef along the ladder until recall >= target. Returns (ef, recall, [(ef, recall, qps)])."""
    tried = []
    for ef in ladder:
        if ef < k:
            continue
        sys_.set_ef(ef)
        qps, _, res = run_batch(sys_, queries, len(handles), k, 0, handles)
        r = recall_at_k(res, gt, k)
        tried.append((ef, r, qps))
        log(f"  {sys_.name}: ef {ef}: recall@{k} {r:.4f} ({qps:.0f} QPS with {len(handles)} threads)")
        if r >= target:
            return ef, r, tried
    return None, tried[-1][1] if tried else None, tried


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "nproc_cmd": sh(["nproc"]), "cpu_model": cpu, "kernel": platform.release(),
            "python": sys.version.split()[0], "numpy": np.__version__}


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{nd}f}"


def table(res, threads):
    ref = res.get("milvus-lite", {})
    head = ["system", "load s", "build s", "ef used", "recall@10"] + [f"QPS {t}T" for t in threads] + \
        [f"p99 ms {t}T" for t in threads] + [f"QPS ÷ milvus-lite {t}T" for t in threads] + \
        [f"p99 ÷ milvus-lite {t}T" for t in threads]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, r in res.items():
        if r.get("error"):
            lines.append(f"| {name} | " + " | ".join(["-"] * (len(head) - 2)) + f" | error: {r['error'][:80]} |")
            continue
        row = [name, fmt(r["load_s"]), fmt(r["build_s"]), str(r["ef"]), f"{r['recall']:.4f}"]
        row += [fmt(r["by_threads"][str(t)]["qps_median"]) for t in threads]
        row += [fmt(r["by_threads"][str(t)]["p99_ms"], 2) for t in threads]
        for key in ("qps_median", "p99_ms"):
            for t in threads:
                a = r["by_threads"][str(t)][key]
                b = ref.get("by_threads", {}).get(str(t), {}).get(key) if not ref.get("error") else None
                row.append(f"{a / b:.2f}" if a and b else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(res, threads, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in res.items():
        if r.get("error"):
            continue
        q = [r["by_threads"][str(t)]["qps_median"] for t in threads]
        lo = [r["by_threads"][str(t)]["qps_min"] for t in threads]
        hi = [r["by_threads"][str(t)]["qps_max"] for t in threads]
        lab = f"{name} (ef {r['ef']}, recall@10 {r['recall']:.3f})"
        a1.plot(threads, q, marker="o", label=lab)
        a1.fill_between(threads, lo, hi, alpha=0.15)
        a2.plot(threads, [r["by_threads"][str(t)]["p99_ms"] for t in threads], marker="o", label=name)
    a1.set_xlabel("client threads")
    a1.set_ylabel("Search QPS (median round; band: min-max)")
    a1.set_xticks(threads)
    a1.set_yscale("log")
    a1.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=8, loc="best")
    a2.set_xlabel("client threads")
    a2.set_ylabel("p99 latency, ms")
    a2.set_xticks(threads)
    a2.set_yscale("log")
    a2.grid(True, which="both", alpha=0.3)
    a2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="rows (default 200000; the issue's fallback is 1000000)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--m", type=int, default=16, help="HNSW M for every system")
    ap.add_argument("--ef-construction", type=int, default=200, help="HNSW ef_construction for every system")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--ef-ladder", default="10,16,24,32,48,64,96,128,192,256,384,512,768,1024,1536,2048")
    ap.add_argument("--threads", default="1,4,8")
    ap.add_argument("--tune-threads", type=int, default=4, help="client threads for the tuning passes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="each timed batch runs at least this long")
    ap.add_argument("--systems", default="quiver,milvus-lite,chroma")
    ap.add_argument("--milvus-mode", choices=["server", "embedded"], default="server")
    ap.add_argument("--chroma-mode", choices=["embedded", "server"], default="embedded")
    ap.add_argument("--quiverd", default=os.environ.get("QUIVERD") or str(REPO / "build-bench" / "e2e-build" / "quiverd"))
    ap.add_argument("--out", default=str(REPO / "bench" / "e2e" / "results"))
    ap.add_argument("--tag", default="e2e", help="file name stem of the outputs")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data dirs and server logs)")
    args = ap.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    ladder = [int(x) for x in args.ef_ladder.split(",")]
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in names:
        if s not in ADAPTERS:
            ap.error(f"unknown system {s}: {', '.join(ADAPTERS)}")

    global TMP_ROOT
    TMP_ROOT = tempfile.mkdtemp(prefix="qv-e2e-")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta = {"started": started, "machine": machine(), "quiverd": args.quiverd,
            "proto_dir": os.environ.get("QV_PROTO_DIR") or str(REPO / "proto"), "uptime_before": sh(["uptime"]),
            "top_before": sh(["top", "-bn1", "-w", "160"]).splitlines()[:16], "args": vars(args),
            "git_head": sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "git_dirty_files": len(sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
                                   .splitlines()), "tmp": TMP_ROOT}
    log(f"machine: {meta['machine']}; load: {meta['uptime_before']}")

    log(f"data: {args.n} x {args.dim} float32, {args.clusters} clusters, {args.queries} queries, seed {args.seed}")
    t0 = time.perf_counter()
    base, queries = make_data(args.n, args.dim, args.queries, args.clusters, args.seed)
    gt = ground_truth(base, queries, args.k)
    log(f"data + exact ground truth in {time.perf_counter() - t0:.1f} s")

    res, systems = {}, {}
    for name in names:
        tmp = os.path.join(TMP_ROOT, name)
        os.makedirs(tmp)
        s = ADAPTERS[name](args, tmp)
        r = res[name] = {"notes": s.notes}
        try:
            log(f"{name}: setup")
            s.setup()
            pid = s.server_pid()
            c0 = cpu_seconds(pid)
            log(f"{name}: load {args.n} rows in batches of {args.batch}")
            r["load_s"] = s.load(base, args.batch)
            log(f"{name}: loaded in {r['load_s']:.1f} s; waiting for the index")
            r["build_s"] = s.build()
            c1 = cpu_seconds(pid)
            r["server_cpu_s_load_build"] = (c1 - c0) if c0 is not None and c1 is not None else None
            r["server_rss_mib"] = rss_mib(pid)
            r["server_pid_is_benchmark_process"] = pid == os.getpid()
            log(f"{name}: build {r['build_s']:.1f} s")
            handles = [s.handle() for _ in range(max(max(threads), args.tune_threads))]
            ef, rec, tried = tune(s, queries, gt, args.k, ladder, args.target_recall, handles[:args.tune_threads])
            r["tuning"] = [{"ef": e, "recall": rc, "qps": q} for e, rc, q in tried]
            if ef is None:
                r["ef"] = tried[-1][0]
                r["recall"] = rec
                r["notes"].append(f"recall {args.target_recall} not reached by ef {tried[-1][0]}: timed there")
                s.set_ef(tried[-1][0])
            else:
                r["ef"], r["recall"] = ef, rec
            r["by_threads"] = {str(t): {"qps": [], "lat": []} for t in threads}
            r["handles"] = handles
            systems[name] = s
        except Exception as e:  # noqa: BLE001  (a peer that cannot run here is reported, the others go on)
            traceback.print_exc()
            r["error"] = f"{type(e).__name__}: {e}"
            log(f"{name}: FAILED: {r['error']}")
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass

    for rnd in range(args.rounds):
        for name, s in systems.items():
            r = res[name]
            for t in threads:
                qps, lat, results = run_batch(s, queries, t, args.k, args.min_seconds, r["handles"][:t])
                rc = recall_at_k(results, gt, args.k)
                r["by_threads"][str(t)]["qps"].append(qps)
                r["by_threads"][str(t)]["lat"].extend(lat)
                r["by_threads"][str(t)].setdefault("recall", []).append(rc)
                log(f"round {rnd + 1}/{args.rounds} {name} {t} threads: {qps:,.1f} QPS, "
                    f"p99 {np.percentile(lat, 99) * 1e3:.2f} ms, recall {rc:.4f} ({len(lat)} queries)")

    for name, r in res.items():
        r.pop("handles", None)
        if r.get("error"):
            continue
        for t, b in r["by_threads"].items():
            lat = np.asarray(b.pop("lat"))
            b.update(qps_median=statistics.median(b["qps"]), qps_min=min(b["qps"]), qps_max=max(b["qps"]),
                     p50_ms=float(np.percentile(lat, 50) * 1e3), p99_ms=float(np.percentile(lat, 99) * 1e3),
                     queries_timed=int(len(lat)))
    for s in systems.values():
        try:
            s.close()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    meta["uptime_after"] = sh(["uptime"])
    meta["top_after"] = sh(["top", "-bn1", "-w", "160"]).splitlines()[:16]
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    ref = res.get("milvus-lite", {})
    goal = {}
    if "quiver" in res and not res["quiver"].get("error") and ref and not ref.get("error"):
        for t in threads:
            a, b = res["quiver"]["by_threads"][str(t)]["qps_median"], ref["by_threads"][str(t)]["qps_median"]
            goal[str(t)] = {"ratio": a / b, "holds": a >= 2 * b}
        goal["recall_quiver"], goal["recall_milvus"] = res["quiver"]["recall"], ref["recall"]
    md = [f"Data: {args.n:,} x {args.dim} float32 synthetic clustered Gaussian ({args.clusters} clusters, seed "
          f"{args.seed}), {args.queries:,} queries drawn near the data, L2, k = {args.k}; HNSW M = {args.m}, "
          f"ef_construction = {args.ef_construction} for every system; ef = the smallest on the ladder giving "
          f"recall@{args.k} >= {args.target_recall} against exact NumPy ground truth. QPS: median of {args.rounds} "
          f"interleaved rounds; p99 over all rounds. Load: batches of {args.batch}.", "",
          table(res, threads), "",
          f"Machine: nproc = {meta['machine']['nproc_cmd']}, {meta['machine']['cpu_model']}. "
          f"Load before: `{meta['uptime_before']}`; after: `{meta['uptime_after']}`.", ""]
    for name, r in res.items():
        for n in r.get("notes", []):
            md.append(f"- {name}: {n}")
    if goal:
        md.append("")
        md.append("Goal (Quiver >= 2x milvus-lite QPS at recall@10 >= 0.95): " + ", ".join(
            f"{t} threads {goal[str(t)]['ratio']:.2f}x ({'holds' if goal[str(t)]['holds'] else 'does not hold'})"
            for t in threads))
    text = "\n".join(md)
    print(text)
    (out / f"{args.tag}.md").write_text(text + "\n")
    with open(out / f"{args.tag}.json", "w") as f:
        json.dump({"meta": meta, "results": res, "goal_2x_milvus": goal}, f, indent=2, default=float)
        f.write("\n")
    try:
        plot(res, threads, out / f"{args.tag}.png",
             f"Search QPS, {args.n:,} x {args.dim} L2, k={args.k}, recall@10 >= {args.target_recall} "
             f"(nproc {meta['machine']['nproc_cmd']}, load before {meta['uptime_before'].split('average:')[-1].strip()})")
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("the plot failed (matplotlib?)")
    log(f"wrote {out}/{args.tag}.md, .json, .png")
    if not args.keep:
        shutil.rmtree(TMP_ROOT, ignore_errors=True)


def _cleanup():
    for p in list(PROCS):
        try:
            stop_proc(p, timeout=15)
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    import atexit
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    main()
