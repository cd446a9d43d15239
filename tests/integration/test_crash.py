"""Crash test: kill -9 of quiverd at random moments while 4 client threads upsert and delete.

Each thread owns its ids (w<thread>-<n>, in two collections: an L2 one, checked bit-exact, and a COSINE one, checked
against the unit vector), and at most one of its requests is in flight at a time, so the history of every id is known
exactly except for that one request. The thread's model holds the latest acknowledged value of each id (vector,
attributes, text) or its absence.

After every restart:
- every id outside the in-flight request equals the model: acknowledged upserts present with their exact vector,
  attributes and text unless a later acknowledged delete removed them; acknowledged deletes absent; never-written
  ("ghost") ids absent;
- the in-flight request (if any) is applied entirely or not at all: every one of its ids has the value it carried
  (absent, for a delete) or every one still has its value from before; the model then takes what the server has;
- Count (with and without a filter) and Describe.live_rows equal the number of live points in the model, and exact
  searches equal NumPy brute force over the model.
During the rounds, every acknowledged Delete must report exactly the ids that existed, every Upsert its point count,
every Get (read-your-writes) the model's values, and no request may fail before the kill.

QV_CRASH_ROUNDS (default 20, at least 20) sets the number of kill -9 rounds; QV_SEED the random seed.
"""
import collections
import os
import random
import threading
import time
import traceback

import grpc
import numpy as np

from qvtest import (BOOL, COSINE, DOUBLE, INT64, KEYWORD, KEYWORDS, L2, SEALED, Client, attrs_of, check_topk, eq,
                    point, segment_summary, typed, unit, vec_of)

ROUNDS = max(20, int(os.environ.get("QV_CRASH_ROUNDS", "20")))
TERM_AFTER = {7, 15}          # clean SIGTERM rounds inserted after these kill rounds (writers still running)
SEAL_ROWS = 300
THREADS = 4
POOL = 600                    # ids per thread and collection
GHOSTS = 100                  # never-written ids per thread and collection, used in deletes
COLLS = {"crash_l2": (16, L2), "crash_cos": (12, COSINE)}
FIELDS = [("year", INT64), ("price", DOUBLE), ("category", KEYWORD), ("active", BOOL), ("tags", KEYWORDS)]
CATS = ["news", "wiki", "code", "mail", "chat"]
TAGS = ["a", "b", "c", "d", "e", "f"]
TEXT_CHARS = "abcdefxyz \u00e9\u2713-_0123456789"


class Rec:
    __slots__ = ("vec", "attrs", "text")

    def __init__(self, vec, attrs, text):
        self.vec, self.attrs, self.text = vec, attrs, text

    def __repr__(self):
        return f"Rec(vec={self.vec[:3].tolist()}..., attrs={self.attrs}, text={self.text!r})"


def matches(coll, p, rec):
    """Does the server's point p (or None) equal the model's rec (or None)?"""
    if p is None or rec is None:
        return p is None and rec is None
    if COLLS[coll][1] == COSINE:
        if not np.allclose(vec_of(p), unit(rec.vec), atol=2e-6):
            return False
    elif vec_of(p).tobytes() != rec.vec.tobytes():
        return False
    return typed(attrs_of(p)) == typed(rec.attrs) and p.text == rec.text


def show(p):
    if p is None:
        return "absent"
    return f"vec={list(p.vector)[:3]}... attrs={attrs_of(p)} text={p.text!r}"


class Op:
    __slots__ = ("kind", "coll", "ids", "recs")

    def __init__(self, kind, coll, ids, recs=None):
        self.kind, self.coll, self.ids, self.recs = kind, coll, ids, recs

    def __repr__(self):
        return f"{self.kind}({self.coll}, {len(self.ids)} ids: {self.ids[:4]}...)"


