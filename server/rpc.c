/* gRPC C core plumbing; the design is in rpc.h.
 *
 * Call lifetime: a call_t is allocated when its grpc_server_request_call is posted. Its two tags (main, close)
 * complete on any worker thread; `pending` counts the batches still outstanding and whoever drops it to zero frees
 * the call. During shutdown no new request is posted, and requests already posted complete with success = 0 and
 * are freed. A watch parked on the watching list holds one reference there, which the watcher thread takes over
 * (to send its next message) or drops (the client cancelled). */
#include "server/rpc.h"
#include "server/status.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <errno.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "server/auth.h"
#include "server/log.h"

#define MAX_METHODS 64
#define PREPOSTED 32 /* calls waiting for a client at any moment */
#define REAP_EVERY_MS 50 /* how often the reaper looks at the calls being read */
#define WATCH_RUN_MS 5000 /* the longest one run of a watch's handler may take (its deadline) */

typedef struct {
    char path[128];
    const ProtobufCMethodDescriptor *md;
    qv_handler_fn fn;
    int role;
    bool admin; /* a method of the Admin service: admitted from the reserved slots */
    int stream; /* qv_stream_kind_t */
} method_t;

typedef struct call call_t;

struct qv_rpc {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *workers;
    int nworkers;
    int port;
    method_t methods[MAX_METHODS];
    int nmethods;
    int max_msg;
    int max_inflight;
    atomic_int inflight;       /* Quiver-service calls holding a slot */
    atomic_int admin_inflight; /* Admin-service calls holding a reserved slot */
    atomic_int stream_inflight; /* streaming calls holding a stream slot */
    atomic_int live;            /* calls taken off the completion queue and not yet freed (admitted or not) */
    atomic_uint accepted;       /* calls ever taken off the completion queue (a stop's sign of arrivals) */
    int64_t read_timeout_ns;
    const qv_keys_t *keys;
    void *app;
    void (*observe)(const char *method, int status, int64_t ns);
    atomic_bool stopping;
    pthread_mutex_t mu; /* guards shutdown_done, the reading and watching lists, reaper_stop and watcher_stop */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    bool shutdown_done;
    call_t *reading_head, *reading_tail; /* calls whose body is awaited, oldest first (all share one timeout) */
    pthread_t reaper;
    bool reaper_stop;
    call_t *watching;   /* watches waiting for their next run, linked through wnext */
    pthread_t watcher;
    bool watcher_stop;
};

enum { TAG_MAIN, TAG_CLOSE, TAG_SHUTDOWN };
enum { ST_REQUESTED, ST_READ, ST_STREAMING, ST_SENT };

typedef struct {
    int kind;
    call_t *call;
} tag_t;

struct call {
    qv_rpc_t *rpc;
    tag_t main_tag, close_tag;
    int state;
    atomic_int pending;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    int cancelled_int; /* written by RECV_CLOSE_ON_SERVER */
    grpc_slice status_details;
    grpc_byte_buffer *reply;
    bool md_sent;           /* the initial metadata went out with a stream's first message */
    ProtobufCMessage *watch_req; /* a watch's request, run again every QV_RPC_WATCH_MS */
    grpc_slice last;        /* a watch's last message sent */
    int64_t client_deadline_ns; /* a watch's deadline as the client set it (0: none) */
    call_t *wnext;          /* on rpc->watching; guarded by rpc->mu */
    int64_t started_ns;
    int64_t read_since_ns;  /* when the READ batch on the reading list was posted; guarded by rpc->mu */
    const method_t *m;      /* set at admission */
    atomic_int *slot;       /* the counter this call holds one unit of (inflight or admin_inflight), or NULL */
    call_t *rnext, *rprev;  /* on rpc->reading while its body is awaited; guarded by rpc->mu */
    bool reading;           /* guarded by rpc->mu */
    bool read_timed_out;    /* guarded by rpc->mu: the reaper cancelled the call */
    bool counted;           /* counted in rpc->live */
    qv_call_ctx_t ctx;
};

static tag_t shutdown_tag = {TAG_SHUTDOWN, NULL};

