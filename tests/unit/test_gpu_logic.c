/* The GPU plugin's logic, run on the CPU: every kernel's per-thread or per-row step (kernels/cuda/<kernel>.cuh,
 * compiled here as plain C) against Quiver's CPU references, and the CPU implementations of the same algorithms
 * (kernels/cpu/) against the CPU index:
 *
 *   distance    tile accumulation vs qv_l2sq_ref / qv_dot_ref on odd dimensions; the per-lane sorted list vs
 *               qv_topk with ties; the k-NN (lanes, merge, chunks forced by a memory limit, filters, exclude-self,
 *               k > n, NaN rows, duplicate rows) vs a qv_topk scan; the batch planner's bounds
 *   k-means     the device's steps vs qv_kmeans for the same seed (same centroids, iterations, objective); ties
 *   quantisers  SQ8 codes and ranges bit-identical to qv_quant_train's; PQ codebooks and codes vs qv_quant_train's;
 *               both blobs loaded by qv_quant_decode_blob
 *   graph       rank-pruning helpers on hand-made lists; the CPU graph build's blob loaded by qv_hnsw_decode,
 *               validated, and its recall@10 at ef=64 within 0.02 of a CPU-built HNSW graph (5k x 32, L2 and IP);
 *               nested quantiser; n = 0..3; deterministic bytes
 *   embedding   GELU, LayerNorm (warp-simulated), masked softmax and pooling vs query/embed's generic kernels; the
 *               padded, masked attention of the device vs per-sequence attention
 *
 * NaN vectors are refused at the API (server/convert.c), so NaN inputs only check that the kernels do not return
 * such a row or crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "vecdata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/quant/quant.h"
#include "index/topk.h"
#include "kernels/cpu/kcpu.h"
#include "kernels/cuda/distance.cuh"
#include "kernels/cuda/embed.cuh"
#include "kernels/cuda/graph.cuh"
#include "kernels/cuda/kmeans.cuh"
#include "kernels/cuda/quant.cuh"
#include "kernels/gpu.h"
#include "query/embed/embed_int.h"



static float *random_vectors(size_t n, size_t dim, uint64_t seed)
{
    rng_state = seed;
    float *v = malloc((n ? n : 1) * dim * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n * dim; i++)
        v[i] = rng_gauss();
    return v;
}


static int close_rel(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fmax(1.0, fmax(fabs(a), fabs(b)));
}

/* ================================================================================================================
 * distance + top-k
 * ============================================================================================================= */

static void test_accum_odd_dims(void **state)
{
    (void)state;
    static const uint32_t dims[] = {1, 2, 3, 7, 31, 32, 33, 63, 100, 129, 384, 1000};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        uint32_t dim = dims[t];
        float *a = random_vectors(1, dim, 11 + t), *b = random_vectors(1, dim, 101 + t);
        float l2 = qv_k_dist(a, b, dim, QV_K_L2), ip = qv_k_dist(a, b, dim, QV_K_IP);
        assert_true(close_rel(l2, qv_l2sq_ref(a, b, dim), 1e-5));
        assert_true(close_rel(ip, -qv_dot_ref(a, b, dim), 1e-5));
        /* the kernel's slicing of the dimensions into QV_K_TILE_DIMS tiles gives the same sum */
        float acc = 0.0f;
        for (uint32_t d0 = 0; d0 < dim; d0 += QV_K_TILE_DIMS)
            acc = qv_k_accum(acc, a + d0, b + d0, dim - d0 < QV_K_TILE_DIMS ? dim - d0 : QV_K_TILE_DIMS, QV_K_L2);
        assert_true(acc == qv_k_accum(0.0f, a, b, dim, QV_K_L2));
        free(a);
        free(b);
    }
}

static void test_list_offer_vs_topk(void **state)
{
    (void)state;
    static const uint32_t ks[] = {1, 2, 5, 32, 100};
    rng_state = 5;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        uint32_t k = ks[t];
        qv_topk_t ref;
        assert_int_equal(qv_topk_init(&ref, k), QV_OK);
        float d[100];
        uint32_t id[100], cnt = 0;
        for (uint32_t i = 0; i < 500; i++) {
            float dist = (float)(rng_next() % 50);  /* many ties: the order must fall back on the id */
            uint32_t row = (uint32_t)(rng_next() % 100000);
            if (i % 7 == 0)
                row = i;  /* distinct ids mostly; topk breaks ties on ref the same way */
            qv_k_list_offer(d, id, 1, &cnt, k, dist, row);
            qv_topk_push(&ref, dist, row);
        }
        qv_cand_t want[100];
        size_t nw = qv_topk_drain_sorted(&ref, want);
        assert_int_equal(cnt, nw);
        for (uint32_t i = 0; i < cnt; i++) {
            assert_true(d[i] == want[i].dist);
            assert_int_equal(id[i], want[i].ref);
        }
        qv_topk_free(&ref);
    }
    /* NaN is refused, k = 0 holds nothing */
    float d[2];
    uint32_t id[2], cnt = 0;
    assert_int_equal(qv_k_list_offer(d, id, 1, &cnt, 2, NAN, 1), 0);
    assert_int_equal(qv_k_list_offer(d, id, 1, &cnt, 0, 1.0f, 1), 0);
    assert_int_equal(cnt, 0);
}

static void test_merge_sorted(void **state)
{
    (void)state;
    float ad[4] = {1, 3, 5, INFINITY}, bd[4] = {2, 3, 4, 6}, od[5];
    uint32_t ai[4] = {10, 30, 50, QV_K_NONE}, bi[4] = {20, 29, 40, 60}, oi[5];
    assert_int_equal(qv_k_merge_sorted(ad, ai, 4, bd, bi, 4, 5, od, oi), 5);
    uint32_t want[5] = {10, 20, 29, 30, 40};
    for (int i = 0; i < 5; i++)
        assert_int_equal(oi[i], want[i]);
    /* both short: padded with sentinels */
    assert_int_equal(qv_k_merge_sorted(ad, ai, 1, bd, bi, 0, 3, od, oi), 1);
    assert_int_equal(oi[1], QV_K_NONE);
    assert_true(isinf(od[2]));
}

