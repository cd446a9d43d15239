/* Quantiser front end: parameter checks, the kernel tables per SIMD tier, dispatch by kind, parallel encoding of
 * all rows, and the blob entry points (the formats themselves are specified at the top of sq8.c and pq.c).
 *
 * Tier choice. A quantiser fixes its kernels when it is created (train or decode) from the tier qv_dist() has at
 * that moment, exactly as index/hnsw/batch.c does for the float kernels, so one qv_dist_init() call decides the
 * tier of every kernel in the process and tests can force one. The kernels of a tier are reached through one
 * function pointer per call of four distances; the HNSW walk takes that pointer once per query
 * (qv_quant_dist4_kernel), so there is no per-call dispatch beyond the indirect call.
 *
 * One exception, by CPU vendor rather than tier: PQ table lookups. The AVX2/AVX-512 PQ kernels fetch 8/16 table
 * entries per gather instruction; on AMD Zen cores gathers are microcoded and slower than the scalar kernel's four
 * independent chains of loads (Zen 4 here, table in L1, 128-d: m=16 10.5 ns scalar vs 10.1 avx2 / 14.6 avx512 per
 * distance; m=32 15.2 vs 19.9 / 22.1; m=64 33.7 vs 42.6 / 42.5), so on AMD a PQ quantiser of those tiers uses the
 * scalar lookup kernel (qv_quant_tier() then says "avx512/scalar-lookup"). The check is __builtin_cpu_is, fixed
 * for the process, so results stay deterministic on a machine; tests exercise every kernel of every tier. */
#include "index/quant/quant_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const qv_quant_kernels_t scalar_kernels = {qv__sq8_l2_ref, qv__sq8_ip_ref, qv__pq_dist4_ref,
                                                  qv__pq_table_ref, "scalar"};
#if QV_QUANT_X86
static const qv_quant_kernels_t avx2_kernels = {qv__sq8_l2_avx2, qv__sq8_ip_avx2, qv__pq_dist4_avx2,
                                                qv__pq_table_avx2, "avx2"};
static const qv_quant_kernels_t avx512_kernels = {qv__sq8_l2_avx512, qv__sq8_ip_avx512, qv__pq_dist4_avx512,
                                                  qv__pq_table_avx512, "avx512"};
#endif

static const qv_quant_kernels_t *by_name(const char *name)
{
#if QV_QUANT_X86
    if (strcmp(name, "avx512") == 0)
        return &avx512_kernels;
    if (strcmp(name, "avx2") == 0)
        return &avx2_kernels;
#else
    (void)name;
#endif
    return &scalar_kernels;
}

const qv_quant_kernels_t *qv_quant_kernels(qv_simd_t tier)
{
    if (tier == QV_SIMD_AUTO)
        return by_name(qv_dist()->name);
    const qv_dist_table_t *t = qv_dist_tier(tier);  /* NULL when the CPU lacks the tier */
    return t ? by_name(t->name) : NULL;
}

uint32_t qv_pq_default_m(uint32_t dim)
{
    uint32_t m = dim / 4;
    while (m > 1 && dim % m != 0)
        m--;
    return m ? m : 1;
}

void *qv__quant_alloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    size_t align = bytes >= ((size_t)4 << 20) ? ((size_t)2 << 20) : 64;
    size_t rounded = bytes ? (bytes + align - 1) / align * align : align;
    void *p = NULL;
    if (posix_memalign(&p, align, rounded) != 0)
        return NULL;
    if (align > 64)
        madvise(p, rounded, MADV_HUGEPAGE);  /* codes are read at random during a walk: spare the TLB */
    memset(p, 0, rounded);
    return p;
}

int qv__quant_new(qv_quant_kind_t kind, qv_quant_metric_t metric, size_t n, uint32_t dim, uint32_t m,
                  qv_err_t *err, qv_quant_t **out)
{
    qv_quant_t *q = calloc(1, sizeof(*q));
    if (!q)
        return qv_err_set(err, QV_ENOMEM, "quant: out of memory");
    q->kind = kind;
    q->metric = metric;
    q->n = n;
    q->dim = dim;
    q->kern = qv_quant_kernels(QV_SIMD_AUTO);
    q->tier = q->kern->name;
    if (kind == QV_QUANT_SQ8) {
        q->m = dim;
        q->dsub = 1;
        q->code_size = dim;
        q->vmin = qv__quant_alloc(dim, sizeof(float));
        q->scale = qv__quant_alloc(dim, sizeof(float));
        q->dist4 = metric == QV_QUANT_IP ? q->kern->sq8_ip : q->kern->sq8_l2;
        if (!q->vmin || !q->scale)
            goto oom;
    } else {
        q->m = m;
        q->dsub = dim / m;
        q->code_size = m;
        q->cent = qv__quant_alloc((size_t)dim * QV_PQ_KSUB, sizeof(float));
        q->cent_t = qv__quant_alloc((size_t)dim * QV_PQ_KSUB, sizeof(float));
        q->dist4 = q->kern->pq;
#if QV_QUANT_X86
        __builtin_cpu_init();
        if (q->kern != &scalar_kernels && __builtin_cpu_is("amd")) {
            q->dist4 = scalar_kernels.pq;
            q->tier = q->kern == &avx512_kernels ? "avx512/scalar-lookup" : "avx2/scalar-lookup";
        }
#endif
        if (!q->cent || !q->cent_t)
            goto oom;
    }
    if (n > SIZE_MAX / q->code_size)
        goto oom;
    q->codes = qv__quant_alloc(n ? n : 1, q->code_size);
    if (!q->codes)
        goto oom;
    *out = q;
    return QV_OK;
oom:
    qv_quant_free(q);
    return qv_err_set(err, QV_ENOMEM, "quant: out of memory for %zu codes of dim %u", n, dim);
}

