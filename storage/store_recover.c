/* Recovery: rebuilds every collection from the meta, seg and del column families (laid out as catalog.h specifies):
 * schemas, manifests, segment blobs and delete bitmaps; the id map from the segments' live rows (it is not
 * persisted: at every manifest an id is live in at most one listed segment, since a seal writes the bitmaps its
 * replacements changed in the same batch as the new segment, and a compaction swap removes its inputs in the same
 * batch as it adds the output); then replays the WAL.
 * Everything read is untrusted: a blob that fails its checks stops the start-up with QV_ECORRUPT and a message
 * naming the collection and segment, rather than serving silently wrong data. */
#include <stdlib.h>
#include <string.h>

#include "index/hnsw.h"
#include "storage/worker.h"
#include "storage/store_int.h"

/* Iterates keys of cf starting with prefix; calls fn for each; stops on a non-zero return. */
static int scan_prefix(qv_store_t *st, int cf, qv_cat_key_t prefix,
                       int (*fn)(void *arg, const char *k, size_t kl, const char *v, size_t vl), void *arg,
                       qv_err_t *err)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cat.cf[cf]);
    int rc = QV_OK;
    for (rocksdb_iter_seek(it, prefix.bytes, prefix.len); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < prefix.len || memcmp(k, prefix.bytes, prefix.len) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        if ((rc = fn(arg, k, kl, v, vl)) != QV_OK)
            break;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e) {
        rc = qv_err_set(err, QV_EIO, "reading the store: %s", e);
        rocksdb_free(e);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

typedef struct {
    qv_store_t *st;
    qv_coll_t *c;
    qv_wbuf_t blob;
    uint32_t next_chunk;
    qv_err_t *err;
} load_ctx_t;

/* meta "a": the applied index of each external log (qv_store_apply) */
static int applied_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    load_ctx_t *x = arg;
    uint64_t group, index;
    if (!qv_cat_parse_applied(k, kl, v, vl, &group, &index))
        return qv_err_set(x->err, QV_ECORRUPT, "applied index entry of %zu/%zu bytes", kl, vl);
    return qv__applied_set(x->st, group, index) == QV_OK ? QV_OK : qv_err_set(x->err, QV_ENOMEM, "out of memory");
}

static int schema_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    load_ctx_t *x = arg;
    qv_schema_t *s;
    int rc = qv_schema_decode(v, vl, &s, x->err);
    if (rc)
        return rc;
    uint32_t coll;
    if (!qv_cat_parse_schema_key(k, kl, &coll) || coll != s->id) {
        free(s);
        return qv_err_set(x->err, QV_ECORRUPT, "schema key does not match collection id");
    }
    qv_coll_t *c = qv__coll_new(s);
    if (!c) {
        free(s);
        return qv_err_set(x->err, QV_ENOMEM, "out of memory");
    }
    if (qv__store_insert_coll(x->st, c)) {
        qv__coll_free(c);
        return qv_err_set(x->err, QV_ENOMEM, "out of memory");
    }
    return QV_OK;
}

static int chunk_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    load_ctx_t *x = arg;
    uint32_t coll, chunk;
    uint64_t seg;
    if (!qv_cat_parse_chunk_key(k, kl, &coll, &seg, &chunk) || chunk != x->next_chunk)
        return qv_err_set(x->err, QV_ECORRUPT, "collection '%s': segment chunks out of order",
                          x->c->schema->name);
    x->next_chunk++;
    qv_wbuf_put(&x->blob, v, vl);
    return x->blob.oom ? qv_err_set(x->err, QV_ENOMEM, "out of memory loading a segment") : QV_OK;
}

static int load_segment(load_ctx_t *x, uint64_t seg_id, uint64_t blob_len)
{
    qv_store_t *st = x->st;
    qv_coll_t *c = x->c;
    uint32_t coll = c->schema->id;
    qv_cat_key_t k = qv_cat_segment_prefix(coll, seg_id); /* also the key of its delete bitmap */
    x->blob.len = 0;
    x->next_chunk = 0;
    int rc = scan_prefix(st, CF_SEG, k, chunk_cb, x, x->err);
    if (rc)
        return rc;
    if (x->blob.len != blob_len)
        return qv_err_set(x->err, QV_ECORRUPT, "collection '%s' segment %llu: %zu bytes stored, manifest says %llu",
                          c->schema->name, (unsigned long long)seg_id, x->blob.len, (unsigned long long)blob_len);
    qv_segment_t *seg;
    rc = qv_seg_decode(x->blob.data, x->blob.len, c->schema, &seg, x->err);
    if (rc)
        return rc;
    if (seg->id != seg_id) {
        qv_seg_unref(seg);
        return qv_err_set(x->err, QV_ECORRUPT, "segment %llu holds id %llu", (unsigned long long)seg_id,
                          (unsigned long long)seg->id);
    }
    size_t vl;
    char *e = NULL;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cat.cf[CF_DEL], k.bytes, k.len, &vl, &e);
    if (e) {
        rc = qv_err_set(x->err, QV_EIO, "reading delete bitmap: %s", e);
        rocksdb_free(e);
    } else if (v) {
        rc = qv_seg_decode_deleted(seg, v, vl, x->err);
    }
    rocksdb_free(v);
    if (rc) {
        qv_seg_unref(seg);
        return rc;
    }
    qv_seg_build_postings(seg);
    if (qv__coll_reserve_sealed(c) != QV_OK) {
        qv_seg_unref(seg);
        return qv_err_set(x->err, QV_ENOMEM, "recovery: out of memory");
    }
    qv__coll_add_sealed(c, seg);
    qv__load_index(st, c, seg);
    return QV_OK;
}

