/* HNSW graph index over an external, row-major float matrix (Malkov & Yashunin, "Efficient and robust approximate
 * nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI 2018).
 *
 * What the index holds and what it does not. A qv_hnsw_t is built for rows 0..n-1 of one sealed segment. It stores
 * only the graph (levels and link lists); the vectors stay with the caller, who passes a pointer at create/decode
 * time and must keep that memory alive and unchanged until qv_hnsw_free(). Row ids in results are the row numbers
 * 0..n-1 of that matrix. Metric: squared L2, or inner product (cosine collections store normalised vectors and use
 * IP). Distances returned are "smaller is better": L2 = squared distance, IP = -dot.
 *
 * Lifecycle (the background indexer's view):
 *   qv_hnsw_create()   allocate for n rows (cheap, O(n) memory, no distance computations)
 *   qv_hnsw_build()    insert every row, in parallel on a qv_pool_t; qv_hnsw_progress() may be read meanwhile from
 *                      any thread, qv_hnsw_cancel() makes it stop early with QV_ECANCELLED
 *   qv_hnsw_search()   any number of threads at once, only after build returned QV_OK (or after decode)
 *   qv_hnsw_encode()   serialise the graph to a versioned, checksummed blob
 *   qv_hnsw_decode()   load a blob as untrusted bytes against the same vectors (no rebuild)
 *   qv_hnsw_free()
 * After build, the graph is immutable: searches never take a lock except one short mutex to borrow a scratch
 * (visited set + heaps) from the index's pool, so readers never block each other for long and there is no
 * per-query allocation once the pool is warm.
 *
 * Filters. A search may pass an `allowed` bitmap (uint64 words, bit i set = row i may be returned; deleted rows and
 * rows failing the request's filter are simply not allowed). The graph walk goes THROUGH non-allowed nodes but only
 * admits allowed ones into the result; when the allowed fraction is small (< 30%) it expands two-hop
 * neighbourhoods (ACORN-style), and when so few rows pass that scanning them is cheaper than any walk, or fewer than
 * 2% pass (where the two-hop walk's recall drops), it scans them exactly (QV_HNSW_PLAN_AUTO; the cost model is in
 * index/hnsw/search.c). Effort is bounded by `max_dist` distance computations. The lead's planner can call
 * qv_hnsw_plan() to explain the choice, or force a path with qv_hnsw_search_params_t.plan.
 *
 * Quantisation (qv_hnsw_params_t.quant). With SQ8 or PQ, qv_hnsw_build() first trains a quantiser on the rows
 * (index/quant/quant.h) and keeps a code per row in the index (SQ8: dim bytes, PQ: m bytes, against 4 * dim for
 * the float row). The graph itself is built with full-precision distances (a better graph for the same M). A
 * search walks the graph computing distances from the query to the CODES (less memory traffic per hop: the codes of
 * 100k x 128 rows are 12.8 MB for SQ8 and 1.6 MB for PQ m=16, against 51 MB of floats), keeps the best
 * max(ef, rerank * k) candidates, and re-ranks them with the full-precision vectors, so the distances returned are
 * exact. The vectors stay with the caller as without quantisation. Filters work the same way (codes during the
 * walk, exact re-rank of allowed rows only); the exact-scan path reads the full-precision vectors. The blob
 * (version 2) carries the codes and codebooks, so loading never retrains.
 *
 * Thread safety: create/build/free/cancel by the owner; progress/cancel from any thread during build; search,
 * encode, info and validate from any number of threads once built. */
#ifndef QV_HNSW_H
#define QV_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "index/pool.h"
#include "index/topk.h"

#define QV_HNSW_DEFAULT_M 16
#define QV_HNSW_DEFAULT_EFC 200
#define QV_HNSW_DEFAULT_EF 64
#define QV_HNSW_MAX_M 128        /* layer 0 then has at most 256 links per node */
#define QV_HNSW_MAX_LEVEL 31     /* levels are drawn as floor(-ln(U) / ln(M)), capped here */
#define QV_HNSW_MAX_ROWS 0xFFFFFFFEu  /* node ids are uint32; UINT32_MAX means "none" */
#define QV_HNSW_MAX_DIM 65536u
#define QV_HNSW_COUNT_UNKNOWN SIZE_MAX

typedef enum {
    QV_HNSW_L2 = 0,  /* squared Euclidean distance */
    QV_HNSW_IP = 1,  /* inner product, dist = -dot (cosine: normalise the vectors and use this) */
} qv_hnsw_metric_t;

typedef enum {
    QV_HNSW_QUANT_NONE = 0,  /* the walk reads the full-precision vectors */
    QV_HNSW_QUANT_SQ8 = 1,   /* 8-bit scalar codes, per-dimension ranges: dim bytes per row */
    QV_HNSW_QUANT_PQ = 2,    /* product quantisation, pq_m sub-quantisers x 256 centroids: pq_m bytes per row */
} qv_hnsw_quant_t;

