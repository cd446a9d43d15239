/* Writes resolved against the current rows (store.h: qv_store_delete_where, qv_store_update): the commit leader
 * turns the caller's candidates into one ordinary WAL record (a delete, or an upsert of the rewritten points), so
 * recovery, replication and backups see nothing new. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/commit.h"
#include "storage/dynattr.h"
#include "storage/record.h"
#include "storage/store_int.h"

static bool name_eq(qv_str_t a, const char *b) { return strlen(b) == a.len && memcmp(a.p, b, a.len) == 0; }

static bool str_eq(qv_str_t a, qv_str_t b) { return a.len == b.len && memcmp(a.p, b.p, a.len) == 0; }

int qv_store_check_change(const qv_schema_t *s, qv_attr_change_t *ch, qv_err_t *err)
{
    if (ch->nset + ch->nset_dyn + ch->nunset == 0)
        return qv_err_set(err, QV_EINVAL, "nothing to change: give attributes to set or names to unset");
    for (uint32_t i = 0; i < ch->nset; i++) {
        qv_attr_t *a = &ch->set[i];
        const qv_field_t *f = &s->fields[a->field];
        if (f->type == QV_FT_DOUBLE && a->value.type == QV_FT_INT64) {
            a->value.d = (double)a->value.i;
            a->value.type = QV_FT_DOUBLE;
        }
        if (a->value.type != f->type)
            return qv_err_set(err, QV_EINVAL, "set: attribute '%s' is %s, got a %s value", f->name,
                              qv_ftype_name(f->type), qv_ftype_name(a->value.type));
        if (f->type == QV_FT_DOUBLE && !isfinite(a->value.d))
            return qv_err_set(err, QV_EINVAL, "set: attribute '%s' is not finite", f->name);
        if (f->type == QV_FT_KEYWORDS && a->value.kws.n > QV_KEYWORDS_MAX)
            return qv_err_set(err, QV_EINVAL, "set: attribute '%s' has more than %u keywords", f->name,
                              QV_KEYWORDS_MAX);
        for (uint32_t k = 0; k < i; k++)
            if (ch->set[k].field == a->field)
                return qv_err_set(err, QV_EINVAL, "set: attribute '%s' given twice", f->name);
    }
    if (ch->nset_dyn && !s->dynamic)
        return qv_err_set(err, QV_EINVAL, "set: attribute '%.64s' is not in the schema, and collection '%s' was not "
                          "created with dynamic_attributes", ch->set_dyn[0].key.p, s->name);
    qv_wbuf_t probe; /* the dyn blob rules (names, finite numbers, limits) on the set alone */
    qv_wbuf_init(&probe);
    int rc = qv_dyn_encode(ch->set_dyn, ch->nset_dyn, "set", &probe, err);
    qv_wbuf_free(&probe);
    if (rc)
        return rc;
    for (uint32_t u = 0; u < ch->nunset; u++) {
        if (ch->unset[u].len == 0 || ch->unset[u].len > QV_NAME_MAX)
            return qv_err_set(err, QV_EINVAL, "unset: name %u of %u bytes (must be 1..%d)", u, ch->unset[u].len,
                              QV_NAME_MAX);
        for (uint32_t i = 0; i < ch->nset; i++)
            if (name_eq(ch->unset[u], s->fields[ch->set[i].field].name))
                return qv_err_set(err, QV_EINVAL, "attribute '%.*s' both set and unset", (int)ch->unset[u].len,
                                  ch->unset[u].p);
        for (uint32_t i = 0; i < ch->nset_dyn; i++)
            if (str_eq(ch->unset[u], ch->set_dyn[i].key))
                return qv_err_set(err, QV_EINVAL, "attribute '%.*s' both set and unset", (int)ch->unset[u].len,
                                  ch->unset[u].p);
    }
    return QV_OK;
}

static bool unset_has(const qv_attr_change_t *ch, qv_str_t name)
{
    for (uint32_t u = 0; u < ch->nunset; u++)
        if (str_eq(ch->unset[u], name))
            return true;
    return false;
}

/* What one rewritten point needs beyond the row it borrows from. */
typedef struct {
    qv_attr_t *attrs;  /* nfields */
    qv_str_t *items;   /* the row's KEYWORDS items (qv_seg_row_point) */
    size_t cap;
    qv_wbuf_t dyn;     /* the new dyn blob */
} rewrite_buf_t;

