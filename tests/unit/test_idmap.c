/* The id map (storage/idmap.c): open addressing with linear probing and backward-shift deletion.
 *
 * Random insert / replace / delete sequences are checked against a reference (a plain array indexed by id number:
 * live flag and expected location). The id universe mixes ordinary ids with two groups of ids whose hashes share
 * their low 14 bits (found by trying ids against qv_hash, whose secret is this process's): one group has home slot 0
 * and one home slot cap-1 for every table size up to 16384, so their probe runs pile up and wrap around the end of
 * the table, which is where backward-shift deletion is easiest to get wrong. The table grows from 1024 to 16384 slots during the run. Every operation's return value and old
 * location are checked, the touched id is looked up after every operation, and every id of the universe (plus ids
 * never inserted) is looked up periodically, together with the table invariants: n equals the occupied slots, every
 * occupied slot is found by a lookup of its own id (nothing is stranded behind a hole), the load factor stays at
 * most 0.7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "qvtest.h"
#include "storage/idmap.h"

#define NGROUP 120        /* ids per colliding group */
#define NPLAIN 6000       /* ordinary ids */
#define NIDS (2 * NGROUP + NPLAIN)
#define LOW_MASK 0x3fffu  /* 14 bits: cap up to 16384 keeps each group on one home slot */

typedef struct {
    char id[24];
    uint32_t len;
    bool live;
    qv_segment_t *seg; /* expected location while live */
    uint32_t row;
} ref_t;

static qv_schema_t *schema;
static qv_segment_t *segs[2]; /* rows are appended to alternate segments, so locations differ in seg and row */
static uint64_t rng = 77;

/* Appends a row holding id to one of the segments and returns its location. */
static void new_row(const ref_t *r, qv_segment_t **seg, uint32_t *row)
{
    *seg = segs[rng_below(&rng, 2)];
    float v = 1;
    qv_point_t pt = {.id = {r->id, r->len}, .vector = &v, .nvector = 1};
    assert_int_equal(qv_seg_append(*seg, &pt, row), QV_OK);
}

static qv_str_t sid(const ref_t *r) { return (qv_str_t){r->id, r->len}; }

/* Finds ids whose hash has the given low bits. */
static void make_group(ref_t *out, uint32_t n, uint32_t low, uint32_t *counter)
{
    for (uint32_t k = 0; k < n;) {
        char buf[24];
        int l = snprintf(buf, sizeof buf, "g%u", (*counter)++);
        if ((qv_hash(buf, (size_t)l) & LOW_MASK) == low) {
            memcpy(out[k].id, buf, (size_t)l);
            out[k].len = (uint32_t)l;
            k++;
        }
    }
}

static void check_one(const qv_idmap_t *m, const ref_t *r)
{
    qv_idslot_t *s = qv_idmap_get(m, sid(r));
    if (!r->live) {
        if (s)
            fail_msg("id '%.*s' is deleted but found", (int)r->len, r->id);
        return;
    }
    if (!s)
        fail_msg("id '%.*s' is live but not found", (int)r->len, r->id);
    assert_ptr_equal(s->seg, r->seg);
    assert_int_equal(s->row, r->row);
    assert_true(s->hash == qv_hash(r->id, r->len));
}

static void check_all(const qv_idmap_t *m, const ref_t *refs)
{
    size_t live = 0;
    for (size_t i = 0; i < NIDS; i++) {
        check_one(m, &refs[i]);
        live += refs[i].live;
    }
    assert_int_equal(m->n, live);
    /* table invariants */
    assert_true((m->cap & (m->cap - 1)) == 0);
    assert_true(m->n * 10 <= m->cap * 7);
    size_t occupied = 0;
    for (size_t i = 0; i < m->cap; i++) {
        const qv_idslot_t *s = &m->slots[i];
        if (!s->seg)
            continue;
        occupied++;
        qv_str_t id = qv_strcol_get(&s->seg->ids, s->row);
        assert_ptr_equal(qv_idmap_get(m, id), s); /* reachable from its home slot */
    }
    assert_int_equal(occupied, m->n);
    /* ids never inserted (some sharing a group's low hash bits) are absent */
    for (int k = 0; k < 50; k++) {
        char buf[24];
        int l = snprintf(buf, sizeof buf, "never-%d", k);
        assert_null(qv_idmap_get(m, (qv_str_t){buf, (uint32_t)l}));
    }
}

