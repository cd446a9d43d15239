/* quiver-gpu-check: every result of the GPU plugin against the CPU's, with stated tolerances, and the speed ratios.
 * bench/gpu_check.sh runs it; it needs no CUDA to build (it dlopens the plugin as quiverd does, server/gpu.c).
 *
 *   quiver-gpu-check probe                      exit 0 and print the device, or exit 3 and print why not
 *   quiver-gpu-check compare [--n N] [--dim D] [--model DIR] [--threads T]
 *                                               the comparisons below; exit 1 if any fails
 *   quiver-gpu-check graph --base B --metric l2|ip|cosine [--M 16] [--efc 200] [--seed S] --out FILE
 *                                               build a graph on the GPU and write the HNSW blob (quiver-ann
 *                                               --index-file FILE then loads and searches it)
 *   --cpu-reference (any command)               use the CPU implementation of the plugin's table (kernels/cpu/)
 *                                               instead of the plugin: runs every comparison on a machine without
 *                                               a GPU (a self-test of this program; no speed ratio means anything)
 *
 * Comparisons and tolerances (the GPU sums in another order and with fused multiply-adds, so bit equality is not
 * expected except where no multiply-add is involved):
 *   knn          exact k=10 search (L2, IP, 10% filter) vs qv_hnsw_search_exact: every rank's distance within 1e-4
 *                relative (or 1e-4 absolute below 1), ids equal except at distance ties within that tolerance;
 *                a run forced into small batches (mem_limit) must equal the one-pass GPU result exactly
 *   kmeans       vs qv_kmeans, same seed: objective within 1%; at least 90% of centroids within 1e-3 (a near-tie
 *                assigned differently once changes the rest of the trajectory: the objective is what matters)
 *   sq8          vs qv_quant_train(SQ8): ranges and every code identical (no multiply-add: exact)
 *   pq           encoding with the CPU's codebooks: >= 99.9% of sub-codes identical (the rest are near-ties);
 *                GPU-trained quantiser: its blob loads, reconstruction error within 2% of the CPU quantiser's
 *   graph        GPU graph blob loads (qv_hnsw_decode), validates, recall@10 at ef=64 >= CPU HNSW's - 0.02
 *   embedding    (with --model) vs qv_embed_seqs: cosine >= 0.9999 per sequence, |diff| <= 1e-3 per component
 * Speed: GPU vs CPU wall time of the same work (CPU: Quiver's own CPU code on --threads threads where it is
 * parallel: the HNSW build and the embedding; the exact scan is single-threaded as qv_hnsw_search_exact is). */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/ann/vecio.h"
#include "common/bitmap.h"
#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/pool.h"
#include "index/quant/quant.h"
#include "kernels/cpu/kcpu.h"
#include "kernels/gpu.h"
#include "query/embed/model.h"
#include "server/gpu.h"

static int failures;
static int threads = 0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "quiver-gpu-check: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void report(const char *name, bool ok, double gpu_s, double cpu_s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(const char *name, bool ok, double gpu_s, double cpu_s, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    printf("%-14s %s  %s", name, ok ? "PASS" : "FAIL", detail);
    if (gpu_s > 0 && cpu_s > 0)
        printf("  [gpu %.3f s, cpu %.3f s: %.1fx]", gpu_s, cpu_s, cpu_s / gpu_s);
    printf("\n");
    fflush(stdout);
    failures += !ok;
}

/* ---- the CPU implementation dressed as a plugin (--cpu-reference) ---- */

