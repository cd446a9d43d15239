/* The query's request rules (query/request.h). */
#include "query/request.h"

#include <string.h>

int qv_search_check_params(uint32_t k, uint32_t ef, uint32_t rerank, qv_err_t *err)
{
    if (k == 0 || k > QV_K_MAX)
        return qv_err_set(err, QV_EINVAL, "k = %u out of range: must be 1..%u", k, QV_K_MAX);
    if (ef > QV_EF_MAX)
        return qv_err_set(err, QV_EINVAL, "ef = %u out of range: must be 0..%u", ef, QV_EF_MAX);
    if (rerank > QV_RERANK_MAX)
        return qv_err_set(err, QV_EINVAL, "rerank = %u out of range: must be 0..%u", rerank, QV_RERANK_MAX);
    return QV_OK;
}

int qv_search_check_batch(size_t nqueries, qv_err_t *err)
{
    if (nqueries == 0 || nqueries > QV_BATCH_QUERIES_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu query vectors: must be 1..%d", nqueries, QV_BATCH_QUERIES_MAX);
    return QV_OK;
}

int qv_query_validate(const qv_schema_t *s, float *vec, uint32_t n, qv_err_t *err)
{
    return qv_vector_check(s, vec, n, "query", err);
}

int qv_search_check_group(const qv_schema_t *s, const char *group_by, uint32_t group_size, uint32_t k, int *field,
                          uint32_t *size, qv_err_t *err)
{
    *field = QV_GROUP_NONE;
    *size = group_size ? group_size : 1;
    if (!group_by || !group_by[0]) {
        if (group_size)
            return qv_err_set(err, QV_EINVAL, "group_size = %u without group_by", group_size);
        return QV_OK;
    }
    int f = qv_schema_field(s, group_by, strlen(group_by));
    if (f < 0 && s->dynamic && qv_name_ok(group_by, strlen(group_by)))
        f = QV_GROUP_DYNAMIC; /* an undeclared key: grouped by its keyword values */
    else if (f < 0 || s->fields[f].type != QV_FT_KEYWORD)
        return qv_err_set(err, QV_EINVAL, "group_by '%.64s' is not a KEYWORD field of collection '%s'", group_by,
                          s->name);
    if ((uint64_t)k * *size > QV_K_MAX)
        return qv_err_set(err, QV_EINVAL, "k x group_size = %llu: must be at most %u",
                          (unsigned long long)k * *size, QV_K_MAX);
    *field = f;
    return QV_OK;
}
