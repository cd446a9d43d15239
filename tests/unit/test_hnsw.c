/* HNSW index: recall@10 against exact search on clustered data (L2 and IP), filtered search at 50% / 10% / 1%
 * allowed and with deleted rows, validator after a 2-thread parallel build, encode -> decode giving identical
 * results, every single-byte corruption and every truncation of a blob rejected, forged blobs (corrupted and
 * re-checksummed) either rejected or loaded into a graph that validates and searches safely, k > n, n = 0/1/2,
 * duplicate vectors, cancellation, bad parameters, concurrent searches, progress read during a build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "vecdata.h"

#include "common/bitmap.h"
#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/pool.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N 5000
#define DIM 32
#define NQ 200
#define K 10

/* qv_cand_t has padding between dist and ref: compare fields. */
static void assert_same_results(const qv_cand_t *a, const qv_cand_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].ref, b[i].ref);
        assert_true(a[i].dist == b[i].dist);
    }
}





typedef struct {
    float *base, *queries;
    qv_hnsw_t *idx;
    qv_hnsw_metric_t metric;
} fixture_t;

static qv_hnsw_t *build(const float *v, size_t n, size_t dim, qv_hnsw_metric_t metric, uint32_t M, int threads)
{
    qv_hnsw_params_t p = {.metric = metric, .M = M, .ef_construction = 200, .seed = 42};
    qv_hnsw_t *h = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_hnsw_create(&p, v, n, (uint32_t)dim, 0, &err, &h);
    if (rc)
        fail_msg("create: %s", err.msg);
    qv_pool_t *pool = threads > 1 ? qv_pool_create(threads - 1) : NULL;
    assert_int_equal(qv_hnsw_build(h, pool), QV_OK);
    qv_pool_destroy(pool);
    assert_int_equal(qv_hnsw_progress(h), n);
    return h;
}

static int setup(void **state, qv_hnsw_metric_t metric)
{
    qv_dist_init(QV_SIMD_AUTO);
    fixture_t *f = calloc(1, sizeof(*f));
    f->metric = metric;
    f->base = clustered(N + NQ, DIM, 40, metric == QV_HNSW_L2 ? 7 : 8);
    if (metric == QV_HNSW_IP)
        normalize_rows(f->base, N + NQ, DIM);
    f->queries = f->base + (size_t)N * DIM;  /* held out: same distribution, not in the index */
    f->idx = build(f->base, N, DIM, metric, 16, 2);  /* the 2-thread parallel build */
    *state = f;
    return 0;
}

static int setup_l2(void **state) { return setup(state, QV_HNSW_L2); }
static int setup_ip(void **state) { return setup(state, QV_HNSW_IP); }

static int teardown(void **state)
{
    fixture_t *f = *state;
    qv_hnsw_free(f->idx);
    free(f->base);
    free(f);
    return 0;
}


/* Mean recall@K over the held-out queries; checks sortedness, allowed-only results and result counts. */
static double recall(const fixture_t *f, const qv_hnsw_search_params_t *sp, const uint64_t *allowed,
                     size_t allowed_count)
{
    size_t hits = 0, total = 0;
    for (size_t q = 0; q < NQ; q++) {
        const float *query = f->queries + q * DIM;
        qv_cand_t got[K], want[K];
        size_t ngot, nwant;
        qv_hnsw_stats_t st;
        assert_int_equal(qv_hnsw_search(f->idx, query, K, sp, got, &ngot, &st), QV_OK);
        assert_int_equal(qv_hnsw_search_exact(f->idx, query, K, allowed, want, &nwant), QV_OK);
        size_t expect = allowed_count < K ? allowed_count : K;
        assert_int_equal(nwant, expect);
        assert_int_equal(ngot, expect);  /* whenever >= k rows are allowed, k come back */
        for (size_t i = 0; i < ngot; i++) {
            assert_true(got[i].ref < N);
            if (allowed)
                assert_true(qv_bm_get(allowed, got[i].ref));
            if (i)
                assert_true(got[i - 1].dist <= got[i].dist);
        }
        hits += overlap(got, ngot, want, nwant);
        total += nwant;
    }
    return total ? (double)hits / (double)total : 1.0;
}

