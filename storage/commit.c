/* The commit path: the writer queue, the leader, group commit of data writes, and the public write API.
 *
 * Every mutation is a writer (commit.h) on one queue. The writer at the head is the leader: it takes the run of
 * queued data writes behind it (up to GROUP_MAX), gives each the next sequence number, encodes their WAL records into
 * one RocksDB write batch, writes it with sync (one fsync for the whole group), applies the writes to the in-memory
 * segments in sequence order under each collection's write lock, seals collections over their thresholds, and wakes
 * the group. A write is acknowledged only after its fsync and its apply: acknowledged writes are durable and visible
 * to every read that starts afterwards. Validation happens before a writer joins the queue, so a request that fails
 * validation has written nothing.
 *
 * We do our own leader-based grouping rather than relying on RocksDB's internal write groups because the in-memory
 * apply must happen in log order: with independent rocksdb_write calls two writers could be logged in one order and
 * applied in the other.
 *
 * Every other kind of writer (create, drop, flush, persist, index blob, compaction swap) runs alone in the leader,
 * through the operation table below, so manifest changes are totally ordered with each other and with the writes;
 * their heavy parts (segment blobs, graph builds, compaction copies) run outside it.
 *
 * Locks: the queue mutex q_mu guards the queue and the writers' done flags, and is never held while running a
 * writer (no I/O under it). */
#include "storage/commit.h"

#include <assert.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "common/clock.h"
#include "storage/store_int.h"

#define GROUP_MAX 256

/* ---- applied indexes of external logs (qv_store_apply) ---- */

uint64_t qv_store_applied(qv_store_t *st, uint64_t group)
{
    uint64_t index = 0;
    pthread_mutex_lock(&st->applied_mu);
    for (size_t i = 0; i < st->napplied; i++)
        if (st->applied[i].group == group)
            index = st->applied[i].index;
    pthread_mutex_unlock(&st->applied_mu);
    return index;
}

int qv__applied_set(qv_store_t *st, uint64_t group, uint64_t index)
{
    int rc = QV_OK;
    pthread_mutex_lock(&st->applied_mu);
    size_t i = 0;
    while (i < st->napplied && st->applied[i].group != group)
        i++;
    if (i == st->napplied) {
        if (st->napplied == st->cap_applied) {
            size_t cap = st->cap_applied ? 2 * st->cap_applied : 8;
            struct qv_applied *a = realloc(st->applied, cap * sizeof *a);
            if (!a)
                rc = QV_ENOMEM;
            else
                st->applied = a, st->cap_applied = cap;
        }
        if (rc == QV_OK)
            st->applied[st->napplied++] = (struct qv_applied){group, 0};
    }
    if (rc == QV_OK && index > st->applied[i].index)
        st->applied[i].index = index;
    pthread_mutex_unlock(&st->applied_mu);
    return rc;
}

/* The index an APPLY writer must exceed: the group's applied index, or a higher one taken by an earlier writer of
 * the same run (first .. w, exclusive). */
static uint64_t applied_before(qv_store_t *st, qv_writer_t *first, qv_writer_t *w)
{
    uint64_t have = qv_store_applied(st, w->group);
    for (qv_writer_t *x = first; x != w; x = x->next)
        if (x->op == W_APPLY && x->group == w->group && !x->skipped && x->rc == QV_OK && x->index > have)
            have = x->index;
    return have;
}

/* An APPLY writer's record, re-encoded with this store's sequence number seq into buf (the entry's own seq is the
 * encoder's; the collection is the one the caller resolved). */
static int encode_apply(qv_writer_t *w, uint64_t seq, qv_wbuf_t *buf)
{
    qv_record_t rec;
    int rc = qv_record_decode(w->blob, w->blob_len, w->coll->schema, &rec, w->err);
    if (rc)
        return rc;
    uint32_t coll = w->coll->schema->id;
    rc = rec.op == QV_OP_UPSERT ? qv_record_encode_upsert(buf, coll, seq, w->coll->schema->dim, rec.points, rec.count)
                                 : qv_record_encode_delete(buf, coll, seq, rec.ids, rec.count);
    qv_record_free(&rec);
    if (rc)
        qv_err_set(w->err, rc, "out of memory encoding the write");
    return rc;
}

/* True when the data directory's file system has less free space than the reserve (opts.min_free_bytes). *measured
 * caches the figure for the rest of one batch (UINT64_MAX: not measured yet). A failed statvfs is no verdict. */
static bool low_on_space(qv_store_t *st, uint64_t *measured)
{
    if (!st->opts.min_free_bytes)
        return false;
    if (*measured == UINT64_MAX) {
        struct statvfs fs;
        if (statvfs(st->opts.path, &fs) != 0)
            return false;
        *measured = (uint64_t)fs.f_bavail * fs.f_frsize;
    }
    return *measured < st->opts.min_free_bytes;
}

