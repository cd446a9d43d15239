/* Merging the shards' answers into one (the rules are in coord_int.h, "merges"). Pure functions over response
 * messages: no network, no locks, so tests/unit/test_coord.c checks them directly. */
#include <string.h>

#include "server/coord/coord_int.h"

#include "query/group.h"

int qv_merge_hits(qv_arena_t *ar, Quiver__V1__SearchResponse *const *parts, size_t nparts, uint32_t k, bool ascending,
                  Quiver__V1__SearchResponse *out)
{
    size_t total = 0;
    for (size_t i = 0; i < nparts; i++)
        total += parts[i] ? parts[i]->n_hits : 0;
    size_t want = total < k ? total : k;
    size_t *head = qv_arena_array(ar, nparts ? nparts : 1, sizeof *head);
    out->hits = qv_arena_array(ar, want ? want : 1, sizeof *out->hits);
    if (!head || !out->hits)
        return QV_ENOMEM;
    out->n_hits = 0;
    for (size_t n = 0; n < want; n++) {
        size_t best = nparts;
        for (size_t i = 0; i < nparts; i++) {
            if (!parts[i] || head[i] >= parts[i]->n_hits)
                continue;
            if (best == nparts) {
                best = i;
                continue;
            }
            float s = parts[i]->hits[head[i]]->score, b = parts[best]->hits[head[best]]->score;
            if (ascending ? s < b : s > b)
                best = i;
        }
        out->hits[out->n_hits++] = parts[best]->hits[head[best]++];
    }
    return QV_OK;
}

int qv_merge_grouped(qv_arena_t *ar, Quiver__V1__SearchResponse *const *parts, size_t nparts, uint32_t k,
                     uint32_t size, bool ascending, Quiver__V1__SearchResponse *out)
{
    size_t total = 0;
    for (size_t i = 0; i < nparts; i++)
        total += parts[i] ? parts[i]->n_hits : 0;
    if (total > UINT32_MAX || qv_merge_hits(ar, parts, nparts, (uint32_t)total, ascending, out))
        return QV_ENOMEM;
    qv_str_t *keys = qv_arena_array(ar, out->n_hits ? out->n_hits : 1, sizeof *keys);
    uint32_t *keep = qv_arena_array(ar, out->n_hits ? out->n_hits : 1, sizeof *keep);
    if (!keys || !keep)
        return QV_ENOMEM;
    for (size_t i = 0; i < out->n_hits; i++)
        keys[i] = (qv_str_t){out->hits[i]->group, (uint32_t)strlen(out->hits[i]->group)};
    size_t nkeep;
    bool full;
    if (qv_group_select(keys, out->n_hits, k, size, keep, &nkeep, &full))
        return QV_ENOMEM;
    for (size_t i = 0; i < nkeep; i++)
        out->hits[i] = out->hits[keep[i]];
    out->n_hits = nkeep;
    return QV_OK;
}

int qv_merge_scroll(qv_arena_t *ar, Quiver__V1__ScrollResponse *const *parts, size_t nparts, uint32_t limit,
                    Quiver__V1__ScrollResponse *out)
{
    size_t *head = qv_arena_array(ar, nparts ? nparts : 1, sizeof *head);
    out->points = qv_arena_array(ar, limit ? limit : 1, sizeof *out->points);
    if (!head || !out->points)
        return QV_ENOMEM;
    out->n_points = 0;
    bool more = false;
    for (size_t i = 0; i < nparts; i++)
        more |= parts[i]->next_cursor[0] != '\0';
    for (;;) {
        size_t best = nparts;
        for (size_t i = 0; i < nparts; i++)
            if (head[i] < parts[i]->n_points &&
                (best == nparts || strcmp(parts[i]->points[head[i]]->id, parts[best]->points[head[best]]->id) < 0))
                best = i;
        if (best == nparts)
            break;
        if (out->n_points == limit) {
            more = true; /* a point beyond this page exists */
            break;
        }
        out->points[out->n_points++] = parts[best]->points[head[best]++];
    }
    out->next_cursor = more && out->n_points ? out->points[out->n_points - 1]->id : (char *)"";
    return QV_OK;
}
