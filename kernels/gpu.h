/* The GPU plugin's one C interface: a versioned table of functions that libquiver_gpu.so hands out.
 *
 * Why a table behind dlopen and not a link-time dependency. quiverd must start where no CUDA library exists (most
 * machines), so it never links CUDA: server/gpu.c dlopens libquiver_gpu.so (built from kernels/cuda/ when nvcc is
 * present), looks up ONE symbol, QV_GPU_ENTRY_SYMBOL, calls it with the ABI version it was compiled against and gets
 * this table back, or NULL when the plugin speaks another version. The plugin links the CUDA runtime statically
 * (libcudart_static) and cuBLAS dynamically, so a missing libcublas or driver (libcuda.so.1) shows up as a dlopen or
 * init failure, which the loader turns into one log line and a CPU fallback.
 *
 * Versioning. abi_version changes whenever a field or a signature changes meaning; size is sizeof(qv_gpu_api_t) as
 * the plugin was built, so a later ABI may append functions without a version bump (a caller reads only the fields
 * that lie below `size`). The types shared with the rest of Quiver (qv_err_t, qv_cand_t, qv_embed_weights_t,
 * qv_embed_seq_t) are part of the ABI: changing their layout means bumping QV_GPU_ABI_VERSION.
 *
 * Conventions (as everywhere in Quiver): every function returns 0 (QV_OK) or a negative QV_E* code and, when err is
 * not NULL, a message naming what failed (CUDA's own error string included). Nothing aborts or exits: a CUDA error is
 * QV_EIO ("the device failed"), an allocation that does not fit is QV_ENOMEM, a bad argument QV_EINVAL. All pointers
 * given to these functions are HOST pointers; the plugin copies to and from the device itself. Device memory comes
 * from cudaMalloc only (no managed memory), sized from cudaMemGetInfo at the call: inputs larger than the free memory
 * are processed in batches (queries in batches, base vectors in chunks whose partial top-k lists are merged), so a
 * call fails with QV_ENOMEM only when not even one minimal batch fits.
 *
 * Threads: a context (qv_gpu_t) may be shared by any number of threads; calls on one context are serialised by a
 * mutex inside it (one device, one stream, one cuBLAS handle). Metric values are those of qv_hnsw_metric_t and
 * qv_quant_metric_t (0 = squared L2, 1 = inner product, distance = -dot), so they convert by value.
 *
 * Results computed on a GPU are not bit-identical to the CPU's (fused multiply-adds and summation order differ);
 * bench/gpu_check.sh states the tolerances. Each kernel's per-thread logic lives in kernels/cuda/<kernel>.cuh as
 * __host__ __device__ functions that the CPU unit test (tests/unit/test_gpu_logic.c) runs against Quiver's CPU
 * references, and kernels/cpu/ has CPU implementations of the same steps (the graph build in particular). */
#ifndef QV_KERNELS_GPU_H
#define QV_KERNELS_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "index/topk.h"
#include "query/embed/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_GPU_ABI_VERSION 2u /* 2: qv_err_t.msg grew to 1024 bytes */
#define QV_GPU_ENTRY_SYMBOL "qv_gpu_plugin_api"
#define QV_GPU_PLUGIN_NAME "libquiver_gpu.so"

/* A ref of this value in a qv_gpu_knn result marks an empty slot (fewer than k rows were eligible). */
#define QV_GPU_NO_ROW UINT64_MAX
/* Largest k of one k-NN call (per-lane candidate lists are k long: see kernels/cuda/knn.cu). */
#define QV_GPU_MAX_K 1024u
/* Largest row count of one base or k-NN graph (row ids are uint32 on the device; UINT32_MAX means none). */
#define QV_GPU_MAX_ROWS 0xFFFFFFF0u

typedef struct qv_gpu qv_gpu_t;              /* one device: stream, cuBLAS handle, mutex */
typedef struct qv_gpu_model qv_gpu_model_t;  /* embedding weights resident on one device */

typedef enum {
    QV_GPU_L2 = 0,  /* squared Euclidean */
    QV_GPU_IP = 1,  /* inner product, distance = -dot */
} qv_gpu_metric_t;

typedef struct {
    char name[128];           /* cudaDeviceProp.name */
    int device;               /* the index init was given */
    int device_count;
    int cc_major, cc_minor;   /* compute capability */
    int sm_count;
    int driver_version;       /* cudaDriverGetVersion, e.g. 13000 */
    int runtime_version;      /* cudaRuntimeGetVersion of the static runtime the plugin carries */
    size_t mem_free, mem_total;  /* cudaMemGetInfo at the call, bytes */
} qv_gpu_info_t;

