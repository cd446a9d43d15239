/* Request handlers for the Quiver and Admin services. Each handler validates the whole request before calling
 * into the store (which validates again where it owns the rule), so a rejected request changes nothing. */
#include "server/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "index/distance.h"
#include "common/bitmap.h"
#include "query/group.h"
#include "storage/dynattr.h"
#include "query/search.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/grpc_health.h"
#include "server/reflection.h"
#include "server/metrics.h"
#include "server/request.h"
#include "storage/backup.h"

#define QV_VERSION "0.1.0"

#define RESP(type, init, var)                             \
    type *var = qv_arena_alloc(&ctx->arena, sizeof *var); \
    if (!var)                                             \
        return qv_err_set(err, QV_ENOMEM, "out of memory"); \
    init(var)

static int stats_compactions(qv_app_t *app, qv_arena_t *ar, Quiver__V1__StatsResponse *r);

static int get_coll(qv_app_t *app, const char *name, qv_coll_t **c, qv_err_t *err)
{
    size_t len = strlen(name);
    if (len == 0)
        return qv_err_set(err, QV_EINVAL, "collection name is empty");
    return qv_store_get(app->store, name, len, c, err);
}

static int h_create(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__CreateCollectionRequest *req = (const void *)m;
    qv_schema_t *s;
    int rc = qv_conv_schema(req, &s, err);
    if (rc)
        return rc;
    if ((rc = qv_store_create(app->store, s, err)) != QV_OK) {
        free(s);
        return rc;
    }
    RESP(Quiver__V1__CreateCollectionResponse, quiver__v1__create_collection_response__init, r);
    *resp = &r->base;
    return QV_OK;
}

static int h_drop(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__DropCollectionRequest *req = (const void *)m;
    int rc = qv_store_drop(app->store, req->name, strlen(req->name), err);
    if (rc)
        return rc;
    RESP(Quiver__V1__DropCollectionResponse, quiver__v1__drop_collection_response__init, r);
    *resp = &r->base;
    return QV_OK;
}

static int h_list(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    (void)m;
    qv_coll_t **list;
    size_t n;
    if (qv_store_list(app->store, &list, &n))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    Quiver__V1__ListCollectionsResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    int rc = r ? QV_OK : QV_ENOMEM;
    if (r) {
        quiver__v1__list_collections_response__init(r);
        r->collections = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *r->collections);
        for (size_t i = 0; r->collections && i < n && rc == QV_OK; i++, r->n_collections++)
            if (!(r->collections[i] = qv_conv_coll_info(&ctx->arena, app->store, list[i])))
                rc = QV_ENOMEM;
        if (!r->collections)
            rc = QV_ENOMEM;
    }
    qv_store_list_free(list, n);
    if (rc)
        return qv_err_set(err, rc, "out of memory");
    *resp = &r->base;
    return QV_OK;
}

static int h_describe(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    const Quiver__V1__DescribeCollectionRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(a, req->name, &c, err);
    if (rc)
        return rc;
    Quiver__V1__DescribeCollectionResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    if (r) {
        quiver__v1__describe_collection_response__init(r);
        r->collection = qv_conv_coll_info(&ctx->arena, ((qv_app_t *)a)->store, c);
    }
    qv_coll_release(c);
    if (!r || !r->collection)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    *resp = &r->base;
    return QV_OK;
}

static int h_upsert(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__UpsertRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_point_t *pts;
    uint64_t seq = 0;
    rc = qv_conv_points(&ctx->arena, c->schema, req->points, req->n_points, &pts, err);
    if (rc == QV_OK)
        rc = qv_embed_points(app->embedder, &ctx->arena, c->schema, pts, req->n_points, err);
    if (rc == QV_OK)
        rc = qv_store_upsert(app->store, c, pts, (uint32_t)req->n_points, &seq, err);
    qv_coll_release(c);
    if (rc)
        return rc;
    qv_metrics_add_rows(req->n_points, 0);
    RESP(Quiver__V1__UpsertResponse, quiver__v1__upsert_response__init, r);
    r->count = (uint32_t)req->n_points;
    r->seq = seq;
    *resp = &r->base;
    return QV_OK;
}

/* The ids of a Get or Delete, checked (server/request.h) and borrowed from the message. */
static int conv_ids(qv_call_ctx_t *ctx, char *const *ids, size_t n, qv_str_t **out, qv_err_t *err)
{
    int rc = qv_req_ids(ids, n, err);
    if (rc)
        return rc;
    qv_str_t *s = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *s);
    if (!s)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        s[i] = (qv_str_t){ids[i], (uint32_t)strlen(ids[i])};
    *out = s;
    return QV_OK;
}

/* The candidates of a write by filter: the ids of the points matching f in a read view, at most `max` (more is
 * QV_ETOOBIG naming the limit and how to page). *v holds the ids' memory: the caller ends it after the write. */