static void test_knn_plan(void **state)
{
    (void)state;
    qv_k_knn_plan_t p;
    /* everything fits */
    assert_int_equal(qv_k_knn_plan((size_t)1 << 30, 1000, 100000, 128, 10, &p), 0);
    assert_int_equal(p.bchunk, 100000);
    assert_int_equal(p.qbatch, 1000);
    assert_true(p.bytes <= (size_t)1 << 30);
    /* base larger than the budget: chunks of whole tiles, batches of whole blocks, within the budget */
    size_t budget = 4u << 20;
    assert_int_equal(qv_k_knn_plan(budget, 100000, 1000000, 128, 64, &p), 0);
    assert_true(p.bchunk < 1000000 && p.bchunk % QV_K_TILE_ROWS == 0);
    assert_true(p.qbatch < 100000 && p.qbatch % QV_K_KNN_WARPS == 0);
    assert_true(p.bytes <= budget);
    /* too small for one batch */
    assert_int_equal(qv_k_knn_plan(1000, 10, 1000, 128, 64, &p), -1);
    assert_int_equal(qv_k_knn_plan((size_t)1 << 30, 0, 10, 4, 1, &p), -1);
}

/* The exact answer with qv_topk over the allowed rows (the reference for the k-NN). */
static void knn_reference(const float *q, const float *base, size_t nb, uint32_t dim, int metric, uint32_t k,
                          const uint64_t *allowed, size_t self, qv_cand_t *out, size_t *nout)
{
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, k), QV_OK);
    for (size_t r = 0; r < nb; r++) {
        if (r == self || (allowed && !qv_bm_get(allowed, r)))
            continue;
        float d = qv_k_dist(q, base + r * dim, dim, metric);
        if (d != d)
            continue;
        qv_topk_push(&t, d, r);
    }
    *nout = qv_topk_drain_sorted(&t, out);
    qv_topk_free(&t);
}

static void check_knn(const qv_gpu_knn_params_t *p, const float *q, size_t nq, const float *base, size_t nb,
                      uint32_t dim)
{
    qv_cand_t *got = malloc(nq * p->k * sizeof(qv_cand_t)), *want = malloc(p->k * sizeof(qv_cand_t));
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_kcpu_knn(p, q, nq, base, nb, dim, got, &err);
    if (rc)
        fail_msg("knn: %s", err.msg);
    for (size_t i = 0; i < nq; i++) {
        size_t nw;
        knn_reference(q + i * dim, base, nb, dim, (int)p->metric, p->k, p->allowed,
                      p->exclude_self ? p->self_row0 + i : SIZE_MAX, want, &nw);
        for (size_t r = 0; r < p->k; r++) {
            const qv_cand_t *g = got + i * p->k + r;
            if (r < nw) {
                assert_int_equal(g->ref, want[r].ref);
                assert_true(g->dist == want[r].dist);
            } else {
                assert_true(g->ref == QV_GPU_NO_ROW);
                assert_true(isinf(g->dist));
            }
        }
    }
    free(got);
    free(want);
}

static void test_knn_exact(void **state)
{
    (void)state;
    const uint32_t dim = 37;
    const size_t nb = 1000, nq = 40;
    float *base = random_vectors(nb, dim, 21), *q = random_vectors(nq, dim, 22);
    for (int metric = 0; metric <= 1; metric++) {
        qv_gpu_knn_params_t p = {.metric = (qv_gpu_metric_t)metric, .k = 10};
        check_knn(&p, q, nq, base, nb, dim);
        p.k = 1;
        check_knn(&p, q, nq, base, nb, dim);
        p.k = 100;
        check_knn(&p, q, nq, base, nb, dim);
    }
    /* a filter of about a third of the rows, and one that allows only 3 (k > allowed: padded) */
    uint64_t allowed[16] = {0};
    rng_state = 9;
    for (size_t r = 0; r < nb; r++)
        if (rng_next() % 3 == 0)
            qv_bm_set(allowed, r);
    qv_gpu_knn_params_t p = {.metric = QV_GPU_L2, .k = 10, .allowed = allowed};
    check_knn(&p, q, nq, base, nb, dim);
    memset(allowed, 0, sizeof allowed);
    qv_bm_set(allowed, 5);
    qv_bm_set(allowed, 500);
    qv_bm_set(allowed, 999);
    check_knn(&p, q, nq, base, nb, dim);
    /* k > n */
    p.allowed = NULL;
    p.k = 50;
    check_knn(&p, q, nq, base, 7, dim);
    /* exclude self (the k-NN graph) */
    qv_gpu_knn_params_t ps = {.metric = QV_GPU_L2, .k = 16, .exclude_self = 1, .self_row0 = 100};
    check_knn(&ps, base + 100 * dim, 50, base, nb, dim);
    free(base);
    free(q);
}

static void test_knn_batched_equals_one_pass(void **state)
{
    (void)state;
    const uint32_t dim = 33, k = 20;
    const size_t nb = 3000, nq = 100;
    float *base = random_vectors(nb, dim, 31), *q = random_vectors(nq, dim, 32);
    qv_gpu_knn_params_t p = {.metric = QV_GPU_IP, .k = k};
    qv_cand_t *one = malloc(nq * k * sizeof(qv_cand_t)), *many = malloc(nq * k * sizeof(qv_cand_t));
    assert_int_equal(qv_kcpu_knn(&p, q, nq, base, nb, dim, one, NULL), QV_OK);
    /* a budget that forces several base chunks and query batches */
    p.mem_limit = 200 * 1024;
    qv_k_knn_plan_t plan;
    assert_int_equal(qv_k_knn_plan(p.mem_limit, nq, nb, dim, k, &plan), 0);
    assert_true(plan.bchunk < nb && plan.qbatch < nq);
    assert_int_equal(qv_kcpu_knn(&p, q, nq, base, nb, dim, many, NULL), QV_OK);
    for (size_t i = 0; i < nq * k; i++) {
        assert_int_equal(one[i].ref, many[i].ref);
        assert_true(one[i].dist == many[i].dist);
    }
    check_knn(&p, q, nq, base, nb, dim);
    /* a budget too small for one batch is QV_ENOMEM with a message, not a crash */
    qv_err_t err;
    qv_err_clear(&err);
    p.mem_limit = 1000;
    assert_int_equal(qv_kcpu_knn(&p, q, nq, base, nb, dim, many, &err), QV_ENOMEM);
    assert_true(strlen(err.msg) > 0);
    free(one);
    free(many);
    free(base);
    free(q);
}

