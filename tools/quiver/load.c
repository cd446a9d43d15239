/* quiver load: bulk loading with a pipeline of Upsert calls and a resumable checkpoint.
 *
 * Threads and data flow:
 *   main       parses records (load_input.c, over the io_uring reader) into batches of --batch points, numbers the
 *              batches 0, 1, 2, ... (seq) and pushes them on a bounded queue (2 x --parallel batches);
 *   senders    --parallel threads pop batches and send each as one Upsert (the gRPC client is thread-safe, one
 *              completion queue per call), then acknowledge the batch;
 *   progress   redraws a one-line bar on a terminal every 250 ms, or prints a plain line every 2 s otherwise.
 *
 * Acknowledgements arrive out of order. A ring indexed by seq % RING records which batches are done; the frontier is
 * the first batch not yet done, and the position after the last batch before it (frontier_pos) is what a checkpoint
 * stores: every record before it has been acknowledged (or was skipped as bad). The producer never runs more than
 * RING batches ahead of the frontier, so a ring slot is never reused while its batch may still be in flight.
 *
 * Checkpoints (load_checkpoint.c) are written atomically after acknowledgements advance the frontier, at most every
 * 250 ms (the first at once), by whichever sender wins a trylock; a final one at the end of an unfinished load. The
 * checkpoint therefore trails the acknowledged data by at most 250 ms of batches, never leads it. Resuming re-sends
 * whatever was acknowledged after the last checkpoint; Upsert replaces points by id and ids are either the input's
 * or record numbers (stable across runs), so the re-sent rows are the same rows: no loss and no duplicates. A load
 * that completes removes its checkpoint.
 *
 * Failures: a bad record stops the load (after the batches before it are acknowledged, and with the checkpoint at the
 * bad record) unless --skip-bad; an Upsert that fails with UNAVAILABLE or DEADLINE_EXCEEDED is retried (idempotent,
 * as above) with backoff up to 5 times; INVALID_ARGUMENT with --skip-bad re-sends the batch point by point and skips
 * the points the server rejects; any other failure stops the load. SIGINT/SIGTERM stop parsing, let queued batches
 * finish, write the checkpoint and exit 130; a second signal kills the process at once (the checkpoint on disk is
 * still valid). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/quiver/cli.h"
#include "tools/quiver/load.h"

#define RING 4096
#define CKPT_INTERVAL_NS 250000000LL
#define MAX_RETRIES 5
#define MAX_REPORTS 100            /* bad records printed one by one; more are counted */
#define MAX_BATCH_BYTES (48u << 20) /* stay well under the server's 64 MiB message limit */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C kills: the checkpoint on disk is consistent at any moment */
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct batch {
    struct batch *next;
    uint64_t seq;
    qv_arena_t arena; /* owns every point */
    Quiver__V1__Point **points;
    uint64_t *rows;   /* record number of each point, for messages */
    size_t n;
    uint64_t loaded;  /* points the server accepted */
    uint64_t skipped; /* bad records in this batch's span (parser) plus points the server rejected (--skip-bad) */
    qv_pos_t end;     /* input position after the batch */
} batch_t;

typedef struct {
    bool done;
    uint64_t loaded, skipped;
    qv_pos_t end;
} slot_t;

typedef struct {
    qv_cli_t *cli;
    const char *collection;
    size_t batch_size;
    int parallel;
    bool skip_bad;
    bool ckpt_enabled;
    const char *ckpt_path;
    qv_ckpt_t ckpt_base;    /* identity fields and the counts of earlier runs */

    pthread_mutex_t mu;     /* guards everything below up to ckpt_mu */
    pthread_cond_t cv_push; /* queue space or frontier moved */
    pthread_cond_t cv_pop;  /* queue has a batch or closed */
    pthread_cond_t cv_done; /* progress thread: stop */
    batch_t *head, *tail;
    size_t qlen, qcap;
    bool closed;
    slot_t *ring;
    uint64_t frontier;      /* first batch not acknowledged */
    qv_pos_t frontier_pos;  /* position after every acknowledged batch before the frontier */
    uint64_t front_loaded, front_skipped; /* this run, up to the frontier */
    uint64_t acked_rows;    /* this run, every acknowledged batch */
    uint64_t skipped_rows;  /* this run */
    uint64_t reports;       /* bad records reported */
    bool failed;            /* a sender hit an error that stops the load */
    bool progress_done;
    uint64_t parsed_offset; /* progress: parser position */

    pthread_mutex_t ckpt_mu; /* one checkpoint writer at a time; guards the two fields below */
    uint64_t ckpt_written;   /* frontier of the last checkpoint written (+1; 0 = none yet) */
    int64_t ckpt_last_ns;
    atomic_bool ckpt_warned;

    uint64_t size, start_offset;
    int64_t t0;
    bool tty, quiet;
} loader_t;

