"""Cluster mode: shard servers behind a coordinator (static --shards, and etcd membership).

- parity: the same data through a 3-shard cluster and a standalone server gives the same answers (exact search with
  filters for every metric, Get, Count, Scroll pages, SearchBatch, Describe, bad input: same status and message);
  the points spread over all shards.
- failures: kill -9 of a shard (UNAVAILABLE within the deadline, or partial=true naming it with allow_partial),
  restart of the shard and of the coordinator (nothing acknowledged lost), etcd stopped (the coordinator keeps
  serving from its last shard map), a shard restarting on another address (etcd).
- deadline and cancellation reach the shards (their metrics count the calls ended DEADLINE_EXCEEDED / CANCELLED and
  none finished the work).
- API keys and TLS on the coordinator and on coordinator -> shard calls.
- load: 32 clients, 90% Search / 10% Upsert for QV_LOAD_SECONDS (default 60, the issue's figure; set it lower
  for quick local runs) with zero failed calls; then an overload burst against a coordinator with a small
  --max-inflight: RESOURCE_EXHAUSTED, no crash, RSS reported.

Everything runs on free ports in temp dirs; etcd (Debian etcd-server) is started by the tests that need it and
those tests are skipped when it is not installed.
"""
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest

import qvtest as t
from qvtest import (COSINE, IP, L2, INT64, DOUBLE, KEYWORD, BOOL, KEYWORDS, SC, pb, pbg, point, eq, any_of, rng,
                    all_, any_, negate, check_topk, expect_error, free_port)

SHARDS = 3
LOAD_SECONDS = float(os.environ.get("QV_LOAD_SECONDS", "60"))


# ---------------------------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------------------------
class Node(t.Server):
    """A quiverd in the shard or coordinator role. Unlike qvtest.Server it keeps its port across restarts (a static
    --shards list names shards by address), unless restart(new_port=True)."""

    def __init__(self, role, args=(), port=None, metrics=False, **kw):
        super().__init__(**kw)
        self.role, self.args = role, list(args)
        self.fixed_port = port or free_port()
        self.metrics_port = free_port() if metrics else None

    def cmdline(self):
        cmd = [self.binary, "--role", self.role, "--listen", self.addr] + self.args
        if self.role != "coordinator":
            cmd += ["--data", self.data]
        cmd += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}" if self.metrics_port else "off"]
        return cmd + self.flags

    def start(self, timeout=60, new_port=False):
        assert not self.running
        if new_port:
            self.fixed_port = free_port()
        self.port = self.fixed_port
        self.starts += 1
        cmd = self.cmdline()
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, env=self.env)
        ok, last = self._wait_healthy(timeout)
        if not ok:
            self.kill9()
            raise RuntimeError(f"{self.role} did not become healthy: {last}\n{self.log_tail()}")
        return self

    def restart(self, kill=False, new_port=False):
        if kill:
            self.kill9()
        else:
            assert self.stop() == 0, self.log_tail()
        return self.start(new_port=new_port)

    def metric(self, name, **labels):
        """Sum of a Prometheus counter's samples whose labels include `labels`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
            if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
                total += float(m.group(2))
        return total


class Etcd:
    """etcd on free ports in a temp dir; stop()/start() keep its data."""

    def __init__(self):
        self.binary = shutil.which("etcd")
        self.tmp = tempfile.mkdtemp(prefix="qv-etcd-")
        self.port, self.peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        cmd = [self.binary, "--name", "qv", "--data-dir", os.path.join(self.tmp, "data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
               "--initial-cluster", f"qv=http://127.0.0.1:{self.peer}"]
        self.proc = subprocess.Popen(cmd, stdout=open(os.path.join(self.tmp, "log"), "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            try:
                self.range("/")
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("etcd did not start")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def range(self, prefix):
        """{key: value} of every key under prefix, through the JSON gateway."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                           "range_end": base64.b64encode(end.encode()).decode()}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/v3/kv/range", body), timeout=3) as r:
            kvs = json.load(r).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode() for kv in kvs}


def start_shards(quiverd, n=SHARDS, args=(), metrics=False, etcd=None, names=None):
    shards = []
    for i in range(n):
        a = list(args)
        if etcd:
            a += ["--etcd", etcd.url, "--shard-name", names[i] if names else f"s{i}", "--etcd-ttl", "4"]
        shards.append(Node("shard", a, binary=quiverd, metrics=metrics).start())
    return shards


@contextlib.contextmanager
def static_cluster(quiverd, n=2):
    """n shards behind a static coordinator, cleaned up on exit: yields (coordinator, shards)."""
    shards = start_shards(quiverd, n=n)
    nodes = list(shards)
    try:
        coord = static_coordinator(quiverd, shards)
        nodes.append(coord)
        yield coord, shards
    finally:
        for node in nodes:
            node.cleanup()


def static_coordinator(quiverd, shards, args=()):
    return Node("coordinator", ["--shards", ",".join(s.addr for s in shards)] + list(args), binary=quiverd).start()


def wait(pred, timeout=15.0, what="condition"):
    v = t.wait_for(pred, timeout)
    assert v, f"timed out waiting for {what}"
    return v


# ---------------------------------------------------------------------------------------------------------------------
# data and comparison
# ---------------------------------------------------------------------------------------------------------------------
FIELDS = [("n", INT64), ("x", DOUBLE), ("tag", KEYWORD), ("ok", BOOL), ("kws", KEYWORDS)]
TAGS = ["red", "green", "blue", "black"]
DIM = 16


def make_points(seed, count, prefix="p"):
    r = np.random.default_rng(seed)
    vecs = r.standard_normal((count, DIM)).astype(np.float32)
    pts = []
    for i in range(count):
        attrs = {"n": int(i % 97), "x": float(r.random()), "tag": TAGS[i % 4], "ok": bool(i % 3 == 0),
                 "kws": [TAGS[(i + 1) % 4], TAGS[(i + 2) % 4]]}
        if i % 11 == 0:
            del attrs["x"]  # some points lack a field
        pts.append(point(f"{prefix}{i:05d}", vecs[i], attrs, text=f"text {i}"))
    return pts


FILTERS = [None, eq("tag", "red"), rng("x", gte=0.25, lt=0.75), any_of("n", [1, 2, 3, 50, 60]),
           all_(eq("ok", True), negate(eq("tag", "blue"))), any_(eq("kws", "black"), rng("n", lt=10))]


def same_hits(a, b, what):
    """Two SearchResponses with the same hits (ids in order, scores equal to float precision, payloads)."""
    ai = [(h.id, round(h.score, 4)) for h in a.hits]
    bi = [(h.id, round(h.score, 4)) for h in b.hits]
    assert [x for x, _ in ai] == [x for x, _ in bi], f"{what}:\n  cluster    {ai[:8]}\n  standalone {bi[:8]}"
    for ha, hb in zip(a.hits, b.hits):
        assert abs(ha.score - hb.score) <= 1e-4 * max(1, abs(hb.score)), what
        assert t.typed(t.attrs_of(ha)) == t.typed(t.attrs_of(hb)) and ha.text == hb.text, what
        assert np.allclose(ha.vector, hb.vector, rtol=1e-6, atol=1e-6), what


