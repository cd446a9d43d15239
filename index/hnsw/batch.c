/* Batched distance kernels for the graph walk: one query against four vectors per call.
 *
 * Why a batch: on layer 0 the walk computes distances to the unvisited neighbours of a node, a dozen or more random
 * vectors whose cache lines were just prefetched. One vector per call runs one dependent chain of loads and FMAs
 * at a time; four per call load the query once per step for four vectors and keep four independent streams of
 * loads in flight, which is what a memory-bound loop needs (measured on the 100k x 128 benchmark: see
 * bench/ann). The tiers follow the global dispatch (index/distance.h): the AVX-512 or AVX2 batch kernel is used
 * exactly when qv_dist() is that tier, so forcing a tier for tests forces it here too; the scalar tier calls the
 * reference kernels, so results agree with the exact scan to rounding. Values are plain dot or squared L2; the
 * caller negates dot for IP. */
#include "index/hnsw/hnsw_int.h"

#include "index/distance.h"

#include <string.h>

static void l2x4_ref(const float *q, const float *const v[4], size_t dim, float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = qv_l2sq_ref(q, v[j], dim);
}

static void dotx4_ref(const float *q, const float *const v[4], size_t dim, float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = qv_dot_ref(q, v[j], dim);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

AVX512 static void l2x4_avx512(const float *q, const float *const v[4], size_t dim, float out[4])
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        __m512 d0 = _mm512_sub_ps(x, _mm512_loadu_ps(v0 + i));
        __m512 d1 = _mm512_sub_ps(x, _mm512_loadu_ps(v1 + i));
        __m512 d2 = _mm512_sub_ps(x, _mm512_loadu_ps(v2 + i));
        __m512 d3 = _mm512_sub_ps(x, _mm512_loadu_ps(v3 + i));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
        a2 = _mm512_fmadd_ps(d2, d2, a2);
        a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    if (i < dim) {  /* masked loads zero the lanes past dim and do not touch their memory */
        __mmask16 m = (__mmask16)((1u << (dim - i)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        __m512 d0 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, v0 + i));
        __m512 d1 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, v1 + i));
        __m512 d2 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, v2 + i));
        __m512 d3 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, v3 + i));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
        a2 = _mm512_fmadd_ps(d2, d2, a2);
        a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
}

AVX512 static void dotx4_avx512(const float *q, const float *const v[4], size_t dim, float out[4])
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v0 + i), a0);
        a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v1 + i), a1);
        a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v2 + i), a2);
        a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v3 + i), a3);
    }
    if (i < dim) {
        __mmask16 m = (__mmask16)((1u << (dim - i)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        a0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v0 + i), a0);
        a1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v1 + i), a1);
        a2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v2 + i), a2);
        a3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v3 + i), a3);
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
}

AVX2 static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static void l2x4_avx2(const float *q, const float *const v[4], size_t dim, float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        __m256 d0 = _mm256_sub_ps(x, _mm256_loadu_ps(v0 + i));
        __m256 d1 = _mm256_sub_ps(x, _mm256_loadu_ps(v1 + i));
        __m256 d2 = _mm256_sub_ps(x, _mm256_loadu_ps(v2 + i));
        __m256 d3 = _mm256_sub_ps(x, _mm256_loadu_ps(v3 + i));
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (; i < dim; i++) {
        for (int j = 0; j < 4; j++) {
            float d = q[i] - v[j][i];
            s[j] += d * d;
        }
    }
    memcpy(out, s, sizeof s);
}

AVX2 static void dotx4_avx2(const float *q, const float *const v[4], size_t dim, float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v0 + i), a0);
        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v1 + i), a1);
        a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v2 + i), a2);
        a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v3 + i), a3);
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (; i < dim; i++)
        for (int j = 0; j < 4; j++)
            s[j] += q[i] * v[j][i];
    memcpy(out, s, sizeof s);
}
#endif

qv__dist4_fn qv__dist4_select(qv_hnsw_metric_t metric)
{
    const char *tier = qv_dist()->name;
#if defined(__x86_64__) || defined(__i386__)
    if (strcmp(tier, "avx512") == 0)
        return metric == QV_HNSW_IP ? dotx4_avx512 : l2x4_avx512;
    if (strcmp(tier, "avx2") == 0)
        return metric == QV_HNSW_IP ? dotx4_avx2 : l2x4_avx2;
#else
    (void)tier;
#endif
    return metric == QV_HNSW_IP ? dotx4_ref : l2x4_ref;
}
