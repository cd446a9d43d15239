/* PQ: product quantisation (Jégou, Douze & Schmid, TPAMI 2011): training, encoding, lookup tables, table-lookup
 * distance kernels and the blob.
 *
 * A row of dim floats is cut into m sub-vectors of dsub = dim / m floats (dim % m must be 0: a ragged last
 * sub-vector would need its own codebook shape for no gain, so the caller picks an m that divides dim). Each
 * sub-quantiser j has 256 centroids, so a sub-code is one byte and a row's code is m bytes.
 *
 * Training. A fixed-seed sample of min(n, 256 * 64) rows (64 points per centroid, faiss's rule of thumb; a partial
 * Fisher-Yates draw, then sorted so the copy reads the matrix in order), and for each sub-quantiser k-means with
 * k-means++ seeding and Lloyd iterations (kmeans.c) on the sample's sub-vectors, with the L2 objective for both
 * metrics (for inner product the codebook still minimises the reconstruction error, and the ADC table below is
 * what carries the metric; faiss does the same). The m sub-quantisers are independent, so they are the parallel
 * tasks on the pool, each with its own seed derived from (seed, j): the codebooks do not depend on the number of
 * threads or the order tasks run in. Then every row is encoded, in parallel by chunks of rows (quant.c).
 *
 * Asymmetric distance (ADC). Per query, the table T[j][c] = ||q_j - cent[j][c]||^2 (L2) or -<q_j, cent[j][c]> (IP),
 * m x 256 floats (m = 16: 16 KiB, in L1), and the distance to a code is sum_j T[j][code[j]], which is exactly the
 * distance from q to the code's reconstruction. Building T costs 256 * dim multiply-adds; the table kernels run
 * over the transposed codebook cent_t[j][d][c] so the inner loop is 256 consecutive centroids in 4 vector
 * accumulators per block (no horizontal sums). The distance kernels: the scalar reference sums m loads per code;
 * AVX2 and AVX-512 turn 8 or 16 sub-codes into table offsets (vpmovzxbd + lane offsets j * 256) and fetch them with
 * one gather. A shuffle-based kernel (pshufb over in-register tables, faiss "fast scan") needs 4-bit codes and
 * 8-bit quantised tables; with 256 centroids per sub-quantiser the table does not fit in registers, so gather it is.
 * Which of gather or scalar wins depends on the core: on AMD Zen the scalar kernel is faster and is the one used
 * (measurements and the rule in quant.c); the JSON of bench/ann names the kernels used.
 *
 * Blob format (qv_quant_encode_blob for PQ), version 1, integers and floats little-endian:
 *
 *   offset       size         field
 *   0            8            magic 'Q' 'V' 'P' 'Q' '8' 0x00 0x1A 0x0A
 *   8            1            version = 1
 *   9            1            metric: 0 = squared L2, 1 = inner product
 *   10           1            bits per sub-code = 8
 *   11           1            reserved, must be 0
 *   12           4            dim: 1..65536, must equal the caller's
 *   16           4            m: 1..dim, dim % m == 0
 *   20           4            centroids per sub-quantiser = 256
 *   24           8            n: rows, must equal the caller's
 *   32           4*256*dim    centroids: for j = 0..m-1, for c = 0..255: dsub float32 (finite)
 *   32+1024*dim  n*m          codes, row after row, m bytes each (every byte value names a centroid)
 *   len-8        8            XXH3-64 (qv_checksum) of bytes [0, len-8)
 *
 * The length must be exactly 40 + 1024*dim + n*m, checked before any n-sized allocation. */
#include "index/quant/quant_int.h"

#include <stdlib.h>
#include <string.h>

#define PQ_MAGIC "QVPQ8\0\x1a\n"
#define PQ_VERSION 1
#define PQ_HEADER 32
#define PQ_TABLE_CHUNK 16  /* sub-quantisers per table slice while encoding (16 KiB on the stack) */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void qv__pq_transpose(qv_quant_t *q)
{
    size_t dsub = q->dsub;
    for (size_t j = 0; j < q->m; j++) {
        const float *src = q->cent + j * QV_PQ_KSUB * dsub;
        float *dst = q->cent_t + j * QV_PQ_KSUB * dsub;
        for (size_t c = 0; c < QV_PQ_KSUB; c++)
            for (size_t d = 0; d < dsub; d++)
                dst[d * QV_PQ_KSUB + c] = src[c * dsub + d];
    }
}

