/* Coordinator read handlers: Get, Search, SearchBatch, Count, Scroll.
 *
 * Search and SearchBatch send the client's request (a text query embedded first when this coordinator has a model)
 * to every server of the collection at once (one completion queue, the client's remaining deadline on every call)
 * and merge the per-shard top-k lists, each best first (qv_merge_hits, merge.c). A shard that fails or is late fails the query (UNAVAILABLE / DEADLINE_EXCEEDED
 * naming it) unless the request sets allow_partial; then the answer carries partial = true and missing_shards, and
 * the shard calls end a little before the client's deadline (client.c), so that a late shard makes the answer
 * partial instead of the whole call late. k, ef, rerank and the batch size are checked here before the fan-out
 * (query/request.h); what needs the data (dimension, filter) is refused by every shard alike and passes through with
 * the standalone server's status and message.
 *
 * Scroll passes the cursor through: each shard returns its `limit` smallest ids after the cursor, in order, and the
 * coordinator merges the pages (qv_merge_scroll). */
#include <grpc/status.h>
#include <stdio.h>
#include <string.h>

#include "server/coord/coord_int.h"

#define RESP(type, init, var)                               \
    type *var = qv_arena_alloc(&ctx->arena, sizeof *var);   \
    if (!var)                                               \
        return qv_err_set(err, QV_ENOMEM, "out of memory"); \
    init(var)

/* Sends req to every server of the route; on QV_OK the subs' responses are filled (missing ones with
 * allow_partial). */
static int fan_route(qv_coord_t *co, qv_call_ctx_t *ctx, qv_route_t *rt, const char *method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd, bool allow_partial,
                     qv_sub_t **out, const char ***missing, size_t *nmissing, const char *what, qv_err_t *err)
{
    qv_sub_t *subs = qv_subs_same(ctx, rt->names, rt->shards, rt->nservers, method, req, rd);
    if (!subs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < rt->nservers; i++)
        subs[i].may_miss = allow_partial;
    qv_fanout(&co->client, ctx, subs, rt->nservers);
    int rc = qv_outcome(ctx, subs, rt->nservers, allow_partial, missing, nmissing, what, err);
    if (rc == QV_ENOTFOUND)
        qv_meta_invalidate(co, rt->meta->name);
    *out = subs;
    return rc;
}

static int set_missing(qv_call_ctx_t *ctx, Quiver__V1__SearchResponse *r, const char **missing, size_t n)
{
    if (!n)
        return QV_OK;
    r->partial = true;
    r->missing_shards = qv_arena_array(&ctx->arena, n, sizeof *r->missing_shards);
    if (!r->missing_shards)
        return QV_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r->missing_shards[i] = (char *)missing[i];
    r->n_missing_shards = n;
    return QV_OK;
}

/* Search and SearchBatch's rules that need no data (query/request.h), checked before the fan-out as the standalone
 * server checks them before its scan. */
static int check_search(const qv_route_t *rt, uint32_t k, const Quiver__V1__SearchParams *params, const char *group_by,
                        uint32_t group_size, int *group_field, uint32_t *size, qv_err_t *err)
{
    int rc = qv_search_check_params(k, params ? params->ef : 0, params ? params->rerank : 0, err);
    return rc ? rc : qv_search_check_group(rt->meta->schema, group_by, group_size, k, group_field, size, err);
}

/* The second round of a grouped search whose groups may hold more than one hit. The first round's merge finds the
 * right groups (qv_merge_grouped), but a group's further hits on a shard where it is not among the first k were not
 * sent. So every server is asked again for those groups only (req's filter AND group_by any_of them, k = their
 * number): each returns every one of them it holds with its best group_size hits, and their merge is exact. r is
 * replaced by that merge; *missing becomes the shards missing from either round (with allow_partial). The combined
 * filter is one level deeper than the client's: a filter at the depth limit fails here, in the second round. */
