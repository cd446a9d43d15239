/* libquiver_gpu.so: the function table (kernels/gpu.h), device contexts, and the conversion of CUDA errors.
 *
 * What the plugin is. One shared object that quiverd (or bench/gpu_check) dlopens; it carries the CUDA runtime
 * statically (no libcudart.so needed at run time), needs the NVIDIA driver's libcuda.so.1 and cuBLAS's
 * libcublas.so.13 (dynamic: the loader reports their absence), and exports exactly one symbol,
 * qv_gpu_plugin_api. Everything else is hidden (-fvisibility=hidden, --exclude-libs,ALL), so the plugin's copies of
 * common/err.c and common/buf.c never clash with quiverd's.
 *
 * The algorithms' host-side drivers (kernels/cpu/graph.c, quant.c: levels, sampling, layers, blobs) are compiled
 * into the plugin unchanged and run with the device backend below, so a GPU build differs from the CPU
 * implementation only inside the backend's steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/plugin.cuh"

#ifndef QV_GPU_BUILD_INFO
#define QV_GPU_STR2(x) #x
#define QV_GPU_STR(x) QV_GPU_STR2(x)
#define QV_GPU_BUILD_INFO                                                                                          \
    "cuda " QV_GPU_STR(__CUDACC_VER_MAJOR__) "." QV_GPU_STR(__CUDACC_VER_MINOR__)                                  \
    ", sm_80 sm_90, cudart static, cublas dynamic"
#endif

/* ---- errors ---- */

static int sticky(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
        return 1;
    default:
        return 0;
    }
}

int qv_g_cuda_fail(qv_gpu_t *g, cudaError_t e, const char *what, qv_err_t *err)
{
    int code = QV_EIO;
    if (e == cudaErrorMemoryAllocation)
        code = QV_ENOMEM;
    else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice ||
             e == cudaErrorDevicesUnavailable || e == cudaErrorSystemDriverMismatch ||
             e == cudaErrorCompatNotSupportedOnDevice || e == cudaErrorUnsupportedPtxVersion ||
             e == cudaErrorNoKernelImageForDevice)
        code = QV_EUNAVAIL;
    if (g && sticky(e))
        g->broken = 1;
    cudaGetLastError();  /* clear a non-sticky error so the next call starts clean */
    return qv_err_set(err, code, "gpu: %.100s: %.100s (%s)%s", what, cudaGetErrorString(e), cudaGetErrorName(e),
                      g && g->broken ? "; the GPU context is now unusable" : "");
}

int qv_g_blas_fail(qv_gpu_t *g, cublasStatus_t s, const char *what, qv_err_t *err)
{
    (void)g;
    int code = s == CUBLAS_STATUS_ALLOC_FAILED ? QV_ENOMEM : QV_EIO;
    return qv_err_set(err, code, "gpu: %.100s: %.100s", what, cublasGetStatusString(s));
}

int qv_g_budget(qv_gpu_t *g, size_t mem_limit, size_t *budget, qv_err_t *err)
{
    size_t free_b = 0, total_b = 0;
    QV_CU(g, cudaMemGetInfo(&free_b, &total_b), err);
    size_t reserve = total_b / 20;
    if (reserve < ((size_t)256 << 20))
        reserve = (size_t)256 << 20;
    size_t b = free_b > reserve ? free_b - reserve : 0;
    if (mem_limit && mem_limit < b)
        b = mem_limit;
    *budget = b;
    return QV_OK;
}

int qv_g_enter(qv_gpu_t *g, qv_err_t *err)
{
    if (!g)
        return qv_err_set(err, QV_EINVAL, "gpu: no context");
    pthread_mutex_lock(&g->mu);
    if (g->broken) {
        pthread_mutex_unlock(&g->mu);
        return qv_err_set(err, QV_EUNAVAIL, "gpu: device %d had an unrecoverable CUDA error earlier; shut the "
                                            "context down and use the CPU", g->device);
    }
    cudaError_t e = cudaSetDevice(g->device);
    if (e != cudaSuccess) {
        int rc = qv_g_cuda_fail(g, e, "cudaSetDevice", err);
        pthread_mutex_unlock(&g->mu);
        return rc;
    }
    return QV_OK;
}

