/* HNSW graph validator (qv_hnsw_validate): the invariants every search relies on, checked on the in-memory graph.
 *
 * Structural rules (any violation is QV_ECORRUPT, first offence named in err): each link list's count is within its
 * layer's bound (2M on layer 0, M above); each id is < n, not the node itself, not repeated in the list; an upper
 * layer l list only names nodes whose level is >= l (a search on layer l reads that node's layer-l list, which
 * must exist); the entry point has the max level and no node is higher. Reachability is reported, not an error:
 * the heuristic (Algorithm 4) may legitimately leave a node with no in-links after later shrinks, and concurrent
 * insertion makes that a little more likely; such a node is still findable by filtered reseeding and exact scans,
 * and a count much above zero points at a build bug. Same duplicate check as the loader: an n-sized stamp array,
 * O(n + links). Reachability is a BFS on layer 0 from the entry point with an n-sized queue. */
#include "index/hnsw/hnsw_int.h"

#include <stdlib.h>
#include <string.h>

static int check_list(const qv_hnsw_t *h, uint32_t node, unsigned layer, uint32_t *stamps, uint32_t stamp,
                      uint64_t *links, qv_err_t *err)
{
    const uint32_t *ll = qv__links(h, node, layer);
    uint32_t cap = layer ? h->M : h->M0;
    uint32_t c = qv__load_count(ll);
    if (c > cap)
        return qv_err_set(err, QV_ECORRUPT, "hnsw: node %u layer %u has %u links (max %u)", node, layer, c, cap);
    for (uint32_t i = 0; i < c; i++) {
        uint32_t id = qv__load(&ll[1 + i]);
        if (id >= h->n)
            return qv_err_set(err, QV_ECORRUPT, "hnsw: node %u layer %u links to %u, out of range", node, layer, id);
        if (id == node)
            return qv_err_set(err, QV_ECORRUPT, "hnsw: node %u layer %u links to itself", node, layer);
        if (h->levels[id] < layer)
            return qv_err_set(err, QV_ECORRUPT, "hnsw: node %u layer %u links to node %u of level %u", node, layer,
                              id, h->levels[id]);
        if (stamps[id] == stamp)
            return qv_err_set(err, QV_ECORRUPT, "hnsw: node %u layer %u links twice to %u", node, layer, id);
        stamps[id] = stamp;
    }
    *links += c;
    return QV_OK;
}

int qv_hnsw_validate(const qv_hnsw_t *h, qv_hnsw_report_t *report, qv_err_t *err)
{
    qv_hnsw_report_t rep = {.first_unreachable = UINT32_MAX};
    if (report)
        *report = rep;
    if (!h)
        return qv_err_set(err, QV_EINVAL, "hnsw: NULL index");
    size_t n = h->n;
    rep.nodes = n;
    uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
    if (n == 0) {
        if (e != QV_HNSW_ENTRY_EMPTY)
            return qv_err_set(err, QV_ECORRUPT, "hnsw: empty index with an entry point");
        return QV_OK;
    }
    if (e == QV_HNSW_ENTRY_EMPTY)
        return qv_err_set(err, QV_ECORRUPT, "hnsw: %zu nodes and no entry point", n);
    uint32_t entry = (uint32_t)e, max_level = (uint32_t)(e >> 32);
    rep.max_level = max_level;
    if (entry >= n || max_level > QV_HNSW_MAX_LEVEL || h->levels[entry] != max_level)
        return qv_err_set(err, QV_ECORRUPT, "hnsw: entry %u / max_level %u inconsistent", entry, max_level);

    uint32_t *stamps = calloc(n, sizeof(uint32_t));
    uint32_t *queue = malloc(n * sizeof(uint32_t));
    if (!stamps || !queue) {
        free(stamps);
        free(queue);
        return qv_err_set(err, QV_ENOMEM, "hnsw validate: out of memory");
    }
    int rc = QV_OK;
    uint32_t stamp = 0;
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        if (h->levels[i] > max_level) {
            rc = qv_err_set(err, QV_ECORRUPT, "hnsw: node %zu level %u above max level %u", i, h->levels[i],
                            max_level);
            break;
        }
        for (unsigned l = 0; rc == QV_OK && l <= h->levels[i]; l++) {
            if (++stamp == 0) {
                memset(stamps, 0, n * sizeof(uint32_t));
                stamp = 1;
            }
            rc = check_list(h, (uint32_t)i, l, stamps, stamp, &rep.links, err);
        }
    }
    if (rc == QV_OK) {
        /* BFS on layer 0; stamps reused as the visited mark (one fresh stamp value). */
        memset(stamps, 0, n * sizeof(uint32_t));
        size_t head = 0, tail = 0;
        queue[tail++] = entry;
        stamps[entry] = 1;
        while (head < tail) {
            const uint32_t *ll = qv__links(h, queue[head++], 0);
            uint32_t c = qv__load_count(ll);
            for (uint32_t i = 0; i < c; i++) {
                uint32_t id = qv__load(&ll[1 + i]);
                if (!stamps[id]) {
                    stamps[id] = 1;
                    queue[tail++] = id;
                }
            }
        }
        rep.unreachable = n - tail;
        for (size_t i = 0; rep.unreachable && i < n; i++) {
            if (!stamps[i]) {
                rep.first_unreachable = (uint32_t)i;
                break;
            }
        }
    }
    free(stamps);
    free(queue);
    if (report)
        *report = rep;
    return rc;
}