static int refine_groups(qv_coord_t *co, qv_call_ctx_t *ctx, qv_route_t *rt, Quiver__V1__SearchRequest req,
                         uint32_t size, Quiver__V1__SearchResponse *r, const char ***missing, size_t *nmissing,
                         qv_err_t *err)
{
    qv_arena_t *ar = &ctx->arena;
    Quiver__V1__Value *vals = qv_arena_array(ar, r->n_hits ? r->n_hits : 1, sizeof *vals);
    Quiver__V1__Value **vp = qv_arena_array(ar, r->n_hits ? r->n_hits : 1, sizeof *vp);
    if (!vals || !vp)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    size_t ng = 0;
    for (size_t i = 0; i < r->n_hits; i++) { /* the groups in order: each hit's group is new or one of the last */
        bool seen = false;
        for (size_t g = ng; g-- > 0 && !seen;)
            seen = strcmp(vals[g].keyword_value, r->hits[i]->group) == 0;
        if (seen)
            continue;
        quiver__v1__value__init(&vals[ng]);
        vals[ng].kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        vals[ng].keyword_value = r->hits[i]->group;
        vp[ng] = &vals[ng];
        ng++;
    }
    if (ng == 0)
        return QV_OK;
    Quiver__V1__ValueList vl = QUIVER__V1__VALUE_LIST__INIT;
    vl.values = vp;
    vl.n_values = ng;
    Quiver__V1__Condition cond = QUIVER__V1__CONDITION__INIT;
    cond.field = req.group_by;
    cond.op_case = QUIVER__V1__CONDITION__OP_ANY_OF;
    cond.any_of = &vl;
    Quiver__V1__Filter only = QUIVER__V1__FILTER__INIT, both = QUIVER__V1__FILTER__INIT;
    only.kind_case = QUIVER__V1__FILTER__KIND_COND;
    only.cond = &cond;
    Quiver__V1__Filter *two[2] = {req.filter, &only};
    Quiver__V1__FilterList fl = QUIVER__V1__FILTER_LIST__INIT;
    fl.filters = two;
    fl.n_filters = 2;
    both.kind_case = QUIVER__V1__FILTER__KIND_ALL;
    both.all = &fl;
    /* a Filter with no kind set means no filter at the top, but is refused nested */
    req.filter = req.filter && req.filter->kind_case != QUIVER__V1__FILTER__KIND__NOT_SET ? &both : &only;
    req.k = (uint32_t)ng;
    qv_sub_t *subs = NULL;
    const char **m2 = NULL;
    size_t n2 = 0;
    int rc = fan_route(co, ctx, rt, "/quiver.v1.Quiver/Search", &req.base, &quiver__v1__search_response__descriptor,
                       req.allow_partial, &subs, &m2, &n2, "search", err);
    if (rc)
        return rc;
    if (n2) { /* the union of both rounds' missing shards */
        const char **all = qv_arena_array(ar, *nmissing + n2, sizeof *all);
        if (!all)
            return qv_err_set(err, QV_ENOMEM, "out of memory");
        size_t n = 0;
        for (size_t i = 0; i < *nmissing; i++)
            all[n++] = (*missing)[i];
        for (size_t i = 0; i < n2; i++) {
            bool dup = false;
            for (size_t j = 0; j < *nmissing && !dup; j++)
                dup = strcmp((*missing)[j], m2[i]) == 0;
            if (!dup)
                all[n++] = m2[i];
        }
        *missing = all;
        *nmissing = n;
    }
    Quiver__V1__SearchResponse **parts = qv_arena_array(ar, rt->nservers, sizeof *parts);
    if (!parts)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < rt->nservers; i++)
        parts[i] = (void *)subs[i].resp;
    quiver__v1__search_response__init(r);
    if (qv_merge_grouped(ar, parts, rt->nservers, (uint32_t)ng, size, rt->meta->schema->metric == QV_METRIC_L2, r))
        return qv_err_set(err, QV_ENOMEM, "out of memory merging the shards' hits");
    return QV_OK;
}

