/* HNSW search: SEARCH-LAYER (Algorithm 2), the greedy descent, K-NN-SEARCH (Algorithm 5) with filters, the exact
 * scan, and the scratch pool.
 *
 * Hot loop. Layer 0 is where a query spends nearly all its time, and nearly all of that waiting for memory: a
 * neighbour's vector is a random 4*dim-byte read. So the loop first walks the popped node's link list, tests and
 * sets the visited tags, and collects the unvisited ids into a batch; then prefetches every vector of the batch;
 * then computes the distances. By the time the first distance needs its vector the later loads are in flight
 * (hnswlib prefetches one neighbour ahead). Distances come from the SIMD dispatch table, looked up once per query.
 * The loop is instantiated per metric and per filter mode (always_inline with constant arguments) so neither the
 * IP sign flip nor the filter test costs a branch on the unfiltered path.
 *
 * Visited sets. Each scratch holds a uint16 tag per node and a generation counter: a node is visited when its tag
 * equals the current generation. Starting a search is ++gen; the tags are cleared only when gen wraps (every 65535
 * searches), so there is no O(n) clear per query. Scratches live in a per-index free list (one mutex round trip per
 * search to borrow and return one), so there is one per concurrently searching thread, created on first use and
 * reused after: no per-query allocation once warm. Rejected: thread-local storage (an index does not know the
 * threads that search it, and TLS would keep one n-sized array per thread per index alive after the index is
 * freed); per-node per-thread visited bytes (Redis) cost memory per node.
 *
 * Filters (the `allowed` bitmap). The walk goes through nodes that are not allowed: every node reached is a
 * candidate (C in Algorithm 2) by its distance, but only allowed nodes enter the result set W, and the stopping
 * rule compares with W's worst. When the allowed fraction is small that walk would compute distances mostly for
 * rejected nodes, so the two-hop mode (ACORN-1, Patel et al. 2024) computes distances only for allowed nodes: the
 * neighbours of a popped candidate that are allowed, plus the allowed neighbours of its non-allowed neighbours,
 * at most Mmax0 evaluations per hop. If the candidate queue runs dry before W holds ef results (a selective
 * filter can leave the allowed subgraph disconnected), the search reseeds from unvisited allowed rows found by
 * scanning the bitmap, so whenever at least k rows are allowed, k come back unless the effort bound hits first.
 * Effort is bounded by max_dist distance computations; link lists read without a distance computation (the
 * two-hop expansion) are bounded by Mmax0 + 1 per evaluated node, and the bitmap scan by n/64 words per query.
 *
 * Plan (qv_hnsw_plan, QV_HNSW_PLAN_AUTO). With few allowed rows, scanning them exactly is cheaper than a walk, and
 * exact. Costs, in units of one distance computation of a cache-resident sequential scan (~18 ns for 128 dims on
 * the 2-core EPYC used for bench/ann), fitted on 100k x 128 clustered data with M = 16:
 *   scan     allowed_count, x3.5 once the rows scanned exceed 4 MiB (then it runs at memory bandwidth: 69 ns a row
 *            for 50k rows)
 *   walk     4.7 * 0.45 * Mmax0 * (ef + 8) / sqrt(selectivity)   (0.45 Mmax0 (ef + 8) distance computations
 *            unfiltered, growing about as 1/sqrt(selectivity); ~85 ns each, random reads)
 *   two-hop  3 * Mmax0 * (ef + Mmax0)   (dominated by reading non-allowed neighbours' link lists)
 * and the cheapest wins. Below 2% allowed the two-hop walk over an ordinary HNSW graph loses recall (0.82 at 1%,
 * ef 64, on that data: the allowed subgraph is too sparse even at two hops; ACORN builds a denser graph for this),
 * so below 2% the plan is always the scan: exact, and at most 0.02 n distance computations.
 *
 * Quantised walk (index built with SQ8 or PQ). The same loops, instantiated once more with a constant `quant`: the
 * query is turned into a table once (qv_quant_prepare: SQ8 the shifted/scaled query, PQ the m x 256 lookup
 * table), the greedy descent and layer 0 compute query-to-code distances four codes per call through the
 * quantiser's kernel (the tier of the dispatch table), and the prefetches fetch codes (SQ8: dim bytes, PQ: m bytes)
 * instead of 4 * dim bytes of floats. Because code distances are approximate, the walk keeps more candidates than
 * it returns: R = max(ef, rerank * k). When R > ef a second set (s->ext) collects the R best allowed nodes
 * evaluated, beside W, which still drives the stopping rule with ef (so ef keeps its meaning: the effort of the
 * walk). It is an append buffer of 4R pairs compacted by a branchless quickselect when full: a heap of R cost a
 * log R update per evaluated node and made the walk 1.5x slower on 5k x 32. When R <= ef, W itself is the
 * candidate set. The R candidates are then re-ranked with full-precision distances (batched four at a time with the
 * prefetch schedule of the walk: R random float rows against the hundreds to thousands of code distances of the
 * walk), and the k best by exact distance are returned, so every distance a caller sees is exact. Filters need
 * nothing new: only allowed nodes enter W or the re-rank set. The exact-scan path reads the float vectors (it is
 * the exact reference). What it buys, measured on 100k x 128 (bench/README.md): the rows the walk reads shrink 4x
 * (SQ8) or 16x (PQ m = 32), but single-thread QPS at equal recall does not rise in proportion: the walk is bound by
 * the latency of one link-list miss and one data miss per hop, not by bytes, and a code miss costs about what a
 * prefetched float row does. The cost model above was fitted on the float walk and is used unchanged.
 */
