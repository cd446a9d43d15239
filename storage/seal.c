/* Sealing: the growing segment of a collection becomes an immutable sealed segment, and then a persisted one.
 *
 * Two steps, so that writers never wait for a segment blob to be written:
 *   freeze   (commit leader, when the growing segment reaches seal_rows rows or its WAL records seal_wal_bytes): the
 *            growing segment becomes sealed, searchable at once, and an empty growing segment takes its place.
 *            Nothing is written; the WAL still covers the frozen rows.
 *   persist  a seal job on the worker's durability lane (worker.h: QV_JOB_SEAL) encodes the frozen segment and
 *            writes its blob chunks (seal_task); then the commit leader (W_PERSIST) writes one small atomic batch: the
 *            delete bitmaps changed since the last persist, the new manifest (with the covered WAL sequence), and
 *            the deletion of the WAL records now covered (the id map is not stored: start-up rebuilds it). If the process dies between the two, the manifest does not
 *            list the blob; start-up removes such orphan chunks and the WAL replays the rows.
 * Admin.Flush (W_FLUSH) freezes and persists synchronously, in the leader. What the batches contain is specified
 * in catalog.h. */
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "storage/commit.h"
#include "storage/worker.h"
#include "storage/store_int.h"

/* Freezes c's growing segment: its rows become immutable and searchable as a sealed segment, and an empty growing
 * segment takes its place. Nothing is written: the WAL still covers the rows until persist() runs. Leader only. */
static int freeze(qv_store_t *st, qv_coll_t *c, qv_segment_t **frozen, qv_err_t *err)
{
    qv_segment_t *g = c->growing;
    if (frozen)
        *frozen = NULL;
    if (g->rows == 0)
        return QV_OK;
    /* Room in the sealed list first, under the write lock (readers walk c->sealed); only the leader changes the
     * list, so the room is still there below. */
    pthread_rwlock_wrlock(&c->lock);
    int rc = qv__coll_reserve_sealed(c);
    pthread_rwlock_unlock(&c->lock);
    qv_segment_t *next = rc == QV_OK ? qv_seg_create(c->schema, c->next_seg_id) : NULL;
    if (!next)
        return qv_err_set(err, QV_ENOMEM, "seal: out of memory");
    (void)st;
    /* The inverted lists are built here, off the lock (only the leader appends, so the rows cannot change), into a
     * copy of the columns; the pointers are published under the write lock below. */
    qv_postings_t **post = calloc(g->nfields ? g->nfields : 1, sizeof *post);
    if (post) {
        qv_column_t saved[g->nfields ? g->nfields : 1];
        memcpy(saved, g->cols, g->nfields * sizeof *saved);
        qv_segment_t shadow = {.rows = g->rows, .nfields = g->nfields, .cols = saved}; /* what the lists read: not
                                                                 * the whole struct, whose view fields readers change */
        qv_seg_build_postings(&shadow);
        for (int f = 0; f < g->nfields; f++)
            post[f] = saved[f].post;
    }
    pthread_rwlock_wrlock(&c->lock);
    for (int f = 0; post && f < g->nfields; f++)
        g->cols[f].post = post[f];
    free(post);
    g->sealed = true;
    g->freeze_seq = c->last_seq;
    g->wal_share = c->wal_growing;
    c->wal_growing = 0;
    qv__coll_add_sealed(c, g); /* the growing slot's reference moves to the sealed list */
    c->growing = next;
    c->next_seg_id++;
    pthread_rwlock_unlock(&c->lock);
    if (frozen)
        *frozen = g;
    return QV_OK;
}

/* Persists every frozen segment of c (their blobs unless the seal job already wrote them), the delete bitmaps
 * changed since the last persist, and the manifest; and drops
 * the WAL records all of that covers: one atomic batch. With no frozen segment and an empty growing one (a run of
 * deletes) it still persists bitmaps and drops the WAL. Leader only; *sealed counts the segments persisted. */