void qv_g_leave(qv_gpu_t *g) { pthread_mutex_unlock(&g->mu); }

/* ---- the table's functions ---- */

static int g_init(int device, qv_gpu_t **out, qv_err_t *err)
{
    if (!out)
        return qv_err_set(err, QV_EINVAL, "gpu: NULL argument");
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorNoDevice) {
        cudaGetLastError();
        return qv_err_set(err, QV_ENOTFOUND, "gpu: the NVIDIA driver reports no CUDA device (%s)", cudaGetErrorName(e));
    }
    if (e == cudaErrorInsufficientDriver || e == cudaErrorSystemDriverMismatch ||
        e == cudaErrorCompatNotSupportedOnDevice) {
        cudaGetLastError();
        int drv = 0;
        cudaDriverGetVersion(&drv);
        if (drv == 0)
            return qv_err_set(err, QV_EUNAVAIL, "gpu: no NVIDIA driver (libcuda.so.1 not found or not loadable: %s)",
                              cudaGetErrorName(e));
        return qv_err_set(err, QV_EUNAVAIL, "gpu: the NVIDIA driver (CUDA %d.%d) is older than the plugin's runtime "
                                            "(CUDA %d.%d): %s", drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000,
                          CUDART_VERSION % 1000 / 10, cudaGetErrorName(e));
    }
    if (e != cudaSuccess)
        return qv_g_cuda_fail(NULL, e, "cudaGetDeviceCount", err);
    if (count == 0)
        return qv_err_set(err, QV_ENOTFOUND, "gpu: no CUDA device");
    if (device < 0 || device >= count)
        return qv_err_set(err, QV_ENOTFOUND, "gpu: device %d does not exist (%d device%s)", device, count,
                          count == 1 ? "" : "s");
    qv_gpu_t *g = (qv_gpu_t *)calloc(1, sizeof *g);
    if (!g)
        return qv_err_set(err, QV_ENOMEM, "gpu: out of memory");
    g->device = device;
    pthread_mutex_init(&g->mu, NULL);
    int rc = QV_OK;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&g->prop, device)) != cudaSuccess)
        rc = qv_g_cuda_fail(NULL, e, "cudaSetDevice/cudaGetDeviceProperties", err);
    if (rc == QV_OK && g->prop.major < 8)
        rc = qv_err_set(err, QV_ENOTFOUND, "gpu: %s has compute capability %d.%d; this plugin is built for 8.0 and "
                                           "9.0", g->prop.name, g->prop.major, g->prop.minor);
    if (rc == QV_OK && (e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking)) != cudaSuccess)
        rc = qv_g_cuda_fail(NULL, e, "cudaStreamCreate", err);
    if (rc == QV_OK) {
        cublasStatus_t s = cublasCreate(&g->blas);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasSetStream(g->blas, g->stream);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH);  /* full fp32: no TF32 in the products */
        if (s != CUBLAS_STATUS_SUCCESS)
            rc = qv_g_blas_fail(NULL, s, "cublasCreate", err);
    }
    if (rc == QV_OK) {  /* a first allocation proves the context works (an unsupported architecture fails here) */
        void *probe = nullptr;
        if ((e = cudaMalloc(&probe, 256)) != cudaSuccess)
            rc = qv_g_cuda_fail(NULL, e, "cudaMalloc (first use of the device)", err);
        else
            cudaFree(probe);
    }
    if (rc != QV_OK) {
        if (g->blas)
            cublasDestroy(g->blas);
        if (g->stream)
            cudaStreamDestroy(g->stream);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return rc;
    }
    *out = g;
    return QV_OK;
}

