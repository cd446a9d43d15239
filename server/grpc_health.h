/* The standard gRPC health service (proto/grpc/health/v1/health.proto), for Kubernetes gRPC probes,
 * grpc_health_probe and clients that watch a server's health. Both methods answer from the role's own Admin.Health
 * (a standalone or shard server: SERVING unless its store has failed; a coordinator: SERVING while some shard is
 * reachable). */
#ifndef QV_GRPC_HEALTH_H
#define QV_GRPC_HEALTH_H

#include "server/rpc.h"

/* Check: req->service "" (the server) or one of the services it serves; another name gets NOT_FOUND, as the
 * protocol says. admin_health is the role's Admin.Health handler. */
int qv_grpc_health_check(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err);

/* Watch, served as QV_STREAM_WATCH (server/rpc.h): the same answer as Check, re-evaluated every QV_RPC_WATCH_MS and
 * sent when it changes. As the protocol says, an unknown service is answered SERVICE_UNKNOWN and the call stays open;
 * an Admin.Health that fails (a coordinator that cannot answer in time) reads as NOT_SERVING rather than ending the
 * watch. */
int qv_grpc_health_watch(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err);

#endif
