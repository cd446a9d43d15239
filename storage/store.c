/* The shard store: collections, the group-commit write path and sealing. The design is described in store.h.
 *
 * Manifest blob (meta column family, key "m" be32 coll), little-endian:
 *   u32 magic "QVMF" | u8 version (1) | u64 seal_seq | u64 next segment id | u32 nsegs |
 *   nsegs x (u64 segment id | u64 blob length) | u64 xxh3-64 of every byte before it
 *
 * Locks, outermost first: the writer queue mutex is never held while doing I/O; colls_mu guards the collection
 * table only; a collection's rwlock guards its segments and id map. The commit leader takes a collection's write
 * lock only to apply already-durable writes and to swap segments at a seal, so readers wait at most that long. */
#include "storage/store_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "index/hnsw.h"
#include "storage/indexer.h"

#define DEFAULT_SEAL_ROWS 100000
#define DEFAULT_SEAL_WAL_BYTES (256ull << 20)

int64_t qv__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void qv__store_log(qv_store_t *st, const char *event, const char *fields, ...)
{
    if (!st->opts.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fields);
    vsnprintf(buf, sizeof buf, fields, ap);
    va_end(ap);
    st->opts.log(strstr(event, "failed") ? 2 : 1, event, buf);
}

void qv__store_maybe_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg)
{
    if (st->indexer && c->schema->index_kind == QV_INDEX_HNSW && seg->rows >= st->opts.index_min_rows &&
        seg->rows > 0)
        qv__indexer_submit(st->indexer, c, seg);
    else
        atomic_store(&seg->index_state, QV_IDX_NONE);
}

void qv_store_seg_index_info(qv_store_t *st, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes)
{
    qv__indexer_seg_info(st->indexer, seg, state, progress, bytes);
}

/* ---- collections ---- */

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
    qv_wbuf_init(&c->gone);
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
    qv_wbuf_free(&c->gone);
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

static void note_gone(qv_coll_t *c, qv_str_t id)
{
    qv_wbuf_u16(&c->gone, (uint16_t)id.len);
    qv_wbuf_put(&c->gone, id.p, id.len);
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
                qv_seg_delete(old.seg, old.row);
            else
                c->live++;
            n++;
        }
    } else {
        for (uint32_t i = 0; i < rec->count; i++) {
            qv_idslot_t old;
            if (qv_idmap_del(&c->ids, rec->ids[i], &old)) {
                qv_seg_delete(old.seg, old.row);
                note_gone(c, rec->ids[i]);
                c->live--;
                n++;
            }
        }
        if (c->gone.oom)
            return QV_ENOMEM;
    }
    c->last_seq = rec->seq;
    c->wal_bytes += rec_bytes;
    c->wal_growing += rec_bytes;
    if (count)
        *count = n;
    return QV_OK;
}

/* ---- sealing ---- */

int qv__rocks_write(qv_store_t *st, rocksdb_writebatch_t *b, qv_err_t *err)
{
    char *e = NULL;
    rocksdb_write(st->db, st->wsync, b, &e);
    if (e) {
        qv__store_fail(st, "storage write failed: %s", e);
        qv_err_set(err, QV_EIO, "storage write failed: %s", e);
        rocksdb_free(e);
        return QV_EIO;
    }
    return QV_OK;
}

