/* quiver: the command-line client of quiverd.
 *
 *   quiver [--addr HOST:PORT] [--timeout S] [--json] [--api-key KEY] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]
 *          [--tls-server-name NAME]] COMMAND [ARGS...]
 *
 * main parses the common options that come before the command (getopt_long with a leading '+', so that parsing stops
 * at the command name), then hands the rest of argv to the command, which parses its own options and accepts the
 * common ones again. Commands live one group per file: cmd_collections.c (collections, describe, create, drop),
 * cmd_points.c (count, get, delete, search, embed), cmd_admin.c (stats, flush, compact, health), cmd_backup.c (backup,
 * restore), load*.c (load).
 *
 * Security options mirror quiverd's: --api-key (or $QUIVER_API_KEY) for a server started with --api-keys, and
 * --tls-ca / --tls-cert / --tls-key / --tls-server-name for one started with --tls-cert (and --tls-client-ca). They
 * become channel credentials and call metadata in client.c. */
#include <stdlib.h>
#include <string.h>

#include "tools/quiver/cli.h"

typedef struct {
    const char *name;
    int (*run)(qv_cli_t *, int, char **);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"collections", qv_cmd_collections, "list collections"},
    {"describe", qv_cmd_describe, "show a collection's schema, rows and segments"},
    {"create", qv_cmd_create, "create a collection"},
    {"drop", qv_cmd_drop, "drop a collection and its data"},
    {"count", qv_cmd_count, "count live points, optionally filtered"},
    {"get", qv_cmd_get, "fetch points by id"},
    {"delete", qv_cmd_delete, "delete points by id or by filter"},
    {"update", qv_cmd_update, "set or remove attributes of points by id or by filter"},
    {"search", qv_cmd_search, "k nearest neighbours of a vector or a text, optionally filtered"},
    {"embed", qv_cmd_embed, "embed texts with the server's model"},
    {"load", qv_cmd_load, "bulk-load fvecs/bvecs/npy/jsonl/csv/tsv files (resumable)"},
    {"stats", qv_cmd_stats, "server statistics"},
    {"flush", qv_cmd_flush, "seal growing segments now"},
    {"compact", qv_cmd_compact, "merge segments and purge deleted rows (online)"},
    {"health", qv_cmd_health, "is the server serving?"},
    {"backup", qv_cmd_backup, "take, list and verify backups of the server's store"},
    {"restore", qv_cmd_restore, "write a backup as a new data directory (offline)"},
};

static void usage(FILE *out)
{
    fputs("usage: quiver [--addr HOST:PORT] [--timeout S] [--json] [--api-key KEY] [--tls-ca FILE ...] COMMAND "
          "[ARGS...]\n\nCommands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'quiver COMMAND --help' describes a command's arguments.\n\n", out);
    fputs(qv_cli_common_help, out);
    fputs("\n" QV_FILTER_HELP, out);
}

int main(int argc, char **argv)
{
    qv_cli_t cli = {.addr = QV_CLI_DEFAULT_ADDR, .timeout = QV_CLI_DEFAULT_TIMEOUT};
    const char *env = getenv("QUIVER_ADDR");
    if (env && *env)
        cli.addr = env;
    env = getenv("QUIVER_API_KEY");
    if (env && *env)
        cli.api_key = env; /* --api-key overrides it */
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (o == QV_OPT_HELP) {
            usage(stdout);
            return QV_EXIT_OK;
        }
        qv_cli_common(&cli, NULL, "", o);
    }
    if (optind >= argc) {
        usage(stderr);
        return QV_EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        usage(stdout);
        return QV_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            int first = optind; /* the reset below clears optind */
            qv_cli_getopt_reset();
            int rc = commands[i].run(&cli, argc - first, argv + first);
            fflush(stdout);
            qv_client_close(cli.client);
            return rc;
        }
    }
    fprintf(stderr, "quiver: unknown command '%s'\nTry 'quiver --help'.\n", name);
    return QV_EXIT_USAGE;
}
