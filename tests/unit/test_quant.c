/* Quantisers (index/quant) and the quantised HNSW walk.
 *
 * Quantisers: SQ8 and PQ encode/decode accuracy and the asymmetric distance (ADC) against exact distances, with
 * tolerances derived below (not tuned); every SIMD tier against the scalar reference; k-means convergence and
 * determinism; PQ with dim % m != 0 rejected; codebooks independent of the number of training threads; every
 * single-bit flip and every truncation of SQ8 and PQ blobs rejected; forged blobs (checksum recomputed) rejected or
 * safe.
 *
 * HNSW with SQ8 and PQ (m = 8) on 5k x 32 clustered data (the generator of test_hnsw.c): recall@10 after
 * re-ranking at ef = 64, at ef = 16 with the default re-rank factor (4) and with a larger one, filtered (50%, 10%,
 * 1%) and with deleted rows; returned distances are exact; encode -> decode gives the same bytes and the same
 * results; a version-1 blob still loads; corrupted quantised graph blobs are rejected; the same blob loaded under
 * each SIMD tier searches with the same recall.
 *
 * Why the tolerances hold. For a row x with reconstruction x' = decode(encode(x)) and a query q:
 *  (a) ADC is the distance to x' computed in float: against a double-precision ||q - x'||^2 (or -<q, x'>) it may
 *      differ only by float rounding of a dim-term sum, |err| <= dim * 2^-23 * sum|terms|; we allow 1e-4 * sum|terms|
 *      (dim <= 128 gives 1.5e-5, a margin of 6).
 *  (b) The triangle inequality bounds the ADC error by the reconstruction error, whatever the quantiser:
 *      | ||q - x'|| - ||q - x|| | <= ||x - x'||, and Cauchy-Schwarz | <q, x'> - <q, x> | <= ||q|| ||x - x'||.
 *  (c) SQ8 rounds each coordinate to the nearest of 256 levels spaced scale[i] apart, so |x[i] - x'[i]| <=
 *      scale[i] / 2 for rows of the training set (+ float rounding of vmin + scale * code: we allow 1e-5 relative).
 *  (d) PQ has no per-coordinate bound; its relative distortion sum ||x - x'||^2 / sum ||x - mean||^2 on this data
 *      is measured (about 0.05 for m = 8, dsub = 4, 256 centroids: k-means in 4-D with 256 centres cuts the
 *      variance by roughly 256^(2/4) = 16) and must stay below 0.15. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "vecdata.h"

#include "common/bitmap.h"
#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/pool.h"
#include "index/quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N 5000
#define DIM 32
#define NQ 200
#define K 10





static qv_quant_t *train(qv_quant_kind_t kind, qv_quant_metric_t metric, const float *v, size_t n, uint32_t dim,
                         uint32_t m, uint32_t iters, qv_pool_t *pool)
{
    qv_quant_params_t p = {.kind = kind, .metric = metric, .pq_m = m, .pq_iters = iters, .seed = 5};
    qv_quant_t *q = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_quant_train(&p, v, n, dim, 0, pool, NULL, &err, &q);
    if (rc)
        fail_msg("train: %s", err.msg);
    return q;
}

/* ---- accuracy ---- */

/* Checks (a), (b) and (c)/(d) of the header for every row against a few queries; returns the relative distortion. */
static double check_accuracy(qv_quant_t *q, const float *v, size_t n, uint32_t dim, const float *queries, size_t nq)
{
    qv_quant_metric_t metric = qv_quant_metric(q);
    float *rec = malloc(dim * sizeof(float));
    size_t tf = qv_quant_table_floats(q);
    float *tables = malloc(nq * tf * sizeof(float));
    for (size_t t = 0; t < nq; t++)
        qv_quant_prepare(q, queries + t * dim, tables + t * tf);
    uint8_t *code = malloc(qv_quant_code_size(q));
    double mean[128] = {0};
    assert_true(dim <= 128);
    for (size_t r = 0; r < n; r++)
        for (uint32_t i = 0; i < dim; i++)
            mean[i] += v[r * dim + i] / (double)n;
    double distortion = 0.0, variance = 0.0;
    for (size_t r = 0; r < n; r++) {
        const float *x = v + r * dim;
        /* the stored code is the encoding of the row */
        qv_quant_encode(q, x, code);
        assert_memory_equal(code, qv_quant_code(q, r), qv_quant_code_size(q));
        qv_quant_decode(q, code, rec);
        double e2 = 0.0;
        for (uint32_t i = 0; i < dim; i++) {
            double e = (double)x[i] - rec[i];
            e2 += e * e;
            variance += ((double)x[i] - mean[i]) * ((double)x[i] - mean[i]);
        }
        distortion += e2;
        double err_norm = sqrt(e2);
        if (qv_quant_kind(q) == QV_QUANT_SQ8) {  /* (c) */
            float lo[128], hi[128];
            /* scale[i] recovered from two codes: decode(255) - decode(0) = 255 * scale[i] */
            uint8_t c0[128], c1[128];
            memset(c0, 0, dim);
            memset(c1, 255, dim);
            qv_quant_decode(q, c0, lo);
            qv_quant_decode(q, c1, hi);
            for (uint32_t i = 0; i < dim; i++) {
                double half = ((double)hi[i] - lo[i]) / 255.0 / 2.0;
                assert_true(fabs((double)x[i] - rec[i]) <= half * (1 + 1e-4) + 1e-5 * fabs(x[i]) + 1e-7);
            }
        }
        for (size_t t = 0; t < nq; t++) {
            const float *qq = queries + t * dim;
            float adc = qv_quant_dist(q, tables + t * tf, code);
            double to_rec = 0.0, to_x = 0.0, mag = 0.0, qn = 0.0;
            for (uint32_t i = 0; i < dim; i++) {
                if (metric == QV_QUANT_L2) {
                    double a = (double)qq[i] - rec[i], b = (double)qq[i] - x[i];
                    to_rec += a * a;
                    to_x += b * b;
                    mag += a * a + fabs((double)qq[i]) + fabs((double)rec[i]);
                } else {
                    to_rec -= (double)qq[i] * rec[i];
                    to_x -= (double)qq[i] * x[i];
                    mag += fabs((double)qq[i] * rec[i]);
                }
                qn += (double)qq[i] * qq[i];
            }
            /* (a) ADC = distance to the reconstruction, to float rounding */
            assert_true(fabs(adc - to_rec) <= 1e-4 * (mag + 1.0));
            /* (b) bounded by the reconstruction error */
            if (metric == QV_QUANT_L2)
                assert_true(fabs(sqrt(fmax(adc, 0.0)) - sqrt(to_x)) <= err_norm + 1e-3 * (sqrt(to_x) + 1.0));
            else
                assert_true(fabs(adc - to_x) <= sqrt(qn) * err_norm + 1e-4 * (mag + 1.0));
        }
    }
    free(rec);
    free(tables);
    free(code);
    return variance > 0 ? distortion / variance : 0.0;
}

