/* The CPU implementation of the batched distance + fused top-k kernel (kernels/cuda/knn.cu), step for step: the same
 * plan of query batches and base chunks (qv_k_knn_plan, when a memory limit is given), the same 32 per-lane sorted
 * lists per query with rows dealt to lanes by position in their tile, the same k-round merge of the lanes' heads,
 * and the same merge of a chunk's result into the running one. Slow (one thread, no SIMD); it exists so that the
 * kernel's logic is run and checked against index/topk.h on a machine without a GPU, and as the reference that
 * bench/gpu_check.c compares the device's results with. */
#include <stdlib.h>
#include <string.h>

#include "index/distance.h"
#include "kernels/cpu/kcpu.h"
#include "kernels/cuda/distance.cuh"

/* One query against one chunk of base rows: `lanes` lanes (32 as on the device), tiles of `lanes` rows, then the
 * merge of the lanes' heads. The result does not depend on `lanes`: the k best (distance, id) pairs are the k best
 * however the rows were dealt. */
static void chunk_query(const float *q, const float *chunk, uint32_t rows, uint32_t row0, uint32_t dim, int metric,
                        uint32_t k, const uint64_t *allowed, uint32_t self, uint32_t lanes, float *ld,
                        uint32_t *li, float *od, uint32_t *oi)
{
    uint32_t cnt[QV_K_TILE_ROWS] = {0}, pos[QV_K_TILE_ROWS] = {0};
    for (uint32_t t0 = 0; t0 < rows; t0 += lanes) {
        for (uint32_t lane = 0; lane < lanes; lane++) {
            uint32_t r = t0 + lane;
            if (!qv_k_eligible(r, rows, row0, allowed, self))
                continue;
            float d = qv_k_dist(q, chunk + (size_t)r * dim, dim, metric);
            qv_k_list_offer(ld + lane, li + lane, lanes, &cnt[lane], k, d, row0 + r);
        }
    }
    for (uint32_t round = 0; round < k; round++) {
        float bd = INFINITY;
        uint32_t bi = QV_K_NONE;
        for (uint32_t lane = 0; lane < lanes; lane++) {
            float hd;
            uint32_t hi;
            qv_k_lane_head(ld + lane, li + lane, lanes, cnt[lane], pos[lane], &hd, &hi);
            qv_k_take_better(&bd, &bi, hd, hi);
        }
        od[round] = bd;
        oi[round] = bi;
        if (bi == QV_K_NONE)
            continue;  /* every lane is exhausted: the rest are sentinels too */
        for (uint32_t lane = 0; lane < lanes; lane++)
            if (pos[lane] < cnt[lane] && li[lane + (size_t)pos[lane] * lanes] == bi)
                pos[lane]++;
    }
}

/* The whole k-NN with (distance, id) lists out: nq x k. */
static int knn_lists(const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base, size_t nb,
                     uint32_t dim, uint32_t lanes, float *rd, uint32_t *ri, qv_err_t *err)
{
    uint32_t k = p->k;
    qv_k_knn_plan_t plan = {.qbatch = nq, .bchunk = nb};
    if (p->mem_limit && qv_k_knn_plan(p->mem_limit, nq, nb, dim, k, &plan) != 0)
        return qv_err_set(err, QV_ENOMEM, "knn: %zu bytes cannot hold one batch of %u queries and %u base rows",
                          p->mem_limit, QV_K_KNN_WARPS, QV_K_TILE_ROWS);
    float *ld = malloc((size_t)k * QV_K_TILE_ROWS * sizeof(float));
    uint32_t *li = malloc((size_t)k * QV_K_TILE_ROWS * sizeof(uint32_t));
    float *cd = malloc(2 * (size_t)k * sizeof(float));
    uint32_t *ci = malloc(2 * (size_t)k * sizeof(uint32_t));
    if (!ld || !li || !cd || !ci) {
        free(ld);
        free(li);
        free(cd);
        free(ci);
        return qv_err_set(err, QV_ENOMEM, "knn: out of memory for k=%u", k);
    }
    for (size_t i = 0; i < nq * k; i++) {
        rd[i] = INFINITY;
        ri[i] = QV_K_NONE;
    }
    /* the device's loop order: query batches outside, base chunks inside */
    for (size_t q0 = 0; q0 < nq; q0 += plan.qbatch) {
        size_t qn = qv_k_min_sz(plan.qbatch, nq - q0);
        for (size_t b0 = 0; b0 < nb; b0 += plan.bchunk) {
            uint32_t rows = (uint32_t)qv_k_min_sz(plan.bchunk, nb - b0);
            for (size_t qi = q0; qi < q0 + qn; qi++) {
                uint32_t self = p->exclude_self ? (uint32_t)(p->self_row0 + qi) : QV_K_NONE;
                chunk_query(queries + qi * dim, base + b0 * dim, rows, (uint32_t)b0, dim, (int)p->metric, k,
                            p->allowed, self, lanes, ld, li, cd, ci);
                float *od = rd + qi * k;
                uint32_t *oi = ri + qi * k;
                qv_k_merge_sorted(od, oi, k, cd, ci, k, k, cd + k, ci + k);
                memcpy(od, cd + k, k * sizeof(float));
                memcpy(oi, ci + k, k * sizeof(uint32_t));
            }
        }
    }
    free(ld);
    free(li);
    free(cd);
    free(ci);
    return QV_OK;
}

