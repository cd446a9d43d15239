/* Exact (brute-force) search and counting over a collection's segments.
 *
 * The rows of every segment (sealed ones, then the growing one) are cut into blocks of QV_FILTER_BLOCK rows. Scan
 * tasks on the pool claim blocks from a shared counter, evaluate the filter for the block into a bitmap, drop
 * deleted rows, compute distances for the rows left and keep a private top-k; the partial top-k lists are merged at
 * the end. The caller holds the collection's read lock for the whole call and while it uses the hits. */
#ifndef QV_SEARCH_H
#define QV_SEARCH_H

#include <stdatomic.h>

#include "index/pool.h"
#include "query/filter.h"
#include "storage/store.h"

typedef struct {
    const float *query;          /* dim floats; COSINE queries already normalised */
    uint32_t k;                  /* 1..QV_K_MAX */
    const qv_filter_t *filter;   /* NULL: every row */
    int64_t deadline_ns;         /* CLOCK_MONOTONIC; 0: none */
    const atomic_bool *cancelled;/* NULL or set by the server when the client goes away */
} qv_search_req_t;

typedef struct {
    qv_segment_t *seg; /* borrowed: valid while the read lock is held */
    uint32_t row;
    float score;       /* L2: squared distance; IP: inner product; COSINE: cosine similarity */
} qv_hit_t;

/* Fills hits (room for req->k) best first and sets *nhits. QV_ETIMEDOUT / QV_ECANCELLED stop the scan early. */
int qv_search_exact(qv_coll_t *c, qv_pool_t *pool, const qv_search_req_t *req, qv_hit_t *hits, uint32_t *nhits,
                    qv_err_t *err);

/* Counts live rows passing the filter (NULL: all live rows). */
int qv_count(qv_coll_t *c, qv_pool_t *pool, const qv_filter_t *filter, uint64_t *count, qv_err_t *err);

/* CLOCK_MONOTONIC now, in ns. */
int64_t qv_now_ns(void);

#endif