static int seg_id_cmp(const void *a, const void *b)
{
    uint64_t x = (*(qv_segment_t *const *)a)->id, y = (*(qv_segment_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* The manifest of c's sealed segments, minus `drop`, plus `add` (may be NULL), in ascending id order. */
int qv__encode_manifest(qv_wbuf_t *out, const qv_coll_t *c, uint64_t seal_seq, uint64_t next_seg,
                        qv_segment_t *add, qv_segment_t *const *drop, size_t ndrop, bool include_frozen,
                        const bool *also)
{
    qv_segment_t **list = malloc((c->nsealed + 1) * sizeof *list);
    if (!list)
        return QV_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < c->nsealed; i++) {
        bool dropped = !include_frozen && !c->sealed[i]->persisted && !(also && also[i]);
        for (size_t d = 0; d < ndrop; d++)
            dropped = dropped || drop[d] == c->sealed[i];
        if (!dropped)
            list[n++] = c->sealed[i];
    }
    if (add)
        list[n++] = add;
    qsort(list, n, sizeof *list, seg_id_cmp);
    size_t start = out->len;
    qv_wbuf_u32(out, MANIFEST_MAGIC);
    qv_wbuf_u8(out, MANIFEST_VERSION);
    qv_wbuf_u64(out, seal_seq);
    qv_wbuf_u64(out, next_seg);
    qv_wbuf_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        qv_wbuf_u64(out, list[i]->id);
        qv_wbuf_u64(out, list[i]->blob_len);
    }
    free(list);
    return qv_wbuf_seal(out, start);
}

int qv__manifest_decode(const void *data, size_t len, uint64_t *seal_seq, uint64_t *next_seg, uint64_t **segs,
                        uint64_t **blob_lens, uint32_t *nsegs, qv_err_t *err)
{
    *segs = NULL;
    *blob_lens = NULL;
    qv_rbuf_t r;
    bool sealed = qv_rbuf_open_sealed(&r, data, len);
    uint32_t magic = qv_rbuf_u32(&r);
    uint8_t version = qv_rbuf_u8(&r);
    *seal_seq = qv_rbuf_u64(&r);
    *next_seg = qv_rbuf_u64(&r);
    *nsegs = qv_rbuf_u32(&r);
    if (!sealed || r.failed || magic != MANIFEST_MAGIC || version != MANIFEST_VERSION ||
        (uint64_t)*nsegs * 16 != qv_rbuf_left(&r))
        return qv_err_set(err, QV_ECORRUPT, "manifest: bad header or checksum");
    /* ids are handed out one by one from 1: anything near 2^64 is damage, and next_seg + 1 must not wrap */
    if (*next_seg == 0 || *next_seg > (UINT64_MAX >> 1))
        return qv_err_set(err, QV_ECORRUPT, "manifest: next segment id %" PRIu64 " out of range", *next_seg);
    *segs = malloc((*nsegs ? *nsegs : 1) * sizeof(uint64_t));
    *blob_lens = malloc((*nsegs ? *nsegs : 1) * sizeof(uint64_t));
    if (!*segs || !*blob_lens) {
        free(*segs);
        free(*blob_lens);
        *segs = *blob_lens = NULL;
        return qv_err_set(err, QV_ENOMEM, "manifest: out of memory");
    }
    for (uint32_t i = 0; i < *nsegs; i++) {
        (*segs)[i] = qv_rbuf_u64(&r);
        (*blob_lens)[i] = qv_rbuf_u64(&r);
        if ((*segs)[i] >= *next_seg || (i > 0 && (*segs)[i] <= (*segs)[i - 1])) {
            free(*segs);
            free(*blob_lens);
            *segs = *blob_lens = NULL;
            return qv_err_set(err, QV_ECORRUPT, "manifest: segment ids out of order");
        }
    }
    return QV_OK;
}

/* Freezes c's growing segment: its rows become immutable and searchable as a sealed segment, and an empty growing
 * segment takes its place. Nothing is written: the WAL still covers the rows until persist() runs. Leader only. */
static int freeze(qv_store_t *st, qv_coll_t *c, qv_segment_t **frozen, qv_err_t *err)
{
    qv_segment_t *g = c->growing;
    if (frozen)
        *frozen = NULL;
    if (g->rows == 0)
        return QV_OK;
    /* Room in the sealed list first, under the write lock (readers walk c->sealed); only the leader changes the
     * list, so the room is still there below. */
    pthread_rwlock_wrlock(&c->lock);
    int rc = qv__coll_reserve_sealed(c);
    pthread_rwlock_unlock(&c->lock);
    qv_segment_t *next = rc == QV_OK ? qv_seg_create(c->schema, c->next_seg_id) : NULL;
    if (!next)
        return qv_err_set(err, QV_ENOMEM, "seal: out of memory");
    (void)st;
    /* The inverted lists are built here, off the lock (only the leader appends, so the rows cannot change), into a
     * copy of the columns; the pointers are published under the write lock below. */
    qv_postings_t **post = calloc(g->nfields ? g->nfields : 1, sizeof *post);
    if (post) {
        qv_column_t saved[g->nfields ? g->nfields : 1];
        memcpy(saved, g->cols, g->nfields * sizeof *saved);
        qv_segment_t shadow = *g;
        shadow.cols = saved;
        qv_seg_build_postings(&shadow);
        for (int f = 0; f < g->nfields; f++)
            post[f] = saved[f].post;
    }
    pthread_rwlock_wrlock(&c->lock);
    for (int f = 0; post && f < g->nfields; f++)
        g->cols[f].post = post[f];
    free(post);
    g->sealed = true;
    g->freeze_seq = c->last_seq;
    g->wal_share = c->wal_growing;
    c->wal_growing = 0;
    qv__coll_add_sealed(c, g); /* the growing slot's reference moves to the sealed list */
    c->growing = next;
    c->next_seg_id++;
    pthread_rwlock_unlock(&c->lock);
    if (frozen)
        *frozen = g;
    return QV_OK;
}

void qv__put_keys(qv_store_t *st, rocksdb_writebatch_t *b, uint32_t coll, const qv_segment_t *g)
{
    uint8_t k[4 + QV_ID_MAX], v[12];
    qv_be32(k, coll);
    for (uint32_t r = 0; r < g->rows; r++) {
        if (qv_seg_is_deleted(g, r))
            continue;
        qv_str_t id = qv_strcol_get(&g->ids, r);
        memcpy(k + 4, id.p, id.len);
        memcpy(v, &g->id, 8);
        memcpy(v + 8, &r, 4);
        rocksdb_writebatch_put_cf(b, st->cf[CF_KEYS], (char *)k, 4 + id.len, (char *)v, 12);
    }
}

void qv__put_chunks(qv_store_t *st, rocksdb_writebatch_t *b, int cf, uint32_t coll, uint64_t seg, const void *data,
                    size_t len)
{
    uint8_t k[16];
    for (size_t off = 0, chunk = 0; off < len; off += SEG_CHUNK, chunk++) {
        size_t n = len - off < SEG_CHUNK ? len - off : SEG_CHUNK;
        rocksdb_writebatch_put_cf(b, st->cf[cf], (char *)k, key_seg(k, coll, seg, (uint32_t)chunk),
                                  (const char *)data + off, n);
    }
}

/* Persists every frozen segment of c (their blobs unless the sealer already wrote them, id-map entries for their
 * live rows), the id-map removals and delete bitmaps changed since the last persist, and the manifest; and drops
 * the WAL records all of that covers: one atomic batch. With no frozen segment and an empty growing one (a run of
 * deletes) it still persists bitmaps and drops the WAL. Leader only; *sealed counts the segments persisted. */
static int persist(qv_store_t *st, qv_coll_t *c, bool inline_blobs, uint32_t *sealed, qv_err_t *err)
{
    uint32_t coll = c->schema->id;
    uint64_t covered = c->seal_seq, share = 0;
    size_t nfrozen = 0, left = 0;
    /* The frozen segments persisted now: all of them when blobs may be written here (Flush, close); otherwise the
     * run, in freeze order, whose blobs the sealer has written. A prefix in freeze order keeps every WAL record
     * up to `covered` inside a persisted segment; the rest stay covered by the WAL until their own turn. */
    bool *pick = calloc(c->nsealed ? c->nsealed : 1, sizeof *pick);
    if (!pick)
        return qv_err_set(err, QV_ENOMEM, "seal: out of memory");
    for (size_t i = 0; i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted)
            continue;
        if (left || (!inline_blobs && !g->blob_written)) {
            left++;
            continue;
        }
        pick[i] = true;
        nfrozen++;
        share += g->wal_share;
        if (g->freeze_seq > covered)
            covered = g->freeze_seq;
    }
    bool growing_empty = c->growing->rows == 0 && left == 0;
    if (growing_empty)
        covered = c->last_seq, share = c->wal_bytes;
    if (covered == c->seal_seq && nfrozen == 0) {
        free(pick);
        return QV_OK;
    }

    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    uint8_t k[16 + QV_ID_MAX];
    int rc = QV_OK;
    for (size_t i = 0; rc == QV_OK && i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (!pick[i])
            continue;
        if (!g->blob_written) {
            buf.len = 0;
            rc = qv_seg_encode(g, &buf);
            g->blob_len = buf.len;
            qv__put_chunks(st, b, CF_SEG, coll, g->id, buf.data, buf.len);
        }
        qv__put_keys(st, b, coll, g);
    }
    /* ids deleted since the last persist and not written again */
    qv_rbuf_t gr;
    qv_rbuf_init(&gr, c->gone.data, c->gone.len);
    while (qv_rbuf_left(&gr) > 0) {
        uint16_t l = qv_rbuf_u16(&gr);
        const uint8_t *p = qv_rbuf_take(&gr, l);
        if (!p)
            break;
        qv_str_t id = {(const char *)p, l};
        if (!qv_idmap_get(&c->ids, id)) {
            qv_be32(k, coll);
            memcpy(k + 4, p, l);
            rocksdb_writebatch_delete_cf(b, st->cf[CF_KEYS], (char *)k, 4 + l);
        }
    }
    /* delete bitmaps that changed, the picked frozen segments' included */
    for (size_t i = 0; rc == QV_OK && i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted ? !g->del_dirty : !pick[i])
            continue;
        buf.len = 0;
        rc = qv_seg_encode_deleted(g, &buf);
        rocksdb_writebatch_put_cf(b, st->cf[CF_DEL], (char *)k, key_seg(k, coll, g->id, 0) - 4, (char *)buf.data,
                                  buf.len);
    }
    if (rc == QV_OK) {
        buf.len = 0;
        /* the manifest lists the persisted and the picked segments (the flags flip only after the batch) */
        rc = qv__encode_manifest(&buf, c, covered, c->next_seg_id, NULL, NULL, 0, false, pick);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], (char *)k, key_coll(k, 'm', coll), (char *)buf.data, buf.len);
    }
    if (rc == QV_OK) {
        uint8_t lo[QV_WAL_KEY_LEN], hi[QV_WAL_KEY_LEN];
        qv_wal_key(lo, coll, 0);
        qv_wal_key(hi, coll, covered + 1);
        rocksdb_writebatch_delete_range_cf(b, st->cf[CF_WAL], (char *)lo, sizeof lo, (char *)hi, sizeof hi);
        uint8_t seqv[8];
        memcpy(seqv, &st->seq, 8);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], "s", 1, (char *)seqv, 8);
        rc = qv__rocks_write(st, b, err);
    } else {
        qv_err_set(err, rc, "seal: out of memory");
    }
    rocksdb_writebatch_destroy(b);
    qv_wbuf_free(&buf);
    if (rc) {
        free(pick);
        return rc;
    }

    qv_segment_t **done = malloc((c->nsealed ? c->nsealed : 1) * sizeof *done);
    size_t ndone = 0;
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < c->nsealed; i++) {
        qv_segment_t *g = c->sealed[i];
        if (g->persisted)
            g->del_dirty = false;
        if (pick[i]) {
            g->del_dirty = false;
            g->persisted = g->blob_written = true;
            if (done) { /* without the list (out of memory) the segment is indexed at the next start */
                qv_seg_ref(g);
                done[ndone++] = g;
            }
        }
    }
    c->seal_seq = covered;
    c->wal_bytes -= share < c->wal_bytes ? share : c->wal_bytes;
    if (growing_empty)
        c->wal_growing = 0;
    c->gone.len = 0;
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < ndone; i++) {
        qv__store_maybe_index(st, c, done[i]);
        qv_seg_unref(done[i]);
    }
    free(done);
    free(pick);
    if (sealed)
        *sealed += (uint32_t)nfrozen;
    return QV_OK;
}