/* ---- reporting ---- */
static void report_bad(loader_t *L, const char *what, const char *msg)
{
    pthread_mutex_lock(&L->mu);
    uint64_t n = ++L->reports;
    pthread_mutex_unlock(&L->mu);
    if (n <= MAX_REPORTS)
        fprintf(stderr, "%squiver: %s: %s\n", L->tty && !L->quiet ? "\r\033[K" : "", what, msg);
    if (n == MAX_REPORTS + 1)
        fprintf(stderr, "quiver: more bad records: counted, not printed\n");
}

/* ---- checkpoints ---- */
static void checkpoint(loader_t *L, bool force)
{
    if (!L->ckpt_enabled)
        return;
    if (force)
        pthread_mutex_lock(&L->ckpt_mu);
    else if (pthread_mutex_trylock(&L->ckpt_mu) != 0)
        return; /* another thread is writing; the next acknowledgement (or the final write) catches up */
    int64_t t = now_ns();
    if (!force && L->ckpt_written && t - L->ckpt_last_ns < CKPT_INTERVAL_NS) {
        pthread_mutex_unlock(&L->ckpt_mu);
        return;
    }
    qv_ckpt_t c = L->ckpt_base;
    pthread_mutex_lock(&L->mu);
    uint64_t front = L->frontier;
    c.pos = L->frontier_pos;
    c.loaded += L->front_loaded;
    c.skipped += L->front_skipped;
    pthread_mutex_unlock(&L->mu);
    if (front + 1 > L->ckpt_written || force) {
        char msg[512];
        if (qv_ckpt_write(L->ckpt_path, &c, msg, sizeof msg) != 0) {
            if (!atomic_exchange(&L->ckpt_warned, true))
                fprintf(stderr, "quiver: warning: %s\n", msg);
        } else {
            L->ckpt_written = front + 1;
            L->ckpt_last_ns = t;
        }
    }
    pthread_mutex_unlock(&L->ckpt_mu);
}

static void ack(loader_t *L, batch_t *b)
{
    pthread_mutex_lock(&L->mu);
    slot_t *s = &L->ring[b->seq % RING];
    s->done = true;
    s->loaded = b->loaded;
    s->skipped = b->skipped;
    s->end = b->end;
    L->acked_rows += b->loaded;
    bool advanced = false;
    while (L->ring[L->frontier % RING].done) {
        slot_t *f = &L->ring[L->frontier % RING];
        L->frontier_pos = f->end;
        L->front_loaded += f->loaded;
        L->front_skipped += f->skipped;
        f->done = false;
        L->frontier++;
        advanced = true;
    }
    pthread_cond_broadcast(&L->cv_push);
    pthread_mutex_unlock(&L->mu);
    if (advanced)
        checkpoint(L, false);
}

/* ---- senders ---- */
static void batch_free(batch_t *b)
{
    if (!b)
        return;
    qv_arena_free(&b->arena);
    free(b);
}

static void set_failed(loader_t *L)
{
    pthread_mutex_lock(&L->mu);
    L->failed = true;
    pthread_cond_broadcast(&L->cv_push);
    pthread_mutex_unlock(&L->mu);
}

/* One Upsert of points[0..n), retried while the server is unavailable or slow. Returns the gRPC status code. */
static int upsert(loader_t *L, Quiver__V1__Point **points, size_t n, qv_status_t *st)
{
    Quiver__V1__UpsertRequest req = QUIVER__V1__UPSERT_REQUEST__INIT;
    req.collection = (char *)L->collection;
    req.points = points;
    req.n_points = n;
    int delay_ms = 200;
    for (int attempt = 0;; attempt++) {
        ProtobufCMessage *resp;
        int code = qv_client_call(L->cli->client, QV_M_QUIVER("Upsert"), &req.base,
                                  &quiver__v1__upsert_response__descriptor, L->cli->timeout, &resp, st);
        if (code == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return 0;
        }
        bool transient = code == 14 /* UNAVAILABLE */ || code == 4 /* DEADLINE_EXCEEDED */;
        if (!transient || attempt >= MAX_RETRIES || interrupted)
            return code;
        fprintf(stderr, "quiver: Upsert: %s: %s; retrying in %d ms\n", qv_status_name(code), st->message, delay_ms);
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay_ms *= 2;
    }
}

