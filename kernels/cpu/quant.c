/* The quantiser build's driver (sampling, one k-means per PQ sub-quantiser, encoding, the blob) and the CPU
 * implementation of its steps (k-means, PQ and SQ8 encoding) with the per-element logic of kernels/cuda/kmeans.cuh
 * and quant.cuh. The driver follows index/quant/pq.c decision for decision -- the same sample (a partial
 * Fisher-Yates draw from the seed, sorted), the same per-sub-quantiser seeds, the same default m, iterations and
 * sample size -- so that a GPU-trained quantiser is the one qv_quant_train would train, to float rounding. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kcpu.h"
#include "kernels/cuda/kmeans.cuh"
#include "kernels/cuda/quant.cuh"

#define PQ_DEFAULT_ITERS 25
#define PQ_DEFAULT_SAMPLE (256 * 64)

int qv_kcheck_kmeans(const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, const float *cent,
                     qv_err_t *err)
{
    if (!p || !x || !cent)
        return qv_err_set(err, QV_EINVAL, "kmeans: NULL argument");
    if (n == 0 || dim == 0 || p->k == 0)
        return qv_err_set(err, QV_EINVAL, "kmeans: n=%zu, dim=%u and k=%u must be positive", n, dim, p->k);
    if (p->iters > 1000)
        return qv_err_set(err, QV_EINVAL, "kmeans: %u iterations is too many (at most 1000)", p->iters);
    if (n > QV_GPU_MAX_ROWS || (size_t)p->k * dim > ((size_t)1 << 31))
        return qv_err_set(err, QV_EINVAL, "kmeans: %zu points or %u x %u centroids too many", n, p->k, dim);
    return QV_OK;
}

int qv_kcpu_kmeans(const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, float *cent,
                   uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    int rc = qv_kcheck_kmeans(p, x, n, dim, cent, err);
    if (rc)
        return rc;
    qv_gpu_kmeans_stats_t st = {0};
    uint32_t k = p->k, iters = p->iters ? p->iters : PQ_DEFAULT_ITERS;
    uint32_t *as = malloc(n * sizeof(uint32_t));
    double *d2 = malloc(n * sizeof(double));
    double *sums = malloc((size_t)k * dim * sizeof(double));
    uint64_t *counts = malloc((size_t)k * sizeof(uint64_t));
    if (!as || !d2 || !sums || !counts) {
        rc = qv_err_set(err, QV_ENOMEM, "kmeans: out of memory for %zu points", n);
        goto out;
    }
    if (n <= k) {  /* every point is a centroid; the surplus repeat them (kmeans.c) */
        for (size_t c = 0; c < k; c++)
            memcpy(cent + c * dim, x + (c % n) * dim, dim * sizeof(float));
    } else {
        qv_k_kmeanspp(x, n, dim, k, p->seed, cent, d2);
    }
    for (size_t i = 0; i < n; i++)
        as[i] = UINT32_MAX;
    for (uint32_t it = 0;; it++) {
        /* assignment (one thread per point on the device) */
        size_t changed = 0;
        double obj = 0.0;
        for (size_t i = 0; i < n; i++) {
            float bd;
            uint32_t a = qv_k_nearest(x + i * dim, cent, k, dim, &bd);
            changed += as[i] != a;
            as[i] = a;
            obj += bd;
        }
        st.objective = obj;
        st.iters = it;
        if (n <= k || it == iters || (it > 0 && qv_k_converged(changed, n)))
            break;
        /* update: sums (atomics on the device), then the host step */
        memset(sums, 0, (size_t)k * dim * sizeof(double));
        memset(counts, 0, (size_t)k * sizeof(uint64_t));
        for (size_t i = 0; i < n; i++)
            qv_k_accumulate(sums, counts, x + i * dim, as[i], dim);
        st.empty_splits += qv_k_update(sums, counts, k, dim, cent);
    }
    if (assign)
        memcpy(assign, as, n * sizeof(uint32_t));
    if (stats)
        *stats = st;
out:
    free(as);
    free(d2);
    free(sums);
    free(counts);
    return rc;
}

int qv_kcpu_pq_encode(const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim, uint8_t *codes,
                      qv_err_t *err)
{
    if (!codebooks || (n && (!x || !codes)) || m == 0 || dim == 0 || dim % m != 0)
        return qv_err_set(err, QV_EINVAL, "pq encode: bad arguments (m=%u, dim=%u)", m, dim);
    uint32_t dsub = dim / m;
    for (size_t r = 0; r < n; r++)
        for (uint32_t j = 0; j < m; j++)
            codes[r * m + j] = qv_k_pq_code(x + r * dim + (size_t)j * dsub,
                                            codebooks + (size_t)j * QV_K_PQ_KSUB * dsub, dsub);
    return QV_OK;
}

int qv_kcpu_sq8_encode(const float *x, size_t n, uint32_t dim, float *vmin, float *scale, uint8_t *codes,
                       qv_err_t *err)
{
    if (!vmin || !scale || (n && (!x || !codes)) || dim == 0)
        return qv_err_set(err, QV_EINVAL, "sq8 encode: bad arguments");
    for (uint32_t j = 0; j < dim; j++) {  /* one thread per dimension on the device */
        float mn = INFINITY, mx = -INFINITY;
        for (size_t r = 0; r < n; r++)
            qv_k_sq8_range(x[r * dim + j], &mn, &mx);
        qv_k_sq8_finish(mn, mx, vmin + j, scale + j);
    }
    for (size_t r = 0; r < n; r++)
        for (uint32_t j = 0; j < dim; j++)
            codes[r * dim + j] = qv_k_sq8_code(x[r * dim + j], vmin[j], scale[j]);
    return QV_OK;
}