static void call_free(call_t *c)
{
    if (c->slot)
        atomic_fetch_sub(c->slot, 1);
    if (c->counted)
        atomic_fetch_sub(&c->rpc->live, 1);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    grpc_slice_unref(c->status_details);
    grpc_slice_unref(c->last);
    if (c->watch_req)
        protobuf_c_message_free_unpacked(c->watch_req, NULL);
    qv_arena_free(&c->ctx.arena);
    free(c);
}

static void call_done_one(call_t *c)
{
    if (atomic_fetch_sub(&c->pending, 1) == 1)
        call_free(c);
}

static void post_request(qv_rpc_t *r)
{
    if (atomic_load(&r->stopping))
        return;
    call_t *c = calloc(1, sizeof *c);
    if (!c) {
        qv_log(QV_LOG_ERROR, "rpc.oom", "cannot allocate a call context");
        return;
    }
    c->rpc = r;
    c->main_tag = (tag_t){TAG_MAIN, c};
    c->close_tag = (tag_t){TAG_CLOSE, c};
    c->state = ST_REQUESTED;
    c->status_details = grpc_empty_slice();
    c->last = grpc_empty_slice();
    atomic_init(&c->pending, 1);
    atomic_init(&c->ctx.cancelled, false);
    qv_arena_init(&c->ctx.arena);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    grpc_call_error e = grpc_server_request_call(r->server, &c->call, &c->details, &c->md, r->cq, r->cq, &c->main_tag);
    if (e != GRPC_CALL_OK) {
        call_free(c);
    }
}

static int64_t deadline_ns(gpr_timespec d)
{
    gpr_timespec m = gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(m, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0 || m.tv_sec > INT64_MAX / 1000000000 - 1)
        return 0;
    /* gpr's monotonic clock and CLOCK_MONOTONIC share a base on Linux only up to an offset gpr applies at start;
     * convert through the remaining time instead of assuming the same origin. */
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    gpr_timespec left = gpr_time_sub(m, now);
    int64_t dl = qv_mono_ns() + (int64_t)left.tv_sec * 1000000000 + left.tv_nsec;
    return dl == 0 ? 1 : dl;
}

static void send_reply(call_t *c, int status, const char *msg)
{
    if (c->rpc->observe)
        c->rpc->observe(c->ctx.method ? c->ctx.method : "unknown", status, qv_mono_ns() - c->started_ns);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    int n = 0;
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    if (status == GRPC_STATUS_OK && c->reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->reply;
        n++;
    }
    grpc_slice_unref(c->status_details);
    c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    c->state = ST_SENT;
    atomic_fetch_add(&c->pending, 1);
    if (grpc_call_start_batch(c->call, ops, (size_t)n, &c->main_tag, NULL) != GRPC_CALL_OK) {
        qv_log(QV_LOG_ERROR, "rpc.send_failed", "method=%s", c->ctx.method);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "cannot send the answer", NULL);
        call_done_one(c);
    }
}

/* Sends one message of a stream, with the initial metadata before the first; the STREAMING batch takes a reference.
 * The message slice is the caller's (the batch takes its own reference). */
static void send_message(call_t *c, grpc_slice msg)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    int n = 0;
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->md_sent = true;
    }
    c->reply = grpc_raw_byte_buffer_create(&msg, 1);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->reply;
    n++;
    c->state = ST_STREAMING;
    atomic_fetch_add(&c->pending, 1);
    if (grpc_call_start_batch(c->call, ops, (size_t)n, &c->main_tag, NULL) != GRPC_CALL_OK) {
        qv_log(QV_LOG_ERROR, "rpc.send_failed", "method=%s", c->ctx.method);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "cannot send the next message", NULL);
        call_done_one(c);
    }
}

static const method_t *find_method(qv_rpc_t *r, grpc_slice path)
{
    size_t len = GRPC_SLICE_LENGTH(path);
    const char *p = (const char *)GRPC_SLICE_START_PTR(path);
    for (int i = 0; i < r->nmethods; i++)
        if (strlen(r->methods[i].path) == len && memcmp(r->methods[i].path, p, len) == 0)
            return &r->methods[i];
    return NULL;
}

