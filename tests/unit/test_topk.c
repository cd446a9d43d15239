/* Top-k heap against a sort-based reference: random data with many ties, k > n, k == 1, k == n, merges of partial
 * heaps in any order, insertion-order independence, bound(), reuse after drain/reset, NaN handling, init errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "common/err.h"
#include "index/topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const qv_cand_t *a = pa, *b = pb;
    if (a->dist < b->dist)
        return -1;
    if (a->dist > b->dist)
        return 1;
    return (a->ref > b->ref) - (a->ref < b->ref);
}

/* Fills n candidates. With ties, dists come from a handful of values and refs repeat too (so identical pairs
 * occur); without, dists are spread out. Refs are drawn so ordering by ref matters. */
static void fill(qv_cand_t *c, size_t n, int ties)
{
    for (size_t i = 0; i < n; i++) {
        if (ties) {
            c[i].dist = (float)(rng_next() % 5) * 0.5f - 1.0f;  /* 5 distinct values, some negative */
            c[i].ref = rng_next() % (n + 1);
        } else {
            c[i].dist = (float)((double)(rng_next() >> 11) / (double)(1ull << 53) * 100.0);
            c[i].ref = rng_next();
        }
    }
}

/* Sorted copy of the first min(k, n) of c: what a correct top-k returns. */
static size_t reference(const qv_cand_t *c, size_t n, size_t k, qv_cand_t *out)
{
    qv_cand_t *all = malloc((n ? n : 1) * sizeof(*all));
    assert_non_null(all);
    memcpy(all, c, n * sizeof(*all));
    qsort(all, n, sizeof(*all), cand_cmp);
    size_t m = n < k ? n : k;
    memcpy(out, all, m * sizeof(*out));
    free(all);
    return m;
}

static void assert_same(const qv_cand_t *got, size_t ngot, const qv_cand_t *want, size_t nwant)
{
    assert_int_equal(ngot, nwant);
    for (size_t i = 0; i < nwant; i++) {
        if (got[i].dist != want[i].dist || got[i].ref != want[i].ref)
            fail_msg("item %zu: got (%g, %llu) want (%g, %llu)", i, got[i].dist, (unsigned long long)got[i].ref,
                     want[i].dist, (unsigned long long)want[i].ref);
    }
}

static void check_one(size_t n, size_t k, int ties)
{
    qv_cand_t *c = malloc((n ? n : 1) * sizeof(*c));
    qv_cand_t *want = malloc(k * sizeof(*want)), *got = malloc(k * sizeof(*got));
    assert_non_null(c);
    assert_non_null(want);
    assert_non_null(got);
    fill(c, n, ties);
    size_t m = reference(c, n, k, want);

    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, k), QV_OK);
    for (size_t i = 0; i < n; i++) {
        qv_topk_push(&t, c[i].dist, c[i].ref);
        size_t held = i + 1 < k ? i + 1 : k;
        assert_int_equal(t.n, held);
        if (held < k)
            assert_true(isinf(qv_topk_bound(&t)) && qv_topk_bound(&t) > 0);
    }
    if (m == k && k > 0)
        assert_true(qv_topk_bound(&t) == want[k - 1].dist);  /* the worst kept item */
    size_t ngot = qv_topk_drain_sorted(&t, got);
    assert_same(got, ngot, want, m);
    assert_int_equal(t.n, 0);
    assert_true(isinf(qv_topk_bound(&t)));

    /* Same data pushed in reverse order gives the identical answer. */
    for (size_t i = n; i-- > 0;)
        qv_topk_push(&t, c[i].dist, c[i].ref);
    ngot = qv_topk_drain_sorted(&t, got);
    assert_same(got, ngot, want, m);

    qv_topk_free(&t);
    free(c);
    free(want);
    free(got);
}

static void test_random_vs_sort(void **state)
{
    (void)state;
    const size_t ns[] = {0, 1, 2, 3, 7, 10, 64, 100, 1000, 5000};
    const size_t ks[] = {1, 2, 3, 5, 10, 64, 100, 1000, 7000};
    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            check_one(ns[ni], ks[ki], 0);
            check_one(ns[ni], ks[ki], 1);
        }
        if (ns[ni] > 0) {
            check_one(ns[ni], ns[ni], 1);  /* k == n */
            check_one(ns[ni], ns[ni], 0);
        }
    }
}

