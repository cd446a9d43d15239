/* Steps 2-4 of the graph build on the device (kernels/cuda/graph.cuh): rank-based pruning with one block per node,
 * reverse-edge proposals grouped by target (counts with integer atomics, offsets by a prefix sum on the host, keys
 * scattered with atomics and then reduced per node to the best deg/2 by key, so the scatter order does not matter),
 * and the merge with one thread per node. The k-NN lists (step 1) come from knn.cu; the levels, layers and the blob
 * from the host driver (kernels/cpu/graph.c).
 *
 * Memory: this step keeps the k-NN lists of the whole layer resident (a node's detours read its neighbours' lists,
 * anywhere in the graph): about n x (4 knn_k + 30 deg) bytes (270 MB for 1M rows at knn_k = 64, deg = 32; a
 * default 100k-row segment needs a tenth of that). It is not batched; a layer that does not fit is QV_ENOMEM, and
 * the caller builds that segment on the CPU. */
#include <stdlib.h>

#include "kernels/cuda/graph.cuh"
#include "kernels/cuda/plugin.cuh"

#define PRUNE_THREADS 128

/* One block per node (grid-stride): sorted copy of the node's list, detour counts with shared-memory atomics,
 * selection by (count, rank) on thread 0. Shared memory: 4 k words. */
__global__ void __launch_bounds__(PRUNE_THREADS)
prune_kernel(const uint32_t *__restrict__ knn, uint32_t n, uint32_t k, uint32_t deg, uint32_t *pruned,
             uint32_t *npr)
{
    extern __shared__ uint32_t sm[];
    uint32_t *row = sm, *sid = sm + k, *spos = sm + 2 * k, *counts = sm + 3 * k;
    for (uint32_t u = blockIdx.x; u < n; u += gridDim.x) {
        for (uint32_t i = threadIdx.x; i < k; i += blockDim.x) {
            row[i] = knn[(size_t)u * k + i];
            counts[i] = 0;
        }
        __syncthreads();
        for (uint32_t i = threadIdx.x; i < k; i += blockDim.x) {
            const uint32_t r = qv_k_rank_of(row, k, i);
            sid[r] = row[i];
            spos[r] = i;
        }
        __syncthreads();
        for (uint32_t i = threadIdx.x; i < k; i += blockDim.x) {
            const uint32_t w = row[i];
            if (w == QV_K_NONE)
                continue;
            const uint32_t *wl = knn + (size_t)w * k;
            for (uint32_t p = 0; p + 1 < k; p++) {
                const uint32_t j = qv_k_detour(wl, i, p, sid, spos, k);
                if (j != QV_K_NONE)
                    atomicAdd(&counts[j], 1u);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0)
            npr[u] = qv_k_prune_select(row, counts, k, deg, pruned + (size_t)u * deg);
        __syncthreads();
    }
}

/* one thread per (node, slot) of the pruned lists */
__global__ void rev_count_kernel(const uint32_t *pruned, const uint32_t *npr, uint32_t n, uint32_t deg,
                                 uint32_t *incount)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * deg)
        return;
    const uint32_t u = (uint32_t)(e / deg), r = (uint32_t)(e % deg);
    if (r < npr[u])
        atomicAdd(&incount[pruned[e]], 1u);
}

__global__ void rev_fill_kernel(const uint32_t *pruned, const uint32_t *npr, uint32_t n, uint32_t deg,
                                const unsigned long long *off, uint32_t *fill, unsigned long long *keys)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * deg)
        return;
    const uint32_t u = (uint32_t)(e / deg), r = (uint32_t)(e % deg);
    if (r >= npr[u])
        return;
    const uint32_t v = pruned[e];
    const uint32_t slot = atomicAdd(&fill[v], 1u);
    keys[off[v] + slot] = qv_k_rev_key(r, u);
}

/* one thread per node: its best deg/2 reverse proposals, then the merge */
__global__ void merge_kernel(const uint32_t *pruned, const uint32_t *npr, uint32_t n, uint32_t deg,
                             const unsigned long long *off, unsigned long long *keys, unsigned long long *best,
                             uint32_t *rev, uint32_t *links, uint32_t *nlinks)
{
    const uint32_t v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= n)
        return;
    const uint32_t half = deg / 2;
    const uint32_t cnt = (uint32_t)(off[v + 1] - off[v]);
    uint64_t *b = (uint64_t *)best + (size_t)v * (half ? half : 1);
    uint32_t *rv = rev + (size_t)v * (half ? half : 1);
    const uint32_t nr = qv_k_smallest_keys((uint64_t *)keys + off[v], cnt, half, b);
    for (uint32_t i = 0; i < nr; i++)
        rv[i] = (uint32_t)b[i];
    nlinks[v] = qv_k_merge_edges(v, pruned + (size_t)v * deg, npr[v], rv, nr, deg, links + (size_t)v * deg);
}

