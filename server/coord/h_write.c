/* Coordinator handlers that change state: CreateCollection, DropCollection, Upsert, Delete.
 *
 * Create and drop reach every shard and are idempotent per shard: a shard that already has the collection with the
 * same schema (checked with DescribeCollection, before creating anything) or no longer has it on drop counts as
 * done, so retrying a create or drop that failed half-way converges. The client sees what a standalone server would answer: ALREADY_EXISTS when
 * every shard had the collection before the call, NOT_FOUND when none had it, UNAVAILABLE naming the shards that
 * could not be reached otherwise.
 *
 * Upsert validates the whole batch first with the cached schema and the same library code as a standalone server
 * (so a rejected batch writes nothing, and messages name points by their position in the client's request), then
 * splits it by logical shard (XXH3 of the id modulo S) and sends the parts in parallel. Each part is all-or-nothing
 * on its shard; the whole is not atomic across shards: when some parts fail the client gets UNAVAILABLE naming
 * those shards, the other parts are written, and retrying the whole request is safe because upsert is
 * idempotent. Delete splits the same way. */
#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/convert.h"
#include "server/coord/coord_int.h"
#include "server/embedder.h"
#include "server/log.h"

#define RESP(type, init, var)                               \
    type *var = qv_arena_alloc(&ctx->arena, sizeof *var);   \
    if (!var)                                               \
        return qv_err_set(err, QV_ENOMEM, "out of memory"); \
    init(var)

static bool same_schema(const qv_schema_t *a, const qv_schema_t *b)
{
    if (a->dim != b->dim || a->metric != b->metric || a->shards != b->shards || a->index_kind != b->index_kind ||
        a->hnsw_m != b->hnsw_m || a->hnsw_efc != b->hnsw_efc || a->embed != b->embed || a->nfields != b->nfields ||
        a->quant != b->quant || a->dynamic != b->dynamic ||
        (b->pq_m && a->pq_m != b->pq_m)) /* b: the request, whose pq_m 0 lets the shard choose */
        return false;
    for (int i = 0; i < a->nfields; i++)
        if (strcmp(a->fields[i].name, b->fields[i].name) != 0 || a->fields[i].type != b->fields[i].type)
            return false;
    return true;
}

enum { ABSENT, SAME, DIFFERENT };

/* Describes the collection on the servers idx[0..m) and sets state[idx[k]] (ABSENT / SAME / DIFFERENT schema);
 * fails with UNAVAILABLE naming the servers that could not answer. */
