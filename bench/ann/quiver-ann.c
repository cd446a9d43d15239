/* quiver-ann: benchmarks Quiver's HNSW index library directly (no server), the contract other checks use.
 *
 *   quiver-ann --base B --query Q [--gt G] --metric l2|ip|cosine --k 10 --M 16 --efc 200
 *              --ef 10,20,40,80,160,320 [--quant none|sq8|pq:M] [--rerank R] [--threads N]
 *              [--filter-selectivity 0.001,0.01,0.1,0.5,1] [--seed S] --json OUT
 *
 * --quant sq8 / pq:M builds the index with 8-bit scalar or product quantisation (M sub-quantisers, M dividing the
 * dimension): the walk reads codes, and max(ef, R * k) candidates are re-ranked with the float vectors (--rerank R,
 * default 0 = the library's default, 4). The build time includes training the quantiser and encoding every row.
 * index_bytes_per_vector counts the graph and the codes (and codebooks), not the float vectors, which the index
 * still reads for re-ranking; code_bytes_per_vector is what the walk reads per visited row.
 *
 * Inputs: .fvecs / .bvecs / .ivecs (TEXMEX) and .npy (float32; ground truth int32/int64). Without --gt the exact
 * ground truth is computed (multi-threaded exact scans). cosine normalises base and queries and uses IP.
 * Build: on --threads threads (default: all online CPUs), timed. Search: single-threaded, all queries in order,
 * timed as the best of 5 passes per ef after one untimed warm-up pass; queries/s = queries / time of that pass, by
 * wall clock ("qps") and by this thread's CPU time ("qps_cpu", robust on a shared machine). Filtered runs
 * (--filter-selectivity below 1) use
 * a random allowed bitmap with that fraction of the rows (fixed seed), with their own exact ground truth, and the
 * index's automatic plan (graph walk, two-hop walk or exact scan of the allowed rows; the JSON says which).
 * OUT: one JSON object, see write_json(). Progress goes to stderr. */
#include "bench/ann/vecio.h"
#include "common/bitmap.h"
#include "common/buf.h"
#include "common/err.h"
#include "index/distance.h"
#include "index/hnsw.h"
#include "index/pool.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 64
#define REPEATS 5  /* timed passes per ef; the fastest is reported (the machine may be shared) */

typedef struct {
    double sel;
    size_t allowed;
    uint32_t ef;
    double recall, qps, qps_cpu, mean_dist, mean_rerank;
    size_t paths[4];
    size_t budget_hits;
    double gt_seconds;
} result_t;

static qv_hnsw_plan_t g_plan = QV_HNSW_PLAN_AUTO;
static uint32_t g_rerank = 0;  /* 0 = the library's default */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a shared machine, time spent descheduled does not count against the search. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: quiver-ann --base B --query Q [--gt G] --metric l2|ip|cosine --k 10 --M 16 --efc 200\n"
               "                  --ef 10,20,40,80,160,320 [--quant none|sq8|pq:M] [--rerank R] [--threads N]\n"
               "                  [--filter-selectivity 0.001,0.01,0.1,0.5,1] [--seed S] --json OUT\n"
               "                  [--index-file F (load the graph from F if it exists, else build and save it)]\n"
               "                  [--no-hugepages (base vectors in ordinary 4 KiB pages)]\n"
               "                  [--plan auto|graph|exact (filtered searches; default auto)]\n"
               "inputs: .fvecs .bvecs .ivecs (TEXMEX), .npy (float32 vectors; int32/int64 ground truth)\n");
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("quiver-ann: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("--%s: '%s' is not an integer in [%ld, %ld]", what, s, lo, hi);
    return v;
}

static size_t parse_list(const char *s, const char *what, double *out, double lo, double hi)
{
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !(v >= lo && v <= hi))
            die("--%s: bad value in '%s' (each in [%g, %g])", what, s, lo, hi);
        if (n == MAX_LIST)
            die("--%s: more than %d values", what, MAX_LIST);
        out[n++] = v;
        if (*end == ',')
            end++;
        else if (*end)
            die("--%s: bad separator in '%s'", what, s);
        p = end;
    }
    if (n == 0)
        die("--%s: empty list", what);
    return n;
}

