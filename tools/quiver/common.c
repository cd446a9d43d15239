/* Helpers every `quiver` command shares: common options, the call wrapper, enum names, JSON and text output. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/quiver/cli.h"

const char qv_cli_common_help[] =
    "Common options (any command, before or after its name):\n"
    "  --addr HOST:PORT   server address (default $QUIVER_ADDR, else " QV_CLI_DEFAULT_ADDR ")\n"
    "  --timeout SECONDS  deadline of each call (default 60)\n"
    "  --json             machine-readable output: one JSON document on stdout\n"
    "  --api-key KEY      send `authorization: Bearer KEY` with every call (default $QUIVER_API_KEY), for a\n"
    "                     server started with --api-keys\n"
    "  --tls-ca FILE      TLS: verify the server certificate against these PEM root certificates\n"
    "  --tls-cert FILE --tls-key FILE  TLS client certificate and key (mutual TLS: quiverd --tls-client-ca)\n"
    "  --tls-server-name NAME  the name the server certificate must carry, when not the host of --addr\n"
    "                     (TLS is on with --tls-ca or --tls-cert; without --tls-ca gRPC's default roots apply)\n"
    "  --help             this text\n"
    "Exit status: 0 ok, 1 server error (its gRPC status name and message on stderr), 2 usage error.\n";

void qv_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "quiver%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'quiver%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    exit(QV_EXIT_USAGE);
}

void qv_cli_getopt_reset(void)
{
    optind = 0; /* GNU: 0 re-initialises getopt completely, including its permutation state */
    opterr = 1;
}

void qv_cli_parse_common(qv_cli_t *cli, const char *cmd, const char *help, int argc, char **argv)
{
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
        qv_cli_common(cli, cmd, help, o);
}

void qv_cli_common(qv_cli_t *cli, const char *cmd, const char *help, int opt)
{
    switch (opt) {
    case QV_OPT_ADDR:
        if (!*optarg)
            qv_cli_usage(cmd, "--addr needs HOST:PORT");
        cli->addr = optarg;
        return;
    case QV_OPT_TIMEOUT: {
        char *end;
        errno = 0;
        double t = strtod(optarg, &end);
        if (errno || end == optarg || *end || !(t > 0) || t > 1e6)
            qv_cli_usage(cmd, "--timeout expects seconds (> 0), got '%s'", optarg);
        cli->timeout = t;
        return;
    }
    case QV_OPT_JSON: cli->json = true; return;
    case QV_OPT_API_KEY:
        for (const char *p = optarg; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                qv_cli_usage(cmd, "--api-key: keys are printable ASCII without spaces");
        if (!*optarg)
            qv_cli_usage(cmd, "--api-key needs a KEY");
        cli->api_key = optarg;
        return;
    case QV_OPT_TLS_CA:
    case QV_OPT_TLS_CERT:
    case QV_OPT_TLS_KEY:
    case QV_OPT_TLS_SERVER_NAME:
        if (!*optarg)
            qv_cli_usage(cmd, "--tls-* options need a value");
        *(opt == QV_OPT_TLS_CA     ? &cli->tls_ca
          : opt == QV_OPT_TLS_CERT ? &cli->tls_cert
          : opt == QV_OPT_TLS_KEY  ? &cli->tls_key
                                   : &cli->tls_server_name) = optarg;
        return;
    case QV_OPT_HELP:
        fputs(help, stdout);
        fputs(qv_cli_common_help, stdout);
        exit(QV_EXIT_OK);
    default:
        /* getopt_long has printed what was wrong ('?': unknown option or missing argument) */
        fprintf(stderr, "Try 'quiver%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
        exit(QV_EXIT_USAGE);
    }
}

long qv_cli_int(const char *cmd, const char *flag, const char *arg, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (errno || *arg == '\0' || *end != '\0' || n < lo || n > hi)
        qv_cli_usage(cmd, "%s expects an integer in %ld..%ld, got '%s'", flag, lo, hi, arg);
    return n;
}

void qv_cli_positional(const char *cmd, int argc, char **argv, int lo, int hi)
{
    int n = argc - optind;
    if (n < lo)
        qv_cli_usage(cmd, "missing argument%s", lo - n > 1 ? "s" : "");
    if (hi >= 0 && n > hi)
        qv_cli_usage(cmd, "unexpected argument '%s'", argv[optind + hi]);
}

/* Reads a whole PEM file into a NUL-terminated string or exits 2 naming it. */
static char *read_pem(const char *flag, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "quiver: %s %s: %s\n", flag, path, strerror(errno));
        exit(QV_EXIT_USAGE);
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "quiver: out of memory\n");
            exit(QV_EXIT_FAIL);
        }
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (ferror(f)) {
            fprintf(stderr, "quiver: %s %s: read error\n", flag, path);
            exit(QV_EXIT_USAGE);
        }
        if (feof(f))
            break;
        if (cap > (64u << 20)) {
            fprintf(stderr, "quiver: %s %s: larger than 64 MiB, not a PEM file\n", flag, path);
            exit(QV_EXIT_USAGE);
        }
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb)
            free(buf);
        buf = nb;
    }
    fclose(f);
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        fprintf(stderr, "quiver: %s %s: not a PEM file (no -----BEGIN line)\n", flag, path);
        exit(QV_EXIT_USAGE);
    }
    return buf;
}