def search_req(coll, q, k, flt=None, **kw):
    req = pb.SearchRequest(collection=coll, vector=np.asarray(q, np.float32).tolist(), k=k, **kw)
    req.params.exact = True
    if flt is not None:
        req.filter.CopyFrom(flt.pb)
    return req


def scroll_all(c, coll, limit, flt=None):
    pages, cursor = [], ""
    while True:
        req = pb.ScrollRequest(collection=coll, limit=limit, cursor=cursor, with_vectors=True)
        if flt is not None:
            req.filter.CopyFrom(flt.pb)
        r = c.q.Scroll(req)
        pages.append([(p.id, tuple(np.round(p.vector, 5)), p.text) for p in r.points])
        if not r.next_cursor:
            return pages
        cursor = r.next_cursor


def check_parity(cl, sa, coll, metric, queries, ks=(1, 10, 57)):
    """Every read of the cluster client `cl` equals the standalone client `sa`'s."""
    for qi, q in enumerate(queries):
        for f in FILTERS:
            for k in ks:
                req = search_req(coll, q, k, f, with_attributes=True, with_text=True, with_vectors=k == 10)
                same_hits(cl.q.Search(req), sa.q.Search(req), f"{coll} q{qi} k={k} filter={f}")
    breq = pb.SearchBatchRequest(collection=coll, k=7, vectors=[pb.Vector(values=list(map(float, q))) for q in queries],
                                 with_attributes=True)
    breq.params.exact = True
    breq.filter.CopyFrom(FILTERS[2].pb)
    rb, sb = cl.q.SearchBatch(breq), sa.q.SearchBatch(breq)
    assert len(rb.results) == len(queries)
    for i, (x, y) in enumerate(zip(rb.results, sb.results)):
        same_hits(x, y, f"batch {i}")
        same_hits(x, cl.q.Search(search_req(coll, queries[i], 7, FILTERS[2], with_attributes=True)), f"batch {i}")
    for f in FILTERS:
        assert cl.count(coll, f) == sa.count(coll, f), f"count {f}"
    ids = [f"p{i:05d}" for i in range(0, 4000, 7)] + ["nope", "p00003", "p00003", "q9"]
    g1, g2 = cl.get(coll, ids), sa.get(coll, ids)
    assert [p.id for p in g1] == [p.id for p in g2]
    for a, b in zip(g1, g2):
        assert np.array_equal(a.vector, b.vector) and t.typed(t.attrs_of(a)) == t.typed(t.attrs_of(b))
    for limit, f in ((97, None), (250, FILTERS[1]), (1, FILTERS[4])):
        if limit == 1 and cl.count(coll, f) > 400:
            continue
        assert scroll_all(cl, coll, limit, f) == scroll_all(sa, coll, limit, f), f"scroll limit={limit} {f}"
    d1, d2 = cl.describe(coll), sa.describe(coll)
    assert (d1.live_rows, d1.dim, d1.metric, list(d1.fields)) == (d2.live_rows, d2.dim, d2.metric, list(d2.fields))


def load_same(cl, sa, coll, metric, seed, n=1500):
    for c in (cl, sa):
        c.create(coll, DIM, metric, FIELDS)
        pts = make_points(seed, n)
        c.upsert_all(coll, pts, batch=400)
        c.delete(coll, [f"p{i:05d}" for i in range(0, n, 13)])  # deletes, then some replaced
        c.upsert(coll, make_points(seed + 1, 60)[::3])


# ---------------------------------------------------------------------------------------------------------------------
# a static cluster shared by the tests below, in file order
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(quiverd):
    shards = start_shards(quiverd, metrics=True)
    coord = static_coordinator(quiverd, shards)
    standalone = t.Server(binary=quiverd, extra=["--metrics-listen", "off"]).start()
    yield dict(shards=shards, coord=coord, sa=standalone)
    for s in shards + [coord, standalone]:
        s.cleanup()


def test_health_roles(cluster):
    assert cluster["coord"].client.admin.Health(pb.HealthRequest()).role == "coordinator"
    assert cluster["shards"][0].client.admin.Health(pb.HealthRequest()).role == "shard"


def test_parity_with_standalone(cluster):
    cl, sa = cluster["coord"].client, cluster["sa"].client
    queries = np.random.default_rng(42).standard_normal((4, DIM)).astype(np.float32)
    for metric, coll in ((L2, "par_l2"), (IP, "par_ip"), (COSINE, "par_cos")):
        load_same(cl, sa, coll, metric, seed=metric)
        check_parity(cl, sa, coll, metric, queries)
    # the points spread over every shard, and the shards hold them all exactly once
    per = [s.client.count("par_l2") for s in cluster["shards"]]
    assert all(c > 0 for c in per) and sum(per) == sa.count("par_l2"), per
    assert cl.describe("par_l2").shards == SHARDS
    assert sorted(cl.names()) == sorted(sa.names())
    # ground truth too, not only agreement
    ids = [p.id for p in scroll_all_points(sa, "par_l2")]
    base = np.array([p.vector for p in scroll_all_points(sa, "par_l2")], np.float32)
    check_topk(cl.q.Search(search_req("par_l2", queries[0], 25)).hits, ids, base, queries[0], 25, L2, "cluster")


def scroll_all_points(c, coll):
    out, cursor = [], ""
    while True:
        r = c.q.Scroll(pb.ScrollRequest(collection=coll, limit=1000, cursor=cursor, with_vectors=True))
        out += list(r.points)
        if not r.next_cursor:
            return out
        cursor = r.next_cursor


