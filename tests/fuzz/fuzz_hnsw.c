/* Fuzz target: the HNSW graph blob loader (qv_hnsw_decode, index/hnsw/io.c), with and without a nested SQ8 or PQ
 * quantiser section.
 *
 * Input: one mode byte, then a blob without its trailing checksum (see fuzz.h). The caller's n and dim are read from
 * the blob's header (so mutated counts reach the structural checks), except that mode 2 adds one to n and mode 3 to
 * dim (the "built for other vectors" check). A graph that loads must pass qv_hnsw_validate() (every link < n, no
 * self or duplicate links, degrees within M, upper-layer links to nodes of that level, a consistent entry point),
 * report the header's n, dim, metric and quantiser in qv_hnsw_info(), answer searches (plain, filtered, exact) with
 * at most k distinct allowed rows < n in ascending distance, and re-encode to the bytes it was loaded from (but for
 * the version byte of a version 1 blob). The vectors searched are made here, so the search touches only what the
 * loader built (ASan catches a read outside it). */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/bitmap.h"
#include "fuzz.h"
#include "index/distance.h"
#include "index/hnsw.h"

#define MAX_SEARCH_FLOATS (1u << 20) /* larger n * dim: checked without searching (no vectors made) */

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

static void check_results(const qv_cand_t *out, size_t nout, size_t k, size_t n, const uint64_t *allowed)
{
    FUZZ_CHECK(nout <= k);
    for (size_t i = 0; i < nout; i++) {
        FUZZ_CHECK(out[i].ref < n);
        FUZZ_CHECK(!allowed || qv_bm_get(allowed, out[i].ref));
        FUZZ_CHECK(!isnan(out[i].dist));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(out[j].ref != out[i].ref);
        if (i)
            FUZZ_CHECK(out[i - 1].dist <= out[i].dist);
    }
}

static void search(const qv_hnsw_t *h, const float *vectors, size_t n, uint32_t dim)
{
    enum { K = 5 };
    qv_cand_t out[K];
    size_t nout;
    const float *query = vectors + (n / 2) * dim;
    qv_hnsw_search_params_t sp = {.ef = 8, .max_dist = 4000};
    FUZZ_CHECK(qv_hnsw_search(h, query, K, &sp, out, &nout, NULL) == QV_OK);
    check_results(out, nout, K, n, NULL);

    uint64_t *allowed = calloc(qv_bm_words(n) ? qv_bm_words(n) : 1, sizeof *allowed);
    FUZZ_CHECK(allowed);
    for (size_t r = 0; r < n; r += 3)
        qv_bm_set(allowed, r);
    size_t nallowed = (n + 2) / 3;
    for (int plan = QV_HNSW_PLAN_AUTO; plan <= QV_HNSW_PLAN_EXACT; plan++) {
        sp.plan = (qv_hnsw_plan_t)plan;
        sp.allowed = allowed;
        sp.allowed_count = nallowed;
        FUZZ_CHECK(qv_hnsw_search(h, query, K, &sp, out, &nout, NULL) == QV_OK);
        check_results(out, nout, K, n, allowed);
    }
    FUZZ_CHECK(qv_hnsw_search_exact(h, query, K, allowed, out, &nout) == QV_OK);
    check_results(out, nout, K, n, allowed);
    FUZZ_CHECK(nout == (nallowed < K ? nallowed : K));
    free(allowed);
}

static void check(const qv_hnsw_t *h, const uint8_t *blob, size_t len, const float *vectors, size_t n, uint32_t dim)
{
    qv_err_t err = {0};
    qv_hnsw_report_t rep;
    if (qv_hnsw_validate(h, &rep, &err) != QV_OK) {
        fprintf(stderr, "decoded graph fails validation: %s\n", err.msg);
        FUZZ_CHECK(!"a decoded graph validates");
    }
    qv_hnsw_info_t info;
    qv_hnsw_info(h, &info);
    FUZZ_CHECK(info.n == n && info.dim == dim && (int)info.metric == blob[9] && info.M == get_u32(blob + 12));
    FUZZ_CHECK((int)info.quant == blob[10]);
    FUZZ_CHECK(info.links == rep.links && info.max_level == get_u32(blob + 40));
    FUZZ_CHECK(n == 0 ? info.entry == UINT32_MAX : info.entry == get_u32(blob + 44));
    if (vectors)
        search(h, vectors, n, dim);

    qv_wbuf_t again;
    qv_wbuf_init(&again);
    FUZZ_CHECK(qv_hnsw_encode(h, &again) == QV_OK);
    FUZZ_CHECK(again.len == len && again.data[8] == 2);
    again.data[8] = blob[8];
    FUZZ_CHECK(memcmp(again.data, blob, len - 8) == 0);
    qv_wbuf_free(&again);
}