/* Checks the caller's API key against the method's role; returns a gRPC status (OK to proceed). */
static int authorize(call_t *c, const method_t *m, char *msg, size_t msglen)
{
    const char *val = NULL;
    size_t vlen = 0;
    for (size_t i = 0; c->rpc->keys && i < c->md.count; i++) {
        grpc_slice k = c->md.metadata[i].key;
        if (GRPC_SLICE_LENGTH(k) == 13 && memcmp(GRPC_SLICE_START_PTR(k), "authorization", 13) == 0) {
            val = (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value);
            vlen = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
        }
    }
    return qv_keys_authorize(c->rpc->keys, m->role, m->path, val, vlen, msg, msglen);
}

/* The reading list: calls admitted whose body (or a stream's next message) has not arrived, in the order their reads
 * were posted. The reaper ends those whose read_since_ns is older than the read timeout; it looks at the head only,
 * as every call has the same timeout. */
static void reading_add(call_t *c)
{
    qv_rpc_t *r = c->rpc;
    pthread_mutex_lock(&r->mu);
    c->read_since_ns = qv_mono_ns();
    c->reading = true;
    c->rnext = NULL;
    c->rprev = r->reading_tail;
    if (r->reading_tail)
        r->reading_tail->rnext = c;
    else
        r->reading_head = c;
    r->reading_tail = c;
    pthread_mutex_unlock(&r->mu);
}

/* Unlinks c from the reading list; r->mu is held. */
static void reading_unlink(qv_rpc_t *r, call_t *c)
{
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        r->reading_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        r->reading_tail = c->rprev;
    c->reading = false;
}

/* Takes c off the reading list (its READ batch completed); returns true if the reaper had cancelled it. */
static bool reading_remove(call_t *c)
{
    qv_rpc_t *r = c->rpc;
    pthread_mutex_lock(&r->mu);
    if (c->reading)
        reading_unlink(r, c);
    bool timed_out = c->read_timed_out;
    pthread_mutex_unlock(&r->mu);
    return timed_out;
}

/* Cancels calls whose body is late. A call on the list has its READ batch outstanding, so it cannot be freed while
 * the reaper holds the lock; grpc_call_cancel_with_status is thread-safe and completes the batch through the
 * completion queue, never inline. */
static void *reaper(void *arg)
{
    qv_rpc_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->reaper_stop) {
        int64_t now = qv_mono_ns();
        while (r->reading_head && r->reading_head->read_since_ns + r->read_timeout_ns <= now) {
            call_t *c = r->reading_head;
            reading_unlink(r, c);
            c->read_timed_out = true;
            char msg[160];
            snprintf(msg, sizeof msg, "%s not received within %lld ms (--request-read-timeout-ms)",
                     c->md_sent ? "the stream's next message" : "request body",
                     (long long)(r->read_timeout_ns / 1000000));
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED, msg, NULL);
        }
        struct timespec until = qv_mono_ts(now + REAP_EVERY_MS * 1000000LL);
        pthread_cond_timedwait(&r->cv, &r->mu, &until);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* The request bytes as one contiguous range: the received slice itself when gRPC delivered it in one piece (no
 * copy), else a copy. *owned is the slice to unref afterwards. */
static int request_bytes(grpc_byte_buffer *bb, grpc_slice *owned, const uint8_t **p, size_t *len)
{
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        *owned = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
    } else {
        grpc_byte_buffer_reader rd;
        if (!grpc_byte_buffer_reader_init(&rd, bb))
            return -1;
        *owned = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
    }
    *p = GRPC_SLICE_START_PTR(*owned);
    *len = GRPC_SLICE_LENGTH(*owned);
    return 0;
}

/* Decodes the message received into *req. A message that fails the checks is answered with the reason, which ends
 * the call, and false is returned. */
