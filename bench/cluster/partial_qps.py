#!/usr/bin/python3
"""Coordinator search QPS with one shard hung (SIGSTOP), against the same cluster healthy. Issue 12, "Coordinator
isolation": the goal is that a hung shard costs allow_partial searches at most half the coordinator's throughput
(ratio >= 0.5), where before the breaker and the per-shard limit it froze the coordinator.

Processes (all started here, each on a free port, in a temp dir of its own and its own process group, stopped at
exit): --shards (2) x `quiverd --role shard` and `quiverd --role coordinator --shards A,B` with the server defaults
(--threads 16, --shard-timeout-ms 5000, --shard-max-inflight 12) and --metrics-listen off. All share the machine's
cores with this Python client (nproc is in the output).

Data: --n x --dim float32 (default 20,000 x 64), standard normal, fixed seed; collection "bench", L2, FLAT index,
one logical shard per server (shards=0), so every search is an exact scan of each shard's part (the same work per
shard in every phase). --queries (256) query vectors drawn the same way; requests serialised before the clock:
k=10, allow_partial=true, no deadline (the coordinator's --shard-timeout-ms applies to its shard calls).

Load: --clients (16) threads, a channel each, send the requests round robin, back to back, from the start to the
end of the run; every call is logged with its start time, latency and partial flag (or error). One round:

  healthy    --seconds (10) of load with every shard up (after --warmup s);
  transition SIGSTOP of the first shard (the one a static coordinator also asks first for collection metadata), then
             Admin.Health every 100 ms (1 s deadline) until it reports that shard's breaker open (or half-open) and
             the shard unreachable: how long that took, the QPS meanwhile, Health's worst latency and the most calls
             in flight to the stopped shard it reported (at most --shard-max-inflight);
  stopped    --seconds of load with the shard stopped and its breaker open;
  recovered  SIGCONT, then the time until a search without allow_partial answers in full, then --seconds of load.

QPS of a phase = calls started in its window / its length (counted after the round, when every call has ended; by
start rather than end, so that a call refused just before the breaker closed does not count as a partial answer in
the recovered window; the healthy window ends 0.5 s before the stop for the same reason). Ratio = stopped QPS / healthy QPS of the same round;
--rounds (3) rounds, the reported ratio is the median. A stopped shard is always continued (finally). Partial
answers in the healthy or recovered windows, or any error, are reported (they should be 0). Note that with a shard
stopped each search scans half the data, so on a machine whose cores the shards share the ratio can exceed 1; the
figure shows that the coordinator keeps serving at all, not that a hung shard is free.

Output: a Markdown table on stdout, JSON in bench/cluster/results/partial_qps.json (--out) with the machine, the
load before and after, and the server command lines.

Usage: QUIVERD=build-release/quiverd /usr/bin/python3 bench/cluster/partial_qps.py [--n N] [--dim D] [--clients C]
       [--seconds S] [--rounds R] [--out FILE]
"""
import argparse
import os
import signal
import statistics
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import qvbench as qb  # noqa: E402
from qvbench import pb, pbg, grpc  # noqa: E402
from cluster_bench import Node, snapshot, client_cpu  # noqa: E402

COLL = "bench"


class Load:
    """--clients threads sending pre-serialised searches back to back until stop(); each answer is logged."""

    def __init__(self, addr, reqs, clients):
        self.reqs, self.stopping = reqs, threading.Event()
        self.conns = [qb.Conn(addr, timeout=60).ready() for _ in range(clients)]
        self.log = [[] for _ in range(clients)]  # per thread: (t_start, latency, partial) or (t_start, latency, error)
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, i):
        conn, log, n = self.conns[i], self.log[i], len(self.reqs)
        k = i
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                r = conn.raw_search(self.reqs[k % n], timeout=None)  # no deadline
                log.append((t0, time.monotonic() - t0, bool(r.partial)))
            except grpc.RpcError as e:
                log.append((t0, time.monotonic() - t0, f"{e.code()} {e.details()}"))
            k += len(self.conns)

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self, timeout=30):
        self.stopping.set()
        for th in self.threads:
            th.join(timeout)
        for c in self.conns:
            c.close()
        return not any(th.is_alive() for th in self.threads)

    def window(self, t0, t1):
        """Figures over the calls started in [t0, t1)."""
        got = [x for log in self.log for x in list(log) if t0 <= x[0] < t1]
        lat = sorted(x[1] for x in got)
        errors = [x[2] for x in got if isinstance(x[2], str)]
        return {"seconds": t1 - t0, "answers": len(got), "qps": len(got) / (t1 - t0) if t1 > t0 else None,
                "partial": sum(1 for x in got if x[2] is True), "errors": len(errors), "error_samples": errors[:3],
                "p50_ms": qb.percentile(lat, 50) * 1e3 if lat else None,
                "p99_ms": qb.percentile(lat, 99) * 1e3 if lat else None}