/* Every dist equal: the answer is purely the k smallest refs. */
static void test_all_ties(void **state)
{
    (void)state;
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, 10), QV_OK);
    for (uint64_t r = 100; r-- > 0;)
        qv_topk_push(&t, 0.25f, (r * 37) % 100);  /* a permutation of 0..99 */
    qv_cand_t out[10];
    assert_int_equal(qv_topk_drain_sorted(&t, out), 10);
    for (uint64_t i = 0; i < 10; i++) {
        assert_true(out[i].dist == 0.25f);
        assert_int_equal(out[i].ref, i);
    }
    qv_topk_free(&t);
}

/* Partial heaps (as per-thread scans would produce) merged in several orders equal one heap over everything. */
static void test_merge(void **state)
{
    (void)state;
    const size_t n = 3000, parts = 5;
    const size_t ks[] = {1, 7, 50, 4000};
    for (int ties = 0; ties <= 1; ties++) {
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            size_t k = ks[ki];
            qv_cand_t *c = malloc(n * sizeof(*c));
            qv_cand_t *want = malloc(k * sizeof(*want)), *got = malloc(k * sizeof(*got));
            assert_non_null(c);
            assert_non_null(want);
            assert_non_null(got);
            fill(c, n, ties);
            size_t m = reference(c, n, k, want);

            qv_topk_t part[5];
            for (size_t p = 0; p < parts; p++) {
                assert_int_equal(qv_topk_init(&part[p], k), QV_OK);
                /* uneven shards: item i goes to shard (i * i) % parts */
                for (size_t i = 0; i < n; i++) {
                    if ((i * i) % parts == p)
                        qv_topk_push(&part[p], c[i].dist, c[i].ref);
                }
            }
            for (int order = 0; order < 2; order++) {
                qv_topk_t dst;
                assert_int_equal(qv_topk_init(&dst, k), QV_OK);
                for (size_t j = 0; j < parts; j++)
                    qv_topk_merge(&dst, &part[order ? parts - 1 - j : j]);
                size_t ngot = qv_topk_drain_sorted(&dst, got);
                assert_same(got, ngot, want, m);
                qv_topk_free(&dst);
            }
            /* Merging into a non-empty heap (one of the partials itself) works too, and sources are untouched. */
            size_t before = part[1].n;
            for (size_t p = 0; p < parts; p++) {
                if (p != 0)
                    qv_topk_merge(&part[0], &part[p]);
            }
            assert_int_equal(part[1].n, before);
            qv_topk_merge(&part[0], &part[0]);  /* self-merge is a no-op */
            size_t ngot = qv_topk_drain_sorted(&part[0], got);
            assert_same(got, ngot, want, m);

            for (size_t p = 0; p < parts; p++)
                qv_topk_free(&part[p]);
            free(c);
            free(want);
            free(got);
        }
    }
}

/* Merging an empty heap changes nothing; merging into an empty heap copies. */
static void test_merge_empty(void **state)
{
    (void)state;
    qv_topk_t a, b;
    assert_int_equal(qv_topk_init(&a, 3), QV_OK);
    assert_int_equal(qv_topk_init(&b, 3), QV_OK);
    qv_topk_push(&a, 2.0f, 2);
    qv_topk_push(&a, 1.0f, 1);
    qv_topk_merge(&a, &b);
    assert_int_equal(a.n, 2);
    qv_topk_merge(&b, &a);
    qv_cand_t out[3];
    assert_int_equal(qv_topk_drain_sorted(&b, out), 2);
    assert_true(out[0].dist == 1.0f && out[0].ref == 1);
    assert_true(out[1].dist == 2.0f && out[1].ref == 2);
    qv_topk_free(&a);
    qv_topk_free(&b);
}

