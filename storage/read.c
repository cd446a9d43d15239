/* Read views (storage/read.h). */
#include "storage/read.h"

#include <stdlib.h>

int qv_read_begin(qv_coll_t *c, qv_read_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_read_t *r = calloc(1, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    atomic_fetch_add(&c->refs, 1);
    r->coll = c;
    r->schema = c->schema;
    int rc = QV_OK;
    pthread_rwlock_rdlock(&c->lock);
    r->segs = malloc((c->nsealed + 1) * sizeof *r->segs);
    if (r->segs) {
        for (size_t i = 0; i < c->nsealed; i++) {
            qv_seg_ref(c->sealed[i]);
            r->segs[r->nsegs++] = c->sealed[i];
        }
        if (c->growing->rows && !(r->growing = qv_seg_snapshot(c->growing)))
            rc = QV_ENOMEM;
        if (r->growing)
            r->segs[r->nsegs++] = r->growing;
        r->live = c->live;
        r->wal_bytes = c->wal_bytes;
    } else {
        rc = QV_ENOMEM;
    }
    pthread_rwlock_unlock(&c->lock);
    if (rc) {
        qv_read_end(r);
        return qv_err_set(err, rc, "out of memory");
    }
    *out = r;
    return QV_OK;
}

/* s held by the view (one of its segments, or an extra one it now references); NULL on OOM. */
static qv_segment_t *hold(qv_read_t *r, qv_segment_t *s)
{
    for (size_t i = 0; i < r->nsegs; i++)
        if (r->segs[i] == s)
            return s;
    for (size_t i = 0; i < r->nextra; i++)
        if (r->extra[i] == s)
            return s;
    qv_segment_t **e = realloc(r->extra, (r->nextra + 1) * sizeof *e);
    if (!e)
        return NULL;
    r->extra = e;
    qv_seg_ref(s);
    r->extra[r->nextra++] = s;
    return s;
}

int qv_read_lookup(qv_read_t *r, const qv_str_t *ids, size_t n, qv_segment_t **seg, uint32_t *row, qv_err_t *err)
{
    qv_coll_t *c = r->coll;
    int rc = QV_OK;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < n && rc == QV_OK; i++) {
        qv_idslot_t *slot = qv_idmap_get(&c->ids, ids[i]);
        seg[i] = NULL;
        row[i] = 0;
        if (!slot)
            continue;
        if (slot->seg == c->growing) { /* only the rows the view's copy has */
            if (r->growing && r->growing->snapshot_of == slot->seg && slot->row < r->growing->rows) {
                seg[i] = r->growing;
                row[i] = slot->row;
            }
            continue;
        }
        if (!(seg[i] = hold(r, slot->seg)))
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        row[i] = slot->row;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

void qv_read_end(qv_read_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nextra; i++)
        qv_seg_unref(r->extra[i]);
    free(r->extra);
    for (size_t i = 0; i < r->nsegs; i++)
        if (r->segs[i] != r->growing)
            qv_seg_unref(r->segs[i]);
    qv_seg_snapshot_free(r->growing);
    free(r->segs);
    qv_coll_release(r->coll);
    free(r);
}
