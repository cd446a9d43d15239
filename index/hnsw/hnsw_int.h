/* Internal to the index/hnsw/ sources: the index structure, link-list layout, scratch pool and heaps.
 *
 * Memory layout (graph only; the vectors are the caller's):
 *   levels[n]            uint8, top layer of each node
 *   l0[n * (M0 + 1)]     layer-0 link lists, one fixed slot per node: word 0 = count, words 1..M0 = neighbour ids.
 *                        One contiguous array so a node's links are found by multiplication, no pointer chase.
 *   upper_off[n]         for a node with level >= 1: index of its first slot in `upper`
 *   upper[slots*(M+1)]   layer l >= 1 of node i lives at slot upper_off[i] + l - 1 (count word + M ids).
 *   codes[n * code_size] quantised index only: the quantiser's codes (owned by qz), read by the search walk.
 * Levels are drawn for every row at create time (a hash of seed and row), so the upper-layer slots are laid out
 * once, before the parallel build, and never reallocated.
 *
 * Concurrent build protocol. Writers of a link list hold that node's spinlock (locks[i]); readers (the searches of
 * other inserting threads) take no lock and read words with relaxed atomics. A writer stores the ids first and the
 * count last (release); a reader loads the count (acquire) and then ids. Every id word always holds some valid node
 * id (lists are zero-initialised and only ever overwritten with valid ids), so a reader racing with a rewrite may
 * see a stale or mixed list, which only perturbs that one search, never memory safety: the graph invariants that
 * qv_hnsw_validate() checks are maintained under the node locks. `entry` packs (max_level << 32 | entry node) into
 * one 64-bit word so readers get a consistent pair with one atomic load; it changes only under ep_mu. */
#ifndef QV_HNSW_INT_H
#define QV_HNSW_INT_H

#include "index/hnsw.h"

#include "index/distance.h"
#include "index/quant/quant.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define QV_HNSW_NONE UINT32_MAX
#define QV_HNSW_ENTRY_EMPTY UINT64_MAX

typedef struct {
    float d;
    uint32_t id;
} qv__pair_t;

/* Four distances (squared L2, or dot for IP: the caller negates) from q to v[0..3] (batch.c). */
typedef void (*qv__dist4_fn)(const float *q, const float *const v[4], size_t dim, float out[4]);
qv__dist4_fn qv__dist4_select(qv_hnsw_metric_t metric);

/* Scratch for one search or one inserting thread: visited tags with a generation counter, the two heaps of
 * Algorithm 2, and buffers for neighbour batches and the heuristic. Borrowed from the index's pool; never shared
 * between threads at once. */
typedef struct qv__hnsw_scratch {
    struct qv__hnsw_scratch *next;  /* free list link; pool_mu */
    uint16_t *tags;                 /* tags[i] == gen: node i visited in this search */
    uint16_t gen;
    qv__pair_t *cand;               /* min-heap of candidates (C in Algorithm 2), grows */
    size_t ncand, cand_cap;
    qv__pair_t *res;                /* max-heap of results (W in Algorithm 2), capacity res_cap */
    size_t nres, res_cap;
    qv__pair_t *work;               /* sorted W between layers / heuristic input, capacity res_cap + 1 */
    uint32_t *batch;                /* neighbour ids gathered before computing their distances */
    float *qtable;                  /* quantised index: the query's code-distance table (64-byte aligned) */
    qv__pair_t *ext;                /* quantised index: the re-rank candidates (max-heap), capacity ext_cap */
    size_t next_r, ext_cap;         /* pairs held in ext, its capacity */
    uint32_t *hop2;                 /* non-allowed neighbours to expand (two-hop) */
    qv__pair_t *sel;                /* heuristic output / shrink buffer, capacity M0 + 1 */
    bool oom;                       /* a heap could not grow: the search stopped early */
} qv__scratch_t;

struct qv_hnsw {
    /* Immutable after create/decode. */
    const float *vectors;
    size_t stride;        /* floats between rows */
    size_t n;
    uint32_t dim;
    qv_hnsw_metric_t metric;
    uint32_t M, M0, efc;
    uint64_t seed;
    qv_dist_fn dist;      /* l2sq or dot from the dispatch table, fixed at create */
    qv__dist4_fn dist4;   /* the same, four vectors per call (batch.c), same tier */
    uint8_t *levels;
    uint32_t *l0;
    uint32_t *upper;
    uint32_t *upper_off;
    size_t upper_slots;

