#!/usr/bin/env python3
"""Runs quiver-ann, hnswlib and (if installed) faiss on the same files in one run, and reports QPS at equal recall.

Datasets (--dataset, repeatable):
  synth           clustered Gaussians, --n x --dim (default 100000 x 128), --nq held-out queries from the same mixture
  sift5k          ../shared/datasets/sift5k: 5,000 SIFT rows; the last --sift-holdout rows are held out as queries
                  together with the 3 rows of sift-query-3.tsv (3 queries alone are too few)
  files:B,Q       existing .fvecs base and query files

For each dataset: exact ground truth with numpy (written as .ivecs and passed to quiver-ann with --gt, so every
library is scored against the same neighbours), then quiver-ann (its JSON) once per --quant entry (none, sq8, pq:M,
each optionally @R for its own --rerank R; row labels quiver, quiver-sq8, quiver-pqM), hnswlib (same M,
ef_construction, build threads; queries single-threaded in one batch call, so Python overhead is once per ef, not per
query) and faiss: IndexHNSWFlat (same M, efConstruction; omp threads = build threads for the build, 1 for queries),
IndexHNSWSQ with QT_8bit (faiss's HNSW over 8-bit scalar codes, no re-ranking; same M, efConstruction, efSearch
sweep), and IndexIVFPQ (nlist = --ivf-nlist, m = --ivf-m sub-quantisers x 8 bits, nprobe sweep --nprobe), plain and
wrapped in IndexRefineFlat with k_factor = the PQ re-rank factor (faiss-ivfpq-rf: the top k_factor * k by PQ
distance re-ranked with the float vectors, which is what quiver's PQ walk does). Each ef is timed
as the best of 5 passes over all queries for every library, both by wall clock and by the CPU time of the
searching thread (the machine is shared; the fastest pass is the least disturbed, and CPU time does not count time
spent descheduled). Filtered runs (--filter-selectivity) compare quiver-ann with hnswlib's filter callback at the
same ef; hnswlib calls back into Python for every candidate, so its filtered QPS measures that interface as much as
the index, and it runs on --filter-nq queries and the --filter-ef values only; its bitmap is drawn separately at
the same selectivity and scored against its own exact ground truth.

Memory pages: quiver-ann puts the base vectors and its graph in transparent huge pages (madvise; what the storage
layer should do for sealed segments) and is also run once more on the same graph with the vectors in 4 KiB pages
(column quiver-4k; the graph's arrays stay in huge pages, the library allocates those). run.sh starts this script
with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which makes glibc's malloc advise huge pages for large allocations, so
hnswlib's and faiss's own arrays get huge pages too (without it they would not, and the comparison would flatter
quiver).

Prints a table (markdown) of single-thread QPS at recall@k 0.90 / 0.95 / 0.99 per library (linear interpolation
between neighbouring ef / nprobe points of each curve; '-' when the curve never reaches that recall), ratios to
hnswlib and to faiss HNSW (flat), build times and bytes per vector read by the search (float rows, SQ8 or PQ codes),
and saves a recall/QPS plot (PNG) and a summary JSON in --out.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPEATS = 5  # timed passes per ef (quiver-ann does the same); the best is reported
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- files

def write_fvecs(path, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.float32)
    out[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = x
    out.tofile(path)


def write_ivecs(path, x):
    x = np.ascontiguousarray(x, dtype=np.int32)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x
    out.tofile(path)


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


# ---------------------------------------------------------------- data

def synth(n, nq, dim, clusters, seed):
    """Gaussian mixture: centres N(0, 1) per dimension, points centre + 0.5 * N(0, 1) (overlapping clusters, so the
    task is neither trivial nor uniform noise). Queries are drawn from the same mixture and are not in the base."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    total = n + nq
    labels = rng.integers(0, clusters, total)
    x = centres[labels] + 0.5 * rng.standard_normal((total, dim)).astype(np.float32)
    return x[:n], x[n:]


def sift5k(holdout):
    d = os.path.join(ROOT, '..', 'shared', 'datasets', 'sift5k')
    if not os.path.isdir(d):
        d = os.path.join(ROOT, 'shared', 'datasets', 'sift5k')

    def load(name):
        rows = []
        with open(os.path.join(d, name)) as f:
            for line in f:
                parts = line.rstrip('\n').split('\t')
                if len(parts) < 128:
                    continue
                rows.append([float(v) for v in parts[:128]])  # a trailing id column, if present, is dropped
        return np.array(rows, dtype=np.float32)

    base = load('sift-dataset-5k.tsv')
    q3 = load('sift-query-3.tsv')
    return base[:-holdout], np.vstack([q3, base[-holdout:]])


