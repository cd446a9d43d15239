/* The HTTP/JSON face of the API, served on the HTTP listener beside /metrics (server/metrics.c):
 *
 *   POST /v1/<Service>/<Method>   every method the gRPC server has a handler for (Service Quiver, Admin, Health,
 *                                 ServerReflection: one request, one response; not Health/Watch, a stream), the
 *                                 request and the response in the proto3 JSON mapping (server/pbjson.h); the same
 *                                 handlers, API keys (`Authorization: Bearer KEY`), limits (--max-message-mb) and
 *                                 statuses as gRPC
 *   GET  /healthz                 200 while the process serves
 *   GET  /readyz                  200 when Health says SERVING, else 503 with the reason
 *   GET  /openapi.json            an OpenAPI 3.0 document generated from the service descriptors
 *
 * Errors are {"code": <gRPC code>, "status": "<gRPC status name>", "message": "..."} with the HTTP status of the
 * usual mapping (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS 409,
 * RESOURCE_EXHAUSTED 429, CANCELLED 499, UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, others 500). A
 * deadline may be given as `X-Timeout-Ms`. */
#ifndef QV_HTTP_API_H
#define QV_HTTP_API_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/auth.h"
#include "server/rpc.h"

typedef struct {
    const ProtobufCServiceDescriptor *const *services; /* NULL-terminated */
    const qv_handler_t *handlers;                      /* NULL-name-terminated, as for server/rpc.h */
    void *app;
    const qv_keys_t *keys;                             /* NULL: no authentication */
    int max_message_bytes;
    void (*observe)(const char *method, int status, int64_t ns); /* may be NULL; called with the method's name */
} qv_http_api_t;

typedef struct {
    int status;              /* HTTP */
    const char *content_type;
    char *body;              /* malloc'd */
    size_t len;
} qv_http_reply_t;

/* Serves one request (method "GET" / "POST", the path, the Authorization and X-Timeout-Ms headers or NULL, the
 * whole body). Returns false when the path is not the API's (the caller answers 404). */
bool qv_http_api_serve(const qv_http_api_t *api, const char *method, const char *path, const char *auth,
                       const char *timeout_ms, const char *body, size_t len, qv_http_reply_t *out);

/* The HTTP status for a gRPC status code. */
int qv_http_status_of(int grpc_status);

#endif
