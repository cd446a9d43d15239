/* quiverd: the Quiver server. Parses flags, opens the store, starts the gRPC server, and waits for SIGTERM/SIGINT
 * to shut down cleanly (stop accepting calls, let in-flight calls finish or cancel them after a grace period,
 * close RocksDB). Signals are blocked in every thread and taken synchronously by sigwait in main, so no work
 * happens in a signal handler. */
#include <getopt.h>
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/distance.h"
#include "query/search.h"
#include "server/auth.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/service.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: quiverd [options]\n"
            "  --role ROLE            standalone (default). shard and coordinator roles are not built yet.\n"
            "  --listen HOST:PORT     address to serve gRPC on (default 127.0.0.1:7700)\n"
            "  --data DIR             data directory, created if missing (default ./quiver-data)\n"
            "  --threads N            gRPC worker threads (default 16)\n"
            "  --max-inflight N       calls accepted and not yet answered; more get RESOURCE_EXHAUSTED (default 64)\n"
            "  --scan-threads N       threads per exact scan, the caller included (default: online CPUs)\n"
            "  --seal-rows N          seal a collection's growing segment at N rows (default 100000)\n"
            "  --seal-wal-mb N        ... or when its WAL records reach N MiB (default 256)\n"
            "  --compact-deleted-ratio X  compact a segment automatically once this fraction of its rows is deleted\n"
            "                         (default 0.3; 0 turns it off)\n"
            "  --compact-small-segments N  ... or once a collection has N segments under a quarter of --seal-rows\n"
            "                         (default 8; 0 turns it off)\n"
            "  --index-threads N      threads building indexes of sealed segments in the background (default: online CPUs)\n"
            "  --index-min-rows N     sealed segments with fewer rows stay unindexed and are scanned exactly (default 1000)\n"
            "  --max-message-mb N     largest request or response message (default 64)\n"
            "  --simd auto|scalar|avx2|avx512  distance kernel tier (default auto: the best this CPU has)\n"
            "  --shutdown-grace-ms N  on SIGTERM, how long in-flight calls may finish before cancel (default 10000)\n"
            "  --log-level LEVEL      debug|info|warn|error (default info)\n"
            "  --metrics-listen H:P   Prometheus metrics at http://H:P/metrics (default 127.0.0.1:9700; 'off' disables;\n"
            "                         if the default port is taken the server starts without metrics and says so)\n"
            "  --api-keys FILE        require API keys: lines `KEY read|write|admin` (clients send\n"
            "                         `authorization: Bearer KEY`); without it every call is allowed\n"
            "  --tls-cert FILE --tls-key FILE  serve gRPC (and metrics) over TLS with this PEM certificate chain and key\n"
            "  --tls-client-ca FILE   also require client certificates signed by this CA (mutual TLS)\n"
            "  --help                 this text\n");
}

static long parse_num(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < lo || n > hi) {
        fprintf(stderr, "quiverd: %s expects an integer in %ld..%ld, got '%s'\n", flag, lo, hi, v);
        exit(2);
    }
    return n;
}

static void store_log(int level, const char *event, const char *fields)
{
    qv_log(level >= 2 ? QV_LOG_WARN : QV_LOG_INFO, event, "%s", fields);
}

