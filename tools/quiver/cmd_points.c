/* quiver count | get | delete | search */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/quiver/cli.h"

/* ---- count ---- */
static const char count_help[] =
    "usage: quiver count COLLECTION [--filter JSON]\n"
    "Counts live points, optionally only those matching the filter.\n"
    "--json: {\"collection\": NAME, \"count\": N}\n\n" QV_FILTER_HELP "\n";

static Quiver__V1__Filter *filter_arg(qv_arena_t *a, const char *cmd, const char *text)
{
    Quiver__V1__Filter *f;
    char msg[256];
    if (qv_cli_filter_parse(a, text, &f, msg, sizeof msg) != 0)
        qv_cli_usage(cmd, "--filter: %s", msg);
    return f;
}

int qv_cmd_count(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_FILTER = QV_OPT_FIRST_COMMAND };
    static const struct option opts[] = {{"filter", required_argument, NULL, O_FILTER}, QV_CLI_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    qv_arena_t a;
    qv_arena_init(&a);
    Quiver__V1__CountRequest req = QUIVER__V1__COUNT_REQUEST__INIT;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_FILTER)
            req.filter = filter_arg(&a, "count", optarg);
        else
            qv_cli_common(cli, "count", count_help, o);
    }
    qv_cli_positional("count", argc, argv, 1, 1);
    req.collection = argv[optind];
    Quiver__V1__CountResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("Count"), &req, &quiver__v1__count_response__descriptor, &r);
    if (rc == 0) {
        if (cli->json) {
            json_t *j = json_object();
            json_object_set_new(j, "collection", json_string(req.collection));
            json_object_set_new(j, "count", json_integer((json_int_t)r->count));
            qv_json_print(j);
        } else {
            printf("%llu\n", (unsigned long long)r->count);
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    qv_arena_free(&a);
    return rc;
}

/* ---- get ---- */
static const char get_help[] =
    "usage: quiver get COLLECTION ID... [--vectors]\n"
    "Fetches points by id (text and attributes; --vectors adds the vectors as stored: cosine vectors are unit\n"
    "length). Ids that do not exist are listed as missing; that is not an error.\n"
    "--json: {\"points\": [{id, text, attributes: {...}, vector?}], \"missing\": [ID...]}\n\n";

int qv_cmd_get(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_VECTORS = QV_OPT_FIRST_COMMAND };
    static const struct option opts[] = {{"vectors", no_argument, NULL, O_VECTORS}, QV_CLI_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    Quiver__V1__GetRequest req = QUIVER__V1__GET_REQUEST__INIT;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_VECTORS)
            req.with_vectors = 1;
        else
            qv_cli_common(cli, "get", get_help, o);
    }
    qv_cli_positional("get", argc, argv, 2, -1);
    req.collection = argv[optind];
    req.ids = argv + optind + 1;
    req.n_ids = (size_t)(argc - optind - 1);
    Quiver__V1__GetResponse *r;
    if (qv_cli_call(cli, QV_M_QUIVER("Get"), &req, &quiver__v1__get_response__descriptor, &r))
        return QV_EXIT_FAIL;
    /* points come back in request order with absent ids omitted: a merge walk finds the missing ones */
    json_t *jp = json_array(), *jm = json_array();
    size_t k = 0;
    for (size_t i = 0; i < req.n_ids; i++) {
        if (k < r->n_points && strcmp(r->points[k]->id, req.ids[i]) == 0) {
            const Quiver__V1__Point *p = r->points[k++];
            if (cli->json) {
                json_t *j = json_object();
                json_object_set_new(j, "id", json_string(p->id));
                json_object_set_new(j, "text", json_string(p->text));
                json_object_set_new(j, "attributes", qv_json_attributes((void *const *)p->attributes,
                                                                        p->n_attributes, false));
                if (req.with_vectors)
                    json_object_set_new(j, "vector", qv_json_floats(p->vector, p->n_vector));
                json_array_append_new(jp, j);
            } else {
                printf("%s\n", p->id);
                if (p->text[0])
                    printf("  text        %s\n", p->text);
                if (p->n_attributes) {
                    printf("  attributes  ");
                    qv_print_attributes(stdout, (void *const *)p->attributes, p->n_attributes, false);
                    putchar('\n');
                }
                if (req.with_vectors) {
                    printf("  vector      ");
                    qv_print_floats(stdout, p->vector, p->n_vector);
                    putchar('\n');
                }
            }
        } else {
            if (cli->json)
                json_array_append_new(jm, json_string(req.ids[i]));
            else
                printf("%s (not found)\n", req.ids[i]);
        }
    }
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "points", jp);
        json_object_set_new(j, "missing", jm);
        qv_json_print(j);
    } else {
        json_decref(jp);
        json_decref(jm);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

/* ---- delete ---- */
static const char delete_help[] =
    "usage: quiver delete COLLECTION (ID... | --filter JSON)\n"
    "Deletes points by id, or every point matching a filter (at most 100,000 per call; one write, atomic on each\n"
    "shard); reports how many existed.\n"
    "--json: {\"collection\": NAME, \"requested\": N, \"deleted\": N}\n\n" QV_FILTER_HELP "\n";

int qv_cmd_delete(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_FILTER = QV_OPT_FIRST_COMMAND };
    static const struct option opts[] = {{"filter", required_argument, NULL, O_FILTER}, QV_CLI_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    qv_arena_t a;
    qv_arena_init(&a);
    Quiver__V1__DeleteRequest req = QUIVER__V1__DELETE_REQUEST__INIT;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_FILTER)
            req.filter = filter_arg(&a, "delete", optarg);
        else
            qv_cli_common(cli, "delete", delete_help, o);
    }
    qv_cli_positional("delete", argc, argv, req.filter ? 1 : 2, req.filter ? 1 : -1);
    req.collection = argv[optind];
    req.ids = argv + optind + 1;
    req.n_ids = (size_t)(argc - optind - 1);
    Quiver__V1__DeleteResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("Delete"), &req, &quiver__v1__delete_response__descriptor, &r);
    if (rc == 0) {
        if (cli->json) {
            json_t *j = json_object();
            json_object_set_new(j, "collection", json_string(req.collection));
            if (!req.filter)
                json_object_set_new(j, "requested", json_integer((json_int_t)req.n_ids));
            json_object_set_new(j, "deleted", json_integer(r->deleted));
            qv_json_print(j);
        } else if (req.filter) {
            printf("deleted %u point%s matching the filter\n", r->deleted, r->deleted == 1 ? "" : "s");
        } else {
            printf("deleted %u of %zu id%s\n", r->deleted, req.n_ids, req.n_ids == 1 ? "" : "s");
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    qv_arena_free(&a);
    return rc ? QV_EXIT_FAIL : QV_EXIT_OK;
}

/* ---- update ---- */
static const char update_help[] =
    "usage: quiver update COLLECTION (ID... | --filter JSON) [--set JSON] [--unset NAME]...\n"
    "Sets and removes attributes of existing points, keeping their vectors and text: by id, or every point matching\n"
    "a filter (at most 10,000 per call; one write, atomic on each shard). Reports how many were updated.\n"
    "  --set JSON     attributes to set, a JSON object: {\"year\": 2024, \"lang\": \"en\", \"tags\": [\"a\"]}\n"
    "                 (numbers, strings, true/false, lists of strings; the server checks them against the schema)\n"
    "  --unset NAME   an attribute to remove (repeatable)\n"
    "--json: {\"collection\": NAME, \"updated\": N}\n\n" QV_FILTER_HELP "\n";

int qv_cmd_update(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_FILTER = QV_OPT_FIRST_COMMAND, O_SET, O_UNSET };
    static const struct option opts[] = {{"filter", required_argument, NULL, O_FILTER},
                                         {"set", required_argument, NULL, O_SET},
                                         {"unset", required_argument, NULL, O_UNSET}, QV_CLI_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    qv_arena_t a;
    qv_arena_init(&a);
    Quiver__V1__UpdateAttributesRequest req = QUIVER__V1__UPDATE_ATTRIBUTES_REQUEST__INIT;
    char **unset = qv_arena_array(&a, (size_t)argc, sizeof *unset);
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char msg[256];
        if (o == O_FILTER) {
            req.filter = filter_arg(&a, "update", optarg);
        } else if (o == O_SET) {
            if (qv_cli_attrs_parse(&a, optarg, &req.set, &req.n_set, msg, sizeof msg) != 0)
                qv_cli_usage("update", "--set: %s", msg);
        } else if (o == O_UNSET) {
            unset[req.n_unset++] = optarg;
        } else {
            qv_cli_common(cli, "update", update_help, o);
        }
    }
    req.unset = unset;
    if (!req.n_set && !req.n_unset)
        qv_cli_usage("update", "nothing to change: give --set and/or --unset");
    qv_cli_positional("update", argc, argv, req.filter ? 1 : 2, req.filter ? 1 : -1);
    req.collection = argv[optind];
    req.ids = argv + optind + 1;
    req.n_ids = (size_t)(argc - optind - 1);
    Quiver__V1__UpdateAttributesResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("UpdateAttributes"), &req,
                         &quiver__v1__update_attributes_response__descriptor, &r);
    if (rc == 0) {
        if (cli->json) {
            json_t *j = json_object();
            json_object_set_new(j, "collection", json_string(req.collection));
            json_object_set_new(j, "updated", json_integer(r->updated));
            qv_json_print(j);
        } else {
            printf("updated %u point%s\n", r->updated, r->updated == 1 ? "" : "s");
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    qv_arena_free(&a);
    return rc ? QV_EXIT_FAIL : QV_EXIT_OK;
}

/* ---- search ---- */
static const char search_help[] =
    "usage: quiver search COLLECTION (--vector \"1,2,3\" | --vector-file FILE | --text QUERY) [--k 10] [--ef N]\n"
    "                     [--exact] [--filter JSON] [--group-by FIELD [--group-size N]] [--with-attributes]\n"
    "                     [--with-text] [--with-vectors]\n"
    "The k nearest neighbours of a vector, best first. Scores: L2 squared distance (ascending), IP inner\n"
    "product and COSINE cosine similarity (descending).\n"
    "  --vector V          the query: floats separated by commas or spaces, brackets allowed\n"
    "  --vector-file FILE  the query as text in a file ('-': stdin), same syntax\n"
    "  --text QUERY        a text query, embedded by the server (collections with an embedding model)\n"
    "  --k N               hits to return, 1..10000 (default 10)\n"
    "  --ef N              HNSW search breadth (default 64, raised to k)\n"
    "  --exact             force an exact scan of every segment\n"
    "  --filter JSON       only points matching the filter (grammar below)\n"
    "  --group-by FIELD    the hits of the k best groups of this KEYWORD field (e.g. one passage per document)\n"
    "  --group-size N      hits per group with --group-by (default 1; k x N at most 10000)\n"
    "  --with-attributes, --with-text, --with-vectors   return these with each hit\n"
    "--json: {\"hits\": [{id, score, group?, attributes?, text?, vector?}], \"partial\": BOOL}\n\n" QV_FILTER_HELP "\n";

static char *read_text_file(const char *cmd, const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        qv_cli_usage(cmd, "--vector-file: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            qv_cli_usage(cmd, "--vector-file: out of memory");
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap > (64u << 20))
                qv_cli_usage(cmd, "--vector-file: '%s' is larger than 64 MiB", path);
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    if (ferror(f))
        qv_cli_usage(cmd, "--vector-file: cannot read '%s'", path);
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
}

int qv_cmd_search(qv_cli_t *cli, int argc, char **argv)
{
    enum {
        O_VECTOR = QV_OPT_FIRST_COMMAND, O_VFILE, O_K, O_EF, O_EXACT, O_FILTER, O_ATTRS, O_TEXT, O_VECS, O_QTEXT,
        O_GROUP_BY, O_GROUP_SIZE
    };
    static const struct option opts[] = {
        {"text", required_argument, NULL, O_QTEXT},
        {"vector", required_argument, NULL, O_VECTOR},   {"vector-file", required_argument, NULL, O_VFILE},
        {"k", required_argument, NULL, O_K},             {"ef", required_argument, NULL, O_EF},
        {"exact", no_argument, NULL, O_EXACT},           {"filter", required_argument, NULL, O_FILTER},
        {"with-attributes", no_argument, NULL, O_ATTRS}, {"with-text", no_argument, NULL, O_TEXT},
        {"with-vectors", no_argument, NULL, O_VECS},     {"group-by", required_argument, NULL, O_GROUP_BY},
        {"group-size", required_argument, NULL, O_GROUP_SIZE}, QV_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    qv_arena_t a;
    qv_arena_init(&a);
    Quiver__V1__SearchRequest req = QUIVER__V1__SEARCH_REQUEST__INIT;
    Quiver__V1__SearchParams params = QUIVER__V1__SEARCH_PARAMS__INIT;
    req.k = 10;
    const char *vec_text = NULL, *vec_file = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_VECTOR: vec_text = optarg; break;
        case O_QTEXT: req.text = optarg; break;
        case O_VFILE: vec_file = optarg; break;
        case O_K: req.k = (uint32_t)qv_cli_int("search", "--k", optarg, 1, 10000); break;
        case O_EF: params.ef = (uint32_t)qv_cli_int("search", "--ef", optarg, 1, 10000); break;
        case O_EXACT: params.exact = 1; break;
        case O_FILTER: req.filter = filter_arg(&a, "search", optarg); break;
        case O_ATTRS: req.with_attributes = 1; break;
        case O_TEXT: req.with_text = 1; break;
        case O_VECS: req.with_vectors = 1; break;
        case O_GROUP_BY: req.group_by = optarg; break;
        case O_GROUP_SIZE: req.group_size = (uint32_t)qv_cli_int("search", "--group-size", optarg, 1, 10000); break;
        default: qv_cli_common(cli, "search", search_help, o);
        }
    }
    qv_cli_positional("search", argc, argv, 1, 1);
    bool has_text = req.text && req.text != protobuf_c_empty_string;
    if ((vec_text != NULL) + (vec_file != NULL) + has_text != 1)
        qv_cli_usage("search", "give the query with exactly one of --vector, --vector-file and --text");
    if (!has_text) {
        char *file_text = NULL;
        size_t len;
        if (vec_file) {
            file_text = read_text_file("search", vec_file, &len);
            vec_text = file_text;
        } else {
            len = strlen(vec_text);
        }
        char msg[256];
        if (qv_parse_floats(&a, vec_text, len, &req.vector, &req.n_vector, msg, sizeof msg) != 0)
            qv_cli_usage("search", "%s: %s", vec_file ? "--vector-file" : "--vector", msg);
        free(file_text);
        if (req.n_vector == 0)
            qv_cli_usage("search", "the query vector is empty");
    }
    req.collection = argv[optind];
    if (params.ef || params.exact)
        req.params = &params;
    Quiver__V1__SearchResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("Search"), &req, &quiver__v1__search_response__descriptor, &r);
    if (rc != 0) {
        qv_arena_free(&a);
        return rc;
    }
    if (cli->json) {
        json_t *hits = json_array();
        for (size_t i = 0; i < r->n_hits; i++) {
            const Quiver__V1__Hit *h = r->hits[i];
            json_t *j = json_object();
            json_object_set_new(j, "id", json_string(h->id));
            json_object_set_new(j, "score", json_real(h->score));
            if (h->group[0] || (req.group_by && req.group_by[0]))
                json_object_set_new(j, "group", json_string(h->group));
            if (req.with_attributes)
                json_object_set_new(j, "attributes",
                                    qv_json_attributes((void *const *)h->attributes, h->n_attributes, true));
            if (req.with_text)
                json_object_set_new(j, "text", json_string(h->text));
            if (req.with_vectors)
                json_object_set_new(j, "vector", qv_json_floats(h->vector, h->n_vector));
            json_array_append_new(hits, j);
        }
        json_t *j = json_object();
        json_object_set_new(j, "hits", hits);
        json_object_set_new(j, "partial", json_boolean(r->partial));
        qv_json_print(j);
    } else {
        if (r->n_hits == 0)
            printf("no hits\n");
        else
            printf("%4s  %-24s  %s\n", "RANK", "ID", "SCORE");
        for (size_t i = 0; i < r->n_hits; i++) {
            const Quiver__V1__Hit *h = r->hits[i];
            printf("%4zu  %-24s  %.9g\n", i + 1, h->id, h->score);
            if (req.group_by && req.group_by[0])
                printf("      group       %s\n", h->group);
            if (req.with_text && h->text[0])
                printf("      text        %s\n", h->text);
            if (req.with_attributes && h->n_attributes) {
                printf("      attributes  ");
                qv_print_attributes(stdout, (void *const *)h->attributes, h->n_attributes, true);
                putchar('\n');
            }
            if (req.with_vectors) {
                printf("      vector      ");
                qv_print_floats(stdout, h->vector, h->n_vector);
                putchar('\n');
            }
        }
        if (r->partial)
            fprintf(stderr, "quiver: note: the server returned partial results\n");
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    qv_arena_free(&a);
    return QV_EXIT_OK;
}