static int h_search(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__SearchRequest *req = (const void *)msg;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    int group_field;
    uint32_t group_size;
    if ((rc = check_search(&rt, req->k, req->params, req->group_by, req->group_size, &group_field, &group_size,
                           err)) != QV_OK) {
        qv_route_release(&rt);
        return rc;
    }
    Quiver__V1__SearchRequest fwd;
    if (req->text[0] && co->cfg->embedder) { /* embedded once, here: the shards get the vector */
        fwd = *req;
        if ((rc = qv_embed_query(co->cfg->embedder, &ctx->arena, rt.meta->schema, req->text, req->n_vector,
                                 &fwd.vector, err)) != QV_OK) {
            qv_route_release(&rt);
            return rc;
        }
        fwd.n_vector = rt.meta->schema->dim;
        fwd.text = (char *)"";
        msg = &fwd.base;
    }
    qv_sub_t *subs = NULL;
    const char **missing = NULL;
    size_t nmissing = 0;
    rc = fan_route(co, ctx, &rt, "/quiver.v1.Quiver/Search", msg, &quiver__v1__search_response__descriptor,
                   req->allow_partial, &subs, &missing, &nmissing, "search", err);
    Quiver__V1__SearchResponse *r = NULL;
    if (rc == QV_OK) {
        Quiver__V1__SearchResponse **parts = qv_arena_array(&ctx->arena, rt.nservers, sizeof *parts);
        r = qv_arena_alloc(&ctx->arena, sizeof *r);
        if (!parts || !r) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        } else {
            quiver__v1__search_response__init(r);
            for (size_t i = 0; i < rt.nservers; i++)
                parts[i] = (void *)subs[i].resp;
            bool asc = rt.meta->schema->metric == QV_METRIC_L2;
            if (group_field != QV_GROUP_NONE ? qv_merge_grouped(&ctx->arena, parts, rt.nservers, req->k, group_size, asc, r)
                                 : qv_merge_hits(&ctx->arena, parts, rt.nservers, req->k, asc, r))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory merging the shards' hits");
        }
    }
    if (rc == QV_OK && group_field != QV_GROUP_NONE && group_size > 1)
        rc = refine_groups(co, ctx, &rt, *(const Quiver__V1__SearchRequest *)msg, group_size, r, &missing, &nmissing,
                           err);
    if (rc == QV_OK && set_missing(ctx, r, missing, nmissing))
        rc = qv_err_set(err, QV_ENOMEM, "out of memory merging the shards' hits");
    qv_route_release(&rt);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_search_batch(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                          qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__SearchBatchRequest *req = (const void *)msg;
    int rc = qv_search_check_batch(req->n_vectors, err); /* before the lookup, as the standalone server */
    if (rc)
        return rc;
    qv_route_t rt;
    rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    int group_field;
    uint32_t group_size;
    if ((rc = check_search(&rt, req->k, req->params, req->group_by, req->group_size, &group_field, &group_size,
                           err)) != QV_OK) {
        qv_route_release(&rt);
        return rc;
    }
    qv_sub_t *subs = NULL;
    const char **missing = NULL;
    size_t nmissing = 0, nq = req->n_vectors, ns = rt.nservers;
    rc = fan_route(co, ctx, &rt, "/quiver.v1.Quiver/SearchBatch", msg, &quiver__v1__search_batch_response__descriptor,
                   req->allow_partial, &subs, &missing, &nmissing, "search batch", err);
    for (size_t i = 0; rc == QV_OK && i < ns; i++) {
        const Quiver__V1__SearchBatchResponse *p = (const void *)subs[i].resp;
        if (p && p->n_results != nq)
            rc = qv_err_set(err, QV_EIO, "shard %s answered %zu results for %zu queries", subs[i].name,
                            p->n_results, nq);
    }
    Quiver__V1__SearchBatchResponse *r = NULL;
    if (rc == QV_OK) {
        r = qv_arena_alloc(&ctx->arena, sizeof *r);
        Quiver__V1__SearchResponse **parts = qv_arena_array(&ctx->arena, ns, sizeof *parts);
        Quiver__V1__SearchResponse *res = qv_arena_array(&ctx->arena, nq, sizeof *res);
        if (r)
            quiver__v1__search_batch_response__init(r);
        if (r && !(r->results = qv_arena_array(&ctx->arena, nq, sizeof *r->results)))
            r = NULL;
        if (!r || !parts || !res)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        bool asc = rt.meta->schema->metric == QV_METRIC_L2;
        for (size_t q = 0; rc == QV_OK && q < nq; q++) {
            for (size_t i = 0; i < ns; i++)
                parts[i] = subs[i].resp ? ((Quiver__V1__SearchBatchResponse *)subs[i].resp)->results[q] : NULL;
            quiver__v1__search_response__init(&res[q]);
            const char **qmissing = missing;
            size_t nqmissing = nmissing;
            if (group_field != QV_GROUP_NONE ? qv_merge_grouped(&ctx->arena, parts, ns, req->k, group_size, asc, &res[q])
                                 : qv_merge_hits(&ctx->arena, parts, ns, req->k, asc, &res[q]))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory merging the shards' hits");
            if (rc == QV_OK && group_field != QV_GROUP_NONE && group_size > 1) { /* as a Search of this query would */
                Quiver__V1__SearchRequest one = QUIVER__V1__SEARCH_REQUEST__INIT;
                one.collection = req->collection;
                one.vector = req->vectors[q]->values;
                one.n_vector = req->vectors[q]->n_values;
                one.filter = req->filter;
                one.params = req->params;
                one.with_attributes = req->with_attributes;
                one.with_vectors = req->with_vectors;
                one.with_text = req->with_text;
                one.allow_partial = req->allow_partial;
                one.group_by = req->group_by;
                one.group_size = req->group_size;
                rc = refine_groups(co, ctx, &rt, one, group_size, &res[q], &qmissing, &nqmissing, err);
            }
            if (rc == QV_OK && set_missing(ctx, &res[q], qmissing, nqmissing))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory merging the shards' hits");
            r->results[q] = &res[q];
        }
        if (rc == QV_OK)
            r->n_results = nq;
    }
    qv_route_release(&rt);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_count(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__CountRequest *req = (const void *)msg;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    qv_sub_t *subs = NULL;
    const char **missing = NULL;
    size_t nmissing = 0;
    rc = fan_route(co, ctx, &rt, "/quiver.v1.Quiver/Count", msg, &quiver__v1__count_response__descriptor,
                   req->allow_partial, &subs, &missing, &nmissing, "count", err);
    uint64_t total = 0;
    for (size_t i = 0; rc == QV_OK && i < rt.nservers; i++)
        if (subs[i].resp) /* none from a missing shard (allow_partial) */
            total += ((const Quiver__V1__CountResponse *)subs[i].resp)->count;
    qv_route_release(&rt);
    if (rc)
        return rc;
    RESP(Quiver__V1__CountResponse, quiver__v1__count_response__init, r);
    r->count = total;
    r->partial = nmissing > 0;
    r->missing_shards = (char **)missing;
    r->n_missing_shards = nmissing;
    *resp = &r->base;
    return QV_OK;
}

static int h_scroll(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__ScrollRequest *req = (const void *)msg;
    uint32_t limit;
    int rc = qv_req_scroll(req->limit, req->cursor, &limit, err); /* before the lookup, as the standalone server */
    if (rc)
        return rc;
    qv_route_t rt;
    rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    qv_sub_t *subs = NULL;
    rc = fan_route(co, ctx, &rt, "/quiver.v1.Quiver/Scroll", msg, &quiver__v1__scroll_response__descriptor, false,
                   &subs, NULL, NULL, "scroll", err);
    size_t ns = rt.nservers;
    qv_route_release(&rt);
    if (rc)
        return rc;
    RESP(Quiver__V1__ScrollResponse, quiver__v1__scroll_response__init, r);
    Quiver__V1__ScrollResponse **parts = qv_arena_array(&ctx->arena, ns, sizeof *parts);
    if (!parts)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++)
        parts[i] = (void *)subs[i].resp;
    if (qv_merge_scroll(&ctx->arena, parts, ns, limit, r))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    *resp = &r->base;
    return QV_OK;
}

