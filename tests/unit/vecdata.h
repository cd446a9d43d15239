/* Vector test data shared by the index, quantiser and GPU-logic tests: a seeded xorshift* generator (global state,
 * reseeded by every generator below, so each test's data is fixed), Gaussian clusters, row normalisation, result
 * overlap and random allow-bitmaps. Header-only (each test binary is one translation unit); include after cmocka.h. */
#ifndef QV_TEST_VECDATA_H
#define QV_TEST_VECDATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "index/distance.h"
#include "index/topk.h"

static uint64_t rng_state = 1;

static inline uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static inline double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static inline float rng_gauss(void)
{
    return (float)(sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit()));
}

/* n points around `nclusters` Gaussian centres (spread 1 per dimension, points 0.8 around their centre:
 * overlapping, so recall is not trivially 1). Caller frees. */
static inline float *clustered(size_t n, size_t dim, size_t nclusters, uint64_t seed)
{
    rng_state = seed;
    float *centres = malloc(nclusters * dim * sizeof(float));
    float *v = malloc((n ? n : 1) * dim * sizeof(float));
    assert_non_null(centres);
    assert_non_null(v);
    for (size_t i = 0; i < nclusters * dim; i++)
        centres[i] = rng_gauss();
    for (size_t i = 0; i < n; i++) {
        size_t c = rng_next() % nclusters;
        for (size_t d = 0; d < dim; d++)
            v[i * dim + d] = centres[c * dim + d] + 0.8f * rng_gauss();
    }
    free(centres);
    return v;
}

static inline void normalize_rows(float *v, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++)
        qv_normalize(v + i * dim, dim);
}

/* Candidates of a that also appear in b (by row). */
static inline size_t overlap(const qv_cand_t *a, size_t na, const qv_cand_t *b, size_t nb)
{
    size_t hit = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (a[i].ref == b[j].ref) {
                hit++;
                break;
            }
    return hit;
}

/* Sets each of n bits with probability frac; returns how many were set. */
static inline size_t random_allowed(uint64_t *bm, size_t n, double frac, uint64_t seed)
{
    memset(bm, 0, qv_bm_words(n) * sizeof(uint64_t));
    rng_state = seed;
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (rng_unit() < frac) {
            qv_bm_set(bm, i);
            c++;
        }
    }
    return c;
}

#endif