/* ---- training ---- */

typedef struct {
    qv_quant_t *q;
    const float *vectors;
    size_t stride;
    const uint32_t *rows;  /* the sample, ascending; NULL = all rows */
    size_t ns;
    uint32_t iters;
    uint64_t seed;
    const int *cancel;
    int failed;  /* atomics: the first error of a task */
} train_job_t;

static void train_task(void *arg, int task)
{
    train_job_t *job = arg;
    if (qv__cancelled(job->cancel) || __atomic_load_n(&job->failed, __ATOMIC_RELAXED))
        return;
    qv_quant_t *q = job->q;
    size_t j = (size_t)task, dsub = q->dsub;
    float *x = malloc(job->ns * dsub * sizeof(float));
    if (!x) {
        __atomic_store_n(&job->failed, QV_ENOMEM, __ATOMIC_RELAXED);
        return;
    }
    for (size_t i = 0; i < job->ns; i++) {
        size_t r = job->rows ? job->rows[i] : i;
        memcpy(x + i * dsub, job->vectors + r * job->stride + j * dsub, dsub * sizeof(float));
    }
    qv_kmeans_params_t kp = {.iters = job->iters, .seed = splitmix64(job->seed ^ splitmix64(j + 1))};
    int rc = qv_kmeans(x, job->ns, (uint32_t)dsub, QV_PQ_KSUB, &kp, q->cent + j * QV_PQ_KSUB * dsub, NULL);
    if (rc)
        __atomic_store_n(&job->failed, rc, __ATOMIC_RELAXED);
    free(x);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int qv__pq_train(qv_quant_t *q, const qv_quant_params_t *p, const float *vectors, size_t stride, qv_pool_t *pool,
                 const int *cancel, qv_err_t *err)
{
    size_t n = q->n;
    if (n == 0) {
        qv__pq_transpose(q);  /* all-zero codebooks: nothing to train on, nothing to encode */
        return QV_OK;
    }
    size_t ns = p->pq_sample ? p->pq_sample : QV_PQ_DEFAULT_SAMPLE;
    if (ns > n)
        ns = n;
    uint32_t *rows = NULL;
    if (ns < n) {
        if (n > UINT32_MAX)
            return qv_err_set(err, QV_EINVAL, "pq: %zu rows exceed 32-bit row ids", n);
        rows = malloc(n * sizeof(uint32_t));
        if (!rows)
            return qv_err_set(err, QV_ENOMEM, "pq: out of memory for the training sample");
        for (size_t i = 0; i < n; i++)
            rows[i] = (uint32_t)i;
        uint64_t st = p->seed;
        for (size_t i = 0; i < ns; i++) {  /* partial Fisher-Yates: rows[0..ns) is a uniform sample */
            st = splitmix64(st);
            size_t r = i + (size_t)(st % (uint64_t)(n - i));
            uint32_t t = rows[i];
            rows[i] = rows[r];
            rows[r] = t;
        }
        qsort(rows, ns, sizeof(uint32_t), cmp_u32);
    }
    train_job_t job = {.q = q, .vectors = vectors, .stride = stride, .rows = rows, .ns = ns,
                       .iters = p->pq_iters ? p->pq_iters : QV_PQ_DEFAULT_ITERS, .seed = p->seed, .cancel = cancel};
    qv__quant_parallel(pool, q->m, train_task, &job);
    free(rows);
    if (job.failed)
        return qv_err_set(err, job.failed, "pq: k-means failed: %s", qv_strerror(job.failed));
    if (qv__cancelled(cancel))
        return QV_ECANCELLED;
    qv__pq_transpose(q);
    return QV_OK;
}

/* ---- encoding, decoding, tables ---- */

void qv__pq_encode(const qv_quant_t *q, const float *v, uint8_t *code)
{
    float table[PQ_TABLE_CHUNK * QV_PQ_KSUB];
    for (uint32_t j0 = 0; j0 < q->m; j0 += PQ_TABLE_CHUNK) {
        uint32_t j1 = j0 + PQ_TABLE_CHUNK < q->m ? j0 + PQ_TABLE_CHUNK : q->m;
        q->kern->pq_table(q, v, 0, j0, j1, table);
        for (uint32_t j = j0; j < j1; j++) {
            code[j] = (uint8_t)qv__argmin(table + (size_t)(j - j0) * QV_PQ_KSUB, QV_PQ_KSUB);  /* ties: lower */
        }
    }
}

void qv__pq_decode(const qv_quant_t *q, const uint8_t *code, float *v)
{
    size_t dsub = q->dsub;
    for (size_t j = 0; j < q->m; j++)
        memcpy(v + j * dsub, q->cent + (j * QV_PQ_KSUB + code[j]) * dsub, dsub * sizeof(float));
}

void qv__pq_prepare(const qv_quant_t *q, const float *query, float *table)
{
    q->kern->pq_table(q, query, q->metric == QV_QUANT_IP, 0, q->m, table);
}

/* ---- scalar reference kernels ---- */

void qv__pq_dist4_ref(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (size_t j = 0; j < q->m; j++, t += QV_PQ_KSUB) {
        s0 += t[c0[j]];
        s1 += t[c1[j]];
        s2 += t[c2[j]];
        s3 += t[c3[j]];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

void qv__pq_table_ref(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table)
{
    size_t dsub = q->dsub;
    for (size_t j = j0; j < j1; j++) {
        const float *xs = x + j * dsub, *ct = q->cent_t + j * dsub * QV_PQ_KSUB;
        float *restrict o = table + (j - j0) * QV_PQ_KSUB;
        for (size_t c = 0; c < QV_PQ_KSUB; c++)
            o[c] = 0.0f;
        for (size_t d = 0; d < dsub; d++) {
            const float xv = xs[d];
            const float *restrict row = ct + d * QV_PQ_KSUB;
            if (ip) {
                for (size_t c = 0; c < QV_PQ_KSUB; c++)
                    o[c] -= xv * row[c];
            } else {
                for (size_t c = 0; c < QV_PQ_KSUB; c++) {
                    float e = xv - row[c];
                    o[c] += e * e;
                }
            }
        }
    }
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

/* Table offsets of sub-codes j..j+7: code[j + l] + (j + l) * 256. */
AVX2 static inline __m256i offs8(const uint8_t *c, __m256i base)
{
    return _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)), base);
}

AVX2 void qv__pq_dist4_avx2(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t m = q->m;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    const __m256i lane = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        __m256i base = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(j * QV_PQ_KSUB)));
        a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(t, offs8(c0 + j, base), 4));
        a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(t, offs8(c1 + j, base), 4));
        a2 = _mm256_add_ps(a2, _mm256_i32gather_ps(t, offs8(c2 + j, base), 4));
        a3 = _mm256_add_ps(a3, _mm256_i32gather_ps(t, offs8(c3 + j, base), 4));
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (; j < m; j++) {
        const float *tj = t + j * QV_PQ_KSUB;
        s[0] += tj[c0[j]];
        s[1] += tj[c1[j]];
        s[2] += tj[c2[j]];
        s[3] += tj[c3[j]];
    }
    memcpy(out, s, sizeof s);
}

