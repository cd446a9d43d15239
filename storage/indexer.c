/* Background index builds (see indexer.h), and the store's side of them: which segments get indexed, and the graph
 * blob write that the commit leader runs (W_INDEX). */
#include "storage/indexer.h"

#include <stdlib.h>
#include <string.h>

#include "index/hnsw.h"
#include "storage/commit.h"
#include "storage/store_int.h"

typedef struct job {
    qv_coll_t *coll;
    qv_segment_t *seg;        /* index build; NULL for a task */
    void (*task)(void *arg, bool run);  /* other background work (compaction); run = false: discard */
    void *arg;
    struct job *next;
} job_t;

struct qv_indexer {
    qv_store_t *st;
    qv_pool_t *pool;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;  /* guards the queue, stopping, current */
    pthread_cond_t cv;
    job_t *head, *tail;
    bool stopping;
    qv_hnsw_t *current; /* the build in progress, for cancel */
    bool external_off;  /* the other builder said QV_EUNAVAIL (a broken device): the CPU builds from then on */
};

qv_indexer_t *qv__indexer_create(qv_store_t *st, int threads)
{
    qv_indexer_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->st = st;
    ix->pool = qv_pool_create(threads > 1 ? threads - 1 : 0);
    if (!ix->pool) {
        free(ix);
        return NULL;
    }
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->cv, NULL);
    return ix;
}

static void enqueue(qv_indexer_t *ix, job_t *j)
{
    pthread_mutex_lock(&ix->mu);
    if (ix->tail)
        ix->tail->next = j;
    else
        ix->head = j;
    ix->tail = j;
    pthread_cond_signal(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
}

void qv__indexer_submit(qv_indexer_t *ix, qv_coll_t *c, qv_segment_t *seg)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) {
        atomic_store(&seg->index_state, QV_IDX_FAILED);
        return;
    }
    atomic_fetch_add(&c->refs, 1);
    qv_seg_ref(seg);
    j->coll = c;
    j->seg = seg;
    atomic_store(&seg->index_state, QV_IDX_PENDING);
    enqueue(ix, j);
}

int qv__indexer_task(qv_indexer_t *ix, void (*task)(void *arg, bool run), void *arg)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return QV_ENOMEM;
    j->task = task;
    j->arg = arg;
    enqueue(ix, j);
    return QV_OK;
}

static void job_free(job_t *j, bool ran)
{
    if (j->task && !ran)
        j->task(j->arg, false);
    qv_seg_unref(j->seg);
    qv_coll_release(j->coll);
    free(j);
}

/* After the blob of a built index h was persisted (rc, err): serves h, or frees it when the collection is gone. */
static void publish(qv_store_t *st, job_t *j, qv_hnsw_t *h, int rc, const qv_err_t *err, double secs,
                    const char *builder)
{
    qv_segment_t *seg = j->seg;
    const qv_schema_t *s = j->coll->schema;
    if (rc == QV_ENOTFOUND) { /* dropped while building */
        qv_hnsw_free(h);
        return;
    }
    if (rc)
        qv__store_log(st, "index.persist_failed", "collection=%s segment=%llu msg=\"%s\" (serving it from memory)",
                      s->name, (unsigned long long)seg->id, err->msg);
    atomic_store_explicit(&seg->index, h, memory_order_release);
    atomic_store(&seg->index_state, QV_IDX_READY);
    qv__store_log(st, "index.ready", "collection=%s segment=%llu rows=%u seconds=%.2f builder=%s", s->name,
                  (unsigned long long)seg->id, seg->rows, secs, builder);
}

/* The graph from the store's other builder (the GPU plugin), checked by decoding it as untrusted input. Returns true
 * when the segment is served from it (or the collection went away meanwhile); false sends the caller to the CPU
 * build, after one log line saying why. There is no progress to report and no cancel: the builder runs to its end. */
