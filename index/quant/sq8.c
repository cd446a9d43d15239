/* SQ8: 8-bit scalar quantisation with per-dimension ranges, its asymmetric distance kernels and its blob.
 *
 * Training is one pass over every row of the segment: vmin[i] and vmax[i] of each dimension (non-finite values are
 * ignored), scale[i] = (vmax[i] - vmin[i]) / 255. A value encodes as code = round((x - vmin) / scale) clamped to
 * [0, 255] and decodes as vmin + scale * code, so for a row of the training set every coordinate is reproduced
 * within scale[i] / 2 (the bound the unit tests check), and the ends of each range exactly. Rejected: a range from
 * percentiles (as some engines do to resist outliers): the bound above would no longer hold for the rows being
 * indexed, and re-ranking with the full vectors already absorbs the coarser steps that outliers cause.
 *
 * Asymmetric distance (the query stays float): with the table t prepared per query,
 *   L2:  t[i] = q[i] - vmin[i];          dist = sum_i (t[i] - scale[i] * c[i])^2
 *   IP:  t[i] = q[i] * scale[i], t[dim] = sum_i q[i] * vmin[i];   dist = -(t[dim] + sum_i t[i] * c[i])
 * i.e. exactly the distance from q to the reconstruction, one FMA (IP) or two (L2) per byte. The kernels convert 8
 * (AVX2) or 16 (AVX-512) code bytes to floats per step (vpmovzxbd + vcvtdq2ps) for four codes at once, so the query
 * table and scales are loaded once per step for four rows, like the float kernels in index/hnsw/batch.c. A code is
 * a quarter of a float row: a 128-d row is two cache lines instead of eight, which is what the graph walk gains.
 *
 * Blob format (qv_quant_encode_blob for SQ8), version 1, integers and floats little-endian:
 *
 *   offset      size     field
 *   0           8        magic 'Q' 'V' 'S' 'Q' '8' 0x00 0x1A 0x0A
 *   8           1        version = 1
 *   9           1        metric: 0 = squared L2, 1 = inner product
 *   10          2        reserved, must be 0
 *   12          4        dim: 1..65536, must equal the caller's
 *   16          8        n: rows, must equal the caller's
 *   24          4*dim    vmin[dim]: float32, finite
 *   24+4*dim    4*dim    scale[dim]: float32, finite, >= 0
 *   24+8*dim    n*dim    codes, row after row, dim bytes each (every byte value is a valid code)
 *   len-8       8        XXH3-64 (qv_checksum) of bytes [0, len-8)
 *
 * The length must be exactly 32 + 8*dim + n*dim; anything else is QV_ECORRUPT, checked before any n-sized
 * allocation, so a forged n cannot make the loader allocate more than the blob's own size. */
#include "index/quant/quant_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SQ8_MAGIC "QVSQ8\0\x1a\n"
#define SQ8_VERSION 1
#define SQ8_HEADER 24

/* ---- training, encoding, decoding ---- */

int qv__sq8_train(qv_quant_t *q, const float *vectors, size_t stride)
{
    uint32_t dim = q->dim;
    float *vmax = malloc(dim * sizeof(float));
    if (!vmax)
        return QV_ENOMEM;
    for (uint32_t i = 0; i < dim; i++) {
        q->vmin[i] = INFINITY;
        vmax[i] = -INFINITY;
    }
    for (size_t r = 0; r < q->n; r++) {
        const float *v = vectors + r * stride;
        for (uint32_t i = 0; i < dim; i++) {
            float x = v[i];
            if (!isfinite(x))
                continue;
            if (x < q->vmin[i])
                q->vmin[i] = x;
            if (x > vmax[i])
                vmax[i] = x;
        }
    }
    for (uint32_t i = 0; i < dim; i++) {
        if (!(q->vmin[i] <= vmax[i])) {  /* no rows, or no finite value in this dimension */
            q->vmin[i] = 0.0f;
            vmax[i] = 0.0f;
        }
        float s = (vmax[i] - q->vmin[i]) / 255.0f;
        if (!isfinite(s))  /* the range itself overflows a float: split the subtraction */
            s = vmax[i] / 255.0f - q->vmin[i] / 255.0f;
        q->scale[i] = s;
    }
    free(vmax);
    return QV_OK;
}

void qv__sq8_encode(const qv_quant_t *q, const float *v, uint8_t *code)
{
    for (uint32_t i = 0; i < q->dim; i++) {
        float s = q->scale[i];
        float t = s > 0.0f ? (v[i] - q->vmin[i]) / s : 0.0f;
        code[i] = !(t > 0.0f) ? 0 : t >= 255.0f ? 255 : (uint8_t)(t + 0.5f);  /* NaN -> 0 */
    }
}