def health(admin):
    t0 = time.monotonic()
    h = admin.Health(pb.HealthRequest(), timeout=1.0)
    return h, time.monotonic() - t0


def one_round(r, coord, shards, reqs, full_req, args):
    hung = shards[0]
    admin = pbg.AdminStub(grpc.insecure_channel(coord.addr))
    check = qb.Conn(coord.addr, timeout=5)
    load = Load(coord.addr, reqs, args.clients).start()
    stopped = False
    out = {"round": r}
    try:
        time.sleep(args.warmup)
        c0, t0 = client_cpu(), time.monotonic()
        time.sleep(args.seconds)
        t1 = time.monotonic()
        time.sleep(0.5)  # a gap, so that no call of the healthy window is still in flight at the stop
        ts = time.monotonic()
        os.kill(hung.proc.pid, signal.SIGSTOP)
        stopped = True
        worst, polls, pinned = 0.0, 0, 0
        while True:
            h, took = health(admin)
            worst, polls = max(worst, took), polls + 1
            st = {s.address: s for s in h.shards}[hung.addr]
            pinned = max(pinned, st.inflight)
            if not st.reachable and st.state in ("open", "half_open"):
                break
            if time.monotonic() - ts > 60:
                raise RuntimeError(f"the stopped shard's breaker did not open within 60 s: {st}")
            time.sleep(0.1)
        t2 = time.monotonic()
        out["transition"] = dict(breaker_open_after_s=t2 - ts, health_polls=polls,
                                 health_worst_ms=worst * 1e3, max_inflight_to_stopped_shard=pinned)
        time.sleep(args.seconds)
        t3 = time.monotonic()
        h, took = health(admin)
        stopped_health = {"health_ms": took * 1e3, "health_status": pb.HealthResponse.Status.Name(h.status)}
        os.kill(hung.proc.pid, signal.SIGCONT)
        stopped = False
        while True:
            try:
                if not check.raw_search(full_req, timeout=2).partial:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() - t3 > 60:
                raise RuntimeError("no full answer within 60 s of SIGCONT")
            time.sleep(0.05)
        t4 = time.monotonic()
        out["recovery_s"] = t4 - t3
        time.sleep(args.seconds)
        t5 = time.monotonic()
        out["client_cores"] = (client_cpu() - c0) / (t5 - t0)
    finally:
        if stopped:
            os.kill(hung.proc.pid, signal.SIGCONT)
        if not load.stop():
            qb.log("warning: load threads still waiting after stop")
        check.close()
    out["healthy"] = load.window(t0, t1)
    out["transition"].update(load.window(ts, t2))
    out["stopped"] = dict(load.window(t2, t3), **stopped_health)
    out["recovered"] = load.window(t4, t5)
    out["ratio_stopped_over_healthy"] = out["stopped"]["qps"] / out["healthy"]["qps"]
    qb.log(f"round {r}: healthy {out['healthy']['qps']:,.0f} q/s, stopped {out['stopped']['qps']:,.0f} q/s "
           f"(ratio {out['ratio_stopped_over_healthy']:.2f}), breaker open after "
           f"{out['transition']['breaker_open_after_s']:.1f} s, recovered {out['recovery_s']:.2f} s after SIGCONT")
    return out


def fmt(x, nd=1):
    return "-" if x is None else f"{x:,.{nd}f}"


