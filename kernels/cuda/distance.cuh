/* Per-thread logic of the batched distance + fused top-k kernel (kernels/cuda/knn.cu) and of its CPU twin
 * (kernels/cpu/knn.c).
 *
 * The kernel. A block of QV_K_KNN_WARPS warps serves QV_K_KNN_WARPS queries, one warp per query. Base rows go by in
 * tiles of QV_K_TILE_ROWS = 32 rows; a tile's QV_K_TILE_DIMS-wide slices of dimensions are staged in shared memory
 * (coalesced loads), and lane l of a warp accumulates the distance from its query to row l of the tile over the
 * slices (qv_k_accum), so a thread owns one (query, row) distance at a time. The finished distance goes into that
 * lane's own sorted candidate list (qv_k_list_offer), k entries long, kept in global scratch interleaved by lane
 * (entry p of lane l at p * 32 + l: a warp's accesses coalesce). A lane rejects a candidate with one comparison
 * against its current worst, kept in registers. When the chunk of base rows is done, the warp merges its 32 sorted
 * lists into the query's k best with k rounds of a warp-wide minimum over the lanes' heads (qv_k_before on
 * (distance, id) pairs: a strict order, so the butterfly reduction's result does not depend on lane order), the
 * winning lane advancing its head.
 *
 * Why per-lane lists and not one shared heap per query: no atomics and no locks, every lane works independently
 * until the merge, and the merge costs k warp reductions per chunk, small against nb / 32 tiles of distances. The
 * price is 32 * k entries of scratch per query, which is what bounds k (QV_GPU_MAX_K) and the query batch.
 *
 * Base sets larger than the device's free memory are processed in chunks: each chunk's per-query top-k is merged
 * into the running top-k (qv_k_merge_sorted), so the result is the same as one pass. qv_k_knn_plan sizes the query
 * batch and the base chunk from the memory budget.
 *
 * Result = exactly the k best (distance, id) pairs among the eligible rows, for any partition of rows over lanes and
 * chunks: the property the CPU test checks against index/topk.h. */
#ifndef QV_K_DISTANCE_CUH
#define QV_K_DISTANCE_CUH

#include "kernels/cuda/common.cuh"

#define QV_K_TILE_ROWS 32  /* base rows per tile = lanes per warp */
#define QV_K_TILE_DIMS 32  /* dimensions per shared-memory slice */
#define QV_K_KNN_WARPS 8   /* queries per block */

/* Adds len coordinates of the (query, row) pair to a running accumulator: sum of squared differences (L2) or of
 * products (IP). Sequential in i, so slicing the dimensions into tiles does not change the result. */
QV_K_FN float qv_k_accum(float acc, const float *q, const float *b, uint32_t len, int metric)
{
    if (metric == QV_K_IP) {
        for (uint32_t i = 0; i < len; i++)
            acc += q[i] * b[i];
    } else {
        for (uint32_t i = 0; i < len; i++) {
            float e = q[i] - b[i];
            acc += e * e;
        }
    }
    return acc;
}

/* The distance from a finished accumulator: L2 as is, IP negated (smaller is better). */
QV_K_FN float qv_k_finish(float acc, int metric) { return metric == QV_K_IP ? -acc : acc; }

/* Full distance of one pair, as the kernel computes it slice by slice. */
QV_K_FN float qv_k_dist(const float *q, const float *b, uint32_t dim, int metric)
{
    return qv_k_finish(qv_k_accum(0.0f, q, b, dim, metric), metric);
}

/* Is row `row` of a base chunk eligible: inside the chunk, allowed by the bitmap (NULL = all; indexed by the global
 * row), and not the query itself (self == QV_K_NONE when not excluding). */
QV_K_FN int qv_k_eligible(uint32_t row, uint32_t nrows, uint32_t row0, const uint64_t *allowed, uint32_t self)
{
    if (row >= nrows)
        return 0;
    uint32_t g = row0 + row;
    if (g == self)
        return 0;
    return !allowed || ((allowed[g >> 6] >> (g & 63)) & 1u);
}

/* Offers (dist, id) to a sorted list of *cnt <= k entries (ascending by qv_k_before; entry p at d[p * stride]).
 * Keeps it if it is among the k best; NaN distances are refused. Returns 1 if the list changed. */
QV_K_FN int qv_k_list_offer(float *d, uint32_t *id, size_t stride, uint32_t *cnt, uint32_t k, float dist,
                            uint32_t ref)
{
    if (dist != dist || k == 0)
        return 0;
    uint32_t n = *cnt;
    if (n == k) {
        if (!qv_k_before(dist, ref, d[(size_t)(n - 1) * stride], id[(size_t)(n - 1) * stride]))
            return 0;
        n--;  /* the worst falls off */
    }
    uint32_t i = n;
    while (i > 0 && qv_k_before(dist, ref, d[(size_t)(i - 1) * stride], id[(size_t)(i - 1) * stride])) {
        d[(size_t)i * stride] = d[(size_t)(i - 1) * stride];
        id[(size_t)i * stride] = id[(size_t)(i - 1) * stride];
        i--;
    }
    d[(size_t)i * stride] = dist;
    id[(size_t)i * stride] = ref;
    *cnt = n + 1;
    return 1;
}