qv_client_t *qv_cli_client(qv_cli_t *cli)
{
    if (!cli->client) {
        /* The combination is checked here rather than while parsing: options may come before or after the command
         * name, so only now are they all known. */
        if (!cli->tls_cert != !cli->tls_key)
            qv_cli_usage(NULL, "--tls-cert and --tls-key go together");
        bool tls = cli->tls_ca || cli->tls_cert;
        if (cli->tls_server_name && !tls)
            qv_cli_usage(NULL, "--tls-server-name needs TLS (--tls-ca FILE)");
        qv_client_opts_t o = {.api_key = cli->api_key, .tls = tls, .tls_server_name = cli->tls_server_name};
        char *ca = NULL, *cert = NULL, *key = NULL;
        if (cli->tls_ca)
            o.tls_root_pem = ca = read_pem("--tls-ca", cli->tls_ca);
        if (cli->tls_cert) {
            o.tls_cert_pem = cert = read_pem("--tls-cert", cli->tls_cert);
            o.tls_key_pem = key = read_pem("--tls-key", cli->tls_key);
        }
        cli->client = qv_client_open_opts(cli->addr, &o);
        free(ca);
        free(cert);
        if (key) { /* a private key: do not leave it in freed memory */
            volatile char *p = key;
            while (*p)
                *p++ = 0;
            free(key);
        }
        if (!cli->client) {
            fprintf(stderr, "quiver: out of memory\n");
            exit(QV_EXIT_FAIL);
        }
    }
    return cli->client;
}

int qv_cli_call(qv_cli_t *cli, const char *method, const void *req, const ProtobufCMessageDescriptor *resp_desc,
                void *resp)
{
    qv_status_t st;
    int code = qv_client_call(qv_cli_client(cli), method, req, resp_desc, cli->timeout, (ProtobufCMessage **)resp,
                              &st);
    if (code == 0)
        return 0;
    const char *m = strrchr(method, '/');
    fprintf(stderr, "quiver: %s: %s: %s\n", m ? m + 1 : method, qv_status_name(code),
            st.message[0] ? st.message : "(no message)");
    if (code == 14 /* UNAVAILABLE */)
        fprintf(stderr, "quiver: is quiverd running at %s%s?\n", cli->addr,
                cli->tls_ca || cli->tls_cert ? ", serving TLS with a certificate these --tls-* options accept"
                                             : " without TLS (for a TLS server pass --tls-ca FILE)");
    else if (code == 16 /* UNAUTHENTICATED */ && !cli->api_key)
        fprintf(stderr, "quiver: the server requires an API key: --api-key KEY or QUIVER_API_KEY\n");
    return QV_EXIT_FAIL;
}

/* ---- names ---- */
const char *qv_metric_name(int m)
{
    switch (m) {
    case QUIVER__V1__METRIC__METRIC_L2: return "L2";
    case QUIVER__V1__METRIC__METRIC_IP: return "IP";
    case QUIVER__V1__METRIC__METRIC_COSINE: return "COSINE";
    default: return "UNSPECIFIED";
    }
}

const char *qv_ftype_name(int t)
{
    switch (t) {
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64: return "INT64";
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE: return "DOUBLE";
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD: return "KEYWORD";
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL: return "BOOL";
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORDS: return "KEYWORDS";
    default: return "UNSPECIFIED";
    }
}

int qv_ftype_parse(const char *s)
{
    static const struct {
        const char *name;
        int type;
    } names[] = {
        {"int64", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64},     {"int", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64},
        {"double", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE},   {"float", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE},
        {"keyword", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD}, {"string", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD},
        {"str", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD},     {"bool", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL},
        {"keywords", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORDS},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].type;
    return -1;
}