def ground_truth(base, queries, k, metric):
    """Exact top-k ids (float64 arithmetic, in blocks)."""
    b = base.astype(np.float64)
    bn = (b * b).sum(1)
    out = np.empty((len(queries), k), dtype=np.int32)
    for s in range(0, len(queries), 256):
        q = queries[s:s + 256].astype(np.float64)
        if metric == 'l2':
            d = bn[None, :] - 2.0 * q @ b.T
        else:
            d = -(q @ b.T)
        idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        dd = np.take_along_axis(d, idx, 1)
        order = np.argsort(dd, axis=1, kind='stable')
        out[s:s + 256] = np.take_along_axis(idx, order, 1)
    return out


def recall_at_k(found, gt, k):
    hits = 0
    for f, g in zip(found, gt):
        hits += len(set(int(v) for v in f[:k]) & set(int(v) for v in g[:k]))
    return hits / (len(gt) * k)


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float('nan')


# ---------------------------------------------------------------- runners

def parse_quant(spec):
    """'none' | 'sq8' | 'pq:M', optionally '@R' (that run's --rerank). Returns (quant, rerank or None, label)."""
    q, _, r = spec.partition('@')
    if q not in ('none', 'sq8') and not (q.startswith('pq:') and q[3:].isdigit()):
        sys.exit(f'--quant: {spec!r} is not none, sq8 or pq:M[@R]')
    label = 'quiver' if q == 'none' else 'quiver-' + q.replace(':', '')
    return q, (int(r) if r else None), label


def run_quiver(exe, base_f, query_f, gt_f, metric, k, M, efc, efs, threads, sels, out_json, extra=()):
    cmd = [exe, '--base', base_f, '--query', query_f, '--metric', metric, '--k', str(k), '--M', str(M),
           '--efc', str(efc), '--ef', ','.join(map(str, efs)), '--threads', str(threads), '--json', out_json]
    cmd += list(extra)
    if gt_f:
        cmd += ['--gt', gt_f]
    if sels:
        cmd += ['--filter-selectivity', ','.join(map(str, sorted(set(sels) | {1.0}, reverse=True)))]
    log('$ ' + ' '.join(cmd))
    env = dict(os.environ)
    env.pop('GLIBC_TUNABLES', None)  # quiver-ann places its own memory (and --no-hugepages must mean 4 KiB pages)
    subprocess.run(cmd, check=True, env=env)
    with open(out_json) as f:
        j = json.load(f)
    curve = [(r['ef'], r['recall'], r['qps'], r['qps_cpu']) for r in j['results'] if r['selectivity'] == 1]
    filt = [r for r in j['results'] if r['selectivity'] < 1]
    return {'build_s': j['build_seconds'], 'curve': curve, 'filtered': filt,
            'bytes_per_vector': j['index_bytes_per_vector'],
            'code_bytes': j.get('code_bytes_per_vector') or j['vector_bytes_per_vector'],
            'quant_tier': j.get('quant_tier'), 'raw': j}