class Worker:
    def __init__(self, w, seed):
        self.w = w
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.model = {}                 # (coll, id) -> Rec of the latest acknowledged upsert; absent = not here
        self.inflight = None            # the write sent and not acknowledged when the server died
        self.errors = []                # (monotonic time, op, status, message)
        self.problems = []
        self.stats = collections.Counter()

    def pool(self):
        return [f"w{self.w}-{j}" for j in range(POOL)]

    def ghosts(self):
        return [f"w{self.w}-ghost-{j}" for j in range(GHOSTS)]

    # -- requests --
    def next_op(self):
        coll = self.rng.choice(list(COLLS))
        x = self.rng.random()
        if x < 0.62:
            size = self.rng.randint(1, 100)
            ids = [f"w{self.w}-{j}" for j in self.rng.sample(range(POOL), size)]
            dim = COLLS[coll][0]
            vecs = self.nprng.standard_normal((size, dim)).astype(np.float32)
            recs = [Rec(vecs[i], self.rand_attrs(), self.rand_text()) for i in range(size)]
            return Op("upsert", coll, ids, recs)
        if x < 0.90:
            live = [k[1] for k in self.model if k[0] == coll]
            picks = set(self.rng.sample(live, min(len(live), self.rng.randint(0, 20))))
            picks.update(f"w{self.w}-{j}" for j in self.rng.sample(range(POOL), self.rng.randint(0, 10)))
            picks.update(f"w{self.w}-ghost-{j}" for j in self.rng.sample(range(GHOSTS), self.rng.randint(0, 5)))
            if not picks:
                picks.add(f"w{self.w}-ghost-0")
            ids = list(picks)
            self.rng.shuffle(ids)
            return Op("delete", coll, ids)
        size = self.rng.randint(1, 50)
        ids = [f"w{self.w}-{j}" for j in self.rng.sample(range(POOL), size)] + [f"w{self.w}-ghost-1"]
        return Op("get", coll, ids)

    def rand_attrs(self):
        r = self.rng
        return {"year": r.randint(-2**62, 2**62), "price": r.uniform(-1e6, 1e6), "category": r.choice(CATS),
                "active": r.random() < 0.5, "tags": r.sample(TAGS, r.randint(1, 3))}

    def rand_text(self):
        return "".join(self.rng.choice(TEXT_CHARS) for _ in range(self.rng.randint(0, 30)))

    def run(self, client, stop):
        try:
            while not stop.is_set():
                op = self.next_op()
                if op.kind != "get":
                    self.inflight = op
                try:
                    if op.kind == "upsert":
                        resp = client.upsert(op.coll, [point(i, r.vec, r.attrs, r.text) for i, r in zip(op.ids, op.recs)])
                    elif op.kind == "delete":
                        resp = client.delete(op.coll, op.ids)
                    else:
                        resp = client.get(op.coll, op.ids)
                except grpc.RpcError as e:
                    self.errors.append((time.monotonic(), op, e.code(), e.details()))
                    return
                self.inflight = None
                self.acknowledged(op, resp)
        except Exception:  # a bug in this test must not pass for a crash
            self.problems.append(f"worker {self.w} raised:\n{traceback.format_exc()}")

    def acknowledged(self, op, resp):
        if op.kind == "upsert":
            if resp.count != len(op.ids):
                self.problems.append(f"{op}: Upsert acknowledged count {resp.count}")
            for i, r in zip(op.ids, op.recs):
                self.model[(op.coll, i)] = r
            self.stats["upsert requests"] += 1
            self.stats["upserted points"] += len(op.ids)
        elif op.kind == "delete":
            want = sum(1 for i in op.ids if (op.coll, i) in self.model)
            if resp != want:
                self.problems.append(f"{op}: Delete acknowledged deleted={resp}, {want} of the ids existed")
            for i in op.ids:
                self.model.pop((op.coll, i), None)
            self.stats["delete requests"] += 1
            self.stats["deleted points"] += want
            self.stats["deletes of absent ids"] += len(op.ids) - want
        else:
            got = {p.id: p for p in resp}
            order = [p.id for p in resp]
            want_order = [i for i in op.ids if (op.coll, i) in self.model]
            if order != want_order:
                self.problems.append(f"read-your-writes: Get returned {order[:6]}, want {want_order[:6]}")
            for i in want_order:
                if i in got and not matches(op.coll, got[i], self.model[(op.coll, i)]):
                    self.problems.append(f"read-your-writes: {op.coll}/{i} is {show(got[i])}, "
                                         f"acknowledged {self.model[(op.coll, i)]}")
            self.stats["get requests"] += 1