/* Logs and applies a run of data writes (see the top of this file). */
static void run_group(qv_store_t *st, qv_writer_t *first, qv_writer_t *last)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    size_t *ends = NULL, nw = 0;
    for (qv_writer_t *w = first;; w = w->next) {
        nw++;
        if (w == last)
            break;
    }
    ends = calloc(nw, sizeof *ends);
    size_t i = 0;
    bool any = false;
    uint64_t free_bytes = UINT64_MAX; /* measured once per batch, when it holds an upsert */
    for (qv_writer_t *w = first; ends; w = w->next, i++) {
        uint32_t coll = w->coll->schema->id;
        size_t start = buf.len;
        if (w->coll->dropped) {
            w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection '%s' was dropped", w->coll->schema->name);
        } else if ((w->op == W_UPSERT || w->op == W_UPDATE) && low_on_space(st, &free_bytes)) {
            w->rc = qv_err_set(w->err, QV_ETOOBIG,
                               "not enough disk space: %llu MiB free under %s, below the %llu MiB reserve "
                               "(--min-free-mb); nothing was written. Free space (delete points, drop collections, "
                               "remove backups) and retry",
                               (unsigned long long)(free_bytes >> 20), st->opts.path,
                               (unsigned long long)(st->opts.min_free_bytes >> 20));
        } else if (w->op == W_APPLY && w->index <= applied_before(st, first, w)) {
            w->skipped = true; /* applied before: exactly once */
        } else if (w->op == W_APPLY) {
            w->seq = st->seq + 1;
            if ((w->rc = encode_apply(w, w->seq, &buf)) == QV_OK)
                st->seq++;
            else
                buf.len = start;
        } else if (w->op == W_DELETE_WHERE || w->op == W_UPDATE) {
            w->seq = st->seq + 1;
            if ((w->rc = qv__rewrite_encode(st, w, w->seq, &buf, &w->skipped)) == QV_OK && !w->skipped)
                st->seq++;
            else
                buf.len = start;
        } else {
            w->seq = ++st->seq;
            w->rc = w->op == W_UPSERT
                        ? qv_record_encode_upsert(&buf, coll, w->seq, w->coll->schema->dim, w->pts, w->n)
                        : qv_record_encode_delete(&buf, coll, w->seq, w->ids, w->n);
            if (w->rc)
                qv_err_set(w->err, w->rc, "out of memory encoding the write");
        }
        ends[i] = buf.len;
        if (w->rc == QV_OK && !w->skipped) {
            /* The record bytes are copied into the batch here, so buf may move later. */
            qv_cat_put_wal(&st->cat, b, coll, w->seq, buf.data + start, buf.len - start);
            if (w->op == W_APPLY) /* in the same batch: the entry and the index that says it is applied */
                qv_cat_put_applied(&st->cat, b, w->group, w->index);
            any = true;
        }
        if (w == last)
            break;
    }
    int rc = ends ? QV_OK : QV_ENOMEM;
    qv_err_t werr;
    if (rc == QV_OK && any)
        rc = qv__rocks_write(st, b, "commit", &werr);
    rocksdb_writebatch_destroy(b);

    i = 0;
    for (qv_writer_t *w = first;; w = w->next, i++) {
        if (w->rc == QV_OK && rc != QV_OK) {
            w->rc = qv_err_set(w->err, rc == QV_ENOMEM ? QV_ENOMEM : QV_EUNAVAIL, "%s",
                               rc == QV_ENOMEM ? "out of memory" : werr.msg);
        } else if (w->rc == QV_OK && !w->skipped) {
            if (w->op == W_APPLY && qv__applied_set(st, w->group, w->index) != QV_OK)
                qv__store_fail(st, "out of memory recording an applied index"); /* durable; a restart reads it */
            /* Apply from the encoded record itself, so memory holds exactly what the log holds. */
            size_t start = i ? ends[i - 1] : 0;
            qv_record_t rec;
            qv_err_t derr;
            int arc = qv_record_decode(buf.data + start, ends[i] - start, w->coll->schema, &rec, &derr);
            if (arc == QV_OK) {
                pthread_rwlock_wrlock(&w->coll->lock);
                arc = qv__coll_apply(w->coll, &rec, ends[i] - start, &w->count);
                pthread_rwlock_unlock(&w->coll->lock);
                qv_record_free(&rec);
            }
            if (arc) {
                /* Durable but not fully applied: memory no longer matches the log. Stop taking writes; a restart
                 * replays the log and gets it right. */
                qv__store_fail(st, "write logged but not applied (%s)", qv_strerror(arc));
                w->rc = qv_err_set(w->err, QV_EUNAVAIL, "write logged but not applied (%s); restart required",
                                   qv_strerror(arc));
            }
        }
        if (w == last)
            break;
    }
    free(ends);
    qv_wbuf_free(&buf);

    /* Seal collections over a threshold; a write that triggered it has already been made durable, so a seal failure
     * fails the store, not the write. */
    for (qv_writer_t *w = first;; w = w->next) {
        qv_coll_t *c = w->coll;
        if (!c->dropped && !atomic_load(&st->failed) &&
            (c->growing->rows >= st->opts.seal_rows || c->wal_growing >= st->opts.seal_wal_bytes))
            qv__seal_async(st, c);
        if (!c->dropped && !atomic_load(&st->failed))
            qv__maybe_auto_compact(st, c);
        if (w == last)
            break;
    }
}

