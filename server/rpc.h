/* The gRPC C core server loop, generic over protobuf-c services.
 *
 * protoc-c generates messages, not gRPC stubs, so methods are dispatched by hand: the method table is built from
 * each ProtobufCServiceDescriptor ("/quiver.v1.Quiver/Search") and a handler looked up by name. One completion queue
 * serves every call; N worker threads run grpc_completion_queue_next and the handlers, which may block (a write
 * waits for its group commit, a search for its scan). Every call walks REQUESTED -> READ -> SENT, with a second
 * batch (RECV_CLOSE_ON_SERVER) posted up front so the handler sees a client's cancellation; the call is freed when
 * both batches have completed. */
#ifndef QV_RPC_H
#define QV_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"

typedef struct {
    int64_t deadline_ns;   /* CLOCK_MONOTONIC; 0 when the client set none */
    atomic_bool cancelled; /* set when the client cancels or disconnects */
    qv_arena_t arena;      /* freed after the response is sent */
    const char *method;    /* "/quiver.v1.Quiver/Search" */
} qv_call_ctx_t;

/* A handler decodes nothing and encodes nothing: it gets the unpacked request and returns the response message
 * (allocated from ctx->arena, or static), or a QV_E* code with err filled. */
typedef int (*qv_handler_fn)(void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             qv_err_t *err);

typedef struct {
    const char *name;  /* "Quiver/Search": service short name / method */
    qv_handler_fn fn;
    int role;          /* QV_ROLE_* the caller's API key needs (server/auth.h) */
} qv_handler_t;

typedef struct qv_rpc qv_rpc_t;

typedef struct {
    const char *listen;                             /* host:port */
    int threads;                                    /* worker threads */
    int max_message_bytes;                          /* receive and send limit */
    int max_inflight;                               /* calls accepted and not finished; beyond: RESOURCE_EXHAUSTED */
    const ProtobufCServiceDescriptor *const *services; /* NULL-terminated */
    const qv_handler_t *handlers;                   /* NULL-name-terminated */
    void *app;
    const struct qv_keys *keys;                     /* NULL: no authentication */
    const char *tls_cert_pem, *tls_key_pem;         /* both NULL: plaintext */
    const char *tls_client_ca_pem;                  /* non-NULL: require and verify client certificates */
    /* called once per finished call with its method path ("unknown" for unknown methods), status and wall time */
    void (*observe)(const char *method, int status, int64_t ns);
} qv_rpc_opts_t;

/* Binds, starts the workers and returns; QV_EIO with a message if the address cannot be bound. */
int qv_rpc_start(const qv_rpc_opts_t *opts, qv_rpc_t **out, qv_err_t *err);
/* Bound port (useful with port 0). */
int qv_rpc_port(const qv_rpc_t *r);
/* Stops accepting calls, lets in-flight calls finish for up to grace_ms, cancels the rest, joins the workers and
 * frees everything. */
void qv_rpc_stop(qv_rpc_t *r, int grace_ms);

/* Maps a QV_E* code to a grpc_status_code (server/status.c; the only place this mapping exists). */
int qv_status_of(int qv_code);

/* Nesting depth check of an untrusted protobuf message before unpacking (protobuf-c recurses without a limit):
 * returns 0 if well-formed enough to unpack and nested at most max_depth levels, -1 if malformed or nested deeper,
 * -2 if a string field holds a NUL byte (protobuf-c would truncate it there). */
int qv_pb_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int max_depth);

#endif