static void test_recall(void **state)
{
    fixture_t *f = *state;
    qv_hnsw_search_params_t sp = {.ef = 64, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    double r = recall(f, &sp, NULL, N);
    print_message("recall@10 ef=64 metric=%s: %.4f\n", f->metric == QV_HNSW_L2 ? "l2" : "ip", r);
    assert_true(r >= 0.95);
    /* ef = k is where a weak graph or a broken search shows first (64 saturates on 5k rows). */
    sp.ef = K;
    r = recall(f, &sp, NULL, N);
    print_message("recall@10 ef=10 metric=%s: %.4f\n", f->metric == QV_HNSW_L2 ? "l2" : "ip", r);
    assert_true(r >= 0.85);
}


static void test_filtered(void **state)
{
    fixture_t *f = *state;
    uint64_t *bm = calloc(qv_bm_words(N), sizeof(uint64_t));
    const double fracs[] = {0.5, 0.1, 0.01};
    for (size_t t = 0; t < 3; t++) {
        size_t cnt = random_allowed(bm, N, fracs[t], 100 + t);
        /* The graph walk itself (forced), then what the planner picks; count given and count left to the index. */
        for (int plan = 0; plan < 2; plan++) {
            qv_hnsw_search_params_t sp = {
                .ef = 64,
                .allowed = bm,
                .allowed_count = plan ? cnt : QV_HNSW_COUNT_UNKNOWN,
                .plan = plan ? QV_HNSW_PLAN_AUTO : QV_HNSW_PLAN_GRAPH,
            };
            double r = recall(f, &sp, bm, cnt);
            print_message("filtered %.0f%% (%zu rows) plan=%s: recall@10 %.4f\n", fracs[t] * 100, cnt,
                          plan ? "auto" : "graph", r);
            if (fracs[t] >= 0.1)
                assert_true(r >= 0.9);
        }
        /* Two-hop disabled: the plain walk through non-allowed nodes must also find k. */
        qv_hnsw_search_params_t sp = {.ef = 64, .allowed = bm, .allowed_count = cnt, .plan = QV_HNSW_PLAN_GRAPH,
                                      .twohop_below = -1};
        double r = recall(f, &sp, bm, cnt);
        print_message("filtered %.0f%% plain walk: recall@10 %.4f\n", fracs[t] * 100, r);
        if (fracs[t] >= 0.1)
            assert_true(r >= 0.9);
    }
    /* Tiny allowed sets: 3 rows and 0 rows. */
    memset(bm, 0, qv_bm_words(N) * sizeof(uint64_t));
    qv_bm_set(bm, 17);
    qv_bm_set(bm, 2500);
    qv_bm_set(bm, N - 1);
    qv_hnsw_search_params_t sp = {.ef = 64, .allowed = bm, .allowed_count = 3, .plan = QV_HNSW_PLAN_GRAPH};
    qv_cand_t out[K];
    size_t nout;
    assert_int_equal(qv_hnsw_search(f->idx, f->queries, K, &sp, out, &nout, NULL), QV_OK);
    assert_int_equal(nout, 3);
    memset(bm, 0, qv_bm_words(N) * sizeof(uint64_t));
    sp.allowed_count = QV_HNSW_COUNT_UNKNOWN;
    assert_int_equal(qv_hnsw_search(f->idx, f->queries, K, &sp, out, &nout, NULL), QV_OK);
    assert_int_equal(nout, 0);
    free(bm);
}

/* Deleted rows: everything allowed except a deleted set, which includes the entry point and the exact nearest
 * neighbours of every query, so a search must pass through deleted nodes to do well. */
static void test_deleted(void **state)
{
    fixture_t *f = *state;
    uint64_t *bm = malloc(qv_bm_words(N) * sizeof(uint64_t));
    memset(bm, 0xff, qv_bm_words(N) * sizeof(uint64_t));
    qv_hnsw_info_t info;
    qv_hnsw_info(f->idx, &info);
    qv_bm_clear(bm, info.entry);
    for (size_t q = 0; q < NQ; q++) {
        qv_cand_t want[3];
        size_t nw;
        assert_int_equal(qv_hnsw_search_exact(f->idx, f->queries + q * DIM, 3, NULL, want, &nw), QV_OK);
        for (size_t i = 0; i < nw; i++)
            qv_bm_clear(bm, want[i].ref);
    }
    rng_state = 99;
    for (size_t i = 0; i < N; i++)
        if (rng_unit() < 0.2)
            qv_bm_clear(bm, i);
    size_t cnt = qv_bm_count(bm, N);
    qv_hnsw_search_params_t sp = {.ef = 64, .allowed = bm, .allowed_count = cnt};
    double r = recall(f, &sp, bm, cnt);
    print_message("with %zu deleted rows: recall@10 %.4f\n", (size_t)N - cnt, r);
    assert_true(r >= 0.9);
    free(bm);
}

static void test_validate(void **state)
{
    fixture_t *f = *state;
    qv_hnsw_report_t rep;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_hnsw_validate(f->idx, &rep, &err);
    if (rc)
        fail_msg("validate: %s", err.msg);
    qv_hnsw_info_t info;
    qv_hnsw_info(f->idx, &info);
    print_message("validate: %zu nodes, %llu links, max level %u, %zu unreachable, %.1f graph bytes/vector\n",
                  rep.nodes, (unsigned long long)rep.links, rep.max_level, rep.unreachable, info.bytes_per_vector);
    assert_int_equal(rep.nodes, N);
    assert_true(rep.unreachable <= N / 1000);
    assert_true(info.bytes_per_vector > 0 && info.bytes_per_vector < 200);
}

static void test_roundtrip(void **state)
{
    fixture_t *f = *state;
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    assert_int_equal(qv_hnsw_encode(f->idx, &b), QV_OK);
    qv_hnsw_t *g = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_hnsw_decode(b.data, b.len, f->base, N, DIM, 0, &err, &g);
    if (rc)
        fail_msg("decode: %s", err.msg);
    assert_int_equal(qv_hnsw_validate(g, NULL, NULL), QV_OK);
    /* Encoding the decoded graph gives the same bytes. */
    qv_wbuf_t b2;
    qv_wbuf_init(&b2);
    assert_int_equal(qv_hnsw_encode(g, &b2), QV_OK);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    uint64_t *bm = calloc(qv_bm_words(N), sizeof(uint64_t));
    random_allowed(bm, N, 0.1, 5);
    for (size_t q = 0; q < NQ; q++) {
        for (int filt = 0; filt < 2; filt++) {
            qv_hnsw_search_params_t sp = {.ef = 40, .allowed = filt ? bm : NULL,
                                          .allowed_count = QV_HNSW_COUNT_UNKNOWN, .plan = QV_HNSW_PLAN_GRAPH};
            qv_cand_t a[K], c[K];
            size_t na, nc;
            assert_int_equal(qv_hnsw_search(f->idx, f->queries + q * DIM, K, &sp, a, &na, NULL), QV_OK);
            assert_int_equal(qv_hnsw_search(g, f->queries + q * DIM, K, &sp, c, &nc, NULL), QV_OK);
            assert_int_equal(na, nc);
            assert_same_results(a, c, na);
        }
    }
    /* The blob belongs to these vectors only. */
    qv_hnsw_t *other = NULL;
    assert_int_equal(qv_hnsw_decode(b.data, b.len, f->base, N - 1, DIM, 0, NULL, &other), QV_ECORRUPT);
    assert_null(other);
    free(bm);
    qv_hnsw_free(g);
    qv_wbuf_free(&b);
    qv_wbuf_free(&b2);
}

/* A small blob: 40 x 4, M = 4 (so several levels and full, shrunk lists). */
static void small_blob(float **v, qv_hnsw_t **h, qv_wbuf_t *b)
{
    *v = clustered(40, 4, 3, 11);
    *h = build(*v, 40, 4, QV_HNSW_L2, 4, 1);
    qv_wbuf_init(b);
    assert_int_equal(qv_hnsw_encode(*h, b), QV_OK);
}

static void test_corruption(void **state)
{
    (void)state;
    float *v;
    qv_hnsw_t *h;
    qv_wbuf_t b;
    small_blob(&v, &h, &b);
    uint8_t *copy = malloc(b.len);
    size_t rejected = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {  /* every single-bit flip of every byte, and two whole-byte values */
            memcpy(copy, b.data, b.len);
            copy[i] ^= (uint8_t)(1u << bit);
            qv_hnsw_t *g = (qv_hnsw_t *)1;
            assert_int_equal(qv_hnsw_decode(copy, b.len, v, 40, 4, 0, NULL, &g), QV_ECORRUPT);
            assert_null(g);
            rejected++;
        }
        const uint8_t vals[2] = {0x00, 0xff};
        for (int t = 0; t < 2; t++) {
            if (b.data[i] == vals[t])
                continue;
            memcpy(copy, b.data, b.len);
            copy[i] = vals[t];
            qv_hnsw_t *g = NULL;
            assert_int_equal(qv_hnsw_decode(copy, b.len, v, 40, 4, 0, NULL, &g), QV_ECORRUPT);
            rejected++;
        }
    }
    for (size_t len = 0; len < b.len; len++) {
        qv_hnsw_t *g = NULL;
        assert_int_equal(qv_hnsw_decode(b.data, len, v, 40, 4, 0, NULL, &g), QV_ECORRUPT);
        assert_null(g);
    }
    /* Trailing garbage (with a valid checksum over it) is rejected too. */
    qv_wbuf_t t;
    qv_wbuf_init(&t);
    qv_wbuf_put(&t, b.data, b.len - 8);
    qv_wbuf_u32(&t, 0);
    qv_wbuf_u64(&t, qv_checksum(t.data, t.len));
    qv_hnsw_t *g = NULL;
    assert_int_equal(qv_hnsw_decode(t.data, t.len, v, 40, 4, 0, NULL, &g), QV_ECORRUPT);
    qv_wbuf_free(&t);
    print_message("blob of %zu bytes: %zu corruptions and %zu truncations rejected\n", b.len, rejected, b.len);
    free(copy);
    free(v);
    qv_wbuf_free(&b);
    qv_hnsw_free(h);
}

