/* Prometheus metrics; see metrics.h. */
#include "server/metrics.h"
#include "server/http_api.h"
#include "server/status.h"
#include "storage/read.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_METHODS 64
#define METRICS_IDLE_S 10       /* seconds a metrics connection may send nothing */
#define METRICS_PER_IP 16       /* connections one client address may hold */
#define METRICS_CONNECTIONS 512 /* connections in all */
#define METRICS_THREADS 4       /* polling threads (each serves its connections' requests) */
#define NCODES 17 /* gRPC status codes 0..16 */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct {
    _Atomic(const char *) method;
    atomic_uint_fast64_t calls[NCODES];
    atomic_uint_fast64_t le[NBUCKETS]; /* non-cumulative per bucket; +Inf = total calls */
    atomic_uint_fast64_t ns_sum;
} method_stats_t;

static method_stats_t methods[MAX_METHODS];
static atomic_int nmethods;
static pthread_mutex_t add_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t rows_upserted, rows_deleted, embed_texts, embed_batches, embed_truncated;

void qv_metrics_embed_truncated(uint64_t n) { atomic_fetch_add_explicit(&embed_truncated, n, memory_order_relaxed); }

void qv_metrics_embed_batch(uint64_t n)
{
    atomic_fetch_add_explicit(&embed_texts, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&embed_batches, 1, memory_order_relaxed);
}

static method_stats_t *find(const char *method)
{
    int n = atomic_load(&nmethods);
    for (int i = 0; i < n; i++)
        if (strcmp(atomic_load(&methods[i].method), method) == 0)
            return &methods[i];
    pthread_mutex_lock(&add_mu);
    n = atomic_load(&nmethods);
    method_stats_t *m = NULL;
    for (int i = 0; i < n && !m; i++)
        if (strcmp(atomic_load(&methods[i].method), method) == 0)
            m = &methods[i];
    char *copy = !m && n < MAX_METHODS ? strdup(method) : NULL;
    if (copy) { /* a copy, kept for the process's life (at most MAX_METHODS of them): callers' strings may go */
        m = &methods[n];
        atomic_store(&m->method, copy);
        atomic_store(&nmethods, n + 1);
    }
    pthread_mutex_unlock(&add_mu);
    return m;
}

void qv_metrics_observe(const char *method, int status, int64_t ns)
{
    if (method && strrchr(method, '/')) /* the label is the short name ("Search"): method names are unique across */
        method = strrchr(method, '/') + 1; /* the Quiver and Admin services */
    method_stats_t *m = method ? find(method) : NULL;
    if (!m)
        return;
    atomic_fetch_add_explicit(&m->calls[status >= 0 && status < NCODES ? status : 2], 1, memory_order_relaxed);
    double s = (double)ns / 1e9;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (s <= buckets[b]) {
            atomic_fetch_add_explicit(&m->le[b], 1, memory_order_relaxed);
            break;
        }
    atomic_fetch_add_explicit(&m->ns_sum, (uint64_t)(ns > 0 ? ns : 0), memory_order_relaxed);
}

void qv_metrics_add_rows(uint64_t upserted, uint64_t deleted)
{
    atomic_fetch_add_explicit(&rows_upserted, upserted, memory_order_relaxed);
    atomic_fetch_add_explicit(&rows_deleted, deleted, memory_order_relaxed);
}

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    for (;;) {
        if (o->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

uint64_t qv_resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The process_* metrics of Prometheus's client libraries (same names, units and meaning), from /proc. */
/* one unlabelled counter with its HELP and TYPE lines */
static void put_counter(out_t *o, const char *name, const char *help, atomic_uint_fast64_t *v)
{
    put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)atomic_load(v));
}

static void put_process(out_t *o)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        /* fields 3.. after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
         * cutime cstime priority nice threads itrealvalue starttime vsize rss */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu "
                                "%llu %lld", &utime, &stime, &start, &vsize, &rss) != 5)
            utime = stime = start = vsize = 0, rss = 0;
    }
    double boot = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %lf", &boot) == 1)
                break;
        fclose(f);
    }
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the descriptor opendir holds */
    }
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    put(o, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
           "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
        (double)(utime + stime) / (double)tick);
    put(o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
           "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n", rss * page);
    put(o, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
           "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n", vsize);
    put(o, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
           "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
        boot + (double)start / (double)tick);
    put(o, "# HELP process_open_fds Number of open file descriptors.\n"
           "# TYPE process_open_fds gauge\nprocess_open_fds %zu\n", fds);
    put(o, "# HELP process_max_fds Maximum number of open file descriptors.\n"
           "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
}

static const char *idx_names[] = {"", "none", "pending", "building", "ready", "failed"};
static const char *job_names[] = {"", "queued", "running", "done", "failed", "abandoned"};

