/* WAL record codec; the format is specified in record.h. */
#include "storage/record.h"
#include "storage/dynattr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REC_MAGIC 0x52575651u /* "QVWR" */
#define REC_VERSION 2
#define REC_VERSION_NO_DYN 1 /* read only */
#define REC_HEADER 26         /* magic 4 + version 1 + op 1 + coll 4 + seq 8 + count 4 + dim 4 */

static void header(qv_wbuf_t *out, uint8_t op, uint32_t coll_id, uint64_t seq, uint32_t count, uint32_t dim)
{
    qv_wbuf_u32(out, REC_MAGIC);
    qv_wbuf_u8(out, REC_VERSION);
    qv_wbuf_u8(out, op);
    qv_wbuf_u32(out, coll_id);
    qv_wbuf_u64(out, seq);
    qv_wbuf_u32(out, count);
    qv_wbuf_u32(out, dim);
}

static int trailer(qv_wbuf_t *out, size_t start)
{
    return qv_wbuf_seal(out, start);
}

static void put_str32(qv_wbuf_t *out, qv_str_t s)
{
    qv_wbuf_u32(out, s.len);
    qv_wbuf_put(out, s.p, s.len);
}

int qv_record_encode_upsert(qv_wbuf_t *out, uint32_t coll_id, uint64_t seq, uint32_t dim, const qv_point_t *pts,
                            uint32_t n)
{
    size_t start = out->len;
    header(out, QV_OP_UPSERT, coll_id, seq, n, dim);
    for (uint32_t i = 0; i < n; i++) {
        const qv_point_t *p = &pts[i];
        qv_wbuf_u16(out, (uint16_t)p->id.len);
        qv_wbuf_put(out, p->id.p, p->id.len);
        qv_wbuf_put(out, p->vector, (size_t)dim * sizeof(float));
        qv_wbuf_u16(out, (uint16_t)p->nattrs);
        for (uint32_t a = 0; a < p->nattrs; a++) {
            const qv_attr_t *at = &p->attrs[a];
            qv_wbuf_u16(out, at->field);
            qv_wbuf_u8(out, at->value.type);
            switch (at->value.type) {
            case QV_FT_INT64: qv_wbuf_u64(out, (uint64_t)at->value.i); break;
            case QV_FT_DOUBLE: qv_wbuf_f64(out, at->value.d); break;
            case QV_FT_BOOL: qv_wbuf_u8(out, at->value.b ? 1 : 0); break;
            case QV_FT_KEYWORD: put_str32(out, at->value.kw); break;
            case QV_FT_KEYWORDS:
                qv_wbuf_u32(out, at->value.kws.n);
                for (uint32_t k = 0; k < at->value.kws.n; k++)
                    put_str32(out, at->value.kws.items[k]);
                break;
            default: return QV_EINVAL;
            }
        }
        put_str32(out, p->text);
        put_str32(out, p->dyn);
    }
    return trailer(out, start);
}

int qv_record_encode_delete(qv_wbuf_t *out, uint32_t coll_id, uint64_t seq, const qv_str_t *ids, uint32_t n)
{
    size_t start = out->len;
    header(out, QV_OP_DELETE, coll_id, seq, n, 0);
    for (uint32_t i = 0; i < n; i++) {
        qv_wbuf_u16(out, (uint16_t)ids[i].len);
        qv_wbuf_put(out, ids[i].p, ids[i].len);
    }
    return trailer(out, start);
}

void qv_record_free(qv_record_t *rec)
{
    free(rec->points);
    free(rec->ids);
    free(rec->vectors);
    free(rec->attrs);
    free(rec->items);
    memset(rec, 0, sizeof *rec);
}

static bool take_str(qv_rbuf_t *r, qv_str_t *s, uint32_t len)
{
    const uint8_t *p = qv_rbuf_take(r, len);
    s->p = (const char *)p;
    s->len = len;
    return p != NULL;
}

/* Grows a malloc'd array to hold `need` items; amortised doubling. */
static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * size);
    if (!p)
        return false;
    *arr = p;
    *cap = c;
    return true;
}

