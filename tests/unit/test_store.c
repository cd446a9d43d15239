/* The store (storage/store*.c) against an in-memory reference model, in real RocksDB directories under mkdtemp.
 *
 * - Lifecycle: create (QV_EEXIST on a duplicate name), upsert / replace / delete (the deleted count, rejected batches
 *   write nothing), seal by a small seal_rows, by a small seal_wal_bytes and by qv_store_flush (one collection and
 *   all), drop (a held reference then gets QV_ENOTFOUND, the name is free again and a new collection under it is
 *   empty), and 12 close / reopen cycles with writes between them, some cycles sealing and some not. After every
 *   cycle's writes and again after every reopen the whole state is compared with the model: each id -> vector bytes,
 *   every attribute, text; deleted ids absent; live counts; every non-deleted row of every segment is the live row
 *   of its id (no ghost rows); and across a reopen every sealed segment comes back with the same id, rows and
 *   deletes, and the growing one with the same rows and deletes (sealing is two-step, freeze then persist by the
 *   seal jobs on the background worker, so before a close the test waits until every frozen segment is persisted).
 * - Compaction: in the sealing cycles a compaction is requested while writes go on, and after flushing everything
 *   all sealed segments are merged; the state must stay equal to the model, also after the reopen.
 * - Concurrency: 8 writer threads upsert and delete disjoint id ranges (with small seal thresholds and automatic
 *   compaction, so seals and compaction swaps run between their groups) while a reader thread counts and searches;
 *   then the state is checked, and again after a reopen.
 * - Search: qv_search_exact with a pool of 2 equals brute force over the model for L2, IP and COSINE, with and
 *   without filters, for k from 1 to more than the live rows, over sealed and growing segments with deletes and
 *   replacements, before and after a reopen; qv_count with and without filters equals the model's count. Once the
 *   background indexer has published the sealed segments' HNSW indexes, exact search still equals brute force, and
 *   qv_search through the indexes returns only live rows passing the filter, with their true scores, in order, and
 *   unfiltered recall@10 >= 0.9 (also with the indexes loaded from disk after a reopen).
 * - Corruption on reopen: with the store closed, the test opens the RocksDB directory itself and damages one thing at
 *   a time (a segment chunk, a missing or extra chunk, the manifest, the schema, a WAL record, a WAL key, a delete
 *   bitmap, the collection counter); qv_store_open must fail with QV_ECORRUPT and a message, and after
 *   the damage is undone it must open again with the full state intact. Damaged, missing or extra index blob chunks
 *   are derived data: the store opens with the full state and rebuilds the index. Id-map entries an older version
 *   stored (`keys`) are ignored and removed: the id map is rebuilt from the segments. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "index/distance.h"
#include "index/pool.h"
#include "query/filter.h"
#include "query/search.h"
#include "qvtest.h"
#include "qvtmp.h"
#include "storage/store.h"

#define MAXDIM 8

/* ---------------------------------------------------------------------------------------------------------------
 * Temporary directories */


/* ---------------------------------------------------------------------------------------------------------------
 * The reference model */

static const qv_str_t words[] = {{"", 0}, {"red", 3}, {"green", 5}, {"blue", 4}};
#define NWORDS 4

typedef struct {
    bool live;
    float vec[MAXDIM];
    bool has[F_COUNT];
    int64_t i;
    double d;
    int kw;
    bool b;
    int tags[3];
    int ntags;
    uint32_t tlen;
    char text[48];
} mpt_t;

typedef struct {
    char name[16];
    uint32_t dim;
    uint8_t metric;
    bool fields; /* the every-field schema, else no fields */
    bool exists;
    uint32_t nkeys;
    mpt_t *pts;
} mcoll_t;

/* The id of key k: "k<k>-" padded with letters; every 53rd key has the maximum of 256 bytes. */
static uint32_t make_id(uint32_t key, char *buf)
{
    int l = snprintf(buf, QV_ID_MAX, "k%u-", key);
    uint32_t len = key % 53 == 0 ? QV_ID_MAX : (uint32_t)l + key % 11;
    for (uint32_t j = (uint32_t)l; j < len; j++)
        buf[j] = (char)('a' + (key + j) % 26);
    return len;
}

static uint32_t key_of(qv_str_t id)
{
    char buf[16] = {0};
    memcpy(buf, id.p, id.len < 15 ? id.len : 15);
    if (buf[0] != 'k')
        fail_msg("unexpected id '%.*s'", (int)id.len, id.p);
    return (uint32_t)strtoul(buf + 1, NULL, 10);
}

static void mcoll_init(mcoll_t *mc, const char *name, uint32_t dim, uint8_t metric, bool fields, uint32_t nkeys)
{
    memset(mc, 0, sizeof *mc);
    snprintf(mc->name, sizeof mc->name, "%s", name);
    mc->dim = dim;
    mc->metric = metric;
    mc->fields = fields;
    mc->nkeys = nkeys;
    mc->pts = calloc(nkeys, sizeof *mc->pts);
}

static uint64_t mcoll_live(const mcoll_t *mc)
{
    uint64_t n = 0;
    for (uint32_t k = 0; k < mc->nkeys; k++)
        n += mc->pts[k].live;
    return n;
}

static qv_schema_t *mcoll_schema(const mcoll_t *mc)
{
    qv_schema_t *s = test_schema_all(mc->name, 0, mc->dim, mc->metric);
    if (!mc->fields)
        s->nfields = 0;
    return s;
}

static void gen_mpt(uint64_t *rng, const mcoll_t *mc, mpt_t *p)
{
    memset(p, 0, sizeof *p);
    p->live = true;
    for (uint32_t d = 0; d < mc->dim; d++)
        p->vec[d] = (float)(rng_unit(rng) * 2 - 1);
    p->vec[0] += 0.01f; /* never all zero (COSINE) */
    if (mc->fields) {
        for (int f = 0; f < F_COUNT; f++)
            p->has[f] = rng_chance(rng, 80);
        p->i = (int64_t)rng_below(rng, 9) - 4;
        p->d = (double)rng_below(rng, 17) / 4 - 2;
        p->kw = (int)rng_below(rng, NWORDS);
        p->b = rng_below(rng, 2);
        p->ntags = (int)rng_below(rng, 4);
        for (int e = 0; e < p->ntags; e++)
            p->tags[e] = (int)rng_below(rng, NWORDS);
    }
    p->tlen = rng_chance(rng, 30) ? 0 : rng_below(rng, sizeof p->text);
    for (uint32_t j = 0; j < p->tlen; j++)
        p->text[j] = (char)rng_next(rng);
}

/* A qv_point_t view of a staged model point; the vector is the model's own array, so COSINE normalisation by the
 * store lands in the staged point. */
typedef struct {
    qv_point_t pt;
    qv_attr_t attrs[F_COUNT];
    qv_str_t items[3];
    char id[QV_ID_MAX];
} ptbuf_t;

static void to_point(const mcoll_t *mc, uint32_t key, mpt_t *p, ptbuf_t *b)
{
    memset(b, 0, sizeof *b);
    b->pt.id = (qv_str_t){b->id, make_id(key, b->id)};
    b->pt.vector = p->vec;
    b->pt.nvector = mc->dim;
    uint32_t n = 0;
    for (int e = 0; e < p->ntags; e++)
        b->items[e] = words[p->tags[e]];
    if (p->has[F_TAGS])
        b->attrs[n++] = (qv_attr_t){F_TAGS, {.type = QV_FT_KEYWORDS, .kws = {b->items, (uint32_t)p->ntags}}};
    if (p->has[F_INT])
        b->attrs[n++] = (qv_attr_t){F_INT, {.type = QV_FT_INT64, .i = p->i}};
    if (p->has[F_DBL]) /* sometimes as an integer, which the store converts */
        b->attrs[n++] = p->d == floor(p->d) && key % 2 ? (qv_attr_t){F_DBL, {.type = QV_FT_INT64, .i = (int64_t)p->d}}
                                                      : (qv_attr_t){F_DBL, {.type = QV_FT_DOUBLE, .d = p->d}};
    if (p->has[F_KW])
        b->attrs[n++] = (qv_attr_t){F_KW, {.type = QV_FT_KEYWORD, .kw = words[p->kw]}};
    if (p->has[F_BOOL])
        b->attrs[n++] = (qv_attr_t){F_BOOL, {.type = QV_FT_BOOL, .b = p->b}};
    b->pt.attrs = b->attrs;
    b->pt.nattrs = n;
    b->pt.text = (qv_str_t){p->text, p->tlen};
}

/* Upserts the given distinct keys with fresh random contents; on success the model takes them. Returns the rc. */
static int model_upsert(qv_store_t *st, qv_coll_t *c, mcoll_t *mc, const uint32_t *keys, uint32_t n, uint64_t *rng,
                        uint64_t *seq, qv_err_t *err)
{
    mpt_t *staged = calloc(n, sizeof *staged);
    ptbuf_t *bufs = calloc(n, sizeof *bufs);
    qv_point_t *pts = calloc(n, sizeof *pts);
    for (uint32_t i = 0; i < n; i++) {
        gen_mpt(rng, mc, &staged[i]);
        to_point(mc, keys[i], &staged[i], &bufs[i]);
        pts[i] = bufs[i].pt;
    }
    int rc = qv_store_upsert(st, c, pts, n, seq, err);
    if (rc == QV_OK)
        for (uint32_t i = 0; i < n; i++)
            mc->pts[keys[i]] = staged[i];
    free(staged);
    free(bufs);
    free(pts);
    return rc;
}

