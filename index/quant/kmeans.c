/* k-means for the PQ trainer: k-means++ seeding (Arthur & Vassilvitskii, "k-means++: the advantages of careful
 * seeding", SODA 2007) and Lloyd iterations.
 *
 * Seeding: the first centroid is a uniformly drawn point, each next one a point drawn with probability proportional
 * to D(x)^2, its squared distance to the nearest centroid chosen so far (kept per point and updated after each
 * pick, O(n k d) in all). With all D(x) = 0 (fewer distinct points than k) the surplus centroids repeat points in
 * order; they then stay empty.
 *
 * Lloyd: assign every point to its nearest centroid (ties to the lower index), recompute each centroid as the mean
 * of its points (sums in double, in point order, so the result is a function of the input and the seed only), and
 * stop when at most 0.1% of the assignments change (none, for small n) or after `iters` updates. The objective
 * (sum of squared distances to the assigned centroid) never increases from one assignment to the next, except after
 * an empty-cluster split: an empty cluster takes a copy of the largest cluster's centroid, both nudged apart by
 * 1/1024 of each coordinate's magnitude in opposite directions (faiss's rule), so the next assignment splits that
 * cluster. The assignment step computes a
 * point's distances to all k centroids from a transposed copy of the centroids (d rows of k), so the inner loop
 * runs over k consecutive floats and the compiler vectorises it. */
#include "index/quant/quant_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next_u64(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) / 9007199254740992.0; /* [0, 1) */ }

static float l2sq(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
    for (size_t i = 0; i < d; i++) {
        float e = a[i] - b[i];
        s += e * e;
    }
    return s;
}

/* Nearest centroid of every point; returns the objective, counts changed assignments. The body is compiled three
 * times (plain, AVX2, AVX-512 via target attributes; qv_kmeans picks the tier qv_dist() has), so the loops over k
 * centroids vectorise at the widest width the CPU has. The argmin is two passes, a min over 8 partial minimums
 * (vectorisable; `x < m ? x : m` is exactly minps) and then the first index holding that value: the same answer as
 * a running strict-less scan (ties to the lower index) without its serial compare-and-move chain, which took more
 * time than the distances. */
static inline __attribute__((always_inline)) double assign_body(const float *x, size_t n, size_t d, size_t k,
                                                                const float *ct, float *dist, uint32_t *assign,
                                                                size_t *changed)
{
    double obj = 0.0;
    size_t ch = 0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float *restrict dd = dist;
        for (size_t c = 0; c < k; c++)
            dd[c] = 0.0f;
        for (size_t t = 0; t < d; t++) {
            const float xv = xi[t];
            const float *restrict row = ct + t * k;
            for (size_t c = 0; c < k; c++) {
                float e = xv - row[c];
                dd[c] += e * e;
            }
        }
        uint32_t best = qv__argmin(dd, k);
        ch += assign[i] != best;
        assign[i] = best;
        obj += dd[best];
    }
    *changed = ch;
    return obj;
}