/* The sealer thread's work for one frozen segment: write its blob outside the commit path, then let the leader
 * persist it (a small batch). If the leader got there first (Flush), nothing is left to do; blob chunks written
 * for a segment that never reaches the manifest are removed at the next start-up. */
typedef struct {
    qv_store_t *st;
    qv_coll_t *c;
    qv_segment_t *g;
} seal_task_t;

static void seal_task(void *arg, bool run)
{
    seal_task_t *t = arg;
    if (run && !t->c->dropped) {
        qv_wbuf_t blob;
        qv_wbuf_init(&blob);
        int rc = qv_seg_encode(t->g, &blob); /* the rows are immutable once frozen */
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        qv_err_t err;
        qv_err_clear(&err);
        if (rc == QV_OK) {
            qv__put_chunks(t->st, b, CF_SEG, t->c->schema->id, t->g->id, blob.data, blob.len);
            char *e = NULL;
            rocksdb_write(t->st->db, t->st->wsync, b, &e);
            if (e) {
                rc = qv_err_set(&err, QV_EIO, "%s", e);
                rocksdb_free(e);
            }
        }
        rocksdb_writebatch_destroy(b);
        if (rc == QV_OK && t->c->dropped) { /* dropped while we wrote: take the chunks back out */
            uint8_t lo[16], hi[16];
            key_seg(lo, t->c->schema->id, t->g->id, 0);
            key_seg(hi, t->c->schema->id, t->g->id + 1, 0);
            char *e = NULL;
            rocksdb_delete_range_cf(t->st->db, t->st->wsync, t->st->cf[CF_SEG], (char *)lo, 12, (char *)hi, 12, &e);
            rocksdb_free(e);
        }
        qv_writer_t w = {.op = W_PERSIST, .coll = t->c, .seg = t->g, .blob_len = blob.len, .err = &err};
        w.blob = rc == QV_OK ? t->g : NULL; /* non-NULL: the chunks are in place; NULL: the leader writes them */
        qv_wbuf_free(&blob);
        if (rc)
            qv__store_log(t->st, "seal.blob_write_failed", "collection=%s segment=%llu msg=\"%s\" (the commit leader "
                          "writes it instead)", t->c->schema->name, (unsigned long long)t->g->id, err.msg);
        rc = qv__commit(t->st, &w);
        if (rc && rc != QV_ENOTFOUND)
            qv__store_log(t->st, "seal.failed", "collection=%s segment=%llu msg=\"%s\"", t->c->schema->name,
                          (unsigned long long)t->g->id, err.msg);
    }
    qv_seg_unref(t->g);
    qv_coll_release(t->c);
    free(t);
}

