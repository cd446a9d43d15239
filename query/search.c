/* Search and count; see search.h. */
#include "query/search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/topk.h"

#define BLOCK_WORDS (QV_FILTER_BLOCK / 64)

int64_t qv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    qv_segment_t *seg;
    uint32_t begin, n;
    qv_hnsw_t *index; /* non-NULL: the whole segment, through its index */
} block_t;

typedef struct {
    const qv_read_t *v;
    const qv_search_req_t *req; /* NULL when counting */
    const qv_filter_t *filter;
    qv_stop_t when;             /* the request's deadline and cancellation */
    block_t *blocks;
    size_t nblocks;
    atomic_size_t next;
    atomic_int stop;            /* QV_ETIMEDOUT / QV_ECANCELLED once a task notices */
    qv_topk_t *heaps;           /* one per task */
    atomic_uint_fast64_t count;
} scan_t;

/* The view's segments in scan order: sealed, then growing (storage/read.h). */
static int make_blocks(const qv_read_t *v, bool use_index, block_t **out, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < v->nsegs; i++)
        total += (v->segs[i]->rows + QV_FILTER_BLOCK - 1) / QV_FILTER_BLOCK;
    block_t *b = malloc((total ? total : 1) * sizeof *b);
    if (!b)
        return QV_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        qv_segment_t *s = v->segs[i];
        if (s->rows == qv_seg_ndeleted(s))
            continue; /* nothing live: skip the whole segment */
        qv_hnsw_t *h = use_index ? atomic_load_explicit(&s->index, memory_order_acquire) : NULL;
        if (h) {
            b[k++] = (block_t){s, 0, s->rows, h};
            continue;
        }
        for (uint32_t r = 0; r < s->rows; r += QV_FILTER_BLOCK)
            b[k++] = (block_t){s, r, s->rows - r < QV_FILTER_BLOCK ? s->rows - r : QV_FILTER_BLOCK, NULL};
    }
    *out = b;
    *n = k;
    return QV_OK;
}

/* The allowed rows of a block: filter result minus deleted rows. Returns the number of words used. */
static size_t allowed_bits(const scan_t *sc, const block_t *b, uint64_t *bits)
{
    size_t words = qv_bm_words(b->n);
    if (sc->filter)
        qv_filter_eval(sc->filter, b->seg, b->begin, b->n, bits);
    else {
        memset(bits, 0xff, words * 8);
        if (b->n & 63)
            bits[words - 1] = ((uint64_t)1 << (b->n & 63)) - 1;
    }
    const uint64_t *del = b->seg->deleted + b->begin / 64;
    for (size_t w = 0; w < words; w++)
        bits[w] &= ~__atomic_load_n(&del[w], __ATOMIC_RELAXED);
    return words;
}

static bool should_stop(scan_t *sc)
{
    if (atomic_load_explicit(&sc->stop, memory_order_relaxed))
        return true;
    int why = 0;
    if (sc->when.cancelled && atomic_load_explicit(sc->when.cancelled, memory_order_relaxed))
        why = QV_ECANCELLED;
    else if (sc->when.deadline_ns && qv_now_ns() > sc->when.deadline_ns)
        why = QV_ETIMEDOUT;
    if (why)
        atomic_store(&sc->stop, why);
    return why != 0;
}

/* Searches a whole sealed segment through its index; returns false on allocation failure. */
static bool index_item(scan_t *sc, size_t item, qv_topk_t *heap)
{
    const block_t *b = &sc->blocks[item];
    const qv_segment_t *seg = b->seg;
    const qv_search_req_t *req = sc->req;
    uint64_t *allowed = NULL;
    uint32_t ndeleted = qv_seg_ndeleted(seg);
    size_t count = seg->rows - ndeleted;
    if (sc->filter || ndeleted) {
        size_t words = qv_bm_words(seg->rows);
        allowed = malloc(words * sizeof *allowed);
        if (!allowed)
            return false;
        for (uint32_t r = 0; r < seg->rows; r += QV_FILTER_BLOCK) {
            block_t part = {b->seg, r, seg->rows - r < QV_FILTER_BLOCK ? seg->rows - r : QV_FILTER_BLOCK, NULL};
            allowed_bits(sc, &part, allowed + r / 64);
        }
        count = qv_bm_count(allowed, seg->rows);
    }
    bool ok = true;
    if (count > 0) {
        qv_cand_t *cands = malloc(req->k * sizeof *cands);
        size_t n = 0;
        qv_hnsw_search_params_t sp = {.ef = req->ef, .allowed = allowed, .allowed_count = count,
                                      .plan = QV_HNSW_PLAN_AUTO, .rerank = req->rerank};
        ok = cands && qv_hnsw_search(b->index, req->query, req->k, &sp, cands, &n, NULL) == QV_OK;
        for (size_t i = 0; ok && i < n; i++)
            qv_topk_push(heap, cands[i].dist, ((uint64_t)item << 32) | cands[i].ref);
        free(cands);
    }
    free(allowed);
    return ok;
}