    /* Quantisation: requested at create; qz and what is cached from it are set once by build (before any search)
     * or decode, then immutable. */
    qv_hnsw_quant_t quant;
    uint32_t pq_m;             /* resolved at create (PQ) */
    qv_quant_t *qz;            /* owned; NULL without quantisation */
    const uint8_t *codes;      /* qz's codes, row r at codes + r * code_size */
    size_t code_size;
    qv_quant_dist4_fn qdist4;  /* qz's kernel for the active SIMD tier */

    /* Build state. */
    uint64_t entry;       /* (max_level << 32) | node, or QV_HNSW_ENTRY_EMPTY; written under ep_mu, read atomically */
    pthread_mutex_t ep_mu;
    uint8_t *locks;       /* per-node spinlocks, only while building */
    size_t progress;      /* rows inserted; atomics */
    int cancel;           /* atomics */
    int built;            /* 1 once build or decode succeeded; atomics */

    /* Scratch pool. */
    pthread_mutex_t pool_mu;
    qv__scratch_t *free_scratch;  /* pool_mu */
};

static inline size_t qv__l0_stride(const qv_hnsw_t *h) { return (size_t)h->M0 + 1; }

static inline uint32_t *qv__links(const qv_hnsw_t *h, uint32_t id, unsigned layer)
{
    if (layer == 0)
        return h->l0 + (size_t)id * qv__l0_stride(h);
    return h->upper + ((size_t)h->upper_off[id] + layer - 1) * ((size_t)h->M + 1);
}

static inline const float *qv__vec(const qv_hnsw_t *h, uint32_t id) { return h->vectors + (size_t)id * h->stride; }

static inline float qv__dist(const qv_hnsw_t *h, const float *a, const float *b)
{
    float d = h->dist(a, b, h->dim);
    return h->metric == QV_HNSW_IP ? -d : d;
}

static inline uint32_t qv__load(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t qv__load_count(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void qv__store(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void qv__store_count(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* ---- heaps over (d, id): candidates are a min-heap, results a max-heap ---- */

static inline void qv__minheap_push(qv__pair_t *hp, size_t *n, float d, uint32_t id)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (hp[p].d <= d)
            break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i].d = d;
    hp[i].id = id;
}

static inline qv__pair_t qv__minheap_pop(qv__pair_t *hp, size_t *n)
{
    qv__pair_t top = hp[0];
    size_t m = --(*n);
    if (m == 0)
        return top;
    qv__pair_t last = hp[m];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && hp[c + 1].d < hp[c].d)
            c++;
        if (hp[c].d >= last.d)
            break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i] = last;
    return top;
}

static inline void qv__maxheap_push(qv__pair_t *hp, size_t *n, float d, uint32_t id)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (hp[p].d >= d)
            break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i].d = d;
    hp[i].id = id;
}

/* Replaces the root (the worst) with (d, id) and restores the heap. */
static inline void qv__maxheap_replace_top(qv__pair_t *hp, size_t n, float d, uint32_t id)
{
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hp[c + 1].d > hp[c].d)
            c++;
        if (hp[c].d <= d)
            break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i].d = d;
    hp[i].id = id;
}

static inline void qv__maxheap_pop(qv__pair_t *hp, size_t *n)
{
    size_t m = --(*n);
    if (m > 0)
        qv__maxheap_replace_top(hp, m, hp[m].d, hp[m].id);
}

/* ---- quantised index: codes (search.c, rerank.c) ---- */

static inline const uint8_t *qv__code_of(const qv_hnsw_t *h, uint32_t id)
{
    return h->codes + (size_t)id * h->code_size;
}

/* One query-to-code distance (the four-code kernel with the code repeated: the same value dist4 gives). */
static inline float qv__code_dist(const qv_hnsw_t *h, const float *table, uint32_t id)
{
    const uint8_t *c = qv__code_of(h, id), *c4[4] = {c, c, c, c};
    float d4[4];
    h->qdist4(h->qz, table, c4, d4);
    return d4[0];
}

