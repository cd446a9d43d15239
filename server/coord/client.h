/* The coordinator's client side: one gRPC channel per shard server, and a fan-out of unary calls that runs them
 * concurrently on one completion queue.
 *
 * protoc-c generates no client stubs either, so a call is driven by hand: the request is packed into a byte
 * buffer, one batch carries SEND_INITIAL_METADATA (with `authorization: Bearer KEY` when --shard-api-key is set),
 * SEND_MESSAGE, SEND_CLOSE_FROM_CLIENT and the three receives, and its completion is the call's end. Every call of
 * a fan-out gets the caller's remaining deadline (gRPC sends it as grpc-timeout, so the shard's handler sees the
 * same deadline and stops its scan when it passes); a call without a client deadline gets --shard-timeout-ms.
 * While waiting, the fan-out polls the incoming call's `cancelled` flag every few milliseconds and cancels the
 * outgoing calls (grpc_call_cancel) when it flips, so a client that goes away stops the shards' work too.
 *
 * Why not gRPC's parent-call propagation (grpc_channel_create_call with a parent and GRPC_PROPAGATE_CANCELLATION):
 * it needs the server-side grpc_call, which the generic rpc loop (server/rpc.h) does not hand to handlers; the
 * flag plus an explicit deadline does the same with no change to the loop. */
#ifndef QV_COORD_CLIENT_H
#define QV_COORD_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "server/rpc.h"

typedef struct {
    char *ca_pem;             /* non-NULL: TLS to shards, verifying them with this CA */
    char *cert_pem, *key_pem; /* non-NULL: client certificate for shards that require one */
    char *api_key;            /* non-NULL: sent as `authorization: Bearer KEY` */
    int max_message_bytes;
    int64_t default_timeout_ns; /* deadline of a shard call when the client set none */
} qv_client_t;

/* One shard server: its name (the static address, or the name it registered under in etcd), its address and a
 * channel to it. Reference counted: the shard map drops its reference when the shard moves or leaves, and the
 * channel is destroyed when the last request using it is done. */
typedef struct qv_shard {
    char *name;
    char *addr;
    grpc_channel *ch;
    atomic_int refs;
} qv_shard_t;

/* A shard with one reference, or NULL on OOM. gRPC connects lazily, so this never fails for an unreachable
 * address; calls to it fail with UNAVAILABLE instead. */
qv_shard_t *qv_shard_open(const qv_client_t *cl, const char *name, const char *addr);
void qv_shard_ref(qv_shard_t *s);
void qv_shard_unref(qv_shard_t *s);

/* One outgoing unary call of a fan-out. */
typedef struct {
    /* in */
    qv_shard_t *shard;      /* NULL: no server for this shard (not registered): fails with UNAVAILABLE, no call */
    const char *name;       /* the shard's name, for messages and missing_shards */
    const char *method;     /* "/quiver.v1.Quiver/Search" */
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *resp_desc;
    /* out */
    int status;             /* gRPC status code */
    const char *details;    /* status message (arena; "" when none) */
    ProtobufCMessage *resp; /* unpacked into the call's arena; non-NULL exactly when status is OK */
} qv_sub_t;

/* Runs the n calls concurrently and returns when every one has finished (answered, failed, timed out, or
 * cancelled because the incoming call was). Results and their strings live in ctx->arena. */
void qv_fanout(const qv_client_t *cl, qv_call_ctx_t *ctx, qv_sub_t *subs, size_t n);

/* A protobuf-c allocator drawing from an arena (free is a no-op), so unpacked shard answers live exactly as long
 * as the incoming call and can be linked into its response without copies. */
void qv_arena_pb_allocator(qv_arena_t *a, ProtobufCAllocator *out);

#endif