static bool decode(call_t *c, ProtobufCMessage **req)
{
    const method_t *m = c->m;
    *req = NULL;
    if (!c->payload) {
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "request message missing");
        return false;
    }
    grpc_slice in;
    const uint8_t *bytes;
    size_t len;
    int verdict = request_bytes(c->payload, &in, &bytes, &len);
    grpc_byte_buffer_destroy(c->payload); /* the slice keeps the bytes alive; the handler needs no second copy */
    c->payload = NULL;
    if (verdict) {
        send_reply(c, GRPC_STATUS_INTERNAL, "cannot read the request");
        return false;
    }
    size_t decoded = 0;
    verdict = qv_pb_check(m->md->input, bytes, len, &decoded);
    if (verdict == QV_PB_OK)
        *req = protobuf_c_message_unpack(m->md->input, NULL, len, bytes);
    grpc_slice_unref(in);
    char msg[192];
    switch (verdict) {
    case QV_PB_OK:
        break;
    case QV_PB_NUL:
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "a string field contains a NUL byte (U+0000), which is not supported");
        return false;
    case QV_PB_UNKNOWN:
        snprintf(msg, sizeof msg, "request carries more than %d unknown fields", QV_PB_MAX_UNKNOWN);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
        return false;
    case QV_PB_BUDGET:
        snprintf(msg, sizeof msg,
                 "request of %zu bytes would decode to about %zu bytes, over the %dx budget; send fewer, larger items",
                 len, decoded, QV_PB_DECODE_FACTOR);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
        return false;
    default:
        break;
    }
    if (!*req) {
        snprintf(msg, sizeof msg, "malformed request message (or nested deeper than %d levels)", QV_PB_MAX_DEPTH);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
        return false;
    }
    return true;
}

/* Runs the handler on req and packs its answer into *out (*has false when it answers no message), then empties the
 * call's arena. Returns QV_OK, or a QV_E* code with err filled. */
static int run(call_t *c, const ProtobufCMessage *req, grpc_slice *out, bool *has, qv_err_t *err)
{
    qv_rpc_t *r = c->rpc;
    ProtobufCMessage *resp = NULL;
    *has = false;
    c->ctx.resp_budget = (size_t)r->max_msg;
    int rc = c->m->fn(r->app, &c->ctx, req, &resp, err);
    if (rc == QV_OK && resp) {
        size_t sz = protobuf_c_message_get_packed_size(resp);
        uint8_t *buf = sz <= (size_t)r->max_msg ? malloc(sz ? sz : 1) : NULL;
        if (sz > (size_t)r->max_msg) {
            rc = qv_err_set(err, QV_ETOOBIG, "response of %zu bytes exceeds the %d byte message limit", sz, r->max_msg);
        } else if (!buf) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory packing the response");
        } else {
            protobuf_c_message_pack(resp, buf);
            *out = grpc_slice_new(buf, sz, free);
            *has = true;
        }
    }
    qv_arena_free(&c->ctx.arena);
    qv_arena_init(&c->ctx.arena);
    return rc;
}

/* Ends the call with the handler's error. */
static void fail(call_t *c, int rc, const qv_err_t *err)
{
    if (rc == QV_EIO || rc == QV_ECORRUPT || rc == QV_EUNAVAIL)
        qv_log(QV_LOG_ERROR, "rpc.error", "method=%s code=%s msg=\"%s\"", c->m->path, qv_strerror(rc), err->msg);
    send_reply(c, qv_status_of(rc), err->msg[0] ? err->msg : qv_strerror(rc));
}

/* Parks a watch until the watcher's next pass; its reference moves to the list. When the server is stopping, the
 * watch is ended instead (the watcher's last pass may be over), and so it is when no watcher thread runs. */
static void watch_park(call_t *c)
{
    qv_rpc_t *r = c->rpc;
    pthread_mutex_lock(&r->mu);
    bool stopping = atomic_load(&r->stopping) || r->watcher_stop;
    if (!stopping) {
        atomic_fetch_add(&c->pending, 1);
        c->wnext = r->watching;
        r->watching = c;
    }
    pthread_mutex_unlock(&r->mu);
    if (stopping)
        send_reply(c, GRPC_STATUS_UNAVAILABLE, "server shutting down");
}

/* One run of a watch's handler: its answer is sent when it differs from the last one sent, else the watch parks
 * again. A first run (nothing sent yet) always sends. */
