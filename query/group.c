/* query/group.h. Groups seen so far live in an open-addressing table of at most k entries (keyed XXH3 of the value). */
#include "query/group.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"

typedef struct {
    qv_str_t key; /* p == NULL: empty slot */
    uint64_t hash;
    uint32_t count;
} slot_t;

int qv_group_select(const qv_str_t *keys, size_t n, uint32_t k, uint32_t size, uint32_t *keep, size_t *nkeep,
                    bool *full)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)k)
        cap *= 2;
    slot_t *t = calloc(cap, sizeof *t);
    if (!t)
        return QV_ENOMEM;
    uint32_t groups = 0, filled = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keys[i].p)
            continue;
        uint64_t h = qv_hash(keys[i].p, keys[i].len);
        size_t s = h & (cap - 1);
        while (t[s].key.p && !(t[s].hash == h && t[s].key.len == keys[i].len &&
                               memcmp(t[s].key.p, keys[i].p, keys[i].len) == 0))
            s = (s + 1) & (cap - 1);
        if (!t[s].key.p) { /* a new group: only while fewer than k are open */
            if (groups == k)
                continue;
            t[s] = (slot_t){keys[i], h, 0};
            groups++;
        }
        if (t[s].count == size)
            continue;
        if (++t[s].count == size)
            filled++;
        keep[m++] = (uint32_t)i;
    }
    free(t);
    *nkeep = m;
    *full = groups == k && filled == k;
    return QV_OK;
}
