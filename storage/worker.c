/* The store's background worker (worker.h): two lanes of typed jobs. */
#include "storage/worker.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/hnsw.h"
#include "storage/indexer.h"
#include "storage/store_int.h"

typedef struct job {
    qv_job_kind_t kind;
    qv_coll_t *coll;         /* INDEX, COMPACT: one reference */
    qv_segment_t *seg;       /* INDEX: one reference */
    qv_segment_t **inputs;   /* COMPACT: one reference each, so they can be looked at after fn has run */
    size_t ninputs;
    void (*fn)(void *arg, bool run);
    void *arg;
    struct job *next;
} job_t;

typedef struct {
    pthread_t thread;
    bool started;
    job_t *head, *tail;
} lane_t;

enum { LANE_SEAL, LANE_BUILD, NLANES };

struct qv_worker {
    qv_store_t *st;
    qv_pool_t *pool;         /* the build lane's helpers */
    pthread_mutex_t mu;      /* guards the lanes' queues, stopping, seals_stopping, building, compacting */
    pthread_cond_t cv;
    lane_t lanes[NLANES];
    bool stopping, seals_stopping;
    qv_segment_t *building;  /* the segment whose graph is being built ... */
    struct qv_hnsw *build;   /* ... and its graph (cancelled when a compaction takes the segment) */
    job_t *compacting;       /* the compaction the build lane runs now */
    bool external_off;       /* build lane only */
};

qv_worker_t *qv__worker_create(qv_store_t *st, int build_threads)
{
    qv_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->st = st;
    w->pool = qv_pool_create(build_threads > 1 ? build_threads - 1 : 0);
    if (!w->pool) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return w;
}

static void job_free(job_t *j, bool ran)
{
    if (j->fn && !ran)
        j->fn(j->arg, false);
    qv_seg_unref(j->seg);
    for (size_t i = 0; i < j->ninputs; i++)
        qv_seg_unref(j->inputs[i]);
    free(j->inputs);
    if (j->coll)
        qv_coll_release(j->coll);
    free(j);
}

static bool takes(const job_t *c, const qv_segment_t *seg)
{
    for (size_t i = 0; i < c->ninputs; i++)
        if (c->inputs[i] == seg)
            return true;
    return false;
}

/* Queues j on its lane (mu held): a compaction goes ahead of every queued index build, after earlier compactions. */
static void enqueue_locked(qv_worker_t *w, job_t *j)
{
    lane_t *l = &w->lanes[j->kind == QV_JOB_SEAL ? LANE_SEAL : LANE_BUILD];
    if (j->kind == QV_JOB_COMPACT) {
        job_t **at = &l->head;
        while (*at && (*at)->kind == QV_JOB_COMPACT)
            at = &(*at)->next;
        j->next = *at;
        *at = j;
        if (!j->next)
            l->tail = j;
        /* a graph being built for one of its inputs would be thrown away with the segment */
        if (w->building && takes(j, w->building) && w->build)
            qv_hnsw_cancel(w->build);
    } else {
        if (l->tail)
            l->tail->next = j;
        else
            l->head = j;
        l->tail = j;
    }
    pthread_cond_broadcast(&w->cv);
}

int qv__worker_seal(qv_worker_t *w, void (*fn)(void *arg, bool run), void *arg)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return QV_ENOMEM;
    *j = (job_t){.kind = QV_JOB_SEAL, .fn = fn, .arg = arg};
    pthread_mutex_lock(&w->mu);
    enqueue_locked(w, j);
    pthread_mutex_unlock(&w->mu);
    return QV_OK;
}

int qv__worker_compact(qv_worker_t *w, qv_coll_t *c, qv_segment_t *const *inputs, size_t ninputs,
                       void (*fn)(void *arg, bool run), void *arg)
{
    job_t *j = calloc(1, sizeof *j);
    qv_segment_t **in = malloc((ninputs ? ninputs : 1) * sizeof *in);
    if (!j || !in) {
        free(j);
        free(in);
        return QV_ENOMEM;
    }
    for (size_t i = 0; i < ninputs; i++)
        qv_seg_ref(in[i] = inputs[i]);
    atomic_fetch_add(&c->refs, 1);
    *j = (job_t){.kind = QV_JOB_COMPACT, .coll = c, .inputs = in, .ninputs = ninputs, .fn = fn, .arg = arg};
    pthread_mutex_lock(&w->mu);
    enqueue_locked(w, j);
    pthread_mutex_unlock(&w->mu);
    return QV_OK;
}

