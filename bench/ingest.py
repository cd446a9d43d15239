#!/usr/bin/python3
"""Ingest benchmark: acknowledged vectors/s into quiverd over gRPC.

For each dimension (128 and 384) and client thread count (1 and 4), --repeat times (median run reported, all runs
kept in the JSON): a fresh quiverd (Release, default flags, so the
growing segment seals at 100,000 rows during the run, as it would in production) in a temp dir, one METRIC_L2
collection with no attribute fields, and N points (random Gaussian float32, ids "p<i>") in Upsert batches of 1,000.
Every UpsertRequest is serialized before the clock starts and sent as raw bytes; each client thread has a channel of
its own and takes the next batch from a shared counter until all are sent. Timed: from the moment all threads are
released together until the last acknowledgement. After the run the collection's Count must equal N.

Every acknowledged Upsert is a synced RocksDB write, so the machine's sync rate bounds a single writer. Measured in
the same run, on the same filesystem as the data dir, right before each case: a loop of 4 KiB append + fdatasync for
~2 s (syncs/s), and once per dimension the same with blocks the size of one serialized batch (MB/s of synced
appends). Printed: vectors/s, batches/s, batches/s / fsyncs/s (above 1 means group commit shares syncs between
concurrent batches), Upsert latency p50/p99, and the CPU seconds the client and the server used (2 cores are shared by
both: the client's Python and gRPC work competes with the server).

Usage: /usr/bin/python3 bench/ingest.py [--points-128 N] [--points-384 N] [--threads 1,4] [--out FILE]
"""
import argparse
import itertools
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qvbench as qb  # noqa: E402
import report  # noqa: E402
from qvbench import pb  # noqa: E402