/* pt (a view of the row) with ch applied: declared attributes replaced, added or removed; the dyn blob rebuilt. */
static int apply_change(const qv_schema_t *s, const qv_attr_change_t *ch, qv_point_t *pt, rewrite_buf_t *b,
                        qv_err_t *err)
{
    uint32_t n = 0; /* declared: the row's, less those unset or set anew, then the set ones */
    for (uint32_t a = 0; a < pt->nattrs; a++) {
        uint16_t f = pt->attrs[a].field;
        bool drop = unset_has(ch, (qv_str_t){s->fields[f].name, (uint32_t)strlen(s->fields[f].name)});
        for (uint32_t i = 0; i < ch->nset && !drop; i++)
            drop = ch->set[i].field == f;
        if (!drop)
            b->attrs[n++] = pt->attrs[a];
    }
    for (uint32_t i = 0; i < ch->nset; i++)
        b->attrs[n++] = ch->set[i];
    pt->attrs = b->attrs;
    pt->nattrs = n;
    if (!s->dynamic)
        return QV_OK;
    qv_dyn_iter_t it;
    qv_dyn_iter(&it, pt->dyn);
    uint32_t nd = it.left + ch->nset_dyn;
    qv_dynattr_t *d = malloc((nd ? nd : 1) * sizeof *d);
    if (!d)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    uint32_t k = 0;
    qv_dynattr_t e;
    qv_rbuf_t items;
    while (qv_dyn_next(&it, &e.key, &e.value, &items)) {
        bool drop = unset_has(ch, e.key);
        for (uint32_t i = 0; i < ch->nset_dyn && !drop; i++)
            drop = str_eq(ch->set_dyn[i].key, e.key);
        if (drop)
            continue;
        if (e.value.type == QV_FT_KEYWORDS) { /* re-encoded from the blob: decode its items */
            qv_str_t *list = malloc((e.value.kws.n ? e.value.kws.n : 1) * sizeof *list);
            if (!list) {
                for (uint32_t x = 0; x < k; x++)
                    if (d[x].value.type == QV_FT_KEYWORDS)
                        free((void *)d[x].value.kws.items);
                free(d);
                return qv_err_set(err, QV_ENOMEM, "out of memory");
            }
            for (uint32_t x = 0; x < e.value.kws.n; x++)
                list[x] = qv_dyn_item(&items);
            e.value.kws.items = list;
        }
        d[k++] = e;
    }
    for (uint32_t i = 0; i < ch->nset_dyn; i++) {
        d[k] = ch->set_dyn[i];
        if (d[k].value.type == QV_FT_KEYWORDS) { /* freed below like the row's */
            qv_str_t *list = malloc((d[k].value.kws.n ? d[k].value.kws.n : 1) * sizeof *list);
            if (list && d[k].value.kws.n)
                memcpy(list, d[k].value.kws.items, d[k].value.kws.n * sizeof *list);
            d[k].value.kws.items = list;
        }
        k++;
    }
    b->dyn.len = 0;
    int rc = qv_dyn_encode(d, k, "update", &b->dyn, err);
    for (uint32_t x = 0; x < k; x++)
        if (d[x].value.type == QV_FT_KEYWORDS)
            free((void *)d[x].value.kws.items);
    free(d);
    if (rc == QV_OK && b->dyn.oom)
        rc = qv_err_set(err, QV_ENOMEM, "out of memory");
    pt->dyn = (qv_str_t){(const char *)b->dyn.data, (uint32_t)b->dyn.len};
    return rc;
}

/* A set of idmap slots (pointers), open addressing, for naming a point once however often it is a candidate. */
typedef struct {
    const void **keys;
    size_t mask;
} ptrset_t;

static bool ptrset_init(ptrset_t *p, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    p->mask = cap - 1;
    return (p->keys = calloc(cap, sizeof *p->keys)) != NULL;
}

/* Adds k; false when it was there already. */
static bool ptrset_add(ptrset_t *p, const void *k)
{
    size_t h = (size_t)(((uintptr_t)k >> 3) * 0x9e3779b97f4a7c15ull) & p->mask;
    while (p->keys[h]) {
        if (p->keys[h] == k)
            return false;
        h = (h + 1) & p->mask;
    }
    p->keys[h] = k;
    return true;
}

