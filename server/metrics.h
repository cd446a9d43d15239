/* Prometheus metrics: counters and latency histograms recorded by the RPC loop, gauges read from the store at
 * scrape time, served as the text exposition format (version 0.0.4) over HTTP by libmicrohttpd. */
#ifndef QV_METRICS_H
#define QV_METRICS_H

#include <stdint.h>

#include "common/err.h"
#include "storage/store.h"

/* Records one finished call: method path (or short name), gRPC status code, wall time. Thread-safe, lock-free after
 * the first call of each method, whose label is copied then. */
void qv_metrics_observe(const char *method, int status, int64_t ns);
/* Points ingested / deleted, counted by the handlers. */
void qv_metrics_add_rows(uint64_t upserted, uint64_t deleted);

/* One forward pass of the embedding batcher over n texts. */
void qv_metrics_embed_batch(uint64_t n);
/* Texts cut to the model's window (256 tokens) before embedding. */
void qv_metrics_embed_truncated(uint64_t n);

/* Resident set size of this process (from /proc/self/statm). */
uint64_t qv_resident_bytes(void);

/* Renders the whole exposition into a malloc'd NUL-terminated string (caller frees); NULL on OOM. */
char *qv_metrics_render(qv_store_t *st, int64_t started_ns);

/* The HTTP listener (--http-listen): GET /metrics, and the HTTP/JSON API once one is attached (server/http_api.h).
 * It runs on a small pool of threads, so a slow API call does not hold up a scrape. */
typedef struct qv_metrics_server qv_metrics_server_t;
/* Serves GET /metrics on listen ("host:port", IPv4); QV_EIO with a message when it cannot bind. */
/* cert_pem/key_pem non-NULL: HTTPS. */
int qv_metrics_start(const char *listen, qv_store_t *st, int64_t started_ns, const char *cert_pem,
                     const char *key_pem, qv_metrics_server_t **out, qv_err_t *err);
/* Serves the API (api must outlive the server, or be detached with NULL before it goes) on the same listener. */
struct qv_http_api_s;
void qv_metrics_attach_api(qv_metrics_server_t *m, const void *api);
void qv_metrics_stop(qv_metrics_server_t *m);

#endif