def verify(client, workers, rnd, totals):
    """Compare the restarted server with the models, resolve the in-flight requests, check counts and search."""
    problems = []
    observed = {}
    for coll in COLLS:
        ids = [i for wk in workers for i in wk.pool() + wk.ghosts()]
        observed[coll] = client.get_map(coll, ids, with_vectors=True)
    for wk in workers:
        op = wk.inflight
        skip = {(op.coll, i) for i in op.ids} if op else set()
        for coll in COLLS:
            for i in wk.pool() + wk.ghosts():
                key = (coll, i)
                if key in skip:
                    continue
                rec, p = wk.model.get(key), observed[coll].get(i)
                totals["ids checked"] += 1
                if rec is not None:
                    totals["acknowledged live points checked"] += 1
                if not matches(coll, p, rec):
                    kind = ("acknowledged upsert lost" if p is None else
                            "deleted or never written id present" if rec is None else "wrong value")
                    problems.append(f"round {rnd}: {kind}: {coll}/{i}: server {show(p)}, acknowledged {rec}")
        if op is not None:
            pre = [wk.model.get((op.coll, i)) for i in op.ids]
            post = list(op.recs) if op.kind == "upsert" else [None] * len(op.ids)
            obs = [observed[op.coll].get(i) for i in op.ids]
            applied = all(matches(op.coll, p, r) for p, r in zip(obs, post))
            untouched = all(matches(op.coll, p, r) for p, r in zip(obs, pre))
            if not applied and not untouched:
                detail = [f"{i}: {'new' if matches(op.coll, p, a) else 'old' if matches(op.coll, p, b) else 'neither'}"
                          for i, p, a, b in zip(op.ids, obs, post, pre)]
                problems.append(f"round {rnd}: in-flight {op} half applied: {detail[:20]}")
            else:
                totals[f"in-flight {op.kind}s applied" if applied and not untouched else
                       f"in-flight {op.kind}s not applied" if untouched and not applied else
                       f"in-flight {op.kind}s without effect either way"] += 1
            for i, p, a in zip(op.ids, obs, post):
                key = (op.coll, i)
                if applied:
                    if a is None:
                        wk.model.pop(key, None)
                    else:
                        wk.model[key] = a
            wk.inflight = None
    assert not problems, f"{len(problems)} problems after restart {rnd}:\n" + "\n".join(problems[:25])

    for coll, (dim, metric) in COLLS.items():
        keys = sorted(k[1] for wk in workers for k in wk.model if k[0] == coll)
        recs = {k[1]: r for wk in workers for k, r in wk.model.items() if k[0] == coll}
        n = client.count(coll)
        assert n == len(keys), f"round {rnd}: Count({coll}) = {n}, {len(keys)} points live"
        info = client.describe(coll)
        s = segment_summary(info)
        assert info.live_rows == len(keys), f"round {rnd}: {coll} live_rows {info.live_rows}, want {len(keys)}"
        assert s["rows"] - s["deleted"] == info.live_rows, f"round {rnd}: {coll} segments {s}"
        totals["max sealed segments seen"] = max(totals["max sealed segments seen"], s["sealed"])
        f = eq("active", True)
        fm = f.mask([recs[k].attrs for k in keys])
        assert client.count(coll, f) == fm.sum(), f"round {rnd}: Count({coll}, {f!r})"
        if keys:
            base = np.stack([recs[k].vec for k in keys])
            q = np.random.default_rng(rnd).standard_normal(dim).astype(np.float32)
            check_topk(client.search(coll, q, 10).hits, keys, base, q, 10, metric, f"round {rnd} {coll}")
            sel = np.nonzero(fm)[0]
            check_topk(client.search(coll, q, 10, f).hits, [keys[i] for i in sel], base[sel], q, 10, metric,
                       f"round {rnd} {coll} {f!r}")
        totals[f"live points in {coll} after last round"] = len(keys)


def test_kill9_rounds(make_server, capsys):
    seed = int(os.environ.get("QV_SEED", str(random.randrange(1 << 30))))
    print(f"crash test seed {seed} (QV_SEED to repeat)")
    chance = random.Random(seed)
    srv = make_server(seal_rows=SEAL_ROWS).start()
    for coll, (dim, metric) in COLLS.items():
        srv.client.create(coll, dim, metric, FIELDS)
    workers = [Worker(w, seed * 31 + w) for w in range(THREADS)]
    totals = collections.Counter()
    schedule = []
    for r in range(1, ROUNDS + 1):
        schedule.append("kill")
        if r in TERM_AFTER:
            schedule.append("term")
    t_start = time.monotonic()
    times = collections.Counter()
    for rnd, mode in enumerate(schedule, 1):
        stop = threading.Event()
        clients = [Client(srv.addr, timeout=60) for _ in workers]
        threads = [threading.Thread(target=wk.run, args=(cl, stop), daemon=True) for wk, cl in zip(workers, clients)]
        for t in threads:
            t.start()
        time.sleep(chance.uniform(0.2, 1.5))
        t_kill = time.monotonic()
        if mode == "kill":
            srv.kill9()
            totals["kill -9 rounds"] += 1
        else:
            rc = srv.stop()
            assert rc == 0, f"round {rnd}: exit status {rc} on SIGTERM with writers running"
            totals["SIGTERM rounds"] += 1
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), f"round {rnd}: a client thread hangs after the server died"
        for cl in clients:
            cl.close()
        problems = [p for wk in workers for p in wk.problems]
        early = [f"worker {wk.w}: {op} failed {t_kill - t:.3f} s before the {mode}: {code} {msg}"
                 for wk in workers for (t, op, code, msg) in wk.errors if t < t_kill]
        assert not problems and not early, f"round {rnd}:\n" + "\n".join((problems + early)[:25])
        for wk in workers:
            wk.errors.clear()
            totals["in-flight writes at the kill"] += wk.inflight is not None
        t0 = time.monotonic()
        srv.start()
        t1 = time.monotonic()
        verify(srv.client, workers, rnd, totals)
        times["restart"] += t1 - t0
        times["verify"] += time.monotonic() - t1
        times["stop"] += t0 - t_kill
    for wk in workers:
        totals.update(wk.stats)
    elapsed = time.monotonic() - t_start
    with capsys.disabled():
        print(f"\ncrash test (seed {seed}, {elapsed:.0f} s):")
        for k in sorted(totals):
            print(f"  {k}: {totals[k]}")
        print("  seconds spent: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(times.items())))
    assert totals["kill -9 rounds"] >= 20
    assert totals["upsert requests"] >= 50, "too few acknowledged writes to judge anything"
    assert totals["delete requests"] >= 10
    assert totals["max sealed segments seen"] >= 1, f"no segment was ever sealed (--seal-rows {SEAL_ROWS})"
    info = {c: srv.client.describe(c) for c in COLLS}
    assert any(s.state == SEALED for i in info.values() for s in i.segments)