static void test_knn_ties_nan_and_bad_args(void **state)
{
    (void)state;
    const uint32_t dim = 5;
    const size_t nb = 200;
    float *base = random_vectors(nb, dim, 41), *q = random_vectors(3, dim, 42);
    for (size_t r = 100; r < 140; r++)  /* 40 copies of row 7: equal distances, the order is by row */
        memcpy(base + r * dim, base + 7 * dim, dim * sizeof(float));
    memcpy(q, base + 7 * dim, dim * sizeof(float));  /* query 0 sits on them */
    base[50 * dim + 2] = NAN;                         /* a NaN row is never returned */
    qv_gpu_knn_params_t p = {.metric = QV_GPU_L2, .k = 30};
    check_knn(&p, q, 3, base, nb, dim);
    qv_cand_t out[30];
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, nb, dim, out, NULL), QV_OK);
    assert_int_equal(out[0].ref, 7);
    assert_int_equal(out[1].ref, 100);
    assert_int_equal(out[29].ref, 128);
    for (int i = 0; i < 30; i++)
        assert_true(out[i].ref != 50);
    p.metric = QV_GPU_IP;
    check_knn(&p, q, 3, base, nb, dim);
    /* bad arguments */
    qv_err_t err;
    p.k = 0;
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, nb, dim, out, &err), QV_EINVAL);
    p.k = QV_GPU_MAX_K + 1;
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, nb, dim, out, &err), QV_EINVAL);
    p.k = 3;
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, nb, 0, out, &err), QV_EINVAL);
    p.metric = (qv_gpu_metric_t)7;
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, nb, dim, out, &err), QV_EINVAL);
    p.metric = QV_GPU_L2;
    p.exclude_self = 1;
    p.self_row0 = nb - 1;
    assert_int_equal(qv_kcpu_knn(&p, q, 2, base, nb, dim, out, &err), QV_EINVAL);
    /* nb = 0: all slots empty */
    p.exclude_self = 0;
    assert_int_equal(qv_kcpu_knn(&p, q, 1, base, 0, dim, out, NULL), QV_OK);
    assert_true(out[0].ref == QV_GPU_NO_ROW && out[2].ref == QV_GPU_NO_ROW);
    free(base);
    free(q);
}

/* ================================================================================================================
 * k-means and quantisers
 * ============================================================================================================= */

static void test_nearest_ties(void **state)
{
    (void)state;
    float cent[3 * 2] = {1, 0, -1, 0, 0, 5};
    float x[2] = {0, 0}, bd;
    assert_int_equal(qv_k_nearest(x, cent, 3, 2, &bd), 0);  /* equidistant from 0 and 1: the lower */
    assert_true(bd == 1.0f);
    float y[2] = {-2, 0};
    assert_int_equal(qv_k_nearest(y, cent, 3, 2, &bd), 1);
}

static void test_kmeans_vs_cpu(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        uint32_t d, k;
    } cases[] = {{2000, 8, 64}, {3000, 3, 256}, {500, 17, 16}, {100, 4, 256}, {256, 2, 256}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        size_t n = cases[t].n;
        uint32_t d = cases[t].d, k = cases[t].k;
        float *x = clustered(n, d, 10, 300 + t);
        float *ca = malloc((size_t)k * d * sizeof(float)), *cb = malloc((size_t)k * d * sizeof(float));
        double obj[26];
        qv_kmeans_params_t kp = {.iters = 25, .seed = 77 + t, .objective = obj};
        qv_kmeans_stats_t ks;
        assert_int_equal(qv_kmeans(x, n, d, k, &kp, ca, &ks), QV_OK);
        qv_gpu_kmeans_params_t gp = {.k = k, .iters = 25, .seed = 77 + t};
        qv_gpu_kmeans_stats_t gs;
        uint32_t *assign = malloc(n * sizeof(uint32_t));
        assert_int_equal(qv_kcpu_kmeans(&gp, x, n, d, cb, assign, &gs, NULL), QV_OK);
        for (size_t i = 0; i < (size_t)k * d; i++)
            if (!close_rel(ca[i], cb[i], 1e-5))
                fail_msg("case %zu: centroid float %zu: %.9g vs %.9g (iters %u/%u)", t, i, ca[i], cb[i], ks.iters,
                         gs.iters);
        if (n > k) {
            assert_int_equal(gs.iters, ks.iters);
            assert_int_equal(gs.empty_splits, ks.empty_splits);
            assert_true(close_rel(gs.objective, ks.objective, 1e-6));
        }
        for (size_t i = 0; i < n; i++) {  /* the assignment is the nearest centroid */
            float bd;
            assert_int_equal(assign[i], qv_k_nearest(x + i * d, cb, k, d, &bd));
        }
        free(x);
        free(ca);
        free(cb);
        free(assign);
    }
    /* duplicates: fewer distinct points than centroids (empty clusters, no split possible) */
    float dup[40 * 2];
    for (int i = 0; i < 40; i++) {
        dup[2 * i] = (float)(i % 3);
        dup[2 * i + 1] = 1.0f;
    }
    float ca[8 * 2], cb[8 * 2];
    qv_kmeans_params_t kp = {.iters = 10, .seed = 3};
    assert_int_equal(qv_kmeans(dup, 40, 2, 8, &kp, ca, NULL), QV_OK);
    qv_gpu_kmeans_params_t gp = {.k = 8, .iters = 10, .seed = 3};
    assert_int_equal(qv_kcpu_kmeans(&gp, dup, 40, 2, cb, NULL, NULL, NULL), QV_OK);
    assert_memory_equal(ca, cb, sizeof ca);
    /* bad arguments */
    gp.k = 0;
    assert_int_equal(qv_kcpu_kmeans(&gp, dup, 40, 2, cb, NULL, NULL, NULL), QV_EINVAL);
}

