/* The catalog: column families, key layouts and the manifest codec. The byte-by-byte specification is at the top of
 * catalog.h; this is the only file that composes or parses a RocksDB key. */
#include "storage/catalog.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *const qv_cat_cf_names[CF_COUNT] = {"default", "meta", "wal", "seg", "keys", "del", "idx"};

/* ---- keys ---- */

#define COLL_KEY_LEN 5  /* meta: tag | be32 coll */
#define PREFIX_LEN 4    /* be32 coll */
#define SEG_PREFIX_LEN 12 /* be32 coll | be64 seg; also the del key */
#define CHUNK_KEY_LEN 16  /* be32 coll | be64 seg | be32 chunk */

static qv_cat_key_t coll_key(char tag, uint32_t coll)
{
    qv_cat_key_t k = {.len = COLL_KEY_LEN};
    k.bytes[0] = tag;
    qv_be32((uint8_t *)k.bytes + 1, coll);
    return k;
}

static size_t chunk_key(uint8_t *k, uint32_t coll, uint64_t seg, uint32_t chunk)
{
    qv_be32(k, coll);
    qv_be64(k + 4, seg);
    qv_be32(k + 12, chunk);
    return CHUNK_KEY_LEN;
}

qv_cat_key_t qv_cat_schema_prefix(void) { return (qv_cat_key_t){.bytes = {'c'}, .len = 1}; }

qv_cat_key_t qv_cat_applied_prefix(void) { return (qv_cat_key_t){.bytes = {'a'}, .len = 1}; }

bool qv_cat_parse_applied(const char *k, size_t kl, const char *v, size_t vl, uint64_t *group, uint64_t *index)
{
    if (kl != 9 || k[0] != 'a' || vl != 8)
        return false;
    *group = qv_get_be64((const uint8_t *)k + 1);
    memcpy(index, v, 8);
    return true;
}

qv_cat_key_t qv_cat_manifest_key(uint32_t coll) { return coll_key('m', coll); }

qv_cat_key_t qv_cat_coll_prefix(uint32_t coll)
{
    qv_cat_key_t k = {.len = PREFIX_LEN};
    qv_be32((uint8_t *)k.bytes, coll);
    return k;
}

qv_cat_key_t qv_cat_segment_prefix(uint32_t coll, uint64_t seg)
{
    qv_cat_key_t k;
    chunk_key((uint8_t *)k.bytes, coll, seg, 0);
    k.len = SEG_PREFIX_LEN;
    return k;
}

void qv_cat_segment_range(uint32_t coll, uint64_t seg, qv_cat_key_t *lo, qv_cat_key_t *hi)
{
    *lo = qv_cat_segment_prefix(coll, seg);
    *hi = qv_cat_segment_prefix(coll, seg + 1);
}

void qv_cat_wal_key(uint8_t key[QV_CAT_WAL_KEY_LEN], uint32_t coll, uint64_t seq)
{
    qv_be32(key, coll);
    qv_be64(key + 4, seq);
}

bool qv_cat_parse_schema_key(const char *k, size_t kl, uint32_t *coll)
{
    if (kl != COLL_KEY_LEN)
        return false;
    *coll = qv_get_be32((const uint8_t *)k + 1);
    return true;
}

bool qv_cat_parse_chunk_key(const char *k, size_t kl, uint32_t *coll, uint64_t *seg, uint32_t *chunk)
{
    if (kl != CHUNK_KEY_LEN)
        return false;
    *coll = qv_get_be32((const uint8_t *)k);
    *seg = qv_get_be64((const uint8_t *)k + 4);
    *chunk = qv_get_be32((const uint8_t *)k + 12);
    return true;
}

bool qv_cat_parse_wal_key(const char *k, size_t kl, uint64_t *seq)
{
    if (kl != QV_CAT_WAL_KEY_LEN)
        return false;
    *seq = qv_get_be64((const uint8_t *)k + 4);
    return true;
}

/* ---- write batch operations ---- */

void qv_cat_put_schema(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, const void *blob,
                       size_t len)
{
    qv_cat_key_t k = coll_key('c', coll);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_META], k.bytes, k.len, blob, len);
}

void qv_cat_put_manifest(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, const void *blob,
                         size_t len)
{
    qv_cat_key_t k = coll_key('m', coll);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_META], k.bytes, k.len, blob, len);
}

void qv_cat_put_next_coll(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t next)
{
    char v[4];
    memcpy(v, &next, 4);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_META], "n", 1, v, 4);
}

void qv_cat_put_seq_floor(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint64_t seq)
{
    char v[8];
    memcpy(v, &seq, 8);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_META], "s", 1, v, 8);
}

void qv_cat_put_applied(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint64_t group, uint64_t index)
{
    uint8_t k[9];
    k[0] = 'a';
    qv_be64(k + 1, group);
    char v[8];
    memcpy(v, &index, 8);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_META], (const char *)k, sizeof k, v, 8);
}

void qv_cat_put_wal(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seq,
                    const void *rec, size_t len)
{
    uint8_t key[QV_CAT_WAL_KEY_LEN];
    qv_cat_wal_key(key, coll, seq);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_WAL], (char *)key, sizeof key, rec, len);
}

void qv_cat_delete_wal(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t covered)
{
    uint8_t lo[QV_CAT_WAL_KEY_LEN], hi[QV_CAT_WAL_KEY_LEN];
    qv_cat_wal_key(lo, coll, 0);
    qv_cat_wal_key(hi, coll, covered + 1);
    rocksdb_writebatch_delete_range_cf(b, cat->cf[CF_WAL], (char *)lo, sizeof lo, (char *)hi, sizeof hi);
}