/* ---- the operation table ---- */

typedef struct {
    const char *name;
    /* A data write: the leader takes it together with the data writes queued right behind it and commits them as one
     * group (run_group: one WAL batch, one fsync). Otherwise the writer runs alone, through run. */
    bool groups;
    void (*run)(qv_store_t *st, qv_writer_t *w); /* NULL when groups */
} commit_op_t;

static const commit_op_t ops[W_COUNT] = {
    [W_UPSERT] = {"upsert", true, NULL},
    [W_DELETE] = {"delete", true, NULL},
    [W_APPLY] = {"apply", true, NULL},
    [W_DELETE_WHERE] = {"delete_where", true, NULL},
    [W_UPDATE] = {"update", true, NULL},
    [W_CREATE] = {"create", false, qv__run_create},
    [W_DROP] = {"drop", false, qv__run_drop},
    [W_FLUSH] = {"flush", false, qv__run_flush},
    [W_INDEX] = {"index", false, qv__run_index},
    [W_SEG_ID] = {"segment_id", false, qv__run_seg_id},
    [W_COMPACT] = {"compact", false, qv__run_compact},
    [W_PERSIST] = {"persist", false, qv__run_persist},
};

static const commit_op_t *op_of(const qv_writer_t *w)
{
    assert(w->op > 0 && w->op < W_COUNT && ops[w->op].name);
    return &ops[w->op];
}

int qv__commit(qv_store_t *st, qv_writer_t *w)
{
    pthread_cond_init(&w->cv, NULL);
    w->done = false;
    w->next = NULL;
    w->rc = QV_OK;
    pthread_mutex_lock(&st->q_mu);
    if (st->q_tail)
        st->q_tail->next = w;
    else
        st->q_head = w;
    st->q_tail = w;
    while (!w->done && st->q_head != w)
        pthread_cond_wait(&w->cv, &st->q_mu);
    if (w->done) {
        pthread_mutex_unlock(&st->q_mu);
        pthread_cond_destroy(&w->cv);
        return w->rc;
    }
    /* Leader: take w and the data writes queued right behind it. */
    const commit_op_t *op = op_of(w);
    qv_writer_t *last = w;
    if (op->groups) {
        int n = 1;
        while (last->next && op_of(last->next)->groups && n < GROUP_MAX) {
            last = last->next;
            n++;
        }
    }
    pthread_mutex_unlock(&st->q_mu);

    if (atomic_load(&st->failed)) {
        for (qv_writer_t *x = w;; x = x->next) {
            x->rc = qv_err_set(x->err, QV_EUNAVAIL, "store failed after a storage error (%s); restart required",
                               st->fail_reason);
            if (x == last)
                break;
        }
    } else {
        int64_t t0 = qv_mono_ns();
        if (op->groups)
            run_group(st, w, last);
        else
            op->run(st, w);
        int64_t took = qv_mono_ns() - t0;
        atomic_fetch_add_explicit(&st->op_time[w->op].runs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->op_time[w->op].total_ns, took, memory_order_relaxed);
        if (took > atomic_load_explicit(&st->op_time[w->op].max_ns, memory_order_relaxed))
            atomic_store_explicit(&st->op_time[w->op].max_ns, took, memory_order_relaxed); /* only the leader */
    }

    pthread_mutex_lock(&st->q_mu);
    st->q_head = last->next;
    if (!st->q_head)
        st->q_tail = NULL;
    /* A woken writer needs q_mu to return, so its struct stays valid until we unlock; read next first anyway. */
    for (qv_writer_t *x = w;;) {
        qv_writer_t *nx = x->next;
        bool end = x == last;
        x->done = true;
        if (x != w)
            pthread_cond_signal(&x->cv);
        if (end)
            break;
        x = nx;
    }
    if (st->q_head)
        pthread_cond_signal(&st->q_head->cv);
    pthread_mutex_unlock(&st->q_mu);
    pthread_cond_destroy(&w->cv);
    return w->rc;
}