AVX512 void qv__pq_dist4_avx512(const qv_quant_t *q, const float *t, const uint8_t *const c[4], float out[4])
{
    const size_t m = q->m;
    const uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    const __m512i lane = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(QV_PQ_KSUB));
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= m; j += 16) {
        __m512i base = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(j * QV_PQ_KSUB)));
#define OFFS16(cp) _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cp))), base)
        a0 = _mm512_add_ps(a0, _mm512_i32gather_ps(OFFS16(c0 + j), t, 4));
        a1 = _mm512_add_ps(a1, _mm512_i32gather_ps(OFFS16(c1 + j), t, 4));
        a2 = _mm512_add_ps(a2, _mm512_i32gather_ps(OFFS16(c2 + j), t, 4));
        a3 = _mm512_add_ps(a3, _mm512_i32gather_ps(OFFS16(c3 + j), t, 4));
#undef OFFS16
    }
    float s[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                  _mm512_reduce_add_ps(a3)};
    if (j + 8 <= m) {  /* one 8-wide step (m = 8, 24, ...) */
        const __m256i lane8 = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
        __m256i base = _mm256_add_epi32(lane8, _mm256_set1_epi32((int)(j * QV_PQ_KSUB)));
        s[0] += hsum256(_mm256_i32gather_ps(t, offs8(c0 + j, base), 4));
        s[1] += hsum256(_mm256_i32gather_ps(t, offs8(c1 + j, base), 4));
        s[2] += hsum256(_mm256_i32gather_ps(t, offs8(c2 + j, base), 4));
        s[3] += hsum256(_mm256_i32gather_ps(t, offs8(c3 + j, base), 4));
        j += 8;
    }
    for (; j < m; j++) {
        const float *tj = t + j * QV_PQ_KSUB;
        s[0] += tj[c0[j]];
        s[1] += tj[c1[j]];
        s[2] += tj[c2[j]];
        s[3] += tj[c3[j]];
    }
    memcpy(out, s, sizeof s);
}