/* Sends a batch; returns 0 when acknowledged (possibly with points rejected and skipped), -1 when the load must stop
 * (already reported). */
static int send_batch(loader_t *L, batch_t *b)
{
    if (b->n == 0)
        return 0;
    qv_status_t st;
    int code = upsert(L, b->points, b->n, &st);
    if (code == 0) {
        b->loaded = b->n;
        return 0;
    }
    if (code == 3 /* INVALID_ARGUMENT */ && L->skip_bad) {
        /* Find the points the server refuses: one call per point, rare by construction (the parser checks the
         * dimension, numbers and schema types already). */
        for (size_t i = 0; i < b->n; i++) {
            code = upsert(L, &b->points[i], 1, &st);
            if (code == 0) {
                b->loaded++;
            } else if (code == 3) {
                char m[700];
                snprintf(m, sizeof m, "record %" PRIu64 " (id '%.64s'): %s", b->rows[i], b->points[i]->id, st.message);
                report_bad(L, "skipped a record the server rejected", m);
                b->skipped++;
                pthread_mutex_lock(&L->mu);
                L->skipped_rows++;
                pthread_mutex_unlock(&L->mu);
            } else {
                break;
            }
        }
        if (code == 0 || code == 3)
            return 0;
    }
    fprintf(stderr, "%squiver: Upsert of records %" PRIu64 "..%" PRIu64 " failed: %s: %s\n",
            L->tty && !L->quiet ? "\r\033[K" : "", b->rows[0], b->rows[b->n - 1], qv_status_name(code), st.message);
    set_failed(L);
    return -1;
}

static void *sender(void *arg)
{
    loader_t *L = arg;
    for (;;) {
        pthread_mutex_lock(&L->mu);
        while (!L->head && !L->closed)
            pthread_cond_wait(&L->cv_pop, &L->mu);
        batch_t *b = L->head;
        if (b) {
            L->head = b->next;
            if (!L->head)
                L->tail = NULL;
            L->qlen--;
            pthread_cond_broadcast(&L->cv_push);
        }
        bool failed = L->failed;
        pthread_mutex_unlock(&L->mu);
        if (!b)
            break;
        if (!failed && send_batch(L, b) == 0)
            ack(L, b);
        batch_free(b);
    }
    return NULL;
}

/* Queues b, waiting for space and for the frontier to be within RING batches. Returns false (b freed) if the load
 * failed meanwhile. */
static bool push(loader_t *L, batch_t *b)
{
    pthread_mutex_lock(&L->mu);
    while (!L->failed && (L->qlen >= L->qcap || b->seq - L->frontier >= RING - 1)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&L->cv_push, &L->mu, &ts);
    }
    if (L->failed) {
        pthread_mutex_unlock(&L->mu);
        batch_free(b);
        return false;
    }
    b->next = NULL;
    if (L->tail)
        L->tail->next = b;
    else
        L->head = b;
    L->tail = b;
    L->qlen++;
    pthread_cond_signal(&L->cv_pop);
    pthread_mutex_unlock(&L->mu);
    return true;
}

/* A record read but left for the next batch (the server's text limits ended this one): packed, because the batch
 * whose arena holds it may be acknowledged and freed before the next batch takes it. */
typedef struct {
    uint8_t *packed;
    size_t len;
    qv_pos_t before; /* where the record starts */
} carry_t;

static bool carry_put(carry_t *c, const Quiver__V1__Point *p, qv_pos_t before)
{
    c->len = protobuf_c_message_get_packed_size(&p->base);
    if (!(c->packed = malloc(c->len ? c->len : 1)))
        return false;
    protobuf_c_message_pack(&p->base, c->packed);
    c->before = before;
    return true;
}

static void *arena_alloc(void *a, size_t n) { return qv_arena_alloc(a, n); }
static void arena_nofree(void *a, void *p) { (void)a, (void)p; }

/* Unpacks the carried record into b (its arena) as b's first point. */
static bool carry_take(carry_t *c, batch_t *b, size_t *texts, size_t *text_bytes)
{
    ProtobufCAllocator al = {arena_alloc, arena_nofree, &b->arena};
    Quiver__V1__Point *p = quiver__v1__point__unpack(&al, c->len, c->packed);
    free(c->packed);
    c->packed = NULL;
    if (!p)
        return false;
    b->rows[0] = c->before.row;
    b->points[b->n++] = p;
    size_t tb = p->n_vector == 0 && p->text ? strlen(p->text) : 0;
    *texts = tb > 0;
    *text_bytes = tb;
    return true;
}