int qv__rewrite_encode(qv_store_t *st, qv_writer_t *w, uint64_t seq, qv_wbuf_t *buf, bool *none)
{
    (void)st;
    qv_coll_t *c = w->coll;
    const qv_schema_t *s = c->schema;
    *none = false;
    /* the leader is the only writer: the rows it reads here cannot change under it */
    qv_str_t *ids = malloc((w->n ? w->n : 1) * sizeof *ids);
    qv_point_t *pts = w->op == W_UPDATE ? calloc(w->n ? w->n : 1, sizeof *pts) : NULL;
    rewrite_buf_t *bufs = w->op == W_UPDATE ? calloc(w->n ? w->n : 1, sizeof *bufs) : NULL;
    ptrset_t seen = {0};
    int rc = ids && (w->op != W_UPDATE || (pts && bufs)) && ptrset_init(&seen, w->n)
                 ? QV_OK
                 : qv_err_set(w->err, QV_ENOMEM, "out of memory");
    uint32_t n = 0;
    for (uint32_t i = 0; rc == QV_OK && i < w->n; i++) {
        qv_idslot_t *slot = qv_idmap_get(&c->ids, w->ids[i]);
        if (!slot || (w->match && !w->match(w->match_ctx, slot->seg, slot->row)))
            continue;
        if (!ptrset_add(&seen, slot)) /* a candidate named twice is changed once */
            continue;
        ids[n] = w->ids[i];
        if (w->op == W_UPDATE) {
            rewrite_buf_t *b = &bufs[n];
            qv_wbuf_init(&b->dyn);
            b->attrs = malloc(((size_t)s->nfields + w->change->nset + 1) * sizeof *b->attrs);
            qv_attr_t *row_attrs = malloc(((size_t)s->nfields + 1) * sizeof *row_attrs);
            rc = b->attrs && row_attrs ? qv_seg_row_point(slot->seg, slot->row, &pts[n], row_attrs, &b->items, &b->cap)
                                       : QV_ENOMEM;
            if (rc == QV_OK)
                rc = apply_change(s, w->change, &pts[n], b, w->err);
            else
                qv_err_set(w->err, rc, "out of memory");
            free(row_attrs); /* apply_change copied what it kept into b->attrs */
        }
        n++;
    }
    if (rc == QV_OK && n == 0)
        *none = true;
    else if (rc == QV_OK && w->op == W_UPDATE)
        rc = qv_record_encode_upsert(buf, s->id, seq, s->dim, pts, n);
    else if (rc == QV_OK)
        rc = qv_record_encode_delete(buf, s->id, seq, ids, n);
    if (rc == QV_ENOMEM && !w->err->msg[0])
        qv_err_set(w->err, rc, "out of memory encoding the write");
    for (uint32_t k = 0; bufs && k < n; k++) {
        free(bufs[k].attrs);
        free(bufs[k].items);
        qv_wbuf_free(&bufs[k].dyn);
    }
    free(bufs);
    free(pts);
    free(ids);
    free(seen.keys);
    return rc;
}

int qv_store_delete_where(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_row_match_fn match,
                          void *match_ctx, uint32_t *deleted, uint64_t *seq, qv_err_t *err)
{
    *deleted = 0;
    *seq = 0;
    if (n > QV_REWRITE_MAX) /* the delete record's limit (record.h) */
        return qv_err_set(err, QV_ETOOBIG, "%u points to delete exceeds the limit of %u per request", n,
                          QV_REWRITE_MAX);
    if (n == 0)
        return QV_OK;
    qv_writer_t w = {.op = W_DELETE_WHERE, .coll = c, .ids = ids, .n = n, .match = match, .match_ctx = match_ctx,
                     .err = err};
    int rc = qv__commit(st, &w);
    *deleted = w.skipped ? 0 : w.count;
    *seq = w.skipped ? 0 : w.seq;
    return rc;
}

int qv_store_update(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_row_match_fn match,
                    void *match_ctx, const qv_attr_change_t *ch, uint32_t *updated, uint64_t *seq, qv_err_t *err)
{
    *updated = 0;
    *seq = 0;
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_ETOOBIG, "%u points to update exceeds the limit of %u per request", n,
                          QV_BATCH_MAX);
    if (n == 0)
        return QV_OK;
    qv_writer_t w = {.op = W_UPDATE, .coll = c, .ids = ids, .n = n, .match = match, .match_ctx = match_ctx,
                     .change = ch, .err = err};
    int rc = qv__commit(st, &w);
    *updated = w.skipped ? 0 : w.count;
    *seq = w.skipped ? 0 : w.seq;
    return rc;
}