/* The store's families: collections, rows, segments, index builds, compactions, the commit leader. */
static void put_store(out_t *o, qv_store_t *st)
{
    qv_coll_t **list = NULL;
    size_t nc = 0;
    if (qv_store_list(st, &list, &nc) == QV_OK) {
        put(o, "# HELP quiver_collections Collections served.\n# TYPE quiver_collections gauge\n"
               "quiver_collections %zu\n", nc);
        put(o, "# HELP quiver_live_rows Points that Get and Search can return.\n# TYPE quiver_live_rows gauge\n");
        for (size_t i = 0; i < nc; i++)
            put(o, "quiver_live_rows{collection=\"%s\"} %llu\n", list[i]->schema->name,
                (unsigned long long)list[i]->live);
        /* one pass over a read view of each collection collects the figures; each family is then written whole
         * (HELP, TYPE, its samples), as the exposition format requires */
        typedef struct {
            size_t sealed, by_idx[6];
        } coll_fig_t;
        typedef struct {
            size_t coll;
            uint64_t seg;
            double progress;
        } build_fig_t;
        coll_fig_t *figs = calloc(nc ? nc : 1, sizeof *figs);
        build_fig_t *builds = NULL;
        size_t nbuilds = 0, cap_builds = 0;
        uint64_t wal = 0, vec_bytes = 0;
        for (size_t i = 0; figs && i < nc; i++) {
            qv_read_t *v;
            qv_err_t verr;
            if (qv_read_begin(list[i], &v, &verr) != QV_OK) {
                o->oom = true;
                break;
            }
            wal += v->wal_bytes;
            for (size_t s = 0; s < v->nsegs; s++) {
                qv_segment_t *g = v->segs[s];
                vec_bytes += (uint64_t)g->rows * g->dim * sizeof(float);
                if (g == v->growing)
                    break;
                figs[i].sealed++;
                int state;
                double progress;
                uint64_t bytes;
                qv_store_seg_index_info(st, g, &state, &progress, &bytes);
                figs[i].by_idx[state >= 1 && state <= 5 ? state : 1]++;
                if (state == QV_IDX_BUILDING) {
                    if (nbuilds == cap_builds) {
                        size_t cap = cap_builds ? 2 * cap_builds : 8;
                        build_fig_t *nb = realloc(builds, cap * sizeof *nb);
                        if (!nb)
                            continue; /* a progress sample less, not a wrong one */
                        builds = nb;
                        cap_builds = cap;
                    }
                    builds[nbuilds++] = (build_fig_t){i, g->id, progress};
                }
            }
            qv_read_end(v);
        }
        if (!figs)
            o->oom = true;
        put(o, "# HELP quiver_segments Segments by state (the growing one, and sealed ones).\n"
               "# TYPE quiver_segments gauge\n");
        for (size_t i = 0; figs && i < nc; i++) {
            put(o, "quiver_segments{collection=\"%s\",state=\"growing\"} 1\n", list[i]->schema->name);
            put(o, "quiver_segments{collection=\"%s\",state=\"sealed\"} %zu\n", list[i]->schema->name,
                figs[i].sealed);
        }
        put(o, "# HELP quiver_index_segments Sealed segments by the state of their index.\n"
               "# TYPE quiver_index_segments gauge\n");
        for (size_t i = 0; figs && i < nc; i++)
            for (int s = 1; s <= 5; s++)
                put(o, "quiver_index_segments{collection=\"%s\",state=\"%s\"} %zu\n", list[i]->schema->name,
                    idx_names[s], figs[i].by_idx[s]);
        put(o, "# HELP quiver_index_build_progress Fraction of a running index build done, per segment.\n"
               "# TYPE quiver_index_build_progress gauge\n");
        for (size_t b = 0; b < nbuilds; b++)
            put(o, "quiver_index_build_progress{collection=\"%s\",segment=\"%llu\"} %.4f\n",
                list[builds[b].coll]->schema->name, (unsigned long long)builds[b].seg, builds[b].progress);
        free(builds);
        free(figs);
        put(o, "# HELP quiver_store_failed 1 once a storage error has failed the store (writes refused until a "
               "restart; Health says why).\n# TYPE quiver_store_failed gauge\nquiver_store_failed %d\n",
            qv_store_failed(st, NULL, 0) ? 1 : 0);
        put(o, "# HELP quiver_wal_bytes Write-ahead log records not yet covered by sealed segments.\n"
               "# TYPE quiver_wal_bytes gauge\nquiver_wal_bytes %llu\n", (unsigned long long)wal);
        put(o, "# HELP quiver_vector_bytes Memory held by vectors of all segments.\n"
               "# TYPE quiver_vector_bytes gauge\nquiver_vector_bytes %llu\n", (unsigned long long)vec_bytes);
        qv_store_list_free(list, nc);
    }
    qv_compaction_info_t *jobs = NULL;
    size_t nj = 0;
    if (qv_store_compactions(st, &jobs, &nj) == QV_OK) {
        size_t by_state[6] = {0};
        put(o, "# HELP quiver_compaction_progress Fraction of rows copied by running compactions.\n"
               "# TYPE quiver_compaction_progress gauge\n");
        for (size_t i = 0; i < nj; i++) {
            by_state[jobs[i].state >= 1 && jobs[i].state <= 5 ? jobs[i].state : 4]++;
            if (jobs[i].state == QV_CJ_RUNNING)
                put(o, "quiver_compaction_progress{collection=\"%s\",job=\"%llu\"} %.4f\n", jobs[i].collection,
                    (unsigned long long)jobs[i].id, jobs[i].progress);
        }
        put(o, "# HELP quiver_compactions Recent compaction jobs by state.\n# TYPE quiver_compactions gauge\n");
        for (int s = 1; s <= 5; s++)
            put(o, "quiver_compactions{state=\"%s\"} %zu\n", job_names[s], by_state[s]);
        free(jobs);
    }
    qv_commit_stat_t cs[16];
    size_t ncs = qv_store_commit_stats(st, cs, 16);
    put(o, "# HELP quiver_commit_seconds Time the commit leader ran each kind of operation (every queued write waits "
           "behind it).\n# TYPE quiver_commit_seconds summary\n");
    for (size_t i = 0; i < ncs; i++) {
        put(o, "quiver_commit_seconds_sum{op=\"%s\"} %.6f\n", cs[i].name, (double)cs[i].total_ns / 1e9);
        put(o, "quiver_commit_seconds_count{op=\"%s\"} %llu\n", cs[i].name, (unsigned long long)cs[i].runs);
    }
    put(o, "# HELP quiver_commit_max_seconds The commit leader's longest run of each kind of operation since "
           "start-up.\n# TYPE quiver_commit_max_seconds gauge\n");
    for (size_t i = 0; i < ncs; i++)
        put(o, "quiver_commit_max_seconds{op=\"%s\"} %.6f\n", cs[i].name, (double)cs[i].max_ns / 1e9);
}