static int persist(qv_store_t *st, qv_coll_t *c, bool inline_blobs, uint32_t *sealed, qv_err_t *err)
{
    uint32_t coll = c->schema->id;
    uint64_t covered = c->seal_seq, share = 0;
    size_t nfrozen = 0, left = 0;
    /* The frozen segments persisted now: all of them when blobs may be written here (Flush, close); otherwise the
     * run, in freeze order, whose blobs the seal jobs have written. A prefix in freeze order keeps every WAL record
     * up to `covered` inside a persisted segment; the rest stay covered by the WAL until their own turn. */
    bool *pick = calloc(c->nsealed ? c->nsealed : 1, sizeof *pick);
    if (!pick)
        return qv_err_set(err, QV_ENOMEM, "seal: out of memory");
    for (size_t i = 0; i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted)
            continue;
        if (left || (!inline_blobs && !g->blob_written)) {
            left++;
            continue;
        }
        pick[i] = true;
        nfrozen++;
        share += g->wal_share;
        if (g->freeze_seq > covered)
            covered = g->freeze_seq;
    }
    bool growing_empty = c->growing->rows == 0 && left == 0;
    if (growing_empty)
        covered = c->last_seq, share = c->wal_bytes;
    if (covered == c->seal_seq && nfrozen == 0) {
        free(pick);
        return QV_OK;
    }

    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    int rc = QV_OK;
    for (size_t i = 0; rc == QV_OK && i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (!pick[i])
            continue;
        if (!g->blob_written) {
            buf.len = 0;
            rc = qv_seg_encode(g, &buf);
            g->blob_len = buf.len;
            qv_cat_put_segment(&st->cat, b, coll, g->id, buf.data, buf.len);
        }
    }
    /* no id-map entries: recovery rebuilds the id map from the segments and their delete bitmaps
     * (store_recover.c), so a persist writes blobs, bitmaps and the manifest only */
    /* delete bitmaps that changed, the picked frozen segments' included */
    for (size_t i = 0; rc == QV_OK && i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted ? !g->del_dirty : !pick[i])
            continue;
        buf.len = 0;
        rc = qv_seg_encode_deleted(g, &buf);
        qv_cat_put_deleted(&st->cat, b, coll, g->id, buf.data, buf.len);
    }
    if (rc == QV_OK) {
        buf.len = 0;
        /* the manifest lists the persisted and the picked segments (the flags flip only after the batch) */
        rc = qv_cat_manifest_encode(&buf, c, covered, c->next_seg_id, NULL, NULL, 0, false, pick);
        qv_cat_put_manifest(&st->cat, b, coll, buf.data, buf.len);
    }
    if (rc == QV_OK) {
        qv_cat_delete_wal(&st->cat, b, coll, covered);
        qv_cat_put_seq_floor(&st->cat, b, st->seq);
        rc = qv__rocks_write(st, b, "seal_persist", err);
    } else {
        qv_err_set(err, rc, "seal: out of memory");
    }
    rocksdb_writebatch_destroy(b);
    qv_wbuf_free(&buf);
    if (rc) {
        free(pick);
        return rc;
    }

    qv_segment_t **done = malloc((c->nsealed ? c->nsealed : 1) * sizeof *done);
    size_t ndone = 0;
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted)
            g->del_dirty = false;
        if (pick[i]) {
            g->del_dirty = false;
            g->persisted = g->blob_written = true;
            if (done) { /* without the list (out of memory) the segment is indexed at the next start */
                qv_seg_ref(g);
                done[ndone++] = g;
            }
        }
    }
    c->seal_seq = covered;
    c->wal_bytes -= share < c->wal_bytes ? share : c->wal_bytes;
    if (growing_empty)
        c->wal_growing = 0;
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < ndone; i++) {
        qv__store_maybe_index(st, c, done[i]);
        qv_seg_unref(done[i]);
    }
    free(done);
    free(pick);
    if (sealed)
        *sealed += (uint32_t)nfrozen;
    return QV_OK;
}

/* The seal job (QV_JOB_SEAL) for one frozen segment: write its blob outside the commit path, then let the leader
 * persist it (a small batch). If the leader got there first (Flush), nothing is left to do; blob chunks written
 * for a segment that never reaches the manifest are removed at the next start-up. */
typedef struct {
    qv_store_t *st;
    qv_coll_t *c;
    qv_segment_t *g;
} seal_task_t;

