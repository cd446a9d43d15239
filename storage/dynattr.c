/* Dynamic attributes' blob; the format is specified in dynattr.h. */
#include "storage/dynattr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int key_cmp(qv_str_t a, qv_str_t b)
{
    int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int attr_cmp(const void *a, const void *b)
{
    return key_cmp(((const qv_dynattr_t *)a)->key, ((const qv_dynattr_t *)b)->key);
}

static void put_str32(qv_wbuf_t *out, qv_str_t s)
{
    qv_wbuf_u32(out, s.len);
    qv_wbuf_put(out, s.p, s.len);
}

int qv_dyn_encode(qv_dynattr_t *attrs, uint32_t n, const char *what, qv_wbuf_t *out, qv_err_t *err)
{
    if (n == 0)
        return QV_OK;
    if (n > QV_DYN_ATTRS_MAX)
        return qv_err_set(err, QV_EINVAL, "%s: %u dynamic attributes exceed the limit of %u", what, n,
                          QV_DYN_ATTRS_MAX);
    qsort(attrs, n, sizeof *attrs, attr_cmp);
    size_t start = out->len;
    qv_wbuf_u16(out, (uint16_t)n);
    for (uint32_t i = 0; i < n; i++) {
        const qv_dynattr_t *a = &attrs[i];
        if (a->key.len == 0 || a->key.len > QV_NAME_MAX || memchr(a->key.p, 0, a->key.len))
            return qv_err_set(err, QV_EINVAL, "%s: attribute name of %u bytes (must be 1..%d, no NUL)", what,
                              a->key.len, QV_NAME_MAX);
        if (i && key_cmp(attrs[i - 1].key, a->key) == 0)
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%.*s' given twice", what, (int)a->key.len, a->key.p);
        qv_wbuf_u8(out, (uint8_t)a->key.len);
        qv_wbuf_put(out, a->key.p, a->key.len);
        qv_wbuf_u8(out, a->value.type);
        switch (a->value.type) {
        case QV_FT_INT64: qv_wbuf_u64(out, (uint64_t)a->value.i); break;
        case QV_FT_DOUBLE:
            if (!isfinite(a->value.d))
                return qv_err_set(err, QV_EINVAL, "%s: attribute '%.*s' is not finite", what, (int)a->key.len,
                                  a->key.p);
            qv_wbuf_f64(out, a->value.d);
            break;
        case QV_FT_BOOL: qv_wbuf_u8(out, a->value.b ? 1 : 0); break;
        case QV_FT_KEYWORD: put_str32(out, a->value.kw); break;
        case QV_FT_KEYWORDS:
            if (a->value.kws.n > QV_KEYWORDS_MAX)
                return qv_err_set(err, QV_EINVAL, "%s: attribute '%.*s' has more than %u keywords", what,
                                  (int)a->key.len, a->key.p, QV_KEYWORDS_MAX);
            qv_wbuf_u32(out, a->value.kws.n);
            for (uint32_t k = 0; k < a->value.kws.n; k++)
                put_str32(out, a->value.kws.items[k]);
            break;
        default:
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%.*s' has no value", what, (int)a->key.len, a->key.p);
        }
        if (out->len - start > QV_DYN_BYTES_MAX)
            return qv_err_set(err, QV_EINVAL, "%s: dynamic attributes take more than %u bytes", what,
                              QV_DYN_BYTES_MAX);
    }
    return out->oom ? qv_err_set(err, QV_ENOMEM, "out of memory") : QV_OK;
}

void qv_dyn_iter(qv_dyn_iter_t *it, qv_str_t blob)
{
    qv_rbuf_init(&it->r, blob.p, blob.len);
    it->left = blob.len ? qv_rbuf_u16(&it->r) : 0;
}

/* Reads one entry; on malformed bytes it->r.failed is set. */
bool qv_dyn_next(qv_dyn_iter_t *it, qv_str_t *key, qv_value_t *v, qv_rbuf_t *items)
{
    if (it->left == 0 || it->r.failed)
        return false;
    it->left--;
    qv_rbuf_t *r = &it->r;
    key->len = qv_rbuf_u8(r);
    key->p = (const char *)qv_rbuf_take(r, key->len);
    v->type = qv_rbuf_u8(r);
    switch (v->type) {
    case QV_FT_INT64: v->i = (int64_t)qv_rbuf_u64(r); break;
    case QV_FT_DOUBLE: v->d = qv_rbuf_f64(r); break;
    case QV_FT_BOOL: {
        uint8_t b = qv_rbuf_u8(r);
        r->failed |= b > 1;
        v->b = b;
        break;
    }
    case QV_FT_KEYWORD:
        v->kw.len = qv_rbuf_u32(r);
        v->kw.p = (const char *)qv_rbuf_take(r, v->kw.len);
        break;
    case QV_FT_KEYWORDS: {
        v->kws.n = qv_rbuf_u32(r);
        v->kws.items = NULL;
        const uint8_t *from = r->p;
        for (uint32_t k = 0; k < v->kws.n && !r->failed; k++)
            qv_rbuf_take(r, qv_rbuf_u32(r));
        if (items)
            qv_rbuf_init(items, from, r->failed ? 0 : (size_t)(r->p - from));
        break;
    }
    default: r->failed = true;
    }
    return !r->failed && key->p != NULL;
}

qv_str_t qv_dyn_item(qv_rbuf_t *items)
{
    qv_str_t s;
    s.len = qv_rbuf_u32(items);
    s.p = (const char *)qv_rbuf_take(items, s.len);
    if (!s.p)
        s.len = 0;
    return s;
}

bool qv_dyn_valid(const void *p, size_t len)
{
    if (len == 0)
        return true;
    if (len > QV_DYN_BYTES_MAX)
        return false;
    qv_dyn_iter_t it;
    qv_dyn_iter(&it, (qv_str_t){p, (uint32_t)len});
    uint32_t n = it.left;
    if (n == 0 || n > QV_DYN_ATTRS_MAX)
        return false;
    qv_str_t key, prev = {NULL, 0};
    qv_value_t v;
    for (uint32_t i = 0; i < n; i++) {
        if (!qv_dyn_next(&it, &key, &v, NULL))
            return false;
        if (key.len == 0 || key.len > QV_NAME_MAX || memchr(key.p, 0, key.len) || (i && key_cmp(prev, key) >= 0))
            return false;
        if ((v.type == QV_FT_DOUBLE && !isfinite(v.d)) || (v.type == QV_FT_KEYWORDS && v.kws.n > QV_KEYWORDS_MAX))
            return false;
        prev = key;
    }
    return !it.r.failed && qv_rbuf_left(&it.r) == 0;
}

bool qv_dyn_find(qv_str_t blob, qv_str_t key, qv_value_t *v, qv_rbuf_t *items)
{
    qv_dyn_iter_t it;
    qv_dyn_iter(&it, blob);
    qv_str_t k;
    while (qv_dyn_next(&it, &k, v, items)) {
        int c = key_cmp(k, key);
        if (c == 0)
            return true;
        if (c > 0)
            return false; /* keys ascend */
    }
    return false;
}