/* Deletes keys (repeats allowed); *deleted must be the number of distinct keys that were live. */
static int model_delete(qv_store_t *st, qv_coll_t *c, mcoll_t *mc, const uint32_t *keys, uint32_t n,
                        uint32_t *deleted, uint32_t *want, qv_err_t *err)
{
    qv_str_t *ids = calloc(n, sizeof *ids);
    char (*buf)[QV_ID_MAX] = calloc(n, QV_ID_MAX);
    for (uint32_t i = 0; i < n; i++)
        ids[i] = (qv_str_t){buf[i], make_id(keys[i], buf[i])};
    int rc = qv_store_delete(st, c, ids, n, deleted, err);
    *want = 0;
    if (rc == QV_OK)
        for (uint32_t i = 0; i < n; i++)
            if (mc->pts[keys[i]].live) {
                mc->pts[keys[i]].live = false;
                (*want)++;
            }
    free(ids);
    free(buf);
    return rc;
}

/* Distinct random keys in [lo, hi). */
static void pick_keys(uint64_t *rng, uint32_t lo, uint32_t hi, uint32_t *keys, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        for (;;) {
            uint32_t k = lo + rng_below(rng, hi - lo);
            uint32_t j = 0;
            while (j < i && keys[j] != k)
                j++;
            if (j == i) {
                keys[i] = k;
                break;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Comparing the store with the model. Returns a description of the first difference, or NULL. Safe to call from any
 * thread (no cmocka asserts). */

static char diff_msg[512];

#define DIFF(...) (snprintf(diff_msg, sizeof diff_msg, __VA_ARGS__), diff_msg)

static bool str_eq(qv_str_t a, qv_str_t b) { return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len)); }

static const char *row_differs(const mcoll_t *mc, uint32_t key, const qv_segment_t *seg, uint32_t row)
{
    const mpt_t *p = &mc->pts[key];
    if (memcmp(qv_seg_vector(seg, row), p->vec, mc->dim * sizeof(float)) != 0)
        return DIFF("key %u: vector differs", key);
    if (!str_eq(qv_strcol_get(&seg->text, row), (qv_str_t){p->text, p->tlen}))
        return DIFF("key %u: text differs", key);
    for (int f = 0; mc->fields && f < F_COUNT; f++) {
        const qv_column_t *c = &seg->cols[f];
        bool has = qv_bm_get(c->present, row);
        if (has != p->has[f])
            return DIFF("key %u field %d: presence %d, model %d", key, f, has, p->has[f]);
        if (!has)
            continue;
        bool same = true;
        switch (f) {
        case F_INT: same = c->i64[row] == p->i; break;
        case F_DBL: same = c->f64[row] == p->d; break;
        case F_KW: same = str_eq(qv_strcol_get(&c->str, row), words[p->kw]); break;
        case F_BOOL: same = (c->b[row] != 0) == p->b; break;
        case F_TAGS:
            same = c->kw_off[row + 1] - c->kw_off[row] == (uint32_t)p->ntags;
            for (int e = 0; same && e < p->ntags; e++)
                same = str_eq(qv_strcol_get(&c->str, c->kw_off[row] + (uint32_t)e), words[p->tags[e]]);
            break;
        }
        if (!same)
            return DIFF("key %u field %d: value differs", key, f);
    }
    return NULL;
}

/* c's state against the model; the caller holds a reference. */
static const char *coll_differs(qv_coll_t *c, const mcoll_t *mc)
{
    const char *why = NULL;
    char id[QV_ID_MAX];
    qv_coll_rdlock(c);
    uint64_t live = mcoll_live(mc), seg_live = 0;
    if (c->live != live) {
        why = DIFF("'%s': %llu live, model %llu", mc->name, (unsigned long long)c->live, (unsigned long long)live);
        goto out;
    }
    if (c->ids.n != live) {
        why = DIFF("'%s': id map holds %zu", mc->name, c->ids.n);
        goto out;
    }
    for (uint32_t k = 0; k < mc->nkeys && !why; k++) {
        qv_str_t sid = {id, make_id(k, id)};
        qv_idslot_t *s = qv_idmap_get(&c->ids, sid);
        if (!mc->pts[k].live) {
            if (s)
                why = DIFF("'%s': key %u is deleted but present", mc->name, k);
            continue;
        }
        if (!s) {
            why = DIFF("'%s': key %u missing", mc->name, k);
            continue;
        }
        qv_segment_t *sg; /* where the row is now: a slot may still name a compacted input (storage/compact.c) */
        uint32_t sr;
        qv_idslot_where(s, &sg, &sr);
        if (qv_seg_is_deleted(sg, sr))
            why = DIFF("'%s': key %u points at a deleted row", mc->name, k);
        else if (!str_eq(qv_strcol_get(&sg->ids, sr), sid))
            why = DIFF("'%s': key %u points at another id's row", mc->name, k);
        else
            why = row_differs(mc, k, sg, sr);
    }
    /* the count of slots that still name a compacted input is exact (the repoint phase stops on it) */
    uint64_t forwarded = 0;
    for (size_t i = 0; i < c->ids.cap; i++)
        forwarded += c->ids.slots[i].seg && c->ids.slots[i].seg->fwd;
    if (!why && forwarded != c->fwd_slots)
        why = DIFF("'%s': %llu slots name a compacted input, the count says %llu", mc->name,
                   (unsigned long long)forwarded, (unsigned long long)c->fwd_slots);
    /* every non-deleted row is the live row of its id */
    for (size_t i = 0; i <= c->nsealed && !why; i++) {
        qv_segment_t *seg = i < c->nsealed ? c->sealed[i] : c->growing;
        if ((i < c->nsealed) != seg->sealed) {
            why = DIFF("'%s': segment %zu sealed flag wrong", mc->name, i);
            break;
        }
        uint32_t nd = 0;
        for (uint32_t r = 0; r < seg->rows && !why; r++) {
            if (qv_seg_is_deleted(seg, r)) {
                nd++;
                continue;
            }
            qv_idslot_t *s = qv_idmap_get(&c->ids, qv_strcol_get(&seg->ids, r));
            qv_segment_t *sg = NULL;
            uint32_t sr = 0;
            if (s)
                qv_idslot_where(s, &sg, &sr);
            if (!s || sg != seg || sr != r)
                why = DIFF("'%s': segment %llu row %u is live but not its id's row", mc->name,
                           (unsigned long long)seg->id, r);
        }
        if (!why && nd != seg->ndeleted)
            why = DIFF("'%s': segment %llu counts %u deleted, bitmap has %u", mc->name, (unsigned long long)seg->id,
                       seg->ndeleted, nd);
        seg_live += seg->rows - seg->ndeleted;
    }
    if (!why && seg_live != live)
        why = DIFF("'%s': segments hold %llu live rows, model %llu", mc->name, (unsigned long long)seg_live,
                   (unsigned long long)live);
out:
    qv_coll_unlock(c);
    return why;
}

static void check_coll(qv_store_t *st, const mcoll_t *mc)
{
    qv_coll_t *c = NULL;
    qv_err_t err;
    int rc = qv_store_get(st, mc->name, strlen(mc->name), &c, &err);
    if (!mc->exists) {
        assert_int_equal(rc, QV_ENOTFOUND);
        return;
    }
    if (rc != QV_OK)
        fail_msg("collection '%s': %s", mc->name, err.msg);
    assert_string_equal(c->schema->name, mc->name);
    assert_int_equal(c->schema->dim, mc->dim);
    assert_int_equal(c->schema->metric, mc->metric);
    assert_int_equal(c->schema->nfields, mc->fields ? F_COUNT : 0);
    const char *why = coll_differs(c, mc);
    qv_coll_release(c);
    if (why)
        fail_msg("%s", why);
}

/* Segment shapes, to compare across a reopen: the sealed segments in id order (compaction appends its output out of
 * order in memory; the manifest lists them sorted), then the growing one. */
typedef struct {
    uint64_t id;
    uint32_t rows, ndeleted;
} segshape_t;

static int shape_cmp(const void *a, const void *b)
{
    uint64_t x = ((const segshape_t *)a)->id, y = ((const segshape_t *)b)->id;
    return (x > y) - (x < y);
}

static size_t snapshot(qv_store_t *st, const char *name, segshape_t *out, size_t max)
{
    qv_coll_t *c;
    if (qv_store_get(st, name, strlen(name), &c, NULL))
        return 0;
    qv_coll_rdlock(c);
    size_t n = 0;
    for (size_t i = 0; i <= c->nsealed && n < max; i++) {
        qv_segment_t *s = i < c->nsealed ? c->sealed[i] : c->growing;
        out[n++] = (segshape_t){s->id, s->rows, s->ndeleted};
    }
    qv_coll_unlock(c);
    qv_coll_release(c);
    if (n > 1)
        qsort(out, n - 1, sizeof *out, shape_cmp);
    for (size_t i = 0; i + 1 < n; i++) /* ids are unique, the growing segment's too */
        if (out[i].id == out[n - 1].id || (i && out[i].id == out[i - 1].id))
            fail_msg("'%s': segment id %llu used twice", name, (unsigned long long)out[i].id);
    return n;
}

/* Sealed segments come back from disk exactly; the growing one is rebuilt from the WAL with the same rows and
 * deletes (recovery gives it a fresh id). */
static void compare_shapes(const char *what, const segshape_t *before, size_t nb, const segshape_t *after, size_t na)
{
    if (na != nb)
        fail_msg("%s: %zu segments after reopen, %zu before", what, na, nb);
    for (size_t s = 0; s < na; s++) {
        if (s + 1 < na && after[s].id != before[s].id)
            fail_msg("%s: sealed segment %zu has id %llu after reopen, %llu before", what, s,
                     (unsigned long long)after[s].id, (unsigned long long)before[s].id);
        if (after[s].rows != before[s].rows || after[s].ndeleted != before[s].ndeleted)
            fail_msg("%s: segment %llu has %u rows / %u deleted after reopen, %u / %u before", what,
                     (unsigned long long)after[s].id, after[s].rows, after[s].ndeleted, before[s].rows,
                     before[s].ndeleted);
    }
}

/* Sealing is two-step: a segment is frozen by the commit leader and persisted once its seal job has written its
 * blob; a close drops pending seals (the WAL still covers those rows, so a reopen puts them back into the growing
 * segment). Waits (up to 30 s) until every frozen segment of every collection is persisted, so that the segments
 * seen before a close are the ones a reopen loads. `persisted` is only written under the write lock. */
static void wait_persisted(qv_store_t *st)
{
    for (int tries = 0; tries < 3000; tries++) {
        qv_coll_t **list;
        size_t n, pending = 0;
        assert_int_equal(qv_store_list(st, &list, &n), QV_OK);
        for (size_t i = 0; i < n; i++) {
            qv_coll_rdlock(list[i]);
            for (size_t s = 0; s < list[i]->nsealed; s++)
                pending += !list[i]->sealed[s]->persisted;
            qv_coll_unlock(list[i]);
        }
        qv_store_list_free(list, n);
        if (!pending)
            return;
        usleep(5000);
    }
    fail_msg("frozen segments still not persisted after 30 s");
}

/* Waits (up to 30 s) until no compaction is queued or running; returns the number of jobs that finished DONE. */
static size_t wait_compactions(qv_store_t *st)
{
    for (int tries = 0; tries < 3000; tries++) {
        qv_compaction_info_t *jobs;
        size_t n, busy = 0, done = 0;
        assert_int_equal(qv_store_compactions(st, &jobs, &n), QV_OK);
        for (size_t i = 0; i < n; i++) {
            busy += jobs[i].state == QV_CJ_QUEUED || jobs[i].state == QV_CJ_RUNNING;
            done += jobs[i].state == QV_CJ_DONE;
            if (jobs[i].state == QV_CJ_FAILED)
                fail_msg("compaction %llu of '%s' failed: %s", (unsigned long long)jobs[i].id, jobs[i].collection,
                         jobs[i].error);
        }
        free(jobs);
        if (!busy)
            return done;
        usleep(10000);
    }
    fail_msg("compactions still running after 30 s");
    return 0;
}

static qv_coll_t *get_coll(qv_store_t *st, const char *name)
{
    qv_coll_t *c = NULL;
    qv_err_t err;
    if (qv_store_get(st, name, strlen(name), &c, &err) != QV_OK)
        fail_msg("get '%s': %s", name, err.msg);
    return c;
}

/* Asks for a compaction of the named collection; returns its job id (0: nothing to do). */
static uint64_t compact(qv_store_t *st, const char *name)
{
    qv_coll_t *c = get_coll(st, name);
    uint64_t job = 0;
    uint32_t ninputs = 0;
    qv_err_t err;
    int rc = qv_store_compact(st, c, 0, false, &job, &ninputs, &err);
    qv_coll_release(c);
    if (rc == QV_EEXIST)
        return 0;
    if (rc != QV_OK)
        fail_msg("compact '%s': %s", name, err.msg);
    assert_true(job == 0 || ninputs >= 1);
    return job;
}

/* Waits (up to 30 s) until every sealed segment of the collection has its index published; returns how many. */
static size_t wait_indexes(qv_store_t *st, const char *name)
{
    qv_coll_t *c;
    if (qv_store_get(st, name, strlen(name), &c, NULL))
        fail_msg("no collection '%s'", name);
    size_t ready = 0;
    for (int tries = 0; tries < 3000; tries++) {
        bool all = true;
        ready = 0;
        qv_coll_rdlock(c);
        for (size_t i = 0; i < c->nsealed; i++) {
            int state;
            double progress;
            uint64_t bytes;
            qv_store_seg_index_info(st, c->sealed[i], &state, &progress, &bytes);
            if (state == QV_IDX_READY && bytes > 0 && progress == 1)
                ready++;
            else if (state == QV_IDX_FAILED)
                fail_msg("'%s' segment %llu: index build failed", name, (unsigned long long)c->sealed[i]->id);
            else
                all = false;
        }
        qv_coll_unlock(c);
        if (all)
            break;
        usleep(10000);
    }
    qv_coll_release(c);
    return ready;
}

static qv_store_t *open_store_opts(const qv_store_opts_t *o)
{
    qv_store_t *st = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_store_open(o, &st, &err);
    if (rc != QV_OK)
        fail_msg("qv_store_open: %d %s", rc, err.msg);
    return st;
}

static qv_store_t *open_store(const char *dir, uint32_t seal_rows, uint64_t seal_wal_bytes)
{
    qv_store_opts_t o = {.path = dir, .seal_rows = seal_rows, .seal_wal_bytes = seal_wal_bytes};
    qv_store_t *st = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_store_open(&o, &st, &err);
    if (rc != QV_OK)
        fail_msg("qv_store_open: %d %s", rc, err.msg);
    return st;
}

static void create_coll(qv_store_t *st, mcoll_t *mc)
{
    qv_schema_t *s = mcoll_schema(mc);
    qv_err_t err;
    assert_int_equal(qv_schema_validate(s, &err), QV_OK);
    if (qv_store_create(st, s, &err) != QV_OK)
        fail_msg("create '%s': %s", mc->name, err.msg);
    mc->exists = true;
    memset(mc->pts, 0, mc->nkeys * sizeof *mc->pts);
}


/* ---------------------------------------------------------------------------------------------------------------
 * Lifecycle and reopen cycles */

#define NCOLL 3
#define NKEYS 300

/* One random write on mc: an upsert batch (sometimes an invalid one, which must change nothing) or a delete batch. */
static void random_write(qv_store_t *st, mcoll_t *mc, uint64_t *rng, uint64_t *last_seq)
{
    qv_coll_t *c = get_coll(st, mc->name);
    uint32_t keys[16];
    qv_err_t err;
    uint32_t kind = rng_below(rng, 10);
    if (kind < 6) {
        uint32_t n = 1 + rng_below(rng, 12);
        pick_keys(rng, 0, mc->nkeys, keys, n);
        uint64_t seq = 0;
        if (model_upsert(st, c, mc, keys, n, rng, &seq, &err) != QV_OK)
            fail_msg("upsert: %s", err.msg);
        assert_true(seq > *last_seq); /* one sequence for the whole store, increasing */
        *last_seq = seq;
    } else if (kind < 9) {
        uint32_t n = 1 + rng_below(rng, 6), deleted = 99, want;
        for (uint32_t i = 0; i < n; i++)
            keys[i] = rng_below(rng, mc->nkeys); /* repeats allowed */
        if (model_delete(st, c, mc, keys, n, &deleted, &want, &err) != QV_OK)
            fail_msg("delete: %s", err.msg);
        assert_int_equal(deleted, want);
    } else {
        /* a batch with one bad point (wrong dim) or a duplicate id is refused as a whole */
        uint32_t n = 2 + rng_below(rng, 5);
        pick_keys(rng, 0, mc->nkeys, keys, n);
        mpt_t staged[8];
        ptbuf_t bufs[8];
        qv_point_t pts[8];
        for (uint32_t i = 0; i < n; i++) {
            gen_mpt(rng, mc, &staged[i]);
            to_point(mc, keys[i], &staged[i], &bufs[i]);
            pts[i] = bufs[i].pt;
        }
        if (rng_below(rng, 2))
            pts[n - 1].nvector = mc->dim + 1;
        else
            pts[n - 1].id = pts[0].id;
        qv_err_clear(&err);
        uint64_t seq = 12345;
        assert_int_equal(qv_store_upsert(st, c, pts, n, &seq, &err), QV_EINVAL);
        assert_true(strlen(err.msg) > 0);
    }
    qv_coll_release(c);
}

/* What each cycle does besides 150 random writes. */
enum { M_SEAL_ROWS, M_NONE, M_FLUSH_ONE, M_SEAL_WAL, M_FLUSH_ALL };
static const int cycle_mode[] = {M_SEAL_ROWS, M_NONE,      M_FLUSH_ONE, M_SEAL_WAL, M_NONE,      M_FLUSH_ALL,
                                 M_SEAL_ROWS, M_NONE,      M_FLUSH_ONE, M_SEAL_WAL, M_NONE,      M_FLUSH_ALL};

static size_t total_sealed(qv_store_t *st, const mcoll_t *mc, size_t *per)
{
    size_t total = 0;
    for (int i = 0; i < NCOLL; i++) {
        segshape_t shape[256];
        size_t n = snapshot(st, mc[i].name, shape, 256);
        per[i] = n ? n - 1 : 0;
        total += per[i];
    }
    return total;
}

static void test_reopen_cycles(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    mcoll_t mc[NCOLL];
    mcoll_init(&mc[0], "alpha", 8, QV_METRIC_L2, true, NKEYS);
    mcoll_init(&mc[1], "Beta_2", 3, QV_METRIC_COSINE, true, NKEYS);
    mcoll_init(&mc[2], "gamma-3", 5, QV_METRIC_IP, false, NKEYS);
    uint64_t rng = 99, last_seq = 0;
    size_t compactions = 0, compactions_done = 0; /* requested (over all cycles), finished (store's history) */
    const int cycles = (int)(sizeof cycle_mode / sizeof cycle_mode[0]);
    for (int cycle = 0; cycle < cycles; cycle++) {
        int mode = cycle_mode[cycle];
        qv_store_t *st = open_store(dir, mode == M_SEAL_ROWS ? 32 : 0, mode == M_SEAL_WAL ? 2048 : 0);
        for (int i = 0; i < NCOLL; i++)
            check_coll(st, &mc[i]);
        if (cycle == 0) {
            for (int i = 0; i < NCOLL; i++)
                create_coll(st, &mc[i]);
            qv_schema_t *dup = mcoll_schema(&mc[1]);
            qv_err_t err;
            qv_err_clear(&err);
            assert_int_equal(qv_store_create(st, dup, &err), QV_EEXIST);
            assert_non_null(strstr(err.msg, "Beta_2"));
            free(dup); /* stays the caller's on failure */
        }
        if (cycle == 8) { /* gamma-3 was dropped in cycle 5: create it again, empty */
            assert_false(mc[2].exists);
            create_coll(st, &mc[2]);
            check_coll(st, &mc[2]);
        }
        /* the list is in name order (uppercase first) */
        qv_coll_t **list;
        size_t nlist;
        assert_int_equal(qv_store_list(st, &list, &nlist), QV_OK);
        size_t want_n = 0;
        for (int i = 0; i < NCOLL; i++)
            want_n += mc[i].exists;
        assert_int_equal(nlist, want_n);
        for (size_t i = 1; i < nlist; i++)
            assert_true(strcmp(list[i - 1]->schema->name, list[i]->schema->name) < 0);
        qv_store_list_free(list, nlist);

        size_t sealed_at_open[NCOLL], sealed_at_close[NCOLL];
        uint32_t flushed = 0; /* a collection dropped and recreated in the cycle may end with fewer segments */
        total_sealed(st, mc, sealed_at_open);
        for (int op = 0; op < 150; op++) {
            mcoll_t *m = &mc[rng_below(&rng, NCOLL)];
            if (!m->exists)
                continue;
            random_write(st, m, &rng, &last_seq);
            if (mode == M_FLUSH_ONE && op == 75) { /* flush one collection, twice */
                qv_coll_t *c = get_coll(st, m->name);
                uint32_t sealed = 99;
                qv_err_t err;
                qv_coll_rdlock(c);
                uint32_t growing_rows = c->growing->rows;
                qv_coll_unlock(c);
                assert_int_equal(qv_store_flush(st, c, &sealed, &err), QV_OK);
                assert_int_equal(sealed, growing_rows > 0);
                flushed += sealed;
                qv_coll_rdlock(c);
                assert_int_equal(c->growing->rows, 0);
                assert_true(c->wal_bytes == 0);
                qv_coll_unlock(c);
                assert_int_equal(qv_store_flush(st, c, &sealed, &err), QV_OK); /* nothing left to seal */
                assert_int_equal(sealed, 0);
                qv_coll_release(c);
            }
            if (cycle == 5 && op == 100) { /* drop with a reference held */
                qv_coll_t *c = get_coll(st, mc[2].name);
                qv_err_t err;
                assert_int_equal(qv_store_drop(st, mc[2].name, strlen(mc[2].name), &err), QV_OK);
                mc[2].exists = false;
                check_coll(st, &mc[2]);
                assert_int_equal(qv_store_drop(st, mc[2].name, strlen(mc[2].name), &err), QV_ENOTFOUND);
                uint32_t keys[1] = {1};
                uint64_t seq;
                assert_int_equal(model_upsert(st, c, &mc[2], keys, 1, &rng, &seq, &err), QV_ENOTFOUND);
                assert_int_equal(qv_store_flush(st, c, NULL, &err), QV_ENOTFOUND);
                qv_coll_release(c);
            }
            if (mode != M_NONE && op == 110) /* compact while the writes go on */
                compactions += compact(st, m->name) != 0;
            if (cycle == 2 && op == 20) { /* drop and immediately recreate the same name */
                qv_err_t err;
                assert_int_equal(qv_store_drop(st, mc[0].name, strlen(mc[0].name), &err), QV_OK);
                mc[0].exists = false;
                check_coll(st, &mc[0]);
                create_coll(st, &mc[0]);
                check_coll(st, &mc[0]);
            }
        }
        if (mode == M_FLUSH_ALL) {
            uint32_t sealed = 0;
            qv_err_t err;
            assert_int_equal(qv_store_flush(st, NULL, &sealed, &err), QV_OK);
            assert_true(sealed >= 1);
            flushed += sealed;
            assert_true(qv_store_wal_bytes(st) == 0);
            wait_compactions(st);
            for (int i = 0; i < NCOLL; i++) /* then merge everything sealed */
                if (mc[i].exists)
                    compactions += compact(st, mc[i].name) != 0;
        }
        if (mode != M_NONE)
            compactions_done = wait_compactions(st);
        wait_persisted(st);
        segshape_t before[NCOLL][256];
        size_t nbefore[NCOLL];
        for (int i = 0; i < NCOLL; i++) {
            check_coll(st, &mc[i]);
            nbefore[i] = snapshot(st, mc[i].name, before[i], 256);
        }
        /* the cycles without a seal really had none, the others sealed something */
        total_sealed(st, mc, sealed_at_close);
        bool grew = false, same = true;
        for (int i = 0; i < NCOLL; i++) {
            grew |= sealed_at_close[i] > sealed_at_open[i];
            same &= sealed_at_close[i] == sealed_at_open[i];
        }
        if (mode == M_NONE && !same)
            fail_msg("cycle %d: sealed without a reason", cycle);
        if (mode != M_NONE && !grew && !flushed && !compactions)
            fail_msg("cycle %d: nothing sealed", cycle);
        if (mode == M_NONE)
            assert_true(qv_store_wal_bytes(st) > 0);
        qv_store_close(st);

        st = open_store(dir, 0, 0);
        for (int i = 0; i < NCOLL; i++) {
            check_coll(st, &mc[i]);
            segshape_t after[256];
            size_t nafter = snapshot(st, mc[i].name, after, 256);
            char what[160];
            snprintf(what, sizeof what, "cycle %d '%s'", cycle, mc[i].name);
            compare_shapes(what, before[i], nbefore[i], after, nafter);
        }
        qv_store_close(st);
    }
    assert_true(compactions >= 4 && compactions_done >= 1);
    /* the final state has sealed segments */
    qv_store_t *st = open_store(dir, 0, 0);
    segshape_t shape[256];
    assert_true(snapshot(st, "alpha", shape, 256) >= 2);
    qv_store_close(st);
    for (int i = 0; i < NCOLL; i++)
        free(mc[i].pts);
    remove_tmpdir(dir);
}

/* Argument checks that fail before anything is logged. */
static void test_rejections(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    qv_store_t *st = open_store(dir, 0, 0);
    mcoll_t mc;
    mcoll_init(&mc, "rej", 4, QV_METRIC_L2, true, 20);
    create_coll(st, &mc);
    qv_coll_t *c = get_coll(st, "rej");
    qv_err_t err;
    uint64_t seq = 7;
    assert_int_equal(qv_store_upsert(st, c, NULL, 0, &seq, &err), QV_OK);
    assert_true(seq == 0);
    uint32_t deleted = 5;
    assert_int_equal(qv_store_delete(st, c, NULL, 0, &deleted, &err), QV_OK);
    assert_int_equal(deleted, 0);
    qv_str_t ids[2] = {{"a", 1}, {"", 0}};
    qv_err_clear(&err);
    assert_int_equal(qv_store_delete(st, c, ids, 2, &deleted, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "id 1 is empty"));
    char big[QV_ID_MAX + 1];
    memset(big, 'b', sizeof big);
    ids[1] = (qv_str_t){big, sizeof big};
    assert_int_equal(qv_store_delete(st, c, ids, 2, &deleted, &err), QV_EINVAL);
    assert_int_equal(qv_store_delete(st, c, ids, QV_BATCH_MAX + 1, &deleted, &err), QV_EINVAL);
    assert_int_equal(qv_store_get(st, "nope", 4, &c, &err), QV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    assert_int_equal(qv_store_drop(st, "nope", 4, &err), QV_ENOTFOUND);
    check_coll(st, &mc);
    assert_int_equal(qv_store_wal_bytes(st), 0); /* nothing was logged */
    qv_coll_release(c);
    qv_store_close(st);
    free(mc.pts);
    remove_tmpdir(dir);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Concurrent writers */

#define NWRITERS 8
#define PER_WRITER 150

typedef struct {
    qv_store_t *st;
    qv_coll_t *c;
    mcoll_t *mc;
    uint32_t lo, hi;
    uint64_t rng;
    int errors;
    char msg[QV_ERR_MSG_MAX + 64];
} worker_t;

static void *writer_main(void *arg)
{
    worker_t *w = arg;
    uint32_t keys[8];
    for (int op = 0; op < 120 && !w->errors; op++) {
        qv_err_t err;
        if (rng_chance(&w->rng, 70)) {
            uint32_t n = 1 + rng_below(&w->rng, 8);
            pick_keys(&w->rng, w->lo, w->hi, keys, n);
            uint64_t seq;
            if (model_upsert(w->st, w->c, w->mc, keys, n, &w->rng, &seq, &err) != QV_OK) {
                w->errors++;
                snprintf(w->msg, sizeof w->msg, "upsert: %s", err.msg);
            }
        } else {
            uint32_t n = 1 + rng_below(&w->rng, 4), deleted, want;
            for (uint32_t i = 0; i < n; i++)
                keys[i] = w->lo + rng_below(&w->rng, w->hi - w->lo);
            if (model_delete(w->st, w->c, w->mc, keys, n, &deleted, &want, &err) != QV_OK || deleted != want) {
                w->errors++;
                snprintf(w->msg, sizeof w->msg, "delete: deleted %u, want %u (%s)", deleted, want, err.msg);
            }
        }
    }
    return NULL;
}

typedef struct {
    qv_coll_t *c;
    qv_pool_t *pool;
    volatile int stop;
    int errors, rounds;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    float q[4] = {0.5f, -0.25f, 0.125f, 1};
    qv_hit_t hits[10];
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        uint64_t count;
        uint32_t nhits;
        qv_err_t err;
        /* a read view, no lock: the writers' seals and compaction swaps go on meanwhile (the TSan build checks it) */
        qv_read_t *v;
        if (qv_read_begin(r->c, &v, &err) != QV_OK) {
            r->errors++;
            continue;
        }
        qv_search_req_t req = {.query = q, .k = 10};
        if (qv_count(v, r->pool, NULL, (qv_stop_t){0, NULL}, &count, &err) != QV_OK || count > NWRITERS * PER_WRITER)
            r->errors++;
        /* fewer than 10 hits is possible: a delete applied after qv_read_begin may already hide a row */
        if (qv_search_exact(v, r->pool, &req, hits, &nhits, &err) != QV_OK || nhits > 10)
            r->errors++;
        for (uint32_t i = 1; i < nhits; i++)
            if (hits[i].score < hits[i - 1].score)
                r->errors++;
        for (uint32_t i = 0; i < nhits; i++) /* the hit's row is readable until qv_read_end */
            if (qv_strcol_get(&hits[i].seg->ids, hits[i].row).len == 0)
                r->errors++;
        qv_rowref_t refs[16];
        uint32_t got;
        bool more;
        if (qv_scroll(v, NULL, (qv_str_t){"", 0}, 16, (qv_stop_t){0, NULL}, refs, &got, &more, &err) != QV_OK)
            r->errors++;
        for (uint32_t i = 1; i < got; i++) {
            qv_str_t a = qv_strcol_get(&refs[i - 1].seg->ids, refs[i - 1].row), b = qv_strcol_get(&refs[i].seg->ids,
                                                                                                refs[i].row);
            int cmp = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
            if (cmp > 0 || (cmp == 0 && a.len >= b.len))
                r->errors++; /* ascending, distinct */
        }
        qv_read_end(v);
        r->rounds++;
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    /* small seals, and automatic compaction so that swaps run between the writers' groups */
    qv_store_opts_t o = {.path = dir, .seal_rows = 64, .seal_wal_bytes = 16384, .compact_deleted_ratio = 0.15,
                         .compact_small_segments = 3};
    qv_store_t *st = open_store_opts(&o);
    mcoll_t mc;
    mcoll_init(&mc, "conc", 4, QV_METRIC_L2, true, NWRITERS * PER_WRITER);
    create_coll(st, &mc);
    qv_coll_t *c = get_coll(st, "conc");
    qv_pool_t *pool = qv_pool_create(1);
    reader_t rd = {.c = c, .pool = pool};
    pthread_t rth, th[NWRITERS];
    worker_t w[NWRITERS];
    assert_int_equal(pthread_create(&rth, NULL, reader_main, &rd), 0);
    for (int i = 0; i < NWRITERS; i++) {
        w[i] = (worker_t){.st = st, .c = c, .mc = &mc, .lo = (uint32_t)i * PER_WRITER,
                          .hi = (uint32_t)(i + 1) * PER_WRITER, .rng = 1000 + (uint64_t)i};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < NWRITERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    __atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(rth, NULL), 0);
    for (int i = 0; i < NWRITERS; i++)
        if (w[i].errors)
            fail_msg("writer %d: %s", i, w[i].msg);
    assert_int_equal(rd.errors, 0);
    assert_true(rd.rounds > 0);
    assert_true(wait_compactions(st) >= 1); /* automatic compactions ran and finished */
    wait_persisted(st);
    qv_coll_rdlock(c);
    size_t nsealed = c->nsealed;
    qv_coll_unlock(c);
    assert_true(nsealed >= 2); /* seals happened while the writers ran */
    qv_coll_release(c);
    check_coll(st, &mc);
    segshape_t before[256], after[256];
    size_t nb = snapshot(st, "conc", before, 256);
    qv_store_close(st);

    st = open_store(dir, 0, 0);
    check_coll(st, &mc);
    size_t na = snapshot(st, "conc", after, 256);
    compare_shapes("conc", before, nb, after, na);
    qv_store_close(st);
    qv_pool_destroy(pool);
    free(mc.pts);
    remove_tmpdir(dir);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Exact search and count against brute force over the model */

static bool ref_match_value(int field, const mpt_t *p, const qv_value_t *v)
{
    switch (field) {
    case F_INT: return p->i == v->i;
    case F_DBL: return p->d == v->d;
    case F_KW: return str_eq(words[p->kw], v->kw);
    case F_BOOL: return p->b == v->b;
    case F_TAGS:
        for (int e = 0; e < p->ntags; e++)
            if (str_eq(words[p->tags[e]], v->kw))
                return true;
        return false;
    }
    return false;
}

static bool ref_eval(const qv_filter_t *f, const mpt_t *p)
{
    if (!f)
        return true;
    switch (f->kind) {
    case QV_F_ALL:
        for (uint32_t k = 0; k < f->nkids; k++)
            if (!ref_eval(f->kids[k], p))
                return false;
        return true;
    case QV_F_ANY:
        for (uint32_t k = 0; k < f->nkids; k++)
            if (ref_eval(f->kids[k], p))
                return true;
        return false;
    case QV_F_NOT: return !ref_eval(f->kids[0], p);
    case QV_F_RANGE: {
        if (!p->has[f->field])
            return false;
        double x = f->field == F_INT ? (double)p->i : p->d;
        return (!f->has_lo || (f->lo_incl ? x >= f->lo : x > f->lo)) &&
               (!f->has_hi || (f->hi_incl ? x <= f->hi : x < f->hi));
    }
    default:
        if (!p->has[f->field])
            return false;
        for (uint32_t v = 0; v < f->nvalues; v++)
            if (ref_match_value(f->field, p, &f->values[v]))
                return true;
        return false;
    }
}

static qv_filter_t *cond(uint8_t kind, const char *field, uint32_t nvalues, const qv_value_t *values)
{
    qv_filter_t *f = qv_filter_new(kind);
    f->field_name = (qv_str_t){field, (uint32_t)strlen(field)};
    f->nvalues = nvalues;
    if (nvalues) {
        f->values = calloc(nvalues, sizeof *f->values);
        memcpy(f->values, values, nvalues * sizeof *values);
    }
    return f;
}

static qv_filter_t *group(uint8_t kind, int n, qv_filter_t *a, qv_filter_t *b)
{
    qv_filter_t *f = qv_filter_new(kind);
    f->nkids = (uint32_t)n;
    f->kids = calloc(2, sizeof *f->kids);
    f->kids[0] = a;
    f->kids[1] = b;
    return f;
}

#define NFILTERS 6

static void make_filters(qv_filter_t **fs, const qv_schema_t *s)
{
    fs[0] = NULL;
    fs[1] = cond(QV_F_RANGE, "n_int", 0, NULL); /* -2 <= n_int < 3 */
    fs[1]->has_lo = fs[1]->lo_incl = fs[1]->has_hi = true;
    fs[1]->lo = -2;
    fs[1]->hi = 3;
    fs[2] = group(QV_F_ANY, 2, cond(QV_F_EQ, "kw", 1, &(qv_value_t){.type = QV_FT_KEYWORD, .kw = {"red", 3}}),
                  group(QV_F_NOT, 1, cond(QV_F_EQ, "flag", 1, &(qv_value_t){.type = QV_FT_BOOL, .b = true}), NULL));
    fs[3] = cond(QV_F_IN, "tags", 2,
                 (qv_value_t[]){{.type = QV_FT_KEYWORD, .kw = {"blue", 4}}, {.type = QV_FT_KEYWORD, .kw = {"", 0}}});
    qv_filter_t *r = cond(QV_F_RANGE, "n_dbl", 0, NULL); /* n_dbl > 1.5 and n_int in {1, 2}: very selective */
    r->has_lo = true;
    r->lo = 1.5;
    fs[4] = group(QV_F_ALL, 2, r,
                  cond(QV_F_IN, "n_int", 2, (qv_value_t[]){{.type = QV_FT_INT64, .i = 1}, {.type = QV_FT_INT64, .i = 2}}));
    fs[5] = cond(QV_F_EQ, "kw", 1, &(qv_value_t){.type = QV_FT_KEYWORD, .kw = {"purple", 6}}); /* nothing */
    qv_err_t err;
    for (int i = 1; i < NFILTERS; i++)
        if (qv_filter_validate(fs[i], s, &err) != QV_OK)
            fail_msg("filter %d: %s", i, err.msg);
}

typedef struct {
    double score;
    uint32_t key;
} scored_t;

static int metric_better_first;

static int cmp_scored(const void *a, const void *b)
{
    double x = ((const scored_t *)a)->score, y = ((const scored_t *)b)->score;
    int c = (x > y) - (x < y);
    return metric_better_first ? -c : c;
}

static double ref_score(uint8_t metric, const float *q, const float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t d = 0; d < dim; d++)
        s += metric == QV_METRIC_L2 ? ((double)q[d] - v[d]) * ((double)q[d] - v[d]) : (double)q[d] * v[d];
    return s;
}

/* One search compared with brute force over the model. Exact: the same hits (up to ties). Through the indexes:
 * only live rows passing the filter, with their true scores, sorted; returns how many hits are among the true
 * top k (recall numerator). */
static uint32_t check_search(qv_coll_t *c, qv_pool_t *pool, const mcoll_t *mc, const qv_filter_t *f, const float *q,
                             uint32_t k, scored_t *ref, bool exact)
{
    uint32_t nref = 0;
    for (uint32_t key = 0; key < mc->nkeys; key++)
        if (mc->pts[key].live && ref_eval(f, &mc->pts[key]))
            ref[nref++] = (scored_t){ref_score(mc->metric, q, mc->pts[key].vec, mc->dim), key};
    metric_better_first = mc->metric != QV_METRIC_L2;
    qsort(ref, nref, sizeof *ref, cmp_scored);

    qv_hit_t *hits = calloc(k, sizeof *hits);
    uint32_t nhits = 12345;
    qv_err_t err;
    qv_search_req_t req = {.query = q, .k = k, .filter = f, .ef = 100};
    qv_read_t *v;
    assert_int_equal(qv_read_begin(c, &v, &err), QV_OK);
    if ((exact ? qv_search_exact(v, pool, &req, hits, &nhits, &err) : qv_search(v, pool, &req, hits, &nhits, &err)) !=
        QV_OK)
        fail_msg("search: %s", err.msg);
    if (exact)
        assert_int_equal(nhits, k < nref ? k : nref);
    else
        assert_true(nhits <= (k < nref ? k : nref));
    uint32_t found = 0;
    bool *seen = calloc(mc->nkeys, 1);
    for (uint32_t i = 0; i < nhits; i++) {
        assert_false(qv_seg_is_deleted(hits[i].seg, hits[i].row));
        uint32_t key = key_of(qv_strcol_get(&hits[i].seg->ids, hits[i].row));
        assert_true(key < mc->nkeys);
        assert_true(mc->pts[key].live);
        assert_false(seen[key]);
        seen[key] = true;
        assert_true(ref_eval(f, &mc->pts[key]));
        double want = ref_score(mc->metric, q, mc->pts[key].vec, mc->dim);
        double tol = 1e-4 * (1 + fabs(want));
        if (fabs(hits[i].score - want) > tol)
            fail_msg("hit %u key %u: score %.7g, brute force %.7g", i, key, hits[i].score, want);
        /* the i-th best of brute force, up to float rounding (ties may come in either order) */
        if (exact && fabs(hits[i].score - ref[i].score) > tol)
            fail_msg("hit %u: score %.7g, brute force's %u-th best %.7g (k %u)", i, hits[i].score, i, ref[i].score, k);
        double kth = ref[(k < nref ? k : nref) - 1].score;
        found += mc->metric == QV_METRIC_L2 ? want <= kth + tol : want >= kth - tol;
        if (i)
            assert_true(mc->metric == QV_METRIC_L2 ? hits[i - 1].score <= hits[i].score
                                                   : hits[i - 1].score >= hits[i].score);
    }
    qv_read_end(v);
    free(seen);
    free(hits);
    return found;
}

static void check_count(qv_coll_t *c, qv_pool_t *pool, const mcoll_t *mc, const qv_filter_t *f)
{
    uint64_t want = 0, got = 0;
    for (uint32_t key = 0; key < mc->nkeys; key++)
        want += mc->pts[key].live && ref_eval(f, &mc->pts[key]);
    qv_err_t err;
    qv_read_t *v;
    assert_int_equal(qv_read_begin(c, &v, &err), QV_OK);
    assert_int_equal(qv_count(v, pool, f, (qv_stop_t){0, NULL}, &got, &err), QV_OK);
    qv_read_end(v);
    if (got != want)
        fail_msg("count: %llu, model %llu", (unsigned long long)got, (unsigned long long)want);
}

/* Searches every collection with every filter and several k. exact = false goes through the segments' indexes:
 * then unfiltered recall@10 must be at least 0.9. */
/* qv_search_batch against qv_search, query by query on the same view: the same hits, scores bit for bit. 70 queries:
 * more than one matrix product's worth. */
static void check_batch(qv_coll_t *c, qv_pool_t *pool, const mcoll_t *mc, const qv_filter_t *f, uint32_t k,
                        uint64_t *rng, bool exact)
{
    enum { NQ = 70 };
    float *qs = malloc((size_t)NQ * mc->dim * sizeof *qs);
    const float *qp[NQ];
    qv_hit_t *all = calloc((size_t)NQ * k, sizeof *all), *one = calloc(k, sizeof *one), *per[NQ];
    uint32_t counts[NQ];
    qv_err_t err;
    for (int q = 0; q < NQ; q++) {
        for (uint32_t d = 0; d < mc->dim; d++)
            qs[q * mc->dim + d] = (float)(rng_unit(rng) * 2 - 1);
        assert_int_equal(qv_query_validate(c->schema, qs + q * mc->dim, mc->dim, &err), QV_OK);
        qp[q] = qs + q * mc->dim;
        per[q] = all + (size_t)q * k;
    }
    qv_search_req_t req = {.k = k, .filter = f, .ef = 100, .exact = exact};
    qv_read_t *v;
    assert_int_equal(qv_read_begin(c, &v, &err), QV_OK);
    if (qv_search_batch(v, pool, &req, qp, NQ, per, counts, &err) != QV_OK)
        fail_msg("batch: %s", err.msg);
    for (int q = 0; q < NQ; q++) {
        uint32_t n;
        req.query = qp[q];
        assert_int_equal(qv_search(v, pool, &req, one, &n, &err), QV_OK);
        assert_int_equal(counts[q], n);
        for (uint32_t i = 0; i < n; i++) {
            assert_ptr_equal(per[q][i].seg, one[i].seg);
            assert_int_equal(per[q][i].row, one[i].row);
            assert_memory_equal(&per[q][i].score, &one[i].score, sizeof(float));
        }
    }
    qv_read_end(v);
    free(qs);
    free(all);
    free(one);
}

static void run_searches(qv_store_t *st, qv_pool_t *pool, mcoll_t *mcs, int n, uint64_t *rng, bool exact)
{
    for (int i = 0; i < n; i++) {
        mcoll_t *mc = &mcs[i];
        qv_coll_t *c = get_coll(st, mc->name);
        qv_filter_t *fs[NFILTERS];
        make_filters(fs, c->schema);
        scored_t *ref = calloc(mc->nkeys, sizeof *ref);
        const uint32_t ks[] = {1, 7, 100, mc->nkeys + 5};
        uint64_t matching[NFILTERS] = {0};
        for (int f = 0; f < NFILTERS; f++)
            for (uint32_t key = 0; key < mc->nkeys; key++)
                matching[f] += mc->pts[key].live && ref_eval(fs[f], &mc->pts[key]);
        assert_true(matching[4] > 0 && matching[4] < 100); /* the selective filter is selective */
        assert_int_equal(matching[5], 0);
        uint64_t found10 = 0, want10 = 0;
        for (int qn = 0; qn < 12; qn++) {
            float q[MAXDIM];
            for (uint32_t d = 0; d < mc->dim; d++)
                q[d] = (float)(rng_unit(rng) * 2 - 1);
            qv_err_t err;
            assert_int_equal(qv_query_validate(c->schema, q, mc->dim, &err), QV_OK); /* normalises for COSINE */
            for (int f = 0; f < NFILTERS; f++)
                for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++)
                    check_search(c, pool, mc, fs[f], q, ks[k], ref, exact);
            found10 += check_search(c, pool, mc, NULL, q, 10, ref, exact);
            want10 += 10;
        }
        if ((double)found10 < 0.9 * (double)want10)
            fail_msg("'%s': recall@10 through the indexes %.3f", mc->name, (double)found10 / (double)want10);
        for (int f = 0; f < NFILTERS; f++)
            for (size_t k = 0; k < 3; k++)
                check_batch(c, pool, mc, fs[f], ks[k], rng, exact);
        for (int f = 0; f < NFILTERS; f++)
            check_count(c, pool, mc, fs[f]);
        for (int f = 0; f < NFILTERS; f++)
            qv_filter_free(fs[f]);
        free(ref);
        qv_coll_release(c);
    }
}

/* Count and Scroll give up per block when the deadline passes or the client cancels, and say which. */
static void test_long_reads_stop(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    qv_store_t *st = open_store(dir, 1000, 0);
    mcoll_t mc;
    mcoll_init(&mc, "stop", 4, QV_METRIC_L2, true, 3000);
    create_coll(st, &mc);
    qv_coll_t *c = get_coll(st, "stop");
    uint64_t rng = 99, seq;
    qv_err_t err;
    uint32_t keys[100];
    for (uint32_t base = 0; base < mc.nkeys; base += 100) {
        for (uint32_t j = 0; j < 100; j++)
            keys[j] = base + j;
        assert_int_equal(model_upsert(st, c, &mc, keys, 100, &rng, &seq, &err), QV_OK);
    }
    qv_pool_t *pool = qv_pool_create(1);
    qv_filter_t *f = qv_filter_new(QV_F_NOT); /* not(any_of(kw, ...)): a filter, so Count scans */
    f->nkids = 1;
    f->kids = calloc(1, sizeof *f->kids);
    f->kids[0] = qv_filter_new(QV_F_IN);
    f->kids[0]->field_name = (qv_str_t){"kw", 2};
    f->kids[0]->nvalues = 1;
    f->kids[0]->values = calloc(1, sizeof *f->kids[0]->values);
    f->kids[0]->values[0] = (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"none", 4}};
    assert_int_equal(qv_filter_validate(f, c->schema, &err), QV_OK);
    atomic_bool cancelled;
    atomic_init(&cancelled, false);
    uint64_t n = 0;
    qv_rowref_t refs[10];
    uint32_t got;
    bool more;
    qv_read_t *v;
    assert_int_equal(qv_read_begin(c, &v, &err), QV_OK);
    assert_int_equal(qv_count(v, pool, f, (qv_stop_t){qv_now_ns() + 60000000000LL, &cancelled}, &n, &err), QV_OK);
    assert_int_equal(n, mc.nkeys);
    assert_int_equal(qv_count(v, pool, f, (qv_stop_t){1, NULL}, &n, &err), QV_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "deadline"));
    assert_int_equal(qv_scroll(v, f, (qv_str_t){"", 0}, 10, (qv_stop_t){1, NULL}, refs, &got, &more, &err),
                     QV_ETIMEDOUT);
    atomic_store(&cancelled, true);
    assert_int_equal(qv_count(v, pool, f, (qv_stop_t){0, &cancelled}, &n, &err), QV_ECANCELLED);
    assert_int_equal(qv_scroll(v, f, (qv_str_t){"", 0}, 10, (qv_stop_t){0, &cancelled}, refs, &got, &more, &err),
                     QV_ECANCELLED);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_int_equal(qv_scroll(v, f, (qv_str_t){"", 0}, 10, (qv_stop_t){0, NULL}, refs, &got, &more, &err), QV_OK);
    assert_int_equal(got, 10);
    qv_read_end(v);
    qv_filter_free(f);
    qv_pool_destroy(pool);
    qv_coll_release(c);
    qv_store_close(st);
    free(mc.pts);
    remove_tmpdir(dir);
}

