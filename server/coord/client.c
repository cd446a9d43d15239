/* Outgoing shard calls; the design is in client.h. */
#include "server/coord/client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "server/log.h"

#define POLL_MS 5 /* how often a waiting fan-out looks at the incoming call's cancelled flag */
/* With a client deadline, a call whose answer the client can do without (allow_partial) ends this much earlier:
 * a tenth of the time left, at most 200 ms. Without it a late shard's call and the client's deadline expire
 * together, and the client gets DEADLINE_EXCEEDED instead of the partial answer it asked for. */
#define PARTIAL_RESERVE_MAX_NS (200 * 1000000LL)

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
    pthread_mutex_init(&s->mu, NULL);
    qv_cond_init_mono(&s->slot_cv);
    s->breaker = QV_BREAKER_CLOSED;
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
    pthread_cond_destroy(&s->slot_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s->addr);
    free(s);
}

/* ---- the breaker and the concurrency limit (design in client.h) ---- */

#define COOLDOWN_NS (QV_BREAKER_COOLDOWN_MS * 1000000LL)

/* The shard's stall window (client.h): srtt + 4 rttvar, within [QV_SHARD_STALL_MIN_MS, QV_SHARD_STALL_MAX_MS].
 * Called under s->mu. */
static int64_t stall_ns(const qv_shard_t *s)
{
    int64_t w = s->srtt_ns + 4 * s->rttvar_ns;
    if (w < QV_SHARD_STALL_MIN_MS * 1000000LL)
        w = QV_SHARD_STALL_MIN_MS * 1000000LL;
    if (w > QV_SHARD_STALL_MAX_MS * 1000000LL)
        w = QV_SHARD_STALL_MAX_MS * 1000000LL;
    return w;
}

/* One answered call's duration into the window's estimate (RFC 6298, gains 1/8 and 1/4). Called under s->mu. */
static void stall_sample(qv_shard_t *s, int64_t took_ns)
{
    if (took_ns < 0)
        took_ns = 0;
    if (s->srtt_ns == 0) {
        s->srtt_ns = took_ns;
        s->rttvar_ns = took_ns / 2;
        return;
    }
    int64_t err = took_ns - s->srtt_ns;
    s->srtt_ns += err / 8;
    s->rttvar_ns += ((err < 0 ? -err : err) - s->rttvar_ns) / 4;
}

