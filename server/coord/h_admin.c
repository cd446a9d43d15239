/* Coordinator handlers that describe and administer: ListCollections, DescribeCollection, Admin.Health, Stats,
 * Flush, Compact. Descriptions merge the shards' answers: the schema from the first shard, the logical shard count
 * from the coordinator's metadata, live rows and WAL bytes summed, segments listed from every shard (segment ids are
 * per shard and may repeat). Stats adds the shards' memory and WAL figures; Flush and Compact reach every shard of
 * the collection (every shard when Flush names none). */
#include <grpc/status.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/grpc_health.h"
#include "server/reflection.h"
#include "server/metrics.h"
#include "server/coord/coord_int.h"

#define RESP(type, init, var)                               \
    type *var = qv_arena_alloc(&ctx->arena, sizeof *var);   \
    if (!var)                                               \
        return qv_err_set(err, QV_ENOMEM, "out of memory"); \
    init(var)

/* Merges the same collection's descriptions from n shards (NULL entries skipped) into a new info (arena). */
static Quiver__V1__CollectionInfo *merge_infos(qv_call_ctx_t *ctx, Quiver__V1__CollectionInfo *const *infos,
                                               size_t n)
{
    Quiver__V1__CollectionInfo *ci = NULL;
    size_t nseg = 0;
    for (size_t i = 0; i < n; i++)
        if (infos[i]) {
            if (!ci) {
                if (!(ci = qv_arena_alloc(&ctx->arena, sizeof *ci)))
                    return NULL;
                *ci = *infos[i];
                ci->live_rows = ci->wal_bytes = 0;
            }
            nseg += infos[i]->n_segments;
        }
    if (!ci)
        return NULL;
    ci->segments = qv_arena_array(&ctx->arena, nseg ? nseg : 1, sizeof *ci->segments);
    if (!ci->segments)
        return NULL;
    ci->n_segments = 0;
    for (size_t i = 0; i < n; i++) {
        if (!infos[i])
            continue;
        ci->live_rows += infos[i]->live_rows;
        ci->wal_bytes += infos[i]->wal_bytes;
        for (size_t s = 0; s < infos[i]->n_segments; s++)
            ci->segments[ci->n_segments++] = infos[i]->segments[s];
    }
    return ci;
}

/* Union by name of the collections listed by n shards, in order of first appearance (shard order). */
static int merge_lists(qv_call_ctx_t *ctx, Quiver__V1__CollectionInfo **const *lists, const size_t *counts, size_t n,
                       Quiver__V1__CollectionInfo ***out, size_t *nout)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += counts[i];
    const char **names = qv_arena_array(&ctx->arena, total ? total : 1, sizeof *names);
    Quiver__V1__CollectionInfo **res = qv_arena_array(&ctx->arena, total ? total : 1, sizeof *res);
    Quiver__V1__CollectionInfo **same = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *same);
    if (!names || !res || !same)
        return QV_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < counts[i]; c++) {
            const char *name = lists[i][c]->name;
            size_t j = 0;
            while (j < k && strcmp(names[j], name) != 0)
                j++;
            if (j == k)
                names[k++] = name;
        }
    for (size_t j = 0; j < k; j++) {
        for (size_t i = 0; i < n; i++) {
            same[i] = NULL;
            for (size_t c = 0; c < counts[i] && !same[i]; c++)
                if (strcmp(lists[i][c]->name, names[j]) == 0)
                    same[i] = lists[i][c];
        }
        if (!(res[j] = merge_infos(ctx, same, n)))
            return QV_ENOMEM;
    }
    *out = res;
    *nout = k;
    return QV_OK;
}

/* ListCollections answers from the shards that answer (every collection spans every shard server in static mode,
 * and in etcd mode a collection is listed by each server that holds part of it), naming the others in
 * missing_shards; it fails only when none answers. */
