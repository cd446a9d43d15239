/* The coordinator's rules that need no network (server/coord/coord_int.h): turning the shards' outcomes into one
 * answer (qv_sub_failed, qv_outcome), merging their hits and Scroll pages (merge.c), and placing ids on logical
 * shards (qv_shard_of). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <grpc/status.h>
#include <stdio.h>
#include <string.h>

#include "qvtest.h"
#include "server/coord/coord_int.h"

static qv_call_ctx_t *new_ctx(void)
{
    qv_call_ctx_t *ctx = calloc(1, sizeof *ctx);
    qv_arena_init(&ctx->arena);
    return ctx;
}

static void free_ctx(qv_call_ctx_t *ctx)
{
    qv_arena_free(&ctx->arena);
    free(ctx);
}

static qv_sub_t sub(const char *name, int status, const char *details)
{
    return (qv_sub_t){.name = name, .status = status, .details = details};
}

static void test_request_errors_pass_through(void **state)
{
    (void)state;
    qv_call_ctx_t *ctx = new_ctx();
    qv_err_t err;
    /* a shard refusing the request: its status and message, unchanged, even beside a failed shard */
    qv_sub_t subs[] = {sub("s0", GRPC_STATUS_OK, ""), sub("s1", GRPC_STATUS_UNAVAILABLE, "connect failed"),
                       sub("s2", GRPC_STATUS_INVALID_ARGUMENT, "k = 0 out of range: must be 1..10000")};
    assert_int_equal(qv_outcome(ctx, subs, 3, true, NULL, NULL, "search", &err), QV_EINVAL);
    assert_string_equal(err.msg, "k = 0 out of range: must be 1..10000");
    qv_sub_t nf[] = {sub("s0", GRPC_STATUS_NOT_FOUND, "collection 'x' does not exist")};
    assert_int_equal(qv_outcome(ctx, nf, 1, false, NULL, NULL, "get", &err), QV_ENOTFOUND);
    /* a size limit is the request's fault; "server busy" is the shard's */
    qv_sub_t big = sub("s0", GRPC_STATUS_RESOURCE_EXHAUSTED, "response exceeds the 4 MiB limit");
    qv_sub_t busy = sub("s0", GRPC_STATUS_RESOURCE_EXHAUSTED, "server busy: 64 calls in flight");
    assert_false(qv_sub_failed(&big));
    assert_true(qv_sub_failed(&busy));
    assert_int_equal(qv_outcome(ctx, &big, 1, false, NULL, NULL, "get", &err), QV_ETOOBIG);
    free_ctx(ctx);
}

static void test_shard_failures(void **state)
{
    (void)state;
    qv_call_ctx_t *ctx = new_ctx();
    qv_err_t err;
    qv_sub_t subs[] = {sub("s0", GRPC_STATUS_OK, ""), sub("s1", GRPC_STATUS_UNAVAILABLE, "connect failed"),
                       sub("s2", GRPC_STATUS_UNAUTHENTICATED, "bad key")};
    assert_true(qv_sub_failed(&subs[1]) && qv_sub_failed(&subs[2]) && !qv_sub_failed(&subs[0]));
    assert_int_equal(qv_outcome(ctx, subs, 3, false, NULL, NULL, "search", &err), QV_EUNAVAIL);
    assert_string_equal(err.msg, "search: shard(s) s1, s2 unavailable (s1: connect failed)");
    /* allow_partial: answered, naming the missing shards in order */
    const char **missing = NULL;
    size_t nmissing = 0;
    assert_int_equal(qv_outcome(ctx, subs, 3, true, &missing, &nmissing, "search", &err), QV_OK);
    assert_int_equal(nmissing, 2);
    assert_string_equal(missing[0], "s1");
    assert_string_equal(missing[1], "s2");
    /* every shard failed: nothing to answer even with allow_partial */
    qv_sub_t all[] = {sub("s0", GRPC_STATUS_UNAVAILABLE, "x"), sub("s1", GRPC_STATUS_UNAVAILABLE, "y")};
    assert_int_equal(qv_outcome(ctx, all, 2, true, &missing, &nmissing, "count", &err), QV_EUNAVAIL);
    /* a late shard makes the answer DEADLINE_EXCEEDED */
    qv_sub_t late[] = {sub("s0", GRPC_STATUS_OK, ""), sub("s1", GRPC_STATUS_DEADLINE_EXCEEDED, "late")};
    assert_int_equal(qv_outcome(ctx, late, 2, false, NULL, NULL, "search", &err), QV_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "deadline exceeded waiting for shard(s) s1"));
    /* the client went away: CANCELLED, whatever the shards said */
    atomic_store(&ctx->cancelled, true);
    assert_int_equal(qv_outcome(ctx, late, 2, true, &missing, &nmissing, "search", &err), QV_ECANCELLED);
    free_ctx(ctx);
}

