/* The graph build's driver (levels, layers, the blob) and the CPU implementation of its per-node steps.
 *
 * The algorithm is described at the top of kernels/cuda/graph.cuh. This file decides everything that is not a
 * bulk step -- each node's level, which nodes make up each layer, the degree and k-NN width per layer, the mapping
 * of a layer's local row numbers back to node ids, the entry point -- and calls a backend (kernels/cpu/kcpu.h) for
 * the k-NN lists and for pruning + reverse edges. The plugin runs this same driver with its device backend, so a
 * GPU build differs from the CPU build only inside those two steps (and there only by float rounding of the
 * distances: the k-NN lists can differ at near-ties).
 *
 * Memory: the layer-0 k-NN lists (n x knn_k ids, 256 bytes per row at knn_k = 64) and the links (n x 2M ids) are
 * the big allocations; upper layers hold n / M rows or fewer. Upper layers are gathered into a contiguous copy of
 * their rows so a backend always sees rows 0..count-1. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/kcpu.h"
#include "kernels/cuda/graph.cuh"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void qv_kgraph_free(qv_kgraph_t *g)
{
    if (!g)
        return;
    free(g->levels);
    for (unsigned l = 0; l <= QV_KGRAPH_MAX_LEVEL; l++) {
        free(g->layer[l].nodes);
        free(g->layer[l].links);
        free(g->layer[l].nlinks);
    }
    memset(g, 0, sizeof *g);
}

int qv_kcheck_graph(const qv_gpu_graph_params_t *p, const float *x, size_t n, uint32_t dim, qv_err_t *err)
{
    if (!p || (n && !x))
        return qv_err_set(err, QV_EINVAL, "graph build: NULL argument");
    if (p->metric != QV_GPU_L2 && p->metric != QV_GPU_IP)
        return qv_err_set(err, QV_EINVAL, "graph build: unknown metric %d", (int)p->metric);
    if (p->M != 0 && (p->M < 2 || p->M > 128))
        return qv_err_set(err, QV_EINVAL, "graph build: M=%u outside [2, 128]", p->M);
    if (dim == 0 || dim > 65536)
        return qv_err_set(err, QV_EINVAL, "graph build: dim=%u outside [1, 65536]", dim);
    if (n > QV_GPU_MAX_ROWS)
        return qv_err_set(err, QV_EINVAL, "graph build: %zu rows exceed %u", n, QV_GPU_MAX_ROWS);
    if (p->knn_k > QV_GPU_MAX_K)
        return qv_err_set(err, QV_EINVAL, "graph build: knn_k=%u above %u", p->knn_k, QV_GPU_MAX_K);
    if (p->quant != QV_GPU_QUANT_NONE && p->quant != QV_GPU_QUANT_SQ8 && p->quant != QV_GPU_QUANT_PQ)
        return qv_err_set(err, QV_EINVAL, "graph build: unknown quantisation %d", (int)p->quant);
    return QV_OK;
}

/* ---- the CPU's steps 2-4 ---- */