static int setup(void **state)
{
    (void)state;
    schema = qv_schema_alloc(0);
    strcpy(schema->name, "ids");
    schema->dim = 1;
    schema->metric = QV_METRIC_L2;
    schema->shards = 1;
    segs[0] = qv_seg_create(schema, 1);
    segs[1] = qv_seg_create(schema, 2);
    return segs[0] && segs[1] ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    qv_seg_unref(segs[0]);
    qv_seg_unref(segs[1]);
    free(schema);
    return 0;
}

static void test_random_ops(void **state)
{
    (void)state;
    ref_t *refs = calloc(NIDS, sizeof *refs);
    uint32_t counter = 0;
    make_group(refs, NGROUP, 0, &counter);                 /* home slot 0 */
    make_group(refs + NGROUP, NGROUP, LOW_MASK, &counter); /* home slot cap-1: runs wrap to slot 0 */
    for (uint32_t i = 0; i < NPLAIN; i++) {
        ref_t *r = &refs[2 * NGROUP + i];
        r->len = (uint32_t)snprintf(r->id, sizeof r->id, "plain-%u", i);
    }
    qv_idmap_t m;
    assert_int_equal(qv_idmap_init(&m), QV_OK);
    assert_int_equal(m.cap, 1024);
    check_all(&m, refs);

    size_t max_cap = m.cap;
    const uint32_t nops = 60000;
    for (uint32_t op = 0; op < nops; op++) {
        /* first half: mostly inserts, so the table grows; second half: balanced churn. The colliding groups are
         * picked a third of the time so their runs see many inserts and deletes. */
        uint32_t i = rng_chance(&rng, 33) ? rng_below(&rng, 2 * NGROUP) : rng_below(&rng, NIDS);
        ref_t *r = &refs[i];
        unsigned put_pct = op < nops / 2 ? 75 : 50;
        if (rng_chance(&rng, put_pct)) {
            qv_segment_t *seg;
            uint32_t row;
            new_row(r, &seg, &row);
            qv_idslot_t old = {0};
            int rc = -1;
            bool existed = qv_idmap_put(&m, sid(r), seg, row, &old, &rc);
            assert_int_equal(rc, QV_OK);
            assert_int_equal(existed, r->live);
            if (existed) {
                assert_ptr_equal(old.seg, r->seg);
                assert_int_equal(old.row, r->row);
            }
            r->live = true;
            r->seg = seg;
            r->row = row;
        } else {
            qv_idslot_t old = {0};
            bool found = qv_idmap_del(&m, sid(r), rng_chance(&rng, 50) ? &old : NULL);
            assert_int_equal(found, r->live);
            if (found && old.seg) {
                assert_ptr_equal(old.seg, r->seg);
                assert_int_equal(old.row, r->row);
            }
            r->live = false;
        }
        check_one(&m, r);
        if (m.cap > max_cap)
            max_cap = m.cap;
        if (op % 2000 == 1999)
            check_all(&m, refs);
    }
    check_all(&m, refs);
    assert_true(max_cap >= 8192); /* the table really grew */

    /* delete everything that is left, then the map is empty and still usable */
    for (size_t i = 0; i < NIDS; i++)
        if (refs[i].live) {
            assert_true(qv_idmap_del(&m, sid(&refs[i]), NULL));
            refs[i].live = false;
            check_one(&m, &refs[i]);
        }
    assert_int_equal(m.n, 0);
    for (size_t i = 0; i < m.cap; i++)
        assert_null(m.slots[i].seg);
    check_all(&m, refs);
    qv_idmap_free(&m);
    assert_null(m.slots);
    free(refs);
}

