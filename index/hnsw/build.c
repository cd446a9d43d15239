/* HNSW construction: levels, graph allocation, insertion (Algorithm 1), heuristic neighbour selection (Algorithm 4)
 * and the parallel build.
 *
 * Phases. qv_hnsw_create() draws every row's level up front from a hash of (seed, row), not from a shared random
 * stream, so levels do not depend on which thread inserts which row, and the upper-layer link slots can be laid out
 * once (prefix sum over levels) and never move while threads insert. qv_hnsw_build() inserts row 0 alone (it becomes
 * the entry point), then rows 1..n-1 in chunks claimed dynamically by the pool threads and the caller.
 *
 * Insertion (Algorithm 1 of Malkov & Yashunin): greedy descent from the entry point on the layers above the new
 * node's level (lines 5-7); then on each layer from min(level, max_level) down to 0, SEARCH-LAYER with
 * ef_construction (Algorithm 2, search.c), SELECT-NEIGHBORS-HEURISTIC (Algorithm 4) choosing M, and bidirectional
 * connections, shrinking a neighbour's list with the same heuristic when it would exceed Mmax (M on layers >= 1,
 * Mmax0 = 2M on layer 0; lines 10-17). As in the paper (line 11: ep <- W) the whole candidate set W of one layer,
 * with its distances already known, seeds the search on the next layer; hnswlib keeps only the single closest.
 * Algorithm 4 is used without extendCandidates and without keepPrunedConnections (the paper's recommended defaults,
 * and what hnswlib does); with fewer than M candidates all are kept.
 *
 * Locking (see hnsw_int.h for the reader side). A thread rewriting a node's link list holds that node's 1-byte
 * spinlock, and never holds two node locks at once, so there is no lock order to get wrong. Critical sections are
 * short (an append, or one heuristic over Mmax+1 candidates), so the lock spins briefly with a pause and then
 * yields: on a 2-core machine shared with other work the holder may be descheduled, and yielding lets it run.
 * The entry point and max level change only under ep_mu; a node whose level exceeds the current max level holds
 * ep_mu for its whole insertion (as hnswlib does) so two such nodes cannot both become the entry point; this is
 * rare (about one node in M per level) so it costs no parallelism. Rejected: a pthread mutex per node (40 bytes per
 * node while building), striped mutexes (false sharing of unrelated nodes, still a syscall path under contention),
 * and reader locks on link lists (hnswlib locks each list it reads while building; here readers never block).
 *
 * Finally a single-threaded pass gives the few nodes that lost all their layer-0 in-links a back link from a
 * reachable neighbour (repair_reachability), so an unfiltered search can reach every row.
 *
 * Memory: see hnsw_int.h. The per-node locks are freed when the build finishes. */
#include "index/hnsw/hnsw_int.h"


#include <math.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

/* ---- levels ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* floor(-ln(U) * mL) with mL = 1/ln(M) (section 4.1 of the paper: the normalisation factor that makes the expected
 * overlap of neighbours between layers small), U uniform in (0, 1] from a hash of (seed, row). */
static unsigned draw_level(uint64_t seed, size_t row, double ml)
{
    uint64_t r = splitmix64(seed ^ splitmix64((uint64_t)row));
    double u = ((double)(r >> 11) + 1.0) / 9007199254740992.0;  /* (0, 1] */
    double l = -log(u) * ml;
    return l >= QV_HNSW_MAX_LEVEL ? QV_HNSW_MAX_LEVEL : (unsigned)l;
}

/* ---- allocation ---- */

void *qv__big_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    if (bytes < ((size_t)4 << 20))
        return calloc(count ? count : 1, size ? size : 1);
    /* Large arrays read at random (layer-0 lists, visited tags): 2 MiB-aligned and advised for transparent huge
     * pages, so a random access does not also miss the TLB. Plain free() releases it. */
    size_t align = (size_t)2 << 20, rounded = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (posix_memalign(&p, align, rounded) != 0)
        return NULL;
    madvise(p, rounded, MADV_HUGEPAGE);
    memset(p, 0, bytes);
    return p;
}

