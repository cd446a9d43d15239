/* AVX2 + FMA versions of the kernels in kernels.c: the same arithmetic 8 floats at a time, with a scalar tail that
 * calls the same formulas. Only these functions are compiled for AVX2 (target attribute); qv__embed_kernels() hands
 * them out only after checking the CPU. The element-wise kernels have no AVX-512 tier: they are under a tenth of the
 * forward pass, so wider vectors would not show. The projections do (gemm_packed, the last part of this file): they
 * are 80-90% of a pass, and a core with two 512-bit FMA units does twice the FLOPs of AVX2. */
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

/* The four sums of a, b, c, d (8 lanes each) as one 4-lane vector. */
static inline QV_AVX2 __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static inline QV_AVX2 void store4(float *c, __m128 v, int accumulate)
{
    _mm_storeu_ps(c, accumulate ? _mm_add_ps(v, _mm_loadu_ps(c)) : v);
}

/* Blocks of 4 outputs (W rows, streamed once per block of rows) by 3 rows of X: 12 accumulators, one W vector and
 * three X vectors live, within the 16 registers. */
static QV_AVX2 void gemm_nt_avx2(size_t rows, size_t n, size_t k, const float *x, size_t ldx, const float *w,
                                 float *c, size_t ldc, int accumulate)
{
    size_t o = 0;
    for (; o + 4 <= n; o += 4) {
        const float *w0 = w + o * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        size_t r = 0;
        for (; r + 3 <= rows; r += 3) {
            const float *x0 = x + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                   a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00;
            for (size_t i = 0; i < k; i += 8) {
                __m256 v0 = _mm256_loadu_ps(x0 + i), v1 = _mm256_loadu_ps(x1 + i), v2 = _mm256_loadu_ps(x2 + i);
                __m256 t = _mm256_loadu_ps(w0 + i);
                a00 = _mm256_fmadd_ps(v0, t, a00), a10 = _mm256_fmadd_ps(v1, t, a10), a20 = _mm256_fmadd_ps(v2, t, a20);
                t = _mm256_loadu_ps(w1 + i);
                a01 = _mm256_fmadd_ps(v0, t, a01), a11 = _mm256_fmadd_ps(v1, t, a11), a21 = _mm256_fmadd_ps(v2, t, a21);
                t = _mm256_loadu_ps(w2 + i);
                a02 = _mm256_fmadd_ps(v0, t, a02), a12 = _mm256_fmadd_ps(v1, t, a12), a22 = _mm256_fmadd_ps(v2, t, a22);
                t = _mm256_loadu_ps(w3 + i);
                a03 = _mm256_fmadd_ps(v0, t, a03), a13 = _mm256_fmadd_ps(v1, t, a13), a23 = _mm256_fmadd_ps(v2, t, a23);
            }
            store4(c + r * ldc + o, hsum4(a00, a01, a02, a03), accumulate);
            store4(c + (r + 1) * ldc + o, hsum4(a10, a11, a12, a13), accumulate);
            store4(c + (r + 2) * ldc + o, hsum4(a20, a21, a22, a23), accumulate);
        }
        for (; r < rows; r++) {
            const float *x0 = x + r * ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t i = 0; i < k; i += 8) {
                __m256 v0 = _mm256_loadu_ps(x0 + i);
                a0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w0 + i), a0);
                a1 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w1 + i), a1);
                a2 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w2 + i), a2);
                a3 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w3 + i), a3);
            }
            store4(c + r * ldc + o, hsum4(a0, a1, a2, a3), accumulate);
        }
    }
    for (; o < n; o++) /* fewer than 4 outputs left */
        for (size_t r = 0; r < rows; r++) {
            __m256 a = _mm256_setzero_ps();
            for (size_t i = 0; i < k; i += 8)
                a = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i), _mm256_loadu_ps(w + o * k + i), a);
            __m128 s4 = hsum4(a, _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            float s = _mm_cvtss_f32(s4);
            c[r * ldc + o] = accumulate ? c[r * ldc + o] + s : s;
        }
}