int qv_kcheck_quant(const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim, uint32_t *m_out,
                    qv_err_t *err)
{
    if (!p || (n && !x))
        return qv_err_set(err, QV_EINVAL, "quant: NULL argument");
    if (p->kind != QV_GPU_QUANT_SQ8 && p->kind != QV_GPU_QUANT_PQ)
        return qv_err_set(err, QV_EINVAL, "quant: unknown kind %d", (int)p->kind);
    if (p->metric != QV_GPU_L2 && p->metric != QV_GPU_IP)
        return qv_err_set(err, QV_EINVAL, "quant: unknown metric %d", (int)p->metric);
    if (dim == 0 || dim > 65536)
        return qv_err_set(err, QV_EINVAL, "quant: dim=%u outside [1, 65536]", dim);
    if (n > QV_GPU_MAX_ROWS)
        return qv_err_set(err, QV_EINVAL, "quant: %zu rows exceed %u", n, QV_GPU_MAX_ROWS);
    uint32_t m = 0;
    if (p->kind == QV_GPU_QUANT_PQ) {
        m = p->pq_m ? p->pq_m : qv_k_pq_default_m(dim);
        if (m > dim || dim % m != 0)
            return qv_err_set(err, QV_EINVAL, "pq: dim %u is not a multiple of m=%u", dim, m);
        if (p->pq_iters > 1000)
            return qv_err_set(err, QV_EINVAL, "pq: %u iterations is too many (at most 1000)", p->pq_iters);
    }
    *m_out = m;
    return QV_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int build_pq(const qv_kbackend_t *be, const qv_gpu_quant_params_t *p, const float *x, size_t n,
                    uint32_t dim, uint32_t m, qv_wbuf_t *out, qv_err_t *err)
{
    uint32_t dsub = dim / m;
    float *cent = calloc((size_t)dim * QV_K_PQ_KSUB, sizeof(float));
    uint8_t *codes = malloc(n * m + 1);
    uint32_t *rows = NULL;
    float *sub = NULL;
    int rc = QV_OK;
    if (!cent || !codes) {
        rc = qv_err_set(err, QV_ENOMEM, "pq: out of memory for %zu codes", n);
        goto out;
    }
    if (n > 0) {
        size_t ns = p->pq_sample ? p->pq_sample : PQ_DEFAULT_SAMPLE;
        if (ns > n)
            ns = n;
        if (ns < n) {  /* pq.c's sample: partial Fisher-Yates from the seed, then sorted */
            rows = malloc(n * sizeof(uint32_t));
            if (!rows) {
                rc = qv_err_set(err, QV_ENOMEM, "pq: out of memory for the training sample");
                goto out;
            }
            for (size_t i = 0; i < n; i++)
                rows[i] = (uint32_t)i;
            uint64_t st = p->seed;
            for (size_t i = 0; i < ns; i++) {
                st = qv_k_splitmix64(st);
                size_t r = i + (size_t)(st % (uint64_t)(n - i));
                uint32_t t = rows[i];
                rows[i] = rows[r];
                rows[r] = t;
            }
            qsort(rows, ns, sizeof(uint32_t), cmp_u32);
        }
        sub = malloc(ns * dsub * sizeof(float));
        if (!sub) {
            rc = qv_err_set(err, QV_ENOMEM, "pq: out of memory for the training sample");
            goto out;
        }
        for (uint32_t j = 0; j < m && rc == QV_OK; j++) {
            for (size_t i = 0; i < ns; i++) {
                size_t r = rows ? rows[i] : i;
                memcpy(sub + i * dsub, x + r * dim + (size_t)j * dsub, dsub * sizeof(float));
            }
            qv_gpu_kmeans_params_t kp = {.k = QV_K_PQ_KSUB, .iters = p->pq_iters ? p->pq_iters : PQ_DEFAULT_ITERS,
                                         .seed = qv_k_splitmix64(p->seed ^ qv_k_splitmix64((uint64_t)j + 1))};
            rc = be->kmeans(be->ctx, &kp, sub, ns, dsub, cent + (size_t)j * QV_K_PQ_KSUB * dsub, NULL, NULL, err);
        }
        if (rc == QV_OK)
            rc = be->pq_encode(be->ctx, cent, m, x, n, dim, codes, err);
    }
    if (rc == QV_OK && qv_kblob_pq((int)p->metric, dim, m, n, cent, codes, out) != QV_OK)
        rc = qv_err_set(err, QV_ENOMEM, "pq: out of memory for the blob");
out:
    free(cent);
    free(codes);
    free(rows);
    free(sub);
    return rc;
}

int qv_kquant_build(const qv_kbackend_t *be, const qv_gpu_quant_params_t *p, const float *x, size_t n,
                    uint32_t dim, qv_wbuf_t *out, qv_err_t *err)
{
    uint32_t m;
    int rc = qv_kcheck_quant(p, x, n, dim, &m, err);
    if (rc)
        return rc;
    if (p->kind == QV_GPU_QUANT_PQ)
        return build_pq(be, p, x, n, dim, m, out, err);
    float *vmin = malloc(dim * sizeof(float)), *scale = malloc(dim * sizeof(float));
    uint8_t *codes = malloc(n * dim + 1);
    if (!vmin || !scale || !codes) {
        rc = qv_err_set(err, QV_ENOMEM, "sq8: out of memory for %zu codes", n);
    } else {
        rc = be->sq8_encode(be->ctx, x, n, dim, vmin, scale, codes, err);
        if (rc == QV_OK && qv_kblob_sq8((int)p->metric, dim, n, vmin, scale, codes, out) != QV_OK)
            rc = qv_err_set(err, QV_ENOMEM, "sq8: out of memory for the blob");
    }
    free(vmin);
    free(scale);
    free(codes);
    return rc;
}
