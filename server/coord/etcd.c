/* etcd v3 over the JSON gateway; the design is in etcd.h. */
#include "server/coord/etcd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "server/log.h"

#define TIMEOUT_MS 2000L
#define CONNECT_MS 1000L
#define MAX_BODY (64u << 20) /* largest gateway answer accepted */
#define MAX_ENDPOINTS 8

static qv_etcd_security_t sec; /* qv_etcd_set_security; read-only once connections exist */

void qv_etcd_set_security(const qv_etcd_security_t *s) { sec = *s; }

struct qv_etcd {
    pthread_mutex_t mu; /* guards curl, cur and token */
    CURL *curl;
    char *token;        /* etcd auth token (sec.user), NULL until authenticated */
    char *endpoints[MAX_ENDPOINTS];
    int nendpoints;
    int cur; /* endpoint that answered last */
};

void qv_etcd_global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- base64 (RFC 4648, with padding), as the gateway encodes bytes fields ---- */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_val(int c)
{
    const char *q = c ? strchr(b64, c) : NULL;
    return q ? (int)(q - b64) : -1;
}

/* Decodes into a malloc'd NUL-terminated buffer; NULL on bad input or OOM. */
static char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *out = malloc(n / 4 * 3 + 4);
    if (!out || n % 4) {
        free(out);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_val((unsigned char)s[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
            free(out);
            return NULL;
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out[o++] = (char)(w >> 16);
        if (s[i + 2] != '=')
            out[o++] = (char)(w >> 8);
        if (s[i + 3] != '=')
            out[o++] = (char)w;
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* ---- HTTP ---- */
typedef struct {
    char *p;
    size_t len;
    bool over;
} body_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_t *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > MAX_BODY) {
        b->over = true;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    p[b->len] = '\0';
    return n;
}

int qv_etcd_open(const char *url, qv_etcd_t **out, qv_err_t *err)
{
    qv_etcd_t *e = calloc(1, sizeof *e);
    if (!e || !(e->curl = curl_easy_init())) {
        free(e);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&e->mu, NULL);
    const char *p = url;
    while (*p && e->nendpoints < MAX_ENDPOINTS) {
        size_t n = strcspn(p, ",");
        if (n) {
            char *ep = strndup(p, n);
            if (!ep) {
                qv_etcd_close(e);
                return qv_err_set(err, QV_ENOMEM, "out of memory");
            }
            while (n && ep[n - 1] == '/')
                ep[--n] = '\0';
            e->endpoints[e->nendpoints++] = ep;
        }
        p += n + (p[n] == ',');
    }
    for (int i = 0; i < e->nendpoints; i++)
        if (strncmp(e->endpoints[i], "http://", 7) != 0 && strncmp(e->endpoints[i], "https://", 8) != 0) {
            qv_etcd_close(e);
            return qv_err_set(err, QV_EINVAL, "--etcd expects http(s)://HOST:PORT[,...], got '%s'", url);
        }
    if (!e->nendpoints) {
        qv_etcd_close(e);
        return qv_err_set(err, QV_EINVAL, "--etcd expects http(s)://HOST:PORT[,...], got '%s'", url);
    }
    *out = e;
    return QV_OK;
}

void qv_etcd_close(qv_etcd_t *e)
{
    if (!e)
        return;
    if (e->curl)
        curl_easy_cleanup(e->curl);
    free(e->token);
    for (int i = 0; i < e->nendpoints; i++)
        free(e->endpoints[i]);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* One POST of body to path on every endpoint in turn until one answers; *resp the parsed answer. *expired: etcd
 * said the auth token is not (or no longer) valid. e->mu is held. */
static int post_locked(qv_etcd_t *e, const char *path, const char *body, json_t **resp, bool *expired, qv_err_t *err)
{
    *resp = NULL;
    *expired = false;
    int rc = QV_EUNAVAIL;
    for (int attempt = 0; attempt < e->nendpoints && !*resp && !*expired; attempt++) {
        int ep = (e->cur + attempt) % e->nendpoints;
        char url[512];
        snprintf(url, sizeof url, "%s%s", e->endpoints[ep], path);
        body_t b = {0};
        struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
        if (e->token) {
            char auth[1024];
            snprintf(auth, sizeof auth, "Authorization: %s", e->token);
            hdr = curl_slist_append(hdr, auth);
        }
        curl_easy_reset(e->curl);
        if (sec.ca)
            curl_easy_setopt(e->curl, CURLOPT_CAINFO, sec.ca);
        if (sec.cert) {
            curl_easy_setopt(e->curl, CURLOPT_SSLCERT, sec.cert);
            curl_easy_setopt(e->curl, CURLOPT_SSLKEY, sec.key);
        }
        curl_easy_setopt(e->curl, CURLOPT_URL, url);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
        curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS);
        curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
        CURLcode cc = curl_easy_perform(e->curl);
        long http = 0;
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &http);
        curl_slist_free_all(hdr);
        if (cc != CURLE_OK) {
            rc = qv_err_set(err, QV_EUNAVAIL, "etcd %s: %s", e->endpoints[ep], curl_easy_strerror(cc));
        } else {
            json_error_t je;
            json_t *j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
            json_t *msg = j ? json_object_get(j, "error") : NULL;
            if (!j) {
                rc = qv_err_set(err, QV_EUNAVAIL, "etcd %s%s: HTTP %ld, not JSON", e->endpoints[ep], path, http);
            } else if (msg || http != 200) {
                const char *m = json_is_string(msg) ? json_string_value(msg) : "error";
                *expired = sec.user && strstr(m, "auth token") != NULL;
                rc = qv_err_set(err, QV_EUNAVAIL, "etcd %s%s: HTTP %ld: %.160s", e->endpoints[ep], path, http, m);
                json_decref(j);
            } else {
                *resp = j;
                e->cur = ep;
                rc = QV_OK;
            }
        }
        free(b.p);
    }
    return rc;
}

/* A token for sec.user from /v3/auth/authenticate into e->token. e->mu is held. */
static int authenticate_locked(qv_etcd_t *e, qv_err_t *err)
{
    free(e->token);
    e->token = NULL;
    json_t *req = json_pack("{s:s, s:s}", "name", sec.user, "password", sec.password ? sec.password : "");
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    json_t *resp;
    bool expired;
    int rc = post_locked(e, "/v3/auth/authenticate", body, &resp, &expired, err);
    free(body);
    if (rc)
        return rc;
    const char *t = json_string_value(json_object_get(resp, "token"));
    if (!t || !(e->token = strdup(t)))
        rc = qv_err_set(err, QV_EUNAVAIL, "etcd: authentication as '%s' gave no token", sec.user);
    json_decref(resp);
    return rc;
}

/* POSTs the JSON request to path; *resp is the parsed answer (decref it). Tries every endpoint once; with etcd
 * authentication, gets a token first and a new one once if etcd says it expired. */
static int post(qv_etcd_t *e, const char *path, json_t *req, json_t **resp, qv_err_t *err)
{
    *resp = NULL;
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    pthread_mutex_lock(&e->mu);
    int rc = sec.user && !e->token ? authenticate_locked(e, err) : QV_OK;
    bool expired = false;
    if (rc == QV_OK)
        rc = post_locked(e, path, body, resp, &expired, err);
    if (rc && expired && (rc = authenticate_locked(e, err)) == QV_OK)
        rc = post_locked(e, path, body, resp, &expired, err);
    pthread_mutex_unlock(&e->mu);
    free(body);
    return rc;
}

/* An int64 the gateway writes as a decimal string (or, from other versions, a number); 0 when absent. */
static int64_t j_int64(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

static json_t *j_bytes(const void *p, size_t len)
{
    char *s = b64_encode(p, len);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

static json_t *j_i64(int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    return json_string(s);
}

int qv_etcd_range(qv_etcd_t *e, const char *key, bool prefix, qv_kv_t **kvs, size_t *n, qv_err_t *err)
{
    *kvs = NULL;
    *n = 0;
    size_t kl = strlen(key);
    json_t *req = json_object();
    json_object_set_new(req, "key", j_bytes(key, kl));
    if (prefix) {
        /* range_end = the prefix with its last byte incremented: every key starting with the prefix */
        char *end = strdup(key);
        if (!end || !kl) {
            free(end);
            json_decref(req);
            return qv_err_set(err, QV_EINVAL, "empty etcd prefix");
        }
        end[kl - 1]++;
        json_object_set_new(req, "range_end", j_bytes(end, kl));
        free(end);
    }
    json_t *resp;
    int rc = post(e, "/v3/kv/range", req, &resp, err);
    json_decref(req);
    if (rc)
        return rc;
    json_t *arr = json_object_get(resp, "kvs");
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    qv_kv_t *out = calloc(cnt ? cnt : 1, sizeof *out);
    if (!out) {
        json_decref(resp);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++) {
        json_t *kv = json_array_get(arr, i);
        const char *kb = json_string_value(json_object_get(kv, "key"));
        const char *vb = json_string_value(json_object_get(kv, "value"));
        size_t klen, vlen = 0;
        char *kk = kb ? b64_decode(kb, &klen) : NULL;
        char *vv = vb ? b64_decode(vb, &vlen) : strdup("");
        if (!kk || !vv) {
            free(kk);
            free(vv);
            continue; /* an undecodable entry is skipped, not fatal */
        }
        out[k].key = kk;
        out[k].value = vv;
        out[k].value_len = vlen;
        out[k].mod_revision = j_int64(kv, "mod_revision");
        k++;
    }
    json_decref(resp);
    *kvs = out;
    *n = k;
    return QV_OK;
}

void qv_kvs_free(qv_kv_t *kvs, size_t n)
{
    for (size_t i = 0; kvs && i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

int qv_etcd_put(qv_etcd_t *e, const char *key, const char *value, size_t len, int64_t lease, qv_err_t *err)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", j_bytes(key, strlen(key)));
    json_object_set_new(req, "value", j_bytes(value, len));
    if (lease)
        json_object_set_new(req, "lease", j_i64(lease));
    json_t *resp;
    int rc = post(e, "/v3/kv/put", req, &resp, err);
    json_decref(req);
    json_decref(resp);
    return rc;
}

int qv_etcd_create(qv_etcd_t *e, const char *key, const char *value, size_t len, bool *created, qv_err_t *err)
{
    json_t *k = j_bytes(key, strlen(key));
    json_t *req = json_pack("{s:[{s:s, s:O, s:s}], s:[{s:{s:O, s:o}}]}", "compare", "target", "CREATE", "key", k,
                            "create_revision", "0", "success", "request_put", "key", k, "value", j_bytes(value, len));
    json_decref(k);
    if (!req)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    json_t *resp;
    int rc = post(e, "/v3/kv/txn", req, &resp, err);
    json_decref(req);
    if (rc == QV_OK)
        *created = json_is_true(json_object_get(resp, "succeeded"));
    json_decref(resp);
    return rc;
}

int qv_etcd_delete(qv_etcd_t *e, const char *key, qv_err_t *err)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", j_bytes(key, strlen(key)));
    json_t *resp;
    int rc = post(e, "/v3/kv/deleterange", req, &resp, err);
    json_decref(req);
    json_decref(resp);
    return rc;
}

int qv_etcd_lease_grant(qv_etcd_t *e, int ttl_s, int64_t *id, qv_err_t *err)
{
    json_t *req = json_pack("{s:i}", "TTL", ttl_s);
    json_t *resp;
    int rc = post(e, "/v3/lease/grant", req, &resp, err);
    json_decref(req);
    if (rc == QV_OK && !(*id = j_int64(resp, "ID")))
        rc = qv_err_set(err, QV_EUNAVAIL, "etcd granted no lease");
    json_decref(resp);
    return rc;
}

int qv_etcd_lease_keepalive(qv_etcd_t *e, int64_t id, int64_t *ttl, qv_err_t *err)
{
    json_t *req = json_object();
    json_object_set_new(req, "ID", j_i64(id));
    json_t *resp;
    int rc = post(e, "/v3/lease/keepalive", req, &resp, err);
    json_decref(req);
    if (rc == QV_OK)
        *ttl = j_int64(json_object_get(resp, "result"), "TTL");
    json_decref(resp);
    return rc;
}

int qv_etcd_lease_revoke(qv_etcd_t *e, int64_t id, qv_err_t *err)
{
    json_t *req = json_object();
    json_object_set_new(req, "ID", j_i64(id));
    json_t *resp;
    int rc = post(e, "/v3/lease/revoke", req, &resp, err);
    json_decref(req);
    json_decref(resp);
    return rc;
}

/* ---- shard registration ---- */
struct qv_etcd_reg {
    qv_etcd_t *etcd;
    char *key, *value;
    int ttl;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop, lease */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    bool stop;
    int64_t lease;
};

static void *reg_main(void *arg)
{
    qv_etcd_reg_t *r = arg;
    bool was_down = false;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t lease = r->lease;
        pthread_mutex_unlock(&r->mu);
        qv_err_t err;
        qv_err_clear(&err);
        int rc = QV_OK;
        int64_t ttl = 0;
        if (lease) {
            rc = qv_etcd_lease_keepalive(r->etcd, lease, &ttl, &err);
            if (rc == QV_OK && ttl <= 0) {
                qv_log(QV_LOG_WARN, "etcd.lease_expired", "key=%s lease=%lld", r->key, (long long)lease);
                lease = 0;
            }
        }
        if (rc == QV_OK && !lease) {
            rc = qv_etcd_lease_grant(r->etcd, r->ttl, &lease, &err);
            if (rc == QV_OK && (rc = qv_etcd_put(r->etcd, r->key, r->value, strlen(r->value), lease, &err)) == QV_OK)
                qv_log(QV_LOG_INFO, "etcd.registered", "key=%s value=%s lease=%lld ttl=%d", r->key, r->value,
                       (long long)lease, r->ttl);
            else
                lease = 0;
        }
        if (rc != QV_OK && !was_down)
            qv_log(QV_LOG_WARN, "etcd.unreachable", "key=%s msg=\"%s\"", r->key, err.msg);
        else if (rc == QV_OK && was_down)
            qv_log(QV_LOG_INFO, "etcd.reachable", "key=%s", r->key);
        was_down = rc != QV_OK;
        pthread_mutex_lock(&r->mu);
        r->lease = lease;
        /* renew at a third of the TTL; retry sooner while etcd is unreachable */
        int wait_ms = rc == QV_OK ? r->ttl * 1000 / 3 : 500;
        /* cv runs on CLOCK_MONOTONIC: a wall-clock step back must not delay the renewal past the lease's TTL */
        struct timespec until = qv_mono_ts(qv_mono_ns() + wait_ms * 1000000LL);
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int qv_etcd_register_start(const char *url, const char *key, const char *value, int ttl_s, qv_etcd_reg_t **out,
                           qv_err_t *err)
{
    qv_etcd_reg_t *r = calloc(1, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    int rc = qv_etcd_open(url, &r->etcd, err);
    if (rc) {
        free(r);
        return rc;
    }
    r->key = strdup(key);
    r->value = strdup(value);
    r->ttl = ttl_s < 3 ? 3 : ttl_s;
    pthread_mutex_init(&r->mu, NULL);
    qv_cond_init_mono(&r->cv);
    if (!r->key || !r->value || pthread_create(&r->thread, NULL, reg_main, r) != 0) {
        qv_etcd_close(r->etcd);
        free(r->key);
        free(r->value);
        free(r);
        return qv_err_set(err, QV_ENOMEM, "cannot start the etcd registration thread");
    }
    *out = r;
    return QV_OK;
}

void qv_etcd_register_stop(qv_etcd_reg_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    if (r->lease) {
        qv_err_t err;
        if (qv_etcd_lease_revoke(r->etcd, r->lease, &err) == QV_OK)
            qv_log(QV_LOG_INFO, "etcd.deregistered", "key=%s", r->key);
    }
    qv_etcd_close(r->etcd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->key);
    free(r->value);
    free(r);
}
