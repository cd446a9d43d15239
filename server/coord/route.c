/* Membership, collection metadata and routes.
 *
 * Static mode (--shards A,B,C): the members are the list, in order, named by their addresses. A collection's
 * metadata is read from the shards themselves (DescribeCollection: schema and shard count S, which every shard
 * stores because the coordinator created it there with shards = S) and cached for two seconds; logical shard j
 * lives on member j mod N. The list must therefore never be reordered (appending changes N and so the placement of
 * existing collections too: a static cluster cannot grow; use etcd for that).
 *
 * etcd mode (--etcd URL): shards register `<prefix>/shards/<name>` = {"addr": "H:P"} under a lease; collections
 * are `<prefix>/collections/<name>` = the JSON record below, written by CreateCollection. A poller thread re-reads
 * both prefixes every --etcd-poll-ms and swaps in the new member list and collection table; when etcd cannot be
 * reached it keeps the last ones, so the coordinator goes on serving the collections and shards it knew.
 *
 * Collection record (JSON, version 1):
 *   {"v": 1, "state": "creating" | "ready", "shards": S, "assign": [name of the server of logical shard 0, ...],
 *    "dim": D, "metric": 1..3, "index": {"kind": 1|2, "m": M, "ef_construction": E, "quant": 0..2, "pq_m": P},
 *    "embed": 0|1,
 *    "fields": [{"name": "...", "type": 1..5}, ...], "dynamic": true|false}
 * ("dynamic", and the index's "quant" and "pq_m", are absent from records written before they existed: 0.)
 * The assignment is fixed at creation (logical shard j -> the j mod N-th registered shard, by name); a shard that
 * restarts on another address keeps its name and so its data. */
#include <grpc/status.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/hash.h"
#include "server/coord/coord_int.h"
#include "server/log.h"

uint32_t qv_shard_of(const char *id, uint32_t nshards)
{
    return (uint32_t)(qv_checksum(id, strlen(id)) % (nshards ? nshards : 1));
}

void qv_cmeta_unref(qv_cmeta_t *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    for (uint32_t j = 0; m->assign && j < m->nshards; j++)
        free(m->assign[j]);
    free(m->assign);
    free(m->schema);
    free(m->name);
    free(m);
}

qv_schema_t *qv_schema_of_info(const Quiver__V1__CollectionInfo *ci)
{
    if (!ci || ci->n_fields > QV_FIELDS_MAX || strlen(ci->name) > QV_NAME_MAX)
        return NULL;
    qv_schema_t *s = qv_schema_alloc((uint16_t)ci->n_fields);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", ci->name);
    s->dim = ci->dim;
    s->metric = (uint8_t)ci->metric;
    s->shards = ci->shards;
    s->index_kind = ci->index && ci->index->kind == QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT ? QV_INDEX_FLAT
                                                                                         : QV_INDEX_HNSW;
    s->hnsw_m = ci->index ? ci->index->m : 0;
    s->hnsw_efc = ci->index ? ci->index->ef_construction : 0;
    int q = ci->index ? ci->index->quantization : 0;
    s->quant = q == QUIVER__V1__QUANTIZATION__QUANTIZATION_SQ8  ? QV_QUANT_SQ8
               : q == QUIVER__V1__QUANTIZATION__QUANTIZATION_PQ ? QV_QUANT_PQ
                                                                 : QV_QUANT_NONE;
    s->pq_m = ci->index ? ci->index->pq_m : 0;
    s->embed = ci->embedding_model && strcmp(ci->embedding_model, QV_EMBED_MINILM_NAME) == 0 ? QV_EMBED_MINILM
                                                                                            : QV_EMBED_NONE;
    s->dynamic = ci->dynamic_attributes;
    s->nfields = (uint16_t)ci->n_fields;
    for (size_t i = 0; i < ci->n_fields; i++) {
        snprintf(s->fields[i].name, sizeof s->fields[i].name, "%s", ci->fields[i]->name);
        s->fields[i].type = (uint8_t)ci->fields[i]->type;
    }
    qv_err_t err;
    if (qv_schema_validate(s, &err) != QV_OK) {
        free(s);
        return NULL;
    }
    return s;
}