def test_bad_input_same_status_and_message(cluster):
    cl, sa = cluster["coord"].client, cluster["sa"].client
    for c in (cl, sa):
        c.create("bad", 4, L2, [("n", INT64), ("tag", KEYWORD)])
    good = [point(f"g{i}", [1, 2, 3, 4], {"n": i}) for i in range(9)]
    wrong_dim = good[:5] + [point("g5", [1, 2, 3])] + good[6:]
    wrong_type = good[:7] + [point("g7", [1, 2, 3, 4], {"n": "x"})] + good[8:]
    bad_calls = [
        ("upsert wrong dim at 5", lambda c: c.upsert("bad", wrong_dim)),
        ("upsert wrong type at 7", lambda c: c.upsert("bad", wrong_type)),
        ("upsert unknown field", lambda c: c.upsert("bad", [point("u", [1, 2, 3, 4], {"zz": 1})])),
        ("upsert duplicate ids", lambda c: c.upsert("bad", [good[0], good[1], good[0]])),
        ("upsert nan", lambda c: c.upsert("bad", [point("nan", [1, float("nan"), 3, 4])])),
        ("upsert empty id", lambda c: c.upsert("bad", [point("", [1, 2, 3, 4])])),
        ("upsert missing collection", lambda c: c.upsert("nope", good)),
        ("upsert empty name", lambda c: c.upsert("", good)),
        ("search k=0", lambda c: c.q.Search(search_req("bad", [1, 2, 3, 4], 0))),
        ("search k too big", lambda c: c.q.Search(search_req("bad", [1, 2, 3, 4], 10001))),
        ("search wrong dim", lambda c: c.q.Search(search_req("bad", [1, 2], 3))),
        ("search unknown filter field", lambda c: c.q.Search(search_req("bad", [1, 2, 3, 4], 3, eq("zz", 1)))),
        ("search filter type", lambda c: c.q.Search(search_req("bad", [1, 2, 3, 4], 3, rng("tag", gt=1)))),
        ("search missing collection", lambda c: c.q.Search(search_req("nope", [1, 2, 3, 4], 3))),
        ("batch empty", lambda c: c.q.SearchBatch(pb.SearchBatchRequest(collection="nope", k=3))),
        ("batch bad query 1", lambda c: c.q.SearchBatch(pb.SearchBatchRequest(
            collection="bad", k=3, vectors=[pb.Vector(values=[1, 2, 3, 4]), pb.Vector(values=[1])]))),
        ("get empty id", lambda c: c.get("bad", ["a", "b", ""])),
        ("get too many", lambda c: c.get("bad", [f"i{i}" for i in range(10001)])),
        ("delete long id", lambda c: c.delete("bad", ["a", "x" * 300])),
        ("count bad filter", lambda c: c.count("bad", eq("n", "str"))),
        ("scroll limit", lambda c: c.q.Scroll(pb.ScrollRequest(collection="nope", limit=10001))),
        ("scroll cursor", lambda c: c.q.Scroll(pb.ScrollRequest(collection="bad", cursor="x" * 300))),
        ("create duplicate", lambda c: c.create("bad", 4, L2, [("n", INT64), ("tag", KEYWORD)])),
        ("create bad dim", lambda c: c.create("bad2", 0)),
        ("create bad name", lambda c: c.create("bad name", 4)),
        ("drop missing", lambda c: c.q.DropCollection(pb.DropCollectionRequest(name="nope"))),
        ("describe missing", lambda c: c.describe("nope")),
    ]
    for what, fn in bad_calls:
        got = []
        for c in (cl, sa):
            try:
                fn(c)
                got.append(("OK", ""))
            except grpc.RpcError as e:
                got.append((e.code(), e.details()))
        assert got[0] == got[1], f"{what}: cluster {got[0]} vs standalone {got[1]}"
        assert got[0][0] != "OK", f"{what}: accepted"
    assert cl.count("bad") == sa.count("bad") == 0  # rejected batches wrote nothing anywhere


def test_create_drop_idempotent(cluster):
    cl, shards = cluster["coord"].client, cluster["shards"]
    # a half-done create: the collection exists on one shard only; retrying through the coordinator completes it
    shards[1].client.q.CreateCollection(pb.CreateCollectionRequest(
        name="half", dim=3, metric=L2, shards=SHARDS, index=pb.IndexParams(kind=pb.INDEX_KIND_FLAT)))
    cl.create("half", 3, L2)
    assert all("half" in s.client.names() for s in shards)
    expect_error(lambda: cl.create("half", 3, L2), SC.ALREADY_EXISTS, ["half"], "second create")
    # a different schema on one shard is not silently accepted
    shards[2].client.create("clash", 5, IP)
    expect_error(lambda: cl.create("clash", 3, L2), SC.ALREADY_EXISTS, ["clash"], "clash")
    assert "clash" not in shards[0].client.names()  # refused before anything was created anywhere
    # drop reaches every shard; a half-done drop converges
    shards[0].client.q.DropCollection(pb.DropCollectionRequest(name="half"))
    cl.q.DropCollection(pb.DropCollectionRequest(name="half"))
    assert not any("half" in s.client.names() for s in shards)
    expect_error(lambda: cl.q.DropCollection(pb.DropCollectionRequest(name="half")), SC.NOT_FOUND, ["half"], "drop")
    cl.q.DropCollection(pb.DropCollectionRequest(name="clash"))


def test_kill_shard_unavailable_or_partial_then_restart(cluster):
    coord, shards, sa = cluster["coord"], cluster["shards"], cluster["sa"]
    cl, sac = coord.client, sa.client
    q = np.random.default_rng(7).standard_normal(DIM).astype(np.float32)
    before = cl.q.Search(search_req("par_l2", q, 120))
    victim = shards[1]
    victim.kill9()
    t0 = time.monotonic()
    expect_error(lambda: cl.q.Search(search_req("par_l2", q, 10), timeout=5), SC.UNAVAILABLE, [victim.addr], "search")
    assert time.monotonic() - t0 < 5
    r = cl.q.Search(search_req("par_l2", q, 30, allow_partial=True), timeout=5)
    assert r.partial and list(r.missing_shards) == [victim.addr]
    others = {p.id for s in (shards[0], shards[2]) for p in scroll_all_points(s.client, "par_l2")}
    assert {h.id for h in r.hits} <= others
    assert [h.id for h in r.hits] == [h.id for h in before.hits if h.id in others][:30]
    rb = cl.q.SearchBatch(pb.SearchBatchRequest(collection="par_l2", k=5, allow_partial=True,
                                                vectors=[pb.Vector(values=q.tolist())] * 2), timeout=5)
    assert all(x.partial and list(x.missing_shards) == [victim.addr] for x in rb.results)
    # a write that reaches the dead shard fails naming it; the other shards' parts are written; a retry converges
    new = make_points(99, 40, prefix="new")
    expect_error(lambda: cl.upsert("par_l2", new), SC.UNAVAILABLE, [victim.addr], "upsert")
    expect_error(lambda: cl.count("par_l2"), SC.UNAVAILABLE, [victim.addr], "count")
    # metadata reads answer from the shards that answer, naming the missing one; Count takes allow_partial, and the
    # upsert's message is whole (never cut mid-word)
    try:
        cl.upsert("par_l2", new)
    except grpc.RpcError as e:
        assert e.details().endswith(")") and len(e.details()) > 200, e.details()  # "... (<the shard's message>)"
    lc = cl.q.ListCollections(pb.ListCollectionsRequest(), timeout=5)
    assert "par_l2" in [c.name for c in lc.collections] and list(lc.missing_shards) == [victim.addr]
    dc = cl.q.DescribeCollection(pb.DescribeCollectionRequest(name="par_l2"), timeout=5)
    assert dc.collection.name == "par_l2" and dc.collection.dim == DIM and list(dc.missing_shards) == [victim.addr]
    cp = cl.q.Count(pb.CountRequest(collection="par_l2", allow_partial=True), timeout=5)
    assert cp.partial and list(cp.missing_shards) == [victim.addr]
    assert cp.count == sum(s.client.count("par_l2") for s in (shards[0], shards[2]))
    sac.upsert("par_l2", new)
    victim.start()
    wait(lambda: _ok(lambda: cl.count("par_l2")), what="the restarted shard to answer")
    cl.upsert("par_l2", new)  # the retry
    assert cl.count("par_l2") == sac.count("par_l2")
    same_hits(cl.q.Search(search_req("par_l2", q, 30)), sac.q.Search(search_req("par_l2", q, 30)), "after restart")
    # restart the coordinator: nothing lost
    coord.restart()
    cl = coord.client
    check_parity(cl, sac, "par_l2", L2, [q], ks=(10,))


