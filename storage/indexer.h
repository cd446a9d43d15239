/* The background indexer: builds an HNSW graph for each sealed segment of an HNSW collection, persists it in the
 * `idx` column family and publishes it to searches.
 *
 * Until a segment's index is published, searches scan it exactly, so nothing waits for a build. Publication is one
 * atomic pointer store (release) on the segment; searches load it (acquire) through a read view (read.h), and
 * the index lives exactly as long as its segment. A build runs on its own thread pool (the indexer thread plus
 * `threads - 1` workers), one segment at a time, oldest first.
 *
 * The graph blob is derived data: a missing or corrupt blob at start-up means a rebuild, never a failed start. The
 * blob write goes through the store's commit queue so it is ordered against DropCollection (a dropped collection's
 * index is discarded, never written after its data was deleted). */
#ifndef QV_INDEXER_H
#define QV_INDEXER_H

#include "storage/store.h"

typedef struct qv_indexer qv_indexer_t;

qv_indexer_t *qv__indexer_create(qv_store_t *st, int threads);
/* Starts the indexer thread (after recovery has queued what it found). */
int qv__indexer_start(qv_indexer_t *ix);
/* Cancels a running build, drops queued jobs, joins the threads, frees. */
void qv__indexer_destroy(qv_indexer_t *ix);
/* Queues a build for a sealed segment of c (takes its own references); sets the segment PENDING. */
void qv__indexer_submit(qv_indexer_t *ix, qv_coll_t *c, qv_segment_t *seg);
/* Queues other background work on the same thread, in order with the builds: task(arg, true) runs it;
 * task(arg, false) is called instead if the indexer stops first (to release what arg holds). */
int qv__indexer_task(qv_indexer_t *ix, void (*task)(void *arg, bool run), void *arg);

#endif
