/* Distance kernels with SIMD dispatch.
 *
 * Three tiers, as in pgvector and Redis: a plain loop that is also the reference and the fallback, an AVX2+FMA
 * variant and an AVX-512F variant (compiled with __attribute__((target(...))) so the rest of the binary stays
 * portable). qv_dist_init() probes the CPU once at start-up and fixes the function pointers; hot loops call through
 * the table with no per-call checks. All kernels accept any dim >= 1 (tails handled) and unaligned pointers. */
#ifndef QV_DISTANCE_H
#define QV_DISTANCE_H

#include <stddef.h>

typedef float (*qv_dist_fn)(const float *a, const float *b, size_t dim);

typedef struct {
    qv_dist_fn l2sq;   /* sum (a[i]-b[i])^2 */
    qv_dist_fn dot;    /* sum a[i]*b[i] */
    const char *name;  /* "scalar", "avx2", "avx512" */
} qv_dist_table_t;

typedef enum {
    QV_SIMD_AUTO = 0,   /* the best tier this CPU supports */
    QV_SIMD_SCALAR = 1,
    QV_SIMD_AVX2 = 2,
    QV_SIMD_AVX512 = 3,
} qv_simd_t;

/* Chooses the tier once (QV_SIMD_AUTO: best supported; a forced tier the CPU lacks falls back to the best
 * supported one below it). Safe to call more than once; not thread-safe against concurrent qv_dist() callers. */
void qv_dist_init(qv_simd_t want);

/* The active table. Before qv_dist_init() it is the scalar table. */
const qv_dist_table_t *qv_dist(void);

/* Direct access to each tier, for tests and benchmarks. Returns NULL for a tier this CPU cannot run. */
const qv_dist_table_t *qv_dist_tier(qv_simd_t tier);

/* Scalar references (also the fallback tier). */
float qv_l2sq_ref(const float *a, const float *b, size_t dim);
float qv_dot_ref(const float *a, const float *b, size_t dim);

/* Scales v to unit length in place. Returns the original norm (0 leaves v unchanged). */
float qv_normalize(float *v, size_t dim);

#endif