static int ref_init(int device, qv_gpu_t **out, qv_err_t *err)
{
    (void)device;
    (void)err;
    *out = (qv_gpu_t *)(uintptr_t)1;
    return QV_OK;
}
static void ref_shutdown(qv_gpu_t *g) { (void)g; }
static int ref_info(qv_gpu_t *g, qv_gpu_info_t *info, qv_err_t *err)
{
    (void)g;
    (void)err;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "CPU reference (kernels/cpu)");
    return QV_OK;
}
static int ref_knn(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *q, size_t nq, const float *b, size_t nb,
                   uint32_t dim, qv_cand_t *out, qv_err_t *err)
{
    (void)g;
    return qv_kcpu_knn(p, q, nq, b, nb, dim, out, err);
}
static int ref_kmeans(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                      float *c, uint32_t *a, qv_gpu_kmeans_stats_t *st, qv_err_t *err)
{
    (void)g;
    return qv_kcpu_kmeans(p, x, n, dim, c, a, st, err);
}
static int ref_pq(qv_gpu_t *g, const float *cb, uint32_t m, const float *x, size_t n, uint32_t dim, uint8_t *codes,
                  qv_err_t *err)
{
    (void)g;
    return qv_kcpu_pq_encode(cb, m, x, n, dim, codes, err);
}
static int ref_sq8(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale, uint8_t *codes,
                   qv_err_t *err)
{
    (void)g;
    return qv_kcpu_sq8_encode(x, n, dim, vmin, scale, codes, err);
}
static int ref_quant(qv_gpu_t *g, const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim,
                     uint8_t **blob, size_t *len, qv_err_t *err)
{
    (void)g;
    qv_wbuf_t out;
    qv_wbuf_init(&out);
    int rc = qv_kquant_build(qv_kcpu_backend(), p, x, n, dim, &out, err);
    *blob = out.data;
    *len = out.len;
    return rc;
}
static int ref_graph(qv_gpu_t *g, const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim,
                     uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *st, qv_err_t *err)
{
    (void)g;
    return qv_kgraph_build_blob(qv_kcpu_backend(), p, x, n, dim, blob, len, st, err);
}
static void ref_free(uint8_t *b) { free(b); }
static int ref_embed_load(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err)
{
    (void)g;
    (void)w;
    *out = NULL;
    return qv_err_set(err, QV_EPRECOND, "the CPU reference has no device embedding");
}
static int ref_embed(qv_gpu_model_t *m, const qv_embed_seq_t *s, size_t n, float *out, qv_err_t *err)
{
    (void)m, (void)s, (void)n, (void)out;
    return qv_err_set(err, QV_EPRECOND, "no model");
}
static void ref_embed_free(qv_gpu_model_t *m) { (void)m; }

static const qv_gpu_api_t cpu_reference = {
    QV_GPU_ABI_VERSION, sizeof(qv_gpu_api_t), "CPU reference", ref_init, ref_shutdown, ref_info, ref_knn, ref_kmeans,
    ref_pq, ref_sq8, ref_quant, ref_graph, ref_free, ref_embed_load, ref_embed, ref_embed_free,
};

typedef struct {
    const qv_gpu_api_t *api;
    qv_gpu_t *g;
    qv_gpu_plugin_t *plugin;
} gpu_dev_t;

static int open_device(bool reference, gpu_dev_t *d, char *why, size_t cap)
{
    memset(d, 0, sizeof *d);
    if (reference) {
        d->api = &cpu_reference;
        d->api->init(0, &d->g, NULL);
        return 0;
    }
    qv_gpu_status_t st;
    qv_err_t err;
    qv_err_clear(&err);
    if (qv_gpu_load(QV_GPU_MODE_REQUIRE, 0, &d->plugin, &st, &err) != QV_OK) {
        snprintf(why, cap, "missing %s: %s", st.missing ? st.missing : "?", st.detail);
        return -1;
    }
    d->api = d->plugin->api;
    d->g = d->plugin->ctx;
    return 0;
}

/* ---- data ---- */

static uint64_t rng_state = 1;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }
static float rng_gauss(void) { return (float)(sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit())); }