int main(int argc, char **argv)
{
    const char *role = "standalone", *listen = "127.0.0.1:7700", *data = "./quiver-data";
    long threads = 16, scan_threads = sysconf(_SC_NPROCESSORS_ONLN), seal_rows = 100000, seal_wal_mb = 256;
    long max_msg_mb = 64, grace_ms = 10000, index_threads = sysconf(_SC_NPROCESSORS_ONLN), index_min_rows = 1000;
    qv_simd_t simd = QV_SIMD_AUTO;
    double cmp_ratio = 0.3;
    const char *metrics_listen = "127.0.0.1:9700";
    bool metrics_explicit = false;
    long max_inflight = 64;
    const char *keys_file = NULL, *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
    long cmp_small = 8;
    enum { O_ROLE = 1, O_LISTEN, O_DATA, O_THREADS, O_SCAN, O_SEAL_ROWS, O_SEAL_WAL, O_MAXMSG, O_SIMD, O_GRACE, O_LOG,
           O_HELP, O_IDX_THREADS, O_IDX_MIN, O_CMP_RATIO, O_CMP_SMALL, O_METRICS, O_INFLIGHT, O_KEYS, O_TLS_CERT, O_TLS_KEY, O_TLS_CA };
    static const struct option opts[] = {
        {"role", required_argument, NULL, O_ROLE},
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
        {"threads", required_argument, NULL, O_THREADS},
        {"scan-threads", required_argument, NULL, O_SCAN},
        {"seal-rows", required_argument, NULL, O_SEAL_ROWS},
        {"seal-wal-mb", required_argument, NULL, O_SEAL_WAL},
        {"max-message-mb", required_argument, NULL, O_MAXMSG},
        {"simd", required_argument, NULL, O_SIMD},
        {"shutdown-grace-ms", required_argument, NULL, O_GRACE},
        {"log-level", required_argument, NULL, O_LOG},
        {"index-threads", required_argument, NULL, O_IDX_THREADS},
        {"index-min-rows", required_argument, NULL, O_IDX_MIN},
        {"compact-deleted-ratio", required_argument, NULL, O_CMP_RATIO},
        {"compact-small-segments", required_argument, NULL, O_CMP_SMALL},
        {"metrics-listen", required_argument, NULL, O_METRICS},
        {"max-inflight", required_argument, NULL, O_INFLIGHT},
        {"api-keys", required_argument, NULL, O_KEYS},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-client-ca", required_argument, NULL, O_TLS_CA},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_ROLE: role = optarg; break;
        case O_LISTEN: listen = optarg; break;
        case O_DATA: data = optarg; break;
        case O_THREADS: threads = parse_num("--threads", optarg, 1, 1024); break;
        case O_SCAN: scan_threads = parse_num("--scan-threads", optarg, 1, 1024); break;
        case O_SEAL_ROWS: seal_rows = parse_num("--seal-rows", optarg, 1, 100000000); break;
        case O_SEAL_WAL: seal_wal_mb = parse_num("--seal-wal-mb", optarg, 1, 1 << 20); break;
        case O_MAXMSG: max_msg_mb = parse_num("--max-message-mb", optarg, 1, 1024); break;
        case O_IDX_THREADS: index_threads = parse_num("--index-threads", optarg, 1, 1024); break;
        case O_CMP_RATIO: {
            char *end;
            cmp_ratio = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(cmp_ratio >= 0 && cmp_ratio <= 1)) {
                fprintf(stderr, "quiverd: --compact-deleted-ratio expects a number in 0..1\n");
                return 2;
            }
            break;
        }
        case O_KEYS: keys_file = optarg; break;
        case O_TLS_CERT: tls_cert = optarg; break;
        case O_TLS_KEY: tls_key = optarg; break;
        case O_TLS_CA: tls_ca = optarg; break;
        case O_INFLIGHT: max_inflight = parse_num("--max-inflight", optarg, 1, 1000000); break;
        case O_METRICS:
            metrics_listen = optarg;
            metrics_explicit = true;
            break;
        case O_CMP_SMALL: cmp_small = parse_num("--compact-small-segments", optarg, 0, 1000000); break;
        case O_IDX_MIN: index_min_rows = parse_num("--index-min-rows", optarg, 1, 100000000); break;
        case O_GRACE: grace_ms = parse_num("--shutdown-grace-ms", optarg, 0, 3600000); break;
        case O_SIMD:
            if (strcmp(optarg, "auto") == 0) simd = QV_SIMD_AUTO;
            else if (strcmp(optarg, "scalar") == 0) simd = QV_SIMD_SCALAR;
            else if (strcmp(optarg, "avx2") == 0) simd = QV_SIMD_AVX2;
            else if (strcmp(optarg, "avx512") == 0) simd = QV_SIMD_AVX512;
            else {
                fprintf(stderr, "quiverd: --simd expects auto|scalar|avx2|avx512\n");
                return 2;
            }
            break;
        case O_LOG: {
            int l = qv_log_parse_level(optarg);
            if (l < 0) {
                fprintf(stderr, "quiverd: --log-level expects debug|info|warn|error\n");
                return 2;
            }
            qv_log_set_level(l);
            break;
        }
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "quiverd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (strcmp(role, "standalone") != 0) {
        fprintf(stderr, "quiverd: role '%s' is not available in this build (only 'standalone')\n", role);
        return 2;
    }

    if (!tls_cert != !tls_key || (tls_ca && !tls_cert)) {
        fprintf(stderr, "quiverd: --tls-cert and --tls-key go together (and --tls-client-ca needs them)\n");
        return 2;
    }
    qv_err_t ferr;
    qv_keys_t *keys = NULL;
    if (keys_file && qv_keys_load(keys_file, &keys, &ferr) != QV_OK) {
        fprintf(stderr, "quiverd: %s\n", ferr.msg);
        return 2;
    }
    char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL;
    if ((tls_cert && !(cert_pem = qv_read_file(tls_cert, 1 << 20, &ferr))) ||
        (tls_key && !(key_pem = qv_read_file(tls_key, 1 << 20, &ferr))) ||
        (tls_ca && !(ca_pem = qv_read_file(tls_ca, 1 << 20, &ferr)))) {
        fprintf(stderr, "quiverd: %s\n", ferr.msg);
        return 2;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread created from here on */
    signal(SIGPIPE, SIG_IGN);

    qv_dist_init(simd);
    qv_err_t err;
    qv_err_clear(&err);
    qv_store_opts_t so = {.path = data, .seal_rows = (uint32_t)seal_rows,
                          .seal_wal_bytes = (uint64_t)seal_wal_mb << 20, .index_threads = (int)index_threads,
                          .index_min_rows = (uint32_t)index_min_rows, .log = store_log,
                          .compact_deleted_ratio = cmp_ratio, .compact_small_segments = (uint32_t)cmp_small};
    qv_store_t *store;
    int64_t t0 = qv_now_ns();
    if (qv_store_open(&so, &store, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "store.open_failed", "data=%s msg=\"%s\"", data, err.msg);
        return 1;
    }
    qv_log(QV_LOG_INFO, "store.open", "data=%s ms=%lld", data, (long long)((qv_now_ns() - t0) / 1000000));
    qv_pool_t *pool = qv_pool_create((int)scan_threads - 1);
    if (!pool) {
        qv_log(QV_LOG_ERROR, "pool.create_failed", "threads=%ld", scan_threads);
        qv_store_close(store);
        return 1;
    }
    grpc_init();
    qv_app_t app = {.store = store, .pool = pool, .started_ns = qv_now_ns(), .role = role,
                    .max_message_bytes = (int)(max_msg_mb << 20)};
    qv_metrics_server_t *metrics = NULL;
    if (strcmp(metrics_listen, "off") != 0 &&
        qv_metrics_start(metrics_listen, store, app.started_ns, cert_pem, key_pem, &metrics, &err) != QV_OK) {
        if (metrics_explicit) {
            qv_log(QV_LOG_ERROR, "metrics.listen_failed", "listen=%s msg=\"%s\"", metrics_listen, err.msg);
            grpc_shutdown();
            qv_pool_destroy(pool);
            qv_store_close(store);
            return 1;
        }
        qv_log(QV_LOG_WARN, "metrics.disabled", "listen=%s msg=\"%s\"", metrics_listen, err.msg);
    }
    qv_rpc_opts_t ro = {.listen = listen, .threads = (int)threads, .max_message_bytes = (int)(max_msg_mb << 20),
                        .services = qv_services, .handlers = qv_handlers, .app = &app,
                        .observe = qv_metrics_observe, .max_inflight = (int)max_inflight, .keys = keys,
                        .tls_cert_pem = cert_pem, .tls_key_pem = key_pem, .tls_client_ca_pem = ca_pem};
    qv_rpc_t *rpc;
    if (qv_rpc_start(&ro, &rpc, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "server.listen_failed", "listen=%s msg=\"%s\"", listen, err.msg);
        qv_metrics_stop(metrics);
        grpc_shutdown();
        qv_pool_destroy(pool);
        qv_store_close(store);
        return 1;
    }
    qv_log(QV_LOG_INFO, "server.start", "role=%s listen=%s port=%d simd=%s threads=%ld scan_threads=%ld metrics=%s tls=%s auth=%s",
           role, listen, qv_rpc_port(rpc), qv_dist()->name, threads, scan_threads, metrics ? metrics_listen : "off",
           cert_pem ? (ca_pem ? "mutual" : "on") : "off", keys ? "api-keys" : "off");

    int sig = 0;
    sigwait(&sigs, &sig);
    qv_log(QV_LOG_INFO, "server.stopping", "signal=%d", sig);
    qv_rpc_stop(rpc, (int)grace_ms);
    qv_metrics_stop(metrics);
    grpc_shutdown();
    qv_pool_destroy(pool);
    qv_store_close(store);
    qv_keys_free(keys);
    free(cert_pem);
    free(key_pem);
    free(ca_pem);
    qv_log(QV_LOG_INFO, "server.stopped", "signal=%d", sig);
    return 0;
}
