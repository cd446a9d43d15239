/* Byte buffers for the on-disk formats: a growable little-endian writer and a bounded reader.
 *
 * The reader is how every loader treats stored bytes as untrusted: each get checks the remaining length first and,
 * on a short read, marks the reader failed and returns zeros, so decoders can read a whole header and check
 * `rd.failed` once instead of after every field. Nothing is ever read past `end`. */
#ifndef QV_BUF_H
#define QV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;  /* owned; NULL until the first write */
    size_t len;
    size_t cap;
    bool oom;       /* an allocation failed: the contents are incomplete and must not be used */
} qv_wbuf_t;

void qv_wbuf_init(qv_wbuf_t *b);
void qv_wbuf_free(qv_wbuf_t *b);
/* Ensures room for n more bytes; returns false (and sets oom) on failure. */
bool qv_wbuf_reserve(qv_wbuf_t *b, size_t n);
void qv_wbuf_put(qv_wbuf_t *b, const void *p, size_t n);
void qv_wbuf_u8(qv_wbuf_t *b, uint8_t v);
void qv_wbuf_u16(qv_wbuf_t *b, uint16_t v);
void qv_wbuf_u32(qv_wbuf_t *b, uint32_t v);
void qv_wbuf_u64(qv_wbuf_t *b, uint64_t v);
void qv_wbuf_f64(qv_wbuf_t *b, double v);
/* Overwrites 4 or 8 bytes at off (which must already be written), for lengths and checksums known late. */
void qv_wbuf_patch_u32(qv_wbuf_t *b, size_t off, uint32_t v);
void qv_wbuf_patch_u64(qv_wbuf_t *b, size_t off, uint64_t v);

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    bool failed;  /* a read went past the end, or a caller-detected inconsistency */
} qv_rbuf_t;

void qv_rbuf_init(qv_rbuf_t *r, const void *data, size_t len);
static inline size_t qv_rbuf_left(const qv_rbuf_t *r) { return (size_t)(r->end - r->p); }
uint8_t qv_rbuf_u8(qv_rbuf_t *r);
uint16_t qv_rbuf_u16(qv_rbuf_t *r);
uint32_t qv_rbuf_u32(qv_rbuf_t *r);
uint64_t qv_rbuf_u64(qv_rbuf_t *r);
double qv_rbuf_f64(qv_rbuf_t *r);
/* Returns a pointer to the next n bytes and advances, or NULL (and fails) if fewer remain. */
const uint8_t *qv_rbuf_take(qv_rbuf_t *r, size_t n);
/* Like take, for n items of `size` bytes each, with an overflow-checked multiplication. */
const uint8_t *qv_rbuf_take_array(qv_rbuf_t *r, size_t n, size_t size);

/* 64-bit checksum of the record formats (XXH3-64, Debian's libxxhash). */
uint64_t qv_checksum(const void *data, size_t len);

/* The trailer every blob format ends with: appends the XXH3-64 of the bytes written since `start`. Returns QV_OK, or
 * QV_ENOMEM when the buffer ran out of memory at any point (its contents are then unusable). */
int qv_wbuf_seal(qv_wbuf_t *b, size_t start);

/* Checks that trailer on untrusted bytes and, when it holds, points r at the body before it (len - 8 bytes).
 * Returns false (r empty and failed) when the blob is shorter than the trailer or the checksum differs. */
bool qv_rbuf_open_sealed(qv_rbuf_t *r, const void *data, size_t len);

/* Big-endian encodings for RocksDB keys, so byte order = numeric order. */
static inline void qv_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void qv_be64(uint8_t *p, uint64_t v)
{
    qv_be32(p, (uint32_t)(v >> 32));
    qv_be32(p + 4, (uint32_t)v);
}
static inline uint32_t qv_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t qv_get_be64(const uint8_t *p)
{
    return ((uint64_t)qv_get_be32(p) << 32) | qv_get_be32(p + 4);
}

#endif
