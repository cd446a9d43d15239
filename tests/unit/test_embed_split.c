/* The embedder's projections (query/embed: k->gemm_nt and k->gemm_packed in every kernel tier) and its threads
 * (pool.c). No model files needed; built under ThreadSanitizer too (tools/test.sh).
 *   - gemm_nt of every tier this CPU has (generic, AVX2, AVX-512) against a double-precision product: rows 1..14 (the
 *     row blocks and their tails), outputs 1..13 (the 4-output blocks and their tail), k = 8, 40, 48 and 392, also
 *     k = 5 and 21 for the generic tier (AVX2 takes multiples of 8 only), overwrite and accumulate, row strides wider
 *     than k, and nothing written outside the rows x outputs asked for;
 *   - gemm_packed (AVX-512) the same way over weights packed by qv__embed_pack_w: rows 1..26 (two 12-row blocks and
 *     every tail), outputs 1..70 (whole 32-wide panels and partial ones), k = 1, 5, 40 and 384, and a range that
 *     starts at the second panel;
 *   - qv__embed_task_range cuts n items into parts that cover them exactly once, in order, at multiples of unit;
 *   - qv__embed_pool_for with 0 to 3 helpers runs every task exactly once, with worker indices in range, over many
 *     back-to-back jobs (the forward pass's pattern) and from several callers at once; helpers < 1 is "no pool",
 *     and a pool that never ran a job starts and stops.
 * That a pass split across threads gives the same embeddings as one thread is tested on the real model
 * (test_embed.c, test_threads_bit_identical). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "query/embed/embed_int.h"

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rnd(uint64_t *s) { return (float)((int)(rng_next(s) % 2001) - 1000) / 500.0f; }

/* the tiers this CPU can run */
static int tiers(const qv_embed_kernels_t **out)
{
    int n = 0;
    out[n++] = &qv__embed_kernels_generic;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        out[n++] = &qv__embed_kernels_avx2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
            out[n++] = &qv__embed_kernels_avx512;
    }
#endif
    return n;
}

enum { MAXR = 14, MAXN = 13, LDC = 17 };

/* A cell of C that started as `init`: with xr and wr (a row of X and of W), their dot product (added to init when
 * acc), else init untouched. Float sums of k products must come within a few ulps of the sum of magnitudes. */
static bool cell_ok(float got, double init, const float *xr, const float *wr, size_t k, int acc, double *want)
{
    double ref = init, mag = 0;
    if (xr) {
        double dot = 0;
        for (size_t i = 0; i < k; i++) {
            double p = (double)xr[i] * wr[i];
            dot += p;
            mag += fabs(p);
        }
        ref = acc ? ref + dot : dot;
    }
    *want = ref;
    return fabs(got - ref) <= 1e-6 * (mag + fabs(ref)) + 1e-6;
}

static void check_tier(const qv_embed_kernels_t *t, size_t k, size_t ldx, uint64_t *seed)
{
    float *x = malloc(MAXR * ldx * sizeof(float)), *w = malloc(MAXN * k * sizeof(float));
    for (size_t i = 0; i < MAXR * ldx; i++)
        x[i] = rnd(seed);
    for (size_t i = 0; i < MAXN * k; i++)
        w[i] = rnd(seed);
    for (size_t rows = 1; rows <= MAXR; rows++)
        for (size_t n = 1; n <= MAXN; n++)
            for (int acc = 0; acc < 2; acc++) {
                float c[(MAXR + 1) * LDC];
                for (size_t i = 0; i < (MAXR + 1) * LDC; i++)
                    c[i] = (float)i;
                t->gemm_nt(rows, n, k, x, ldx, w, c, LDC, acc);
                for (size_t r = 0; r <= MAXR; r++)
                    for (size_t o = 0; o < LDC; o++) {
                        bool in = r < rows && o < n;
                        double ref;
                        if (!cell_ok(c[r * LDC + o], (double)(r * LDC + o), in ? x + r * ldx : NULL,
                                     in ? w + o * k : NULL, k, acc, &ref))
                            fail_msg("%s: rows %zu n %zu k %zu acc %d: c[%zu][%zu] = %.9g, want %.9g", t->name, rows, n,
                                     k, acc, r, o, (double)c[r * LDC + o], ref);
                    }
            }
    free(x);
    free(w);
}