int qv_kcpu_prune_merge(const uint32_t *knn, size_t n, uint32_t k, uint32_t deg, uint32_t *links, uint32_t *nlinks,
                        qv_err_t *err)
{
    uint32_t *pruned = malloc(n * deg * sizeof(uint32_t) + 1);
    uint32_t *npr = malloc(n * sizeof(uint32_t) + 1);
    uint32_t *sid = malloc(k * sizeof(uint32_t)), *spos = malloc(k * sizeof(uint32_t));
    uint32_t *counts = malloc(k * sizeof(uint32_t));
    size_t *off = calloc(n + 1, sizeof(size_t));
    uint64_t *keys = NULL, *best = malloc((deg / 2 + 1) * sizeof(uint64_t));
    uint32_t *rev = malloc((deg / 2 + 1) * sizeof(uint32_t));
    int rc = QV_OK;
    if (!pruned || !npr || !sid || !spos || !counts || !off || !best || !rev) {
        rc = qv_err_set(err, QV_ENOMEM, "graph build: out of memory for pruning %zu rows", n);
        goto out;
    }
    /* step 2: detour counts and rank-based pruning, node by node (one block per node on the device) */
    for (size_t u = 0; u < n; u++) {
        const uint32_t *row = knn + u * k;
        for (uint32_t i = 0; i < k; i++) {
            uint32_t r = qv_k_rank_of(row, k, i);
            sid[r] = row[i];
            spos[r] = i;
            counts[i] = 0;
        }
        for (uint32_t i = 0; i < k && row[i] != QV_K_NONE; i++) {
            const uint32_t *wl = knn + (size_t)row[i] * k;
            for (uint32_t p = 0; p + 1 < k; p++) {
                uint32_t j = qv_k_detour(wl, i, p, sid, spos, k);
                if (j != QV_K_NONE)
                    counts[j]++;
            }
        }
        npr[u] = qv_k_prune_select(row, counts, k, deg, pruned + u * deg);
    }
    /* step 3: reverse proposals v <- u keyed by (rank of v in u's pruned list, u), grouped by v */
    for (size_t u = 0; u < n; u++)
        for (uint32_t r = 0; r < npr[u]; r++)
            off[pruned[u * deg + r] + 1]++;
    for (size_t v = 0; v < n; v++)
        off[v + 1] += off[v];
    keys = malloc((off[n] + 1) * sizeof(uint64_t));
    if (!keys) {
        rc = qv_err_set(err, QV_ENOMEM, "graph build: out of memory for %zu reverse edges", off[n]);
        goto out;
    }
    {
        size_t *fill = calloc(n + 1, sizeof(size_t));
        if (!fill) {
            rc = qv_err_set(err, QV_ENOMEM, "graph build: out of memory");
            goto out;
        }
        for (size_t u = 0; u < n; u++)
            for (uint32_t r = 0; r < npr[u]; r++) {
                uint32_t v = pruned[u * deg + r];
                keys[off[v] + fill[v]++] = qv_k_rev_key(r, (uint32_t)u);
            }
        free(fill);
    }
    /* step 4: merge */
    for (size_t v = 0; v < n; v++) {
        uint32_t cnt = (uint32_t)(off[v + 1] - off[v]);
        uint32_t nr = qv_k_smallest_keys(keys + off[v], cnt, deg / 2, best);
        for (uint32_t i = 0; i < nr; i++)
            rev[i] = (uint32_t)best[i];
        nlinks[v] = qv_k_merge_edges((uint32_t)v, pruned + v * deg, npr[v], rev, nr, deg, links + v * deg);
    }
out:
    free(pruned);
    free(npr);
    free(sid);
    free(spos);
    free(counts);
    free(off);
    free(keys);
    free(best);
    free(rev);
    return rc;
}

/* ---- the driver ---- */

/* One layer: nodes (NULL = rows 0..count-1 of x) -> k-NN -> prune/merge -> links as node ids. */
static int build_layer(const qv_kbackend_t *be, const qv_gpu_graph_params_t *p, const float *x, uint32_t dim,
                       qv_klayer_t *L, uint32_t kk, double *knn_ms, double *prune_ms, qv_err_t *err)
{
    size_t count = L->count;
    L->links = malloc((count * L->deg + 1) * sizeof(uint32_t));
    L->nlinks = calloc(count + 1, sizeof(uint32_t));
    if (!L->links || !L->nlinks)
        return qv_err_set(err, QV_ENOMEM, "graph build: out of memory for %zu x %u links", count, L->deg);
    if (count < 2)
        return QV_OK;
    const float *rows = x;
    float *gathered = NULL;
    if (L->nodes) {
        gathered = malloc(count * dim * sizeof(float));
        if (!gathered)
            return qv_err_set(err, QV_ENOMEM, "graph build: out of memory for an upper layer of %zu rows", count);
        for (size_t i = 0; i < count; i++)
            memcpy(gathered + i * dim, x + (size_t)L->nodes[i] * dim, dim * sizeof(float));
        rows = gathered;
    }
    uint32_t *knn = malloc(count * kk * sizeof(uint32_t));
    int rc = knn ? QV_OK : qv_err_set(err, QV_ENOMEM, "graph build: out of memory for %zu x %u k-NN lists", count, kk);
    double t0 = now_ms();
    if (rc == QV_OK)
        rc = be->knn_ids(be->ctx, rows, count, dim, (int)p->metric, kk, p->mem_limit, knn, err);
    double t1 = now_ms();
    if (rc == QV_OK)
        rc = be->prune_merge(be->ctx, knn, count, kk, L->deg, L->links, L->nlinks, err);
    *knn_ms += t1 - t0;
    *prune_ms += now_ms() - t1;
    if (rc == QV_OK && L->nodes)
        for (size_t i = 0; i < count; i++)
            for (uint32_t j = 0; j < L->nlinks[i]; j++)
                L->links[i * L->deg + j] = L->nodes[L->links[i * L->deg + j]];
    free(knn);
    free(gathered);
    return rc;
}