/* ---- exact ground truth, in parallel ---- */

typedef struct {
    const qv_hnsw_t *h;
    const float *queries;
    uint32_t dim;
    size_t nq, k;
    const uint64_t *allowed;
    int32_t *gt;  /* nq * k, -1 where fewer than k rows are allowed */
} gt_job_t;

static void gt_task(void *arg, int task)
{
    gt_job_t *j = arg;
    qv_cand_t *out = malloc(j->k * sizeof(*out));
    for (size_t q = (size_t)task * 16; q < j->nq && q < (size_t)task * 16 + 16; q++) {
        size_t nout = 0;
        qv_hnsw_search_exact(j->h, j->queries + q * j->dim, j->k, j->allowed, out, &nout);
        for (size_t i = 0; i < j->k; i++)
            j->gt[q * j->k + i] = i < nout ? (int32_t)out[i].ref : -1;
    }
    free(out);
}

static void exact_gt(const qv_hnsw_t *h, qv_pool_t *pool, const float *queries, uint32_t dim, size_t nq, size_t k,
                     const uint64_t *allowed, int32_t *gt)
{
    gt_job_t j = {h, queries, dim, nq, k, allowed, gt};
    qv_pool_parallel(pool, (int)((nq + 15) / 16), gt_task, &j);
}

/* ---- one measurement: every query once, single thread ---- */

static void run_ef(const qv_hnsw_t *h, const float *queries, uint32_t dim, size_t nq, size_t k, uint32_t ef,
                   const uint64_t *allowed, size_t allowed_count, const int32_t *gt, size_t gt_stride, result_t *r)
{
    qv_cand_t *out = malloc(k * sizeof(*out));
    size_t *found = malloc(nq * sizeof(size_t));
    qv_cand_t *all = malloc(nq * k * sizeof(*all));
    if (!out || !found || !all)
        die("out of memory");
    qv_hnsw_search_params_t sp = {.ef = ef, .allowed = allowed, .allowed_count = allowed_count, .plan = g_plan,
                                  .rerank = g_rerank};
    uint64_t ndist = 0, nrerank = 0;
    memset(r->paths, 0, sizeof r->paths);
    r->budget_hits = 0;
    double t = INFINITY, tc = INFINITY;
    for (int rep = 0; rep < REPEATS; rep++) {
        ndist = 0;
        nrerank = 0;
        memset(r->paths, 0, sizeof r->paths);
        r->budget_hits = 0;
        double t0 = now(), c0 = cpu_now();
        for (size_t q = 0; q < nq; q++) {
            qv_hnsw_stats_t st;
            int rc = qv_hnsw_search(h, queries + q * dim, k, &sp, all + q * k, &found[q], &st);
            if (rc)
                die("search failed: %s", qv_strerror(rc));
            ndist += st.ndist;
            nrerank += st.nrerank;
            r->paths[st.path]++;
            r->budget_hits += st.budget_hit;
        }
        double ti = now() - t0, ci = cpu_now() - c0;
        if (ti < t)
            t = ti;
        if (ci < tc)
            tc = ci;
    }
    /* recall@k: |returned ∩ true top k| / |true top k| (fewer than k true neighbours when few rows are allowed) */
    size_t hits = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        const int32_t *g = gt + q * gt_stride;
        for (size_t i = 0; i < k; i++) {
            if (g[i] < 0)
                continue;
            total++;
            for (size_t j = 0; j < found[q]; j++) {
                if (all[q * k + j].ref == (uint64_t)g[i]) {
                    hits++;
                    break;
                }
            }
        }
    }
    r->ef = ef;
    r->recall = total ? (double)hits / (double)total : 1.0;
    r->qps = t > 0 ? (double)nq / t : 0;
    r->qps_cpu = tc > 0 ? (double)nq / tc : 0;
    r->mean_dist = (double)ndist / (double)nq;
    r->mean_rerank = (double)nrerank / (double)nq;
    free(out);
    free(found);
    free(all);
}