def _ok(fn):
    try:
        fn()
        return True
    except grpc.RpcError:
        return False


def test_deadline_and_cancellation_reach_shards(cluster, capsys):
    """A large exact SearchBatch keeps every shard busy for a while (the data grows until a full batch takes
    1.5 s); a short client deadline, or the client cancelling, must stop the shards' work: their metrics count
    the calls ended DEADLINE_EXCEEDED or CANCELLED, and none counts the batch finished."""
    cl, shards = cluster["coord"].client, cluster["shards"]
    dim, step = 128, 24000
    cl.create("slow", dim, L2)
    r = np.random.default_rng(3)
    queries = r.standard_normal((1000, dim)).astype(np.float32)
    batch = pb.SearchBatchRequest(collection="slow", k=100, vectors=[pb.Vector(values=v.tolist()) for v in queries])
    batch.params.exact = True
    method = "SearchBatch"

    def codes():
        return {c: sum(s.metric("quiver_requests_total", method=method, code=c) for s in shards)
                for c in ("OK", "CANCELLED", "DEADLINE_EXCEEDED")}

    n, full = 0, 0.0
    while full < 1.5 and n < 5 * step:  # grow the data until a full batch takes long enough to interrupt
        vecs = r.standard_normal((step, dim)).astype(np.float32)
        for s in range(0, step, 4000):
            cl.upsert("slow", [point(f"s{n + i}", vecs[i]) for i in range(s, s + 4000)])
        n += step
        t0 = time.monotonic()
        cl.q.SearchBatch(batch, timeout=120)
        full = time.monotonic() - t0
    with capsys.disabled():
        print(f"\n  slow batch: {n} points x {dim}, 1000 queries: {full:.2f} s")

    def check_stopped(base, what):
        # A shard that ran the batch to the end would count it OK (a handler's status is recorded even when its
        # caller is gone); one that noticed the deadline or the cancellation counts it DEADLINE_EXCEEDED or
        # CANCELLED; one whose call was cancelled before its handler started counts nothing. So: at least one
        # shard saw the call end early, and no shard finished it, even well after a full batch would have.
        wait(lambda: codes()["CANCELLED"] + codes()["DEADLINE_EXCEEDED"] > base["CANCELLED"] + base["DEADLINE_EXCEEDED"],
             timeout=max(1.0, full), what=f"a shard to end the {what} call early ({codes()})")
        time.sleep(full * 1.5)
        now = codes()
        assert now["OK"] == base["OK"], f"{what}: a shard ran the whole batch ({base} -> {now})"

    # deadline: the client gets DEADLINE_EXCEEDED at its deadline, and the shards stop early
    base = codes()
    t0 = time.monotonic()
    expect_error(lambda: cl.q.SearchBatch(batch, timeout=0.2), SC.DEADLINE_EXCEEDED, [], "deadline")
    assert time.monotonic() - t0 < 1.0
    check_stopped(base, "deadline")
    # cancellation: the client goes away mid-call (no deadline); the coordinator cancels the shard calls
    base = codes()
    fut = pbg.QuiverStub(cl.channel).SearchBatch.future(batch, timeout=120)
    time.sleep(0.2)
    fut.cancel()
    check_stopped(base, "cancelled")
    cl.q.DropCollection(pb.DropCollectionRequest(name="slow"))


# ---------------------------------------------------------------------------------------------------------------------
# load and overload
# ---------------------------------------------------------------------------------------------------------------------
def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1])


def test_load_32_clients_zero_failures(cluster, capsys):
    coord = cluster["coord"]
    cl = coord.client
    cl.create("load", DIM, COSINE, FIELDS)
    cl.upsert_all("load", make_points(5, 3000), batch=1000)
    stop = time.monotonic() + LOAD_SECONDS
    failures, counts, lat = [], {"search": 0, "upsert": 0}, []
    lock = threading.Lock()

    def client(i):
        c = coord.new_client(timeout=30)
        r = np.random.default_rng(100 + i)
        n = 0
        while time.monotonic() < stop:
            n += 1
            t0 = time.monotonic()
            try:
                if r.random() < 0.9:
                    c.q.Search(search_req("load", r.standard_normal(DIM), 10, FILTERS[r.integers(len(FILTERS))]))
                    kind = "search"
                else:
                    c.upsert("load", make_points(int(r.integers(1 << 30)), 20, prefix=f"c{i}-{n}-"))
                    kind = "upsert"
            except grpc.RpcError as e:
                with lock:
                    failures.append((e.code(), e.details()))
                continue
            with lock:
                counts[kind] += 1
                lat.append(time.monotonic() - t0)
        c.close()

    rss0 = rss_kib(coord.proc.pid)
    ts = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    t0 = time.monotonic()
    [x.start() for x in ts]
    [x.join() for x in ts]
    took = time.monotonic() - t0
    assert not failures, failures[:5]
    assert counts["search"] > 0 and counts["upsert"] > 0
    lat.sort()
    with capsys.disabled():
        print(f"\n  load {took:.1f} s, 32 clients: {counts['search']} searches + {counts['upsert']} upserts "
              f"({sum(counts.values()) / took:.0f} calls/s), p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.1f} ms, coordinator RSS {rss0 // 1024} -> "
              f"{rss_kib(coord.proc.pid) // 1024} MiB")
    assert cl.count("load") == 3000 + 20 * counts["upsert"]  # every acknowledged upsert is there


def test_overload_resource_exhausted(cluster, quiverd, capsys):
    small = static_coordinator(quiverd, cluster["shards"], ["--max-inflight", "3", "--threads", "4"])
    try:
        batch = pb.SearchBatchRequest(collection="load", k=50,
                                      vectors=[pb.Vector(values=np.ones(DIM).tolist())] * 200)
        codes, lock = [], threading.Lock()
        # a fresh coordinator dials its shards on first use; on a loaded machine a first connection attempt can fail
        # fast with UNAVAILABLE (gRPC fail-fast), which is not what this test is about: connect before the burst
        wait(lambda: _ok(lambda: small.client.q.SearchBatch(batch)), what="the new coordinator to reach its shards")
        rss0 = rss_kib(small.proc.pid)

        def hammer():
            c = small.new_client(timeout=60)
            for _ in range(4):
                try:
                    c.q.SearchBatch(batch)
                    code = SC.OK
                except grpc.RpcError as e:
                    code = e.code()
                    if code == SC.RESOURCE_EXHAUSTED:
                        assert "max-inflight" in e.details()
                    elif code != SC.OK:
                        print("unexpected:", code, e.details())
                with lock:
                    codes.append(code)
            c.close()

        ts = [threading.Thread(target=hammer) for _ in range(24)]
        [x.start() for x in ts]
        [x.join() for x in ts]
        assert set(codes) <= {SC.OK, SC.RESOURCE_EXHAUSTED}, set(codes)
        assert codes.count(SC.RESOURCE_EXHAUSTED) > 0 and codes.count(SC.OK) > 0
        assert small.running and small.client.count("load") > 0
        with capsys.disabled():
            print(f"\n  overload: {codes.count(SC.OK)} OK, {codes.count(SC.RESOURCE_EXHAUSTED)} RESOURCE_EXHAUSTED; "
                  f"coordinator RSS {rss0 // 1024} -> {rss_kib(small.proc.pid) // 1024} MiB")
    finally:
        small.cleanup()