static qv_cmeta_t *cmeta_new(const char *name, qv_schema_t *schema)
{
    qv_cmeta_t *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        free(schema);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->schema = schema;
    m->nshards = schema->shards;
    m->ready = true;
    m->fetched_ns = qv_mono_ns();
    return m;
}

/* ---- members ---- */

int qv_members_get(qv_coord_t *co, qv_call_ctx_t *ctx, const char ***names, qv_shard_t ***shards, size_t *n,
                   qv_err_t *err)
{
    pthread_mutex_lock(&co->mu);
    size_t cnt = co->nmembers;
    const char **nm = qv_arena_array(&ctx->arena, cnt ? cnt : 1, sizeof *nm);
    qv_shard_t **sh = qv_arena_array(&ctx->arena, cnt ? cnt : 1, sizeof *sh);
    for (size_t i = 0; nm && sh && i < cnt; i++) {
        nm[i] = qv_arena_strndup(&ctx->arena, co->members[i].name, strlen(co->members[i].name));
        sh[i] = co->members[i].shard;
        qv_shard_ref(sh[i]);
        if (!nm[i])
            nm[i] = "?";
    }
    bool loaded = co->loaded;
    pthread_mutex_unlock(&co->mu);
    if (!nm || !sh) {
        for (size_t i = 0; sh && i < cnt; i++)
            qv_shard_unref(sh[i]);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    if (!cnt) {
        if (!loaded)
            return qv_err_set(err, QV_EUNAVAIL, "no shard map yet: etcd has not answered since start-up");
        return qv_err_set(err, QV_EUNAVAIL, "no shard servers are registered");
    }
    *names = nm;
    *shards = sh;
    *n = cnt;
    return QV_OK;
}

void qv_members_release(qv_shard_t **shards, size_t n)
{
    for (size_t i = 0; shards && i < n; i++)
        qv_shard_unref(shards[i]);
}

/* ---- collection table ---- */

static long find_coll(qv_coord_t *co, const char *name)
{
    for (size_t i = 0; i < co->ncolls; i++)
        if (strcmp(co->colls[i]->name, name) == 0)
            return (long)i;
    return -1;
}

static void absent_clear(qv_coord_t *co, const char *name);

/* Puts m into the table (taking a new reference for it), replacing an entry of the same name. */
static void table_put(qv_coord_t *co, qv_cmeta_t *m)
{
    pthread_mutex_lock(&co->mu);
    absent_clear(co, m->name);
    long i = find_coll(co, m->name);
    if (i >= 0) {
        atomic_fetch_add(&m->refs, 1);
        qv_cmeta_unref(co->colls[i]);
        co->colls[i] = m;
    } else {
        qv_cmeta_t **g = realloc(co->colls, (co->ncolls + 1) * sizeof *g);
        if (g) {
            atomic_fetch_add(&m->refs, 1);
            g[co->ncolls++] = m;
            co->colls = g;
        }
    }
    pthread_mutex_unlock(&co->mu);
}

void qv_meta_invalidate(qv_coord_t *co, const char *name)
{
    pthread_mutex_lock(&co->mu);
    absent_clear(co, name); /* a create or drop through this coordinator: look again */
    if (co->etcd) { /* etcd mode: the record is the truth; create/drop rewrite it and the poller refreshes it */
        pthread_mutex_unlock(&co->mu);
        return;
    }
    long i = find_coll(co, name);
    if (i >= 0) {
        qv_cmeta_unref(co->colls[i]);
        co->colls[i] = co->colls[--co->ncolls];
    }
    pthread_mutex_unlock(&co->mu);
}

/* Static mode: DescribeCollection on the members in turn; the first that answers (OK or a request error) decides. */
static int describe_static(qv_coord_t *co, qv_call_ctx_t *ctx, const char *name, qv_cmeta_t **out, qv_err_t *err)
{
    const char **names;
    qv_shard_t **shards;
    size_t n;
    int rc = qv_members_get(co, ctx, &names, &shards, &n, err);
    if (rc)
        return rc;
    Quiver__V1__DescribeCollectionRequest req = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    req.name = (char *)name;
    qv_sub_t *subs = qv_subs_same(ctx, names, shards, n, "/quiver.v1.Quiver/DescribeCollection", &req.base,
                                  &quiver__v1__describe_collection_response__descriptor);
    rc = subs ? QV_EUNAVAIL : qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; subs && i < n && rc == QV_EUNAVAIL; i++) {
        qv_fanout(&co->client, ctx, &subs[i], 1);
        if (qv_sub_failed(&subs[i])) {
            if (i + 1 == n)
                rc = qv_outcome(ctx, subs, n, false, NULL, NULL, "collection lookup", err);
            continue;
        }
        if (subs[i].status != GRPC_STATUS_OK) {
            rc = qv_err_set(err, qv_code_of_status(subs[i].status), "%s", subs[i].details);
            break;
        }
        const Quiver__V1__DescribeCollectionResponse *r = (const void *)subs[i].resp;
        qv_schema_t *s = qv_schema_of_info(r->collection);
        qv_cmeta_t *m = s ? cmeta_new(name, s) : NULL;
        if (!m) {
            rc = qv_err_set(err, QV_EIO, "shard %s described collection '%.80s' with an invalid schema", names[i],
                            name);
            break;
        }
        table_put(co, m);
        *out = m;
        rc = QV_OK;
    }
    qv_members_release(shards, n);
    return rc;
}