int qv__new(const qv_hnsw_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
            qv_err_t *err, qv_hnsw_t **out)
{
    if (!out)
        return qv_err_set(err, QV_EINVAL, "hnsw: NULL output");
    *out = NULL;
    qv_hnsw_params_t p = params ? *params : (qv_hnsw_params_t){0};
    if (p.M == 0)
        p.M = QV_HNSW_DEFAULT_M;
    if (p.ef_construction == 0)
        p.ef_construction = QV_HNSW_DEFAULT_EFC;
    if (p.M < 2 || p.M > QV_HNSW_MAX_M)
        return qv_err_set(err, QV_EINVAL, "hnsw: M=%u outside [2, %u]", p.M, QV_HNSW_MAX_M);
    if (p.ef_construction < p.M)
        p.ef_construction = p.M;
    if (p.ef_construction > 1u << 20)
        return qv_err_set(err, QV_EINVAL, "hnsw: ef_construction=%u too large", p.ef_construction);
    if (p.metric != QV_HNSW_L2 && p.metric != QV_HNSW_IP)
        return qv_err_set(err, QV_EINVAL, "hnsw: unknown metric %d", (int)p.metric);
    if (dim == 0 || dim > QV_HNSW_MAX_DIM)
        return qv_err_set(err, QV_EINVAL, "hnsw: dim=%u outside [1, %u]", dim, QV_HNSW_MAX_DIM);
    if (stride == 0)
        stride = dim;
    if (stride < dim)
        return qv_err_set(err, QV_EINVAL, "hnsw: stride %zu < dim %u", stride, dim);
    if (n > QV_HNSW_MAX_ROWS)
        return qv_err_set(err, QV_EINVAL, "hnsw: %zu rows exceed the 32-bit node ids", n);
    if (n > 0 && !vectors)
        return qv_err_set(err, QV_EINVAL, "hnsw: NULL vectors");
    if (p.quant != QV_HNSW_QUANT_NONE && p.quant != QV_HNSW_QUANT_SQ8 && p.quant != QV_HNSW_QUANT_PQ)
        return qv_err_set(err, QV_EINVAL, "hnsw: unknown quantisation %d", (int)p.quant);
    if (p.quant == QV_HNSW_QUANT_PQ) {
        if (p.pq_m == 0)
            p.pq_m = qv_pq_default_m(dim);
        if (p.pq_m > dim || dim % p.pq_m != 0)
            return qv_err_set(err, QV_EINVAL,
                              "hnsw: PQ needs m dividing dim, got dim %u and m=%u (each sub-quantiser takes dim/m "
                              "dimensions)",
                              dim, p.pq_m);
    } else {
        p.pq_m = 0;
    }

    qv_hnsw_t *h = calloc(1, sizeof(*h));
    if (!h)
        return qv_err_set(err, QV_ENOMEM, "hnsw: out of memory");
    h->vectors = vectors;
    h->stride = stride;
    h->n = n;
    h->dim = dim;
    h->metric = p.metric;
    h->M = p.M;
    h->M0 = 2 * p.M;
    h->efc = p.ef_construction;
    h->seed = p.seed;
    h->quant = p.quant;
    h->pq_m = p.pq_m;
    h->dist = p.metric == QV_HNSW_IP ? qv_dist()->dot : qv_dist()->l2sq;
    h->dist4 = qv__dist4_select(p.metric);
    h->entry = QV_HNSW_ENTRY_EMPTY;
    pthread_mutex_init(&h->ep_mu, NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    h->levels = calloc(n ? n : 1, 1);
    if (!h->levels) {
        qv_hnsw_free(h);
        return qv_err_set(err, QV_ENOMEM, "hnsw: out of memory for %zu levels", n);
    }
    *out = h;
    return QV_OK;
}

int qv__alloc_graph(qv_hnsw_t *h, qv_err_t *err)
{
    size_t n = h->n;
    h->upper_off = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!h->upper_off)
        return qv_err_set(err, QV_ENOMEM, "hnsw: out of memory for %zu rows", n);
    uint64_t slots = 0;
    for (size_t i = 0; i < n; i++) {
        h->upper_off[i] = (uint32_t)slots;
        slots += h->levels[i];
        if (slots > UINT32_MAX)
            return qv_err_set(err, QV_ENOMEM, "hnsw: too many upper-layer slots");
    }
    h->upper_slots = (size_t)slots;
    size_t l0_words = qv__l0_stride(h);
    if (n > SIZE_MAX / sizeof(uint32_t) / l0_words)
        return qv_err_set(err, QV_ENOMEM, "hnsw: layer 0 size overflows");
    h->l0 = qv__big_calloc(n ? n * l0_words : 1, sizeof(uint32_t));
    h->upper = calloc(slots ? (size_t)slots * (h->M + 1) : 1, sizeof(uint32_t));
    if (!h->l0 || !h->upper)
        return qv_err_set(err, QV_ENOMEM, "hnsw: out of memory for the graph of %zu rows", n);
    return QV_OK;
}