void qv__worker_index(qv_worker_t *w, qv_coll_t *c, qv_segment_t *seg)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) {
        atomic_store(&seg->index_state, QV_IDX_FAILED);
        return;
    }
    atomic_fetch_add(&c->refs, 1);
    qv_seg_ref(seg);
    *j = (job_t){.kind = QV_JOB_INDEX, .coll = c, .seg = seg};
    atomic_store(&seg->index_state, QV_IDX_PENDING);
    pthread_mutex_lock(&w->mu);
    enqueue_locked(w, j);
    pthread_mutex_unlock(&w->mu);
}

/* Is seg still one of c's sealed segments (not compacted away, c not dropped)? */
static bool still_listed(qv_coll_t *c, qv_segment_t *seg)
{
    if (atomic_load(&c->dropped))
        return false;
    bool present = false;
    qv_coll_rdlock(c);
    for (size_t i = 0; i < c->nsealed && !present; i++)
        present = c->sealed[i] == seg;
    qv_coll_unlock(c);
    return present;
}

/* After a compaction: inputs it did not replace (it failed or was abandoned) and whose build it had pre-empted are
 * queued for an index again. */
static void requeue_inputs(qv_worker_t *w, const job_t *j)
{
    for (size_t i = 0; i < j->ninputs; i++) {
        qv_segment_t *seg = j->inputs[i];
        if (atomic_load(&seg->index_state) == QV_IDX_PENDING && !atomic_load(&seg->index) &&
            still_listed(j->coll, seg))
            qv__store_maybe_index(w->st, j->coll, seg);
    }
}

/* malloc_trim walks every arena under its lock: at most once a second, whichever lane asks (both may idle often). */
static bool trim_due(void)
{
    static _Atomic int64_t last;
    int64_t now = qv_mono_ns(), prev = atomic_load(&last);
    return now - prev >= 1000000000LL && atomic_compare_exchange_strong(&last, &prev, now);
}