# ---------------------------------------------------------------------------------------------------------------------
# API keys and TLS
# ---------------------------------------------------------------------------------------------------------------------
KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}


def call(fn, req, key=None):
    md = [("authorization", f"Bearer {key}")] if key else None
    try:
        fn(req, metadata=md, timeout=10)
        return SC.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def test_api_keys(quiverd, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("".join(f"{k} {role}\n" for role, k in KEYS.items()))
    shards = start_shards(quiverd, 2, ["--api-keys", str(kf)])
    skf = tmp_path / "shard-key"
    skf.write_text(KEYS["admin"] + "\n")  # the key from a file: it does not show in the process list
    coord = static_coordinator(quiverd, shards, ["--api-keys", str(kf), "--shard-api-key-file", str(skf)])
    assert KEYS["admin"] not in " ".join(coord.cmdline())
    nokey = static_coordinator(quiverd, shards)  # does not send the shards a key
    try:
        q = pbg.QuiverStub(grpc.insecure_channel(coord.addr))
        create = pb.CreateCollectionRequest(name="s", dim=2, metric=L2)
        up = pb.UpsertRequest(collection="s", points=[point(f"a{i}", [1.0, i]) for i in range(10)])
        search = pb.SearchRequest(collection="s", vector=[1.0, 2.0], k=3)
        assert call(q.CreateCollection, create)[0] == SC.UNAUTHENTICATED
        code, msg = call(q.CreateCollection, create, "x" * 24)
        assert code == SC.UNAUTHENTICATED and "unknown" in msg
        code, msg = call(q.CreateCollection, create, KEYS["write"])
        assert code == SC.PERMISSION_DENIED and "admin" in msg
        assert call(q.CreateCollection, create, KEYS["admin"])[0] == SC.OK
        code, msg = call(q.Upsert, up, KEYS["read"])
        assert code == SC.PERMISSION_DENIED and "write" in msg
        assert call(q.Upsert, up, KEYS["write"])[0] == SC.OK
        assert call(q.Search, search)[0] == SC.UNAUTHENTICATED
        assert call(q.Search, search, KEYS["read"])[0] == SC.OK
        r = q.Count(pb.CountRequest(collection="s"), metadata=[("authorization", f"Bearer {KEYS['read']}")])
        assert r.count == 10
        # a coordinator without the shards' key is refused by them: the client sees UNAVAILABLE, not its own key
        code, msg = call(pbg.QuiverStub(grpc.insecure_channel(nokey.addr)).Search, search)
        assert code == SC.UNAVAILABLE and "UNAUTHENTICATED" not in msg and shards[0].addr in msg, msg
    finally:
        for s in shards + [coord, nokey]:
            s.cleanup()


def make_certs(d):
    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=quiver-test-ca")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
         "server.pem", "-days", "2", "-extfile", "server.ext")


class TlsNode(Node):
    def __init__(self, *a, ca=None, **kw):
        super().__init__(*a, **kw)
        self.ca = ca

    def _wait_healthy(self, timeout):
        t0 = time.monotonic()
        last = "no answer"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                return False, f"exited with status {self.proc.returncode}"
            ch = grpc.secure_channel(self.addr, grpc.ssl_channel_credentials(self.ca),
                                     options=[("grpc.ssl_target_name_override", "localhost"),
                                              ("grpc.use_local_subchannel_pool", 1)])
            try:
                pbg.AdminStub(ch).Health(pb.HealthRequest(), timeout=2)
                return True, None
            except grpc.RpcError as e:
                last = f"{e.code()} {e.details()}"
            finally:
                ch.close()
            time.sleep(0.1)
        return False, last


def test_tls_everywhere(quiverd, tmp_path):
    make_certs(tmp_path)
    tls = ["--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")]
    ca = (tmp_path / "ca.pem").read_bytes()
    shards = [TlsNode("shard", tls, binary=quiverd, ca=ca).start() for _ in range(2)]
    members = ["--shards", ",".join(s.addr for s in shards)]
    coord = TlsNode("coordinator", members + tls + ["--shard-tls-ca", str(tmp_path / "ca.pem")], binary=quiverd,
                    ca=ca).start()
    plain_to_tls = Node("coordinator", members, binary=quiverd).start()  # dials the TLS shards in plaintext
    try:
        ch = grpc.secure_channel(coord.addr, grpc.ssl_channel_credentials(ca),
                                 options=[("grpc.ssl_target_name_override", "localhost")])
        q = pbg.QuiverStub(ch)
        q.CreateCollection(pb.CreateCollectionRequest(name="t", dim=2, metric=L2), timeout=10)
        q.Upsert(pb.UpsertRequest(collection="t", points=[point(f"a{i}", [1.0, float(i)]) for i in range(20)]),
                 timeout=10)
        r = q.Search(pb.SearchRequest(collection="t", vector=[1.0, 3.0], k=2), timeout=10)
        assert [h.id for h in r.hits] == ["a3", "a2"] or [h.id for h in r.hits] == ["a3", "a4"]
        assert q.Count(pb.CountRequest(collection="t"), timeout=10).count == 20
        with pytest.raises(grpc.RpcError):  # plaintext to the TLS coordinator
            pbg.AdminStub(grpc.insecure_channel(coord.addr)).Health(pb.HealthRequest(), timeout=3)
        expect_error(lambda: plain_to_tls.client.count("t"), SC.UNAVAILABLE, [shards[0].addr], "plaintext to TLS")
    finally:
        for s in shards + [coord, plain_to_tls]:
            s.cleanup()


# ---------------------------------------------------------------------------------------------------------------------
# etcd membership
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def etcd():
    if not shutil.which("etcd"):
        pytest.skip("etcd is not installed (Debian etcd-server; tools/deps.sh --test)")
    e = Etcd().start()
    yield e
    e.cleanup()


