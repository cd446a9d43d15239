/* k-means on the device (the steps of kernels/cuda/kmeans.cuh): seeding on the host, then per iteration one fused
 * kernel (assignment of every point + accumulation of the new clusters' sums and counts), and the update on the
 * host from the k x d sums (small: 256 x dsub doubles for a PQ sub-quantiser). Points that do not fit on the device
 * at once are streamed in chunks every iteration; the assignment array (4 bytes a point) stays resident. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kmeans.cuh"
#include "kernels/cuda/plugin.cuh"

#define KM_THREADS 256
#define KM_SMEM_MAX (48 * 1024)

/* One thread per point of the chunk (global rows row0..row0+rows-1): nearest centroid, changed count, objective,
 * and the point's coordinates added to its new cluster's sums (double atomics: order-dependent last bits). */
__global__ void __launch_bounds__(KM_THREADS)
kmeans_assign_kernel(const float *__restrict__ x, uint32_t rows, size_t row0, uint32_t d,
                     const float *__restrict__ cent, uint32_t k, int smem, uint32_t *assign, double *sums,
                     unsigned long long *counts, unsigned long long *changed, double *obj)
{
    extern __shared__ float cs[];
    const float *c = cent;
    if (smem) {
        for (uint32_t i = threadIdx.x; i < k * d; i += blockDim.x)
            cs[i] = cent[i];
        __syncthreads();
        c = cs;
    }
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows)
        return;
    const float *xi = x + (size_t)i * d;
    float bd;
    const uint32_t a = qv_k_nearest(xi, c, k, d, &bd);
    const size_t gi = row0 + i;
    if (assign[gi] != a)
        atomicAdd(changed, 1ull);
    assign[gi] = a;
    atomicAdd(obj, (double)bd);
    double *s = sums + (size_t)a * d;
    for (uint32_t t = 0; t < d; t++)
        atomicAdd(s + t, (double)xi[t]);
    atomicAdd(counts + a, 1ull);
}