static void scan_task(void *arg, int task)
{
    scan_t *sc = arg;
    const qv_search_req_t *req = sc->req;
    qv_topk_t *heap = req ? &sc->heaps[task] : NULL;
    const qv_dist_table_t *dt = qv_dist();
    bool l2 = sc->v->schema->metric == QV_METRIC_L2;
    uint32_t dim = sc->v->schema->dim;
    uint64_t bits[BLOCK_WORDS];
    uint64_t counted = 0;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&sc->next, 1, memory_order_relaxed);
        if (i >= sc->nblocks || should_stop(sc))
            break;
        const block_t *b = &sc->blocks[i];
        if (b->index) {
            if (!index_item(sc, i, heap))
                atomic_store(&sc->stop, QV_ENOMEM);
            continue;
        }
        size_t words = allowed_bits(sc, b, bits);
        if (!req) {
            for (size_t w = 0; w < words; w++)
                counted += (uint64_t)__builtin_popcountll(bits[w]);
            continue;
        }
        const float *base = qv_seg_vector(b->seg, b->begin);
        for (size_t w = 0; w < words; w++) {
            for (uint64_t m = bits[w]; m; m &= m - 1) {
                uint32_t off = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(m));
                const float *v = base + (size_t)off * dim;
                float d = l2 ? dt->l2sq(req->query, v, dim) : -dt->dot(req->query, v, dim);
                if (d < qv_topk_bound(heap) || heap->n < heap->k) {
                    /* ref: segment index is not needed, the block index identifies the segment */
                    qv_topk_push(heap, d, ((uint64_t)i << 32) | off);
                }
            }
        }
    }
    if (!req)
        atomic_fetch_add(&sc->count, counted);
}

static int run_scan(scan_t *sc, qv_pool_t *pool, int tasks, qv_err_t *err)
{
    atomic_init(&sc->next, 0);
    atomic_init(&sc->stop, 0);
    atomic_init(&sc->count, 0);
    qv_pool_parallel(pool, tasks, scan_task, sc);
    int why = atomic_load(&sc->stop);
    if (why == QV_ETIMEDOUT)
        return qv_err_set(err, why, "deadline exceeded during the scan");
    if (why == QV_ECANCELLED)
        return qv_err_set(err, why, "cancelled by the client");
    if (why == QV_ENOMEM)
        return qv_err_set(err, why, "out of memory searching an index");
    return QV_OK;
}

static int task_count(qv_pool_t *pool, size_t nblocks)
{
    int width = qv_pool_width(pool);
    /* a task per thread, but no more tasks than blocks: tiny collections run on one thread */
    return (int)(nblocks < (size_t)width ? (nblocks ? nblocks : 1) : (size_t)width);
}

int qv_search(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, qv_hit_t *hits, uint32_t *nhits,
              qv_err_t *err)
{
    *nhits = 0;
    scan_t sc = {.v = v, .req = req, .filter = req->filter, .when = {req->deadline_ns, req->cancelled}};
    if (make_blocks(v, !req->exact, &sc.blocks, &sc.nblocks))
        return qv_err_set(err, QV_ENOMEM, "out of memory planning the scan");
    int tasks = task_count(pool, sc.nblocks), rc = QV_OK;
    sc.heaps = calloc((size_t)tasks, sizeof *sc.heaps);
    for (int t = 0; sc.heaps && t < tasks && rc == QV_OK; t++)
        rc = qv_topk_init(&sc.heaps[t], req->k);
    if (!sc.heaps || rc) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for k = %u", req->k);
        goto out;
    }
    if ((rc = run_scan(&sc, pool, tasks, err)) != QV_OK)
        goto out;
    for (int t = 1; t < tasks; t++)
        qv_topk_merge(&sc.heaps[0], &sc.heaps[t]);
    qv_cand_t *sorted = malloc((sc.heaps[0].n ? sc.heaps[0].n : 1) * sizeof *sorted);
    if (!sorted) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for k = %u", req->k);
        goto out;
    }
    size_t n = qv_topk_drain_sorted(&sc.heaps[0], sorted);
    bool l2 = v->schema->metric == QV_METRIC_L2;
    for (size_t i = 0; i < n; i++) {
        const block_t *b = &sc.blocks[sorted[i].ref >> 32];
        hits[i].seg = b->seg;
        hits[i].row = b->begin + (uint32_t)(sorted[i].ref & 0xffffffffu);
        hits[i].score = l2 ? sorted[i].dist : -sorted[i].dist;
    }
    *nhits = (uint32_t)n;
    free(sorted);
