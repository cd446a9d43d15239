/* Per-node logic of the graph build (kernels/cuda/graph.cu on the device, kernels/cpu/graph.c on the CPU): a
 * CAGRA-style construction (Ootomo et al., "CAGRA: Highly Parallel Graph Construction and Approximate Nearest
 * Neighbor Search for GPUs", ICDE 2024) whose result is laid out as an HNSW graph.
 *
 *   1. k-NN graph      the exact knn_k nearest rows of every row (the batched distance + top-k kernel with
 *                      exclude_self), each list sorted best first: rank = position in the list.
 *   2. rank pruning    for node u and its j-th neighbour v_j, the detour count is the number of i < j such that
 *                      v_j is in v_i's list at a position p < j: a path u -> v_i -> v_j exists whose both hops rank
 *                      better than the direct edge, so the direct edge is the less useful one (section IV-B of the
 *                      paper; no distances needed, which is why it runs well on a GPU). The list is re-ordered by
 *                      (detour count, rank) and cut to the target degree.
 *   3. reverse edges   every pruned edge u -> v proposes v -> u, keyed by (rank of v in u's list, u); each node keeps
 *                      its best-keyed proposals, so hubs do not collect every reverse edge.
 *   4. merge           the pruned list's first half, then reverse edges and the rest of the pruned list
 *                      alternately, without duplicates, up to the degree (2M on layer 0, M above).
 *   5. upper layers    levels drawn as index/hnsw/build.c draws them (the same hash of seed and row, so a CPU and a
 *                      GPU build of one segment have the same levels); layer l >= 1 is steps 1-4 on the nodes of
 *                      level >= l (about n / M^l of them) with degree M; the entry point is the lowest-numbered
 *                      node of the top level.
 *   6. long links and   on the host (kernels/cpu/graph.c, finish_graph): a few random links per node on every
 *      reachability    layer, then every row made reachable from the entry on layer 0 (NSG-style). Without this a
 *                      k-NN graph of well-separated clusters falls apart into per-cluster islands.
 *
 * The search that serves the graph is the CPU's unchanged Algorithm 5 walk (greedy on the upper layers, ef-search on
 * layer 0), so the graph only has to be navigable: the unit test checks recall at equal ef against a CPU-built HNSW
 * graph. On the device each step is one kernel with one block (or one thread) per node; every choice is made on
 * (key, id) orders, never on thread timing, so the device graph is the CPU's graph given the same k-NN lists. */
#ifndef QV_K_GRAPH_CUH
#define QV_K_GRAPH_CUH

#include "kernels/cuda/common.cuh"

/* The HNSW level of a row: floor(-ln(U) / ln(M)) with U from a hash of (seed, row), capped at 31 (build.c). */
QV_K_HOST unsigned qv_k_level(uint64_t seed, size_t row, double ml)
{
    uint64_t r = qv_k_splitmix64(seed ^ qv_k_splitmix64((uint64_t)row));
    double u = ((double)(r >> 11) + 1.0) / 9007199254740992.0;
    double l = -log(u) * ml;
    return l >= 31.0 ? 31u : (unsigned)l;
}

/* Position of ids[i] in the ascending order of the k distinct ids of a list: the number of smaller ids (one
 * thread per i fills a sorted copy without a sort). NONE entries sort last and are ranked by position. */
QV_K_FN uint32_t qv_k_rank_of(const uint32_t *ids, uint32_t k, uint32_t i)
{
    uint32_t r = 0, me = ids[i];
    for (uint32_t t = 0; t < k; t++)
        if (ids[t] < me || (ids[t] == me && t < i))
            r++;
    return r;
}

/* Position of x in u's list, by binary search over the sorted copy (sorted_ids ascending, sorted_pos their
 * positions), or QV_K_NONE. */
QV_K_FN uint32_t qv_k_find_pos(const uint32_t *sorted_ids, const uint32_t *sorted_pos, uint32_t k, uint32_t x)
{
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sorted_ids[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < k && sorted_ids[lo] == x && x != QV_K_NONE ? sorted_pos[lo] : QV_K_NONE;
}

/* The detour found through u's i-th neighbour w at w's position p: the position j in u's list of w's p-th neighbour
 * when max(i, p) < j (an edge u -> v_j with a better two-hop path), else QV_K_NONE. wl is w's list. */
QV_K_FN uint32_t qv_k_detour(const uint32_t *wl, uint32_t i, uint32_t p, const uint32_t *sorted_ids,
                             const uint32_t *sorted_pos, uint32_t k)
{
    uint32_t x = wl[p];
    if (x == QV_K_NONE)
        return QV_K_NONE;
    uint32_t j = qv_k_find_pos(sorted_ids, sorted_pos, k, x);
    return j != QV_K_NONE && j > i && j > p ? j : QV_K_NONE;
}

/* Step 2's selection: the first `deg` entries of row (k ids, NONE-terminated) ordered by (counts[j], j). Returns
 * how many were written to out (fewer when the row is short). */
QV_K_FN uint32_t qv_k_prune_select(const uint32_t *row, const uint32_t *counts, uint32_t k, uint32_t deg,
                                   uint32_t *out)
{
    uint32_t n = 0;
    for (uint32_t c = 0; c <= k && n < deg; c++)  /* counts are < k: a counting pass per value, O(k * distinct) */
        for (uint32_t j = 0; j < k && n < deg; j++)
            if (row[j] != QV_K_NONE && counts[j] == c)
                out[n++] = row[j];
    return n;
}

/* The key of a reverse-edge proposal v -> u made by u's edge of rank `rank`: better ranks first, then lower u. */
QV_K_FN uint64_t qv_k_rev_key(uint32_t rank, uint32_t u) { return ((uint64_t)rank << 32) | u; }

/* The r smallest of cnt keys into out, ascending (partial selection; keys are distinct). Returns min(r, cnt).
 * keys is reordered. */
QV_K_FN uint32_t qv_k_smallest_keys(uint64_t *keys, uint32_t cnt, uint32_t r, uint64_t *out)
{
    uint32_t n = cnt < r ? cnt : r;
    for (uint32_t s = 0; s < n; s++) {
        uint32_t best = s;
        for (uint32_t t = s + 1; t < cnt; t++)
            if (keys[t] < keys[best])
                best = t;
        uint64_t tmp = keys[s];
        keys[s] = keys[best];
        keys[best] = tmp;
        out[s] = keys[s];
    }
    return n;
}

QV_K_FN int qv_k_has(const uint32_t *list, uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++)
        if (list[i] == x)
            return 1;
    return 0;
}

/* Step 4 for node u: fwd (nf pruned ids, best first) and rev (nr reverse sources, best key first) into out, up to
 * deg links, no duplicates, no self link. Returns the count. */
QV_K_FN uint32_t qv_k_merge_edges(uint32_t u, const uint32_t *fwd, uint32_t nf, const uint32_t *rev, uint32_t nr,
                                  uint32_t deg, uint32_t *out)
{
    uint32_t n = 0, x = 0, y = 0, half = deg / 2;
    while (n < half && x < nf) {
        uint32_t v = fwd[x++];
        if (v != u && !qv_k_has(out, n, v))
            out[n++] = v;
    }
    int turn = 0;  /* 0: a reverse edge next, 1: a forward one */
    while (n < deg && (x < nf || y < nr)) {
        uint32_t v;
        if ((turn == 0 && y < nr) || x >= nf)
            v = rev[y++];
        else
            v = fwd[x++];
        turn ^= 1;
        if (v != u && v != QV_K_NONE && !qv_k_has(out, n, v))
            out[n++] = v;
    }
    return n;
}

#endif