static int decode_upsert(qv_rbuf_t *r, const qv_schema_t *s, uint8_t version, qv_record_t *rec, qv_err_t *err)
{
    uint32_t n = rec->count, dim = s->dim;
    rec->points = calloc(n ? n : 1, sizeof *rec->points);
    rec->vectors = malloc((size_t)(n ? n : 1) * dim * sizeof(float));
    if (!rec->points || !rec->vectors)
        return qv_err_set(err, QV_ENOMEM, "wal record: out of memory");
    size_t nattrs = 0, cap_attrs = 0, nitems = 0, cap_items = 0;
    /* Attributes and keyword items are collected as indexes first and turned into pointers once the arrays stop
     * moving. */
    for (uint32_t i = 0; i < n; i++) {
        qv_point_t *p = &rec->points[i];
        uint16_t idlen = qv_rbuf_u16(r);
        if (idlen == 0 || idlen > QV_ID_MAX || !take_str(r, &p->id, idlen))
            return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: bad id", i);
        const uint8_t *v = qv_rbuf_take_array(r, dim, sizeof(float));
        if (!v)
            return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: truncated vector", i);
        p->vector = rec->vectors + (size_t)i * dim;
        memcpy(p->vector, v, (size_t)dim * sizeof(float));
        p->nvector = dim;
        for (uint32_t d = 0; d < dim; d++)
            if (!isfinite(p->vector[d]))
                return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: non-finite vector", i);
        uint16_t na = qv_rbuf_u16(r);
        if (na > s->nfields)
            return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: %u attributes", i, na);
        p->nattrs = na;
        p->attrs = (qv_attr_t *)(uintptr_t)nattrs; /* index, fixed up below */
        if (!grow((void **)&rec->attrs, &cap_attrs, nattrs + na, sizeof *rec->attrs))
            return qv_err_set(err, QV_ENOMEM, "wal record: out of memory");
        for (uint16_t a = 0; a < na; a++) {
            qv_attr_t *at = &rec->attrs[nattrs++];
            at->field = qv_rbuf_u16(r);
            at->value.type = qv_rbuf_u8(r);
            if (r->failed || at->field >= s->nfields || s->fields[at->field].type != at->value.type)
                return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: bad attribute", i);
            switch (at->value.type) {
            case QV_FT_INT64: at->value.i = (int64_t)qv_rbuf_u64(r); break;
            case QV_FT_DOUBLE: at->value.d = qv_rbuf_f64(r); break;
            case QV_FT_BOOL: {
                uint8_t b = qv_rbuf_u8(r);
                if (b > 1)
                    r->failed = true;
                at->value.b = b;
                break;
            }
            case QV_FT_KEYWORD:
                take_str(r, &at->value.kw, qv_rbuf_u32(r));
                break;
            case QV_FT_KEYWORDS: {
                uint32_t k = qv_rbuf_u32(r);
                if (k > QV_KEYWORDS_MAX || !grow((void **)&rec->items, &cap_items, nitems + k, sizeof *rec->items)) {
                    r->failed = true;
                    break;
                }
                at->value.kws.items = (const qv_str_t *)(uintptr_t)nitems;
                at->value.kws.n = k;
                for (uint32_t e = 0; e < k; e++)
                    take_str(r, &rec->items[nitems++], qv_rbuf_u32(r));
                break;
            }
            }
            if (r->failed)
                return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: truncated attribute", i);
        }
        uint32_t tl = qv_rbuf_u32(r);
        if (tl > QV_TEXT_MAX || !take_str(r, &p->text, tl))
            return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: bad text", i);
        if (version == REC_VERSION_NO_DYN)
            continue;
        uint32_t dl = qv_rbuf_u32(r);
        if (dl > QV_DYN_BYTES_MAX || !take_str(r, &p->dyn, dl) || (dl && !s->dynamic) || !qv_dyn_valid(p->dyn.p, dl))
            return qv_err_set(err, QV_ECORRUPT, "wal record: point %u: bad dynamic attributes", i);
    }
    /* Empty lists get NULL: when no point has attributes (or no KEYWORDS value has items) the array is NULL, and
     * NULL + 0 is undefined behaviour (clang's UBSan stops on it). */
    for (uint32_t i = 0; i < n; i++) {
        qv_point_t *p = &rec->points[i];
        p->attrs = p->nattrs ? rec->attrs + (uintptr_t)p->attrs : NULL;
        for (uint32_t a = 0; a < p->nattrs; a++) {
            qv_value_t *v = &p->attrs[a].value;
            if (v->type == QV_FT_KEYWORDS)
                v->kws.items = v->kws.n ? rec->items + (uintptr_t)v->kws.items : NULL;
        }
    }
    return QV_OK;
}

