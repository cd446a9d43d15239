/* gRPC C core unary client; the design is in client.h.
 *
 * Why a completion queue per call rather than one per client: a pluck queue admits at most
 * GRPC_MAX_COMPLETION_QUEUE_PLUCKERS (6) concurrent plucks, which `--parallel 8` would exceed; a queue costs a few
 * hundred bytes and no thread, so creating one per call is simpler than pooling them. */
#include "tools/quiver/client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qv_client {
    grpc_channel *channel;
    bool has_key;
    grpc_metadata auth; /* authorization: Bearer KEY, sent with every call when has_key */
};

static const char *const status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *qv_status_name(int code)
{
    if (code < 0 || code >= (int)(sizeof status_names / sizeof *status_names))
        return "UNKNOWN_STATUS";
    return status_names[code];
}

qv_client_t *qv_client_open_opts(const char *addr, const qv_client_opts_t *opts)
{
    qv_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    grpc_init();
    grpc_arg args[3];
    size_t nargs = 2;
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = QV_CLIENT_MAX_MESSAGE;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = QV_CLIENT_MAX_MESSAGE;
    grpc_channel_credentials *creds;
    if (opts && opts->tls) {
        grpc_ssl_pem_key_cert_pair pair = {opts->tls_key_pem, opts->tls_cert_pem};
        bool mutual = opts->tls_cert_pem && opts->tls_key_pem;
        creds = grpc_ssl_credentials_create(opts->tls_root_pem, mutual ? &pair : NULL, NULL, NULL);
        if (opts->tls_server_name && *opts->tls_server_name) {
            args[nargs].type = GRPC_ARG_STRING;
            args[nargs].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
            args[nargs].value.string = (char *)opts->tls_server_name; /* copied by grpc_channel_create */
            nargs++;
        }
    } else {
        creds = grpc_insecure_credentials_create();
    }
    if (opts && opts->api_key && *opts->api_key) {
        size_t n = strlen(opts->api_key) + sizeof "Bearer ";
        char *v = malloc(n);
        if (!v) {
            grpc_channel_credentials_release(creds);
            free(c);
            grpc_shutdown();
            return NULL;
        }
        snprintf(v, n, "Bearer %s", opts->api_key);
        c->auth.key = grpc_slice_from_static_string("authorization");
        c->auth.value = grpc_slice_from_copied_string(v);
        free(v);
        c->has_key = true;
    }
    grpc_channel_args ca = {nargs, args};
    c->channel = grpc_channel_create(addr, creds, &ca);
    grpc_channel_credentials_release(creds);
    return c;
}

qv_client_t *qv_client_open(const char *addr)
{
    return qv_client_open_opts(addr, NULL);
}

void qv_client_close(qv_client_t *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->channel);
    if (c->has_key) {
        grpc_slice_unref(c->auth.key);
        grpc_slice_unref(c->auth.value);
    }
    free(c);
    grpc_shutdown();
}

static void set_status(qv_status_t *st, int code, const char *msg)
{
    st->code = code;
    snprintf(st->message, sizeof st->message, "%s", msg);
}

int qv_client_call(qv_client_t *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, double timeout_s, ProtobufCMessage **resp,
                   qv_status_t *st)
{
    *resp = NULL;
    st->message[0] = '\0';
    size_t sz = protobuf_c_message_get_packed_size(req);
    if (sz > QV_CLIENT_MAX_MESSAGE) {
        st->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(st->message, sizeof st->message, "request of %zu bytes exceeds the %d byte message limit", sz,
                 QV_CLIENT_MAX_MESSAGE);
        return st->code;
    }
    grpc_slice req_slice = grpc_slice_malloc(sz);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(req_slice));
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req_slice, 1);
    grpc_slice_unref(req_slice);

    gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
    if (timeout_s > 0)
        deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                gpr_time_from_micros((int64_t)(timeout_s * 1e6), GPR_TIMESPAN));
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice path = grpc_slice_from_static_string(method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL, deadline,
                                               NULL);

    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_byte_buffer *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->has_key) { /* the slices are the client's and outlive the call; gRPC only reads them */
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &c->auth;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    void *tag = &ops; /* any unique address */
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, tag, NULL);
    if (e != GRPC_CALL_OK) {
        st->code = GRPC_STATUS_INTERNAL;
        snprintf(st->message, sizeof st->message, "grpc_call_start_batch failed (%d)", (int)e);
    } else {
        /* The call's deadline bounds the wait: the batch always completes by then. */
        grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
            set_status(st, GRPC_STATUS_INTERNAL, "the call's batch did not complete");
        } else {
            st->code = (int)status;
            size_t n = GRPC_SLICE_LENGTH(details);
            if (n >= sizeof st->message)
                n = sizeof st->message - 1;
            memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
            st->message[n] = '\0';
        }
    }
    if (st->code == GRPC_STATUS_OK) {
        if (!recv) {
            set_status(st, GRPC_STATUS_INTERNAL, "the server sent OK without a response message");
        } else {
            grpc_byte_buffer_reader rd;
            if (!grpc_byte_buffer_reader_init(&rd, recv)) {
                set_status(st, GRPC_STATUS_INTERNAL, "cannot read the response");
            } else {
                grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                *resp = protobuf_c_message_unpack(resp_desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
                grpc_slice_unref(all);
                if (!*resp)
                    set_status(st, GRPC_STATUS_INTERNAL, "malformed response message");
            }
        }
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return st->code;
}
