/* Turning the outcomes of a fan-out into one answer; the rules are in coord_int.h. */
#include <grpc/status.h>
#include <stdio.h>
#include <string.h>

#include "server/coord/coord_int.h"
#include "server/status.h"

bool qv_sub_failed(const qv_sub_t *s)
{
    switch (s->status) {
    case GRPC_STATUS_OK:
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_NOT_FOUND:
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_OUT_OF_RANGE:
        return false;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        /* the shard's backpressure ("server busy") is the shard failing; a size limit is the request's fault */
        return strstr(s->details, "server busy") != NULL;
    default:
        return true;
    }
}

int qv_outcome(qv_call_ctx_t *ctx, const qv_sub_t *subs, size_t n, bool allow_partial, const char ***missing,
               size_t *nmissing, const char *what, qv_err_t *err)
{
    if (nmissing)
        *nmissing = 0;
    size_t failed = 0;
    bool late = false;
    for (size_t i = 0; i < n; i++) {
        if (subs[i].status == GRPC_STATUS_OK)
            continue;
        if (!qv_sub_failed(&subs[i]))
            return qv_err_set(err, qv_code_of_status(subs[i].status), "%s", subs[i].details);
        failed++;
        late |= subs[i].status == GRPC_STATUS_DEADLINE_EXCEEDED;
    }
    if (!failed)
        return QV_OK;
    if (atomic_load(&ctx->cancelled))
        return qv_err_set(err, QV_ECANCELLED, "the client cancelled the call");
    if (allow_partial && missing && failed < n) { /* with every shard failed there is nothing to answer */
        const char **names = qv_arena_array(&ctx->arena, failed, sizeof *names);
        if (!names)
            return qv_err_set(err, QV_ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (subs[i].status != GRPC_STATUS_OK)
                names[k++] = subs[i].name;
        *missing = names;
        *nmissing = k;
        return QV_OK;
    }
    /* "<what>: shard(s) a, b unavailable (a: <its message>)": QV_ERR_MSG_MAX has room for a shard's message (gRPC's
     * connection errors run to ~200 bytes) with a few names, so nothing is cut mid-word */
    char names[256] = "", first[600] = "";
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (subs[i].status == GRPC_STATUS_OK)
            continue;
        if (!first[0])
            snprintf(first, sizeof first, "%s: %s", subs[i].name, subs[i].details);
        int w = snprintf(names + off, sizeof names - off, "%s%s", off ? ", " : "", subs[i].name);
        if (w < 0 || (size_t)w >= sizeof names - off) {
            names[off] = '\0'; /* snprintf left the part that fitted: a name is listed whole or not at all */
            break;
        }
        off += (size_t)w;
    }
    if (late)
        return qv_err_set(err, QV_ETIMEDOUT, "%s: deadline exceeded waiting for shard(s) %s (%s)", what, names,
                          first);
    return qv_err_set(err, QV_EUNAVAIL, "%s: shard(s) %s unavailable (%s)", what, names, first);
}

qv_sub_t *qv_subs_same(qv_call_ctx_t *ctx, const char **names, qv_shard_t **shards, size_t n, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc)
{
    qv_sub_t *subs = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *subs);
    for (size_t i = 0; subs && i < n; i++) {
        subs[i].shard = shards[i];
        subs[i].name = names[i];
        subs[i].method = method;
        subs[i].req = req;
        subs[i].resp_desc = resp_desc;
    }
    return subs;
}

int qv_fan_members(qv_coord_t *co, qv_call_ctx_t *ctx, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *rd, qv_sub_t **out, const char ***names, size_t *n,
                   const char ***missing, size_t *nmissing, const char *what, qv_err_t *err)
{
    const char **nm;
    qv_shard_t **shards;
    int rc = qv_members_get(co, ctx, &nm, &shards, n, err);
    if (rc)
        return rc;
    qv_sub_t *subs = qv_subs_same(ctx, nm, shards, *n, method, req, rd);
    if (subs) {
        for (size_t i = 0; missing && i < *n; i++)
            subs[i].may_miss = true;
        qv_fanout(&co->client, ctx, subs, *n);
        rc = qv_outcome(ctx, subs, *n, missing != NULL, missing, nmissing, what, err);
    } else {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    qv_members_release(shards, *n);
    *out = subs;
    if (names)
        *names = nm;
    return rc;
}