/* ---- JSON (flat numbers and a few strings; written by hand, strings escaped) ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

typedef struct {
    const char *base, *query, *gt, *metric, *quant, *simd;
    uint32_t rerank;
    size_t n, nq;
    uint32_t dim, k, M, efc;
    int threads;
    double build_seconds, gt_seconds, load_seconds;
    bool hugepages;
    qv_hnsw_info_t info;
    double load1;
} run_info_t;

static void write_json(const char *path, const run_info_t *ri, const result_t *res, size_t nres)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    fputs("{\n  \"tool\": \"quiver-ann\",\n  \"base\": ", f);
    json_str(f, ri->base);
    fputs(",\n  \"query\": ", f);
    json_str(f, ri->query);
    fputs(",\n  \"gt\": ", f);
    json_str(f, ri->gt ? ri->gt : "computed");
    fputs(",\n  \"metric\": ", f);
    json_str(f, ri->metric);
    fputs(",\n  \"quant\": ", f);
    json_str(f, ri->quant);
    fprintf(f, ",\n  \"rerank\": %u", ri->rerank);
    fputs(",\n  \"simd\": ", f);
    json_str(f, ri->simd);
    fputs(",\n  \"quant_tier\": ", f);
    json_str(f, ri->info.quant_tier ? ri->info.quant_tier : "none");
    fprintf(f, ",\n  \"n\": %zu,\n  \"dim\": %u,\n  \"nq\": %zu,\n  \"k\": %u,\n  \"M\": %u,\n  \"efc\": %u,\n", ri->n,
            ri->dim, ri->nq, ri->k, ri->M, ri->efc);
    fprintf(f, "  \"build_threads\": %d,\n  \"build_seconds\": ", ri->threads);
    json_num(f, ri->build_seconds >= 0 ? ri->build_seconds : NAN);
    fputs(",\n  \"index_load_seconds\": ", f);
    json_num(f, ri->load_seconds >= 0 ? ri->load_seconds : NAN);
    fprintf(f, ",\n  \"hugepages\": %s", ri->hugepages ? "true" : "false");
    fputs(",\n  \"gt_seconds\": ", f);
    json_num(f, ri->gt_seconds);
    fputs(",\n  \"index_bytes_per_vector\": ", f);
    json_num(f, ri->info.bytes_per_vector);
    fprintf(f, ",\n  \"graph_bytes\": %zu,\n  \"quant_bytes\": %zu,\n  \"code_bytes_per_vector\": %zu,\n"
               "  \"vector_bytes_per_vector\": %zu,\n  \"max_level\": %u,\n"
               "  \"links\": %llu,\n  \"search_threads\": 1,\n  \"loadavg_1min_at_start\": ",
            ri->info.graph_bytes, ri->info.quant_bytes, ri->info.code_bytes, (size_t)ri->dim * sizeof(float),
            ri->info.max_level, (unsigned long long)ri->info.links);
    json_num(f, ri->load1);
    fputs(",\n  \"results\": [\n", f);
    static const char *path_names[4] = {"none", "graph", "twohop", "exact"};
    for (size_t i = 0; i < nres; i++) {
        const result_t *r = &res[i];
        fputs("    {\"selectivity\": ", f);
        json_num(f, r->sel);
        fprintf(f, ", \"allowed\": %zu, \"ef\": %u, \"recall\": ", r->allowed, r->ef);
        json_num(f, r->recall);
        fputs(", \"qps\": ", f);
        json_num(f, r->qps);
        fputs(", \"qps_cpu\": ", f);
        json_num(f, r->qps_cpu);
        fputs(", \"mean_dist_computations\": ", f);
        json_num(f, r->mean_dist);
        fputs(", \"mean_rerank_computations\": ", f);
        json_num(f, r->mean_rerank);
        fputs(", \"paths\": {", f);
        for (int p = 1; p < 4; p++)
            fprintf(f, "%s\"%s\": %zu", p > 1 ? ", " : "", path_names[p], r->paths[p]);
        fprintf(f, "}, \"budget_hits\": %zu}%s\n", r->budget_hits, i + 1 < nres ? "," : "");
    }
    fputs("  ]\n}\n", f);
    if (f != stdout && fclose(f) != 0)
        die("%s: write failed", path);
}

/* Moves the base matrix into 2 MiB-aligned memory advised for transparent huge pages: a graph walk reads vectors
 * at random, and with 4 KiB pages nearly every vector read also misses the TLB. This is what the storage layer
 * should do for sealed segments too; --no-hugepages measures without it. */