/* The head a lane offers in merge round r: its entry `pos` if it has one, else the sentinel (INFINITY, NONE), which
 * every real candidate precedes (a real row at +INF still has a smaller id than NONE). */
QV_K_FN void qv_k_lane_head(const float *d, const uint32_t *id, size_t stride, uint32_t cnt, uint32_t pos,
                            float *hd, uint32_t *hi)
{
    if (pos < cnt) {
        *hd = d[(size_t)pos * stride];
        *hi = id[(size_t)pos * stride];
    } else {
        *hd = INFINITY;
        *hi = QV_K_NONE;
    }
}

/* One step of the warp's minimum reduction: keep the better of mine and the other lane's. */
QV_K_FN void qv_k_take_better(float *d, uint32_t *i, float od, uint32_t oi)
{
    if (qv_k_before(od, oi, *d, *i)) {
        *d = od;
        *i = oi;
    }
}

/* Merges two sorted lists (ids distinct between them; NONE ends a list) into the k best, sorted. Returns the
 * count. out may not alias the inputs. */
QV_K_FN uint32_t qv_k_merge_sorted(const float *ad, const uint32_t *ai, uint32_t na, const float *bd,
                                   const uint32_t *bi, uint32_t nb, uint32_t k, float *od, uint32_t *oi)
{
    uint32_t x = 0, y = 0, n = 0;
    for (uint32_t t = 0; t < na; t++)
        if (ai[t] == QV_K_NONE) {
            na = t;
            break;
        }
    for (uint32_t t = 0; t < nb; t++)
        if (bi[t] == QV_K_NONE) {
            nb = t;
            break;
        }
    while (n < k && (x < na || y < nb)) {
        if (y >= nb || (x < na && qv_k_before(ad[x], ai[x], bd[y], bi[y]))) {
            od[n] = ad[x];
            oi[n++] = ai[x++];
        } else {
            od[n] = bd[y];
            oi[n++] = bi[y++];
        }
    }
    for (uint32_t r = n; r < k; r++) {
        od[r] = INFINITY;
        oi[r] = QV_K_NONE;
    }
    return n;
}

/* ---- batching ---- */

typedef struct {
    size_t qbatch;      /* queries per kernel launch (a multiple of QV_K_KNN_WARPS unless it is all of nq) */
    size_t bchunk;      /* base rows per chunk (a multiple of QV_K_TILE_ROWS unless it is all of nb) */
    size_t bytes;       /* device bytes the plan uses at most */
} qv_k_knn_plan_t;

/* Device bytes per query of a batch: the query, 32 lane lists of k (float + id), and three k-lists (the running
 * result, the chunk's result, the merge's output). */
QV_K_FN size_t qv_k_knn_query_bytes(uint32_t dim, uint32_t k)
{
    return (size_t)dim * 4 + (size_t)QV_K_TILE_ROWS * k * 8 + (size_t)3 * k * 8;
}

/* Chooses the query batch and base chunk for a budget of device bytes: the whole base in one chunk when it fits
 * with at least min(nq, 256) queries beside it, else half the budget for each. Returns 0, or -1 when not even 32
 * base rows and QV_K_KNN_WARPS queries fit (or an input is zero). */
QV_K_FN int qv_k_knn_plan(size_t budget, size_t nq, size_t nb, uint32_t dim, uint32_t k, qv_k_knn_plan_t *p)
{
    if (nq == 0 || nb == 0 || dim == 0 || k == 0)
        return -1;
    size_t bitmap = ((nb + 63) / 64) * 8, row = (size_t)dim * 4, perq = qv_k_knn_query_bytes(dim, k);
    if (budget <= bitmap)
        return -1;
    size_t avail = budget - bitmap;
    size_t want_q = qv_k_min_sz(nq, 256);
    size_t bchunk, qbatch;
    if (nb <= (avail - qv_k_min_sz(avail, want_q * perq)) / row) {
        bchunk = nb;
        qbatch = (avail - nb * row) / perq;
    } else {
        bchunk = (avail / 2) / row;
        bchunk -= bchunk % QV_K_TILE_ROWS;
        qbatch = (avail / 2) / perq;
    }
    if (qbatch >= nq) {
        qbatch = nq;
    } else {
        qbatch -= qbatch % QV_K_KNN_WARPS;
        qbatch = qv_k_min_sz(qbatch, (size_t)1 << 20);  /* launches stay short enough to interleave */
    }
    if (bchunk == 0 || qbatch == 0 || (bchunk < nb && bchunk < QV_K_TILE_ROWS))
        return -1;
    p->qbatch = qbatch;
    p->bchunk = bchunk;
    p->bytes = bitmap + bchunk * row + qbatch * perq;
    return 0;
}

#endif
