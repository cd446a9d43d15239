/* Distance kernels: every tier this CPU runs against the scalar reference (and the reference against a double-precision
 * sum), exact answers on integer-valued inputs, unaligned pointers and vectors that end exactly at the end of their
 * allocation (so an over-read shows up under AddressSanitizer), qv_normalize, and tier selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "index/distance.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const qv_simd_t tiers[] = {QV_SIMD_SCALAR, QV_SIMD_AVX2, QV_SIMD_AVX512};
#define NTIERS (sizeof(tiers) / sizeof(tiers[0]))

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in [-1, 1). */
static float rng_unit(void)
{
    return (float)((double)(rng_next() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static bool cpu_has(qv_simd_t tier)
{
    __builtin_cpu_init();
    switch (tier) {
    case QV_SIMD_SCALAR: return true;
    case QV_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case QV_SIMD_AVX512: return __builtin_cpu_supports("avx512f");
    default: return false;
    }
}

static const char *tier_name(qv_simd_t tier)
{
    switch (tier) {
    case QV_SIMD_SCALAR: return "scalar";
    case QV_SIMD_AVX2: return "avx2";
    case QV_SIMD_AVX512: return "avx512";
    default: return "?";
    }
}

/* Must run first: before any qv_dist_init() the active table is the scalar one. */
static void test_default_is_scalar(void **state)
{
    (void)state;
    const qv_dist_table_t *t = qv_dist();
    assert_non_null(t);
    assert_ptr_equal(t, qv_dist_tier(QV_SIMD_SCALAR));
    assert_string_equal(t->name, "scalar");
    assert_ptr_equal(t->l2sq, qv_l2sq_ref);
    assert_ptr_equal(t->dot, qv_dot_ref);
}

/* qv_dist_tier() offers exactly the tiers the CPU has; print them so the test log says what was exercised. */
static void test_tiers_match_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTIERS; i++) {
        const qv_dist_table_t *t = qv_dist_tier(tiers[i]);
        bool has = cpu_has(tiers[i]);
        printf("[ INFO     ] tier %-6s %s\n", tier_name(tiers[i]), has ? "supported, tested" : "not supported");
        if (has) {
            assert_non_null(t);
            assert_non_null(t->l2sq);
            assert_non_null(t->dot);
            assert_string_equal(t->name, tier_name(tiers[i]));
        } else {
            assert_null(t);
        }
    }
    assert_null(qv_dist_tier((qv_simd_t)42));
}

/* Allocates room for dim + 1 floats and returns a pointer one float in, so the vector is not 32/64-byte aligned and
 * its last float is the last float of the allocation. */
static float *alloc_unaligned(size_t dim, float **base)
{
    *base = malloc((dim + 1) * sizeof(float));
    assert_non_null(*base);
    return *base + 1;
}

static void assert_close(const char *what, const char *tier, size_t dim, double got, double want, double mag)
{
    double tol = 1e-5 * mag + 1e-30;
    if (fabs(got - want) > tol) {
        fail_msg("%s tier=%s dim=%zu: got %.9g want %.9g (|diff| %.3g > tol %.3g)", what, tier, dim, got, want,
                 fabs(got - want), tol);
    }
}

static const size_t big_dims[] = {127, 128, 129, 384, 1000, 16384};

static void check_random_dim(size_t dim, float scale)
{
    float *abase, *bbase;
    float *a = alloc_unaligned(dim, &abase), *b = alloc_unaligned(dim, &bbase);
    assert_true(((uintptr_t)a % 32) != 0);
    for (size_t i = 0; i < dim; i++) {
        a[i] = rng_unit() * scale;
        b[i] = rng_unit() * scale;
    }
    double l2_exact = 0.0, dot_exact = 0.0, dot_mag = 0.0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - (double)b[i];
        l2_exact += d * d;
        dot_exact += (double)a[i] * (double)b[i];
        dot_mag += fabs((double)a[i] * (double)b[i]);
    }
    float l2_ref = qv_l2sq_ref(a, b, dim), dot_ref = qv_dot_ref(a, b, dim);
    assert_close("l2sq ref vs double", "scalar", dim, l2_ref, l2_exact, l2_exact);
    assert_close("dot ref vs double", "scalar", dim, dot_ref, dot_exact, dot_mag);

    for (size_t t = 0; t < NTIERS; t++) {
        const qv_dist_table_t *tab = qv_dist_tier(tiers[t]);
        if (!tab)
            continue;
        float l2 = tab->l2sq(a, b, dim), dot = tab->dot(a, b, dim);
        assert_close("l2sq vs ref", tab->name, dim, l2, l2_ref, l2_exact);
        assert_close("dot vs ref", tab->name, dim, dot, dot_ref, dot_mag);
        /* Symmetry: both kernels are symmetric in a and b up to rounding (exactly, for l2sq per lane). */
        assert_close("l2sq symmetric", tab->name, dim, tab->l2sq(b, a, dim), l2, l2_exact);
        assert_close("dot symmetric", tab->name, dim, tab->dot(b, a, dim), dot, dot_mag);
        /* A vector is at distance exactly 0 from itself, whatever the summation order. */
        assert_true(tab->l2sq(a, a, dim) == 0.0f);
    }
    free(abase);
    free(bbase);
}