def run_hnswlib(base, queries, gt, metric, k, M, efc, efs, threads, sels, filter_nq, filter_efs, seed):
    import hnswlib
    space = 'l2' if metric == 'l2' else 'ip'
    idx = hnswlib.Index(space=space, dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=M, ef_construction=efc, random_seed=seed)
    t0 = time.perf_counter()
    idx.add_items(base, np.arange(len(base)), num_threads=threads)
    build_s = time.perf_counter() - t0
    log(f'hnswlib: built in {build_s:.2f} s')
    curve = []
    idx.set_ef(efs[0])
    idx.knn_query(queries[:500], k=k, num_threads=1)  # warm-up, as quiver-ann does
    for ef in efs:
        idx.set_ef(ef)
        t = tc = float('inf')
        for _ in range(REPEATS):  # best of REPEATS: the machine is shared, the fastest pass is the least disturbed
            t0, c0 = time.perf_counter(), time.thread_time()
            labels, _ = idx.knn_query(queries, k=k, num_threads=1)  # num_threads=1 runs on this thread
            t, tc = min(t, time.perf_counter() - t0), min(tc, time.thread_time() - c0)
        r = recall_at_k(labels, gt, k)
        curve.append((ef, r, len(queries) / t, len(queries) / tc))
        log(f'  hnswlib ef {ef:<4} recall@{k} {r:.4f} {len(queries) / t:9.0f} q/s')
    filt = []
    rng = np.random.default_rng(seed + 7)
    for sel in sels or []:
        if sel >= 1:
            continue
        mask = rng.random(len(base)) < sel
        allowed_ids = np.nonzero(mask)[0]
        if len(allowed_ids) == 0:
            continue
        qs = queries[:filter_nq]
        sub_gt = ground_truth(base[allowed_ids], qs, min(k, len(allowed_ids)), metric)
        fgt = allowed_ids[sub_gt]
        maskl = mask.tolist()
        for ef in filter_efs:
            idx.set_ef(max(ef, k))
            t0 = time.perf_counter()
            try:
                labels, _ = idx.knn_query(qs, k=min(k, len(allowed_ids)), num_threads=1,
                                          filter=lambda i: maskl[i])
            except RuntimeError as e:  # hnswlib raises when it cannot find k allowed results
                log(f'  hnswlib filtered sel {sel} ef {ef}: {e}')
                filt.append({'selectivity': sel, 'ef': ef, 'recall': None, 'qps': None})
                continue
            t = time.perf_counter() - t0
            r = recall_at_k(labels, fgt, min(k, len(allowed_ids)))
            filt.append({'selectivity': sel, 'ef': ef, 'recall': r, 'qps': len(qs) / t})
            log(f'  hnswlib sel {sel:<6} ef {ef:<4} recall {r:.4f} {len(qs) / t:9.0f} q/s (Python filter callback)')
    return {'build_s': build_s, 'curve': curve, 'filtered': filt}


def run_faiss(base, queries, gt, metric, k, M, efc, efs, threads):
    try:
        import faiss
    except ImportError:
        log('faiss not installed: skipped')
        return None
    d = base.shape[1]
    mt = faiss.METRIC_L2 if metric == 'l2' else faiss.METRIC_INNER_PRODUCT
    idx = faiss.IndexHNSWFlat(d, M, mt)
    idx.hnsw.efConstruction = efc
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    idx.add(np.ascontiguousarray(base, dtype=np.float32))
    build_s = time.perf_counter() - t0
    log(f'faiss: built in {build_s:.2f} s')
    faiss.omp_set_num_threads(1)
    curve = []
    q = np.ascontiguousarray(queries, dtype=np.float32)
    idx.hnsw.efSearch = efs[0]
    idx.search(q[:500], k)
    for ef in efs:
        idx.hnsw.efSearch = ef
        t = tc = float('inf')
        for _ in range(REPEATS):
            t0, c0 = time.perf_counter(), time.thread_time()
            _, labels = idx.search(q, k)  # one OpenMP thread: runs on this thread
            t, tc = min(t, time.perf_counter() - t0), min(tc, time.thread_time() - c0)
        r = recall_at_k(labels, gt, k)
        curve.append((ef, r, len(q) / t, len(q) / tc))
        log(f'  faiss ef {ef:<4} recall@{k} {r:.4f} {len(q) / t:9.0f} q/s')
    return {'build_s': build_s, 'curve': curve}


def run_faiss_hnsw_sq8(base, queries, gt, metric, k, M, efc, efs, threads):
    """faiss IndexHNSWSQ (QT_8bit): the graph is built and searched on 8-bit codes, no re-ranking."""
    try:
        import faiss
    except ImportError:
        return None
    d = base.shape[1]
    mt = faiss.METRIC_L2 if metric == 'l2' else faiss.METRIC_INNER_PRODUCT
    idx = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, M, mt)
    idx.hnsw.efConstruction = efc
    faiss.omp_set_num_threads(threads)
    xb = np.ascontiguousarray(base, dtype=np.float32)
    t0 = time.perf_counter()
    idx.train(xb)
    idx.add(xb)
    build_s = time.perf_counter() - t0
    log(f'faiss HNSW-SQ8: built in {build_s:.2f} s')
    faiss.omp_set_num_threads(1)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    idx.hnsw.efSearch = efs[0]
    idx.search(q[:500], k)
    curve = []
    for ef in efs:
        idx.hnsw.efSearch = ef
        t = tc = float('inf')
        for _ in range(REPEATS):
            t0, c0 = time.perf_counter(), time.thread_time()
            _, labels = idx.search(q, k)
            t, tc = min(t, time.perf_counter() - t0), min(tc, time.thread_time() - c0)
        r = recall_at_k(labels, gt, k)
        curve.append((ef, r, len(q) / t, len(q) / tc))
        log(f'  faiss-hnsw-sq8 ef {ef:<4} recall@{k} {r:.4f} {len(q) / tc:9.0f} q/s')
    return {'build_s': build_s, 'curve': curve, 'code_bytes': d}


