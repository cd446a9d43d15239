/* Grouping of search hits (SearchRequest.group_by): of hits given best first, keep those of the first k groups to
 * appear (a group ranks by its best hit), at most `size` per group. Used by the standalone server on its own hits
 * and by the coordinator on the shards' merged hits (each hit carries its group there), so both apply one rule. */
#ifndef QV_QUERY_GROUP_H
#define QV_QUERY_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/schema.h"

/* keys[i] is hit i's group; keys[i].p == NULL: the hit has none and is left out. keep[] (room for n) receives the
 * positions kept, in order; *nkeep their number. *full: k groups were found and each holds `size` hits, so more
 * candidates could not change the answer. QV_OK or QV_ENOMEM. */
int qv_group_select(const qv_str_t *keys, size_t n, uint32_t k, uint32_t size, uint32_t *keep, size_t *nkeep,
                    bool *full);

#endif