static int h_list(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_sub_t *subs = NULL;
    size_t n, nmissing = 0;
    const char **missing = NULL;
    int rc = qv_fan_members(a, ctx, "/quiver.v1.Quiver/ListCollections", msg,
                            &quiver__v1__list_collections_response__descriptor, &subs, NULL, &n, &missing, &nmissing,
                            "list", err);
    if (rc)
        return rc;
    Quiver__V1__CollectionInfo ***lists = qv_arena_array(&ctx->arena, n, sizeof *lists);
    size_t *counts = qv_arena_array(&ctx->arena, n, sizeof *counts);
    RESP(Quiver__V1__ListCollectionsResponse, quiver__v1__list_collections_response__init, r);
    if (!lists || !counts)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__ListCollectionsResponse *p = (const void *)subs[i].resp;
        lists[i] = p ? p->collections : NULL;
        counts[i] = p ? p->n_collections : 0;
    }
    r->missing_shards = (char **)missing;
    r->n_missing_shards = nmissing;
    if (merge_lists(ctx, (Quiver__V1__CollectionInfo **const *)lists, counts, n, &r->collections, &r->n_collections))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    *resp = &r->base;
    return QV_OK;
}

static int h_describe(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                      qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__DescribeCollectionRequest *req = (const void *)msg;
    const char **missing = NULL;
    size_t nmissing = 0;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->name, &rt, err);
    if (rc)
        return rc;
    qv_sub_t *subs = qv_subs_same(ctx, rt.names, rt.shards, rt.nservers, "/quiver.v1.Quiver/DescribeCollection", msg,
                                  &quiver__v1__describe_collection_response__descriptor);
    Quiver__V1__CollectionInfo **infos = qv_arena_array(&ctx->arena, rt.nservers, sizeof *infos);
    Quiver__V1__DescribeCollectionResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    if (!subs || !infos || !r) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < rt.nservers; i++)
            subs[i].may_miss = true;
        qv_fanout(&co->client, ctx, subs, rt.nservers);
        rc = qv_outcome(ctx, subs, rt.nservers, true, &missing, &nmissing, "describe", err);
        if (rc == QV_ENOTFOUND)
            qv_meta_invalidate(co, req->name);
    }
    if (rc == QV_OK) {
        for (size_t i = 0; i < rt.nservers; i++) /* a missing shard's part is left out (merge_infos skips NULL) */
            infos[i] = subs[i].resp ? ((const Quiver__V1__DescribeCollectionResponse *)subs[i].resp)->collection
                                    : NULL;
        quiver__v1__describe_collection_response__init(r);
        r->missing_shards = (char **)missing;
        r->n_missing_shards = nmissing;
        if (!(r->collection = merge_infos(ctx, infos, rt.nservers)))
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        else
            r->collection->shards = rt.meta->nshards;
    }
    qv_route_release(&rt);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

/* Health reports every member as this coordinator sees it (breaker state, failures, calls in flight) without
 * calling any shard, so it answers at once even while a shard hangs. It says NOT_SERVING only when no shard is
 * reachable at all: a cluster with some shards down still serves (allow_partial reads, writes to the others). */