static float *clustered(size_t n, uint32_t dim, size_t clusters, uint64_t seed)
{
    rng_state = seed;
    float *c = malloc(clusters * dim * sizeof(float)), *v = malloc(n * dim * sizeof(float));
    if (!c || !v)
        die("out of memory for %zu x %u", n, dim);
    for (size_t i = 0; i < clusters * dim; i++)
        c[i] = rng_gauss();
    for (size_t i = 0; i < n; i++) {
        size_t k = rng_next() % clusters;
        for (uint32_t j = 0; j < dim; j++)
            v[i * dim + j] = c[k * dim + j] + 0.8f * rng_gauss();
    }
    free(c);
    return v;
}

static bool close_d(float a, float b) { return fabsf(a - b) <= 1e-4f * fmaxf(1.0f, fabsf(b)); }

/* ---- checks ---- */

static void check_knn(const gpu_dev_t *d, const float *base, size_t nb, const float *q, size_t nq, uint32_t dim,
                      qv_gpu_metric_t metric, double frac, const char *name)
{
    const uint32_t k = 10;
    uint64_t *allowed = NULL;
    if (frac < 1.0) {
        allowed = calloc(qv_bm_words(nb), sizeof(uint64_t));
        rng_state = 99;
        for (size_t r = 0; r < nb; r++)
            if (rng_unit() < frac)
                qv_bm_set(allowed, r);
    }
    qv_hnsw_params_t hp = {.metric = metric == QV_GPU_IP ? QV_HNSW_IP : QV_HNSW_L2};
    qv_hnsw_t *h;
    if (qv_hnsw_create(&hp, base, nb, dim, 0, NULL, &h))
        die("hnsw create");
    qv_cand_t *cpu = malloc(nq * k * sizeof(qv_cand_t)), *gpu = malloc(nq * k * sizeof(qv_cand_t));
    qv_cand_t *small = malloc(nq * k * sizeof(qv_cand_t));
    size_t *ncpu = malloc(nq * sizeof(size_t));
    double t0 = now();
    for (size_t i = 0; i < nq; i++)
        qv_hnsw_search_exact(h, q + i * dim, k, allowed, cpu + i * k, &ncpu[i]);
    double cpu_s = now() - t0;
    qv_gpu_knn_params_t p = {.metric = metric, .k = k, .allowed = allowed};
    qv_err_t err;
    qv_err_clear(&err);
    t0 = now();
    int rc = d->api->knn(d->g, &p, q, nq, base, nb, dim, gpu, &err);
    double gpu_s = now() - t0;
    if (rc) {
        report(name, false, 0, 0, "knn failed: %s", err.msg);
        goto out;
    }
    p.mem_limit = (size_t)8 << 20;  /* forces base chunks and query batches */
    rc = d->api->knn(d->g, &p, q, nq, base, nb, dim, small, &err);
    size_t bad_d = 0, bad_id = 0, same_small = 0;
    double worst = 0;
    for (size_t i = 0; i < nq; i++) {
        for (size_t r = 0; r < k; r++) {
            const qv_cand_t *c = cpu + i * k + r, *g = gpu + i * k + r;
            if (r >= ncpu[i]) {
                bad_id += g->ref != QV_GPU_NO_ROW;
                continue;
            }
            double rel = fabs((double)g->dist - c->dist) / fmax(1.0, fabs(c->dist));
            worst = fmax(worst, rel);
            bad_d += !close_d(g->dist, c->dist);
            if (g->ref != c->ref) {  /* allowed only for an eligible row exactly as near (a tie within tolerance) */
                bool ok = g->ref < nb && (!allowed || qv_bm_get(allowed, g->ref));
                if (ok) {
                    const float *row = base + g->ref * dim, *qq = q + i * dim;
                    float truth = metric == QV_GPU_IP ? -qv_dot_ref(qq, row, dim) : qv_l2sq_ref(qq, row, dim);
                    ok = close_d(truth, c->dist);
                }
                bad_id += !ok;
            }
        }
    }
    for (size_t i = 0; rc == QV_OK && i < nq * k; i++)
        same_small += gpu[i].ref == small[i].ref && gpu[i].dist == small[i].dist;
    report(name, bad_d == 0 && bad_id == 0 && rc == QV_OK && same_small == nq * k, gpu_s, cpu_s,
           "%zu queries x %zu rows x %u dims: max rel dist diff %.2g (tol 1e-4), %zu id mismatches beyond ties, "
           "batched run %s", nq, nb, dim, worst, bad_id, rc ? err.msg : same_small == nq * k ? "identical" : "DIFFERS");
out:
    qv_hnsw_free(h);
    free(cpu);
    free(gpu);
    free(small);
    free(ncpu);
    free(allowed);
}