/* Tables: per sub-quantiser, 256 centroids in blocks of 4 vectors (32 or 64 centroids), dsub steps each. */
AVX2 void qv__pq_table_avx2(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table)
{
    size_t dsub = q->dsub;
    for (size_t j = j0; j < j1; j++) {
        const float *xs = x + j * dsub, *ct = q->cent_t + j * dsub * QV_PQ_KSUB;
        float *o = table + (j - j0) * QV_PQ_KSUB;
        for (size_t cb = 0; cb < QV_PQ_KSUB; cb += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            for (size_t d = 0; d < dsub; d++) {
                const float *row = ct + d * QV_PQ_KSUB + cb;
                __m256 xv = _mm256_set1_ps(xs[d]);
                __m256 r0 = _mm256_loadu_ps(row), r1 = _mm256_loadu_ps(row + 8);
                __m256 r2 = _mm256_loadu_ps(row + 16), r3 = _mm256_loadu_ps(row + 24);
                if (ip) {
                    a0 = _mm256_fnmadd_ps(xv, r0, a0);
                    a1 = _mm256_fnmadd_ps(xv, r1, a1);
                    a2 = _mm256_fnmadd_ps(xv, r2, a2);
                    a3 = _mm256_fnmadd_ps(xv, r3, a3);
                } else {
                    __m256 e0 = _mm256_sub_ps(xv, r0), e1 = _mm256_sub_ps(xv, r1);
                    __m256 e2 = _mm256_sub_ps(xv, r2), e3 = _mm256_sub_ps(xv, r3);
                    a0 = _mm256_fmadd_ps(e0, e0, a0);
                    a1 = _mm256_fmadd_ps(e1, e1, a1);
                    a2 = _mm256_fmadd_ps(e2, e2, a2);
                    a3 = _mm256_fmadd_ps(e3, e3, a3);
                }
            }
            _mm256_storeu_ps(o + cb, a0);
            _mm256_storeu_ps(o + cb + 8, a1);
            _mm256_storeu_ps(o + cb + 16, a2);
            _mm256_storeu_ps(o + cb + 24, a3);
        }
    }
}

AVX512 void qv__pq_table_avx512(const qv_quant_t *q, const float *x, int ip, uint32_t j0, uint32_t j1, float *table)
{
    size_t dsub = q->dsub;
    for (size_t j = j0; j < j1; j++) {
        const float *xs = x + j * dsub, *ct = q->cent_t + j * dsub * QV_PQ_KSUB;
        float *o = table + (j - j0) * QV_PQ_KSUB;
        for (size_t cb = 0; cb < QV_PQ_KSUB; cb += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
            for (size_t d = 0; d < dsub; d++) {
                const float *row = ct + d * QV_PQ_KSUB + cb;
                __m512 xv = _mm512_set1_ps(xs[d]);
                __m512 r0 = _mm512_loadu_ps(row), r1 = _mm512_loadu_ps(row + 16);
                __m512 r2 = _mm512_loadu_ps(row + 32), r3 = _mm512_loadu_ps(row + 48);
                if (ip) {
                    a0 = _mm512_fnmadd_ps(xv, r0, a0);
                    a1 = _mm512_fnmadd_ps(xv, r1, a1);
                    a2 = _mm512_fnmadd_ps(xv, r2, a2);
                    a3 = _mm512_fnmadd_ps(xv, r3, a3);
                } else {
                    __m512 e0 = _mm512_sub_ps(xv, r0), e1 = _mm512_sub_ps(xv, r1);
                    __m512 e2 = _mm512_sub_ps(xv, r2), e3 = _mm512_sub_ps(xv, r3);
                    a0 = _mm512_fmadd_ps(e0, e0, a0);
                    a1 = _mm512_fmadd_ps(e1, e1, a1);
                    a2 = _mm512_fmadd_ps(e2, e2, a2);
                    a3 = _mm512_fmadd_ps(e3, e3, a3);
                }
            }
            _mm512_storeu_ps(o + cb, a0);
            _mm512_storeu_ps(o + cb + 16, a1);
            _mm512_storeu_ps(o + cb + 32, a2);
            _mm512_storeu_ps(o + cb + 48, a3);
        }
    }
}
#endif /* QV_QUANT_X86 */

