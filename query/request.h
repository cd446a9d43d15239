/* The query's request rules: what a search may ask for (k, ef, rerank, the number of queries in one batch) and the
 * checks of a query vector. Both server roles apply them before any work (the coordinator after its lookup and
 * before its fan-out, as the standalone server after its lookup and before its scan), so a bad request gets the same
 * status and message from either. */
#ifndef QV_QUERY_REQUEST_H
#define QV_QUERY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/schema.h"

#define QV_K_MAX 10000             /* hits per query */
#define QV_EF_MAX 10000            /* HNSW search breadth */
#define QV_RERANK_MAX 1000         /* quantised indexes' re-ranking factor */
#define QV_BATCH_QUERIES_MAX 1000  /* query vectors in one SearchBatch */

/* k must be 1..QV_K_MAX, ef 0..QV_EF_MAX (0: the default), rerank 0..QV_RERANK_MAX. QV_EINVAL naming the value. */
int qv_search_check_params(uint32_t k, uint32_t ef, uint32_t rerank, qv_err_t *err);

/* A batch holds 1..QV_BATCH_QUERIES_MAX queries. */
int qv_search_check_batch(size_t nqueries, qv_err_t *err);

/* Grouping: group_by empty (no grouping; then group_size must be 0), naming a KEYWORD field of s, or, in a collection
 * with dynamic attributes, naming an undeclared key (rows whose value there is a keyword are grouped by it); and
 * k x group_size (0: 1) at most QV_K_MAX. *field gets the field's index, QV_GROUP_NONE or QV_GROUP_DYNAMIC; *size the
 * group size in effect. */
#define QV_GROUP_NONE (-1)
#define QV_GROUP_DYNAMIC (-2)
int qv_search_check_group(const qv_schema_t *s, const char *group_by, uint32_t group_size, uint32_t k, int *field,
                          uint32_t *size, qv_err_t *err);

/* Validates a query vector (length, finite) and normalises it in place for COSINE collections. */
int qv_query_validate(const qv_schema_t *s, float *vec, uint32_t n, qv_err_t *err);

#endif
