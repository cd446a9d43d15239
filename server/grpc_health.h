/* The standard gRPC health service (proto/grpc/health/v1/health.proto), for Kubernetes gRPC probes and
 * grpc_health_probe: Check answers from the role's own Admin.Health (a standalone or shard server: SERVING unless
 * its store has failed; a coordinator: SERVING while some shard is reachable). Watch is a server stream, which the
 * unary server loop (server/rpc.c) does not serve: it is answered UNIMPLEMENTED. */
#ifndef QV_GRPC_HEALTH_H
#define QV_GRPC_HEALTH_H

#include "server/rpc.h"

/* Check: req->service "" (the server) or one of the services it serves; another name gets NOT_FOUND, as the
 * protocol says. admin_health is the role's Admin.Health handler. */
int qv_grpc_health_check(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err);

#endif