static void run_persist(qv_store_t *st, qv_writer_t *w)
{
    qv_coll_t *c = w->coll;
    if (c->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    if (w->seg && w->seg->persisted)
        return; /* a Flush persisted it already */
    if (w->seg && w->blob) {
        w->seg->blob_written = true;
        w->seg->blob_len = w->blob_len;
    }
    /* the sealer's call persists only segments whose blobs are written, unless its own write failed */
    w->rc = persist(st, c, w->seg == NULL || !w->blob, NULL, w->err);
}

/* Seals after a write crossed a threshold: freeze now, persist in the background. */
static void seal_async(qv_store_t *st, qv_coll_t *c)
{
    qv_err_t err;
    if (c->growing->rows == 0) {
        /* only deletes accumulated: nothing to write but bitmaps; do it now unless frozen segments are pending
         * (persist() would cover their WAL records and must write them first: the sealer will get to it) */
        bool pending = false;
        for (size_t i = 0; i < c->nsealed; i++)
            pending = pending || !c->sealed[i]->persisted;
        if (!pending)
            persist(st, c, true, NULL, &err);
        return;
    }
    qv_segment_t *g;
    if (freeze(st, c, &g, &err) != QV_OK || !g)
        return;
    seal_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        free(t); /* the next Flush or threshold persists it */
        return;
    }
    t->st = st;
    t->c = c;
    t->g = g;
    atomic_fetch_add(&c->refs, 1);
    qv_seg_ref(g);
    if (qv__indexer_task(st->sealer, seal_task, t) != QV_OK) {
        qv_seg_unref(g);
        qv_coll_release(c);
        free(t);
    }
}

/* Flush: freeze and persist now, in the leader. */
static int seal(qv_store_t *st, qv_coll_t *c, uint32_t *sealed, qv_err_t *err)
{
    int rc = freeze(st, c, NULL, err);
    return rc ? rc : persist(st, c, true, sealed, err);
}

/* ---- the commit queue ---- */

static bool is_data(const qv_writer_t *w) { return w->op == W_UPSERT || w->op == W_DELETE; }