int qv_record_decode(const void *data, size_t len, const qv_schema_t *s, qv_record_t *rec, qv_err_t *err)
{
    memset(rec, 0, sizeof *rec);
    if (len < REC_HEADER + 8)
        return qv_err_set(err, QV_ECORRUPT, "wal record too short (%zu bytes)", len);
    qv_rbuf_t r;
    if (!qv_rbuf_open_sealed(&r, data, len))
        return qv_err_set(err, QV_ECORRUPT, "wal record checksum mismatch");
    uint32_t magic = qv_rbuf_u32(&r);
    uint8_t version = qv_rbuf_u8(&r);
    rec->op = qv_rbuf_u8(&r);
    rec->coll_id = qv_rbuf_u32(&r);
    rec->seq = qv_rbuf_u64(&r);
    rec->count = qv_rbuf_u32(&r);
    uint32_t dim = qv_rbuf_u32(&r);
    if (magic != REC_MAGIC || (version != REC_VERSION && version != REC_VERSION_NO_DYN))
        return qv_err_set(err, QV_ECORRUPT, "wal record: bad magic or unsupported version");
    if (rec->coll_id != s->id || rec->count > (rec->op == QV_OP_DELETE ? QV_DELETE_RECORD_MAX : QV_BATCH_MAX))
        return qv_err_set(err, QV_ECORRUPT, "wal record: bad collection or count");
    /* Reject counts the record cannot hold before allocating for them (as the segment decoder does): an upsert point
     * takes at least id_len + 1 id byte + the vector + nattrs + text_len, a deleted id at least id_len + 1 byte. */
    uint64_t min_item = rec->op == QV_OP_UPSERT ? 9 + 4 * (uint64_t)s->dim : 3;
    if ((uint64_t)rec->count * min_item > qv_rbuf_left(&r))
        return qv_err_set(err, QV_ECORRUPT, "wal record: %u items do not fit the record", rec->count);
    int rc = QV_OK;
    if (rec->op == QV_OP_UPSERT) {
        if (dim != s->dim)
            rc = qv_err_set(err, QV_ECORRUPT, "wal record: dim %u, collection has %u", dim, s->dim);
        else
            rc = decode_upsert(&r, s, version, rec, err);
    } else if (rec->op == QV_OP_DELETE) {
        rec->ids = calloc(rec->count ? rec->count : 1, sizeof *rec->ids);
        if (!rec->ids)
            rc = qv_err_set(err, QV_ENOMEM, "wal record: out of memory");
        for (uint32_t i = 0; rc == QV_OK && i < rec->count; i++) {
            uint16_t l = qv_rbuf_u16(&r);
            if (l == 0 || l > QV_ID_MAX || !take_str(&r, &rec->ids[i], l))
                rc = qv_err_set(err, QV_ECORRUPT, "wal record: delete id %u truncated", i);
        }
    } else {
        rc = qv_err_set(err, QV_ECORRUPT, "wal record: unknown op %u", rec->op);
    }
    if (rc == QV_OK && (r.failed || qv_rbuf_left(&r) != 0))
        rc = qv_err_set(err, QV_ECORRUPT, "wal record: length mismatch");
    if (rc)
        qv_record_free(rec);
    return rc;
}
