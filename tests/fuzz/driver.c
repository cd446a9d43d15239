/* Standalone driver for the fuzz targets, for builds without libFuzzer (gcc, the ctest runs).
 *
 *   <target> [-n RUNS] [-t SECS] [-s SEED] [-m MAXLEN]
 *                                              run every seed, then RUNS mutated inputs (default 20000, seed 1),
 *                                              and more until SECS seconds have passed (default 0)
 *   <target> -w DIR                            write the seeds to DIR/seed-NNN (a libFuzzer starting corpus)
 *   <target> FILE...                           run the given inputs (reproducing a crash)
 *
 * Mutations are applied 1 to 6 at a time to a seed or, a quarter of the time, to an earlier mutant (so damage can
 * accumulate): bit flips, random and "interesting" bytes, 2/4/8-byte little-endian integers set to boundary values,
 * small additions, truncation, insertion, deletion and duplication of ranges, and splices with another seed. Every
 * input is passed in a buffer of exactly its size, so a read past the end is caught by AddressSanitizer. The series is
 * fixed by the seed: a failure reproduces with the same arguments, and the input that failed is written to
 * ./fuzz-crash-<target>.bin by a death callback (sanitizers) or a signal handler. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

typedef struct {
    uint8_t *data;
    size_t len;
} input_t;

typedef struct {
    input_t *items;
    size_t n, cap;
} corpus_t;

static void corpus_add(void *ctx, const uint8_t *data, size_t size)
{
    corpus_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = realloc(c->items, c->cap * sizeof *c->items);
        if (!c->items)
            abort();
    }
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    if (size)
        memcpy(copy, data, size);
    c->items[c->n++] = (input_t){copy, size};
}

static void corpus_free(corpus_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].data);
    free(c->items);
}

/* ---- reporting the failing input ---- */

static const char *prog_name = "fuzz";
static const uint8_t *current;
static size_t current_len;
static volatile sig_atomic_t dumped;

static void dump_current(void)
{
    if (dumped || !current)
        return;
    dumped = 1;
    char path[256];
    snprintf(path, sizeof path, "fuzz-crash-%s.bin", prog_name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(current, 1, current_len, f);
        fclose(f);
        fprintf(stderr, "%s: failing input (%zu bytes) written to %s\n", prog_name, current_len, path);
    }
}

static void on_signal(int sig)
{
    dump_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void run_one(const uint8_t *data, size_t len)
{
    uint8_t *exact = malloc(len ? len : 1); /* exactly len bytes: overreads are caught */
    if (!exact)
        abort();
    if (len)
        memcpy(exact, data, len);
    current = exact;
    current_len = len;
    LLVMFuzzerTestOneInput(len ? exact : NULL, len);
    current = NULL;
    free(exact);
}

/* ---- mutations ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static const uint64_t interesting[] = {
    0, 1, 2, 3, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x101, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xffff, 0x10000, 4096, 4097,
    10000, 10001, 16384, 16385, 0x7fffffff, 0x80000000u, 0xffffffffu, 0x100000000ull, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0xffffffffffffffffull, 0x7fc00000 /* NaN as f32 */, 0x7ff8000000000000ull /* NaN f64 */,
    0x7f800000 /* inf f32 */, 256, 257,
};
#define NINTERESTING (sizeof interesting / sizeof interesting[0])

/* Applies one mutation to buf (holding *len bytes of room cap), using other for splices. */
static void mutate(uint8_t *buf, size_t *len, size_t cap, const corpus_t *seeds)
{
    size_t n = *len;
    switch (below(12)) {
    case 0: /* flip a bit */
        if (n)
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        break;
    case 1: /* random byte */
        if (n)
            buf[below(n)] = (uint8_t)rnd();
        break;
    case 2: { /* interesting byte */
        static const uint8_t b[] = {0, 1, 2, 0x7f, 0x80, 0xfe, 0xff};
        if (n)
            buf[below(n)] = b[below(sizeof b)];
        break;
    }
    case 3:
    case 4: { /* interesting 2/4/8-byte integer, possibly +-1 */
        size_t w = (size_t)1 << (1 + below(3));
        if (n >= w) {
            uint64_t v = interesting[below(NINTERESTING)] + (uint64_t)((int)below(3) - 1);
            memcpy(buf + below(n - w + 1), &v, w);
        }
        break;
    }
    case 5: /* small addition to a byte or a u32 */
        if (n >= 4 && below(2)) {
            size_t at = below(n - 3);
            uint32_t v;
            memcpy(&v, buf + at, 4);
            v += (uint32_t)((int)below(33) - 16);
            memcpy(buf + at, &v, 4);
        } else if (n) {
            buf[below(n)] += (uint8_t)((int)below(33) - 16);
        }
        break;
    case 6: /* truncate */
        *len = below(n + 1);
        break;
    case 7: { /* insert random bytes */
        size_t k = 1 + below(16);
        if (n + k > cap)
            break;
        size_t at = below(n + 1);
        memmove(buf + at + k, buf + at, n - at);
        for (size_t i = 0; i < k; i++)
            buf[at + i] = (uint8_t)rnd();
        *len = n + k;
        break;
    }
    case 8: { /* delete a range */
        if (!n)
            break;
        size_t at = below(n), k = 1 + below(n - at < 64 ? n - at : 64);
        memmove(buf + at, buf + at + k, n - at - k);
        *len = n - k;
        break;
    }
    case 9: { /* duplicate a range to another place */
        if (!n)
            break;
        size_t from = below(n), k = 1 + below(n - from < 64 ? n - from : 64);
        if (n + k > cap)
            break;
        size_t at = below(n + 1);
        uint8_t tmp[64];
        memcpy(tmp, buf + from, k);
        memmove(buf + at + k, buf + at, n - at);
        memcpy(buf + at, tmp, k);
        *len = n + k;
        break;
    }
    case 10: { /* splice: our prefix, another seed's suffix */
        const input_t *o = &seeds->items[below(seeds->n)];
        size_t keep = below(n + 1), from = below(o->len + 1), take = o->len - from;
        if (keep + take > cap)
            take = cap - keep;
        memcpy(buf + keep, o->data + from, take);
        *len = keep + take;
        break;
    }
    default: /* overwrite a range with bytes from another seed at the same offset (structure-preserving) */
    {
        const input_t *o = &seeds->items[below(seeds->n)];
        if (!n || !o->len)
            break;
        size_t at = below(n < o->len ? n : o->len), k = 1 + below(32);
        if (at + k > n)
            k = n - at;
        if (at + k > o->len)
            k = o->len - at;
        memcpy(buf + at, o->data + at, k);
        break;
    }
    }
}

