/* Vector file readers for the benchmark tool: TEXMEX .fvecs / .bvecs / .ivecs and NumPy .npy.
 *
 * TEXMEX: each row is an int32 dimension d followed by d values (float32, uint8 or int32); every row must have the
 * same d and the file must hold whole rows. .npy: version 1.0, 2.0 or 3.0, a C-order 2-D array of little-endian
 * float32 ('<f4') for vectors, or int32/int64 ('<i4'/'<i8') for ground truth; anything else is rejected. The header
 * is parsed by a small bounded parser (no eval), and the data size must match the shape exactly. The files are
 * untrusted input: every size is checked before it is used. */
#ifndef QV_BENCH_VECIO_H
#define QV_BENCH_VECIO_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float *data;  /* n * dim, row-major, owned (free()) */
    size_t n;
    uint32_t dim;
} vec_f32_t;

typedef struct {
    int32_t *data;  /* n * dim, row-major, owned (free()) */
    size_t n;
    uint32_t dim;
} vec_i32_t;

/* Reads .fvecs, .bvecs (converted to float) or .npy (<f4), chosen by the file name's extension. Returns 0, or -1
 * with a message in err. */
int vec_read_f32(const char *path, vec_f32_t *out, char *err, size_t errlen);

/* Reads .ivecs or .npy (<i4 or <i8 with values in int32 range). Returns 0, or -1 with a message in err. */
int vec_read_i32(const char *path, vec_i32_t *out, char *err, size_t errlen);

#endif
