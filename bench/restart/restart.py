#!/usr/bin/python3
"""Restart of an indexed store (issue 3: "restart with 1M x 128 indexed: serving again within 5 s, no rebuild").

Loads N clustered vectors (default 1,000,000 x 128) through gRPC into a standalone quiverd, waits until every sealed
segment's HNSW index is READY (built in the background and persisted), then stops the server -- by kill -9 and, in
a second round, by SIGTERM -- and starts it again on the same data directory. For each restart it reports:
  health_s    process start -> Health answers SERVING (the store is open: manifest, segments, indexes, WAL replay)
  search_s    process start -> the first indexed search has answered
  ready       whether every sealed segment reports INDEX_STATE_READY at that point (a rebuild would show BUILDING)
  rebuilt     index.ready log lines after the restart (0: nothing was rebuilt)
  recall@10   of 200 searches at ef=64 against exact search, before and after (the same graphs must answer alike)
The figure is wall time on a shared machine; the page cache is warm (the data was just written), which is the case
of a process restart; a cold machine adds reading the data directory from disk.

  /usr/bin/python3 bench/restart/restart.py [--n 1000000] [--dim 128] [--seal-rows 100000] [--json OUT]
Uses $QUIVERD (default build-release/quiverd).
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qvbench  # noqa: E402
from qvbench import Conn, Server, pb, upsert_bytes, write_json  # noqa: E402


def clustered(n, dim, seed, centers=1000):
    r = np.random.default_rng(seed)
    c = r.standard_normal((centers, dim)).astype(np.float32) * 3
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        out[s:e] = c[r.integers(0, centers, e - s)] + r.standard_normal((e - s, dim)).astype(np.float32)
    return out


def wait_ready(conn, coll, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        segs = conn.q.DescribeCollection(pb.DescribeCollectionRequest(name=coll), timeout=30).collection.segments
        sealed = [s for s in segs if s.state == pb.SEGMENT_STATE_SEALED]
        if sealed and all(s.index_state == pb.INDEX_STATE_READY for s in sealed):
            return sealed
        time.sleep(2)
    raise SystemExit(f"indexes not READY after {timeout} s")


def recall(conn, coll, qs):
    hits = 0
    for q in qs:
        got = conn.q.Search(pb.SearchRequest(collection=coll, vector=q.tolist(), k=10, params=pb.SearchParams(ef=64)),
                            timeout=60).hits
        want = conn.q.Search(pb.SearchRequest(collection=coll, vector=q.tolist(), k=10,
                                              params=pb.SearchParams(exact=True)), timeout=120).hits
        hits += len({h.id for h in got} & {h.id for h in want})
    return hits / (10 * len(qs))


def timed_restart(srv, coll, q0, how):
    n_ready_before = srv.log_text().count("event=index.ready")
    if how == "kill9":
        srv.kill9()
    else:
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=300)
    t0 = time.monotonic()
    with open(srv.log_path, "ab") as log:  # same port, same data directory
        srv.proc = subprocess.Popen(srv.cmdline(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
    # A fresh channel per Health attempt: one shared channel would add its reconnect backoff (1 s, 1.6 s, ...) after
    # the first refused connection to the figure.
    health = None
    while health is None and time.monotonic() - t0 < 600 and srv.proc.poll() is None:
        c = Conn(srv.addr, timeout=0.5)
        try:
            if c.admin.Health(pb.HealthRequest(), timeout=0.5).status == pb.HealthResponse.STATUS_SERVING:
                health = time.monotonic() - t0
        except Exception:
            time.sleep(0.01)
        finally:
            c.close()
    if health is None:
        raise SystemExit(f"quiverd did not come back:\n{srv.log_text()[-3000:]}")
    conn = Conn(srv.addr)
    conn.q.Search(pb.SearchRequest(collection=coll, vector=q0.tolist(), k=10, params=pb.SearchParams(ef=64)),
                  timeout=60)
    search = time.monotonic() - t0
    segs = conn.q.DescribeCollection(pb.DescribeCollectionRequest(name=coll), timeout=30).collection.segments
    sealed = [s for s in segs if s.state == pb.SEGMENT_STATE_SEALED]
    ready = all(s.index_state == pb.INDEX_STATE_READY for s in sealed)
    log = srv.log_text()
    m = re.findall(r"event=store\.open \S+ ms=(\d+)", log)
    return conn, {"how": how, "health_s": round(health, 3), "search_s": round(search, 3),
                  "store_open_ms": int(m[-1]) if m else None, "sealed": len(sealed), "ready": ready,
                  "rebuilt": log.count("event=index.ready") - n_ready_before}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seal-rows", type=int, default=100_000)
    ap.add_argument("--index-threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    print(f"== load: {qvbench.load_snapshot()}", file=sys.stderr)
    base = clustered(a.n, a.dim, 1)
    qs = clustered(a.queries, a.dim, 2)
    srv = Server(["--seal-rows", str(a.seal_rows), "--index-threads", str(a.index_threads), "--metrics-listen", "off"])
    srv.start()
    conn = Conn(srv.addr)
    coll = "r"
    conn.q.CreateCollection(pb.CreateCollectionRequest(name=coll, dim=a.dim, metric=pb.METRIC_L2), timeout=30)
    t0 = time.monotonic()
    for s in range(0, a.n, 2000):
        e = min(a.n, s + 2000)
        conn.raw_upsert(upsert_bytes(coll, [str(i) for i in range(s, e)], base[s:e]), timeout=120)
    conn.admin.Flush(pb.FlushRequest(collection=coll), timeout=600)
    load_s = time.monotonic() - t0
    print(f"loaded {a.n} x {a.dim} in {load_s:.1f} s; waiting for the indexes", file=sys.stderr)
    sealed = wait_ready(conn, coll, timeout=6 * 3600)
    index_s = time.monotonic() - t0 - load_s
    r_before = recall(conn, coll, qs)
    du = subprocess.run(["du", "-sb", srv.data], capture_output=True, text=True).stdout.split()[0]
    print(f"{len(sealed)} segments READY after {index_s:.0f} s more; recall@10 ef=64 {r_before:.4f}; data {int(du) >> 20} MiB",
          file=sys.stderr)
    conn.close()
    rounds = []
    for how in ("kill9", "sigterm"):
        conn, r = timed_restart(srv, coll, qs[0], how)
        r["recall_after"] = round(recall(conn, coll, qs), 4)
        conn.close()
        print(r, file=sys.stderr)
        rounds.append(r)
    srv.stop()
    out = {"n": a.n, "dim": a.dim, "seal_rows": a.seal_rows, "segments": len(sealed), "load_s": round(load_s, 1),
           "index_s": round(index_s, 1), "data_mib": int(du) >> 20, "recall_before": round(r_before, 4),
           "restarts": rounds, "machine": qvbench.machine_info()}
    print("| restart | health (s) | first search (s) | store open (ms) | all READY | rebuilt | recall@10 before / after |")
    print("|---|---|---|---|---|---|---|")
    for r in rounds:
        print(f"| {r['how']} | {r['health_s']} | {r['search_s']} | {r['store_open_ms']} | {r['ready']} | {r['rebuilt']} | "
              f"{r_before:.4f} / {r['recall_after']:.4f} |")
    if a.json:
        write_json(a.json, out)


if __name__ == "__main__":
    main()
