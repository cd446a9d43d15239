/* Outgoing shard calls; the design is in client.h. */
#include "server/coord/client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 5 /* how often a waiting fan-out looks at the incoming call's cancelled flag */

static void *pb_alloc(void *data, size_t size) { return qv_arena_alloc(data, size ? size : 1); }
static void pb_free(void *data, void *p) { (void)data, (void)p; }

void qv_arena_pb_allocator(qv_arena_t *a, ProtobufCAllocator *out)
{
    out->alloc = pb_alloc;
    out->free = pb_free;
    out->allocator_data = a;
}

qv_shard_t *qv_shard_open(const qv_client_t *cl, const char *name, const char *addr)
{
    qv_shard_t *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name)) || !(s->addr = strdup(addr))) {
        if (s)
            free(s->name);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    /* Reconnect quickly after a shard restarts: gRPC's defaults back off from 1 s up to 120 s, which would keep
     * a restarted shard "unavailable" long after it is back. */
    grpc_arg args[5];
    memset(args, 0, sizeof args);
    const char *keys[] = {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                          GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                          GRPC_ARG_MAX_RECONNECT_BACKOFF_MS};
    int vals[] = {cl->max_message_bytes, cl->max_message_bytes, 100, 100, 1000};
    for (int i = 0; i < 5; i++) {
        args[i].type = GRPC_ARG_INTEGER;
        args[i].key = (char *)keys[i];
        args[i].value.integer = vals[i];
    }
    grpc_channel_args ca = {5, args};
    grpc_channel_credentials *creds;
    if (cl->ca_pem) {
        grpc_ssl_pem_key_cert_pair pair = {cl->key_pem, cl->cert_pem};
        creds = grpc_ssl_credentials_create(cl->ca_pem, cl->cert_pem ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    s->ch = grpc_channel_create(addr, creds, &ca);
    grpc_channel_credentials_release(creds);
    return s;
}

void qv_shard_ref(qv_shard_t *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
}

void qv_shard_unref(qv_shard_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    grpc_channel_destroy(s->ch);
    free(s->name);
    free(s->addr);
    free(s);
}

typedef struct {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    bool started, done;
} out_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void finish(qv_call_ctx_t *ctx, qv_sub_t *s, int status, const char *msg, size_t len)
{
    s->status = status;
    s->details = qv_arena_strndup(&ctx->arena, msg, len);
    if (!s->details)
        s->details = "";
}

static void fail(qv_call_ctx_t *ctx, qv_sub_t *s, int status, const char *msg)
{
    finish(ctx, s, status, msg, strlen(msg));
}

static void collect(qv_call_ctx_t *ctx, qv_sub_t *s, out_t *o, bool ok)
{
    if (!ok) {
        fail(ctx, s, GRPC_STATUS_INTERNAL, "the shard call's batch did not complete");
        return;
    }
    finish(ctx, s, (int)o->status, (const char *)GRPC_SLICE_START_PTR(o->details), GRPC_SLICE_LENGTH(o->details));
    if (s->status != GRPC_STATUS_OK)
        return;
    const char *bad = NULL;
    grpc_byte_buffer_reader rd;
    if (!o->recv) {
        bad = "the shard answered OK without a response message";
    } else if (!grpc_byte_buffer_reader_init(&rd, o->recv)) {
        bad = "cannot read the shard's response";
    } else {
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
        ProtobufCAllocator al;
        qv_arena_pb_allocator(&ctx->arena, &al);
        s->resp = protobuf_c_message_unpack(s->resp_desc, &al, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
        grpc_slice_unref(all);
        if (!s->resp)
            bad = "malformed response message from the shard (or out of memory)";
    }
    if (bad)
        fail(ctx, s, GRPC_STATUS_INTERNAL, bad);
}

void qv_fanout(const qv_client_t *cl, qv_call_ctx_t *ctx, qv_sub_t *subs, size_t n)
{
    if (n == 0)
        return;
    out_t *outs = calloc(n, sizeof *outs);
    for (size_t i = 0; i < n; i++) {
        subs[i].resp = NULL;
        subs[i].status = GRPC_STATUS_UNKNOWN;
        subs[i].details = "";
    }
    if (!outs) {
        for (size_t i = 0; i < n; i++)
            fail(ctx, &subs[i], GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    int64_t now = mono_ns();
    int64_t left = ctx->deadline_ns ? ctx->deadline_ns - now : cl->default_timeout_ns;
    if (left <= 0) {
        for (size_t i = 0; i < n; i++)
            fail(ctx, &subs[i], GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the shard call");
        free(outs);
        return;
    }
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(left, GPR_TIMESPAN));
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_metadata auth;
    memset(&auth, 0, sizeof auth);
    if (cl->api_key) {
        auth.key = grpc_slice_from_static_string("authorization");
        auth.value = grpc_slice_from_static_string(cl->api_key);
    }
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        qv_sub_t *s = &subs[i];
        out_t *o = &outs[i];
        if (!s->shard) {
            char msg[200];
            snprintf(msg, sizeof msg, "shard %s has no registered server", s->name);
            fail(ctx, s, GRPC_STATUS_UNAVAILABLE, msg);
            continue;
        }
        size_t sz = protobuf_c_message_get_packed_size(s->req);
        grpc_slice payload = grpc_slice_malloc(sz);
        protobuf_c_message_pack(s->req, GRPC_SLICE_START_PTR(payload));
        o->send = grpc_raw_byte_buffer_create(&payload, 1);
        grpc_slice_unref(payload);
        grpc_metadata_array_init(&o->md_initial);
        grpc_metadata_array_init(&o->md_trailing);
        o->details = grpc_empty_slice();
        o->status = GRPC_STATUS_UNKNOWN;
        o->call = grpc_channel_create_call(s->shard->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                           grpc_slice_from_static_string(s->method), NULL, deadline, NULL);
        grpc_op ops[6];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = cl->api_key ? 1 : 0;
        ops[0].data.send_initial_metadata.metadata = cl->api_key ? &auth : NULL;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = o->send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &o->md_initial;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &o->recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &o->md_trailing;
        ops[5].data.recv_status_on_client.status = &o->status;
        ops[5].data.recv_status_on_client.status_details = &o->details;
        if (grpc_call_start_batch(o->call, ops, 6, o, NULL) != GRPC_CALL_OK) {
            fail(ctx, s, GRPC_STATUS_INTERNAL, "cannot start the shard call");
            continue;
        }
        o->started = true;
        pending++;
    }
    /* Wait for every started call. The calls' own deadline bounds this loop; cancellation only shortens it. */
    bool cancel_sent = false;
    while (pending) {
        gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(POLL_MS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(cq, until, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            out_t *o = ev.tag;
            size_t i = (size_t)(o - outs);
            o->done = true;
            collect(ctx, &subs[i], o, ev.success);
            pending--;
        } else if (!cancel_sent && atomic_load(&ctx->cancelled)) {
            for (size_t i = 0; i < n; i++)
                if (outs[i].started && !outs[i].done)
                    grpc_call_cancel(outs[i].call, NULL);
            cancel_sent = true;
        }
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (!o->send)
            continue;
        if (o->call)
            grpc_call_unref(o->call);
        grpc_byte_buffer_destroy(o->send);
        if (o->recv)
            grpc_byte_buffer_destroy(o->recv);
        grpc_slice_unref(o->details);
        grpc_metadata_array_destroy(&o->md_initial);
        grpc_metadata_array_destroy(&o->md_trailing);
    }
    free(outs);
}
