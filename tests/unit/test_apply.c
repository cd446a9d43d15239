/* Log-driven apply (storage/commit.c qv_store_apply) against an in-memory reference, in real RocksDB directories.
 *
 * A log of 600 entries (upserts of 1..5 points and deletes of 1..3 ids over 150 ids, encoded by
 * qv_store_encode_*) is applied to a store with small seal thresholds (so seals delete WAL records meanwhile), and
 * the store must equal the reference after:
 * - applying the whole log once (every entry applied);
 * - applying it again, and again from a random index (every entry skipped, nothing written);
 * - a close and reopen (the applied index came back from the same batches as the entries: qv_store_applied is the
 *   last index, and the state is the reference's);
 * - continuing the log after the reopen, with a gap (indexes need not be contiguous) and an entry below the gap
 *   (skipped).
 * Logs are independent: another group's entry 1 applies although the first group is at 600. Bad input changes
 * nothing: index 0, a record with a flipped byte, a record of another collection's dimension. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/distance.h"
#include "qvtest.h"
#include "qvtmp.h"
#include "storage/store.h"

#define DIM 4
#define NIDS 150
#define NLOG 600
#define GROUP 7

typedef struct {
    qv_wbuf_t rec;
} entry_t;

static struct {
    bool live;
    float v[DIM];
} model[NIDS];

static qv_store_t *open_store(const char *dir)
{
    qv_store_opts_t o = {.path = dir, .seal_rows = 100, .index_threads = 1, .index_min_rows = 100000};
    qv_store_t *st;
    qv_err_t err;
    if (qv_store_open(&o, &st, &err))
        fail_msg("open: %s", err.msg);
    return st;
}

static qv_coll_t *coll_of(qv_store_t *st, const char *name)
{
    qv_coll_t *c;
    qv_err_t err;
    assert_int_equal(qv_store_get(st, name, strlen(name), &c, &err), QV_OK);
    return c;
}

/* Builds the log (encoded against c's schema) and the reference state after each entry is applied in order. */
static void make_log(qv_coll_t *c, entry_t *log, uint64_t *seed)
{
    for (int e = 0; e < NLOG; e++) {
        qv_wbuf_init(&log[e].rec);
        qv_err_t err;
        if (rng_chance(seed, 70)) {
            uint32_t n = 1 + rng_below(seed, 5);
            qv_point_t pts[5];
            char ids[5][16];
            float vecs[5][DIM];
            for (uint32_t i = 0; i < n; i++) {
                uint32_t id = rng_below(seed, NIDS);
                int len = snprintf(ids[i], sizeof ids[i], "id%u", id);
                for (int d = 0; d < DIM; d++)
                    vecs[i][d] = (float)rng_unit(seed);
                pts[i] = (qv_point_t){.id = {ids[i], (uint32_t)len}, .vector = vecs[i], .nvector = DIM};
            }
            /* within one upsert a repeated id is refused: keep the ids distinct */
            bool dup = false;
            for (uint32_t i = 0; i < n; i++)
                for (uint32_t j = 0; j < i; j++)
                    dup = dup || strcmp(ids[i], ids[j]) == 0;
            if (dup)
                n = 1;
            assert_int_equal(qv_store_encode_upsert(c, pts, n, &log[e].rec, &err), QV_OK);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t id = (uint32_t)atoi(ids[i] + 2);
                model[id].live = true;
                memcpy(model[id].v, vecs[i], sizeof model[id].v);
            }
        } else {
            uint32_t n = 1 + rng_below(seed, 3);
            qv_str_t sids[3];
            char ids[3][16];
            for (uint32_t i = 0; i < n; i++) {
                uint32_t id = rng_below(seed, NIDS);
                int len = snprintf(ids[i], sizeof ids[i], "id%u", id);
                sids[i] = (qv_str_t){ids[i], (uint32_t)len};
                model[id].live = false;
            }
            assert_int_equal(qv_store_encode_delete(c, sids, n, &log[e].rec, &err), QV_OK);
        }
    }
}

static void check_model(qv_store_t *st)
{
    qv_coll_t *c = coll_of(st, "a");
    qv_coll_rdlock(c);
    uint64_t live = 0;
    for (uint32_t id = 0; id < NIDS; id++) {
        char b[16];
        int len = snprintf(b, sizeof b, "id%u", id);
        qv_idslot_t *s = qv_idmap_get(&c->ids, (qv_str_t){b, (uint32_t)len});
        if (!model[id].live) {
            if (s)
                fail_msg("id%u is deleted in the reference but live in the store", id);
            continue;
        }
        live++;
        if (!s)
            fail_msg("id%u is live in the reference but missing from the store", id);
        assert_memory_equal(qv_seg_vector(s->seg, s->row), model[id].v, sizeof model[id].v);
    }
    assert_int_equal(c->live, live);
    qv_coll_unlock(c);
    qv_coll_release(c);
}