static void test_tiers_against_double(void **state)
{
    (void)state;
    const qv_embed_kernels_t *t[3];
    int nt = tiers(t);
    print_message("tiers on this CPU: %d (best: %s)\n", nt, t[nt - 1]->name);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    static const size_t ks[] = {8, 40, 48, 392};
    for (int i = 0; i < nt; i++)
        for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
            check_tier(t[i], ks[j], ks[j], &seed);
            check_tier(t[i], ks[j], ks[j] + 3, &seed);
        }
    check_tier(t[0], 5, 5, &seed); /* any k: the generic tier */
    check_tier(t[0], 21, 23, &seed);
}

/* gemm_packed over outputs [o0, o0 + n) of a W of `out` rows, against double */
static void check_packed(const qv_embed_kernels_t *t, size_t rows, size_t out, size_t o0, size_t n, size_t k,
                         uint64_t *seed)
{
    const size_t ldx = k + 1, ldc = out + 3;
    float *x = malloc(rows * ldx * sizeof(float)), *w = malloc(out * k * sizeof(float));
    float *wp = malloc(qv__embed_packed_floats(out, k) * sizeof(float)), *c = malloc((rows + 1) * ldc * sizeof(float));
    for (size_t i = 0; i < rows * ldx; i++)
        x[i] = rnd(seed);
    for (size_t i = 0; i < out * k; i++)
        w[i] = rnd(seed);
    qv__embed_pack_w(w, out, k, wp);
    for (int acc = 0; acc < 2; acc++) {
        for (size_t i = 0; i < (rows + 1) * ldc; i++)
            c[i] = (float)i;
        t->gemm_packed(rows, n, k, x, ldx, wp + o0 * k, c + o0, ldc, acc);
        for (size_t r = 0; r <= rows; r++)
            for (size_t o = 0; o < ldc; o++) {
                bool in = r < rows && o >= o0 && o < o0 + n;
                double ref;
                if (!cell_ok(c[r * ldc + o], (double)(r * ldc + o), in ? x + r * ldx : NULL, in ? w + o * k : NULL,
                             k, acc, &ref))
                    fail_msg("%s packed: rows %zu out %zu [%zu, +%zu) k %zu acc %d: c[%zu][%zu] = %.9g, want %.9g",
                             t->name, rows, out, o0, n, k, acc, r, o, (double)c[r * ldc + o], ref);
            }
    }
    free(x);
    free(w);
    free(wp);
    free(c);
}

static void test_packed_against_double(void **state)
{
    (void)state;
    const qv_embed_kernels_t *t[3];
    int nt = tiers(t), tested = 0;
    uint64_t seed = 77;
    for (int i = 0; i < nt; i++) {
        if (!t[i]->gemm_packed)
            continue;
        tested++;
        static const size_t ks[] = {1, 5, 40};
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t rows = 1; rows <= 26; rows++)
                for (size_t out = 1; out <= 70; out += (out < 34 ? 1 : 12))
                    check_packed(t[i], rows, out, 0, out, ks[a], &seed);
        check_packed(t[i], 22, 1152, 0, 1152, 384, &seed); /* a real QKV shape */
        check_packed(t[i], 13, 100, 32, 68, 40, &seed);    /* a range that starts at the second panel */
    }
    print_message("tiers with a packed projection: %d\n", tested);
    /* the packing itself: panel-major, input-major inside a panel, zero past the last output */
    float w[3 * 2] = {1, 2, 3, 4, 5, 6}, wp[QV_PACK_NR * 2];
    assert_int_equal(qv__embed_packed_floats(3, 2), QV_PACK_NR * 2);
    qv__embed_pack_w(w, 3, 2, wp);
    assert_true(wp[0] == 1 && wp[1] == 3 && wp[2] == 5 && wp[3] == 0);
    assert_true(wp[QV_PACK_NR] == 2 && wp[QV_PACK_NR + 1] == 4 && wp[QV_PACK_NR + 2] == 6 && wp[QV_PACK_NR + 3] == 0);
}