static bool build_external(qv_indexer_t *ix, job_t *j, const qv_hnsw_params_t *p)
{
    qv_store_t *st = ix->st;
    qv_segment_t *seg = j->seg;
    const qv_schema_t *s = j->coll->schema;
    const char *name = st->opts.graph_builder ? st->opts.graph_builder : "external";
    if (qv__indexer_stopping(ix))
        return false; /* the CPU path sees the stop and leaves the segment pending */
    atomic_store(&seg->index_state, QV_IDX_BUILDING);
    qv_err_t err;
    qv_err_clear(&err);
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    qv_hnsw_t *h = NULL;
    int64_t t0 = qv__now_ns();
    int rc = st->opts.graph_build(st->opts.graph_ctx, p, seg->vectors, seg->rows, seg->dim, &blob, &err);
    if (rc == QV_OK && (rc = qv_hnsw_decode(blob.data, blob.len, seg->vectors, seg->rows, seg->dim, 0, &err, &h)))
        h = NULL;
    if (rc == QV_OK) { /* the decode checked the rows and dim; the parameters must be the collection's too */
        qv_hnsw_info_t info;
        qv_hnsw_info(h, &info);
        if (info.metric != p->metric || info.M != p->M || info.quant != p->quant ||
            (p->quant == QV_HNSW_QUANT_PQ && p->pq_m && info.pq_m != p->pq_m)) {
            rc = qv_err_set(&err, QV_ECORRUPT, "graph of metric %d, M %u, quantisation %d/%u where the collection "
                            "has %d, %u, %d/%u", (int)info.metric, info.M, (int)info.quant, info.pq_m,
                            (int)p->metric, p->M, (int)p->quant, p->pq_m);
            qv_hnsw_free(h);
            h = NULL;
        }
    }
    if (rc) {
        qv_wbuf_free(&blob);
        ix->external_off = rc == QV_EUNAVAIL; /* only the indexer thread reads or writes it */
        qv__store_log(st, "index.builder_failed", "collection=%s segment=%llu builder=%s code=%s msg=\"%s\" "
                      "(building on the CPU instead%s)", s->name, (unsigned long long)seg->id, name, qv_strerror(rc),
                      err.msg, ix->external_off ? ", and for every later segment" : "");
        return false;
    }
    double secs = (double)(qv__now_ns() - t0) / 1e9;
    rc = qv__store_put_index(st, j->coll, seg, blob.data, blob.len, &err);
    qv_wbuf_free(&blob);
    publish(st, j, h, rc, &err, secs, name);
    return true;
}

static void build_one(qv_indexer_t *ix, job_t *j)
{
    qv_store_t *st = ix->st;
    qv_segment_t *seg = j->seg;
    const qv_schema_t *s = j->coll->schema;
    qv_hnsw_params_t p = {.metric = s->metric == QV_METRIC_L2 ? QV_HNSW_L2 : QV_HNSW_IP,
                          .M = s->hnsw_m,
                          .ef_construction = s->hnsw_efc,
                          .seed = seg->id,
                          .quant = (qv_hnsw_quant_t)s->quant,
                          .pq_m = s->pq_m};
    qv_err_t err;
    qv_hnsw_t *h = NULL;
    if (st->opts.graph_build && !ix->external_off && build_external(ix, j, &p))
        return;
    int rc = qv_hnsw_create(&p, seg->vectors, seg->rows, seg->dim, 0, &err, &h);
    if (rc) {
        atomic_store(&seg->index_state, QV_IDX_FAILED);
        qv__store_log(st, "index.create_failed", "collection=%s segment=%llu msg=\"%s\"", s->name,
                      (unsigned long long)seg->id, err.msg);
        return;
    }
    pthread_mutex_lock(&ix->mu);
    bool stop = ix->stopping;
    ix->current = h;
    atomic_store(&seg->building, h);
    atomic_store(&seg->index_state, QV_IDX_BUILDING);
    pthread_mutex_unlock(&ix->mu);
    int64_t t0 = qv__now_ns();
    rc = stop ? QV_ECANCELLED : qv_hnsw_build(h, ix->pool);
    pthread_mutex_lock(&ix->mu);
    ix->current = NULL;
    atomic_store(&seg->building, NULL);
    pthread_mutex_unlock(&ix->mu);
    if (rc) {
        atomic_store(&seg->index_state, rc == QV_ECANCELLED ? QV_IDX_PENDING : QV_IDX_FAILED);
        if (rc != QV_ECANCELLED)
            qv__store_log(st, "index.build_failed", "collection=%s segment=%llu code=%s", s->name,
                          (unsigned long long)seg->id, qv_strerror(rc));
        qv_hnsw_free(h);
        return;
    }
    double secs = (double)(qv__now_ns() - t0) / 1e9;
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    rc = qv_hnsw_encode(h, &blob);
    if (rc == QV_OK)
        rc = qv__store_put_index(st, j->coll, seg, blob.data, blob.len, &err);
    qv_wbuf_free(&blob);
    publish(st, j, h, rc, &err, secs, "cpu");
}