static void run_create(qv_store_t *st, qv_writer_t *w)
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
    uint8_t k[8], nid[4];
    int rc = qv_schema_encode(s, &buf);
    if (rc == QV_OK) {
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], (char *)k, key_coll(k, 'c', s->id), (char *)buf.data, buf.len);
        buf.len = 0;
        rc = qv__encode_manifest(&buf, c, 0, c->next_seg_id, NULL, NULL, 0, false, NULL);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], (char *)k, key_coll(k, 'm', s->id), (char *)buf.data, buf.len);
        uint32_t next = st->next_coll_id + 1;
        memcpy(nid, &next, 4);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], "n", 1, (char *)nid, 4);
    }
    rc = rc ? qv_err_set(w->err, rc, "create: out of memory") : qv__rocks_write(st, b, w->err);
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

static void delete_prefix(qv_store_t *st, rocksdb_writebatch_t *b, int cf, uint32_t coll)
{
    uint8_t lo[4], hi[4];
    qv_be32(lo, coll);
    qv_be32(hi, coll + 1);
    rocksdb_writebatch_delete_range_cf(b, st->cf[cf], (char *)lo, 4, (char *)hi, 4);
}

static void run_drop(qv_store_t *st, qv_writer_t *w)
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
    uint8_t k[8];
    rocksdb_writebatch_delete_cf(b, st->cf[CF_META], (char *)k, key_coll(k, 'c', id));
    rocksdb_writebatch_delete_cf(b, st->cf[CF_META], (char *)k, key_coll(k, 'm', id));
    delete_prefix(st, b, CF_WAL, id);
    delete_prefix(st, b, CF_SEG, id);
    delete_prefix(st, b, CF_KEYS, id);
    delete_prefix(st, b, CF_DEL, id);
    delete_prefix(st, b, CF_IDX, id);
    uint8_t seqv[8]; /* the dropped collection's WAL held the highest sequence numbers perhaps: keep the floor */
    memcpy(seqv, &st->seq, 8);
    rocksdb_writebatch_put_cf(b, st->cf[CF_META], "s", 1, (char *)seqv, 8);
    w->rc = qv__rocks_write(st, b, w->err);
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

static void run_flush(qv_store_t *st, qv_writer_t *w)
{
    w->count = 0;
    if (w->coll) {
        w->rc = w->coll->dropped ? qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped")
                                 : seal(st, w->coll, &w->count, w->err);
        return;
    }
    qv_coll_t **list;
    size_t n;
    if ((w->rc = qv_store_list(st, &list, &n)) != QV_OK) {
        qv_err_set(w->err, w->rc, "flush: out of memory");
        return;
    }
    for (size_t i = 0; i < n && w->rc == QV_OK; i++)
        w->rc = seal(st, list[i], &w->count, w->err);
    qv_store_list_free(list, n);
}

/* Replaces the stored index blob of a segment (chunked like segment blobs). */
static void run_index(qv_store_t *st, qv_writer_t *w)
{
    if (w->coll->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    bool present = false; /* a compaction may have replaced the segment while its graph was being built */
    for (size_t i = 0; i < w->coll->nsealed && !present; i++)
        present = w->coll->sealed[i] == w->seg;
    if (!present) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "segment was compacted away");
        return;
    }
    uint32_t coll = w->coll->schema->id;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint8_t lo[16], hi[16];
    key_seg(lo, coll, w->seg->id, 0);
    key_seg(hi, coll, w->seg->id + 1, 0);
    rocksdb_writebatch_delete_range_cf(b, st->cf[CF_IDX], (char *)lo, 12, (char *)hi, 12);
    qv__put_chunks(st, b, CF_IDX, coll, w->seg->id, w->blob, w->blob_len);
    w->rc = qv__rocks_write(st, b, w->err);
    rocksdb_writebatch_destroy(b);
}

