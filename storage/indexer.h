/* Index builds: an HNSW graph for each sealed segment of an HNSW collection, persisted in the `idx` column family
 * and published to searches. The builds are the worker's QV_JOB_INDEX jobs (worker.h).
 *
 * Until a segment's index is published, searches scan it exactly, so nothing waits for a build. Publication is one
 * atomic pointer store (release) on the segment; searches load it (acquire) through a read view (read.h), and
 * the index lives exactly as long as its segment. A build runs on the worker's build lane and pool (--index-threads
 * in all), one segment at a time, oldest first, after any queued compaction.
 *
 * The graph blob is derived data: a missing or corrupt blob at start-up means a rebuild, never a failed start. The
 * blob write goes through the store's commit queue so it is ordered against DropCollection (a dropped collection's
 * index is discarded, never written after its data was deleted). */
#ifndef QV_INDEXER_H
#define QV_INDEXER_H

#include "storage/store.h"
#include "storage/worker.h"

/* A QV_JOB_INDEX of the worker (worker.h), on its build lane: builds seg's graph (the GPU plugin's builder when
 * the store has one, else the CPU over the worker's pool), stores its blob through the commit leader (W_INDEX) and
 * publishes it. A build the worker cancels leaves the segment PENDING. */
void qv__index_build(qv_store_t *st, qv_worker_t *w, qv_coll_t *c, qv_segment_t *seg);

#endif