static const char *breaker_name(qv_breaker_t b)
{
    return b == QV_BREAKER_OPEN ? "open" : b == QV_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

void qv_shard_health(qv_shard_t *s, qv_shard_health_t *out)
{
    pthread_mutex_lock(&s->mu);
    qv_breaker_t b = s->breaker;
    out->state = breaker_name(b);
    out->failures = s->failures;
    out->inflight = (uint32_t)s->inflight;
    out->reachable = b == QV_BREAKER_CLOSED && !s->last_unavailable;
    pthread_mutex_unlock(&s->mu);
    /* a local read of the channel's state: with try_to_connect 0 it starts no connection attempt */
    if (grpc_channel_check_connectivity_state(s->ch, 0) == GRPC_CHANNEL_TRANSIENT_FAILURE)
        out->reachable = false;
}

/* Takes one of the shard's slots for a call, or refuses it (false, with the reason in msg) when the breaker is
 * open, when it is half-open and its probe is already in flight, or when the shard is at --shard-max-inflight and
 * stalled or the call's deadline (CLOCK_MONOTONIC ns) passes while it waits for a slot (*late then). *probe: this
 * call is the half-open probe. */
static bool call_begin(const qv_client_t *cl, qv_shard_t *s, int64_t deadline_ns, bool *probe, bool *late, char *msg,
                       size_t size)
{
    int64_t now = qv_mono_ns(), waited_from = now;
    bool ok = false;
    *probe = *late = false;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->breaker == QV_BREAKER_OPEN && now - s->opened_ns >= COOLDOWN_NS) {
            s->breaker = QV_BREAKER_HALF_OPEN;
            s->probing = false;
        }
        if (s->breaker == QV_BREAKER_OPEN || (s->breaker == QV_BREAKER_HALF_OPEN && s->probing)) {
            snprintf(msg, size, "shard %s: circuit open after %" PRIu32 " consecutive failures; probing every %d ms",
                     s->name, s->failures, QV_BREAKER_COOLDOWN_MS);
            break;
        }
        if (s->inflight < cl->shard_max_inflight) {
            ok = true;
            break;
        }
        int64_t stall = stall_ns(s);
        if (now - s->progress_ns >= stall) {
            snprintf(msg, size,
                     "shard %s: %d calls in flight from this coordinator (its --shard-max-inflight limit) and none "
                     "has ended for %" PRId64 " ms",
                     s->name, s->inflight, (now - s->progress_ns) / 1000000);
            break;
        }
        if (now >= deadline_ns) {
            snprintf(msg, size,
                     "the deadline passed after %" PRId64 " ms waiting for one of the %d calls in flight to shard %s "
                     "(its --shard-max-inflight limit) to end",
                     (now - waited_from) / 1000000, s->inflight, s->name);
            *late = true;
            break;
        }
        int64_t until = s->progress_ns + stall;
        if (deadline_ns < until)
            until = deadline_ns;
        struct timespec ts = qv_mono_ts(until);
        pthread_cond_timedwait(&s->slot_cv, &s->mu, &ts);
        now = qv_mono_ns();
    }
    if (ok) {
        if (s->breaker == QV_BREAKER_HALF_OPEN)
            *probe = s->probing = true;
        if (s->inflight++ == 0)
            s->progress_ns = now; /* a stall is measured from when calls became pending */
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

typedef enum {
    END_ANSWERED, /* the shard answered, with any status but the two below: it is alive */
    END_FAILED,   /* UNAVAILABLE (no connection, or the shard says so) or DEADLINE_EXCEEDED */
    END_UNKNOWN,  /* cancelled by this coordinator, or the batch did not complete: says nothing about the shard */
} call_end_t;

/* Gives back the call's slot and feeds its outcome to the breaker and, when answered, its duration (from began_ns)
 * to the stall window. */
static void call_end(qv_shard_t *s, bool probe, call_end_t end, const qv_sub_t *sub, int64_t began_ns)
{
    int64_t now = qv_mono_ns();
    bool opened = false, closed = false;
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    s->progress_ns = now;
    if (probe)
        s->probing = false;
    if (end == END_ANSWERED) {
        stall_sample(s, now - began_ns);
        closed = s->breaker != QV_BREAKER_CLOSED;
        s->breaker = QV_BREAKER_CLOSED;
        s->failures = 0;
    } else if (end == END_FAILED) {
        s->failures++;
        if (s->breaker == QV_BREAKER_CLOSED && s->failures >= QV_BREAKER_FAILURES) {
            s->breaker = QV_BREAKER_OPEN;
            s->opened_ns = now;
            opened = true;
        } else if (probe && s->breaker == QV_BREAKER_HALF_OPEN) {
            s->breaker = QV_BREAKER_OPEN; /* still failing: another cool-down */
            s->opened_ns = now;
        }
    }
    if (end != END_UNKNOWN)
        s->last_unavailable = sub->status == GRPC_STATUS_UNAVAILABLE;
    uint32_t failures = s->failures;
    pthread_cond_broadcast(&s->slot_cv);
    pthread_mutex_unlock(&s->mu);
    if (opened)
        qv_log(QV_LOG_WARN, "cluster.breaker_open",
               "name=%s addr=%s failures=%" PRIu32 " cooldown_ms=%d msg=\"%.200s\"", s->name, s->addr, failures,
               QV_BREAKER_COOLDOWN_MS, sub->details);
    else if (closed)
        qv_log(QV_LOG_INFO, "cluster.breaker_closed", "name=%s addr=%s", s->name, s->addr);
}

typedef struct {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    bool probe;       /* the half-open probe of its shard's breaker */
    int64_t began_ns; /* CLOCK_MONOTONIC: when it got its slot */
    bool started, done;
} out_t;

static call_end_t end_of(const out_t *o, bool ok)
{
    if (!ok || o->status == GRPC_STATUS_CANCELLED)
        return END_UNKNOWN;
    if (o->status == GRPC_STATUS_UNAVAILABLE || o->status == GRPC_STATUS_DEADLINE_EXCEEDED)
        return END_FAILED;
    return END_ANSWERED;
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
    int64_t now = qv_mono_ns();
    int64_t left = ctx->deadline_ns ? ctx->deadline_ns - now : cl->default_timeout_ns;
    if (left <= 0) {
        for (size_t i = 0; i < n; i++)
            fail(ctx, &subs[i], GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the shard call");
        free(outs);
        return;
    }
    int64_t deadline_ns = now + left, reserve = ctx->deadline_ns ? left / 10 : 0;
    if (reserve > PARTIAL_RESERVE_MAX_NS)
        reserve = PARTIAL_RESERVE_MAX_NS;
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
        int64_t until = s->may_miss ? deadline_ns - reserve : deadline_ns;
        char why[320];
        bool late;
        if (!call_begin(cl, s->shard, until, &o->probe, &late, why, sizeof why)) {
            fail(ctx, s, late ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_UNAVAILABLE, why);
            continue;
        }
        o->began_ns = qv_mono_ns();
        int64_t rest = until - o->began_ns;
        if (rest <= 0) { /* nothing left (spent waiting for a slot): not the shard's failure */
            fail(ctx, s, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the shard call");
            call_end(s->shard, o->probe, END_UNKNOWN, s, o->began_ns);
            continue;
        }
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(rest, GPR_TIMESPAN));
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
            call_end(s->shard, o->probe, END_UNKNOWN, s, o->began_ns);
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
            call_end(subs[i].shard, o->probe, end_of(o, ev.success), &subs[i], o->began_ns);
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
