/* The `quiver` command-line tool: what every command shares.
 *
 * Every command is `int qv_cmd_<name>(qv_cli_t *cli, int argc, char **argv)` with argv[0] the command name; it parses
 * its own options with getopt_long (the common options --addr, --timeout, --json and --help are accepted by every
 * command, before or after its name) and returns the process exit status:
 *   0 success, 1 the server (or the input of `load`) failed, 2 a usage error, 130 interrupted (load only).
 * Usage errors and --help exit from inside option parsing (qv_cli_usage, qv_cli_help): a command has allocated nothing
 * by then. Human-readable output goes to stdout, errors to stderr; with --json, stdout carries exactly one JSON
 * document per command. */
#ifndef QV_CLI_H
#define QV_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/arena.h"
#include "quiver/v1/quiver.pb-c.h"
#include "tools/quiver/client.h"

enum { QV_EXIT_OK = 0, QV_EXIT_FAIL = 1, QV_EXIT_USAGE = 2, QV_EXIT_INTERRUPTED = 130 };

#define QV_CLI_DEFAULT_ADDR "127.0.0.1:7700"
#define QV_CLI_DEFAULT_TIMEOUT 60.0

typedef struct {
    const char *addr;     /* --addr, else $QUIVER_ADDR, else 127.0.0.1:7700 */
    double timeout;       /* --timeout: seconds per call */
    bool json;            /* --json */
    const char *api_key;  /* --api-key, else $QUIVER_API_KEY: sent as `authorization: Bearer KEY` */
    const char *tls_ca;   /* --tls-ca FILE: TLS, the server certificate must chain to these PEM roots */
    const char *tls_cert; /* --tls-cert FILE + --tls-key FILE: client certificate (mutual TLS) */
    const char *tls_key;
    const char *tls_server_name; /* --tls-server-name NAME: expected name in the server certificate */
    qv_client_t *client;  /* opened by the first qv_cli_call */
} qv_cli_t;

/* ---- common options: add QV_CLI_COMMON_OPTIONS to every option table, route unknown opts to qv_cli_common ---- */
enum {
    QV_OPT_ADDR = 1000,
    QV_OPT_TIMEOUT,
    QV_OPT_JSON,
    QV_OPT_HELP,
    QV_OPT_API_KEY,
    QV_OPT_TLS_CA,
    QV_OPT_TLS_CERT,
    QV_OPT_TLS_KEY,
    QV_OPT_TLS_SERVER_NAME,
    QV_OPT_FIRST_COMMAND = 1100
};
#define QV_CLI_COMMON_OPTIONS                                                                                          \
    {"addr", required_argument, NULL, QV_OPT_ADDR}, {"timeout", required_argument, NULL, QV_OPT_TIMEOUT},              \
        {"json", no_argument, NULL, QV_OPT_JSON}, {"help", no_argument, NULL, QV_OPT_HELP},                            \
        {"api-key", required_argument, NULL, QV_OPT_API_KEY}, {"tls-ca", required_argument, NULL, QV_OPT_TLS_CA},      \
        {"tls-cert", required_argument, NULL, QV_OPT_TLS_CERT}, {"tls-key", required_argument, NULL, QV_OPT_TLS_KEY},  \
        {"tls-server-name", required_argument, NULL, QV_OPT_TLS_SERVER_NAME}

/* Handles a common option (or a getopt error) for command `cmd` whose help text is `help`; exits on --help (0) and
 * on usage errors (2). */
void qv_cli_common(qv_cli_t *cli, const char *cmd, const char *help, int opt);
/* Parses argv of a command that has only the common options. */
void qv_cli_parse_common(qv_cli_t *cli, const char *cmd, const char *help, int argc, char **argv);
/* The help text of the common options, appended to every command's help. */
extern const char qv_cli_common_help[];
/* Prints "quiver CMD: message" and a hint to stderr, exits 2. */
void qv_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Parses an integer option in lo..hi or exits 2. */
long qv_cli_int(const char *cmd, const char *flag, const char *arg, long lo, long hi);
/* Resets getopt for a command's argv (argv[0] is the command). */
void qv_cli_getopt_reset(void);
/* Exits 2 unless the number of positional arguments left is in lo..hi. */
void qv_cli_positional(const char *cmd, int argc, char **argv, int lo, int hi);

/* ---- calls ---- */
#define QV_M_QUIVER(m) "/quiver.v1.Quiver/" m
#define QV_M_ADMIN(m) "/quiver.v1.Admin/" m

/* One call with cli's address and timeout. On failure prints "quiver: CODE: message" to stderr and returns 1;
 * on success returns 0 with *resp owned by the caller (protobuf_c_message_free_unpacked). */