static int filter_candidates(qv_call_ctx_t *ctx, qv_coll_t *c, const qv_filter_t *f, uint32_t max, const char *what,
                             qv_read_t **v, qv_str_t **ids, uint32_t *n, qv_err_t *err)
{
    qv_rowref_t *refs = malloc(((size_t)max + 1) * sizeof *refs);
    if (!refs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    bool more = false;
    int rc = qv_read_begin(c, v, err);
    if (rc == QV_OK)
        rc = qv_scroll(*v, f, (qv_str_t){"", 0}, max + 1, (qv_stop_t){ctx->deadline_ns, &ctx->cancelled}, refs, n,
                       &more, err);
    if (rc == QV_OK && *n > max)
        rc = qv_err_set(err, QV_ETOOBIG, "more than %u points match the filter: one %s changes at most %u; narrow the "
                        "filter, or page with Scroll and %s by ids", max, what, max, what);
    if (rc == QV_OK && !(*ids = qv_arena_array(&ctx->arena, *n ? *n : 1, sizeof **ids)))
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == QV_OK && i < *n; i++)
        (*ids)[i] = qv_strcol_get(&refs[i].seg->ids, refs[i].row);
    free(refs);
    return rc;
}

/* A write by ids or by filter (exactly one): its candidates, the filter the leader re-checks (NULL by ids) and the
 * read view holding the candidates' memory (NULL by ids; the caller ends it). */
static int write_targets(qv_call_ctx_t *ctx, qv_coll_t *c, char *const *req_ids, size_t n_ids,
                         const Quiver__V1__Filter *pf, uint32_t max, const char *what, qv_str_t **ids, uint32_t *n,
                         qv_filter_t **f, qv_read_t **v, qv_err_t *err)
{
    *f = NULL;
    *v = NULL;
    if (pf && n_ids)
        return qv_err_set(err, QV_EINVAL, "give ids or a filter, not both");
    if (!pf) {
        *n = (uint32_t)n_ids;
        return conv_ids(ctx, req_ids, n_ids, ids, err);
    }
    int rc = qv_conv_filter(pf, c->schema, f, err);
    if (rc == QV_OK)
        rc = filter_candidates(ctx, c, *f, max, what, v, ids, n, err);
    return rc;
}

static int h_delete(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__DeleteRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_str_t *ids = NULL;
    uint32_t n = 0, deleted = 0;
    uint64_t seq;
    qv_filter_t *f = NULL;
    qv_read_t *v = NULL;
    rc = write_targets(ctx, c, req->ids, req->n_ids, req->filter, QV_REWRITE_MAX, "delete", &ids, &n, &f, &v, err);
    if (rc == QV_OK && !req->filter)
        rc = qv_store_delete(app->store, c, ids, n, &deleted, err);
    else if (rc == QV_OK)
        rc = qv_store_delete_where(app->store, c, ids, n, f ? qv_filter_row : NULL, f, &deleted, &seq, err);
    qv_read_end(v);
    qv_filter_free(f);
    qv_coll_release(c);
    if (rc)
        return rc;
    qv_metrics_add_rows(0, deleted);
    RESP(Quiver__V1__DeleteResponse, quiver__v1__delete_response__init, r);
    r->deleted = deleted;
    *resp = &r->base;
    return QV_OK;
}

static int h_update(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__UpdateAttributesRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_attr_change_t ch;
    qv_str_t *ids = NULL;
    uint32_t n = 0, updated = 0;
    uint64_t seq;
    qv_filter_t *f = NULL;
    qv_read_t *v = NULL;
    rc = qv_conv_change(&ctx->arena, c->schema, req, &ch, err);
    if (rc == QV_OK)
        rc = write_targets(ctx, c, req->ids, req->n_ids, req->filter, QV_BATCH_MAX, "update", &ids, &n, &f, &v,
                           err);
    if (rc == QV_OK)
        rc = qv_store_update(app->store, c, ids, n, f ? qv_filter_row : NULL, f, &ch, &updated, &seq, err);
    qv_read_end(v);
    qv_filter_free(f);
    qv_coll_release(c);
    if (rc)
        return rc;
    RESP(Quiver__V1__UpdateAttributesResponse, quiver__v1__update_attributes_response__init, r);
    r->updated = updated;
    *resp = &r->base;
    return QV_OK;
}

/* Wire bytes of one entry of a repeated message field beyond its payload: key and length prefix. */
#define ENTRY_OVERHEAD 16

/* Charges the attributes just built for one point or hit against the response budget. */
static int charge_attrs(qv_call_ctx_t *ctx, ProtobufCMessage *const *attrs, size_t n, const char *hint, qv_err_t *err)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += protobuf_c_message_get_packed_size(attrs[i]) + ENTRY_OVERHEAD;
    return qv_call_charge(ctx, bytes, hint, err);
}

/* Fills a Point message for (seg,row), charging it to the response budget before copying; (seg,row) is in a read
 * view that is still open.
 * Returns QV_ENOMEM or QV_ETOOBIG (err filled). */