#include "index/hnsw/hnsw_int.h"

#include "common/bitmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool cand_grow(qv__scratch_t *s)
{
    size_t cap = s->cand_cap ? 2 * s->cand_cap : 64;
    qv__pair_t *c = cap > SIZE_MAX / sizeof(*c) ? NULL : realloc(s->cand, cap * sizeof(*c));
    if (!c) {
        s->oom = true;
        return false;
    }
    s->cand = c;
    s->cand_cap = cap;
    return true;
}


/* ---- helpers ---- */

static inline void prefetch_vec(const float *v, size_t bytes)
{
    const char *p = (const char *)v;
    size_t lim = bytes < 512 ? bytes : 512;
    for (size_t off = 0; off < lim; off += 64)
        __builtin_prefetch(p + off, 0, 3);
}

static inline float dist_m(qv_dist_fn fn, bool ip, const float *a, const float *b, size_t dim)
{
    float d = fn(a, b, dim);
    return ip ? -d : d;
}

/* Offers (d, id) to W (max-heap of at most ef). */
static inline void res_offer(qv__scratch_t *s, size_t ef, float d, uint32_t id)
{
    if (s->nres < ef)
        qv__maxheap_push(s->res, &s->nres, d, id);
    else if (d < s->res[0].d)
        qv__maxheap_replace_top(s->res, s->nres, d, id);
}

static inline bool cand_push(qv__scratch_t *s, float d, uint32_t id)
{
    if (s->ncand == s->cand_cap && !cand_grow(s))
        return false;
    qv__minheap_push(s->cand, &s->ncand, d, id);
    return true;
}

/* ---- greedy descent ---- */

uint32_t qv__greedy(const qv_hnsw_t *h, const float *q, uint32_t ep, float *d, unsigned top, unsigned stop,
                    uint64_t *ndist)
{
    uint32_t cur = ep;
    float cd = *d;
    uint64_t nd = 0;
    for (unsigned l = top; l > stop; l--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *ll = qv__links(h, cur, l);
            uint32_t c = qv__load_count(ll);
            if (c > h->M)
                c = h->M;
            for (uint32_t i = 0; i < c; i++) {
                uint32_t j = qv__load(&ll[1 + i]);
                if (i + 1 < c)
                    __builtin_prefetch(qv__vec(h, qv__load(&ll[2 + i])), 0, 3);
                float dj = qv__dist(h, q, qv__vec(h, j));
                nd++;
                if (dj < cd) {
                    cd = dj;
                    cur = j;
                    changed = true;
                }
            }
        }
    }
    *d = cd;
    *ndist += nd;
    return cur;
}