void qv_quant_free(qv_quant_t *q)
{
    if (!q)
        return;
    free(q->vmin);
    free(q->scale);
    free(q->cent);
    free(q->cent_t);
    free(q->codes);
    free(q);
}

void qv__quant_parallel(qv_pool_t *pool, size_t ntasks, void (*fn)(void *arg, int task), void *arg)
{
    if (ntasks)
        qv_pool_parallel(pool, (int)ntasks, fn, arg);
}

/* ---- encoding all rows ---- */

#define ENCODE_CHUNK 1024

typedef struct {
    qv_quant_t *q;
    const float *vectors;
    size_t stride;
    const int *cancel;
} encode_job_t;

static void encode_task(void *arg, int task)
{
    encode_job_t *j = arg;
    if (qv__cancelled(j->cancel))
        return;
    qv_quant_t *q = j->q;
    size_t lo = (size_t)task * ENCODE_CHUNK, hi = lo + ENCODE_CHUNK < q->n ? lo + ENCODE_CHUNK : q->n;
    for (size_t r = lo; r < hi; r++)
        qv_quant_encode(q, j->vectors + r * j->stride, q->codes + r * q->code_size);
}

int qv__quant_encode_rows(qv_quant_t *q, const float *vectors, size_t stride, qv_pool_t *pool, const int *cancel)
{
    encode_job_t job = {q, vectors, stride, cancel};
    qv__quant_parallel(pool, (q->n + ENCODE_CHUNK - 1) / ENCODE_CHUNK, encode_task, &job);
    return qv__cancelled(cancel) ? QV_ECANCELLED : QV_OK;
}

/* ---- public entry points ---- */

int qv_quant_train(const qv_quant_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_pool_t *pool, const int *cancel, qv_err_t *err, qv_quant_t **out)
{
    if (!params || !out)
        return qv_err_set(err, QV_EINVAL, "quant: NULL argument");
    *out = NULL;
    qv_quant_params_t p = *params;
    if (p.kind != QV_QUANT_SQ8 && p.kind != QV_QUANT_PQ)
        return qv_err_set(err, QV_EINVAL, "quant: unknown kind %d", (int)p.kind);
    if (p.metric != QV_QUANT_L2 && p.metric != QV_QUANT_IP)
        return qv_err_set(err, QV_EINVAL, "quant: unknown metric %d", (int)p.metric);
    if (dim == 0 || dim > QV_QUANT_MAX_DIM)
        return qv_err_set(err, QV_EINVAL, "quant: dim=%u outside [1, %u]", dim, QV_QUANT_MAX_DIM);
    if (stride == 0)
        stride = dim;
    if (stride < dim)
        return qv_err_set(err, QV_EINVAL, "quant: stride %zu < dim %u", stride, dim);
    if (n > 0 && !vectors)
        return qv_err_set(err, QV_EINVAL, "quant: NULL vectors");
    uint32_t m = 0;
    if (p.kind == QV_QUANT_PQ) {
        m = p.pq_m ? p.pq_m : qv_pq_default_m(dim);
        if (m > dim || dim % m != 0)
            return qv_err_set(err, QV_EINVAL,
                              "pq: dim %u is not a multiple of m=%u (each of the m sub-quantisers takes dim/m "
                              "dimensions; choose m dividing %u)",
                              dim, m, dim);
        if (p.pq_iters > 1000)
            return qv_err_set(err, QV_EINVAL, "pq: %u iterations is too many (at most 1000)", p.pq_iters);
    }
    qv_quant_t *q;
    int rc = qv__quant_new(p.kind, p.metric, n, dim, m, err, &q);
    if (rc)
        return rc;
    if (p.kind == QV_QUANT_SQ8)
        rc = qv__sq8_train(q, vectors, stride);
    else
        rc = qv__pq_train(q, &p, vectors, stride, pool, cancel, err);
    if (rc == QV_OK && qv__cancelled(cancel))
        rc = QV_ECANCELLED;
    if (rc == QV_OK)
        rc = qv__quant_encode_rows(q, vectors, stride, pool, cancel);
    if (rc) {
        qv_quant_free(q);
        if (rc == QV_ECANCELLED)
            return qv_err_set(err, rc, "quant: training cancelled");
        return err && err->code == rc ? rc : qv_err_set(err, rc, "quant: training failed: %s", qv_strerror(rc));
    }
    *out = q;
    return QV_OK;
}