static void test_sq8_accuracy(void **state)
{
    (void)state;
    float *v = clustered(2000 + 20, DIM, 20, 31);
    for (int metric = 0; metric < 2; metric++) {
        qv_quant_t *q = train(QV_QUANT_SQ8, (qv_quant_metric_t)metric, v, 2000, DIM, 0, 0, NULL);
        assert_int_equal(qv_quant_code_size(q), DIM);
        assert_true(qv_quant_code_size(q) * 4 <= DIM * sizeof(float));  /* 1/4 of the float bytes */
        double rel = check_accuracy(q, v, 2000, DIM, v + 2000 * DIM, 20);
        print_message("sq8 %s: relative distortion %.2e\n", metric ? "ip" : "l2", rel);
        assert_true(rel < 1e-3);  /* 256 levels over a ~8 sigma range: (8/256)^2/12 / 1.64 ~ 5e-5 */
        qv_quant_free(q);
    }
    free(v);
}

static void test_pq_accuracy(void **state)
{
    (void)state;
    float *v = clustered(3000 + 20, DIM, 20, 32);
    for (int metric = 0; metric < 2; metric++) {
        qv_quant_t *q = train(QV_QUANT_PQ, (qv_quant_metric_t)metric, v, 3000, DIM, 8, 0, NULL);
        assert_int_equal(qv_quant_code_size(q), 8);
        assert_true(qv_quant_code_size(q) * 16 <= DIM * sizeof(float));  /* 1/16 of the float bytes */
        double rel = check_accuracy(q, v, 3000, DIM, v + 3000 * DIM, 20);
        print_message("pq m=8 %s: relative distortion %.3f\n", metric ? "ip" : "l2", rel);
        assert_true(rel < 0.15);
        qv_quant_free(q);
    }
    /* The default m: the largest divisor of dim <= dim / 4. */
    assert_int_equal(qv_pq_default_m(128), 32);
    assert_int_equal(qv_pq_default_m(30), 6);
    assert_int_equal(qv_pq_default_m(7), 1);
    assert_int_equal(qv_pq_default_m(2), 1);
    free(v);
}

/* Rows outside the training range clamp to the ends, and constant dimensions (scale 0) decode exactly. */
static void test_sq8_edges(void **state)
{
    (void)state;
    float v[3 * 4] = {1, 5, -2, 7, 1, 6, -1, 7, 1, 7, 0, 7};
    qv_quant_t *q = train(QV_QUANT_SQ8, QV_QUANT_L2, v, 3, 4, 0, 0, NULL);
    float rec[4];
    uint8_t code[4];
    for (size_t r = 0; r < 3; r++) {
        qv_quant_decode(q, qv_quant_code(q, r), rec);
        assert_true(rec[0] == 1.0f && rec[3] == 7.0f);  /* constant columns */
    }
    qv_quant_decode(q, qv_quant_code(q, 0), rec);
    assert_true(rec[1] == 5.0f && rec[2] == -2.0f);  /* range ends are exact */
    float outside[4] = {100, -100, 1e30f, NAN};
    qv_quant_encode(q, outside, code);
    assert_int_equal(code[1], 0);
    assert_int_equal(code[2], 255);
    assert_int_equal(code[3], 0);
    qv_quant_free(q);
}

/* ---- SIMD tiers ---- */