/* The negative cache (coord_int.h QV_NEGATIVE_CACHE_NS), under co->mu. */
static bool absent_hit(qv_coord_t *co, uint64_t h, int64_t now)
{
    for (size_t i = 0; i < QV_NEGATIVE_CACHE_SIZE; i++)
        if (co->absent[i].hash == h && co->absent[i].until_ns > now)
            return true;
    return false;
}

static void absent_put(qv_coord_t *co, uint64_t h, int64_t now)
{
    pthread_mutex_lock(&co->mu);
    co->absent[co->absent_next].hash = h;
    co->absent[co->absent_next].until_ns = now + QV_NEGATIVE_CACHE_NS;
    co->absent_next = (co->absent_next + 1) % QV_NEGATIVE_CACHE_SIZE;
    pthread_mutex_unlock(&co->mu);
}

static void absent_clear(qv_coord_t *co, const char *name)
{
    uint64_t h = qv_hash(name, strlen(name));
    for (size_t i = 0; i < QV_NEGATIVE_CACHE_SIZE; i++)
        if (co->absent[i].hash == h)
            co->absent[i].until_ns = 0;
}

static int lookup(qv_coord_t *co, qv_call_ctx_t *ctx, const char *name, qv_cmeta_t **out, qv_err_t *err)
{
    size_t len = strlen(name);
    if (len == 0)
        return qv_err_set(err, QV_EINVAL, "collection name is empty");
    int64_t now = qv_mono_ns();
    uint64_t h = qv_hash(name, len);
    pthread_mutex_lock(&co->mu);
    long i = find_coll(co, name);
    qv_cmeta_t *m = NULL;
    if (i >= 0 && co->colls[i]->ready && (co->etcd || now - co->colls[i]->fetched_ns < QV_STATIC_CACHE_NS)) {
        m = co->colls[i];
        atomic_fetch_add(&m->refs, 1);
    }
    bool loaded = co->loaded, absent = !m && absent_hit(co, h, now);
    pthread_mutex_unlock(&co->mu);
    if (m) {
        *out = m;
        return QV_OK;
    }
    if (absent)
        return qv_err_set(err, QV_ENOTFOUND, "collection '%.*s' not found", (int)(len > 80 ? 80 : len), name);
    int rc;
    if (!co->etcd) {
        rc = describe_static(co, ctx, name, out, err);
    } else if (!loaded) {
        return qv_err_set(err, QV_EUNAVAIL, "no shard map yet: etcd has not answered since start-up");
    } else {
        /* etcd mode, not in the last poll: it may have been created since (through another coordinator) */
        qv_err_t ferr;
        if (qv_meta_fetch(co, name, &m, &ferr) == QV_OK && m && m->ready) {
            table_put(co, m);
            *out = m;
            return QV_OK;
        }
        qv_cmeta_unref(m);
        rc = qv_err_set(err, QV_ENOTFOUND, "collection '%.*s' not found", (int)(len > 80 ? 80 : len), name);
    }
    if (rc == QV_ENOTFOUND)
        absent_put(co, h, now);
    return rc;
}