size_t qv_store_commit_stats(qv_store_t *st, qv_commit_stat_t *out, size_t max)
{
    _Static_assert(W_COUNT <= 16, "op_time in store_int.h has room for 16 kinds");
    size_t n = 0;
    for (int k = 1; k < W_COUNT && n < max; k++, n++) {
        out[n].name = ops[k].name;
        out[n].runs = atomic_load_explicit(&st->op_time[k].runs, memory_order_relaxed);
        out[n].total_ns = atomic_load_explicit(&st->op_time[k].total_ns, memory_order_relaxed);
        out[n].max_ns = atomic_load_explicit(&st->op_time[k].max_ns, memory_order_relaxed);
    }
    return n;
}

/* ---- public write API: each call is one writer ---- */

int qv_store_create(qv_store_t *st, qv_schema_t *s, qv_err_t *err)
{
    qv_writer_t w = {.op = W_CREATE, .schema = s, .err = err};
    return qv__commit(st, &w);
}

int qv_store_drop(qv_store_t *st, const char *name, size_t len, qv_err_t *err)
{
    qv_writer_t w = {.op = W_DROP, .name = name, .name_len = len, .err = err};
    return qv__commit(st, &w);
}

int qv_store_upsert(qv_store_t *st, qv_coll_t *c, qv_point_t *pts, uint32_t n, uint64_t *seq, qv_err_t *err)
{
    int rc = qv_points_validate(c->schema, pts, n, err);
    if (rc)
        return rc;
    if (n == 0) {
        if (seq)
            *seq = 0;
        return QV_OK;
    }
    qv_writer_t w = {.op = W_UPSERT, .coll = c, .pts = pts, .n = n, .err = err};
    rc = qv__commit(st, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

int qv_store_delete(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, uint32_t *deleted,
                    qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%u ids in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i].len == 0)
            return qv_err_set(err, QV_EINVAL, "id %u is empty", i);
        if (ids[i].len > QV_ID_MAX)
            return qv_err_set(err, QV_EINVAL, "id %u: %u bytes exceeds %u", i, ids[i].len, QV_ID_MAX);
    }
    *deleted = 0;
    if (n == 0)
        return QV_OK;
    qv_writer_t w = {.op = W_DELETE, .coll = c, .ids = ids, .n = n, .err = err};
    int rc = qv__commit(st, &w);
    *deleted = w.count;
    return rc;
}

int qv_store_encode_upsert(qv_coll_t *c, qv_point_t *pts, uint32_t n, qv_wbuf_t *out, qv_err_t *err)
{
    int rc = qv_points_validate(c->schema, pts, n, err);
    if (rc == QV_OK && (rc = qv_record_encode_upsert(out, c->schema->id, 0, c->schema->dim, pts, n)))
        qv_err_set(err, rc, "out of memory encoding the write");
    return rc;
}

int qv_store_encode_delete(qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_wbuf_t *out, qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%u ids in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    for (uint32_t i = 0; i < n; i++)
        if (ids[i].len == 0 || ids[i].len > QV_ID_MAX)
            return qv_err_set(err, QV_EINVAL, "id %u: %u bytes (want 1..%u)", i, ids[i].len, QV_ID_MAX);
    int rc = qv_record_encode_delete(out, c->schema->id, 0, ids, n);
    if (rc)
        qv_err_set(err, rc, "out of memory encoding the write");
    return rc;
}

int qv_store_apply(qv_store_t *st, qv_coll_t *c, uint64_t group, uint64_t index, const void *rec, size_t len,
                   bool *applied, uint32_t *count, qv_err_t *err)
{
    *applied = false;
    *count = 0;
    if (index == 0)
        return qv_err_set(err, QV_EINVAL, "log index 0: entries are numbered from 1");
    qv_record_t r; /* untrusted bytes: decoded (checksum, bounds, schema) before they join the queue */
    int rc = qv_record_decode(rec, len, c->schema, &r, err);
    if (rc)
        return rc;
    qv_record_free(&r);
    qv_writer_t w = {.op = W_APPLY, .coll = c, .blob = rec, .blob_len = len, .group = group, .index = index,
                     .err = err};
    rc = qv__commit(st, &w);
    *applied = rc == QV_OK && !w.skipped;
    *count = w.count;
    return rc;
}

int qv__store_put_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg, const void *blob, size_t len, qv_err_t *err)
{
    qv_writer_t w = {.op = W_INDEX, .coll = c, .seg = seg, .blob = blob, .blob_len = len, .err = err};
    return qv__commit(st, &w);
}

int qv_store_flush(qv_store_t *st, qv_coll_t *c, uint32_t *sealed, qv_err_t *err)
{
    qv_writer_t w = {.op = W_FLUSH, .coll = c, .err = err};
    int rc = qv__commit(st, &w);
    if (sealed)
        *sealed = w.count;
    return rc;
}
