"""Coordinator isolation (issue 12): a hung shard must not freeze the coordinator.

A SIGSTOPped shard accepts TCP connections and answers nothing, so every call to it waits out its deadline. These
tests start 2 shard servers and a static coordinator with the default --threads (16), --shard-timeout-ms (5000) and
--shard-max-inflight (12), stop one shard under a load of 32 client threads whose allow_partial searches carry no
deadline, and check what the coordinator promises (docs/ARCHITECTURE.md, Cluster, "Isolation"):

- Health answers within 1 s throughout, from the breaker state, and reports the stopped shard unreachable with its
  breaker open (or half-open while a probe is out) and no more calls in flight to it than --shard-max-inflight;
- once the breaker is open, allow_partial searches with a 2 s deadline return within it, partial and naming the
  stopped shard; searches without allow_partial fail at once with UNAVAILABLE naming it and its breaker (and before
  it opens, an allow_partial search with a deadline still answers partial in time: the shard call ends earlier);
- after SIGCONT the coordinator recovers on its own: full answers (the same hits as before the stop), breakers
  closed, within a few seconds; and the load saw no error at all.

Also: Health is NOT_SERVING with a reason when no shard is reachable, and --shard-max-inflight must stay below
--threads. Every server runs on free ports in temp dirs; a stopped shard is always continued and killed (finally).
"""
import os
import signal
import subprocess
import threading
import time

import grpc
import numpy as np

import qvtest as t
from test_hardening import grpc_health
from qvtest import L2, SC, pb, pbg, point, expect_error

DIM = 16
POINTS = 600
LOAD_THREADS = 32
SERVING = pb.HealthResponse.STATUS_SERVING
NOT_SERVING = pb.HealthResponse.STATUS_NOT_SERVING


class Node(t.Server):
    """A quiverd in the shard or coordinator role on a free port in its own temp dir."""

    def __init__(self, role, args=(), **kw):
        super().__init__(**kw)
        self.role, self.args = role, list(args)

    def cmdline(self):
        cmd = [self.binary, "--role", self.role, "--listen", self.addr] + self.args
        if self.role != "coordinator":
            cmd += ["--data", self.data]
        return cmd + ["--metrics-listen", "off"] + self.flags


def start_cluster(quiverd, n=2, coord_args=()):
    shards = [Node("shard", binary=quiverd).start() for _ in range(n)]
    coord = Node("coordinator", ["--shards", ",".join(s.addr for s in shards)] + list(coord_args),
                 binary=quiverd).start()
    return shards, coord


def search_req(q, k, allow_partial):
    req = pb.SearchRequest(collection="iso", vector=np.asarray(q, np.float32).tolist(), k=k,
                           allow_partial=allow_partial)
    req.params.exact = True
    return req


def timed_health(admin):
    """Health with a 1 s deadline; fails the test when it takes longer."""
    t0 = time.monotonic()
    h = admin.Health(pb.HealthRequest(), timeout=1.0)
    took = time.monotonic() - t0
    assert took < 1.0, f"Health took {took:.2f} s"
    return h, took


def shard_states(h):
    return {s.address: s for s in h.shards}


