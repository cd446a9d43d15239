/* quiverd: the Quiver server. Parses flags, opens the store, starts the gRPC server, and waits for SIGTERM/SIGINT
 * to shut down cleanly (stop accepting calls, let in-flight calls finish or cancel them after a grace period,
 * close RocksDB). Signals are blocked in every thread and taken synchronously by sigwait in main, so no work
 * happens in a signal handler. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <limits.h>
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "index/distance.h"
#include "query/search.h"
#include "server/auth.h"
#include "server/http_api.h"
#include "server/coord/coord.h"
#include "server/coord/etcd.h"
#include "server/gpu.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/service.h"
#include "storage/backup.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: quiverd [options]\n"
            "  --role ROLE            standalone (default), shard (a standalone server that can register in etcd)\n"
            "                         or coordinator (no data: routes to and merges from shard servers)\n"
            "  --listen HOST:PORT     address to serve gRPC on (default 127.0.0.1:7700), or unix:PATH for a Unix\n"
            "                         domain socket (local clients without TCP; the file is removed on exit)\n"
            "  --data DIR             data directory, created if missing (default ./quiver-data)\n"
            "  --threads N            gRPC worker threads (default 16)\n"
            "  --max-inflight N       calls admitted and not yet answered; more get RESOURCE_EXHAUSTED at once, their\n"
            "                         body unread (default 64). Admin calls (Health, Stats, ...) have 8 slots of their own\n"
            "  --request-read-timeout-ms N  a request body must arrive within N ms of its headers, else\n"
            "                         DEADLINE_EXCEEDED (default 10000)\n"
            "  --max-streams-per-connection N  concurrent calls one client connection may open (default 32)\n"
            "  --salvage              open a store whose RocksDB log is damaged before its tail: recover what precedes\n"
            "                         the damage, copy the logs to DIR/salvage-<time>/ and log what was lost. Without\n"
            "                         it such a store refuses to start (DATA_LOSS, naming the file)\n"
            "  --backup-dir DIR       where Admin.Backup writes (RocksDB BackupEngine, incremental and checksummed): in\n"
            "                         DIR/standalone, or for a shard in DIR/<--shard-name, else --advertise, else the\n"
            "                         listen address> (':' and other characters outside [A-Za-z0-9._-] as '_'), so\n"
            "                         servers may share one DIR. `quiver restore --from` reads it offline\n"
            "  --backup-rate-mb N     Admin.Backup writes at most N MiB/s (default 0: unlimited); a lower rate costs\n"
            "                         concurrent writes less\n"
            "  --scan-threads N       threads per exact scan, the caller included (default: online CPUs)\n"
            "  --seal-rows N          seal a collection's growing segment at N rows (default 100000)\n"
            "  --seal-wal-mb N        ... or when its WAL records reach N MiB (default 256)\n"
            "  --min-free-mb N        refuse upserts (RESOURCE_EXHAUSTED) while the data directory's disk has less\n"
            "                         than N MiB free, keeping room for seals, compactions and deletes (default 256;\n"
            "                         0: no check)\n"
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
            "  --http-listen H:P      the HTTP listener (default 127.0.0.1:9700; 'off' disables; if the default port is\n"
            "                         taken the server starts without it and says so): Prometheus metrics at /metrics,\n"
            "                         the API as HTTP/JSON at POST /v1/<Quiver|Admin>/<Method>, /healthz, /readyz,\n"
            "                         /openapi.json. --metrics-listen is the same flag\n"
            "  --model-dir DIR        the embedding model (tools/fetch_model.sh puts it in build/model); default:\n"
            "                         $QV_MODEL_DIR, else model/ next to quiverd. Without one, text requests get\n"
            "                         FAILED_PRECONDITION; a model that is given but missing or corrupt stops start-up.\n"
            "                         A coordinator with a model embeds text queries and upserts itself (shards then\n"
            "                         need none); without one it leaves that to the shards\n"
            "  --embed-device auto|cpu|cuda  where the model runs (default auto: cuda when the GPU plugin is in use\n"
            "                         and takes the weights, else cpu; cuda: fail start-up unless it does)\n"
            "  --embed-batch N        texts per forward pass in the dynamic batcher (default 64)\n"
            "  --embed-wait-us N      longest a text waits for its batch to fill (default 2000)\n"
            "  --gpu auto|off|require  the CUDA plugin libquiver_gpu.so (default auto: load it from quiverd's directory\n"
            "                         or the library path and use device 0 when the plugin, the NVIDIA driver and a\n"
            "                         device are present, else run on the CPU and say which was missing; require: fail\n"
            "                         start-up instead; off: do not load it). A coordinator uses it for the model only\n"
            "  --api-keys FILE        require API keys: lines `KEY read|write|admin` (clients send\n"
            "                         `authorization: Bearer KEY`); without it every call is allowed\n"
            "  --tls-cert FILE --tls-key FILE  serve gRPC (and metrics) over TLS with this PEM certificate chain and key\n"
            "  --tls-client-ca FILE   also require client certificates signed by this CA (mutual TLS)\n"
            "cluster (docs/ARCHITECTURE.md, Cluster):\n"
            "  --shards H:P,H:P,...   coordinator: static shard servers; logical shard j of a collection lives on the\n"
            "                         (j mod N)-th, so never reorder or extend this list for existing data\n"
            "  --etcd http://H:P      coordinator: membership and collection metadata in etcd; shard: register there\n"
            "  --etcd-prefix P        etcd key prefix (default /quiver)\n"
            "  --etcd-poll-ms N       coordinator: re-read membership and metadata every N ms (default 1000)\n"
            "  --etcd-ttl S           shard: lease TTL of the registration in seconds (default 10)\n"
            "  --etcd-ca FILE         https:// etcd endpoints are verified against this CA (PEM; default: system roots)\n"
            "  --etcd-cert FILE --etcd-key FILE  client certificate for an etcd with --client-cert-auth\n"
            "  --etcd-user NAME --etcd-password-file FILE  etcd authentication (the password is the file's first line)\n"
            "  --shard-name NAME      shard: the name it registers under (default: the advertised address); the\n"
            "                         collections' shard assignment refers to it, so keep it across restarts\n"
            "  --advertise H:P        shard: the address coordinators dial (default: the listen address)\n"
            "  --shard-tls-ca FILE    coordinator: call shards over TLS, verifying them with this CA\n"
            "  --shard-tls-cert FILE --shard-tls-key FILE  coordinator: client certificate for mutual TLS to shards\n"
            "  --shard-api-key KEY    coordinator: send `authorization: Bearer KEY` to shards\n"
            "  --shard-api-key-file F coordinator: the same key read from file F (its first line), so that it does not\n"
            "                         show in the process list\n"
            "  --shard-timeout-ms N   coordinator: deadline of shard calls when the client sets none (default 5000)\n"
            "  --shard-max-inflight N coordinator: calls in flight to one shard server; more wait while the shard\n"
            "                         makes progress, else fail UNAVAILABLE (allow_partial: answered without it).\n"
            "                         Below --threads, so a hung shard cannot hold every handler thread (default:\n"
            "                         --threads less a quarter, at least 1 less). After 5 consecutive failures\n"
            "                         (UNAVAILABLE or DEADLINE_EXCEEDED) a shard's circuit breaker opens: calls to it\n"
            "                         fail at once, and one probe call goes through every 1000 ms until one succeeds\n"
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

/* glibc gives each thread that contends for the heap an arena of its own, up to 8 per CPU. quiverd's 16 gRPC threads
 * each touch a few MB per large request and leave it free in their own arena, where no other thread reuses it: after
 * loading and indexing 99,000 x 384 points the process held 1.5x the memory of a restart on the same data (1.23x with
 * the arenas bounded to the CPUs; bench/memory). An explicit MALLOC_ARENA_MAX in the environment wins. */