int qv_route(qv_coord_t *co, qv_call_ctx_t *ctx, const char *name, qv_route_t *rt, qv_err_t *err)
{
    memset(rt, 0, sizeof *rt);
    qv_cmeta_t *m;
    int rc = lookup(co, ctx, name, &m, err);
    if (rc)
        return rc;
    return qv_route_of(co, ctx, m, rt, err);
}

int qv_route_of(qv_coord_t *co, qv_call_ctx_t *ctx, qv_cmeta_t *m, qv_route_t *rt, qv_err_t *err)
{
    memset(rt, 0, sizeof *rt);
    uint32_t S = m->nshards;
    rt->meta = m;
    rt->server_of = qv_arena_array(&ctx->arena, S, sizeof *rt->server_of);
    rt->names = qv_arena_array(&ctx->arena, S, sizeof *rt->names);
    rt->shards = qv_arena_array(&ctx->arena, S, sizeof *rt->shards);
    if (!rt->server_of || !rt->names || !rt->shards) {
        qv_route_release(rt);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&co->mu);
    if (!m->assign) { /* static: logical shard j on member j mod N */
        size_t N = co->nmembers;
        rt->nservers = S < N ? S : N;
        for (size_t i = 0; i < rt->nservers; i++) {
            rt->names[i] = co->members[i].name; /* static members never change: the pointer stays valid */
            rt->shards[i] = co->members[i].shard;
            qv_shard_ref(rt->shards[i]);
        }
        for (uint32_t j = 0; j < S; j++)
            rt->server_of[j] = (uint32_t)(j % N);
    } else {
        for (uint32_t j = 0; j < S; j++) {
            size_t k = 0;
            while (k < rt->nservers && strcmp(rt->names[k], m->assign[j]) != 0)
                k++;
            if (k == rt->nservers) {
                rt->names[k] = m->assign[j]; /* lives as long as m, which the route references */
                rt->shards[k] = NULL;
                for (size_t i = 0; i < co->nmembers; i++)
                    if (strcmp(co->members[i].name, m->assign[j]) == 0) {
                        rt->shards[k] = co->members[i].shard;
                        qv_shard_ref(rt->shards[k]);
                    }
                rt->nservers++;
            }
            rt->server_of[j] = (uint32_t)k;
        }
    }
    pthread_mutex_unlock(&co->mu);
    return QV_OK;
}

void qv_route_release(qv_route_t *rt)
{
    for (size_t i = 0; rt->shards && i < rt->nservers; i++)
        qv_shard_unref(rt->shards[i]);
    qv_cmeta_unref(rt->meta);
    memset(rt, 0, sizeof *rt);
}

/* ---- etcd records ---- */

void qv_meta_key(const qv_coord_t *co, const char *name, char *key, size_t size)
{
    snprintf(key, size, "%s/collections/%s", co->prefix, name);
}