def test_stopped_shard_isolated_then_recovers(quiverd, capsys):
    shards, coord = start_cluster(quiverd)
    hung, healthy = shards
    stopped = False
    stop_load = threading.Event()
    load_threads = []
    try:
        c = coord.client
        c.create("iso", DIM, L2)
        r = np.random.default_rng(12)
        vecs = r.standard_normal((POINTS, DIM)).astype(np.float32)
        c.upsert_all("iso", [point(f"p{i:04d}", vecs[i]) for i in range(POINTS)], batch=300)
        healthy_ids = {p.id for p in healthy.client.q.Scroll(pb.ScrollRequest(collection="iso", limit=POINTS)).points}
        assert 0 < len(healthy_ids) < POINTS  # the points spread over both shards
        q = r.standard_normal(DIM).astype(np.float32)
        full = [h.id for h in c.q.Search(search_req(q, 20, False)).hits]
        want_partial = [x.id for x in healthy.client.q.Search(search_req(q, 20, False)).hits]
        assert set(want_partial) <= healthy_ids

        admin = pbg.AdminStub(grpc.insecure_channel(coord.addr))
        stub = pbg.QuiverStub(grpc.insecure_channel(coord.addr))
        h, _ = timed_health(admin)
        assert h.status == SERVING and len(h.shards) == 2
        assert all(s.reachable and s.state == "closed" for s in h.shards), h

        os.kill(hung.proc.pid, signal.SIGSTOP)
        stopped = True
        counts = {"full": 0, "partial": 0}
        errors, lock = [], threading.Lock()

        def load(i):
            ch = grpc.insecure_channel(coord.addr)
            s = pbg.QuiverStub(ch)
            qi = np.random.default_rng(1000 + i).standard_normal(DIM).astype(np.float32)
            while not stop_load.is_set():
                try:
                    res = s.Search(search_req(qi, 10, True))  # no deadline: --shard-timeout-ms applies
                    with lock:
                        counts["partial" if res.partial else "full"] += 1
                except grpc.RpcError as e:
                    with lock:
                        errors.append((e.code(), e.details()))
            ch.close()

        load_threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(LOAD_THREADS)]
        t_stop = time.monotonic()
        for th in load_threads:
            th.start()

        # Health answers within 1 s all along; it reports the stopped shard unreachable once the breaker opens
        # (after QV_BREAKER_FAILURES calls time out at --shard-timeout-ms), and never more than
        # --shard-max-inflight calls pinned on it
        worst = 0.0
        while True:
            h, took = timed_health(admin)
            worst = max(worst, took)
            st = shard_states(h)
            assert st[hung.addr].inflight <= 12, st[hung.addr]
            if not st[hung.addr].reachable and st[hung.addr].state in ("open", "half_open"):
                break
            assert time.monotonic() - t_stop < 30, f"the stopped shard's breaker did not open: {st[hung.addr]}"
            time.sleep(0.1)
        opened_after = time.monotonic() - t_stop
        assert h.status == SERVING and not h.reason, h  # one shard left: still serving
        assert st[hung.addr].consecutive_failures >= 5, st[hung.addr]
        assert st[healthy.addr].reachable and st[healthy.addr].state == "closed", st[healthy.addr]

        # with the breaker open: allow_partial answers within a 2 s deadline, without the stopped shard
        for _ in range(10):
            t0 = time.monotonic()
            res = stub.Search(search_req(q, 20, True), timeout=2.0)
            took = time.monotonic() - t0
            assert took < 2.0
            assert res.partial and list(res.missing_shards) == [hung.addr], res
            assert [x.id for x in res.hits] == want_partial
            h, took = timed_health(admin)
            worst = max(worst, took)
            time.sleep(0.05)
        # without allow_partial: UNAVAILABLE at once, naming the shard and why
        t0 = time.monotonic()
        expect_error(lambda: stub.Search(search_req(q, 20, False), timeout=2.0), SC.UNAVAILABLE,
                     [hung.addr, ("circuit open", "--shard-max-inflight")], "search without allow_partial")
        assert time.monotonic() - t0 < 1.0

        # SIGCONT: the coordinator finds the shard again by itself (a probe closes the breaker)
        os.kill(hung.proc.pid, signal.SIGCONT)
        stopped = False
        t_cont = time.monotonic()

        def recovered():
            try:
                res = stub.Search(search_req(q, 20, False), timeout=2.0)
            except grpc.RpcError:
                return False
            return not res.partial and [x.id for x in res.hits] == full

        assert t.wait_for(recovered, timeout=10.0), "no full answer within 10 s of SIGCONT"
        recovered_after = time.monotonic() - t_cont
        stop_load.set()
        for th in load_threads:
            th.join(30)
        assert not any(th.is_alive() for th in load_threads), "load threads still waiting after recovery"
        h, _ = timed_health(admin)
        st = shard_states(h)
        assert h.status == SERVING
        assert all(s.reachable and s.state == "closed" and s.consecutive_failures == 0 for s in h.shards), h
        assert not errors, errors[:5]
        assert counts["partial"] > 0 and counts["full"] > 0, counts
        with capsys.disabled():
            print(f"\n  stopped shard: breaker open after {opened_after:.1f} s, Health worst {worst * 1e3:.0f} ms, "
                  f"recovered {recovered_after:.1f} s after SIGCONT; load: {counts['partial']} partial + "
                  f"{counts['full']} full answers, 0 errors")
    finally:
        stop_load.set()
        if stopped:
            os.kill(hung.proc.pid, signal.SIGCONT)
        for s in shards + [coord]:
            s.cleanup()


def test_allow_partial_answers_before_the_client_deadline(quiverd):
    """No load, the breaker still closed: the call to the stopped shard ends a little before the client's deadline,
    so allow_partial gets its partial answer in time instead of DEADLINE_EXCEEDED."""
    shards, coord = start_cluster(quiverd)
    hung = shards[1]  # not the first member, which a static coordinator asks for collection metadata
    stopped = False
    try:
        c = coord.client
        c.create("iso", DIM, L2)
        r = np.random.default_rng(5)
        c.upsert_all("iso", [point(f"p{i:04d}", v) for i, v in enumerate(r.standard_normal((200, DIM)))])
        q = r.standard_normal(DIM)
        os.kill(hung.proc.pid, signal.SIGSTOP)
        stopped = True
        for _ in range(2):
            t0 = time.monotonic()
            res = c.q.Search(search_req(q, 5, True), timeout=1.0)
            assert time.monotonic() - t0 < 1.0
            assert res.partial and list(res.missing_shards) == [hung.addr] and len(res.hits) == 5, res
        expect_error(lambda: c.q.Search(search_req(q, 5, False), timeout=1.0), SC.DEADLINE_EXCEEDED, [],
                     "search without allow_partial")
    finally:
        if stopped:
            os.kill(hung.proc.pid, signal.SIGCONT)
        for s in shards + [coord]:
            s.cleanup()


def test_health_not_serving_when_no_shard_is_reachable(quiverd):
    shards, coord = start_cluster(quiverd)
    try:
        assert grpc_health(coord.addr) == 1  # grpc.health.v1 Check, from the coordinator's own Health
        c = coord.client
        c.create("iso", DIM, L2)
        for s in shards:
            s.kill9()
        # the failed calls (connection refused) mark the shards unreachable; Health itself calls no shard
        for _ in range(6):
            expect_error(lambda: c.count("iso"), SC.UNAVAILABLE, [shards[0].addr], "count")
        admin = pbg.AdminStub(grpc.insecure_channel(coord.addr))
        h, _ = timed_health(admin)
        assert h.status == NOT_SERVING and "none of the 2 shard servers is reachable" in h.reason, h
        assert all(not s.reachable for s in h.shards), h
        assert shard_states(h)[shards[0].addr].state in ("open", "half_open"), h
        assert grpc_health(coord.addr) == 2  # grpc.health.v1 Check: NOT_SERVING as well
    finally:
        for s in shards + [coord]:
            s.cleanup()


def test_shard_max_inflight_below_threads(quiverd):
    r = subprocess.run([quiverd, "--role", "coordinator", "--shards", "127.0.0.1:1", "--threads", "8",
                        "--shard-max-inflight", "8", "--listen", f"127.0.0.1:{t.free_port()}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--shard-max-inflight 8 must be below --threads 8" in r.stderr, r.stderr