static double elapsed(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int write_seeds(const corpus_t *seeds, const char *dir)
{
    mkdir(dir, 0755);
    for (size_t i = 0; i < seeds->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%03zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds->items[i].data, 1, seeds->items[i].len, f) != seeds->items[i].len) {
            fprintf(stderr, "%s: cannot write %s: %s\n", prog_name, path, strerror(errno));
            return 1;
        }
        fclose(f);
    }
    printf("%s: wrote %zu seeds to %s\n", prog_name, seeds->n, dir);
    return 0;
}

static int run_files(int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "%s: cannot open %s\n", prog_name, argv[i]);
            return 1;
        }
        corpus_t one = {0};
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        corpus_add(&one, buf, n);
        free(buf);
        run_one(one.items[0].data, one.items[0].len);
        printf("%s: %s (%zu bytes) ok\n", prog_name, argv[i], n);
        corpus_free(&one);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    prog_name = slash ? slash + 1 : argv[0];
    long runs = 20000;
    double budget = 0;
    uint64_t seed = 1;
    size_t maxlen = 1 << 16;
    const char *seed_dir = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:s:m:w:")) != -1) {
        switch (opt) {
        case 'n': runs = strtol(optarg, NULL, 10); break;
        case 't': budget = strtod(optarg, NULL); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'm': maxlen = strtoull(optarg, NULL, 10); break;
        case 'w': seed_dir = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-n runs] [-t seconds] [-s seed] [-m maxlen] [-w seed-dir] [input files...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(dump_current);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);

    corpus_t seeds = {0};
    qv_fuzz_seeds(corpus_add, &seeds);
    if (seeds.n == 0) {
        fprintf(stderr, "%s: no seeds\n", prog_name);
        return 1;
    }
    if (seed_dir || optind < argc) { /* seeds freed here too, or LeakSanitizer fails a reproducing run */
        int rc = seed_dir ? write_seeds(&seeds, seed_dir) : run_files(argc, argv, optind);
        corpus_free(&seeds);
        return rc;
    }

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t maxseed = 0;
    for (size_t i = 0; i < seeds.n; i++) {
        run_one(seeds.items[i].data, seeds.items[i].len);
        if (seeds.items[i].len > maxseed)
            maxseed = seeds.items[i].len;
    }
    size_t cap = maxseed * 2 + 1024 < maxlen ? maxseed * 2 + 1024 : maxlen;
    uint8_t *buf = malloc(cap), *prev = malloc(cap);
    size_t prev_len = 0, longest = 0;
    rng_state = seed;
    long it;
    for (it = 0; it < runs || (budget > 0 && (it % 256 != 0 || elapsed(&t0) < budget)); it++) {
        size_t len;
        if (prev_len && below(4) == 0) { /* keep working on the previous mutant */
            memcpy(buf, prev, prev_len);
            len = prev_len;
        } else {
            const input_t *s = &seeds.items[below(seeds.n)];
            len = s->len < cap ? s->len : cap;
            memcpy(buf, s->data, len);
        }
        for (size_t m = 1 + below(6); m > 0; m--)
            mutate(buf, &len, cap, &seeds);
        run_one(buf, len);
        memcpy(prev, buf, len);
        prev_len = len;
        if (len > longest)
            longest = len;
    }
    printf("%s: %zu seeds + %ld mutated inputs (-n %ld -s %llu reproduces; longest %zu bytes) in %.2f s: no failures\n",
           prog_name, seeds.n, it, it, (unsigned long long)seed, longest, elapsed(&t0));
    free(buf);
    free(prev);
    corpus_free(&seeds);
    return 0;
}
