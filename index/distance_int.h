/* Internal to index/distance*.c: the SIMD kernels behind the dispatch table in distance.c.
 *
 * Each kernel lives in its own file and carries its own __attribute__((target(...))), so the project is built
 * without -mavx2/-mavx512f and only these functions use the wider instructions. Calling one on a CPU that lacks the
 * feature is an illegal instruction: go through qv_dist() / qv_dist_tier(), which check the CPU first. */
#ifndef QV_DISTANCE_INT_H
#define QV_DISTANCE_INT_H

#include <stddef.h>

/* The SIMD tiers exist only on x86; elsewhere the scalar tier is the only one and the kernel files compile empty. */
#if defined(__x86_64__) || defined(__i386__)
#define QV_DIST_X86 1
#else
#define QV_DIST_X86 0
#endif

#if QV_DIST_X86
/* AVX2 + FMA (index/distance_avx2.c). */
float qv__l2sq_avx2(const float *a, const float *b, size_t dim);
float qv__dot_avx2(const float *a, const float *b, size_t dim);

/* AVX-512F (index/distance_avx512.c). */
float qv__l2sq_avx512(const float *a, const float *b, size_t dim);
float qv__dot_avx512(const float *a, const float *b, size_t dim);
#endif

#endif
