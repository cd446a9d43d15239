/* The service layer's request rules (server/request.h). */
#include <string.h>

#include "server/request.h"
#include "storage/schema.h"

int qv_req_ids(char *const *ids, size_t n, qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu ids in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        if (len == 0)
            return qv_err_set(err, QV_EINVAL, "id %zu is empty", i);
        if (len > QV_ID_MAX)
            return qv_err_set(err, QV_EINVAL, "id %zu: %zu bytes exceeds %u", i, len, QV_ID_MAX);
    }
    return QV_OK;
}

int qv_req_scroll(uint32_t limit, const char *cursor, uint32_t *eff, qv_err_t *err)
{
    if (limit > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "limit = %u out of range: must be 0..%u", limit, QV_BATCH_MAX);
    if (strlen(cursor) > QV_ID_MAX)
        return qv_err_set(err, QV_EINVAL, "cursor longer than %u bytes is not one this server returned", QV_ID_MAX);
    *eff = limit ? limit : QV_SCROLL_DEFAULT_LIMIT;
    return QV_OK;
}

int qv_req_vectors_fit(size_t n, uint32_t dim, int max_bytes, qv_err_t *err)
{
    if ((uint64_t)n * dim * sizeof(float) > (uint64_t)max_bytes)
        return qv_err_set(err, QV_ETOOBIG, "%zu vectors of dim %u exceed the %d byte message limit", n, dim,
                          max_bytes);
    return QV_OK;
}