char *qv_metrics_render(qv_store_t *st, int64_t started_ns)
{
    out_t o = {.cap = 16384};
    if (!(o.p = malloc(o.cap)))
        return NULL;
    o.p[0] = '\0';
    put(&o, "# HELP quiver_requests_total gRPC calls finished, by method and status code.\n"
            "# TYPE quiver_requests_total counter\n");
    int n = atomic_load(&nmethods);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = atomic_load(&methods[i].calls[c]);
            if (v)
                put(&o, "quiver_requests_total{method=\"%s\",code=\"%s\"} %llu\n", atomic_load(&methods[i].method),
                    qv_status_name(c), (unsigned long long)v);
        }
    put(&o, "# HELP quiver_request_duration_seconds gRPC call latency, receipt of the request to the reply.\n"
            "# TYPE quiver_request_duration_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        const char *m = atomic_load(&methods[i].method);
        uint64_t cum = 0, total = 0;
        for (int c = 0; c < NCODES; c++)
            total += atomic_load(&methods[i].calls[c]);
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += atomic_load(&methods[i].le[b]);
            put(&o, "quiver_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n", m, buckets[b],
                (unsigned long long)cum);
        }
        put(&o, "quiver_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", m,
            (unsigned long long)total);
        put(&o, "quiver_request_duration_seconds_sum{method=\"%s\"} %.9f\n", m,
            (double)atomic_load(&methods[i].ns_sum) / 1e9);
        put(&o, "quiver_request_duration_seconds_count{method=\"%s\"} %llu\n", m, (unsigned long long)total);
    }
    put_counter(&o, "quiver_rows_ingested_total", "Points written by acknowledged upserts.", &rows_upserted);
    put_counter(&o, "quiver_rows_deleted_total", "Points removed by acknowledged deletes.", &rows_deleted);
    put_counter(&o, "quiver_embed_texts_total", "Texts embedded by the built-in model.", &embed_texts);
    put_counter(&o, "quiver_embed_truncated_total",
                "Texts longer than the model's 256-token window, embedded from their beginning only.",
                &embed_truncated);
    put_counter(&o, "quiver_embed_batches_total", "Forward passes run by the dynamic batcher.", &embed_batches);
    if (st) /* a coordinator has no store */
        put_store(&o, st);
    put(&o, "# HELP quiver_resident_memory_bytes Resident set size of the process.\n"
            "# TYPE quiver_resident_memory_bytes gauge\nquiver_resident_memory_bytes %llu\n",
        (unsigned long long)qv_resident_bytes());
    put_process(&o);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    put(&o, "# HELP quiver_uptime_seconds Seconds since start-up.\n# TYPE quiver_uptime_seconds gauge\n"
            "quiver_uptime_seconds %.3f\n", (double)(now - started_ns) / 1e9);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