#define QV_HNSW_DEFAULT_RERANK 4

typedef struct {
    qv_hnsw_metric_t metric;
    uint32_t M;                /* links per node on layers >= 1, 2*M on layer 0. 0 = 16; 2..QV_HNSW_MAX_M */
    uint32_t ef_construction;  /* candidate list size while inserting. 0 = 200; raised to M if smaller */
    uint64_t seed;             /* level draws and quantiser training: the same seed, data and one build thread give
                                * the same graph (the codebooks are the same for any number of threads) */
    qv_hnsw_quant_t quant;     /* 0 = none */
    uint32_t pq_m;             /* PQ only: sub-quantisers, must divide dim (else QV_EINVAL at create); 0 = the
                                * largest divisor of dim <= dim / 4 (codes <= 1/16 of the float bytes) */
} qv_hnsw_params_t;

typedef struct qv_hnsw qv_hnsw_t;

/* Allocates an empty index for rows 0..n-1 of `vectors` (row r at vectors + r * stride; stride in floats, 0 means
 * dim). The index does NOT own or copy the vectors: they must stay valid and unchanged until qv_hnsw_free().
 * n may be 0. Returns QV_OK, QV_EINVAL (bad parameter; detail in err), QV_ENOMEM. */
int qv_hnsw_create(const qv_hnsw_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_err_t *err, qv_hnsw_t **out);

/* Inserts every row (Algorithm 1 per row), on all threads of `pool` plus the caller (pool may be NULL: one
 * thread). Blocks until done. Returns QV_OK; QV_ECANCELLED after qv_hnsw_cancel() (the index is then unusable
 * and may only be freed); QV_ENOMEM; QV_EPRECOND if it was already built. With one thread the result is
 * deterministic; with more, the graph depends on scheduling but always satisfies qv_hnsw_validate(). */
int qv_hnsw_build(qv_hnsw_t *h, qv_pool_t *pool);

/* Rows inserted so far (0..n); safe to call from any thread while qv_hnsw_build() runs. */
size_t qv_hnsw_progress(const qv_hnsw_t *h);

/* Asks a running (or future) build to stop soon; safe from any thread. */
void qv_hnsw_cancel(qv_hnsw_t *h);

/* Frees the graph and the scratch pool (not the vectors). No search or build may be running. NULL is a no-op. */
void qv_hnsw_free(qv_hnsw_t *h);

typedef enum {
    QV_HNSW_PLAN_AUTO = 0,   /* graph walk, two-hop walk or exact scan of the allowed rows by estimated cost */
    QV_HNSW_PLAN_GRAPH = 1,  /* always walk the graph (plain or two-hop by selectivity) */
    QV_HNSW_PLAN_EXACT = 2,  /* always scan the allowed rows exactly (the reference for recall) */
} qv_hnsw_plan_t;

typedef enum {
    QV_HNSW_PATH_NONE = 0,    /* nothing to search: n == 0, k == 0 or no row allowed */
    QV_HNSW_PATH_GRAPH = 1,   /* Algorithm 5, walking through non-allowed nodes */
    QV_HNSW_PATH_TWOHOP = 2,  /* Algorithm 5 with two-hop expansion over non-allowed neighbours */
    QV_HNSW_PATH_EXACT = 3,   /* exact scan of the allowed rows */
} qv_hnsw_path_t;

typedef struct {
    uint32_t ef;               /* candidate list size on layer 0; 0 = QV_HNSW_DEFAULT_EF; raised to k if smaller */
    const uint64_t *allowed;   /* NULL = every row; else qv_bm_words(n) words, read-only during the call */
    size_t allowed_count;      /* set bits among the n rows, or QV_HNSW_COUNT_UNKNOWN (then counted, O(n/64)) */
    uint64_t max_dist;         /* bound on distance computations per search; 0 = a default that scales with ef.
                                * When hit, what was found so far is returned (stats.budget_hit) */
    qv_hnsw_plan_t plan;
    float twohop_below;        /* allowed fraction under which the walk expands two-hop; 0 = default (0.3),
                                * negative = never */
    uint32_t rerank;           /* quantised index only: the walk keeps the max(ef, rerank * k) best candidates by
                                * code distance and re-ranks them with the full-precision vectors; 0 =
                                * QV_HNSW_DEFAULT_RERANK. Ignored without quantisation */
} qv_hnsw_search_params_t;

typedef struct {
    uint64_t ndist;       /* distance computations of the walk (quantised index: query-to-code distances) or scan */
    uint64_t nvisited;    /* nodes whose link list was read (hops) */
    uint64_t nrerank;     /* quantised index: full-precision distances computed to re-rank the candidates */
    qv_hnsw_path_t path;
    bool budget_hit;      /* max_dist was reached before the search converged */
} qv_hnsw_stats_t;