static int survey(qv_coord_t *co, qv_call_ctx_t *ctx, const char *name, const qv_schema_t *want, const char **names,
                  qv_shard_t **shards, const size_t *idx, size_t m, int *state, qv_err_t *err)
{
    Quiver__V1__DescribeCollectionRequest dreq = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    dreq.name = (char *)name;
    qv_sub_t *subs = qv_arena_array(&ctx->arena, m ? m : 1, sizeof *subs);
    if (!subs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t k = 0; k < m; k++)
        subs[k] = (qv_sub_t){.shard = shards[idx[k]], .name = names[idx[k]],
                             .method = "/quiver.v1.Quiver/DescribeCollection", .req = &dreq.base,
                             .resp_desc = &quiver__v1__describe_collection_response__descriptor};
    qv_fanout(&co->client, ctx, subs, m);
    for (size_t k = 0; k < m; k++) {
        if (subs[k].status == GRPC_STATUS_NOT_FOUND) {
            state[idx[k]] = ABSENT;
            subs[k].status = GRPC_STATUS_OK;
        } else if (subs[k].status == GRPC_STATUS_OK) {
            const Quiver__V1__DescribeCollectionResponse *r = (const void *)subs[k].resp;
            qv_schema_t *have = qv_schema_of_info(r->collection);
            state[idx[k]] = have && same_schema(have, want) ? SAME : DIFFERENT;
            free(have);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "collection '%.64s' not created (retry CreateCollection)", name);
    return qv_outcome(ctx, subs, m, false, NULL, NULL, what, err);
}

/* Creates the collection (req carries shards = S) on the n servers that do not have it yet. First every server is
 * asked what it has, so that nothing is created when one is unreachable or holds the name with another schema;
 * then the missing ones are created (a server that answers ALREADY_EXISTS meanwhile is surveyed again). On QV_OK,
 * *existed counts the servers that already had it with the same schema. */
static int create_on(qv_coord_t *co, qv_call_ctx_t *ctx, const Quiver__V1__CreateCollectionRequest *req,
                     const qv_schema_t *want, const char **names, qv_shard_t **shards, size_t n, size_t *existed,
                     qv_err_t *err)
{
    int *state = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *state);
    size_t *idx = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *idx);
    qv_sub_t *subs = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *subs);
    if (!state || !idx || !subs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    int rc = survey(co, ctx, req->name, want, names, shards, idx, n, state, err);
    size_t m = 0;
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        if (state[i] == DIFFERENT)
            return qv_err_set(err, QV_EEXIST, "collection '%s' already exists", want->name);
        if (state[i] == ABSENT)
            subs[m++] = (qv_sub_t){.shard = shards[i], .name = names[i],
                                   .method = "/quiver.v1.Quiver/CreateCollection", .req = &req->base,
                                   .resp_desc = &quiver__v1__create_collection_response__descriptor};
    }
    if (rc)
        return rc;
    *existed = n - m;
    qv_fanout(&co->client, ctx, subs, m);
    size_t raced = 0;
    for (size_t k = 0; k < m; k++) /* created by someone else between the survey and the create */
        if (subs[k].status == GRPC_STATUS_ALREADY_EXISTS) {
            for (size_t i = 0; i < n; i++)
                if (shards[i] == subs[k].shard && names[i] == subs[k].name)
                    idx[raced++] = i;
            subs[k].status = GRPC_STATUS_OK;
        }
    if (raced && (rc = survey(co, ctx, req->name, want, names, shards, idx, raced, state, err)) != QV_OK)
        return rc;
    for (size_t k = 0; k < raced; k++) {
        if (state[idx[k]] != SAME)
            return qv_err_set(err, QV_EEXIST, "collection '%s' already exists", want->name);
        (*existed)++;
    }
    char what[160];
    snprintf(what, sizeof what, "collection '%.64s' not created on every shard (retry CreateCollection to complete it)",
             req->name);
    return qv_outcome(ctx, subs, m, false, NULL, NULL, what, err);
}

static int create_static(qv_coord_t *co, qv_call_ctx_t *ctx, Quiver__V1__CreateCollectionRequest *req,
                         const qv_schema_t *want, const char **names, qv_shard_t **shards, size_t n, qv_err_t *err)
{
    size_t existed;
    int rc = create_on(co, ctx, req, want, names, shards, n, &existed, err);
    qv_meta_invalidate(co, req->name);
    if (rc == QV_OK && existed == n)
        return qv_err_set(err, QV_EEXIST, "collection '%s' already exists", want->name);
    return rc;
}

/* etcd: the record is written first (state "creating", with the assignment), then the shards, then the record is
 * marked ready. A retry finds the record in "creating" and completes it with the recorded assignment. */