def table(res):
    cfg = res["config"]
    out = [f"Data: {cfg['n']:,} x {cfg['dim']} float32, L2, FLAT (exact), {cfg['shards']} shards + coordinator "
           f"(server defaults); {cfg['clients']} client threads, allow_partial, no deadline, k=10; "
           f"{cfg['seconds']:g} s windows, {cfg['rounds']} round(s); nproc = {res['load_before']['nproc']} shared by "
           f"every server process and the client.", "",
           "| round | phase | QPS | p50 ms | p99 ms | partial | errors | notes |",
           "|---:|---|---:|---:|---:|---:|---:|---|"]
    for x in res["rounds"]:
        tr = x["transition"]
        notes = {"healthy": "",
                 "transition": f"breaker open after {tr['breaker_open_after_s']:.1f} s; Health worst "
                               f"{tr['health_worst_ms']:.0f} ms over {tr['health_polls']} polls; "
                               f"at most {tr['max_inflight_to_stopped_shard']} calls in flight to the stopped "
                               f"shard (Health's inflight)",
                 "stopped": f"ratio to healthy {x['ratio_stopped_over_healthy']:.2f}; Health "
                            f"{x['stopped']['health_ms']:.0f} ms, {x['stopped']['health_status']}",
                 "recovered": f"full answers {x['recovery_s']:.2f} s after SIGCONT"}
        for phase in ("healthy", "transition", "stopped", "recovered"):
            w = x[phase]
            out.append(f"| {x['round']} | {phase} | {fmt(w['qps'], 0)} | {fmt(w['p50_ms'], 2)} | {fmt(w['p99_ms'], 2)} "
                       f"| {w['partial']:,} | {w['errors']:,} | {notes[phase]} |")
    out += ["", f"Ratio stopped / healthy QPS (median of {len(res['rounds'])} rounds): "
                f"{res['ratio_median']:.2f} (rounds: {', '.join(f'{v:.2f}' for v in res['ratios'])}; goal >= 0.5)",
            f"Load before: {res['load_before']['uptime']}", f"Load after:  {res['load_after']['uptime']}"]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="points")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the healthy, stopped, recovered windows")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "partial_qps.json"))
    args = ap.parse_args()

    res = {"benchmark": "cluster partial_qps", "machine": qb.machine_info(), "load_before": snapshot(),
           "quiverd": qb.quiverd_path(), "quiverd_source": os.environ.get("QV_BENCH_SOURCE"), "config": vars(args)}
    qb.log(f"nproc={res['load_before']['nproc']}  {res['load_before']['uptime']}")
    rng = np.random.default_rng(args.seed)
    base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    reqs = []
    for q in queries:
        r = pb.SearchRequest(collection=COLL, k=10, allow_partial=True)
        r.vector.extend(q.tolist())
        reqs.append(r.SerializeToString())
    full = pb.SearchRequest.FromString(reqs[0])  # the recovery check: answered only when every shard answers
    full.allow_partial = False
    full_req = full.SerializeToString()

    shards = [Node("shard").start() for _ in range(args.shards)]
    coord = Node("coordinator", ["--shards", ",".join(s.addr for s in shards)]).start()
    res["servers"] = [" ".join(p.cmdline()) for p in [coord] + shards]
    res["coordinator_start_line"] = coord.start_line
    c = qb.Conn(coord.addr, timeout=120)
    c.q.CreateCollection(pb.CreateCollectionRequest(name=COLL, dim=args.dim, metric=pb.METRIC_L2, shards=0,
                                                    index=pb.IndexParams(kind=pb.INDEX_KIND_FLAT)), timeout=60)
    for s in range(0, args.n, 1000):
        c.raw_upsert(qb.upsert_bytes(COLL, [f"p{i}" for i in range(s, min(args.n, s + 1000))],
                                     base[s:s + 1000]), timeout=120)
    if c.q.Count(pb.CountRequest(collection=COLL), timeout=60).count != args.n:
        raise RuntimeError("Count after ingest does not match --n")
    c.close()
    for p in [coord] + shards:
        p.wait_idle(cores=0.1, timeout=120)

    res["rounds"] = [one_round(r, coord, shards, reqs, full_req, args) for r in range(args.rounds)]
    res["ratios"] = [x["ratio_stopped_over_healthy"] for x in res["rounds"]]
    res["ratio_median"] = statistics.median(res["ratios"])
    res["load_after"] = snapshot()
    qb.write_json(args.out, res)
    print(table(res))
    qb.log(f"results: {args.out}")


if __name__ == "__main__":
    main()