/* Forged blobs: a corrupted byte with the checksum recomputed, so only the structural checks stand in the way.
 * Each must be rejected, or load into a graph that validates and can be searched (filtered too) safely. */
static void test_forged(void **state)
{
    (void)state;
    float *v;
    qv_hnsw_t *h;
    qv_wbuf_t b;
    small_blob(&v, &h, &b);
    uint8_t *copy = malloc(b.len);
    uint64_t allowed[1] = {0x5555555555ull};
    size_t accepted = 0, rejected = 0;
    rng_state = 1234;
    for (size_t i = 0; i + 8 < b.len; i++) {
        for (int t = 0; t < 6; t++) {
            memcpy(copy, b.data, b.len);
            uint8_t val = t == 0   ? 0
                          : t == 1 ? 0xff
                          : t == 2 ? (uint8_t)(copy[i] + 1)
                          : t == 3 ? (uint8_t)(copy[i] - 1)
                                   : (uint8_t)rng_next();
            if (val == copy[i])
                continue;
            copy[i] = val;
            uint64_t sum = qv_checksum(copy, b.len - 8);
            memcpy(copy + b.len - 8, &sum, 8);
            qv_hnsw_t *g = NULL;
            qv_err_t err;
            int rc = qv_hnsw_decode(copy, b.len, v, 40, 4, 0, &err, &g);
            if (rc) {
                assert_int_equal(rc, QV_ECORRUPT);
                assert_null(g);
                rejected++;
                continue;
            }
            accepted++;
            assert_int_equal(qv_hnsw_validate(g, NULL, NULL), QV_OK);
            for (size_t q = 0; q < 5; q++) {
                qv_cand_t out[8];
                size_t nout;
                qv_hnsw_search_params_t sp = {.ef = 8, .allowed = q & 1 ? allowed : NULL,
                                              .allowed_count = QV_HNSW_COUNT_UNKNOWN, .plan = QV_HNSW_PLAN_GRAPH};
                assert_int_equal(qv_hnsw_search(g, v + q * 4, 8, &sp, out, &nout, NULL), QV_OK);
                for (size_t r = 0; r < nout; r++)
                    assert_true(out[r].ref < 40);
            }
            qv_hnsw_free(g);
        }
    }
    print_message("forged blobs: %zu rejected, %zu accepted (valid graphs: e.g. a changed seed or link order)\n",
                  rejected, accepted);
    assert_true(rejected > 0);
    free(copy);
    free(v);
    qv_wbuf_free(&b);
    qv_hnsw_free(h);
}