/* ---- Algorithm 2 while inserting (unfiltered, any layer, lock-free reads of lists being written) ---- */

uint64_t qv__search_layer(const qv_hnsw_t *h, qv__scratch_t *s, const float *q, size_t nentry, size_t ef,
                          unsigned layer)
{
    uint64_t nd = 0;
    uint32_t cap = layer ? h->M : h->M0;
    size_t vbytes = (size_t)h->dim * sizeof(float);
    uint16_t *const tags = s->tags;
    uint32_t *const batch = s->batch;
    const uint16_t gen = s->gen;
    const bool ip = h->metric == QV_HNSW_IP;
    s->ncand = 0;
    s->nres = 0;
    for (size_t i = 0; i < nentry; i++) {
        qv__pair_t e = s->work[i];
        tags[e.id] = gen;
        if (!cand_push(s, e.d, e.id))
            return nd;
        res_offer(s, ef, e.d, e.id);
    }
    while (s->ncand) {
        qv__pair_t c = qv__minheap_pop(s->cand, &s->ncand);
        if (s->nres >= ef && c.d > s->res[0].d)
            break;
        const uint32_t *ll = qv__links(h, c.id, layer);
        uint32_t cnt = qv__load_count(ll);
        if (cnt > cap)
            cnt = cap;
        size_t nb = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t j = qv__load(&ll[1 + i]);
            if (tags[j] != gen) {
                tags[j] = gen;
                batch[nb++] = j;
            }
        }
        for (size_t i = 0; i < nb; i++)
            prefetch_vec(qv__vec(h, batch[i]), vbytes);
        for (size_t i = 0; i < nb; i += 4) {
            const float *v[4];
            size_t m = nb - i < 4 ? nb - i : 4;
            for (size_t t = 0; t < 4; t++)
                v[t] = t < m ? qv__vec(h, batch[i + t]) : q;
            float d4[4];
            h->dist4(q, v, h->dim, d4);
            nd += m;
            for (size_t t = 0; t < m; t++) {
                float d = ip ? -d4[t] : d4[t];
                if (s->nres < ef || d < s->res[0].d) {
                    if (!cand_push(s, d, batch[i + t]))
                        return nd;
                    res_offer(s, ef, d, batch[i + t]);
                }
            }
        }
    }
    return nd;
}

/* ---- Algorithm 5 layer 0 with filters ---- */

enum { MODE_ALL = 0, MODE_WALK = 1, MODE_TWOHOP = 2 };

typedef struct {
    const uint64_t *allowed;
    size_t ef;
    size_t rcap;           /* quantised walk: R, the re-rank set size, when it is kept beside W; 0 = W is the set */
    size_t ecap;           /* capacity of the s->ext buffer (4 R) */
    float ethr;            /* admission threshold of s->ext: the R-th best code distance at the last compaction */
    const float *qtable;   /* quantised walk: the query's table */
    uint64_t budget;
    uint64_t ndist;
    uint64_t nvisited;
    size_t cursor;  /* reseeding: next row of the bitmap to look at */
    bool budget_hit;
} l0_ctx_t;

/* Evaluates the ids in batch[0..nb): distances four at a time (batch.c), admitting each to C and, if allowed, to
 * W. Prefetch schedule: the first cache line of every vector at once (their DRAM/TLB latencies overlap), all lines
 * of the first group of four, then the rest of group g+1 while group g is computed. Prefetching every line of every
 * vector up front was slower: the prefetches themselves stall once the core's miss buffers are full. */
/* The re-rank set beside W is an append-only buffer, not a heap: a heap would cost O(log R) per evaluated node,
 * most of which are later pushed out. When the buffer fills, a quickselect keeps the R best (O(buffer), so O(1)
 * amortised per append) and raises the admission threshold to the R-th best distance. */
static void ext_compact(qv__scratch_t *s, l0_ctx_t *x)
{
    if (s->next_r <= x->rcap)
        return;
    qv__select_nth(s->ext, s->next_r, x->rcap - 1);
    s->next_r = x->rcap;
    x->ethr = s->ext[x->rcap - 1].d;
}

