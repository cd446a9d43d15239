/* The store's background worker: every job that runs off the request path is a typed job submitted here.
 *
 *   QV_JOB_SEAL     write a frozen segment's blob, then let the commit leader persist it (seal.c)
 *   QV_JOB_COMPACT  merge segments into one and let the leader swap them (compact.c)
 *   QV_JOB_INDEX    build a sealed segment's graph, store its blob through the leader and publish it (indexer.c)
 *
 * Two lanes, one thread each (the build lane's graph builds fan out over a pool of --index-threads):
 *   - the durability lane runs seals in freeze order. A seal lets the WAL records it covers be dropped, so it never
 *     waits behind a graph build or a compaction copy (one queue for everything made seals wait minutes);
 *   - the build lane runs every queued compaction before any queued index build: a build of a segment that a
 *     compaction will replace would be thrown away with it. A build is skipped when its segment is no longer one of
 *     its collection's, and a build that is running when a compaction takes its segment as an input is cancelled
 *     (the segment goes back to PENDING); when a compaction ends without replacing its inputs, those still wanting
 *     an index are queued again.
 * A job holds references to what it works on (collection, segments) from submission to its end, so a drop or a
 * compaction never frees them under it; a job still queued when the store closes is discarded (its function is
 * called with run = false to release what it holds). */
#ifndef QV_WORKER_H
#define QV_WORKER_H

#include "index/pool.h"
#include "storage/store.h"

typedef enum { QV_JOB_SEAL = 1, QV_JOB_COMPACT, QV_JOB_INDEX } qv_job_kind_t;

typedef struct qv_worker qv_worker_t;

/* A worker for st whose builds use build_threads threads in all (at least 1). NULL when out of memory. */
qv_worker_t *qv__worker_create(qv_store_t *st, int build_threads);
/* Starts both lanes' threads (after recovery has queued what it found). */
int qv__worker_start(qv_worker_t *w);
/* Finishes the seal in progress, discards queued seals and joins the durability lane (store close, first: what
 * remains frozen is persisted by the caller). The build lane goes on. */
void qv__worker_stop_seals(qv_worker_t *w);
/* Cancels a running build, discards queued jobs, joins the threads, frees. */
void qv__worker_destroy(qv_worker_t *w);
/* True once the worker is stopping: long jobs check it between blocks. */
bool qv__worker_stopping(qv_worker_t *w);

/* QV_JOB_SEAL and QV_JOB_COMPACT: fn(arg, true) runs the job; fn(arg, false) is called instead when it is
 * discarded. A compaction names its input segments (the worker keeps no reference: the job's arg holds them).
 * QV_ENOMEM when the job cannot be queued (fn is not called). */
int qv__worker_seal(qv_worker_t *w, void (*fn)(void *arg, bool run), void *arg);
int qv__worker_compact(qv_worker_t *w, qv_coll_t *c, qv_segment_t *const *inputs, size_t ninputs,
                       void (*fn)(void *arg, bool run), void *arg);
/* QV_JOB_INDEX for a sealed segment of c (takes its own references); the segment becomes PENDING. */
void qv__worker_index(qv_worker_t *w, qv_coll_t *c, qv_segment_t *seg);

/* ---- for indexer.c's build, on the build lane ---- */
struct qv_hnsw;
qv_pool_t *qv__worker_pool(qv_worker_t *w);
/* Publishes h as seg's build in progress (progress reports, cancel); false (nothing published) when the worker is
 * stopping or a compaction has taken seg meanwhile: do not build. */
bool qv__worker_build_begin(qv_worker_t *w, qv_segment_t *seg, struct qv_hnsw *h);
void qv__worker_build_end(qv_worker_t *w, qv_segment_t *seg);
/* The other builder (GPU plugin) said QV_EUNAVAIL: the CPU builds from then on (build lane only). */
bool *qv__worker_external_off(qv_worker_t *w);
/* What the build lane runs now, in words ("the index build of segment 7 of collection docs", "the compaction of
 * collection docs", "nothing: the next job starts now"), for Stats' "why does my job wait". */
void qv__worker_activity(qv_worker_t *w, char *buf, size_t size);

/* seg's index state and, while it builds, its progress (0..1); bytes of its ready index. */
void qv__worker_seg_info(qv_worker_t *w, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes);

#endif