out:
    for (int t = 0; sc.heaps && t < tasks; t++)
        qv_topk_free(&sc.heaps[t]);
    free(sc.heaps);
    free(sc.blocks);
    return rc;
}

int qv_search_exact(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, qv_hit_t *hits,
                    uint32_t *nhits, qv_err_t *err)
{
    qv_search_req_t exact = *req;
    exact.exact = true;
    return qv_search(v, pool, &exact, hits, nhits, err);
}

int qv_count(const qv_read_t *v, qv_pool_t *pool, const qv_filter_t *filter, qv_stop_t stop, uint64_t *count,
             qv_err_t *err)
{
    if (!filter) {
        *count = v->live;
        return QV_OK;
    }
    scan_t sc = {.v = v, .filter = filter, .when = stop};
    if (make_blocks(v, false, &sc.blocks, &sc.nblocks))
        return qv_err_set(err, QV_ENOMEM, "out of memory planning the scan");
    int rc = run_scan(&sc, pool, task_count(pool, sc.nblocks), err);
    *count = atomic_load(&sc.count);
    free(sc.blocks);
    return rc;
}

static int id_cmp(qv_str_t a, qv_str_t b)
{
    int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static qv_str_t ref_id(const qv_rowref_t *r) { return qv_strcol_get(&r->seg->ids, r->row); }

/* max-heap on id over h[0..n) */
static void sift_down(qv_rowref_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && id_cmp(ref_id(&h[l]), ref_id(&h[m])) > 0)
            m = l;
        if (r < n && id_cmp(ref_id(&h[r]), ref_id(&h[m])) > 0)
            m = r;
        if (m == i)
            return;
        qv_rowref_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(qv_rowref_t *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (id_cmp(ref_id(&h[i]), ref_id(&h[p])) <= 0)
            return;
        qv_rowref_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

int qv_scroll(const qv_read_t *v, const qv_filter_t *filter, qv_str_t after, uint32_t limit, qv_stop_t stop,
              qv_rowref_t *out, uint32_t *n, bool *more, qv_err_t *err)
{
    scan_t sc = {.v = v, .filter = filter, .when = stop};
    atomic_init(&sc.stop, 0);
    uint64_t bits[BLOCK_WORDS];
    uint32_t held = 0;
    uint64_t candidates = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        qv_segment_t *s = v->segs[i];
        for (uint32_t r0 = 0; r0 < s->rows; r0 += QV_FILTER_BLOCK) {
            if (should_stop(&sc))
                return qv_err_set(err, atomic_load(&sc.stop), "%s during the scroll",
                                  atomic_load(&sc.stop) == QV_ETIMEDOUT ? "deadline exceeded" : "cancelled by the client");
            block_t b = {s, r0, s->rows - r0 < QV_FILTER_BLOCK ? s->rows - r0 : QV_FILTER_BLOCK, NULL};
            size_t words = allowed_bits(&sc, &b, bits);
            for (size_t w = 0; w < words; w++)
                for (uint64_t m = bits[w]; m; m &= m - 1) {
                    qv_rowref_t ref = {s, r0 + (uint32_t)(w * 64 + (size_t)__builtin_ctzll(m))};
                    qv_str_t id = ref_id(&ref);
                    if (after.len && id_cmp(id, after) <= 0)
                        continue;
                    candidates++;
                    if (held < limit) {
                        out[held] = ref;
                        sift_up(out, held++);
                    } else if (id_cmp(id, ref_id(&out[0])) < 0) {
                        out[0] = ref;
                        sift_down(out, held, 0);
                    }
                }
        }
    }
    /* heap sort ascending */
    for (uint32_t e = held; e > 1; e--) {
        qv_rowref_t t = out[0];
        out[0] = out[e - 1];
        out[e - 1] = t;
        sift_down(out, e - 1, 0);
    }
    *n = held;
    *more = candidates > held;
    return QV_OK;
}
