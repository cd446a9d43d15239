"""faiss IndexFlatL2 / IndexFlatIP peer for bench/exact_search.py, run in its own process with the venv's python
(faiss-cpu from PyPI pulls in a NumPy 2 that must not replace Debian's NumPy in the main benchmark process).

Reads base.npy and queries.npy from --data, and for each metric: builds the flat index, then per round searches every
query one at a time (index.search(q[None], k)) and then all queries in one call. Prints one JSON object on stdout with
QPS per round and the top-k row numbers of the first single-query round (for the recall check)."""
import argparse
import json
import time

import faiss
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--metrics", default="L2,IP")
    args = ap.parse_args()
    base = np.ascontiguousarray(np.load(f"{args.data}/base.npy"), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(f"{args.data}/queries.npy"), dtype=np.float32)
    out = {"faiss": faiss.__version__, "numpy": np.__version__, "omp_threads": faiss.omp_get_max_threads(),
           "compile_options": faiss.get_compile_options(), "metrics": {}}
    for metric in args.metrics.split(","):
        index = faiss.IndexFlatL2(base.shape[1]) if metric == "L2" else faiss.IndexFlatIP(base.shape[1])
        index.add(base)
        for q in queries[:args.warmup]:
            index.search(q[None, :], args.k)
        single, batch, lat, ids, batch_ids = [], [], [], None, None
        for r in range(args.rounds):
            got = []
            t0 = time.perf_counter()
            for q in queries:
                t1 = time.perf_counter()
                _, idx = index.search(q[None, :], args.k)
                lat.append(time.perf_counter() - t1)
                got.append(idx[0].tolist())
            single.append(len(queries) / (time.perf_counter() - t0))
            if ids is None:
                ids = got
            t0 = time.perf_counter()
            _, bidx = index.search(queries, args.k)
            batch.append(len(queries) / (time.perf_counter() - t0))
            if r == 0:
                batch_ids = bidx.tolist()
        out["metrics"][metric] = {"single_qps_rounds": single, "batch_qps_rounds": batch,
                                  "single_latency_ms_p50": float(np.percentile(lat, 50) * 1e3), "ids": ids,
                                  "batch_ids": batch_ids}
        del index
    print(json.dumps(out))


if __name__ == "__main__":
    main()