static void test_tiers(void **state)
{
    (void)state;
    const qv_quant_kernels_t *ref = qv_quant_kernels(QV_SIMD_SCALAR);
    assert_non_null(ref);
    assert_string_equal(ref->name, "scalar");
    const qv_simd_t tiers[] = {QV_SIMD_SCALAR, QV_SIMD_AVX2, QV_SIMD_AVX512};
    const uint32_t sq8_dims[] = {1, 3, 7, 8, 13, 16, 31, 32, 33, 100, 128};
    const uint32_t pq_shapes[][2] = {{32, 8}, {30, 10}, {48, 24}, {64, 16}, {72, 9}, {128, 32}, {40, 40}, {16, 1},
                                     {96, 48}, {120, 8}};
    size_t checked = 0;
    const qv_quant_kernels_t *kts[3];
    for (size_t ti = 0; ti < 3; ti++) {
        kts[ti] = qv_quant_kernels(tiers[ti]);
        if (!kts[ti])
            print_message("tier %d not supported by this CPU: skipped\n", (int)tiers[ti]);
    }
    for (int kind = 0; kind < 2; kind++) {
        size_t nshapes = kind == 0 ? sizeof sq8_dims / sizeof sq8_dims[0] : sizeof pq_shapes / sizeof pq_shapes[0];
        for (size_t si = 0; si < nshapes; si++) {
            uint32_t dim = kind == 0 ? sq8_dims[si] : pq_shapes[si][0], m = kind == 0 ? 0 : pq_shapes[si][1];
            size_t n = 300;
            float *v = clustered(n + 8, dim, 5, 100 + si);
            for (int metric = 0; metric < 2; metric++) {
                qv_quant_t *q = train(kind == 0 ? QV_QUANT_SQ8 : QV_QUANT_PQ, (qv_quant_metric_t)metric, v, n, dim,
                                      m, 3, NULL);
                size_t tf = qv_quant_table_floats(q);
                float *table = calloc(tf, sizeof(float)), *table_t = calloc(tf, sizeof(float));
                for (size_t ti = 0; ti < 3; ti++) {
                    const qv_quant_kernels_t *kt = kts[ti];
                    if (!kt)
                        continue;
                    for (size_t t = 0; t < 8; t++) {
                        const float *query = v + (n + t) * dim;
                        if (kind == 1) {  /* the tier's lookup table against the scalar one */
                            ref->pq_table(q, query, metric, 0, m, table);
                            kt->pq_table(q, query, metric, 0, m, table_t);
                            for (size_t i = 0; i < tf; i++)
                                assert_true(fabsf(table[i] - table_t[i]) <= 1e-5f * (1.0f + fabsf(table[i])));
                            /* a slice [j0, j1) is the same rows of the tier's full table */
                            if (m > 2) {
                                float slice[2 * 256];
                                kt->pq_table(q, query, metric, 1, 3, slice);
                                assert_memory_equal(slice, table_t + 256, sizeof slice);
                            }
                        } else {
                            qv_quant_prepare(q, query, table);
                        }
                        qv_quant_dist4_fn fr = kind == 0 ? (metric ? ref->sq8_ip : ref->sq8_l2) : ref->pq;
                        qv_quant_dist4_fn ft = kind == 0 ? (metric ? kt->sq8_ip : kt->sq8_l2) : kt->pq;
                        for (size_t r = 0; r + 4 <= n; r += 4) {
                            const uint8_t *c4[4] = {qv_quant_code(q, r), qv_quant_code(q, r + 1),
                                                    qv_quant_code(q, r + 2), qv_quant_code(q, r + 3)};
                            float a[4], b[4];
                            fr(q, table, c4, a);
                            ft(q, table, c4, b);
                            for (int l = 0; l < 4; l++) {
                                /* different summation order: agree to rounding of the sum of |terms|; the sum of
                                 * |terms| is bounded by the table row maxima, approximated here by |a| + dim */
                                float tol = 2e-5f * (fabsf(a[l]) + (float)dim);
                                if (fabsf(a[l] - b[l]) > tol)
                                    fail_msg("tier %s %s %s dim %u m %u row %zu: %.9g vs %.9g", kt->name,
                                             kind ? "pq" : "sq8", metric ? "ip" : "l2", dim, m, r + l, a[l], b[l]);
                            }
                            checked += 4;
                        }
                    }
                }
                free(table);
                free(table_t);
                qv_quant_free(q);
            }
            free(v);
        }
    }
    for (size_t ti = 0; ti < 3; ti++)
        if (kts[ti])
            print_message("tier %s: kernels agree with the scalar reference\n", kts[ti]->name);
    print_message("%zu distances compared\n", checked);
}

/* ---- k-means ---- */

static void test_kmeans(void **state)
{
    (void)state;
    /* 8 well separated blobs in 4-D: k-means++ + Lloyd must find each centre. */
    const size_t n = 2000, k = 8, d = 4;
    float centres[8 * 4], *x = malloc(n * d * sizeof(float));
    rng_state = 77;
    for (size_t i = 0; i < k * d; i++)
        centres[i] = 20.0f * rng_gauss();
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = centres[(i % k) * d + t] + 0.1f * rng_gauss();
    float c1[8 * 4], c2[8 * 4];
    double hist[QV_PQ_DEFAULT_ITERS + 1];
    qv_kmeans_stats_t st;
    qv_kmeans_params_t kp = {.seed = 3, .objective = hist};
    assert_int_equal(qv_kmeans(x, n, d, k, &kp, c1, &st), QV_OK);
    print_message("k-means 8 blobs: %u iterations, objective %.3f (seeding %.3f), %u splits\n", st.iters,
                  st.objective, hist[0], st.empty_splits);
    assert_true(st.iters < QV_PQ_DEFAULT_ITERS);  /* converged: the assignment stopped changing */
    for (uint32_t i = 1; i <= st.iters; i++)
        assert_true(hist[i] <= hist[i - 1] * (1 + 1e-9));
    assert_true(st.objective <= n * d * 0.01 * 1.5);  /* ~ n * d * sigma^2 */
    for (size_t c = 0; c < k; c++) {
        double best = INFINITY;
        for (size_t e = 0; e < k; e++) {
            double s = 0;
            for (size_t t = 0; t < d; t++)
                s += (c1[e * d + t] - centres[c * d + t]) * (c1[e * d + t] - centres[c * d + t]);
            best = fmin(best, s);
        }
        assert_true(best < 0.01);
    }
    /* Deterministic: the same seed gives the same centroids bit for bit. */
    kp.objective = NULL;
    assert_int_equal(qv_kmeans(x, n, d, k, &kp, c2, NULL), QV_OK);
    assert_memory_equal(c1, c2, sizeof c1);

    /* 256 centroids on overlapping data: the objective never increases and ends below the seeding's. */
    float *y = clustered(4000, 8, 30, 9);
    float *cent = malloc(256 * 8 * sizeof(float)), *cent2 = malloc(256 * 8 * sizeof(float));
    kp = (qv_kmeans_params_t){.seed = 11, .objective = hist};
    assert_int_equal(qv_kmeans(y, 4000, 8, 256, &kp, cent, &st), QV_OK);
    print_message("k-means k=256: %u iterations, objective %.1f -> %.1f, %u splits\n", st.iters, hist[0],
                  st.objective, st.empty_splits);
    for (uint32_t i = 1; i <= st.iters; i++)
        if (st.empty_splits == 0)
            assert_true(hist[i] <= hist[i - 1] * (1 + 1e-9));
    assert_true(st.objective < hist[0] * 0.9);
    kp.objective = NULL;
    assert_int_equal(qv_kmeans(y, 4000, 8, 256, &kp, cent2, NULL), QV_OK);
    assert_memory_equal(cent, cent2, 256 * 8 * sizeof(float));
    kp.seed = 12;  /* another seed: other centroids, a similar objective */
    qv_kmeans_stats_t st2;
    assert_int_equal(qv_kmeans(y, 4000, 8, 256, &kp, cent2, &st2), QV_OK);
    assert_true(memcmp(cent, cent2, 256 * 8 * sizeof(float)) != 0);
    assert_true(fabs(st2.objective - st.objective) < 0.1 * st.objective);

    /* Fewer points than centroids: the points themselves. */
    assert_int_equal(qv_kmeans(y, 3, 8, 256, NULL, cent, &st), QV_OK);
    assert_memory_equal(cent, y, 3 * 8 * sizeof(float));
    assert_memory_equal(cent + 3 * 8, y, 8 * sizeof(float));
    assert_true(st.objective == 0.0);
    assert_int_equal(qv_kmeans(y, 0, 8, 4, NULL, cent, NULL), QV_EINVAL);
    assert_int_equal(qv_kmeans(y, 10, 8, 0, NULL, cent, NULL), QV_EINVAL);
    free(cent);
    free(cent2);
    free(y);
    free(x);
}