/* ---- blob ---- */

int qv__pq_encode_blob(const qv_quant_t *q, qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_put(out, PQ_MAGIC, 8);
    qv_wbuf_u8(out, PQ_VERSION);
    qv_wbuf_u8(out, (uint8_t)q->metric);
    qv_wbuf_u8(out, 8);
    qv_wbuf_u8(out, 0);
    qv_wbuf_u32(out, q->dim);
    qv_wbuf_u32(out, q->m);
    qv_wbuf_u32(out, QV_PQ_KSUB);
    qv_wbuf_u64(out, (uint64_t)q->n);
    qv__put_f32s(out, q->cent, (size_t)q->dim * QV_PQ_KSUB);
    qv_wbuf_put(out, q->codes, q->n * q->code_size);
    return qv_wbuf_seal(out, start);
}

int qv__pq_decode_blob(const uint8_t *b, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out)
{
    if (len < PQ_HEADER + 8)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: %zu bytes, shorter than the header", len);
    qv_rbuf_t rd;
    if (!qv_rbuf_open_sealed(&rd, b, len))
        return qv_err_set(err, QV_ECORRUPT, "pq blob: checksum mismatch");
    const uint8_t *magic = qv_rbuf_take(&rd, 8);
    if (!magic || memcmp(magic, PQ_MAGIC, 8) != 0)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: bad magic");
    uint8_t version = qv_rbuf_u8(&rd);
    uint8_t metric = qv_rbuf_u8(&rd);
    uint8_t bits = qv_rbuf_u8(&rd);
    uint8_t reserved = qv_rbuf_u8(&rd);
    uint32_t bdim = qv_rbuf_u32(&rd);
    uint32_t m = qv_rbuf_u32(&rd);
    uint32_t ksub = qv_rbuf_u32(&rd);
    uint64_t bn = qv_rbuf_u64(&rd);
    if (rd.failed)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: truncated header");
    if (version != PQ_VERSION)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: unsupported version %u", version);
    if (metric > QV_QUANT_IP || bits != 8 || reserved != 0 || ksub != QV_PQ_KSUB)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: bad metric %u, bits %u, reserved %u or ksub %u", metric, bits,
                          reserved, ksub);
    if (bdim == 0 || bdim > QV_QUANT_MAX_DIM || m == 0 || m > bdim || bdim % m != 0)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: bad dim=%u or m=%u", bdim, m);
    if (bdim != dim || bn != n)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: built for %llu x %u, the segment has %zu x %u",
                          (unsigned long long)bn, bdim, n, dim);
    size_t left = qv_rbuf_left(&rd), book = (size_t)dim * QV_PQ_KSUB * sizeof(float);
    if (left < book || (left - book) / m != n || (left - book) % m != 0)
        return qv_err_set(err, QV_ECORRUPT, "pq blob: %zu bytes of codebooks and codes, expected %zu + %zu x %u",
                          left, book, n, m);
    qv_quant_t *q;
    int rc = qv__quant_new(QV_QUANT_PQ, (qv_quant_metric_t)metric, n, dim, m, err, &q);
    if (rc)
        return rc;
    if (!qv__get_f32s(&rd, q->cent, (size_t)dim * QV_PQ_KSUB)) {
        qv_quant_free(q);
        return qv_err_set(err, QV_ECORRUPT, "pq blob: a centroid is not finite");
    }
    const uint8_t *codes = qv_rbuf_take_array(&rd, n, m);
    if (!codes || qv_rbuf_left(&rd) != 0) {
        qv_quant_free(q);
        return qv_err_set(err, QV_ECORRUPT, "pq blob: codes truncated or trailing bytes");
    }
    memcpy(q->codes, codes, n * m);
    qv__pq_transpose(q);
    *out = q;
    return QV_OK;
}