int qv_g_kmeans(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t d, float *cent,
                uint32_t *assign_out, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    const uint32_t k = p->k, iters = p->iters ? p->iters : 25;
    const size_t kd = (size_t)k * d;
    double *sums = (double *)malloc(kd * sizeof(double) + 8);
    uint64_t *counts = (uint64_t *)malloc(k * sizeof(uint64_t) + 8);
    double *d2 = n > k ? (double *)malloc(n * sizeof(double)) : NULL;
    int rc = QV_OK;
    if (!sums || !counts || (n > k && !d2)) {
        free(sums);
        free(counts);
        free(d2);
        return qv_err_set(err, QV_ENOMEM, "kmeans: out of host memory for %zu points", n);
    }
    /* seeding on the host: kmeans.c's draws */
    if (n <= k) {
        for (size_t c = 0; c < k; c++)
            memcpy(cent + c * d, x + (c % n) * d, d * sizeof(float));
    } else {
        qv_k_kmeanspp(x, n, d, k, p->seed, cent, d2);
    }
    free(d2);
    qv_gpu_kmeans_stats_t st = {};
    do {
        size_t budget;
        if ((rc = qv_g_budget(g, 0, &budget, err)))
            break;
        const size_t fixed = kd * (sizeof(float) + sizeof(double)) + (size_t)k * 8 + n * 4 + 64;
        const size_t row_bytes = (size_t)d * sizeof(float);
        size_t chunk = budget > fixed ? (budget - fixed) / row_bytes : 0;
        if (chunk > n)
            chunk = n;
        if (chunk == 0) {
            rc = qv_err_set(err, QV_ENOMEM, "kmeans: %zu MiB of device memory cannot hold %u x %u centroids and "
                                            "the assignment of %zu points", budget >> 20, k, d, n);
            break;
        }
        qv_dbuf<float> d_x, d_cent;
        qv_dbuf<uint32_t> d_assign;
        qv_dbuf<double> d_sums, d_obj;
        qv_dbuf<unsigned long long> d_counts, d_changed;
        if ((rc = d_x.alloc(g, chunk * d, "kmeans points", err)) ||
            (rc = d_cent.alloc(g, kd, "kmeans centroids", err)) ||
            (rc = d_assign.alloc(g, n, "kmeans assignment", err)) ||
            (rc = d_sums.alloc(g, kd, "kmeans sums", err)) || (rc = d_obj.alloc(g, 1, "kmeans objective", err)) ||
            (rc = d_counts.alloc(g, k, "kmeans counts", err)) ||
            (rc = d_changed.alloc(g, 1, "kmeans changes", err)))
            break;
        const bool resident = chunk == n;
        const int smem = kd * sizeof(float) <= KM_SMEM_MAX;
        const size_t smem_bytes = smem ? kd * sizeof(float) : 0;
        cudaError_t e = cudaMemsetAsync(d_assign.p, 0xFF, n * sizeof(uint32_t), g->stream);  /* UINT32_MAX */
        if (e == cudaSuccess && resident)
            e = cudaMemcpyAsync(d_x.p, x, n * row_bytes, cudaMemcpyHostToDevice, g->stream);
        if (e != cudaSuccess) {
            rc = qv_g_cuda_fail(g, e, "kmeans upload", err);
            break;
        }
        for (uint32_t it = 0;; it++) {
            if ((e = cudaMemcpyAsync(d_cent.p, cent, kd * sizeof(float), cudaMemcpyHostToDevice, g->stream)) ||
                (e = cudaMemsetAsync(d_sums.p, 0, kd * sizeof(double), g->stream)) ||
                (e = cudaMemsetAsync(d_counts.p, 0, k * sizeof(unsigned long long), g->stream)) ||
                (e = cudaMemsetAsync(d_changed.p, 0, sizeof(unsigned long long), g->stream)) ||
                (e = cudaMemsetAsync(d_obj.p, 0, sizeof(double), g->stream))) {
                rc = qv_g_cuda_fail(g, e, "kmeans iteration setup", err);
                break;
            }
            for (size_t r0 = 0; r0 < n && rc == QV_OK; r0 += chunk) {
                const uint32_t rows = (uint32_t)(n - r0 < chunk ? n - r0 : chunk);
                if (!resident &&
                    (e = cudaMemcpyAsync(d_x.p, x + r0 * d, rows * row_bytes, cudaMemcpyHostToDevice, g->stream))) {
                    rc = qv_g_cuda_fail(g, e, "kmeans chunk upload", err);
                    break;
                }
                kmeans_assign_kernel<<<qv_g_blocks(rows, KM_THREADS), KM_THREADS, smem_bytes, g->stream>>>(
                    d_x.p, rows, r0, d, d_cent.p, k, smem, d_assign.p, d_sums.p, d_counts.p, d_changed.p, d_obj.p);
                if ((e = cudaGetLastError()) != cudaSuccess)
                    rc = qv_g_cuda_fail(g, e, "kmeans_assign_kernel", err);
            }
            if (rc)
                break;
            unsigned long long changed = 0;
            double obj = 0;
            if ((e = cudaMemcpyAsync(&changed, d_changed.p, sizeof changed, cudaMemcpyDeviceToHost, g->stream)) ||
                (e = cudaMemcpyAsync(&obj, d_obj.p, sizeof obj, cudaMemcpyDeviceToHost, g->stream)) ||
                (e = cudaStreamSynchronize(g->stream))) {
                rc = qv_g_cuda_fail(g, e, "kmeans assignment", err);
                break;
            }
            st.objective = obj;
            st.iters = it;
            if (n <= k || it == iters || (it > 0 && qv_k_converged((size_t)changed, n)))
                break;
            if ((e = cudaMemcpyAsync(sums, d_sums.p, kd * sizeof(double), cudaMemcpyDeviceToHost, g->stream)) ||
                (e = cudaMemcpyAsync(counts, d_counts.p, k * sizeof(uint64_t), cudaMemcpyDeviceToHost,
                                     g->stream)) ||
                (e = cudaStreamSynchronize(g->stream))) {
                rc = qv_g_cuda_fail(g, e, "kmeans sums", err);
                break;
            }
            st.empty_splits += qv_k_update(sums, counts, k, d, cent);
        }
        if (rc == QV_OK && assign_out) {
            if ((e = cudaMemcpyAsync(assign_out, d_assign.p, n * sizeof(uint32_t), cudaMemcpyDeviceToHost,
                                     g->stream)) ||
                (e = cudaStreamSynchronize(g->stream)))
                rc = qv_g_cuda_fail(g, e, "kmeans assignment download", err);
        }
    } while (0);
    free(sums);
    free(counts);
    if (rc == QV_OK && stats)
        *stats = st;
    return rc;
}
