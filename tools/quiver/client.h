/* A small synchronous gRPC client over gRPC C core, generic over protobuf-c messages.
 *
 * protoc-c generates messages, not stubs, so a call names its method path ("/quiver.v1.Quiver/Search"), packs the
 * request, runs one batch of the six unary ops on a completion queue of its own (pluck type, created and destroyed per
 * call), and unpacks the response with the caller's descriptor. The channel is shared: gRPC channels are thread-safe,
 * and with one queue per call so is qv_client_call, which is what `quiver load --parallel N` relies on.
 *
 * gRPC starts threads in grpc_init(): never fork() after qv_client_open. */
#ifndef QV_CLIENT_H
#define QV_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define QV_CLIENT_MAX_MESSAGE (64 << 20) /* the server's default limit; larger requests are refused locally */

typedef struct qv_client qv_client_t;

typedef struct {
    int code;          /* grpc_status_code: 0 OK, 3 INVALID_ARGUMENT, 5 NOT_FOUND, 14 UNAVAILABLE, ... */
    char message[512]; /* the status details, copied out of gRPC (truncated to fit) */
} qv_status_t;

/* Creates an insecure channel to addr ("host:port"); connects lazily on the first call. Calls grpc_init(). Returns
 * NULL only on allocation failure. */
qv_client_t *qv_client_open(const char *addr);
/* Destroys the channel (no call may be in flight) and calls grpc_shutdown(). */
void qv_client_close(qv_client_t *c);

/* One unary call. method: the full path; req: any protobuf-c message; resp_desc: the response type; timeout_s: the
 * call's deadline from now (<= 0: none). Returns st->code. On OK, *resp is an unpacked message owned by the caller
 * (free with protobuf_c_message_free_unpacked(*resp, NULL)); otherwise *resp is NULL and st->message says why.
 * Thread-safe. */
int qv_client_call(qv_client_t *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, double timeout_s, ProtobufCMessage **resp,
                   qv_status_t *st);

/* "OK", "INVALID_ARGUMENT", ... ("UNKNOWN_STATUS" outside 0..16). */
const char *qv_status_name(int code);

#endif