static void test_bound_and_reset(void **state)
{
    (void)state;
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, 3), QV_OK);
    assert_true(qv_topk_bound(&t) == INFINITY);
    qv_topk_push(&t, 5.0f, 1);
    qv_topk_push(&t, 3.0f, 2);
    assert_true(qv_topk_bound(&t) == INFINITY);
    qv_topk_push(&t, 4.0f, 3);
    assert_true(qv_topk_bound(&t) == 5.0f);
    qv_topk_push(&t, 6.0f, 4);  /* rejected */
    assert_true(qv_topk_bound(&t) == 5.0f);
    qv_topk_push(&t, 5.0f, 0);  /* same dist as the worst, smaller ref: replaces it */
    qv_topk_push(&t, 5.0f, 9);  /* same dist, larger ref: rejected */
    assert_true(qv_topk_bound(&t) == 5.0f);
    qv_topk_push(&t, 1.0f, 5);
    assert_true(qv_topk_bound(&t) == 4.0f);
    qv_cand_t out[3];
    assert_int_equal(qv_topk_drain_sorted(&t, out), 3);
    assert_true(out[0].dist == 1.0f && out[0].ref == 5);
    assert_true(out[1].dist == 3.0f && out[1].ref == 2);
    assert_true(out[2].dist == 4.0f && out[2].ref == 3);

    qv_topk_push(&t, 7.0f, 7);
    qv_topk_reset(&t);
    assert_int_equal(t.n, 0);
    assert_true(qv_topk_bound(&t) == INFINITY);
    assert_int_equal(qv_topk_drain_sorted(&t, out), 0);
    qv_topk_free(&t);
    assert_null(t.items);
    assert_int_equal(t.k, 0);
    qv_topk_free(&t);  /* double free of the struct is harmless */
}

/* NaN dists rank after every number, so they never displace a real result and never break the heap. */
static void test_nan(void **state)
{
    (void)state;
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, 3), QV_OK);
    qv_topk_push(&t, NAN, 1);
    assert_true(qv_topk_bound(&t) == INFINITY);
    qv_topk_push(&t, 2.0f, 2);
    qv_topk_push(&t, NAN, 0);
    assert_true(qv_topk_bound(&t) == INFINITY);  /* worst held is NaN: any number is still admitted */
    qv_topk_push(&t, 1.0f, 3);
    qv_topk_push(&t, 3.0f, 4);
    qv_topk_push(&t, NAN, 5);
    qv_cand_t out[3];
    assert_int_equal(qv_topk_drain_sorted(&t, out), 3);
    assert_true(out[0].dist == 1.0f && out[0].ref == 3);
    assert_true(out[1].dist == 2.0f && out[1].ref == 2);
    assert_true(out[2].dist == 3.0f && out[2].ref == 4);
    qv_topk_free(&t);
}

/* Drained output may alias the heap storage. */
static void test_drain_in_place(void **state)
{
    (void)state;
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, 4), QV_OK);
    float d[] = {3, 1, 4, 1, 5, 9, 2, 6};
    for (uint64_t i = 0; i < 8; i++)
        qv_topk_push(&t, d[i], i);
    assert_int_equal(qv_topk_drain_sorted(&t, t.items), 4);
    assert_true(t.items[0].dist == 1 && t.items[0].ref == 1);
    assert_true(t.items[1].dist == 1 && t.items[1].ref == 3);
    assert_true(t.items[2].dist == 2 && t.items[2].ref == 6);
    assert_true(t.items[3].dist == 3 && t.items[3].ref == 0);
    qv_topk_free(&t);
}

static void test_init_errors(void **state)
{
    (void)state;
    qv_topk_t t;
    assert_int_equal(qv_topk_init(&t, 0), QV_EINVAL);
    assert_null(t.items);
    assert_int_equal(qv_topk_init(NULL, 5), QV_EINVAL);
    assert_int_equal(qv_topk_init(&t, SIZE_MAX / 4), QV_ENOMEM);  /* size overflow */
    assert_int_equal(qv_topk_init(&t, 1), QV_OK);
    assert_int_equal(t.k, 1);
    assert_int_equal(t.n, 0);
    qv_topk_free(&t);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_sort),
        cmocka_unit_test(test_all_ties),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_empty),
        cmocka_unit_test(test_bound_and_reset),
        cmocka_unit_test(test_nan),
        cmocka_unit_test(test_drain_in_place),
        cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
