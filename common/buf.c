#include "common/buf.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* All multi-byte values are little-endian on disk; x86-64 and aarch64 are little-endian, and the static assert
 * below keeps a big-endian build from silently writing another format. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk formats assume a little-endian host");

void qv_wbuf_init(qv_wbuf_t *b) { memset(b, 0, sizeof *b); }

void qv_wbuf_free(qv_wbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

bool qv_wbuf_reserve(qv_wbuf_t *b, size_t n)
{
    if (b->oom)
        return false;
    if (n <= b->cap - b->len)
        return true;
    size_t want = b->len + n;
    if (want < b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void qv_wbuf_put(qv_wbuf_t *b, const void *p, size_t n)
{
    if (n == 0 || !qv_wbuf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void qv_wbuf_u8(qv_wbuf_t *b, uint8_t v) { qv_wbuf_put(b, &v, 1); }
void qv_wbuf_u16(qv_wbuf_t *b, uint16_t v) { qv_wbuf_put(b, &v, 2); }
void qv_wbuf_u32(qv_wbuf_t *b, uint32_t v) { qv_wbuf_put(b, &v, 4); }
void qv_wbuf_u64(qv_wbuf_t *b, uint64_t v) { qv_wbuf_put(b, &v, 8); }
void qv_wbuf_f64(qv_wbuf_t *b, double v) { qv_wbuf_put(b, &v, 8); }

void qv_wbuf_patch_u32(qv_wbuf_t *b, size_t off, uint32_t v)
{
    if (!b->oom && off + 4 <= b->len)
        memcpy(b->data + off, &v, 4);
}

void qv_wbuf_patch_u64(qv_wbuf_t *b, size_t off, uint64_t v)
{
    if (!b->oom && off + 8 <= b->len)
        memcpy(b->data + off, &v, 8);
}

void qv_rbuf_init(qv_rbuf_t *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->failed = false;
}

const uint8_t *qv_rbuf_take(qv_rbuf_t *r, size_t n)
{
    if (r->failed || n > qv_rbuf_left(r)) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

const uint8_t *qv_rbuf_take_array(qv_rbuf_t *r, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        r->failed = true;
        return NULL;
    }
    return qv_rbuf_take(r, n * size);
}

#define RD(type, name)                                   \
    type qv_rbuf_##name(qv_rbuf_t *r)                    \
    {                                                    \
        type v = 0;                                      \
        const uint8_t *p = qv_rbuf_take(r, sizeof v);    \
        if (p)                                           \
            memcpy(&v, p, sizeof v);                     \
        return v;                                        \
    }
RD(uint8_t, u8)
RD(uint16_t, u16)
RD(uint32_t, u32)
RD(uint64_t, u64)
RD(double, f64)
#undef RD

uint64_t qv_checksum(const void *data, size_t len) { return XXH3_64bits(data, len); }

int qv_wbuf_seal(qv_wbuf_t *b, size_t start)
{
    if (b->oom)
        return QV_ENOMEM;
    qv_wbuf_u64(b, qv_checksum(b->data + start, b->len - start));
    return b->oom ? QV_ENOMEM : QV_OK;
}

bool qv_rbuf_open_sealed(qv_rbuf_t *r, const void *data, size_t len)
{
    uint64_t sum = 0;
    if (len >= 8)
        memcpy(&sum, (const uint8_t *)data + len - 8, 8);
    if (len < 8 || qv_checksum(data, len - 8) != sum) {
        qv_rbuf_init(r, data, 0);
        r->failed = true;
        return false;
    }
    qv_rbuf_init(r, data, len - 8);
    return true;
}