static void test_outcome_message_not_cut(void **state)
{
    (void)state;
    qv_call_ctx_t *ctx = new_ctx();
    qv_err_t err;
    char detail[300], names[40][24];
    memset(detail, 'd', sizeof detail - 1);
    detail[sizeof detail - 1] = '\0';
    qv_sub_t subs[40];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "shard-%02d", i);
        subs[i] = sub(names[i], GRPC_STATUS_UNAVAILABLE, detail);
    }
    assert_int_equal(qv_outcome(ctx, subs, 40, false, NULL, NULL, "upsert of 3 points", &err), QV_EUNAVAIL);
    /* as many names as fit, each whole, and the first shard's whole message */
    assert_non_null(strstr(err.msg, detail));
    assert_non_null(strstr(err.msg, "shard(s) shard-00, shard-01"));
    /* every name listed is one of the shards, whole: "shard(s) shard-00, ..., shard-NN unavailable (" */
    const char *list = strstr(err.msg, "shard(s) ") + strlen("shard(s) ");
    const char *end = strstr(list, " unavailable (");
    assert_non_null(end);
    int listed = 0;
    for (const char *p = list; p < end; listed++) {
        const char *comma = strstr(p, ", ");
        size_t len = (size_t)((comma && comma < end ? comma : end) - p);
        assert_true(listed < 40);
        assert_int_equal(len, strlen(names[listed]));
        assert_memory_equal(p, names[listed], len);
        p += len + (comma && comma < end ? 2 : 0);
    }
    assert_true(listed >= 2 && listed < 40); /* cut, but at a name's end */
    free_ctx(ctx);
}

/* parts of hits with the given scores, ids "p<part>-<rank>" */
static Quiver__V1__SearchResponse *hits_part(qv_arena_t *ar, int part, const float *scores, size_t n)
{
    Quiver__V1__SearchResponse *r = qv_arena_alloc(ar, sizeof *r);
    quiver__v1__search_response__init(r);
    r->hits = qv_arena_array(ar, n ? n : 1, sizeof *r->hits);
    for (size_t i = 0; i < n; i++) {
        Quiver__V1__Hit *h = qv_arena_alloc(ar, sizeof *h);
        quiver__v1__hit__init(h);
        h->id = qv_arena_alloc(ar, 48);
        snprintf(h->id, 48, "p%d-%zu", part, i);
        h->score = scores[i];
        r->hits[r->n_hits++] = h;
    }
    return r;
}