/* Deleting from the middle of a run that wraps around the end of the table: every order of deletion of a small
 * wrapped run leaves the others findable. */
static void test_wrapped_runs(void **state)
{
    (void)state;
    ref_t group[6];
    uint32_t counter = 1000000;
    memset(group, 0, sizeof group);
    make_group(group, 3, LOW_MASK, &counter); /* home cap-1 */
    make_group(group + 3, 3, 0, &counter);    /* home 0 */
    int perm[6] = {0, 1, 2, 3, 4, 5};
    /* all 720 permutations of deletion order (Heap's algorithm, iterative) */
    int c[6] = {0};
    int k = 1, count = 0;
    for (;;) {
        qv_idmap_t m;
        assert_int_equal(qv_idmap_init(&m), QV_OK);
        for (int j = 0; j < 6; j++) {
            group[j].live = true;
            new_row(&group[j], &group[j].seg, &group[j].row);
            int rc;
            assert_false(qv_idmap_put(&m, sid(&group[j]), group[j].seg, group[j].row, NULL, &rc));
        }
        /* the run occupies slot cap-1 and wraps to slots 0 .. 4 */
        assert_non_null(m.slots[m.cap - 1].seg);
        assert_non_null(m.slots[2].seg);
        for (int j = 0; j < 6; j++) {
            assert_true(qv_idmap_del(&m, sid(&group[perm[j]]), NULL));
            group[perm[j]].live = false;
            for (int q = 0; q < 6; q++)
                check_one(&m, &group[q]);
        }
        assert_int_equal(m.n, 0);
        qv_idmap_free(&m);
        count++;
        /* next permutation */
        while (k < 6 && c[k] >= k) {
            c[k] = 0;
            k++;
        }
        if (k >= 6)
            break;
        int a = k % 2 ? c[k] : 0, t = perm[a];
        perm[a] = perm[k];
        perm[k] = t;
        c[k]++;
        k = 1;
    }
    assert_int_equal(count, 720);
}

/* qv_idmap_reserve makes room up front: no growth during the inserts that follow. */
static void test_reserve(void **state)
{
    (void)state;
    qv_idmap_t m;
    assert_int_equal(qv_idmap_init(&m), QV_OK);
    assert_int_equal(qv_idmap_reserve(&m, 700), QV_OK);
    assert_int_equal(m.cap, 1024); /* 700 fits at load 0.7 */
    assert_int_equal(qv_idmap_reserve(&m, 5000), QV_OK);
    size_t cap = m.cap;
    assert_true(cap * 7 >= 5000 * 10);
    ref_t *refs = calloc(5000, sizeof *refs);
    for (int i = 0; i < 5000; i++) {
        refs[i].len = (uint32_t)snprintf(refs[i].id, sizeof refs[i].id, "r%d", i);
        refs[i].live = true;
        new_row(&refs[i], &refs[i].seg, &refs[i].row);
        int rc;
        assert_false(qv_idmap_put(&m, sid(&refs[i]), refs[i].seg, refs[i].row, NULL, &rc));
        assert_int_equal(rc, QV_OK);
        assert_int_equal(m.cap, cap);
    }
    for (int i = 0; i < 5000; i++)
        check_one(&m, &refs[i]);
    assert_false(qv_idmap_del(&m, (qv_str_t){"absent", 6}, NULL));
    assert_int_equal(m.n, 5000);
    qv_idmap_free(&m);
    free(refs);
}

/* Forwarding (compaction's swap, storage/compact.c): while segs[0] forwards to its merged copy, qv_idslot_where finds
 * the copy's row and lookups still work (ids compared from the input); qv_idmap_forward then repoints the slots, in
 * ranges, and the table keeps working (deletes, puts). */