static void watch_run(call_t *c)
{
    int64_t dl = qv_mono_ns() + WATCH_RUN_MS * 1000000LL;
    c->ctx.deadline_ns = c->client_deadline_ns && c->client_deadline_ns < dl ? c->client_deadline_ns : dl;
    grpc_slice out;
    bool has;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = run(c, c->watch_req, &out, &has, &err);
    if (rc != QV_OK) {
        fail(c, rc, &err);
        return;
    }
    bool changed = has && (!c->md_sent || !grpc_slice_eq(out, c->last));
    if (changed) {
        grpc_slice_unref(c->last);
        c->last = grpc_slice_ref(out);
        send_message(c, out);
    } else {
        watch_park(c);
    }
    if (has)
        grpc_slice_unref(out);
}

/* Posts the read of the next message; the READ batch takes a reference. */
static void read_next(call_t *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->payload;
    c->state = ST_READ;
    reading_add(c);
    atomic_fetch_add(&c->pending, 1);
    if (grpc_call_start_batch(c->call, &op, 1, &c->main_tag, NULL) != GRPC_CALL_OK) {
        reading_remove(c);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "cannot read the request", NULL);
        call_done_one(c);
    }
}

/* Decodes, dispatches and replies; runs on a worker thread once a message of an admitted call is in. */
static void handle(call_t *c)
{
    if (c->m->stream == QV_STREAM_EACH && !c->payload) { /* the client half-closed */
        send_reply(c, GRPC_STATUS_OK, "");
        return;
    }
    ProtobufCMessage *req;
    if (!decode(c, &req))
        return;
    if (c->m->stream == QV_STREAM_WATCH) {
        c->watch_req = req;
        watch_run(c);
        return;
    }
    grpc_slice out;
    bool has;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = run(c, req, &out, &has, &err);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc != QV_OK) {
        fail(c, rc, &err);
    } else if (c->m->stream == QV_STREAM_EACH) {
        if (has)
            send_message(c, out);
        else
            read_next(c);
    } else {
        if (has)
            c->reply = grpc_raw_byte_buffer_create(&out, 1);
        send_reply(c, GRPC_STATUS_OK, "");
    }
    if (has)
        grpc_slice_unref(out);
}

/* The watcher thread: every QV_RPC_WATCH_MS it takes the parked watches and runs each (dropping those whose client
 * cancelled); when the server stops it ends them all with UNAVAILABLE. */