static int create_etcd(qv_coord_t *co, qv_call_ctx_t *ctx, Quiver__V1__CreateCollectionRequest *req,
                       qv_schema_t *want, const char **names, size_t n, qv_err_t *err)
{
    qv_schema_t *copy = malloc(qv_schema_size(want->nfields));
    if (!copy)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    memcpy(copy, want, qv_schema_size(want->nfields));
    qv_cmeta_t *m = qv_cmeta_new(want->name, copy);
    if (!m || !(m->assign = calloc(m->nshards, sizeof *m->assign))) {
        qv_cmeta_unref(m);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    for (uint32_t j = 0; j < m->nshards; j++)
        if (!(m->assign[j] = strdup(names[j % n]))) {
            qv_cmeta_unref(m);
            return qv_err_set(err, QV_ENOMEM, "out of memory");
        }
    m->ready = false;
    char key[512];
    qv_meta_key(co, want->name, key, sizeof key);
    char *json = qv_meta_encode(m, "creating");
    bool created = false;
    int rc = json ? qv_etcd_create(co->etcd, key, json, strlen(json), &created, err)
                  : qv_err_set(err, QV_ENOMEM, "out of memory");
    free(json);
    if (rc == QV_OK && !created) {
        qv_cmeta_t *old = NULL;
        rc = qv_meta_fetch(co, want->name, &old, err);
        if (rc == QV_OK && !old)
            rc = qv_err_set(err, QV_EUNAVAIL, "collection '%s' is being dropped concurrently; retry", want->name);
        if (rc == QV_OK) {
            if (req->shards == 0)
                want->shards = old->schema->shards; /* "the number of shard servers" was decided by the first try */
            if (!same_schema(old->schema, want) || old->ready) {
                rc = qv_err_set(err, QV_EEXIST, "collection '%s' already exists", want->name);
                qv_cmeta_unref(old);
            } else {
                qv_cmeta_unref(m);
                m = old; /* complete the earlier, half-done create */
                req->shards = m->nshards;
            }
        }
    }
    if (rc) {
        qv_cmeta_unref(m);
        return rc;
    }
    qv_route_t rt;
    atomic_fetch_add(&m->refs, 1);
    if ((rc = qv_route_of(co, ctx, m, &rt, err)) != QV_OK) {
        qv_cmeta_unref(m);
        return rc;
    }
    size_t existed;
    rc = create_on(co, ctx, req, m->schema, rt.names, rt.shards, rt.nservers, &existed, err);
    qv_route_release(&rt);
    if (rc == QV_OK) {
        m->ready = true; /* not yet published: only this call holds m */
        json = qv_meta_encode(m, "ready");
        rc = json ? qv_etcd_put(co->etcd, key, json, strlen(json), 0, err)
                  : qv_err_set(err, QV_ENOMEM, "out of memory");
        free(json);
        if (rc == QV_OK)
            qv_meta_put(co, m);
    }
    qv_cmeta_unref(m);
    return rc;
}

static int h_create(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    Quiver__V1__CreateCollectionRequest req = *(const Quiver__V1__CreateCollectionRequest *)msg;
    qv_schema_t *want;
    int rc = qv_conv_schema(&req, &want, err); /* the standalone server's validation and messages */
    if (rc)
        return rc;
    const char **names;
    qv_shard_t **shards;
    size_t n;
    if ((rc = qv_members_get(co, ctx, &names, &shards, &n, err)) != QV_OK) {
        free(want);
        return rc;
    }
    if (req.shards == 0) /* 0: one logical shard per shard server */
        req.shards = want->shards = (uint32_t)(n < QV_SHARDS_MAX ? n : QV_SHARDS_MAX);
    rc = co->etcd ? create_etcd(co, ctx, &req, want, names, n, err)
                  : create_static(co, ctx, &req, want, names, shards, n, err);
    qv_members_release(shards, n);
    if (rc == QV_OK)
        qv_log(QV_LOG_INFO, "cluster.create", "collection=%s shards=%u", want->name, want->shards);
    free(want);
    if (rc)
        return rc;
    RESP(Quiver__V1__CreateCollectionResponse, quiver__v1__create_collection_response__init, r);
    *resp = &r->base;
    return QV_OK;
}

/* Drops on the n servers; NOT_FOUND counts as done. *had counts the servers that had the collection. */
static int drop_on(qv_coord_t *co, qv_call_ctx_t *ctx, const Quiver__V1__DropCollectionRequest *req,
                   const char **names, qv_shard_t **shards, size_t n, size_t *had, const char **notfound_msg,
                   qv_err_t *err)
{
    qv_sub_t *subs = qv_subs_same(ctx, names, shards, n, "/quiver.v1.Quiver/DropCollection", &req->base,
                                  &quiver__v1__drop_collection_response__descriptor);
    if (!subs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    qv_fanout(&co->client, ctx, subs, n);
    *had = 0;
    *notfound_msg = NULL;
    for (size_t i = 0; i < n; i++) {
        if (subs[i].status == GRPC_STATUS_NOT_FOUND) {
            if (!*notfound_msg)
                *notfound_msg = subs[i].details;
            subs[i].status = GRPC_STATUS_OK;
        } else if (subs[i].status == GRPC_STATUS_OK) {
            (*had)++;
        }
    }
    char what[160];
    snprintf(what, sizeof what, "collection '%.64s' not dropped on every shard (retry DropCollection to complete it)",
             req->name);
    return qv_outcome(ctx, subs, n, false, NULL, NULL, what, err);
}

static int h_drop(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__DropCollectionRequest *req = (const void *)msg;
    size_t had = 0;
    const char *notfound = NULL;
    int rc;
    qv_cmeta_t *m = NULL;
    if (co->etcd && req->name[0] && strlen(req->name) <= QV_NAME_MAX &&
        (rc = qv_meta_fetch(co, req->name, &m, err)) != QV_OK)
        return rc;
    if (m) { /* etcd: drop where the record says the collection lives, then delete the record */
        qv_route_t rt;
        if ((rc = qv_route_of(co, ctx, m, &rt, err)) != QV_OK)
            return rc;
        rc = drop_on(co, ctx, req, rt.names, rt.shards, rt.nservers, &had, &notfound, err);
        qv_route_release(&rt);
        char key[512];
        qv_meta_key(co, req->name, key, sizeof key);
        if (rc == QV_OK)
            rc = qv_etcd_delete(co->etcd, key, err);
        if (rc == QV_OK)
            qv_meta_remove(co, req->name);
    } else { /* static, or no record: every shard (which also cleans up leftovers) */
        const char **names;
        qv_shard_t **shards;
        size_t n;
        if ((rc = qv_members_get(co, ctx, &names, &shards, &n, err)) != QV_OK)
            return rc;
        rc = drop_on(co, ctx, req, names, shards, n, &had, &notfound, err);
        qv_members_release(shards, n);
        qv_meta_invalidate(co, req->name);
        if (rc == QV_OK && had == 0 && notfound)
            return qv_err_set(err, QV_ENOTFOUND, "%s", notfound);
    }
    if (rc)
        return rc;
    qv_log(QV_LOG_INFO, "cluster.drop", "collection=%s", req->name);
    RESP(Quiver__V1__DropCollectionResponse, quiver__v1__drop_collection_response__init, r);
    *resp = &r->base;
    return QV_OK;
}

/* Groups request items by server: srv[i] is item i's server; counts[s] the items of server s. */
static int split(qv_call_ctx_t *ctx, const qv_route_t *rt, const char *(*id_of)(const void *, size_t),
                 const void *items, size_t n, uint32_t **srv, size_t **counts, qv_err_t *err)
{
    *srv = qv_arena_array(&ctx->arena, n ? n : 1, sizeof **srv);
    *counts = qv_arena_array(&ctx->arena, rt->nservers, sizeof **counts);
    if (!*srv || !*counts)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        (*srv)[i] = rt->server_of[qv_shard_of(id_of(items, i), rt->meta->nshards)];
        (*counts)[(*srv)[i]]++;
    }
    return QV_OK;
}

static const char *point_id(const void *items, size_t i) { return ((Quiver__V1__Point *const *)items)[i]->id; }
static const char *str_id(const void *items, size_t i) { return ((char *const *)items)[i]; }

int qv_coord_split_ids(qv_call_ctx_t *ctx, const qv_route_t *rt, char *const *ids, size_t n, uint32_t **srv,
                       size_t **counts, qv_err_t *err)
{
    return split(ctx, rt, str_id, ids, n, srv, counts, err);
}

/* A collection with an embedding model takes points with text instead of a vector. What decides whether such a
 * request is accepted is checked here, over the whole request, before anything is sent, so that it is refused whole
 * or written whole (never one shard refusing its share while the others write theirs): a point without a vector
 * must have text in a collection with a model, and the texts together must pass the embedder's limits
 * (qv_embed_text_points: the list and messages of a standalone server). A coordinator with a model then embeds them
 * here, once (qv_embed_points; the shards get vector and text, and need no model); one without leaves it to the
 * shards, validating the rest with a unit vector standing in for the one the shard will compute. pts are validation
 * copies; the shards get the request's own points, with the computed vectors put in (embedded_points). */
static int check_text_points(qv_coord_t *co, qv_call_ctx_t *ctx, const qv_schema_t *s, qv_point_t *pts, size_t n,
                             qv_err_t *err)
{
    if (co->cfg->embedder)
        return qv_embed_points(co->cfg->embedder, &ctx->arena, s, pts, n, err);
    const char **texts;
    size_t *lens, want;
    int rc = qv_embed_text_points(&ctx->arena, s, pts, n, &texts, &lens, &want, err);
    if (rc || !want)
        return rc;
    float *unit = qv_arena_array(&ctx->arena, s->dim, sizeof *unit);
    if (!unit)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    memset(unit, 0, s->dim * sizeof *unit);
    unit[0] = 1.0f;
    for (size_t i = 0; i < n; i++)
        if (!pts[i].nvector) {
            pts[i].vector = unit; /* validation reads it (COSINE: normalising a unit vector leaves it as it is) */
            pts[i].nvector = s->dim;
        }
    return QV_OK;
}

static int h_upsert(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__UpsertRequest *req = (const void *)msg;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    const qv_schema_t *s = rt.meta->schema;
    size_t n = req->n_points;
    qv_point_t *pts;
    rc = qv_conv_points(&ctx->arena, s, req->points, n, &pts, err);
    /* validation normalises COSINE vectors in place: validate copies, send what the client sent (the shard
     * normalises it once, exactly as a standalone server would) */
    for (size_t i = 0; rc == QV_OK && s->metric == QV_METRIC_COSINE && i < n; i++) {
        float *v = qv_arena_array(&ctx->arena, pts[i].nvector ? pts[i].nvector : 1, sizeof *v);
        if (!v)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        else
            pts[i].vector = memcpy(v, pts[i].vector, pts[i].nvector * sizeof *v);
    }
    if (rc == QV_OK)
        rc = check_text_points(co, ctx, s, pts, n, err);
    if (rc == QV_OK)
        rc = qv_points_validate(s, pts, (uint32_t)n, err);
    uint32_t *srv;
    size_t *counts;
    if (rc == QV_OK)
        rc = split(ctx, &rt, point_id, req->points, n, &srv, &counts, err);
    size_t nsub = 0;
    qv_sub_t *subs = NULL;
    if (rc == QV_OK && n) {
        subs = qv_arena_array(&ctx->arena, rt.nservers, sizeof *subs);
        Quiver__V1__UpsertRequest *parts = qv_arena_array(&ctx->arena, rt.nservers, sizeof *parts);
        if (!subs || !parts)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        for (size_t k = 0; rc == QV_OK && k < rt.nservers; k++) {
            quiver__v1__upsert_request__init(&parts[k]);
            if (!counts[k])
                continue;
            parts[k].collection = req->collection;
            if (!(parts[k].points = qv_arena_array(&ctx->arena, counts[k], sizeof *parts[k].points)))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            subs[nsub++] = (qv_sub_t){.shard = rt.shards[k], .name = rt.names[k],
                                      .method = "/quiver.v1.Quiver/Upsert", .req = &parts[k].base,
                                      .resp_desc = &quiver__v1__upsert_response__descriptor};
        }
        for (size_t i = 0; rc == QV_OK && i < n; i++) {
            Quiver__V1__UpsertRequest *p = &parts[srv[i]];
            Quiver__V1__Point *pt = req->points[i];
            if (co->cfg->embedder && pt->n_vector == 0) { /* embedded here: the shard gets the vector with the text */
                Quiver__V1__Point *copy = qv_arena_alloc(&ctx->arena, sizeof *copy);
                if (!copy) {
                    rc = qv_err_set(err, QV_ENOMEM, "out of memory");
                    break;
                }
                *copy = *pt;
                copy->vector = pts[i].vector;
                copy->n_vector = pts[i].nvector;
                pt = copy;
            }
            p->points[p->n_points++] = pt;
        }
    }
    uint64_t seq = 0;
    if (rc == QV_OK && nsub) {
        qv_fanout(&co->client, ctx, subs, nsub);
        char what[128];
        snprintf(what, sizeof what, "upsert of %zu points incomplete (the other shards' points were written; "
                 "retrying the whole request is safe)", n);
        rc = qv_outcome(ctx, subs, nsub, false, NULL, NULL, what, err);
        for (size_t k = 0; rc == QV_OK && k < nsub; k++) {
            const Quiver__V1__UpsertResponse *r = (const void *)subs[k].resp;
            if (r->seq > seq)
                seq = r->seq;
        }
        if (rc == QV_ENOTFOUND)
            qv_meta_invalidate(co, req->collection);
    }
    qv_route_release(&rt);
    if (rc)
        return rc;
    RESP(Quiver__V1__UpsertResponse, quiver__v1__upsert_response__init, r);
    r->count = (uint32_t)n;
    r->seq = seq; /* the largest of the shards' sequence numbers: each shard has its own log */
    *resp = &r->base;
    return QV_OK;
}

/* Delete and UpdateAttributes: a write naming points by ids or by a filter. Ids go to their shards, each shard
 * getting a copy of the request with its own ids (the `ids` field found through the descriptor, so one function
 * serves both messages); a filter goes to every shard unchanged. The answers' count (field 1 of the response) is
 * summed into *total. Atomic per shard, not across shards: `what` says so when some shards fail. */
static int write_named(qv_coord_t *co, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, const char *collection,
                       char **ids, size_t n, bool by_filter, const char *method, const ProtobufCMessageDescriptor *rd,
                       const char *what, uint32_t *total, qv_err_t *err)
{
    *total = 0;
    if (by_filter && n)
        return qv_err_set(err, QV_EINVAL, "give ids or a filter, not both");
    qv_route_t rt;
    int rc = qv_route(co, ctx, collection, &rt, err);
    if (rc)
        return rc;
    const ProtobufCMessageDescriptor *qd = msg->descriptor;
    const ProtobufCFieldDescriptor *fid = protobuf_c_message_descriptor_get_field_by_name(qd, "ids");
    uint32_t *srv = NULL;
    size_t *counts = NULL, nsub = 0;
    qv_sub_t *subs = NULL;
    if (!by_filter && (rc = qv_req_ids(ids, n, err)) == QV_OK)
        rc = split(ctx, &rt, str_id, ids, n, &srv, &counts, err);
    if (rc == QV_OK && (by_filter || n)) {
        subs = qv_arena_array(&ctx->arena, rt.nservers, sizeof *subs);
        if (!subs)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        char ***part_ids = qv_arena_array(&ctx->arena, rt.nservers, sizeof *part_ids);
        size_t *filled = qv_arena_array(&ctx->arena, rt.nservers, sizeof *filled);
        for (size_t k = 0; rc == QV_OK && k < rt.nservers; k++) {
            if (!by_filter && !counts[k])
                continue;
            const ProtobufCMessage *part = msg;
            if (!by_filter) { /* a shallow copy of the request with this shard's ids */
                uint8_t *copy = qv_arena_alloc(&ctx->arena, qd->sizeof_message);
                part_ids[k] = qv_arena_array(&ctx->arena, counts[k], sizeof(char *));
                if (!copy || !part_ids[k] || !part_ids || !filled) {
                    rc = qv_err_set(err, QV_ENOMEM, "out of memory");
                    break;
                }
                memcpy(copy, msg, qd->sizeof_message);
                memcpy(copy + fid->offset, &part_ids[k], sizeof(char **));
                memcpy(copy + fid->quantifier_offset, &counts[k], sizeof(size_t));
                filled[k] = 0;
                part = (const ProtobufCMessage *)copy;
            }
            subs[nsub++] = (qv_sub_t){.shard = rt.shards[k], .name = rt.names[k], .method = method, .req = part,
                                      .resp_desc = rd};
        }
        for (size_t i = 0; rc == QV_OK && !by_filter && i < n; i++)
            part_ids[srv[i]][filled[srv[i]]++] = ids[i];
    }
    if (rc == QV_OK && nsub) {
        qv_fanout(&co->client, ctx, subs, nsub);
        rc = qv_outcome(ctx, subs, nsub, false, NULL, NULL, what, err);
        const ProtobufCFieldDescriptor *cf = protobuf_c_message_descriptor_get_field(rd, 1);
        for (size_t k = 0; rc == QV_OK && k < nsub; k++) {
            uint32_t c;
            memcpy(&c, (const uint8_t *)subs[k].resp + cf->offset, sizeof c);
            *total += c;
        }
        if (rc == QV_ENOTFOUND)
            qv_meta_invalidate(co, collection);
    }
    qv_route_release(&rt);
    return rc;
}

static int h_delete(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    const Quiver__V1__DeleteRequest *req = (const void *)msg;
    char what[160];
    snprintf(what, sizeof what, "delete %s incomplete (the other shards' points were deleted; retrying the whole "
             "request is safe)", req->filter ? "by filter" : "by ids");
    uint32_t deleted;
    int rc = write_named(a, ctx, msg, req->collection, req->ids, req->n_ids, req->filter != NULL,
                         "/quiver.v1.Quiver/Delete", &quiver__v1__delete_response__descriptor, what, &deleted, err);
    if (rc)
        return rc;
    RESP(Quiver__V1__DeleteResponse, quiver__v1__delete_response__init, r);
    r->deleted = deleted;
    *resp = &r->base;
    return QV_OK;
}

static int h_update(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    const Quiver__V1__UpdateAttributesRequest *req = (const void *)msg;
    uint32_t updated;
    int rc = write_named(a, ctx, msg, req->collection, req->ids, req->n_ids, req->filter != NULL,
                         "/quiver.v1.Quiver/UpdateAttributes", &quiver__v1__update_attributes_response__descriptor,
                         "update incomplete (the other shards' points were updated; retrying the whole request is "
                         "safe)", &updated, err);
    if (rc)
        return rc;
    RESP(Quiver__V1__UpdateAttributesResponse, quiver__v1__update_attributes_response__init, r);
    r->updated = updated;
    *resp = &r->base;
    return QV_OK;
}

const qv_handler_t qv_coord_write_handlers[] = {
    {"Quiver/CreateCollection", h_create, QV_ROLE_ADMIN},
    {"Quiver/DropCollection", h_drop, QV_ROLE_ADMIN},
    {"Quiver/Upsert", h_upsert, QV_ROLE_WRITE},
    {"Quiver/Delete", h_delete, QV_ROLE_WRITE},
    {"Quiver/UpdateAttributes", h_update, QV_ROLE_WRITE},
    {NULL, NULL, 0},
};