typedef struct {
    int ntasks, threads;
    int *runs;          /* per task: how many times it ran */
    int bad_worker;     /* a worker index out of range was seen */
} count_job_t;

static void count_task(void *arg, int task, int worker)
{
    count_job_t *j = arg;
    __atomic_fetch_add(&j->runs[task], 1, __ATOMIC_RELAXED);
    if (worker < 0 || worker >= j->threads)
        __atomic_store_n(&j->bad_worker, 1, __ATOMIC_RELAXED);
}

typedef struct {
    qv_embed_pool_t *p;
    int jobs, failures;
} for_caller_t;

static void *for_caller_main(void *arg)
{
    for_caller_t *c = arg;
    for (int it = 0; it < c->jobs; it++) {
        int ntasks = 1 + it % 37, runs[37] = {0};
        count_job_t j = {ntasks, qv__embed_pool_threads(c->p), runs, 0};
        qv__embed_pool_for(c->p, ntasks, count_task, &j);
        for (int t = 0; t < ntasks; t++)
            if (runs[t] != 1)
                c->failures++;
        if (j.bad_worker)
            c->failures++;
    }
    return NULL;
}

static void test_task_range(void **state)
{
    (void)state;
    static const size_t units[] = {1, 4, 16, 32};
    for (size_t u = 0; u < sizeof units / sizeof *units; u++)
        for (size_t n = 0; n <= 200; n++)
            for (size_t parts = 1; parts <= 9; parts++) {
                size_t next = 0;
                for (int t = 0; t < (int)parts; t++) {
                    size_t a, b;
                    qv__embed_task_range(n, units[u], t, parts, &a, &b);
                    assert_true(a == next && a <= b && b <= n);
                    assert_true(a % units[u] == 0 && (b % units[u] == 0 || b == n));
                    next = b;
                }
                assert_true(next == n);
            }
}

static void test_pool_for(void **state)
{
    (void)state;
    qv_embed_pool_t *none = (qv_embed_pool_t *)1;
    assert_int_equal(qv__embed_pool_start(0, &none), 0); /* no helpers: no pool */
    assert_null(none);
    assert_int_equal(qv__embed_pool_threads(NULL), 1);
    qv_embed_pool_t *idle;
    assert_int_equal(qv__embed_pool_start(2, &idle), 0); /* started and stopped without a job */
    qv__embed_pool_stop(idle);
    for (int helpers = 0; helpers <= 3; helpers++) {
        qv_embed_pool_t *p;
        assert_int_equal(qv__embed_pool_start(helpers, &p), 0);
        assert_int_equal(qv__embed_pool_threads(p), helpers + 1);
        for_caller_t one = {p, 3000, 0};
        for_caller_main(&one);
        assert_int_equal(one.failures, 0);
        pthread_t th[3];
        for_caller_t c[3];
        for (int i = 0; i < 3; i++) {
            c[i] = (for_caller_t){p, 500, 0};
            assert_int_equal(pthread_create(&th[i], NULL, for_caller_main, &c[i]), 0);
        }
        for (int i = 0; i < 3; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(c[i].failures, 0);
        }
        qv__embed_pool_stop(p);
    }
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers_against_double),
        cmocka_unit_test(test_packed_against_double),
        cmocka_unit_test(test_task_range),
        cmocka_unit_test(test_pool_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