static void *watcher(void *arg)
{
    qv_rpc_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->watcher_stop) {
        struct timespec until = qv_mono_ts(qv_mono_ns() + QV_RPC_WATCH_MS * 1000000LL);
        if (!atomic_load(&r->stopping))
            pthread_cond_timedwait(&r->cv, &r->mu, &until);
        call_t *list = r->watching;
        r->watching = NULL;
        bool stopping = atomic_load(&r->stopping);
        pthread_mutex_unlock(&r->mu);
        while (list) {
            call_t *c = list;
            list = c->wnext;
            if (atomic_load(&c->ctx.cancelled))
                ; /* the client is gone: only the list's reference is left to drop */
            else if (stopping)
                send_reply(c, GRPC_STATUS_UNAVAILABLE, "server shutting down");
            else
                watch_run(c);
            call_done_one(c); /* the list's reference: send_reply, watch_run and watch_park took their own */
        }
        pthread_mutex_lock(&r->mu);
        if (stopping && !r->watcher_stop) /* nothing more can park: wait to be joined */
            pthread_cond_wait(&r->cv, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Admission on the headers: method, API key, slot. Returns GRPC_STATUS_OK with a slot held, or a status (msg
 * filled) to answer at once without reading the body. */
static int admit(call_t *c, char *msg, size_t msglen)
{
    qv_rpc_t *r = c->rpc;
    const method_t *m = find_method(r, c->details.method);
    if (!m || !m->fn) {
        snprintf(msg, msglen, "unknown method");
        return GRPC_STATUS_UNIMPLEMENTED;
    }
    c->m = m;
    c->ctx.method = m->path;
    c->ctx.deadline_ns = deadline_ns(c->details.deadline);
    c->client_deadline_ns = c->ctx.deadline_ns;
    int auth = authorize(c, m, msg, msglen);
    if (auth != GRPC_STATUS_OK)
        return auth;
    /* Backpressure: every admitted call holds memory (its request message) until it is answered, so their number
     * is bounded; Admin calls have their own reserve so a saturated server can still be looked at, and streams
     * theirs so that watches left open take nothing from the others. */
    atomic_int *slot = m->stream ? &r->stream_inflight : m->admin ? &r->admin_inflight : &r->inflight;
    int limit = m->stream ? QV_RPC_STREAM_SLOTS : m->admin ? QV_RPC_ADMIN_SLOTS : r->max_inflight;
    if (atomic_fetch_add(slot, 1) >= limit) {
        atomic_fetch_sub(slot, 1);
        if (m->stream)
            snprintf(msg, msglen, "server busy: %d streams open; close one or retry with backoff", limit);
        else if (m->admin)
            snprintf(msg, msglen, "server busy: %d admin calls in flight; retry with backoff", limit);
        else
            snprintf(msg, msglen, "server busy: %d calls in flight (--max-inflight); retry with backoff", limit);
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    c->slot = slot;
    return GRPC_STATUS_OK;
}

static void on_requested(call_t *c, bool ok)
{
    qv_rpc_t *r = c->rpc;
    if (!ok) { /* shutting down */
        call_done_one(c);
        return;
    }
    post_request(r); /* keep PREPOSTED waiting */
    c->counted = true;
    atomic_fetch_add(&r->live, 1);
    atomic_fetch_add(&r->accepted, 1);
    c->started_ns = qv_mono_ns();
    grpc_op close_op;
    memset(&close_op, 0, sizeof close_op);
    close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close_op.data.recv_close_on_server.cancelled = &c->cancelled_int;
    atomic_fetch_add(&c->pending, 1);
    if (grpc_call_start_batch(c->call, &close_op, 1, &c->close_tag, NULL) != GRPC_CALL_OK)
        call_done_one(c);
    char msg[192];
    int st = admit(c, msg, sizeof msg);
    if (st != GRPC_STATUS_OK) {
        /* answered without reading the body: the REQUESTED reference becomes the SENT batch's */
        send_reply(c, st, msg);
        call_done_one(c);
        return;
    }
    read_next(c);
    call_done_one(c); /* the REQUESTED reference (the READ batch holds its own) */
}

static void *worker(void *arg)
{
    qv_rpc_t *r = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        tag_t *t = ev.tag;
        if (t->kind == TAG_SHUTDOWN) {
            pthread_mutex_lock(&r->mu);
            r->shutdown_done = true;
            pthread_cond_broadcast(&r->cv);
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        call_t *c = t->call;
        if (t->kind == TAG_CLOSE) {
            if (c->cancelled_int)
                atomic_store(&c->ctx.cancelled, true);
            call_done_one(c);
            continue;
        }
        switch (c->state) {
        case ST_REQUESTED:
            on_requested(c, ev.success);
            break;
        case ST_READ:
            if (reading_remove(c)) { /* the reaper cancelled it: the client has its DEADLINE_EXCEEDED */
                if (r->observe)
                    r->observe(c->ctx.method, GRPC_STATUS_DEADLINE_EXCEEDED, qv_mono_ns() - c->started_ns);
                call_done_one(c);
                break;
            }
            if (!ev.success) {
                call_done_one(c);
                break;
            }
            handle(c); /* the batch it posts, or the watching list, takes its own reference */
            call_done_one(c);
            break;
        case ST_STREAMING: /* a stream's message is sent */
            grpc_byte_buffer_destroy(c->reply);
            c->reply = NULL;
            if (ev.success && c->m->stream == QV_STREAM_EACH)
                read_next(c);
            else if (ev.success)
                watch_park(c);
            call_done_one(c); /* on failure the client is gone, and nothing more is posted */
            break;
        case ST_SENT:
            call_done_one(c);
            break;
        }
    }
    return NULL;
}

qv_stream_kind_t qv_rpc_stream_kind(const char *path)
{
    if (strcmp(path, "/grpc.health.v1.Health/Watch") == 0)
        return QV_STREAM_WATCH;
    if (strcmp(path, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == 0)
        return QV_STREAM_EACH;
    return QV_STREAM_NONE;
}

static void add_methods(qv_rpc_t *r, const ProtobufCServiceDescriptor *sd, const qv_handler_t *handlers)
{
    for (unsigned i = 0; i < sd->n_methods && r->nmethods < MAX_METHODS; i++) {
        method_t *m = &r->methods[r->nmethods++];
        m->md = &sd->methods[i];
        snprintf(m->path, sizeof m->path, "/%s/%s", sd->name, sd->methods[i].name);
        char short_name[128];
        snprintf(short_name, sizeof short_name, "%s/%s", sd->short_name, sd->methods[i].name);
        m->role = QV_ROLE_ADMIN; /* a method without a handler entry is refused anyway; be strict */
        m->stream = qv_rpc_stream_kind(m->path);
        /* Admin and the standard health check are admitted from the reserved slots: probes must get through a
         * server that is full of data calls */
        m->admin = strcmp(sd->short_name, "Admin") == 0 || strcmp(sd->name, "grpc.health.v1.Health") == 0;
        for (const qv_handler_t *h = handlers; h->name; h++)
            if (strcmp(h->name, short_name) == 0) {
                m->fn = h->fn;
                m->role = h->role;
            }
        if (!m->fn) /* answered UNIMPLEMENTED (a role serves a subset of the methods): not a warning */
            qv_log(QV_LOG_DEBUG, "rpc.unimplemented", "method=%s", m->path);
    }
}

/* gRPC removes an existing socket file before it binds a unix: address, which would take the path away from a server
 * still listening on it (a stale file left by kill -9 is what it is meant for). True when something accepts
 * connections at the address's path. */
static bool unix_socket_live(const char *listen)
{
    const char *path = strncmp(listen, "unix://", 7) == 0 ? listen + 7
                       : strncmp(listen, "unix:", 5) == 0 ? listen + 5
                                                          : NULL;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof a.sun_path)
        return false;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* non-blocking: a listener whose backlog is full answers EAGAIN at once, and is live too */
    bool live = fd >= 0 && (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno == EAGAIN);
    if (fd >= 0)
        close(fd);
    return live;
}

int qv_rpc_start(const qv_rpc_opts_t *opts, qv_rpc_t **out, qv_err_t *err)
{
    if (unix_socket_live(opts->listen))
        return qv_err_set(err, QV_EIO, "cannot listen on %s: another server is listening there", opts->listen);
    qv_rpc_t *r = calloc(1, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    r->app = opts->app;
    r->observe = opts->observe;
    r->keys = opts->keys;
    r->max_inflight = opts->max_inflight > 0 ? opts->max_inflight : 64;
    atomic_init(&r->inflight, 0);
    atomic_init(&r->admin_inflight, 0);
    atomic_init(&r->stream_inflight, 0);
    atomic_init(&r->live, 0);
    atomic_init(&r->accepted, 0);
    r->read_timeout_ns = (int64_t)(opts->request_read_timeout_ms > 0 ? opts->request_read_timeout_ms : 10000) * 1000000;
    r->max_msg = opts->max_message_bytes;
    pthread_mutex_init(&r->mu, NULL);
    qv_cond_init_mono(&r->cv);
    atomic_init(&r->stopping, false);
    for (const ProtobufCServiceDescriptor *const *s = opts->services; *s; s++)
        add_methods(r, *s, opts->handlers);

    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = opts->max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = opts->max_message_bytes;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[2].value.integer = opts->max_streams_per_connection > 0 ? opts->max_streams_per_connection : 32;
    grpc_channel_args ca = {3, args};
    r->server = grpc_server_create(&ca, NULL);
    r->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(r->server, r->cq, NULL);
    grpc_server_credentials *creds;
    if (opts->tls_cert_pem) {
        grpc_ssl_pem_key_cert_pair pair = {opts->tls_key_pem, opts->tls_cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(
            opts->tls_client_ca_pem, &pair, 1,
            opts->tls_client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    r->port = grpc_server_add_http2_port(r->server, opts->listen, creds);
    grpc_server_credentials_release(creds);
    if (r->port <= 0) {
        grpc_server_destroy(r->server);
        grpc_completion_queue_shutdown(r->cq);
        while (grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(r->cq);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return qv_err_set(err, QV_EIO, "cannot listen on %s", opts->listen);
    }
    grpc_server_start(r->server);
    if (pthread_create(&r->reaper, NULL, reaper, r) != 0) {
        qv_log(QV_LOG_ERROR, "rpc.reaper", "cannot start the request-read reaper thread");
        r->reaper_stop = true; /* qv_rpc_stop does not join it */
    }
    if (pthread_create(&r->watcher, NULL, watcher, r) != 0) {
        qv_log(QV_LOG_ERROR, "rpc.watcher", "cannot start the watcher thread: watches end after their first message");
        r->watcher_stop = true;
    }
    for (int i = 0; i < PREPOSTED; i++)
        post_request(r);
    r->nworkers = opts->threads > 0 ? opts->threads : 1;
    r->workers = calloc((size_t)r->nworkers, sizeof *r->workers);
    for (int i = 0; i < r->nworkers; i++)
        if (pthread_create(&r->workers[i], NULL, worker, r) != 0) {
            r->nworkers = i; /* serve with the threads that did start */
            qv_log(QV_LOG_WARN, "rpc.threads", "started=%d wanted=%d", i, opts->threads);
            break;
        }
    *out = r;
    return QV_OK;
}

int qv_rpc_port(const qv_rpc_t *r) { return r->port; }

void qv_rpc_stop(qv_rpc_t *r, int grace_ms)
{
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stopping, true);
    pthread_cond_broadcast(&r->cv); /* the watcher ends the watches */
    pthread_mutex_unlock(&r->mu);
    grpc_server_shutdown_and_notify(r->server, r->cq, &shutdown_tag);
    /* The shutdown completes when every call has finished and every client connection has closed after the GOAWAY.
     * A client that is not polling its idle connection (Python's grpc with no call active) never reads the GOAWAY,
     * so once no call is left, the connections are closed by cancelling (there is nothing left to cancel); otherwise
     * the calls get until the grace period ends. "No call left": none taken off the queue and not yet freed, and none
     * taken off it during one tick, so that calls gRPC matched just before the shutdown, whose events wait in the
     * queue for a worker, are served, not cancelled. */
    int64_t end = qv_mono_ns() + grace_ms * 1000000LL;
    bool cancelled = false;
    unsigned seen = atomic_load(&r->accepted);
    int64_t quiet_since = qv_mono_ns();
    pthread_mutex_lock(&r->mu);
    while (!r->shutdown_done) {
        int64_t now = qv_mono_ns();
        unsigned acc = atomic_load(&r->accepted);
        if (atomic_load(&r->live) != 0 || acc != seen)
            quiet_since = now;
        seen = acc;
        bool idle = now - quiet_since >= REAP_EVERY_MS * 1000000LL;
        if (!cancelled && (idle || now >= end)) {
            pthread_mutex_unlock(&r->mu);
            if (!idle)
                qv_log(QV_LOG_WARN, "rpc.cancel_inflight", "grace_ms=%d", grace_ms);
            grpc_server_cancel_all_calls(r->server);
            cancelled = true;
            pthread_mutex_lock(&r->mu);
            continue;
        }
        struct timespec tick = qv_mono_ts(cancelled ? now + 1000000000LL : now + REAP_EVERY_MS * 1000000LL);
        pthread_cond_timedwait(&r->cv, &r->mu, &tick);
    }
    bool join_reaper = !r->reaper_stop, join_watcher = !r->watcher_stop;
    r->reaper_stop = true;
    r->watcher_stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (join_reaper)
        pthread_join(r->reaper, NULL);
    if (join_watcher)
        pthread_join(r->watcher, NULL);
    grpc_completion_queue_shutdown(r->cq);
    for (int i = 0; i < r->nworkers; i++)
        pthread_join(r->workers[i], NULL);
    grpc_server_destroy(r->server);
    grpc_completion_queue_destroy(r->cq);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->workers);
    free(r);
}