static inline void ext_offer(qv__scratch_t *s, l0_ctx_t *x, float d, uint32_t id)
{
    if (!(d < x->ethr))
        return;
    if (s->next_r == x->ecap)
        ext_compact(s, x);
    s->ext[s->next_r].d = d;
    s->ext[s->next_r].id = id;
    s->next_r++;
}

/* Admits one evaluated node: to C and W by the rule of Algorithm 2 (W only if allowed), and on a quantised walk
 * with a separate re-rank set, to that set if allowed and under its threshold. */
static inline __attribute__((always_inline)) bool admit(qv__scratch_t *s, l0_ctx_t *x, int mode, bool quant, float d,
                                                        uint32_t j)
{
    if (quant && x->rcap && d < x->ethr && (mode != MODE_WALK || qv_bm_get(x->allowed, j)))
        ext_offer(s, x, d, j);
    if (s->nres < x->ef || d < s->res[0].d) {
        if (!cand_push(s, d, j))
            return false;
        if (mode != MODE_WALK || qv_bm_get(x->allowed, j))
            res_offer(s, x->ef, d, j);
    }
    return true;
}

/* eval_batch on codes: every code of the batch prefetched at once (a code is 1-2 cache lines, so this does not
 * fill the miss buffers as float rows would), then four code distances per kernel call. */
static inline __attribute__((always_inline)) bool eval_batch_codes(const qv_hnsw_t *h, qv__scratch_t *s,
                                                                   l0_ctx_t *x, int mode, size_t nb)
{
    const uint32_t *batch = s->batch;
    const qv_quant_dist4_fn qd = h->qdist4;
    for (size_t i = 0; i < nb; i++)
        qv__prefetch_code(h, batch[i]);
    for (size_t i = 0; i < nb; i += 4) {
        size_t m = nb - i < 4 ? nb - i : 4;
        const uint8_t *c4[4];
        for (size_t t = 0; t < 4; t++)
            c4[t] = qv__code_of(h, batch[i + (t < m ? t : 0)]);  /* padding lanes repeat a valid code */
        float d4[4];
        qd(h->qz, x->qtable, c4, d4);
        for (size_t t = 0; t < m; t++)
            if (!admit(s, x, mode, true, d4[t], batch[i + t]))
                return false;
    }
    x->ndist += nb;
    if (s->ncand)
        __builtin_prefetch(h->l0 + (size_t)s->cand[0].id * qv__l0_stride(h), 0, 3);
    return true;
}

static inline __attribute__((always_inline)) bool eval_batch(const qv_hnsw_t *h, qv__scratch_t *s, l0_ctx_t *x,
                                                             const float *q, bool ip, int mode, size_t nb,
                                                             bool quant)
{
    if (quant)
        return eval_batch_codes(h, s, x, mode, nb);
    const size_t dim = h->dim, lim = dim * sizeof(float) < 512 ? dim * sizeof(float) : 512;
    const uint32_t *batch = s->batch;
    const qv__dist4_fn dist4 = h->dist4;
    for (size_t i = 0; i < nb; i++) {
        const char *p = (const char *)qv__vec(h, batch[i]);
        __builtin_prefetch(p, 0, 3);
        if (i < 4)
            for (size_t off = 64; off < lim; off += 64)
                __builtin_prefetch(p + off, 0, 3);
    }
    for (size_t i = 0; i < nb; i += 4) {
        for (size_t t = i + 4; t < i + 8 && t < nb; t++) {
            const char *p = (const char *)qv__vec(h, batch[t]);
            for (size_t off = 64; off < lim; off += 64)
                __builtin_prefetch(p + off, 0, 3);
        }
        const float *v[4];
        size_t m = nb - i < 4 ? nb - i : 4;
        for (size_t t = 0; t < 4; t++)
            v[t] = t < m ? qv__vec(h, batch[i + t]) : q;  /* padding lanes read the query: valid memory */
        float d4[4];
        dist4(q, v, dim, d4);
        for (size_t t = 0; t < m; t++)
            if (!admit(s, x, mode, false, ip ? -d4[t] : d4[t], batch[i + t]))
                return false;
    }
    x->ndist += nb;
    if (s->ncand)  /* the next pop is now known: its link list load overlaps the bookkeeping before it */
        __builtin_prefetch(h->l0 + (size_t)s->cand[0].id * qv__l0_stride(h), 0, 3);
    return true;
}