/* PQ codebooks and codes do not depend on the number of training threads, and repeat for a seed. */
static void test_pq_deterministic(void **state)
{
    (void)state;
    float *v = clustered(3000, DIM, 20, 41);
    qv_pool_t *pool = qv_pool_create(1);
    qv_quant_t *a = train(QV_QUANT_PQ, QV_QUANT_L2, v, 3000, DIM, 8, 10, NULL);
    qv_quant_t *b = train(QV_QUANT_PQ, QV_QUANT_L2, v, 3000, DIM, 8, 10, pool);
    qv_wbuf_t ba, bb;
    qv_wbuf_init(&ba);
    qv_wbuf_init(&bb);
    assert_int_equal(qv_quant_encode_blob(a, &ba), QV_OK);
    assert_int_equal(qv_quant_encode_blob(b, &bb), QV_OK);
    assert_int_equal(ba.len, bb.len);
    assert_memory_equal(ba.data, bb.data, ba.len);
    /* A sample smaller than n draws the same rows for the same seed. */
    qv_quant_params_t p = {.kind = QV_QUANT_PQ, .pq_m = 4, .pq_iters = 5, .pq_sample = 700, .seed = 9};
    qv_quant_t *c, *d;
    assert_int_equal(qv_quant_train(&p, v, 3000, DIM, 0, pool, NULL, NULL, &c), QV_OK);
    assert_int_equal(qv_quant_train(&p, v, 3000, DIM, 0, NULL, NULL, NULL, &d), QV_OK);
    qv_wbuf_free(&ba);
    qv_wbuf_free(&bb);
    qv_wbuf_init(&ba);
    qv_wbuf_init(&bb);
    assert_int_equal(qv_quant_encode_blob(c, &ba), QV_OK);
    assert_int_equal(qv_quant_encode_blob(d, &bb), QV_OK);
    assert_memory_equal(ba.data, bb.data, ba.len);
    /* cancellation */
    int cancel = 1;
    qv_quant_t *e = (qv_quant_t *)1;
    assert_int_equal(qv_quant_train(&p, v, 3000, DIM, 0, pool, &cancel, NULL, &e), QV_ECANCELLED);
    assert_null(e);
    qv_wbuf_free(&ba);
    qv_wbuf_free(&bb);
    qv_quant_free(a);
    qv_quant_free(b);
    qv_quant_free(c);
    qv_quant_free(d);
    qv_pool_destroy(pool);
    free(v);
}

static void test_bad_params(void **state)
{
    (void)state;
    float *v = clustered(100, 30, 3, 5);
    qv_err_t err;
    qv_quant_t *q = (qv_quant_t *)1;
    qv_quant_params_t p = {.kind = QV_QUANT_PQ, .pq_m = 8};  /* 30 % 8 != 0 */
    qv_err_clear(&err);
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 0, NULL, NULL, &err, &q), QV_EINVAL);
    assert_null(q);
    print_message("pq dim 30, m 8: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "m=8"));
    p.pq_m = 31;
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 0, NULL, NULL, &err, &q), QV_EINVAL);
    p.pq_m = 0;  /* default: 6 */
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 0, NULL, NULL, &err, &q), QV_OK);
    assert_int_equal(qv_quant_m(q), 6);
    qv_quant_free(q);
    p.kind = (qv_quant_kind_t)9;
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 0, NULL, NULL, &err, &q), QV_EINVAL);
    p = (qv_quant_params_t){.kind = QV_QUANT_SQ8, .metric = (qv_quant_metric_t)3};
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 0, NULL, NULL, &err, &q), QV_EINVAL);
    p.metric = QV_QUANT_L2;
    assert_int_equal(qv_quant_train(&p, v, 100, 30, 20, NULL, NULL, &err, &q), QV_EINVAL);  /* stride < dim */
    assert_int_equal(qv_quant_train(&p, NULL, 100, 30, 0, NULL, NULL, &err, &q), QV_EINVAL);
    /* n = 0 trains an empty quantiser */
    assert_int_equal(qv_quant_train(&p, NULL, 0, 30, 0, NULL, NULL, &err, &q), QV_OK);
    assert_int_equal(qv_quant_rows(q), 0);
    qv_quant_free(q);
    p.kind = QV_QUANT_PQ;
    assert_int_equal(qv_quant_train(&p, NULL, 0, 30, 0, NULL, NULL, &err, &q), QV_OK);
    qv_quant_free(q);

    /* The HNSW parameters: PQ with m not dividing dim is refused at create, with the message. */
    qv_hnsw_params_t hp = {.quant = QV_HNSW_QUANT_PQ, .pq_m = 7};
    qv_hnsw_t *h = NULL;
    qv_err_clear(&err);
    assert_int_equal(qv_hnsw_create(&hp, v, 100, 30, 0, &err, &h), QV_EINVAL);
    assert_null(h);
    print_message("hnsw pq dim 30, m 7: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "m=7"));
    hp.quant = (qv_hnsw_quant_t)5;
    assert_int_equal(qv_hnsw_create(&hp, v, 100, 30, 0, &err, &h), QV_EINVAL);
    free(v);
}

