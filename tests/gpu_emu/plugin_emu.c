/* libquiver_gpu_emu.so: a CPU stand-in for the GPU plugin, for tests only.
 *
 * Why it exists. No machine that runs Quiver's tests has a GPU, yet the server's GPU paths -- the indexer handing a
 * segment's graph build to the plugin, the embedder running its batches through the plugin's model, the fallbacks
 * when either fails -- must run somewhere. This library implements the same function table (kernels/gpu.h) with the
 * CPU implementations of the plugin's own steps (kernels/cpu/: the same graph-build driver, k-NN, k-means and
 * encoders the CUDA plugin runs with its device backend) and the CPU forward pass over a copy of the weights. So a
 * server started with QV_GPU_PLUGIN=.../libquiver_gpu_emu.so takes every GPU code path of quiverd, and what it
 * returns differs from the real plugin's only by float rounding inside those steps. It is never installed next to
 * quiverd (which would pick it up): only tests name it.
 *
 * Fault injection: $QV_GPU_EMU_FAIL is a comma-separated list of "init", "graph", "embed_load", "embed" (and
 * "knn", "quant"); a listed function fails with QV_EIO ("emulated device failure"), as a CUDA error would, so
 * tests can check that quiverd falls back to the CPU and still answers. "lost" makes every call after the start
 * (graph and embedding included) fail with QV_EUNAVAIL, as a context with a sticky CUDA error does. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kcpu.h"
#include "kernels/gpu.h"
#include "query/embed/model.h"

struct qv_gpu {
    int device;
    pthread_mutex_t mu; /* calls on one context are serialised, as on the device */
};

struct qv_gpu_model {
    qv_gpu_t *g;
    qv_embed_model_t *cpu;
};

static int listed(const char *list, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = list; (p = strstr(p, what)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

static int injected(const char *what, qv_err_t *err)
{
    const char *list = getenv("QV_GPU_EMU_FAIL");
    if (!list)
        return QV_OK;
    if (listed(list, "lost") && strcmp(what, "init") != 0 && strcmp(what, "embed_load") != 0)
        return qv_err_set(err, QV_EUNAVAIL, "%s: emulated device loss (QV_GPU_EMU_FAIL=lost)", what);
    if (listed(list, what))
        return qv_err_set(err, QV_EIO, "%s: emulated device failure (QV_GPU_EMU_FAIL)", what);
    return QV_OK;
}

static int e_init(int device, qv_gpu_t **out, qv_err_t *err)
{
    *out = NULL;
    int rc = injected("init", err);
    if (rc)
        return rc;
    if (device != 0)
        return qv_err_set(err, QV_ENOTFOUND, "emulated device %d: only device 0 exists", device);
    qv_gpu_t *g = calloc(1, sizeof *g);
    if (!g)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return QV_OK;
}

static void e_shutdown(qv_gpu_t *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static int e_device_info(qv_gpu_t *g, qv_gpu_info_t *info, qv_err_t *err)
{
    if (!g || !info)
        return qv_err_set(err, QV_EINVAL, "device info: NULL argument");
    memset(info, 0, sizeof *info);
    strcpy(info->name, "CPU emulation (tests/gpu_emu, not a GPU)");
    info->device = g->device;
    info->device_count = 1;
    info->cc_major = 9;
    info->mem_total = info->mem_free = (size_t)1 << 30;
    return QV_OK;
}

static int e_knn(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base,
                 size_t nb, uint32_t dim, qv_cand_t *out, qv_err_t *err)
{
    int rc = injected("knn", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&g->mu);
    rc = qv_kcpu_knn(p, queries, nq, base, nb, dim, out, err);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int e_kmeans(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                    float *centroids, uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err)
{
    pthread_mutex_lock(&g->mu);
    int rc = qv_kcpu_kmeans(p, x, n, dim, centroids, assign, stats, err);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int e_pq_encode(qv_gpu_t *g, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                       uint8_t *codes, qv_err_t *err)
{
    pthread_mutex_lock(&g->mu);
    int rc = qv_kcpu_pq_encode(codebooks, m, x, n, dim, codes, err);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int e_sq8_encode(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                        uint8_t *codes, qv_err_t *err)
{
    pthread_mutex_lock(&g->mu);
    int rc = qv_kcpu_sq8_encode(x, n, dim, vmin, scale, codes, err);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int e_quant_build(qv_gpu_t *g, const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim,
                         uint8_t **blob, size_t *len, qv_err_t *err)
{
    if (!blob || !len)
        return qv_err_set(err, QV_EINVAL, "quant build: NULL argument");
    *blob = NULL;
    *len = 0;
    int rc = injected("quant", err);
    if (rc)
        return rc;
    qv_wbuf_t out;
    qv_wbuf_init(&out);
    pthread_mutex_lock(&g->mu);
    rc = qv_kquant_build(qv_kcpu_backend(), p, x, n, dim, &out, err);
    pthread_mutex_unlock(&g->mu);
    if (rc) {
        qv_wbuf_free(&out);
        return rc;
    }
    *blob = out.data;
    *len = out.len;
    return QV_OK;
}

static int e_graph_build(qv_gpu_t *g, const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim,
                         uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *stats, qv_err_t *err)
{
    int rc = injected("graph", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&g->mu);
    rc = qv_kgraph_build_blob(qv_kcpu_backend(), p, x, n, dim, blob, len, stats, err);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static void e_free_blob(uint8_t *blob) { free(blob); }

static int e_embed_load(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err)
{
    *out = NULL;
    int rc = injected("embed_load", err);
    if (rc)
        return rc;
    qv_gpu_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    m->g = g;
    if ((rc = qv_embed_model_from_weights(w, &m->cpu, err)) != QV_OK) {
        free(m);
        return rc;
    }
    *out = m;
    return QV_OK;
}

static int e_embed_seqs(qv_gpu_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err)
{
    if (!m)
        return qv_err_set(err, QV_EINVAL, "embed: no model");
    int rc = injected("embed", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->g->mu);
    rc = qv_embed_seqs(m->cpu, seqs, n, out, err);
    pthread_mutex_unlock(&m->g->mu);
    return rc;
}

static void e_embed_free(qv_gpu_model_t *m)
{
    if (!m)
        return;
    qv_embed_model_free(m->cpu);
    free(m);
}

static const qv_gpu_api_t api = {
    .abi_version = QV_GPU_ABI_VERSION,
    .size = (uint32_t)sizeof(qv_gpu_api_t),
    .build = "CPU emulation of the GPU plugin (tests/gpu_emu; kernels/cpu steps, CPU forward pass)",
    .init = e_init,
    .shutdown = e_shutdown,
    .device_info = e_device_info,
    .knn = e_knn,
    .kmeans = e_kmeans,
    .pq_encode = e_pq_encode,
    .sq8_encode = e_sq8_encode,
    .quant_build = e_quant_build,
    .graph_build = e_graph_build,
    .free_blob = e_free_blob,
    .embed_load = e_embed_load,
    .embed_seqs = e_embed_seqs,
    .embed_free = e_embed_free,
};

__attribute__((visibility("default"))) const qv_gpu_api_t *qv_gpu_plugin_api(uint32_t abi_version)
{
    return abi_version == QV_GPU_ABI_VERSION ? &api : NULL;
}
