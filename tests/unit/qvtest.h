/* Small helpers shared by the unit tests: a seeded PRNG (so every failure reproduces), the "every field type"
 * schema the codec, filter and store tests use, and re-sealing a blob's trailing XXH3 checksum (to craft blobs whose
 * checksum is valid but whose contents are not). Header-only: each test binary is one translation unit. */
#ifndef QV_TEST_H
#define QV_TEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "storage/schema.h"

/* splitmix64: tiny, good enough for test data, identical on every platform. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0; the modulo bias is irrelevant for tests). */
static inline uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(rng_next(s) % n); }

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

static inline int rng_chance(uint64_t *s, unsigned percent) { return rng_below(s, 100) < percent; }

/* Field indexes of the schema made by test_schema_all(). */
enum { F_INT = 0, F_DBL = 1, F_KW = 2, F_BOOL = 3, F_TAGS = 4, F_COUNT = 5 };

/* A schema with one field of every type, in the order of the F_* constants. free() it. */
static inline qv_schema_t *test_schema_all(const char *name, uint32_t id, uint32_t dim, uint8_t metric)
{
    static const struct {
        const char *name;
        uint8_t type;
    } fields[F_COUNT] = {
        {"n_int", QV_FT_INT64}, {"n_dbl", QV_FT_DOUBLE}, {"kw", QV_FT_KEYWORD},
        {"flag", QV_FT_BOOL},   {"tags", QV_FT_KEYWORDS},
    };
    qv_schema_t *s = qv_schema_alloc(F_COUNT);
    if (!s)
        abort();
    s->id = id;
    strncpy(s->name, name, QV_NAME_MAX);
    s->dim = dim;
    s->metric = metric;
    s->shards = 1;
    s->index_kind = QV_INDEX_HNSW;
    s->hnsw_m = 16;
    s->hnsw_efc = 200;
    s->nfields = F_COUNT;
    for (int i = 0; i < F_COUNT; i++) {
        strcpy(s->fields[i].name, fields[i].name);
        s->fields[i].type = fields[i].type;
    }
    return s;
}

/* Rewrites the last 8 bytes of a blob as the XXH3-64 of everything before them. */
static inline void test_reseal(uint8_t *blob, size_t len)
{
    uint64_t sum = qv_checksum(blob, len - 8);
    memcpy(blob + len - 8, &sum, 8);
}

/* A malloc'd copy of n bytes. */
static inline uint8_t *test_dup(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        abort();
    if (n)
        memcpy(d, p, n);
    return d;
}

#endif
