/* Fuzz target: the SQ8 and PQ quantiser blob loader (qv_quant_decode_blob, index/quant/sq8.c and pq.c).
 *
 * Input: one mode byte, then a blob without its trailing checksum (see fuzz.h). The caller's n and dim are read from
 * the blob's own header (so a mutated n or dim reaches the length checks rather than the "built for other vectors"
 * check), except that mode 2 adds one to n and mode 3 to dim (that check). A quantiser that loads must match the
 * header (kind, metric, n, dim; PQ m dividing dim), give every code and a table-lookup distance for each row (a
 * read past its codes or codebooks is caught by ASan), and re-encode to exactly the bytes it was loaded from. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "index/quant/quant.h"

#define MAX_CHECKED_ROWS 256

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void check(const qv_quant_t *q, const uint8_t *blob, size_t len, size_t n, uint32_t dim)
{
    bool pq = memcmp(blob, "QVPQ8", 5) == 0;
    FUZZ_CHECK(qv_quant_kind(q) == (pq ? QV_QUANT_PQ : QV_QUANT_SQ8));
    FUZZ_CHECK((int)qv_quant_metric(q) == blob[9]);
    FUZZ_CHECK(qv_quant_rows(q) == n && qv_quant_dim(q) == dim);
    uint32_t m = qv_quant_m(q);
    FUZZ_CHECK(m >= 1 && m <= dim && dim % m == 0 && qv_quant_code_size(q) == (pq ? m : dim));
    FUZZ_CHECK(len == (pq ? 40 + (size_t)1024 * dim : 32 + (size_t)8 * dim) + n * qv_quant_code_size(q));

    float *query = malloc(dim * sizeof *query), *rec = malloc(dim * sizeof *rec);
    float *table = malloc(qv_quant_table_floats(q) * sizeof *table);
    FUZZ_CHECK(query && rec && table);
    for (uint32_t i = 0; i < dim; i++)
        query[i] = (float)(i % 7) - 3.0f;
    qv_quant_prepare(q, query, table);
    size_t rows = n < MAX_CHECKED_ROWS ? n : MAX_CHECKED_ROWS;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *code = qv_quant_code(q, r);
        qv_quant_decode(q, code, rec);
        const uint8_t *c4[4] = {code, qv_quant_code(q, n - 1 - r), code, code};
        float d4[4];
        qv_quant_dist4(q, table, c4, d4);
        FUZZ_CHECK(d4[0] == qv_quant_dist(q, table, code) || d4[0] != d4[0]);
    }
    free(query);
    free(rec);
    free(table);

    qv_wbuf_t again;
    qv_wbuf_init(&again);
    FUZZ_CHECK(qv_quant_encode_blob(q, &again) == QV_OK);
    FUZZ_CHECK(again.len == len && memcmp(again.data, blob, len) == 0);
    qv_wbuf_free(&again);
}

static void decode(const uint8_t *blob, size_t len, uint8_t mode)
{
    size_t n = 0;
    uint32_t dim = 1;
    if (len >= 32 && memcmp(blob, "QVPQ8", 5) == 0) {
        dim = get_u32(blob + 12);
        n = (size_t)get_u64(blob + 24);
    } else if (len >= 24) {
        dim = get_u32(blob + 12);
        n = (size_t)get_u64(blob + 16);
    }
    if (mode == 2)
        n++;
    else if (mode == 3)
        dim++;
    qv_quant_t *q;
    qv_err_t err = {0};
    int rc = qv_quant_decode_blob(blob, len, n, dim, &err, &q);
    if (rc == QV_OK) {
        FUZZ_CHECK(mode < 2);
        check(q, blob, len, n, dim);
        qv_quant_free(q);
    } else {
        FUZZ_CHECK((rc == QV_ECORRUPT || rc == QV_ENOMEM) && q == NULL && err.code == rc && err.msg[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return qv_fuzz_modal_blob(data, size, decode); }

/* ---- seeds: SQ8 and PQ quantisers trained on 0, 1, 7 and 40 rows, both metrics ---- */

static void add_blob(qv_fuzz_add_fn add, void *ctx, uint8_t mode, const qv_quant_t *q)
{
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    FUZZ_CHECK(qv_quant_encode_blob(q, &b) == QV_OK);
    uint8_t *in = malloc(b.len - 7);
    FUZZ_CHECK(in);
    in[0] = mode;
    memcpy(in + 1, b.data, b.len - 8);
    add(ctx, in, b.len - 7);
    free(in);
    qv_wbuf_free(&b);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    qv_dist_init(QV_SIMD_AUTO); /* the encoders use the kernels */
    const size_t rows[] = {0, 1, 7, 40};
    const uint32_t dim = 8;
    float *v = malloc(40 * dim * sizeof *v);
    FUZZ_CHECK(v);
    for (size_t i = 0; i < 40 * dim; i++)
        v[i] = (float)((i * 37) % 23) * 0.25f - 2.0f;
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
        for (int kind = QV_QUANT_SQ8; kind <= QV_QUANT_PQ; kind++) {
            qv_quant_params_t p = {.kind = (qv_quant_kind_t)kind, .metric = (qv_quant_metric_t)(ri & 1),
                                   .pq_m = ri == 3 ? 2 : 4, .pq_iters = 2, .seed = 7};
            qv_quant_t *q;
            FUZZ_CHECK(qv_quant_train(&p, v, rows[ri], dim, 0, NULL, NULL, NULL, &q) == QV_OK);
            add_blob(add, ctx, (uint8_t)(ri & 1), q);
            qv_quant_free(q);
        }
    }
    free(v);
}