int qv_hnsw_create(const qv_hnsw_params_t *params, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_err_t *err, qv_hnsw_t **out)
{
    qv_hnsw_t *h;
    int rc = qv__new(params, vectors, n, dim, stride, err, &h);
    if (rc)
        return rc;
    double ml = 1.0 / log((double)h->M);
    for (size_t i = 0; i < n; i++)
        h->levels[i] = (uint8_t)draw_level(h->seed, i, ml);
    rc = qv__alloc_graph(h, err);
    if (rc == QV_OK) {
        h->locks = calloc(n ? n : 1, 1);
        if (!h->locks)
            rc = qv_err_set(err, QV_ENOMEM, "hnsw: out of memory for %zu build locks", n);
    }
    if (rc) {
        qv_hnsw_free(h);
        return rc;
    }
    *out = h;
    return QV_OK;
}

void qv_hnsw_free(qv_hnsw_t *h)
{
    if (!h)
        return;
    qv__scratch_pool_free(h);
    qv_quant_free(h->qz);
    pthread_mutex_destroy(&h->ep_mu);
    pthread_mutex_destroy(&h->pool_mu);
    free(h->levels);
    free(h->l0);
    free(h->upper);
    free(h->upper_off);
    free(h->locks);
    free(h);
}

/* ---- node locks ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void node_lock(uint8_t *l)
{
    for (;;) {
        if (!__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
            return;
        for (int spins = 0; __atomic_load_n(l, __ATOMIC_RELAXED); spins++) {
            if (spins < 64) {
                cpu_relax();
            } else {
                sched_yield();  /* the holder may be descheduled: let it finish its short critical section */
                spins = 0;
            }
        }
    }
}

