/* Fuzz targets for every decoder of untrusted bytes. Each target file defines LLVMFuzzerTestOneInput (libFuzzer's
 * entry point) and qv_fuzz_seeds (valid inputs made with the encoders). A target is built twice:
 *   - with tests/fuzz/driver.c, a standalone main() that runs the seeds and a fixed-seed series of mutations of them
 *     (ctest label `fuzz`, normal and sanitizer builds);
 *   - with clang's libFuzzer (-DQV_LIBFUZZER=ON, clang only) as <name>_libfuzzer, for open-ended runs. The driver
 *     binary writes the seeds as a starting corpus: `fuzz_record -w corpus/`.
 *
 * Blob formats end in an XXH3-64 checksum, which random mutations almost never satisfy. So the record, segment and
 * schema targets read their input as a blob *without* its checksum and append the right one before decoding; they
 * also decode the input exactly as given, for the checksum path itself. A decode that succeeds must satisfy the
 * decoder's documented guarantees, and re-encoding must reproduce the bytes; a violation aborts (FUZZ_CHECK). */
#ifndef QV_FUZZ_H
#define QV_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "index/distance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef void (*qv_fuzz_add_fn)(void *ctx, const uint8_t *data, size_t size);
/* Calls add once per seed input. */
void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx);

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* A malloc'd copy of data[0..size) with its XXH3-64 checksum appended (size + 8 bytes), for the decoders' paths
 * past the checksum. The caller frees it. */
static inline uint8_t *qv_fuzz_checksummed(const uint8_t *data, size_t size)
{
    uint8_t *blob = malloc(size + 8);
    FUZZ_CHECK(blob);
    if (size)
        memcpy(blob, data, size);
    uint64_t sum = qv_checksum(data, size);
    memcpy(blob + size, &sum, 8);
    return blob;
}

/* LLVMFuzzerTestOneInput of the blob targets whose first byte picks a decoder mode (its low 2 bits): the rest is
 * decoded as given, and again with a valid checksum appended; the distance kernels are those of the best SIMD tier,
 * as in production. Inputs over 1 MiB are skipped. */
static inline int qv_fuzz_modal_blob(const uint8_t *data, size_t size,
                                     void (*decode)(const uint8_t *blob, size_t len, uint8_t mode))
{
    static bool kernels;
    if (!kernels)
        qv_dist_init(QV_SIMD_AUTO);
    kernels = true;
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t mode = data[0] & 3;
    uint8_t *blob = qv_fuzz_checksummed(data + 1, size - 1);
    decode(data + 1, size - 1, mode);
    decode(blob, size - 1 + 8, mode);
    free(blob);
    return 0;
}

#endif