def run_faiss_ivfpq(base, queries, gt, metric, k, nlist, m, nprobes, threads, k_factor):
    """faiss IndexIVFPQ (m x 8-bit codes of the residuals to nlist coarse centroids), and the same index wrapped in
    IndexRefineFlat (k_factor * k PQ candidates re-ranked with the float vectors). Curves are over nprobe."""
    try:
        import faiss
    except ImportError:
        return None, None
    d = base.shape[1]
    mt = faiss.METRIC_L2 if metric == 'l2' else faiss.METRIC_INNER_PRODUCT
    coarse = faiss.IndexFlatL2(d) if metric == 'l2' else faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFPQ(coarse, d, nlist, m, 8, mt)
    rf = faiss.IndexRefineFlat(ivf)  # adding to rf adds to ivf and keeps the float rows for the refine step
    rf.k_factor = k_factor
    faiss.omp_set_num_threads(threads)
    xb = np.ascontiguousarray(base, dtype=np.float32)
    t0 = time.perf_counter()
    rf.train(xb)
    rf.add(xb)
    build_s = time.perf_counter() - t0
    log(f'faiss IVF{nlist},PQ{m}: trained and added in {build_s:.2f} s')
    faiss.omp_set_num_threads(1)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    out = []
    for name, idx in (('faiss-ivfpq', ivf), ('faiss-ivfpq-rf', rf)):
        ivf.nprobe = nprobes[0]
        idx.search(q[:500], k)
        curve = []
        for npb in nprobes:
            ivf.nprobe = npb
            t = tc = float('inf')
            for _ in range(REPEATS):
                t0, c0 = time.perf_counter(), time.thread_time()
                _, labels = idx.search(q, k)
                t, tc = min(t, time.perf_counter() - t0), min(tc, time.thread_time() - c0)
            r = recall_at_k(labels, gt, k)
            curve.append((npb, r, len(q) / t, len(q) / tc))
            log(f'  {name} nprobe {npb:<4} recall@{k} {r:.4f} {len(q) / tc:9.0f} q/s')
        out.append({'build_s': build_s, 'curve': curve, 'code_bytes': m, 'x': 'nprobe'})
    return out[0], out[1]


# ---------------------------------------------------------------- report

def qps_at(curve, target, col=3):
    """QPS at `target` recall, linear between neighbouring points of the curve (ordered by ef). col 2 = wall-clock
    QPS, 3 = CPU-time QPS. Returns (qps, note): note '>=' when even the smallest ef is above the target (the QPS
    is then a lower bound)."""
    pts = sorted(((p[0], p[1], p[col]) for p in curve), key=lambda p: p[0])
    if not pts:
        return None, ''
    if pts[0][1] >= target:
        return pts[0][2], '>='
    for (e0, r0, q0), (e1, r1, q1) in zip(pts, pts[1:]):
        if r0 < target <= r1:
            if r1 == r0:
                return q1, ''
            t = (target - r0) / (r1 - r0)
            return q0 + t * (q1 - q0), ''
    return None, ''


def fmt(v, note=''):
    if v is None:
        return '-'
    return f'{note}{v:.0f}'


LIB_ORDER = ('quiver', 'quiver-sq8', 'quiver-4k', 'hnswlib', 'faiss', 'faiss-hnsw-sq8', 'faiss-ivfpq',
             'faiss-ivfpq-rf')


def lib_order(results):
    known = [l for l in LIB_ORDER if results.get(l)]
    extra = sorted(l for l in results if results.get(l) and l not in LIB_ORDER)  # quiver-pqM, ...
    q = [l for l in known if l.startswith('quiver')]
    return q[:2] + [l for l in extra if l.startswith('quiver')] + q[2:] + [l for l in known if l not in q] + \
        [l for l in extra if not l.startswith('quiver')]