def test_etcd_cluster(quiverd, etcd):
    shards = start_shards(quiverd, etcd=etcd)
    coords = []
    try:
        wait(lambda: len(etcd.range("/quiver/shards/")) == SHARDS, what="3 shard registrations")
        coord = Node("coordinator", ["--etcd", etcd.url, "--etcd-poll-ms", "200"], binary=quiverd).start()
        coords.append(coord)
        sa = t.Server(binary=quiverd, extra=["--metrics-listen", "off"]).start()
        coords.append(sa)
        cl = coord.client
        load_same(cl, sa.client, "e", L2, seed=11, n=900)
        rec = json.loads(etcd.range("/quiver/collections/")["/quiver/collections/e"])
        assert rec["state"] == "ready" and rec["assign"] == ["s0", "s1", "s2"] and rec["shards"] == SHARDS
        q = np.random.default_rng(1).standard_normal((2, DIM)).astype(np.float32)
        check_parity(cl, sa.client, "e", L2, q, ks=(10,))
        assert all(s.client.count("e") > 0 for s in shards)
        # kill -9 a shard: UNAVAILABLE, or partial naming it
        shards[2].kill9()
        expect_error(lambda: cl.q.Search(search_req("e", q[0], 5), timeout=5), SC.UNAVAILABLE, ["s2"], "search")
        r = cl.q.Search(search_req("e", q[0], 5, allow_partial=True), timeout=5)
        assert r.partial and list(r.missing_shards) == ["s2"]
        # it comes back on another address under the same name: the coordinator follows
        shards[2].start(new_port=True)
        wait(lambda: _ok(lambda: cl.count("e")) and cl.count("e") == sa.client.count("e"), what="s2 back")
        check_parity(cl, sa.client, "e", L2, q, ks=(10,))
        # etcd down: the coordinator keeps serving (reads and writes) from its last map
        etcd.kill()
        time.sleep(0.6)
        extra = make_points(12, 30, prefix="x")
        cl.upsert("e", extra)
        sa.client.upsert("e", extra)
        check_parity(cl, sa.client, "e", L2, q, ks=(10,))
        etcd.start()
        # a restarted coordinator reads membership and metadata back from etcd: nothing lost
        coord.restart()
        cl = coord.client
        wait(lambda: _ok(lambda: cl.count("e")), what="coordinator after restart")
        check_parity(cl, sa.client, "e", L2, q, ks=(10,))
        # create through a second coordinator is seen by the first; drop removes the record
        other = Node("coordinator", ["--etcd", etcd.url], binary=quiverd).start()
        coords.append(other)
        other.client.create("e2", 2, IP)
        other.client.upsert("e2", [point("a", [1, 0]), point("b", [0, 1])])
        assert cl.count("e2") == 2
        cl.q.DropCollection(pb.DropCollectionRequest(name="e2"))
        assert "/quiver/collections/e2" not in etcd.range("/quiver/collections/")
        expect_error(lambda: other.client.count("e2"), SC.NOT_FOUND, ["e2"], "dropped")
    finally:
        for s in shards + coords:
            s.cleanup()


def _embed_texts_counter(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        m = re.search(r"^quiver_embed_texts_total (\S+)$", r.read().decode(), re.M)
    return float(m.group(1))


def test_coordinator_embeds_for_shards_without_a_model(quiverd, tmp_path):
    """A coordinator with the model embeds text queries and text upserts once and sends vectors to the shards, which
    have no model; Embed is served by the coordinator; the shards' embedding counters stay 0 and the coordinator's
    count the texts; results equal a standalone server's on the same texts."""
    lone = tmp_path / "bin" / "quiverd"  # no model/ beside this copy: shards without a model
    lone.parent.mkdir()
    shutil.copy(quiverd, lone)
    env_model = os.environ.pop("QV_MODEL_DIR", None)
    nodes = []
    try:
        shards = [Node("shard", binary=str(lone), metrics=True).start() for _ in range(2)]
        nodes += shards
        coord = Node("coordinator", ["--shards", ",".join(s.addr for s in shards)], binary=quiverd, metrics=True)
        nodes.append(coord.start())
        sa = t.Server(binary=quiverd, extra=["--metrics-listen", "off"]).start()
        nodes.append(sa)
        # the shards really have no model
        expect_error(lambda: shards[0].client.q.Embed(pb.EmbedRequest(texts=["x"])), SC.FAILED_PRECONDITION,
                     ["model"])
        docs = [f"document number {i} about {topic}" for i, topic in
                enumerate(["rivers", "mountains", "databases", "vectors", "cooking", "music"] * 5)]
        for c in (coord.client, sa.client):
            c.q.CreateCollection(pb.CreateCollectionRequest(name="txt", embedding_model="all-MiniLM-L6-v2"))
            c.upsert("txt", [pb.Point(id=f"d{i}", text=d) for i, d in enumerate(docs)])
        assert coord.client.count("txt") == len(docs)
        assert all(s.client.count("txt") > 0 for s in shards)
        # stored: the text, and the vector the coordinator computed (equal to the standalone server's)
        got = {p.id: p for p in coord.client.get("txt", ["d0", "d7"])}
        ref = {p.id: p for p in sa.client.get("txt", ["d0", "d7"])}
        for pid in ("d0", "d7"):
            assert got[pid].text == ref[pid].text
            assert np.allclose(got[pid].vector, ref[pid].vector, atol=1e-5)
        for q in ("a database of vectors", "a song", "high peaks"):
            a = coord.client.q.Search(pb.SearchRequest(collection="txt", text=q, k=5))
            b = sa.client.q.Search(pb.SearchRequest(collection="txt", text=q, k=5))
            assert [h.id for h in a.hits] == [h.id for h in b.hits], q
            assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-4)
        e = coord.client.q.Embed(pb.EmbedRequest(texts=["hello", "world"]))
        assert e.dim == 384 and len(e.vectors) == 2
        # the error contract holds at the coordinator, before anything is sent
        expect_error(lambda: coord.client.upsert("txt", [pb.Point(id="blank", text="   ")]), SC.INVALID_ARGUMENT,
                     ["text"])
        expect_error(lambda: coord.client.q.Search(pb.SearchRequest(collection="txt", text="x", vector=[0.0] * 384,
                                                                    k=1)), SC.INVALID_ARGUMENT, ["either"])
        assert sum(_embed_texts_counter(s.metrics_port) for s in shards) == 0
        assert _embed_texts_counter(coord.metrics_port) >= len(docs) + 3 + 2
    finally:
        if env_model is not None:
            os.environ["QV_MODEL_DIR"] = env_model
        for n in nodes:
            n.cleanup()


def _etcd_ranges(etcd):
    with urllib.request.urlopen(f"{etcd.url}/metrics", timeout=5) as r:
        m = re.search(r"^etcd_mvcc_range_total (\S+)$", r.read().decode(), re.M)
    return float(m.group(1))