static void decode(const uint8_t *blob, size_t len, uint8_t mode)
{
    size_t n = 0;
    uint32_t dim = 1;
    if (len >= 40) {
        dim = get_u32(blob + 20);
        n = (size_t)get_u64(blob + 32);
    }
    if (mode == 2)
        n++;
    else if (mode == 3)
        dim++;
    float *vectors = NULL, one = 0.0f;
    if (n && dim && n <= MAX_SEARCH_FLOATS / dim) {
        vectors = malloc(n * dim * sizeof *vectors);
        FUZZ_CHECK(vectors);
        for (size_t i = 0; i < n * dim; i++)
            vectors[i] = (float)((i * 2654435761u) % 1000) / 100.0f - 5.0f;
    }
    qv_hnsw_t *h;
    qv_err_t err = {0};
    int rc = qv_hnsw_decode(blob, len, vectors ? vectors : &one, n, dim, 0, &err, &h);
    if (rc == QV_OK) {
        FUZZ_CHECK(mode < 2);
        check(h, blob, len, vectors, n, dim);
        qv_hnsw_free(h);
    } else {
        FUZZ_CHECK((rc == QV_ECORRUPT || rc == QV_ENOMEM) && h == NULL && err.code == rc && err.msg[0]);
    }
    free(vectors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return qv_fuzz_modal_blob(data, size, decode); }

/* ---- seeds: graphs of 0, 1, 2, 60 and 400 rows (M = 3 and 4, several levels), both metrics, SQ8 and PQ sections,
 * and a version 1 blob ---- */

static void add_blob(qv_fuzz_add_fn add, void *ctx, uint8_t mode, const qv_wbuf_t *b, bool v1)
{
    uint8_t *in = malloc(b->len - 7);
    FUZZ_CHECK(in);
    in[0] = mode;
    memcpy(in + 1, b->data, b->len - 8);
    if (v1)
        in[1 + 8] = 1;
    add(ctx, in, b->len - 7);
    free(in);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    qv_dist_init(QV_SIMD_AUTO); /* the encoders use the kernels */
    enum { DIM = 4, MAXN = 400 };
    float *v = malloc(MAXN * DIM * sizeof *v);
    FUZZ_CHECK(v);
    for (size_t i = 0; i < MAXN * DIM; i++)
        v[i] = (float)((i * 2654435761u) % 1000) / 100.0f - 5.0f;
    const struct {
        size_t n;
        uint32_t M;
        qv_hnsw_metric_t metric;
        qv_hnsw_quant_t quant;
    } graphs[] = {
        {0, 4, QV_HNSW_L2, QV_HNSW_QUANT_NONE},  {1, 4, QV_HNSW_IP, QV_HNSW_QUANT_NONE},
        {2, 3, QV_HNSW_L2, QV_HNSW_QUANT_SQ8},   {60, 3, QV_HNSW_L2, QV_HNSW_QUANT_NONE},
        {60, 4, QV_HNSW_IP, QV_HNSW_QUANT_SQ8},  {60, 4, QV_HNSW_L2, QV_HNSW_QUANT_PQ},
        {400, 3, QV_HNSW_L2, QV_HNSW_QUANT_NONE},
    };
    for (size_t g = 0; g < sizeof graphs / sizeof graphs[0]; g++) {
        qv_hnsw_params_t p = {.metric = graphs[g].metric, .M = graphs[g].M, .ef_construction = 16, .seed = g,
                              .quant = graphs[g].quant, .pq_m = 2};
        qv_hnsw_t *h;
        FUZZ_CHECK(qv_hnsw_create(&p, v, graphs[g].n, DIM, 0, NULL, &h) == QV_OK);
        FUZZ_CHECK(qv_hnsw_build(h, NULL) == QV_OK);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        FUZZ_CHECK(qv_hnsw_encode(h, &b) == QV_OK);
        add_blob(add, ctx, 0, &b, false);
        if (graphs[g].quant == QV_HNSW_QUANT_NONE && graphs[g].n == 60)
            add_blob(add, ctx, 1, &b, true);
        qv_wbuf_free(&b);
        qv_hnsw_free(h);
    }
    free(v);
}