int qv_kcpu_knn(const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base, size_t nb,
                uint32_t dim, qv_cand_t *out, qv_err_t *err)
{
    int rc = qv_kcheck_knn(p, queries, nq, base, nb, dim, out, err);
    if (rc || nq == 0)
        return rc;
    size_t total = nq * p->k;
    float *rd = malloc(total * sizeof(float));
    uint32_t *ri = malloc(total * sizeof(uint32_t));
    if (!rd || !ri) {
        free(rd);
        free(ri);
        return qv_err_set(err, QV_ENOMEM, "knn: out of memory for %zu x %u results", nq, p->k);
    }
    if (nb == 0) {
        for (size_t i = 0; i < total; i++) {
            rd[i] = INFINITY;
            ri[i] = QV_K_NONE;
        }
    } else {
        rc = knn_lists(p, queries, nq, base, nb, dim, QV_K_TILE_ROWS, rd, ri, err);
    }
    for (size_t i = 0; rc == QV_OK && i < total; i++) {
        out[i].dist = rd[i];
        out[i].ref = ri[i] == QV_K_NONE ? QV_GPU_NO_ROW : ri[i];
    }
    free(rd);
    free(ri);
    return rc;
}

/* The graph build's k-NN lists on the CPU: the same answer as the lane-by-lane version above (the k best (distance,
 * id) pairs of every row), with Quiver's SIMD distance kernels (index/distance.h) and one sorted list per row, which
 * is what makes a CPU build of a 5k-row test graph take a second rather than ten. The distances differ from
 * qv_k_dist's in the last bits (another summation order), as the device's do. */
static int cpu_knn_ids(void *ctx, const float *x, size_t n, uint32_t dim, int metric, uint32_t k, size_t mem_limit,
                       uint32_t *ids, qv_err_t *err)
{
    (void)ctx;
    (void)mem_limit;
    qv_gpu_knn_params_t p = {.metric = (qv_gpu_metric_t)metric, .k = k, .exclude_self = 1};
    int rc = qv_kcheck_knn(&p, x, n, x, n, dim, (const qv_cand_t *)ids, err);
    if (rc || n == 0)
        return rc;
    float *ld = malloc((size_t)k * sizeof(float));
    if (!ld)
        return qv_err_set(err, QV_ENOMEM, "knn: out of memory for k=%u", k);
    const qv_dist_table_t *dt = qv_dist();
    for (size_t i = 0; i < n; i++) {
        uint32_t *li = ids + i * k, cnt = 0;
        const float *q = x + i * dim;
        for (size_t r = 0; r < n; r++) {
            if (r == i)
                continue;
            float d = metric == QV_K_IP ? -dt->dot(q, x + r * dim, dim) : dt->l2sq(q, x + r * dim, dim);
            if (cnt == k && !qv_k_before(d, (uint32_t)r, ld[k - 1], li[k - 1]))
                continue;
            qv_k_list_offer(ld, li, 1, &cnt, k, d, (uint32_t)r);
        }
        for (uint32_t j = cnt; j < k; j++)
            li[j] = QV_K_NONE;
    }
    free(ld);
    return QV_OK;
}

static int cpu_prune_merge(void *ctx, const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links,
                           uint32_t *nlinks, qv_err_t *err)
{
    (void)ctx;
    return qv_kcpu_prune_merge(knn, n, k, deg, links, nlinks, err);
}

static int cpu_kmeans(void *ctx, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                      float *cent, uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    (void)ctx;
    return qv_kcpu_kmeans(p, x, n, dim, cent, assign, stats, err);
}

static int cpu_pq_encode(void *ctx, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                         uint8_t *codes, qv_err_t *err)
{
    (void)ctx;
    return qv_kcpu_pq_encode(codebooks, m, x, n, dim, codes, err);
}

static int cpu_sq8_encode(void *ctx, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                          uint8_t *codes, qv_err_t *err)
{
    (void)ctx;
    return qv_kcpu_sq8_encode(x, n, dim, vmin, scale, codes, err);
}

static const qv_kbackend_t cpu_backend = {
    .ctx = NULL,
    .knn_ids = cpu_knn_ids,
    .prune_merge = cpu_prune_merge,
    .kmeans = cpu_kmeans,
    .pq_encode = cpu_pq_encode,
    .sq8_encode = cpu_sq8_encode,
};

const qv_kbackend_t *qv_kcpu_backend(void) { return &cpu_backend; }