static void check_kmeans(const gpu_dev_t *d)
{
    const size_t n = 16384;
    const uint32_t dim = 8, k = 256;
    float *x = clustered(n, dim, 50, 5);
    float *cc = malloc(k * dim * sizeof(float)), *gc = malloc(k * dim * sizeof(float));
    qv_kmeans_params_t kp = {.iters = 25, .seed = 11};
    qv_kmeans_stats_t ks;
    double t0 = now();
    qv_kmeans(x, n, dim, k, &kp, cc, &ks);
    double cpu_s = now() - t0;
    qv_gpu_kmeans_params_t gp = {.k = k, .iters = 25, .seed = 11};
    qv_gpu_kmeans_stats_t gs;
    qv_err_t err;
    t0 = now();
    int rc = d->api->kmeans(d->g, &gp, x, n, dim, gc, NULL, &gs, &err);
    double gpu_s = now() - t0;
    if (rc) {
        report("kmeans", false, 0, 0, "failed: %s", err.msg);
    } else {
        size_t close = 0;
        for (uint32_t c = 0; c < k; c++) {
            bool ok = true;
            for (uint32_t j = 0; j < dim; j++)
                ok &= fabsf(cc[c * dim + j] - gc[c * dim + j]) <= 1e-3f * fmaxf(1.0f, fabsf(cc[c * dim + j]));
            close += ok;
        }
        double rel = fabs(gs.objective - ks.objective) / ks.objective;
        report("kmeans", rel <= 0.01 && close >= k * 9 / 10, gpu_s, cpu_s,
               "%zu x %u, k=%u: objective %.6g vs %.6g (rel %.2g, tol 1e-2), %zu/%u centroids within 1e-3 (tol 90%%), "
               "iterations %u vs %u", n, dim, k, gs.objective, ks.objective, rel, close, k, gs.iters, ks.iters);
    }
    free(x);
    free(cc);
    free(gc);
}

static double recon_error(const qv_quant_t *q, const float *x, size_t n, uint32_t dim)
{
    float *r = malloc(dim * sizeof(float));
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        qv_quant_decode(q, qv_quant_code(q, i), r);
        for (uint32_t j = 0; j < dim; j++)
            e += ((double)x[i * dim + j] - r[j]) * ((double)x[i * dim + j] - r[j]);
    }
    free(r);
    return e / (double)n;
}

