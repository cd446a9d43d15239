/* PQ and SQ8 encoding of a segment on the device (the per-element logic of kernels/cuda/quant.cuh). Rows are
 * streamed in chunks sized from the memory budget; codes come back chunk by chunk.
 *
 * SQ8 ranges: a first pass over the rows computes per-dimension [min, max] as a grid of (dimension, slice)
 * partials -- thread (j, s) folds rows s, s + S, s + 2S, ... of dimension j, so a warp reads 32 consecutive floats
 * of a row -- folded across chunks in place and reduced over the slices by one thread per dimension. min and max
 * are exact, so the result is the CPU's bit for bit whatever the order. A second pass encodes. */
#include <stdlib.h>

#include "kernels/cuda/plugin.cuh"
#include "kernels/cuda/quant.cuh"

#define SQ8_SLICES 256
#define Q_THREADS 256

__global__ void sq8_init_kernel(uint32_t count, float *pmin, float *pmax)
{
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) {
        pmin[i] = INFINITY;
        pmax[i] = -INFINITY;
    }
}

/* grid (ceil(dim / 128), SQ8_SLICES) x 128 threads */
__global__ void sq8_range_kernel(const float *__restrict__ x, uint32_t rows, uint32_t dim, float *pmin, float *pmax)
{
    const uint32_t j = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
    if (j >= dim)
        return;
    float mn = pmin[(size_t)s * dim + j], mx = pmax[(size_t)s * dim + j];
    for (uint32_t r = s; r < rows; r += SQ8_SLICES)
        qv_k_sq8_range(x[(size_t)r * dim + j], &mn, &mx);
    pmin[(size_t)s * dim + j] = mn;
    pmax[(size_t)s * dim + j] = mx;
}

__global__ void sq8_finish_kernel(uint32_t dim, const float *pmin, const float *pmax, float *vmin, float *scale)
{
    const uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dim)
        return;
    float mn = INFINITY, mx = -INFINITY;
    for (uint32_t s = 0; s < SQ8_SLICES; s++) {
        mn = fminf(mn, pmin[(size_t)s * dim + j]);
        mx = fmaxf(mx, pmax[(size_t)s * dim + j]);
    }
    qv_k_sq8_finish(mn, mx, vmin + j, scale + j);
}

__global__ void sq8_encode_kernel(const float *__restrict__ x, size_t count, uint32_t dim,
                                  const float *__restrict__ vmin, const float *__restrict__ scale, uint8_t *codes)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= count)
        return;
    const uint32_t j = (uint32_t)(e % dim);
    codes[e] = qv_k_sq8_code(x[e], vmin[j], scale[j]);
}

/* one thread per (row, sub-quantiser) */
__global__ void pq_encode_kernel(const float *__restrict__ x, uint32_t rows, uint32_t dim, uint32_t m,
                                 uint32_t dsub, const float *__restrict__ cent, uint8_t *codes)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * m)
        return;
    const size_t r = e / m;
    const uint32_t j = (uint32_t)(e % m);
    codes[e] = qv_k_pq_code(x + r * dim + (size_t)j * dsub, cent + (size_t)j * QV_K_PQ_KSUB * dsub, dsub);
}

/* Rows per chunk: what fits after `fixed` bytes, at `per_row` bytes a row. */
static int chunk_rows(qv_gpu_t *g, size_t n, size_t fixed, size_t per_row, size_t *rows, const char *what,
                      qv_err_t *err)
{
    size_t budget;
    int rc = qv_g_budget(g, 0, &budget, err);
    if (rc)
        return rc;
    size_t c = budget > fixed ? (budget - fixed) / per_row : 0;
    if (c > n)
        c = n;
    if (c > ((size_t)1 << 30) / (per_row ? per_row : 1) && c > 1024)
        c = ((size_t)1 << 30) / per_row;  /* chunks of ~1 GiB keep every index in 32 bits per launch */
    if (c == 0)
        return qv_err_set(err, QV_ENOMEM, "%s: %zu MiB of device memory cannot hold one row", what, budget >> 20);
    *rows = c;
    return QV_OK;
}