static void test_k_greater_than_n(void **state)
{
    (void)state;
    float *v = clustered(20, 8, 2, 3);
    qv_hnsw_t *h = build(v, 20, 8, QV_HNSW_L2, 4, 1);
    qv_cand_t out[50];
    size_t nout;
    qv_hnsw_search_params_t sp = {.ef = 10, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    assert_int_equal(qv_hnsw_search(h, v, 50, &sp, out, &nout, NULL), QV_OK);
    assert_int_equal(nout, 20);
    uint64_t seen = 0;
    for (size_t i = 0; i < nout; i++) {
        assert_true(out[i].ref < 20);
        assert_false(seen & (1ull << out[i].ref));
        seen |= 1ull << out[i].ref;
        if (i)
            assert_true(out[i - 1].dist <= out[i].dist);
    }
    assert_int_equal(out[0].ref, 0);
    assert_true(out[0].dist == 0.0f);
    /* k = 0 returns nothing; NULL arguments are EINVAL. */
    assert_int_equal(qv_hnsw_search(h, v, 0, &sp, out, &nout, NULL), QV_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(qv_hnsw_search(h, NULL, 5, &sp, out, &nout, NULL), QV_EINVAL);
    assert_int_equal(qv_hnsw_search(NULL, v, 5, &sp, out, &nout, NULL), QV_EINVAL);
    qv_hnsw_free(h);
    free(v);
}

static void test_tiny(void **state)
{
    (void)state;
    float v[2 * 3] = {1, 2, 3, 1, 2, 4};
    for (size_t n = 0; n <= 2; n++) {
        for (int metric = 0; metric < 2; metric++) {
            qv_hnsw_t *h = build(n ? v : NULL, n, 3, (qv_hnsw_metric_t)metric, 16, 2);
            assert_int_equal(qv_hnsw_validate(h, NULL, NULL), QV_OK);
            qv_cand_t out[4];
            size_t nout = 99;
            assert_int_equal(qv_hnsw_search(h, v, 4, NULL, out, &nout, NULL), QV_OK);
            assert_int_equal(nout, n);
            if (n && metric == QV_HNSW_L2) {
                assert_int_equal(out[0].ref, 0);
                assert_true(out[0].dist == 0.0f);
            }
            if (n == 2 && metric == QV_HNSW_IP) {
                assert_int_equal(out[0].ref, 1);  /* dot 17 beats 14 */
                assert_true(out[0].dist == -17.0f);
            }
            uint64_t allowed[1] = {2};
            qv_hnsw_search_params_t sp = {.allowed = allowed, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
            assert_int_equal(qv_hnsw_search(h, v, 4, &sp, out, &nout, NULL), QV_OK);
            assert_int_equal(nout, n == 2 ? 1 : 0);
            qv_wbuf_t b;
            qv_wbuf_init(&b);
            assert_int_equal(qv_hnsw_encode(h, &b), QV_OK);
            qv_hnsw_t *g = NULL;
            assert_int_equal(qv_hnsw_decode(b.data, b.len, n ? v : NULL, n, 3, 0, NULL, &g), QV_OK);
            assert_int_equal(qv_hnsw_validate(g, NULL, NULL), QV_OK);
            assert_int_equal(qv_hnsw_search(g, v, 4, NULL, out, &nout, NULL), QV_OK);
            assert_int_equal(nout, n);
            qv_hnsw_free(g);
            qv_wbuf_free(&b);
            qv_hnsw_free(h);
        }
    }
}

/* 1000 rows that are 8 distinct vectors repeated: zero distances everywhere; the heuristic must not self-link or
 * duplicate, and searches return k distinct rows at distance 0. */
static void test_duplicates(void **state)
{
    (void)state;
    size_t n = 1000, dim = 16;
    float *distinct = clustered(8, dim, 8, 21);
    float *v = malloc(n * dim * sizeof(float));
    for (size_t i = 0; i < n; i++)
        memcpy(v + i * dim, distinct + (i % 8) * dim, dim * sizeof(float));
    qv_hnsw_t *h = build(v, n, dim, QV_HNSW_L2, 8, 2);
    qv_hnsw_report_t rep;
    assert_int_equal(qv_hnsw_validate(h, &rep, NULL), QV_OK);
    print_message("duplicates: %zu of %zu nodes unreachable on layer 0\n", rep.unreachable, n);
    qv_cand_t out[K];
    size_t nout;
    qv_hnsw_search_params_t sp = {.ef = 64, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    assert_int_equal(qv_hnsw_search(h, distinct, K, &sp, out, &nout, NULL), QV_OK);
    assert_int_equal(nout, K);
    for (size_t i = 0; i < nout; i++) {
        assert_true(out[i].dist == 0.0f);
        assert_int_equal(out[i].ref % 8, 0);
        for (size_t j = 0; j < i; j++)
            assert_true(out[i].ref != out[j].ref);
    }
    qv_hnsw_free(h);
    free(v);
    free(distinct);
}

static void test_cancel_and_params(void **state)
{
    (void)state;
    float *v = clustered(500, 8, 4, 5);
    qv_hnsw_t *h = NULL;
    qv_hnsw_params_t p = {.M = 8};
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 0, NULL, &h), QV_OK);
    qv_hnsw_cancel(h);
    assert_int_equal(qv_hnsw_build(h, NULL), QV_ECANCELLED);
    qv_cand_t out[4];
    size_t nout;
    assert_int_equal(qv_hnsw_search(h, v, 4, NULL, out, &nout, NULL), QV_EINVAL);  /* not built */
    qv_hnsw_free(h);

    qv_err_t err;
    p.M = 1;
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 0, &err, &h), QV_EINVAL);
    p.M = QV_HNSW_MAX_M + 1;
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 0, &err, &h), QV_EINVAL);
    p.M = 0;
    assert_int_equal(qv_hnsw_create(&p, v, 500, 0, 0, &err, &h), QV_EINVAL);
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 4, &err, &h), QV_EINVAL);  /* stride < dim */
    assert_int_equal(qv_hnsw_create(&p, NULL, 500, 8, 0, &err, &h), QV_EINVAL);
    p.metric = (qv_hnsw_metric_t)7;
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 0, &err, &h), QV_EINVAL);

    /* A strided matrix (rows of 8 floats inside rows of 10) gives the same results as a packed one. */
    float *wide = calloc(500 * 10, sizeof(float));
    for (size_t i = 0; i < 500; i++)
        memcpy(wide + i * 10, v + i * 8, 8 * sizeof(float));
    p = (qv_hnsw_params_t){.M = 8, .seed = 3};
    qv_hnsw_t *a, *b;
    assert_int_equal(qv_hnsw_create(&p, v, 500, 8, 0, NULL, &a), QV_OK);
    assert_int_equal(qv_hnsw_create(&p, wide, 500, 8, 10, NULL, &b), QV_OK);
    assert_int_equal(qv_hnsw_build(a, NULL), QV_OK);
    assert_int_equal(qv_hnsw_build(b, NULL), QV_OK);
    assert_int_equal(qv_hnsw_build(a, NULL), QV_EPRECOND);
    for (size_t q = 0; q < 20; q++) {
        qv_cand_t x[5], y[5];
        size_t nx, ny;
        assert_int_equal(qv_hnsw_search(a, v + q * 8, 5, NULL, x, &nx, NULL), QV_OK);
        assert_int_equal(qv_hnsw_search(b, v + q * 8, 5, NULL, y, &ny, NULL), QV_OK);
        assert_int_equal(nx, ny);
        assert_same_results(x, y, nx);
    }
    qv_hnsw_free(a);
    qv_hnsw_free(b);
    free(wide);
    free(v);
}