void qv__sq8_decode(const qv_quant_t *q, const uint8_t *code, float *v)
{
    for (uint32_t i = 0; i < q->dim; i++)
        v[i] = q->vmin[i] + q->scale[i] * (float)code[i];
}

void qv__sq8_prepare(const qv_quant_t *q, const float *query, float *table)
{
    uint32_t dim = q->dim;
    if (q->metric == QV_QUANT_IP) {
        double bias = 0.0;
        for (uint32_t i = 0; i < dim; i++) {
            table[i] = query[i] * q->scale[i];
            bias += (double)query[i] * (double)q->vmin[i];
        }
        table[dim] = (float)bias;
    } else {
        for (uint32_t i = 0; i < dim; i++)
            table[i] = query[i] - q->vmin[i];
        table[dim] = 0.0f;
    }
    for (uint32_t i = dim + 1; i < dim + 16; i++)
        table[i] = 0.0f;
}

/* ---- scalar reference kernels (8 partial sums, as qv_l2sq_ref: vectorisable, order fixed by the source) ---- */

static inline float sq8_l2_one(const float *t, const float *sc, const uint8_t *c, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        for (size_t j = 0; j < 8; j++) {
            float d = t[i + j] - sc[i + j] * (float)c[i + j];
            acc[j] += d * d;
        }
    }
    float tail = 0.0f;
    for (; i < dim; i++) {
        float d = t[i] - sc[i] * (float)c[i];
        tail += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

static inline float sq8_dot_one(const float *t, const uint8_t *c, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += t[i + j] * (float)c[i + j];
    float tail = 0.0f;
    for (; i < dim; i++)
        tail += t[i] * (float)c[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

void qv__sq8_l2_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = sq8_l2_one(t, q->scale, c[j], q->dim);
}

void qv__sq8_ip_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = -(t[q->dim] + sq8_dot_one(t, c[j], q->dim));
}

/* ---- AVX2 + FMA and AVX-512F kernels ---- */

#if QV_QUANT_X86
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

AVX2 static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 code bytes -> 8 floats */
AVX2 static inline __m256 load8(const uint8_t *c)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)));
}

AVX2 void qv__sq8_l2_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t dim = q->dim;
    const float *sc = q->scale;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(t + i), s = _mm256_loadu_ps(sc + i);
        __m256 d0 = _mm256_fnmadd_ps(s, load8(c0 + i), x);  /* x - s * c */
        __m256 d1 = _mm256_fnmadd_ps(s, load8(c1 + i), x);
        __m256 d2 = _mm256_fnmadd_ps(s, load8(c2 + i), x);
        __m256 d3 = _mm256_fnmadd_ps(s, load8(c3 + i), x);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (; i < dim; i++) {
        for (int j = 0; j < 4; j++) {
            float d = t[i] - sc[i] * (float)c[j][i];
            s[j] += d * d;
        }
    }
    memcpy(out, s, sizeof s);
}

AVX2 void qv__sq8_ip_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t dim = q->dim;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(t + i);
        a0 = _mm256_fmadd_ps(x, load8(c0 + i), a0);
        a1 = _mm256_fmadd_ps(x, load8(c1 + i), a1);
        a2 = _mm256_fmadd_ps(x, load8(c2 + i), a2);
        a3 = _mm256_fmadd_ps(x, load8(c3 + i), a3);
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (; i < dim; i++)
        for (int j = 0; j < 4; j++)
            s[j] += t[i] * (float)c[j][i];
    for (int j = 0; j < 4; j++)
        out[j] = -(t[dim] + s[j]);
}

/* 16 code bytes -> 16 floats; `rem` < 16 copies the last bytes into a zeroed buffer (no read past the code). */
AVX512 static inline __m512 load16(const uint8_t *c, size_t rem)
{
    if (rem >= 16)
        return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)c)));
    uint8_t tmp[16] = {0};
    memcpy(tmp, c, rem);
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)tmp)));
}

