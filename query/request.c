/* The query's request rules (query/request.h). */
#include "query/request.h"

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