/* Searches from 4 threads at once (each borrowing a scratch from the index's pool) give the single-thread answers. */
typedef struct {
    const fixture_t *f;
    const qv_cand_t *expect;  /* NQ * K */
    int mismatches;
} conc_t;

static void *conc_main(void *arg)
{
    conc_t *c = arg;
    qv_hnsw_search_params_t sp = {.ef = 32, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    for (int rep = 0; rep < 3; rep++) {
        for (size_t q = 0; q < NQ; q++) {
            qv_cand_t out[K];
            size_t nout;
            if (qv_hnsw_search(c->f->idx, c->f->queries + q * DIM, K, &sp, out, &nout, NULL) != QV_OK || nout != K) {
                c->mismatches++;
                continue;
            }
            for (size_t i = 0; i < K; i++)
                if (out[i].ref != c->expect[q * K + i].ref)
                    c->mismatches++;
        }
    }
    return NULL;
}

static void test_concurrent_search(void **state)
{
    fixture_t *f = *state;
    qv_cand_t *expect = malloc((size_t)NQ * K * sizeof(*expect));
    qv_hnsw_search_params_t sp = {.ef = 32, .allowed_count = QV_HNSW_COUNT_UNKNOWN};
    for (size_t q = 0; q < NQ; q++) {
        size_t nout;
        assert_int_equal(qv_hnsw_search(f->idx, f->queries + q * DIM, K, &sp, expect + q * K, &nout, NULL), QV_OK);
        assert_int_equal(nout, K);
    }
    pthread_t th[4];
    conc_t c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (conc_t){.f = f, .expect = expect};
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].mismatches, 0);
    }
    free(expect);
}

