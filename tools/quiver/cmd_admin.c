/* quiver stats | flush | compact | health (the Admin service) */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/quiver/cli.h"

/* ---- compaction jobs (Admin.Stats compactions), shared by stats and compact ---- */
static const char *job_state_name(int s)
{
    switch (s) {
    case QUIVER__V1__COMPACTION_JOB__STATE__STATE_QUEUED: return "QUEUED";
    case QUIVER__V1__COMPACTION_JOB__STATE__STATE_RUNNING: return "RUNNING";
    case QUIVER__V1__COMPACTION_JOB__STATE__STATE_DONE: return "DONE";
    case QUIVER__V1__COMPACTION_JOB__STATE__STATE_FAILED: return "FAILED";
    case QUIVER__V1__COMPACTION_JOB__STATE__STATE_ABANDONED: return "ABANDONED";
    default: return "UNSPECIFIED";
    }
}

static bool job_finished(int s)
{
    return s == QUIVER__V1__COMPACTION_JOB__STATE__STATE_DONE || s == QUIVER__V1__COMPACTION_JOB__STATE__STATE_FAILED ||
           s == QUIVER__V1__COMPACTION_JOB__STATE__STATE_ABANDONED;
}

static json_t *job_json(const Quiver__V1__CompactionJob *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)j->id));
    json_object_set_new(o, "collection", json_string(j->collection));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_t *in = json_array();
    for (size_t i = 0; i < j->n_input_segments; i++)
        json_array_append_new(in, json_integer((json_int_t)j->input_segments[i]));
    json_object_set_new(o, "input_segments", in);
    json_object_set_new(o, "output_segment", json_integer((json_int_t)j->output_segment));
    json_object_set_new(o, "rows_in", json_integer((json_int_t)j->rows_in));
    json_object_set_new(o, "rows_out", json_integer((json_int_t)j->rows_out));
    json_object_set_new(o, "progress", json_real(j->progress));
    json_object_set_new(o, "automatic", json_boolean(j->automatic));
    json_object_set_new(o, "error", json_string(j->error ? j->error : ""));
    json_object_set_new(o, "started_unix_ms", json_integer((json_int_t)j->started_unix_ms));
    json_object_set_new(o, "finished_unix_ms", json_integer((json_int_t)j->finished_unix_ms));
    return o;
}

/* "12.3 s" from the job's start to its end (or to now while it runs) */
static double job_seconds(const Quiver__V1__CompactionJob *j)
{
    if (!j->started_unix_ms)
        return 0;
    int64_t end = j->finished_unix_ms;
    if (!end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        end = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    return end > j->started_unix_ms ? (double)(end - j->started_unix_ms) / 1000.0 : 0;
}

static void print_jobs(Quiver__V1__CompactionJob *const *jobs, size_t n)
{
    printf("compactions  %zu\n", n);
    if (!n)
        return;
    int w = 10;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(jobs[i]->collection) > w)
            w = (int)strlen(jobs[i]->collection);
    printf("  %6s  %-*s  %-9s  %8s  %6s  %12s  %12s  %6s  %8s  %s\n", "JOB", w, "COLLECTION", "STATE", "PROGRESS",
           "INPUTS", "ROWS IN", "ROWS OUT", "OUTPUT", "SECONDS", "TRIGGER");
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__CompactionJob *j = jobs[i];
        printf("  %6llu  %-*s  %-9s  %7.1f%%  %6zu  %12llu  %12llu  %6llu  %8.1f  %s%s%s\n", (unsigned long long)j->id,
               w, j->collection, job_state_name(j->state), 100.0 * j->progress, j->n_input_segments,
               (unsigned long long)j->rows_in, (unsigned long long)j->rows_out, (unsigned long long)j->output_segment,
               job_seconds(j), j->automatic ? "auto" : "manual", j->error && *j->error ? "  error: " : "",
               j->error ? j->error : "");
    }
}

/* ---- stats ---- */
static const char stats_help[] =
    "usage: quiver stats\n"
    "Server statistics: uptime, SIMD tier, memory, WAL bytes, per collection its rows and segments, and the running\n"
    "and recent compaction jobs (newest first).\n"
    "--json: {uptime_seconds, simd, resident_bytes, vector_bytes, wal_bytes, collections: [as describe --json],\n"
    "         compactions: [{id, collection, state (QUEUED|RUNNING|DONE|FAILED|ABANDONED), input_segments: [ids],\n"
    "                        output_segment, rows_in, rows_out, progress (0..1), automatic, error, started_unix_ms,\n"
    "                        finished_unix_ms}]}\n\n";

