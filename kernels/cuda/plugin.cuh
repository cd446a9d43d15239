/* Internal to the plugin's .cu files: the device context, CUDA and cuBLAS error conversion, device buffers, the
 * memory budget, and the entry points each .cu file provides to plugin.cu's table. Host-only C++ (nvcc).
 *
 * Error policy. Every CUDA or cuBLAS call is checked; a failure becomes a QV_E* code with the call's name and CUDA's
 * own message in err (cudaErrorMemoryAllocation -> QV_ENOMEM, no device or driver -> QV_EUNAVAIL, anything else ->
 * QV_EIO), and the call returns. Device buffers are freed by their destructors on every path. A "sticky" CUDA error
 * (an illegal address or a launch failure, which leaves the CUDA context unusable) marks the qv_gpu_t broken: every
 * later call on it fails fast with QV_EUNAVAIL saying so, and the owner should shut it down and fall back to the CPU.
 * Nothing calls abort() or exit(). */
#ifndef QV_K_PLUGIN_CUH
#define QV_K_PLUGIN_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <pthread.h>

extern "C" {
#include "kernels/cpu/kcpu.h"
#include "kernels/gpu.h"
}

struct qv_gpu {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    pthread_mutex_t mu;  /* serialises calls on this context */
    int broken;          /* a sticky CUDA error happened: guarded by mu */
    cudaDeviceProp prop;
};

/* Converts a CUDA error into a Quiver error (and marks the context broken when the error is sticky). */
int qv_g_cuda_fail(qv_gpu_t *g, cudaError_t e, const char *what, qv_err_t *err);
int qv_g_blas_fail(qv_gpu_t *g, cublasStatus_t s, const char *what, qv_err_t *err);

#define QV_CU(g, call, err)                                                                        \
    do {                                                                                           \
        cudaError_t qv_e_ = (call);                                                                \
        if (qv_e_ != cudaSuccess)                                                                  \
            return qv_g_cuda_fail((g), qv_e_, #call, (err));                                       \
    } while (0)

#define QV_BLAS(g, call, err)                                                                      \
    do {                                                                                           \
        cublasStatus_t qv_s_ = (call);                                                             \
        if (qv_s_ != CUBLAS_STATUS_SUCCESS)                                                        \
            return qv_g_blas_fail((g), qv_s_, #call, (err));                                       \
    } while (0)

/* After a kernel launch: the launch's own error (bad configuration) now, execution errors at the next sync. */
#define QV_LAUNCHED(g, what, err)                                                                  \
    do {                                                                                           \
        cudaError_t qv_e_ = cudaGetLastError();                                                    \
        if (qv_e_ != cudaSuccess)                                                                  \
            return qv_g_cuda_fail((g), qv_e_, "launch of " what, (err));                           \
    } while (0)

/* A device array freed when it goes out of scope (cudaMalloc only: never managed memory). */
template <typename T> struct qv_dbuf {
    T *p = nullptr;
    size_t n = 0;
    qv_dbuf() = default;
    qv_dbuf(const qv_dbuf &) = delete;
    qv_dbuf &operator=(const qv_dbuf &) = delete;
    ~qv_dbuf()
    {
        if (p)
            cudaFree(p);
    }
    int alloc(qv_gpu_t *g, size_t count, const char *what, qv_err_t *err)
    {
        if (p)
            cudaFree(p);
        p = nullptr;
        n = count;
        if (count == 0)
            count = 1;
        if (count > SIZE_MAX / sizeof(T))
            return qv_err_set(err, QV_ENOMEM, "gpu: %s: %zu elements overflow", what, count);
        cudaError_t e = cudaMalloc((void **)&p, count * sizeof(T));
        if (e != cudaSuccess) {
            p = nullptr;
            cudaGetLastError();  /* an allocation failure is not sticky: clear it */
            if (e == cudaErrorMemoryAllocation)
                return qv_err_set(err, QV_ENOMEM, "gpu: cudaMalloc of %zu MiB for %s failed: out of device memory",
                                  (count * sizeof(T)) >> 20, what);
            return qv_g_cuda_fail(g, e, what, err);
        }
        return QV_OK;
    }
};

/* Bytes the call may allocate on the device: the free memory cudaMemGetInfo reports less a reserve (for cuBLAS
 * workspaces and fragmentation: 5% of the total, at least 256 MiB), capped by mem_limit when that is not 0. */
int qv_g_budget(qv_gpu_t *g, size_t mem_limit, size_t *budget, qv_err_t *err);

/* Locks the context and makes its device current on this thread; fails fast on a broken context. */
int qv_g_enter(qv_gpu_t *g, qv_err_t *err);
void qv_g_leave(qv_gpu_t *g);

static inline unsigned qv_g_blocks(size_t work, unsigned per_block)
{
    size_t b = (work + per_block - 1) / per_block;
    return (unsigned)(b ? (b < 0x7FFFFFFFu ? b : 0x7FFFFFFFu) : 1);
}

/* ---- per-file entry points (called with the context entered) ---- */

/* knn.cu: the k-NN of nq queries against nb base rows into host arrays od/oi (nq x k; QV_K_NONE for empty). */
int qv_g_knn_lists(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base,
                   size_t nb, uint32_t dim, float *od, uint32_t *oi, qv_err_t *err);

/* kmeans.cu, quant.cu, graph.cu */
int qv_g_kmeans(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, float *cent,
                uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err);
int qv_g_pq_encode(qv_gpu_t *g, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                   uint8_t *codes, qv_err_t *err);
int qv_g_sq8_encode(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale, uint8_t *codes,
                    qv_err_t *err);
int qv_g_prune_merge(qv_gpu_t *g, const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links,
                     uint32_t *nlinks, qv_err_t *err);

/* embed.cu */
int qv_g_embed_load(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err);
int qv_g_embed_seqs(qv_gpu_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err);
void qv_g_embed_free(qv_gpu_model_t *m);

#endif
