/* quiver-embed-bench: throughput of the built-in embedder (query/embed) on a file of texts.
 *
 *   quiver-embed-bench --model DIR --texts FILE [--batch 1,8,32] [--threads N] [--seconds S]
 *   quiver-embed-bench --model DIR --texts FILE --out VECS.fvecs [--threads N]
 *
 * With --out, every line is embedded once (32 at a time) and the vectors are written in the TEXMEX .fvecs format
 * (int32 dim, then dim float32 per row), in line order: bench/ann/minilm.sh makes the ANN benchmark's MiniLM data
 * set this way.
 * FILE has one text per line (UTF-8). For each batch size the texts are embedded in order, B at a time through
 * qv_embed_texts (tokenization included), cycling over the file until S seconds (default 3) have passed and every
 * text has been embedded at least once (a sorted file timed for S seconds alone would measure only its short end),
 * after one warm-up batch. Prints one line per batch size:
 *   batch=B threads=N texts=COUNT seconds=T texts_per_s=X texts_per_cpu_s=Y p50_ms=... p99_ms=...
 * (texts_per_cpu_s: per second of this process's CPU time, OpenBLAS threads included: steadier than wall time on a
 * shared machine; p50/p99: per-call latency).
 * bench/embed_bench.py runs this next to ONNX Runtime on the same texts and prints the ratios. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/embed/model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) /* this process, OpenBLAS's threads included */
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 0, cnt = 0;
    char **lines = NULL, *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 1024;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[cnt++] = strdup(line);
    }
    free(line);
    fclose(f);
    *n = cnt;
    return lines;
}

/* Embeds every text once and writes them as .fvecs. */
static int write_vectors(const qv_embed_model_t *m, char **texts, size_t n, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    const uint32_t dim = qv_embed_dim(m);
    float *out = malloc(32 * dim * sizeof(float));
    qv_err_t err;
    double t0 = now_s();
    for (size_t at = 0; at < n; at += 32) {
        size_t b = n - at < 32 ? n - at : 32;
        if (!out || qv_embed_texts(m, (const char *const *)texts + at, NULL, b, out, &err) != QV_OK) {
            fprintf(stderr, "embed: %s\n", out ? err.msg : "out of memory");
            fclose(f);
            return 1;
        }
        for (size_t i = 0; i < b; i++) {
            int32_t d = (int32_t)dim;
            if (fwrite(&d, 4, 1, f) != 1 || fwrite(out + i * dim, sizeof(float), dim, f) != dim) {
                perror(path);
                fclose(f);
                return 1;
            }
        }
        if ((at / 32) % 64 == 0)
            fprintf(stderr, "\r%zu / %zu texts, %.1f texts/s", at + b, n, (double)(at + b) / (now_s() - t0));
    }
    fprintf(stderr, "\n");
    free(out);
    return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *file = NULL, *batches = "1,8,32", *outpath = NULL;
    int threads = 0;
    double seconds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--texts"))
            file = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batches = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            outpath = argv[i + 1];
    }
    if (!dir || !file) {
        fprintf(stderr, "usage: %s --model DIR --texts FILE [--batch 1,8,32] [--threads N] [--seconds S]\n", argv[0]);
        return 2;
    }
    size_t n;
    char **texts = read_lines(file, &n);
    if (!texts || n == 0) {
        fprintf(stderr, "%s: no texts\n", file);
        return 1;
    }
    qv_embed_opts_t opts = {.threads = threads};
    qv_embed_model_t *m;
    qv_err_t err;
    double t0 = now_s();
    if (qv_embed_model_load_opts(dir, &opts, &m, &err) != QV_OK) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    printf("load_ms=%.1f\n", (now_s() - t0) * 1e3);
    if (outpath)
        return write_vectors(m, texts, n, outpath);
    char *spec = strdup(batches);
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
        size_t b = (size_t)atoi(tok);
        if (b == 0 || b > n)
            continue;
        float *out = malloc(b * qv_embed_dim(m) * sizeof(float));
        size_t maxcalls = 1 << 20, calls = 0, done = 0, at = 0;
        double *lat = malloc(maxcalls * sizeof *lat);
        if (qv_embed_texts(m, (const char *const *)texts, NULL, b, out, &err) != QV_OK) { /* warm-up */
            fprintf(stderr, "embed: %s\n", err.msg);
            return 1;
        }
        double start = now_s(), end = start, cpu0 = cpu_s();
        while ((end - start < seconds || done + b <= n) && calls < maxcalls) {
            if (at + b > n)
                at = 0;
            double c0 = now_s();
            if (qv_embed_texts(m, (const char *const *)texts + at, NULL, b, out, &err) != QV_OK) {
                fprintf(stderr, "embed: %s\n", err.msg);
                return 1;
            }
            end = now_s();
            lat[calls++] = end - c0;
            done += b;
            at += b;
        }
        double cpu = cpu_s() - cpu0;
        qsort(lat, calls, sizeof *lat, cmp_double);
        printf("batch=%zu threads=%d texts=%zu seconds=%.3f texts_per_s=%.2f texts_per_cpu_s=%.2f p50_ms=%.3f "
               "p99_ms=%.3f\n",
               b, threads, done, end - start, (double)done / (end - start), (double)done / cpu, lat[calls / 2] * 1e3,
               lat[(size_t)((double)calls * 0.99)] * 1e3);
        fflush(stdout);
        free(lat);
        free(out);
    }
    free(spec);
    qv_embed_model_free(m);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    return 0;
}