static void test_sq8_bit_identical(void **state)
{
    (void)state;
    const size_t n = 700;
    const uint32_t dim = 19;
    float *x = random_vectors(n, dim, 51);
    for (size_t i = 0; i < n; i++)  /* a constant dimension (scale 0) and a wide one */
        x[i * dim + 3] = 2.5f, x[i * dim + 7] *= 1e6f;
    x[5 * dim + 9] = INFINITY;  /* non-finite values are ignored by the range */
    x[6 * dim + 9] = -INFINITY;
    for (int metric = 0; metric <= 1; metric++) {
        qv_quant_params_t qp = {.kind = QV_QUANT_SQ8, .metric = (qv_quant_metric_t)metric};
        qv_quant_t *q;
        assert_int_equal(qv_quant_train(&qp, x, n, dim, 0, NULL, NULL, NULL, &q), QV_OK);
        qv_gpu_quant_params_t gp = {.kind = QV_GPU_QUANT_SQ8, .metric = (qv_gpu_metric_t)metric};
        qv_wbuf_t blob, ref;
        qv_wbuf_init(&blob);
        qv_wbuf_init(&ref);
        qv_err_t err;
        assert_int_equal(qv_kquant_build(qv_kcpu_backend(), &gp, x, n, dim, &blob, &err), QV_OK);
        assert_int_equal(qv_quant_encode_blob(q, &ref), QV_OK);
        /* SQ8 involves no multiply-add: the blob is the CPU's, byte for byte */
        assert_int_equal(blob.len, ref.len);
        assert_memory_equal(blob.data, ref.data, blob.len);
        qv_quant_t *back;
        assert_int_equal(qv_quant_decode_blob(blob.data, blob.len, n, dim, &err, &back), QV_OK);
        qv_quant_free(back);
        qv_quant_free(q);
        qv_wbuf_free(&blob);
        qv_wbuf_free(&ref);
    }
    /* the per-value logic at the edges */
    assert_int_equal(qv_k_sq8_code(NAN, 0.0f, 1.0f), 0);
    assert_int_equal(qv_k_sq8_code(-5.0f, 0.0f, 1.0f), 0);
    assert_int_equal(qv_k_sq8_code(1e9f, 0.0f, 1.0f), 255);
    assert_int_equal(qv_k_sq8_code(3.0f, 3.0f, 0.0f), 0);
    float vmin, scale;
    qv_k_sq8_finish(INFINITY, -INFINITY, &vmin, &scale);
    assert_true(vmin == 0.0f && scale == 0.0f);
    qv_k_sq8_finish(-3e38f, 3e38f, &vmin, &scale);
    assert_true(isfinite(scale) && scale > 0.0f);
    free(x);
}

static void test_pq_vs_cpu(void **state)
{
    (void)state;
    qv_dist_init(QV_SIMD_SCALAR);  /* the reference table kernel: the same summation order as the device's */
    const size_t n = 3000;
    const uint32_t dim = 24;
    float *x = clustered(n, dim, 20, 61);
    for (int metric = 0; metric <= 1; metric++) {
        for (uint32_t m = 0; m <= 6; m += 6) {  /* default m (6) and an explicit one */
            qv_quant_params_t qp = {.kind = QV_QUANT_PQ, .metric = (qv_quant_metric_t)metric, .pq_m = m,
                                    .pq_iters = 10, .pq_sample = 2000, .seed = 5};
            qv_quant_t *q;
            assert_int_equal(qv_quant_train(&qp, x, n, dim, 0, NULL, NULL, NULL, &q), QV_OK);
            qv_gpu_quant_params_t gp = {.kind = QV_GPU_QUANT_PQ, .metric = (qv_gpu_metric_t)metric, .pq_m = m,
                                        .pq_iters = 10, .pq_sample = 2000, .seed = 5};
            qv_wbuf_t blob;
            qv_wbuf_init(&blob);
            qv_err_t err;
            assert_int_equal(qv_kquant_build(qv_kcpu_backend(), &gp, x, n, dim, &blob, &err), QV_OK);
            qv_quant_t *back;
            if (qv_quant_decode_blob(blob.data, blob.len, n, dim, &err, &back) != QV_OK)
                fail_msg("pq blob: %s", err.msg);
            assert_int_equal(qv_quant_m(back), qv_quant_m(q));
            /* same codebooks (the decoded centroids of code c in every sub-quantiser) and codes */
            uint32_t mm = qv_quant_m(q);
            uint8_t code[64];
            float ra[64], rb[64];
            for (uint32_t c = 0; c < 256; c++) {
                memset(code, (int)c, sizeof code);
                qv_quant_decode(q, code, ra);
                qv_quant_decode(back, code, rb);
                for (uint32_t i = 0; i < dim; i++)
                    assert_true(close_rel(ra[i], rb[i], 1e-5));
            }
            size_t same = 0;
            for (size_t r = 0; r < n; r++)
                same += memcmp(qv_quant_code(q, r), qv_quant_code(back, r), mm) == 0;
            assert_true(same >= n * 999 / 1000);
            qv_quant_free(back);
            qv_quant_free(q);
            qv_wbuf_free(&blob);
        }
    }
    qv_dist_init(QV_SIMD_AUTO);
    /* bad m */
    qv_gpu_quant_params_t bad = {.kind = QV_GPU_QUANT_PQ, .pq_m = 5};
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    assert_int_equal(qv_kquant_build(qv_kcpu_backend(), &bad, x, n, dim, &b, NULL), QV_EINVAL);
    /* n = 0: zero codebooks, a blob that loads */
    bad.pq_m = 6;
    assert_int_equal(qv_kquant_build(qv_kcpu_backend(), &bad, x, 0, dim, &b, NULL), QV_OK);
    qv_quant_t *empty;
    assert_int_equal(qv_quant_decode_blob(b.data, b.len, 0, dim, NULL, &empty), QV_OK);
    qv_quant_free(empty);
    qv_wbuf_free(&b);
    free(x);
}

