/* Segment compaction; the contract is in store.h, the batch layout in catalog.h.
 *
 * Phases of a job:
 *   choose  (caller's thread, collection read lock): sealed segments in id order that are small or have deleted
 *           rows, taken greedily while their live rows fit the target; references are held from here on.
 *   copy    (background thread, no lock): every row not yet deleted is appended to a fresh segment; map[i][r] keeps
 *           the new row of input i's row r. Inputs are immutable but for their delete bits, read atomically.
 *   blob    (background thread): the leader hands out the output's segment id (W_SEG_ID, a counter bump), and the
 *           job writes the output's blob chunks in a batch of its own, off the leader, as a seal job does for
 *           frozen segments. Until the swap no manifest lists the id, so a crash here leaves orphan chunks that
 *           start-up removes (store_recover.c); a job that fails after this step deletes them itself.
 *   swap    (commit leader, so no write interleaves): deletes that reached the inputs during the copy are applied
 *           to the copy (a walk over the inputs' delete bitmaps, a word at a time); one batch writes its delete
 *           bitmap and the manifest without the inputs, and deletes the inputs' blobs, bitmaps and index blobs;
 *           then, under the collection's write lock, each input forwards to the output (segment.h fwd: the
 *           copy's row of each input row) and the segment list is swapped. The id map is not touched there:
 *           its slots still name input rows, which hold the same data, and a writer that replaces or deletes such
 *           an id marks the output's row (qv_idslot_where).
 *   repoint (background thread, after the swap): passes over the id map's slots, a chunk at a time under the write
 *           lock, repoint the slots that name an input (qv_idmap_forward) until none does (c->fwd_slots, counted at
 *           the swap and by writers, says when); only then does the job drop its references to the inputs. Read
 *           views hold references to the segments they use (read.h), so the inputs are freed only when no view
 *           holds them either.
 * The id map is not persisted (recovery rebuilds it from the segments), so the swap writes no entry per row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "storage/commit.h"
#include "storage/worker.h"
#include "storage/store_int.h"

typedef struct qv_cjob {
    qv_compaction_info_t info; /* guarded by st->jobs_mu */
    qv_store_t *st;
    qv_coll_t *coll;           /* reference */
    qv_segment_t *in[QV_COMPACT_MAX_INPUTS]; /* references */
    uint32_t *map[QV_COMPACT_MAX_INPUTS];
    qv_segment_t *out;
    atomic_uint_fast64_t copied;
    bool listed;               /* in st->jobs (which then frees it); otherwise finish() frees it */
    bool released;             /* finished and released: the history may free it (guarded by st->jobs_mu) */
} qv_cjob_t;

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_state(qv_cjob_t *j, int state, const char *error)
{
    pthread_mutex_lock(&j->st->jobs_mu);
    j->info.state = state;
    if (error)
        snprintf(j->info.error, sizeof j->info.error, "%s", error);
    if (state >= QV_CJ_DONE) {
        j->info.finished_ms = unix_ms();
        j->info.progress = state == QV_CJ_DONE ? 1.0 : j->info.progress;
    }
    pthread_mutex_unlock(&j->st->jobs_mu);
}

static void job_release(qv_cjob_t *j);

/* The job's last step: drop its references, then publish the final state. After this nothing touches j (the history
 * may free it from then on; an unlisted job is freed here). */
static void finish(qv_cjob_t *j, int state, const char *error)
{
    qv_store_t *st = j->st;
    job_release(j);
    pthread_mutex_lock(&st->jobs_mu);
    j->info.state = state;
    if (error)
        snprintf(j->info.error, sizeof j->info.error, "%s", error);
    j->info.finished_ms = unix_ms();
    if (state == QV_CJ_DONE)
        j->info.progress = 1.0;
    j->released = true;
    bool free_it = !j->listed;
    pthread_mutex_unlock(&st->jobs_mu);
    if (free_it)
        free(j);
}

/* Drops what the job holds once it is finished; its info stays in the history. */
static void job_release(qv_cjob_t *j)
{
    for (uint32_t i = 0; i < j->info.ninputs; i++) {
        qv_seg_unref(j->in[i]);
        j->in[i] = NULL;
        free(j->map[i]);
        j->map[i] = NULL;
    }
    qv_seg_unref(j->out);
    j->out = NULL;
    if (j->coll) {
        atomic_store(&j->coll->compacting, false);
        qv_coll_release(j->coll);
        j->coll = NULL;
    }
}