char *qv_meta_encode(const qv_cmeta_t *m, const char *state)
{
    const qv_schema_t *s = m->schema;
    json_t *assign = json_array(), *fields = json_array();
    for (uint32_t j = 0; j < m->nshards; j++)
        json_array_append_new(assign, json_string(m->assign[j]));
    for (int i = 0; i < s->nfields; i++)
        json_array_append_new(fields, json_pack("{s:s, s:i}", "name", s->fields[i].name, "type", s->fields[i].type));
    json_t *j = json_pack("{s:i, s:s, s:i, s:o, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:o, s:b}", "v", 1,
                          "state", state, "shards", (int)m->nshards, "assign", assign, "dim", (int)s->dim, "metric",
                          s->metric, "index", "kind", s->index_kind, "m", (int)s->hnsw_m, "ef_construction",
                          (int)s->hnsw_efc, "quant", s->quant, "pq_m", (int)s->pq_m, "embed", s->embed, "fields",
                          fields, "dynamic", s->dynamic);
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

qv_cmeta_t *qv_meta_decode(const char *name, const char *text, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    json_t *fields = json_object_get(j, "fields"), *assign = json_object_get(j, "assign");
    json_t *index = json_object_get(j, "index");
    size_t nf = json_array_size(fields), S = json_array_size(assign);
    if (!j || json_integer_value(json_object_get(j, "v")) != 1 || nf > QV_FIELDS_MAX || S == 0 ||
        S != (size_t)json_integer_value(json_object_get(j, "shards")) || S > QV_SHARDS_MAX ||
        strlen(name) > QV_NAME_MAX) {
        json_decref(j);
        return NULL;
    }
    qv_schema_t *s = qv_schema_alloc((uint16_t)nf);
    if (!s) {
        json_decref(j);
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dim = (uint32_t)json_integer_value(json_object_get(j, "dim"));
    s->metric = (uint8_t)json_integer_value(json_object_get(j, "metric"));
    s->shards = (uint32_t)S;
    s->index_kind = (uint8_t)json_integer_value(json_object_get(index, "kind"));
    s->hnsw_m = (uint32_t)json_integer_value(json_object_get(index, "m"));
    s->hnsw_efc = (uint32_t)json_integer_value(json_object_get(index, "ef_construction"));
    s->quant = (uint8_t)json_integer_value(json_object_get(index, "quant")); /* absent in older records: 0 */
    s->pq_m = (uint32_t)json_integer_value(json_object_get(index, "pq_m"));
    s->embed = (uint8_t)json_integer_value(json_object_get(j, "embed"));
    s->dynamic = json_is_true(json_object_get(j, "dynamic")); /* absent in records written before it existed */
    s->nfields = (uint16_t)nf;
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(fields, i);
        const char *fn = json_string_value(json_object_get(f, "name"));
        snprintf(s->fields[i].name, sizeof s->fields[i].name, "%s", fn ? fn : "");
        s->fields[i].type = (uint8_t)json_integer_value(json_object_get(f, "type"));
    }
    qv_err_t err;
    if (qv_schema_validate(s, &err) != QV_OK) {
        free(s);
        json_decref(j);
        return NULL;
    }
    qv_cmeta_t *m = cmeta_new(name, s); /* takes s, and frees it on failure */
    if (!m) {
        json_decref(j);
        return NULL;
    }
    m->ready = strcmp(json_string_value(json_object_get(j, "state")) ?: "", "ready") == 0;
    m->assign = calloc(S, sizeof *m->assign);
    for (size_t k = 0; m->assign && k < S; k++) {
        const char *a = json_string_value(json_array_get(assign, k));
        if (!a || !(m->assign[k] = strdup(a))) {
            qv_cmeta_unref(m);
            json_decref(j);
            return NULL;
        }
    }
    json_decref(j);
    if (!m->assign) {
        qv_cmeta_unref(m);
        return NULL;
    }
    return m;
}

int qv_meta_fetch(qv_coord_t *co, const char *name, qv_cmeta_t **out, qv_err_t *err)
{
    *out = NULL;
    char key[512];
    qv_meta_key(co, name, key, sizeof key);
    qv_kv_t *kvs;
    size_t n;
    int rc = qv_etcd_range(co->etcd, key, false, &kvs, &n, err);
    if (rc)
        return rc;
    if (n == 1 && !(*out = qv_meta_decode(name, kvs[0].value, kvs[0].value_len)))
        rc = qv_err_set(err, QV_ECORRUPT, "etcd record %s is not a valid collection record", key);
    qv_kvs_free(kvs, n);
    return rc;
}

/* ---- the etcd poller ---- */

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const qv_member_t *)a)->name, ((const qv_member_t *)b)->name);
}