/* ================================================================================================================
 * graph build
 * ============================================================================================================= */

static void test_prune_helpers(void **state)
{
    (void)state;
    uint32_t ids[5] = {40, 10, 30, QV_K_NONE, 20};
    uint32_t sid[5], spos[5];
    for (uint32_t i = 0; i < 5; i++) {
        uint32_t r = qv_k_rank_of(ids, 5, i);
        sid[r] = ids[i];
        spos[r] = i;
    }
    assert_int_equal(sid[0], 10);
    assert_int_equal(sid[3], 40);
    assert_int_equal(sid[4], QV_K_NONE);
    assert_int_equal(qv_k_find_pos(sid, spos, 5, 30), 2);
    assert_int_equal(qv_k_find_pos(sid, spos, 5, 31), QV_K_NONE);
    assert_int_equal(qv_k_find_pos(sid, spos, 5, QV_K_NONE), QV_K_NONE);
    /* detour: u's list [40, 10, 30]; through neighbour 0 (40) whose list has 30 at position 1: 30 is at position 2
     * in u's list, max(0, 1) < 2 -> a detour of edge 2 */
    uint32_t wl[3] = {7, 30, 10};
    assert_int_equal(qv_k_detour(wl, 0, 1, sid, spos, 5), 2);
    assert_int_equal(qv_k_detour(wl, 0, 2, sid, spos, 5), QV_K_NONE);  /* 10 is at position 1 < p */
    assert_int_equal(qv_k_detour(wl, 2, 1, sid, spos, 5), QV_K_NONE);  /* i = 2 is not before j = 2 */
    /* selection by (count, rank) */
    uint32_t row[5] = {1, 2, 3, 4, 5}, counts[5] = {2, 0, 1, 0, 0}, out[5];
    assert_int_equal(qv_k_prune_select(row, counts, 5, 3, out), 3);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 5);
    /* merge: half forward, then reverse and forward alternately, no duplicates, no self */
    uint32_t fwd[4] = {1, 2, 3, 4}, rev[3] = {3, 9, 0}, links[6];
    uint32_t nl = qv_k_merge_edges(0, fwd, 4, rev, 3, 6, links);
    assert_int_equal(nl, 5);
    uint32_t want[5] = {1, 2, 3, 4, 9};  /* the duplicate 3 used up a reverse turn */
    for (int i = 0; i < 5; i++)
        assert_int_equal(links[i], want[i]);
    uint64_t keys[4] = {qv_k_rev_key(3, 1), qv_k_rev_key(0, 9), qv_k_rev_key(0, 2), qv_k_rev_key(1, 0)}, best[2];
    assert_int_equal(qv_k_smallest_keys(keys, 4, 2, best), 2);
    assert_int_equal((uint32_t)best[0], 2);
    assert_int_equal((uint32_t)best[1], 9);
}

#define GN 5000
#define GDIM 32
#define GNQ 200
#define GK 10