/* Logs and applies a run of data writes (see store.h). */
static void run_group(qv_store_t *st, qv_writer_t *first, qv_writer_t *last)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_wbuf_t buf;
    qv_wbuf_init(&buf);
    size_t *ends = NULL, nw = 0;
    for (qv_writer_t *w = first;; w = w->next) {
        nw++;
        if (w == last)
            break;
    }
    ends = calloc(nw, sizeof *ends);
    size_t i = 0;
    bool any = false;
    for (qv_writer_t *w = first; ends; w = w->next, i++) {
        uint32_t coll = w->coll->schema->id;
        size_t start = buf.len;
        if (w->coll->dropped) {
            w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection '%s' was dropped", w->coll->schema->name);
        } else {
            w->seq = ++st->seq;
            w->rc = w->op == W_UPSERT
                        ? qv_record_encode_upsert(&buf, coll, w->seq, w->coll->schema->dim, w->pts, w->n)
                        : qv_record_encode_delete(&buf, coll, w->seq, w->ids, w->n);
            if (w->rc)
                qv_err_set(w->err, w->rc, "out of memory encoding the write");
        }
        ends[i] = buf.len;
        if (w->rc == QV_OK) {
            uint8_t key[QV_WAL_KEY_LEN];
            qv_wal_key(key, coll, w->seq);
            /* The record bytes are copied into the batch here, so buf may move later. */
            rocksdb_writebatch_put_cf(b, st->cf[CF_WAL], (char *)key, sizeof key, (char *)buf.data + start,
                                      buf.len - start);
            any = true;
        }
        if (w == last)
            break;
    }
    int rc = ends ? QV_OK : QV_ENOMEM;
    qv_err_t werr;
    if (rc == QV_OK && any)
        rc = qv__rocks_write(st, b, &werr);
    rocksdb_writebatch_destroy(b);

    i = 0;
    for (qv_writer_t *w = first;; w = w->next, i++) {
        if (w->rc == QV_OK && rc != QV_OK) {
            w->rc = qv_err_set(w->err, rc == QV_ENOMEM ? QV_ENOMEM : QV_EUNAVAIL, "%s",
                               rc == QV_ENOMEM ? "out of memory" : werr.msg);
        } else if (w->rc == QV_OK) {
            /* Apply from the encoded record itself, so memory holds exactly what the log holds. */
            size_t start = i ? ends[i - 1] : 0;
            qv_record_t rec;
            qv_err_t derr;
            int arc = qv_record_decode(buf.data + start, ends[i] - start, w->coll->schema, &rec, &derr);
            if (arc == QV_OK) {
                pthread_rwlock_wrlock(&w->coll->lock);
                arc = qv__coll_apply(w->coll, &rec, ends[i] - start, &w->count);
                pthread_rwlock_unlock(&w->coll->lock);
                qv_record_free(&rec);
            }
            if (arc) {
                /* Durable but not fully applied: memory no longer matches the log. Stop taking writes; a restart
                 * replays the log and gets it right. */
                qv__store_fail(st, "write logged but not applied (%s)", qv_strerror(arc));
                w->rc = qv_err_set(w->err, QV_EUNAVAIL, "write logged but not applied (%s); restart required",
                                   qv_strerror(arc));
            }
        }
        if (w == last)
            break;
    }
    free(ends);
    qv_wbuf_free(&buf);

    /* Seal collections over a threshold; a write that triggered it has already been made durable, so a seal failure
     * fails the store, not the write. */
    for (qv_writer_t *w = first;; w = w->next) {
        qv_coll_t *c = w->coll;
        if (!c->dropped && !atomic_load(&st->failed) &&
            (c->growing->rows >= st->opts.seal_rows || c->wal_growing >= st->opts.seal_wal_bytes))
            seal_async(st, c);
        if (!c->dropped && !atomic_load(&st->failed))
            qv__maybe_auto_compact(st, c);
        if (w == last)
            break;
    }
}

#define GROUP_MAX 256

/* Queues w, waits until it is done or leads, and returns its status. */
int qv__commit(qv_store_t *st, qv_writer_t *w)
{
    pthread_cond_init(&w->cv, NULL);
    w->done = false;
    w->next = NULL;
    w->rc = QV_OK;
    pthread_mutex_lock(&st->q_mu);
    if (st->q_tail)
        st->q_tail->next = w;
    else
        st->q_head = w;
    st->q_tail = w;
    while (!w->done && st->q_head != w)
        pthread_cond_wait(&w->cv, &st->q_mu);
    if (w->done) {
        pthread_mutex_unlock(&st->q_mu);
        pthread_cond_destroy(&w->cv);
        return w->rc;
    }
    /* Leader: take w and the data writes queued right behind it. */
    qv_writer_t *last = w;
    if (is_data(w)) {
        int n = 1;
        while (last->next && is_data(last->next) && n < GROUP_MAX) {
            last = last->next;
            n++;
        }
    }
    pthread_mutex_unlock(&st->q_mu);

    if (atomic_load(&st->failed)) {
        for (qv_writer_t *x = w;; x = x->next) {
            x->rc = qv_err_set(x->err, QV_EUNAVAIL, "store failed after a storage error (%s); restart required",
                               st->fail_reason);
            if (x == last)
                break;
        }
    } else if (is_data(w)) {
        run_group(st, w, last);
    } else if (w->op == W_CREATE) {
        run_create(st, w);
    } else if (w->op == W_DROP) {
        run_drop(st, w);
    } else if (w->op == W_INDEX) {
        run_index(st, w);
    } else if (w->op == W_COMPACT) {
        qv__run_compact(st, w);
    } else if (w->op == W_PERSIST) {
        run_persist(st, w);
    } else {
        run_flush(st, w);
    }

    pthread_mutex_lock(&st->q_mu);
    st->q_head = last->next;
    if (!st->q_head)
        st->q_tail = NULL;
    /* A woken writer needs q_mu to return, so its struct stays valid until we unlock; read next first anyway. */
    for (qv_writer_t *x = w;;) {
        qv_writer_t *nx = x->next;
        bool end = x == last;
        x->done = true;
        if (x != w)
            pthread_cond_signal(&x->cv);
        if (end)
            break;
        x = nx;
    }
    if (st->q_head)
        pthread_cond_signal(&st->q_head->cv);
    pthread_mutex_unlock(&st->q_mu);
    pthread_cond_destroy(&w->cv);
    return w->rc;
}

/* ---- public write API ---- */

int qv_store_create(qv_store_t *st, qv_schema_t *s, qv_err_t *err)
{
    qv_writer_t w = {.op = W_CREATE, .schema = s, .err = err};
    return qv__commit(st, &w);
}