static batch_t *batch_new(loader_t *L, uint64_t seq)
{
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    qv_arena_init(&b->arena);
    b->seq = seq;
    b->points = qv_arena_array(&b->arena, L->batch_size, sizeof *b->points);
    b->rows = qv_arena_array(&b->arena, L->batch_size, sizeof *b->rows);
    if (!b->points || !b->rows) {
        batch_free(b);
        return NULL;
    }
    return b;
}

/* ---- progress ---- */
static void fmt_count(uint64_t n, char *out, size_t len)
{
    char raw[32];
    int rl = snprintf(raw, sizeof raw, "%" PRIu64, n);
    size_t o = 0;
    for (int i = 0; i < rl && o + 2 < len; i++) {
        if (i && (rl - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = raw[i];
    }
    out[o] = '\0';
}

static void progress_line(loader_t *L, bool final)
{
    pthread_mutex_lock(&L->mu);
    uint64_t rows = L->acked_rows, errs = L->reports, off = L->parsed_offset;
    pthread_mutex_unlock(&L->mu);
    double secs = (double)(now_ns() - L->t0) / 1e9;
    double rate = secs > 0 ? (double)rows / secs : 0;
    uint64_t span = L->size > L->start_offset ? L->size - L->start_offset : 0;
    uint64_t done = off > L->start_offset ? off - L->start_offset : 0;
    double frac = span ? (double)done / (double)span : 1;
    if (frac > 1)
        frac = 1;
    char eta[32] = "-";
    if (done > 0 && frac < 1) {
        double left = secs * (double)(span - done) / (double)done;
        snprintf(eta, sizeof eta, "%d:%02d:%02d", (int)(left / 3600), (int)left / 60 % 60, (int)left % 60);
    } else if (frac >= 1) {
        snprintf(eta, sizeof eta, "0:00:00");
    }
    char r[32], rs[32];
    fmt_count(rows, r, sizeof r);
    fmt_count((uint64_t)rate, rs, sizeof rs);
    if (L->tty) {
        int width = 24, fill = (int)(frac * width);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%%  %s rows  %s rows/s  ETA %s  errors %" PRIu64 "\033[K%s", bar, frac * 100, r,
                rs, eta, errs, final ? "\n" : "");
    } else {
        fprintf(stderr, "quiver: load: %s rows, %.1f%%, %s rows/s, ETA %s, errors %" PRIu64 "\n", r, frac * 100, rs,
                eta, errs);
    }
    fflush(stderr);
}

static void *progress(void *arg)
{
    loader_t *L = arg;
    int64_t interval = L->tty ? 250000000LL : 2000000000LL;
    pthread_mutex_lock(&L->mu);
    while (!L->progress_done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_nsec + interval;
        ts.tv_sec += t / 1000000000;
        ts.tv_nsec = t % 1000000000;
        if (pthread_cond_timedwait(&L->cv_done, &L->mu, &ts) == ETIMEDOUT && !L->progress_done) {
            pthread_mutex_unlock(&L->mu);
            progress_line(L, false);
            pthread_mutex_lock(&L->mu);
        }
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* ---- the command ---- */
static const char load_help[] =
    "usage: quiver load --collection C --input FILE [--format fvecs|bvecs|npy|jsonl|csv|tsv]\n"
    "                   [--id-field F] [--vector-field F] [--text-field F] [--batch 1000] [--parallel 4]\n"
    "                   [--id-prefix P] [--id-offset N] [--checkpoint PATH] [--resume] [--skip-bad] [--quiet]\n"
    "Loads FILE into an existing collection with pipelined Upsert calls.\n"
    "  --collection C     the collection (its dim and schema type the input)\n"
    "  --input FILE       the input; read with io_uring (pread when io_uring is refused, or QUIVER_NO_IO_URING=1)\n"
    "  --format F         default: from FILE's extension (.fvecs .bvecs .npy .jsonl/.ndjson .csv .tsv)\n"
    "  --id-field F       id key/column (default id); absent: the record number (0, 1, ...) is the id\n"
    "  --id-prefix P      ids made from record numbers get this prefix (a second file then does not replace\n"
    "                     the first: --id-prefix b-)\n"
    "  --id-offset N      ... and start at N instead of 0\n"
    "  --vector-field F   vector key/column (default vector); csv/tsv may use columns v0..vN instead\n"
    "  --text-field F     text key/column (default text). In a collection with an embedding model a record may\n"
    "                     have text and no vector (jsonl: no vector key; csv/tsv: no vector columns): the server\n"
    "                     embeds it; batches then also end before 1000 texts or 1 MiB of text\n"
    "  --batch N          points per Upsert, 1..10000 (default 1000; lowered to keep a request under 48 MiB)\n"
    "  --parallel N       concurrent Upsert calls, 1..64 (default 4)\n"
    "  --checkpoint PATH  default FILE.quiver-checkpoint: the position up to which every record is acknowledged,\n"
    "                     rewritten atomically as batches are acknowledged; removed when the load completes\n"
    "  --resume           continue from the checkpoint (a load that completed or never ran starts at the top);\n"
    "                     rows acknowledged after the checkpoint are re-sent and replace themselves by id\n"
    "  --skip-bad         skip and count bad records instead of stopping at the first one\n"
    "  --quiet            no progress output\n"
    "Formats: fvecs/bvecs (int32 dim + float32/uint8 values per record), npy (2-D <f4, <f8, |u1 or |i1, C order),\n"
    "jsonl (one object per line: id, vector, text, other keys = attributes typed by the schema), csv/tsv (a header\n"
    "row; the vector as one cell of floats separated by spaces/commas, or columns v0..vN; other columns are\n"
    "attributes: KEYWORDS as a|b|c, BOOL as true/false/1/0, an empty cell is an absent attribute).\n"
    "Bad records (wrong dimension, bad JSON, non-numeric values, a truncated final record) are reported with their\n"
    "line number or byte offset; without --skip-bad the load stops after the batches before the bad record are\n"
    "acknowledged (exit 1) and the checkpoint points at it.\n"
    "Progress: a bar on a terminal, a line every 2 s otherwise (stderr). Summary on stdout.\n"
    "Exit status: 0 done, 1 bad input or server error, 2 usage error, 130 interrupted (resume with --resume).\n"
    "--json: {collection, input, format, engine, rows_loaded, rows_skipped, seconds, rows_per_second,\n"
    "         resumed_from_row, complete, checkpoint}\n\n";

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int qv_cmd_load(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_COLL = QV_OPT_FIRST_COMMAND, O_INPUT, O_FORMAT, O_IDF, O_VECF, O_TEXTF, O_BATCH, O_PAR, O_CKPT, O_RESUME,
           O_SKIP, O_QUIET, O_IDP, O_IDO };
    static const struct option opts[] = {
        {"collection", required_argument, NULL, O_COLL},  {"input", required_argument, NULL, O_INPUT},
        {"format", required_argument, NULL, O_FORMAT},    {"id-field", required_argument, NULL, O_IDF},
        {"vector-field", required_argument, NULL, O_VECF}, {"text-field", required_argument, NULL, O_TEXTF},
        {"batch", required_argument, NULL, O_BATCH},      {"parallel", required_argument, NULL, O_PAR},
        {"checkpoint", required_argument, NULL, O_CKPT},  {"resume", no_argument, NULL, O_RESUME},
        {"skip-bad", no_argument, NULL, O_SKIP},          {"quiet", no_argument, NULL, O_QUIET},
        {"id-prefix", required_argument, NULL, O_IDP},    {"id-offset", required_argument, NULL, O_IDO},
        QV_CLI_COMMON_OPTIONS,                            {NULL, 0, NULL, 0},
    };
    const char *collection = NULL, *input = NULL, *ckpt_arg = NULL;
    qv_fmt_t fmt = QV_FMT_NONE;
    qv_input_opts_t io = {.id_field = "id", .vector_field = "vector", .text_field = "text"};
    long batch = 1000, parallel = 4;
    bool resume = false, skip_bad = false, quiet = false;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_COLL: collection = optarg; break;
        case O_INPUT: input = optarg; break;
        case O_FORMAT:
            fmt = qv_fmt_parse(optarg);
            if (fmt == QV_FMT_NONE)
                qv_cli_usage("load", "--format expects fvecs, bvecs, npy, jsonl, csv or tsv, got '%s'", optarg);
            break;
        case O_IDF: io.id_field = optarg, io.id_field_set = true; break;
        case O_VECF: io.vector_field = optarg, io.vector_field_set = true; break;
        case O_TEXTF: io.text_field = optarg, io.text_field_set = true; break;
        case O_BATCH: batch = qv_cli_int("load", "--batch", optarg, 1, 10000); break;
        case O_PAR: parallel = qv_cli_int("load", "--parallel", optarg, 1, 64); break;
        case O_CKPT: ckpt_arg = optarg; break;
        case O_RESUME: resume = true; break;
        case O_SKIP: skip_bad = true; break;
        case O_QUIET: quiet = true; break;
        case O_IDP:
            if (strlen(optarg) > 200)
                qv_cli_usage("load", "--id-prefix is longer than 200 bytes");
            io.id_prefix = optarg;
            break;
        case O_IDO: io.id_offset = (uint64_t)qv_cli_int("load", "--id-offset", optarg, 0, 1L << 62); break;
        default: qv_cli_common(cli, "load", load_help, o);
        }
    }
    qv_cli_positional("load", argc, argv, 0, 0);
    if (!collection)
        qv_cli_usage("load", "--collection is required");
    if (!input)
        qv_cli_usage("load", "--input is required");
    if (fmt == QV_FMT_NONE && (fmt = qv_fmt_from_path(input)) == QV_FMT_NONE)
        qv_cli_usage("load", "cannot tell the format of '%s' from its extension; give --format", input);
    if (!*io.id_field || !*io.vector_field || !*io.text_field)
        qv_cli_usage("load", "field names must not be empty");
    struct stat st;
    if (stat(input, &st) != 0)
        qv_cli_usage("load", "cannot read '%s': %s", input, strerror(errno));
    if (!S_ISREG(st.st_mode))
        qv_cli_usage("load", "'%s' is not a regular file", input);
    char ckpt_path[4096];
    if ((size_t)snprintf(ckpt_path, sizeof ckpt_path, "%s", ckpt_arg ? ckpt_arg : input) >= sizeof ckpt_path - 32)
        qv_cli_usage("load", "path too long");
    if (!ckpt_arg)
        strcat(ckpt_path, ".quiver-checkpoint");

    /* the collection types the input */
    Quiver__V1__DescribeCollectionRequest dreq = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    dreq.name = (char *)collection;
    Quiver__V1__DescribeCollectionResponse *dresp;
    if (qv_cli_call(cli, QV_M_QUIVER("DescribeCollection"), &dreq,
                    &quiver__v1__describe_collection_response__descriptor, &dresp))
        return QV_EXIT_FAIL;
    if (!dresp->collection || dresp->collection->dim == 0) {
        fprintf(stderr, "quiver: DescribeCollection: the response has no collection\n");
        protobuf_c_message_free_unpacked(&dresp->base, NULL);
        return QV_EXIT_FAIL;
    }
    io.fmt = fmt;
    io.info = dresp->collection;
    size_t per_point = (size_t)io.info->dim * 4 + 256;
    if ((size_t)batch * per_point > MAX_BATCH_BYTES) {
        long b2 = (long)(MAX_BATCH_BYTES / per_point);
        if (b2 < 1)
            b2 = 1;
        fprintf(stderr, "quiver: note: --batch %ld lowered to %ld to keep requests under 48 MiB (dim %u)\n", batch, b2,
                io.info->dim);
        batch = b2;
    }

    /* checkpoint identity */
    qv_ckpt_t base;
    memset(&base, 0, sizeof base);
    snprintf(base.collection, sizeof base.collection, "%s", collection);
    snprintf(base.format, sizeof base.format, "%s", qv_fmt_name(fmt));
    char *abs = realpath(input, NULL);
    snprintf(base.input, sizeof base.input, "%s", abs ? abs : input);
    free(abs);
    base.input_size = (uint64_t)st.st_size;
    base.input_mtime_ns = mtime_ns(&st);
    qv_ckpt_t ck;
    const qv_pos_t *resume_pos = NULL;
    int rc = QV_EXIT_OK;
    char msg[1024];
    if (resume) {
        int r = qv_ckpt_read(ckpt_path, &ck, msg, sizeof msg);
        if (r == -ENOENT) {
            fprintf(stderr, "quiver: no checkpoint at %s: starting from the beginning\n", ckpt_path);
        } else if (r < 0) {
            fprintf(stderr, "quiver: %s\n", msg);
            rc = QV_EXIT_USAGE;
        } else if (strcmp(ck.collection, base.collection) != 0 || strcmp(ck.format, base.format) != 0) {
            fprintf(stderr, "quiver: checkpoint %s is for collection %s, format %s (not %s, %s); delete it or give "
                            "--checkpoint\n", ckpt_path, ck.collection, ck.format, base.collection, base.format);
            rc = QV_EXIT_USAGE;
        } else if (ck.input_size != base.input_size || ck.input_mtime_ns != base.input_mtime_ns) {
            fprintf(stderr, "quiver: %s changed since checkpoint %s was written (size or modification time); delete "
                            "the checkpoint to load it from the beginning\n", input, ckpt_path);
            rc = QV_EXIT_USAGE;
        } else {
            resume_pos = &ck.pos;
            base.loaded = ck.loaded;
            base.skipped = ck.skipped;
        }
    } else if (access(ckpt_path, F_OK) == 0) {
        fprintf(stderr, "quiver: note: starting from the beginning; checkpoint %s will be overwritten (--resume "
                        "continues from it)\n", ckpt_path);
    }
    qv_input_t *in = NULL;
    if (rc == QV_EXIT_OK && qv_input_open(input, &io, resume_pos, &in, msg, sizeof msg) != 0) {
        fprintf(stderr, "quiver: %s\n", msg);
        rc = QV_EXIT_FAIL;
    }
    if (rc != QV_EXIT_OK) {
        protobuf_c_message_free_unpacked(&dresp->base, NULL);
        return rc;
    }
    if (resume_pos)
        fprintf(stderr, "quiver: resuming at record %" PRIu64 " (byte offset %" PRIu64 ")\n", resume_pos->row,
                resume_pos->offset);

    loader_t *L = calloc(1, sizeof *L);
    slot_t *ring = calloc(RING, sizeof *ring);
    if (!L || !ring) {
        fprintf(stderr, "quiver: out of memory\n");
        exit(QV_EXIT_FAIL);
    }
    L->cli = cli;
    L->collection = collection;
    L->batch_size = (size_t)batch;
    L->parallel = (int)parallel;
    L->skip_bad = skip_bad;
    L->ckpt_enabled = true;
    L->ckpt_path = ckpt_path;
    L->ckpt_base = base;
    L->ring = ring;
    L->qcap = 2 * (size_t)parallel;
    L->frontier_pos = qv_input_pos(in);
    L->parsed_offset = L->start_offset = L->frontier_pos.offset;
    L->size = qv_input_size(in);
    L->tty = isatty(STDERR_FILENO);
    L->quiet = quiet;
    L->t0 = now_ns();
    pthread_mutex_init(&L->mu, NULL);
    pthread_mutex_init(&L->ckpt_mu, NULL);
    pthread_cond_init(&L->cv_push, NULL);
    pthread_cond_init(&L->cv_pop, NULL);
    pthread_cond_init(&L->cv_done, NULL);
    atomic_init(&L->ckpt_warned, false);
    uint64_t resumed_row = L->frontier_pos.row;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    pthread_t *threads = calloc((size_t)parallel, sizeof *threads);
    pthread_t prog;
    for (long i = 0; i < parallel; i++)
        pthread_create(&threads[i], NULL, sender, L);
    if (!quiet)
        pthread_create(&prog, NULL, progress, L);

    /* ---- produce ---- */
    enum { GO, END, STOP_BAD, STOP_FATAL, STOP_FAILED, STOP_SIGNAL } state = GO;
    uint64_t seq = 0;
    carry_t carry = {0};
    while (state == GO) {
        batch_t *b = batch_new(L, seq);
        if (!b) {
            fprintf(stderr, "quiver: out of memory\n");
            state = STOP_FATAL;
            break;
        }
        size_t texts = 0, text_bytes = 0; /* of the batch's text-only points */
        bool cut = false;                 /* ended early by the server's text limits: the next record is carried */
        if (carry.packed && !carry_take(&carry, b, &texts, &text_bytes)) {
            fprintf(stderr, "quiver: out of memory\n");
            state = STOP_FATAL;
            batch_free(b);
            break;
        }
        while (b->n < L->batch_size) {
            if (interrupted) {
                state = STOP_SIGNAL;
                break;
            }
            Quiver__V1__Point *p;
            qv_pos_t before;
            int r = qv_input_next(in, &b->arena, &p, &before, msg, sizeof msg);
            if (r == QV_IN_ROW) {
                size_t tb = p->n_vector == 0 && p->text ? strlen(p->text) : 0;
                if (tb && b->n && (texts + 1 > QV_LOAD_TEXTS_MAX || text_bytes + tb > QV_LOAD_TEXT_BYTES_MAX)) {
                    /* the server embeds at most so many texts and bytes per request: p opens the next batch */
                    if (!carry_put(&carry, p, before)) {
                        fprintf(stderr, "quiver: out of memory\n");
                        state = STOP_FATAL;
                    }
                    b->end = before;
                    cut = true;
                    break;
                }
                texts += tb > 0;
                text_bytes += tb;
                b->rows[b->n] = before.row;
                b->points[b->n++] = p;
                continue;
            }
            if (r == QV_IN_EOF) {
                state = END;
                break;
            }
            if (r == QV_IN_BAD && skip_bad) {
                report_bad(L, "skipped bad record", msg);
                b->skipped++;
                pthread_mutex_lock(&L->mu);
                L->skipped_rows++;
                pthread_mutex_unlock(&L->mu);
                continue;
            }
            if (r == QV_IN_BAD) {
                report_bad(L, "bad record", msg);
                fprintf(stderr, "quiver: stopping at the bad record (--skip-bad skips such records)\n");
                state = STOP_BAD;
                b->end = before; /* the checkpoint points at the bad record */
            } else {
                fprintf(stderr, "%squiver: %s\n", L->tty && !quiet ? "\r\033[K" : "", msg);
                state = STOP_FATAL;
                b->end = before;
            }
            break;
        }
        if (state != STOP_BAD && state != STOP_FATAL && !cut)
            b->end = qv_input_pos(in);
        pthread_mutex_lock(&L->mu);
        L->parsed_offset = qv_input_pos(in).offset;
        pthread_mutex_unlock(&L->mu);
        if (b->n == 0 && b->skipped == 0 && b->end.offset == L->frontier_pos.offset && seq == 0) {
            batch_free(b); /* nothing at all in this span (an empty input, or interrupted at once) */
            continue;
        }
        seq++;
        if (!push(L, b) && state == GO)
            state = STOP_FAILED;
    }

    /* ---- drain ---- */
    pthread_mutex_lock(&L->mu);
    L->closed = true;
    pthread_cond_broadcast(&L->cv_pop);
    pthread_mutex_unlock(&L->mu);
    for (long i = 0; i < parallel; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    pthread_mutex_lock(&L->mu);
    bool failed = L->failed;
    L->progress_done = true;
    pthread_cond_broadcast(&L->cv_done);
    pthread_mutex_unlock(&L->mu);
    if (!quiet) {
        pthread_join(prog, NULL);
        progress_line(L, true);
    }

    bool complete = state == END && !failed;
    if (complete) {
        if (unlink(ckpt_path) != 0 && errno != ENOENT)
            fprintf(stderr, "quiver: warning: cannot remove checkpoint %s: %s\n", ckpt_path, strerror(errno));
    } else {
        checkpoint(L, true);
    }
    double secs = (double)(now_ns() - L->t0) / 1e9;
    uint64_t loaded = L->acked_rows, skipped = L->skipped_rows;
    double rate = secs > 0 ? (double)loaded / secs : 0;
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "collection", json_string(collection));
        json_object_set_new(j, "input", json_string(input));
        json_object_set_new(j, "format", json_string(qv_fmt_name(fmt)));
        json_object_set_new(j, "engine", json_string(qv_input_engine(in)));
        json_object_set_new(j, "rows_loaded", json_integer((json_int_t)loaded));
        json_object_set_new(j, "rows_skipped", json_integer((json_int_t)skipped));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "rows_per_second", json_real(rate));
        json_object_set_new(j, "resumed_from_row", json_integer((json_int_t)resumed_row));
        json_object_set_new(j, "complete", json_boolean(complete));
        json_object_set_new(j, "checkpoint", complete ? json_null() : json_string(ckpt_path));
        qv_json_print(j);
    } else {
        char a[32], r[32];
        fmt_count(loaded, a, sizeof a);
        fmt_count((uint64_t)rate, r, sizeof r);
        printf("%s %s rows into %s in %.2f s (%s rows/s), %" PRIu64 " skipped%s\n",
               complete ? "loaded" : "stopped after loading", a, collection, secs, r, skipped,
               resumed_row ? " (resumed)" : "");
        if (!complete)
            printf("checkpoint: %s (continue with --resume)\n", ckpt_path);
    }
    if (complete)
        rc = QV_EXIT_OK;
    else if (state == STOP_SIGNAL && !failed)
        rc = QV_EXIT_INTERRUPTED;
    else
        rc = QV_EXIT_FAIL;

    qv_input_close(in);
    pthread_mutex_destroy(&L->mu);
    pthread_mutex_destroy(&L->ckpt_mu);
    pthread_cond_destroy(&L->cv_push);
    pthread_cond_destroy(&L->cv_pop);
    pthread_cond_destroy(&L->cv_done);
    free(L->ring);
    free(L);
    protobuf_c_message_free_unpacked(&dresp->base, NULL);
    return rc;
}