void qv__compactions_free(qv_store_t *st)
{
    for (size_t i = 0; i < st->njobs; i++) {
        job_release(st->jobs[i]);
        free(st->jobs[i]);
    }
    st->njobs = 0;
}

/* The copy phase, on the background thread. */
static int copy_rows(qv_cjob_t *j)
{
    const qv_schema_t *s = j->coll->schema;
    j->out = qv_seg_create(s, 0);
    qv_attr_t *attrs = calloc(s->nfields ? s->nfields : 1, sizeof *attrs);
    qv_str_t *items = NULL;
    size_t cap = 0;
    int rc = j->out && attrs ? QV_OK : QV_ENOMEM;
    for (uint32_t i = 0; rc == QV_OK && i < j->info.ninputs; i++) {
        const qv_segment_t *in = j->in[i];
        j->map[i] = malloc((in->rows ? in->rows : 1) * sizeof(uint32_t));
        if (!j->map[i]) {
            rc = QV_ENOMEM;
            break;
        }
        for (uint32_t r = 0; rc == QV_OK && r < in->rows; r++) {
            j->map[i][r] = UINT32_MAX;
            if (qv_bm_get(in->deleted, r)) /* atomic: the leader may be setting bits; the swap carries the rest */
                continue;
            qv_point_t pt;
            rc = qv_seg_row_point(in, r, &pt, attrs, &items, &cap);
            if (rc == QV_OK)
                rc = qv_seg_append(j->out, &pt, &j->map[i][r]);
            atomic_fetch_add_explicit(&j->copied, 1, memory_order_relaxed);
            if ((r & 4095) == 0 && (atomic_load(&j->coll->dropped) || qv__worker_stopping(j->st->worker)))
                rc = QV_ECANCELLED;
        }
    }
    free(attrs);
    free(items);
    if (rc == QV_OK) { /* not yet visible to anyone: its arrays shrink to what it holds (before the postings, which
                        * borrow its strings), so that its size is what it holds */
        qv_seg_shrink(j->out);
        qv_seg_build_postings(j->out);
    }
    return rc;
}