int qv_store_drop(qv_store_t *st, const char *name, size_t len, qv_err_t *err)
{
    qv_writer_t w = {.op = W_DROP, .name = name, .name_len = len, .err = err};
    return qv__commit(st, &w);
}

int qv_store_upsert(qv_store_t *st, qv_coll_t *c, qv_point_t *pts, uint32_t n, uint64_t *seq, qv_err_t *err)
{
    int rc = qv_points_validate(c->schema, pts, n, err);
    if (rc)
        return rc;
    if (n == 0) {
        if (seq)
            *seq = 0;
        return QV_OK;
    }
    qv_writer_t w = {.op = W_UPSERT, .coll = c, .pts = pts, .n = n, .err = err};
    rc = qv__commit(st, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

int qv_store_delete(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, uint32_t *deleted,
                    qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%u ids in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i].len == 0)
            return qv_err_set(err, QV_EINVAL, "id %u is empty", i);
        if (ids[i].len > QV_ID_MAX)
            return qv_err_set(err, QV_EINVAL, "id %u: %u bytes exceeds %u", i, ids[i].len, QV_ID_MAX);
    }
    *deleted = 0;
    if (n == 0)
        return QV_OK;
    qv_writer_t w = {.op = W_DELETE, .coll = c, .ids = ids, .n = n, .err = err};
    int rc = qv__commit(st, &w);
    *deleted = w.count;
    return rc;
}

int qv__store_put_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg, const void *blob, size_t len, qv_err_t *err)
{
    qv_writer_t w = {.op = W_INDEX, .coll = c, .seg = seg, .blob = blob, .blob_len = len, .err = err};
    return qv__commit(st, &w);
}

int qv_store_flush(qv_store_t *st, qv_coll_t *c, uint32_t *sealed, qv_err_t *err)
{
    qv_writer_t w = {.op = W_FLUSH, .coll = c, .err = err};
    int rc = qv__commit(st, &w);
    if (sealed)
        *sealed = w.count;
    return rc;
}

/* ---- open / close ---- */

static const char *cf_names[CF_COUNT] = {"default", "meta", "wal", "seg", "keys", "del", "idx"};

void qv__store_fail(qv_store_t *st, const char *fmt, ...)
{
    if (atomic_flag_test_and_set(&st->fail_claimed))
        return; /* the first failure is the cause; later ones are its consequences */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->fail_reason, sizeof st->fail_reason, fmt, ap);
    va_end(ap);
    atomic_store(&st->failed, true); /* seq_cst: publishes fail_reason to whoever sees the flag */
    qv__store_log(st, "store.failed", "reason=\"%s\" (writes are refused until a restart)", st->fail_reason);
}

bool qv_store_failed(qv_store_t *st, char *reason, size_t reason_len)
{
    if (!atomic_load(&st->failed))
        return false;
    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", st->fail_reason);
    return true;
}

void qv_store_salvage_report(qv_store_t *st, qv_store_salvage_t *out) { *out = st->salvage; }

/* Names the damage RocksDB refused to open over, from our own reading of its logs. */
static void corruption_message(qv_store_t *st, const char *rocks_msg, qv_err_t *err)
{
    qv_rocks_log_report_t rep;
    qv_err_t serr;
    if (qv_rocks_log_scan_dir(st->path, &rep, &serr) == QV_OK && rep.file[0])
        qv_err_set(err, QV_ECORRUPT,
                   "DATA_LOSS: RocksDB log %s/%s is damaged at byte %llu with %llu intact write batches (%llu "
                   "operations) after it (%s); the store did not open. Restore from a copy, or start with --salvage "
                   "to recover everything before the damage and lose those batches",
                   st->path, rep.file, (unsigned long long)rep.offset, (unsigned long long)rep.batches_after,
                   (unsigned long long)rep.ops_after, rocks_msg);
    else
        qv_err_set(err, QV_ECORRUPT, "DATA_LOSS: the store at %s is damaged (%s); the store did not open. Restore "
                   "from a copy, or start with --salvage to recover what RocksDB can", st->path, rocks_msg);
}

/* --salvage: reads the logs; if they are damaged, keeps a copy of them and opens in point-in-time mode (recover up
 * to the damage). */
static int prepare_salvage(qv_store_t *st, qv_err_t *err)
{
    qv_store_salvage_t *sv = &st->salvage;
    struct stat sb;
    if (stat(st->path, &sb) != 0)
        return QV_OK; /* a new store */
    int rc = qv_rocks_log_scan_dir(st->path, &sv->damage, err);
    if (rc || !sv->damage.file[0])
        return rc;
    sv->salvaged = true;
    snprintf(sv->kept, sizeof sv->kept, "%s/salvage-%lld", st->opts.path, (long long)time(NULL));
    if ((rc = qv_rocks_log_keep(st->path, sv->kept, err)) != QV_OK)
        return rc;
    rocksdb_options_set_wal_recovery_mode(st->dbopts, 2 /* kPointInTimeRecovery */);
    return QV_OK;
}