static int h_get(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__GetRequest *req = (const void *)msg;
    qv_route_t rt;
    int rc = qv_route(co, ctx, req->collection, &rt, err);
    if (rc)
        return rc;
    size_t n = req->n_ids, ns = rt.nservers;
    rc = qv_req_ids(req->ids, n, err);
    if (rc == QV_OK && req->with_vectors)
        rc = qv_req_vectors_fit(n, rt.meta->schema->dim, co->cfg->max_message_bytes, err);
    uint32_t *srv = NULL;
    size_t *counts = NULL;
    if (rc == QV_OK)
        rc = qv_coord_split_ids(ctx, &rt, req->ids, n, &srv, &counts, err);
    qv_sub_t *subs = NULL;
    Quiver__V1__GetRequest *parts = NULL;
    size_t *slot = NULL, nsub = 0;
    if (rc == QV_OK && n) {
        subs = qv_arena_array(&ctx->arena, ns, sizeof *subs);
        parts = qv_arena_array(&ctx->arena, ns, sizeof *parts);
        slot = qv_arena_array(&ctx->arena, ns, sizeof *slot);
        if (!subs || !parts || !slot)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        for (size_t k = 0; rc == QV_OK && k < ns; k++) {
            quiver__v1__get_request__init(&parts[k]);
            if (!counts[k])
                continue;
            parts[k].collection = req->collection;
            parts[k].with_vectors = req->with_vectors;
            if (!(parts[k].ids = qv_arena_array(&ctx->arena, counts[k], sizeof *parts[k].ids)))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            slot[k] = nsub;
            subs[nsub++] = (qv_sub_t){.shard = rt.shards[k], .name = rt.names[k], .method = "/quiver.v1.Quiver/Get",
                                      .req = &parts[k].base, .resp_desc = &quiver__v1__get_response__descriptor};
        }
        for (size_t i = 0; rc == QV_OK && i < n; i++) {
            Quiver__V1__GetRequest *p = &parts[srv[i]];
            p->ids[p->n_ids++] = req->ids[i];
        }
        if (rc == QV_OK) {
            qv_fanout(&co->client, ctx, subs, nsub);
            rc = qv_outcome(ctx, subs, nsub, false, NULL, NULL, "get", err);
            if (rc == QV_ENOTFOUND)
                qv_meta_invalidate(co, req->collection);
        }
    }
    Quiver__V1__GetResponse *r = NULL;
    if (rc == QV_OK) {
        r = qv_arena_alloc(&ctx->arena, sizeof *r);
        size_t *head = qv_arena_array(&ctx->arena, ns, sizeof *head);
        if (r) {
            quiver__v1__get_response__init(r);
            r->points = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *r->points);
        }
        if (!r || !r->points || !head)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        /* each shard answered its ids in order, absent ones omitted: walk the request and take what matches */
        for (size_t i = 0; rc == QV_OK && i < n; i++) {
            size_t k = srv[i];
            const Quiver__V1__GetResponse *p = (const void *)subs[slot[k]].resp;
            if (head[k] < p->n_points && strcmp(p->points[head[k]]->id, req->ids[i]) == 0)
                r->points[r->n_points++] = p->points[head[k]++];
        }
    }
    qv_route_release(&rt);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

const qv_handler_t qv_coord_read_handlers[] = {
    {"Quiver/Get", h_get, QV_ROLE_READ},
    {"Quiver/Search", h_search, QV_ROLE_READ},
    {"Quiver/Count", h_count, QV_ROLE_READ},
    {"Quiver/SearchBatch", h_search_batch, QV_ROLE_READ},
    {"Quiver/Scroll", h_scroll, QV_ROLE_READ},
    {NULL, NULL, 0},
};
