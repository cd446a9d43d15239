/* Scalar reference kernels and the once-at-start-up SIMD dispatch.
 *
 * The reference kernels keep 8 independent partial sums. Without -ffast-math the compiler may not reorder a single
 * float accumulator, so a one-accumulator loop would stay scalar and serial; with 8 explicit lanes it can
 * SLP-vectorize the body into SSE/AVX adds, and the result is still fully determined by the source (same answer at
 * -O0 and -O3). The SIMD tiers sum in a different order, so they agree with the reference to rounding, not bitwise.
 *
 * Dispatch: one static table per tier; `active` points at one of them. qv_dist_init() probes the CPU with
 * __builtin_cpu_supports (which also checks that the OS saves the wider registers) and stores the pointer once.
 * The pointer is read and written with relaxed atomics only so that a sanitizer does not flag a late re-init;
 * the header still asks callers not to re-init while others search. Rejected: GNU ifunc resolvers (glibc/ELF only,
 * and tests could not force a tier) and per-call feature checks (a branch in every distance computation). */
#include "index/distance.h"

#include "index/distance_int.h"

#include <math.h>
#include <stdbool.h>

float qv_l2sq_ref(const float *a, const float *b, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        for (size_t j = 0; j < 8; j++) {
            float d = a[i + j] - b[i + j];
            acc[j] += d * d;
        }
    }
    float tail = 0.0f;
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        tail += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

float qv_dot_ref(const float *a, const float *b, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    }
    float tail = 0.0f;
    for (; i < dim; i++)
        tail += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

float qv_normalize(float *v, size_t dim)
{
    /* The norm is summed in double: normalisation runs once per stored vector, not per comparison, and a float sum
     * of squares of large components could overflow to +inf where the norm itself is representable. */
    double sum = 0.0;
    for (size_t i = 0; i < dim; i++)
        sum += (double)v[i] * (double)v[i];
    double norm = sqrt(sum);
    if (norm == 0.0 || !isfinite(norm))
        return (float)norm;
    double inv = 1.0 / norm;
    for (size_t i = 0; i < dim; i++)
        v[i] = (float)((double)v[i] * inv);
    return (float)norm;
}

static const qv_dist_table_t scalar_table = {qv_l2sq_ref, qv_dot_ref, "scalar"};
#if QV_DIST_X86
static const qv_dist_table_t avx2_table = {qv__l2sq_avx2, qv__dot_avx2, "avx2"};
static const qv_dist_table_t avx512_table = {qv__l2sq_avx512, qv__dot_avx512, "avx512"};
#endif

static const qv_dist_table_t *active = &scalar_table;

static bool tier_supported(qv_simd_t tier)
{
    switch (tier) {
    case QV_SIMD_SCALAR:
        return true;
#if QV_DIST_X86
    case QV_SIMD_AVX2:
        __builtin_cpu_init();  /* needed if we run before libgcc's constructor; cheap and idempotent */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case QV_SIMD_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return false;
    }
}

static const qv_dist_table_t *tier_table(qv_simd_t tier)
{
    switch (tier) {
    case QV_SIMD_SCALAR:
        return &scalar_table;
#if QV_DIST_X86
    case QV_SIMD_AVX2:
        return &avx2_table;
    case QV_SIMD_AVX512:
        return &avx512_table;
#endif
    default:
        return NULL;
    }
}

/* The best supported tier at or below `want` (AUTO and unknown values mean "the best there is"). */
static qv_simd_t best_tier(qv_simd_t want)
{
    int top = (want >= QV_SIMD_SCALAR && want <= QV_SIMD_AVX512) ? (int)want : (int)QV_SIMD_AVX512;
    for (int t = top; t > QV_SIMD_SCALAR; t--) {
        if (tier_supported((qv_simd_t)t))
            return (qv_simd_t)t;
    }
    return QV_SIMD_SCALAR;
}

void qv_dist_init(qv_simd_t want)
{
    __atomic_store_n(&active, tier_table(best_tier(want)), __ATOMIC_RELAXED);
}

const qv_dist_table_t *qv_dist(void)
{
    return __atomic_load_n(&active, __ATOMIC_RELAXED);
}

const qv_dist_table_t *qv_dist_tier(qv_simd_t tier)
{
    if (tier == QV_SIMD_AUTO)
        return tier_table(best_tier(QV_SIMD_AUTO));
    if (!tier_supported(tier))
        return NULL;
    return tier_table(tier);
}
