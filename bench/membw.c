/* membw: the machine's sequential read bandwidth, for comparing an exact scan's bytes/s against.
 *
 * Allocates a buffer (default 1 GiB) of floats, writes it once (so every page is backed), then for each thread count
 * asked for runs `passes` timed passes; in a pass each thread sums a contiguous 1/T slice of the buffer with four
 * 16-float accumulators (GCC vector extensions: vectorized at -O2 without -ffast-math, and a sum the compiler cannot
 * drop because it is printed). Bandwidth of a pass = buffer bytes / (time from the common start to the last thread's
 * end). Prints one JSON object per thread count on stdout: {"threads":T,"bytes":B,"best_gb_s":..,"passes_gb_s":[..]}
 * (GB = 1e9 bytes).
 *
 * Build: gcc -O2 -march=native -pthread -o membw membw.c     Usage: membw [MiB] [passes] [threads...]
 * (defaults: 1024 MiB, 5 passes, threads 1 2). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float v16f __attribute__((vector_size(64)));

typedef struct {
    const float *begin;
    size_t n; /* floats, a multiple of 64 */
    pthread_barrier_t *start;
    double sum;
    struct timespec end;
} slice_t;

static double now_s(const struct timespec *t)
{
    return (double)t->tv_sec + (double)t->tv_nsec * 1e-9;
}

static void *sum_slice(void *arg)
{
    slice_t *s = arg;
    pthread_barrier_wait(s->start);
    v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const v16f *p = (const v16f *)s->begin;
    for (size_t i = 0; i < s->n / 16; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
    }
    v16f a = a0 + a1 + a2 + a3;
    double sum = 0;
    for (int i = 0; i < 16; i++)
        sum += a[i];
    s->sum = sum;
    clock_gettime(CLOCK_MONOTONIC, &s->end);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    int tlist[64], nt = 0;
    for (int i = 3; i < argc && nt < 64; i++)
        tlist[nt++] = atoi(argv[i]);
    if (nt == 0) {
        tlist[nt++] = 1;
        tlist[nt++] = 2;
    }
    if (mib == 0 || passes <= 0) {
        fprintf(stderr, "usage: membw [MiB] [passes] [threads...]\n");
        return 2;
    }
    size_t bytes = mib << 20, nfloat = bytes / sizeof(float);
    float *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < nfloat; i++)
        buf[i] = (float)(i & 1023) * 0.001f;

    double checksum = 0;
    for (int ti = 0; ti < nt; ti++) {
        int T = tlist[ti];
        if (T < 1 || T > 256) {
            fprintf(stderr, "membw: bad thread count %d\n", T);
            return 2;
        }
        double best = 0, gbs[64];
        int np = passes > 64 ? 64 : passes;
        for (int p = 0; p < np; p++) {
            pthread_barrier_t start;
            pthread_barrier_init(&start, NULL, (unsigned)T + 1);
            slice_t sl[256];
            pthread_t th[256];
            size_t chunk = (nfloat / (size_t)T) & ~(size_t)63;
            for (int t = 0; t < T; t++) {
                sl[t] = (slice_t){.begin = buf + (size_t)t * chunk,
                                  .n = t == T - 1 ? ((nfloat - (size_t)t * chunk) & ~(size_t)63) : chunk,
                                  .start = &start};
                if (pthread_create(&th[t], NULL, sum_slice, &sl[t]) != 0) {
                    fprintf(stderr, "membw: pthread_create failed\n");
                    return 1;
                }
            }
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            pthread_barrier_wait(&start);
            double last = 0;
            size_t read = 0;
            for (int t = 0; t < T; t++) {
                pthread_join(th[t], NULL);
                checksum += sl[t].sum;
                read += sl[t].n * sizeof(float);
                if (now_s(&sl[t].end) > last)
                    last = now_s(&sl[t].end);
            }
            pthread_barrier_destroy(&start);
            gbs[p] = (double)read / (last - now_s(&t0)) / 1e9;
            if (gbs[p] > best)
                best = gbs[p];
        }
        printf("{\"threads\": %d, \"bytes\": %zu, \"best_gb_s\": %.3f, \"passes_gb_s\": [", T, bytes, best);
        for (int p = 0; p < np; p++)
            printf("%s%.3f", p ? ", " : "", gbs[p]);
        printf("]}\n");
    }
    fprintf(stderr, "membw: checksum %g\n", checksum);
    free(buf);
    return 0;
}