/* Splits a blob over QV_CAT_CHUNK-sized values under be32 coll | be64 seg | be32 chunk in column family cf. */
static void put_chunks(const qv_catalog_t *cat, rocksdb_writebatch_t *b, int cf, uint32_t coll, uint64_t seg,
                       const void *data, size_t len)
{
    uint8_t k[CHUNK_KEY_LEN];
    for (size_t off = 0, chunk = 0; off < len; off += QV_CAT_CHUNK, chunk++) {
        size_t n = len - off < QV_CAT_CHUNK ? len - off : QV_CAT_CHUNK;
        rocksdb_writebatch_put_cf(b, cat->cf[cf], (char *)k, chunk_key(k, coll, seg, (uint32_t)chunk),
                                  (const char *)data + off, n);
    }
}

/* Deletes every chunk of one segment in column family cf. */
static void delete_chunks(const qv_catalog_t *cat, rocksdb_writebatch_t *b, int cf, uint32_t coll, uint64_t seg)
{
    qv_cat_key_t lo, hi;
    qv_cat_segment_range(coll, seg, &lo, &hi);
    rocksdb_writebatch_delete_range_cf(b, cat->cf[cf], lo.bytes, lo.len, hi.bytes, hi.len);
}

void qv_cat_put_segment_chunk(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                              uint32_t chunk, const void *data, size_t len)
{
    uint8_t k[CHUNK_KEY_LEN];
    rocksdb_writebatch_put_cf(b, cat->cf[CF_SEG], (char *)k, chunk_key(k, coll, seg, chunk), data, len);
}

void qv_cat_put_segment(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                        const void *blob, size_t len)
{
    put_chunks(cat, b, CF_SEG, coll, seg, blob, len);
}

void qv_cat_put_deleted(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                        const void *blob, size_t len)
{
    qv_cat_key_t k = qv_cat_segment_prefix(coll, seg);
    rocksdb_writebatch_put_cf(b, cat->cf[CF_DEL], k.bytes, k.len, blob, len);
}

void qv_cat_put_index(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                      const void *blob, size_t len)
{
    delete_chunks(cat, b, CF_IDX, coll, seg);
    put_chunks(cat, b, CF_IDX, coll, seg, blob, len);
}

void qv_cat_delete_segment(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg)
{
    delete_chunks(cat, b, CF_SEG, coll, seg);
    delete_chunks(cat, b, CF_IDX, coll, seg);
    qv_cat_key_t k = qv_cat_segment_prefix(coll, seg);
    rocksdb_writebatch_delete_cf(b, cat->cf[CF_DEL], k.bytes, k.len);
}

/* Deletes every key of coll in column family cf (all of them start with its 4-byte prefix). */
static void delete_prefix(const qv_catalog_t *cat, rocksdb_writebatch_t *b, int cf, uint32_t coll)
{
    qv_cat_key_t lo = qv_cat_coll_prefix(coll), hi = qv_cat_coll_prefix(coll + 1);
    rocksdb_writebatch_delete_range_cf(b, cat->cf[cf], lo.bytes, lo.len, hi.bytes, hi.len);
}

void qv_cat_delete_id_entries(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll)
{
    delete_prefix(cat, b, CF_KEYS, coll);
}

void qv_cat_delete_collection(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll)
{
    qv_cat_key_t k = coll_key('c', coll);
    rocksdb_writebatch_delete_cf(b, cat->cf[CF_META], k.bytes, k.len);
    k = coll_key('m', coll);
    rocksdb_writebatch_delete_cf(b, cat->cf[CF_META], k.bytes, k.len);
    delete_prefix(cat, b, CF_WAL, coll);
    delete_prefix(cat, b, CF_SEG, coll);
    delete_prefix(cat, b, CF_KEYS, coll);
    delete_prefix(cat, b, CF_DEL, coll);
    delete_prefix(cat, b, CF_IDX, coll);
}

/* ---- reads ---- */

int qv_cat_read_counters(rocksdb_t *db, const rocksdb_readoptions_t *ro, const qv_catalog_t *cat,
                         uint32_t *next_coll, uint64_t *seq, qv_err_t *err)
{
    size_t vl;
    char *e = NULL;
    char *v = rocksdb_get_cf(db, ro, cat->cf[CF_META], "n", 1, &vl, &e);
    if (e) {
        qv_err_set(err, QV_EIO, "reading the store: %s", e);
        rocksdb_free(e);
        return QV_EIO;
    }
    if (v && vl == 4)
        memcpy(next_coll, v, 4);
    rocksdb_free(v);
    v = rocksdb_get_cf(db, ro, cat->cf[CF_META], "s", 1, &vl, &e);
    if (e) {
        rocksdb_free(e);
        return qv_err_set(err, QV_EIO, "reading the store");
    }
    if (v && vl == 8)
        memcpy(seq, v, 8);
    rocksdb_free(v);
    return QV_OK;
}

/* ---- the manifest codec ---- */

static int seg_id_cmp(const void *a, const void *b)
{
    uint64_t x = (*(qv_segment_t *const *)a)->id, y = (*(qv_segment_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

int qv_cat_manifest_encode(qv_wbuf_t *out, const qv_coll_t *c, uint64_t seal_seq, uint64_t next_seg,
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

int qv_cat_manifest_decode(const void *data, size_t len, uint64_t *seal_seq, uint64_t *next_seg, uint64_t **segs,
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
