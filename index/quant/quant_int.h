/* Internal to the index/quant/ sources (quant.c, sq8.c, pq.c): the quantiser structure and the per-kind entry
 * points behind quant.c.
 *
 * Memory layout:
 *   codes[n * code_size]   one code per row, contiguous (a graph walk reads them at random: 64-byte aligned, huge
 *                          pages when large, like the HNSW layer-0 array)
 *   SQ8: vmin[dim], scale[dim]   reconstruction x[i] = vmin[i] + scale[i] * code[i]
 *   PQ:  cent[m][256][dsub]      centroid c of sub-quantiser j (decode, blob)
 *        cent_t[m][dsub][256]    the same transposed per sub-quantiser, so a lookup table is built with the inner loop
 *                                running over 256 consecutive centroids (vectorises with no horizontal sums) */
#ifndef QV_QUANT_INT_H
#define QV_QUANT_INT_H

#include "index/quant/quant.h"

#include <stdbool.h>

struct qv_quant {
    qv_quant_kind_t kind;
    qv_quant_metric_t metric;
    uint32_t dim;
    size_t n;
    uint32_t code_size;
    uint32_t m, dsub;   /* PQ; SQ8: m = dim, dsub = 1 */
    float *vmin, *scale;
    float *cent, *cent_t;
    uint8_t *codes;
    const qv_quant_kernels_t *kern;  /* tier fixed at train/decode */
    qv_quant_dist4_fn dist4;         /* kern->sq8_l2 / sq8_ip / pq (PQ on AMD: the scalar kernel, see quant.c) */
    const char *tier;                /* what qv_quant_tier() reports */
};

/* Zeroed, 64-byte aligned; >= 4 MiB: 2 MiB aligned and advised for huge pages. Release with free(). NULL on
 * failure or overflow. */
void *qv__quant_alloc(size_t count, size_t size);

/* Allocates the struct with its fields and arrays for (kind, metric, n, dim, m) and fixes the kernels to the
 * active tier. Codes and codebooks zeroed. */
int qv__quant_new(qv_quant_kind_t kind, qv_quant_metric_t metric, size_t n, uint32_t dim, uint32_t m,
                  qv_err_t *err, qv_quant_t **out);

/* Runs fn(arg, task) for task in [0, ntasks) on pool (helper around qv_pool_parallel). */
void qv__quant_parallel(qv_pool_t *pool, size_t ntasks, void (*fn)(void *arg, int task), void *arg);

/* Encodes rows [0, n) of vectors into q->codes on the pool (quant.c; uses qv_quant_encode). */
int qv__quant_encode_rows(qv_quant_t *q, const float *vectors, size_t stride, qv_pool_t *pool, const int *cancel);

static inline bool qv__cancelled(const int *cancel) { return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED); }

/* Index of the smallest of d[0..k) (k >= 1), the lowest index among equals; NaNs are never chosen (0 if all are).
 * Two passes, see kmeans.c. */
static inline __attribute__((always_inline)) uint32_t qv__argmin(const float *d, size_t k)
{
    float m[8] = {d[0], d[0], d[0], d[0], d[0], d[0], d[0], d[0]};
    size_t c = 0;
    for (; c + 8 <= k; c += 8)
        for (size_t j = 0; j < 8; j++)
            m[j] = d[c + j] < m[j] ? d[c + j] : m[j];
    for (; c < k; c++)
        m[0] = d[c] < m[0] ? d[c] : m[0];
    float best = m[0];
    for (size_t j = 1; j < 8; j++)
        best = m[j] < best ? m[j] : best;
    for (c = 0; c < k; c++)
        if (d[c] == best)
            return (uint32_t)c;
    return 0;
}

/* ---- SQ8 (sq8.c) ---- */
int qv__sq8_train(qv_quant_t *q, const float *vectors, size_t stride);
void qv__sq8_encode(const qv_quant_t *q, const float *v, uint8_t *code);
void qv__sq8_decode(const qv_quant_t *q, const uint8_t *code, float *v);
void qv__sq8_prepare(const qv_quant_t *q, const float *query, float *table);
int qv__sq8_encode_blob(const qv_quant_t *q, qv_wbuf_t *out);
int qv__sq8_decode_blob(const uint8_t *b, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out);

void qv__sq8_l2_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__sq8_ip_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);

/* ---- PQ (pq.c) ---- */
int qv__pq_train(qv_quant_t *q, const qv_quant_params_t *p, const float *vectors, size_t stride, qv_pool_t *pool,
                 const int *cancel, qv_err_t *err);
void qv__pq_encode(const qv_quant_t *q, const float *v, uint8_t *code);
void qv__pq_decode(const qv_quant_t *q, const uint8_t *code, float *v);
void qv__pq_prepare(const qv_quant_t *q, const float *query, float *table);
int qv__pq_encode_blob(const qv_quant_t *q, qv_wbuf_t *out);
int qv__pq_decode_blob(const uint8_t *b, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out);
/* Fills cent_t from cent. */
void qv__pq_transpose(qv_quant_t *q);

void qv__pq_dist4_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__pq_table_ref(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table);

#if defined(__x86_64__) || defined(__i386__)
#define QV_QUANT_X86 1
void qv__sq8_l2_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__sq8_ip_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__sq8_l2_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__sq8_ip_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__pq_dist4_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__pq_dist4_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4]);
void qv__pq_table_avx2(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table);
void qv__pq_table_avx512(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table);
#else
#define QV_QUANT_X86 0
#endif

/* Little-endian float arrays in blobs. */
void qv__put_f32s(qv_wbuf_t *out, const float *v, size_t count);
/* Reads count floats; false (and rd->failed) when short or when any is not finite. */
bool qv__get_f32s(qv_rbuf_t *rd, float *v, size_t count);

#endif