static void check_quant(const gpu_dev_t *d, size_t n, uint32_t dim)
{
    float *x = clustered(n, dim, 100, 7);
    qv_err_t err;
    /* SQ8: exact */
    qv_quant_params_t qp = {.kind = QV_QUANT_SQ8, .metric = QV_QUANT_L2};
    qv_quant_t *cq;
    double t0 = now();
    if (qv_quant_train(&qp, x, n, dim, 0, NULL, NULL, &err, &cq))
        die("sq8 train: %s", err.msg);
    double cpu_s = now() - t0;
    float *vmin = malloc(dim * sizeof(float)), *scale = malloc(dim * sizeof(float));
    uint8_t *codes = malloc(n * dim);
    t0 = now();
    int rc = d->api->sq8_encode(d->g, x, n, dim, vmin, scale, codes, &err);
    double gpu_s = now() - t0;
    if (rc) {
        report("sq8", false, 0, 0, "failed: %s", err.msg);
    } else {
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += memcmp(codes + i * dim, qv_quant_code(cq, i), dim) != 0;
        qv_wbuf_t a, b;
        qv_wbuf_init(&a);
        qv_wbuf_init(&b);
        qv_quant_encode_blob(cq, &a);
        qv_kblob_sq8(0, dim, n, vmin, scale, codes, &b);
        bool same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
        report("sq8", diff == 0 && same, gpu_s, cpu_s, "%zu x %u: %zu rows with a different code (tol 0), blob %s",
               n, dim, diff, same ? "byte-identical" : "DIFFERS");
        qv_wbuf_free(&a);
        qv_wbuf_free(&b);
    }
    qv_quant_free(cq);
    free(codes);

    /* PQ: encoding with the CPU's codebooks, then a GPU-trained quantiser */
    qv_quant_params_t pp = {.kind = QV_QUANT_PQ, .metric = QV_QUANT_L2, .seed = 3};
    t0 = now();
    if (qv_quant_train(&pp, x, n, dim, 0, NULL, NULL, &err, &cq))
        die("pq train: %s", err.msg);
    cpu_s = now() - t0;
    uint32_t m = qv_quant_m(cq), dsub = dim / m;
    float *book = malloc((size_t)dim * 256 * sizeof(float));
    uint8_t code[4096];
    float rec[4096];
    for (uint32_t c = 0; c < 256; c++) {  /* the codebooks back out of the CPU quantiser via decode */
        memset(code, (int)c, sizeof code);
        qv_quant_decode(cq, code, rec);
        for (uint32_t j = 0; j < m; j++)
            memcpy(book + ((size_t)j * 256 + c) * dsub, rec + (size_t)j * dsub, dsub * sizeof(float));
    }
    uint8_t *pc = malloc(n * m);
    rc = d->api->pq_encode(d->g, book, m, x, n, dim, pc, &err);
    size_t same = 0;
    for (size_t i = 0; rc == QV_OK && i < n; i++)
        for (uint32_t j = 0; j < m; j++)
            same += pc[i * m + j] == qv_quant_code(cq, i)[j];
    report("pq.encode", rc == QV_OK && same * 1000 >= n * m * 999, 0, 0,
           "%zu x %u, m=%u, the CPU's codebooks: %.4f%% sub-codes identical (tol 99.9%%)%s%s", n, dim, m,
           rc ? 0.0 : 100.0 * (double)same / ((double)n * m), rc ? ": " : "", rc ? err.msg : "");
    qv_gpu_quant_params_t gp = {.kind = QV_GPU_QUANT_PQ, .metric = QV_GPU_L2, .seed = 3};
    uint8_t *blob = NULL;
    size_t len = 0;
    t0 = now();
    rc = d->api->quant_build(d->g, &gp, x, n, dim, &blob, &len, &err);
    gpu_s = now() - t0;
    qv_quant_t *gq = NULL;
    if (rc == QV_OK)
        rc = qv_quant_decode_blob(blob, len, n, dim, &err, &gq);
    if (rc) {
        report("pq.train", false, 0, 0, "failed: %s", err.msg);
    } else {
        double ec = recon_error(cq, x, n, dim), eg = recon_error(gq, x, n, dim);
        report("pq.train", eg <= ec * 1.02, gpu_s, cpu_s,
               "%zu x %u, m=%u: blob loads; reconstruction error %.5g vs CPU %.5g (tol +2%%)", n, dim, m, eg, ec);
    }
    if (blob)
        d->api->free_blob(blob);
    qv_quant_free(gq);
    qv_quant_free(cq);
    free(book);
    free(pc);
    free(vmin);
    free(scale);
    free(x);
}

