/* A minimal etcd v3 client over etcd's JSON gateway (HTTP POST of JSON bodies to /v3/kv/range, /v3/kv/put,
 * /v3/kv/txn, /v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke; keys and values are
 * base64 in the JSON, 64-bit integers are decimal strings), with libcurl for HTTP and jansson for JSON.
 *
 * Why the gateway rather than etcd's gRPC API: we already speak gRPC C core, but the gRPC API would need etcd's
 * .proto files vendored (with their gogoproto and google.api imports stripped), protoc-c code generated from them,
 * and hand-driven streaming calls for watch and keepalive. The few unary requests the cluster needs are ten lines
 * of JSON each over the gateway, with two Debian libraries we already depend on or that are everywhere (jansson for
 * the CLI, libcurl). Membership changes rarely, so the coordinator polls a key prefix (one small range request a
 * second) instead of holding a watch stream; see docs/ARCHITECTURE.md.
 *
 * Every call is synchronous with a short timeout (2 s) and returns QV_EUNAVAIL with a message when etcd cannot be
 * reached or answers with an error. One qv_etcd_t serialises its calls on a mutex (one curl handle, reused
 * connection); make one per thread that needs independent progress. */
#ifndef QV_COORD_ETCD_H
#define QV_COORD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct qv_etcd qv_etcd_t;

typedef struct {
    char *key;   /* NUL-terminated (keys here are text) */
    char *value; /* NUL-terminated copy of the value bytes */
    size_t value_len;
    int64_t mod_revision;
} qv_kv_t;

/* Call once in main before any thread starts (curl_global_init). */
void qv_etcd_global_init(void);

/* How this process reaches etcd, for every connection it opens (one process talks to one etcd cluster):
 * - TLS: https:// endpoints verified against `ca` (PEM file; NULL: the system's roots); `cert` + `key` (PEM files) a
 *   client certificate for an etcd started with --client-cert-auth;
 * - etcd's own authentication: `user` and `password` get a token from /v3/auth/authenticate, sent with every call
 *   as the Authorization header and renewed when etcd says it expired.
 * Call once in main, after qv_etcd_global_init and before any connection opens; the strings must outlive the process'
 * use of etcd. Nothing set: plain http, no authentication. */
typedef struct {
    const char *ca, *cert, *key;
    const char *user, *password;
} qv_etcd_security_t;
void qv_etcd_set_security(const qv_etcd_security_t *sec);

/* url: "http://HOST:PORT" (one endpoint, or several separated by commas, tried in turn). */
int qv_etcd_open(const char *url, qv_etcd_t **out, qv_err_t *err);
void qv_etcd_close(qv_etcd_t *e);

/* Keys equal to key (prefix false) or starting with it (prefix true); *kvs is malloc'd, free with qv_kvs_free. */
int qv_etcd_range(qv_etcd_t *e, const char *key, bool prefix, qv_kv_t **kvs, size_t *n, qv_err_t *err);
void qv_kvs_free(qv_kv_t *kvs, size_t n);
/* Puts key = value, attached to lease (0: none). */
int qv_etcd_put(qv_etcd_t *e, const char *key, const char *value, size_t len, int64_t lease, qv_err_t *err);
/* Puts key = value only if key does not exist (a transaction comparing its create revision with 0); *created
 * tells which happened. */
int qv_etcd_create(qv_etcd_t *e, const char *key, const char *value, size_t len, bool *created, qv_err_t *err);
int qv_etcd_delete(qv_etcd_t *e, const char *key, qv_err_t *err);
int qv_etcd_lease_grant(qv_etcd_t *e, int ttl_s, int64_t *id, qv_err_t *err);
/* Renews the lease; *ttl is what is left (0 or less: it had expired and the keys attached to it are gone). */
int qv_etcd_lease_keepalive(qv_etcd_t *e, int64_t id, int64_t *ttl, qv_err_t *err);
int qv_etcd_lease_revoke(qv_etcd_t *e, int64_t id, qv_err_t *err);

/* A shard's registration: a background thread grants a lease of ttl_s seconds, puts key = value on it and renews
 * it every ttl_s / 3 seconds; when etcd was unreachable long enough for the lease to expire it registers again.
 * Start never fails for an unreachable etcd (the shard serves anyway and keeps trying). Stop revokes the lease so
 * the coordinator sees the shard leave at once. */
typedef struct qv_etcd_reg qv_etcd_reg_t;
int qv_etcd_register_start(const char *url, const char *key, const char *value, int ttl_s, qv_etcd_reg_t **out,
                           qv_err_t *err);
void qv_etcd_register_stop(qv_etcd_reg_t *r);

#endif
