/* Coordinator handlers for backups: Admin.Backup, ListBackups and VerifyBackup over the shard servers.
 *
 * Backup asks every shard server for a backup at once (each into its own --backup-dir; storage/backup.h) and
 * answers with all of them under one cluster backup id. Each shard's backup is consistent on its own (a prefix of
 * that shard's acknowledged writes); together they are not one cut across shards, since the shards' backups start
 * at slightly different instants. In etcd mode the cluster backup is recorded in etcd as
 *   <prefix>/backups/<id> = {"v":1, "created_unix":T, "shards":[{"server":NAME,"id":N,"directory":DIR},...],
 *                            "collections":{NAME: <the collection's record, as under <prefix>/collections/>}}
 * so that the collection metadata (placement included) can be put back beside restored shards; static mode records
 * nothing (the collections live on the shards themselves). A backup that failed on any shard fails the call, naming
 * the shard; the other shards' backups exist and are listed, but no cluster record is written.
 *
 * ListBackups lists every shard server's backups (BackupInfo.server names the shard) and, in etcd mode, the
 * recorded cluster backups. VerifyBackup goes to the one shard server VerifyBackupRequest.server names. */
#include <grpc/status.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "server/coord/coord_int.h"
#include "server/log.h"

#define RESP(type, init, var)                               \
    type *var = qv_arena_alloc(&ctx->arena, sizeof *var);   \
    if (!var)                                               \
        return qv_err_set(err, QV_ENOMEM, "out of memory"); \
    init(var)

/* "cb-20261207T205603Z-1a2b": time-ordered, and distinct for backups started within the same second. */
static void cluster_id(char out[40], int64_t now_s)
{
    time_t t = (time_t)now_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[20];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, 40, "cb-%s-%04x", ts, (unsigned)(qv_mono_ns() & 0xffff));
}

/* The etcd record of a cluster backup (storage format above); NULL on OOM or when etcd cannot be read. */
static char *record_json(qv_coord_t *co, int64_t created, Quiver__V1__BackupInfo *const *shards, size_t n,
                         qv_err_t *err)
{
    char pfx[512];
    snprintf(pfx, sizeof pfx, "%s/collections/", co->prefix);
    qv_kv_t *kvs = NULL;
    size_t nkv = 0;
    if (qv_etcd_range(co->etcd, pfx, true, &kvs, &nkv, err) != QV_OK)
        return NULL;
    json_t *colls = json_object(), *arr = json_array();
    size_t pl = strlen(pfx);
    for (size_t i = 0; i < nkv; i++) {
        json_t *rec = json_loadb(kvs[i].value, kvs[i].value_len, 0, NULL);
        if (rec && strlen(kvs[i].key) > pl)
            json_object_set_new(colls, kvs[i].key + pl, rec);
        else
            json_decref(rec);
    }
    qv_kvs_free(kvs, nkv);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:i, s:s}", "server", shards[i]->server, "id",
                                             (json_int_t)shards[i]->id, "directory", shards[i]->directory));
    json_t *j = json_pack("{s:i, s:I, s:o, s:o}", "v", 1, "created_unix", (json_int_t)created, "shards", arr,
                          "collections", colls);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!s)
        qv_err_set(err, QV_ENOMEM, "out of memory");
    return s;
}

