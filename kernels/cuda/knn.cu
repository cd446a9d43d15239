/* Batched distance with fused top-k selection on the device: the kernel described at the top of
 * kernels/cuda/distance.cuh, and its host driver (query batches, base chunks, merging of the chunks' results).
 *
 * Driver. The memory budget (cudaMemGetInfo less a reserve, or the caller's mem_limit) is cut by qv_k_knn_plan into
 * a base chunk and a query batch. The loop runs query batches outside and base chunks inside, so that a batch's
 * running top-k (3 k-lists per query: running, chunk, merged) lives on the device only while the batch runs; when
 * the base is one chunk it is uploaded once for all batches, otherwise each chunk is uploaded once per batch
 * (that is the price of a base larger than the device's memory). When queries and base are the same matrix (the
 * k-NN graph) and the base is resident, queries are read from the base's copy. Everything runs on the context's
 * one stream; host buffers are pageable (cudaMemcpyAsync then degrades to synchronous copies, which is what a
 * one-stream driver does anyway). */
#include <stdlib.h>

#include "kernels/cuda/distance.cuh"
#include "kernels/cuda/plugin.cuh"

#define KNN_THREADS (QV_K_KNN_WARPS * 32)
#define FULL_MASK 0xFFFFFFFFu

/* One block = QV_K_KNN_WARPS queries (one per warp) against rows [0, rows) of a chunk whose first row is global row
 * row0. Writes each query's sorted k best of the chunk to out (k entries, sentinels past the eligible rows). lane_d /
 * lane_i: per-query scratch of 32 interleaved lane lists (k x 32). */
__global__ void __launch_bounds__(KNN_THREADS)
knn_chunk_kernel(const float *__restrict__ q, uint32_t nq, const float *__restrict__ base, uint32_t rows,
                 uint32_t row0, uint32_t dim, int metric, uint32_t k, const uint64_t *__restrict__ allowed,
                 uint32_t self0, float *lane_d, uint32_t *lane_i, float *out_d, uint32_t *out_i)
{
    __shared__ float qs[QV_K_KNN_WARPS][QV_K_TILE_DIMS];
    __shared__ float bs[QV_K_TILE_ROWS][QV_K_TILE_DIMS + 1];  /* +1: lanes reading one column hit distinct banks */
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t qi = blockIdx.x * QV_K_KNN_WARPS + warp;
    const bool active = qi < nq;
    const size_t qslot = active ? qi : 0;
    float *ld = lane_d + qslot * (size_t)k * 32 + lane;
    uint32_t *li = lane_i + qslot * (size_t)k * 32 + lane;
    const uint32_t self = self0 == QV_K_NONE || !active ? QV_K_NONE : self0 + qi;
    uint32_t cnt = 0, worst_i = QV_K_NONE;
    float worst_d = INFINITY;

    for (uint32_t t0 = 0; t0 < rows; t0 += QV_K_TILE_ROWS) {
        float acc = 0.0f;
        for (uint32_t d0 = 0; d0 < dim; d0 += QV_K_TILE_DIMS) {
            const uint32_t dl = dim - d0 < QV_K_TILE_DIMS ? dim - d0 : QV_K_TILE_DIMS;
            for (uint32_t e = threadIdx.x; e < QV_K_TILE_ROWS * QV_K_TILE_DIMS; e += KNN_THREADS) {
                const uint32_t r = e / QV_K_TILE_DIMS, c = e % QV_K_TILE_DIMS, row = t0 + r;
                bs[r][c] = row < rows && c < dl ? base[(size_t)row * dim + d0 + c] : 0.0f;
            }
            {
                const uint32_t qq = blockIdx.x * QV_K_KNN_WARPS + warp;
                qs[warp][lane] = qq < nq && lane < dl ? q[(size_t)qq * dim + d0 + lane] : 0.0f;
            }
            __syncthreads();
            acc = qv_k_accum(acc, qs[warp], bs[lane], dl, metric);
            __syncthreads();
        }
        const uint32_t r = t0 + lane;
        if (active && qv_k_eligible(r, rows, row0, allowed, self)) {
            const float d = qv_k_finish(acc, metric);
            if (cnt < k || qv_k_before(d, row0 + r, worst_d, worst_i)) {
                qv_k_list_offer(ld, li, 32, &cnt, k, d, row0 + r);
                if (cnt == k) {
                    worst_d = ld[(size_t)(k - 1) * 32];
                    worst_i = li[(size_t)(k - 1) * 32];
                }
            }
        }
    }

    /* merge the 32 lane lists: k rounds of a warp-wide minimum of the heads */
    uint32_t pos = 0;
    float *od = out_d + qslot * k;
    uint32_t *oi = out_i + qslot * k;
    for (uint32_t round = 0; round < k; round++) {
        float hd, bd;
        uint32_t hi, bi;
        qv_k_lane_head(ld, li, 32, cnt, pos, &hd, &hi);
        bd = hd;
        bi = hi;
        for (int off = 16; off >= 1; off /= 2) {
            const float od_ = __shfl_xor_sync(FULL_MASK, bd, off);
            const uint32_t oi_ = __shfl_xor_sync(FULL_MASK, bi, off);
            qv_k_take_better(&bd, &bi, od_, oi_);
        }
        if (lane == 0 && active) {
            od[round] = bd;
            oi[round] = bi;
        }
        if (bi != QV_K_NONE && hi == bi)
            pos++;
    }
}

