/* Per-element logic of the PQ and SQ8 encoders (kernels/cuda/quant.cu, kernels/cpu/quant.c): the arithmetic of
 * index/quant/sq8.c and pq.c, one thread per (row, dimension) for SQ8 and per (row, sub-quantiser) for PQ.
 *
 * SQ8 is bit-identical to the CPU: the range is a min/max (exact), the scale one division, the code one division
 * and a rounding, with no multiply-add to contract. PQ picks the nearest of 256 centroids per sub-vector with the
 * squared distances summed in dimension order, as the CPU's reference table kernel does; with fused multiply-adds
 * on the device a sub-code can differ from the CPU's where two centroids are within rounding of each other. */
#ifndef QV_K_QUANT_CUH
#define QV_K_QUANT_CUH

#include "kernels/cuda/common.cuh"

#define QV_K_PQ_KSUB 256

/* Folds one value into a dimension's running [mn, mx]; non-finite values are ignored (sq8.c's rule). Start from
 * mn = +INF, mx = -INF. */
QV_K_FN void qv_k_sq8_range(float x, float *mn, float *mx)
{
    if (!(x - x == 0.0f))  /* NaN or +-INF: x - x is NaN */
        return;
    if (x < *mn)
        *mn = x;
    if (x > *mx)
        *mx = x;
}

/* The trained (vmin, scale) of one dimension from its range (sq8.c's qv__sq8_train). */
QV_K_FN void qv_k_sq8_finish(float mn, float mx, float *vmin, float *scale)
{
    if (!(mn <= mx)) {  /* no rows, or no finite value in this dimension */
        mn = 0.0f;
        mx = 0.0f;
    }
    float s = (mx - mn) / 255.0f;
    if (!(s - s == 0.0f))  /* the range overflows a float: split the subtraction */
        s = mx / 255.0f - mn / 255.0f;
    *vmin = mn;
    *scale = s;
}

/* The code of one value: round((x - vmin) / scale) clamped to [0, 255]; NaN -> 0 (sq8.c's qv__sq8_encode). */
QV_K_FN uint8_t qv_k_sq8_code(float x, float vmin, float scale)
{
    float t = scale > 0.0f ? (x - vmin) / scale : 0.0f;
    return !(t > 0.0f) ? (uint8_t)0 : t >= 255.0f ? (uint8_t)255 : (uint8_t)(t + 0.5f);
}

/* The sub-code of one sub-vector v (dsub floats) against its sub-quantiser's 256 centroids (256 x dsub): the
 * nearest, ties to the lower centroid. */
QV_K_FN uint8_t qv_k_pq_code(const float *v, const float *cent, uint32_t dsub)
{
    uint32_t best = 0;
    float bd = 0.0f;
    for (uint32_t c = 0; c < QV_K_PQ_KSUB; c++) {
        const float *ce = cent + (size_t)c * dsub;
        float s = 0.0f;
        for (uint32_t t = 0; t < dsub; t++) {
            float e = v[t] - ce[t];
            s += e * e;
        }
        if (c == 0 || s < bd) {
            bd = s;
            best = c;
        }
    }
    return (uint8_t)best;
}

/* index/quant's default m: the largest divisor of dim that is <= dim / 4, or 1 when dim < 4. */
QV_K_FN uint32_t qv_k_pq_default_m(uint32_t dim)
{
    for (uint32_t m = dim / 4; m >= 1; m--)
        if (dim % m == 0)
            return m;
    return 1;
}

#endif
