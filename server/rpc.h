/* The gRPC C core server loop, generic over protobuf-c services.
 *
 * protoc-c generates messages, not gRPC stubs, so methods are dispatched by hand: the method table is built from
 * each ProtobufCServiceDescriptor ("/quiver.v1.Quiver/Search") and a handler looked up by name. One completion queue
 * serves every call; N worker threads run grpc_completion_queue_next and the handlers, which may block (a write
 * waits for its group commit, a search for its scan). Every call walks REQUESTED -> READ -> SENT, with a second
 * batch (RECV_CLOSE_ON_SERVER) posted up front so the handler sees a client's cancellation; the call is freed when
 * both batches have completed.
 *
 * Admission happens on the headers, before a byte of the body is read: the method is looked up, the API key in the
 * initial metadata checked, and a slot taken; a call that fails any of these is answered at once and its body is
 * never read, so unauthenticated or excess calls cost no memory and hold no slot. Slots: --max-inflight for the
 * Quiver service, and a separate reserve of QV_RPC_ADMIN_SLOTS for the Admin service (Health, Stats, ...), so an
 * operator can always see a saturated server. A body that has not arrived within request_read_timeout_ms of the
 * headers ends the call with DEADLINE_EXCEEDED (a reaper thread watches the calls being read), so body-less calls
 * cannot hold slots. The body is then checked against a decode budget (qv_pb_check) before protobuf-c allocates.
 *
 * Streaming calls (qv_stream_kind_t below) take a slot from a third reserve, QV_RPC_STREAM_SLOTS, so that long-lived
 * watches cannot starve unary calls. A stream walks READ -> STREAMING (a message being sent) -> READ (each) or
 * WATCHING (watch) -> ... -> SENT; a watch that waits sits on a list that one watcher thread walks every
 * QV_RPC_WATCH_MS, so a watch holds no worker thread between its messages. Each message is charged the response
 * budget afresh, and the call's arena is emptied once a message is packed, so a long stream does not grow. */
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
    size_t resp_budget;    /* bytes the response may still take (starts at the message limit); see qv_call_charge */
} qv_call_ctx_t;

/* Charges `bytes` of response against the call's budget before a handler builds them, so no response grows past
 * the message limit in memory first. Returns QV_OK, or QV_ETOOBIG with a message naming the limit and `hint` (how
 * to ask for less: "page with Scroll", "lower k", ...). */
static inline int qv_call_charge(qv_call_ctx_t *ctx, size_t bytes, const char *hint, qv_err_t *err)
{
    if (bytes <= ctx->resp_budget) {
        ctx->resp_budget -= bytes;
        return QV_OK;
    }
    return qv_err_set(err, QV_ETOOBIG, "response would exceed the message limit (--max-message-mb); %s", hint);
}

/* A handler decodes nothing and encodes nothing: it gets the unpacked request and returns the response message
 * (allocated from ctx->arena, or static), or a QV_E* code with err filled. The response is packed before the request
 * is freed, so it may point into the request. */
typedef int (*qv_handler_fn)(void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             qv_err_t *err);

/* How a method's messages flow. The .proto says which methods stream, but protobuf-c's descriptors do not carry it,
 * so qv_rpc_stream_kind knows the streaming methods by name. A streaming call is answered by the same kind of handler
 * as a unary one, run once per message it sends. */
typedef enum {
    QV_STREAM_NONE = 0, /* unary: one request, one response */
    QV_STREAM_EACH,     /* bidirectional: each request message gets the handler's response; the call ends OK when
                         * the client half-closes, with DEADLINE_EXCEEDED when no message has come for the request
                         * read timeout, and with the handler's status when it fails (reflection) */
    QV_STREAM_WATCH,    /* server streaming: the handler answers the one request at once, is run again every
                         * QV_RPC_WATCH_MS, and every answer whose bytes differ from the last one sent is sent; the call
                         * ends when the client cancels, with the handler's status when it fails, and with UNAVAILABLE
                         * when the server stops (grpc.health.v1.Health/Watch) */
} qv_stream_kind_t;

/* The kind of "/package.Service/Method". */
qv_stream_kind_t qv_rpc_stream_kind(const char *path);

typedef struct {
    const char *name;  /* "Quiver/Search": service short name / method */
    qv_handler_fn fn;
    int role;          /* QV_ROLE_* the caller's API key needs (server/auth.h) */
} qv_handler_t;

typedef struct qv_rpc qv_rpc_t;

typedef struct {
    const char *listen;                             /* host:port, or unix:PATH (a live server there: refused) */
    int threads;                                    /* worker threads */
    int max_message_bytes;                          /* receive and send limit */
    int max_inflight;                               /* calls admitted and not finished; beyond: RESOURCE_EXHAUSTED */
    int request_read_timeout_ms;                    /* body must arrive this soon after the headers (0: 10000) */
    int max_streams_per_connection;                 /* HTTP/2 concurrent streams one connection may open (0: 32) */
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
/* Stops accepting calls, ends watches (UNAVAILABLE), lets in-flight calls finish for up to grace_ms, cancels the
 * rest, joins the workers and frees everything. Once no call is left it closes idle client connections at once
 * rather than waiting out the grace period for clients that do not read the GOAWAY. */
void qv_rpc_stop(qv_rpc_t *r, int grace_ms);

#define QV_RPC_ADMIN_SLOTS 8    /* calls of the Admin service admitted beyond --max-inflight */
#define QV_RPC_STREAM_SLOTS 32  /* streaming calls open at once, from their own reserve (they may last for hours) */
#define QV_RPC_WATCH_MS 1000    /* how often a QV_STREAM_WATCH handler is run again */

/* Limits of the pre-unpack walk over an untrusted request (server/pbcheck.c). */
#define QV_PB_MAX_DEPTH 64        /* protobuf-c recurses without a limit */
#define QV_PB_MAX_UNKNOWN 256     /* unknown fields a request may carry (newer clients' fields, not a flood) */
#define QV_PB_DECODE_FACTOR 16    /* memory protobuf-c may allocate per request byte ... */
#define QV_PB_DECODE_SLACK (1 << 20) /* ... plus this much */

typedef enum {
    QV_PB_OK = 0,
    QV_PB_MALFORMED = -1, /* bad framing, a group, or nested deeper than the limit */
    QV_PB_NUL = -2,       /* a string field holds a NUL byte (protobuf-c would truncate it there) */
    QV_PB_UNKNOWN = -3,   /* more than QV_PB_MAX_UNKNOWN unknown fields */
    QV_PB_BUDGET = -4,    /* protobuf-c would allocate more than the decode budget */
} qv_pb_verdict_t;

/* Walks an untrusted protobuf message along its descriptors before protobuf-c unpacks it, and estimates what the
 * unpack would allocate (every message struct, string, repeated array and unknown field, with malloc overhead).
 * Returns a qv_pb_verdict_t; *decoded (may be NULL) gets the estimate in bytes. */
int qv_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, size_t *decoded);

#endif