int qv_store_open(const qv_store_opts_t *opts, qv_store_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    st->opts = *opts;
    if (!st->opts.seal_rows)
        st->opts.seal_rows = DEFAULT_SEAL_ROWS;
    if (!st->opts.seal_wal_bytes)
        st->opts.seal_wal_bytes = DEFAULT_SEAL_WAL_BYTES;
    pthread_mutex_init(&st->colls_mu, NULL);
    pthread_mutex_init(&st->q_mu, NULL);
    pthread_mutex_init(&st->jobs_mu, NULL);
    pthread_mutex_init(&st->backup_mu, NULL);
    st->next_coll_id = 1;
    st->next_job_id = 1;

    size_t plen = strlen(opts->path);
    st->path = malloc(plen + 4);
    if (!st->path) {
        free(st);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    memcpy(st->path, opts->path, plen);
    memcpy(st->path + plen, "/db", 4);
    mkdir(opts->path, 0755);

    st->dbopts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->dbopts, 1);
    rocksdb_options_set_create_missing_column_families(st->dbopts, 1);
    rocksdb_options_increase_parallelism(st->dbopts, 2);
    /* RocksDB keeps its log files until every column family with data in them has flushed, and replays them after
     * a crash. By default that may be ~4x the column families' write buffers (hundreds of MB holding segment and
     * index blobs); 6.2 s of a 1M x 128 store's open after kill -9 went to that replay (bench/restart). A bound on
     * the total makes RocksDB flush the oldest column family instead, so recovery replays at most this much. */
    rocksdb_options_set_max_total_wal_size(st->dbopts, (uint64_t)128 << 20);
    /* A torn last record was never acknowledged and is dropped; damage anywhere else in the log would silently drop
     * every acknowledged write after it under RocksDB's default (point-in-time) mode, so it stops the open instead
     * unless the operator asked to salvage. */
    rocksdb_options_set_wal_recovery_mode(st->dbopts, 0 /* kTolerateCorruptedTailRecords */);
    int rc = QV_OK;
    if (opts->salvage)
        rc = prepare_salvage(st, err);
    const rocksdb_options_t *cfopts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cfopts[i] = st->dbopts;
    char *e = NULL;
    if (rc == QV_OK)
        st->db = rocksdb_open_column_families(st->dbopts, st->path, CF_COUNT, cf_names, cfopts, st->cf, &e);
    if (e || rc) {
        if (e && strstr(e, "Corruption"))
            corruption_message(st, e, err);
        else if (e)
            qv_err_set(err, QV_EIO, "cannot open the store at %s: %s", st->path, e);
        rc = rc ? rc : strstr(e, "Corruption") ? QV_ECORRUPT : QV_EIO;
        rocksdb_free(e);
        rocksdb_options_destroy(st->dbopts);
        free(st->path);
        free(st);
        return rc;
    }
    st->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wsync, 1);
    st->ropts = rocksdb_readoptions_create();
    st->indexer = qv__indexer_create(st, st->opts.index_threads > 0 ? st->opts.index_threads : 1);
    st->sealer = qv__indexer_create(st, 1);
    if (!st->indexer || !st->sealer) {
        qv_store_close(st);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    rc = qv__store_recover(st, err);
    if (rc == QV_OK && (qv__indexer_start(st->indexer) != QV_OK || qv__indexer_start(st->sealer) != QV_OK))
        rc = qv_err_set(err, QV_ENOMEM, "cannot start the indexer thread");
    if (rc) {
        qv_store_close(st);
        return rc;
    }
    *out = st;
    return QV_OK;
}

void qv_store_close(qv_store_t *st)
{
    if (!st)
        return;
    qv__indexer_destroy(st->sealer); /* first: work in flight may still write through the store */
    /* Persist what is frozen but not yet written, so the next start replays only the growing segments' WAL. */
    for (size_t i = 0; st->db && !atomic_load(&st->failed) && i < st->ncolls; i++) {
        qv_coll_t *c = st->colls[i];
        bool pending = false;
        qv_coll_rdlock(c); /* a compaction finishing on the indexer thread may swap the list */
        for (size_t k = 0; k < c->nsealed; k++)
            pending = pending || !c->sealed[k]->persisted;
        qv_coll_unlock(c);
        if (pending) {
            qv_err_t err;
            qv_writer_t w = {.op = W_PERSIST, .coll = c, .err = &err};
            if (qv__commit(st, &w) != QV_OK)
                qv__store_log(st, "close.persist_failed", "collection=%s msg=\"%s\"", c->schema->name, err.msg);
        }
    }
    qv__indexer_destroy(st->indexer);
    qv__compactions_free(st);
    for (size_t i = 0; i < st->ncolls; i++)
        qv_coll_release(st->colls[i]);
    free(st->colls);
    for (int i = 0; i < CF_COUNT; i++)
        if (st->cf[i])
            rocksdb_column_family_handle_destroy(st->cf[i]);
    if (st->db)
        rocksdb_close(st->db);
    rocksdb_writeoptions_destroy(st->wsync);
    rocksdb_readoptions_destroy(st->ropts);
    rocksdb_options_destroy(st->dbopts);
    pthread_mutex_destroy(&st->colls_mu);
    pthread_mutex_destroy(&st->q_mu);
    pthread_mutex_destroy(&st->jobs_mu);
    pthread_mutex_destroy(&st->backup_mu);
    free(st->path);
    free(st);
}