typedef struct {
    qv_gpu_metric_t metric;
    uint32_t k;               /* 1..QV_GPU_MAX_K; may exceed the eligible rows (then the tail is empty slots) */
    const uint64_t *allowed;  /* NULL = every base row; else qv_bm_words(nb) words, bit r set = row r eligible */
    int exclude_self;         /* k-NN graph: query i is base row self_row0 + i and is never its own neighbour */
    size_t self_row0;
    size_t mem_limit;         /* 0 = the free memory cudaMemGetInfo reports (less a reserve); else at most this many
                               * bytes (tests use it to force batching) */
} qv_gpu_knn_params_t;

typedef struct {
    uint32_t k;               /* centroids, >= 1 */
    uint32_t iters;           /* Lloyd iterations at most; 0 = 25 */
    uint64_t seed;            /* k-means++ draws (the same draws as index/quant/kmeans.c for the same seed) */
} qv_gpu_kmeans_params_t;

typedef struct {
    uint32_t iters;           /* iterations run */
    double objective;         /* final sum of squared distances to the nearest centroid */
    uint32_t empty_splits;
} qv_gpu_kmeans_stats_t;

typedef enum {
    QV_GPU_QUANT_NONE = 0,
    QV_GPU_QUANT_SQ8 = 1,
    QV_GPU_QUANT_PQ = 2,
} qv_gpu_quant_t;  /* values of qv_hnsw_quant_t / qv_quant_kind_t */

typedef struct {
    qv_gpu_quant_t kind;      /* SQ8 or PQ */
    qv_gpu_metric_t metric;
    uint32_t pq_m;            /* PQ: sub-quantisers, must divide dim; 0 = the largest divisor of dim <= dim / 4 */
    uint32_t pq_iters;        /* 0 = 25 */
    size_t pq_sample;         /* training rows; 0 = min(n, 16384) */
    uint64_t seed;
} qv_gpu_quant_params_t;

typedef struct {
    qv_gpu_metric_t metric;
    uint32_t M;               /* as qv_hnsw_params_t: 0 = 16; layer 0 keeps up to 2M links, upper layers M */
    uint32_t ef_construction; /* written into the blob (informational, the CPU's default 200 when 0) */
    uint32_t knn_k;           /* degree of the initial exact k-NN graph before pruning; 0 = 6M (96 for M = 16),
                               * capped at n - 1 and QV_GPU_MAX_K */
    uint64_t seed;            /* level draws and quantiser training */
    qv_gpu_quant_t quant;     /* a quantiser nested in the blob, as qv_hnsw_build would train (0 = none) */
    uint32_t pq_m;            /* PQ only, as qv_hnsw_params_t.pq_m */
    size_t mem_limit;         /* as qv_gpu_knn_params_t.mem_limit */
} qv_gpu_graph_params_t;

typedef struct {
    uint32_t max_level;
    uint32_t entry;
    uint64_t links;           /* directed links on all layers */
    double knn_ms, prune_ms;  /* wall time of layer 0's k-NN lists and of its pruning + reverse edges */
    double upper_ms, total_ms;  /* the upper layers (all steps); the whole graph (not the nested quantiser) */
} qv_gpu_graph_stats_t;