typedef struct {
    qv_wbuf_t blob;
    uint32_t next_chunk;
    bool bad;
} idx_ctx_t;

static int idx_chunk_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    idx_ctx_t *x = arg;
    uint32_t coll, chunk;
    uint64_t seg;
    if (!qv_cat_parse_chunk_key(k, kl, &coll, &seg, &chunk) || chunk != x->next_chunk) {
        x->bad = true;
        return QV_ECORRUPT;
    }
    x->next_chunk++;
    qv_wbuf_put(&x->blob, v, vl);
    return x->blob.oom ? QV_ENOMEM : QV_OK;
}

void qv__load_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg)
{
    if (c->schema->index_kind != QV_INDEX_HNSW || seg->rows < st->opts.index_min_rows || seg->rows == 0) {
        atomic_store(&seg->index_state, QV_IDX_NONE);
        return;
    }
    idx_ctx_t x = {0};
    qv_wbuf_init(&x.blob);
    qv_err_t err;
    qv_err_clear(&err);
    int rc = scan_prefix(st, CF_IDX, qv_cat_segment_prefix(c->schema->id, seg->id), idx_chunk_cb, &x, &err);
    qv_hnsw_t *h = NULL;
    if (rc == QV_OK && x.blob.len > 0)
        rc = qv_hnsw_decode(x.blob.data, x.blob.len, seg->vectors, seg->rows, seg->dim, 0, &err, &h);
    if (rc == QV_OK && h) {
        atomic_store_explicit(&seg->index, h, memory_order_release);
        atomic_store(&seg->index_state, QV_IDX_READY);
    } else {
        if (x.blob.len > 0 || x.bad)
            qv__store_log(st, "index.load_failed", "collection=%s segment=%llu msg=\"%s\" (rebuilding)",
                          c->schema->name, (unsigned long long)seg->id, err.msg);
        qv__worker_index(st->worker, c, seg);
    }
    qv_wbuf_free(&x.blob);
}

/* The id map from the sealed segments' live rows (see the top of this file); an id live in two of them is damage. */
static int rebuild_ids(load_ctx_t *x)
{
    qv_coll_t *c = x->c;
    uint64_t live = 0;
    for (size_t i = 0; i < c->nsealed; i++)
        live += c->sealed[i]->rows - c->sealed[i]->ndeleted;
    if (live > SIZE_MAX / 2 || qv_idmap_reserve(&c->ids, (size_t)live) != QV_OK)
        return qv_err_set(x->err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->nsealed; i++) {
        qv_segment_t *seg = c->sealed[i];
        for (uint32_t row = 0; row < seg->rows; row++) {
            if (qv_seg_is_deleted(seg, row))
                continue;
            qv_str_t id = qv_strcol_get(&seg->ids, row);
            qv_idslot_t old;
            int rc;
            if (qv_idmap_put(&c->ids, id, seg, row, &old, &rc))
                return qv_err_set(x->err, QV_ECORRUPT, "collection '%s': id '%.*s' is live in segments %llu and %llu",
                                  c->schema->name, (int)(id.len > 64 ? 64 : id.len), id.p,
                                  (unsigned long long)old.seg->id, (unsigned long long)seg->id);
            if (rc)
                return qv_err_set(x->err, QV_ENOMEM, "out of memory");
            c->live++;
        }
    }
    return QV_OK;
}

/* id-map entries of stores written before the id map was rebuilt from the segments: nothing reads them; removed */
static int drop_old_id_entries(qv_store_t *st, uint32_t coll, qv_err_t *err)
{
    qv_cat_key_t p = qv_cat_coll_prefix(coll);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cat.cf[CF_KEYS]);
    rocksdb_iter_seek(it, p.bytes, p.len);
    size_t kl = 0;
    const char *k = rocksdb_iter_valid(it) ? rocksdb_iter_key(it, &kl) : NULL;
    bool any = k && kl >= p.len && memcmp(k, p.bytes, p.len) == 0;
    rocksdb_iter_destroy(it);
    if (!any)
        return QV_OK;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_cat_delete_id_entries(&st->cat, b, coll);
    int rc = qv__rocks_write(st, b, "recover", err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

static int wal_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    load_ctx_t *x = arg;
    qv_coll_t *c = x->c;
    qv_record_t rec;
    int rc = qv_record_decode(v, vl, c->schema, &rec, x->err);
    if (rc)
        return rc;
    uint64_t key_seq;
    if (!qv_cat_parse_wal_key(k, kl, &key_seq) || key_seq != rec.seq || rec.seq <= c->last_seq) {
        qv_record_free(&rec);
        return qv_err_set(x->err, QV_ECORRUPT, "collection '%s': WAL record out of sequence", c->schema->name);
    }
    uint64_t seq = rec.seq;
    rc = qv__coll_apply(c, &rec, vl, NULL);
    qv_record_free(&rec);
    if (rc)
        return qv_err_set(x->err, rc, "collection '%s': replaying the WAL: %s", c->schema->name, qv_strerror(rc));
    if (seq > x->st->seq)
        x->st->seq = seq;
    return QV_OK;
}

