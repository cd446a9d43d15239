/* Bounded top-k as a binary max-heap over (dist, ref).
 *
 * Order: a candidate is better than another when its dist is smaller, or the dists are equal and its ref is smaller.
 * That is a total order on distinct (dist, ref) pairs, so the kept set and the drained order do not depend on the
 * order candidates arrive in (per-thread partial heaps merged in any order give the same answer). NaN dists sort
 * after every number (among NaNs, by ref), so one bad vector cannot corrupt the heap invariant.
 *
 * The root is the worst kept item. While the heap is full, a push costs one comparison against the root when the
 * candidate is rejected (the common case late in a scan) and O(log k) when it replaces the root. Duplicates are not
 * detected: pushing the same ref twice keeps it twice.
 *
 * Draining is an in-place heapsort (swap root to the end, sift down), which leaves items ascending; then one copy to
 * out, so out may even be t->items. Rejected: a sorted array with insertion (O(k) per accepted push). */
#include "index/topk.h"

#include "common/err.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* True when x ranks strictly before y (is a better result). */
static inline bool better(float xd, uint64_t xr, float yd, uint64_t yr)
{
    if (xd < yd)
        return true;
    if (xd > yd)
        return false;
    if (xd == yd)
        return xr < yr;
    /* At least one NaN: every number beats NaN. */
    bool xn = isnan(xd), yn = isnan(yd);
    if (xn != yn)
        return yn;
    return xr < yr;
}

static inline bool worse_item(const qv_cand_t *x, const qv_cand_t *y)
{
    return better(y->dist, y->ref, x->dist, x->ref);
}

/* Restores the heap below slot i of items[0..n), assuming only slot i may be out of place. */
static void sift_down(qv_cand_t *items, size_t n, size_t i)
{
    qv_cand_t moving = items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && worse_item(&items[child + 1], &items[child]))
            child++;
        if (!worse_item(&items[child], &moving))
            break;
        items[i] = items[child];
        i = child;
    }
    items[i] = moving;
}

static void sift_up(qv_cand_t *items, size_t i)
{
    qv_cand_t moving = items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!worse_item(&moving, &items[parent]))
            break;
        items[i] = items[parent];
        i = parent;
    }
    items[i] = moving;
}

int qv_topk_init(qv_topk_t *t, size_t k)
{
    if (!t)
        return QV_EINVAL;
    t->items = NULL;
    t->k = 0;
    t->n = 0;
    if (k == 0)
        return QV_EINVAL;
    if (k > SIZE_MAX / sizeof(qv_cand_t))
        return QV_ENOMEM;
    t->items = malloc(k * sizeof(qv_cand_t));
    if (!t->items)
        return QV_ENOMEM;
    t->k = k;
    return QV_OK;
}

void qv_topk_free(qv_topk_t *t)
{
    if (!t)
        return;
    free(t->items);
    t->items = NULL;
    t->k = 0;
    t->n = 0;
}

void qv_topk_reset(qv_topk_t *t)
{
    t->n = 0;
}

float qv_topk_bound(const qv_topk_t *t)
{
    if (t->n < t->k)
        return INFINITY;
    /* A NaN root means every number is still admitted. */
    float worst = t->items[0].dist;
    return isnan(worst) ? INFINITY : worst;
}

void qv_topk_push(qv_topk_t *t, float dist, uint64_t ref)
{
    if (t->n < t->k) {
        t->items[t->n] = (qv_cand_t){dist, ref};
        sift_up(t->items, t->n);
        t->n++;
        return;
    }
    if (t->k == 0 || !better(dist, ref, t->items[0].dist, t->items[0].ref))
        return;
    t->items[0] = (qv_cand_t){dist, ref};
    sift_down(t->items, t->n, 0);
}

void qv_topk_merge(qv_topk_t *dst, const qv_topk_t *src)
{
    if (dst == src)  /* the k best of a set merged with itself are already held */
        return;
    for (size_t i = 0; i < src->n; i++)
        qv_topk_push(dst, src->items[i].dist, src->items[i].ref);
}

size_t qv_topk_drain_sorted(qv_topk_t *t, qv_cand_t *out)
{
    size_t n = t->n;
    for (size_t end = n; end > 1; end--) {
        qv_cand_t worst = t->items[0];
        t->items[0] = t->items[end - 1];
        t->items[end - 1] = worst;
        sift_down(t->items, end - 1, 0);
    }
    if (n)
        memmove(out, t->items, n * sizeof(qv_cand_t));
    t->n = 0;
    return n;
}