AVX512 void qv__sq8_l2_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t dim = q->dim;
    const float *sc = q->scale;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (size_t i = 0; i < dim; i += 16) {
        size_t rem = dim - i;
        __m512 x, s;
        if (rem >= 16) {
            x = _mm512_loadu_ps(t + i);
            s = _mm512_loadu_ps(sc + i);
        } else {  /* masked loads: zero lanes give x - 0 * c = 0 */
            __mmask16 m = (__mmask16)((1u << rem) - 1u);
            x = _mm512_maskz_loadu_ps(m, t + i);
            s = _mm512_maskz_loadu_ps(m, sc + i);
        }
        __m512 d0 = _mm512_fnmadd_ps(s, load16(c0 + i, rem), x);
        __m512 d1 = _mm512_fnmadd_ps(s, load16(c1 + i, rem), x);
        __m512 d2 = _mm512_fnmadd_ps(s, load16(c2 + i, rem), x);
        __m512 d3 = _mm512_fnmadd_ps(s, load16(c3 + i, rem), x);
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

AVX512 void qv__sq8_ip_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t dim = q->dim;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (size_t i = 0; i < dim; i += 16) {
        size_t rem = dim - i;
        __m512 x = rem >= 16 ? _mm512_loadu_ps(t + i) : _mm512_maskz_loadu_ps((__mmask16)((1u << rem) - 1u), t + i);
        a0 = _mm512_fmadd_ps(x, load16(c0 + i, rem), a0);
        a1 = _mm512_fmadd_ps(x, load16(c1 + i, rem), a1);
        a2 = _mm512_fmadd_ps(x, load16(c2 + i, rem), a2);
        a3 = _mm512_fmadd_ps(x, load16(c3 + i, rem), a3);
    }
    out[0] = -(t[dim] + _mm512_reduce_add_ps(a0));
    out[1] = -(t[dim] + _mm512_reduce_add_ps(a1));
    out[2] = -(t[dim] + _mm512_reduce_add_ps(a2));
    out[3] = -(t[dim] + _mm512_reduce_add_ps(a3));
}
#endif /* QV_QUANT_X86 */

/* ---- blob ---- */

int qv__sq8_encode_blob(const qv_quant_t *q, qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_put(out, SQ8_MAGIC, 8);
    qv_wbuf_u8(out, SQ8_VERSION);
    qv_wbuf_u8(out, (uint8_t)q->metric);
    qv_wbuf_u16(out, 0);
    qv_wbuf_u32(out, q->dim);
    qv_wbuf_u64(out, (uint64_t)q->n);
    qv__put_f32s(out, q->vmin, q->dim);
    qv__put_f32s(out, q->scale, q->dim);
    qv_wbuf_put(out, q->codes, q->n * q->code_size);
    return qv_wbuf_seal(out, start);
}

int qv__sq8_decode_blob(const uint8_t *b, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out)
{
    if (len < SQ8_HEADER + 8)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: %zu bytes, shorter than the header", len);
    qv_rbuf_t rd;
    if (!qv_rbuf_open_sealed(&rd, b, len))
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: checksum mismatch");
    const uint8_t *magic = qv_rbuf_take(&rd, 8);
    if (!magic || memcmp(magic, SQ8_MAGIC, 8) != 0)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: bad magic");
    uint8_t version = qv_rbuf_u8(&rd);
    uint8_t metric = qv_rbuf_u8(&rd);
    uint16_t reserved = qv_rbuf_u16(&rd);
    uint32_t bdim = qv_rbuf_u32(&rd);
    uint64_t bn = qv_rbuf_u64(&rd);
    if (rd.failed)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: truncated header");
    if (version != SQ8_VERSION)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: unsupported version %u", version);
    if (metric > QV_QUANT_IP || reserved != 0)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: bad metric %u or reserved field", metric);
    if (bdim == 0 || bdim > QV_QUANT_MAX_DIM)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: bad dim=%u", bdim);
    if (bdim != dim || bn != n)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: built for %llu x %u, the segment has %zu x %u",
                          (unsigned long long)bn, bdim, n, dim);
    /* Exact size, computed without overflow before anything n-sized is allocated. */
    size_t left = qv_rbuf_left(&rd), book = 8 * (size_t)dim;
    if (left < book || (left - book) / dim != n || (left - book) % dim != 0)
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: %zu bytes of ranges and codes, expected %zu + %zu x %u",
                          left, book, n, dim);
    qv_quant_t *q;
    int rc = qv__quant_new(QV_QUANT_SQ8, (qv_quant_metric_t)metric, n, dim, 0, err, &q);
    if (rc)
        return rc;
    if (!qv__get_f32s(&rd, q->vmin, dim) || !qv__get_f32s(&rd, q->scale, dim)) {
        qv_quant_free(q);
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: a range is not a finite float");
    }
    for (uint32_t i = 0; i < dim; i++) {
        if (!(q->scale[i] >= 0.0f)) {
            double bad = q->scale[i];
            qv_quant_free(q);
            return qv_err_set(err, QV_ECORRUPT, "sq8 blob: negative scale %g in dimension %u", bad, i);
        }
    }
    const uint8_t *codes = qv_rbuf_take_array(&rd, n, dim);
    if (!codes || qv_rbuf_left(&rd) != 0) {  /* cannot happen after the size check; kept as the last guard */
        qv_quant_free(q);
        return qv_err_set(err, QV_ECORRUPT, "sq8 blob: codes truncated or trailing bytes");
    }
    memcpy(q->codes, codes, n * dim);
    *out = q;
    return QV_OK;
}