static double recall_at(const qv_hnsw_t *h, const float *queries, uint32_t ef)
{
    size_t hits = 0, total = 0;
    qv_hnsw_search_params_t sp = {.ef = ef, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    for (size_t q = 0; q < GNQ; q++) {
        qv_cand_t got[GK], want[GK];
        size_t ng, nw;
        assert_int_equal(qv_hnsw_search(h, queries + q * GDIM, GK, &sp, got, &ng, NULL), QV_OK);
        assert_int_equal(qv_hnsw_search_exact(h, queries + q * GDIM, GK, NULL, want, &nw), QV_OK);
        for (size_t i = 0; i < ng; i++)
            for (size_t j = 0; j < nw; j++)
                if (got[i].ref == want[j].ref) {
                    hits++;
                    break;
                }
        total += nw;
    }
    return (double)hits / (double)total;
}

static qv_hnsw_t *decode_checked(const uint8_t *blob, size_t len, const float *v, size_t n, uint32_t dim)
{
    qv_err_t err;
    qv_err_clear(&err);
    qv_hnsw_t *h = NULL;
    if (qv_hnsw_decode(blob, len, v, n, dim, 0, &err, &h) != QV_OK)
        fail_msg("decode of the CPU-built CAGRA graph: %s", err.msg);
    qv_hnsw_report_t rep;
    if (qv_hnsw_validate(h, &rep, &err) != QV_OK)
        fail_msg("validate: %s", err.msg);
    return h;
}

static void graph_recall_case(qv_hnsw_metric_t metric)
{
    float *v = clustered(GN + GNQ, GDIM, 40, metric == QV_HNSW_L2 ? 7 : 8);
    if (metric == QV_HNSW_IP)
        for (size_t i = 0; i < GN + GNQ; i++)
            qv_normalize(v + i * GDIM, GDIM);
    const float *queries = v + (size_t)GN * GDIM;

    /* the CPU's HNSW, as test_hnsw.c builds it */
    qv_hnsw_params_t hp = {.metric = metric, .M = 16, .ef_construction = 200, .seed = 42};
    qv_hnsw_t *cpu = NULL;
    assert_int_equal(qv_hnsw_create(&hp, v, GN, GDIM, 0, NULL, &cpu), QV_OK);
    assert_int_equal(qv_hnsw_build(cpu, NULL), QV_OK);  /* one thread: the same graph every run */

    /* the CAGRA-style build, CPU implementation of the GPU's steps */
    qv_gpu_graph_params_t gp = {.metric = (qv_gpu_metric_t)metric, .M = 16, .ef_construction = 200, .seed = 42};
    uint8_t *blob;
    size_t len;
    qv_gpu_graph_stats_t st;
    qv_err_t err;
    qv_err_clear(&err);
    if (qv_kgraph_build_blob(qv_kcpu_backend(), &gp, v, GN, GDIM, &blob, &len, &st, &err) != QV_OK)
        fail_msg("graph build: %s", err.msg);
    qv_hnsw_t *gpu = decode_checked(blob, len, v, GN, GDIM);
    qv_hnsw_report_t rep;
    assert_int_equal(qv_hnsw_validate(gpu, &rep, NULL), QV_OK);
    qv_hnsw_info_t ci, gi;
    qv_hnsw_info(cpu, &ci);
    qv_hnsw_info(gpu, &gi);
    assert_int_equal(gi.max_level, ci.max_level);  /* the same levels from the same seed */

    double rc64 = recall_at(cpu, queries, 64), rg64 = recall_at(gpu, queries, 64);
    double rc10 = recall_at(cpu, queries, 10), rg10 = recall_at(gpu, queries, 10);
    print_message("%s: recall@10 ef=64 cpu-hnsw %.4f cagra-cpu %.4f; ef=10 %.4f / %.4f; links %llu vs %llu; "
                  "unreachable %zu; build %.0f ms (k-NN %.0f ms, pruning %.0f ms)\n",
                  metric == QV_HNSW_L2 ? "l2" : "ip", rc64, rg64, rc10, rg10, (unsigned long long)gi.links,
                  (unsigned long long)ci.links, rep.unreachable, st.total_ms, st.knn_ms, st.prune_ms);
    assert_true(rg64 >= rc64 - 0.02);
    qv_hnsw_free(gpu);
    free(blob);
    qv_hnsw_free(cpu);
    free(v);
}

/* n rows around 30 centres spread 3 per dimension, 1 around their centre: well-separated clusters. */
static float *separated(size_t n, uint64_t seed)
{
    rng_state = seed;
    float *centres = malloc(30 * GDIM * sizeof(float)), *v = malloc(n * GDIM * sizeof(float));
    assert_non_null(centres);
    assert_non_null(v);
    for (size_t i = 0; i < 30 * GDIM; i++)
        centres[i] = 3.0f * rng_gauss();
    for (size_t i = 0; i < n; i++) {
        size_t c = rng_next() % 30;
        for (size_t d = 0; d < GDIM; d++)
            v[i * GDIM + d] = centres[c * GDIM + d] + rng_gauss();
    }
    free(centres);
    return v;
}

/* The case that a k-NN graph gets wrong without step 6 (kernels/cpu/graph.c, finish_graph): 2,000 rows in 30
 * separated clusters (about 67 rows each, fewer than knn_k), queries from other clusters' centres, so their nearest
 * rows lie on the surfaces of several base clusters. Without the long links and the reachability step 347 rows
 * were unreachable and recall@10 at ef=16 was 0.62 against HNSW's 0.87. */
static void test_graph_recall_separated_clusters(void **state)
{
    (void)state;
    const size_t n = 2000;
    float *v = separated(n, 11), *queries = separated(GNQ, 12);
    qv_hnsw_params_t hp = {.metric = QV_HNSW_L2, .M = 16, .ef_construction = 200, .seed = 42};
    qv_hnsw_t *cpu = NULL;
    assert_int_equal(qv_hnsw_create(&hp, v, n, GDIM, 0, NULL, &cpu), QV_OK);
    assert_int_equal(qv_hnsw_build(cpu, NULL), QV_OK);
    qv_gpu_graph_params_t gp = {.metric = QV_GPU_L2, .M = 16, .ef_construction = 200, .seed = 42};
    uint8_t *blob;
    size_t len;
    qv_err_t err;
    qv_err_clear(&err);
    if (qv_kgraph_build_blob(qv_kcpu_backend(), &gp, v, n, GDIM, &blob, &len, NULL, &err) != QV_OK)
        fail_msg("graph build: %s", err.msg);
    qv_hnsw_t *gpu = decode_checked(blob, len, v, n, GDIM);
    qv_hnsw_report_t rep;
    assert_int_equal(qv_hnsw_validate(gpu, &rep, NULL), QV_OK);
    assert_int_equal(rep.unreachable, 0);
    for (uint32_t ef = 10; ef <= 40; ef *= 2) {
        double rc = recall_at(cpu, queries, ef), rg = recall_at(gpu, queries, ef);
        print_message("separated clusters: recall@10 ef=%u cpu-hnsw %.4f cagra-cpu %.4f\n", ef, rc, rg);
        assert_true(rg >= rc - 0.02);
    }
    qv_hnsw_free(gpu);
    free(blob);
    qv_hnsw_free(cpu);
    free(v);
    free(queries);
}

static void test_graph_recall_l2(void **state)
{
    (void)state;
    graph_recall_case(QV_HNSW_L2);
}

static void test_graph_recall_ip(void **state)
{
    (void)state;
    graph_recall_case(QV_HNSW_IP);
}

static void test_graph_small_and_quantised(void **state)
{
    (void)state;
    float *v = random_vectors(600, 8, 71);
    for (size_t n = 0; n <= 3; n++) {  /* tiny segments: the blob loads and searches */
        qv_gpu_graph_params_t gp = {.metric = QV_GPU_L2, .M = 4, .seed = 1};
        uint8_t *blob;
        size_t len;
        assert_int_equal(qv_kgraph_build_blob(qv_kcpu_backend(), &gp, v, n, 8, &blob, &len, NULL, NULL), QV_OK);
        qv_hnsw_t *h = decode_checked(blob, len, v, n, 8);
        qv_cand_t out[5];
        size_t nout;
        assert_int_equal(qv_hnsw_search(h, v, 5, NULL, out, &nout, NULL), QV_OK);
        assert_int_equal(nout, n);
        qv_hnsw_free(h);
        free(blob);
    }
    /* duplicates, a nested SQ8 and PQ quantiser, deterministic bytes */
    for (size_t r = 300; r < 340; r++)
        memcpy(v + r * 8, v, 8 * sizeof(float));
    for (int quant = 1; quant <= 2; quant++) {
        qv_gpu_graph_params_t gp = {.metric = QV_GPU_L2, .M = 8, .seed = 9, .quant = (qv_gpu_quant_t)quant,
                                    .pq_m = 2};
        uint8_t *b1, *b2;
        size_t l1, l2;
        assert_int_equal(qv_kgraph_build_blob(qv_kcpu_backend(), &gp, v, 600, 8, &b1, &l1, NULL, NULL), QV_OK);
        assert_int_equal(qv_kgraph_build_blob(qv_kcpu_backend(), &gp, v, 600, 8, &b2, &l2, NULL, NULL), QV_OK);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        qv_hnsw_t *h = decode_checked(b1, l1, v, 600, 8);
        qv_hnsw_info_t info;
        qv_hnsw_info(h, &info);
        assert_int_equal((int)info.quant, quant);
        qv_cand_t out[5];
        size_t nout;
        assert_int_equal(qv_hnsw_search(h, v + 10 * 8, 5, NULL, out, &nout, NULL), QV_OK);
        assert_int_equal(nout, 5);
        assert_int_equal(out[0].ref, 10);
        qv_hnsw_free(h);
        free(b1);
        free(b2);
    }
    /* bad parameters */
    qv_gpu_graph_params_t bad = {.metric = QV_GPU_L2, .M = 1};
    uint8_t *blob;
    size_t len;
    qv_err_t err;
    assert_int_equal(qv_kgraph_build_blob(qv_kcpu_backend(), &bad, v, 10, 8, &blob, &len, NULL, &err), QV_EINVAL);
    bad.M = 0;
    bad.knn_k = QV_GPU_MAX_K + 1;
    assert_int_equal(qv_kgraph_build_blob(qv_kcpu_backend(), &bad, v, 10, 8, &blob, &len, NULL, &err), QV_EINVAL);
    free(v);
}

/* ================================================================================================================
 * embedding row kernels
 * ============================================================================================================= */

static void test_gelu_exp(void **state)
{
    (void)state;
    const qv_embed_kernels_t *g = &qv__embed_kernels_generic;
    float row[1536], bias[1536];
    rng_state = 81;
    for (int i = 0; i < 1536; i++) {
        row[i] = 6.0f * rng_gauss();
        bias[i] = 0.0f;
    }
    row[0] = 0.0f, row[1] = -100.0f, row[2] = 100.0f, row[3] = 1e-30f;
    float want[1536];
    memcpy(want, row, sizeof row);
    g->bias_gelu(want, bias, 1, 1536);
    for (int i = 0; i < 1536; i++)
        assert_true(qv_k_gelu(row[i]) == want[i]);  /* the same formula, the same approximations */
    for (float x = -87.0f; x < 88.0f; x += 0.37f)
        assert_true(fabs(qv_k_exp(x) - exp((double)x)) <= 5e-7 * exp((double)x));
}

static void test_layernorm_sim(void **state)
{
    (void)state;
    const qv_embed_kernels_t *g = &qv__embed_kernels_generic;
    static const uint32_t hs[] = {384, 33, 7, 1000};
    for (size_t t = 0; t < sizeof hs / sizeof hs[0]; t++) {
        uint32_t h = hs[t];
        float *x = random_vectors(1, h, 90 + t), *add = random_vectors(1, h, 91 + t);
        float *bias = random_vectors(1, h, 92 + t), *gg = random_vectors(1, h, 93 + t);
        float *bb = random_vectors(1, h, 94 + t);
        for (uint32_t i = 0; i < h; i++)
            x[i] = x[i] * 3.0f + 10.0f;  /* an offset mean: where a one-pass variance would cancel */
        float *want = malloc(h * sizeof(float)), *got = malloc(h * sizeof(float));
        memcpy(want, x, h * sizeof(float));
        memcpy(got, x, h * sizeof(float));
        g->add_layernorm(want, add, bias, gg, bb, 1, h, 1e-12f);
        qv_k_layernorm_row_sim(got, add, bias, gg, bb, h, 1e-12f);
        for (uint32_t i = 0; i < h; i++)
            assert_true(fabsf(got[i] - want[i]) <= 1e-5f * fmaxf(1.0f, fabsf(want[i])));
        /* without the residual */
        memcpy(want, x, h * sizeof(float));
        memcpy(got, x, h * sizeof(float));
        g->add_layernorm(want, NULL, NULL, gg, bb, 1, h, 1e-12f);
        qv_k_layernorm_row_sim(got, NULL, NULL, gg, bb, h, 1e-12f);
        for (uint32_t i = 0; i < h; i++)
            assert_true(fabsf(got[i] - want[i]) <= 1e-5f * fmaxf(1.0f, fabsf(want[i])));
        free(x), free(add), free(bias), free(gg), free(bb), free(want), free(got);
    }
}

static void test_softmax_mask_and_pool(void **state)
{
    (void)state;
    const qv_embed_kernels_t *g = &qv__embed_kernels_generic;
    static const uint32_t lens[] = {1, 2, 31, 32, 33, 100, 256};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        uint32_t len = lens[t], n = len + 17;
        float *s = random_vectors(1, n, 100 + t);
        for (uint32_t i = 0; i < n; i++)
            s[i] *= 8.0f;
        float *want = malloc(n * sizeof(float));
        memcpy(want, s, n * sizeof(float));
        g->softmax(want, 1, len, len);
        qv_k_softmax_mask_sim(s, len, n);
        double sum = 0;
        for (uint32_t i = 0; i < len; i++) {
            assert_true(fabsf(s[i] - want[i]) <= 1e-6f + 1e-5f * want[i]);
            sum += s[i];
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
        for (uint32_t i = len; i < n; i++)
            assert_true(s[i] == 0.0f);  /* masked keys weigh exactly nothing */
        free(s);
        free(want);
    }
    /* pooling = mean of the rows, L2-normalised; a zero row stays zero */
    const uint32_t h = 13, len = 5;
    float *x = random_vectors(len, h, 120), out[13];
    double scratch[13];
    qv_k_pool_sim(x, h, len, out, scratch);
    double norm = 0;
    for (uint32_t j = 0; j < h; j++) {
        double m = 0;
        for (uint32_t p = 0; p < len; p++)
            m += x[p * h + j];
        m /= len;
        norm += m * m;
    }
    for (uint32_t j = 0; j < h; j++) {
        double m = 0;
        for (uint32_t p = 0; p < len; p++)
            m += x[p * h + j];
        assert_true(fabs(out[j] - m / len / sqrt(norm)) < 1e-6);
    }
    float zero[13] = {0};
    qv_k_pool_sim(zero, h, 1, out, scratch);
    for (uint32_t j = 0; j < h; j++)
        assert_true(out[j] == 0.0f);
    free(x);
}

/* The device's attention: sequences packed back to back, scores for every (sequence, head) computed over the
 * chunk's longest length L (keys past a sequence's end read the next sequence's rows or zero padding), masked
 * softmax, context rows past the end dropped. Must equal attention computed per sequence on its own rows. */
static void test_masked_attention_equals_per_sequence(void **state)
{
    (void)state;
    const uint32_t d = 8, heads = 2, h = d * heads;
    static const uint32_t lens[] = {5, 9, 2, 1};
    const uint32_t nseq = 4, L = 9;
    uint32_t rows = 0, off[4];
    for (uint32_t s = 0; s < nseq; s++) {
        off[s] = rows;
        rows += lens[s];
    }
    /* q, k, v packed as the qkv projection lays them out: row r = [Q (h) | K (h) | V (h)], plus L zero rows */
    float *qkv = random_vectors(rows + L, 3 * h, 130);
    memset(qkv + (size_t)rows * 3 * h, 0, (size_t)L * 3 * h * sizeof(float));
    const float scale = 1.0f / sqrtf((float)d);
    float *want = calloc((size_t)rows * h, sizeof(float)), *got = calloc((size_t)rows * h, sizeof(float));
    float *sc = malloc((size_t)L * L * sizeof(float));
    for (uint32_t s = 0; s < nseq; s++) {
        for (uint32_t hd = 0; hd < heads; hd++) {
            /* per sequence (model.c): len x len scores, plain softmax */
            uint32_t len = lens[s];
            for (uint32_t i = 0; i < len; i++) {
                for (uint32_t j = 0; j < len; j++) {
                    float acc = 0;
                    for (uint32_t t = 0; t < d; t++)
                        acc += qkv[(size_t)(off[s] + i) * 3 * h + hd * d + t] *
                               qkv[(size_t)(off[s] + j) * 3 * h + h + hd * d + t];
                    sc[i * len + j] = acc * scale;
                }
            }
            qv__embed_kernels_generic.softmax(sc, len, len, len);
            for (uint32_t i = 0; i < len; i++)
                for (uint32_t t = 0; t < d; t++) {
                    float acc = 0;
                    for (uint32_t j = 0; j < len; j++)
                        acc += sc[i * len + j] * qkv[(size_t)(off[s] + j) * 3 * h + 2 * h + hd * d + t];
                    want[(size_t)(off[s] + i) * h + hd * d + t] = acc;
                }
            /* padded and masked (embed.cu): L x L scores, masked softmax, rows >= len dropped */
            for (uint32_t i = 0; i < L; i++) {
                for (uint32_t j = 0; j < L; j++) {
                    float acc = 0;
                    for (uint32_t t = 0; t < d; t++)
                        acc += qkv[(size_t)(off[s] + i) * 3 * h + hd * d + t] *
                               qkv[(size_t)(off[s] + j) * 3 * h + h + hd * d + t];
                    sc[i * L + j] = acc * scale;
                }
                qv_k_softmax_mask_sim(sc + i * L, len, L);
            }
            for (uint32_t i = 0; i < len; i++)
                for (uint32_t t = 0; t < d; t++) {
                    float acc = 0;
                    for (uint32_t j = 0; j < L; j++)
                        acc += sc[i * L + j] * qkv[(size_t)(off[s] + j) * 3 * h + 2 * h + hd * d + t];
                    got[(size_t)(off[s] + i) * h + hd * d + t] = acc;
                }
        }
    }
    for (size_t i = 0; i < (size_t)rows * h; i++)
        assert_true(fabsf(got[i] - want[i]) <= 1e-5f * fmaxf(1.0f, fabsf(want[i])));
    free(qkv);
    free(want);
    free(got);
    free(sc);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    qv_dist_init(QV_SIMD_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accum_odd_dims),
        cmocka_unit_test(test_list_offer_vs_topk),
        cmocka_unit_test(test_merge_sorted),
        cmocka_unit_test(test_knn_plan),
        cmocka_unit_test(test_knn_exact),
        cmocka_unit_test(test_knn_batched_equals_one_pass),
        cmocka_unit_test(test_knn_ties_nan_and_bad_args),
        cmocka_unit_test(test_nearest_ties),
        cmocka_unit_test(test_kmeans_vs_cpu),
        cmocka_unit_test(test_sq8_bit_identical),
        cmocka_unit_test(test_pq_vs_cpu),
        cmocka_unit_test(test_prune_helpers),
        cmocka_unit_test(test_graph_recall_l2),
        cmocka_unit_test(test_graph_recall_ip),
        cmocka_unit_test(test_graph_recall_separated_clusters),
        cmocka_unit_test(test_graph_small_and_quantised),
        cmocka_unit_test(test_gelu_exp),
        cmocka_unit_test(test_layernorm_sim),
        cmocka_unit_test(test_softmax_mask_and_pool),
        cmocka_unit_test(test_masked_attention_equals_per_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
