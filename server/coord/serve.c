/* The coordinator process: shard client set-up, membership (static list or etcd), the rpc loop over the
 * coordinator's handler table, and an orderly stop on SIGTERM/SIGINT; and the shard role's etcd registration. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_api.h"
#include "server/coord/coord_int.h"
#include "server/log.h"
#include "server/metrics.h"

#define MAX_HANDLERS 32

extern const ProtobufCServiceDescriptor *const qv_services[]; /* server/service.c: the same services */

void qv_coord_global_init(void) { qv_etcd_global_init(); }

int qv_shard_register(const char *etcd, const char *prefix, const char *name, const char *advertise, int ttl_s,
                      qv_etcd_reg_t **out, qv_err_t *err)
{
    char key[512], value[512];
    snprintf(key, sizeof key, "%s/shards/%s", prefix, name);
    snprintf(value, sizeof value, "{\"addr\":\"%s\"}", advertise);
    return qv_etcd_register_start(etcd, key, value, ttl_s, out, err);
}

void qv_shard_unregister(qv_etcd_reg_t *r) { qv_etcd_register_stop(r); }

/* Static members from "H:P,H:P,...", named by their addresses. */
static int static_members(qv_coord_t *co, const char *list, qv_err_t *err)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n) {
            char addr[256];
            if (n >= sizeof addr)
                return qv_err_set(err, QV_EINVAL, "--shards: address too long");
            memcpy(addr, p, n);
            addr[n] = '\0';
            for (size_t i = 0; i < co->nmembers; i++)
                if (strcmp(co->members[i].name, addr) == 0)
                    return qv_err_set(err, QV_EINVAL, "--shards lists %s twice", addr);
            qv_member_t *m = realloc(co->members, (co->nmembers + 1) * sizeof *m);
            if (!m)
                return qv_err_set(err, QV_ENOMEM, "out of memory");
            co->members = m;
            m = &co->members[co->nmembers];
            memset(m, 0, sizeof *m);
            if (!(m->name = strdup(addr)) || !(m->shard = qv_shard_open(&co->client, addr, addr))) {
                free(m->name);
                return qv_err_set(err, QV_ENOMEM, "out of memory");
            }
            co->nmembers++;
        }
        p += n + (p[n] == ',');
    }
    if (!co->nmembers)
        return qv_err_set(err, QV_EINVAL, "--shards lists no address");
    if (co->nmembers > QV_SHARDS_MAX)
        return qv_err_set(err, QV_EINVAL, "--shards lists more than %d servers", QV_SHARDS_MAX);
    co->loaded = true;
    return QV_OK;
}

static void coord_free(qv_coord_t *co)
{
    for (size_t i = 0; i < co->nmembers; i++) {
        qv_shard_unref(co->members[i].shard);
        free(co->members[i].name);
    }
    free(co->members);
    for (size_t i = 0; i < co->ncolls; i++)
        qv_cmeta_unref(co->colls[i]);
    free(co->colls);
    qv_etcd_close(co->etcd);
    free(co->client.api_key);
    free(co->prefix);
    pthread_mutex_destroy(&co->mu);
}

