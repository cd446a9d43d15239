/* quiver stats | flush | health (the Admin service) */
#include <string.h>

#include "tools/quiver/cli.h"

static void parse_common_only(qv_cli_t *cli, const char *cmd, const char *help, int argc, char **argv)
{
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
        qv_cli_common(cli, cmd, help, o);
}

/* ---- stats ---- */
static const char stats_help[] =
    "usage: quiver stats\n"
    "Server statistics: uptime, SIMD tier, memory, WAL bytes, and per collection its rows and segments.\n"
    "--json: {uptime_seconds, simd, resident_bytes, vector_bytes, wal_bytes, collections: [as describe --json]}\n\n";

int qv_cmd_stats(qv_cli_t *cli, int argc, char **argv)
{
    parse_common_only(cli, "stats", stats_help, argc, argv);
    qv_cli_positional("stats", argc, argv, 0, 0);
    Quiver__V1__StatsRequest req = QUIVER__V1__STATS_REQUEST__INIT;
    Quiver__V1__StatsResponse *r;
    if (qv_cli_call(cli, QV_M_ADMIN("Stats"), &req, &quiver__v1__stats_response__descriptor, &r))
        return QV_EXIT_FAIL;
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "uptime_seconds", json_integer((json_int_t)r->uptime_seconds));
        json_object_set_new(j, "simd", json_string(r->simd));
        json_object_set_new(j, "resident_bytes", json_integer((json_int_t)r->resident_bytes));
        json_object_set_new(j, "vector_bytes", json_integer((json_int_t)r->vector_bytes));
        json_object_set_new(j, "wal_bytes", json_integer((json_int_t)r->wal_bytes));
        json_t *cs = json_array();
        for (size_t i = 0; i < r->n_collections; i++)
            json_array_append_new(cs, qv_json_collection(r->collections[i], true));
        json_object_set_new(j, "collections", cs);
        qv_json_print(j);
    } else {
        char b[32];
        uint64_t up = r->uptime_seconds;
        printf("uptime       %llud %02lluh %02llum %02llus\n", (unsigned long long)(up / 86400),
               (unsigned long long)(up / 3600 % 24), (unsigned long long)(up / 60 % 60), (unsigned long long)(up % 60));
        printf("simd         %s\n", r->simd);
        printf("resident     %s\n", qv_human_bytes(r->resident_bytes, b));
        printf("vectors      %s\n", qv_human_bytes(r->vector_bytes, b));
        printf("wal          %s\n", qv_human_bytes(r->wal_bytes, b));
        printf("collections  %zu\n", r->n_collections);
        if (r->n_collections) {
            int w = 4;
            for (size_t i = 0; i < r->n_collections; i++)
                if ((int)strlen(r->collections[i]->name) > w)
                    w = (int)strlen(r->collections[i]->name);
            printf("  %-*s  %12s  %8s  %8s  %12s  %11s  %10s\n", w, "NAME", "LIVE ROWS", "GROWING", "SEALED",
                   "DELETED", "INDEX READY", "WAL");
            for (size_t i = 0; i < r->n_collections; i++) {
                const Quiver__V1__CollectionInfo *c = r->collections[i];
                size_t growing = 0, sealed = 0, ready = 0;
                uint64_t deleted = 0;
                for (size_t s = 0; s < c->n_segments; s++) {
                    const Quiver__V1__SegmentInfo *g = c->segments[s];
                    growing += g->state == QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_GROWING;
                    sealed += g->state == QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_SEALED;
                    ready += g->index_state == QUIVER__V1__INDEX_STATE__INDEX_STATE_READY;
                    deleted += g->deleted_rows;
                }
                char rb[16];
                snprintf(rb, sizeof rb, "%zu/%zu", ready, sealed);
                printf("  %-*s  %12llu  %8zu  %8zu  %12llu  %11s  %10s\n", w, c->name,
                       (unsigned long long)c->live_rows, growing, sealed, (unsigned long long)deleted, rb,
                       qv_human_bytes(c->wal_bytes, b));
            }
        }
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

/* ---- flush ---- */
static const char flush_help[] =
    "usage: quiver flush [COLLECTION]\n"
    "Seals growing segments now: the named collection's, or every collection's.\n"
    "--json: {\"collection\": NAME or \"\", \"sealed_segments\": N}\n\n";

int qv_cmd_flush(qv_cli_t *cli, int argc, char **argv)
{
    parse_common_only(cli, "flush", flush_help, argc, argv);
    qv_cli_positional("flush", argc, argv, 0, 1);
    Quiver__V1__FlushRequest req = QUIVER__V1__FLUSH_REQUEST__INIT;
    if (optind < argc)
        req.collection = argv[optind];
    Quiver__V1__FlushResponse *r;
    if (qv_cli_call(cli, QV_M_ADMIN("Flush"), &req, &quiver__v1__flush_response__descriptor, &r))
        return QV_EXIT_FAIL;
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "collection", json_string(req.collection));
        json_object_set_new(j, "sealed_segments", json_integer(r->sealed_segments));
        qv_json_print(j);
    } else {
        printf("sealed %u segment%s\n", r->sealed_segments, r->sealed_segments == 1 ? "" : "s");
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

/* ---- health ---- */
static const char health_help[] =
    "usage: quiver health\n"
    "Asks the server whether it is serving. Exit status 0 when SERVING, 1 otherwise (or when unreachable).\n"
    "--json: {\"status\": \"SERVING\"|\"NOT_SERVING\"|\"UNSPECIFIED\", \"version\": V, \"role\": R}\n\n";

int qv_cmd_health(qv_cli_t *cli, int argc, char **argv)
{
    parse_common_only(cli, "health", health_help, argc, argv);
    qv_cli_positional("health", argc, argv, 0, 0);
    Quiver__V1__HealthRequest req = QUIVER__V1__HEALTH_REQUEST__INIT;
    Quiver__V1__HealthResponse *r;
    if (qv_cli_call(cli, QV_M_ADMIN("Health"), &req, &quiver__v1__health_response__descriptor, &r))
        return QV_EXIT_FAIL;
    const char *st = r->status == QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING       ? "SERVING"
                     : r->status == QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_NOT_SERVING ? "NOT_SERVING"
                                                                                            : "UNSPECIFIED";
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "status", json_string(st));
        json_object_set_new(j, "version", json_string(r->version));
        json_object_set_new(j, "role", json_string(r->role));
        qv_json_print(j);
    } else {
        printf("%s (version %s, role %s, %s)\n", st, r->version, r->role, cli->addr);
    }
    int rc = r->status == QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING ? QV_EXIT_OK : QV_EXIT_FAIL;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}