static void test_search(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    qv_store_t *st = open_store(dir, 300, 0);
    mcoll_t mc[3];
    mcoll_init(&mc[0], "s_l2", 8, QV_METRIC_L2, true, 1200);
    mcoll_init(&mc[1], "s_ip", 8, QV_METRIC_IP, true, 1200);
    mcoll_init(&mc[2], "s_cos", 7, QV_METRIC_COSINE, true, 1200);
    uint64_t rng = 4242;
    for (int i = 0; i < 3; i++) {
        create_coll(st, &mc[i]);
        qv_coll_t *c = get_coll(st, mc[i].name);
        qv_err_t err;
        uint32_t keys[40];
        for (uint32_t base = 0; base < mc[i].nkeys; base += 40) { /* everything once */
            for (uint32_t j = 0; j < 40; j++)
                keys[j] = base + j;
            uint64_t seq;
            assert_int_equal(model_upsert(st, c, &mc[i], keys, 40, &rng, &seq, &err), QV_OK);
        }
        for (int round = 0; round < 10; round++) { /* replacements and deletes across sealed and growing rows */
            uint64_t seq;
            uint32_t deleted, want;
            pick_keys(&rng, 0, mc[i].nkeys, keys, 30);
            assert_int_equal(model_upsert(st, c, &mc[i], keys, 30, &rng, &seq, &err), QV_OK);
            pick_keys(&rng, 0, mc[i].nkeys, keys, 20);
            assert_int_equal(model_delete(st, c, &mc[i], keys, 20, &deleted, &want, &err), QV_OK);
            assert_int_equal(deleted, want);
        }
        qv_coll_rdlock(c);
        assert_true(c->nsealed >= 3);
        assert_true(c->growing->rows > 0);
        qv_coll_unlock(c);
        qv_coll_release(c);
        check_coll(st, &mc[i]);
    }
    qv_pool_t *pool = qv_pool_create(2);
    assert_non_null(pool);
    run_searches(st, pool, mc, 3, &rng, true);
    for (int i = 0; i < 3; i++)
        assert_true(wait_indexes(st, mc[i].name) >= 3);
    run_searches(st, pool, mc, 3, &rng, true); /* exact ignores the indexes */
    run_searches(st, pool, mc, 3, &rng, false);
    qv_store_close(st);
    st = open_store(dir, 0, 0); /* the same answers from recovered segments and their stored indexes */
    run_searches(st, pool, mc, 3, &rng, true);
    for (int i = 0; i < 3; i++)
        assert_true(wait_indexes(st, mc[i].name) >= 3);
    run_searches(st, pool, mc, 3, &rng, false);
    qv_store_close(st);
    qv_pool_destroy(pool);
    for (int i = 0; i < 3; i++)
        free(mc[i].pts);
    remove_tmpdir(dir);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Corruption on reopen, through the RocksDB C API */

enum { CF_DEFAULT_, CF_META_, CF_WAL_, CF_SEG_, CF_KEYS_, CF_DEL_, CF_IDX_, NCF };

typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[NCF];
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
} raw_t;