int qv_cmd_stats(qv_cli_t *cli, int argc, char **argv)
{
    qv_cli_parse_common(cli, "stats", stats_help, argc, argv);
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
        json_t *jobs = json_array();
        for (size_t i = 0; i < r->n_compactions; i++)
            json_array_append_new(jobs, job_json(r->compactions[i]));
        json_object_set_new(j, "compactions", jobs);
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
        print_jobs(r->compactions, r->n_compactions);
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
    qv_cli_parse_common(cli, "flush", flush_help, argc, argv);
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

/* ---- compact ---- */
static const char compact_help[] =
    "usage: quiver compact COLLECTION [--target-rows N] [--wait]\n"
    "Starts an online compaction (Admin.Compact): sealed segments with deleted rows or under half of N rows are\n"
    "merged into one segment of at most N live rows without the deleted rows, its index rebuilt, and swapped in\n"
    "atomically. Searches and writes go on meanwhile. Progress: 'quiver stats'.\n"
    "  --target-rows N  live rows of the merged segment at most (default 0: the server's, 4 x its --seal-rows)\n"
    "  --wait           poll Admin.Stats until the job is DONE, FAILED or ABANDONED and print its rows in/out;\n"
    "                   exit status 1 unless DONE\n"
    "--json: {\"collection\": C, \"job_id\": N (0: nothing to compact), \"input_segments\": N} and with --wait\n"
    "        \"job\": {as in stats --json compactions}\n\n";

/* Stats until job `id` has finished; returns it (owned by *resp) or NULL after printing why not. */
static const Quiver__V1__CompactionJob *wait_job(qv_cli_t *cli, uint64_t id, Quiver__V1__StatsResponse **resp)
{
    bool tty = !cli->json && isatty(STDERR_FILENO);
    int missing = 0;
    for (;;) {
        Quiver__V1__StatsRequest req = QUIVER__V1__STATS_REQUEST__INIT;
        Quiver__V1__StatsResponse *r;
        if (qv_cli_call(cli, QV_M_ADMIN("Stats"), &req, &quiver__v1__stats_response__descriptor, &r))
            return NULL;
        const Quiver__V1__CompactionJob *j = NULL;
        for (size_t i = 0; i < r->n_compactions && !j; i++)
            if (r->compactions[i]->id == id)
                j = r->compactions[i];
        if (j && job_finished(j->state)) {
            if (tty)
                fputs("\r\033[K", stderr);
            *resp = r;
            return j;
        }
        if (j) {
            missing = 0;
            if (tty)
                fprintf(stderr, "\rjob %llu %s %5.1f%% (%.1f s)", (unsigned long long)id, job_state_name(j->state),
                        100.0 * j->progress, job_seconds(j));
        } else if (++missing > 150) { /* 30 s unlisted: the server restarted or dropped it from its history */
            fprintf(stderr, "%squiver compact: job %llu is not listed by Admin.Stats (did the server restart?)\n",
                    tty ? "\n" : "", (unsigned long long)id);
            protobuf_c_message_free_unpacked(&r->base, NULL);
            return NULL;
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int qv_cmd_compact(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_TARGET = QV_OPT_FIRST_COMMAND, O_WAIT };
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS,
                                         {"target-rows", required_argument, NULL, O_TARGET},
                                         {"wait", no_argument, NULL, O_WAIT},
                                         {NULL, 0, NULL, 0}};
    long target = 0;
    bool wait = false;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_TARGET)
            target = qv_cli_int("compact", "--target-rows", optarg, 0, 1L << 40);
        else if (o == O_WAIT)
            wait = true;
        else
            qv_cli_common(cli, "compact", compact_help, o);
    }
    qv_cli_positional("compact", argc, argv, 1, 1);
    Quiver__V1__CompactRequest req = QUIVER__V1__COMPACT_REQUEST__INIT;
    req.collection = argv[optind];
    req.target_rows = (uint64_t)target;
    Quiver__V1__CompactResponse *r;
    if (qv_cli_call(cli, QV_M_ADMIN("Compact"), &req, &quiver__v1__compact_response__descriptor, &r))
        return QV_EXIT_FAIL;
    uint64_t id = r->job_id;
    uint32_t inputs = r->input_segments;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (!cli->json) {
        if (id)
            printf("compaction job %llu started on %s: %u input segment%s\n", (unsigned long long)id, req.collection,
                   inputs, inputs == 1 ? "" : "s");
        else
            printf("%s: nothing to compact\n", req.collection);
        fflush(stdout);
    }
    int rc = QV_EXIT_OK;
    json_t *jj = NULL;
    if (wait && id) {
        Quiver__V1__StatsResponse *sr = NULL;
        const Quiver__V1__CompactionJob *j = wait_job(cli, id, &sr);
        if (!j)
            return QV_EXIT_FAIL;
        rc = j->state == QUIVER__V1__COMPACTION_JOB__STATE__STATE_DONE ? QV_EXIT_OK : QV_EXIT_FAIL;
        if (cli->json) {
            jj = job_json(j);
        } else {
            printf("job %llu %s in %.1f s: rows in %llu, rows out %llu, %zu segment%s -> segment %llu\n",
                   (unsigned long long)j->id, job_state_name(j->state), job_seconds(j),
                   (unsigned long long)j->rows_in, (unsigned long long)j->rows_out, j->n_input_segments,
                   j->n_input_segments == 1 ? "" : "s", (unsigned long long)j->output_segment);
        }
        if (rc)
            fprintf(stderr, "quiver compact: job %llu %s%s%s\n", (unsigned long long)j->id, job_state_name(j->state),
                    j->error && *j->error ? ": " : "", j->error ? j->error : "");
        protobuf_c_message_free_unpacked(&sr->base, NULL);
    }
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "collection", json_string(req.collection));
        json_object_set_new(o, "job_id", json_integer((json_int_t)id));
        json_object_set_new(o, "input_segments", json_integer(inputs));
        if (jj)
            json_object_set_new(o, "job", jj);
        qv_json_print(o);
    }
    return rc;
}

/* ---- health ---- */
static const char health_help[] =
    "usage: quiver health\n"
    "Asks the server whether it is serving. Exit status 0 when SERVING, 1 otherwise (or when unreachable).\n"
    "--json: {\"status\": \"SERVING\"|\"NOT_SERVING\"|\"UNSPECIFIED\", \"version\": V, \"role\": R}\n\n";

int qv_cmd_health(qv_cli_t *cli, int argc, char **argv)
{
    qv_cli_parse_common(cli, "health", health_help, argc, argv);
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
