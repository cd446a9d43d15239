"""Human-readable tables (Markdown) from the JSON results of bench/ingest.py and bench/exact_search.py.

Usage: /usr/bin/python3 bench/report.py [RESULT.json ...]   (default: bench/results/ingest.json exact_search.json)
Imports neither grpc nor the stubs, so it runs anywhere with Python 3."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def machine_note(res):
    m = res["machine"]
    lb = res.get("load_before", {})
    la = res.get("load_after", {})
    simd = res.get("simd") or next((c.get("simd") for c in res.get("cases", []) if c.get("simd")), None)
    lines = [f"machine: nproc={m['nproc']}, CPU {m['cpu_model']} ({' '.join(m['cpu_simd_flags'])}), "
             f"{m['mem_gib']} GiB, kernel {m['kernel']}; quiverd SIMD tier: {simd}; Python {m['python']}, "
             f"NumPy {m['numpy']}, grpcio {m['grpcio']}",
             f"quiverd: {res.get('quiverd')} built from {res.get('quiverd_source') or '?'}",
             f"load average before: {' '.join(lb.get('loadavg') or [])}  after: {' '.join(la.get('loadavg') or [])}"]
    return "\n".join(lines)


def format_ingest(res):
    cfg = res["config"]
    lines = [f"Ingest: Upsert batches of {cfg['batch']} (each a synced durable write), raw pre-serialized requests, "
             f"one channel per client thread, {cfg.get('repeat', 1)} runs per row, each on a fresh quiverd; "
             f"collection index: {cfg.get('index_kind', 'default')}",
             "",
             "| dim | threads | points | vectors/s (median run) | vectors/s min–max | batches/s | fsync/s (4 KiB) "
             "| batches/s ÷ fsync/s | p50 ms "
             "| p99 ms | server CPU / wall | client CPU / wall | disk write ÷ payload |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in res["cases"]:
        amp = (f"{c['server_disk_write_bytes'] / c['request_bytes']:.2f}"
               if c.get("server_disk_write_bytes") is not None else "-")
        runs = c.get("runs_vectors_per_s") or [c["vectors_per_s"]]
        lines.append(f"| {c['dim']} | {c['threads']} | {c['points']:,} | {c['vectors_per_s']:,.0f} | "
                     f"{min(runs):,.0f}–{max(runs):,.0f} | "
                     f"{c['batches_per_s']:.1f} | {c['fsync_4k']['syncs_per_s']:,.0f} | "
                     f"{c['batches_per_fsync']:.3f} | {c['latency_ms']['p50']:.1f} | {c['latency_ms']['p99']:.1f} | "
                     f"{c['server_cpu_s'] / c['seconds']:.2f} | {c['client_cpu_s'] / c['seconds']:.2f} | {amp} |")
    lines.append("")
    for b in res["sync_write_at_batch_size"]:
        lines.append(f"- synced appends of one {b['dim']}-d batch's size ({b['block_bytes']:,} B) on the same "
                     f"filesystem: {b['syncs_per_s']:,.0f}/s = {b['mb_per_s']:,.0f} MB/s")
    return "\n".join(lines)


EXACT_ORDER = ["quiver sealed", "quiver growing", "numpy single", "numpy batch", "faiss single", "faiss batch",
               "quiver filtered", "numpy filtered", "quiver rtt"]


def format_exact(res):
    cfg = res["config"]
    bw = res["membw"]
    f = res["filter"]
    lines = [f"Exact search: {cfg['rows']:,} x {cfg['dim']} float32, k={cfg['k']}, {cfg['queries']} queries x "
             f"{cfg['rounds']} rounds (QPS = median round), single client, params.exact=true",
             "",
             f"- memory bandwidth (bench/membw, {cfg['membw_mib']} MiB sequential read, best of "
             f"{cfg['membw_passes']}), before the cases: 1 thread {bw['1']['best_gb_s']:.1f} GB/s, 2 threads "
             f"{bw['2']['best_gb_s']:.1f} GB/s; after: 1 thread {res['membw_after']['1']['best_gb_s']:.1f} GB/s, "
             f"2 threads {res['membw_after']['2']['best_gb_s']:.1f} GB/s; used below (the better): "
             f"{res['membw_used_gb_s']['2']:.1f} GB/s (2 threads)",
             f"- filter {f['expr']}: {f['rows']:,} rows ({f['fraction']:.1%})",
             "",
             "| metric | peer | QPS (median) | QPS min–max over rounds | Quiver sealed QPS ÷ peer QPS | recall@10 "
             "| p50 ms | scan GB/s | ÷ membw (2 threads) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m, peers in res["results"].items():
        for name in EXACT_ORDER:
            x = peers.get(name)
            if x is None:
                continue
            rec = f"{x['recall_at_k']:.4f}" if "recall_at_k" in x else "-"
            p50 = f"{x['latency_ms']['p50']:.2f}" if "latency_ms" in x else "-"
            ratio = f"{x['quiver_sealed_over_this']:.2f}"
            if name == "quiver filtered" and "numpy filtered" in peers:
                ratio = f"(÷ numpy filtered: {x['qps'] / peers['numpy filtered']['qps']:.2f})"
            elif name in ("numpy filtered", "quiver rtt"):
                ratio = "-"
            gbs = "-" if name == "quiver rtt" else f"{x['scan_gb_s']:.2f}"
            frac = "-" if name == "quiver rtt" else f"{x['membw_fraction_2t']:.2f}"
            spread = f"{min(x['qps_rounds']):,.1f}–{max(x['qps_rounds']):,.1f}"
            lines.append(f"| {m} | {name} | {x['qps']:,.1f} | {spread} | {ratio} | {rec} | {p50} | {gbs} | {frac} |")
    lines.append("")
    fa = res["faiss"]
    if fa.get("skipped"):
        lines.append(f"- faiss: skipped ({fa['skipped']})")
    else:
        lines.append(f"- faiss {fa['faiss']} (its venv's NumPy {fa['numpy']}), OpenMP threads {fa['omp_threads']}, "
                     f"compiled with {fa['compile_options'].strip()}")
    for m, peers in res["results"].items():
        q = peers["quiver sealed"]
        lines.append(f"- {m}: Quiver's top-10 list identical to NumPy single's for "
                     f"{q['same_list_as_numpy_single']}/{cfg['queries']} queries; queries whose 10th and 11th exact "
                     f"scores tie within 1e-5: {res['near_ties'][m]}; quiverd CPU while serving sealed queries: "
                     f"{q.get('server_cores_busy') or 0:.2f} cores")
    b = res["blas"]
    lines.append(f"- NumPy {res['machine']['numpy']} BLAS: {b.get('library')} (OpenBLAS core {b.get('corename')}, "
                 f"{b.get('num_threads')} threads)")
    if "flush_seconds" in res:
        lines.append(f"- Flush of both collections took {res['flush_seconds']:.1f} s; then quiverd stayed busy for "
                     f"{res['idle_wait_s']['after_flush']:.0f} s (background work after the seal: with an index, "
                     "its build) before the sealed cases were timed; collections' index: "
                     f"{cfg.get('index_kind', 'default')}")
    lines.append("- load time: " + ", ".join(f"{m} {s:.1f} s" for m, s in res["load_seconds"].items()) +
                 f" for {cfg['rows']:,} rows in batches of {cfg['batch']}")
    return "\n".join(lines)


def format_any(res):
    body = format_ingest(res) if res["benchmark"] == "ingest" else format_exact(res)
    return body + "\n\n" + machine_note(res)


def main(paths):
    if not paths:
        paths = [os.path.join(HERE, "results", n) for n in ("ingest.json", "exact_search.json")]
    out = []
    for p in paths:
        if not os.path.exists(p):
            out.append(f"({p}: missing)")
            continue
        with open(p) as fh:
            out.append(format_any(json.load(fh)))
    print("\n\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
