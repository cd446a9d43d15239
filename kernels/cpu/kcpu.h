/* Internal to kernels/: the host side of the GPU plugin's algorithms, shared by the plugin (libquiver_gpu.so) and
 * the CPU implementations of the same steps (tests/unit/test_gpu_logic.c, bench/gpu_check.c).
 *
 * Drivers and backends. The graph build and the quantiser build are written once, as drivers that call a backend
 * for the heavy steps (k-NN lists; pruning + reverse edges; k-means; encoding). qv_kcpu_backend() runs those steps
 * on the CPU with the per-thread logic of kernels/cuda/<kernel>.cuh (slow and simple: this is the reference the CUDA
 * kernels port); the plugin's backend runs them on the device. Everything the drivers decide themselves (levels,
 * sampling, which rows go to which layer, the blob bytes) is therefore the same code on both sides.
 *
 * Blobs. qv_kgraph_blob writes index/hnsw/io.c's graph format (version 2) and qv_kblob_sq8 / qv_kblob_pq
 * index/quant's formats, byte for byte what qv_hnsw_encode and qv_quant_encode_blob write, so Quiver's own loaders
 * (qv_hnsw_decode, qv_quant_decode_blob: untrusted-input checks, checksums) are what accept a GPU-built index. */
#ifndef QV_KERNELS_KCPU_H
#define QV_KERNELS_KCPU_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "kernels/gpu.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_KGRAPH_MAX_LEVEL 31

/* One layer of a graph: `count` nodes (layer 0: all n, nodes == NULL; above: their ids ascending), each with up to
 * deg links (global node ids) in links[i * deg ..], nlinks[i] of them. */
typedef struct {
    uint32_t count;
    uint32_t *nodes;
    uint32_t deg;
    uint32_t *links;
    uint32_t *nlinks;
} qv_klayer_t;

typedef struct {
    size_t n;
    uint32_t dim, M, efc;
    int metric;
    uint64_t seed;
    uint8_t *levels;       /* n */
    uint32_t max_level, entry;
    qv_klayer_t layer[QV_KGRAPH_MAX_LEVEL + 1];
} qv_kgraph_t;

void qv_kgraph_free(qv_kgraph_t *g);

/* The heavy steps, on one device or on the CPU. ctx is the backend's own. */
typedef struct {
    void *ctx;
    /* k-NN lists of n rows among themselves (self excluded): ids gets n x k row numbers, best first, QV_K_NONE past
     * the n - 1 others. */
    int (*knn_ids)(void *ctx, const float *x, size_t n, uint32_t dim, int metric, uint32_t k, size_t mem_limit,
                   uint32_t *ids, qv_err_t *err);
    /* Steps 2-4 of kernels/cuda/graph.cuh on k-NN lists (n x k): links gets n x deg, nlinks n counts. */
    int (*prune_merge)(void *ctx, const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links,
                       uint32_t *nlinks, qv_err_t *err);
    int (*kmeans)(void *ctx, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, float *cent,
                  uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err);
    int (*pq_encode)(void *ctx, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                     uint8_t *codes, qv_err_t *err);
    int (*sq8_encode)(void *ctx, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                      uint8_t *codes, qv_err_t *err);
} qv_kbackend_t;

/* The CPU backend (ctx NULL). */
const qv_kbackend_t *qv_kcpu_backend(void);

/* ---- drivers (kernels/cpu/graph.c, kernels/cpu/quant.c) ---- */

/* The graph of kernels/cuda/graph.cuh for n rows into g (freed with qv_kgraph_free, also after an error). */
int qv_kgraph_build(const qv_kbackend_t *be, const qv_gpu_graph_params_t *p, const float *x, size_t n,
                    uint32_t dim, qv_kgraph_t *g, qv_gpu_graph_stats_t *stats, qv_err_t *err);

/* Steps 2-4 on the CPU (the CPU backend's prune_merge; exposed for tests). */
int qv_kcpu_prune_merge(const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links, uint32_t *nlinks,
                        qv_err_t *err);

/* Appends the HNSW blob of g (index/hnsw/io.c, version 2), with the quantiser blob qblob (qlen bytes, kind qkind:
 * 0 none, 1 SQ8, 2 PQ) nested when qkind != 0. Returns QV_OK or QV_ENOMEM. */
int qv_kgraph_blob(const qv_kgraph_t *g, int qkind, const uint8_t *qblob, size_t qlen, qv_wbuf_t *out);

/* Graph build + optional quantiser + blob: what the table's graph_build returns (*blob malloc'd). */
int qv_kgraph_build_blob(const qv_kbackend_t *be, const qv_gpu_graph_params_t *p, const float *x, size_t n,
                         uint32_t dim, uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *stats, qv_err_t *err);

/* Trains and encodes a quantiser through the backend and appends its blob (index/quant's format). */
int qv_kquant_build(const qv_kbackend_t *be, const qv_gpu_quant_params_t *p, const float *x, size_t n,
                    uint32_t dim, qv_wbuf_t *out, qv_err_t *err);

/* index/quant blobs from parts (sq8.c and pq.c formats). */
int qv_kblob_sq8(int metric, uint32_t dim, size_t n, const float *vmin, const float *scale, const uint8_t *codes,
                 qv_wbuf_t *out);
int qv_kblob_pq(int metric, uint32_t dim, uint32_t m, size_t n, const float *cent, const uint8_t *codes,
                qv_wbuf_t *out);

/* ---- the CPU implementations of the table's functions (same contracts as qv_gpu_api_t's, without a context) ---- */

int qv_kcpu_knn(const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base, size_t nb,
                uint32_t dim, qv_cand_t *out, qv_err_t *err);
int qv_kcpu_kmeans(const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, float *cent,
                   uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err);
int qv_kcpu_pq_encode(const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim, uint8_t *codes,
                      qv_err_t *err);
int qv_kcpu_sq8_encode(const float *x, size_t n, uint32_t dim, float *vmin, float *scale, uint8_t *codes,
                       qv_err_t *err);

/* Argument checks shared by both implementations (messages name the argument). */
int qv_kcheck_knn(const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base, size_t nb,
                  uint32_t dim, const qv_cand_t *out, qv_err_t *err);
int qv_kcheck_kmeans(const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim, const float *cent,
                     qv_err_t *err);
/* Resolves PQ m (0 = default) and checks it; *m_out gets it. */
int qv_kcheck_quant(const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim, uint32_t *m_out,
                    qv_err_t *err);
int qv_kcheck_graph(const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim, qv_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