static int h_backup(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp, qv_err_t *err)
{
    qv_coord_t *co = a;
    int64_t t0 = qv_mono_ns(), created = (int64_t)time(NULL);
    qv_sub_t *subs = NULL;
    const char **names;
    size_t n;
    int rc = qv_fan_members(co, ctx, "/quiver.v1.Admin/Backup", msg, &quiver__v1__backup_response__descriptor, &subs,
                            &names, &n, NULL, NULL, "backup", err);
    if (rc)
        return rc;
    RESP(Quiver__V1__BackupResponse, quiver__v1__backup_response__init, r);
    char id[40];
    cluster_id(id, created);
    r->cluster_backup_id = qv_arena_strndup(&ctx->arena, id, strlen(id));
    r->shards = qv_arena_array(&ctx->arena, n ? n : 1, sizeof *r->shards);
    if (!r->cluster_backup_id || !r->shards)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        Quiver__V1__BackupInfo *b = ((Quiver__V1__BackupResponse *)subs[i].resp)->backup;
        if (!b)
            return qv_err_set(err, QV_EIO, "shard server %s answered Backup without a backup", names[i]);
        b->server = (char *)names[i]; /* the name outlives the call: the arena copy made by qv_members_get */
        r->shards[r->n_shards++] = b;
    }
    if (co->etcd) {
        char *json = record_json(co, created, r->shards, r->n_shards, err);
        if (!json)
            return err->code ? err->code : QV_EIO;
        char key[600];
        snprintf(key, sizeof key, "%s/backups/%s", co->prefix, id);
        rc = qv_etcd_put(co->etcd, key, json, strlen(json), 0, err);
        free(json);
        if (rc)
            return rc;
    }
    r->took_ms = (uint64_t)((qv_mono_ns() - t0) / 1000000);
    qv_log(QV_LOG_INFO, "cluster.backup", "id=%s shards=%zu recorded=%s ms=%llu", id, n, co->etcd ? "etcd" : "no",
           (unsigned long long)r->took_ms);
    *resp = &r->base;
    return QV_OK;
}

/* The recorded cluster backups (etcd mode), oldest first: ids sort by time. */
static int list_cluster(qv_coord_t *co, qv_call_ctx_t *ctx, Quiver__V1__ListBackupsResponse *r, qv_err_t *err)
{
    char pfx[512];
    snprintf(pfx, sizeof pfx, "%s/backups/", co->prefix);
    qv_kv_t *kvs = NULL;
    size_t nkv = 0;
    int rc = qv_etcd_range(co->etcd, pfx, true, &kvs, &nkv, err);
    if (rc)
        return rc;
    r->cluster_backups = qv_arena_array(&ctx->arena, nkv ? nkv : 1, sizeof *r->cluster_backups);
    rc = r->cluster_backups ? QV_OK : qv_err_set(err, QV_ENOMEM, "out of memory");
    size_t pl = strlen(pfx);
    for (size_t i = 0; rc == QV_OK && i < nkv; i++) { /* etcd ranges come back in key order */
        json_t *j = json_loadb(kvs[i].value, kvs[i].value_len, 0, NULL), *shards = json_object_get(j, "shards"),
               *colls = json_object_get(j, "collections");
        if (!j || !json_is_array(shards)) { /* not written by this code: skipped, never trusted */
            json_decref(j);
            continue;
        }
        Quiver__V1__ClusterBackup *cb = qv_arena_alloc(&ctx->arena, sizeof *cb);
        size_t ns = json_array_size(shards), nc = json_is_object(colls) ? json_object_size(colls) : 0;
        if (cb) {
            quiver__v1__cluster_backup__init(cb);
            cb->shards = qv_arena_array(&ctx->arena, ns ? ns : 1, sizeof *cb->shards);
            cb->collections = qv_arena_array(&ctx->arena, nc ? nc : 1, sizeof *cb->collections);
            cb->id = qv_arena_strndup(&ctx->arena, kvs[i].key + pl, strlen(kvs[i].key + pl));
        }
        if (!cb || !cb->shards || !cb->collections || !cb->id) {
            json_decref(j);
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            break;
        }
        cb->created_unix = json_integer_value(json_object_get(j, "created_unix"));
        size_t k;
        json_t *v;
        json_array_foreach(shards, k, v) {
            const char *server = json_string_value(json_object_get(v, "server")),
                       *dir = json_string_value(json_object_get(v, "directory"));
            Quiver__V1__BackupInfo *b = qv_arena_alloc(&ctx->arena, sizeof *b);
            if (!b)
                break;
            quiver__v1__backup_info__init(b);
            b->id = (uint32_t)json_integer_value(json_object_get(v, "id"));
            b->server = server ? qv_arena_strndup(&ctx->arena, server, strlen(server)) : "";
            b->directory = dir ? qv_arena_strndup(&ctx->arena, dir, strlen(dir)) : "";
            if (!b->server || !b->directory)
                break;
            cb->shards[cb->n_shards++] = b;
        }
        const char *name;
        json_object_foreach(colls, name, v) {
            if (!(cb->collections[cb->n_collections] = qv_arena_strndup(&ctx->arena, name, strlen(name))))
                break;
            cb->n_collections++;
        }
        json_decref(j);
        if (cb->n_shards != ns || cb->n_collections != nc) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            break;
        }
        r->cluster_backups[r->n_cluster_backups++] = cb;
    }
    qv_kvs_free(kvs, nkv);
    return rc;
}