static int point_out(qv_call_ctx_t *ctx, const qv_schema_t *s, const qv_segment_t *seg, uint32_t row, bool vectors,
                     const char *hint, Quiver__V1__Point **out, qv_err_t *err)
{
    qv_arena_t *ar = &ctx->arena;
    qv_str_t id = qv_strcol_get(&seg->ids, row), text = qv_strcol_get(&seg->text, row);
    int rc = qv_call_charge(ctx, ENTRY_OVERHEAD + id.len + text.len + (vectors ? s->dim * sizeof(float) : 0), hint,
                            err);
    if (rc)
        return rc;
    Quiver__V1__Point *p = qv_arena_alloc(ar, sizeof *p);
    if (!p)
        return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
    quiver__v1__point__init(p);
    p->id = qv_arena_strndup(ar, id.p, id.len);
    p->text = qv_arena_strndup(ar, text.p, text.len);
    if (!p->id || !p->text)
        return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
    if (vectors) {
        p->vector = qv_arena_array(ar, s->dim, sizeof(float));
        if (!p->vector)
            return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        memcpy(p->vector, qv_seg_vector(seg, row), s->dim * sizeof(float));
        p->n_vector = s->dim;
    }
    p->attributes = (Quiver__V1__Point__AttributesEntry **)qv_conv_row_attrs(ar, s, seg, row, &p->n_attributes, false);
    if (!p->attributes)
        return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
    if ((rc = charge_attrs(ctx, (ProtobufCMessage *const *)p->attributes, p->n_attributes, hint, err)) != QV_OK)
        return rc;
    *out = p;
    return QV_OK;
}

typedef struct {
    qv_str_t id;
    uint32_t pos;
} id_at_t;