/* ---- blobs ---- */

typedef int (*decode_fn)(const void *blob, size_t len, void *ctx, void **out);

/* Every single-bit flip of every byte, the values 0x00 and 0xff in every byte, and every truncation: QV_ECORRUPT
 * with nothing returned. Trailing bytes (re-checksummed) too. Returns the number of rejected inputs. */
static size_t corrupt_all(const qv_wbuf_t *b, decode_fn dec, void *ctx)
{
    uint8_t *copy = malloc(b->len + 8);
    size_t rejected = 0;
    for (size_t i = 0; i < b->len; i++) {
        for (int t = 0; t < 10; t++) {
            memcpy(copy, b->data, b->len);
            if (t < 8)
                copy[i] ^= (uint8_t)(1u << t);
            else if (copy[i] != (t == 8 ? 0x00 : 0xff))
                copy[i] = t == 8 ? 0x00 : 0xff;
            else
                continue;
            void *out = (void *)1;
            assert_int_equal(dec(copy, b->len, ctx, &out), QV_ECORRUPT);
            assert_null(out);
            rejected++;
        }
    }
    for (size_t len = 0; len < b->len; len++) {
        void *out = (void *)1;
        assert_int_equal(dec(b->data, len, ctx, &out), QV_ECORRUPT);
        assert_null(out);
        rejected++;
    }
    memcpy(copy, b->data, b->len - 8);
    memset(copy + b->len - 8, 0, 4);
    uint64_t sum = qv_checksum(copy, b->len - 4);
    memcpy(copy + b->len - 4, &sum, 8);
    void *out = NULL;
    assert_int_equal(dec(copy, b->len + 4, ctx, &out), QV_ECORRUPT);
    free(copy);
    return rejected;
}

typedef struct {
    size_t n;
    uint32_t dim;
    const float *v;
} blob_ctx_t;

static int dec_quant(const void *blob, size_t len, void *ctx, void **out)
{
    blob_ctx_t *c = ctx;
    return qv_quant_decode_blob(blob, len, c->n, c->dim, NULL, (qv_quant_t **)out);
}

static int dec_hnsw(const void *blob, size_t len, void *ctx, void **out)
{
    blob_ctx_t *c = ctx;
    return qv_hnsw_decode(blob, len, c->v, c->n, c->dim, 0, NULL, (qv_hnsw_t **)out);
}

static void test_quant_blob_corruption(void **state)
{
    (void)state;
    float *v = clustered(20, 4, 3, 13);
    for (int kind = 1; kind <= 2; kind++) {
        qv_quant_t *q = train((qv_quant_kind_t)kind, QV_QUANT_L2, v, 20, 4, 2, 3, NULL);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        assert_int_equal(qv_quant_encode_blob(q, &b), QV_OK);
        /* round trip: same bytes, same distances */
        qv_quant_t *r = NULL;
        assert_int_equal(qv_quant_decode_blob(b.data, b.len, 20, 4, NULL, &r), QV_OK);
        qv_wbuf_t b2;
        qv_wbuf_init(&b2);
        assert_int_equal(qv_quant_encode_blob(r, &b2), QV_OK);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        /* another n or dim: the blob belongs to other vectors */
        qv_quant_t *o = (qv_quant_t *)1;
        assert_int_equal(qv_quant_decode_blob(b.data, b.len, 19, 4, NULL, &o), QV_ECORRUPT);
        assert_null(o);
        assert_int_equal(qv_quant_decode_blob(b.data, b.len, 20, 5, NULL, &o), QV_ECORRUPT);
        blob_ctx_t ctx = {20, 4, v};
        size_t rejected = corrupt_all(&b, dec_quant, &ctx);
        print_message("%s blob of %zu bytes: %zu corruptions and truncations rejected\n", kind == 1 ? "sq8" : "pq",
                      b.len, rejected);

        /* Forged (checksum recomputed): rejected, or loaded and usable (a code or centroid value changed). */
        uint8_t *copy = malloc(b.len);
        size_t acc = 0, rej = 0;
        for (size_t i = 0; i + 8 < b.len; i++) {
            for (int t = 0; t < 3; t++) {
                memcpy(copy, b.data, b.len);
                uint8_t val = t == 0 ? 0x00 : t == 1 ? 0xff : (uint8_t)(copy[i] + 1);
                if (val == copy[i])
                    continue;
                copy[i] = val;
                uint64_t sum = qv_checksum(copy, b.len - 8);
                memcpy(copy + b.len - 8, &sum, 8);
                qv_quant_t *g = NULL;
                int rc = qv_quant_decode_blob(copy, b.len, 20, 4, NULL, &g);
                if (rc) {
                    assert_int_equal(rc, QV_ECORRUPT);
                    rej++;
                    continue;
                }
                acc++;
                float table[4 * 256];
                qv_quant_prepare(g, v, table);
                for (size_t row = 0; row < 20; row++)
                    (void)qv_quant_dist(g, table, qv_quant_code(g, row));
                qv_quant_free(g);
            }
        }
        print_message("  forged: %zu rejected, %zu accepted (a code or a finite centroid changed)\n", rej, acc);
        assert_true(rej > 0);
        free(copy);
        qv_wbuf_free(&b);
        qv_wbuf_free(&b2);
        qv_quant_free(q);
        qv_quant_free(r);
    }
    free(v);
}

/* ---- HNSW with quantisation ---- */

typedef struct {
    float *base, *queries;
    qv_hnsw_metric_t metric;
    qv_hnsw_t *idx[2];  /* SQ8, PQ m = 8 */
} fixture_t;

