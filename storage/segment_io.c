/* Sealed segment blobs and delete bitmaps: the persistent form of a segment.
 *
 * Segment blob (stored in the `seg` column family in chunks, see catalog.h), little-endian:
 *   u32 magic "QVSG" | u8 version (2) | u64 segment id | u32 dim | u32 rows | u16 nfields | nfields x u8 type |
 *   vectors: rows x dim f32 |
 *   ids: strcol | text: strcol | dyn: strcol (each row's dynamic attributes, storage/dynattr.h; empty items when
 *   none) |
 *   per field, schema order: present bitmap (ceil(rows/64) x u64) then
 *     INT64 rows x i64 | DOUBLE rows x f64 | BOOL rows x u8 | KEYWORD strcol of rows items |
 *     KEYWORDS (rows+1) x u32 item offsets, then strcol of the items |
 *   u64 xxh3-64 of every byte before it
 * Version 1 (before dynamic attributes) has no dyn strcol; its rows are read as having none.
 * strcol (n items): u64 total bytes | (n+1) x u64 offsets (first 0, non-decreasing, last = total) | bytes
 *
 * Delete bitmap blob (`del` column family; its key is specified in catalog.h):
 *   u32 magic "QVDB" | u8 version (1) | u32 rows | ceil(rows/64) x u64 words | u64 xxh3-64 of the bytes before
 *
 * Decoders check every length against what remains, every offset for monotonicity, the field types against the
 * collection's schema, and that the checksum matches, before any byte is used. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "storage/dynattr.h"
#include "storage/segment.h"

#define SEG_MAGIC 0x47535651u /* "QVSG" */
#define DEL_MAGIC 0x42445651u /* "QVDB" */
#define SEG_VERSION 2
#define SEG_VERSION_NO_DYN 1 /* read only */
#define DEL_VERSION 1

static void put_strcol(qv_wbuf_t *out, const qv_strcol_t *c, size_t n)
{
    qv_wbuf_u64(out, c->off[n]);
    qv_wbuf_put(out, c->off, (n + 1) * sizeof(uint64_t));
    qv_wbuf_put(out, c->bytes, c->off[n]);
}

int qv_seg_encode(const qv_segment_t *seg, qv_wbuf_t *out)
{
    size_t start = out->len, rows = seg->rows, words = qv_bm_words(rows);
    qv_wbuf_u32(out, SEG_MAGIC);
    qv_wbuf_u8(out, SEG_VERSION);
    qv_wbuf_u64(out, seg->id);
    qv_wbuf_u32(out, seg->dim);
    qv_wbuf_u32(out, seg->rows);
    qv_wbuf_u16(out, seg->nfields);
    for (int f = 0; f < seg->nfields; f++)
        qv_wbuf_u8(out, seg->cols[f].type);
    qv_wbuf_put(out, seg->vectors, rows * seg->dim * sizeof(float));
    put_strcol(out, &seg->ids, rows);
    put_strcol(out, &seg->text, rows);
    put_strcol(out, &seg->dyn, rows);
    for (int f = 0; f < seg->nfields; f++) {
        const qv_column_t *c = &seg->cols[f];
        qv_wbuf_put(out, c->present, words * 8);
        switch (c->type) {
        case QV_FT_INT64: qv_wbuf_put(out, c->i64, rows * 8); break;
        case QV_FT_DOUBLE: qv_wbuf_put(out, c->f64, rows * 8); break;
        case QV_FT_BOOL: qv_wbuf_put(out, c->b, rows); break;
        case QV_FT_KEYWORD: put_strcol(out, &c->str, rows); break;
        case QV_FT_KEYWORDS:
            qv_wbuf_put(out, c->kw_off, (rows + 1) * 4);
            put_strcol(out, &c->str, c->nitems);
            break;
        }
    }
    return qv_wbuf_seal(out, start);
}

/* n empty items in c (replacing what c holds). */
static bool empty_strcol(qv_strcol_t *c, size_t n)
{
    uint64_t *o = calloc(n + 1, sizeof *o);
    char *b = malloc(1);
    if (!o || !b) {
        free(o);
        free(b);
        return false;
    }
    free(c->off);
    free(c->bytes);
    c->off = o;
    c->bytes = b;
    c->cap_off = n + 1;
    c->cap_bytes = 1;
    return true;
}