static inline void node_unlock(uint8_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

/* ---- Algorithm 4: SELECT-NEIGHBORS-HEURISTIC ---- */

/* cand[0..nc) sorted ascending by distance to the base element; picks at most mmax into out. A candidate is kept
 * only if it is closer to the base than to every neighbour already kept (so links spread in different directions
 * and the graph stays navigable across clusters). With nc <= mmax everything is kept, as in hnswlib.
 *
 * Exact duplicates of the base are the one case the paper's rule handles badly: a copy is at distance 0 from the
 * base and from every other copy, so the strict test keeps copy after copy, and a vector with more than Mmax copies
 * gets lists made only of its copies: the copies become an island no search can enter or leave. So copies of the
 * base fill at most half of the list, leaving the rest for the neighbours that keep the island connected. */
static size_t select_heuristic(const qv_hnsw_t *h, uint32_t base, const qv__pair_t *cand, size_t nc, size_t mmax,
                               qv__pair_t *out)
{
    if (nc <= mmax) {
        memcpy(out, cand, nc * sizeof(*out));
        return nc;
    }
    const float *vb = qv__vec(h, base);
    float self_d = qv__dist(h, vb, vb);
    size_t nr = 0, ncopies = 0, max_copies = mmax / 2 ? mmax / 2 : 1;
    for (size_t i = 0; i < nc && nr < mmax; i++) {
        const float *ve = qv__vec(h, cand[i].id);
        if (cand[i].d <= self_d && memcmp(ve, vb, h->dim * sizeof(float)) == 0) {
            if (ncopies >= max_copies)
                continue;
            ncopies++;
            out[nr++] = cand[i];
            continue;
        }
        bool good = true;
        for (size_t j = 0; j < nr; j++) {
            if (qv__dist(h, ve, qv__vec(h, out[j].id)) < cand[i].d) {
                good = false;
                break;
            }
        }
        if (good)
            out[nr++] = cand[i];
    }
    return nr;
}

/* Order among equal distances: a hash of (base, id) rather than the id. With exact duplicate vectors every copy is
 * at distance 0 from the others, and a fixed order by id would make every list keep the same oldest copies and
 * drop each newer one when shrinking, leaving most copies with no in-links (unreachable). A per-base pseudo-random
 * order spreads the in-links over all copies, so the copies form a random regular digraph, which is connected. */
static inline uint32_t tie_key(uint32_t base, uint32_t id)
{
    uint64_t x = ((uint64_t)base << 32 | id) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

/* Insertion sort by (d, tie_key): n is at most ef_construction and the input is nearly sorted (drained from a
 * heap, or a sorted list plus one element), so this is close to linear. */
static void sort_pairs(qv__pair_t *a, size_t n, uint32_t base)
{
    for (size_t i = 1; i < n; i++) {
        qv__pair_t x = a[i];
        uint32_t xk = tie_key(base, x.id);
        size_t j = i;
        while (j > 0 && (a[j - 1].d > x.d || (a[j - 1].d == x.d && tie_key(base, a[j - 1].id) > xk))) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Algorithm 1 lines 11-17 for one layer: q's list := the selected neighbours, and q is added to each neighbour's
 * list, which is shrunk with Algorithm 4 when it would exceed Mmax. */
static void connect(qv_hnsw_t *h, qv__scratch_t *s, uint32_t q, unsigned layer, const qv__pair_t *sel, size_t ns)
{
    size_t mmax = layer ? h->M : h->M0;
    qv__pair_t *pool_in = s->sel + (h->M0 + 1), *pool_out = s->sel + 2 * ((size_t)h->M0 + 1);

    uint32_t *ql = qv__links(h, q, layer);
    node_lock(&h->locks[q]);
    for (size_t i = 0; i < ns; i++)
        qv__store(&ql[1 + i], sel[i].id);
    qv__store_count(ql, (uint32_t)ns);
    node_unlock(&h->locks[q]);

    for (size_t i = 0; i < ns; i++) {
        uint32_t e = sel[i].id;
        uint32_t *el = qv__links(h, e, layer);
        node_lock(&h->locks[e]);
        uint32_t c = qv__load(el);
        bool present = false;
        for (uint32_t j = 0; j < c; j++)
            present |= qv__load(&el[1 + j]) == q;
        if (present) {
            /* cannot happen (q is linked once per layer), but a duplicate would break the validator */
        } else if (c < mmax) {
            qv__store(&el[1 + c], q);
            qv__store_count(el, c + 1);
        } else {
            const float *ve = qv__vec(h, e);
            size_t np = 0;
            for (uint32_t j = 0; j < c; j++) {
                uint32_t x = qv__load(&el[1 + j]);
                pool_in[np].id = x;
                pool_in[np].d = qv__dist(h, ve, qv__vec(h, x));
                np++;
            }
            pool_in[np].id = q;
            pool_in[np].d = sel[i].d;  /* dist(e, q) == dist(q, e) for both metrics */
            np++;
            sort_pairs(pool_in, np, e);
            size_t nk = select_heuristic(h, e, pool_in, np, mmax, pool_out);
            for (size_t j = 0; j < nk; j++)
                qv__store(&el[1 + j], pool_out[j].id);
            qv__store_count(el, (uint32_t)nk);
        }
        node_unlock(&h->locks[e]);
    }
}

/* Algorithm 1 (INSERT) for row q. */
static void insert(qv_hnsw_t *h, qv__scratch_t *s, uint32_t q)
{
    const float *vq = qv__vec(h, q);
    unsigned l = h->levels[q];
    uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
    bool hold = false;
    if ((unsigned)(e >> 32) < l) {
        pthread_mutex_lock(&h->ep_mu);
        e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
        if ((unsigned)(e >> 32) < l)
            hold = true;  /* q becomes the new entry point: keep others from racing to the top */
        else
            pthread_mutex_unlock(&h->ep_mu);
    }
    unsigned top = (unsigned)(e >> 32);
    uint32_t ep = (uint32_t)e;
    uint64_t nd = 1;
    float d = qv__dist(h, vq, qv__vec(h, ep));
    if (top > l)
        ep = qv__greedy(h, vq, ep, &d, top, l, &nd);  /* lines 5-7 */

    s->work[0].d = d;
    s->work[0].id = ep;
    size_t nw = 1;
    for (int lc = (int)(top < l ? top : l); lc >= 0; lc--) {  /* lines 8-17 */
        qv__visit_begin(s, h->n);
        s->tags[q] = s->gen;  /* never find q itself (a racing reader could see a fresh back link) */
        qv__search_layer(h, s, vq, nw, h->efc, (unsigned)lc);
        /* W sorted ascending into work: pop the max-heap from the back. */
        nw = s->nres;
        for (size_t i = nw; i-- > 0;) {
            s->work[i] = s->res[0];
            qv__maxheap_pop(s->res, &s->nres);
        }
        sort_pairs(s->work, nw, q);
        size_t ns = select_heuristic(h, q, s->work, nw, h->M, s->sel);
        connect(h, s, q, (unsigned)lc, s->sel, ns);
    }
    if (hold) {
        __atomic_store_n(&h->entry, ((uint64_t)l << 32) | q, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&h->ep_mu);
    }
}

/* ---- reachability repair ---- */

/* BFS on layer 0 from `from`, marking reached[] and appending to queue[tail..]; returns the new tail. */
static size_t bfs(const qv_hnsw_t *h, uint8_t *reached, uint32_t *queue, size_t tail, uint32_t from)
{
    size_t head = tail;
    reached[from] = 1;
    queue[tail++] = from;
    while (head < tail) {
        const uint32_t *ll = qv__links(h, queue[head++], 0);
        for (uint32_t i = 0; i < ll[0]; i++) {
            uint32_t id = ll[1 + i];
            if (!reached[id]) {
                reached[id] = 1;
                queue[tail++] = id;
            }
        }
    }
    return tail;
}

/* After the build, a few nodes (about 0.1%) may have lost every in-link on layer 0 to later heuristic shrinks, and
 * an unfiltered search can then never return them. For each such node u, one of its own out-neighbours v that is
 * reachable and has a free slot gets the back link v -> u (u chose v as a near neighbour, so the link is a good
 * one, and appending removes nothing, so no other node can lose reachability). Single-threaded, O(n + links). */
static size_t repair_reachability(qv_hnsw_t *h)
{
    size_t n = h->n;
    uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
    uint8_t *reached = calloc(n, 1);
    uint32_t *queue = malloc(n * sizeof(uint32_t));
    size_t left = 0;
    if (!reached || !queue)
        goto out;  /* best effort: the graph is valid without the repair */
    size_t tail = bfs(h, reached, queue, 0, (uint32_t)e);
    for (size_t u = 0; u < n && tail < n; u++) {
        if (reached[u])
            continue;
        const uint32_t *ul = qv__links(h, (uint32_t)u, 0);
        for (uint32_t i = 0; i < ul[0]; i++) {
            uint32_t *vl = qv__links(h, ul[1 + i], 0);
            if (reached[ul[1 + i]] && vl[0] < h->M0) {
                vl[1 + vl[0]] = (uint32_t)u;
                vl[0]++;
                tail = bfs(h, reached, queue, tail, (uint32_t)u);
                break;
            }
        }
    }
    left = n - tail;
out:
    free(reached);
    free(queue);
    return left;
}

/* ---- parallel build ---- */

#define BUILD_CHUNK 64

typedef struct {
    qv_hnsw_t *h;
    int failed;  /* atomics: QV_ENOMEM from a worker */
} build_job_t;

static void build_task(void *arg, int task)
{
    build_job_t *job = arg;
    qv_hnsw_t *h = job->h;
    if (__atomic_load_n(&h->cancel, __ATOMIC_RELAXED) || __atomic_load_n(&job->failed, __ATOMIC_RELAXED))
        return;
    qv__scratch_t *s = qv__scratch_get(h, h->efc);
    if (!s) {
        __atomic_store_n(&job->failed, QV_ENOMEM, __ATOMIC_RELAXED);
        return;
    }
    size_t lo = 1 + (size_t)task * BUILD_CHUNK, hi = lo + BUILD_CHUNK;
    if (hi > h->n)
        hi = h->n;
    for (size_t r = lo; r < hi; r++) {
        insert(h, s, (uint32_t)r);
        __atomic_fetch_add(&h->progress, 1, __ATOMIC_RELAXED);
        if (s->oom) {
            __atomic_store_n(&job->failed, QV_ENOMEM, __ATOMIC_RELAXED);
            break;
        }
    }
    qv__scratch_put(h, s);
}

int qv__quant_attach(qv_hnsw_t *h, qv_quant_t *qz)
{
    h->qz = qz;
    h->quant = (qv_hnsw_quant_t)qv_quant_kind(qz);
    h->pq_m = h->quant == QV_HNSW_QUANT_PQ ? qv_quant_m(qz) : 0;
    h->codes = qv_quant_code(qz, 0);
    h->code_size = qv_quant_code_size(qz);
    h->qdist4 = qv_quant_dist4_kernel(qz);
    return QV_OK;
}

/* The quantiser, trained before the graph so that a cancelled or failed training costs no graph work; the graph
 * is then built with full-precision distances (quantised distances would only make the graph worse: the build
 * reads every vector anyway, and the codes pay off in the many searches after). */
static int train_quantiser(qv_hnsw_t *h, qv_pool_t *pool)
{
    if (h->quant == QV_HNSW_QUANT_NONE || h->qz)
        return QV_OK;
    qv_quant_params_t qp = {
        .kind = h->quant == QV_HNSW_QUANT_SQ8 ? QV_QUANT_SQ8 : QV_QUANT_PQ,
        .metric = h->metric == QV_HNSW_IP ? QV_QUANT_IP : QV_QUANT_L2,
        .pq_m = h->pq_m,
        .seed = h->seed,
    };
    qv_quant_t *qz;
    int rc = qv_quant_train(&qp, h->vectors, h->n, h->dim, h->stride, pool, &h->cancel, NULL, &qz);
    if (rc)
        return rc;
    return qv__quant_attach(h, qz);
}

int qv_hnsw_build(qv_hnsw_t *h, qv_pool_t *pool)
{
    if (!h)
        return QV_EINVAL;
    if (__atomic_load_n(&h->built, __ATOMIC_ACQUIRE) || !h->locks)
        return QV_EPRECOND;
    int qrc = train_quantiser(h, pool);  /* QV_ENOMEM or QV_ECANCELLED (parameters were checked at create) */
    if (qrc)
        return qrc;
    if (h->n > 0) {
        __atomic_store_n(&h->entry, ((uint64_t)h->levels[0] << 32) | 0u, __ATOMIC_RELEASE);
        __atomic_store_n(&h->progress, 1, __ATOMIC_RELAXED);
    }
    if (h->n > 1) {
        size_t ntasks = (h->n - 1 + BUILD_CHUNK - 1) / BUILD_CHUNK;
        build_job_t job = {.h = h};
        qv_pool_parallel(pool, (int)ntasks, build_task, &job);
        if (job.failed)
            return job.failed;
    }
    if (__atomic_load_n(&h->cancel, __ATOMIC_RELAXED))
        return QV_ECANCELLED;
    if (h->n > 1)
        repair_reachability(h);
    free(h->locks);
    h->locks = NULL;
    __atomic_store_n(&h->built, 1, __ATOMIC_RELEASE);
    return QV_OK;
}

size_t qv_hnsw_progress(const qv_hnsw_t *h) { return h ? __atomic_load_n(&h->progress, __ATOMIC_RELAXED) : 0; }

void qv_hnsw_cancel(qv_hnsw_t *h)
{
    if (h)
        __atomic_store_n(&h->cancel, 1, __ATOMIC_RELAXED);
}

void qv_hnsw_info(const qv_hnsw_t *h, qv_hnsw_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (!h)
        return;
    info->n = h->n;
    info->dim = h->dim;
    info->M = h->M;
    info->ef_construction = h->efc;
    info->metric = h->metric;
    uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
    info->entry = e == QV_HNSW_ENTRY_EMPTY ? UINT32_MAX : (uint32_t)e;
    info->max_level = e == QV_HNSW_ENTRY_EMPTY ? 0 : (uint32_t)(e >> 32);
    uint64_t links = 0;
    for (size_t i = 0; i < h->n; i++) {
        links += qv__load_count(qv__links(h, (uint32_t)i, 0));
        for (unsigned l = 1; l <= h->levels[i]; l++)
            links += qv__load_count(qv__links(h, (uint32_t)i, l));
    }
    info->links = links;
    info->graph_bytes = sizeof(*h) + h->n * (1 + sizeof(uint32_t)) + h->n * qv__l0_stride(h) * sizeof(uint32_t) +
                        h->upper_slots * ((size_t)h->M + 1) * sizeof(uint32_t);
    info->quant = h->quant;
    info->pq_m = h->quant == QV_HNSW_QUANT_PQ ? h->pq_m : 0;
    if (h->qz) {
        info->code_bytes = h->code_size;
        info->quant_bytes = qv_quant_bytes(h->qz);
        info->quant_tier = qv_quant_tier(h->qz);
    }
    info->bytes_per_vector = h->n ? (double)(info->graph_bytes + info->quant_bytes) / (double)h->n : 0.0;
    info->scratch_bytes = qv__scratch_bytes(h, QV_HNSW_DEFAULT_EF);
}
