/* A small synchronous gRPC client over gRPC C core, generic over protobuf-c messages.
 *
 * protoc-c generates messages, not stubs, so a call names its method path ("/quiver.v1.Quiver/Search"), packs the
 * request, runs one batch of the six unary ops on a completion queue of its own (pluck type, created and destroyed per
 * call), and unpacks the response with the caller's descriptor. The channel is shared: gRPC channels are thread-safe,
 * and with one queue per call so is qv_client_call, which is what `quiver load --parallel N` relies on.
 *
 * Security, mirroring quiverd's --api-keys and --tls-* options: an API key is sent as `authorization: Bearer KEY`
 * initial metadata on every call; TLS uses grpc_ssl_credentials_create with the given root certificates (and a client
 * certificate for mutual TLS), optionally checking the server certificate against another name than the address's
 * host (GRPC_SSL_TARGET_NAME_OVERRIDE_ARG).
 *
 * gRPC starts threads in grpc_init(): never fork() after qv_client_open. */
#ifndef QV_CLIENT_H
#define QV_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#define QV_CLIENT_MAX_MESSAGE (64 << 20) /* the server's default limit; larger requests are refused locally */

typedef struct qv_client qv_client_t;

typedef struct {
    int code;          /* grpc_status_code: 0 OK, 3 INVALID_ARGUMENT, 5 NOT_FOUND, 14 UNAVAILABLE, ... */
    char message[512]; /* the status details, copied out of gRPC (truncated to fit) */
} qv_status_t;

typedef struct {
    const char *api_key;         /* NULL: no authorization metadata */
    bool tls;                    /* false: plaintext (the fields below are ignored) */
    const char *tls_root_pem;    /* PEM roots the server certificate must chain to; NULL: gRPC's default roots */
    const char *tls_cert_pem;    /* client certificate chain (mutual TLS) or NULL; with tls_key_pem */
    const char *tls_key_pem;     /* its private key or NULL */
    const char *tls_server_name; /* expected name in the server certificate; NULL: the host of addr */
} qv_client_opts_t;

/* Creates a channel to addr ("host:port"); connects lazily on the first call. Calls grpc_init(). opts may be NULL
 * (plaintext, no key); the strings are copied. Returns NULL only on allocation failure. */
qv_client_t *qv_client_open_opts(const char *addr, const qv_client_opts_t *opts);
/* qv_client_open_opts(addr, NULL) */
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