static void test_random_small_dims(void **state)
{
    (void)state;
    for (size_t dim = 1; dim <= 70; dim++) {
        for (int rep = 0; rep < 4; rep++)
            check_random_dim(dim, 1.0f);
    }
}

static void test_random_big_dims(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(big_dims) / sizeof(big_dims[0]); i++) {
        check_random_dim(big_dims[i], 1.0f);
        check_random_dim(big_dims[i], 1000.0f);  /* relative tolerance holds at other magnitudes */
        check_random_dim(big_dims[i], 1e-3f);
    }
}

/* Integer-valued inputs whose sums stay below 2^24 are computed exactly by any summation order, so every tier must
 * return exactly the same value; catches a tail or a masked lane counted twice or dropped. */
static void test_exact_integer_values(void **state)
{
    (void)state;
    size_t dims[90];
    size_t ndims = 0;
    for (size_t d = 1; d <= 70; d++)
        dims[ndims++] = d;
    for (size_t i = 0; i < sizeof(big_dims) / sizeof(big_dims[0]); i++)
        dims[ndims++] = big_dims[i];

    for (size_t di = 0; di < ndims; di++) {
        size_t dim = dims[di];
        float *abase, *bbase;
        float *a = alloc_unaligned(dim, &abase), *b = alloc_unaligned(dim, &bbase);
        double l2_want = 0.0, dot_want = 0.0;
        for (size_t i = 0; i < dim; i++) {
            /* Position-dependent values so a lane read from the wrong index changes the sum. */
            a[i] = (float)((i % 7) + 1);
            b[i] = (float)((int)(i % 5) - 2);
            double d = (double)a[i] - (double)b[i];
            l2_want += d * d;
            dot_want += (double)a[i] * (double)b[i];
        }
        assert_true(l2_want < 16777216.0);
        for (size_t t = 0; t < NTIERS; t++) {
            const qv_dist_table_t *tab = qv_dist_tier(tiers[t]);
            if (!tab)
                continue;
            float l2 = tab->l2sq(a, b, dim), dot = tab->dot(a, b, dim);
            if (l2 != (float)l2_want || dot != (float)dot_want)
                fail_msg("tier=%s dim=%zu: l2sq %.1f (want %.1f) dot %.1f (want %.1f)", tab->name, dim, l2, l2_want,
                         dot, dot_want);
        }
        free(abase);
        free(bbase);
    }
}

/* dim 0 is outside the contract (dim >= 1) but must not read memory; every kernel returns 0. */
static void test_dim_zero(void **state)
{
    (void)state;
    float one = 1.0f;
    for (size_t t = 0; t < NTIERS; t++) {
        const qv_dist_table_t *tab = qv_dist_tier(tiers[t]);
        if (!tab)
            continue;
        assert_true(tab->l2sq(&one, &one, 0) == 0.0f);
        assert_true(tab->dot(&one, &one, 0) == 0.0f);
    }
}