static int h_health(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                    qv_err_t *err)
{
    qv_coord_t *co = a;
    (void)msg;
    RESP(Quiver__V1__HealthResponse, quiver__v1__health_response__init, r);
    r->status = QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING;
    r->version = QV_COORD_VERSION;
    r->role = "coordinator";
    *resp = &r->base;
    const char **names;
    qv_shard_t **shards;
    size_t n;
    qv_err_t merr;
    int rc = qv_members_get(co, ctx, &names, &shards, &n, &merr);
    if (rc == QV_ENOMEM)
        return qv_err_set(err, rc, "%s", merr.msg);
    if (rc) { /* no member: no shard map yet, or none registered */
        r->status = QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_NOT_SERVING;
        r->reason = qv_arena_strndup(&ctx->arena, merr.msg, strlen(merr.msg));
        if (!r->reason)
            return qv_err_set(err, QV_ENOMEM, "out of memory");
        return QV_OK;
    }
    Quiver__V1__ShardHealth *sh = qv_arena_array(&ctx->arena, n, sizeof *sh);
    r->shards = qv_arena_array(&ctx->arena, n, sizeof *r->shards);
    size_t reachable = 0;
    for (size_t i = 0; sh && r->shards && i < n; i++) {
        qv_shard_health_t h;
        qv_shard_health(shards[i], &h);
        quiver__v1__shard_health__init(&sh[i]);
        sh[i].name = (char *)names[i];
        sh[i].address = qv_arena_strndup(&ctx->arena, shards[i]->addr, strlen(shards[i]->addr));
        sh[i].reachable = h.reachable;
        sh[i].state = (char *)h.state;
        sh[i].consecutive_failures = h.failures;
        sh[i].inflight = h.inflight;
        r->shards[i] = &sh[i];
        reachable += h.reachable;
        if (!sh[i].address)
            sh = NULL;
    }
    qv_members_release(shards, n);
    if (!sh || !r->shards)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    r->n_shards = n;
    if (!reachable) {
        char reason[200];
        snprintf(reason, sizeof reason,
                 "none of the %zu shard servers is reachable: each has its breaker open or half-open, or its last "
                 "call ended UNAVAILABLE (see shards)", n);
        r->status = QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_NOT_SERVING;
        if (!(r->reason = qv_arena_strndup(&ctx->arena, reason, strlen(reason))))
            return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    return QV_OK;
}

static int h_stats(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    qv_sub_t *subs = NULL;
    size_t n;
    int rc = qv_fan_members(co, ctx, "/quiver.v1.Admin/Stats", msg, &quiver__v1__stats_response__descriptor, &subs,
                            NULL, &n, NULL, NULL, "stats", err);
    if (rc)
        return rc;
    RESP(Quiver__V1__StatsResponse, quiver__v1__stats_response__init, r);
    Quiver__V1__CollectionInfo ***lists = qv_arena_array(&ctx->arena, n, sizeof *lists);
    size_t *counts = qv_arena_array(&ctx->arena, n, sizeof *counts), njobs = 0;
    if (!lists || !counts)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    r->resident_bytes = qv_resident_bytes(); /* the coordinator's own, plus every shard's below */
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__StatsResponse *p = (const void *)subs[i].resp;
        lists[i] = p->collections;
        counts[i] = p->n_collections;
        r->wal_bytes += p->wal_bytes;
        r->resident_bytes += p->resident_bytes;
        r->vector_bytes += p->vector_bytes;
        njobs += p->n_compactions;
        if (i == 0)
            r->simd = p->simd;
    }
    r->compactions = qv_arena_array(&ctx->arena, njobs ? njobs : 1, sizeof *r->compactions);
    if (!r->compactions || merge_lists(ctx, (Quiver__V1__CollectionInfo **const *)lists, counts, n,
                                       &r->collections, &r->n_collections))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__StatsResponse *p = (const void *)subs[i].resp;
        for (size_t j = 0; j < p->n_compactions; j++)
            r->compactions[r->n_compactions++] = p->compactions[j];
    }
    r->uptime_seconds = (uint64_t)((qv_mono_ns() - co->started_ns) / 1000000000);
    *resp = &r->base;
    return QV_OK;
}