/* k nearest allowed rows to `query` (dim floats). Writes at most k candidates to out[] best first (ascending dist,
 * ties by row) and their number to *nout: min(k, allowed rows) when the walk reaches them, fewer only if the
 * effort bound is hit. out holds copies (nothing points into the index). params and stats may be NULL. On a
 * quantised index the distances in out are still the exact full-precision ones (the candidates are re-ranked).
 * Returns QV_OK, QV_EINVAL (NULL pointers; index not built), QV_ENOMEM (a user-sized ef or rerank could not be
 * allocated). */
int qv_hnsw_search(const qv_hnsw_t *h, const float *query, size_t k, const qv_hnsw_search_params_t *params,
                   qv_cand_t *out, size_t *nout, qv_hnsw_stats_t *stats);

/* Exact k nearest allowed rows (a scan of the allowed rows; the ground truth for recall tests and the planner's
 * choice for very selective filters). allowed may be NULL. Same output contract as qv_hnsw_search. Does not need a
 * built graph. */
int qv_hnsw_search_exact(const qv_hnsw_t *h, const float *query, size_t k, const uint64_t *allowed, qv_cand_t *out,
                         size_t *nout);

/* The path QV_HNSW_PLAN_AUTO would take for a search with this ef and allowed_count (n = all rows). Exposed so a
 * planner can explain itself. */
qv_hnsw_path_t qv_hnsw_plan(const qv_hnsw_t *h, size_t k, uint32_t ef, size_t allowed_count, float twohop_below);

typedef struct {
    size_t n;
    uint32_t dim, M, ef_construction;
    qv_hnsw_metric_t metric;
    uint32_t max_level;       /* top layer; 0 for n <= 1 */
    uint32_t entry;           /* entry point, UINT32_MAX when n == 0 */
    uint64_t links;           /* directed links on all layers */
    size_t graph_bytes;       /* memory held for the graph (levels, link lists, offsets), not the vectors */
    qv_hnsw_quant_t quant;
    uint32_t pq_m;            /* PQ sub-quantisers (0 unless PQ) */
    size_t code_bytes;        /* bytes of one row's code read by the walk (SQ8 dim, PQ m; 0 without quantisation) */
    size_t quant_bytes;       /* memory held for the codes and codebooks (0 without quantisation) */
    double bytes_per_vector;  /* (graph_bytes + quant_bytes) / n: the index's own memory per row, codes included,
                               * the caller's float vectors not (0 when n == 0) */
    const char *quant_tier;   /* code-distance kernels: "scalar", "avx2", "avx512" (PQ on AMD: "avx512/scalar-lookup"
                               * or "avx2/scalar-lookup", see index/quant/quant.c); NULL without quantisation */
    size_t scratch_bytes;     /* one search scratch (visited tags + heaps); the pool keeps one per concurrent search */
} qv_hnsw_info_t;

void qv_hnsw_info(const qv_hnsw_t *h, qv_hnsw_info_t *info);

typedef struct {
    size_t nodes;
    uint64_t links;
    uint32_t max_level;
    size_t unreachable;       /* nodes not reachable from the entry point on layer 0 (reported, not an error) */
    uint32_t first_unreachable;  /* UINT32_MAX if none */
} qv_hnsw_report_t;

/* Checks the graph: every link in range, no self links, no duplicate links in a list, degree <= M (layers >= 1) or
 * 2M (layer 0), every upper-layer link to a node that has that layer, levels consistent with the entry point and
 * max level; counts nodes unreachable on layer 0 from the entry point into report. Returns QV_OK or QV_ECORRUPT
 * (first problem in err). report may be NULL. Safe to call concurrently with searches. */
int qv_hnsw_validate(const qv_hnsw_t *h, qv_hnsw_report_t *report, qv_err_t *err);

/* Appends the serialised graph, with the quantiser's codebooks and codes when quantised (format at the top of
 * index/hnsw/io.c, version 2), to out. Returns QV_OK, QV_EINVAL (not built), QV_ENOMEM (out->oom). */
int qv_hnsw_encode(const qv_hnsw_t *h, qv_wbuf_t *out);

/* Loads a blob as untrusted data: checksum, version (1: graph only, as written before quantisation; 2: graph and
 * optional quantiser), every count and link bounds-checked, the quantiser's blob checked the same way (no
 * retraining); n and dim must match the vectors given (which, as for create, the index does not own). Never reads
 * outside blob[0..len) and never crashes on any input. Returns QV_OK, QV_ECORRUPT (detail in err; also when the
 * blob was built for another n or dim: it does not belong to these vectors, so the caller rebuilds), QV_EINVAL (NULL
 * pointers), QV_ENOMEM. On success *out is a built index ready to search. */
int qv_hnsw_decode(const void *blob, size_t len, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_err_t *err, qv_hnsw_t **out);

#endif