/* Copies an untrusted strcol of n items into c (replacing what c holds). */
static bool get_strcol(qv_rbuf_t *r, qv_strcol_t *c, size_t n)
{
    uint64_t total = qv_rbuf_u64(r);
    const uint8_t *off = qv_rbuf_take_array(r, n + 1, sizeof(uint64_t));
    if (!off || total > qv_rbuf_left(r))
        return false;
    const uint8_t *bytes = qv_rbuf_take(r, total);
    uint64_t *o = malloc((n + 1) * sizeof *o);
    char *b = malloc(total ? total : 1);
    if (!o || !b || !bytes) {
        free(o);
        free(b);
        return false;
    }
    memcpy(o, off, (n + 1) * sizeof *o);
    bool ok = o[0] == 0 && o[n] == total;
    for (size_t i = 0; ok && i < n; i++)
        ok = o[i] <= o[i + 1] && o[i + 1] - o[i] <= UINT32_MAX;
    if (!ok) {
        free(o);
        free(b);
        return false;
    }
    memcpy(b, bytes, total);
    free(c->off);
    free(c->bytes);
    c->off = o;
    c->bytes = b;
    c->cap_off = n + 1;
    c->cap_bytes = total ? total : 1;
    return true;
}

/* Copies `bytes` untrusted bytes into a fresh array of at least min_size bytes. */
static void *get_array(qv_rbuf_t *r, size_t bytes, size_t min_size)
{
    const uint8_t *p = qv_rbuf_take(r, bytes);
    if (!p)
        return NULL;
    void *a = malloc(bytes > min_size ? bytes : min_size);
    if (a)
        memcpy(a, p, bytes);
    else
        r->failed = true;
    return a;
}