static void raw_open(raw_t *r, const char *dir)
{
    static const char *names[NCF] = {"default", "meta", "wal", "seg", "keys", "del", "idx"};
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    r->opts = rocksdb_options_create();
    const rocksdb_options_t *cfo[NCF];
    for (int i = 0; i < NCF; i++)
        cfo[i] = r->opts;
    char *e = NULL;
    r->db = rocksdb_open_column_families(r->opts, path, NCF, names, cfo, r->cf, &e);
    if (e)
        fail_msg("raw open: %s", e);
    r->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo, 1);
    r->ro = rocksdb_readoptions_create();
}

static void raw_close(raw_t *r)
{
    for (int i = 0; i < NCF; i++)
        rocksdb_column_family_handle_destroy(r->cf[i]);
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->opts);
    rocksdb_writeoptions_destroy(r->wo);
    rocksdb_readoptions_destroy(r->ro);
}

static void raw_put(raw_t *r, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    char *e = NULL;
    rocksdb_put_cf(r->db, r->wo, r->cf[cf], k, kl, v, vl, &e);
    if (e)
        fail_msg("raw put: %s", e);
}

static void raw_del(raw_t *r, int cf, const void *k, size_t kl)
{
    char *e = NULL;
    rocksdb_delete_cf(r->db, r->wo, r->cf[cf], k, kl, &e);
    if (e)
        fail_msg("raw delete: %s", e);
}