/* run := the k best of run and chunk (per query, one thread each); the result goes to dst (run's ping-pong twin). */
__global__ void knn_merge_kernel(uint32_t nq, uint32_t k, const float *run_d, const uint32_t *run_i,
                                 const float *chunk_d, const uint32_t *chunk_i, float *dst_d, uint32_t *dst_i)
{
    const uint32_t qi = blockIdx.x * blockDim.x + threadIdx.x;
    if (qi >= nq)
        return;
    const size_t o = (size_t)qi * k;
    qv_k_merge_sorted(run_d + o, run_i + o, k, chunk_d + o, chunk_i + o, k, k, dst_d + o, dst_i + o);
}

int qv_g_knn_lists(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base,
                   size_t nb, uint32_t dim, float *od, uint32_t *oi, qv_err_t *err)
{
    const uint32_t k = p->k;
    size_t budget;
    int rc = qv_g_budget(g, p->mem_limit, &budget, err);
    if (rc)
        return rc;
    qv_k_knn_plan_t plan;
    if (qv_k_knn_plan(budget, nq, nb, dim, k, &plan) != 0)
        return qv_err_set(err, QV_ENOMEM, "knn: %zu MiB of device memory cannot hold one batch (%u queries, %u base "
                                          "rows of %u floats, k=%u)", budget >> 20, QV_K_KNN_WARPS, QV_K_TILE_ROWS,
                          dim, k);
    const bool resident = plan.bchunk >= nb, self_is_base = queries == base && p->exclude_self && p->self_row0 == 0;
    qv_dbuf<float> d_base, d_q, lane_d, run_d, chunk_d, tmp_d;
    qv_dbuf<uint32_t> lane_i, run_i, chunk_i, tmp_i;
    qv_dbuf<uint64_t> d_allowed;
    if ((rc = d_base.alloc(g, plan.bchunk * dim, "knn base chunk", err)) ||
        (!(resident && self_is_base) && (rc = d_q.alloc(g, plan.qbatch * dim, "knn queries", err))) ||
        (rc = lane_d.alloc(g, plan.qbatch * k * 32, "knn lane lists", err)) ||
        (rc = lane_i.alloc(g, plan.qbatch * k * 32, "knn lane lists", err)) ||
        (rc = run_d.alloc(g, plan.qbatch * k, "knn results", err)) ||
        (rc = run_i.alloc(g, plan.qbatch * k, "knn results", err)))
        return rc;
    if (!resident && ((rc = chunk_d.alloc(g, plan.qbatch * k, "knn chunk results", err)) ||
                      (rc = chunk_i.alloc(g, plan.qbatch * k, "knn chunk results", err)) ||
                      (rc = tmp_d.alloc(g, plan.qbatch * k, "knn merge", err)) ||
                      (rc = tmp_i.alloc(g, plan.qbatch * k, "knn merge", err))))
        return rc;
    if (p->allowed) {
        size_t words = (nb + 63) / 64;
        if ((rc = d_allowed.alloc(g, words, "knn filter bitmap", err)))
            return rc;
        QV_CU(g, cudaMemcpyAsync(d_allowed.p, p->allowed, words * 8, cudaMemcpyHostToDevice, g->stream), err);
    }
    if (resident)
        QV_CU(g, cudaMemcpyAsync(d_base.p, base, nb * dim * sizeof(float), cudaMemcpyHostToDevice, g->stream), err);

    for (size_t q0 = 0; q0 < nq; q0 += plan.qbatch) {
        const uint32_t qn = (uint32_t)(nq - q0 < plan.qbatch ? nq - q0 : plan.qbatch);
        const float *dq;
        if (resident && self_is_base) {
            dq = d_base.p + q0 * dim;
        } else {
            QV_CU(g, cudaMemcpyAsync(d_q.p, queries + q0 * dim, (size_t)qn * dim * sizeof(float),
                                     cudaMemcpyHostToDevice, g->stream), err);
            dq = d_q.p;
        }
        const uint32_t self0 = p->exclude_self ? (uint32_t)(p->self_row0 + q0) : QV_K_NONE;
        float *rd = run_d.p, *td = tmp_d.p;
        uint32_t *ri = run_i.p, *ti = tmp_i.p;
        for (size_t b0 = 0; b0 < nb; b0 += plan.bchunk) {
            const uint32_t rows = (uint32_t)(nb - b0 < plan.bchunk ? nb - b0 : plan.bchunk);
            if (!resident)
                QV_CU(g, cudaMemcpyAsync(d_base.p, base + b0 * dim, (size_t)rows * dim * sizeof(float),
                                         cudaMemcpyHostToDevice, g->stream), err);
            const bool first = b0 == 0;
            knn_chunk_kernel<<<qv_g_blocks(qn, QV_K_KNN_WARPS), KNN_THREADS, 0, g->stream>>>(
                dq, qn, d_base.p, rows, (uint32_t)b0, dim, (int)p->metric, k, d_allowed.p, self0, lane_d.p, lane_i.p,
                first ? rd : chunk_d.p, first ? ri : chunk_i.p);
            QV_LAUNCHED(g, "knn_chunk_kernel", err);
            if (!first) {
                knn_merge_kernel<<<qv_g_blocks(qn, 128), 128, 0, g->stream>>>(qn, k, rd, ri, chunk_d.p, chunk_i.p,
                                                                              td, ti);
                QV_LAUNCHED(g, "knn_merge_kernel", err);
                float *sd = rd;
                rd = td;
                td = sd;
                uint32_t *si = ri;
                ri = ti;
                ti = si;
            }
        }
        QV_CU(g, cudaMemcpyAsync(od + q0 * k, rd, (size_t)qn * k * sizeof(float), cudaMemcpyDeviceToHost, g->stream),
              err);
        QV_CU(g, cudaMemcpyAsync(oi + q0 * k, ri, (size_t)qn * k * sizeof(uint32_t), cudaMemcpyDeviceToHost,
                                 g->stream), err);
        QV_CU(g, cudaStreamSynchronize(g->stream), err);
    }
    return QV_OK;
}