static void seal_task(void *arg, bool run)
{
    seal_task_t *t = arg;
    if (run && !t->c->dropped) {
        qv_wbuf_t blob;
        qv_wbuf_init(&blob);
        int rc = qv_seg_encode(t->g, &blob); /* the rows are immutable once frozen */
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        qv_err_t err;
        qv_err_clear(&err);
        if (rc == QV_OK) {
            qv_cat_put_segment(&t->st->cat, b, t->c->schema->id, t->g->id, blob.data, blob.len);
            char *e = NULL;
            if (qv_fault("quiver/storage/seal_blob"))
                e = strdup("IO error: injected fault");
            else
                rocksdb_write(t->st->db, t->st->wsync, b, &e);
            if (e) {
                rc = qv_err_set(&err, QV_EIO, "%s", e);
                free(e); /* rocksdb_free is free() */
            }
        }
        rocksdb_writebatch_destroy(b);
        if (rc == QV_OK && t->c->dropped) { /* dropped while we wrote: take the chunks back out */
            qv_cat_key_t lo, hi;
            qv_cat_segment_range(t->c->schema->id, t->g->id, &lo, &hi);
            char *e = NULL;
            rocksdb_delete_range_cf(t->st->db, t->st->wsync, t->st->cat.cf[CF_SEG], lo.bytes, lo.len, hi.bytes,
                                    hi.len, &e);
            rocksdb_free(e);
        }
        qv_writer_t w = {.op = W_PERSIST, .coll = t->c, .seg = t->g, .blob_len = blob.len, .err = &err};
        w.blob = rc == QV_OK ? t->g : NULL; /* non-NULL: the chunks are in place; NULL: the leader writes them */
        qv_wbuf_free(&blob);
        if (rc)
            qv__store_log(t->st, "seal.blob_write_failed", "collection=%s segment=%llu msg=\"%s\" (the commit leader "
                          "writes it instead)", t->c->schema->name, (unsigned long long)t->g->id, err.msg);
        rc = qv__commit(t->st, &w);
        if (rc && rc != QV_ENOTFOUND)
            qv__store_log(t->st, "seal.failed", "collection=%s segment=%llu msg=\"%s\"", t->c->schema->name,
                          (unsigned long long)t->g->id, err.msg);
    }
    qv_seg_unref(t->g);
    qv_coll_release(t->c);
    free(t);
}

void qv__run_persist(qv_store_t *st, qv_writer_t *w)
{
    qv_coll_t *c = w->coll;
    if (c->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    if (w->seg && w->seg->persisted)
        return; /* a Flush persisted it already */
    if (w->seg && w->blob) {
        w->seg->blob_written = true;
        w->seg->blob_len = w->blob_len;
    }
    /* the seal job's call persists only segments whose blobs are written, unless its own write failed */
    w->rc = persist(st, c, w->seg == NULL || !w->blob, NULL, w->err);
}

/* Seals after a write crossed a threshold: freeze now, persist in the background. */
void qv__seal_async(qv_store_t *st, qv_coll_t *c)
{
    qv_err_t err;
    if (c->growing->rows == 0) {
        /* only deletes accumulated: nothing to write but bitmaps; do it now unless frozen segments are pending
         * (persist() would cover their WAL records and must write them first: their seal jobs will) */
        bool pending = false;
        for (size_t i = 0; i < c->nsealed; i++)
            pending = pending || !c->sealed[i]->persisted;
        if (!pending)
            persist(st, c, true, NULL, &err);
        return;
    }
    qv_segment_t *g;
    if (freeze(st, c, &g, &err) != QV_OK || !g)
        return;
    seal_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        free(t); /* the next Flush or threshold persists it */
        return;
    }
    t->st = st;
    t->c = c;
    t->g = g;
    atomic_fetch_add(&c->refs, 1);
    qv_seg_ref(g);
    if (qv__worker_seal(st->worker, seal_task, t) != QV_OK) {
        qv_seg_unref(g);
        qv_coll_release(c);
        free(t);
    }
}

/* Flush: freeze and persist now, in the leader. */
static int seal(qv_store_t *st, qv_coll_t *c, uint32_t *sealed, qv_err_t *err)
{
    int rc = freeze(st, c, NULL, err);
    return rc ? rc : persist(st, c, true, sealed, err);
}

void qv__run_flush(qv_store_t *st, qv_writer_t *w)
{
    w->count = 0;
    if (w->coll) {
        w->rc = w->coll->dropped ? qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped")
                                 : seal(st, w->coll, &w->count, w->err);
        return;
    }
    qv_coll_t **list;
    size_t n;
    if ((w->rc = qv_store_list(st, &list, &n)) != QV_OK) {
        qv_err_set(w->err, w->rc, "flush: out of memory");
        return;
    }
    for (size_t i = 0; i < n && w->rc == QV_OK; i++)
        w->rc = seal(st, list[i], &w->count, w->err);
    qv_store_list_free(list, n);
}
