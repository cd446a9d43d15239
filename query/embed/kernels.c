/* Plain C element-wise kernels of the forward pass (the reference and the fallback) and the once-only dispatch.
 *
 * Why our own exp and erf instead of libm's: the softmax takes ~L^2 * heads * layers exponentials per sequence (4.7
 * million for 256 tokens) and GELU ~L * 1536 * layers error functions; glibc's scalar expf/erff would cost as much as
 * a third of the matrix products, and GCC cannot vectorise calls to them without -ffast-math. The approximations
 * below are branch-free, accurate to ~1e-7 (far below the float rounding of the 384-long dot products around them),
 * and written the same way in kernels_avx2.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "query/embed/embed_int.h"

static inline float exp_approx(float x)
{
    x = fminf(fmaxf(x, QV_EXP_LO), QV_EXP_HI);
    /* n = round(x / ln 2) with the 1.5 * 2^23 trick (round-to-nearest, no SSE4.1 needed) */
    float n = (x * QV_LOG2E + 12582912.0f) - 12582912.0f;
    float r = x - n * QV_LN2_HI;
    r = r - n * QV_LN2_LO;
    float p = QV_EXP_P0;
    p = p * r + QV_EXP_P1;
    p = p * r + QV_EXP_P2;
    p = p * r + QV_EXP_P3;
    p = p * r + QV_EXP_P4;
    p = p * r + QV_EXP_P5;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float erf_approx(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (QV_ERF_P * a + 1.0f);
    float y = QV_ERF_A5;
    y = y * t + QV_ERF_A4;
    y = y * t + QV_ERF_A3;
    y = y * t + QV_ERF_A2;
    y = y * t + QV_ERF_A1;
    y = y * t;
    float r = 1.0f - y * exp_approx(-a * a);
    return copysignf(r, x);
}

static void add_layernorm_generic(float *x, const float *add, const float *bias, const float *g, const float *b,
                                  size_t rows, size_t h, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = x + r * h;
        if (add) {
            const float *a = add + r * h;
            for (size_t i = 0; i < h; i++)
                v[i] += a[i] + bias[i];
        }
        /* two passes (mean, then variance of the centred values): no cancellation */
        float mean = 0;
        for (size_t i = 0; i < h; i++)
            mean += v[i];
        mean /= (float)h;
        float var = 0;
        for (size_t i = 0; i < h; i++) {
            float d = v[i] - mean;
            var += d * d;
        }
        var /= (float)h;
        float inv = 1.0f / sqrtf(var + eps);
        for (size_t i = 0; i < h; i++)
            v[i] = (v[i] - mean) * inv * g[i] + b[i];
    }
}

static void bias_gelu_generic(float *y, const float *bias, size_t rows, size_t f)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = y + r * f;
        for (size_t i = 0; i < f; i++) {
            float u = v[i] + bias[i];
            v[i] = 0.5f * u * (1.0f + erf_approx(u * QV_SQRT1_2));
        }
    }
}

static void softmax_generic(float *s, size_t rows, size_t n, size_t ld)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = s + r * ld;
        float mx = v[0];
        for (size_t i = 1; i < n; i++)
            mx = v[i] > mx ? v[i] : mx;
        float sum = 0;
        for (size_t i = 0; i < n; i++) {
            v[i] = exp_approx(v[i] - mx);
            sum += v[i];
        }
        float inv = 1.0f / sum;
        for (size_t i = 0; i < n; i++)
            v[i] *= inv;
    }
}

static void gemm_nt_generic(size_t rows, size_t n, size_t k, const float *x, size_t ldx, const float *w, float *c,
                            size_t ldc, int accumulate)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < n; o++) {
            const float *xr = x + r * ldx, *wo = w + o * k;
            float s = 0;
            for (size_t i = 0; i < k; i++)
                s += xr[i] * wo[i];
            c[r * ldc + o] = accumulate ? c[r * ldc + o] + s : s;
        }
}

size_t qv__embed_packed_floats(size_t out, size_t in) { return (out + QV_PACK_NR - 1) / QV_PACK_NR * QV_PACK_NR * in; }

void qv__embed_pack_w(const float *w, size_t out, size_t in, float *packed)
{
    for (size_t p = 0; p * QV_PACK_NR < out; p++)
        for (size_t i = 0; i < in; i++)
            for (size_t j = 0; j < QV_PACK_NR; j++) {
                size_t o = p * QV_PACK_NR + j;
                *packed++ = o < out ? w[o * in + i] : 0.0f;
            }
}

const qv_embed_kernels_t qv__embed_kernels_generic = {
    .add_layernorm = add_layernorm_generic,
    .bias_gelu = bias_gelu_generic,
    .softmax = softmax_generic,
    .gemm_nt = gemm_nt_generic,
    .small_rows = 0,
    .name = "generic",
};

static const qv_embed_kernels_t *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    chosen = &qv__embed_kernels_generic;
#if defined(__x86_64__)
    const char *cap = getenv("QV_EMBED_KERNELS"); /* generic | avx2 | avx512 (the default: the best the CPU has) */
    if (cap && strcmp(cap, "generic") == 0)
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return;
    chosen = &qv__embed_kernels_avx2;
    if ((!cap || strcmp(cap, "avx2") != 0) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        chosen = &qv__embed_kernels_avx512;
#endif
}

const qv_embed_kernels_t *qv__embed_kernels(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}