/* A copy of the value under k, or NULL. */
static uint8_t *raw_get(raw_t *r, int cf, const void *k, size_t kl, size_t *vl)
{
    char *e = NULL;
    char *v = rocksdb_get_cf(r->db, r->ro, r->cf[cf], k, kl, vl, &e);
    if (e)
        fail_msg("raw get: %s", e);
    if (!v)
        return NULL;
    uint8_t *copy = test_dup(v, *vl);
    rocksdb_free(v);
    return copy;
}

/* The nth key (0-based) of a column family, copied into key; returns its length, 0 if there is none. */
static size_t raw_nth_key(raw_t *r, int cf, int nth, uint8_t *key)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cf[cf]);
    size_t kl = 0;
    rocksdb_iter_seek_to_first(it);
    for (int i = 0; rocksdb_iter_valid(it); rocksdb_iter_next(it), i++) {
        if (i == nth) {
            const char *k = rocksdb_iter_key(it, &kl);
            memcpy(key, k, kl);
            break;
        }
    }
    rocksdb_iter_destroy(it);
    return kl;
}

static int count_keys(raw_t *r, int cf)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cf[cf]);
    int n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_destroy(it);
    return n;
}

static void expect_open_corrupt(const char *dir, const char *what)
{
    qv_store_opts_t o = {.path = dir};
    qv_store_t *st = (qv_store_t *)(uintptr_t)1;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_store_open(&o, &st, &err);
    if (rc != QV_ECORRUPT)
        fail_msg("%s: qv_store_open returned %d (%s), want QV_ECORRUPT", what, rc, err.msg);
    assert_null(st);
    assert_int_equal(err.code, QV_ECORRUPT);
    if (strlen(err.msg) == 0)
        fail_msg("%s: no message", what);
}