static void lane_run(qv_worker_t *w, int lane)
{
    lane_t *l = &w->lanes[lane];
    pthread_mutex_lock(&w->mu);
    for (;;) {
        bool stop = w->stopping || (lane == LANE_SEAL && w->seals_stopping);
        while (!stop && !l->head) {
            pthread_cond_wait(&w->cv, &w->mu);
            stop = w->stopping || (lane == LANE_SEAL && w->seals_stopping);
        }
        if (stop)
            break;
        job_t *j = l->head;
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        if (j->kind == QV_JOB_COMPACT)
            w->compacting = j;
        pthread_mutex_unlock(&w->mu);
        if (j->kind == QV_JOB_INDEX) {
            if (still_listed(j->coll, j->seg))
                qv__index_build(w->st, w, j->coll, j->seg);
            else if (!atomic_load(&j->coll->dropped))
                qv__store_log(w->st, "index.skipped", "collection=%s segment=%llu (compacted away while queued)",
                              j->coll->schema->name, (unsigned long long)j->seg->id);
        } else {
            j->fn(j->arg, true);
        }
        if (j->kind == QV_JOB_COMPACT)
            requeue_inputs(w, j);
        if (j->kind == QV_JOB_COMPACT) {
            pthread_mutex_lock(&w->mu);
            w->compacting = NULL;
            pthread_mutex_unlock(&w->mu);
        }
        job_free(j, true);
        pthread_mutex_lock(&w->mu);
        if (!l->head && trim_due()) {
            /* out of work: give what the jobs freed (build scratch, superseded copies) back to the system; glibc
             * keeps freed memory in its arenas otherwise, and RSS after indexing stayed at twice a restart's */
            pthread_mutex_unlock(&w->mu);
            malloc_trim(0);
            pthread_mutex_lock(&w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

static void *seal_main(void *arg)
{
    lane_run(arg, LANE_SEAL);
    return NULL;
}

static void *build_main(void *arg)
{
    lane_run(arg, LANE_BUILD);
    return NULL;
}

int qv__worker_start(qv_worker_t *w)
{
    if (pthread_create(&w->lanes[LANE_SEAL].thread, NULL, seal_main, w) != 0)
        return QV_ENOMEM;
    w->lanes[LANE_SEAL].started = true;
    if (pthread_create(&w->lanes[LANE_BUILD].thread, NULL, build_main, w) != 0)
        return QV_ENOMEM;
    w->lanes[LANE_BUILD].started = true;
    return QV_OK;
}

/* Discards the queued jobs of lane l (mu not held; the lane's thread has been joined or never started). */
static void discard(qv_worker_t *w, int lane)
{
    pthread_mutex_lock(&w->mu);
    job_t *j = w->lanes[lane].head;
    w->lanes[lane].head = w->lanes[lane].tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        job_t *n = j->next;
        if (j->kind == QV_JOB_INDEX)
            atomic_store(&j->seg->index_state, QV_IDX_PENDING);
        job_free(j, false);
        j = n;
    }
}

void qv__worker_stop_seals(qv_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->seals_stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->lanes[LANE_SEAL].started)
        pthread_join(w->lanes[LANE_SEAL].thread, NULL);
    w->lanes[LANE_SEAL].started = false;
    discard(w, LANE_SEAL);
}

void qv__worker_destroy(qv_worker_t *w)
{
    if (!w)
        return;
    qv__worker_stop_seals(w);
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    if (w->build)
        qv_hnsw_cancel(w->build);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->lanes[LANE_BUILD].started)
        pthread_join(w->lanes[LANE_BUILD].thread, NULL);
    discard(w, LANE_BUILD);
    qv_pool_destroy(w->pool);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

bool qv__worker_stopping(qv_worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return s;
}

qv_pool_t *qv__worker_pool(qv_worker_t *w) { return w->pool; }

bool *qv__worker_external_off(qv_worker_t *w) { return &w->external_off; }

bool qv__worker_build_begin(qv_worker_t *w, qv_segment_t *seg, struct qv_hnsw *h)
{
    pthread_mutex_lock(&w->mu);
    /* a compaction queued since the job was taken that replaces seg: its graph would be thrown away */
    bool taken = false;
    for (job_t *c = w->lanes[LANE_BUILD].head; c && c->kind == QV_JOB_COMPACT && !taken; c = c->next)
        taken = takes(c, seg);
    bool go = !w->stopping && !taken;
    if (go) {
        w->building = seg;
        w->build = h;
        atomic_store(&seg->building, h);
        atomic_store(&seg->index_state, QV_IDX_BUILDING);
    }
    pthread_mutex_unlock(&w->mu);
    return go;
}

void qv__worker_build_end(qv_worker_t *w, qv_segment_t *seg)
{
    pthread_mutex_lock(&w->mu);
    w->building = NULL;
    w->build = NULL;
    atomic_store(&seg->building, NULL);
    pthread_mutex_unlock(&w->mu);
}

void qv__worker_seg_info(qv_worker_t *w, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes)
{
    *state = atomic_load(&seg->index_state);
    *progress = 0;
    *bytes = 0;
    struct qv_hnsw *ready = atomic_load_explicit(&seg->index, memory_order_acquire);
    if (ready) {
        qv_hnsw_info_t info;
        qv_hnsw_info(ready, &info);
        *progress = 1;
        *bytes = info.graph_bytes + info.quant_bytes;
        return;
    }
    if (!w)
        return;
    pthread_mutex_lock(&w->mu); /* a build is freed only after `building` was cleared under mu */
    struct qv_hnsw *b = atomic_load(&seg->building);
    if (b && seg->rows)
        *progress = (double)qv_hnsw_progress(b) / seg->rows;
    pthread_mutex_unlock(&w->mu);
}

void qv__worker_activity(qv_worker_t *w, char *buf, size_t size)
{
    pthread_mutex_lock(&w->mu);
    if (w->compacting)
        snprintf(buf, size, "the compaction of collection %s", w->compacting->coll->schema->name);
    else if (w->building)
        snprintf(buf, size, "the index build of segment %llu", (unsigned long long)w->building->id);
    else
        snprintf(buf, size, "nothing: the next job starts now");
    pthread_mutex_unlock(&w->mu);
}
