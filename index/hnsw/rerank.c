/* The quantised walk's pieces outside the layer-0 loop (that loop is in search.c, instantiated with `quant`): the
 * greedy descent on codes, the selection of the re-rank set, and the re-rank with full-precision vectors. The
 * design (why R = max(ef, rerank * k), why a buffer and a quickselect rather than a heap) is in the essay at the top
 * of search.c. */
#include "index/hnsw/hnsw_int.h"

#include <string.h>

/* The same descent with query-to-code distances, the links of each node evaluated four at a time. */
uint32_t qv__greedy_codes(const qv_hnsw_t *h, const float *table, uint32_t ep, float *d, unsigned top,
                          uint64_t *ndist)
{
    uint32_t cur = ep;
    float cd = *d;
    uint64_t nd = 0;
    for (unsigned l = top; l > 0; l--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *ll = qv__links(h, cur, l);
            uint32_t c = qv__load_count(ll);
            if (c > h->M)
                c = h->M;
            for (uint32_t i = 0; i < c; i++)
                qv__prefetch_code(h, qv__load(&ll[1 + i]));
            for (uint32_t i = 0; i < c; i += 4) {
                uint32_t m = c - i < 4 ? c - i : 4, id4[4];
                const uint8_t *c4[4];
                for (uint32_t t = 0; t < 4; t++) {
                    id4[t] = qv__load(&ll[1 + i + (t < m ? t : 0)]);
                    c4[t] = qv__code_of(h, id4[t]);
                }
                float d4[4];
                h->qdist4(h->qz, table, c4, d4);
                nd += m;
                for (uint32_t t = 0; t < m; t++) {
                    if (d4[t] < cd) {
                        cd = d4[t];
                        cur = id4[t];
                        changed = true;
                    }
                }
            }
        }
    }
    *d = cd;
    *ndist += nd;
    return cur;
}

static inline bool pair_less(qv__pair_t a, qv__pair_t b)
{
    return (a.d < b.d) | ((a.d == b.d) & (a.id < b.id));  /* no short-circuit: no branch */
}

/* Quickselect (median of three, Lomuto): afterwards a[kth] is the pair of rank kth by (d, id), with every smaller
 * pair before it. Ids are distinct, so the order is strict and no pivot run degenerates. The partition loop is
 * branchless (always swap, advance the boundary by the comparison): the comparisons are unpredictable, and a
 * mispredicted branch per element made the selection cost as much as the whole walk on small data. */
void qv__select_nth(qv__pair_t *a, size_t n, size_t kth)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        qv__pair_t t;
#define SWAP(i, j) (t = a[i], a[i] = a[j], a[j] = t)
        if (pair_less(a[mid], a[lo]))
            SWAP(lo, mid);
        if (pair_less(a[hi], a[lo]))
            SWAP(lo, hi);
        if (pair_less(a[mid], a[hi]))
            SWAP(mid, hi);  /* a[hi] is now the median of the three */
        qv__pair_t pv = a[hi];
        size_t st = lo;
        for (size_t i = lo; i < hi; i++) {
            qv__pair_t x = a[i];
            size_t lt = pair_less(x, pv);
            a[i] = a[st];
            a[st] = x;
            st += lt;
        }
        SWAP(st, hi);
#undef SWAP
        if (kth == st)
            return;
        if (kth < st)
            hi = st - 1;
        else
            lo = st + 1;
    }
}

/* Replaces the code distances of the candidates (the re-rank set, or W when it is the candidate set) with exact
 * distances from the full-precision vectors, and leaves the k best, ties by row, in W. Prefetch schedule as in
 * eval_batch: the first line of every row at once, all lines of the first four, then each next group of four while
 * the current one is computed. */
void qv__rerank(const qv_hnsw_t *h, qv__scratch_t *s, const float *q, size_t k, bool from_ext, uint64_t *nrerank)
{
    qv__pair_t *c = s->ext;
    size_t nc = from_ext ? s->next_r : s->nres;
    if (!from_ext)
        memcpy(c, s->res, nc * sizeof(*c));  /* ext_cap >= ef >= nres */
    const size_t dim = h->dim, lim = dim * sizeof(float) < 512 ? dim * sizeof(float) : 512;
    for (size_t i = 0; i < nc; i++) {
        const char *p = (const char *)qv__vec(h, c[i].id);
        __builtin_prefetch(p, 0, 3);
        if (i < 4)
            for (size_t off = 64; off < lim; off += 64)
                __builtin_prefetch(p + off, 0, 3);
    }
    const bool ip = h->metric == QV_HNSW_IP;
    s->nres = 0;
    for (size_t i = 0; i < nc; i += 4) {
        for (size_t t = i + 4; t < i + 8 && t < nc; t++) {
            const char *p = (const char *)qv__vec(h, c[t].id);
            for (size_t off = 64; off < lim; off += 64)
                __builtin_prefetch(p + off, 0, 3);
        }
        size_t m = nc - i < 4 ? nc - i : 4;
        const float *v[4];
        for (size_t t = 0; t < 4; t++)
            v[t] = t < m ? qv__vec(h, c[i + t].id) : q;
        float d4[4];
        h->dist4(q, v, dim, d4);
        for (size_t t = 0; t < m; t++) {
            float d = ip ? -d4[t] : d4[t];
            uint32_t id = c[i + t].id;
            if (s->nres < k)
                qv__maxheap_push(s->res, &s->nres, d, id);
            else if (d < s->res[0].d || (d == s->res[0].d && id < s->res[0].id))
                qv__maxheap_replace_top(s->res, s->nres, d, id);
        }
    }
    s->next_r = 0;
    *nrerank += nc;
}