/* Pushes up to `want` unvisited allowed rows found from x->cursor on as new entry points. Returns how many. */
static size_t reseed(const qv_hnsw_t *h, qv__scratch_t *s, l0_ctx_t *x, const float *q, qv_dist_fn fn, bool ip,
                     size_t want, bool quant)
{
    size_t nb = 0, n = h->n;
    while (x->cursor < n && nb < want) {
        size_t w = x->cursor >> 6;
        uint64_t bits = x->allowed[w] & (~(uint64_t)0 << (x->cursor & 63));
        if (!bits) {
            x->cursor = (w + 1) << 6;
            continue;
        }
        size_t r = (w << 6) + (size_t)__builtin_ctzll(bits);
        x->cursor = r + 1;
        if (r >= n)
            break;
        if (s->tags[r] != s->gen) {
            s->tags[r] = s->gen;
            s->batch[nb++] = (uint32_t)r;
        }
    }
    if (nb == 0)
        return 0;
    size_t dim = h->dim;
    for (size_t i = 0; i < nb; i++) {
        uint32_t j = s->batch[i];
        float d = quant ? qv__code_dist(h, x->qtable, j) : dist_m(fn, ip, q, qv__vec(h, j), dim);
        if (!cand_push(s, d, j))
            return 0;
        res_offer(s, x->ef, d, j);
        if (quant && x->rcap)
            ext_offer(s, x, d, j);
    }
    x->ndist += nb;
    return nb;
}

static inline __attribute__((always_inline)) void search_l0(const qv_hnsw_t *h, qv__scratch_t *s, l0_ctx_t *x,
                                                            const float *q, uint32_t ep, float epd, qv_dist_fn fn,
                                                            bool ip, int mode, bool quant)
{
    const size_t ef = x->ef, stride = qv__l0_stride(h);
    const uint32_t cap = h->M0;
    const uint32_t *l0 = h->l0;
    uint16_t *const tags = s->tags;  /* locals: stores to tags[] could otherwise alias s->gen and force reloads */
    uint32_t *const batch = s->batch;
    const uint16_t gen = s->gen;
    s->ncand = 0;
    s->nres = 0;
    tags[ep] = gen;
    qv__minheap_push(s->cand, &s->ncand, epd, ep);  /* cand_cap >= 4 * ef >= 4 */
    s->next_r = 0;
    if (mode == MODE_ALL || qv_bm_get(x->allowed, ep)) {
        qv__maxheap_push(s->res, &s->nres, epd, ep);
        if (quant && x->rcap)
            ext_offer(s, x, epd, ep);
    }

    for (;;) {
        while (s->ncand) {
            qv__pair_t c = qv__minheap_pop(s->cand, &s->ncand);
            if (s->nres >= ef && c.d > s->res[0].d)
                break;
            if (x->ndist >= x->budget) {
                x->budget_hit = true;
                break;
            }
            x->nvisited++;
            if (s->ncand)  /* the likely next pop: start loading its link list now */
                __builtin_prefetch(l0 + (size_t)s->cand[0].id * stride, 0, 3);
            const uint32_t *ll = l0 + (size_t)c.id * stride;
            uint32_t cnt = ll[0];
            if (cnt > cap)
                cnt = cap;
            size_t nb = 0;
            if (mode != MODE_TWOHOP) {
                for (uint32_t i = 0; i < cnt; i++) {
                    uint32_t j = ll[1 + i];
                    if (tags[j] != gen) {
                        tags[j] = gen;
                        batch[nb++] = j;
                    }
                }
                if (!eval_batch(h, s, x, q, ip, mode, nb, quant))
                    return;
                continue;
            }
            /* Two-hop (ACORN-1): allowed neighbours are evaluated; non-allowed ones are expanded to their allowed
             * neighbours; at most Mmax0 evaluations per popped node. */
            size_t nh = 0;
            for (uint32_t i = 0; i < cnt; i++) {
                uint32_t j = ll[1 + i];
                if (tags[j] == gen)
                    continue;
                tags[j] = gen;
                if (qv_bm_get(x->allowed, j))
                    batch[nb++] = j;
                else
                    s->hop2[nh++] = j;
            }
            for (size_t i = 0; i < nh; i++)
                __builtin_prefetch(l0 + (size_t)s->hop2[i] * stride, 0, 3);
            for (size_t i = 0; i < nh && nb < cap; i++) {
                const uint32_t *l2 = l0 + (size_t)s->hop2[i] * stride;
                uint32_t c2 = l2[0];
                if (c2 > cap)
                    c2 = cap;
                x->nvisited++;
                for (uint32_t t = 0; t < c2 && nb < cap; t++) {
                    uint32_t w = l2[1 + t];
                    if (tags[w] != gen && qv_bm_get(x->allowed, w)) {
                        tags[w] = gen;
                        batch[nb++] = w;
                    }
                }
            }
            if (!eval_batch(h, s, x, q, ip, mode, nb, quant))
                return;
        }
        /* C ran dry (or the stop rule fired) with fewer than ef results: the allowed part of the graph reachable
         * from here is exhausted; continue from other allowed rows while effort remains. */
        if (mode == MODE_ALL || s->nres >= ef || x->budget_hit || s->oom || x->ndist >= x->budget)
            return;
        if (s->ncand)
            continue;  /* not reachable: the loop only exits with C empty or on the rules above */
        if (!reseed(h, s, x, q, fn, ip, 8, quant))
            return;
    }
}