int qv_g_prune_merge(qv_gpu_t *g, const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links,
                     uint32_t *nlinks, qv_err_t *err)
{
    const size_t half = deg / 2 ? deg / 2 : 1;
    const size_t need = n * ((size_t)k * 4 + (size_t)deg * 4 * 2 + (size_t)deg * 8 + half * 12 + 4 * 4 + 8) + 64;
    size_t budget;
    int rc = qv_g_budget(g, 0, &budget, err);
    if (rc)
        return rc;
    if (need > budget)
        return qv_err_set(err, QV_ENOMEM, "graph build: pruning %zu rows needs %zu MiB of device memory, %zu MiB "
                                          "free", n, need >> 20, budget >> 20);
    const size_t smem = (size_t)4 * k * sizeof(uint32_t);
    if (smem > 48 * 1024)
        return qv_err_set(err, QV_EINVAL, "graph build: knn_k=%u needs %zu bytes of shared memory", k, smem);
    qv_dbuf<uint32_t> d_knn, d_pruned, d_npr, d_incount, d_fill, d_rev, d_links, d_nlinks;
    qv_dbuf<unsigned long long> d_off, d_keys, d_best;
    if ((rc = d_knn.alloc(g, n * k, "k-NN lists", err)) || (rc = d_pruned.alloc(g, n * deg, "pruned lists", err)) ||
        (rc = d_npr.alloc(g, n, "pruned counts", err)) || (rc = d_incount.alloc(g, n, "in-degrees", err)) ||
        (rc = d_fill.alloc(g, n, "reverse cursors", err)) || (rc = d_off.alloc(g, n + 1, "reverse offsets", err)) ||
        (rc = d_best.alloc(g, n * half, "reverse selection", err)) ||
        (rc = d_rev.alloc(g, n * half, "reverse edges", err)) || (rc = d_links.alloc(g, n * deg, "links", err)) ||
        (rc = d_nlinks.alloc(g, n, "link counts", err)))
        return rc;
    QV_CU(g, cudaMemcpyAsync(d_knn.p, knn, n * k * sizeof(uint32_t), cudaMemcpyHostToDevice, g->stream), err);
    QV_CU(g, cudaMemsetAsync(d_incount.p, 0, n * sizeof(uint32_t), g->stream), err);
    QV_CU(g, cudaMemsetAsync(d_fill.p, 0, n * sizeof(uint32_t), g->stream), err);
    const unsigned blocks = n < 65536 * 16 ? (unsigned)n : 65536 * 16;
    prune_kernel<<<blocks, PRUNE_THREADS, smem, g->stream>>>(d_knn.p, (uint32_t)n, k, deg, d_pruned.p, d_npr.p);
    QV_LAUNCHED(g, "prune_kernel", err);
    const size_t slots = n * deg;
    rev_count_kernel<<<qv_g_blocks(slots, 256), 256, 0, g->stream>>>(d_pruned.p, d_npr.p, (uint32_t)n, deg,
                                                                     d_incount.p);
    QV_LAUNCHED(g, "rev_count_kernel", err);
    /* offsets on the host: n + 1 prefix sums of the in-degrees */
    uint32_t *incount = (uint32_t *)malloc(n * sizeof(uint32_t) + 4);
    unsigned long long *off = (unsigned long long *)malloc((n + 1) * sizeof(unsigned long long));
    if (!incount || !off) {
        free(incount);
        free(off);
        return qv_err_set(err, QV_ENOMEM, "graph build: out of host memory for %zu offsets", n);
    }
    cudaError_t e = cudaMemcpyAsync(incount, d_incount.p, n * sizeof(uint32_t), cudaMemcpyDeviceToHost, g->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(g->stream);
    if (e == cudaSuccess) {
        off[0] = 0;
        for (size_t v = 0; v < n; v++)
            off[v + 1] = off[v] + incount[v];
        e = cudaMemcpyAsync(d_off.p, off, (n + 1) * sizeof(unsigned long long), cudaMemcpyHostToDevice, g->stream);
    }
    const size_t nkeys = e == cudaSuccess ? (size_t)off[n] : 0;
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(g->stream);  /* off is freed below */
    free(incount);
    free(off);
    if (e != cudaSuccess)
        return qv_g_cuda_fail(g, e, "graph build: reverse offsets", err);
    if ((rc = d_keys.alloc(g, nkeys, "reverse proposals", err)))
        return rc;
    rev_fill_kernel<<<qv_g_blocks(slots, 256), 256, 0, g->stream>>>(d_pruned.p, d_npr.p, (uint32_t)n, deg, d_off.p,
                                                                    d_fill.p, d_keys.p);
    QV_LAUNCHED(g, "rev_fill_kernel", err);
    merge_kernel<<<qv_g_blocks(n, 128), 128, 0, g->stream>>>(d_pruned.p, d_npr.p, (uint32_t)n, deg, d_off.p,
                                                             d_keys.p, d_best.p, d_rev.p, d_links.p, d_nlinks.p);
    QV_LAUNCHED(g, "merge_kernel", err);
    QV_CU(g, cudaMemcpyAsync(links, d_links.p, n * deg * sizeof(uint32_t), cudaMemcpyDeviceToHost, g->stream), err);
    QV_CU(g, cudaMemcpyAsync(nlinks, d_nlinks.p, n * sizeof(uint32_t), cudaMemcpyDeviceToHost, g->stream), err);
    QV_CU(g, cudaStreamSynchronize(g->stream), err);
    return QV_OK;
}
