/* HNSW search scratch pool: one scratch per concurrently searching (or inserting) thread, borrowed from a per-index
 * free list and returned after use, so a warm index allocates nothing per query.
 *
 * A scratch holds the visited tags (uint16 per node with a generation counter, see qv__visit_begin), the two heaps of
 * Algorithm 2, the neighbour batch buffers and, for a quantised index, the query's code-distance table and the
 * re-rank buffer (allocated on a scratch's first quantised search and kept). The pool's mutex is held only to pop or
 * push the free list. Rejected alternatives (thread-local storage, per-node per-thread visited bytes): see the essay
 * at the top of search.c. */
#include "index/hnsw/hnsw_int.h"

#include <stdlib.h>
#include <string.h>

size_t qv__scratch_bytes(const qv_hnsw_t *h, size_t ef)
{
    size_t quant = 0;
    if (h->qz) {
        size_t r = (size_t)QV_HNSW_DEFAULT_RERANK * 10;  /* k = 10 */
        quant = qv_quant_table_floats(h->qz) * sizeof(float) + (r > ef ? 4 * r : ef) * sizeof(qv__pair_t);
    }
    return sizeof(qv__scratch_t) + h->n * sizeof(uint16_t) + 4 * ef * sizeof(qv__pair_t) +
           (ef + 1) * sizeof(qv__pair_t) + (qv__batch_cap(h) + h->M0) * sizeof(uint32_t) +
           3 * ((size_t)h->M0 + 1) * sizeof(qv__pair_t) + quant;
}

static void scratch_free(qv__scratch_t *s)
{
    if (!s)
        return;
    free(s->tags);
    free(s->cand);
    free(s->res);
    free(s->work);
    free(s->batch);
    free(s->qtable);
    free(s->ext);
    free(s->hop2);
    free(s->sel);
    free(s);
}

/* Makes room for a result heap of ef (and the candidate heap's starting size). */
static bool scratch_fit(qv__scratch_t *s, size_t ef)
{
    if (ef <= s->res_cap)
        return true;
    if (ef > SIZE_MAX / 4 / sizeof(qv__pair_t))
        return false;
    qv__pair_t *res = malloc(ef * sizeof(*res));
    qv__pair_t *work = malloc((ef + 1) * sizeof(*work));
    if (!res || !work) {
        free(res);
        free(work);
        return false;
    }
    free(s->res);
    free(s->work);
    s->res = res;
    s->work = work;
    s->res_cap = ef;
    if (s->cand_cap < 4 * ef) {
        qv__pair_t *cand = malloc(4 * ef * sizeof(*cand));
        if (!cand)
            return false;  /* the old, smaller heap stays: it grows on demand */
        free(s->cand);
        s->cand = cand;
        s->cand_cap = 4 * ef;
    }
    return true;
}

qv__scratch_t *qv__scratch_get(const qv_hnsw_t *h, size_t ef)
{
    qv_hnsw_t *hm = (qv_hnsw_t *)h;  /* the pool is the index's only mutable part after build; pool_mu guards it */
    pthread_mutex_lock(&hm->pool_mu);
    qv__scratch_t *s = hm->free_scratch;
    if (s)
        hm->free_scratch = s->next;
    pthread_mutex_unlock(&hm->pool_mu);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return NULL;
        s->tags = qv__big_calloc(h->n ? h->n : 1, sizeof(uint16_t));
        s->batch = malloc(qv__batch_cap(h) * sizeof(uint32_t));
        s->hop2 = malloc(((size_t)h->M0 + 1) * sizeof(uint32_t));
        s->sel = malloc(3 * ((size_t)h->M0 + 1) * sizeof(qv__pair_t));
        if (!s->tags || !s->batch || !s->hop2 || !s->sel) {
            scratch_free(s);
            return NULL;
        }
    }
    s->oom = false;
    if (!scratch_fit(s, ef)) {
        qv__scratch_put(h, s);
        return NULL;
    }
    return s;
}

/* Quantised search: the query's table and a re-rank set of `cap` pairs (both kept for the scratch's next use). */
bool qv__scratch_fit_quant(const qv_hnsw_t *h, qv__scratch_t *s, size_t cap)
{
    if (!s->qtable) {
        void *p = NULL;
        if (posix_memalign(&p, 64, qv_quant_table_floats(h->qz) * sizeof(float)) != 0)
            return false;
        s->qtable = p;
    }
    if (cap > s->ext_cap) {
        qv__pair_t *e = cap > SIZE_MAX / sizeof(*e) ? NULL : malloc(cap * sizeof(*e));
        if (!e)
            return false;
        free(s->ext);
        s->ext = e;
        s->ext_cap = cap;
    }
    return true;
}

void qv__scratch_put(const qv_hnsw_t *h, qv__scratch_t *s)
{
    qv_hnsw_t *hm = (qv_hnsw_t *)h;
    pthread_mutex_lock(&hm->pool_mu);
    s->next = hm->free_scratch;
    hm->free_scratch = s;
    pthread_mutex_unlock(&hm->pool_mu);
}

void qv__scratch_pool_free(qv_hnsw_t *h)
{
    qv__scratch_t *s = h->free_scratch;
    while (s) {
        qv__scratch_t *next = s->next;
        scratch_free(s);
        s = next;
    }
    h->free_scratch = NULL;
}