qv_quant_kind_t qv_quant_kind(const qv_quant_t *q) { return q ? q->kind : QV_QUANT_NONE; }
qv_quant_metric_t qv_quant_metric(const qv_quant_t *q) { return q->metric; }
uint32_t qv_quant_dim(const qv_quant_t *q) { return q->dim; }
size_t qv_quant_rows(const qv_quant_t *q) { return q->n; }
uint32_t qv_quant_m(const qv_quant_t *q) { return q->m; }
size_t qv_quant_code_size(const qv_quant_t *q) { return q->code_size; }
const uint8_t *qv_quant_code(const qv_quant_t *q, size_t row) { return q->codes + row * q->code_size; }
const char *qv_quant_tier(const qv_quant_t *q) { return q->tier; }

size_t qv_quant_bytes(const qv_quant_t *q)
{
    if (!q)
        return 0;
    size_t book = q->kind == QV_QUANT_SQ8 ? 2 * (size_t)q->dim * sizeof(float)
                                          : 2 * (size_t)q->dim * QV_PQ_KSUB * sizeof(float);
    return sizeof(*q) + book + q->n * q->code_size;
}

void qv_quant_encode(const qv_quant_t *q, const float *v, uint8_t *code)
{
    if (q->kind == QV_QUANT_SQ8)
        qv__sq8_encode(q, v, code);
    else
        qv__pq_encode(q, v, code);
}

void qv_quant_decode(const qv_quant_t *q, const uint8_t *code, float *v)
{
    if (q->kind == QV_QUANT_SQ8)
        qv__sq8_decode(q, code, v);
    else
        qv__pq_decode(q, code, v);
}

size_t qv_quant_table_floats(const qv_quant_t *q)
{
    return q->kind == QV_QUANT_SQ8 ? (size_t)q->dim + 16 : (size_t)q->m * QV_PQ_KSUB;
}

void qv_quant_prepare(const qv_quant_t *q, const float *query, float *table)
{
    if (q->kind == QV_QUANT_SQ8)
        qv__sq8_prepare(q, query, table);
    else
        qv__pq_prepare(q, query, table);
}

void qv_quant_dist4(const qv_quant_t *q, const float *table, const uint8_t *const codes[4], float out[4])
{
    q->dist4(q, table, codes, out);
}

float qv_quant_dist(const qv_quant_t *q, const float *table, const uint8_t *code)
{
    const uint8_t *c4[4] = {code, code, code, code};
    float out[4];
    q->dist4(q, table, c4, out);
    return out[0];
}

qv_quant_dist4_fn qv_quant_dist4_kernel(const qv_quant_t *q) { return q->dist4; }

int qv_quant_encode_blob(const qv_quant_t *q, qv_wbuf_t *out)
{
    if (!q || !out)
        return QV_EINVAL;
    return q->kind == QV_QUANT_SQ8 ? qv__sq8_encode_blob(q, out) : qv__pq_encode_blob(q, out);
}

int qv_quant_decode_blob(const void *blob, size_t len, size_t n, uint32_t dim, qv_err_t *err, qv_quant_t **out)
{
    if (!out || (!blob && len))
        return qv_err_set(err, QV_EINVAL, "quant decode: NULL argument");
    *out = NULL;
    const uint8_t *b = blob;
    if (len < 8)
        return qv_err_set(err, QV_ECORRUPT, "quant blob: %zu bytes, shorter than the magic", len);
    if (memcmp(b, "QVSQ8", 5) == 0)
        return qv__sq8_decode_blob(b, len, n, dim, err, out);
    if (memcmp(b, "QVPQ8", 5) == 0)
        return qv__pq_decode_blob(b, len, n, dim, err, out);
    return qv_err_set(err, QV_ECORRUPT, "quant blob: unknown magic");
}

/* ---- little-endian floats ---- */

void qv__put_f32s(qv_wbuf_t *out, const float *v, size_t count)
{
    if (!qv_wbuf_reserve(out, count * sizeof(float)))
        return;
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        qv_wbuf_u32(out, u);
    }
}

bool qv__get_f32s(qv_rbuf_t *rd, float *v, size_t count)
{
    const uint8_t *p = qv_rbuf_take_array(rd, count, sizeof(float));
    if (!p)
        return false;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *e = p + 4 * i;
        uint32_t u = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 | (uint32_t)e[3] << 24;
        memcpy(&v[i], &u, 4);
        if (!isfinite(v[i])) {
            rd->failed = true;
            return false;
        }
    }
    return true;
}
