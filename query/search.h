/* Search and counting over a collection's segments.
 *
 * Work items: a sealed segment whose HNSW index is ready is one item, searched through the index (unless the
 * request forces exact search); every other segment (the growing one, and sealed ones whose index is pending,
 * building, failed or not wanted) is cut into blocks of QV_FILTER_BLOCK rows searched exactly. Tasks on the pool
 * claim items from a shared counter. An exact block evaluates the filter into a bitmap, drops deleted rows and
 * computes distances for the rest; an index item builds the segment's allowed bitmap (filter and not deleted) and
 * lets the index plan by selectivity (graph walk, two-hop walk through non-matching nodes, or an exact scan of the
 * allowed rows: index/hnsw.h). Each task keeps a private top-k; the lists are merged at the end. Everything runs
 * on a read view (storage/read.h): no lock is held, and hits stay valid until the caller's qv_read_end. */
#ifndef QV_SEARCH_H
#define QV_SEARCH_H

#include <stdatomic.h>

#include "index/pool.h"
#include "query/filter.h"
#include "query/request.h"
#include "storage/read.h"

typedef struct {
    const float *query;          /* dim floats; COSINE queries already normalised */
    uint32_t k;                  /* 1..QV_K_MAX */
    const qv_filter_t *filter;   /* NULL: every row */
    uint32_t ef;                 /* HNSW search breadth; 0: 64 */
    uint32_t rerank;             /* quantised indexes: re-ranking factor; 0: default */
    bool exact;                  /* scan every segment exactly */
    int64_t deadline_ns;         /* CLOCK_MONOTONIC; 0: none */
    const atomic_bool *cancelled;/* NULL or set by the server when the client goes away */
} qv_search_req_t;

typedef struct {
    qv_segment_t *seg; /* one of the view's segments: valid until qv_read_end */
    uint32_t row;
    float score;       /* L2: squared distance; IP: inner product; COSINE: cosine similarity */
} qv_hit_t;

/* Fills hits (room for req->k) best first and sets *nhits. QV_ETIMEDOUT / QV_ECANCELLED stop the scan early. */
int qv_search(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, qv_hit_t *hits, uint32_t *nhits,
              qv_err_t *err);

/* Searches nq query vectors that share everything else in *req (k, filter, ef, exactness, deadline; req->query is
 * unused) in one pass over the view: a block searched exactly is read once for all of them, its filter evaluated once,
 * and its inner products computed as one matrix product per BATCH_QUERIES queries (OpenBLAS sgemm, single-threaded:
 * the pool's tasks are the threads); a segment searched through its index is searched query by query. Each answer
 * equals qv_search's for that query, score for score: the product only screens rows, and a row that may enter a
 * top-k is scored by the same kernel as in qv_search. hits[q] has room for req->k hits; nhits[q] is set. */
int qv_search_batch(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, const float *const *queries,
                    size_t nq, qv_hit_t *const *hits, uint32_t *nhits, qv_err_t *err);

/* qv_search with every segment scanned exactly (the ground truth the index is measured against). */
int qv_search_exact(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, qv_hit_t *hits,
                    uint32_t *nhits, qv_err_t *err);

/* When a long read gives up: a CLOCK_MONOTONIC deadline (0: none) and the client's cancellation flag (may be NULL).
 * Scans check both once per block of QV_FILTER_BLOCK rows. */
typedef struct {
    int64_t deadline_ns;
    const atomic_bool *cancelled;
} qv_stop_t;

/* Counts live rows passing the filter (NULL: all live rows). QV_ETIMEDOUT / QV_ECANCELLED per stop. */
int qv_count(const qv_read_t *v, qv_pool_t *pool, const qv_filter_t *filter, qv_stop_t stop, uint64_t *count,
             qv_err_t *err);

/* Scroll: the live rows passing the filter whose id sorts after `after` (byte order; empty: from the start), the
 * `limit` smallest ids, ascending. *more tells whether further rows exist. The refs are into the view's segments. */
typedef struct {
    qv_segment_t *seg;
    uint32_t row;
} qv_rowref_t;
int qv_scroll(const qv_read_t *v, const qv_filter_t *filter, qv_str_t after, uint32_t limit, qv_stop_t stop,
              qv_rowref_t *out, uint32_t *n, bool *more, qv_err_t *err);

/* CLOCK_MONOTONIC now, in ns. */
int64_t qv_now_ns(void);

#endif