static int h_list_backups(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                          qv_err_t *err)
{
    qv_coord_t *co = a;
    qv_sub_t *subs = NULL;
    const char **names;
    size_t n;
    int rc = qv_fan_members(co, ctx, "/quiver.v1.Admin/ListBackups", msg,
                            &quiver__v1__list_backups_response__descriptor, &subs, &names, &n, NULL, NULL,
                            "list backups", err);
    if (rc)
        return rc;
    RESP(Quiver__V1__ListBackupsResponse, quiver__v1__list_backups_response__init, r);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ((Quiver__V1__ListBackupsResponse *)subs[i].resp)->n_backups;
    r->backups = qv_arena_array(&ctx->arena, total ? total : 1, sizeof *r->backups);
    if (!r->backups)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__ListBackupsResponse *p = (const void *)subs[i].resp;
        for (size_t k = 0; k < p->n_backups; k++) {
            p->backups[k]->server = (char *)names[i];
            r->backups[r->n_backups++] = p->backups[k];
        }
    }
    if (co->etcd && (rc = list_cluster(co, ctx, r, err)))
        return rc;
    *resp = &r->base;
    return QV_OK;
}

static int h_verify_backup(void *a, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                           qv_err_t *err)
{
    qv_coord_t *co = a;
    const Quiver__V1__VerifyBackupRequest *req = (const void *)msg;
    if (!req->server[0])
        return qv_err_set(err, QV_EINVAL, "server is required on a coordinator: the shard server whose backup this "
                                          "is (BackupInfo.server in ListBackups)");
    const char **names;
    qv_shard_t **shards;
    size_t n;
    int rc = qv_members_get(co, ctx, &names, &shards, &n, err);
    if (rc)
        return rc;
    size_t i = 0;
    while (i < n && strcmp(names[i], req->server) != 0)
        i++;
    if (i == n) {
        qv_members_release(shards, n);
        return qv_err_set(err, QV_ENOTFOUND, "no shard server named %.200s", req->server);
    }
    qv_sub_t *sub = qv_subs_same(ctx, &names[i], &shards[i], 1, "/quiver.v1.Admin/VerifyBackup", msg,
                                 &quiver__v1__verify_backup_response__descriptor);
    if (sub) {
        qv_fanout(&co->client, ctx, sub, 1);
        rc = qv_outcome(ctx, sub, 1, false, NULL, NULL, "verify backup", err);
    } else {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    qv_members_release(shards, n);
    if (rc)
        return rc;
    *resp = sub->resp;
    return QV_OK;
}

const qv_handler_t qv_coord_backup_handlers[] = {
    {"Admin/Backup", h_backup, QV_ROLE_ADMIN},
    {"Admin/ListBackups", h_list_backups, QV_ROLE_ADMIN},
    {"Admin/VerifyBackup", h_verify_backup, QV_ROLE_ADMIN},
    {NULL, NULL, 0},
};