def test_unknown_names_are_answered_from_memory(quiverd, etcd):
    """A client asking for a collection that does not exist, in a loop, costs the coordinator no etcd read per call
    (a negative cache of 1 s); a collection created through another coordinator under that name is found within
    that second."""
    shards = start_shards(quiverd, n=1, etcd=etcd)
    nodes = list(shards)
    try:
        wait(lambda: len(etcd.range("/quiver/shards/")) == 1, what="the registration")
        a = Node("coordinator", ["--etcd", etcd.url, "--etcd-poll-ms", "60000"], binary=quiverd).start()
        b = Node("coordinator", ["--etcd", etcd.url, "--etcd-poll-ms", "60000"], binary=quiverd).start()
        nodes += [a, b]
        expect_error(lambda: a.client.count("ghost"), SC.NOT_FOUND, ["ghost"], "unknown")
        before = _etcd_ranges(etcd)
        t0 = time.monotonic()
        calls = 0
        while time.monotonic() - t0 < 0.8:  # inside one cache period
            expect_error(lambda: a.client.count("ghost"), SC.NOT_FOUND, ["ghost"], "unknown")
            calls += 1
        assert calls >= 20, calls
        reads = _etcd_ranges(etcd) - before
        assert reads <= 2, f"{reads:.0f} etcd reads for {calls} lookups of one unknown name"
        # many distinct unknown names: each costs a read once, then none while its entry lives
        t0 = time.monotonic()
        for i in range(20):
            expect_error(lambda: a.client.count(f"ghost{i}"), SC.NOT_FOUND, [f"ghost{i}"], "unknown")
        before = _etcd_ranges(etcd)
        for i in range(20):
            expect_error(lambda: a.client.count(f"ghost{i}"), SC.NOT_FOUND, [f"ghost{i}"], "unknown")
        if time.monotonic() - t0 < 0.9:  # (a machine too slow for this leaves the entries expired: no verdict)
            assert _etcd_ranges(etcd) - before <= 2
        # created elsewhere: found once the entry expires (1 s), long before a poll (60 s)
        b.client.create("ghost", 2, L2)
        b.client.upsert("ghost", [point("a", [1, 0])])
        t0 = time.monotonic()
        wait(lambda: _ok(lambda: a.client.count("ghost")), timeout=5, what="the new collection at the other coordinator")
        assert time.monotonic() - t0 < 2.5
        assert a.client.count("ghost") == 1
        # created through this coordinator: found at once
        a.client.create("ghost7", 2, L2)
        assert a.client.count("ghost7") == 0
    finally:
        for n in nodes:
            n.cleanup()


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_wall_clock_steps_do_not_expire_the_lease(quiverd, etcd, tmp_path):
    """The shard's wall clock steps back 60 s, then forward 120 s, while it holds a 4 s etcd lease (libfaketime moves
    CLOCK_REALTIME, time() and gettimeofday in the shard process; CLOCK_MONOTONIC stays, as under an NTP step): its
    registration never lapses over 3 TTLs after each step, and the coordinator keeps answering through it."""
    if not os.path.exists(FAKETIME_LIB):
        pytest.skip("libfaketime is not installed (Debian faketime; tools/deps.sh --test)")
    clock = tmp_path / "clock"
    clock.write_text("+0\n")
    shard = Node("shard", ["--etcd", etcd.url, "--shard-name", "s0", "--etcd-ttl", "4", "--backup-dir",
                           str(tmp_path / "bk")], binary=quiverd)
    shard.env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=str(clock), FAKETIME_NO_CACHE="1",
                     DONT_FAKE_MONOTONIC="1")
    nodes = [shard.start()]
    try:
        wait(lambda: "/quiver/shards/s0" in etcd.range("/quiver/shards/"), what="the registration")
        coord = Node("coordinator", ["--etcd", etcd.url, "--etcd-poll-ms", "200"], binary=quiverd).start()
        nodes.append(coord)
        cl = coord.client
        cl.create("clk", 2, L2)
        cl.upsert("clk", [point("a", [1, 0]), point("b", [0, 1])])
        for step in ("-60s", "+60s"):
            clock.write_text(step + "\n")
            # the step took effect in the shard process: a backup's creation time is its wall clock
            skew = shard.client.admin.Backup(pb.BackupRequest(), timeout=60).backup.created_unix - time.time()
            assert abs(skew - int(step[:-1])) < 10, (step, skew)
            t_end = time.monotonic() + 12  # 3 TTLs
            while time.monotonic() < t_end:
                assert "/quiver/shards/s0" in etcd.range("/quiver/shards/"), f"registration lapsed after {step}"
                assert cl.count("clk") == 2
                time.sleep(0.5)
        assert "etcd.lease_expired" not in shard.log_tail(100000)
    finally:
        for n in nodes:
            n.cleanup()


