/* Per-thread logic of the device k-means (kernels/cuda/kmeans.cu) and its CPU twin (kernels/cpu/kmeans.c): the same
 * algorithm as index/quant/kmeans.c, cut into the steps a GPU runs.
 *
 *   seeding      k-means++ on the host (qv_k_kmeanspp): the same draws as kmeans.c for the same seed, so both start
 *                from the same centroids. Sequential by nature (each pick depends on the previous ones); O(n k d).
 *   assignment   one thread per point: nearest centroid, ties to the lower index (qv_k_nearest), the squared
 *                distances summed over the dimensions in order, as kmeans.c's assign_all does.
 *   accumulate   one thread per point adds its coordinates to its centroid's sums (doubles; atomics on the device,
 *                so the summation order -- and the last bits of a sum -- depend on scheduling) and counts it.
 *   update       on the host from the k x d sums (qv_k_update): means of non-empty clusters, then every empty
 *                cluster splits the largest one (faiss's rule, kmeans.c's update()).
 *   stop         when at most 0.1% of the assignments changed (none, for n < 1000), or after iters updates
 *                (qv_k_converged: kmeans.c's rule; the unit test notices if the two drift apart).
 *
 * With sums in double, the order only moves a mean in its 1e-16th relative digit, so the centroids agree with
 * kmeans.c's to float rounding and the assignments agree except at exact ties between two centroids. */
#ifndef QV_K_KMEANS_CUH
#define QV_K_KMEANS_CUH

#include <string.h>

#include "kernels/cuda/common.cuh"

/* Squared L2 distance, summed in dimension order (the order of kmeans.c's transposed loop). */
QV_K_FN float qv_k_l2_seq(const float *a, const float *b, uint32_t d)
{
    float s = 0.0f;
    for (uint32_t t = 0; t < d; t++) {
        float e = a[t] - b[t];
        s += e * e;
    }
    return s;
}

/* Nearest of k centroids (k x d, row-major) to x; ties to the lower index. *best_d gets the distance. */
QV_K_FN uint32_t qv_k_nearest(const float *x, const float *cent, uint32_t k, uint32_t d, float *best_d)
{
    uint32_t best = 0;
    float bd = qv_k_l2_seq(x, cent, d);
    for (uint32_t c = 1; c < k; c++) {
        float s = qv_k_l2_seq(x, cent + (size_t)c * d, d);
        if (s < bd) {
            bd = s;
            best = c;
        }
    }
    *best_d = bd;
    return best;
}

/* kmeans.c's stopping rule after an update and an assignment that moved `changed` of n points. */
QV_K_FN int qv_k_converged(size_t changed, size_t n) { return changed * 1000 <= n; }

/* Adds point x to cluster a's sums and count (the host twin of the device's atomics). */
QV_K_FN void qv_k_accumulate(double *sums, uint64_t *counts, const float *x, uint32_t a, uint32_t d)
{
    double *s = sums + (size_t)a * d;
    for (uint32_t t = 0; t < d; t++)
        s[t] += (double)x[t];
    counts[a]++;
}

/* kmeans.c's generator and its unit draw. */
QV_K_HOST uint64_t qv_k_rng_next(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

QV_K_HOST double qv_k_rng_unit(uint64_t *s) { return (double)(qv_k_rng_next(s) >> 11) / 9007199254740992.0; }

/* k-means++ seeding of k centroids from n > k points (kmeans.c's draws, step for step). d2: n doubles of scratch. */
QV_K_HOST void qv_k_kmeanspp(const float *x, size_t n, uint32_t d, uint32_t k, uint64_t seed, float *cent,
                             double *d2)
{
    uint64_t rng = seed;
    size_t first = (size_t)(qv_k_rng_next(&rng) % n);
    memcpy(cent, x + first * d, (size_t)d * sizeof(float));
    for (size_t i = 0; i < n; i++)
        d2[i] = qv_k_l2_seq(x + i * d, cent, d);
    for (size_t c = 1; c < k; c++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        size_t pick = c % n;
        if (total > 0.0) {
            double u = qv_k_rng_unit(&rng) * total, acc = 0.0;
            pick = SIZE_MAX;
            for (size_t i = 0; i < n; i++) {
                if (d2[i] <= 0.0)
                    continue;
                pick = i;
                acc += d2[i];
                if (acc > u)
                    break;
            }
        }
        float *cc = cent + c * d;
        memcpy(cc, x + pick * d, (size_t)d * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            double e = qv_k_l2_seq(x + i * d, cc, d);
            if (e < d2[i])
                d2[i] = e;
        }
    }
}

/* The update step from the sums: means of the non-empty clusters, then each empty cluster takes a copy of the
 * largest one's centroid, both nudged apart by 1/1024 of each coordinate's magnitude. counts is updated as
 * kmeans.c's is (halved for a split). Returns the number of splits. */
QV_K_HOST uint32_t qv_k_update(const double *sums, uint64_t *counts, uint32_t k, uint32_t d, float *cent)
{
    for (uint32_t c = 0; c < k; c++) {
        if (!counts[c])
            continue;
        for (uint32_t t = 0; t < d; t++)
            cent[(size_t)c * d + t] = (float)(sums[(size_t)c * d + t] / (double)counts[c]);
    }
    uint32_t splits = 0;
    for (uint32_t c = 0; c < k; c++) {
        if (counts[c])
            continue;
        uint32_t big = 0;
        for (uint32_t b = 1; b < k; b++)
            if (counts[b] > counts[big])
                big = b;
        if (counts[big] < 2)
            break;
        float *cb = cent + (size_t)big * d, *cc = cent + (size_t)c * d;
        for (uint32_t t = 0; t < d; t++) {
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

#endif
