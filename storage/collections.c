/* Collections in memory: the collection table (lookup, list, references), a collection's sealed-segment list, the
 * apply of a WAL record to a collection (commit leader and recovery), and the leader's create and drop.
 *
 * Locks: colls_mu guards the collection table only (st->colls, ncolls); a collection's rwlock guards its segments
 * and id map (store.h). Collections are reference counted, so a drop never frees memory a running search uses. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "storage/commit.h"
#include "storage/store_int.h"

/* ---- the collection table ---- */

qv_coll_t *qv__coll_new(qv_schema_t *s)
{
    qv_coll_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers must not starve behind a steady stream of searches. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    atomic_init(&c->refs, 1);
    c->next_seg_id = 1;
    if (qv_idmap_init(&c->ids) != QV_OK) {
        pthread_rwlock_destroy(&c->lock);
        free(c);
        return NULL;
    }
    c->schema = s;
    return c;
}

void qv__coll_free(qv_coll_t *c)
{
    for (size_t i = 0; i < c->nsealed; i++)
        qv_seg_unref(c->sealed[i]);
    free(c->sealed);
    qv_seg_unref(c->growing);
    qv_idmap_free(&c->ids);
    pthread_rwlock_destroy(&c->lock);
    free(c->schema);
    free(c);
}

void qv_coll_release(qv_coll_t *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        qv__coll_free(c);
}

int qv__coll_reserve_sealed(qv_coll_t *c)
{
    if (c->nsealed < c->cap_sealed)
        return QV_OK;
    size_t cap = c->cap_sealed ? c->cap_sealed * 2 : 8;
    qv_segment_t **p = realloc(c->sealed, cap * sizeof *p);
    if (!p)
        return QV_ENOMEM;
    c->sealed = p;
    c->cap_sealed = cap;
    return QV_OK;
}

void qv__coll_add_sealed(qv_coll_t *c, qv_segment_t *seg)
{
    assert(c->nsealed < c->cap_sealed); /* the caller made room */
    /* kept in ascending id order (a compaction output can have a larger id than the growing segment) */
    size_t i = c->nsealed;
    while (i > 0 && c->sealed[i - 1]->id > seg->id) {
        c->sealed[i] = c->sealed[i - 1];
        i--;
    }
    c->sealed[i] = seg;
    c->nsealed++;
}

static int coll_cmp(const void *a, const void *b)
{
    return strcmp((*(qv_coll_t *const *)a)->schema->name, (*(qv_coll_t *const *)b)->schema->name);
}

int qv__store_insert_coll(qv_store_t *st, qv_coll_t *c)
{
    pthread_mutex_lock(&st->colls_mu);
    if (st->ncolls == st->cap_colls) {
        size_t cap = st->cap_colls ? st->cap_colls * 2 : 16;
        qv_coll_t **p = realloc(st->colls, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&st->colls_mu);
            return QV_ENOMEM;
        }
        st->colls = p;
        st->cap_colls = cap;
    }
    st->colls[st->ncolls++] = c;
    qsort(st->colls, st->ncolls, sizeof *st->colls, coll_cmp);
    pthread_mutex_unlock(&st->colls_mu);
    return QV_OK;
}

/* Index of a collection by name, or -1; colls_mu held. */
static long find_coll(qv_store_t *st, const char *name, size_t len)
{
    for (size_t i = 0; i < st->ncolls; i++) {
        const char *n = st->colls[i]->schema->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return (long)i;
    }
    return -1;
}

int qv_store_get(qv_store_t *st, const char *name, size_t len, qv_coll_t **out, qv_err_t *err)
{
    pthread_mutex_lock(&st->colls_mu);
    long i = find_coll(st, name, len);
    if (i >= 0) {
        *out = st->colls[i];
        atomic_fetch_add_explicit(&(*out)->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&st->colls_mu);
    if (i < 0)
        return qv_err_set(err, QV_ENOTFOUND, "collection '%.*s' not found", (int)(len > 80 ? 80 : len), name);
    return QV_OK;
}

int qv_store_list(qv_store_t *st, qv_coll_t ***out, size_t *n)
{
    pthread_mutex_lock(&st->colls_mu);
    qv_coll_t **list = malloc((st->ncolls ? st->ncolls : 1) * sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&st->colls_mu);
        return QV_ENOMEM;
    }
    for (size_t i = 0; i < st->ncolls; i++) {
        list[i] = st->colls[i];
        atomic_fetch_add_explicit(&list[i]->refs, 1, memory_order_relaxed);
    }
    *n = st->ncolls;
    pthread_mutex_unlock(&st->colls_mu);
    *out = list;
    return QV_OK;
}

void qv_store_list_free(qv_coll_t **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        qv_coll_release(list[i]);
    free(list);
}