/* The swap phase: runs in the commit leader (W_COMPACT). */
void qv__run_compact(qv_store_t *st, qv_writer_t *w)
{
    qv_cjob_t *j = w->job;
    qv_coll_t *c = j->coll;
    qv_segment_t *out = j->out;
    uint32_t coll = c->schema->id;
    if (c->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    /* deletes that reached the inputs during the copy (only the leader deletes, and we are the leader): rows deleted
     * before the copy map to UINT32_MAX */
    for (uint32_t i = 0; i < j->info.ninputs; i++) {
        const qv_segment_t *in = j->in[i];
        for (uint32_t w = 0; w < (in->rows + 63) / 64; w++)
            for (uint64_t bits = in->deleted[w]; bits; bits &= bits - 1) {
                uint32_t r = w * 64 + (uint32_t)__builtin_ctzll(bits);
                if (r < in->rows && j->map[i][r] != UINT32_MAX)
                    qv_seg_delete(out, j->map[i][r]);
            }
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    int rc = QV_OK; /* the blob is written already (write_blob); out->id came from W_SEG_ID; no id-map entries:
                     * recovery rebuilds the id map from the segments (store_recover.c) */
    if (rc == QV_OK && out->ndeleted) {
        buf.len = 0;
        rc = qv_seg_encode_deleted(out, &buf);
        qv_cat_put_deleted(&st->cat, b, coll, out->id, buf.data, buf.len);
    }
    if (rc == QV_OK) {
        buf.len = 0;
        rc = qv_cat_manifest_encode(&buf, c, c->seal_seq, c->next_seg_id, out, j->in, j->info.ninputs, false,
                                    NULL);
        qv_cat_put_manifest(&st->cat, b, coll, buf.data, buf.len);
    }
    for (uint32_t i = 0; rc == QV_OK && i < j->info.ninputs; i++)
        qv_cat_delete_segment(&st->cat, b, coll, j->in[i]->id);
    if (rc == QV_OK)
        rc = qv__rocks_write(st, b, "compact_swap", w->err);
    else
        qv_err_set(w->err, rc, "compaction: out of memory");
    rocksdb_writebatch_destroy(b);
    qv_wbuf_free(&buf);
    if ((w->rc = rc) != QV_OK)
        return;

    pthread_rwlock_wrlock(&c->lock);
    /* every live row of an input forwards to its copy; the ids that name them are repointed after the swap */
    for (uint32_t i = 0; i < j->info.ninputs; i++) {
        j->in[i]->fwd = out;
        j->in[i]->fwd_rows = j->map[i];
        j->map[i] = NULL;
        c->fwd_slots += j->in[i]->rows - qv_seg_ndeleted(j->in[i]);
    }
    out->sealed = true;
    out->persisted = true;
    out->blob_written = true;
    out->del_dirty = false;
    size_t n = 0;
    for (size_t s = 0; s < c->nsealed; s++) {
        bool input = false;
        for (uint32_t i = 0; i < j->info.ninputs; i++)
            input = input || c->sealed[s] == j->in[i];
        if (input)
            qv_seg_unref(c->sealed[s]); /* the collection's reference; the job still holds its own */
        else
            c->sealed[n++] = c->sealed[s];
    }
    c->nsealed = n;
    qv_seg_ref(out);
    qv__coll_add_sealed(c, out);
    pthread_rwlock_unlock(&c->lock);
    w->count = out->rows - out->ndeleted;
}

void qv__run_seg_id(qv_store_t *st, qv_writer_t *w)
{
    (void)st;
    if (w->coll->dropped)
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
    else
        w->seq = w->coll->next_seg_id++; /* the next manifest records the counter past it */
}

#define REPOINT_SLOTS 16384 /* id-map slots repointed per hold of the write lock (well under a millisecond) */

/* The repoint phase (see the top of this file): passes until no slot names an input. Every pass repoints what it
 * meets; a slot that a delete's backward shift moved behind the pass is met by the next one. */
static void repoint(qv_cjob_t *j)
{
    qv_coll_t *c = j->coll;
    for (;;) {
        pthread_rwlock_wrlock(&c->lock);
        bool done = c->fwd_slots == 0;
        pthread_rwlock_unlock(&c->lock);
        if (done)
            return;
        for (size_t s = 0;; s += REPOINT_SLOTS) {
            pthread_rwlock_wrlock(&c->lock);
            bool end = s >= c->ids.cap; /* the table may grow between holds: the next pass sees the rest */
            if (!end)
                c->fwd_slots -= qv_idmap_forward(&c->ids, s, s + REPOINT_SLOTS);
            pthread_rwlock_unlock(&c->lock);
            if (end)
                break;
        }
    }
}

/* The output's blob, off the leader (see the top of this file). */
static int write_blob(qv_cjob_t *j, qv_err_t *err)
{
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    int rc = qv_seg_encode(j->out, &buf);
    if (rc) {
        qv_wbuf_free(&buf);
        return qv_err_set(err, rc, "compaction: out of memory encoding the segment");
    }
    j->out->blob_len = buf.len;
    /* one small chunk per RocksDB write (QV_CAT_BG_CHUNK): RocksDB queues writes, and a blob of tens of MB in one
     * batch would hold the commit leader's small synced batches behind it for as long as it takes to log */
    for (size_t off = 0, chunk = 0; rc == QV_OK && off < buf.len; off += QV_CAT_BG_CHUNK, chunk++) {
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        qv_cat_put_segment_chunk(&j->st->cat, b, j->coll->schema->id, j->out->id, (uint32_t)chunk, buf.data + off,
                                 buf.len - off < QV_CAT_BG_CHUNK ? buf.len - off : QV_CAT_BG_CHUNK);
        rc = qv__rocks_write(j->st, b, "compact_blob", err);
        rocksdb_writebatch_destroy(b);
    }
    qv_wbuf_free(&buf);
    return rc;
}

/* A job that wrote its output's blob and then failed removes the chunks (no manifest lists them). */
static void remove_blob(qv_cjob_t *j)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_cat_delete_segment(&j->st->cat, b, j->coll->schema->id, j->out->id);
    qv_err_t err;
    if (qv__rocks_write(j->st, b, "compact_blob", &err) != QV_OK)
        qv__store_log(j->st, "compaction.cleanup_failed", "segment=%llu msg=\"%s\" (start-up removes it)",
                      (unsigned long long)j->out->id, err.msg);
    rocksdb_writebatch_destroy(b);
}

static void run_job(void *arg, bool run)
{
    qv_cjob_t *j = arg;
    qv_store_t *st = j->st;
    if (!run) {
        finish(j, QV_CJ_ABANDONED, "the server stopped first");
        return;
    }
    set_state(j, QV_CJ_RUNNING, NULL);
    int rc = copy_rows(j);
    qv_err_t err;
    qv_err_clear(&err);
    bool blob = false;
    if (rc == QV_OK) {
        qv_writer_t id = {.op = W_SEG_ID, .coll = j->coll, .err = &err};
        if ((rc = qv__commit(st, &id)) == QV_OK) {
            j->out->id = id.seq;
            blob = (rc = write_blob(j, &err)) == QV_OK;
        }
    }
    if (rc == QV_OK) {
        qv_writer_t w = {.op = W_COMPACT, .coll = j->coll, .job = j, .err = &err};
        rc = qv__commit(st, &w);
        if (rc && blob && !atomic_load(&st->failed))
            remove_blob(j);
        if (rc == QV_OK) {
            repoint(j); /* before the job lets go of its inputs */
            pthread_mutex_lock(&st->jobs_mu);
            j->info.output = j->out->id;
            j->info.rows_out = w.count;
            pthread_mutex_unlock(&st->jobs_mu);
        }
    }
    if (rc == QV_OK) {
        qv__store_log(st, "compaction.done", "collection=%s job=%llu inputs=%u rows_in=%llu rows_out=%llu",
                      j->info.collection, (unsigned long long)j->info.id, j->info.ninputs,
                      (unsigned long long)j->info.rows_in, (unsigned long long)j->info.rows_out);
        qv__store_maybe_index(st, j->coll, j->out);
        finish(j, QV_CJ_DONE, NULL);
    } else if (rc == QV_ECANCELLED || rc == QV_ENOTFOUND) {
        finish(j, QV_CJ_ABANDONED, rc == QV_ENOTFOUND ? "collection dropped" : "cancelled");
    } else {
        qv__store_log(st, "compaction.failed", "collection=%s job=%llu msg=\"%s\"", j->info.collection,
                      (unsigned long long)j->info.id, err.msg[0] ? err.msg : qv_strerror(rc));
        finish(j, QV_CJ_FAILED, err.msg[0] ? err.msg : qv_strerror(rc));
    }
}

int qv_store_compact(qv_store_t *st, qv_coll_t *c, uint64_t target_rows, bool automatic, uint64_t *job_id,
                     uint32_t *ninputs, qv_err_t *err)
{
    *job_id = 0;
    *ninputs = 0;
    if (!target_rows)
        target_rows = 4ull * st->opts.seal_rows;
    bool expect = false;
    if (!atomic_compare_exchange_strong(&c->compacting, &expect, true))
        return qv_err_set(err, QV_EEXIST, "collection '%s' already has a compaction queued or running",
                          c->schema->name);
    qv_cjob_t *j = calloc(1, sizeof *j);
    if (!j) {
        atomic_store(&c->compacting, false);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    j->st = st;
    uint64_t live = 0;
    qv_coll_rdlock(c);
    for (size_t i = 0; i < c->nsealed && j->info.ninputs < QV_COMPACT_MAX_INPUTS; i++) {
        qv_segment_t *s = c->sealed[i];
        uint64_t seg_live = s->rows - s->ndeleted;
        /* a manual job takes anything worth merging or purging; an automatic one only what its trigger names */
        bool wanted = s->persisted && (automatic ? ((st->opts.compact_deleted_ratio > 0 &&
                                                    s->ndeleted >= st->opts.compact_deleted_ratio * s->rows) ||
                                                   s->rows < st->opts.seal_rows / 4)
                                                 : (s->ndeleted > 0 || s->rows < target_rows / 2));
        if (!wanted || live + seg_live > target_rows)
            continue;
        qv_seg_ref(s);
        j->in[j->info.ninputs] = s;
        j->info.inputs[j->info.ninputs++] = s->id;
        j->info.rows_in += s->rows;
        live += seg_live;
    }
    qv_coll_unlock(c);
    /* worth it: two or more segments to merge, or one with deleted rows to purge */
    if (j->info.ninputs == 0 || (j->info.ninputs == 1 && j->in[0]->ndeleted == 0)) {
        for (uint32_t i = 0; i < j->info.ninputs; i++)
            qv_seg_unref(j->in[i]);
        free(j);
        atomic_store(&c->compacting, false);
        return QV_OK;
    }
    atomic_fetch_add(&c->refs, 1);
    j->coll = c;
    snprintf(j->info.collection, sizeof j->info.collection, "%s", c->schema->name);
    j->info.automatic = automatic;
    j->info.state = QV_CJ_QUEUED;
    j->info.started_ms = unix_ms();
    pthread_mutex_lock(&st->jobs_mu);
    j->info.id = st->next_job_id++;
    /* keep the newest 32; a job still holding references is never evicted (at most one runs per collection) */
    if (st->njobs == sizeof st->jobs / sizeof st->jobs[0]) {
        qv_cjob_t *old = st->jobs[st->njobs - 1];
        if (old->released) {
            free(old);
            st->njobs--;
        }
    }
    if (st->njobs < sizeof st->jobs / sizeof st->jobs[0]) {
        memmove(&st->jobs[1], &st->jobs[0], st->njobs * sizeof st->jobs[0]);
        st->jobs[0] = j;
        st->njobs++;
        j->listed = true;
    }
    pthread_mutex_unlock(&st->jobs_mu);
    *job_id = j->info.id;
    *ninputs = j->info.ninputs;
    if (qv__worker_compact(st->worker, c, j->in, j->info.ninputs, run_job, j) != QV_OK) {
        finish(j, QV_CJ_FAILED, "out of memory");
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    return QV_OK;
}

int qv_store_compactions(qv_store_t *st, qv_compaction_info_t **out, size_t *n)
{
    pthread_mutex_lock(&st->jobs_mu);
    qv_compaction_info_t *list = malloc((st->njobs ? st->njobs : 1) * sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&st->jobs_mu);
        return QV_ENOMEM;
    }
    for (size_t i = 0; i < st->njobs; i++) {
        qv_cjob_t *j = st->jobs[i];
        list[i] = j->info;
        if (j->info.state == QV_CJ_RUNNING && j->info.rows_in)
            list[i].progress = (double)atomic_load(&j->copied) / (double)j->info.rows_in;
        if (j->info.state == QV_CJ_QUEUED)
            qv__worker_activity(st->worker, list[i].waiting_for, sizeof list[i].waiting_for);
    }
    *n = st->njobs;
    pthread_mutex_unlock(&st->jobs_mu);
    *out = list;
    return QV_OK;
}

void qv__maybe_auto_compact(qv_store_t *st, qv_coll_t *c)
{
    if (atomic_load(&c->compacting))
        return;
    double ratio = st->opts.compact_deleted_ratio;
    uint32_t small_limit = st->opts.compact_small_segments, small = 0;
    bool go = false;
    /* only the commit leader changes segments and deletes, and we are it: no lock needed to read counts */
    for (size_t i = 0; i < c->nsealed && !go; i++) {
        const qv_segment_t *s = c->sealed[i];
        if (ratio > 0 && s->rows && s->ndeleted >= ratio * s->rows)
            go = true;
        if (s->rows < st->opts.seal_rows / 4)
            small++;
    }
    if (small_limit && small >= small_limit)
        go = true;
    if (!go)
        return;
    uint64_t id;
    uint32_t n;
    qv_err_t err;
    if (qv_store_compact(st, c, 0, true, &id, &n, &err) == QV_OK && id)
        qv__store_log(st, "compaction.auto", "collection=%s job=%llu inputs=%u", c->schema->name,
                      (unsigned long long)id, n);
}
