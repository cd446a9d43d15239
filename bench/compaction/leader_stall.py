#!/usr/bin/python3
"""How long does a compaction swap stall the commit leader? (issue 13: no stall longer than a seal's persist batch)

Starts its own quiverd ($QUIVERD, or build/quiverd; --binary for another build, e.g. an older commit's) on a free
port in a temp dir, loads --points points of dim --dim into segments of --seal-rows (no indexes: the bench is about
the leader, not the graph builds), deletes --delete-frac of them, then runs one writer upserting single points back
to back while Admin.Compact merges every segment. Prints the writer's latency p50 / p99 / max during the compaction
(every write queued behind the swap waits for it: the max is the client-visible stall) and, when the server exports
them, the leader's longest run of each kind of operation (quiver_commit_max_seconds: compact = the swap, persist =
a seal's batch). --out writes JSON.

    /usr/bin/python3 bench/compaction/leader_stall.py --points 200000
"""
import argparse
import json
import os
import random
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from qvtest import Server, free_port, pb, point  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def commit_max(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r'quiver_commit_max_seconds\{op="([a-z_]+)"\} (\S+)',
                                                                  text)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seal-rows", type=int, default=20000)
    ap.add_argument("--delete-frac", type=float, default=0.4)
    ap.add_argument("--binary")
    ap.add_argument("--out")
    a = ap.parse_args()
    mport = free_port()
    srv = Server(seal_rows=a.seal_rows, binary=a.binary,
                 extra=["--metrics-listen", f"127.0.0.1:{mport}", "--index-min-rows", "100000000",
                        "--compact-deleted-ratio", "0", "--compact-small-segments", "0"]).start()
    try:
        c = srv.client
        c.create("s", a.dim)
        rng = random.Random(1)
        t0 = time.monotonic()
        for s in range(0, a.points, 2000):
            c.upsert("s", [point(f"p{i}", [rng.random() for _ in range(a.dim)])
                           for i in range(s, min(a.points, s + 2000))])
        c.admin.Flush(pb.FlushRequest(collection="s"))
        dels = [f"p{i}" for i in range(a.points) if rng.random() < a.delete_frac]
        for s in range(0, len(dels), 5000):
            c.delete("s", dels[s:s + 5000])
        c.admin.Flush(pb.FlushRequest(collection="s"))
        time.sleep(2)  # the sealer persists what the flushes froze
        print(f"loaded {a.points} x {a.dim} in {time.monotonic() - t0:.1f} s, deleted {len(dels)}", flush=True)
        stop = threading.Event()
        lat = []

        def writer():
            cl = srv.new_client()
            r = random.Random(2)
            i = 0
            while not stop.is_set():
                p = point(f"w{i}", [r.random() for _ in range(a.dim)])
                t = time.monotonic()
                cl.upsert("s", [p])
                lat.append((t, time.monotonic() - t))
                i += 1
            cl.close()

        th = threading.Thread(target=writer)
        th.start()
        time.sleep(1.0)
        job = c.admin.Compact(pb.CompactRequest(collection="s", target_rows=10 * a.points)).job_id
        c0 = time.monotonic()
        state = None
        while time.monotonic() - c0 < 600:
            st = c.admin.Stats(pb.StatsRequest())
            j = [x for x in st.compactions if x.id == job]
            state = j[0].state if j else None
            if state in (pb.CompactionJob.STATE_DONE, pb.CompactionJob.STATE_FAILED, pb.CompactionJob.STATE_ABANDONED):
                break
            time.sleep(0.05)
        c1 = time.monotonic()
        time.sleep(0.5)
        stop.set()
        th.join()
        during = [d for t, d in lat if c0 <= t <= c1]
        idle = [d for t, d in lat if t < c0]
        try:
            leader = commit_max(mport)
        except OSError:
            leader = {}
        res = {"points": a.points, "dim": a.dim, "seal_rows": a.seal_rows, "deleted": len(dels),
               "compaction_s": c1 - c0, "state": int(state or 0),
               "idle_ms": {"p50": pct(idle, 50) * 1e3, "p99": pct(idle, 99) * 1e3,
                           "max": max(idle) * 1e3 if idle else 0},
               "during_ms": {"p50": pct(during, 50) * 1e3, "p99": pct(during, 99) * 1e3,
                             "max": max(during) * 1e3 if during else 0, "n": len(during)},
               "leader_max_ms": {k: v * 1e3 for k, v in leader.items()}}
        print(f"compaction of {a.points // a.seal_rows} segments took {c1 - c0:.2f} s")
        print(f"writer latency ms: before p50 {res['idle_ms']['p50']:.2f} p99 {res['idle_ms']['p99']:.2f} "
              f"max {res['idle_ms']['max']:.2f}; during p50 {res['during_ms']['p50']:.2f} "
              f"p99 {res['during_ms']['p99']:.2f} max {res['during_ms']['max']:.2f} (n={len(during)})")
        if leader:
            print("leader's longest run per operation (ms): " +
                  ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(leader.items()) if v > 0))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        srv.cleanup()


if __name__ == "__main__":
    main()
