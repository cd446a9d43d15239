/* Vector quantisers for the graph walk: SQ8 (8-bit scalar quantisation, per-dimension ranges) and PQ (product
 * quantisation, m sub-quantisers x 256 centroids, Jégou, Douze & Schmid, "Product quantization for nearest neighbor
 * search", TPAMI 2011).
 *
 * What a qv_quant_t is. A trained quantiser for one matrix of n rows (one sealed segment) together with the codes of
 * all n rows: code_size bytes per row (SQ8: dim, PQ: m), contiguous, row r at codes + r * code_size. The quantiser
 * owns its codes and codebooks; it never keeps a pointer to the vectors it was trained on. A search computes
 * distances from a query (full precision) to codes: the asymmetric distance (ADC), i.e. the exact distance from the
 * query to the row's reconstruction. It is "smaller is better" in the units of the HNSW index: squared L2, or -dot
 * for inner product, so it can stand in for the full-precision distance during a graph walk and the final
 * candidates are then re-ranked with the full-precision vectors (index/hnsw).
 *
 * Per-query work. qv_quant_prepare() turns a query into a table (qv_quant_table_floats() floats; 64-byte aligned
 * memory is best): SQ8 the query shifted or scaled per dimension, PQ the m x 256 lookup table of distances from each
 * query sub-vector to each centroid. Then qv_quant_dist4() gives four distances per call from that table.
 *
 * SIMD. Like index/distance.h: a scalar reference (also the fallback), AVX2+FMA and AVX-512F variants, each
 * compiled with __attribute__((target)); a quantiser picks the tier that qv_dist() has at train/decode time (so
 * qv_dist_init() forcing a tier forces it here too). qv_quant_kernels() gives each tier's kernels for tests.
 *
 * Thread safety: a trained or decoded quantiser is immutable; any number of threads may prepare tables, compute
 * distances, encode, decode and serialise at once. Training runs on a qv_pool_t. */
#ifndef QV_QUANT_H
#define QV_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/pool.h"

#define QV_PQ_KSUB 256                /* centroids per sub-quantiser: one byte per sub-code */
#define QV_PQ_DEFAULT_ITERS 25        /* Lloyd iterations (faiss's default for PQ) */
#define QV_PQ_DEFAULT_SAMPLE (256 * 64)  /* training rows: 64 per centroid */
#define QV_QUANT_MAX_DIM 65536u

typedef enum {
    QV_QUANT_NONE = 0,
    QV_QUANT_SQ8 = 1,  /* one byte per dimension, per-dimension [min, max] over the rows */
    QV_QUANT_PQ = 2,   /* one byte per sub-vector of dim / m dimensions */
} qv_quant_kind_t;

typedef enum {
    QV_QUANT_L2 = 0,  /* squared Euclidean; same values as qv_hnsw_metric_t */
    QV_QUANT_IP = 1,  /* distance = -dot */
} qv_quant_metric_t;

typedef struct {
    qv_quant_kind_t kind;      /* SQ8 or PQ */
    qv_quant_metric_t metric;
    uint32_t pq_m;             /* PQ sub-quantisers; dim % pq_m must be 0. 0 = qv_pq_default_m(dim) */
    uint32_t pq_iters;         /* Lloyd iterations per sub-quantiser; 0 = QV_PQ_DEFAULT_ITERS */
    size_t pq_sample;          /* training rows (a fixed-seed sample); 0 = min(n, QV_PQ_DEFAULT_SAMPLE) */
    uint64_t seed;             /* PQ sample and k-means++ draws: same seed and data, same codebooks, any threads */
} qv_quant_params_t;

typedef struct qv_quant qv_quant_t;

/* The default PQ m for a dimension: the largest divisor of dim that is <= dim / 4 (codes then take at most 1/16 of
 * the float32 bytes), or 1 when dim < 4. */
uint32_t qv_pq_default_m(uint32_t dim);

/* Trains a quantiser on rows 0..n-1 of `vectors` (row r at vectors + r * stride floats; stride 0 = dim) and encodes
 * all n rows. SQ8 uses every row; PQ a sample, its m sub-quantisers trained in parallel on `pool` (NULL: the caller
 * only); the result does not depend on the number of threads. If *cancel (may be NULL) becomes non-zero the
 * training stops early with QV_ECANCELLED. n may be 0. Returns QV_OK, QV_EINVAL (bad parameter, e.g. dim % pq_m != 0;
 * detail in err), QV_ENOMEM, QV_ECANCELLED. On success *out is owned by the caller (qv_quant_free). */
int qv_quant_train(const qv_quant_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_pool_t *pool, const int *cancel, qv_err_t *err, qv_quant_t **out);

void qv_quant_free(qv_quant_t *q);