static void *run(void *arg)
{
    qv_indexer_t *ix = arg;
    pthread_mutex_lock(&ix->mu);
    for (;;) {
        while (!ix->stopping && !ix->head)
            pthread_cond_wait(&ix->cv, &ix->mu);
        if (ix->stopping)
            break;
        job_t *j = ix->head;
        ix->head = j->next;
        if (!ix->head)
            ix->tail = NULL;
        pthread_mutex_unlock(&ix->mu);
        if (j->task)
            j->task(j->arg, true);
        else if (!atomic_load(&j->coll->dropped))
            build_one(ix, j);
        job_free(j, true);
        pthread_mutex_lock(&ix->mu);
    }
    pthread_mutex_unlock(&ix->mu);
    return NULL;
}

int qv__indexer_start(qv_indexer_t *ix)
{
    if (pthread_create(&ix->thread, NULL, run, ix) != 0)
        return QV_ENOMEM;
    ix->started = true;
    return QV_OK;
}

void qv__indexer_destroy(qv_indexer_t *ix)
{
    if (!ix)
        return;
    pthread_mutex_lock(&ix->mu);
    ix->stopping = true;
    if (ix->current)
        qv_hnsw_cancel(ix->current);
    pthread_cond_broadcast(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
    if (ix->started)
        pthread_join(ix->thread, NULL);
    for (job_t *j = ix->head, *n; j; j = n) {
        n = j->next;
        job_free(j, false);
    }
    qv_pool_destroy(ix->pool);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->cv);
    free(ix);
}

bool qv__indexer_stopping(qv_indexer_t *ix)
{
    pthread_mutex_lock(&ix->mu);
    bool s = ix->stopping;
    pthread_mutex_unlock(&ix->mu);
    return s;
}

void qv__indexer_seg_info(qv_indexer_t *ix, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes)
{
    *state = atomic_load(&seg->index_state);
    *progress = 0;
    *bytes = 0;
    qv_hnsw_t *ready = atomic_load_explicit(&seg->index, memory_order_acquire);
    if (ready) {
        qv_hnsw_info_t info;
        qv_hnsw_info(ready, &info);
        *progress = 1;
        *bytes = info.graph_bytes + info.quant_bytes;
        return;
    }
    if (!ix)
        return;
    pthread_mutex_lock(&ix->mu); /* the indexer frees a build only after clearing `building` under mu */
    qv_hnsw_t *b = atomic_load(&seg->building);
    if (b && seg->rows)
        *progress = (double)qv_hnsw_progress(b) / seg->rows;
    pthread_mutex_unlock(&ix->mu);
}

/* ---- the store's side: what gets indexed, and the graph blob write (commit leader: W_INDEX) ---- */

void qv__store_maybe_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg)
{
    if (st->indexer && c->schema->index_kind == QV_INDEX_HNSW && seg->rows >= st->opts.index_min_rows &&
        seg->rows > 0)
        qv__indexer_submit(st->indexer, c, seg);
    else
        atomic_store(&seg->index_state, QV_IDX_NONE);
}

void qv_store_seg_index_info(qv_store_t *st, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes)
{
    qv__indexer_seg_info(st->indexer, seg, state, progress, bytes);
}

/* Replaces the stored index blob of a segment (chunked like segment blobs). */
void qv__run_index(qv_store_t *st, qv_writer_t *w)
{
    if (w->coll->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    bool present = false; /* a compaction may have replaced the segment while its graph was being built */
    for (size_t i = 0; i < w->coll->nsealed && !present; i++)
        present = w->coll->sealed[i] == w->seg;
    if (!present) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "segment was compacted away");
        return;
    }
    uint32_t coll = w->coll->schema->id;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_cat_put_index(&st->cat, b, coll, w->seg->id, w->blob, w->blob_len);
    w->rc = qv__rocks_write(st, b, "index", w->err);
    rocksdb_writebatch_destroy(b);
}