typedef struct qv_gpu_api {
    uint32_t abi_version;     /* QV_GPU_ABI_VERSION the plugin was built with */
    uint32_t size;            /* sizeof(qv_gpu_api_t) in the plugin's build */
    const char *build;        /* e.g. "cuda 13.0, sm_80 sm_90, cudart static, cublas 13" (static string) */

    /* Opens device `device` (0 = the first): checks the driver and the device, creates a stream and a cuBLAS handle.
     * QV_EUNAVAIL when the NVIDIA driver is missing or too old for the plugin's runtime; QV_ENOTFOUND when the driver
     * works but there is no such device or no usable one (compute capability below 8.0); QV_EIO on other CUDA
     * errors; the message says which. On success *out is owned by the caller (shutdown). */
    int (*init)(int device, qv_gpu_t **out, qv_err_t *err);

    /* Frees the context (and nothing the caller owns). No call may be running on it. NULL is a no-op. Models loaded
     * on it must be freed first. */
    void (*shutdown)(qv_gpu_t *g);

    int (*device_info)(qv_gpu_t *g, qv_gpu_info_t *info, qv_err_t *err);

    /* Exact k nearest base rows of each of nq queries (batched distance with fused top-k): out gets nq x k
     * candidates, query q's at out + q * k, best first (ascending distance, ties by the smaller row), refs being
     * base row numbers 0..nb-1; slots beyond the eligible rows hold {INFINITY, QV_GPU_NO_ROW}. Rows whose distance
     * is NaN are never returned (vectors with NaN are refused at the API; this only keeps a bad row from poisoning
     * the lists). Queries and base are row-major dim floats. Used for exact (filtered) search and, with
     * exclude_self, for the k-NN graph of a graph build. */
    int (*knn)(qv_gpu_t *g, const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base,
               size_t nb, uint32_t dim, qv_cand_t *out, qv_err_t *err);

    /* k-means on n points of dim floats: k-means++ seeding (on the host, the draws of index/quant/kmeans.c) and
     * Lloyd iterations with the assignment and the sums on the device, stopping as kmeans.c does (at most 0.1% of
     * the assignments changed, or iters updates).
     * centroids: k x dim floats out; assign (may be NULL): n cluster numbers out; stats may be NULL. */
    int (*kmeans)(qv_gpu_t *g, const qv_gpu_kmeans_params_t *p, const float *x, size_t n, uint32_t dim,
                  float *centroids, uint32_t *assign, qv_gpu_kmeans_stats_t *stats, qv_err_t *err);

    /* PQ codes of n rows: codebooks are m x 256 x (dim / m) floats (index/quant/pq.c's layout); codes gets n x m
     * bytes (nearest centroid per sub-vector, ties to the lower centroid). */
    int (*pq_encode)(qv_gpu_t *g, const float *codebooks, uint32_t m, const float *x, size_t n, uint32_t dim,
                     uint8_t *codes, qv_err_t *err);

    /* SQ8 of a segment: per-dimension ranges over the n rows (non-finite values ignored) into vmin and scale
     * (dim floats each), then n x dim codes, exactly as index/quant/sq8.c trains and encodes. */
    int (*sq8_encode)(qv_gpu_t *g, const float *x, size_t n, uint32_t dim, float *vmin, float *scale,
                      uint8_t *codes, qv_err_t *err);

    /* Trains and encodes a whole segment and returns the quantiser blob that qv_quant_decode_blob loads (format at
     * the top of index/quant/sq8.c and pq.c): *blob is malloc'd by the plugin, *len its length; release it with
     * free_blob. */
    int (*quant_build)(qv_gpu_t *g, const qv_gpu_quant_params_t *p, const float *x, size_t n, uint32_t dim,
                       uint8_t **blob, size_t *len, qv_err_t *err);

    /* Builds a graph for n rows (CAGRA-style: exact k-NN graph, rank-based pruning, reverse edges; upper layers
     * from the nodes whose drawn HNSW level is >= 1) and returns it as an HNSW graph blob (format at the top of
     * index/hnsw/io.c, version 2) that qv_hnsw_decode loads against the same vectors and qv_hnsw_search serves.
     * *blob is released with free_blob. stats may be NULL. */
    int (*graph_build)(qv_gpu_t *g, const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim,
                       uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *stats, qv_err_t *err);

    void (*free_blob)(uint8_t *blob);

    /* Uploads an embedding model's weights (query/embed/model.h: qv_embed_weights) to the device. The weights are
     * copied: the CPU model may be freed afterwards. *out is owned by the caller (embed_free, before shutdown). */
    int (*embed_load)(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err);

    /* qv_embed_seqs on the device: n token sequences into n x hidden floats, each of unit L2 norm. Same argument
     * checks and errors as qv_embed_seqs (max_tokens is the weights' max_pos, capped at QV_TOK_MAX_LEN). */
    int (*embed_seqs)(qv_gpu_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err);

    void (*embed_free)(qv_gpu_model_t *m);
} qv_gpu_api_t;

/* The plugin's one exported symbol (QV_GPU_ENTRY_SYMBOL): the table when abi_version is the one it implements,
 * else NULL. The table is static: valid as long as the plugin stays loaded. */
typedef const qv_gpu_api_t *(*qv_gpu_entry_fn)(uint32_t abi_version);

#ifdef __cplusplus
}
#endif

#endif