static qv_hnsw_t *build(const float *v, size_t n, size_t dim, qv_hnsw_metric_t metric, qv_hnsw_quant_t quant,
                        uint32_t pq_m, uint32_t M, int threads)
{
    qv_hnsw_params_t p = {.metric = metric, .M = M, .ef_construction = 200, .seed = 42, .quant = quant,
                          .pq_m = pq_m};
    qv_hnsw_t *h = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_hnsw_create(&p, v, n, (uint32_t)dim, 0, &err, &h);
    if (rc)
        fail_msg("create: %s", err.msg);
    qv_pool_t *pool = threads > 1 ? qv_pool_create(threads - 1) : NULL;
    assert_int_equal(qv_hnsw_build(h, pool), QV_OK);
    qv_pool_destroy(pool);
    return h;
}

static int setup(void **state, qv_hnsw_metric_t metric)
{
    qv_dist_init(QV_SIMD_AUTO);
    fixture_t *f = calloc(1, sizeof(*f));
    f->metric = metric;
    f->base = clustered(N + NQ, DIM, 40, metric == QV_HNSW_L2 ? 7 : 8);
    if (metric == QV_HNSW_IP)
        normalize_rows(f->base, N + NQ, DIM);
    f->queries = f->base + (size_t)N * DIM;
    f->idx[0] = build(f->base, N, DIM, metric, QV_HNSW_QUANT_SQ8, 0, 16, 2);
    f->idx[1] = build(f->base, N, DIM, metric, QV_HNSW_QUANT_PQ, 8, 16, 2);
    *state = f;
    return 0;
}

static int setup_l2(void **state) { return setup(state, QV_HNSW_L2); }
static int setup_ip(void **state) { return setup(state, QV_HNSW_IP); }

static int teardown(void **state)
{
    fixture_t *f = *state;
    qv_hnsw_free(f->idx[0]);
    qv_hnsw_free(f->idx[1]);
    free(f->base);
    free(f);
    return 0;
}


/* Mean recall@K; checks counts, allowed-only, sorted, and that every returned distance is the exact one. */
static double recall(const fixture_t *f, const qv_hnsw_t *h, const qv_hnsw_search_params_t *sp,
                     const uint64_t *allowed, size_t allowed_count, uint64_t *nrerank)
{
    size_t hits = 0, total = 0;
    const qv_dist_table_t *dt = qv_dist();
    for (size_t q = 0; q < NQ; q++) {
        const float *query = f->queries + q * DIM;
        qv_cand_t got[K], want[K];
        size_t ngot, nwant;
        qv_hnsw_stats_t st;
        assert_int_equal(qv_hnsw_search(h, query, K, sp, got, &ngot, &st), QV_OK);
        assert_int_equal(qv_hnsw_search_exact(h, query, K, allowed, want, &nwant), QV_OK);
        size_t expect = allowed_count < K ? allowed_count : K;
        assert_int_equal(nwant, expect);
        assert_int_equal(ngot, expect);
        if (nrerank)
            *nrerank += st.nrerank;
        for (size_t i = 0; i < ngot; i++) {
            assert_true(got[i].ref < N);
            if (allowed)
                assert_true(qv_bm_get(allowed, got[i].ref));
            if (i)
                assert_true(got[i - 1].dist <= got[i].dist);
            const float *row = f->base + got[i].ref * DIM;
            float exact = f->metric == QV_HNSW_L2 ? dt->l2sq(query, row, DIM) : -dt->dot(query, row, DIM);
            assert_true(fabsf(got[i].dist - exact) <= 1e-4f * (1.0f + fabsf(exact)));
        }
        hits += overlap(got, ngot, want, nwant);
        total += nwant;
    }
    return total ? (double)hits / (double)total : 1.0;
}

static const char *qname(int i) { return i == 0 ? "sq8" : "pq8"; }