def build_batches(coll, vecs, batch):
    t0 = time.perf_counter()
    out = []
    for s in range(0, len(vecs), batch):
        ids = [f"p{i}" for i in range(s, min(s + batch, len(vecs)))]
        out.append(qb.upsert_bytes(coll, ids, vecs[s:s + batch]))
    qb.log(f"  serialized {len(out)} batches ({sum(map(len, out)) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    return out


def run_case(dim, n, nthreads, batches, args):
    srv = qb.Server(flags=["--log-level", "warn"] if args.quiet_server else []).start()
    try:
        fs = qb.fsync_rate(srv.tmp, args.fsync_seconds)
        admin = qb.Conn(srv.addr).ready()
        admin.q.CreateCollection(pb.CreateCollectionRequest(name="ingest", dim=dim, metric=pb.METRIC_L2,
                                                            **qb.index_params(args.index_kind)), timeout=30)
        conns = [qb.Conn(srv.addr, timeout=args.rpc_timeout).ready() for _ in range(nthreads)]
        counter = itertools.count()
        barrier = threading.Barrier(nthreads + 1)
        lat = [[] for _ in range(nthreads)]
        acked = [0] * nthreads
        span = [[None, None] for _ in range(nthreads)]
        errors = []

        def worker(t):
            conn = conns[t]
            try:
                barrier.wait(timeout=60)
                span[t][0] = time.perf_counter()
                while True:
                    j = next(counter)  # itertools.count is atomic under the GIL
                    if j >= len(batches):
                        break
                    t1 = time.perf_counter()
                    r = conn.raw_upsert(batches[j], timeout=args.rpc_timeout)
                    lat[t].append(time.perf_counter() - t1)
                    acked[t] += r.count
            except Exception as e:  # noqa: BLE001  (reported below; the run is then void)
                errors.append(repr(e))
            finally:
                span[t][1] = time.perf_counter()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(nthreads)]
        for th in threads:
            th.start()
        srv_cpu0, cli_cpu0, io0 = srv.cpu_seconds(), time.process_time(), srv.io_write_bytes()
        barrier.wait(timeout=60)
        for th in threads:
            th.join(args.case_timeout)
            if th.is_alive():
                raise RuntimeError(f"ingest case dim={dim} threads={nthreads} ran past {args.case_timeout} s")
        srv_cpu1, cli_cpu1, io1 = srv.cpu_seconds(), time.process_time(), srv.io_write_bytes()
        if errors:
            raise RuntimeError(f"Upsert failed: {errors[:3]}")
        wall = max(s[1] for s in span) - min(s[0] for s in span)
        total = sum(acked)
        count = admin.q.Count(pb.CountRequest(collection="ingest"), timeout=60).count
        info = admin.q.DescribeCollection(pb.DescribeCollectionRequest(name="ingest"), timeout=60).collection
        segs = [{"state": pb.SegmentState.Name(s.state), "rows": s.rows} for s in info.segments]
        all_lat = [x for ls in lat for x in ls]
        for c in conns + [admin]:
            c.close()
        rc = srv.stop()
        if total != n or count != n:
            raise RuntimeError(f"acknowledged {total}, Count {count}, want {n}")
        batches_per_s = len(batches) / wall
        res = {
            "dim": dim, "points": n, "batch": args.batch, "threads": nthreads, "batches": len(batches),
            "request_bytes": sum(map(len, batches)), "seconds": wall,
            "vectors_per_s": total / wall, "batches_per_s": batches_per_s,
            "mb_per_s_payload": sum(map(len, batches)) / wall / 1e6,
            "latency_ms": {"p50": qb.percentile(all_lat, 50) * 1e3, "p99": qb.percentile(all_lat, 99) * 1e3,
                           "max": max(all_lat) * 1e3},
            "fsync_4k": fs, "batches_per_fsync": batches_per_s / fs["syncs_per_s"],
            "server_cpu_s": (srv_cpu1 - srv_cpu0) if srv_cpu0 is not None and srv_cpu1 is not None else None,
            "client_cpu_s": cli_cpu1 - cli_cpu0,
            "server_disk_write_bytes": (io1 - io0) if io0 is not None and io1 is not None else None,
            "count_after": count, "segments_after": segs,
            "server_exit": rc, "simd": srv.simd,
        }
        return res
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="128,384")
    ap.add_argument("--points-128", type=int, default=200_000)
    ap.add_argument("--points-384", type=int, default=100_000)
    ap.add_argument("--points", type=int, help="points for every dim (overrides --points-128/--points-384)")
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case, each on a fresh server; the median is shown")
    ap.add_argument("--fsync-seconds", type=float, default=2.0)
    ap.add_argument("--rpc-timeout", type=float, default=120.0)
    ap.add_argument("--case-timeout", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--index-kind", choices=("default", "flat", "hnsw"), default="default",
                    help="the collection's index (servers with IndexParams): default = the server's default, which "
                         "since the background indexer is HNSW: each sealed segment then gets a graph built in the "
                         "background while the ingest goes on; flat measures the write path alone")
    ap.add_argument("--quiet-server", action="store_true", help="--log-level warn for quiverd")
    ap.add_argument("--out", default=str(qb.BENCH / "results" / "ingest.json"))
    args = ap.parse_args()

    dims = [int(x) for x in args.dims.split(",")]
    thread_counts = [int(x) for x in args.threads.split(",")]
    result = {"benchmark": "ingest", "machine": qb.machine_info(), "load_before": qb.load_snapshot(),
              "quiverd": qb.quiverd_path(), "quiverd_source": os.environ.get("QV_BENCH_SOURCE"),
              "config": vars(args), "cases": [], "sync_write_at_batch_size": []}
    rng = np.random.default_rng(args.seed)
    for dim in dims:
        n = args.points or (args.points_128 if dim == 128 else args.points_384 if dim == 384 else 100_000)
        qb.log(f"dim {dim}: {n} points")
        vecs = rng.standard_normal((n, dim), dtype=np.float32)
        batches = build_batches("ingest", vecs, args.batch)
        del vecs
        block = len(batches[0])
        with tempfile.TemporaryDirectory(prefix="qvbench-", dir=os.environ.get("QV_BENCH_TMP")) as probe_dir:
            big = qb.fsync_rate(probe_dir, args.fsync_seconds, block=block)  # same filesystem as the data dirs
        big["dim"] = dim
        result["sync_write_at_batch_size"].append(big)
        qb.log(f"  synced appends of {block} B: {big['syncs_per_s']:.0f}/s = {big['mb_per_s']:.0f} MB/s")
        for nt in thread_counts:
            runs = [run_case(dim, n, nt, batches, args) for _ in range(args.repeat)]
            r = sorted(runs, key=lambda x: x["vectors_per_s"])[len(runs) // 2]  # the median run, whole
            r["runs_vectors_per_s"] = [x["vectors_per_s"] for x in runs]
            r["runs_batches_per_fsync"] = [x["batches_per_fsync"] for x in runs]
            result["cases"].append(r)
            qb.log(f"  threads={nt}: {r['vectors_per_s']:,.0f} vectors/s, {r['batches_per_s']:.1f} batches/s, "
                   f"fsync {r['fsync_4k']['syncs_per_s']:.0f}/s, batches/fsync {r['batches_per_fsync']:.3f}, "
                   f"p50 {r['latency_ms']['p50']:.1f} ms p99 {r['latency_ms']['p99']:.1f} ms, "
                   f"cpu server {r['server_cpu_s']:.1f} s client {r['client_cpu_s']:.1f} s in {r['seconds']:.1f} s")
        del batches
    result["load_after"] = qb.load_snapshot()
    qb.write_json(args.out, result)
    print(report.format_any(result))
    qb.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
