/* Bounded top-k selection: keeps the k smallest `dist` values seen (ties broken by the smaller `ref`), as a max-heap
 * so the current worst is at the root and a candidate is rejected with one comparison. Callers map scores where
 * larger is better (inner product) to dist = -score. */
#ifndef QV_TOPK_H
#define QV_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float dist;    /* smaller is better */
    uint64_t ref;  /* caller's row reference */
} qv_cand_t;

typedef struct {
    qv_cand_t *items;  /* heap storage of capacity k, owned */
    size_t k;
    size_t n;          /* items held, <= k */
} qv_topk_t;

/* Allocates room for k items. Returns QV_OK, QV_EINVAL for k == 0, QV_ENOMEM. */
int qv_topk_init(qv_topk_t *t, size_t k);
void qv_topk_free(qv_topk_t *t);
void qv_topk_reset(qv_topk_t *t);

/* Worst distance still admitted: +INF while fewer than k items are held. */
float qv_topk_bound(const qv_topk_t *t);

/* Offers a candidate; keeps it if it is among the k best so far. */
void qv_topk_push(qv_topk_t *t, float dist, uint64_t ref);

/* Offers every item of src to dst (merging per-thread or per-shard partial results). */
void qv_topk_merge(qv_topk_t *dst, const qv_topk_t *src);

/* Sorts the held items best first (ascending dist, then ascending ref) into out[0..n) and returns n. The heap is
 * left empty. out must have room for t->n items. */
size_t qv_topk_drain_sorted(qv_topk_t *t, qv_cand_t *out);

#endif