static void test_q_recall(void **state)
{
    fixture_t *f = *state;
    const char *mn = f->metric == QV_HNSW_L2 ? "l2" : "ip";
    for (int i = 0; i < 2; i++) {
        qv_hnsw_info_t info;
        qv_hnsw_info(f->idx[i], &info);
        assert_int_equal(info.quant, i == 0 ? QV_HNSW_QUANT_SQ8 : QV_HNSW_QUANT_PQ);
        assert_int_equal(info.code_bytes, i == 0 ? DIM : 8);
        assert_true(info.quant_bytes >= (size_t)N * info.code_bytes);
        assert_true(info.bytes_per_vector * N >= (double)(info.graph_bytes + N * info.code_bytes));
        print_message("%s %s: %zu code bytes/row (floats %zu), index %.1f bytes/row incl. codes, tier %s\n",
                      qname(i), mn, info.code_bytes, DIM * sizeof(float), info.bytes_per_vector, info.quant_tier);
        /* ef = 64 with the default re-rank factor (R = max(64, 4 * 10) = 64) */
        uint64_t nr = 0;
        qv_hnsw_search_params_t sp = {.ef = 64, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
        double r = recall(f, f->idx[i], &sp, NULL, N, &nr);
        print_message("%s %s ef=64 rerank=default: recall@10 %.4f (%.0f re-ranked/query)\n", qname(i), mn, r,
                      (double)nr / NQ);
        assert_true(r >= 0.95);
        assert_true(nr == (uint64_t)NQ * 64);
        /* ef = 16: the default factor keeps 40 candidates beside W; a factor of 10 keeps 100 */
        sp.ef = 16;
        nr = 0;
        double r4 = recall(f, f->idx[i], &sp, NULL, N, &nr);
        assert_true(nr == (uint64_t)NQ * 40);
        sp.rerank = 10;
        double r10 = recall(f, f->idx[i], &sp, NULL, N, NULL);
        sp.rerank = 1;
        double r1 = recall(f, f->idx[i], &sp, NULL, N, NULL);
        print_message("%s %s ef=16: recall@10 %.4f (rerank 1), %.4f (rerank 4), %.4f (rerank 10)\n", qname(i), mn,
                      r1, r4, r10);
        assert_true(r10 >= r1 - 0.01);
    }
}


static void test_q_filtered(void **state)
{
    fixture_t *f = *state;
    uint64_t *bm = calloc(qv_bm_words(N), sizeof(uint64_t));
    const double fracs[] = {0.5, 0.1, 0.01};
    for (int i = 0; i < 2; i++) {
        for (size_t t = 0; t < 3; t++) {
            size_t cnt = random_allowed(bm, N, fracs[t], 100 + t);
            for (int plan = 0; plan < 3; plan++) {  /* graph walk (two-hop below 30%), plain walk, auto */
                qv_hnsw_search_params_t sp = {.ef = 64, .allowed = bm, .allowed_count = cnt,
                                              .plan = plan == 2 ? QV_HNSW_PLAN_AUTO : QV_HNSW_PLAN_GRAPH,
                                              .twohop_below = plan == 1 ? -1.0f : 0.0f};
                double r = recall(f, f->idx[i], &sp, bm, cnt, NULL);
                print_message("%s filtered %4.0f%% (%4zu rows) %-5s: recall@10 %.4f\n", qname(i), fracs[t] * 100,
                              cnt, plan == 0 ? "graph" : plan == 1 ? "plain" : "auto", r);
                if (fracs[t] >= 0.1)
                    assert_true(r >= 0.95);
            }
        }
        /* Deleted rows: the entry point and every query's 3 nearest are not allowed. */
        memset(bm, 0xff, qv_bm_words(N) * sizeof(uint64_t));
        qv_hnsw_info_t info;
        qv_hnsw_info(f->idx[i], &info);
        qv_bm_clear(bm, info.entry);
        for (size_t q = 0; q < NQ; q++) {
            qv_cand_t want[3];
            size_t nw;
            assert_int_equal(qv_hnsw_search_exact(f->idx[i], f->queries + q * DIM, 3, NULL, want, &nw), QV_OK);
            for (size_t j = 0; j < nw; j++)
                qv_bm_clear(bm, want[j].ref);
        }
        size_t cnt = qv_bm_count(bm, N);
        qv_hnsw_search_params_t sp = {.ef = 64, .allowed = bm, .allowed_count = cnt};
        double r = recall(f, f->idx[i], &sp, bm, cnt, NULL);
        print_message("%s with %zu deleted rows: recall@10 %.4f\n", qname(i), (size_t)N - cnt, r);
        assert_true(r >= 0.95);
    }
    free(bm);
}

static void same_results(const qv_hnsw_t *a, const qv_hnsw_t *b, const float *queries, const uint64_t *bm)
{
    for (size_t q = 0; q < NQ; q++) {
        for (int filt = 0; filt < 2; filt++) {
            qv_hnsw_search_params_t sp = {.ef = 40, .allowed = filt ? bm : NULL,
                                          .allowed_count = QV_HNSW_COUNT_UNKNOWN, .plan = QV_HNSW_PLAN_GRAPH};
            qv_cand_t x[K], y[K];
            size_t nx, ny;
            assert_int_equal(qv_hnsw_search(a, queries + q * DIM, K, &sp, x, &nx, NULL), QV_OK);
            assert_int_equal(qv_hnsw_search(b, queries + q * DIM, K, &sp, y, &ny, NULL), QV_OK);
            assert_int_equal(nx, ny);
            for (size_t i = 0; i < nx; i++) {
                assert_int_equal(x[i].ref, y[i].ref);
                assert_true(x[i].dist == y[i].dist);
            }
        }
    }
}

static void test_q_roundtrip(void **state)
{
    fixture_t *f = *state;
    uint64_t *bm = calloc(qv_bm_words(N), sizeof(uint64_t));
    random_allowed(bm, N, 0.1, 5);
    for (int i = 0; i < 2; i++) {
        qv_wbuf_t b, b2;
        qv_wbuf_init(&b);
        qv_wbuf_init(&b2);
        assert_int_equal(qv_hnsw_encode(f->idx[i], &b), QV_OK);
        assert_int_equal(b.data[8], 2);                 /* version */
        assert_int_equal(b.data[10], i == 0 ? 1 : 2);  /* quantisation */
        qv_hnsw_t *g = NULL;
        qv_err_t err;
        qv_err_clear(&err);
        if (qv_hnsw_decode(b.data, b.len, f->base, N, DIM, 0, &err, &g))
            fail_msg("decode: %s", err.msg);
        assert_int_equal(qv_hnsw_validate(g, NULL, NULL), QV_OK);
        assert_int_equal(qv_hnsw_encode(g, &b2), QV_OK);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        qv_hnsw_info_t ia, ib;
        qv_hnsw_info(f->idx[i], &ia);
        qv_hnsw_info(g, &ib);
        assert_int_equal(ia.quant, ib.quant);
        assert_int_equal(ia.pq_m, ib.pq_m);
        assert_int_equal(ia.quant_bytes, ib.quant_bytes);
        same_results(f->idx[i], g, f->queries, bm);
        print_message("%s blob: %zu bytes (%.1f per row), decoded without retraining, same results\n", qname(i),
                      b.len, (double)b.len / N);

        /* The same blob loaded under every SIMD tier: same recall (kernels agree to rounding). */
        for (int tier = QV_SIMD_SCALAR; tier <= QV_SIMD_AVX512; tier++) {
            if (!qv_dist_tier((qv_simd_t)tier))
                continue;
            qv_dist_init((qv_simd_t)tier);
            qv_hnsw_t *t = NULL;
            assert_int_equal(qv_hnsw_decode(b.data, b.len, f->base, N, DIM, 0, NULL, &t), QV_OK);
            qv_hnsw_info_t it;
            qv_hnsw_info(t, &it);
            qv_hnsw_search_params_t sp = {.ef = 64, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
            double r = recall(f, t, &sp, NULL, N, NULL);
            print_message("  tier %s: recall@10 %.4f at ef=64\n", it.quant_tier, r);
            assert_true(r >= 0.95);
            qv_hnsw_free(t);
        }
        qv_dist_init(QV_SIMD_AUTO);
        /* Another n: not these vectors. */
        qv_hnsw_t *o = NULL;
        assert_int_equal(qv_hnsw_decode(b.data, b.len, f->base, N - 1, DIM, 0, NULL, &o), QV_ECORRUPT);
        qv_hnsw_free(g);
        qv_wbuf_free(&b);
        qv_wbuf_free(&b2);
    }
    free(bm);
}

/* Corruption of quantised graph blobs (small: 40 x 4, M = 4, PQ m = 2): every bit flip, 0x00/0xff in every byte,
 * every truncation; a version-1 blob (no quantisation) still loads; a version-1 header that claims a quantiser
 * does not. */
static void test_q_blob_corruption(void **state)
{
    (void)state;
    float *v = clustered(40, 4, 3, 11);
    blob_ctx_t ctx = {40, 4, v};
    for (int qi = 0; qi < 3; qi++) {
        qv_hnsw_quant_t quant = (qv_hnsw_quant_t)qi;
        qv_hnsw_t *h = build(v, 40, 4, QV_HNSW_L2, quant, 2, 4, 1);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        assert_int_equal(qv_hnsw_encode(h, &b), QV_OK);
        if (quant != QV_HNSW_QUANT_NONE) {
            size_t rejected = corrupt_all(&b, dec_hnsw, &ctx);
            print_message("hnsw+%s blob of %zu bytes: %zu corruptions and truncations rejected\n",
                          quant == QV_HNSW_QUANT_SQ8 ? "sq8" : "pq", b.len, rejected);
        } else {
            /* version 1 = this blob with the version byte set to 1 */
            uint8_t *v1 = malloc(b.len);
            memcpy(v1, b.data, b.len);
            v1[8] = 1;
            uint64_t sum = qv_checksum(v1, b.len - 8);
            memcpy(v1 + b.len - 8, &sum, 8);
            qv_hnsw_t *g = NULL;
            assert_int_equal(qv_hnsw_decode(v1, b.len, v, 40, 4, 0, NULL, &g), QV_OK);
            qv_hnsw_info_t info;
            qv_hnsw_info(g, &info);
            assert_int_equal(info.quant, QV_HNSW_QUANT_NONE);
            qv_cand_t x[5], y[5];
            size_t nx, ny;
            assert_int_equal(qv_hnsw_search(h, v, 5, NULL, x, &nx, NULL), QV_OK);
            assert_int_equal(qv_hnsw_search(g, v, 5, NULL, y, &ny, NULL), QV_OK);
            assert_int_equal(nx, ny);
            for (size_t i = 0; i < nx; i++)
                assert_int_equal(x[i].ref, y[i].ref);
            qv_hnsw_free(g);
            v1[10] = 1;  /* version 1 cannot carry a quantiser */
            sum = qv_checksum(v1, b.len - 8);
            memcpy(v1 + b.len - 8, &sum, 8);
            g = (qv_hnsw_t *)1;
            assert_int_equal(qv_hnsw_decode(v1, b.len, v, 40, 4, 0, NULL, &g), QV_ECORRUPT);
            assert_null(g);
            free(v1);
            print_message("version-1 blob loaded (no quantisation)\n");
        }
        qv_wbuf_free(&b);
        qv_hnsw_free(h);
    }
    free(v);
}

/* Tiny indexes (n = 0, 1, 2) with quantisation; cancelling the build while it trains. */
static void test_q_tiny_and_cancel(void **state)
{
    (void)state;
    float v[2 * 4] = {1, 2, 3, 4, 1, 2, 3, 5};
    for (size_t n = 0; n <= 2; n++) {
        for (int qi = 1; qi <= 2; qi++) {
            qv_hnsw_t *h = build(n ? v : NULL, n, 4, QV_HNSW_L2, (qv_hnsw_quant_t)qi, 2, 16, 2);
            qv_cand_t out[4];
            size_t nout = 99;
            assert_int_equal(qv_hnsw_search(h, v, 4, NULL, out, &nout, NULL), QV_OK);
            assert_int_equal(nout, n);
            if (n) {
                assert_int_equal(out[0].ref, 0);
                assert_true(out[0].dist == 0.0f);  /* re-ranked: exact */
            }
            qv_wbuf_t b;
            qv_wbuf_init(&b);
            assert_int_equal(qv_hnsw_encode(h, &b), QV_OK);
            qv_hnsw_t *g = NULL;
            assert_int_equal(qv_hnsw_decode(b.data, b.len, n ? v : NULL, n, 4, 0, NULL, &g), QV_OK);
            assert_int_equal(qv_hnsw_search(g, v, 4, NULL, out, &nout, NULL), QV_OK);
            assert_int_equal(nout, n);
            qv_hnsw_free(g);
            qv_wbuf_free(&b);
            qv_hnsw_free(h);
        }
    }
    float *w = clustered(2000, 16, 5, 3);
    qv_hnsw_params_t p = {.quant = QV_HNSW_QUANT_PQ, .pq_m = 4};
    qv_hnsw_t *h;
    assert_int_equal(qv_hnsw_create(&p, w, 2000, 16, 0, NULL, &h), QV_OK);
    qv_hnsw_cancel(h);
    assert_int_equal(qv_hnsw_build(h, NULL), QV_ECANCELLED);
    qv_hnsw_free(h);
    free(w);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest quant[] = {
        cmocka_unit_test(test_sq8_accuracy),   cmocka_unit_test(test_pq_accuracy),
        cmocka_unit_test(test_sq8_edges),      cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_kmeans),         cmocka_unit_test(test_pq_deterministic),
        cmocka_unit_test(test_bad_params),     cmocka_unit_test(test_quant_blob_corruption),
        cmocka_unit_test(test_q_blob_corruption), cmocka_unit_test(test_q_tiny_and_cancel),
    };
    const struct CMUnitTest hnsw[] = {
        cmocka_unit_test(test_q_recall),
        cmocka_unit_test(test_q_filtered),
        cmocka_unit_test(test_q_roundtrip),
    };
    int fails = 0;
    qv_dist_init(QV_SIMD_AUTO);
    fails += cmocka_run_group_tests_name("quant", quant, NULL, NULL);
    fails += cmocka_run_group_tests_name("hnsw_quant_l2", hnsw, setup_l2, teardown);
    fails += cmocka_run_group_tests_name("hnsw_quant_ip", hnsw, setup_ip, teardown);
    return fails;
}
