/* Search and count; see search.h. */
#include "query/search.h"

#include <cblas.h>
#include <pthread.h>
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
    const qv_search_req_t *req; /* NULL when counting; a batch's shared parameters (its query is unused) */
    const qv_filter_t *filter;
    qv_stop_t when;             /* the request's deadline and cancellation */
    block_t *blocks;
    size_t nblocks;
    atomic_size_t next;
    atomic_int stop;            /* QV_ETIMEDOUT / QV_ECANCELLED once a task notices */
    qv_topk_t *heaps;           /* one per task; a batch: nq per task, task-major */
    atomic_uint_fast64_t count;
    /* a batch (qv_search_batch) */
    const float *const *queries;
    size_t nq;
    const float *qmat;          /* the queries as one nq x dim matrix */
    const float *qnorm;         /* their squared norms */
    float *scratch;             /* per task: BATCH_QUERIES x QV_FILTER_BLOCK scores, then QV_FILTER_BLOCK norms */
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

/* Claims the next work item; false when none is left or the scan must stop. */
static bool claim(scan_t *sc, size_t *item)
{
    *item = atomic_fetch_add_explicit(&sc->next, 1, memory_order_relaxed);
    return *item < sc->nblocks && !should_stop(sc);
}

/* The rows of a whole sealed segment that a search through its index may return (filter and not deleted): *allowed
 * is NULL when that is every row. Returns false on allocation failure. */
static bool segment_allowed(const scan_t *sc, const block_t *b, uint64_t **allowed, size_t *count)
{
    const qv_segment_t *seg = b->seg;
    uint32_t ndeleted = qv_seg_ndeleted(seg);
    *allowed = NULL;
    *count = seg->rows - ndeleted;
    if (!sc->filter && !ndeleted)
        return true;
    if (!(*allowed = malloc(qv_bm_words(seg->rows) * sizeof **allowed)))
        return false;
    for (uint32_t r = 0; r < seg->rows; r += QV_FILTER_BLOCK) {
        block_t part = {b->seg, r, seg->rows - r < QV_FILTER_BLOCK ? seg->rows - r : QV_FILTER_BLOCK, NULL};
        allowed_bits(sc, &part, *allowed + r / 64);
    }
    *count = qv_bm_count(*allowed, seg->rows);
    return true;
}

/* Searches a whole sealed segment through its index for each of nq queries, into heaps[0..nq); returns false on
 * allocation failure. */