static void test_merge_hits(void **state)
{
    (void)state;
    qv_arena_t ar;
    qv_arena_init(&ar);
    /* descending (IP/COSINE), a tie between parts 0 and 2 keeps part 0 first, a missing part */
    const float a[] = {0.9f, 0.5f, 0.1f}, c[] = {0.9f, 0.7f};
    Quiver__V1__SearchResponse *parts[] = {hits_part(&ar, 0, a, 3), NULL, hits_part(&ar, 2, c, 2)};
    Quiver__V1__SearchResponse out;
    quiver__v1__search_response__init(&out);
    assert_int_equal(qv_merge_hits(&ar, parts, 3, 4, false, &out), QV_OK);
    assert_int_equal(out.n_hits, 4);
    const char *want[] = {"p0-0", "p2-0", "p2-1", "p0-1"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(out.hits[i]->id, want[i]);
    /* k larger than everything: all five; ascending (L2) order */
    const float l0[] = {0.1f, 2.0f}, l1[] = {0.5f, 1.0f, 3.0f};
    Quiver__V1__SearchResponse *lp[] = {hits_part(&ar, 0, l0, 2), hits_part(&ar, 1, l1, 3)};
    quiver__v1__search_response__init(&out);
    assert_int_equal(qv_merge_hits(&ar, lp, 2, 100, true, &out), QV_OK);
    assert_int_equal(out.n_hits, 5);
    for (size_t i = 1; i < out.n_hits; i++)
        assert_true(out.hits[i - 1]->score <= out.hits[i]->score);
    /* nothing at all */
    Quiver__V1__SearchResponse *none[] = {NULL, NULL};
    quiver__v1__search_response__init(&out);
    assert_int_equal(qv_merge_hits(&ar, none, 2, 10, true, &out), QV_OK);
    assert_int_equal(out.n_hits, 0);
    qv_arena_free(&ar);
}

/* A random merge against a sort of everything: the merged first k are the global top k. */
static void test_merge_hits_random(void **state)
{
    (void)state;
    uint64_t seed = 42;
    for (int round = 0; round < 200; round++) {
        qv_arena_t ar;
        qv_arena_init(&ar);
        size_t np = 1 + rng_below(&seed, 6), total = 0;
        uint32_t k = 1 + rng_below(&seed, 30);
        Quiver__V1__SearchResponse *parts[6];
        float all[6 * 40];
        for (size_t p = 0; p < np; p++) {
            size_t n = rng_below(&seed, k + 1);
            float s[40];
            for (size_t i = 0; i < n; i++)
                s[i] = (float)rng_below(&seed, 50); /* ties */
            for (size_t i = 1; i < n; i++) /* each part best first (descending) */
                for (size_t j = i; j > 0 && s[j] > s[j - 1]; j--) {
                    float t = s[j];
                    s[j] = s[j - 1];
                    s[j - 1] = t;
                }
            parts[p] = hits_part(&ar, (int)p, s, n);
            memcpy(all + total, s, n * sizeof *s);
            total += n;
        }
        for (size_t i = 1; i < total; i++)
            for (size_t j = i; j > 0 && all[j] > all[j - 1]; j--) {
                float t = all[j];
                all[j] = all[j - 1];
                all[j - 1] = t;
            }
        Quiver__V1__SearchResponse out;
        quiver__v1__search_response__init(&out);
        assert_int_equal(qv_merge_hits(&ar, parts, np, k, false, &out), QV_OK);
        assert_int_equal(out.n_hits, total < k ? total : k);
        for (size_t i = 0; i < out.n_hits; i++)
            assert_float_equal(out.hits[i]->score, all[i], 0);
        qv_arena_free(&ar);
    }
}

static Quiver__V1__ScrollResponse *page(qv_arena_t *ar, const char *const *ids, size_t n, bool more)
{
    Quiver__V1__ScrollResponse *r = qv_arena_alloc(ar, sizeof *r);
    quiver__v1__scroll_response__init(r);
    r->points = qv_arena_array(ar, n ? n : 1, sizeof *r->points);
    for (size_t i = 0; i < n; i++) {
        Quiver__V1__Point *p = qv_arena_alloc(ar, sizeof *p);
        quiver__v1__point__init(p);
        p->id = (char *)ids[i];
        r->points[r->n_points++] = p;
    }
    r->next_cursor = more && n ? (char *)ids[n - 1] : (char *)"";
    return r;
}

static void test_merge_scroll(void **state)
{
    (void)state;
    qv_arena_t ar;
    qv_arena_init(&ar);
    const char *a[] = {"a", "d", "e"}, *b[] = {"b", "c"}, *c[] = {"f"};
    Quiver__V1__ScrollResponse out;
    /* more came back than fit: the page ends at the limit and the cursor is its last id */
    Quiver__V1__ScrollResponse *p1[] = {page(&ar, a, 3, false), page(&ar, b, 2, false), page(&ar, c, 1, false)};
    quiver__v1__scroll_response__init(&out);
    assert_int_equal(qv_merge_scroll(&ar, p1, 3, 4, &out), QV_OK);
    assert_int_equal(out.n_points, 4);
    assert_string_equal(out.points[3]->id, "d");
    assert_string_equal(out.next_cursor, "d");
    /* everything fits and no shard has more: the last page */
    quiver__v1__scroll_response__init(&out);
    assert_int_equal(qv_merge_scroll(&ar, p1, 3, 6, &out), QV_OK);
    assert_int_equal(out.n_points, 6);
    assert_string_equal(out.next_cursor, "");
    /* a shard with more: not the last page, even when the rest fit */
    Quiver__V1__ScrollResponse *p2[] = {page(&ar, a, 3, true), page(&ar, b, 2, false)};
    quiver__v1__scroll_response__init(&out);
    assert_int_equal(qv_merge_scroll(&ar, p2, 2, 10, &out), QV_OK);
    assert_int_equal(out.n_points, 5);
    assert_string_equal(out.next_cursor, "e");
    /* nothing anywhere */
    Quiver__V1__ScrollResponse *p3[] = {page(&ar, NULL, 0, false)};
    quiver__v1__scroll_response__init(&out);
    assert_int_equal(qv_merge_scroll(&ar, p3, 1, 10, &out), QV_OK);
    assert_int_equal(out.n_points, 0);
    assert_string_equal(out.next_cursor, "");
    qv_arena_free(&ar);
}

/* Placement is XXH3-64 of the id modulo the shard count: stable across versions (these values are on disk in every
 * cluster: changing them moves every point) and spread evenly. */
static void test_placement(void **state)
{
    (void)state;
    assert_int_equal(qv_shard_of("anything", 1), 0);
    assert_int_equal(qv_shard_of("anything", 0), 0);
    assert_int_equal(qv_shard_of("p0", 1024), (uint32_t)(qv_checksum("p0", 2) % 1024));
    uint32_t count[8] = {0};
    char id[32];
    for (int i = 0; i < 80000; i++) {
        snprintf(id, sizeof id, "doc-%d", i);
        uint32_t s = qv_shard_of(id, 8);
        assert_true(s < 8);
        count[s]++;
    }
    for (int s = 0; s < 8; s++) /* 10000 expected; 5 sigma is about 470 */
        assert_true(count[s] > 9500 && count[s] < 10500);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_errors_pass_through),
        cmocka_unit_test(test_shard_failures),
        cmocka_unit_test(test_outcome_message_not_cut),
        cmocka_unit_test(test_merge_hits),
        cmocka_unit_test(test_merge_hits_random),
        cmocka_unit_test(test_merge_scroll),
        cmocka_unit_test(test_placement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