def plot(name, info, results, libs, targets, out_dir):
    """recall/QPS curves (CPU time), the whole range and a zoom on recall >= 0.85, where the targets are."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib not installed: no plot')
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, lo in zip(axes, (None, 0.85)):
        for l in libs:
            c = sorted(results[l]['curve'])
            style = '-' if l.startswith('quiver') else '--'
            ax.plot([p[1] for p in c], [p[3] for p in c], style, marker='o', markersize=3, label=l)
        for t in targets:
            ax.axvline(t, color='grey', linewidth=0.5, alpha=0.5)
        ax.set_yscale('log')
        left = lo if lo is not None else max(0.0, min(p[1] for l in libs for p in results[l]['curve']) - 0.02)
        ax.set_xlim(left=left, right=1.002)
        ax.set_xlabel('recall@k')
        ax.set_ylabel('queries/s (1 thread, CPU time)')
        ax.grid(True, which='both', alpha=0.3)
        ax.set_title('all points' if lo is None else f'recall >= {lo}', fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f'{name}: {info}', fontsize=8, wrap=True)
    png = os.path.join(out_dir, f'{name}.png')
    fig.savefig(png, dpi=110, bbox_inches='tight')
    log(f'plot: {png}')


def replot(out_dir, targets):
    """Redraws the PNGs from out_dir/summary.json (no benchmark run)."""
    with open(os.path.join(out_dir, 'summary.json')) as f:
        summary = json.load(f)
    for name, d in summary['datasets'].items():
        results = {l: {'curve': c} for l, c in d['curves'].items()}
        plot(name, d['info'], results, lib_order(results), targets, out_dir)


def report(name, info, results, targets, out_dir):
    lines = [f'== {name}: {info} ==']
    libs = lib_order(results)
    refs = [l for l in ('hnswlib', 'faiss') if results.get(l)]
    table = {}
    for col, label in ((3, 'CPU time of the searching thread'), (2, 'wall clock')):
        lines.append('')
        lines.append(f'single-thread q/s at recall@k, by {label} (ratios: this row / the named library):')
        head = ['library', 'search reads B/row', 'build s'] + [f'q/s @{t:.2f}' for t in targets]
        for r in refs:
            head += [f'÷ {r} @{t:.2f}' for t in targets]
        lines.append('| ' + ' | '.join(head) + ' |')
        lines.append('|' + '|'.join(['---'] + ['---:'] * (len(head) - 1)) + '|')
        vals = {l: {t: qps_at(results[l]['curve'], t, col) for t in targets} for l in libs}
        for l in libs:
            r = results[l]
            b = r.get('build_s')
            row = [l, str(r.get('code_bytes', '-')), f'{b:.1f}' if b is not None else '(loaded)']
            row += [fmt(*vals[l][t]) for t in targets]
            for ref in refs:
                for t in targets:
                    a, c = vals[l][t][0], vals[ref][t][0]
                    row.append(f'{a / c:.2f}' if a and c else '-')
            lines.append('| ' + ' | '.join(row) + ' |')
            if col == 3:
                table[l] = {str(t): vals[l][t][0] for t in targets}
    lines.append('')
    for l in libs:
        if l.startswith('quiver') and results[l].get('bytes_per_vector') is not None:
            raw = results[l].get('raw', {})
            lines.append(f'{l}: index {results[l]["bytes_per_vector"]:.1f} bytes/vector (graph + codes, floats not '
                         f'counted), walk reads {results[l]["code_bytes"]} B/row, re-rank factor '
                         f'{raw.get("rerank", 0) or "default"}, kernels {results[l].get("quant_tier") or "-"}')
    lines.append('curves (ef or nprobe: recall / q/s by CPU time):')
    for l in libs:
        lines.append(f'  {l:15} ' + '  '.join(f'{p[0]}: {p[1]:.4f}/{p[3]:.0f}' for p in sorted(results[l]['curve'])))
    for l in libs:
        qf = results[l].get('filtered') if l.startswith('quiver') else None
        if not qf:
            continue
        lines.append(f'filtered ({l}: recall / q/s / plan; hnswlib filter callback: recall / q/s):')
        hf = {(r['selectivity'], r['ef']): r for r in (results.get('hnswlib') or {}).get('filtered', [])}
        for r in qf:
            paths = r['paths']
            plan = max(paths, key=paths.get)
            h = hf.get((r['selectivity'], r['ef']))
            hs = '-' if not h or h['recall'] is None else f'{h["recall"]:.4f} / {h["qps"]:.0f}'
            lines.append(f'  sel {r["selectivity"]:<6} allowed {r["allowed"]:<7} ef {r["ef"]:<4} '
                         f'{l} {r["recall"]:.4f} / {r["qps"]:.0f} / {plan:6}  hnswlib {hs}')
    text = '\n'.join(lines)
    print(text, flush=True)
    with open(os.path.join(out_dir, f'{name}.txt'), 'w') as f:
        f.write(text + '\n')
    plot(name, info, results, libs, targets, out_dir)
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dataset', action='append', help='synth | sift5k | files:BASE.fvecs,QUERY.fvecs')
    ap.add_argument('--n', type=int, default=100000)
    ap.add_argument('--dim', type=int, default=128)
    ap.add_argument('--nq', type=int, default=1000)
    ap.add_argument('--clusters', type=int, default=100)
    ap.add_argument('--sift-holdout', type=int, default=500)
    ap.add_argument('--metric', default='l2', choices=['l2', 'ip', 'cosine'])
    ap.add_argument('--k', type=int, default=10)
    ap.add_argument('--M', type=int, default=16)
    ap.add_argument('--efc', type=int, default=200)
    ap.add_argument('--ef', default='10,16,24,32,48,64,96,128,192,256,384')
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--filter-selectivity', default='')
    ap.add_argument('--filter-nq', type=int, default=100)
    ap.add_argument('--filter-ef', default='16,64,256', help='ef values for hnswlib\'s (slow) filtered runs')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--exe', default=os.path.join(ROOT, 'build-bench', 'release', 'quiver-ann'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'build-bench', 'results'))
    ap.add_argument('--no-faiss', action='store_true')
    ap.add_argument('--no-4k', action='store_true', help='skip the quiver run with base vectors in 4 KiB pages')
    ap.add_argument('--quant', default='none',
                    help='quiver runs, comma-separated: none, sq8, pq:M, each optionally @R (its re-rank factor)')
    ap.add_argument('--rerank', type=int, default=0, help='quiver-ann --rerank for quantised runs (0 = default 4)')
    ap.add_argument('--no-faiss-quant', action='store_true', help='skip faiss HNSW-SQ8 and IVF-PQ')
    ap.add_argument('--ivf-nlist', type=int, default=0, help='IVF-PQ coarse centroids (0 = 4 * sqrt(n), power of 2)')
    ap.add_argument('--ivf-m', type=int, default=0, help='IVF-PQ sub-quantisers (0 = m of the first quiver pq:M, '
                    'else dim / 4)')
    ap.add_argument('--nprobe', default='1,2,4,8,16,32,64,128,256')
    ap.add_argument('--data-dir', default=os.path.join(ROOT, 'build-bench', 'data'))
    ap.add_argument('--replot', action='store_true', help='only redraw the PNGs from --out/summary.json')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.replot:
        return replot(a.out, [0.90, 0.95, 0.99])
    data_dir = a.data_dir
    os.makedirs(data_dir, exist_ok=True)
    quants = [parse_quant(q) for q in a.quant.split(',')]
    efs = [int(e) for e in a.ef.split(',')]
    sels = [float(s) for s in a.filter_selectivity.split(',')] if a.filter_selectivity else []
    targets = [0.90, 0.95, 0.99]
    summary = {'load_at_start': loadavg(), 'cpu_count': os.cpu_count(), 'datasets': {}}
    log(f'load average at start: {summary["load_at_start"]:.2f}')
    for ds in a.dataset or ['synth']:
        if ds == 'synth':
            name = f'synth-{a.n // 1000}k-{a.dim}'
            bf, qf = os.path.join(data_dir, name + '-base.fvecs'), os.path.join(data_dir, name + '-query.fvecs')
            if not (os.path.exists(bf) and os.path.exists(qf)):
                log(f'generating {name}: {a.n} x {a.dim}, {a.clusters} clusters, {a.nq} queries')
                base, queries = synth(a.n, a.nq, a.dim, a.clusters, a.seed)
                write_fvecs(bf, base)
                write_fvecs(qf, queries)
        elif ds == 'sift5k':
            name = 'sift5k'
            bf, qf = os.path.join(data_dir, 'sift5k-base.fvecs'), os.path.join(data_dir, 'sift5k-query.fvecs')
            base, queries = sift5k(a.sift_holdout)
            write_fvecs(bf, base)
            write_fvecs(qf, queries)
        elif ds.startswith('files:'):
            bf, qf = ds[6:].split(',')
            name = os.path.splitext(os.path.basename(bf))[0]
        else:
            sys.exit(f'unknown dataset {ds}')
        base, queries = read_fvecs(bf), read_fvecs(qf)
        metric = a.metric
        if metric == 'cosine':  # what quiver-ann does for cosine: normalise, then inner product
            base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
            queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        gm = 'l2' if metric == 'l2' else 'ip'
        gt = ground_truth(base, queries, a.k, gm)
        gtf = os.path.join(data_dir, f'{name}-{gm}-gt{a.k}.ivecs')
        write_ivecs(gtf, gt)
        info = (f'{len(base)} x {base.shape[1]}, {len(queries)} queries, {metric}, k={a.k}, M={a.M}, '
                f'efc={a.efc}, build threads={a.threads}, load {loadavg():.2f}')
        log(info)
        res = {}
        ixf = None
        for quant, rr, label in quants:
            qf_ = os.path.join(data_dir, f'{name}-{metric}-M{a.M}-efc{a.efc}-{label}.hnsw')
            if os.path.exists(qf_):
                os.remove(qf_)  # each run builds (timed) and saves its graph; the 4 KiB-page run loads 'none's
            extra = ['--index-file', qf_, '--quant', quant]
            if quant != 'none':
                extra += ['--rerank', str(rr if rr is not None else a.rerank)]
            else:
                ixf = qf_
            res[label] = run_quiver(a.exe, bf, qf, gtf, metric, a.k, a.M, a.efc, efs, a.threads, sels,
                                    os.path.join(a.out, f'{name}-{label}.json'), extra)
        if ixf and not a.no_4k:  # the same graph (loaded, not rebuilt) with the base vectors in 4 KiB pages
            r4 = run_quiver(a.exe, bf, qf, gtf, metric, a.k, a.M, a.efc, efs, a.threads, [],
                            os.path.join(a.out, f'{name}-quiver-4k.json'), ['--no-hugepages', '--index-file', ixf])
            r4['build_s'] = None
            res['quiver-4k'] = r4
        res['hnswlib'] = run_hnswlib(base, queries, gt, gm, a.k, a.M, a.efc, efs, a.threads, sels, a.filter_nq,
                                     [int(e) for e in a.filter_ef.split(',')], a.seed)
        if not a.no_faiss:
            res['faiss'] = run_faiss(base, queries, gt, gm, a.k, a.M, a.efc, efs, a.threads)
            if res['faiss']:
                res['faiss']['code_bytes'] = 4 * base.shape[1]
        if not a.no_faiss and not a.no_faiss_quant:
            res['faiss-hnsw-sq8'] = run_faiss_hnsw_sq8(base, queries, gt, gm, a.k, a.M, a.efc, efs, a.threads)
            pq = [(q, r) for q, r, _ in quants if q.startswith('pq:')]
            m = a.ivf_m or (int(pq[0][0][3:]) if pq else max(1, base.shape[1] // 4))
            kf = (pq[0][1] if pq and pq[0][1] is not None else a.rerank) or 4
            nlist = a.ivf_nlist or 1 << max(4, int(round(np.log2(4 * np.sqrt(len(base))))))
            ivf, ivfrf = run_faiss_ivfpq(base, queries, gt, gm, a.k, nlist, m,
                                         [int(x) for x in a.nprobe.split(',')], a.threads, kf)
            res['faiss-ivfpq'], res['faiss-ivfpq-rf'] = ivf, ivfrf
            info += f', faiss IVF{nlist},PQ{m} (refine k_factor {kf})'
        if res.get('hnswlib'):
            res['hnswlib']['code_bytes'] = 4 * base.shape[1]
        info += f', load after {loadavg():.2f}'
        table = report(name, info, res, targets, a.out)
        summary['datasets'][name] = {
            'info': info, 'qps_at_recall': table,
            'build_seconds': {l: r['build_s'] for l, r in res.items() if r and r.get('build_s') is not None},
            'curves': {l: r['curve'] for l, r in res.items() if r},
            'quiver_filtered': {l: r['filtered'] for l, r in res.items() if r and l.startswith('quiver')
                                and r.get('filtered')},
            'hnswlib_filtered': res['hnswlib']['filtered'],
        }
    summary['load_at_end'] = loadavg()
    with open(os.path.join(a.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    log(f'load average at end: {summary["load_at_end"]:.2f}; results in {a.out}')


if __name__ == '__main__':
    main()