# ---------------------------------------------------------------------------------------------------------------------
# cluster backup (etcd mode): every shard backs up at once under one id recorded in etcd with the collection
# metadata; restoring the shards' backups and the record into a new etcd gives back the whole cluster
# ---------------------------------------------------------------------------------------------------------------------
def test_cluster_backup_and_restore_through_etcd(quiverd, etcd, tmp_path):
    root = str(tmp_path / "backups")
    shards = start_shards(quiverd, etcd=etcd, args=["--backup-dir", root])
    nodes = list(shards)
    etcd2 = None
    try:
        wait(lambda: len(etcd.range("/quiver/shards/")) == SHARDS, what="3 shard registrations")
        coord = Node("coordinator", ["--etcd", etcd.url, "--etcd-poll-ms", "200"], binary=quiverd).start()
        nodes.append(coord)
        cl = coord.client
        cl.create("bk", DIM, L2, FIELDS)
        pts = make_points(21, 900)
        cl.upsert_all("bk", pts)
        r = cl.admin.Backup(pb.BackupRequest(), timeout=120)
        assert r.cluster_backup_id.startswith("cb-") and len(r.shards) == SHARDS, r
        assert sorted(s.server for s in r.shards) == ["s0", "s1", "s2"]
        for s in r.shards:
            assert s.id == 1 and s.directory == os.path.join(root, s.server) and s.size_bytes > 0, s
        # the record in etcd: the shards' backups and the collection's metadata
        rec = json.loads(etcd.range("/quiver/backups/")[f"/quiver/backups/{r.cluster_backup_id}"])
        assert sorted((x["server"], x["id"]) for x in rec["shards"]) == [("s0", 1), ("s1", 1), ("s2", 1)]
        assert rec["collections"]["bk"]["assign"] == ["s0", "s1", "s2"]
        lb = cl.admin.ListBackups(pb.ListBackupsRequest())
        assert sorted((b.server, b.id) for b in lb.backups) == [("s0", 1), ("s1", 1), ("s2", 1)]
        assert [c.id for c in lb.cluster_backups] == [r.cluster_backup_id]
        assert list(lb.cluster_backups[0].collections) == ["bk"]
        v = cl.admin.VerifyBackup(pb.VerifyBackupRequest(id=1, server="s1"), timeout=60)
        assert v.files > 0 and v.bytes_checked > 0
        expect_error(lambda: cl.admin.VerifyBackup(pb.VerifyBackupRequest(id=1)), SC.INVALID_ARGUMENT, ["server"],
                     "verify without a server")
        expect_error(lambda: cl.admin.VerifyBackup(pb.VerifyBackupRequest(id=1, server="nope")), SC.NOT_FOUND,
                     ["nope"], "verify on an unknown server")
        # writes after the backup are not in it
        cl.upsert("bk", make_points(22, 50, prefix="late"))

        # a new cluster from the backup: a fresh etcd gets the collection record back, each shard its data
        etcd2 = Etcd().start()
        for name, value in rec["collections"].items():
            body = json.dumps({"key": base64.b64encode(f"/quiver/collections/{name}".encode()).decode(),
                               "value": base64.b64encode(json.dumps(value).encode()).decode()}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{etcd2.url}/v3/kv/put", body), timeout=5).read()
        restored = []
        for x in rec["shards"]:
            n = Node("shard", ["--etcd", etcd2.url, "--shard-name", x["server"], "--etcd-ttl", "4"], binary=quiverd)
            out = subprocess.run([t.cli_path(), "restore", "--from", x["directory"], "--backup", str(x["id"]),
                                  "--data", n.data], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            restored.append(n.start())
        nodes += restored
        wait(lambda: len(etcd2.range("/quiver/shards/")) == SHARDS, what="3 restored shard registrations")
        coord2 = Node("coordinator", ["--etcd", etcd2.url, "--etcd-poll-ms", "200"], binary=quiverd).start()
        nodes.append(coord2)
        assert coord2.client.count("bk") == len(pts)
        got = coord2.client.get_map("bk", [p.id for p in pts[:100]], with_vectors=True)
        for p in pts[:100]:
            assert list(got[p.id].vector) == pytest.approx(list(p.vector))
    finally:
        for s in nodes:
            s.cleanup()
        if etcd2:
            etcd2.cleanup()


def test_text_upsert_refused_whole_or_written_whole(cluster):
    """The text limits are the whole request's, checked at the coordinator before anything is sent: a batch over the
    embedder's byte limit is refused whole (no shard writes its share), as a standalone server refuses it, and a
    batch within it is written on every shard."""
    cl, sa = cluster["coord"].client, cluster["sa"].client
    for c in (cl, sa):
        c.q.CreateCollection(pb.CreateCollectionRequest(name="txt", embedding_model="all-MiniLM-L6-v2", metric=COSINE))
    # 12 texts of 100 KiB: 1.2 MiB in all, over the 1 MiB limit; each shard's share (about 400 KiB) is within it
    big = [pb.Point(id=f"t{i:02d}", text=("word%d " % i) * 17000) for i in range(12)]
    codes = []
    for c in (cl, sa):
        try:
            c.q.Upsert(pb.UpsertRequest(collection="txt", points=big), timeout=60)
            codes.append(None)
        except grpc.RpcError as e:
            codes.append((e.code(), e.details()))
    assert codes[0] == codes[1] and codes[0][0] == SC.INVALID_ARGUMENT and "limit" in codes[0][1], codes
    assert cl.count("txt") == 0 and all(s.client.count("txt") == 0 for s in cluster["shards"])
    # a text point in a collection without a model: refused whole with the standalone server's message
    for c in (cl, sa):
        c.create("vec", DIM, L2)
    mixed = make_points(31, 20) + [pb.Point(id="notext", text="hello")]
    msgs = []
    for c in (cl, sa):
        with pytest.raises(grpc.RpcError) as ei:
            c.q.Upsert(pb.UpsertRequest(collection="vec", points=mixed))
        msgs.append((ei.value.code(), ei.value.details()))
    assert msgs[0] == msgs[1] and msgs[0][0] == SC.INVALID_ARGUMENT, msgs
    assert cl.count("vec") == 0
    # within the limit: written whole
    ok = [pb.Point(id=f"s{i:02d}", text=f"short text number {i}") for i in range(30)]
    cl.q.Upsert(pb.UpsertRequest(collection="txt", points=ok), timeout=60)
    assert cl.count("txt") == 30 and sum(s.client.count("txt") for s in cluster["shards"]) == 30


# ---------------------------------------------------------------------------------------------------------------------
# etcd over TLS: with etcd's own authentication (user + password), or with client certificates. etcd 3.4's JSON
# gateway refuses requests that carry a client certificate once authentication is on ("CommonName of client sending
# a request against gateway will be ignored"), so the two are tested apart.
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["auth", "mtls"])
def test_etcd_tls(quiverd, tmp_path, mode):
    if not shutil.which("etcd"):
        pytest.skip("etcd is not installed (Debian etcd-server; tools/deps.sh --test)")
    import ssl
    from test_security import make_certs
    make_certs(tmp_path)
    port, peer = free_port(), free_port()
    url = f"https://127.0.0.1:{port}"
    cmd = ["etcd", "--name", "qv", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", url,
           "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
           "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster",
           f"qv=http://127.0.0.1:{peer}", "--cert-file", str(tmp_path / "server.pem"), "--key-file",
           str(tmp_path / "server.key")]
    if mode == "mtls":
        cmd += ["--trusted-ca-file", str(tmp_path / "ca.pem"), "--client-cert-auth"]
    etcd = subprocess.Popen(cmd, stdout=open(tmp_path / "etcd.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    if mode == "mtls":
        ctx.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))

    def gw(path, body, token=None):
        req = urllib.request.Request(f"{url}{path}", json.dumps(body).encode(),
                                     headers={"Authorization": token} if token else {})
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return json.load(r)

    nodes = []
    try:
        t0 = time.monotonic()
        while True:
            try:
                gw("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
                break
            except OSError:
                assert time.monotonic() - t0 < 30, (tmp_path / "etcd.log").read_text()[-2000:]
                time.sleep(0.2)
        sec = ["--etcd", url, "--etcd-ca", str(tmp_path / "ca.pem")]
        if mode == "auth":
            gw("/v3/auth/user/add", {"name": "root", "password": "s3cret"})
            gw("/v3/auth/user/grant", {"user": "root", "role": "root"})
            gw("/v3/auth/enable", {})
            pw = tmp_path / "etcd-password"
            pw.write_text("s3cret\n")
            good, anon = sec + ["--etcd-user", "root", "--etcd-password-file", str(pw)], sec
        else:
            good = sec + ["--etcd-cert", str(tmp_path / "client.pem"), "--etcd-key", str(tmp_path / "client.key")]
            anon = sec
        shard = Node("shard", good + ["--shard-name", "s0", "--etcd-ttl", "4"], binary=quiverd).start()
        nodes.append(shard)
        coord = Node("coordinator", good + ["--etcd-poll-ms", "200"], binary=quiverd).start()
        nodes.append(coord)
        wait(lambda: _ok(lambda: coord.client.create("tls", DIM, L2, FIELDS)), what="create through the TLS etcd")
        coord.client.upsert("tls", make_points(5, 50))
        assert coord.client.count("tls") == 50
        token = gw("/v3/auth/authenticate", {"name": "root", "password": "s3cret"})["token"] if mode == "auth" else None
        keys = gw("/v3/kv/range", {"key": base64.b64encode(b"/quiver/").decode(),
                                   "range_end": base64.b64encode(b"/quiver0").decode()}, token).get("kvs", [])
        assert any(base64.b64decode(k["key"]) == b"/quiver/collections/tls" for k in keys)
        # without the credentials a coordinator gets no shard map: it never becomes SERVING
        other = Node("coordinator", anon, binary=quiverd)
        nodes.append(other)
        with pytest.raises(RuntimeError) as e:
            other.start(timeout=5)
        assert "etcd" in str(e.value), str(e.value)[-2000:]
    finally:
        for n in nodes:
            n.cleanup()
        os.killpg(etcd.pid, signal.SIGKILL)
        etcd.wait()