static int h_flush(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__FlushRequest *req = (const void *)msg;
    qv_sub_t *subs = NULL;
    size_t n = 0;
    int rc;
    if (!req->collection[0]) {
        rc = qv_fan_members(co, ctx, "/quiver.v1.Admin/Flush", msg, &quiver__v1__flush_response__descriptor, &subs,
                            NULL, &n, NULL, NULL, "flush", err);
    } else {
        qv_route_t rt;
        if ((rc = qv_route(co, ctx, req->collection, &rt, err)) != QV_OK)
            return rc;
        n = rt.nservers;
        subs = qv_subs_same(ctx, rt.names, rt.shards, n, "/quiver.v1.Admin/Flush", msg,
                            &quiver__v1__flush_response__descriptor);
        if (subs) {
            qv_fanout(&co->client, ctx, subs, n);
            rc = qv_outcome(ctx, subs, n, false, NULL, NULL, "flush", err);
        } else {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        }
        qv_route_release(&rt);
    }
    if (rc)
        return rc;
    RESP(Quiver__V1__FlushResponse, quiver__v1__flush_response__init, r);
    for (size_t i = 0; i < n; i++)
        r->sealed_segments += ((const Quiver__V1__FlushResponse *)subs[i].resp)->sealed_segments;
    *resp = &r->base;
    return QV_OK;
}

static int h_compact(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                     qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__CompactRequest *req = (const void *)msg;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    size_t n = rt.nservers;
    qv_sub_t *subs = qv_subs_same(ctx, rt.names, rt.shards, n, "/quiver.v1.Admin/Compact", msg,
                                  &quiver__v1__compact_response__descriptor);
    if (subs) {
        qv_fanout(&co->client, ctx, subs, n);
        rc = qv_outcome(ctx, subs, n, false, NULL, NULL, "compact", err);
    } else {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    qv_route_release(&rt);
    if (rc)
        return rc;
    RESP(Quiver__V1__CompactResponse, quiver__v1__compact_response__init, r);
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__CompactResponse *p = (const void *)subs[i].resp;
        if (!r->job_id)
            r->job_id = p->job_id; /* job ids are per shard: the first shard's that started one */
        r->input_segments += p->input_segments;
    }
    *resp = &r->base;
    return QV_OK;
}

/* Embedding needs no data: a coordinator with a model embeds itself; one without asks the first shard that answers. */
static int h_embed(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    if (co->cfg->embedder)
        return qv_embed_serve(co->cfg->embedder, &ctx->arena, msg, resp, err);
    const char **names;
    qv_shard_t **shards;
    size_t n;
    int rc = qv_members_get(co, ctx, &names, &shards, &n, err);
    if (rc)
        return rc;
    qv_sub_t *subs = qv_subs_same(ctx, names, shards, n, "/quiver.v1.Quiver/Embed", msg,
                                  &quiver__v1__embed_response__descriptor);
    rc = subs ? QV_EUNAVAIL : qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; subs && i < n; i++) {
        qv_fanout(&co->client, ctx, &subs[i], 1);
        if (!qv_sub_failed(&subs[i]) || i + 1 == n) {
            rc = qv_outcome(ctx, &subs[i], 1, false, NULL, NULL, "embed", err);
            *resp = subs[i].resp;
            break;
        }
    }
    qv_members_release(shards, n);
    return rc;
}

static int h_grpc_health(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                         qv_err_t *err)
{
    return qv_grpc_health_check(h_health, a, ctx, msg, resp, err);
}

static int h_grpc_health_watch(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                               qv_err_t *err)
{
    return qv_grpc_health_watch(h_health, a, ctx, msg, resp, err);
}

const qv_handler_t qv_coord_admin_handlers[] = {
    {"Quiver/Embed", h_embed, QV_ROLE_READ},
    {"Quiver/ListCollections", h_list, QV_ROLE_READ},
    {"Quiver/DescribeCollection", h_describe, QV_ROLE_READ},
    {"Admin/Health", h_health, QV_ROLE_PUBLIC},
    {"Health/Check", h_grpc_health, QV_ROLE_PUBLIC},
    {"Health/Watch", h_grpc_health_watch, QV_ROLE_PUBLIC},
    {"ServerReflection/ServerReflectionInfo", qv_reflection_info, QV_ROLE_READ},
    {"Admin/Stats", h_stats, QV_ROLE_READ},
    {"Admin/Flush", h_flush, QV_ROLE_ADMIN},
    {"Admin/Compact", h_compact, QV_ROLE_ADMIN},
    {NULL, NULL, 0},
};