int qv_g_sq8_encode(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale, uint8_t *codes,
                    qv_err_t *err)
{
    const size_t fixed = (size_t)SQ8_SLICES * dim * 8 + (size_t)dim * 8;
    size_t chunk = 0;
    int rc = chunk_rows(g, n, fixed, (size_t)dim * 5, &chunk, "sq8 encode", err);
    if (rc)
        return rc;
    qv_dbuf<float> d_x, pmin, pmax, d_vmin, d_scale;
    qv_dbuf<uint8_t> d_codes;
    if ((rc = d_x.alloc(g, chunk * dim, "sq8 rows", err)) ||
        (rc = pmin.alloc(g, (size_t)SQ8_SLICES * dim, "sq8 ranges", err)) ||
        (rc = pmax.alloc(g, (size_t)SQ8_SLICES * dim, "sq8 ranges", err)) ||
        (rc = d_vmin.alloc(g, dim, "sq8 vmin", err)) || (rc = d_scale.alloc(g, dim, "sq8 scale", err)) ||
        (rc = d_codes.alloc(g, chunk * dim, "sq8 codes", err)))
        return rc;
    const bool resident = chunk == n;
    const uint32_t slots = SQ8_SLICES * dim;
    sq8_init_kernel<<<qv_g_blocks(slots, Q_THREADS), Q_THREADS, 0, g->stream>>>(slots, pmin.p, pmax.p);
    QV_LAUNCHED(g, "sq8_init_kernel", err);
    /* pass 1: ranges */
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        const uint32_t rows = (uint32_t)(n - r0 < chunk ? n - r0 : chunk);
        if (!resident || r0 == 0)
            QV_CU(g, cudaMemcpyAsync(d_x.p, x + r0 * dim, (size_t)rows * dim * sizeof(float), cudaMemcpyHostToDevice,
                                     g->stream), err);
        dim3 grid(qv_g_blocks(dim, 128), SQ8_SLICES);
        sq8_range_kernel<<<grid, 128, 0, g->stream>>>(d_x.p, rows, dim, pmin.p, pmax.p);
        QV_LAUNCHED(g, "sq8_range_kernel", err);
    }
    sq8_finish_kernel<<<qv_g_blocks(dim, 128), 128, 0, g->stream>>>(dim, pmin.p, pmax.p, d_vmin.p, d_scale.p);
    QV_LAUNCHED(g, "sq8_finish_kernel", err);
    QV_CU(g, cudaMemcpyAsync(vmin, d_vmin.p, dim * sizeof(float), cudaMemcpyDeviceToHost, g->stream), err);
    QV_CU(g, cudaMemcpyAsync(scale, d_scale.p, dim * sizeof(float), cudaMemcpyDeviceToHost, g->stream), err);
    /* pass 2: codes */
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        const uint32_t rows = (uint32_t)(n - r0 < chunk ? n - r0 : chunk);
        if (!resident)
            QV_CU(g, cudaMemcpyAsync(d_x.p, x + r0 * dim, (size_t)rows * dim * sizeof(float), cudaMemcpyHostToDevice,
                                     g->stream), err);
        const size_t count = (size_t)rows * dim;
        sq8_encode_kernel<<<qv_g_blocks(count, Q_THREADS), Q_THREADS, 0, g->stream>>>(d_x.p, count, dim, d_vmin.p,
                                                                                      d_scale.p, d_codes.p);
        QV_LAUNCHED(g, "sq8_encode_kernel", err);
        QV_CU(g, cudaMemcpyAsync(codes + r0 * dim, d_codes.p, count, cudaMemcpyDeviceToHost, g->stream), err);
        QV_CU(g, cudaStreamSynchronize(g->stream), err);
    }
    return QV_OK;
}

int qv_g_pq_encode(qv_gpu_t *g, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                   uint8_t *codes, qv_err_t *err)
{
    const uint32_t dsub = dim / m;
    const size_t book = (size_t)dim * QV_K_PQ_KSUB;
    size_t chunk = 0;
    int rc = chunk_rows(g, n, book * sizeof(float), (size_t)dim * 4 + m, &chunk, "pq encode", err);
    if (rc)
        return rc;
    qv_dbuf<float> d_x, d_book;
    qv_dbuf<uint8_t> d_codes;
    if ((rc = d_x.alloc(g, chunk * dim, "pq rows", err)) || (rc = d_book.alloc(g, book, "pq codebooks", err)) ||
        (rc = d_codes.alloc(g, chunk * m, "pq codes", err)))
        return rc;
    QV_CU(g, cudaMemcpyAsync(d_book.p, codebooks, book * sizeof(float), cudaMemcpyHostToDevice, g->stream), err);
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        const uint32_t rows = (uint32_t)(n - r0 < chunk ? n - r0 : chunk);
        QV_CU(g, cudaMemcpyAsync(d_x.p, x + r0 * dim, (size_t)rows * dim * sizeof(float), cudaMemcpyHostToDevice,
                                 g->stream), err);
        const size_t count = (size_t)rows * m;
        pq_encode_kernel<<<qv_g_blocks(count, Q_THREADS), Q_THREADS, 0, g->stream>>>(d_x.p, rows, dim, m, dsub,
                                                                                     d_book.p, d_codes.p);
        QV_LAUNCHED(g, "pq_encode_kernel", err);
        QV_CU(g, cudaMemcpyAsync(codes + r0 * m, d_codes.p, count, cudaMemcpyDeviceToHost, g->stream), err);
        QV_CU(g, cudaStreamSynchronize(g->stream), err);
    }
    return QV_OK;
}