const char *qv_segstate_name(int s)
{
    switch (s) {
    case QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_GROWING: return "GROWING";
    case QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_SEALED: return "SEALED";
    default: return "UNSPECIFIED";
    }
}

const char *qv_idxstate_name(int s)
{
    switch (s) {
    case QUIVER__V1__INDEX_STATE__INDEX_STATE_NONE: return "NONE";
    case QUIVER__V1__INDEX_STATE__INDEX_STATE_PENDING: return "PENDING";
    case QUIVER__V1__INDEX_STATE__INDEX_STATE_BUILDING: return "BUILDING";
    case QUIVER__V1__INDEX_STATE__INDEX_STATE_READY: return "READY";
    case QUIVER__V1__INDEX_STATE__INDEX_STATE_FAILED: return "FAILED";
    default: return "UNSPECIFIED";
    }
}

const char *qv_idxkind_name(int k)
{
    return k == QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT ? "FLAT" : "HNSW";
}

/* ---- JSON ---- */
void qv_json_print(json_t *v)
{
    /* Reals are printed with 17 significant digits (jansson's default): exact for doubles and for float32 values,
     * which is what scripts comparing vectors need, at the price of long decimals. */
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    fputc('\n', stdout);
    json_decref(v);
}

json_t *qv_json_value(const Quiver__V1__Value *v)
{
    if (!v)
        return json_null();
    switch (v->kind_case) {
    case QUIVER__V1__VALUE__KIND_INT_VALUE: return json_integer((json_int_t)v->int_value);
    case QUIVER__V1__VALUE__KIND_DOUBLE_VALUE:
        return isfinite(v->double_value) ? json_real(v->double_value) : json_null();
    case QUIVER__V1__VALUE__KIND_KEYWORD_VALUE: return json_string(v->keyword_value);
    case QUIVER__V1__VALUE__KIND_BOOL_VALUE: return json_boolean(v->bool_value);
    case QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE: {
        json_t *a = json_array();
        if (v->keywords_value)
            for (size_t i = 0; i < v->keywords_value->n_values; i++)
                json_array_append_new(a, json_string(v->keywords_value->values[i]));
        return a;
    }
    default: return json_null();
    }
}

json_t *qv_json_floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, isfinite(v[i]) ? json_real(v[i]) : json_null());
    return a;
}

static void entry_at(void *const *entries, size_t i, bool hit, const char **key, const Quiver__V1__Value **val)
{
    if (hit) {
        const Quiver__V1__Hit__AttributesEntry *e = entries[i];
        *key = e->key;
        *val = e->value;
    } else {
        const Quiver__V1__Point__AttributesEntry *e = entries[i];
        *key = e->key;
        *val = e->value;
    }
}

json_t *qv_json_attributes(void *const *entries, size_t n, bool hit)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const Quiver__V1__Value *v;
        entry_at(entries, i, hit, &k, &v);
        json_object_set_new(o, k, qv_json_value(v));
    }
    return o;
}

json_t *qv_json_collection(const Quiver__V1__CollectionInfo *c, bool segments)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "dim", json_integer(c->dim));
    json_object_set_new(o, "metric", json_string(qv_metric_name(c->metric)));
    json_object_set_new(o, "embedding_model", json_string(c->embedding_model ? c->embedding_model : ""));
    json_t *fields = json_array();
    for (size_t i = 0; i < c->n_fields; i++) {
        json_t *f = json_object();
        json_object_set_new(f, "name", json_string(c->fields[i]->name));
        json_object_set_new(f, "type", json_string(qv_ftype_name(c->fields[i]->type)));
        json_array_append_new(fields, f);
    }
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "shards", json_integer(c->shards ? c->shards : 1));
    json_object_set_new(o, "live_rows", json_integer((json_int_t)c->live_rows));
    json_object_set_new(o, "wal_bytes", json_integer((json_int_t)c->wal_bytes));
    json_t *idx = json_object();
    json_object_set_new(idx, "kind", json_string(qv_idxkind_name(c->index ? c->index->kind : 0)));
    json_object_set_new(idx, "m", json_integer(c->index && c->index->m ? c->index->m : 16));
    json_object_set_new(idx, "ef_construction",
                        json_integer(c->index && c->index->ef_construction ? c->index->ef_construction : 200));
    json_object_set_new(o, "index", idx);
    json_object_set_new(o, "segment_count", json_integer((json_int_t)c->n_segments));
    if (segments) {
        json_t *segs = json_array();
        for (size_t i = 0; i < c->n_segments; i++) {
            const Quiver__V1__SegmentInfo *s = c->segments[i];
            json_t *so = json_object();
            json_object_set_new(so, "id", json_integer((json_int_t)s->id));
            json_object_set_new(so, "state", json_string(qv_segstate_name(s->state)));
            json_object_set_new(so, "rows", json_integer((json_int_t)s->rows));
            json_object_set_new(so, "deleted_rows", json_integer((json_int_t)s->deleted_rows));
            json_object_set_new(so, "bytes", json_integer((json_int_t)s->bytes));
            json_object_set_new(so, "index_state", json_string(qv_idxstate_name(s->index_state)));
            json_object_set_new(so, "index_progress", json_real(s->index_progress));
            json_object_set_new(so, "index_bytes", json_integer((json_int_t)s->index_bytes));
            json_array_append_new(segs, so);
        }
        json_object_set_new(o, "segments", segs);
    }
    return o;
}

