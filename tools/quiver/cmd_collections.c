/* quiver collections | describe | create | drop */
#include <string.h>
#include <strings.h>

#include "tools/quiver/cli.h"

/* ---- collections ---- */
static const char collections_help[] =
    "usage: quiver collections\n"
    "Lists collections: name, dim, metric, index kind, live rows, segments.\n"
    "--json: {\"collections\": [{name, dim, metric, fields, shards, live_rows, wal_bytes, index, segment_count}]}\n\n";

int qv_cmd_collections(qv_cli_t *cli, int argc, char **argv)
{
    qv_cli_parse_common(cli, "collections", collections_help, argc, argv);
    qv_cli_positional("collections", argc, argv, 0, 0);
    Quiver__V1__ListCollectionsRequest req = QUIVER__V1__LIST_COLLECTIONS_REQUEST__INIT;
    Quiver__V1__ListCollectionsResponse *r;
    if (qv_cli_call(cli, QV_M_QUIVER("ListCollections"), &req, &quiver__v1__list_collections_response__descriptor,
                    &r))
        return QV_EXIT_FAIL;
    if (cli->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_collections; i++)
            json_array_append_new(a, qv_json_collection(r->collections[i], false));
        json_t *o = json_object();
        json_object_set_new(o, "collections", a);
        qv_json_print(o);
    } else if (r->n_collections == 0) {
        printf("no collections\n");
    } else {
        int w = 4;
        for (size_t i = 0; i < r->n_collections; i++)
            if ((int)strlen(r->collections[i]->name) > w)
                w = (int)strlen(r->collections[i]->name);
        printf("%-*s  %6s  %-6s  %-5s  %12s  %8s\n", w, "NAME", "DIM", "METRIC", "INDEX", "ROWS", "SEGMENTS");
        for (size_t i = 0; i < r->n_collections; i++) {
            const Quiver__V1__CollectionInfo *c = r->collections[i];
            printf("%-*s  %6u  %-6s  %-5s  %12llu  %8zu\n", w, c->name, c->dim, qv_metric_name(c->metric),
                   qv_idxkind_name(c->index ? c->index->kind : 0), (unsigned long long)c->live_rows, c->n_segments);
        }
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

/* ---- describe ---- */
static const char describe_help[] =
    "usage: quiver describe COLLECTION\n"
    "Shows a collection's schema, index parameters, live rows, WAL bytes and every segment.\n"
    "--json: {name, dim, metric, fields: [{name, type}], shards, live_rows, wal_bytes, index: {kind, m,\n"
    "         ef_construction}, segment_count, segments: [{id, state, rows, deleted_rows, bytes, index_state,\n"
    "         index_progress, index_bytes}]}\n\n";

static void print_collection(const Quiver__V1__CollectionInfo *c)
{
    char b[32];
    printf("collection  %s\n", c->name);
    printf("dim         %u\n", c->dim);
    printf("metric      %s\n", qv_metric_name(c->metric));
    printf("model       %s\n", c->embedding_model && *c->embedding_model ? c->embedding_model : "(none: vectors only)");
    printf("attributes  %s\n", c->dynamic_attributes ? "declared fields and dynamic" : "declared fields only");
    int kind = c->index ? c->index->kind : 0;
    if (kind == QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT)
        printf("index       FLAT\n");
    else
        printf("index       HNSW (m %u, ef_construction %u)\n", c->index && c->index->m ? c->index->m : 16,
               c->index && c->index->ef_construction ? c->index->ef_construction : 200);
    printf("shards      %u\n", c->shards ? c->shards : 1);
    printf("live rows   %llu\n", (unsigned long long)c->live_rows);
    printf("wal         %s\n", qv_human_bytes(c->wal_bytes, b));
    printf("fields      ");
    if (c->n_fields == 0)
        printf("(none)");
    for (size_t i = 0; i < c->n_fields; i++)
        printf("%s%s %s", i ? ", " : "", c->fields[i]->name, qv_ftype_name(c->fields[i]->type));
    printf("\nsegments    %zu\n", c->n_segments);
    if (c->n_segments) {
        printf("  %8s  %-7s  %10s  %10s  %10s  %-8s  %8s  %10s\n", "ID", "STATE", "ROWS", "DELETED", "BYTES", "INDEX",
               "PROGRESS", "INDEX SIZE");
        for (size_t i = 0; i < c->n_segments; i++) {
            const Quiver__V1__SegmentInfo *s = c->segments[i];
            char ib[32];
            printf("  %8llu  %-7s  %10llu  %10llu  %10s  %-8s  %7.0f%%  %10s\n", (unsigned long long)s->id,
                   qv_segstate_name(s->state), (unsigned long long)s->rows, (unsigned long long)s->deleted_rows,
                   qv_human_bytes(s->bytes, b), qv_idxstate_name(s->index_state), s->index_progress * 100,
                   qv_human_bytes(s->index_bytes, ib));
        }
    }
}

int qv_cmd_describe(qv_cli_t *cli, int argc, char **argv)
{
    qv_cli_parse_common(cli, "describe", describe_help, argc, argv);
    qv_cli_positional("describe", argc, argv, 1, 1);
    Quiver__V1__DescribeCollectionRequest req = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    req.name = argv[optind];
    Quiver__V1__DescribeCollectionResponse *r;
    if (qv_cli_call(cli, QV_M_QUIVER("DescribeCollection"), &req,
                    &quiver__v1__describe_collection_response__descriptor, &r))
        return QV_EXIT_FAIL;
    if (!r->collection) {
        fprintf(stderr, "quiver: DescribeCollection: the response has no collection\n");
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return QV_EXIT_FAIL;
    }
    if (cli->json)
        qv_json_print(qv_json_collection(r->collection, true));
    else
        print_collection(r->collection);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

/* ---- create ---- */
static const char create_help[] =
    "usage: quiver create COLLECTION (--dim N --metric l2|ip|cosine | --embedding-model NAME) [--field NAME:TYPE ...]\n"
    "                     [--dynamic-attributes] [--index hnsw|flat] [--m N] [--ef-construction N] [--shards N]\n"
    "Creates a collection. Names are [A-Za-z0-9_-]{1,64}; dim 1..16384.\n"
    "  --dim N               vector dimension (required without --embedding-model)\n"
    "  --metric M            l2 (squared Euclidean), ip (inner product) or cosine (required without\n"
    "                        --embedding-model, which defaults it to cosine)\n"
    "  --embedding-model M   the server embeds the points' text and text queries with model M\n"
    "                        (all-MiniLM-L6-v2; it implies --dim 384)\n"
    "  --field NAME:TYPE     a typed attribute; TYPE is int64, double, keyword, bool or keywords (repeatable)\n"
    "  --dynamic-attributes  points may also carry undeclared attributes, typed by their values\n"
    "  --index KIND          hnsw (default: sealed segments get an HNSW graph) or flat (always exact)\n"
    "  --m N                 HNSW links per node, 2..128 (default 16)\n"
    "  --ef-construction N   HNSW build candidate list, up to 4096 (default 200)\n"
    "  --shards N            shards, fixed at creation (default 1)\n"
    "--json: {\"name\": NAME, \"created\": true}\n\n";

int qv_cmd_create(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_DIM = QV_OPT_FIRST_COMMAND, O_METRIC, O_FIELD, O_INDEX, O_M, O_EFC, O_SHARDS, O_MODEL, O_DYNAMIC };
    static const struct option opts[] = {
        {"dim", required_argument, NULL, O_DIM},     {"metric", required_argument, NULL, O_METRIC},
        {"embedding-model", required_argument, NULL, O_MODEL}, {"dynamic-attributes", no_argument, NULL, O_DYNAMIC},
        {"field", required_argument, NULL, O_FIELD}, {"index", required_argument, NULL, O_INDEX},
        {"m", required_argument, NULL, O_M},         {"ef-construction", required_argument, NULL, O_EFC},
        {"shards", required_argument, NULL, O_SHARDS}, QV_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    Quiver__V1__CreateCollectionRequest req = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quiver__V1__IndexParams idx = QUIVER__V1__INDEX_PARAMS__INIT;
    qv_arena_t a;
    qv_arena_init(&a);
    size_t nf = 0;
    Quiver__V1__FieldSchema **fields = qv_arena_array(&a, (size_t)argc, sizeof *fields);
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_DIM: req.dim = (uint32_t)qv_cli_int("create", "--dim", optarg, 1, 16384); break;
        case O_METRIC:
            if (strcasecmp(optarg, "l2") == 0)
                req.metric = QUIVER__V1__METRIC__METRIC_L2;
            else if (strcasecmp(optarg, "ip") == 0)
                req.metric = QUIVER__V1__METRIC__METRIC_IP;
            else if (strcasecmp(optarg, "cosine") == 0)
                req.metric = QUIVER__V1__METRIC__METRIC_COSINE;
            else
                qv_cli_usage("create", "--metric expects l2, ip or cosine, got '%s'", optarg);
            break;
        case O_FIELD: {
            const char *colon = strrchr(optarg, ':');
            int t = colon ? qv_ftype_parse(colon + 1) : -1;
            if (!colon || colon == optarg || t < 0)
                qv_cli_usage("create", "--field expects NAME:TYPE with TYPE int64, double, keyword, bool or keywords, "
                                       "got '%s'", optarg);
            Quiver__V1__FieldSchema *f = qv_arena_alloc(&a, sizeof *f);
            quiver__v1__field_schema__init(f);
            f->name = qv_arena_strndup(&a, optarg, (size_t)(colon - optarg));
            f->type = (Quiver__V1__FieldType)t;
            fields[nf++] = f;
            break;
        }
        case O_INDEX:
            if (strcasecmp(optarg, "hnsw") == 0)
                idx.kind = QUIVER__V1__INDEX_KIND__INDEX_KIND_HNSW;
            else if (strcasecmp(optarg, "flat") == 0)
                idx.kind = QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT;
            else
                qv_cli_usage("create", "--index expects hnsw or flat, got '%s'", optarg);
            break;
        case O_M: idx.m = (uint32_t)qv_cli_int("create", "--m", optarg, 2, 128); break;
        case O_EFC: idx.ef_construction = (uint32_t)qv_cli_int("create", "--ef-construction", optarg, 1, 4096); break;
        case O_SHARDS: req.shards = (uint32_t)qv_cli_int("create", "--shards", optarg, 1, 1024); break;
        case O_MODEL: req.embedding_model = optarg; break;
        case O_DYNAMIC: req.dynamic_attributes = true; break;
        default: qv_cli_common(cli, "create", create_help, o);
        }
    }
    qv_cli_positional("create", argc, argv, 1, 1);
    bool model = req.embedding_model && *req.embedding_model;
    if (!req.dim && !model)
        qv_cli_usage("create", "--dim is required (or --embedding-model, which implies it)");
    if (!req.metric && model)
        req.metric = QUIVER__V1__METRIC__METRIC_COSINE; /* the model's vectors have unit length */
    if (!req.metric)
        qv_cli_usage("create", "--metric is required (l2, ip or cosine)");
    req.name = argv[optind];
    req.n_fields = nf;
    req.fields = fields;
    req.index = &idx;
    Quiver__V1__CreateCollectionResponse *r;
    int rc = qv_cli_call(cli, QV_M_QUIVER("CreateCollection"), &req,
                         &quiver__v1__create_collection_response__descriptor, &r);
    if (rc == 0) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (cli->json) {
            json_t *j = json_object();
            json_object_set_new(j, "name", json_string(req.name));
            json_object_set_new(j, "created", json_true());
            qv_json_print(j);
        } else {
            if (model)
                printf("created collection %s (model %s, %s, %zu field%s)\n", req.name, req.embedding_model,
                       qv_metric_name(req.metric), nf, nf == 1 ? "" : "s");
            else
                printf("created collection %s (dim %u, %s, %zu field%s)\n", req.name, req.dim,
                       qv_metric_name(req.metric), nf, nf == 1 ? "" : "s");
        }
    }
    qv_arena_free(&a);
    return rc;
}

/* ---- drop ---- */
static const char drop_help[] =
    "usage: quiver drop COLLECTION\n"
    "Drops a collection and all its data.\n"
    "--json: {\"name\": NAME, \"dropped\": true}\n\n";

int qv_cmd_drop(qv_cli_t *cli, int argc, char **argv)
{
    qv_cli_parse_common(cli, "drop", drop_help, argc, argv);
    qv_cli_positional("drop", argc, argv, 1, 1);
    Quiver__V1__DropCollectionRequest req = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
    req.name = argv[optind];
    Quiver__V1__DropCollectionResponse *r;
    if (qv_cli_call(cli, QV_M_QUIVER("DropCollection"), &req, &quiver__v1__drop_collection_response__descriptor, &r))
        return QV_EXIT_FAIL;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(req.name));
        json_object_set_new(j, "dropped", json_true());
        qv_json_print(j);
    } else {
        printf("dropped collection %s\n", req.name);
    }
    return QV_EXIT_OK;
}