int qv_seg_decode(const void *data, size_t len, const qv_schema_t *s, qv_segment_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_rbuf_t r;
    if (!qv_rbuf_open_sealed(&r, data, len))
        return qv_err_set(err, QV_ECORRUPT, "segment blob too short or checksum mismatch");
    uint32_t magic = qv_rbuf_u32(&r);
    uint8_t version = qv_rbuf_u8(&r);
    uint64_t id = qv_rbuf_u64(&r);
    uint32_t dim = qv_rbuf_u32(&r), rows = qv_rbuf_u32(&r);
    uint16_t nfields = qv_rbuf_u16(&r);
    if (r.failed || magic != SEG_MAGIC || (version != SEG_VERSION && version != SEG_VERSION_NO_DYN))
        return qv_err_set(err, QV_ECORRUPT, "segment blob: bad magic or unsupported version");
    if (dim != s->dim || nfields != s->nfields)
        return qv_err_set(err, QV_ECORRUPT, "segment %llu: dim/fields do not match the schema",
                          (unsigned long long)id);
    for (int f = 0; f < nfields; f++)
        if (qv_rbuf_u8(&r) != s->fields[f].type)
            return qv_err_set(err, QV_ECORRUPT, "segment %llu: field %d type mismatch", (unsigned long long)id, f);
    /* Reject sizes the blob cannot hold before allocating anything (rows is attacker-controlled). */
    if ((uint64_t)rows * dim * sizeof(float) > qv_rbuf_left(&r))
        return qv_err_set(err, QV_ECORRUPT, "segment %llu: %u rows do not fit the blob", (unsigned long long)id,
                          rows);
    qv_segment_t *seg = qv_seg_create(s, id);
    if (!seg)
        return qv_err_set(err, QV_ENOMEM, "segment: out of memory");
    size_t words = qv_bm_words(rows), cap = rows ? rows : 1;
    free(seg->vectors);
    free(seg->deleted);
    seg->vectors = get_array(&r, (size_t)rows * dim * sizeof(float), sizeof(float));
    seg->deleted = calloc(qv_bm_words(cap), 8);
    bool ok = seg->vectors && seg->deleted && get_strcol(&r, &seg->ids, rows) && get_strcol(&r, &seg->text, rows);
    if (ok && version == SEG_VERSION_NO_DYN)
        ok = empty_strcol(&seg->dyn, rows);
    else if (ok)
        ok = get_strcol(&r, &seg->dyn, rows);
    for (size_t i = 0; ok && i < rows; i++) {
        qv_str_t d = qv_strcol_get(&seg->dyn, i);
        ok = (d.len == 0 || s->dynamic) && qv_dyn_valid(d.p, d.len);
    }
    for (size_t i = 0; ok && i < rows; i++) {
        uint64_t l = seg->ids.off[i + 1] - seg->ids.off[i];
        ok = l >= 1 && l <= QV_ID_MAX;
    }
    for (size_t i = 0; ok && i < (size_t)rows * dim; i++)
        ok = isfinite(seg->vectors[i]);
    for (int f = 0; ok && f < nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        free(c->present);
        c->present = get_array(&r, words * 8, 8);
        ok = c->present != NULL;
        if (!ok)
            break;
        switch (c->type) {
        case QV_FT_INT64:
            free(c->i64);
            ok = (c->i64 = get_array(&r, (size_t)rows * 8, 8)) != NULL;
            break;
        case QV_FT_DOUBLE:
            free(c->f64);
            ok = (c->f64 = get_array(&r, (size_t)rows * 8, 8)) != NULL;
            break;
        case QV_FT_BOOL:
            free(c->b);
            ok = (c->b = get_array(&r, rows, 1)) != NULL;
            for (size_t i = 0; ok && i < rows; i++)
                ok = c->b[i] <= 1;
            break;
        case QV_FT_KEYWORD: ok = get_strcol(&r, &c->str, rows); break;
        case QV_FT_KEYWORDS:
            free(c->kw_off);
            ok = (c->kw_off = get_array(&r, ((size_t)rows + 1) * 4, 4)) != NULL && c->kw_off[0] == 0;
            for (size_t i = 0; ok && i < rows; i++)
                ok = c->kw_off[i] <= c->kw_off[i + 1];
            if (ok) {
                c->nitems = c->kw_off[rows];
                ok = c->nitems <= qv_rbuf_left(&r) && get_strcol(&r, &c->str, c->nitems);
            }
            break;
        }
    }
    if (!ok || r.failed || qv_rbuf_left(&r) != 0) {
        qv_seg_unref(seg);
        return qv_err_set(err, QV_ECORRUPT, "segment %llu: inconsistent contents", (unsigned long long)id);
    }
    seg->rows = rows;
    seg->cap = (uint32_t)cap;
    seg->sealed = true;
    seg->persisted = true;
    seg->blob_written = true;
    seg->blob_len = len;
    *out = seg;
    return QV_OK;
}

int qv_seg_encode_deleted(const qv_segment_t *seg, qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_u32(out, DEL_MAGIC);
    qv_wbuf_u8(out, DEL_VERSION);
    qv_wbuf_u32(out, seg->rows);
    qv_wbuf_put(out, seg->deleted, qv_bm_words(seg->rows) * 8);
    return qv_wbuf_seal(out, start);
}

int qv_seg_decode_deleted(qv_segment_t *seg, const void *data, size_t len, qv_err_t *err)
{
    qv_rbuf_t r;
    bool sealed = qv_rbuf_open_sealed(&r, data, len);
    uint32_t magic = qv_rbuf_u32(&r);
    uint8_t version = qv_rbuf_u8(&r);
    uint32_t rows = qv_rbuf_u32(&r);
    size_t words = qv_bm_words(seg->rows);
    const uint8_t *bits = qv_rbuf_take_array(&r, words, 8);
    if (!sealed || magic != DEL_MAGIC || version != DEL_VERSION || rows != seg->rows ||
        !bits || qv_rbuf_left(&r) != 0)
        return qv_err_set(err, QV_ECORRUPT, "segment %llu: bad delete bitmap", (unsigned long long)seg->id);
    memcpy(seg->deleted, bits, words * 8);
    if (rows & 63) /* bits past the last row must stay clear so counts and scans stay exact */
        seg->deleted[words - 1] &= ((uint64_t)1 << (rows & 63)) - 1;
    seg->ndeleted = (uint32_t)qv_bm_count(seg->deleted, rows);
    seg->del_dirty = false;
    return QV_OK;
}