/* Blob chunks of segments the manifest does not list (a frozen segment whose blob its seal job wrote before a crash
 * stopped the manifest switch) are removed, so a later segment can never read them. */
static int remove_orphans(qv_store_t *st, qv_coll_t *c, const uint64_t *segs, uint32_t nsegs, qv_err_t *err)
{
    uint32_t coll = c->schema->id;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cat.cf[CF_SEG]);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    size_t orphans = 0;
    qv_cat_key_t start = qv_cat_coll_prefix(coll);
    for (rocksdb_iter_seek(it, start.bytes, start.len); rocksdb_iter_valid(it);) {
        size_t kl;
        const char *key = rocksdb_iter_key(it, &kl);
        uint32_t kcoll, chunk;
        uint64_t seg;
        if (!qv_cat_parse_chunk_key(key, kl, &kcoll, &seg, &chunk) || kcoll != coll)
            break;
        bool listed = false;
        for (uint32_t i = 0; i < nsegs && !listed; i++)
            listed = segs[i] == seg;
        if (!listed) {
            qv_cat_delete_segment(&st->cat, b, coll, seg);
            orphans++;
        }
        qv_cat_key_t next = qv_cat_segment_prefix(coll, seg + 1);
        rocksdb_iter_seek(it, next.bytes, next.len); /* skip the rest of this segment's chunks */
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    int rc = QV_OK;
    if (e) {
        rc = qv_err_set(err, QV_EIO, "reading the store: %s", e);
        rocksdb_free(e);
    } else if (orphans) {
        rc = qv__rocks_write(st, b, "recover", err);
        qv__store_log(st, "recover.orphans_removed", "collection=%s segments=%zu", c->schema->name, orphans);
    }
    rocksdb_writebatch_destroy(b);
    return rc;
}

static int recover_coll(load_ctx_t *x)
{
    qv_store_t *st = x->st;
    qv_coll_t *c = x->c;
    uint32_t coll = c->schema->id;
    qv_cat_key_t mk = qv_cat_manifest_key(coll);
    size_t vl;
    char *e = NULL;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cat.cf[CF_META], mk.bytes, mk.len, &vl, &e);
    if (e || !v) {
        rocksdb_free(e);
        rocksdb_free(v);
        return qv_err_set(x->err, QV_ECORRUPT, "collection '%s': manifest missing", c->schema->name);
    }
    uint64_t seal_seq, next_seg, *segs, *lens;
    uint32_t nsegs;
    int rc = qv_cat_manifest_decode(v, vl, &seal_seq, &next_seg, &segs, &lens, &nsegs, x->err);
    rocksdb_free(v);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < nsegs && rc == QV_OK; i++)
        rc = load_segment(x, segs[i], lens[i]);
    if (rc == QV_OK)
        rc = remove_orphans(st, c, segs, nsegs, x->err);
    free(segs);
    free(lens);
    if (rc)
        return rc;
    c->seal_seq = c->last_seq = seal_seq;
    c->next_seg_id = next_seg + 1; /* next_seg itself becomes the growing segment */
    if (seal_seq > st->seq)
        st->seq = seal_seq;
    qv_cat_key_t p = qv_cat_coll_prefix(coll);
    if ((rc = rebuild_ids(x)) != QV_OK || (rc = drop_old_id_entries(st, coll, x->err)) != QV_OK)
        return rc;
    if (!(c->growing = qv_seg_create(c->schema, next_seg)))
        return qv_err_set(x->err, QV_ENOMEM, "out of memory");
    return scan_prefix(st, CF_WAL, p, wal_cb, x, x->err);
}

int qv__store_recover(qv_store_t *st, qv_err_t *err)
{
    int rc = qv_cat_read_counters(st->db, st->ropts, &st->cat, &st->next_coll_id, &st->seq, err);
    if (rc)
        return rc;
    load_ctx_t x = {.st = st, .err = err};
    qv_wbuf_init(&x.blob);
    rc = scan_prefix(st, CF_META, qv_cat_applied_prefix(), applied_cb, &x, err);
    if (rc == QV_OK)
        rc = scan_prefix(st, CF_META, qv_cat_schema_prefix(), schema_cb, &x, err);
    for (size_t i = 0; rc == QV_OK && i < st->ncolls; i++) {
        x.c = st->colls[i];
        if (x.c->schema->id >= st->next_coll_id)
            rc = qv_err_set(err, QV_ECORRUPT, "collection id %u beyond the id counter", x.c->schema->id);
        else
            rc = recover_coll(&x);
    }
    qv_wbuf_free(&x.blob);
    return rc;
}