const qv_embed_kernels_t qv__embed_kernels_avx2 = {
    .add_layernorm = add_layernorm_avx2,
    .bias_gelu = bias_gelu_avx2,
    .softmax = softmax_avx2,
    .gemm_nt = gemm_nt_avx2,
    .small_rows = 32,
    .name = "avx2",
};

#define QV_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

/* R (1..12) rows of X by one packed panel of 32 output features: 24 accumulators, two W vectors and a broadcast of
 * X live, within the 32 registers. Each step reads the panel's next 32 weights (contiguous) and one float of each
 * row; no horizontal sums. m0/m1 mask the stores of a last panel that is not full. */
static inline __attribute__((always_inline)) QV_AVX512 void ptile_avx512(int R, size_t k, const float *x, size_t ldx,
                                                                        const float *wp, float *c, size_t ldc,
                                                                        int accumulate, __mmask16 m0, __mmask16 m1)
{
    __m512 a0[12], a1[12];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
        a0[r] = a1[r] = _mm512_setzero_ps();
    for (size_t i = 0; i < k; i++) {
        __m512 w0 = _mm512_loadu_ps(wp + i * QV_PACK_NR), w1 = _mm512_loadu_ps(wp + i * QV_PACK_NR + 16);
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(x[r * ldx + i]);
            a0[r] = _mm512_fmadd_ps(b, w0, a0[r]);
            a1[r] = _mm512_fmadd_ps(b, w1, a1[r]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        float *cr = c + r * ldc;
        if (accumulate) {
            a0[r] = _mm512_add_ps(a0[r], _mm512_maskz_loadu_ps(m0, cr));
            a1[r] = _mm512_add_ps(a1[r], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, a0[r]);
        _mm512_mask_storeu_ps(cr + 16, m1, a1[r]);
    }
}

/* Panels outside (a panel is 48 KB at k = 384: it stays in L1/L2 while every block of 12 rows passes over it), blocks
 * of rows inside. Measured (22..1024 rows, weights from L3, 1 thread): 115-163 GFLOP/s, against OpenBLAS sgemm's
 * 42-172 (it repacks W on every call: 22% of a 137-token pass) and the AVX2 gemm_nt's 61-64. */
static QV_AVX512 void gemm_packed_avx512(size_t rows, size_t n, size_t k, const float *x, size_t ldx, const float *wp,
                                         float *c, size_t ldc, int accumulate)
{
    for (size_t o = 0; o < n; o += QV_PACK_NR, wp += QV_PACK_NR * k) {
        size_t left = n - o;
        __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        size_t r = 0;
        for (; r + 12 <= rows; r += 12)
            ptile_avx512(12, k, x + r * ldx, ldx, wp, c + r * ldc + o, ldc, accumulate, m0, m1);
        const float *xr = x + r * ldx;
        float *cr = c + r * ldc + o;
        switch (rows - r) {
        case 11: ptile_avx512(11, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 10: ptile_avx512(10, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 9: ptile_avx512(9, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 8: ptile_avx512(8, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 7: ptile_avx512(7, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 6: ptile_avx512(6, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 5: ptile_avx512(5, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 4: ptile_avx512(4, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 3: ptile_avx512(3, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 2: ptile_avx512(2, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        case 1: ptile_avx512(1, k, xr, ldx, wp, cr, ldc, accumulate, m0, m1); break;
        default: break;
        }
    }
}

/* The AVX2 set with the AVX-512 packed projection. */
const qv_embed_kernels_t qv__embed_kernels_avx512 = {
    .add_layernorm = add_layernorm_avx2,
    .bias_gelu = bias_gelu_avx2,
    .softmax = softmax_avx2,
    .gemm_nt = gemm_nt_avx2,
    .gemm_packed = gemm_packed_avx512,
    .small_rows = 0, /* unused: with packed weights every projection runs on gemm_packed */
    .name = "avx512",
};
#endif