qv_quant_kind_t qv_quant_kind(const qv_quant_t *q);
qv_quant_metric_t qv_quant_metric(const qv_quant_t *q);
uint32_t qv_quant_dim(const qv_quant_t *q);
size_t qv_quant_rows(const qv_quant_t *q);
/* PQ: m; SQ8: dim. */
uint32_t qv_quant_m(const qv_quant_t *q);
/* Bytes per code: SQ8 dim, PQ m. */
size_t qv_quant_code_size(const qv_quant_t *q);
/* The code of row r (r < n), owned by the quantiser, valid until qv_quant_free(). */
const uint8_t *qv_quant_code(const qv_quant_t *q, size_t row);
/* Memory held: codes + codebooks/ranges. */
size_t qv_quant_bytes(const qv_quant_t *q);
/* The kernels' tier name ("scalar", "avx2", "avx512"; a PQ quantiser on AMD reports "avx2/scalar-lookup" or
 * "avx512/scalar-lookup": see quant.c). */
const char *qv_quant_tier(const qv_quant_t *q);

/* Encodes one vector (dim floats) into code_size bytes, and reconstructs a code into dim floats. */
void qv_quant_encode(const qv_quant_t *q, const float *v, uint8_t *code);
void qv_quant_decode(const qv_quant_t *q, const uint8_t *code, float *v);

/* Floats of a per-query table (SQ8: dim + 16; PQ: m * 256). */
size_t qv_quant_table_floats(const qv_quant_t *q);
/* Fills `table` for `query` (dim floats). */
void qv_quant_prepare(const qv_quant_t *q, const float *query, float *table);
/* Asymmetric distances from the prepared query to four codes (repeat a code to fill unused lanes). */
void qv_quant_dist4(const qv_quant_t *q, const float *table, const uint8_t *const codes[4], float out[4]);
/* One distance (the dist4 kernel with the code repeated, so it agrees bitwise with dist4). */
float qv_quant_dist(const qv_quant_t *q, const float *table, const uint8_t *code);

/* The kernel signature: distances from a prepared table to four codes of quantiser q. */
typedef void (*qv_quant_dist4_fn)(const qv_quant_t *q, const float *table, const uint8_t *const codes[4],
                                  float out[4]);
/* The active dist4 kernel of q (for hot loops: call it directly, no per-call dispatch). */
qv_quant_dist4_fn qv_quant_dist4_kernel(const qv_quant_t *q);

/* One SIMD tier's kernels, for tests and benchmarks: each computes what the scalar tier computes, to rounding. */
typedef struct {
    qv_quant_dist4_fn sq8_l2, sq8_ip, pq;
    /* PQ lookup table of `x` (dim floats) for sub-quantisers j0..j1-1: (j1 - j0) x 256 squared L2 distances from
     * x's sub-vectors to the centroids, or -dot for ip != 0. */
    void (*pq_table)(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table);
    const char *name;
} qv_quant_kernels_t;

/* A tier's kernels; NULL when this CPU cannot run that tier. QV_SIMD_AUTO = the tier qv_dist() has now. */
const qv_quant_kernels_t *qv_quant_kernels(qv_simd_t tier);

/* Appends the serialised quantiser with all its codes (SQ8: format at the top of index/quant/sq8.c, PQ:
 * index/quant/pq.c). Returns QV_OK or QV_ENOMEM (out->oom). */
int qv_quant_encode_blob(const qv_quant_t *q, qv_wbuf_t *out);

/* Loads a blob written by qv_quant_encode_blob as untrusted data: checksum, magic, version, exact length, every
 * float finite; n and dim must be the caller's (else QV_ECORRUPT: it belongs to other vectors). Never reads outside
 * blob[0..len). Returns QV_OK, QV_ECORRUPT (detail in err), QV_EINVAL (NULL pointers), QV_ENOMEM. */
int qv_quant_decode_blob(const void *blob, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out);

/* ---- k-means (the PQ trainer's; exposed for tests and other trainers) ---- */

typedef struct {
    uint32_t iters;     /* Lloyd iterations at most; 0 = QV_PQ_DEFAULT_ITERS */
    uint64_t seed;      /* k-means++ draws */
    double *objective;  /* optional, iters + 1 entries: [0] after k-means++ seeding, [i] after iteration i */
} qv_kmeans_params_t;

typedef struct {
    uint32_t iters;     /* iterations run (fewer than asked once at most 0.1% of the assignments change) */
    double objective;   /* final sum of squared distances to the nearest centroid */
    uint32_t empty_splits;  /* empty clusters re-seeded by splitting the largest one */
} qv_kmeans_stats_t;

/* k-means++ seeding (Arthur & Vassilvitskii 2007) then Lloyd iterations on n points of d floats (row-major x),
 * k centroids into cent (k x d). k <= n is not required: with fewer distinct points than k the surplus centroids
 * repeat earlier ones. Single-threaded and deterministic for a seed. Returns QV_OK, QV_EINVAL (k or d 0, n 0),
 * QV_ENOMEM. stats may be NULL. */
int qv_kmeans(const float *x, size_t n, uint32_t d, uint32_t k, const qv_kmeans_params_t *params, float *cent,
              qv_kmeans_stats_t *stats);

#endif