static void bound_malloc_arenas(void)
{
    if (getenv("MALLOC_ARENA_MAX"))
        return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, (int)(cpus < 2 ? 2 : cpus > 64 ? 64 : cpus));
}

int main(int argc, char **argv)
{
    bound_malloc_arenas(); /* before any thread starts */
    const char *role = "standalone", *listen = "127.0.0.1:7700", *data = "./quiver-data";
    long threads = 16, scan_threads = sysconf(_SC_NPROCESSORS_ONLN), seal_rows = 100000, seal_wal_mb = 256;
    long min_free_mb = 256, max_msg_mb = 64, grace_ms = 10000, index_threads = sysconf(_SC_NPROCESSORS_ONLN), index_min_rows = 1000;
    qv_simd_t simd = QV_SIMD_AUTO;
    double cmp_ratio = 0.3;
    const char *metrics_listen = "127.0.0.1:9700";
    bool metrics_explicit = false;
    long max_inflight = 64, read_timeout_ms = 10000, max_streams = 32;
    bool salvage = false;
    const char *backup_root = NULL, *etcd_pw_file = NULL;
    qv_etcd_security_t etcd_sec = {0};
    long backup_rate_mb = 0;
    const char *keys_file = NULL, *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
    const char *model_dir = NULL, *embed_device = "auto";
    qv_gpu_mode_t gpu_mode = QV_GPU_MODE_AUTO;
    long embed_batch = 64, embed_wait = 2000;
    long cmp_small = 8;
    const char *shards_list = NULL, *etcd = NULL, *etcd_prefix = "/quiver", *shard_name = NULL, *advertise = NULL;
    const char *shard_ca = NULL, *shard_cert = NULL, *shard_key = NULL, *shard_api_key = NULL, *shard_key_file = NULL;
    long etcd_poll_ms = 1000, etcd_ttl = 10, shard_timeout_ms = 5000, shard_max_inflight = 0;
    enum { O_ROLE = 1, O_LISTEN, O_DATA, O_THREADS, O_SCAN, O_SEAL_ROWS, O_SEAL_WAL, O_MAXMSG, O_SIMD, O_GRACE, O_LOG,
           O_HELP, O_IDX_THREADS, O_IDX_MIN, O_CMP_RATIO, O_CMP_SMALL, O_METRICS, O_INFLIGHT, O_KEYS, O_TLS_CERT, O_TLS_KEY, O_TLS_CA,
           O_SHARDS, O_ETCD, O_ETCD_PREFIX, O_ETCD_POLL, O_ETCD_TTL, O_SHARD_NAME, O_ADVERTISE, O_SHARD_CA, O_SHARD_CERT,
           O_SHARD_KEY, O_SHARD_KEYS, O_SHARD_TIMEOUT, O_MODEL, O_EMB_DEV, O_EMB_BATCH, O_EMB_WAIT, O_GPU,
           O_READ_TIMEOUT, O_STREAMS, O_SALVAGE, O_SHARD_INFLIGHT, O_BACKUP_DIR, O_SHARD_KEY_FILE, O_BACKUP_RATE, O_ETCD_CA, O_ETCD_CERT, O_ETCD_KEY,
           O_ETCD_USER, O_ETCD_PW, O_MIN_FREE };
    static const struct option opts[] = {
        {"role", required_argument, NULL, O_ROLE},
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
        {"threads", required_argument, NULL, O_THREADS},
        {"scan-threads", required_argument, NULL, O_SCAN},
        {"seal-rows", required_argument, NULL, O_SEAL_ROWS},
        {"seal-wal-mb", required_argument, NULL, O_SEAL_WAL},
        {"min-free-mb", required_argument, NULL, O_MIN_FREE},
        {"max-message-mb", required_argument, NULL, O_MAXMSG},
        {"simd", required_argument, NULL, O_SIMD},
        {"shutdown-grace-ms", required_argument, NULL, O_GRACE},
        {"log-level", required_argument, NULL, O_LOG},
        {"index-threads", required_argument, NULL, O_IDX_THREADS},
        {"index-min-rows", required_argument, NULL, O_IDX_MIN},
        {"compact-deleted-ratio", required_argument, NULL, O_CMP_RATIO},
        {"compact-small-segments", required_argument, NULL, O_CMP_SMALL},
        {"metrics-listen", required_argument, NULL, O_METRICS},
        {"http-listen", required_argument, NULL, O_METRICS},
        {"max-inflight", required_argument, NULL, O_INFLIGHT},
        {"request-read-timeout-ms", required_argument, NULL, O_READ_TIMEOUT},
        {"max-streams-per-connection", required_argument, NULL, O_STREAMS},
        {"salvage", no_argument, NULL, O_SALVAGE},
        {"backup-dir", required_argument, NULL, O_BACKUP_DIR},
        {"backup-rate-mb", required_argument, NULL, O_BACKUP_RATE},
        {"api-keys", required_argument, NULL, O_KEYS},
        {"model-dir", required_argument, NULL, O_MODEL},
        {"embed-device", required_argument, NULL, O_EMB_DEV},
        {"embed-batch", required_argument, NULL, O_EMB_BATCH},
        {"embed-wait-us", required_argument, NULL, O_EMB_WAIT},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-client-ca", required_argument, NULL, O_TLS_CA},
        {"shards", required_argument, NULL, O_SHARDS},
        {"etcd", required_argument, NULL, O_ETCD},
        {"etcd-prefix", required_argument, NULL, O_ETCD_PREFIX},
        {"etcd-poll-ms", required_argument, NULL, O_ETCD_POLL},
        {"etcd-ttl", required_argument, NULL, O_ETCD_TTL},
        {"etcd-ca", required_argument, NULL, O_ETCD_CA},
        {"etcd-cert", required_argument, NULL, O_ETCD_CERT},
        {"etcd-key", required_argument, NULL, O_ETCD_KEY},
        {"etcd-user", required_argument, NULL, O_ETCD_USER},
        {"etcd-password-file", required_argument, NULL, O_ETCD_PW},
        {"shard-name", required_argument, NULL, O_SHARD_NAME},
        {"advertise", required_argument, NULL, O_ADVERTISE},
        {"shard-tls-ca", required_argument, NULL, O_SHARD_CA},
        {"shard-tls-cert", required_argument, NULL, O_SHARD_CERT},
        {"shard-tls-key", required_argument, NULL, O_SHARD_KEY},
        {"shard-api-key", required_argument, NULL, O_SHARD_KEYS},
        {"shard-api-key-file", required_argument, NULL, O_SHARD_KEY_FILE},
        {"shard-timeout-ms", required_argument, NULL, O_SHARD_TIMEOUT},
        {"shard-max-inflight", required_argument, NULL, O_SHARD_INFLIGHT},
        {"gpu", required_argument, NULL, O_GPU},
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
        case O_MIN_FREE: min_free_mb = parse_num("--min-free-mb", optarg, 0, 1 << 30); break;
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
        case O_MODEL: model_dir = optarg; break;
        case O_EMB_DEV:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
                fprintf(stderr, "quiverd: --embed-device expects auto|cpu|cuda\n");
                return 2;
            }
            embed_device = optarg;
            break;
        case O_EMB_BATCH: embed_batch = parse_num("--embed-batch", optarg, 1, 1024); break;
        case O_EMB_WAIT: embed_wait = parse_num("--embed-wait-us", optarg, 0, 1000000); break;
        case O_TLS_CERT: tls_cert = optarg; break;
        case O_TLS_KEY: tls_key = optarg; break;
        case O_TLS_CA: tls_ca = optarg; break;
        case O_INFLIGHT: max_inflight = parse_num("--max-inflight", optarg, 1, 1000000); break;
        case O_READ_TIMEOUT: read_timeout_ms = parse_num("--request-read-timeout-ms", optarg, 1, 3600000); break;
        case O_STREAMS: max_streams = parse_num("--max-streams-per-connection", optarg, 1, 100000); break;
        case O_SALVAGE: salvage = true; break;
        case O_BACKUP_DIR: backup_root = optarg; break;
        case O_BACKUP_RATE: backup_rate_mb = parse_num("--backup-rate-mb", optarg, 0, 1 << 20); break;
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
        case O_SHARDS: shards_list = optarg; break;
        case O_ETCD: etcd = optarg; break;
        case O_ETCD_PREFIX: etcd_prefix = optarg; break;
        case O_ETCD_POLL: etcd_poll_ms = parse_num("--etcd-poll-ms", optarg, 50, 600000); break;
        case O_ETCD_TTL: etcd_ttl = parse_num("--etcd-ttl", optarg, 3, 3600); break;
        case O_ETCD_CA: etcd_sec.ca = optarg; break;
        case O_ETCD_CERT: etcd_sec.cert = optarg; break;
        case O_ETCD_KEY: etcd_sec.key = optarg; break;
        case O_ETCD_USER: etcd_sec.user = optarg; break;
        case O_ETCD_PW: etcd_pw_file = optarg; break;
        case O_SHARD_NAME: shard_name = optarg; break;
        case O_ADVERTISE: advertise = optarg; break;
        case O_SHARD_CA: shard_ca = optarg; break;
        case O_SHARD_CERT: shard_cert = optarg; break;
        case O_SHARD_KEY: shard_key = optarg; break;
        case O_SHARD_KEYS: shard_api_key = optarg; break;
        case O_SHARD_KEY_FILE: shard_key_file = optarg; break;
        case O_SHARD_TIMEOUT: shard_timeout_ms = parse_num("--shard-timeout-ms", optarg, 1, 86400000); break;
        case O_SHARD_INFLIGHT: shard_max_inflight = parse_num("--shard-max-inflight", optarg, 1, 1023); break;
        case O_GPU:
            if (qv_gpu_parse_mode(optarg, &gpu_mode) != 0) {
                fprintf(stderr, "quiverd: --gpu expects auto|off|require\n");
                return 2;
            }
            break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "quiverd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!qv_fault_start()) { /* common/fault.h: tests arm fault points through these fifos */
        fprintf(stderr, "quiverd: QV_FAULT_FIFO is set but this build has no fault points (QV_FAULT_POINTS) or the "
                        "fifos could not be made\n");
        return 2;
    }
    bool coordinator = strcmp(role, "coordinator") == 0, shard = strcmp(role, "shard") == 0;
    if (!coordinator && !shard && strcmp(role, "standalone") != 0) {
        fprintf(stderr, "quiverd: --role expects standalone, shard or coordinator, got '%s'\n", role);
        return 2;
    }
    if (coordinator && !shards_list == !etcd) {
        fprintf(stderr, "quiverd: --role coordinator needs exactly one of --shards H:P,... and --etcd http://H:P\n");
        return 2;
    }
    if ((shards_list && !coordinator) || (etcd && !coordinator && !shard) ||
        ((shard_ca || shard_cert || shard_api_key || shard_key_file) && !coordinator) ||
        ((shard_name || advertise) && !shard)) {
        fprintf(stderr, "quiverd: --shards and --shard-tls-*/--shard-api-key are coordinator flags, --shard-name and "
                        "--advertise shard flags, and --etcd belongs to either\n");
        return 2;
    }
    if (coordinator && shard_max_inflight >= threads) {
        fprintf(stderr, "quiverd: --shard-max-inflight %ld must be below --threads %ld, so that a hung shard leaves "
                        "handler threads for the others and for Health\n", shard_max_inflight, threads);
        return 2;
    }
    if (!shard_cert != !shard_key || (shard_cert && !shard_ca)) {
        fprintf(stderr, "quiverd: --shard-tls-cert and --shard-tls-key go together, with --shard-tls-ca\n");
        return 2;
    }

    if ((etcd_sec.ca || etcd_sec.cert || etcd_sec.key || etcd_sec.user || etcd_pw_file) && !etcd) {
        fprintf(stderr, "quiverd: --etcd-ca/--etcd-cert/--etcd-key/--etcd-user/--etcd-password-file need --etcd\n");
        return 2;
    }
    if (!etcd_sec.cert != !etcd_sec.key || !etcd_sec.user != !etcd_pw_file) {
        fprintf(stderr, "quiverd: --etcd-cert goes with --etcd-key, and --etcd-user with --etcd-password-file\n");
        return 2;
    }
    char *etcd_pw = NULL;
    if (etcd_pw_file) {
        qv_err_t perr;
        if (!(etcd_pw = qv_read_file(etcd_pw_file, 4096, &perr))) {
            fprintf(stderr, "quiverd: --etcd-password-file: %s\n", perr.msg);
            return 2;
        }
        etcd_pw[strcspn(etcd_pw, "\r\n")] = '\0';
        etcd_sec.password = etcd_pw;
    }
    char *shard_key_text = NULL;
    if (shard_key_file) {
        qv_err_t kerr;
        if (shard_api_key) {
            fprintf(stderr, "quiverd: give one of --shard-api-key and --shard-api-key-file\n");
            return 2;
        }
        if (!(shard_key_text = qv_read_file(shard_key_file, 4096, &kerr))) {
            fprintf(stderr, "quiverd: --shard-api-key-file: %s\n", kerr.msg);
            return 2;
        }
        shard_key_text[strcspn(shard_key_text, "\r\n")] = '\0'; /* the first line */
        if (!*shard_key_text) {
            fprintf(stderr, "quiverd: --shard-api-key-file %s: the first line is empty\n", shard_key_file);
            return 2;
        }
        shard_api_key = shard_key_text;
    }
    if (coordinator && backup_root) {
        fprintf(stderr, "quiverd: --backup-dir belongs to standalone and shard servers (a coordinator stores no data; "
                        "back up each shard server)\n");
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

    char backup_dir[4096], root_abs[PATH_MAX];
    if (backup_root) { /* this server's subdirectory: the name is stable across restarts when the operator's is */
        qv_err_t berr;
        if (qv__backup_mkdirs(backup_root, &berr) != QV_OK) {
            fprintf(stderr, "quiverd: --backup-dir: %s\n", berr.msg);
            return 2;
        }
        if (!realpath(backup_root, root_abs)) {
            fprintf(stderr, "quiverd: --backup-dir %s: %s\n", backup_root, strerror(errno));
            return 2;
        }
        backup_root = root_abs; /* BackupInfo.directory is what `quiver restore --from` takes, from any directory */
        const char *name = shard ? (shard_name ? shard_name : advertise ? advertise : listen) : "standalone";
        int n = snprintf(backup_dir, sizeof backup_dir, "%s/", backup_root);
        for (const char *p = name; *p && n + 1 < (int)sizeof backup_dir; p++)
            backup_dir[n++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_') ? *p : '_';
        backup_dir[n] = '\0';
    }
    /* the model: explicit --model-dir must load; the default location may be absent */
    char default_dir[4096];
    bool model_explicit = model_dir != NULL;
    if (!model_dir && getenv("QV_MODEL_DIR") && *getenv("QV_MODEL_DIR")) {
        model_dir = getenv("QV_MODEL_DIR");
        model_explicit = true;
    }
    if (!model_dir) {
        ssize_t n = readlink("/proc/self/exe", default_dir, sizeof default_dir - 8);
        if (n > 0) {
            default_dir[n] = '\0';
            char *slash = strrchr(default_dir, '/');
            if (slash)
                strcpy(slash + 1, "model");
            model_dir = default_dir;
        }
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread created from here on */
    signal(SIGPIPE, SIG_IGN);
    if (etcd) {
        qv_coord_global_init();
        qv_etcd_set_security(&etcd_sec);
    }

    qv_dist_init(simd);
    qv_err_t err;
    qv_err_clear(&err);
    /* the GPU plugin: one log line either way (server/gpu.h). When in use, it builds the segments' graphs (the
     * indexer falls back to the CPU per segment) and, per --embed-device, runs the embedding model. */
    qv_gpu_plugin_t *gpu = NULL;
    qv_gpu_status_t gst;
    if (qv_gpu_load(gpu_mode, 0, &gpu, &gst, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "gpu.required", "msg=\"%s\"", err.msg);
        return 1;
    }
    if (gpu)
        qv_log(QV_LOG_INFO, "gpu.ready", "mode=%s device=%d name=\"%s\" cc=%d.%d mem_free_mb=%zu mem_total_mb=%zu "
               "plugin=%s build=\"%s\"", qv_gpu_mode_name(gpu_mode), gpu->info.device, gpu->info.name,
               gpu->info.cc_major, gpu->info.cc_minor, gpu->info.mem_free >> 20, gpu->info.mem_total >> 20, gpu->path,
               gpu->api->build);
    else if (gpu_mode == QV_GPU_MODE_OFF)
        qv_log(QV_LOG_INFO, "gpu.off", "mode=off (the plugin is not loaded; everything runs on the CPU)");
    else
        qv_log(QV_LOG_INFO, "gpu.unavailable", "mode=auto missing=%s detail=\"%s\" (running on the CPU)",
               gst.missing, gst.detail);
    qv_embedder_t *embedder = NULL;
    if (model_dir) {
        int64_t m0 = qv_now_ns();
        qv_embed_device_t dev = strcmp(embed_device, "cuda") == 0  ? QV_EMBED_DEV_CUDA
                                : strcmp(embed_device, "cpu") == 0 ? QV_EMBED_DEV_CPU
                                                                   : QV_EMBED_DEV_AUTO;
        int erc = qv_embedder_start(model_dir, (int)embed_batch, (int)embed_wait, (int)scan_threads, gpu, dev,
                                    &embedder, &err);
        if (erc != QV_OK) {
            if (model_explicit || erc == QV_EUNAVAIL || dev == QV_EMBED_DEV_CUDA) { /* cuda asked for a model */
                qv_log(QV_LOG_ERROR, "embed.load_failed", "model_dir=%s msg=\"%s\"", model_dir, err.msg);
                qv_gpu_unload(gpu);
                return 1;
            }
            qv_log(QV_LOG_WARN, "embed.unavailable", "model_dir=%s msg=\"%s\" (text requests get FAILED_PRECONDITION)",
                   model_dir, err.msg);
        } else {
            qv_log(QV_LOG_INFO, "embed.ready", "model=all-MiniLM-L6-v2 device=%s dir=%s ms=%lld",
                   qv_embedder_device(embedder), model_dir, (long long)((qv_now_ns() - m0) / 1000000));
        }
    }
    if (coordinator) { /* no store and no scan pool; the model when there is one (it embeds text itself) */
        qv_coord_cfg_t cc = {.listen = listen, .shards = shards_list, .etcd = etcd, .etcd_prefix = etcd_prefix,
                             .etcd_poll_ms = (int)etcd_poll_ms, .threads = (int)threads,
                             .max_inflight = (int)max_inflight, .request_read_timeout_ms = (int)read_timeout_ms,
                             .max_streams_per_connection = (int)max_streams,
                             .max_message_bytes = (int)(max_msg_mb << 20),
                             .grace_ms = (int)grace_ms, .shard_timeout_ms = shard_timeout_ms,
                             .shard_max_inflight = (int)shard_max_inflight, .keys = keys,
                             .tls_cert_pem = cert_pem, .tls_key_pem = key_pem, .tls_client_ca_pem = ca_pem,
                             .shard_api_key = shard_api_key, .sigs = &sigs, .embedder = embedder};
        int rc = 0;
        qv_metrics_server_t *metrics = NULL; /* calls, embedding counters, process figures: no store gauges */
        if (strcmp(metrics_listen, "off") != 0 &&
            qv_metrics_start(metrics_listen, NULL, qv_now_ns(), cert_pem, key_pem, &metrics, &err) != QV_OK) {
            qv_log(metrics_explicit ? QV_LOG_ERROR : QV_LOG_WARN,
                   metrics_explicit ? "metrics.listen_failed" : "metrics.disabled", "listen=%s msg=\"%s\"",
                   metrics_listen, err.msg);
            if (metrics_explicit)
                rc = 1;
        }
        cc.http = metrics;
        if ((shard_ca && !(cc.shard_ca_pem = qv_read_file(shard_ca, 1 << 20, &ferr))) ||
            (shard_cert && !(cc.shard_cert_pem = qv_read_file(shard_cert, 1 << 20, &ferr))) ||
            (shard_key && !(cc.shard_key_pem = qv_read_file(shard_key, 1 << 20, &ferr)))) {
            fprintf(stderr, "quiverd: %s\n", ferr.msg);
            rc = 2;
        }
        if (rc == 0) {
            grpc_init();
            rc = qv_coord_main(&cc);
            grpc_shutdown();
        }
        qv_metrics_stop(metrics);
        qv_embedder_stop(embedder);
        qv_gpu_unload(gpu);
        free(cc.shard_ca_pem);
        free(cc.shard_cert_pem);
        free(cc.shard_key_pem);
        qv_keys_free(keys);
        free(cert_pem);
        free(key_pem);
        free(ca_pem);
        return rc;
    }

    qv_store_opts_t so = {.path = data, .seal_rows = (uint32_t)seal_rows,
                          .seal_wal_bytes = (uint64_t)seal_wal_mb << 20, .index_threads = (int)index_threads,
                          .index_min_rows = (uint32_t)index_min_rows, .log = store_log,
                          .compact_deleted_ratio = cmp_ratio, .compact_small_segments = (uint32_t)cmp_small,
                          .graph_build = gpu ? qv_gpu_graph_build : NULL, .graph_ctx = gpu, .graph_builder = "gpu",
                          .salvage = salvage, .backup_rate = (uint64_t)backup_rate_mb << 20,
                          .min_free_bytes = (uint64_t)min_free_mb << 20};
    qv_store_t *store;
    int64_t t0 = qv_now_ns();
    if (qv_store_open(&so, &store, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "store.open_failed", "data=%s msg=\"%s\"", data, err.msg);
        qv_embedder_stop(embedder);
        qv_gpu_unload(gpu);
        return 1;
    }
    qv_log(QV_LOG_INFO, "store.open", "data=%s ms=%lld", data, (long long)((qv_now_ns() - t0) / 1000000));
    qv_store_salvage_t sv;
    qv_store_salvage_report(store, &sv);
    if (sv.salvaged)
        qv_log(QV_LOG_WARN, "store.salvaged",
               "log=%s offset=%llu batches_lost=%llu ops_lost=%llu kept=%s (acknowledged writes after the damage "
               "are gone; the original logs are kept)", sv.damage.file, (unsigned long long)sv.damage.offset,
               (unsigned long long)sv.damage.batches_after, (unsigned long long)sv.damage.ops_after, sv.kept);
    qv_pool_t *pool = qv_pool_create((int)scan_threads - 1);
    if (!pool) {
        qv_log(QV_LOG_ERROR, "pool.create_failed", "threads=%ld", scan_threads);
        qv_embedder_stop(embedder);
        qv_store_close(store);
        qv_gpu_unload(gpu);
        return 1;
    }
    grpc_init();
    qv_app_t app = {.store = store, .pool = pool, .started_ns = qv_now_ns(), .role = role,
                    .max_message_bytes = (int)(max_msg_mb << 20), .embedder = embedder,
                    .backup_dir = backup_root ? backup_dir : NULL};
    qv_metrics_server_t *metrics = NULL;
    if (strcmp(metrics_listen, "off") != 0 &&
        qv_metrics_start(metrics_listen, store, app.started_ns, cert_pem, key_pem, &metrics, &err) != QV_OK) {
        if (metrics_explicit) {
            qv_log(QV_LOG_ERROR, "metrics.listen_failed", "listen=%s msg=\"%s\"", metrics_listen, err.msg);
            qv_embedder_stop(embedder);
            grpc_shutdown();
            qv_pool_destroy(pool);
            qv_store_close(store);
            qv_gpu_unload(gpu);
            return 1;
        }
        qv_log(QV_LOG_WARN, "metrics.disabled", "listen=%s msg=\"%s\"", metrics_listen, err.msg);
    }
    qv_rpc_opts_t ro = {.listen = listen, .threads = (int)threads, .max_message_bytes = (int)(max_msg_mb << 20),
                        .services = qv_services, .handlers = qv_handlers, .app = &app,
                        .observe = qv_metrics_observe, .max_inflight = (int)max_inflight, .keys = keys,
                        .request_read_timeout_ms = (int)read_timeout_ms, .max_streams_per_connection = (int)max_streams,
                        .tls_cert_pem = cert_pem, .tls_key_pem = key_pem, .tls_client_ca_pem = ca_pem};
    qv_rpc_t *rpc;
    if (qv_rpc_start(&ro, &rpc, &err) != QV_OK) {
        qv_log(QV_LOG_ERROR, "server.listen_failed", "listen=%s msg=\"%s\"", listen, err.msg);
        qv_metrics_stop(metrics);
        qv_embedder_stop(embedder);
        grpc_shutdown();
        qv_pool_destroy(pool);
        qv_store_close(store);
        qv_gpu_unload(gpu);
        return 1;
    }
    /* the same handlers over HTTP/JSON on the --http-listen listener (server/http_api.h) */
    qv_http_api_t http_api = {.services = qv_services, .handlers = qv_handlers, .app = &app, .keys = keys,
                              .max_message_bytes = (int)(max_msg_mb << 20), .observe = qv_metrics_observe};
    qv_metrics_attach_api(metrics, &http_api);
    qv_log(QV_LOG_INFO, "server.start", "role=%s listen=%s port=%d simd=%s threads=%ld scan_threads=%ld metrics=%s tls=%s auth=%s",
           role, listen, qv_rpc_port(rpc), qv_dist()->name, threads, scan_threads, metrics ? metrics_listen : "off",
           cert_pem ? (ca_pem ? "mutual" : "on") : "off", keys ? "api-keys" : "off");
    struct qv_etcd_reg *reg = NULL;
    if (shard && etcd) {
        char adv[256], host[200];
        if (!advertise) { /* the listen host with the bound port (listen may say port 0) */
            const char *colon = strrchr(listen, ':');
            size_t hl = colon ? (size_t)(colon - listen) : strlen(listen);
            snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), listen);
            snprintf(adv, sizeof adv, "%s:%d", host, qv_rpc_port(rpc));
            advertise = adv;
        }
        if (qv_shard_register(etcd, etcd_prefix, shard_name ? shard_name : advertise, advertise, (int)etcd_ttl, &reg,
                              &err) != QV_OK)
            qv_log(QV_LOG_ERROR, "etcd.register_failed", "msg=\"%s\"", err.msg);
    }

    /* Wait for a stop signal; meanwhile, a store that fails leaves etcd so coordinators stop routing to it (Health
     * and quiver_store_failed say why). */
    int sig = -1;
    while (sig < 0) {
        struct timespec tick = {0, 200 * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &tick);
        char why[256];
        if (reg && qv_store_failed(store, why, sizeof why)) {
            qv_log(QV_LOG_ERROR, "etcd.deregistered", "reason=\"store failed: %s\"", why);
            qv_shard_unregister(reg);
            reg = NULL;
        }
    }
    qv_log(QV_LOG_INFO, "server.stopping", "signal=%d", sig);
    qv_shard_unregister(reg);
    qv_metrics_stop(metrics); /* first: the HTTP API's calls use what follows */
    qv_rpc_stop(rpc, (int)grace_ms);
    qv_embedder_stop(embedder);
    grpc_shutdown();
    qv_pool_destroy(pool);
    qv_store_close(store);
    qv_keys_free(keys);
    free(cert_pem);
    free(key_pem);
    free(ca_pem);
    qv_gpu_unload(gpu);
    qv_log(QV_LOG_INFO, "server.stopped", "signal=%d", sig);
    return 0;
}