typedef enum { EDIT_FLIP, EDIT_TRUNCATE, EDIT_EXTEND, EDIT_SET, EDIT_DELETE, EDIT_ADD } edit_t;

typedef struct {
    const char *what;
    int cf;
    int nth;      /* which key of the column family (for everything but ADD and named keys) */
    const char *named; /* a key given by name ("m", "c", "n"; the collection id is appended for m and c) */
    edit_t edit;
    size_t at;    /* FLIP: byte offset (from the end if at >= length) */
    bool tolerated; /* derived data (index blobs): the store opens and rebuilds */
} damage_t;

static void test_corruption_on_reopen(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    qv_store_t *st = open_store(dir, 0, 0);
    mcoll_t mc;
    mcoll_init(&mc, "cor", 4, QV_METRIC_L2, true, 200);
    create_coll(st, &mc);
    qv_coll_t *c = get_coll(st, "cor");
    uint32_t coll_id = c->schema->id;
    uint64_t rng = 5;
    qv_err_t err;
    uint32_t keys[50], deleted, want, sealed;
    uint64_t seq;
    /* segment 1: keys 0..99; segment 2: replacements of 25 of them and deletes (so segment 1 gets a delete bitmap);
     * then WAL-only writes */
    for (uint32_t b = 0; b < 100; b += 50) {
        for (uint32_t j = 0; j < 50; j++)
            keys[j] = b + j;
        assert_int_equal(model_upsert(st, c, &mc, keys, 50, &rng, &seq, &err), QV_OK);
    }
    assert_int_equal(qv_store_flush(st, c, &sealed, &err), QV_OK);
    pick_keys(&rng, 0, 100, keys, 25);
    assert_int_equal(model_upsert(st, c, &mc, keys, 25, &rng, &seq, &err), QV_OK);
    pick_keys(&rng, 0, 100, keys + 5, 5); /* keys 0..4: replaced rows, now in segment 2 */
    assert_int_equal(model_delete(st, c, &mc, keys, 10, &deleted, &want, &err), QV_OK);
    assert_int_equal(qv_store_flush(st, c, &sealed, &err), QV_OK);
    for (uint32_t j = 0; j < 30; j++)
        keys[j] = 100 + j;
    assert_int_equal(model_upsert(st, c, &mc, keys, 30, &rng, &seq, &err), QV_OK);
    pick_keys(&rng, 0, 130, keys, 5);
    assert_int_equal(model_delete(st, c, &mc, keys, 5, &deleted, &want, &err), QV_OK);
    qv_coll_release(c);
    check_coll(st, &mc);
    assert_int_equal(wait_indexes(st, "cor"), 2); /* so that index blobs are stored too */
    qv_store_close(st);

    raw_t r;
    raw_open(&r, dir);
    assert_int_equal(count_keys(&r, CF_SEG_), 2);  /* one chunk per segment */
    assert_int_equal(count_keys(&r, CF_DEL_), 2);
    assert_int_equal(count_keys(&r, CF_WAL_), 2);
    assert_int_equal(count_keys(&r, CF_KEYS_), 0); /* the id map is rebuilt from the segments, not stored */
    assert_int_equal(count_keys(&r, CF_IDX_), 2);
    raw_close(&r);

    const damage_t cases[] = {
        {"segment chunk byte flipped", CF_SEG_, 0, NULL, EDIT_FLIP, 100, false},
        {"segment chunk last byte flipped", CF_SEG_, 1, NULL, EDIT_FLIP, ~(size_t)0, false},
        {"segment chunk truncated", CF_SEG_, 1, NULL, EDIT_TRUNCATE, 0, false},
        {"segment chunk extended", CF_SEG_, 0, NULL, EDIT_EXTEND, 0, false},
        {"segment chunk missing", CF_SEG_, 0, NULL, EDIT_DELETE, 0, false},
        {"extra segment chunk", CF_SEG_, 0, NULL, EDIT_ADD, 0, false},
        {"manifest byte flipped", CF_META_, 0, "m", EDIT_FLIP, 6, false},
        {"manifest truncated", CF_META_, 0, "m", EDIT_TRUNCATE, 0, false},
        {"manifest missing", CF_META_, 0, "m", EDIT_DELETE, 0, false},
        {"schema byte flipped", CF_META_, 0, "c", EDIT_FLIP, 12, false},
        {"collection counter below the collection id", CF_META_, 0, "n", EDIT_SET, 0, false},
        {"WAL record byte flipped", CF_WAL_, 0, NULL, EDIT_FLIP, 30, false},
        {"WAL record truncated", CF_WAL_, 1, NULL, EDIT_TRUNCATE, 0, false},
        {"WAL record under another key", CF_WAL_, 0, NULL, EDIT_ADD, 0, false},
        {"delete bitmap byte flipped", CF_DEL_, 0, NULL, EDIT_FLIP, 9, false},
        {"delete bitmap truncated", CF_DEL_, 0, NULL, EDIT_TRUNCATE, 0, false},
        {"index blob byte flipped", CF_IDX_, 0, NULL, EDIT_FLIP, 40, true},
        {"index blob truncated", CF_IDX_, 1, NULL, EDIT_TRUNCATE, 0, true},
        {"index blob missing", CF_IDX_, 0, NULL, EDIT_DELETE, 0, true},
        {"extra index chunk", CF_IDX_, 1, NULL, EDIT_ADD, 0, true},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const damage_t *d = &cases[ci];
        raw_open(&r, dir);
        uint8_t key[512];
        size_t kl;
        if (d->named) {
            key[0] = (uint8_t)d->named[0];
            kl = 1;
            if (d->named[0] != 'n') {
                qv_be32(key + 1, coll_id);
                kl = 5;
            }
        } else {
            kl = raw_nth_key(&r, d->cf, d->nth, key);
            assert_true(kl > 0);
        }
        size_t vl;
        uint8_t *orig = raw_get(&r, d->cf, key, kl, &vl);
        assert_non_null(orig);
        uint8_t *v = malloc(vl + 16);
        memcpy(v, orig, vl);
        uint8_t key2[512];
        size_t kl2 = kl;
        memcpy(key2, key, kl);
        switch (d->edit) {
        case EDIT_FLIP:
            v[d->at < vl ? d->at : vl - 1] ^= 0x10;
            raw_put(&r, d->cf, key, kl, v, vl);
            break;
        case EDIT_TRUNCATE: raw_put(&r, d->cf, key, kl, v, vl - 1); break;
        case EDIT_EXTEND:
            v[vl] = 0;
            raw_put(&r, d->cf, key, kl, v, vl + 1);
            break;
        case EDIT_SET: { /* "n": the next collection id */
            uint32_t one = coll_id;
            raw_put(&r, d->cf, key, kl, &one, 4);
            break;
        }
        case EDIT_DELETE: raw_del(&r, d->cf, key, kl); break;
        case EDIT_ADD:
            if (d->cf == CF_SEG_ || d->cf == CF_IDX_) { /* chunk 1 after a segment's only chunk */
                qv_be32(key2 + 12, 1);
            } else if (d->cf == CF_WAL_) { /* the same record at a later sequence */
                qv_be64(key2 + 4, qv_get_be64(key + 4) + 1000);
            }
            raw_put(&r, d->cf, key2, kl2, v, vl);
            break;
        }
        raw_close(&r);

        if (d->tolerated) { /* opens, serves the right data, and rebuilds the index */
            qv_store_opts_t o = {.path = dir};
            qv_err_t oerr;
            if (qv_store_open(&o, &st, &oerr) != QV_OK)
                fail_msg("%s: qv_store_open failed: %s", d->what, oerr.msg);
            check_coll(st, &mc);
            assert_int_equal(wait_indexes(st, "cor"), 2);
            qv_store_close(st);
        } else {
            expect_open_corrupt(dir, d->what);
        }

        /* undo the damage: the store opens again with everything intact */
        raw_open(&r, dir);
        if (d->edit == EDIT_ADD)
            raw_del(&r, d->cf, key2, kl2);
        else
            raw_put(&r, d->cf, key, kl, orig, vl);
        raw_close(&r);
        st = open_store(dir, 0, 0);
        check_coll(st, &mc);
        qv_store_close(st);
        free(orig);
        free(v);
    }
    /* id-map entries an older version wrote (`keys`, even nonsense ones) are ignored and removed at open */
    raw_open(&r, dir);
    uint8_t stale[16] = {0}, loc[12] = {0};
    qv_be32(stale, coll_id);
    memcpy(stale + 4, "stale-id", 8);
    raw_put(&r, CF_KEYS_, stale, 12, loc, 12);
    raw_close(&r);
    st = open_store(dir, 0, 0);
    check_coll(st, &mc);
    qv_store_close(st);
    raw_open(&r, dir);
    assert_int_equal(count_keys(&r, CF_KEYS_), 0);
    raw_close(&r);
    free(mc.pts);
    remove_tmpdir(dir);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    qv_dist_init(QV_SIMD_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_reopen_cycles),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_long_reads_stop),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_corruption_on_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