static inline void qv__prefetch_code(const qv_hnsw_t *h, uint32_t id)
{
    const char *p = (const char *)qv__code_of(h, id);
    size_t cs = h->code_size, lim = cs < 512 ? cs : 512;
    for (size_t off = 0; off < lim; off += 64)
        __builtin_prefetch(p + off, 0, 3);
    __builtin_prefetch(p + lim - 1, 0, 3);  /* a code that straddles a line boundary */
}

/* Greedy descent on layers top..1 with query-to-code distances (rerank.c). */
uint32_t qv__greedy_codes(const qv_hnsw_t *h, const float *table, uint32_t ep, float *d, unsigned top,
                          uint64_t *ndist);
/* Quickselect by (d, id): a[kth] gets the pair of rank kth, smaller pairs before it (rerank.c). */
void qv__select_nth(qv__pair_t *a, size_t n, size_t kth);
/* Re-ranks the candidates (s->ext[0..next_r) if from_ext, else W) with full-precision distances and leaves the k
 * best in W (rerank.c). */
void qv__rerank(const qv_hnsw_t *h, qv__scratch_t *s, const float *q, size_t k, bool from_ext, uint64_t *nrerank);

/* ---- scratch pool (scratch.c) ---- */

/* Borrows a scratch sized for this index and a result heap of at least `ef` entries. NULL on allocation failure. */
qv__scratch_t *qv__scratch_get(const qv_hnsw_t *h, size_t ef);
void qv__scratch_put(const qv_hnsw_t *h, qv__scratch_t *s);
/* Quantised index: makes room in s for the query table and a re-rank buffer of cap pairs. false on OOM. */
bool qv__scratch_fit_quant(const qv_hnsw_t *h, qv__scratch_t *s, size_t cap);
/* Neighbour batch capacity of a scratch (two-hop expansion collects up to 2 Mmax0 + 2 ids). */
static inline size_t qv__batch_cap(const qv_hnsw_t *h) { return 2 * (size_t)h->M0 + 2; }
void qv__scratch_pool_free(qv_hnsw_t *h);
size_t qv__scratch_bytes(const qv_hnsw_t *h, size_t ef);

/* Starts a new visited set (generation counter; the tags are cleared only when it wraps). */
static inline void qv__visit_begin(qv__scratch_t *s, size_t n)
{
    if (++s->gen == 0) {
        for (size_t i = 0; i < n; i++)
            s->tags[i] = 0;
        s->gen = 1;
    }
}

/* Algorithm 2 (SEARCH-LAYER) for one layer, unfiltered, as used while inserting: starts from the `nentry` entries
 * in s->work (distances already known), leaves up to ef nearest in the s->res max-heap. The caller has begun a
 * visited set and marked what must not be returned (the inserted node itself). Returns distance computations. */
uint64_t qv__search_layer(const qv_hnsw_t *h, qv__scratch_t *s, const float *q, size_t nentry, size_t ef,
                          unsigned layer);

/* Greedy descent (Algorithm 2 with ef = 1, as in Algorithm 1 lines 5-7 and Algorithm 5 lines 1-4) from `ep` on
 * layers top..stop+1; returns the closest node found and its distance in *d. */
uint32_t qv__greedy(const qv_hnsw_t *h, const float *q, uint32_t ep, float *d, unsigned top, unsigned stop,
                    uint64_t *ndist);

/* calloc for large randomly-read arrays: >= 4 MiB ones are 2 MiB-aligned with MADV_HUGEPAGE. Release with free(). */
void *qv__big_calloc(size_t count, size_t size);

/* Trains the quantiser requested at create on the pool and attaches it (build.c). QV_OK when none is requested. */
int qv__quant_attach(qv_hnsw_t *h, qv_quant_t *qz);

/* Common allocation of the graph arrays for n rows with the given levels already in h->levels (build.c). */
int qv__alloc_graph(qv_hnsw_t *h, qv_err_t *err);
/* Allocates the struct and fills the immutable fields (build.c). */
int qv__new(const qv_hnsw_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
            qv_err_t *err, qv_hnsw_t **out);

#endif