static double graph_recall(const qv_hnsw_t *h, const float *q, size_t nq, uint32_t dim)
{
    size_t hit = 0, tot = 0;
    qv_hnsw_search_params_t sp = {.ef = 64, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    for (size_t i = 0; i < nq; i++) {
        qv_cand_t got[10], want[10];
        size_t ng, nw;
        qv_hnsw_search(h, q + i * dim, 10, &sp, got, &ng, NULL);
        qv_hnsw_search_exact(h, q + i * dim, 10, NULL, want, &nw);
        for (size_t a = 0; a < ng; a++)
            for (size_t b = 0; b < nw; b++)
                if (got[a].ref == want[b].ref) {
                    hit++;
                    break;
                }
        tot += nw;
    }
    return tot ? (double)hit / (double)tot : 1.0;
}

static void check_graph(const gpu_dev_t *d, const float *base, size_t n, const float *q, size_t nq, uint32_t dim)
{
    qv_hnsw_params_t hp = {.metric = QV_HNSW_L2, .M = 16, .ef_construction = 200, .seed = 42};
    qv_hnsw_t *cpu;
    if (qv_hnsw_create(&hp, base, n, dim, 0, NULL, &cpu))
        die("hnsw create");
    qv_pool_t *pool = threads > 1 ? qv_pool_create(threads - 1) : NULL;
    double t0 = now();
    qv_hnsw_build(cpu, pool);
    double cpu_s = now() - t0;
    qv_pool_destroy(pool);
    qv_gpu_graph_params_t gp = {.metric = QV_GPU_L2, .M = 16, .ef_construction = 200, .seed = 42};
    uint8_t *blob = NULL;
    size_t len = 0;
    qv_gpu_graph_stats_t st;
    qv_err_t err;
    qv_err_clear(&err);
    t0 = now();
    int rc = d->api->graph_build(d->g, &gp, base, n, dim, &blob, &len, &st, &err);
    double gpu_s = now() - t0;
    qv_hnsw_t *gh = NULL;
    qv_hnsw_report_t rep = {0};
    if (rc == QV_OK && (rc = qv_hnsw_decode(blob, len, base, n, dim, 0, &err, &gh)) == QV_OK)
        rc = qv_hnsw_validate(gh, &rep, &err);
    if (rc) {
        report("graph", false, 0, 0, "failed: %s", err.msg);
    } else {
        double rc_ = graph_recall(cpu, q, nq, dim), rg = graph_recall(gh, q, nq, dim);
        report("graph", rg >= rc_ - 0.02, gpu_s, cpu_s,
               "%zu x %u, M=16: recall@10 ef=64 %.4f vs CPU HNSW %.4f (tol -0.02), %zu unreachable; CPU on %d "
               "threads", n, dim, rg, rc_, rep.unreachable, threads);
    }
    if (blob)
        d->api->free_blob(blob);
    qv_hnsw_free(gh);
    qv_hnsw_free(cpu);
}

static void check_embed(const gpu_dev_t *d, const char *dir)
{
    qv_embed_model_t *m;
    qv_err_t err;
    qv_embed_opts_t eo = {.threads = threads};
    if (qv_embed_model_load_opts(dir, &eo, &m, &err) != QV_OK) {
        report("embed", false, 0, 0, "model: %s", err.msg);
        return;
    }
    qv_gpu_model_t *gm = NULL;
    int lrc = d->api->embed_load(d->g, qv_embed_weights(m), &gm, &err);
    if (lrc == QV_EPRECOND) {
        printf("%-14s SKIP  %s\n", "embed", err.msg);
        qv_embed_model_free(m);
        return;
    }
    if (lrc != QV_OK) {
        report("embed", false, 0, 0, "embed_load: %s", err.msg);
        qv_embed_model_free(m);
        return;
    }
    /* 512 sequences of 3..128 tokens ([CLS] ... [SEP]) drawn from the vocabulary's ordinary words */
    const size_t n = 512;
    const uint32_t h = qv_embed_dim(m), vocab = qv_embed_weights(m)->vocab;
    qv_embed_seq_t *seqs = malloc(n * sizeof *seqs);
    int32_t *ids = malloc(n * 128 * sizeof(int32_t));
    rng_state = 17;
    for (size_t i = 0; i < n; i++) {
        uint32_t len = 3 + (uint32_t)(rng_next() % 126);
        int32_t *s = ids + i * 128;
        s[0] = 101;
        for (uint32_t p = 1; p + 1 < len; p++)
            s[p] = 1996 + (int32_t)(rng_next() % (vocab - 1996));
        s[len - 1] = 102;
        seqs[i] = (qv_embed_seq_t){.ids = s, .len = len};
    }
    float *cpu = malloc(n * h * sizeof(float)), *gpu = malloc(n * h * sizeof(float));
    double t0 = now();
    int rc = qv_embed_seqs(m, seqs, n, cpu, &err);
    double cpu_s = now() - t0;
    if (rc == QV_OK)
        rc = d->api->embed_seqs(gm, seqs, n, gpu, &err);  /* warm-up (cuBLAS heuristics, first launches) */
    t0 = now();
    if (rc == QV_OK)
        rc = d->api->embed_seqs(gm, seqs, n, gpu, &err);
    double gpu_s = now() - t0;
    if (rc) {
        report("embed", false, 0, 0, "failed: %s", err.msg);
    } else {
        double min_cos = 1, max_diff = 0;
        for (size_t i = 0; i < n; i++) {
            double dot = 0, na = 0, nb = 0;
            for (uint32_t j = 0; j < h; j++) {
                dot += (double)cpu[i * h + j] * gpu[i * h + j];
                na += (double)cpu[i * h + j] * cpu[i * h + j];
                nb += (double)gpu[i * h + j] * gpu[i * h + j];
                max_diff = fmax(max_diff, fabs((double)cpu[i * h + j] - gpu[i * h + j]));
            }
            min_cos = fmin(min_cos, dot / sqrt(na * nb));
        }
        report("embed", min_cos >= 0.9999 && max_diff <= 1e-3, gpu_s, cpu_s,
               "%zu sequences of 3..128 tokens: min cosine %.6f (tol 0.9999), max |diff| %.2g (tol 1e-3); "
               "%.0f vs %.0f sequences/s (CPU on %d threads)", n, min_cos, max_diff, n / gpu_s, n / cpu_s, threads);
    }
    d->api->embed_free(gm);
    qv_embed_model_free(m);
    free(seqs);
    free(ids);
    free(cpu);
    free(gpu);
}

/* ---- commands ---- */

static void usage(void)
{
    fprintf(stderr, "usage: quiver-gpu-check [--cpu-reference] probe\n"
                    "       quiver-gpu-check [--cpu-reference] compare [--n N] [--dim D] [--model DIR] [--threads T]\n"
                    "       quiver-gpu-check [--cpu-reference] graph --base B --metric l2|ip|cosine [--M 16] "
                    "[--efc 200] [--seed S] --out FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bool reference = false;
    size_t n = 20000;
    uint32_t dim = 128, M = 16, efc = 200;
    uint64_t seed = 42;
    const char *model = NULL, *base_path = NULL, *metric = "l2", *out_path = NULL;
    static const struct option opts[] = {
        {"cpu-reference", no_argument, 0, 'R'}, {"n", required_argument, 0, 'n'},
        {"dim", required_argument, 0, 'd'},     {"model", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'}, {"base", required_argument, 0, 'b'},
        {"metric", required_argument, 0, 'k'},  {"M", required_argument, 0, 'M'},
        {"efc", required_argument, 0, 'e'},     {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},     {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 'R': reference = true; break;
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'd': dim = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': model = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'b': base_path = optarg; break;
        case 'k': metric = optarg; break;
        case 'M': M = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'e': efc = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'o': out_path = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc)
        usage();
    const char *cmd = argv[optind];
    optind++;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {  /* options after the command */
        switch (o) {
        case 'R': reference = true; break;
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'd': dim = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': model = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'b': base_path = optarg; break;
        case 'k': metric = optarg; break;
        case 'M': M = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'e': efc = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'o': out_path = optarg; break;
        default: usage();
        }
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 100 || dim == 0 || dim > 4096)
        die("--n must be >= 100 and --dim in 1..4096");
    qv_dist_init(QV_SIMD_AUTO);
    gpu_dev_t d;
    char why[600];
    if (open_device(reference, &d, why, sizeof why) != 0) {
        printf("no usable GPU: %s\n", why);
        return 3;
    }
    qv_gpu_info_t info;
    qv_err_t err;
    if (d.api->device_info(d.g, &info, &err) != QV_OK)
        die("device_info: %s", err.msg);
    printf("device: %s (cc %d.%d, %d SMs, %zu/%zu MiB free, driver %d, runtime %d); plugin: %s\n", info.name,
           info.cc_major, info.cc_minor, info.sm_count, info.mem_free >> 20, info.mem_total >> 20,
           info.driver_version, info.runtime_version, d.api->build);
    if (strcmp(cmd, "probe") == 0) {
        /* nothing more */
    } else if (strcmp(cmd, "compare") == 0) {
        const size_t nq = 500;
        float *base = clustered(n + nq, dim, 100, 1), *q = base + n * dim;
        check_knn(&d, base, n, q, nq, dim, QV_GPU_L2, 1.0, "knn.l2");
        check_knn(&d, base, n, q, nq, dim, QV_GPU_L2, 0.1, "knn.l2.filter");
        float *nbase = malloc((n + nq) * dim * sizeof(float));
        memcpy(nbase, base, (n + nq) * dim * sizeof(float));
        for (size_t i = 0; i < n + nq; i++)
            qv_normalize(nbase + i * dim, dim);
        check_knn(&d, nbase, n, nbase + n * dim, nq, dim, QV_GPU_IP, 1.0, "knn.ip");
        free(nbase);
        check_kmeans(&d);
        check_quant(&d, n, dim);
        check_graph(&d, base, n, q, nq, dim);
        if (model)
            check_embed(&d, model);
        else
            printf("%-14s SKIP  no --model DIR\n", "embed");
        free(base);
        printf("%s\n", failures ? "gpu_check: FAILED" : "gpu_check: all comparisons passed");
    } else if (strcmp(cmd, "graph") == 0) {
        if (!base_path || !out_path)
            usage();
        vec_f32_t b;
        char verr[256];
        if (vec_read_f32(base_path, &b, verr, sizeof verr))
            die("%s", verr);
        qv_gpu_metric_t gm = QV_GPU_L2;
        if (strcmp(metric, "ip") == 0 || strcmp(metric, "cosine") == 0)
            gm = QV_GPU_IP;
        if (strcmp(metric, "cosine") == 0)
            for (size_t i = 0; i < b.n; i++)
                qv_normalize(b.data + i * b.dim, b.dim);
        qv_gpu_graph_params_t gp = {.metric = gm, .M = M, .ef_construction = efc, .seed = seed};
        uint8_t *blob;
        size_t len;
        qv_gpu_graph_stats_t st;
        double t0 = now();
        if (d.api->graph_build(d.g, &gp, b.data, b.n, b.dim, &blob, &len, &st, &err) != QV_OK)
            die("graph build: %s", err.msg);
        double s = now() - t0;
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(blob, 1, len, f) != len || fclose(f) != 0)
            die("%s: cannot write", out_path);
        d.api->free_blob(blob);
        printf("gpu graph build: %zu x %u in %.3f s (layer 0: k-NN %.3f s, pruning %.3f s; upper layers %.3f s), "
               "%zu bytes -> %s\n", b.n, b.dim, s, st.knn_ms / 1e3, st.prune_ms / 1e3, st.upper_ms / 1e3, len,
               out_path);
        printf("build_seconds=%.6f\n", s);
        free(b.data);
    } else {
        usage();
    }
    qv_gpu_unload(d.plugin);
    return failures ? 1 : 0;
}
