#!/usr/bin/python3
"""Does a long read hold writers back? Upsert p99 under a 16-client search load, without and with Count / Scroll
scans running beside it (issue 12's goal: the long read changes upsert p99 by less than 2x).

Starts its own quiverd (build/quiverd, or $QUIVERD) on a free port in a temp dir, loads N points (dim 16, a
KEYWORD attribute from 1000 values), then runs three phases of --seconds each: baseline (searches + upserts),
+count (one client looping Count with a 5,000-value any_of filter), +scroll (one client looping filtered Scroll
pages of 1,000). Prints p50/p99 of the upserts in each phase and the ratios to the baseline; --out writes JSON.

    /usr/bin/python3 bench/hardening/long_read.py --points 300000 --seconds 10
"""
import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from qvtest import Server, pb, point, any_of, filter_pb  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=300000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--searchers", type=int, default=16)
    ap.add_argument("--out")
    a = ap.parse_args()
    srv = Server(seal_rows=100000, extra=["--metrics-listen", "off"]).start()
    try:
        c = srv.client
        c.create("b", 16, fields=[("kw", pb.FIELD_TYPE_KEYWORD)], index=pb.IndexParams(kind=pb.INDEX_KIND_HNSW))
        rng = random.Random(1)
        t0 = time.monotonic()
        batch = []
        for i in range(a.points):
            batch.append(point(f"p{i}", [rng.random() for _ in range(16)], {"kw": f"k{rng.randrange(1000)}"}))
            if len(batch) == 2000:
                c.upsert("b", batch)
                batch = []
        if batch:
            c.upsert("b", batch)
        print(f"loaded {a.points} points in {time.monotonic() - t0:.1f} s", flush=True)
        flt = filter_pb(any_of("kw", [f"x{i}" for i in range(4999)] + ["k7"]))
        results = {}
        for phase in ("baseline", "count", "scroll"):
            stop = threading.Event()
            lat, longs = [], []

            def searcher():
                cl = srv.new_client()
                r = random.Random()
                while not stop.is_set():
                    cl.q.Search(pb.SearchRequest(collection="b", vector=[r.random() for _ in range(16)], k=10))
                cl.close()

            def upserter():
                cl = srv.new_client()
                i = 0
                while not stop.is_set():
                    s = time.monotonic()
                    cl.upsert("b", [point(f"u{i}", [0.5] * 16, {"kw": "k1"})])
                    lat.append(time.monotonic() - s)
                    i += 1
                cl.close()

            def long_reader():
                cl = srv.new_client()
                cursor = ""
                while not stop.is_set():
                    s = time.monotonic()
                    if phase == "count":
                        cl.q.Count(pb.CountRequest(collection="b", filter=flt), timeout=30)
                    else:
                        r = cl.q.Scroll(pb.ScrollRequest(collection="b", filter=flt, limit=1000, cursor=cursor),
                                        timeout=30)
                        cursor = r.next_cursor
                    longs.append(time.monotonic() - s)
                cl.close()

            ts = [threading.Thread(target=searcher) for _ in range(a.searchers)] + [threading.Thread(target=upserter)]
            if phase != "baseline":
                ts.append(threading.Thread(target=long_reader))
            for t in ts:
                t.start()
            time.sleep(a.seconds)
            stop.set()
            for t in ts:
                t.join()
            results[phase] = {"upserts": len(lat), "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
                              "long_reads": len(longs), "long_read_p50_ms": pct(longs, 50) * 1000 if longs else None}
        base = results["baseline"]["p99_ms"]
        for phase, r in results.items():
            r["p99_ratio"] = r["p99_ms"] / base
            lr = f", long reads {r['long_reads']} (p50 {r['long_read_p50_ms']:.0f} ms)" if r["long_reads"] else ""
            print(f"{phase:9s} upserts {r['upserts']:6d}  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                  f"p99 x{r['p99_ratio']:.2f}{lr}", flush=True)
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"points": a.points, "seconds": a.seconds, "searchers": a.searchers, "phases": results}, f,
                          indent=1)
    finally:
        srv.cleanup()


if __name__ == "__main__":
    main()