uint64_t qv_store_wal_bytes(qv_store_t *st)
{
    qv_coll_t **list;
    size_t n;
    uint64_t total = 0;
    if (qv_store_list(st, &list, &n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        qv_coll_rdlock(list[i]);
        total += list[i]->wal_bytes;
        qv_coll_unlock(list[i]);
    }
    qv_store_list_free(list, n);
    return total;
}

/* ---- applying WAL records to memory (commit leader and recovery) ---- */

/* Marks the row an id left deleted, where it lives now: a slot may still name a compacted input (segment.h fwd),
 * whose row the output holds. */
static void delete_old(qv_coll_t *c, const qv_idslot_t *old)
{
    qv_segment_t *seg;
    uint32_t row;
    if (qv_idslot_where(old, &seg, &row))
        c->fwd_slots--;
    qv_seg_delete(seg, row);
}

/* Applies one decoded record; the caller holds the collection's write lock (or is recovering). On QV_ENOMEM the
 * points before the failing one stay applied: the caller must then stop accepting writes (see store.h). */
int qv__coll_apply(qv_coll_t *c, const qv_record_t *rec, size_t rec_bytes, uint32_t *count)
{
    uint32_t n = 0;
    if (rec->op == QV_OP_UPSERT) {
        int rc = qv_seg_reserve(c->growing, rec->count);
        if (rc == QV_OK)
            rc = qv_idmap_reserve(&c->ids, rec->count);
        if (rc)
            return rc;
        for (uint32_t i = 0; i < rec->count; i++) {
            const qv_point_t *p = &rec->points[i];
            uint32_t row;
            rc = qv_seg_append(c->growing, p, &row);
            if (rc)
                return rc;
            qv_idslot_t old;
            bool existed = qv_idmap_put(&c->ids, p->id, c->growing, row, &old, &rc);
            if (rc)
                return rc;
            if (existed)
                delete_old(c, &old);
            else
                c->live++;
            n++;
        }
    } else {
        for (uint32_t i = 0; i < rec->count; i++) {
            qv_idslot_t old;
            if (qv_idmap_del(&c->ids, rec->ids[i], &old)) {
                delete_old(c, &old);
                c->live--;
                n++;
            }
        }
    }
    c->last_seq = rec->seq;
    c->wal_bytes += rec_bytes;
    c->wal_growing += rec_bytes;
    if (count)
        *count = n;
    return QV_OK;
}

/* ---- create and drop (commit leader: W_CREATE, W_DROP) ---- */

void qv__run_create(qv_store_t *st, qv_writer_t *w)
{
    qv_schema_t *s = w->schema;
    pthread_mutex_lock(&st->colls_mu);
    long i = find_coll(st, s->name, strlen(s->name));
    pthread_mutex_unlock(&st->colls_mu);
    if (i >= 0) {
        w->rc = qv_err_set(w->err, QV_EEXIST, "collection '%s' already exists", s->name);
        return;
    }
    s->id = st->next_coll_id;
    qv_coll_t *c = qv__coll_new(s);
    if (c)
        c->next_seg_id = 2; /* 1 is the growing segment */
    if (!c || !(c->growing = qv_seg_create(s, 1))) {
        if (c) {
            c->schema = NULL;
            qv__coll_free(c);
        }
        w->rc = qv_err_set(w->err, QV_ENOMEM, "create: out of memory");
        return;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    int rc = qv_schema_encode(s, &buf);
    if (rc == QV_OK) {
        qv_cat_put_schema(&st->cat, b, s->id, buf.data, buf.len);
        buf.len = 0;
        rc = qv_cat_manifest_encode(&buf, c, 0, c->next_seg_id, NULL, NULL, 0, false, NULL);
        qv_cat_put_manifest(&st->cat, b, s->id, buf.data, buf.len);
        qv_cat_put_next_coll(&st->cat, b, st->next_coll_id + 1);
    }
    rc = rc ? qv_err_set(w->err, rc, "create: out of memory") : qv__rocks_write(st, b, "create", w->err);
    rocksdb_writebatch_destroy(b);
    qv_wbuf_free(&buf);
    if (rc == QV_OK) {
        st->next_coll_id++;
        rc = qv__store_insert_coll(st, c);
        if (rc)
            qv_err_set(w->err, rc, "create: out of memory");
    }
    if (rc) {
        c->schema = NULL; /* stays the caller's on failure */
        qv__coll_free(c);
    }
    w->rc = rc;
}

void qv__run_drop(qv_store_t *st, qv_writer_t *w)
{
    pthread_mutex_lock(&st->colls_mu);
    long i = find_coll(st, w->name, w->name_len);
    qv_coll_t *c = i >= 0 ? st->colls[i] : NULL;
    pthread_mutex_unlock(&st->colls_mu);
    if (!c) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection '%.*s' not found",
                           (int)(w->name_len > 80 ? 80 : w->name_len), w->name);
        return;
    }
    uint32_t id = c->schema->id;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_cat_delete_collection(&st->cat, b, id);
    /* the dropped collection's WAL held the highest sequence numbers perhaps: keep the floor */
    qv_cat_put_seq_floor(&st->cat, b, st->seq);
    w->rc = qv__rocks_write(st, b, "drop", w->err);
    rocksdb_writebatch_destroy(b);
    if (w->rc)
        return;
    c->dropped = true;
    pthread_mutex_lock(&st->colls_mu);
    i = find_coll(st, w->name, w->name_len);
    memmove(&st->colls[i], &st->colls[i + 1], (st->ncolls - (size_t)i - 1) * sizeof *st->colls);
    st->ncolls--;
    pthread_mutex_unlock(&st->colls_mu);
    qv_coll_release(c); /* the store's reference; readers still holding one finish first */
}