static int id_at_cmp(const void *a, const void *b)
{
    const id_at_t *x = a, *y = b;
    int c = memcmp(x->id.p, y->id.p, x->id.len < y->id.len ? x->id.len : y->id.len);
    if (c)
        return c;
    if (x->id.len != y->id.len)
        return x->id.len < y->id.len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Marks ids that repeat an earlier one in the request (dup[i] = true), so each point is returned once. */
static int mark_duplicates(const qv_str_t *ids, size_t n, bool *dup)
{
    id_at_t *ord = malloc((n ? n : 1) * sizeof *ord);
    if (!ord)
        return QV_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ord[i] = (id_at_t){ids[i], (uint32_t)i};
    qsort(ord, n, sizeof *ord, id_at_cmp);
    for (size_t i = 1; i < n; i++)
        dup[ord[i].pos] = ord[i - 1].id.len == ord[i].id.len && memcmp(ord[i - 1].id.p, ord[i].id.p, ord[i].id.len) == 0;
    free(ord);
    return QV_OK;
}

/* Rejects responses that would carry more vector data than a message may hold, before building them. */
static int check_vector_budget(qv_app_t *app, size_t n, uint32_t dim, qv_err_t *err)
{
    return qv_req_vectors_fit(n, dim, app->max_message_bytes, err);
}

static int h_get(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__GetRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_str_t *ids;
    Quiver__V1__GetResponse *r = NULL;
    rc = conv_ids(ctx, req->ids, req->n_ids, &ids, err);
    if (rc == QV_OK && req->with_vectors)
        rc = check_vector_budget(app, req->n_ids, c->schema->dim, err);
    if (rc == QV_OK) {
        r = qv_arena_alloc(&ctx->arena, sizeof *r);
        if (r) {
            quiver__v1__get_response__init(r);
            r->points = qv_arena_array(&ctx->arena, req->n_ids ? req->n_ids : 1, sizeof *r->points);
        }
        if (!r || !r->points)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    bool *dup = NULL;
    if (rc == QV_OK && (!(dup = qv_arena_array(&ctx->arena, req->n_ids ? req->n_ids : 1, sizeof *dup)) ||
                        mark_duplicates(ids, req->n_ids, dup) != QV_OK))
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    qv_segment_t **segs = NULL;
    uint32_t *rows = NULL;
    if (rc == QV_OK && (!(segs = qv_arena_array(&ctx->arena, req->n_ids ? req->n_ids : 1, sizeof *segs)) ||
                        !(rows = qv_arena_array(&ctx->arena, req->n_ids ? req->n_ids : 1, sizeof *rows))))
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    qv_read_t *v = NULL;
    if (rc == QV_OK && (rc = qv_read_begin(c, &v, err)) == QV_OK)
        rc = qv_read_lookup(v, ids, req->n_ids, segs, rows, err);
    for (size_t i = 0; i < req->n_ids && rc == QV_OK; i++) {
        if (dup[i] || !segs[i])
            continue;
        rc = point_out(ctx, c->schema, segs[i], rows[i], req->with_vectors,
                       "ask for fewer ids per Get, or leave out with_vectors", &r->points[r->n_points], err);
        if (rc == QV_OK)
            r->n_points++;
    }
    qv_read_end(v);
    qv_coll_release(c);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_count(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__CountRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_filter_t *f = NULL;
    uint64_t n = 0;
    rc = qv_conv_filter(req->filter, c->schema, &f, err);
    qv_read_t *v = NULL;
    if (rc == QV_OK && (rc = qv_read_begin(c, &v, err)) == QV_OK) {
        rc = qv_count(v, app->pool, f, (qv_stop_t){ctx->deadline_ns, &ctx->cancelled}, &n, err);
        qv_read_end(v);
    }
    qv_filter_free(f);
    qv_coll_release(c);
    if (rc)
        return rc;
    RESP(Quiver__V1__CountResponse, quiver__v1__count_response__init, r);
    r->count = n;
    *resp = &r->base;
    return QV_OK;
}

typedef struct {
    uint32_t k;
    const Quiver__V1__Filter *filter;
    const Quiver__V1__SearchParams *params;
    bool with_attributes, with_vectors, with_text;
    const char *group_by;
    uint32_t group_size;
    int group_field; /* set by run_searches: the group_by field's index, QV_GROUP_NONE or QV_GROUP_DYNAMIC */
} search_opts_t;

/* A hit's group: its value of KEYWORD field f, or (f == QV_GROUP_DYNAMIC) of dynamic attribute `key` when that is a
 * keyword; {NULL, 0} when it has none. The string lives in the hit's segment (valid for the read view). */
static qv_str_t hit_group(const qv_hit_t *h, int f, const char *key)
{
    if (f == QV_GROUP_DYNAMIC) {
        qv_value_t v;
        qv_rbuf_t items;
        qv_str_t blob = qv_strcol_get(&h->seg->dyn, h->row);
        if (blob.len && qv_dyn_find(blob, (qv_str_t){key, (uint32_t)strlen(key)}, &v, &items) &&
            v.type == QV_FT_KEYWORD)
            return v.kw.p ? v.kw : (qv_str_t){"", 0};
        return (qv_str_t){NULL, 0};
    }
    const qv_column_t *col = &h->seg->cols[f];
    if (!qv_bm_get(col->present, h->row))
        return (qv_str_t){NULL, 0};
    qv_str_t v = qv_strcol_get(&col->str, h->row);
    return v.p ? v : (qv_str_t){"", 0};
}

/* A grouped search (query/group.h): searches for more hits than k x size, four times more each round, until k groups
 * of `size` are found or the candidates run out (or reach QV_K_MAX), then keeps the groups' hits. *hits is
 * malloc'd (room for what the last round asked), *n the hits kept. */
static int grouped_search(qv_app_t *app, const qv_read_t *v, qv_search_req_t sr, int field, const char *key,
                          uint32_t size, qv_hit_t **hits, uint32_t *n, qv_err_t *err)
{
    uint32_t groups = sr.k;
    uint64_t want = 2ull * groups * size;
    uint32_t kk = want > QV_K_MAX ? QV_K_MAX : (uint32_t)want;
    qv_str_t *keys = NULL;
    uint32_t *keep = NULL;
    int rc = QV_OK;
    *hits = NULL;
    for (;;) {
        qv_hit_t *h = realloc(*hits, kk * sizeof *h);
        qv_str_t *kv = realloc(keys, kk * sizeof *kv);
        uint32_t *kp = realloc(keep, kk * sizeof *kp);
        *hits = h ? h : *hits;
        keys = kv ? kv : keys;
        keep = kp ? kp : keep;
        if (!h || !kv || !kp) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory grouping %u hits", kk);
            break;
        }
        sr.k = kk;
        uint32_t got = 0;
        if ((rc = qv_search(v, app->pool, &sr, *hits, &got, err)) != QV_OK)
            break;
        for (uint32_t i = 0; i < got; i++)
            keys[i] = hit_group(&(*hits)[i], field, key);
        size_t nkeep;
        bool full;
        if ((rc = qv_group_select(keys, got, groups, size, keep, &nkeep, &full)) != QV_OK) {
            qv_err_set(err, rc, "out of memory grouping %u hits", got);
            break;
        }
        if (full || got < kk || kk == QV_K_MAX) {
            for (size_t i = 0; i < nkeep; i++)
                (*hits)[i] = (*hits)[keep[i]];
            *n = (uint32_t)nkeep;
            break;
        }
        kk = kk > QV_K_MAX / 4 ? QV_K_MAX : kk * 4;
    }
    free(keys);
    free(keep);
    return rc;
}

/* Builds the hits of one query, charging each to the response budget before copying it. Returns QV_ENOMEM or
 * QV_ETOOBIG (err filled). */
static int build_hits(qv_call_ctx_t *ctx, const qv_schema_t *s, const search_opts_t *o, const qv_hit_t *hits,
                      uint32_t n, Quiver__V1__SearchResponse *r, qv_err_t *err)
{
    static const char hint[] = "lower k (or the batch size), or leave out with_text / with_vectors / with_attributes";
    qv_arena_t *ar = &ctx->arena;
    int rc;
    r->hits = qv_arena_array(ar, n ? n : 1, sizeof *r->hits);
    if (!r->hits)
        return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
    for (uint32_t i = 0; i < n; i++) {
        qv_str_t id = qv_strcol_get(&hits[i].seg->ids, hits[i].row);
        qv_str_t t = o->with_text ? qv_strcol_get(&hits[i].seg->text, hits[i].row) : (qv_str_t){NULL, 0};
        size_t bytes = ENTRY_OVERHEAD + id.len + t.len + (o->with_vectors ? s->dim * sizeof(float) : 0);
        if ((rc = qv_call_charge(ctx, bytes, hint, err)) != QV_OK)
            return rc;
        Quiver__V1__Hit *h = qv_arena_alloc(ar, sizeof *h);
        if (!h)
            return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        quiver__v1__hit__init(h);
        h->id = qv_arena_strndup(ar, id.p, id.len);
        h->score = hits[i].score;
        if (!h->id)
            return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        if (o->with_text && !(h->text = qv_arena_strndup(ar, t.p, t.len)))
            return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        if (o->with_vectors) {
            if (!(h->vector = qv_arena_array(ar, s->dim, sizeof(float))))
                return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
            memcpy(h->vector, qv_seg_vector(hits[i].seg, hits[i].row), s->dim * sizeof(float));
            h->n_vector = s->dim;
        }
        if (o->with_attributes) {
            h->attributes = (Quiver__V1__Hit__AttributesEntry **)qv_conv_row_attrs(ar, s, hits[i].seg, hits[i].row,
                                                                                   &h->n_attributes, true);
            if (!h->attributes)
                return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
            if ((rc = charge_attrs(ctx, (ProtobufCMessage *const *)h->attributes, h->n_attributes, hint, err)))
                return rc;
        }
        if (o->group_field != QV_GROUP_NONE) {
            qv_str_t g = hit_group(&hits[i], o->group_field, o->group_by);
            if (!(h->group = qv_arena_strndup(ar, g.p ? g.p : "", g.len)))
                return qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        }
        r->hits[i] = h;
        r->n_hits = i + 1;
    }
    return QV_OK;
}

/* Validates and runs nq searches of one collection on one read view; out[i] answers queries[i]. Query vectors
 * are normalised in place for COSINE collections. */
#define BATCH_HITS_MAX (1u << 20) /* a SearchBatch with more hits than this (queries x k) runs query by query */

static int run_searches(qv_app_t *app, qv_call_ctx_t *ctx, qv_coll_t *c, float *const *queries, const size_t *dims,
                        size_t nq, search_opts_t *o, Quiver__V1__SearchResponse **out, qv_err_t *err)
{
    int rc = QV_OK;
    uint32_t ef = o->params ? o->params->ef : 0, group_size;
    if ((rc = qv_search_check_params(o->k, ef, o->params ? o->params->rerank : 0, err)) != QV_OK)
        return rc;
    if ((rc = qv_search_check_group(c->schema, o->group_by, o->group_size, o->k, &o->group_field, &group_size,
                                    err)) != QV_OK)
        return rc;
    for (size_t i = 0; i < nq; i++) {
        if ((rc = qv_query_validate(c->schema, queries[i], (uint32_t)dims[i], err)) != QV_OK) {
            if (nq > 1) {
                char msg[QV_ERR_MSG_MAX];
                snprintf(msg, sizeof msg, "%.200s", err->msg);
                qv_err_set(err, rc, "query %zu: %s", i, msg);
            }
            return rc;
        }
    }
    if (o->with_vectors && (rc = check_vector_budget(app, (size_t)o->k * nq, c->schema->dim, err)) != QV_OK)
        return rc;
    qv_filter_t *f = NULL;
    if ((rc = qv_conv_filter(o->filter, c->schema, &f, err)) != QV_OK)
        return rc;
    qv_hit_t *hits = malloc(o->k * sizeof *hits);
    for (size_t i = 0; hits && i < nq; i++) {
        out[i] = qv_arena_alloc(&ctx->arena, sizeof *out[i]);
        if (!out[i])
            break;
        quiver__v1__search_response__init(out[i]);
    }
    if (!hits || (nq && !out[nq - 1])) {
        free(hits);
        qv_filter_free(f);
        return qv_err_set(err, QV_ENOMEM, "out of memory for k = %u", o->k);
    }
    /* one view for the batch: every query sees the same data, and no lock is held while they run */
    qv_read_t *v = NULL;
    if (rc == QV_OK)
        rc = qv_read_begin(c, &v, err);
    qv_search_req_t sr = {.k = o->k, .filter = f, .ef = ef, .rerank = o->params ? o->params->rerank : 0,
                          .exact = o->params && o->params->exact, .deadline_ns = ctx->deadline_ns,
                          .cancelled = &ctx->cancelled};
    /* several queries: one pass over the data for all of them (query/search.h), when their hits fit in memory */
    qv_hit_t *all = NULL, **per = NULL;
    uint32_t *counts = NULL;
    if (rc == QV_OK && nq > 1 && (size_t)o->k * nq <= BATCH_HITS_MAX && o->group_field == QV_GROUP_NONE) {
        all = malloc((size_t)o->k * nq * sizeof *all);
        per = malloc(nq * sizeof *per);
        counts = malloc(nq * sizeof *counts);
        if (!all || !per || !counts)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory for %zu queries with k = %u", nq, o->k);
        for (size_t i = 0; rc == QV_OK && i < nq; i++)
            per[i] = all + i * o->k;
        if (rc == QV_OK)
            rc = qv_search_batch(v, app->pool, &sr, (const float *const *)queries, nq, per, counts, err);
        for (size_t i = 0; rc == QV_OK && i < nq; i++)
            rc = build_hits(ctx, c->schema, o, per[i], counts[i], out[i], err);
    } else {
        for (size_t i = 0; i < nq && rc == QV_OK; i++) {
            sr.query = queries[i];
            uint32_t n = 0;
            qv_hit_t *grouped = NULL;
            if (o->group_field != QV_GROUP_NONE)
                rc = grouped_search(app, v, sr, o->group_field, o->group_by, group_size, &grouped, &n, err);
            else
                rc = qv_search(v, app->pool, &sr, hits, &n, err);
            if (rc == QV_OK)
                rc = build_hits(ctx, c->schema, o, grouped ? grouped : hits, n, out[i], err);
            free(grouped);
        }
    }
    qv_read_end(v);
    free(all);
    free(per);
    free(counts);
    free(hits);
    qv_filter_free(f);
    return rc;
}

static int h_search(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__SearchRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    search_opts_t o = {req->k,         req->filter,      req->params,     req->with_attributes, req->with_vectors,
                       req->with_text, req->group_by, req->group_size, -1};
    Quiver__V1__SearchResponse *r = NULL;
    size_t dim = req->n_vector;
    float *query = req->vector;
    if (req->text[0]) {
        if ((rc = qv_embed_query(app->embedder, &ctx->arena, c->schema, req->text, req->n_vector, &query, err)) == 0)
            dim = c->schema->dim;
    } else if (req->n_vector == 0) {
        rc = qv_err_set(err, QV_EINVAL, "the query needs a vector%s", c->schema->embed ? " or text" : "");
    }
    if (rc == QV_OK)
        rc = run_searches(app, ctx, c, &query, &dim, 1, &o, &r, err);
    qv_coll_release(c);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_search_batch(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp,
                          qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__SearchBatchRequest *req = (const void *)m;
    int rc = qv_search_check_batch(req->n_vectors, err);
    if (rc)
        return rc;
    RESP(Quiver__V1__SearchBatchResponse, quiver__v1__search_batch_response__init, r);
    qv_coll_t *c;
    rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    search_opts_t o = {req->k,         req->filter,      req->params,     req->with_attributes, req->with_vectors,
                       req->with_text, req->group_by, req->group_size, -1};
    float **queries = qv_arena_array(&ctx->arena, req->n_vectors, sizeof *queries);
    size_t *dims = qv_arena_array(&ctx->arena, req->n_vectors, sizeof *dims);
    r->results = qv_arena_array(&ctx->arena, req->n_vectors, sizeof *r->results);
    if (!queries || !dims || !r->results)
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; rc == QV_OK && i < req->n_vectors; i++) {
        queries[i] = req->vectors[i]->values;
        dims[i] = req->vectors[i]->n_values;
    }
    if (rc == QV_OK)
        rc = run_searches(app, ctx, c, queries, dims, req->n_vectors, &o, r->results, err);
    qv_coll_release(c);
    if (rc)
        return rc;
    r->n_results = req->n_vectors;
    *resp = &r->base;
    return QV_OK;
}

static int h_scroll(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__ScrollRequest *req = (const void *)m;
    uint32_t limit;
    int rc = qv_req_scroll(req->limit, req->cursor, &limit, err);
    if (rc)
        return rc;
    qv_str_t after = {req->cursor, (uint32_t)strlen(req->cursor)};
    qv_coll_t *c;
    rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    qv_filter_t *f = NULL;
    qv_rowref_t *refs = NULL;
    Quiver__V1__ScrollResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    rc = r ? QV_OK : qv_err_set(err, QV_ENOMEM, "out of memory");
    if (rc == QV_OK && req->with_vectors)
        rc = check_vector_budget(app, limit, c->schema->dim, err);
    if (rc == QV_OK)
        rc = qv_conv_filter(req->filter, c->schema, &f, err);
    if (rc == QV_OK) {
        quiver__v1__scroll_response__init(r);
        refs = malloc(limit * sizeof *refs);
        r->points = qv_arena_array(&ctx->arena, limit, sizeof *r->points);
        if (!refs || !r->points)
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    if (rc == QV_OK) {
        uint32_t n = 0;
        bool more = false;
        qv_read_t *v = NULL;
        if ((rc = qv_read_begin(c, &v, err)) == QV_OK)
            rc = qv_scroll(v, f, after, limit, (qv_stop_t){ctx->deadline_ns, &ctx->cancelled}, refs, &n, &more,
                           err);
        for (uint32_t i = 0; rc == QV_OK && i < n; i++) {
            rc = point_out(ctx, c->schema, refs[i].seg, refs[i].row, req->with_vectors,
                           "lower limit and page with next_cursor, or leave out with_vectors", &r->points[i], err);
            r->n_points = i + 1;
        }
        if (rc == QV_OK && more && n) {
            qv_str_t last = qv_strcol_get(&refs[n - 1].seg->ids, refs[n - 1].row);
            if (!(r->next_cursor = qv_arena_strndup(&ctx->arena, last.p, last.len)))
                rc = qv_err_set(err, QV_ENOMEM, "out of memory building the response");
        }
        qv_read_end(v);
    }
    free(refs);
    qv_filter_free(f);
    qv_coll_release(c);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_health(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    (void)m;
    RESP(Quiver__V1__HealthResponse, quiver__v1__health_response__init, r);
    r->status = QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING;
    char why[256];
    if (qv_store_failed(app->store, why, sizeof why)) {
        r->status = QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_NOT_SERVING;
        r->reason = qv_arena_strndup(&ctx->arena, why, strlen(why));
        if (!r->reason)
            return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    r->version = QV_VERSION;
    r->role = (char *)app->role;
    *resp = &r->base;
    return QV_OK;
}

static int h_stats(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    (void)m;
    RESP(Quiver__V1__StatsResponse, quiver__v1__stats_response__init, r);
    qv_coll_t **list;
    size_t n;
    if (qv_store_list(app->store, &list, &n))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    int rc = QV_OK;
    r->collections = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *r->collections);
    for (size_t i = 0; r->collections && i < n && rc == QV_OK; i++) {
        Quiver__V1__CollectionInfo *ci = qv_conv_coll_info(&ctx->arena, app->store, list[i]);
        if (!ci) {
            rc = QV_ENOMEM;
            break;
        }
        r->collections[r->n_collections++] = ci;
        r->wal_bytes += ci->wal_bytes;
        for (size_t s = 0; s < ci->n_segments; s++)
            r->vector_bytes += ci->segments[s]->rows * (uint64_t)ci->dim * sizeof(float);
    }
    qv_store_list_free(list, n);
    if (rc || !r->collections)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    if (stats_compactions(app, &ctx->arena, r))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    r->resident_bytes = qv_resident_bytes();
    r->uptime_seconds = (uint64_t)((qv_now_ns() - app->started_ns) / 1000000000);
    r->simd = (char *)qv_dist()->name;
    *resp = &r->base;
    return QV_OK;
}

static int h_flush(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__FlushRequest *req = (const void *)m;
    qv_coll_t *c = NULL;
    uint32_t sealed = 0;
    int rc = QV_OK;
    if (req->collection[0])
        rc = get_coll(app, req->collection, &c, err);
    if (rc == QV_OK)
        rc = qv_store_flush(app->store, c, &sealed, err);
    qv_coll_release(c);
    if (rc)
        return rc;
    RESP(Quiver__V1__FlushResponse, quiver__v1__flush_response__init, r);
    r->sealed_segments = sealed;
    *resp = &r->base;
    return QV_OK;
}

static int h_compact(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__CompactRequest *req = (const void *)m;
    qv_coll_t *c;
    int rc = get_coll(app, req->collection, &c, err);
    if (rc)
        return rc;
    uint64_t job = 0;
    uint32_t inputs = 0;
    rc = qv_store_compact(app->store, c, req->target_rows, false, &job, &inputs, err);
    qv_coll_release(c);
    if (rc == QV_EEXIST)
        rc = qv_err_set(err, QV_EPRECOND, "%s", err->msg); /* a job is running: try again later */
    if (rc)
        return rc;
    RESP(Quiver__V1__CompactResponse, quiver__v1__compact_response__init, r);
    r->job_id = job;
    r->input_segments = inputs;
    *resp = &r->base;
    return QV_OK;
}

static int stats_compactions(qv_app_t *app, qv_arena_t *ar, Quiver__V1__StatsResponse *r)
{
    qv_compaction_info_t *jobs;
    size_t n;
    if (qv_store_compactions(app->store, &jobs, &n))
        return QV_ENOMEM;
    r->compactions = qv_arena_array(ar, n ? n : 1, sizeof *r->compactions);
    int rc = r->compactions ? QV_OK : QV_ENOMEM;
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        Quiver__V1__CompactionJob *cj = qv_arena_alloc(ar, sizeof *cj);
        uint64_t *inputs = qv_arena_array(ar, jobs[i].ninputs ? jobs[i].ninputs : 1, sizeof *inputs);
        char *name = qv_arena_strndup(ar, jobs[i].collection, strlen(jobs[i].collection));
        char *error = qv_arena_strndup(ar, jobs[i].error, strlen(jobs[i].error));
        if (!cj || !inputs || !name || !error) {
            rc = QV_ENOMEM;
            break;
        }
        quiver__v1__compaction_job__init(cj);
        cj->id = jobs[i].id;
        cj->collection = name;
        cj->state = (Quiver__V1__CompactionJob__State)jobs[i].state;
        memcpy(inputs, jobs[i].inputs, jobs[i].ninputs * sizeof *inputs);
        cj->input_segments = inputs;
        cj->n_input_segments = jobs[i].ninputs;
        cj->output_segment = jobs[i].output;
        cj->rows_in = jobs[i].rows_in;
        cj->rows_out = jobs[i].rows_out;
        cj->progress = jobs[i].progress;
        cj->automatic = jobs[i].automatic;
        cj->error = error;
        cj->started_unix_ms = jobs[i].started_ms;
        cj->finished_unix_ms = jobs[i].finished_ms;
        cj->waiting_for = qv_arena_strndup(ar, jobs[i].waiting_for, strlen(jobs[i].waiting_for));
        if (!cj->waiting_for)
            rc = QV_ENOMEM;
        r->compactions[r->n_compactions++] = cj;
    }
    free(jobs);
    return rc;
}

static int h_embed(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_app_t *app = a;
    return qv_embed_serve(app->embedder, &ctx->arena, m, resp, err);
}

/* ---- backups (storage/backup.h) ---- */

static int backup_dir(const qv_app_t *app, qv_err_t *err)
{
    return app->backup_dir ? QV_OK
                           : qv_err_set(err, QV_EPRECOND, "backups are off: start quiverd with --backup-dir DIR");
}

static Quiver__V1__BackupInfo *backup_info(qv_arena_t *ar, const qv_backup_info_t *b, const char *dir)
{
    Quiver__V1__BackupInfo *bi = qv_arena_alloc(ar, sizeof *bi);
    if (!bi)
        return NULL;
    quiver__v1__backup_info__init(bi);
    bi->id = b->id;
    bi->created_unix = b->created_unix;
    bi->size_bytes = b->size_bytes;
    bi->files = b->files;
    bi->directory = (char *)dir;
    return bi;
}

static int h_backup(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp, qv_err_t *err)
{
    (void)m;
    qv_app_t *app = a;
    int rc = backup_dir(app, err);
    if (rc)
        return rc;
    int64_t t0 = qv_now_ns();
    qv_backup_info_t b;
    uint64_t copied = 0;
    if ((rc = qv_store_backup(app->store, app->backup_dir, &b, &copied, err)))
        return rc;
    RESP(Quiver__V1__BackupResponse, quiver__v1__backup_response__init, r);
    if (!(r->backup = backup_info(&ctx->arena, &b, app->backup_dir)))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    r->backup->copied_bytes = copied;
    r->took_ms = (uint64_t)((qv_now_ns() - t0) / 1000000);
    *resp = &r->base;
    return QV_OK;
}

static int h_list_backups(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp,
                          qv_err_t *err)
{
    (void)m;
    qv_app_t *app = a;
    int rc = backup_dir(app, err);
    if (rc)
        return rc;
    RESP(Quiver__V1__ListBackupsResponse, quiver__v1__list_backups_response__init, r);
    qv_backup_info_t *list;
    size_t n;
    if ((rc = qv_backup_list(app->backup_dir, &list, &n, err)))
        return rc;
    r->backups = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *r->backups);
    rc = r->backups ? QV_OK : qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        if (!(r->backups[i] = backup_info(&ctx->arena, &list[i], app->backup_dir)))
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        r->n_backups = i + 1;
    }
    free(list);
    if (rc)
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_verify_backup(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp,
                           qv_err_t *err)
{
    qv_app_t *app = a;
    const Quiver__V1__VerifyBackupRequest *req = (const void *)m;
    int rc = backup_dir(app, err);
    if (rc)
        return rc;
    if (req->id == 0)
        return qv_err_set(err, QV_EINVAL, "id is required (ListBackups gives them)");
    uint64_t bytes;
    uint32_t files;
    if ((rc = qv_backup_verify(app->backup_dir, req->id, &bytes, &files, err)))
        return rc;
    RESP(Quiver__V1__VerifyBackupResponse, quiver__v1__verify_backup_response__init, r);
    r->bytes_checked = bytes;
    r->files = files;
    *resp = &r->base;
    return QV_OK;
}

static int h_grpc_health(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp,
                         qv_err_t *err)
{
    return qv_grpc_health_check(h_health, a, ctx, m, resp, err);
}

static int h_grpc_health_watch(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *m, ProtobufCMessage **resp,
                               qv_err_t *err)
{
    return qv_grpc_health_watch(h_health, a, ctx, m, resp, err);
}

const qv_handler_t qv_handlers[] = {
    {"Quiver/CreateCollection", h_create, QV_ROLE_ADMIN},
    {"Quiver/DropCollection", h_drop, QV_ROLE_ADMIN},
    {"Quiver/ListCollections", h_list, QV_ROLE_READ},
    {"Quiver/DescribeCollection", h_describe, QV_ROLE_READ},
    {"Quiver/Upsert", h_upsert, QV_ROLE_WRITE},
    {"Quiver/Delete", h_delete, QV_ROLE_WRITE},
    {"Quiver/UpdateAttributes", h_update, QV_ROLE_WRITE},
    {"Quiver/Get", h_get, QV_ROLE_READ},
    {"Quiver/Search", h_search, QV_ROLE_READ},
    {"Quiver/Count", h_count, QV_ROLE_READ},
    {"Quiver/SearchBatch", h_search_batch, QV_ROLE_READ},
    {"Quiver/Scroll", h_scroll, QV_ROLE_READ},
    {"Quiver/Embed", h_embed, QV_ROLE_READ},
    {"Admin/Health", h_health, QV_ROLE_PUBLIC},
    {"Health/Check", h_grpc_health, QV_ROLE_PUBLIC},
    {"Health/Watch", h_grpc_health_watch, QV_ROLE_PUBLIC},
    {"ServerReflection/ServerReflectionInfo", qv_reflection_info, QV_ROLE_READ},
    {"Admin/Stats", h_stats, QV_ROLE_READ},
    {"Admin/Flush", h_flush, QV_ROLE_ADMIN},
    {"Admin/Compact", h_compact, QV_ROLE_ADMIN},
    {"Admin/Backup", h_backup, QV_ROLE_ADMIN},
    {"Admin/ListBackups", h_list_backups, QV_ROLE_ADMIN},
    {"Admin/VerifyBackup", h_verify_backup, QV_ROLE_ADMIN},
    {NULL, NULL, 0},
};

const ProtobufCServiceDescriptor *const qv_services[] = {
    &quiver__v1__quiver__descriptor, &quiver__v1__admin__descriptor, &grpc__health__v1__health__descriptor,
    &grpc__reflection__v1alpha__server_reflection__descriptor, NULL};