/* Reads both prefixes; on success swaps in the new member list and collection table. */
static int poll_once(qv_coord_t *co, qv_etcd_t *e, qv_err_t *err)
{
    char pfx[512];
    snprintf(pfx, sizeof pfx, "%s/shards/", co->prefix);
    qv_kv_t *sk, *ck;
    size_t ns, nc;
    int rc = qv_etcd_range(e, pfx, true, &sk, &ns, err);
    if (rc)
        return rc;
    char cpfx[512];
    snprintf(cpfx, sizeof cpfx, "%s/collections/", co->prefix);
    if ((rc = qv_etcd_range(e, cpfx, true, &ck, &nc, err)) != QV_OK) {
        qv_kvs_free(sk, ns);
        return rc;
    }
    size_t plen = strlen(pfx), cplen = strlen(cpfx);
    qv_member_t *members = calloc(ns ? ns : 1, sizeof *members);
    qv_cmeta_t **colls = calloc(nc ? nc : 1, sizeof *colls);
    size_t nm = 0, ncl = 0;
    for (size_t i = 0; members && i < ns; i++) {
        json_error_t je;
        json_t *j = json_loadb(sk[i].value, sk[i].value_len, 0, &je);
        const char *addr = json_string_value(json_object_get(j, "addr"));
        const char *name = sk[i].key + plen;
        char *nm_s = addr && *name ? strdup(name) : NULL, *ad = nm_s ? strdup(addr) : NULL;
        if (ad) {
            members[nm].name = nm_s;
            members[nm].addr_tmp = ad;
            nm++;
        } else {
            free(nm_s);
        }
        json_decref(j);
    }
    for (size_t i = 0; colls && i < nc; i++) {
        qv_cmeta_t *m = qv_meta_decode(ck[i].key + cplen, ck[i].value, ck[i].value_len);
        if (m)
            colls[ncl++] = m;
        else
            qv_log(QV_LOG_WARN, "etcd.bad_record", "key=%s", ck[i].key);
    }
    qv_kvs_free(sk, ns);
    qv_kvs_free(ck, nc);
    if (!members || !colls) {
        free(members);
        free(colls);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    qsort(members, nm, sizeof *members, cmp_member);
    /* keep the channels of members whose address did not change */
    pthread_mutex_lock(&co->mu);
    for (size_t i = 0; i < nm; i++) {
        for (size_t k = 0; k < co->nmembers && !members[i].shard; k++)
            if (strcmp(co->members[k].name, members[i].name) == 0 &&
                strcmp(co->members[k].shard->addr, members[i].addr_tmp) == 0) {
                members[i].shard = co->members[k].shard;
                qv_shard_ref(members[i].shard);
            }
    }
    pthread_mutex_unlock(&co->mu);
    for (size_t i = 0; i < nm; i++) {
        if (!members[i].shard) {
            members[i].shard = qv_shard_open(&co->client, members[i].name, members[i].addr_tmp);
            qv_log(QV_LOG_INFO, "cluster.shard_up", "name=%s addr=%s", members[i].name, members[i].addr_tmp);
        }
        free(members[i].addr_tmp);
        members[i].addr_tmp = NULL;
    }
    size_t k = 0; /* drop members whose channel could not be made */
    for (size_t i = 0; i < nm; i++) {
        if (members[i].shard)
            members[k++] = members[i];
        else
            free(members[i].name);
    }
    nm = k;
    pthread_mutex_lock(&co->mu);
    qv_member_t *old = co->members;
    size_t nold = co->nmembers;
    qv_cmeta_t **oldc = co->colls;
    size_t noldc = co->ncolls;
    co->members = members;
    co->nmembers = nm;
    co->colls = colls;
    co->ncolls = ncl;
    co->loaded = true;
    pthread_mutex_unlock(&co->mu);
    for (size_t i = 0; i < nold; i++) {
        bool kept = false;
        for (size_t j = 0; j < nm && !kept; j++)
            kept = strcmp(members[j].name, old[i].name) == 0;
        if (!kept)
            qv_log(QV_LOG_INFO, "cluster.shard_gone", "name=%s addr=%s", old[i].name, old[i].shard->addr);
        qv_shard_unref(old[i].shard);
        free(old[i].name);
    }
    free(old);
    for (size_t i = 0; i < noldc; i++)
        qv_cmeta_unref(oldc[i]);
    free(oldc);
    return QV_OK;
}

static void *poller_main(void *arg)
{
    qv_coord_t *co = arg;
    qv_etcd_t *e; /* a connection of its own, so a slow poll never delays a handler's etcd call */
    qv_err_t err;
    if (qv_etcd_open(co->cfg->etcd, &e, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "etcd.open_failed", "msg=\"%s\"", err.msg);
        return NULL;
    }
    pthread_mutex_lock(&co->poll_mu);
    while (!co->stop) {
        pthread_mutex_unlock(&co->poll_mu);
        qv_err_clear(&err);
        int rc = poll_once(co, e, &err);
        if (rc != QV_OK && !co->etcd_down)
            qv_log(QV_LOG_WARN, "etcd.unreachable", "msg=\"%s\" action=serving_from_last_shard_map", err.msg);
        else if (rc == QV_OK && co->etcd_down)
            qv_log(QV_LOG_INFO, "etcd.reachable", "prefix=%s", co->prefix);
        co->etcd_down = rc != QV_OK;
        pthread_mutex_lock(&co->poll_mu);
        /* poll_cv runs on CLOCK_MONOTONIC: a wall-clock step must not stall (or hurry) the polling */
        int64_t next = qv_mono_ns() + co->cfg->etcd_poll_ms * 1000000LL;
        struct timespec until = qv_mono_ts(next);
        while (!co->stop && pthread_cond_timedwait(&co->poll_cv, &co->poll_mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&co->poll_mu);
    qv_etcd_close(e);
    return NULL;
}

int qv_meta_start(qv_coord_t *co, qv_err_t *err)
{
    int rc = qv_etcd_open(co->cfg->etcd, &co->etcd, err);
    if (rc)
        return rc;
    /* a first synchronous read, so a coordinator that can reach etcd serves its full map from the first call */
    qv_err_t perr;
    if (poll_once(co, co->etcd, &perr) != QV_OK) {
        qv_log(QV_LOG_WARN, "etcd.unreachable", "msg=\"%s\" action=retrying_in_background", perr.msg);
        co->etcd_down = true;
    }
    pthread_mutex_init(&co->poll_mu, NULL);
    qv_cond_init_mono(&co->poll_cv);
    if (pthread_create(&co->poller, NULL, poller_main, co) != 0)
        return qv_err_set(err, QV_ENOMEM, "cannot start the etcd poller thread");
    return QV_OK;
}

void qv_meta_stop(qv_coord_t *co)
{
    if (!co->etcd)
        return;
    pthread_mutex_lock(&co->poll_mu);
    co->stop = true;
    pthread_cond_broadcast(&co->poll_cv);
    pthread_mutex_unlock(&co->poll_mu);
    pthread_join(co->poller, NULL);
    pthread_mutex_destroy(&co->poll_mu);
    pthread_cond_destroy(&co->poll_cv);
}

void qv_meta_put(qv_coord_t *co, qv_cmeta_t *m) { table_put(co, m); }

void qv_meta_remove(qv_coord_t *co, const char *name)
{
    pthread_mutex_lock(&co->mu);
    long i = find_coll(co, name);
    if (i >= 0) {
        qv_cmeta_unref(co->colls[i]);
        co->colls[i] = co->colls[--co->ncolls];
    }
    pthread_mutex_unlock(&co->mu);
}

qv_cmeta_t *qv_cmeta_new(const char *name, qv_schema_t *schema) { return cmeta_new(name, schema); }