static void g_shutdown(qv_gpu_t *g)
{
    if (!g)
        return;
    cudaSetDevice(g->device);
    cublasDestroy(g->blas);
    cudaStreamDestroy(g->stream);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static int g_device_info(qv_gpu_t *g, qv_gpu_info_t *info, qv_err_t *err)
{
    if (!info)
        return qv_err_set(err, QV_EINVAL, "gpu: NULL argument");
    int rc = qv_g_enter(g, err);
    if (rc)
        return rc;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%.127s", g->prop.name);
    info->device = g->device;
    info->cc_major = g->prop.major;
    info->cc_minor = g->prop.minor;
    info->sm_count = g->prop.multiProcessorCount;
    cudaGetDeviceCount(&info->device_count);
    cudaDriverGetVersion(&info->driver_version);
    cudaRuntimeGetVersion(&info->runtime_version);
    cudaError_t e = cudaMemGetInfo(&info->mem_free, &info->mem_total);
    if (e != cudaSuccess)
        rc = qv_g_cuda_fail(g, e, "cudaMemGetInfo", err);
    qv_g_leave(g);
    return rc;
}

static int g_knn(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base,
                 size_t nb, uint32_t dim, qv_cand_t *out, qv_err_t *err)
{
    int rc = qv_kcheck_knn(p, queries, nq, base, nb, dim, out, err);
    if (rc || nq == 0)
        return rc;
    size_t total = nq * p->k;
    float *od = (float *)malloc(total * sizeof(float));
    uint32_t *oi = (uint32_t *)malloc(total * sizeof(uint32_t));
    if (!od || !oi) {
        free(od);
        free(oi);
        return qv_err_set(err, QV_ENOMEM, "knn: out of memory for %zu x %u results", nq, p->k);
    }
    if (nb == 0) {
        for (size_t i = 0; i < total; i++) {
            od[i] = INFINITY;
            oi[i] = QV_K_NONE;
        }
    } else if ((rc = qv_g_enter(g, err)) == QV_OK) {
        rc = qv_g_knn_lists(g, p, queries, nq, base, nb, dim, od, oi, err);
        qv_g_leave(g);
    }
    for (size_t i = 0; rc == QV_OK && i < total; i++) {
        out[i].dist = od[i];
        out[i].ref = oi[i] == QV_K_NONE ? QV_GPU_NO_ROW : oi[i];
    }
    free(od);
    free(oi);
    return rc;
}

static int g_kmeans(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                    float *centroids, uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    int rc = qv_kcheck_kmeans(p, x, n, dim, centroids, err);
    if (rc || (rc = qv_g_enter(g, err)))
        return rc;
    rc = qv_g_kmeans(g, p, x, n, dim, centroids, assign, stats, err);
    qv_g_leave(g);
    return rc;
}

static int g_pq_encode(qv_gpu_t *g, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                       uint8_t *codes, qv_err_t *err)
{
    if (!codebooks || (n && (!x || !codes)) || m == 0 || dim == 0 || dim % m != 0)
        return qv_err_set(err, QV_EINVAL, "pq encode: bad arguments (m=%u, dim=%u)", m, dim);
    if (n == 0)
        return QV_OK;
    int rc = qv_g_enter(g, err);
    if (rc)
        return rc;
    rc = qv_g_pq_encode(g, codebooks, m, x, n, dim, codes, err);
    qv_g_leave(g);
    return rc;
}

static int g_sq8_encode(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                        uint8_t *codes, qv_err_t *err)
{
    if (!vmin || !scale || (n && (!x || !codes)) || dim == 0)
        return qv_err_set(err, QV_EINVAL, "sq8 encode: bad arguments");
    if (n == 0) {  /* sq8.c's result for no rows */
        for (uint32_t j = 0; j < dim; j++)
            vmin[j] = scale[j] = 0.0f;
        return QV_OK;
    }
    int rc = qv_g_enter(g, err);
    if (rc)
        return rc;
    rc = qv_g_sq8_encode(g, x, n, dim, vmin, scale, codes, err);
    qv_g_leave(g);
    return rc;
}

/* ---- the device backend of the drivers (called with the context NOT entered: each step enters) ---- */

static int be_knn_ids(void *ctx, const float *x, size_t n, uint32_t dim, int metric, uint32_t k, size_t mem_limit,
                      uint32_t *ids, qv_err_t *err)
{
    qv_gpu_t *g = (qv_gpu_t *)ctx;
    qv_gpu_knn_params_t p = {};
    p.metric = (qv_gpu_metric_t)metric;
    p.k = k;
    p.exclude_self = 1;
    p.mem_limit = mem_limit;
    float *od = (float *)malloc(n * k * sizeof(float) + 1);
    if (!od)
        return qv_err_set(err, QV_ENOMEM, "graph build: out of memory for %zu x %u distances", n, k);
    int rc = qv_g_enter(g, err);
    if (rc == QV_OK) {
        rc = qv_g_knn_lists(g, &p, x, n, x, n, dim, od, ids, err);
        qv_g_leave(g);
    }
    free(od);
    return rc;
}

static int be_prune_merge(void *ctx, const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links,
                          uint32_t *nlinks, qv_err_t *err)
{
    qv_gpu_t *g = (qv_gpu_t *)ctx;
    int rc = qv_g_enter(g, err);
    if (rc)
        return rc;
    rc = qv_g_prune_merge(g, knn, n, k, deg, links, nlinks, err);
    qv_g_leave(g);
    return rc;
}

static int be_kmeans(void *ctx, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                     float *cent, uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    return g_kmeans((qv_gpu_t *)ctx, p, x, n, dim, cent, assign, stats, err);
}

static int be_pq_encode(void *ctx, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                        uint8_t *codes, qv_err_t *err)
{
    return g_pq_encode((qv_gpu_t *)ctx, codebooks, m, x, n, dim, codes, err);
}

static int be_sq8_encode(void *ctx, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                         uint8_t *codes, qv_err_t *err)
{
    return g_sq8_encode((qv_gpu_t *)ctx, x, n, dim, vmin, scale, codes, err);
}

static qv_kbackend_t device_backend(qv_gpu_t *g)
{
    qv_kbackend_t be = {};
    be.ctx = g;
    be.knn_ids = be_knn_ids;
    be.prune_merge = be_prune_merge;
    be.kmeans = be_kmeans;
    be.pq_encode = be_pq_encode;
    be.sq8_encode = be_sq8_encode;
    return be;
}

static int g_quant_build(qv_gpu_t *g, const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim,
                         uint8_t **blob, size_t *len, qv_err_t *err)
{
    if (!g || !blob || !len)
        return qv_err_set(err, QV_EINVAL, "quant build: NULL argument");
    *blob = NULL;
    *len = 0;
    qv_kbackend_t be = device_backend(g);
    qv_wbuf_t out;
    qv_wbuf_init(&out);
    int rc = qv_kquant_build(&be, p, x, n, dim, &out, err);
    if (rc) {
        qv_wbuf_free(&out);
        return rc;
    }
    *blob = out.data;
    *len = out.len;
    return QV_OK;
}

static int g_graph_build(qv_gpu_t *g, const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim,
                         uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *stats, qv_err_t *err)
{
    if (!g)
        return qv_err_set(err, QV_EINVAL, "graph build: no context");
    qv_kbackend_t be = device_backend(g);
    return qv_kgraph_build_blob(&be, p, x, n, dim, blob, len, stats, err);
}

static void g_free_blob(uint8_t *blob) { free(blob); }

static int g_embed_load(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err)
{
    int rc = qv_g_enter(g, err);
    if (rc)
        return rc;
    rc = qv_g_embed_load(g, w, out, err);
    qv_g_leave(g);
    return rc;
}

static const qv_gpu_api_t api = {
    QV_GPU_ABI_VERSION,
    (uint32_t)sizeof(qv_gpu_api_t),
    QV_GPU_BUILD_INFO,
    g_init,
    g_shutdown,
    g_device_info,
    g_knn,
    g_kmeans,
    g_pq_encode,
    g_sq8_encode,
    g_quant_build,
    g_graph_build,
    g_free_blob,
    g_embed_load,
    qv_g_embed_seqs,
    qv_g_embed_free,
};

extern "C" __attribute__((visibility("default"))) const qv_gpu_api_t *qv_gpu_plugin_api(uint32_t abi_version)
{
    return abi_version == QV_GPU_ABI_VERSION ? &api : NULL;
}