static void test_normalize(void **state)
{
    (void)state;
    size_t dims[] = {1, 3, 17, 128, 1000};
    for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
        size_t dim = dims[di];
        float *v = malloc(dim * sizeof(float)), *orig = malloc(dim * sizeof(float));
        assert_non_null(v);
        assert_non_null(orig);
        double sq = 0.0;
        for (size_t i = 0; i < dim; i++) {
            orig[i] = v[i] = rng_unit() * 50.0f;
            sq += (double)v[i] * (double)v[i];
        }
        float norm = qv_normalize(v, dim);
        assert_true(fabs(norm - sqrt(sq)) <= 1e-6 * sqrt(sq));
        double after = 0.0;
        for (size_t i = 0; i < dim; i++) {
            after += (double)v[i] * (double)v[i];
            /* Same direction: scaling back gives the original component. */
            assert_true(fabs((double)v[i] * norm - orig[i]) <= 1e-5 * (fabs(orig[i]) + 1e-3));
        }
        assert_true(fabs(after - 1.0) <= 1e-5);
        /* A unit vector stays (almost) unchanged and reports norm ~1. */
        float again = qv_normalize(v, dim);
        assert_true(fabsf(again - 1.0f) <= 1e-5f);
        free(v);
        free(orig);
    }

    float neg = -4.0f;
    assert_true(qv_normalize(&neg, 1) == 4.0f);
    assert_true(neg == -1.0f);

    float v345[2] = {3.0f, 4.0f};
    assert_true(qv_normalize(v345, 2) == 5.0f);
    assert_true(fabsf(v345[0] - 0.6f) <= 1e-7f && fabsf(v345[1] - 0.8f) <= 1e-7f);

    float zero[5] = {0};
    assert_true(qv_normalize(zero, 5) == 0.0f);
    for (int i = 0; i < 5; i++)
        assert_true(zero[i] == 0.0f);

    /* Components whose float sum of squares would overflow still normalize. */
    float huge[4] = {1e38f, 1e38f, 1e38f, 1e38f};
    float hn = qv_normalize(huge, 4);
    assert_true(isfinite(hn) && fabsf(hn - 2e38f) <= 2e38f * 1e-6f);
    assert_true(fabsf(huge[0] - 0.5f) <= 1e-6f);
}

/* The highest tier the CPU has at or below want. */
static qv_simd_t expected_tier(qv_simd_t want)
{
    for (int t = (int)want; t > QV_SIMD_SCALAR; t--) {
        if (cpu_has((qv_simd_t)t))
            return (qv_simd_t)t;
    }
    return QV_SIMD_SCALAR;
}

static void test_init_forcing(void **state)
{
    (void)state;
    qv_dist_init(QV_SIMD_SCALAR);
    assert_ptr_equal(qv_dist(), qv_dist_tier(QV_SIMD_SCALAR));
    assert_string_equal(qv_dist()->name, "scalar");
    assert_ptr_equal(qv_dist()->l2sq, qv_l2sq_ref);

    for (size_t i = 0; i < NTIERS; i++) {
        qv_dist_init(tiers[i]);
        qv_simd_t want = expected_tier(tiers[i]);
        assert_ptr_equal(qv_dist(), qv_dist_tier(want));
        assert_string_equal(qv_dist()->name, tier_name(want));
    }

    qv_dist_init(QV_SIMD_AUTO);
    qv_simd_t best = expected_tier(QV_SIMD_AVX512);
    assert_ptr_equal(qv_dist(), qv_dist_tier(best));
    assert_ptr_equal(qv_dist(), qv_dist_tier(QV_SIMD_AUTO));
    assert_string_equal(qv_dist()->name, tier_name(best));

    /* Re-init is allowed and the active table computes correctly. */
    qv_dist_init(QV_SIMD_AUTO);
    float a[3] = {1, 2, 3}, b[3] = {4, 6, 3};
    assert_true(qv_dist()->l2sq(a, b, 3) == 25.0f);
    assert_true(qv_dist()->dot(a, b, 3) == 25.0f);

    qv_dist_init(QV_SIMD_SCALAR);
    assert_ptr_equal(qv_dist(), qv_dist_tier(QV_SIMD_SCALAR));
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_scalar),  /* must stay first */
        cmocka_unit_test(test_tiers_match_cpu),
        cmocka_unit_test(test_random_small_dims),
        cmocka_unit_test(test_random_big_dims),
        cmocka_unit_test(test_exact_integer_values),
        cmocka_unit_test(test_dim_zero),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_init_forcing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