/* ---- embed ---- */
static const char embed_help[] =
    "usage: quiver embed TEXT... | --file FILE\n"
    "Embeds texts with the server's model (Quiver.Embed): one vector per text, in order. Up to 1000 texts and\n"
    "1 MiB per call.\n"
    "  --file FILE   one text per line ('-': stdin) instead of arguments\n"
    "--json: {\"dim\": N, \"vectors\": [[...], ...]}; otherwise one line of floats per text\n\n";

int qv_cmd_embed(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_FILE = QV_OPT_FIRST_COMMAND };
    static const struct option opts[] = {{"file", required_argument, NULL, O_FILE}, QV_CLI_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_FILE)
            file = optarg;
        else
            qv_cli_common(cli, "embed", embed_help, o);
    }
    Quiver__V1__EmbedRequest req = QUIVER__V1__EMBED_REQUEST__INIT;
    char *buf = NULL;
    char **texts = NULL;
    size_t n = 0;
    if (file) {
        qv_cli_positional("embed", argc, argv, 0, 0);
        size_t len;
        buf = read_text_file("embed", file, &len);
        texts = malloc((len + 1) * sizeof *texts);
        if (!buf || !texts)
            qv_cli_usage("embed", "out of memory");
        buf = realloc(buf, len + 1);
        buf[len] = '\0';
        for (char *line = buf, *nl; line && *line; line = nl) {
            nl = strchr(line, '\n');
            if (nl)
                *nl++ = '\0';
            if (*line)
                texts[n++] = line;
        }
    } else {
        qv_cli_positional("embed", argc, argv, 1, 1000);
        texts = argv + optind;
        n = (size_t)(argc - optind);
    }
    if (n == 0)
        qv_cli_usage("embed", "no texts");
    req.texts = texts;
    req.n_texts = n;
    Quiver__V1__EmbedResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("Embed"), &req, &quiver__v1__embed_response__descriptor, &r);
    if (rc == 0) {
        if (cli->json) {
            json_t *j = json_object(), *vs = json_array();
            json_object_set_new(j, "dim", json_integer(r->dim));
            for (size_t i = 0; i < r->n_vectors; i++)
                json_array_append_new(vs, qv_json_floats(r->vectors[i]->values, r->vectors[i]->n_values));
            json_object_set_new(j, "vectors", vs);
            qv_json_print(j);
        } else {
            for (size_t i = 0; i < r->n_vectors; i++) {
                qv_print_floats(stdout, r->vectors[i]->values, r->vectors[i]->n_values);
                putchar('\n');
            }
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    if (file) {
        free(texts);
        free(buf);
    }
    return rc ? QV_EXIT_FAIL : QV_EXIT_OK;
}