struct qv_metrics_server {
    struct MHD_Daemon *d;
    qv_store_t *st;
    int64_t started_ns;
    _Atomic(const qv_http_api_t *) api; /* NULL: metrics only */
};

void qv_metrics_attach_api(qv_metrics_server_t *m, const void *api)
{
    if (m)
        atomic_store(&m->api, (const qv_http_api_t *)api);
}

/* A request's body as it arrives (MHD calls on_request once per chunk); too_big once it passed the limit. */
typedef struct {
    char *p;
    size_t len, cap;
    bool too_big;
} upload_t;

static void on_done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    upload_t *u = *state;
    if (u) {
        free(u->p);
        free(u);
        *state = NULL;
    }
}

static enum MHD_Result send_api(struct MHD_Connection *conn, qv_http_reply_t *rep)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(rep->body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", rep->content_type);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    qv_metrics_server_t *m = cls;
    (void)version;
    struct MHD_Response *r;
    enum MHD_Result rc;
    const qv_http_api_t *api = atomic_load(&m->api);
    if (api && strcmp(url, "/metrics") != 0) {
        upload_t *u = *state;
        if (!u) { /* the headers: a body, if any, follows in later calls */
            if (!(u = calloc(1, sizeof *u)))
                return MHD_NO;
            *state = u;
            return MHD_YES;
        }
        if (*upload_size) {
            if (u->len + *upload_size > (size_t)api->max_message_bytes) {
                u->too_big = true; /* keep reading (and dropping) so the reply can say why */
            } else {
                if (u->len + *upload_size > u->cap) {
                    size_t cap = u->cap ? u->cap : 4096;
                    while (cap < u->len + *upload_size)
                        cap *= 2;
                    char *p = realloc(u->p, cap);
                    if (!p)
                        return MHD_NO;
                    u->p = p;
                    u->cap = cap;
                }
                memcpy(u->p + u->len, upload, *upload_size);
                u->len += *upload_size;
            }
            *upload_size = 0;
            return MHD_YES;
        }
        qv_http_reply_t rep;
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *tmo = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Timeout-Ms");
        /* a body over the limit reaches the API as one byte too many, which it refuses by name */
        if (qv_http_api_serve(api, method, url, auth, tmo, u->p, u->too_big ? (size_t)api->max_message_bytes + 1 :
                              u->len, &rep))
            return send_api(conn, &rep);
    }
    if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
        static const char nf[] = "not found: GET /metrics\n";
        r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
        rc = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return rc;
    }
    char *text = qv_metrics_render(m->st, m->started_ns);
    if (!text)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

int qv_metrics_start(const char *listen, qv_store_t *st, int64_t started_ns, const char *cert_pem,
                     const char *key_pem, qv_metrics_server_t **out, qv_err_t *err)
{
    *out = NULL;
    const char *colon = strrchr(listen, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return qv_err_set(err, QV_EINVAL, "metrics address '%s' must be HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return qv_err_set(err, QV_EINVAL, "metrics address '%s' must be IPV4:PORT", listen);
    sa.sin_port = htons((uint16_t)port);
    qv_metrics_server_t *m = calloc(1, sizeof *m);
    if (!m)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    m->st = st;
    m->started_ns = started_ns;
    /* Against slow or idle clients (slowloris): a connection that sends nothing for METRICS_IDLE_S is closed, one
     * address may hold METRICS_PER_IP connections (a scraper needs one), and epoll (MHD_USE_AUTO picks it on Linux)
     * takes connections past select()'s FD_SETSIZE up to METRICS_CONNECTIONS in all. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (cert_pem && key_pem ? MHD_USE_TLS : 0);
    /* a pool of polling threads: an API call that waits (a write's group commit, a long scan) holds one of them */
    if (cert_pem && key_pem)
        m->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_IDLE_S,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_PER_IP,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNECTIONS, MHD_OPTION_THREAD_POOL_SIZE,
                                (unsigned)METRICS_THREADS, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                                MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
    else
        m->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_IDLE_S,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_PER_IP,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNECTIONS, MHD_OPTION_THREAD_POOL_SIZE,
                                (unsigned)METRICS_THREADS, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    if (!m->d) {
        free(m);
        return qv_err_set(err, QV_EIO, "cannot serve metrics on %s", listen);
    }
    *out = m;
    return QV_OK;
}

void qv_metrics_stop(qv_metrics_server_t *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    free(m);
}
