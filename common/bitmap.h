/* Fixed-size bitmaps as arrays of 64-bit words; bit i of a row set lives in word i/64, bit i%64.
 * Used for delete bitmaps, filter results and presence of attribute values. Bits set by writers while readers scan
 * (delete bitmaps) are updated with atomic OR so a concurrent reader sees either the old or the new word. */
#ifndef QV_BITMAP_H
#define QV_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline size_t qv_bm_words(size_t nbits) { return (nbits + 63) / 64; }

static inline bool qv_bm_get(const uint64_t *bm, size_t i)
{
    return (__atomic_load_n(&bm[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1u;
}

static inline void qv_bm_set(uint64_t *bm, size_t i)
{
    __atomic_fetch_or(&bm[i >> 6], (uint64_t)1 << (i & 63), __ATOMIC_RELAXED);
}

static inline void qv_bm_clear(uint64_t *bm, size_t i)
{
    __atomic_fetch_and(&bm[i >> 6], ~((uint64_t)1 << (i & 63)), __ATOMIC_RELAXED);
}

/* Number of set bits among the first nbits. */
static inline size_t qv_bm_count(const uint64_t *bm, size_t nbits)
{
    size_t n = 0, full = nbits / 64;
    for (size_t w = 0; w < full; w++)
        n += (size_t)__builtin_popcountll(bm[w]);
    if (nbits & 63)
        n += (size_t)__builtin_popcountll(bm[full] & (((uint64_t)1 << (nbits & 63)) - 1));
    return n;
}

#endif