static float *to_hugepages(float *v, size_t nfloats)
{
    size_t bytes = nfloats * sizeof(float), align = (size_t)2 << 20;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (rounded == 0 || posix_memalign(&p, align, rounded) != 0)
        return v;
    madvise(p, rounded, MADV_HUGEPAGE);
    memcpy(p, v, bytes);
    free(v);
    return p;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int main(int argc, char **argv)
{
    const char *base_path = NULL, *query_path = NULL, *gt_path = NULL, *metric = NULL, *json = NULL;
    const char *quant = "none", *index_file = NULL;
    bool hugepages = true;
    long k = 10, M = 16, efc = 200, threads = sysconf(_SC_NPROCESSORS_ONLN);
    double efs[MAX_LIST] = {10, 20, 40, 80, 160, 320}, sels[MAX_LIST] = {1};
    size_t nef = 6, nsel = 1;
    uint64_t seed = 1;
    static const struct option opts[] = {
        {"base", required_argument, 0, 'b'},    {"query", required_argument, 0, 'q'},
        {"gt", required_argument, 0, 'g'},      {"metric", required_argument, 0, 'm'},
        {"k", required_argument, 0, 'k'},       {"M", required_argument, 0, 'M'},
        {"efc", required_argument, 0, 'c'},     {"ef", required_argument, 0, 'e'},
        {"quant", required_argument, 0, 'Q'},   {"threads", required_argument, 0, 't'},
        {"filter-selectivity", required_argument, 0, 'f'},
        {"seed", required_argument, 0, 's'},    {"json", required_argument, 0, 'j'},
        {"index-file", required_argument, 0, 'I'}, {"no-hugepages", no_argument, 0, 'H'},
        {"plan", required_argument, 0, 'P'},    {"rerank", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': base_path = optarg; break;
        case 'q': query_path = optarg; break;
        case 'g': gt_path = optarg; break;
        case 'm': metric = optarg; break;
        case 'k': k = parse_long(optarg, "k", 1, 4096); break;
        case 'M': M = parse_long(optarg, "M", 2, QV_HNSW_MAX_M); break;
        case 'c': efc = parse_long(optarg, "efc", 1, 1 << 20); break;
        case 'e': nef = parse_list(optarg, "ef", efs, 1, 1 << 20); break;
        case 'Q': quant = optarg; break;
        case 't': threads = parse_long(optarg, "threads", 1, 1024); break;
        case 'f': nsel = parse_list(optarg, "filter-selectivity", sels, 1e-9, 1); break;
        case 's': seed = (uint64_t)parse_long(optarg, "seed", 0, 1L << 62); break;
        case 'j': json = optarg; break;
        case 'I': index_file = optarg; break;
        case 'H': hugepages = false; break;
        case 'P':
            if (strcmp(optarg, "auto") == 0)
                g_plan = QV_HNSW_PLAN_AUTO;
            else if (strcmp(optarg, "graph") == 0)
                g_plan = QV_HNSW_PLAN_GRAPH;
            else if (strcmp(optarg, "exact") == 0)
                g_plan = QV_HNSW_PLAN_EXACT;
            else
                die("--plan: '%s' is not auto, graph or exact", optarg);
            break;
        case 'R': g_rerank = (uint32_t)parse_long(optarg, "rerank", 0, 1 << 20); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (!base_path || !query_path || !metric || !json) {
        usage(stderr);
        return 2;
    }
    qv_hnsw_quant_t hq = QV_HNSW_QUANT_NONE;
    uint32_t pq_m = 0;
    if (strcmp(quant, "sq8") == 0)
        hq = QV_HNSW_QUANT_SQ8;
    else if (strncmp(quant, "pq:", 3) == 0) {
        hq = QV_HNSW_QUANT_PQ;
        pq_m = (uint32_t)parse_long(quant + 3, "quant pq:M", 1, QV_HNSW_MAX_DIM);
    } else if (strcmp(quant, "none") != 0)
        die("--quant: '%s' is not none, sq8 or pq:M", quant);
    bool cosine = strcmp(metric, "cosine") == 0;
    qv_hnsw_metric_t hm;
    if (strcmp(metric, "l2") == 0)
        hm = QV_HNSW_L2;
    else if (strcmp(metric, "ip") == 0 || cosine)
        hm = QV_HNSW_IP;
    else
        die("--metric: '%s' is not l2, ip or cosine", metric);
    if (threads < 1)
        threads = 1;

    qv_dist_init(QV_SIMD_AUTO);
    char err[512];
    vec_f32_t base, query;
    if (vec_read_f32(base_path, &base, err, sizeof err) || vec_read_f32(query_path, &query, err, sizeof err))
        die("%s", err);
    if (base.dim != query.dim)
        die("base has dimension %u, queries %u", base.dim, query.dim);
    if (base.n == 0 || query.n == 0)
        die("empty base or query file");
    if (base.n > QV_HNSW_MAX_ROWS)
        die("too many base rows");
    if ((size_t)k > base.n)
        k = (long)base.n;
    if (hugepages)
        base.data = to_hugepages(base.data, base.n * base.dim);
    if (cosine) {
        for (size_t i = 0; i < base.n; i++)
            qv_normalize(base.data + i * base.dim, base.dim);
        for (size_t i = 0; i < query.n; i++)
            qv_normalize(query.data + i * query.dim, query.dim);
    }
    vec_i32_t gtf = {0};
    if (gt_path) {
        if (vec_read_i32(gt_path, &gtf, err, sizeof err))
            die("%s", err);
        if (gtf.n != query.n || gtf.dim < (uint32_t)k)
            die("%s: %zu rows x %u ids, need %zu rows x >= %ld ids", gt_path, gtf.n, gtf.dim, query.n, k);
        for (size_t i = 0; i < gtf.n * gtf.dim; i++)
            if (gtf.data[i] < -1 || gtf.data[i] >= (int64_t)base.n)
                die("%s: id %d out of range", gt_path, gtf.data[i]);
    }

    double loadavg[1] = {0};
    getloadavg(loadavg, 1);
    fprintf(stderr, "quiver-ann: base %zu x %u, %zu queries, metric %s, M=%ld efc=%ld, %ld build threads, simd %s, "
                    "load %.2f\n",
            base.n, base.dim, query.n, metric, M, efc, threads, qv_dist()->name, loadavg[0]);

    qv_pool_t *pool = threads > 1 ? qv_pool_create((int)threads - 1) : NULL;
    if (threads > 1 && !pool)
        die("cannot start %ld threads", threads);
    qv_hnsw_params_t hp = {.metric = hm, .M = (uint32_t)M, .ef_construction = (uint32_t)efc, .seed = seed,
                           .quant = hq, .pq_m = pq_m};
    qv_hnsw_t *h;
    qv_err_t qerr;
    if (qv_hnsw_create(&hp, base.data, base.n, base.dim, 0, &qerr, &h))
        die("%s", qerr.msg);
    double t0 = now(), load_s = -1, build_s = -1;
    int rc;
    FILE *cache = index_file ? fopen(index_file, "rb") : NULL;
    if (cache) {
        fseek(cache, 0, SEEK_END);
        long len = ftell(cache);
        fseek(cache, 0, SEEK_SET);
        uint8_t *blob = malloc(len > 0 ? (size_t)len : 1);
        if (!blob || len < 0 || fread(blob, 1, (size_t)len, cache) != (size_t)len)
            die("%s: cannot read", index_file);
        fclose(cache);
        qv_hnsw_free(h);
        rc = qv_hnsw_decode(blob, (size_t)len, base.data, base.n, base.dim, 0, &qerr, &h);
        free(blob);
        if (rc)
            die("%s: %s", index_file, qerr.msg);
        qv_hnsw_info_t li;
        qv_hnsw_info(h, &li);
        if (li.quant != hq || (hq == QV_HNSW_QUANT_PQ && li.pq_m != pq_m))
            die("%s: holds an index with another quantisation than --quant %s", index_file, quant);
        load_s = now() - t0;
        fprintf(stderr, "quiver-ann: loaded %s in %.3f s (no build)\n", index_file, load_s);
    } else {
        rc = qv_hnsw_build(h, pool);
        if (rc)
            die("build failed: %s", qv_strerror(rc));
        build_s = now() - t0;
        if (index_file) {
            qv_wbuf_t b;
            qv_wbuf_init(&b);
            FILE *f = fopen(index_file, "wb");
            if (qv_hnsw_encode(h, &b) || !f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0)
                die("%s: cannot save the index", index_file);
            qv_wbuf_free(&b);
        }
    }
    run_info_t ri = {.base = base_path, .query = query_path, .gt = gt_path, .metric = metric, .quant = quant,
                     .simd = qv_dist()->name, .rerank = g_rerank, .n = base.n, .nq = query.n, .dim = base.dim,
                     .k = (uint32_t)k,
                     .M = (uint32_t)M, .efc = (uint32_t)efc, .threads = (int)threads, .build_seconds = build_s,
                     .load_seconds = load_s, .hugepages = hugepages,
                     .load1 = loadavg[0]};
    qv_hnsw_info(h, &ri.info);
    if (build_s >= 0)
        fprintf(stderr, "quiver-ann: built in %.2f s on %ld threads, %.1f index bytes/vector (%zu code bytes, quant "
                        "%s, tier %s), max level %u\n",
                build_s, threads, ri.info.bytes_per_vector, ri.info.code_bytes, quant,
                ri.info.quant_tier ? ri.info.quant_tier : "-", ri.info.max_level);

    result_t *res = calloc(nsel * nef, sizeof(*res));
    int32_t *gt = malloc(query.n * (size_t)k * sizeof(int32_t));
    uint64_t *allowed = malloc(qv_bm_words(base.n) * sizeof(uint64_t));
    if (!res || !gt || !allowed)
        die("out of memory");
    size_t nres = 0;
    bool warmed = false;
    for (size_t si = 0; si < nsel; si++) {
        double sel = sels[si];
        const uint64_t *al = NULL;
        size_t count = base.n;
        if (sel < 1.0) {
            memset(allowed, 0, qv_bm_words(base.n) * sizeof(uint64_t));
            uint64_t st = seed * 1000003u + si;
            uint64_t thr = (uint64_t)(sel * 18446744073709551616.0);
            count = 0;
            for (size_t i = 0; i < base.n; i++) {
                if (splitmix(&st) < thr) {
                    qv_bm_set(allowed, i);
                    count++;
                }
            }
            al = allowed;
        }
        const int32_t *g;
        size_t gstride;
        double tg = now();
        if (!al && gt_path) {
            g = gtf.data;
            gstride = gtf.dim;
        } else {
            exact_gt(h, pool, query.data, query.dim, query.n, (size_t)k, al, gt);
            g = gt;
            gstride = (size_t)k;
        }
        tg = now() - tg;
        if (!al)
            ri.gt_seconds = tg;
        if (!warmed) {  /* touch the graph and vectors once before timing */
            result_t tmp;
            run_ef(h, query.data, query.dim, query.n < 500 ? query.n : 500, (size_t)k, (uint32_t)efs[0], al, count,
                   g, gstride, &tmp);
            warmed = true;
        }
        for (size_t ei = 0; ei < nef; ei++) {
            result_t *r = &res[nres++];
            r->sel = sel;
            r->allowed = count;
            r->gt_seconds = tg;
            run_ef(h, query.data, query.dim, query.n, (size_t)k, (uint32_t)efs[ei], al, count, g, gstride, r);
            fprintf(stderr, "  sel %-6g allowed %-8zu ef %-4u recall@%ld %.4f  %9.0f q/s (cpu %.0f)  %7.0f dists/q  "
                            "%4.0f reranked/q  paths g/2h/x %zu/%zu/%zu%s\n",
                    sel, count, r->ef, k, r->recall, r->qps, r->qps_cpu, r->mean_dist, r->mean_rerank, r->paths[1],
                    r->paths[2], r->paths[3],
                    r->budget_hits ? "  (budget hit)" : "");
        }
    }
    write_json(json, &ri, res, nres);
    qv_hnsw_free(h);
    qv_pool_destroy(pool);
    free(res);
    free(gt);
    free(allowed);
    free(base.data);
    free(query.data);
    free(gtf.data);
    return 0;
}
