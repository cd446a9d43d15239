/* The coordinator role (`quiverd --role coordinator`) and the shard role's etcd registration.
 *
 * A coordinator serves the public quiver.v1 API with no data of its own: it routes writes by a hash of the point
 * id to the collection's shards, scatters reads to every shard in parallel and merges the answers. Membership is a
 * static list (--shards) or etcd (--etcd); docs/ARCHITECTURE.md ("Cluster") has the whole design. */
#ifndef QV_COORD_H
#define QV_COORD_H

#include <signal.h>
#include <stdint.h>

#include "server/auth.h"
#include "server/embedder.h"

typedef struct {
    const char *listen;
    const char *shards;          /* "H:P,H:P,..." (static membership) or NULL */
    const char *etcd;            /* "http://H:P" or NULL */
    const char *etcd_prefix;     /* keys live under this prefix (default /quiver) */
    int etcd_poll_ms;            /* how often the shard map and collection metadata are re-read */
    int threads, max_inflight, max_message_bytes, grace_ms;
    int request_read_timeout_ms, max_streams_per_connection; /* as for every role: server/rpc.h */
    int64_t shard_timeout_ms;    /* deadline of shard calls when the client set none */
    int shard_max_inflight;      /* calls in flight to one shard server, below threads (0: threads less a quarter,
                                  * at least 1 less) */
    const qv_keys_t *keys;       /* API keys for incoming calls (NULL: none) */
    const char *tls_cert_pem, *tls_key_pem, *tls_client_ca_pem;
    char *shard_ca_pem;          /* TLS to shards */
    char *shard_cert_pem, *shard_key_pem;
    const char *shard_api_key;   /* sent to shards as `authorization: Bearer KEY` */
    qv_embedder_t *embedder;     /* NULL: text is embedded by the shards; else here, once, and shards get vectors */
    struct qv_metrics_server *http; /* the HTTP listener (metrics): the API is attached to it; NULL: none */
    const sigset_t *sigs;        /* blocked by the caller; sigwait'ed to stop */
} qv_coord_cfg_t;

/* Runs the coordinator until SIGTERM/SIGINT; returns the process exit status. grpc_init must have been called. */
int qv_coord_main(const qv_coord_cfg_t *cfg);

/* Shard role: registers `<prefix>/shards/<name>` = {"addr": advertise} in etcd under a lease kept alive by a
 * background thread. *out is stopped (lease revoked) by qv_shard_unregister. */
struct qv_etcd_reg;
int qv_shard_register(const char *etcd, const char *prefix, const char *name, const char *advertise, int ttl_s,
                      struct qv_etcd_reg **out, qv_err_t *err);
void qv_shard_unregister(struct qv_etcd_reg *r);
/* Call once before any thread starts when --etcd is used. */
void qv_coord_global_init(void);

#endif