/* ---- step 6 (on the host, for every backend): long links and reachability ---- */

static float kdist(const float *a, const float *b, uint32_t dim, int metric)
{
    float s = 0;
    if (metric == QV_GPU_IP) {
        for (uint32_t i = 0; i < dim; i++)
            s += a[i] * b[i];
        return -s;
    }
    for (uint32_t i = 0; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static bool has_link(const qv_klayer_t *L, uint32_t u, uint32_t v)
{
    for (uint32_t j = 0; j < L->nlinks[u]; j++)
        if (L->links[(size_t)u * L->deg + j] == v)
            return true;
    return false;
}

/* Whether u's layer-0 list can take a new link: a free slot, or a link that is not a tree edge (parent[v] != u) and
 * so can be replaced without cutting v off from the entry. */
static bool can_add(const qv_klayer_t *L, const uint32_t *parent, uint32_t u)
{
    if (L->nlinks[u] < L->deg)
        return true;
    for (uint32_t j = 0; j < L->nlinks[u]; j++)
        if (parent[L->links[(size_t)u * L->deg + j]] != u)
            return true;
    return false;
}

/* Adds u -> v on layer 0 (a no-op when present): into a free slot, else in place of u's last link that is not a
 * tree edge. Returns false when there is neither. */
static bool add_link0(qv_klayer_t *L, const uint32_t *parent, uint32_t u, uint32_t v)
{
    if (u == v || has_link(L, u, v))
        return true;
    uint32_t *row = L->links + (size_t)u * L->deg;
    if (L->nlinks[u] < L->deg) {
        row[L->nlinks[u]++] = v;
        return true;
    }
    for (uint32_t j = L->nlinks[u]; j-- > 0;)
        if (parent[row[j]] != u) {
            row[j] = v;
            return true;
        }
    return false;
}

/* Marks what is reachable from the nodes on the stack (layer 0 links), recording each newly marked node's parent
 * (the spanning tree from the entry); returns how many were newly marked. */
static size_t flood(const qv_klayer_t *L, uint8_t *seen, uint32_t *parent, uint32_t *stack, size_t top)
{
    size_t marked = 0;
    while (top > 0) {
        uint32_t u = stack[--top];
        for (uint32_t j = 0; j < L->nlinks[u]; j++) {
            uint32_t v = L->links[(size_t)u * L->deg + j];
            if (!seen[v]) {
                seen[v] = 1;
                parent[v] = u;
                marked++;
                stack[top++] = v;
            }
        }
    }
    return marked;
}

/* Step 6a: `r` links per node to rows drawn at random (a hash of seed, layer, node and draw), on every layer of at
 * least 4 x deg nodes, in place of the node's last links (or in free slots). */
static void add_random_links(qv_kgraph_t *g, uint32_t r)
{
    for (unsigned l = 0; l <= g->max_level; l++) {
        qv_klayer_t *L = &g->layer[l];
        if (L->count < 4 * (size_t)L->deg || r >= L->deg)
            continue;
        for (uint32_t i = 0; i < L->count; i++) {
            uint32_t u = L->nodes ? L->nodes[i] : i;
            uint32_t *row = L->links + (size_t)i * L->deg;
            for (uint32_t t = 0; t < r; t++) {
                uint64_t h = qv_k_splitmix64(g->seed ^ qv_k_splitmix64(((uint64_t)u << 16) | ((uint64_t)l << 8) | t));
                uint32_t pick = (uint32_t)(h % L->count);
                uint32_t v = L->nodes ? L->nodes[pick] : pick;
                if (v == u || has_link(L, i, v))
                    continue;
                if (L->nlinks[i] < L->deg)
                    row[L->nlinks[i]++] = v;
                else
                    row[L->deg - 1 - t] = v;
            }
        }
    }
}

/* Step 6 (kernels/cuda/graph.cuh), on the host for every backend. A k-NN graph pruned by ranks keeps almost only
 * short edges: on well-separated clusters each cluster's rows link only among themselves, on every layer whose
 * clusters hold more rows than knn_k, so a search that enters the wrong cluster cannot leave it. Measured on 30
 * separated Gaussian clusters in 32-d with queries drawn apart from the rows: 2,000 rows left 347 unreachable from
 * the entry and recall@10 0.62 at ef=16 where the CPU's HNSW gives 0.87; 20,000 rows gave 0.35 against 0.58.
 * HNSW escapes this through its insertion order (early rows link far, and its neighbour heuristic keeps such links).
 * Here:
 *   6a. a few random links per node (3M/8: 6 for M = 16) on every layer, in place of its weakest ones: the long
 *       links of a navigable small world, which let a beam search hop between clusters;
 *   6b. reachability, as NSG's spanning-tree step: rows no walk from the entry reaches on layer 0 are connected, one
 *       island at a time, by an edge each way between the island's first row and its nearest reachable row that can
 *       take a link, replacing only links outside the spanning tree from the entry; afterwards every row is
 *       reachable (unless every reachable list were all tree edges, which a degree of 2M >= 4 rules out in practice).
 * With the default knn_k = 6M both data sets above reach or beat the CPU HNSW at equal ef (tests/unit/
 * test_gpu_logic.c). Cost: 6a O(n r); 6b O(islands x min(n, 16384) x dim), and islands are rare after 6a. */
static int finish_graph(qv_kgraph_t *g, const float *x, qv_err_t *err)
{
    qv_klayer_t *L0 = &g->layer[0];
    const size_t n = g->n;
    if (n < 2)
        return QV_OK;
    add_random_links(g, g->M * 3 / 8 ? g->M * 3 / 8 : 1);
    uint32_t *parent = malloc(n * sizeof(uint32_t));
    uint32_t *stack = malloc(n * sizeof(uint32_t));
    uint8_t *seen = calloc(n, 1);
    if (!parent || !stack || !seen) {
        free(parent);
        free(stack);
        free(seen);
        return qv_err_set(err, QV_ENOMEM, "graph build: out of memory checking %zu rows for reachability", n);
    }
    for (size_t u = 0; u < n; u++)
        parent[u] = UINT32_MAX;
    /* 6b. Links are only ever replaced when they are not edges of the spanning tree, so a row once reached stays
     * reached and one pass suffices. The nearest reachable row is searched among every reachable row up to 16,384
     * rows, else among a stride sample of them (and all of them when the sample has no row that can take a link). */
    seen[g->entry] = 1;
    stack[0] = g->entry;
    size_t reached = 1 + flood(L0, seen, parent, stack, 1);
    const size_t stride = n > 16384 ? n / 16384 : 1;
    for (uint32_t u = 0; u < n && reached < n; u++) {
        if (seen[u])
            continue;
        const float *xu = x + (size_t)u * g->dim;
        uint32_t best = UINT32_MAX;
        float bd = 0;
        for (size_t step = stride;; step = 1) {
            for (size_t r = 0; r < n; r += step)
                if (seen[r] && can_add(L0, parent, (uint32_t)r)) {
                    float d = kdist(xu, x + r * g->dim, g->dim, g->metric);
                    if (best == UINT32_MAX || d < bd) {
                        bd = d;
                        best = (uint32_t)r;
                    }
                }
            if (best != UINT32_MAX || step == 1)
                break;
        }
        if (best == UINT32_MAX)
            break; /* no reachable row can take a link (every list is all tree edges): the validator reports it */
        add_link0(L0, parent, best, u);
        seen[u] = 1;
        parent[u] = best;
        stack[0] = u;
        reached += 1 + flood(L0, seen, parent, stack, 1);
        add_link0(L0, parent, u, best); /* and back, now that u's own tree edges are known */
    }
    free(parent);
    free(stack);
    free(seen);
    return QV_OK;
}

int qv_kgraph_build(const qv_kbackend_t *be, const qv_gpu_graph_params_t *p, const float *x, size_t n,
                    uint32_t dim, qv_kgraph_t *g, qv_gpu_graph_stats_t *stats, qv_err_t *err)
{
    memset(g, 0, sizeof *g);
    int rc = qv_kcheck_graph(p, x, n, dim, err);
    if (rc)
        return rc;
    double t0 = now_ms();
    uint32_t M = p->M ? p->M : 16;
    g->n = n;
    g->dim = dim;
    g->M = M;
    g->efc = p->ef_construction ? p->ef_construction : 200;
    if (g->efc < M)
        g->efc = M;
    g->metric = (int)p->metric;
    g->seed = p->seed;
    g->entry = UINT32_MAX;
    g->levels = malloc(n + 1);
    if (!g->levels)
        return qv_err_set(err, QV_ENOMEM, "graph build: out of memory for %zu levels", n);
    double ml = 1.0 / log((double)M);
    for (size_t i = 0; i < n; i++) {
        g->levels[i] = (uint8_t)qv_k_level(p->seed, i, ml);
        if (g->entry == UINT32_MAX || g->levels[i] > g->max_level) {
            g->max_level = g->levels[i];
            g->entry = (uint32_t)i;
        }
    }
    if (n == 0)
        return QV_OK;
    /* layer 0: every row, 2M links, from knn_k-NN lists */
    uint32_t kk = p->knn_k ? p->knn_k : 6 * M;
    kk = (uint32_t)qv_k_min_sz(qv_k_min_sz(kk, n - 1), QV_GPU_MAX_K);
    g->layer[0].count = (uint32_t)n;
    g->layer[0].deg = 2 * M;
    double knn_ms = 0, prune_ms = 0, up_knn = 0, up_prune = 0;
    rc = build_layer(be, p, x, dim, &g->layer[0], kk ? kk : 1, &knn_ms, &prune_ms, err);
    double t2 = now_ms();
    /* upper layers: the nodes of level >= l, M links, from 2M-NN lists among them */
    for (unsigned l = 1; rc == QV_OK && l <= g->max_level; l++) {
        qv_klayer_t *L = &g->layer[l];
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            cnt += g->levels[i] >= l;
        L->nodes = malloc(cnt * sizeof(uint32_t) + 1);
        if (!L->nodes) {
            rc = qv_err_set(err, QV_ENOMEM, "graph build: out of memory");
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (g->levels[i] >= l)
                L->nodes[L->count++] = (uint32_t)i;
        L->deg = M;
        uint32_t ku = (uint32_t)qv_k_min_sz(2 * (size_t)M, cnt ? cnt - 1 : 0);
        rc = build_layer(be, p, x, dim, L, ku ? ku : 1, &up_knn, &up_prune, err);
    }
    if (rc == QV_OK)
        rc = finish_graph(g, x, err);
    double t3 = now_ms();
    if (rc == QV_OK && stats) {
        memset(stats, 0, sizeof *stats);
        stats->max_level = g->max_level;
        stats->entry = g->entry;
        for (unsigned l = 0; l <= g->max_level; l++)
            for (uint32_t i = 0; i < g->layer[l].count; i++)
                stats->links += g->layer[l].nlinks[i];
        stats->knn_ms = knn_ms;  /* layer 0 */
        stats->prune_ms = prune_ms;
        stats->upper_ms = t3 - t2;
        stats->total_ms = t3 - t0;
    }
    return rc;
}

int qv_kgraph_build_blob(const qv_kbackend_t *be, const qv_gpu_graph_params_t *p, const float *x, size_t n,
                         uint32_t dim, uint8_t **blob, size_t *len, qv_gpu_graph_stats_t *stats, qv_err_t *err)
{
    if (!blob || !len)
        return qv_err_set(err, QV_EINVAL, "graph build: NULL argument");
    *blob = NULL;
    *len = 0;
    qv_kgraph_t g;
    qv_wbuf_t qb, out;
    qv_wbuf_init(&qb);
    qv_wbuf_init(&out);
    int rc = qv_kgraph_build(be, p, x, n, dim, &g, stats, err);
    if (rc == QV_OK && p->quant != QV_GPU_QUANT_NONE) {
        /* as qv_hnsw_build trains it: the index's seed, default sample and iterations */
        qv_gpu_quant_params_t qp = {.kind = p->quant, .metric = p->metric, .pq_m = p->pq_m, .seed = p->seed};
        rc = qv_kquant_build(be, &qp, x, n, dim, &qb, err);
    }
    if (rc == QV_OK) {
        rc = qv_kgraph_blob(&g, (int)p->quant, qb.data, qb.len, &out);
        if (rc)
            rc = qv_err_set(err, rc, "graph build: %s writing the blob", qv_strerror(rc));
    }
    qv_kgraph_free(&g);
    qv_wbuf_free(&qb);
    if (rc) {
        qv_wbuf_free(&out);
        return rc;
    }
    *blob = out.data;
    *len = out.len;
    return QV_OK;
}