static bool index_item(scan_t *sc, size_t item, const float *const *queries, size_t nq, qv_topk_t *heaps)
{
    const block_t *b = &sc->blocks[item];
    const qv_search_req_t *req = sc->req;
    uint64_t *allowed;
    size_t count;
    if (!segment_allowed(sc, b, &allowed, &count))
        return false;
    bool ok = true;
    qv_cand_t *cands = count > 0 ? malloc(req->k * sizeof *cands) : NULL;
    ok = count == 0 || cands;
    for (size_t q = 0; ok && count > 0 && q < nq; q++) {
        size_t n = 0;
        qv_hnsw_search_params_t sp = {.ef = req->ef, .allowed = allowed, .allowed_count = count,
                                      .plan = QV_HNSW_PLAN_AUTO, .rerank = req->rerank};
        ok = qv_hnsw_search(b->index, queries[q], req->k, &sp, cands, &n, NULL) == QV_OK;
        for (size_t i = 0; ok && i < n; i++)
            qv_topk_push(&heaps[q], cands[i].dist, ((uint64_t)item << 32) | cands[i].ref);
    }
    free(cands);
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
    for (size_t i; claim(sc, &i);) {
        const block_t *b = &sc->blocks[i];
        if (b->index) {
            if (!index_item(sc, i, &req->query, 1, heap))
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

static int run_scan(scan_t *sc, qv_pool_t *pool, int tasks, void (*task)(void *, int), qv_err_t *err)
{
    atomic_init(&sc->next, 0);
    atomic_init(&sc->stop, 0);
    atomic_init(&sc->count, 0);
    qv_pool_parallel(pool, tasks, task, sc);
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

/* The merged heap's items as hits, best first; false on allocation failure. */
static bool drain(const scan_t *sc, qv_topk_t *merged, qv_hit_t *hits, uint32_t *nhits)
{
    qv_cand_t *sorted = malloc((merged->n ? merged->n : 1) * sizeof *sorted);
    if (!sorted)
        return false;
    size_t n = qv_topk_drain_sorted(merged, sorted);
    bool l2 = sc->v->schema->metric == QV_METRIC_L2;
    for (size_t i = 0; i < n; i++) {
        const block_t *b = &sc->blocks[sorted[i].ref >> 32];
        hits[i].seg = b->seg;
        hits[i].row = b->begin + (uint32_t)(sorted[i].ref & 0xffffffffu);
        hits[i].score = l2 ? sorted[i].dist : -sorted[i].dist;
    }
    *nhits = (uint32_t)n;
    free(sorted);
    return true;
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
    if ((rc = run_scan(&sc, pool, tasks, scan_task, err)) != QV_OK)
        goto out;
    for (int t = 1; t < tasks; t++)
        qv_topk_merge(&sc.heaps[0], &sc.heaps[t]);
    if (!drain(&sc, &sc.heaps[0], hits, nhits))
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for k = %u", req->k);
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

/* ---- batches (qv_search_batch) ---- */

#define BATCH_QUERIES 64          /* queries per matrix product: 64 x QV_FILTER_BLOCK scores (256 KiB) per task */
#define BATCH_HEAP_BYTES (64u << 20) /* beyond this much top-k state, a batch runs query by query */

void openblas_set_num_threads(int num_threads); /* OpenBLAS; not in cblas.h */

static void one_thread_blas(void) { openblas_set_num_threads(1); }

/* Offers a block's allowed rows to one query's heap. s[r] is the product's q.x for row r; the matrix product rounds
 * differently from the distance kernels, so it only screens: a row goes to the kernel (and the heap, with the very
 * score qv_search would give it) unless its product value is worse than the heap's bound by more than the rounding of
 * both can explain. Each sum carries at most dim * 2^-24 of the sum of |terms|: for the screen's |x|^2 - 2 q.x + |q|^2
 * that is 2 dim 2^-24 (|q|^2 + |x|^2), for the kernel's sum (q - x)^2 another 2 dim 2^-24 (|q|^2 + |x|^2), plus the
 * few roundings that combine the screen's terms; the slack, 8 dim 2^-24 (|q|^2 + |x|^2), covers them all (and the
 * dot product's smaller error). */
static void offer_block(const scan_t *sc, qv_topk_t *heap, size_t item, const uint64_t *bits, size_t words,
                        const float *base, const float *s, const float *xnorm, const float *q, float qnorm)
{
    const qv_dist_table_t *dt = qv_dist();
    uint32_t dim = sc->v->schema->dim;
    bool l2 = sc->v->schema->metric == QV_METRIC_L2;
    float slack = (float)(dim + 4) * 4.8e-7f; /* 8 x 2^-24 per term, and a few roundings more */
    for (size_t w = 0; w < words; w++)
        for (uint64_t m = bits[w]; m; m &= m - 1) {
            uint32_t off = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(m));
            float bound = qv_topk_bound(heap);
            float approx = l2 ? xnorm[off] - 2.0f * s[off] + qnorm : -s[off];
            if (heap->n == heap->k && approx - slack * (xnorm[off] + qnorm) >= bound)
                continue;
            const float *x = base + (size_t)off * dim;
            float d = l2 ? dt->l2sq(q, x, dim) : -dt->dot(q, x, dim);
            if (d < bound || heap->n < heap->k)
                qv_topk_push(heap, d, ((uint64_t)item << 32) | off);
        }
}

static void batch_task(void *arg, int task)
{
    scan_t *sc = arg;
    size_t nq = sc->nq;
    qv_topk_t *heaps = &sc->heaps[(size_t)task * nq];
    const qv_dist_table_t *dt = qv_dist();
    uint32_t dim = sc->v->schema->dim;
    float *scores = sc->scratch + (size_t)task * (BATCH_QUERIES + 1) * QV_FILTER_BLOCK;
    float *xnorm = scores + (size_t)BATCH_QUERIES * QV_FILTER_BLOCK;
    uint64_t bits[BLOCK_WORDS];
    for (size_t i; claim(sc, &i);) {
        const block_t *b = &sc->blocks[i];
        if (b->index) {
            if (!index_item(sc, i, sc->queries, nq, heaps))
                atomic_store(&sc->stop, QV_ENOMEM);
            continue;
        }
        size_t words = allowed_bits(sc, b, bits);
        size_t live = 0;
        for (size_t w = 0; w < words; w++)
            live += (size_t)__builtin_popcountll(bits[w]);
        if (!live)
            continue;
        const float *base = qv_seg_vector(b->seg, b->begin);
        for (uint32_t r = 0; r < b->n; r++)
            xnorm[r] = dt->dot(base + (size_t)r * dim, base + (size_t)r * dim, dim);
        for (size_t q0 = 0; q0 < nq; q0 += BATCH_QUERIES) {
            size_t qc = nq - q0 < BATCH_QUERIES ? nq - q0 : BATCH_QUERIES;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qc, (int)b->n, (int)dim, 1.0f,
                        sc->qmat + q0 * dim, (int)dim, base, (int)dim, 0.0f, scores, (int)b->n);
            for (size_t q = 0; q < qc; q++)
                offer_block(sc, &heaps[q0 + q], i, bits, words, base, scores + q * b->n, xnorm, sc->queries[q0 + q],
                            sc->qnorm[q0 + q]);
        }
    }
}

int qv_search_batch(const qv_read_t *v, qv_pool_t *pool, const qv_search_req_t *req, const float *const *queries,
                    size_t nq, qv_hit_t *const *hits, uint32_t *nhits, qv_err_t *err)
{
    for (size_t q = 0; q < nq; q++)
        nhits[q] = 0;
    if (nq == 0)
        return QV_OK;
    scan_t sc = {.v = v, .req = req, .filter = req->filter, .when = {req->deadline_ns, req->cancelled},
                 .queries = queries, .nq = nq};
    if (make_blocks(v, !req->exact, &sc.blocks, &sc.nblocks))
        return qv_err_set(err, QV_ENOMEM, "out of memory planning the scan");
    int tasks = task_count(pool, sc.nblocks), rc = QV_OK;
    if ((double)tasks * (double)nq * (double)req->k * sizeof(qv_cand_t) > BATCH_HEAP_BYTES) {
        free(sc.blocks); /* too much top-k state at once: one query at a time */
        for (size_t q = 0; q < nq && rc == QV_OK; q++) {
            qv_search_req_t one = *req;
            one.query = queries[q];
            rc = qv_search(v, pool, &one, hits[q], &nhits[q], err);
        }
        return rc;
    }
    static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
    pthread_once(&blas_once, one_thread_blas); /* the pool's tasks are the threads */
    uint32_t dim = v->schema->dim;
    const qv_dist_table_t *dt = qv_dist();
    float *qmat = malloc(nq * dim * sizeof *qmat), *qnorm = malloc(nq * sizeof *qnorm);
    sc.scratch = malloc((size_t)tasks * (BATCH_QUERIES + 1) * QV_FILTER_BLOCK * sizeof *sc.scratch);
    sc.heaps = calloc((size_t)tasks * nq, sizeof *sc.heaps);
    for (size_t h = 0; sc.heaps && h < (size_t)tasks * nq && rc == QV_OK; h++)
        rc = qv_topk_init(&sc.heaps[h], req->k);
    if (!qmat || !qnorm || !sc.scratch || !sc.heaps || rc) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for a batch of %zu queries with k = %u", nq, req->k);
        goto out;
    }
    for (size_t q = 0; q < nq; q++) {
        memcpy(qmat + q * dim, queries[q], dim * sizeof *qmat);
        qnorm[q] = dt->dot(queries[q], queries[q], dim);
    }
    sc.qmat = qmat;
    sc.qnorm = qnorm;
    if ((rc = run_scan(&sc, pool, tasks, batch_task, err)) != QV_OK)
        goto out;
    for (size_t q = 0; q < nq && rc == QV_OK; q++) {
        for (int t = 1; t < tasks; t++)
            qv_topk_merge(&sc.heaps[q], &sc.heaps[(size_t)t * nq + q]);
        if (!drain(&sc, &sc.heaps[q], hits[q], &nhits[q]))
            rc = qv_err_set(err, QV_ENOMEM, "out of memory for k = %u", req->k);
    }
out:
    for (size_t h = 0; sc.heaps && h < (size_t)tasks * nq; h++)
        qv_topk_free(&sc.heaps[h]);
    free(sc.heaps);
    free(sc.scratch);
    free(qmat);
    free(qnorm);
    free(sc.blocks);
    return rc;
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
    int rc = run_scan(&sc, pool, task_count(pool, sc.nblocks), scan_task, err);
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