static double assign_ref(const float *x, size_t n, size_t d, size_t k, const float *ct, float *dist,
                         uint32_t *assign, size_t *changed)
{
    return assign_body(x, n, d, k, ct, dist, assign, changed);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static double assign_avx2(const float *x, size_t n, size_t d, size_t k,
                                                                const float *ct, float *dist, uint32_t *assign,
                                                                size_t *changed)
{
    return assign_body(x, n, d, k, ct, dist, assign, changed);
}

__attribute__((target("avx512f,avx2,fma"))) static double assign_avx512(const float *x, size_t n, size_t d, size_t k,
                                                                          const float *ct, float *dist,
                                                                          uint32_t *assign, size_t *changed)
{
    return assign_body(x, n, d, k, ct, dist, assign, changed);
}
#endif

typedef double (*assign_fn)(const float *, size_t, size_t, size_t, const float *, float *, uint32_t *, size_t *);

static assign_fn assign_select(void)
{
#if defined(__x86_64__) || defined(__i386__)
    const char *tier = qv_dist()->name;
    if (strcmp(tier, "avx512") == 0)
        return assign_avx512;
    if (strcmp(tier, "avx2") == 0)
        return assign_avx2;
#endif
    return assign_ref;
}

static void transpose(const float *cent, size_t k, size_t d, float *ct)
{
    for (size_t c = 0; c < k; c++)
        for (size_t t = 0; t < d; t++)
            ct[t * k + c] = cent[c * d + t];
}

/* Means of the assigned points; empty clusters split the largest. Returns the number of splits. */
static uint32_t update(const float *x, size_t n, size_t d, size_t k, const uint32_t *assign, double *sums,
                       size_t *counts, float *cent)
{
    memset(sums, 0, k * d * sizeof(double));
    memset(counts, 0, k * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        double *s = sums + (size_t)assign[i] * d;
        const float *xi = x + i * d;
        for (size_t t = 0; t < d; t++)
            s[t] += xi[t];
        counts[assign[i]]++;
    }
    for (size_t c = 0; c < k; c++) {
        if (!counts[c])
            continue;
        for (size_t t = 0; t < d; t++)
            cent[c * d + t] = (float)(sums[c * d + t] / (double)counts[c]);
    }
    uint32_t splits = 0;
    for (size_t c = 0; c < k; c++) {
        if (counts[c])
            continue;
        size_t big = 0;
        for (size_t b = 1; b < k; b++)
            if (counts[b] > counts[big])
                big = b;
        if (counts[big] < 2)
            break;  /* nothing left to split: fewer distinct points than centroids */
        float *cb = cent + big * d, *cc = cent + c * d;
        for (size_t t = 0; t < d; t++) {
            float e = (fabsf(cb[t]) + 1e-6f) / 1024.0f;
            float sign = (t & 1) ? -1.0f : 1.0f;
            cc[t] = cb[t] + sign * e;
            cb[t] = cb[t] - sign * e;
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
        splits++;
    }
    return splits;
}

int qv_kmeans(const float *x, size_t n, uint32_t d, uint32_t k, const qv_kmeans_params_t *params, float *cent,
              qv_kmeans_stats_t *stats)
{
    qv_kmeans_params_t p = params ? *params : (qv_kmeans_params_t){0};
    qv_kmeans_stats_t st = {0};
    if (stats)
        *stats = st;
    if (!x || !cent || n == 0 || d == 0 || k == 0)
        return QV_EINVAL;
    uint32_t iters = p.iters ? p.iters : QV_PQ_DEFAULT_ITERS;
    if (n <= k) {  /* every point is a centroid; the surplus repeat them */
        for (size_t c = 0; c < k; c++)
            memcpy(cent + c * d, x + (c % n) * d, d * sizeof(float));
        if (p.objective)
            for (uint32_t i = 0; i <= iters; i++)
                p.objective[i] = 0.0;
        if (stats)
            *stats = st;
        return QV_OK;
    }
    if (k > SIZE_MAX / d / sizeof(double) || n > SIZE_MAX / sizeof(double))
        return QV_ENOMEM;
    double *d2 = malloc(n * sizeof(double));
    uint32_t *assign = malloc(n * sizeof(uint32_t));
    float *ct = malloc((size_t)k * d * sizeof(float));
    float *dist = malloc((size_t)k * sizeof(float));
    double *sums = malloc((size_t)k * d * sizeof(double));
    size_t *counts = malloc((size_t)k * sizeof(size_t));
    int rc = QV_ENOMEM;
    if (!d2 || !assign || !ct || !dist || !sums || !counts)
        goto out;

    /* k-means++ seeding */
    uint64_t rng = p.seed;
    size_t first = (size_t)(next_u64(&rng) % n);
    memcpy(cent, x + first * d, d * sizeof(float));
    for (size_t i = 0; i < n; i++)
        d2[i] = l2sq(x + i * d, cent, d);
    for (size_t c = 1; c < k; c++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        size_t pick = c % n;
        if (total > 0.0) {
            double u = next_unit(&rng) * total, acc = 0.0;
            pick = SIZE_MAX;
            for (size_t i = 0; i < n; i++) {
                if (d2[i] <= 0.0)
                    continue;
                pick = i;  /* the last point with D > 0 if rounding leaves acc short of u */
                acc += d2[i];
                if (acc > u)
                    break;
            }
        }
        float *cc = cent + c * d;
        memcpy(cc, x + pick * d, d * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            double e = l2sq(x + i * d, cc, d);
            if (e < d2[i])
                d2[i] = e;
        }
    }

    /* Lloyd iterations */
    for (size_t i = 0; i < n; i++)
        assign[i] = UINT32_MAX;
    size_t changed;
    const assign_fn assign_all = assign_select();
    transpose(cent, k, d, ct);
    double obj = assign_all(x, n, d, k, ct, dist, assign, &changed);
    if (p.objective)
        p.objective[0] = obj;
    uint32_t it = 0;
    while (it < iters) {
        st.empty_splits += update(x, n, d, k, assign, sums, counts, cent);
        transpose(cent, k, d, ct);
        obj = assign_all(x, n, d, k, ct, dist, assign, &changed);
        it++;
        if (p.objective)
            p.objective[it] = obj;
        if (changed * 1000 <= n)
            break;  /* converged (no change: the centroids are the means of this very assignment), or nearly:
                     * with at most 0.1% of the points moving the objective has stopped improving measurably, and
                     * the remaining iterations would cost as much as the useful ones */
    }
    if (p.objective)
        for (uint32_t i = it + 1; i <= iters; i++)
            p.objective[i] = obj;
    st.iters = it;
    st.objective = obj;
    if (stats)
        *stats = st;
    rc = QV_OK;
out:
    free(d2);
    free(assign);
    free(ct);
    free(dist);
    free(sums);
    free(counts);
    return rc;
}