int qv_cli_call(qv_cli_t *cli, const char *method, const void *req, const ProtobufCMessageDescriptor *resp_desc,
                void *resp);
/* Opens the client if not yet open, with cli's key and TLS settings. Exits 2 when the TLS options do not fit together
 * or a certificate file cannot be read, 1 on OOM. */
qv_client_t *qv_cli_client(qv_cli_t *cli);

/* ---- names ---- */
const char *qv_metric_name(int m);       /* "L2", "IP", "COSINE" */
const char *qv_ftype_name(int t);        /* "INT64", ... */
const char *qv_segstate_name(int s);     /* "GROWING", "SEALED" */
const char *qv_idxstate_name(int s);     /* "NONE", "PENDING", "BUILDING", "READY", "FAILED" */
const char *qv_idxkind_name(int k);      /* "HNSW" (also for UNSPECIFIED), "FLAT" */
int qv_ftype_parse(const char *s);       /* case-insensitive name (also "int", "float", "str", "keyword[s]"); -1 */

/* ---- output ---- */
/* Dumps v to stdout (indented, a newline after) and releases it. */
void qv_json_print(json_t *v);
json_t *qv_json_value(const Quiver__V1__Value *v);
json_t *qv_json_collection(const Quiver__V1__CollectionInfo *c, bool segments);
json_t *qv_json_floats(const float *v, size_t n);
/* Point and Hit attribute entries are distinct generated types with the same layout; pass either with `hit`. */
json_t *qv_json_attributes(void *const *entries, size_t n, bool hit);
void qv_print_value(FILE *out, const Quiver__V1__Value *v);
void qv_print_attributes(FILE *out, void *const *entries, size_t n, bool hit);
void qv_print_floats(FILE *out, const float *v, size_t n);
/* "12.3 MiB" */
const char *qv_human_bytes(uint64_t n, char buf[32]);

/* ---- input helpers ---- */
/* Parses "1,2,3", "1 2 3" or "[1, 2, 3]" into an arena array of finite floats. Returns 0, or -1 with msg set. */
int qv_parse_floats(qv_arena_t *a, const char *s, size_t len, float **out, size_t *n, char *msg, size_t msglen);

/* ---- filters (filter.c): the JSON grammar is in QV_FILTER_HELP ---- */
#define QV_FILTER_HELP                                                                                                 \
    "Filters are JSON:\n"                                                                                              \
    "  FILTER := {\"all\": [FILTER, ...]}          every filter matches\n"                                            \
    "          | {\"any\": [FILTER, ...]}          at least one matches\n"                                            \
    "          | {\"not\": FILTER}                 negation (also spelled \"negate\")\n"                              \
    "          | {\"field\": NAME, \"eq\": VALUE}\n"                                                                  \
    "          | {\"field\": NAME, \"any_of\": [VALUE, ...]}      (also spelled \"in\")\n"                            \
    "          | {\"field\": NAME, \"range\": {\"gt\"|\"gte\": NUMBER, \"lt\"|\"lte\": NUMBER}}  (one bound or two)\n" \
    "  VALUE  := integer (INT64; also matches DOUBLE fields) | real (DOUBLE) | \"string\" (KEYWORD, or an element\n"   \
    "            of a KEYWORDS field) | true | false (BOOL)\n"                                                         \
    "  A point lacking the field fails the condition. Example:\n"                                                     \
    "    '{\"all\":[{\"field\":\"cat\",\"eq\":\"news\"},{\"field\":\"n\",\"range\":{\"gte\":5}}]}'\n"

/* Parses a JSON filter into a Filter allocated from a. Returns 0, or -1 with msg naming the problem. */
int qv_cli_filter_parse(qv_arena_t *a, const char *text, Quiver__V1__Filter **out, char *msg, size_t msglen);
/* A JSON object of attributes ({"year": 2020, "lang": "en", "tags": ["a", "b"]}) as UpdateAttributes' set entries,
 * typed by their JSON form like filter values (an array of strings is KEYWORDS). */
int qv_cli_attrs_parse(qv_arena_t *a, const char *text, Quiver__V1__UpdateAttributesRequest__SetEntry ***out,
                       size_t *n, char *msg, size_t msglen);

/* ---- commands ---- */
int qv_cmd_collections(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_describe(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_create(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_drop(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_count(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_get(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_delete(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_update(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_search(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_stats(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_flush(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_health(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_backup(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_embed(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_restore(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_compact(qv_cli_t *cli, int argc, char **argv);
int qv_cmd_load(qv_cli_t *cli, int argc, char **argv);

#endif
