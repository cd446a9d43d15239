#!/usr/bin/python3
"""Exact search benchmark: quiverd's exact scan against NumPy (and faiss IndexFlat when available) on the same data in
the same run, and the scan's bytes/s against the machine's memory bandwidth measured in the same run.

Data: --rows x --dim float32 (default 100,000 x 384), clustered Gaussian with a fixed seed (--clusters centres drawn
N(0, 1), points = centre + 0.5 N(0, 1)), and --queries queries drawn the same way (not rows of the base). Each row has a
KEYWORD attribute `tag` = "t0".."t9" drawn uniformly, so the filter tag == "t3" passes ~10% of rows.

quiverd (Release, started here with sealing by row count and WAL size turned off, scan threads = online CPUs) holds
the data twice, in a METRIC_L2 and a METRIC_IP collection. Cases:
  growing   the data as loaded, in the growing (WAL-covered, in-memory) segment;
  sealed    after Admin.Flush, in one sealed segment (the run checks DescribeCollection for each state);
  filtered  sealed, with the filter tag == "t3".
Each Search: single client, one call at a time, params.exact = true, k = 10, requests serialized before the clock and
sent as bytes. A 1-row collection of the same dim gives the per-call floor (gRPC + Python round trip + request
handling) as `quiver rtt`.

Peers, in this process (Debian's NumPy and its BLAS), timed per query the same way:
  numpy single      IP: base @ q; L2: ||b||^2 - 2 b.q with ||b||^2 precomputed once (like an index would); then
                    argpartition + sort of the k best;
  numpy batch       all queries at once: Q @ base.T (a BLAS GEMM), same top-k; QPS = queries / time;
  quiver batch      (sealed) all queries in one SearchBatch (params.exact), pre-serialized: the server's batched
                    scan (a GEMM per block of rows, query/search.h); QPS = queries / time of the call;
  numpy filtered    single-query on base[mask] gathered once before the clock (the filter costs NumPy nothing: a
                    favourable reference, not the same work).
  faiss single/batch  IndexFlatL2 / IndexFlatIP from faiss-cpu, run by bench/faiss_peer.py with --faiss-python (a
                    venv where faiss-cpu is installed); skipped with a note when that python or faiss is missing.
Rounds: every peer runs all queries --rounds times, peers interleaved within a round; QPS is the median round. Ratios
are Quiver's QPS over the peer's.

Recall@10 of every peer against exact search in float64 (tie-tolerant: a returned id counts when its exact score is
within 1e-5 relative of the 10th best score); also how many Quiver answers equal NumPy single's top-10 list exactly.

Bandwidth: bench/membw (built from bench/membw.c when missing) reads a 1 GiB buffer with 1 and 2 threads, best of 5,
once before loading and once after the Quiver and NumPy cases; the better of the two is the machine's bandwidth. A
case's effective scan bytes/s = rows scanned x dim x 4 x QPS, printed as a fraction of that bandwidth.

Usage: /usr/bin/python3 bench/exact_search.py [--rows N] [--dim D] [--queries Q] [--rounds R] [--faiss-python PY]
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qvbench as qb  # noqa: E402
import report  # noqa: E402
from qvbench import pb  # noqa: E402

TAGS = 10
FILTER_TAG = "t3"


# ---------------------------------------------------------------------------------------------------------------------
# data, ground truth, recall
# ---------------------------------------------------------------------------------------------------------------------
def make_data(rows, dim, nq, clusters, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    base = np.empty((rows, dim), np.float32)
    for s in range(0, rows, 10_000):
        e = min(rows, s + 10_000)
        base[s:e] = centres[rng.integers(clusters, size=e - s)] + 0.5 * rng.standard_normal((e - s, dim),
                                                                                            dtype=np.float32)
    queries = centres[rng.integers(clusters, size=nq)] + 0.5 * rng.standard_normal((nq, dim), dtype=np.float32)
    tags = rng.integers(TAGS, size=rows)
    return base, np.ascontiguousarray(queries, np.float32), tags


def exact_scores64(base, queries, metric, chunk=20_000):
    """Scores as the API defines them (L2: squared distance; IP: dot), float64, shape (nq, rows)."""
    q64 = queries.astype(np.float64)
    out = np.empty((len(queries), len(base)), np.float64)
    for s in range(0, len(base), chunk):
        b = base[s:s + chunk].astype(np.float64)
        dots = q64 @ b.T
        if metric == "L2":
            out[:, s:s + chunk] = (b * b).sum(1)[None, :] - 2 * dots + (q64 * q64).sum(1)[:, None]
        else:
            out[:, s:s + chunk] = dots
    return out


def truth(scores, k, metric):
    """Per query: (top-k row numbers, the k-th best score); key = lower is better."""
    key = scores if metric == "L2" else -scores
    top = np.argsort(key, axis=1, kind="stable")[:, :k]
    kth = np.take_along_axis(key, top[:, -1:], axis=1)[:, 0]
    nxt = np.partition(key, k, axis=1)[:, k] if key.shape[1] > k else np.full(len(key), np.inf)
    return top, kth, nxt


def recall(got, key, kth, k):
    """Tie-tolerant recall@k: a returned row counts when its exact key is within 1e-5 relative of the k-th best."""
    hits = 0
    for qi, ids in enumerate(got):
        ids = [i for i in ids if i is not None and 0 <= i < key.shape[1]]
        tol = 1e-5 * max(1.0, abs(kth[qi]))
        hits += min(k, len(set(i for i in ids if key[qi, i] <= kth[qi] + tol)))
    return hits / (k * len(got))


# ---------------------------------------------------------------------------------------------------------------------
# peers (each: a function query index -> list of row numbers, timed per call)
# ---------------------------------------------------------------------------------------------------------------------
def topk_rows(s, k):
    idx = np.argpartition(s, k - 1)[:k] if len(s) > k else np.arange(len(s))
    return idx[np.argsort(s[idx], kind="stable")]


def numpy_single(base, bnorm, queries, k, metric):
    buf = np.empty(len(base), np.float32)

    def run(i):
        np.dot(base, queries[i], out=buf)
        if metric == "L2":
            s = bnorm - 2.0 * buf
        else:
            s = np.negative(buf)
        return topk_rows(s, k).tolist()

    return run


def numpy_batch(base, bnorm, queries, k, metric, chunk=200):
    """All queries: returns (seconds, ids)."""
    t0 = time.perf_counter()
    out = []
    for s in range(0, len(queries), chunk):
        dots = queries[s:s + chunk] @ base.T
        key = bnorm[None, :] - 2.0 * dots if metric == "L2" else -dots
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1, kind="stable")
        out.extend(np.take_along_axis(part, order, axis=1).tolist())
    return time.perf_counter() - t0, out


def quiver_peer(conn, reqs, timeout):
    def run(i):
        r = conn.raw_search(reqs[i], timeout=timeout)
        return [int(h.id[1:]) for h in r.hits]

    return run


def timed_round(fn, nq):
    lat, ids = [], []
    t0 = time.perf_counter()
    for i in range(nq):
        t1 = time.perf_counter()
        ids.append(fn(i))
        lat.append(time.perf_counter() - t1)
    return time.perf_counter() - t0, lat, ids


# ---------------------------------------------------------------------------------------------------------------------
# machine: memory bandwidth, BLAS
# ---------------------------------------------------------------------------------------------------------------------
def membw(binary, mib, passes):
    if not os.access(binary, os.X_OK):
        os.makedirs(os.path.dirname(binary), exist_ok=True)
        cmd = ["gcc", "-O2", "-march=native", "-pthread", "-o", binary, str(qb.BENCH / "membw.c")]
        qb.log("building", " ".join(cmd))
        subprocess.run(cmd, check=True, timeout=120)
    r = subprocess.run([binary, str(mib), str(passes), "1", "2"], capture_output=True, text=True, timeout=300,
                       check=True)
    return {str(x["threads"]): x for x in map(json.loads, r.stdout.splitlines())}


def blas_info():
    info = {}
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        info["library"] = os.path.realpath(f"/usr/lib/x86_64-linux-gnu/{name}") if name == "libblas.so.3" else name
        for fn, restype in (("openblas_get_config", ctypes.c_char_p), ("openblas_get_corename", ctypes.c_char_p),
                            ("openblas_get_num_threads", ctypes.c_int)):
            try:
                f = getattr(lib, fn)
                f.restype = restype
                v = f()
                info[fn.replace("openblas_get_", "")] = v.decode() if isinstance(v, bytes) else v
            except AttributeError:
                pass
        if info.get("corename"):
            break
    for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(v):
            info[v] = os.environ[v]
    return info


# ---------------------------------------------------------------------------------------------------------------------
# quiverd set-up
# ---------------------------------------------------------------------------------------------------------------------
def load(conn, name, metric, base, tags, batch, timeout, index_kind):
    conn.q.CreateCollection(pb.CreateCollectionRequest(
        name=name, dim=base.shape[1], metric=metric,
        fields=[pb.FieldSchema(name="tag", type=pb.FIELD_TYPE_KEYWORD)], **qb.index_params(index_kind)), timeout=30)
    t0 = time.perf_counter()
    head = pb.UpsertRequest(collection=name).SerializeToString()  # concatenated messages merge: head + points
    for s in range(0, len(base), batch):
        e = min(len(base), s + batch)
        body = qb.upsert_bytes("", [f"p{i}" for i in range(s, e)], base[s:e],
                               {"tag": [f"t{t}" for t in tags[s:e]]})
        r = conn.raw_upsert(head + body, timeout=timeout)
        assert r.count == e - s, (r.count, e - s)
    return time.perf_counter() - t0


def segments(conn, name):
    info = conn.q.DescribeCollection(pb.DescribeCollectionRequest(name=name), timeout=60).collection
    return info.live_rows, [(pb.SegmentState.Name(s.state), s.rows) for s in info.segments if s.rows]


def search_bytes(name, queries, k, flt=None):
    out = []
    for q in queries:
        req = pb.SearchRequest(collection=name, k=k)
        req.vector.extend(q.tolist())
        req.params.exact = True
        if flt is not None:
            req.filter.CopyFrom(flt)
        out.append(req.SerializeToString())
    return out


def search_batch_bytes(name, queries, k):
    req = pb.SearchBatchRequest(collection=name, k=k)
    for q in queries:
        req.vectors.add().values.extend(q.tolist())
    req.params.exact = True
    return req.SerializeToString()


def tag_filter(tag):
    f = pb.Filter()
    f.cond.field = "tag"
    f.cond.eq.keyword_value = tag
    return f


# ---------------------------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch", type=int, default=1000, help="Upsert batch size for loading")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds of sleep before each timed block: OpenBLAS threads busy-wait for a while after a "
                         "NumPy call and would take a core from the next peer")
    ap.add_argument("--membw", default=str(qb.REPO / "build-bench" / "membw"))
    ap.add_argument("--membw-mib", type=int, default=1024)
    ap.add_argument("--membw-passes", type=int, default=5)
    ap.add_argument("--faiss-python", default=str(qb.REPO / "build-bench" / "venv" / "bin" / "python"),
                    help="a python that can import faiss; '' to skip the faiss peer")
    ap.add_argument("--rpc-timeout", type=float, default=120.0)
    ap.add_argument("--index-kind", choices=("default", "flat", "hnsw"), default="default",
                    help="the collections' index (servers with IndexParams). With an index, Flush starts background "
                         "builds; the run waits until the server is idle before timing the sealed cases (the wait "
                         "is in the results). params.exact=true scans exactly either way")
    ap.add_argument("--out", default=str(qb.BENCH / "results" / "exact_search.json"))
    args = ap.parse_args()
    k, nq = args.k, args.queries
    res = {"benchmark": "exact_search", "machine": qb.machine_info(), "load_before": qb.load_snapshot(),
           "blas": blas_info(), "quiverd": qb.quiverd_path(), "quiverd_source": os.environ.get("QV_BENCH_SOURCE"),
           "config": vars(args)}

    qb.log(f"data: {args.rows} x {args.dim}, {nq} queries, {args.clusters} clusters, seed {args.seed}")
    base, queries, tags = make_data(args.rows, args.dim, nq, args.clusters, args.seed)
    bnorm = (base * base).sum(1, dtype=np.float32)
    mask = tags == int(FILTER_TAG[1:])
    sub_rows = np.flatnonzero(mask)
    base_sub, bnorm_sub = np.ascontiguousarray(base[sub_rows]), np.ascontiguousarray(bnorm[sub_rows])

    qb.log("ground truth (float64)")
    gt = {}
    for m in ("L2", "IP"):
        sc = exact_scores64(base, queries, m)
        key = sc if m == "L2" else -sc
        top, kth, nxt = truth(sc, k, m)
        key_sub = np.where(mask[None, :], key, np.inf)  # rows the filter drops can never count as hits
        top_f, kth_f, _ = truth(sc[:, sub_rows], k, m)
        near_ties = int(np.sum(np.abs(nxt - kth) <= 1e-5 * np.maximum(1, np.abs(kth))))
        gt[m] = {"key": key, "kth": kth, "key_sub": key_sub, "kth_sub": kth_f, "near_ties": near_ties,
                 "gap_min": float(np.min(nxt - kth))}
        del sc

    qb.log("memory bandwidth (bench/membw)")
    res["membw"] = membw(args.membw, args.membw_mib, args.membw_passes)
    qb.log("  " + ", ".join(f"{t} thread(s): {v['best_gb_s']:.1f} GB/s" for t, v in res["membw"].items()))

    srv = qb.Server(flags=["--seal-rows", "100000000", "--seal-wal-mb", "1048576"]).start()
    res["simd"] = srv.simd
    res["server_start_line"] = srv.start_line
    conn = qb.Conn(srv.addr, timeout=args.rpc_timeout).ready()
    names = {"L2": "bench_l2", "IP": "bench_ip"}
    metrics = {"L2": pb.METRIC_L2, "IP": pb.METRIC_IP}
    res["load_seconds"] = {}
    for m, name in names.items():
        qb.log(f"loading {name}")
        res["load_seconds"][m] = load(conn, name, metrics[m], base, tags, args.batch, args.rpc_timeout,
                                        args.index_kind)
    conn.q.CreateCollection(pb.CreateCollectionRequest(name="bench_tiny", dim=args.dim, metric=pb.METRIC_L2),
                            timeout=30)
    conn.raw_upsert(pb.UpsertRequest(collection="bench_tiny").SerializeToString() +
                    qb.upsert_bytes("", ["p0"], base[:1]), timeout=30)
    cnt = conn.q.Count(pb.CountRequest(collection=names["L2"], filter=tag_filter(FILTER_TAG)), timeout=60).count
    if cnt != len(sub_rows):
        raise RuntimeError(f"Count with the filter = {cnt}, NumPy says {len(sub_rows)}")
    res["filter"] = {"expr": f'tag == "{FILTER_TAG}"', "rows": int(cnt), "fraction": cnt / args.rows}

    res["idle_wait_s"] = {"after_load": srv.wait_idle()}
    reqs = {m: search_bytes(n, queries, k) for m, n in names.items()}
    reqs_f = {m: search_bytes(n, queries, k, tag_filter(FILTER_TAG)) for m, n in names.items()}
    reqs_tiny = search_bytes("bench_tiny", queries, k)
    reqs_batch = {m: search_batch_bytes(n, queries, k) for m, n in names.items()}

    def peers_for(m, state):
        """name -> (fn, rows scanned, recall key, kth)"""
        g = gt[m]
        p = {f"quiver {state}": (quiver_peer(conn, reqs[m], args.rpc_timeout), args.rows, g["key"], g["kth"])}
        if state == "sealed":
            p["quiver filtered"] = (quiver_peer(conn, reqs_f[m], args.rpc_timeout), len(sub_rows), g["key_sub"],
                                    g["kth_sub"])
            p["numpy single"] = (numpy_single(base, bnorm, queries, k, m), args.rows, g["key"], g["kth"])
            sub_fn = numpy_single(base_sub, bnorm_sub, queries, k, m)
            p["numpy filtered"] = (lambda i: sub_rows[sub_fn(i)].tolist(), len(sub_rows), g["key_sub"],
                                   g["kth_sub"])
            p["quiver rtt"] = (quiver_peer(conn, reqs_tiny, args.rpc_timeout), 1, None, None)
        return p

    results = {m: {} for m in names}
    states = {}

    def run_peers(m, state):
        peers = peers_for(m, state)
        for name, (fn, _rows, _key, _kth) in peers.items():
            for i in range(min(args.warmup, nq)):
                fn(i)
        rec = {name: {"qps_rounds": [], "lat": [], "ids": None, "server_cpu_s": 0.0, "seconds": 0.0}
               for name in peers}
        if state == "sealed":
            rec["numpy batch"] = {"qps_rounds": [], "lat": [], "ids": None}
            rec["quiver batch"] = {"qps_rounds": [], "lat": [], "ids": None, "server_cpu_s": 0.0, "seconds": 0.0}
        for r in range(args.rounds):
            for name, (fn, _rows, _key, _kth) in peers.items():
                time.sleep(args.settle)  # let OpenBLAS's worker threads stop spinning after a NumPy peer
                c0 = srv.cpu_seconds()
                dt, lat, ids = timed_round(fn, nq)
                c1 = srv.cpu_seconds()
                x = rec[name]
                x["qps_rounds"].append(nq / dt)
                x["lat"].extend(lat)
                x["seconds"] += dt
                if name.startswith("quiver") and c0 is not None and c1 is not None:
                    x["server_cpu_s"] += c1 - c0
                if x["ids"] is None:
                    x["ids"] = ids
            if state == "sealed":
                time.sleep(args.settle)
                dt, ids = numpy_batch(base, bnorm, queries, k, m)
                rec["numpy batch"]["qps_rounds"].append(nq / dt)
                rec["numpy batch"]["ids"] = rec["numpy batch"]["ids"] or ids
                time.sleep(args.settle)
                x = rec["quiver batch"]
                c0 = srv.cpu_seconds()
                t0 = time.perf_counter()
                resp = conn.raw_search_batch(reqs_batch[m], timeout=args.rpc_timeout)
                dt = time.perf_counter() - t0
                c1 = srv.cpu_seconds()
                x["qps_rounds"].append(nq / dt)
                x["seconds"] += dt
                if c0 is not None and c1 is not None:
                    x["server_cpu_s"] += c1 - c0
                x["ids"] = x["ids"] or [[int(h.id[1:]) for h in r.hits] for r in resp.results]
        for name, x in rec.items():
            rows, key, kth = (peers[name][1:] if name in peers else (args.rows, gt[m]["key"], gt[m]["kth"]))
            qps = float(np.median(x["qps_rounds"]))
            out = {"qps": qps, "qps_rounds": x["qps_rounds"], "rows_scanned": rows,
                   "scan_gb_s": rows * args.dim * 4 * qps / 1e9}
            if x["lat"]:
                out["latency_ms"] = {"p50": qb.percentile(x["lat"], 50) * 1e3, "p99": qb.percentile(x["lat"], 99) * 1e3}
            if x.get("seconds"):
                out["server_cores_busy"] = x["server_cpu_s"] / x["seconds"] if name.startswith("quiver") else None
            if key is not None:
                out["recall_at_k"] = recall(x["ids"], key, kth, k)
            out["ids"] = x["ids"]
            results[m][name] = out
            qb.log(f"  {m} {name}: {qps:,.1f} q/s" + (f", recall {out['recall_at_k']:.4f}" if key is not None else ""))

    for m, name in names.items():
        live, segs = segments(conn, name)
        states[f"{m} growing"] = segs
        if any(s != "SEGMENT_STATE_GROWING" for s, _ in segs) or live != args.rows:
            raise RuntimeError(f"{name}: expected all {args.rows} rows in the growing segment, got {live} {segs}")
        qb.log(f"{m}: growing segment {segs}")
        run_peers(m, "growing")
    t0 = time.perf_counter()
    conn.admin.Flush(pb.FlushRequest(collection=""), timeout=600)
    res["flush_seconds"] = time.perf_counter() - t0
    res["idle_wait_s"]["after_flush"] = srv.wait_idle()
    qb.log(f"Flush {res['flush_seconds']:.1f} s, then the server was busy for "
           f"{res['idle_wait_s']['after_flush']:.1f} s")
    for m, name in names.items():
        live, segs = segments(conn, name)
        states[f"{m} sealed"] = segs
        if any(s != "SEGMENT_STATE_SEALED" for s, _ in segs) or live != args.rows:
            raise RuntimeError(f"{name}: expected all {args.rows} rows sealed after Flush, got {live} {segs}")
        qb.log(f"{m}: sealed {segs}")
        run_peers(m, "sealed")
    res["segments"] = states
    conn.close()
    res["server_exit"] = srv.stop()
    qb.log("memory bandwidth again (bench/membw), after the Quiver and NumPy cases")
    res["membw_after"] = membw(args.membw, args.membw_mib, args.membw_passes)
    qb.log("  " + ", ".join(f"{t} thread(s): {v['best_gb_s']:.1f} GB/s" for t, v in res["membw_after"].items()))

    # faiss, in its own process (see faiss_peer.py), on the same data
    res["faiss"] = run_faiss(args, base, queries, gt, sub_rows)
    if res["faiss"].get("metrics"):
        for m, f in res["faiss"]["metrics"].items():
            for kind in ("single", "batch"):
                qps = float(np.median(f[f"{kind}_qps_rounds"]))
                out = {"qps": qps, "qps_rounds": f[f"{kind}_qps_rounds"], "rows_scanned": args.rows,
                       "scan_gb_s": args.rows * args.dim * 4 * qps / 1e9}
                if kind == "single":
                    out["latency_ms"] = {"p50": f["single_latency_ms_p50"]}
                out["recall_at_k"] = recall(f["ids" if kind == "single" else "batch_ids"], gt[m]["key"],
                                            gt[m]["kth"], k)
                results[m][f"faiss {kind}"] = out

    for f in res["faiss"].get("metrics", {}).values():  # raw ids were only for the recall above
        f.pop("ids", None)
        f.pop("batch_ids", None)

    # Quiver vs NumPy single: identical lists
    for m in names:
        qv, npy = results[m]["quiver sealed"]["ids"], results[m]["numpy single"]["ids"]
        results[m]["quiver sealed"]["same_list_as_numpy_single"] = sum(a == b for a, b in zip(qv, npy))
    # the server's batch against NumPy's batch, and against its own single-query answers
    for m in names:
        x = results[m]["quiver batch"]
        x["over_numpy_batch"] = x["qps"] / results[m]["numpy batch"]["qps"]
        x["same_list_as_quiver_sealed"] = sum(a == b for a, b in zip(x["ids"], results[m]["quiver sealed"]["ids"]))
        qb.log(f"  {m} quiver batch / numpy batch: {x['over_numpy_batch']:.2f}x; same top-{k} as quiver single on "
               f"{x['same_list_as_quiver_sealed']}/{nq} queries")
    res["near_ties"] = {m: gt[m]["near_ties"] for m in names}
    res["gap_kth_to_next_min"] = {m: gt[m]["gap_min"] for m in names}
    # the machine's bandwidth: the better of the two measurements (before and after), per thread count
    bw1 = max(res["membw"]["1"]["best_gb_s"], res["membw_after"]["1"]["best_gb_s"])
    bw2 = max(res["membw"]["2"]["best_gb_s"], res["membw_after"]["2"]["best_gb_s"])
    res["membw_used_gb_s"] = {"1": bw1, "2": bw2}
    for m in names:
        ref = results[m]["quiver sealed"]["qps"]
        for name, x in results[m].items():
            x["membw_fraction_2t"] = x["scan_gb_s"] / bw2
            x["membw_fraction_1t"] = x["scan_gb_s"] / bw1
            x["quiver_sealed_over_this"] = ref / x["qps"]
            x.pop("ids", None)
    res["results"] = results
    res["load_after"] = qb.load_snapshot()
    qb.write_json(args.out, res)
    print(report.format_any(res))
    qb.log(f"wrote {args.out}")


def run_faiss(args, base, queries, gt, sub_rows):
    py = args.faiss_python
    if not py:
        return {"skipped": "--faiss-python ''"}
    if not os.access(py, os.X_OK):
        return {"skipped": f"no python at {py} (bench/run_all.sh creates the venv and pip-installs faiss-cpu)"}
    chk = subprocess.run([py, "-c", "import faiss"], capture_output=True, text=True, timeout=120)
    if chk.returncode != 0:
        return {"skipped": f"{py} cannot import faiss: {chk.stderr.strip().splitlines()[-1:]}"}
    with tempfile.TemporaryDirectory(prefix="qvbench-faiss-") as d:
        np.save(f"{d}/base.npy", base)
        np.save(f"{d}/queries.npy", queries)
        qb.log("faiss peer")
        r = subprocess.run([py, str(qb.BENCH / "faiss_peer.py"), "--data", d, "--k", str(args.k),
                            "--rounds", str(args.rounds), "--warmup", str(args.warmup)],
                           capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        return {"skipped": f"faiss_peer.py failed ({r.returncode}): {r.stderr[-2000:]}"}
    return json.loads(r.stdout)


if __name__ == "__main__":
    main()
