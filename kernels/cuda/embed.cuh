/* Row kernels of the embedding forward pass on the device (kernels/cuda/embed.cu): the element-wise and per-row
 * arithmetic of query/embed/kernels.c, written per warp lane. cuBLAS does the matrix products.
 *
 * Layout of the work: one warp per row (384 floats for all-MiniLM-L6-v2: 12 per lane). Lane l owns the elements
 * l, l + 32, l + 64, ... of its row in every phase, so a row needs no synchronisation beyond the warp reductions
 * between phases (a butterfly of __shfl_xor_sync: every lane ends with the same total, because a + b == b + a
 * exactly). The host simulations below (qv_k_*_sim) run the same lanes one after another with the same butterfly,
 * so they compute what a warp computes (up to the device's fused multiply-adds); the CPU test compares them with
 * query/embed's generic kernels, whose sums run in another order: agreement is to float rounding, ~1e-6 relative.
 *
 * The exponential and erf are query/embed/kernels.c's approximations with its constants (embed_int.h), so the
 * device's GELU and softmax are the CPU's functions, not CUDA's expf/erff.
 *
 * Attention on the device is padded and masked: the sequences of a chunk are packed back to back for the
 * projections (as on the CPU), and attention runs as one batched GEMM over (sequence, head) pairs of the chunk's
 * longest length L; a sequence of length len < L sees keys len..L-1 masked (weight exactly 0: qv_k_softmax_mask_*)
 * and its rows len..L-1 are computed and dropped. That is what the CPU's per-sequence attention computes. */
#ifndef QV_K_EMBED_CUH
#define QV_K_EMBED_CUH

#include <string.h>

#include "kernels/cuda/common.cuh"
#include "query/embed/embed_int.h"

#define QV_K_WARP 32

QV_K_FN float qv_k_exp(float x)
{
    x = fminf(fmaxf(x, QV_EXP_LO), QV_EXP_HI);
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
#ifdef __CUDA_ARCH__
    float scale = __int_as_float(bits);
#else
    float scale;
    memcpy(&scale, &bits, 4);
#endif
    return p * scale;
}

QV_K_FN float qv_k_erf(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (QV_ERF_P * a + 1.0f);
    float y = QV_ERF_A5;
    y = y * t + QV_ERF_A4;
    y = y * t + QV_ERF_A3;
    y = y * t + QV_ERF_A2;
    y = y * t + QV_ERF_A1;
    y = y * t;
    float r = 1.0f - y * qv_k_exp(-a * a);
    return copysignf(r, x);
}

/* GELU(u) = u/2 (1 + erf(u / sqrt 2)) */
QV_K_FN float qv_k_gelu(float u) { return 0.5f * u * (1.0f + qv_k_erf(u * QV_SQRT1_2)); }

/* ---- LayerNorm of one row of h floats, per lane ---- */

/* v += add + bias on the lane's elements (the residual of add_layernorm; skipped when add is NULL). */
QV_K_FN void qv_k_ln_residual(float *v, const float *add, const float *bias, uint32_t h, uint32_t lane)
{
    if (!add)
        return;
    for (uint32_t i = lane; i < h; i += QV_K_WARP)
        v[i] += add[i] + bias[i];
}

QV_K_FN float qv_k_lane_sum(const float *v, uint32_t h, uint32_t lane)
{
    float s = 0.0f;
    for (uint32_t i = lane; i < h; i += QV_K_WARP)
        s += v[i];
    return s;
}

QV_K_FN float qv_k_lane_sqdev(const float *v, uint32_t h, uint32_t lane, float mean)
{
    float s = 0.0f;
    for (uint32_t i = lane; i < h; i += QV_K_WARP) {
        float d = v[i] - mean;
        s += d * d;
    }
    return s;
}

QV_K_FN void qv_k_ln_apply(float *v, const float *g, const float *b, uint32_t h, uint32_t lane, float mean,
                           float inv)
{
    for (uint32_t i = lane; i < h; i += QV_K_WARP)
        v[i] = (v[i] - mean) * inv * g[i] + b[i];
}

/* ---- softmax over the first len of a row of n scores (n - len masked to 0), per lane ---- */

QV_K_FN float qv_k_lane_max(const float *s, uint32_t len, uint32_t lane)
{
    float m = -INFINITY;
    for (uint32_t i = lane; i < len; i += QV_K_WARP)
        m = s[i] > m ? s[i] : m;
    return m;
}

