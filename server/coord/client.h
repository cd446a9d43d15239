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
 * flag plus an explicit deadline does the same with no change to the loop.
 *
 * Isolation. A shard that hangs (SIGSTOP, a stuck disk, a network partition that drops packets) answers nothing, so
 * every call to it waits out its deadline on a coordinator handler thread; with enough of them every handler
 * thread waits and the coordinator answers nothing, Health included. Two per-shard guards, both decided before a
 * call touches the network and both under the shard's own mutex (never held across a call):
 *
 * - a concurrency limit (--shard-max-inflight, below --threads): a call that finds that many calls to the shard in
 *   flight waits for one to end, but only while the shard is making progress (a call to it ended, or the first of
 *   the calls in flight began, within its stall window) and its own deadline has not passed; otherwise it fails at
 *   once with UNAVAILABLE. The stall window follows the shard's own answer times as TCP's retransmission timeout
 *   follows round trips (RFC 6298: smoothed time + 4 x its mean deviation), clamped to [QV_SHARD_STALL_MIN_MS,
 *   QV_SHARD_STALL_MAX_MS]: a shard that answers in milliseconds is declared stalled after 200 ms of silence, one
 *   that a loaded machine slows to half a second per call is not. (A fixed 200 ms failed healthy searches of a
 *   Debug build under 32 clients on two cores.) A hung shard therefore pins at most the limit's worth of handler
 *   threads plus, for one window, the callers waiting on it; the others go on serving (allow_partial searches
 *   answer without it), and a shard that is merely busy makes callers queue instead of failing them;
 * - a circuit breaker: QV_BREAKER_FAILURES consecutive failures of the shard (UNAVAILABLE, which is also what a
 *   failed connection gives, or DEADLINE_EXCEEDED; an answer of any other status, request errors included, is a
 *   sign of life and resets the count) open it, and calls fail at once with UNAVAILABLE. After
 *   QV_BREAKER_COOLDOWN_MS the next call is let through as the one probe (half-open; the others still fail fast):
 *   its success closes the breaker, its failure opens it for another cool-down. A probe is a real client call
 *   with its own deadline; there is no background prober, so an idle coordinator re-checks a shard on its next
 *   call. Calls the coordinator cancelled (the client went away) say nothing about the shard and count neither
 *   way.
 *
 * Rejected alternative: gRPC's own keepalive (GRPC_ARG_KEEPALIVE_TIME_MS) detects a dead connection, but only
 * after the keepalive interval plus timeout (tens of seconds to be safe against slow networks), and it does not
 * bound the threads a slow-but-alive shard can pin. The breaker's state is also what Health reports
 * (qv_shard_health), so Health never has to call a shard. */
#ifndef QV_COORD_CLIENT_H
#define QV_COORD_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/rpc.h"

#define QV_BREAKER_FAILURES 5       /* consecutive failures of a shard that open its breaker */
#define QV_BREAKER_COOLDOWN_MS 1000 /* how long an open breaker fails calls before it lets a probe through */
#define QV_SHARD_STALL_MIN_MS 200   /* bounds of the stall window: a shard at --shard-max-inflight that ended no */
#define QV_SHARD_STALL_MAX_MS 2000  /* call for its window is stalled (the window follows its answer times) */

typedef struct {
    char *ca_pem;             /* non-NULL: TLS to shards, verifying them with this CA */
    char *cert_pem, *key_pem; /* non-NULL: client certificate for shards that require one */
    char *api_key;            /* non-NULL: sent as `authorization: Bearer KEY` */
    int max_message_bytes;
    int64_t default_timeout_ns; /* deadline of a shard call when the client set none */
    int shard_max_inflight;     /* calls in flight to one shard server (--shard-max-inflight), at least 1 */
} qv_client_t;

typedef enum { QV_BREAKER_CLOSED, QV_BREAKER_OPEN, QV_BREAKER_HALF_OPEN } qv_breaker_t;

/* One shard server: its name (the static address, or the name it registered under in etcd), its address, a
 * channel to it, and its concurrency count and breaker (above). Reference counted: the shard map drops its
 * reference when the shard moves or leaves, and the channel is destroyed when the last request using it is done;
 * a shard that comes back on another address gets a new qv_shard_t and so a closed breaker. */
typedef struct qv_shard {
    char *name;
    char *addr;
    grpc_channel *ch;
    atomic_int refs;
    pthread_mutex_t mu;      /* guards the fields below; never held across a call */
    pthread_cond_t slot_cv;  /* CLOCK_MONOTONIC; broadcast when a call to the shard ends */
    int inflight;            /* calls to it started by this coordinator and not yet ended */
    qv_breaker_t breaker;
    uint32_t failures;       /* consecutive failures (reset by any answer) */
    bool probing;            /* half-open: the probe call is in flight */
    bool last_unavailable;   /* the last call that ended, ended UNAVAILABLE (no connection, or the shard said so) */
    int64_t opened_ns;       /* CLOCK_MONOTONIC: when the breaker last opened */
    int64_t progress_ns;     /* CLOCK_MONOTONIC: when a call to it last ended, or one began while none was in flight */
    int64_t srtt_ns;         /* smoothed duration of its answered calls (0: none yet) */
    int64_t rttvar_ns;       /* their smoothed mean deviation */
} qv_shard_t;

/* A shard's state for Health, read under its mutex without any network call. */
typedef struct {
    bool reachable;     /* breaker closed, the last call did not end UNAVAILABLE, and the channel is not in
                         * TRANSIENT_FAILURE (its last connection attempt failed) */
    const char *state;  /* "closed", "open", "half_open" (static strings) */
    uint32_t failures;  /* consecutive failures */
    uint32_t inflight;
} qv_shard_health_t;

/* A shard with one reference, or NULL on OOM. gRPC connects lazily, so this never fails for an unreachable
 * address; calls to it fail with UNAVAILABLE instead. */
qv_shard_t *qv_shard_open(const qv_client_t *cl, const char *name, const char *addr);
void qv_shard_ref(qv_shard_t *s);
void qv_shard_unref(qv_shard_t *s);
void qv_shard_health(qv_shard_t *s, qv_shard_health_t *out);

/* One outgoing unary call of a fan-out. */
typedef struct {
    /* in */
    qv_shard_t *shard;      /* NULL: no server for this shard (not registered): fails with UNAVAILABLE, no call */
    const char *name;       /* the shard's name, for messages and missing_shards */
    const char *method;     /* "/quiver.v1.Quiver/Search" */
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *resp_desc;
    bool may_miss;          /* the answer can do without this call (allow_partial): with a client deadline, the call
                             * ends a little before it, so that the coordinator still has time to answer partial */
    /* out */
    int status;             /* gRPC status code */
    const char *details;    /* status message (arena; "" when none) */
    ProtobufCMessage *resp; /* unpacked into the call's arena; non-NULL exactly when status is OK */
} qv_sub_t;

/* Runs the n calls concurrently and returns when every one has finished (answered, failed, timed out, refused by
 * the shard's breaker or concurrency limit without a call, or cancelled because the incoming call was). Results
 * and their strings live in ctx->arena. */
void qv_fanout(const qv_client_t *cl, qv_call_ctx_t *ctx, qv_sub_t *subs, size_t n);

/* A protobuf-c allocator drawing from an arena (free is a no-op), so unpacked shard answers live exactly as long
 * as the incoming call and can be linked into its response without copies. */
void qv_arena_pb_allocator(qv_arena_t *a, ProtobufCAllocator *out);

#endif