static void apply_range(qv_store_t *st, entry_t *log, int from, int to, bool want_applied)
{
    qv_coll_t *c = coll_of(st, "a");
    for (int e = from; e <= to; e++) {
        bool applied;
        uint32_t count;
        qv_err_t err;
        int rc = qv_store_apply(st, c, GROUP, (uint64_t)e, log[e - 1].rec.data, log[e - 1].rec.len, &applied,
                                &count, &err);
        if (rc)
            fail_msg("entry %d: %s", e, err.msg);
        assert_int_equal(applied, want_applied);
    }
    qv_coll_release(c);
}

static void test_apply_exactly_once(void **state)
{
    (void)state;
    char *dir = make_tmpdir("apply");
    uint64_t seed = 42;
    qv_err_t err;
    qv_store_t *st = open_store(dir);
    assert_int_equal(qv_store_create(st, test_schema_all("a", 0, DIM, QV_METRIC_L2), &err), QV_OK);
    assert_int_equal(qv_store_create(st, test_schema_all("other", 0, DIM + 1, QV_METRIC_L2), &err), QV_OK);
    static entry_t log[NLOG];
    qv_coll_t *c = coll_of(st, "a");
    make_log(c, log, &seed);
    qv_coll_release(c);

    apply_range(st, log, 1, NLOG, true);
    assert_int_equal(qv_store_applied(st, GROUP), NLOG);
    check_model(st);
    apply_range(st, log, 1, NLOG, false); /* the same log again */
    int from = 1 + (int)rng_below(&seed, NLOG);
    apply_range(st, log, from, NLOG, false); /* from any index */
    check_model(st);

    /* bad input changes nothing */
    c = coll_of(st, "a");
    bool applied;
    uint32_t count;
    assert_int_equal(qv_store_apply(st, c, GROUP, 0, log[0].rec.data, log[0].rec.len, &applied, &count, &err),
                     QV_EINVAL);
    qv_wbuf_t bad;
    qv_wbuf_init(&bad);
    qv_wbuf_put(&bad, log[3].rec.data, log[3].rec.len);
    bad.data[bad.len / 2] ^= 0x40;
    assert_int_not_equal(qv_store_apply(st, c, GROUP, NLOG + 1, bad.data, bad.len, &applied, &count, &err), QV_OK);
    assert_false(applied);
    qv_coll_t *other = coll_of(st, "other"); /* a record of dim 4 for a collection of dim 5 */
    int rc = qv_store_apply(st, other, 99, 1, log[0].rec.data, log[0].rec.len, &applied, &count, &err);
    assert_int_not_equal(rc, QV_OK);
    assert_int_equal(qv_store_applied(st, 99), 0);
    qv_coll_release(other);
    qv_wbuf_free(&bad);
    qv_coll_release(c);
    assert_int_equal(qv_store_applied(st, GROUP), NLOG);
    check_model(st);
    qv_store_close(st);

    /* the index came back with the entries */
    st = open_store(dir);
    assert_int_equal(qv_store_applied(st, GROUP), NLOG);
    check_model(st);
    apply_range(st, log, 1, NLOG, false);
    /* the log goes on: a second log's entry 1 applies; a gap is allowed; below it is skipped */
    static entry_t more[3];
    c = coll_of(st, "a");
    for (int e = 0; e < 3; e++) {
        qv_wbuf_init(&more[e].rec);
        char b[16];
        int len = snprintf(b, sizeof b, "x%d", e);
        float v[DIM] = {9, 9, 9, (float)e};
        qv_point_t pt = {.id = {b, (uint32_t)len}, .vector = v, .nvector = DIM};
        assert_int_equal(qv_store_encode_upsert(c, &pt, 1, &more[e].rec, &err), QV_OK);
    }
    assert_int_equal(qv_store_apply(st, c, GROUP + 1, 1, more[0].rec.data, more[0].rec.len, &applied, &count, &err),
                     QV_OK);
    assert_true(applied);
    assert_int_equal(qv_store_apply(st, c, GROUP, NLOG + 5, more[1].rec.data, more[1].rec.len, &applied, &count,
                                    &err), QV_OK);
    assert_true(applied);
    assert_int_equal(qv_store_apply(st, c, GROUP, NLOG + 3, more[2].rec.data, more[2].rec.len, &applied, &count,
                                    &err), QV_OK);
    assert_false(applied); /* below the applied index: skipped */
    qv_coll_rdlock(c);
    assert_non_null(qv_idmap_get(&c->ids, (qv_str_t){"x0", 2}));
    assert_non_null(qv_idmap_get(&c->ids, (qv_str_t){"x1", 2}));
    assert_null(qv_idmap_get(&c->ids, (qv_str_t){"x2", 2}));
    qv_coll_unlock(c);
    qv_coll_release(c);
    assert_int_equal(qv_store_applied(st, GROUP), NLOG + 5);
    assert_int_equal(qv_store_applied(st, GROUP + 1), 1);
    qv_store_close(st);
    st = open_store(dir);
    assert_int_equal(qv_store_applied(st, GROUP), NLOG + 5);
    assert_int_equal(qv_store_applied(st, GROUP + 1), 1);
    qv_store_close(st);

    for (int e = 0; e < NLOG; e++)
        qv_wbuf_free(&log[e].rec);
    for (int e = 0; e < 3; e++)
        qv_wbuf_free(&more[e].rec);
    remove_tmpdir(dir);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    qv_dist_init(QV_SIMD_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
