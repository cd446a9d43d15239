/* The service layer's request rules, one copy for both roles: the standalone/shard handlers (server/service.c) and
 * the coordinator's (server/coord/h_*.c) call these, so a bad request gets the same status and message from either,
 * and the coordinator refuses it before any fan-out. Query parameters (k, ef, rerank, batch size, the query vector)
 * are query/'s own rules (query/request.h); point contents are storage's (qv_point_validate); text limits are the
 * embedder's (server/embedder.h). */
#ifndef QV_SERVER_REQUEST_H
#define QV_SERVER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "query/request.h"

#define QV_SCROLL_DEFAULT_LIMIT 100 /* ScrollRequest.limit 0 */

/* The ids of a Get or Delete: at most QV_BATCH_MAX, each 1..QV_ID_MAX bytes; messages name the position in the
 * request. */
int qv_req_ids(char *const *ids, size_t n, qv_err_t *err);

/* A Scroll page: limit 0 means QV_SCROLL_DEFAULT_LIMIT, at most QV_BATCH_MAX; a cursor is an id this server returned
 * (at most QV_ID_MAX bytes). *eff: the page size to use. */
int qv_req_scroll(uint32_t limit, const char *cursor, uint32_t *eff, qv_err_t *err);

/* n vectors of dim floats must fit in one response message of max_bytes (QV_ETOOBIG otherwise), checked before a
 * response is built. */
int qv_req_vectors_fit(size_t n, uint32_t dim, int max_bytes, qv_err_t *err);

#endif