static void test_forward(void **state)
{
    (void)state;
    qv_idmap_t m;
    assert_int_equal(qv_idmap_init(&m), QV_OK);
    enum { N = 3000 };
    ref_t *refs = calloc(N, sizeof *refs);
    for (int i = 0; i < N; i++) {
        refs[i].len = (uint32_t)snprintf(refs[i].id, sizeof refs[i].id, "m%d", i);
        refs[i].live = true;
        new_row(&refs[i], &refs[i].seg, &refs[i].row);
        int rc;
        assert_false(qv_idmap_put(&m, sid(&refs[i]), refs[i].seg, refs[i].row, NULL, &rc));
    }
    for (int i = 0; i < N; i += 7) { /* some ids die first: their rows are not copied */
        assert_true(qv_idmap_del(&m, sid(&refs[i]), NULL));
        refs[i].live = false;
    }
    /* the merged copy of segs[0]'s live rows, in reverse order */
    qv_segment_t *out = qv_seg_create(schema, 3);
    assert_non_null(out);
    uint32_t *map = malloc((segs[0]->rows + 1) * sizeof *map);
    for (uint32_t r = 0; r < segs[0]->rows; r++)
        map[r] = UINT32_MAX;
    size_t moved = 0;
    qv_segment_t *was_seg[N];
    uint32_t was_row[N];
    for (int i = N - 1; i >= 0; i--) {
        was_seg[i] = refs[i].seg;
        was_row[i] = refs[i].row;
        if (refs[i].live && refs[i].seg == segs[0]) {
            float v = 1;
            qv_point_t pt = {.id = sid(&refs[i]), .vector = &v, .nvector = 1};
            assert_int_equal(qv_seg_append(out, &pt, &map[refs[i].row]), QV_OK);
            refs[i].seg = out;
            refs[i].row = map[refs[i].row];
            moved++;
        }
    }
    segs[0]->fwd = out;
    segs[0]->fwd_rows = map;
    for (int i = 0; i < N; i++) { /* before the repoint: the slots still name the input, which resolves */
        if (!refs[i].live)
            continue;
        qv_idslot_t *s = qv_idmap_get(&m, sid(&refs[i]));
        assert_non_null(s);
        assert_ptr_equal(s->seg, was_seg[i]);
        assert_int_equal(s->row, was_row[i]);
        qv_segment_t *g;
        uint32_t r;
        assert_int_equal(qv_idslot_where(s, &g, &r), was_seg[i] == segs[0]);
        assert_ptr_equal(g, refs[i].seg);
        assert_int_equal(r, refs[i].row);
    }
    size_t n = 0;
    for (size_t from = 0; from < m.cap; from += 100)
        n += qv_idmap_forward(&m, from, from + 100);
    assert_int_equal(n, moved);
    assert_int_equal(qv_idmap_forward(&m, 0, m.cap), 0);
    for (int i = 0; i < N; i++)
        check_one(&m, &refs[i]);
    segs[0]->fwd = NULL; /* the fixture's segment must not free the map or outlive `out` forwarding to it */
    segs[0]->fwd_rows = NULL;
    for (int i = 1; i < N; i += 5) { /* the table after the repoint: deletes and a re-put */
        qv_idslot_t old;
        assert_int_equal(qv_idmap_del(&m, sid(&refs[i]), &old), refs[i].live);
        refs[i].live = false;
    }
    int rc;
    new_row(&refs[1], &refs[1].seg, &refs[1].row);
    assert_false(qv_idmap_put(&m, sid(&refs[1]), refs[1].seg, refs[1].row, NULL, &rc));
    refs[1].live = true;
    for (int i = 0; i < N; i++)
        check_one(&m, &refs[i]);
    qv_idmap_free(&m);
    qv_seg_unref(out);
    free(map);
    free(refs);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops),
        cmocka_unit_test(test_wrapped_runs),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_forward),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