/* The progress counter is readable while another thread builds, never decreases, and ends at n. */
typedef struct {
    qv_hnsw_t *h;
    qv_pool_t *pool;
    int rc;
} build_arg_t;

static void *build_main(void *arg)
{
    build_arg_t *b = arg;
    b->rc = qv_hnsw_build(b->h, b->pool);
    return NULL;
}

static void test_progress(void **state)
{
    (void)state;
    size_t n = 3000;
    float *v = clustered(n, 16, 10, 77);
    qv_hnsw_params_t p = {.M = 8, .ef_construction = 100};
    qv_hnsw_t *h;
    assert_int_equal(qv_hnsw_create(&p, v, n, 16, 0, NULL, &h), QV_OK);
    assert_int_equal(qv_hnsw_progress(h), 0);
    build_arg_t b = {.h = h, .pool = qv_pool_create(1)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, build_main, &b), 0);
    size_t last = 0, polls = 0;
    for (;;) {
        size_t now = qv_hnsw_progress(h);
        assert_true(now >= last && now <= n);
        last = now;
        polls++;
        if (now == n)
            break;
    }
    pthread_join(th, NULL);
    assert_int_equal(b.rc, QV_OK);
    assert_int_equal(qv_hnsw_progress(h), n);
    assert_int_equal(qv_hnsw_validate(h, NULL, NULL), QV_OK);
    qv_pool_destroy(b.pool);
    qv_hnsw_free(h);
    free(v);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest l2[] = {
        cmocka_unit_test(test_recall),   cmocka_unit_test(test_filtered), cmocka_unit_test(test_deleted),
        cmocka_unit_test(test_validate), cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_concurrent_search),
    };
    const struct CMUnitTest ip[] = {
        cmocka_unit_test(test_recall),
        cmocka_unit_test(test_filtered),
        cmocka_unit_test(test_validate),
    };
    const struct CMUnitTest misc[] = {
        cmocka_unit_test(test_corruption), cmocka_unit_test(test_forged),    cmocka_unit_test(test_k_greater_than_n),
        cmocka_unit_test(test_tiny),       cmocka_unit_test(test_duplicates), cmocka_unit_test(test_cancel_and_params),
        cmocka_unit_test(test_progress),
    };
    int fails = 0;
    fails += cmocka_run_group_tests_name("hnsw_l2", l2, setup_l2, teardown);
    fails += cmocka_run_group_tests_name("hnsw_ip", ip, setup_ip, teardown);
    fails += cmocka_run_group_tests_name("hnsw_misc", misc, NULL, NULL);
    return fails;
}
