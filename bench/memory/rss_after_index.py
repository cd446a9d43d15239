#!/usr/bin/python3
"""quiverd's memory after loading and indexing, against the same data after a restart (issue 18: RSS after indexing
within 1.2x of RSS after a restart).

Starts its own quiverd ($QUIVERD, else build-release/quiverd; --binary for another build) on a free port in a temp
dir, loads --points random unit vectors of --dim (default 99,000 x 384, the size of the MiniLM Wikipedia set) with a
--text-bytes text each (RAG passages carry their text), in Upsert batches of 1,000, sealing every --seal-rows rows;
flushes, waits until every segment's index is READY and the server is idle, and reads /proc/PID/status: VmRSS (now)
and VmHWM (the peak). Then SIGTERM, a start on the same data directory, one search, idle, and VmRSS again. Prints
both and their ratio; --out writes JSON. Random vectors: memory does not depend on what the vectors say.

    /usr/bin/python3 bench/memory/rss_after_index.py
    /usr/bin/python3 bench/memory/rss_after_index.py --binary OLD/quiverd   # a peer build, same way
"""
import argparse
import os
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qvbench as qb  # noqa: E402
from qvbench import pb  # noqa: E402


def status_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def wait_ready(conn, name, timeout=1800):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = conn.admin.Stats(pb.StatsRequest(), timeout=60)
        segs = [s for c in st.collections if c.name == name for s in c.segments]
        sealed = [s for s in segs if s.state == pb.SEGMENT_STATE_SEALED]
        if sealed and all(s.index_state in (pb.INDEX_STATE_READY, pb.INDEX_STATE_NONE) for s in sealed) and \
                not any(s.state == pb.SEGMENT_STATE_GROWING and s.rows for s in segs):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError("indexes not ready in time")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=99_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--text-bytes", type=int, default=300)
    ap.add_argument("--seal-rows", type=int, default=20_000)
    ap.add_argument("--binary")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.binary:
        os.environ["QUIVERD"] = args.binary
    srv = qb.Server(flags=["--seal-rows", str(args.seal_rows), "--metrics-listen", "off"]).start()
    conn = qb.Conn(srv.addr, timeout=600).ready()
    res = {"points": args.points, "dim": args.dim, "binary": srv.binary, "start": status_kb(srv.proc.pid)}
    conn.q.CreateCollection(pb.CreateCollectionRequest(name="m", dim=args.dim, metric=pb.METRIC_COSINE), timeout=60)
    rng = np.random.default_rng(7)
    text = ("lorem ipsum dolor sit amet " * (args.text_bytes // 27 + 1))[:args.text_bytes]
    t0 = time.monotonic()
    for b in range(0, args.points, 1000):
        n = min(1000, args.points - b)
        v = rng.standard_normal((n, args.dim)).astype(np.float32)
        req = pb.UpsertRequest(collection="m")
        for i in range(n):
            p = req.points.add(id=f"p{b + i}", text=text)
            p.vector.extend(v[i].tolist())
        conn.q.Upsert(req, timeout=600)
    res["load_s"] = time.monotonic() - t0
    conn.admin.Flush(pb.FlushRequest(collection="m"), timeout=600)
    res["index_wait_s"] = wait_ready(conn, "m")
    res["idle_wait_s"] = srv.wait_idle()
    res["after_index"] = status_kb(srv.proc.pid)
    qb.log(f"after indexing: RSS {res['after_index']['VmRSS'] / 1024:.0f} MiB, "
           f"peak {res['after_index']['VmHWM'] / 1024:.0f} MiB")
    conn.close()
    srv.proc.send_signal(signal.SIGTERM)
    res["exit"] = srv.proc.wait(120)
    srv.start()
    conn = qb.Conn(srv.addr, timeout=600).ready()
    q = rng.standard_normal(args.dim).astype(np.float32)
    r = conn.q.Search(pb.SearchRequest(collection="m", vector=q.tolist(), k=10), timeout=60)
    assert len(r.hits) == 10
    res["idle_wait_restart_s"] = srv.wait_idle()
    res["after_restart"] = status_kb(srv.proc.pid)
    res["ratio"] = res["after_index"]["VmRSS"] / res["after_restart"]["VmRSS"]
    qb.log(f"after a restart: RSS {res['after_restart']['VmRSS'] / 1024:.0f} MiB; "
           f"after indexing / after restart = {res['ratio']:.2f}x (goal <= 1.2x)")
    conn.close()
    srv.stop()
    if args.out:
        qb.write_json(args.out, res)


if __name__ == "__main__":
    main()