int qv_coord_main(const qv_coord_cfg_t *cfg)
{
    qv_coord_t co;
    memset(&co, 0, sizeof co);
    co.cfg = cfg;
    co.started_ns = qv_mono_ns();
    pthread_mutex_init(&co.mu, NULL);
    co.client.ca_pem = cfg->shard_ca_pem;
    co.client.cert_pem = cfg->shard_cert_pem;
    co.client.key_pem = cfg->shard_key_pem;
    co.client.max_message_bytes = cfg->max_message_bytes;
    co.client.default_timeout_ns = cfg->shard_timeout_ms * 1000000LL;
    /* below --threads, so that a hung shard leaves handler threads for the other shards and for Health */
    int quarter = cfg->threads / 4 > 1 ? cfg->threads / 4 : 1;
    int per_shard = cfg->shard_max_inflight > 0 ? cfg->shard_max_inflight : cfg->threads - quarter;
    co.client.shard_max_inflight = per_shard > 0 ? per_shard : 1; /* --threads 1 leaves no thread to spare */
    if (cfg->shard_api_key) {
        size_t n = strlen(cfg->shard_api_key) + 8;
        if ((co.client.api_key = malloc(n)))
            snprintf(co.client.api_key, n, "Bearer %s", cfg->shard_api_key);
    }
    const char *pfx = cfg->etcd_prefix ? cfg->etcd_prefix : "/quiver";
    size_t pl = strlen(pfx);
    while (pl > 1 && pfx[pl - 1] == '/')
        pl--;
    co.prefix = strndup(pfx, pl);
    qv_err_t err;
    qv_err_clear(&err);
    int rc = cfg->etcd ? qv_meta_start(&co, &err) : static_members(&co, cfg->shards, &err);
    if (rc) {
        qv_log(QV_LOG_ERROR, "coordinator.start_failed", "msg=\"%s\"", err.msg);
        coord_free(&co);
        return rc == QV_EINVAL ? 2 : 1;
    }
    static qv_handler_t handlers[MAX_HANDLERS];
    size_t nh = 0;
    const qv_handler_t *tables[] = {qv_coord_write_handlers, qv_coord_read_handlers, qv_coord_admin_handlers,
                                    qv_coord_backup_handlers};
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (const qv_handler_t *h = tables[t]; h->name; h++) {
            if (nh + 1 >= MAX_HANDLERS) { /* a programming error, never a silently missing method */
                qv_log(QV_LOG_ERROR, "coordinator.start_failed", "msg=\"more than %d handlers: raise MAX_HANDLERS\"",
                       MAX_HANDLERS - 1);
                coord_free(&co);
                return 1;
            }
            handlers[nh++] = *h;
        }
    handlers[nh] = (qv_handler_t){NULL, NULL, 0};
    qv_rpc_opts_t ro = {.listen = cfg->listen, .threads = cfg->threads, .max_message_bytes = cfg->max_message_bytes,
                        .services = qv_services, .handlers = handlers, .app = &co, .observe = qv_metrics_observe,
                        .max_inflight = cfg->max_inflight, .request_read_timeout_ms = cfg->request_read_timeout_ms,
                        .max_streams_per_connection = cfg->max_streams_per_connection, .keys = cfg->keys,
                        .tls_cert_pem = cfg->tls_cert_pem, .tls_key_pem = cfg->tls_key_pem,
                        .tls_client_ca_pem = cfg->tls_client_ca_pem};
    qv_rpc_t *rpc;
    if (qv_rpc_start(&ro, &rpc, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "server.listen_failed", "listen=%s msg=\"%s\"", cfg->listen, err.msg);
        qv_meta_stop(&co);
        coord_free(&co);
        return 1;
    }
    /* the same handlers over HTTP/JSON on the --http-listen listener (server/http_api.h) */
    qv_http_api_t api = {.services = qv_services, .handlers = handlers, .app = &co, .keys = cfg->keys,
                         .max_message_bytes = cfg->max_message_bytes, .observe = qv_metrics_observe};
    qv_metrics_attach_api(cfg->http, &api);
    pthread_mutex_lock(&co.mu);
    size_t nm = co.nmembers;
    pthread_mutex_unlock(&co.mu);
    qv_log(QV_LOG_INFO, "server.start",
           "role=coordinator listen=%s port=%d membership=%s shards=%zu threads=%d shard_max_inflight=%d "
           "shard_timeout_ms=%lld tls=%s shard_tls=%s auth=%s",
           cfg->listen, qv_rpc_port(rpc), cfg->etcd ? cfg->etcd : "static", nm, cfg->threads,
           co.client.shard_max_inflight, (long long)cfg->shard_timeout_ms,
           cfg->tls_cert_pem ? (cfg->tls_client_ca_pem ? "mutual" : "on") : "off", cfg->shard_ca_pem ? "on" : "off",
           cfg->keys ? "api-keys" : "off");
    int sig = 0;
    sigwait(cfg->sigs, &sig);
    qv_log(QV_LOG_INFO, "server.stopping", "signal=%d", sig);
    qv_metrics_attach_api(cfg->http, NULL);
    qv_rpc_stop(rpc, cfg->grace_ms);
    qv_meta_stop(&co);
    coord_free(&co);
    qv_log(QV_LOG_INFO, "server.stopped", "signal=%d", sig);
    return 0;
}