/* ---- text ---- */
void qv_print_value(FILE *out, const Quiver__V1__Value *v)
{
    if (!v) {
        fputs("null", out);
        return;
    }
    switch (v->kind_case) {
    case QUIVER__V1__VALUE__KIND_INT_VALUE: fprintf(out, "%lld", (long long)v->int_value); break;
    case QUIVER__V1__VALUE__KIND_DOUBLE_VALUE: fprintf(out, "%.17g", v->double_value); break;
    case QUIVER__V1__VALUE__KIND_KEYWORD_VALUE: fprintf(out, "\"%s\"", v->keyword_value); break;
    case QUIVER__V1__VALUE__KIND_BOOL_VALUE: fputs(v->bool_value ? "true" : "false", out); break;
    case QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE:
        fputc('[', out);
        for (size_t i = 0; v->keywords_value && i < v->keywords_value->n_values; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", v->keywords_value->values[i]);
        fputc(']', out);
        break;
    default: fputs("null", out);
    }
}

void qv_print_attributes(FILE *out, void *const *entries, size_t n, bool hit)
{
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const Quiver__V1__Value *v;
        entry_at(entries, i, hit, &k, &v);
        fprintf(out, "%s%s=", i ? " " : "", k);
        qv_print_value(out, v);
    }
}

void qv_print_floats(FILE *out, const float *v, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%.9g", i ? ", " : "", v[i]);
    fputc(']', out);
}

const char *qv_human_bytes(uint64_t n, char buf[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)n;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, 32, "%.1f %s", x, units[u]);
    return buf;
}

/* ---- input ---- */
int qv_parse_floats(qv_arena_t *a, const char *s, size_t len, float **out, size_t *n, char *msg, size_t msglen)
{
    /* at most one float per separator + 1: len/2+1 bounds the count */
    size_t cap = len / 2 + 1, cnt = 0;
    float *v = qv_arena_array(a, cap, sizeof *v);
    if (!v) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    const char *p = s, *end = s + len;
    char tmp[64];
    while (p < end) {
        while (p < end && (isspace((unsigned char)*p) || *p == ',' || *p == ';' || *p == '[' || *p == ']'))
            p++;
        if (p >= end)
            break;
        const char *q = p;
        while (q < end && !isspace((unsigned char)*q) && *q != ',' && *q != ';' && *q != '[' && *q != ']')
            q++;
        size_t tl = (size_t)(q - p);
        if (tl >= sizeof tmp) {
            snprintf(msg, msglen, "value %zu is not a number ('%.20s...')", cnt, p);
            return -1;
        }
        memcpy(tmp, p, tl);
        tmp[tl] = '\0';
        char *e;
        errno = 0;
        float f = strtof(tmp, &e);
        if (*e != '\0' || e == tmp) {
            snprintf(msg, msglen, "value %zu is not a number ('%s')", cnt, tmp);
            return -1;
        }
        if (!isfinite(f) || errno == ERANGE) {
            if (!isfinite(f) || fabsf(f) > 1.0f) { /* ERANGE with a tiny result is an underflow to 0: fine */
                snprintf(msg, msglen, "value %zu ('%s') is not a finite float", cnt, tmp);
                return -1;
            }
        }
        if (cnt == cap) { /* cannot happen given cap, but never write past the array */
            snprintf(msg, msglen, "too many values");
            return -1;
        }
        v[cnt++] = f;
        p = q;
    }
    *out = v;
    *n = cnt;
    return 0;
}