/* ---- exact scan ---- */

static int exact_scan(const qv_hnsw_t *h, qv__scratch_t *s, const float *q, size_t k, const uint64_t *allowed,
                      uint64_t *ndist)
{
    qv_dist_fn fn = h->dist;
    bool ip = h->metric == QV_HNSW_IP;
    size_t dim = h->dim, n = h->n;
    s->nres = 0;
    uint64_t nd = 0;
    for (size_t w = 0; w < qv_bm_words(n); w++) {
        uint64_t bits = allowed ? allowed[w] : ~(uint64_t)0;
        if (w == n >> 6 && (n & 63))
            bits &= ((uint64_t)1 << (n & 63)) - 1;
        while (bits) {
            size_t r = (w << 6) + (size_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            float d = dist_m(fn, ip, q, qv__vec(h, (uint32_t)r), dim);
            nd++;
            if (s->nres < k)
                qv__maxheap_push(s->res, &s->nres, d, (uint32_t)r);
            else if (d < s->res[0].d || (d == s->res[0].d && r < s->res[0].id))
                qv__maxheap_replace_top(s->res, s->nres, d, (uint32_t)r);
        }
    }
    *ndist = nd;
    return QV_OK;
}

/* ---- output ---- */

static int pair_cmp(const void *pa, const void *pb)
{
    const qv__pair_t *a = pa, *b = pb;
    if (a->d < b->d)
        return -1;
    if (a->d > b->d)
        return 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Keeps the k best of W, sorted best first, in out. */
static size_t emit(qv__scratch_t *s, size_t k, qv_cand_t *out)
{
    while (s->nres > k)
        qv__maxheap_pop(s->res, &s->nres);
    size_t m = s->nres;
    qsort(s->res, m, sizeof(qv__pair_t), pair_cmp);
    for (size_t i = 0; i < m; i++) {
        out[i].dist = s->res[i].d;
        out[i].ref = s->res[i].id;
    }
    s->nres = 0;
    return m;
}

/* ---- plan ---- */

#define DEFAULT_TWOHOP_BELOW 0.3f
#define EXACT_BELOW 0.02
#define SCAN_CACHED_BYTES (4.0 * 1024 * 1024)

qv_hnsw_path_t qv_hnsw_plan(const qv_hnsw_t *h, size_t k, uint32_t ef, size_t allowed_count, float twohop_below)
{
    if (!h || h->n == 0 || k == 0 || allowed_count == 0)
        return QV_HNSW_PATH_NONE;
    if (allowed_count >= h->n)
        return QV_HNSW_PATH_GRAPH;
    if (twohop_below == 0.0f)
        twohop_below = DEFAULT_TWOHOP_BELOW;
    double e = ef ? ef : QV_HNSW_DEFAULT_EF;
    if (e < (double)k)
        e = (double)k;
    double sel = (double)allowed_count / (double)h->n, m0 = h->M0;
    if (sel < EXACT_BELOW)
        return QV_HNSW_PATH_EXACT;
    bool twohop = sel < (double)twohop_below;
    /* Costs in units of one distance computation of a cache-resident sequential scan (see the essay at the top). */
    double walk = twohop ? 3.0 * m0 * (e + m0) : 4.7 * 0.45 * m0 * (e + 8.0) / sqrt(sel);
    double scan_bytes = (double)allowed_count * h->dim * sizeof(float);
    double scan = (double)allowed_count * (scan_bytes > SCAN_CACHED_BYTES ? 3.5 : 1.0);
    if (scan <= walk)
        return QV_HNSW_PATH_EXACT;
    return twohop ? QV_HNSW_PATH_TWOHOP : QV_HNSW_PATH_GRAPH;
}

/* ---- public search ---- */

int qv_hnsw_search_exact(const qv_hnsw_t *h, const float *query, size_t k, const uint64_t *allowed, qv_cand_t *out,
                         size_t *nout)
{
    if (!h || !query || !nout || (k && !out))
        return QV_EINVAL;
    *nout = 0;
    if (h->n == 0 || k == 0)
        return QV_OK;
    if (k > h->n)
        k = h->n;
    qv__scratch_t *s = qv__scratch_get(h, k);
    if (!s)
        return QV_ENOMEM;
    uint64_t nd;
    exact_scan(h, s, query, k, allowed, &nd);
    *nout = emit(s, k, out);
    qv__scratch_put(h, s);
    return QV_OK;
}

int qv_hnsw_search(const qv_hnsw_t *h, const float *query, size_t k, const qv_hnsw_search_params_t *params,
                   qv_cand_t *out, size_t *nout, qv_hnsw_stats_t *stats)
{
    qv_hnsw_stats_t st = {0};
    if (stats)
        *stats = st;
    if (!h || !query || !nout || (k && !out))
        return QV_EINVAL;
    *nout = 0;
    if (!__atomic_load_n(&h->built, __ATOMIC_ACQUIRE))
        return QV_EINVAL;
    qv_hnsw_search_params_t p = params ? *params : (qv_hnsw_search_params_t){.allowed_count = QV_HNSW_COUNT_UNKNOWN};
    size_t n = h->n;
    if (n == 0 || k == 0)
        return QV_OK;
    size_t allowed_count = n;
    if (p.allowed) {
        allowed_count = p.allowed_count == QV_HNSW_COUNT_UNKNOWN ? qv_bm_count(p.allowed, n) : p.allowed_count;
        if (allowed_count > n)
            allowed_count = n;
        if (allowed_count == 0)
            return QV_OK;
    }
    if (k > n)
        k = n;
    size_t ef = p.ef ? p.ef : QV_HNSW_DEFAULT_EF;
    if (ef < k)
        ef = k;
    if (ef > n)
        ef = n;

    qv_hnsw_path_t path;
    if (p.plan == QV_HNSW_PLAN_EXACT)
        path = QV_HNSW_PATH_EXACT;
    else if (!p.allowed)
        path = QV_HNSW_PATH_GRAPH;
    else if (p.plan == QV_HNSW_PLAN_GRAPH)
        path = p.twohop_below >= 0 && (double)allowed_count / (double)n <
                                          (double)(p.twohop_below ? p.twohop_below : DEFAULT_TWOHOP_BELOW)
                   ? QV_HNSW_PATH_TWOHOP
                   : QV_HNSW_PATH_GRAPH;
    else
        path = qv_hnsw_plan(h, k, (uint32_t)ef, allowed_count, p.twohop_below);

    /* Quantised walk: R = max(ef, rerank * k) candidates are re-ranked with the full vectors. */
    const bool quant = h->qz && path != QV_HNSW_PATH_EXACT;
    size_t rr = 0;
    if (quant) {
        size_t factor = p.rerank ? p.rerank : QV_HNSW_DEFAULT_RERANK;
        rr = factor > n / k ? n : factor * k;
        if (rr < ef)
            rr = ef;
    }
    qv__scratch_t *s = qv__scratch_get(h, path == QV_HNSW_PATH_EXACT ? k : ef);
    if (!s)
        return QV_ENOMEM;
    size_t ecap = rr > ef ? 4 * rr : ef;  /* the re-rank buffer: 4 R when kept beside W (compacted to R when full) */
    if (quant && !qv__scratch_fit_quant(h, s, ecap)) {
        qv__scratch_put(h, s);
        return QV_ENOMEM;
    }
    st.path = path;
    if (path == QV_HNSW_PATH_EXACT) {
        exact_scan(h, s, query, k, p.allowed, &st.ndist);
    } else {
        qv__visit_begin(s, n);
        uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
        uint32_t ep = (uint32_t)e;
        float epd;
        st.ndist = 1;
        if (quant) {
            qv_quant_prepare(h->qz, query, s->qtable);
            epd = qv__code_dist(h, s->qtable, ep);
            ep = qv__greedy_codes(h, s->qtable, ep, &epd, (unsigned)(e >> 32), &st.ndist);
        } else {
            epd = qv__dist(h, query, qv__vec(h, ep));
            ep = qv__greedy(h, query, ep, &epd, (unsigned)(e >> 32), 0, &st.ndist);  /* Algorithm 5 lines 1-4 */
        }
        l0_ctx_t x = {
            .allowed = p.allowed,
            .ef = ef,
            .rcap = quant && rr > ef ? rr : 0,
            .ecap = ecap,
            .ethr = INFINITY,
            .qtable = quant ? s->qtable : NULL,
            .budget = p.max_dist ? p.max_dist : (uint64_t)ef * h->M0 * 64 + 4096,
            .ndist = st.ndist,
        };
        qv_dist_fn fn = h->dist;
        int mode = !p.allowed || allowed_count == n ? MODE_ALL
                   : path == QV_HNSW_PATH_TWOHOP      ? MODE_TWOHOP
                                                      : MODE_WALK;
        if (mode == MODE_ALL)
            st.path = QV_HNSW_PATH_GRAPH;
        bool ip = h->metric == QV_HNSW_IP;
        /* Algorithm 5 line 5, one instantiation per (mode, metric) on floats and per mode on codes (code
         * distances already carry the metric's sign). */
        if (quant) {
            if (mode == MODE_ALL)
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_ALL, true);
            else if (mode == MODE_WALK)
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_WALK, true);
            else
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_TWOHOP, true);
        } else if (ip) {
            if (mode == MODE_ALL)
                search_l0(h, s, &x, query, ep, epd, fn, true, MODE_ALL, false);
            else if (mode == MODE_WALK)
                search_l0(h, s, &x, query, ep, epd, fn, true, MODE_WALK, false);
            else
                search_l0(h, s, &x, query, ep, epd, fn, true, MODE_TWOHOP, false);
        } else {
            if (mode == MODE_ALL)
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_ALL, false);
            else if (mode == MODE_WALK)
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_WALK, false);
            else
                search_l0(h, s, &x, query, ep, epd, fn, false, MODE_TWOHOP, false);
        }
        st.ndist = x.ndist;
        st.nvisited = x.nvisited;
        st.budget_hit = x.budget_hit;
        if (quant) {  /* the exact distances of the k best candidates replace W */
            if (x.rcap)
                ext_compact(s, &x);
            qv__rerank(h, s, query, k, x.rcap != 0, &st.nrerank);
        }
    }
    bool oom = s->oom;
    *nout = emit(s, k, out);
    qv__scratch_put(h, s);
    if (stats)
        *stats = st;
    return oom && *nout == 0 ? QV_ENOMEM : QV_OK;
}