/* s[i] = exp(s[i] - mx) for i < len; returns the lane's sum of them. */
QV_K_FN float qv_k_softmax_exp(float *s, uint32_t len, uint32_t lane, float mx)
{
    float sum = 0.0f;
    for (uint32_t i = lane; i < len; i += QV_K_WARP) {
        s[i] = qv_k_exp(s[i] - mx);
        sum += s[i];
    }
    return sum;
}

/* s[i] *= inv for i < len, s[i] = 0 for len <= i < n (masked keys: exactly zero weight). */
QV_K_FN void qv_k_softmax_scale(float *s, uint32_t len, uint32_t n, uint32_t lane, float inv)
{
    for (uint32_t i = lane; i < n; i += QV_K_WARP)
        s[i] = i < len ? s[i] * inv : 0.0f;
}

/* ---- mean pooling: one thread per column of a sequence's rows ---- */

/* Mean over rows 0..len-1 of column j of x (rows of h floats), in double as model.c pools. */
QV_K_FN double qv_k_pool_col(const float *x, uint32_t h, uint32_t len, uint32_t j)
{
    double acc = 0.0;
    for (uint32_t p = 0; p < len; p++)
        acc += x[(size_t)p * h + j];
    return acc / len;
}

/* ---- host simulations of a warp (the tests' and the CPU port's view of the device) ---- */

/* The butterfly sum of 32 lane values as __shfl_xor_sync computes it (every lane ends with this value). */
QV_K_HOST float qv_k_butterfly_sum(const float *lanes)
{
    float v[QV_K_WARP], w[QV_K_WARP];
    memcpy(v, lanes, sizeof v);
    for (uint32_t off = QV_K_WARP / 2; off >= 1; off /= 2) {
        for (uint32_t l = 0; l < QV_K_WARP; l++)
            w[l] = v[l] + v[l ^ off];
        memcpy(v, w, sizeof v);
    }
    return v[0];
}

QV_K_HOST float qv_k_butterfly_max(const float *lanes)
{
    float v[QV_K_WARP], w[QV_K_WARP];
    memcpy(v, lanes, sizeof v);
    for (uint32_t off = QV_K_WARP / 2; off >= 1; off /= 2) {
        for (uint32_t l = 0; l < QV_K_WARP; l++)
            w[l] = fmaxf(v[l], v[l ^ off]);
        memcpy(v, w, sizeof v);
    }
    return v[0];
}

/* x = LayerNorm(x + add + bias) * g + b for one row, as one warp computes it. */
QV_K_HOST void qv_k_layernorm_row_sim(float *v, const float *add, const float *bias, const float *g, const float *b,
                                      uint32_t h, float eps)
{
    float part[QV_K_WARP];
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        qv_k_ln_residual(v, add, bias, h, l);
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        part[l] = qv_k_lane_sum(v, h, l);
    float mean = qv_k_butterfly_sum(part) / (float)h;
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        part[l] = qv_k_lane_sqdev(v, h, l, mean);
    float var = qv_k_butterfly_sum(part) / (float)h;
    float inv = 1.0f / sqrtf(var + eps);
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        qv_k_ln_apply(v, g, b, h, l, mean, inv);
}

/* Softmax of the first len of n scores, the rest zeroed, as one warp computes it. */
QV_K_HOST void qv_k_softmax_mask_sim(float *s, uint32_t len, uint32_t n)
{
    float part[QV_K_WARP];
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        part[l] = qv_k_lane_max(s, len, l);
    float mx = qv_k_butterfly_max(part);
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        part[l] = qv_k_softmax_exp(s, len, l, mx);
    float inv = 1.0f / qv_k_butterfly_sum(part);
    for (uint32_t l = 0; l < QV_K_WARP; l++)
        qv_k_softmax_scale(s, len, n, l, inv);
}

/* Mean pooling and L2 normalisation of one sequence's rows into out (h floats), as the pool kernel computes it
 * (sequential norm sum: the device's block reduction sums the same doubles in another order). */
QV_K_HOST void qv_k_pool_sim(const float *x, uint32_t h, uint32_t len, float *out, double *scratch)
{
    double norm = 0.0;
    for (uint32_t j = 0; j < h; j++) {
        scratch[j] = qv_k_pool_col(x, h, len, j);
        norm += scratch[j] * scratch[j];
    }
    double inv = 1.0 / fmax(sqrt(norm), 1e-12);
    for (uint32_t j = 0; j < h; j++)
        out[j] = (float)(scratch[j] * inv);
}

#endif
