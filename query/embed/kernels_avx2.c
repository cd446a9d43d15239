/* AVX2 + FMA versions of the kernels in kernels.c: the same arithmetic 8 floats at a time, with a scalar tail that
 * calls the same formulas. Only these functions are compiled for AVX2 (target attribute); qv__embed_kernels() hands
 * them out only after checking the CPU. No AVX-512 tier: these kernels are under a tenth of the forward pass (the
 * rest is OpenBLAS, which has its own dispatch), so wider vectors would not show. */
#include "query/embed/embed_int.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define QV_AVX2 __attribute__((target("avx2,fma")))

static inline QV_AVX2 __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(QV_EXP_LO)), _mm256_set1_ps(QV_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(QV_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(QV_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(QV_LN2_LO), r);
    __m256 p = _mm256_set1_ps(QV_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(QV_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(QV_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(QV_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(QV_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(QV_EXP_P5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline QV_AVX2 __m256 gelu8(__m256 u)
{
    __m256 x = _mm256_mul_ps(u, _mm256_set1_ps(QV_SQRT1_2));
    __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(QV_ERF_P), a, _mm256_set1_ps(1.0f)));
    __m256 y = _mm256_set1_ps(QV_ERF_A5);
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(QV_ERF_A4));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(QV_ERF_A3));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(QV_ERF_A2));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(QV_ERF_A1));
    y = _mm256_mul_ps(y, t);
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
    __m256 erf = _mm256_or_ps(_mm256_fnmadd_ps(y, e, _mm256_set1_ps(1.0f)), sign);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), u), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

static inline QV_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline QV_AVX2 float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One lane through the vector code, so tails round exactly like the body. */
static inline QV_AVX2 float exp1(float x) { return _mm256_cvtss_f32(exp8(_mm256_set1_ps(x))); }
static inline QV_AVX2 float gelu1(float x) { return _mm256_cvtss_f32(gelu8(_mm256_set1_ps(x))); }

static QV_AVX2 void add_layernorm_avx2(float *x, const float *add, const float *bias, const float *g, const float *b,
                                       size_t rows, size_t h, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = x + r * h;
        size_t i;
        __m256 acc = _mm256_setzero_ps();
        float tail = 0;
        if (add) {
            const float *a = add + r * h;
            for (i = 0; i + 8 <= h; i += 8) {
                __m256 s = _mm256_add_ps(_mm256_loadu_ps(v + i),
                                         _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(bias + i)));
                _mm256_storeu_ps(v + i, s);
                acc = _mm256_add_ps(acc, s);
            }
            for (; i < h; i++) {
                v[i] += a[i] + bias[i];
                tail += v[i];
            }
        } else {
            for (i = 0; i + 8 <= h; i += 8)
                acc = _mm256_add_ps(acc, _mm256_loadu_ps(v + i));
            for (; i < h; i++)
                tail += v[i];
        }
        float mean = (hsum8(acc) + tail) / (float)h;
        __m256 m = _mm256_set1_ps(mean);
        acc = _mm256_setzero_ps();
        tail = 0;
        for (i = 0; i + 8 <= h; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(v + i), m);
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        for (; i < h; i++)
            tail += (v[i] - mean) * (v[i] - mean);
        float inv = 1.0f / sqrtf((hsum8(acc) + tail) / (float)h + eps);
        __m256 vi = _mm256_set1_ps(inv);
        for (i = 0; i + 8 <= h; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + i), m), vi);
            _mm256_storeu_ps(v + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
        }
        for (; i < h; i++)
            v[i] = (v[i] - mean) * inv * g[i] + b[i];
    }
}

static QV_AVX2 void bias_gelu_avx2(float *y, const float *bias, size_t rows, size_t f)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = y + r * f;
        size_t i = 0;
        for (; i + 8 <= f; i += 8)
            _mm256_storeu_ps(v + i, gelu8(_mm256_add_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(bias + i))));
        for (; i < f; i++)
            v[i] = gelu1(v[i] + bias[i]);
    }
}

static QV_AVX2 void softmax_avx2(float *s, size_t rows, size_t n, size_t ld)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = s + r * ld;
        size_t i = 0;
        __m256 mx8 = _mm256_set1_ps(-INFINITY);
        for (; i + 8 <= n; i += 8)
            mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(v + i));
        float mx = hmax8(mx8);
        for (; i < n; i++)
            mx = v[i] > mx ? v[i] : mx;
        __m256 m = _mm256_set1_ps(mx), sum8 = _mm256_setzero_ps();
        float sum = 0;
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(v + i), m));
            _mm256_storeu_ps(v + i, e);
            sum8 = _mm256_add_ps(sum8, e);
        }
        for (; i < n; i++) {
            v[i] = exp1(v[i] - mx);
            sum += v[i];
        }
        __m256 inv = _mm256_set1_ps(1.0f / (hsum8(sum8) + sum));
        for (i = 0; i + 8 <= n; i += 8)
            _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_loadu_ps(v + i), inv));
        for (; i < n; i++)
            v[i] *= _mm256_cvtss_f32(inv);
    }
}

const qv_embed_kernels_t qv__embed_kernels_avx2 = {
    .add_layernorm = add_layernorm_avx2,
    .bias_gelu = bias_gelu_avx2,
    .softmax = softmax_avx2,
    .name = "avx2",
};
#endif
