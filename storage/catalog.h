/* The catalog: the one owner of the store's RocksDB layout (internal to storage/). Every column family, every key
 * and the manifest blob are specified here and composed only in catalog.c; the rest of storage/ adds operations to
 * a write batch through qv_cat_put_* / qv_cat_delete_*, and reads through the keys and prefixes built here.
 *
 * Column families (keys are big-endian so that byte order is numeric order):
 *   meta  "n"              (1 byte)   -> u32 next collection id (native byte order)
 *         "s"              (1 byte)   -> u64 sequence floor (native byte order): no sequence number at or below it
 *                                        is handed out again, even after the WAL records holding it were deleted
 *         "c" | be32 coll  (5 bytes)  -> schema blob (schema.h)
 *         "m" | be32 coll  (5 bytes)  -> manifest blob (below)
 *         "a" | be64 group (9 bytes)  -> u64 applied index (native byte order): the last entry of an external
 *                                        ordered log (a replication group's) that qv_store_apply applied; written
 *                                        in the same batch as that entry's WAL record
 *   wal   be32 coll | be64 seq                (12 bytes) -> WAL record (record.h)
 *   seg   be32 coll | be64 seg | be32 chunk   (16 bytes) -> up to 4 MiB (QV_CAT_CHUNK) of the segment blob
 *                                                           (segment_io.c); chunks numbered from 0, no gaps
 *   keys  be32 coll | id bytes                (5..4 + QV_ID_MAX bytes) -> u64 segment | u32 row: written by
 *                                                           older versions (the id map as of the last seal); no
 *                                                           longer written or read: recovery rebuilds the id map
 *                                                           from the segments and removes these entries
 *   del   be32 coll | be64 seg                (12 bytes) -> delete bitmap blob (segment_io.c), as of the last seal
 *   idx   be32 coll | be64 seg | be32 chunk   (16 bytes) -> up to 4 MiB of the segment's HNSW graph blob
 *                                                           (index/hnsw/io.c): derived data
 * So every key of one collection in wal, seg, keys, del and idx starts with its 4-byte prefix (qv_cat_coll_prefix),
 * and every chunk of one segment in seg and idx with a 12-byte prefix that is also its del key
 * (qv_cat_segment_prefix).
 *
 * Manifest blob (meta, key "m" | be32 coll), little-endian:
 *   u32 magic "QVMF" | u8 version (1) | u64 seal_seq | u64 next segment id | u32 nsegs |
 *   nsegs x (u64 segment id | u64 blob length) | u64 xxh3-64 of every byte before it
 * Segment ids are strictly ascending and below the next segment id; WAL records with seq <= seal_seq are covered by
 * the listed segments. */
#ifndef QV_CATALOG_H
#define QV_CATALOG_H

#include <rocksdb/c.h>

#include "storage/store.h"

enum { CF_DEFAULT, CF_META, CF_WAL, CF_SEG, CF_KEYS, CF_DEL, CF_IDX, CF_COUNT };

/* Column family names, indexed by CF_*, as rocksdb_open_column_families wants them. */
extern const char *const qv_cat_cf_names[CF_COUNT];

/* The store's column family handles (owned by the store: qv_store_open fills them, qv_store_close destroys them). */
typedef struct {
    rocksdb_column_family_handle_t *cf[CF_COUNT];
} qv_catalog_t;

#define QV_CAT_CHUNK (4u << 20) /* a segment or index blob is split into values of at most this many bytes */
/* What a background writer (compaction's output blob) puts in one chunk, and one RocksDB write: RocksDB queues
 * writes, so the commit leader's small synced batch waits behind whatever write is ahead of it; 256 KiB is logged in
 * well under a millisecond where a 4 MiB chunk held it for tens. Readers take chunks of any size up to QV_CAT_CHUNK. */
#define QV_CAT_BG_CHUNK (256u << 10)
#define MANIFEST_MAGIC 0x464d5651u /* "QVMF" */
#define MANIFEST_VERSION 1

/* ---- the manifest codec ---- */

/* Appends the manifest of c's persisted sealed segments (and frozen ones too when include_frozen, and c->sealed[i]
 * when also[i]; also may be NULL), minus `drop`, plus `add` (may be NULL), in ascending id order. QV_ENOMEM on
 * failure. */
int qv_cat_manifest_encode(qv_wbuf_t *out, const qv_coll_t *c, uint64_t seal_seq, uint64_t next_seg,
                           qv_segment_t *add, qv_segment_t *const *drop, size_t ndrop, bool include_frozen,
                           const bool *also);
/* Decodes and checks an untrusted manifest. On success *segs and *blob_lens are malloc'ed arrays of *nsegs entries
 * (the caller frees them); on failure (QV_ECORRUPT, QV_ENOMEM, with a message) both are NULL. */
int qv_cat_manifest_decode(const void *data, size_t len, uint64_t *seal_seq, uint64_t *next_seg, uint64_t **segs,
                           uint64_t **blob_lens, uint32_t *nsegs, qv_err_t *err);

/* ---- operations added to a write batch ---- */

/* meta: the schema blob of coll */
void qv_cat_put_schema(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, const void *blob,
                       size_t len);
/* meta: the manifest blob of coll */
void qv_cat_put_manifest(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, const void *blob,
                         size_t len);
/* meta: the next collection id */
void qv_cat_put_next_coll(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t next);
/* meta: the sequence floor */
void qv_cat_put_seq_floor(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint64_t seq);
/* meta "a" | be64 group -> index */
void qv_cat_put_applied(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint64_t group, uint64_t index);
/* One WAL record of coll (the record bytes are copied into the batch). */
void qv_cat_put_wal(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seq,
                    const void *rec, size_t len);
/* Deletes coll's WAL records with seq <= covered. */
void qv_cat_delete_wal(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t covered);
/* A segment blob, split into QV_CAT_CHUNK-sized chunks. */
void qv_cat_put_segment(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                        const void *blob, size_t len);
/* One chunk (chunk-th QV_CAT_CHUNK bytes, len of them) of a segment blob, for writers that batch chunks apart. */
void qv_cat_put_segment_chunk(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                              uint32_t chunk, const void *data, size_t len);
/* Deletes the id-map entries older stores wrote for coll (`keys`: no longer written or read). */
void qv_cat_delete_id_entries(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll);
/* The delete bitmap blob of a segment. */
void qv_cat_put_deleted(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                        const void *blob, size_t len);
/* Replaces the index blob of a segment: deletes its stored chunks, then writes blob's (chunked as segment blobs). */
void qv_cat_put_index(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg,
                      const void *blob, size_t len);
/* Deletes a segment's blob chunks, index blob chunks and delete bitmap. */
void qv_cat_delete_segment(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll, uint64_t seg);
/* Deletes everything of a collection: schema, manifest, and its keys in wal, seg, keys, del and idx. */
void qv_cat_delete_collection(const qv_catalog_t *cat, rocksdb_writebatch_t *b, uint32_t coll);

/* ---- keys, prefixes and ranges for reads and scans ---- */

/* A key or key prefix built by the catalog; pass key.bytes, key.len to RocksDB. */
typedef struct {
    char bytes[16];
    size_t len;
} qv_cat_key_t;

/* meta: prefix of every schema key */
qv_cat_key_t qv_cat_schema_prefix(void);
/* meta: every applied index ("a") */
qv_cat_key_t qv_cat_applied_prefix(void);
/* An applied-index entry's group and index; false if the key or value has another shape. */
bool qv_cat_parse_applied(const char *k, size_t kl, const char *v, size_t vl, uint64_t *group, uint64_t *index);
/* meta: the manifest key of coll */
qv_cat_key_t qv_cat_manifest_key(uint32_t coll);
/* wal, seg, keys, del, idx: prefix of every key of coll */
qv_cat_key_t qv_cat_coll_prefix(uint32_t coll);
/* seg, idx: prefix of every chunk of one segment; del: the segment's key */
qv_cat_key_t qv_cat_segment_prefix(uint32_t coll, uint64_t seg);
/* seg, idx: the range [*lo, *hi) holding exactly the chunks of one segment */
void qv_cat_segment_range(uint32_t coll, uint64_t seg, qv_cat_key_t *lo, qv_cat_key_t *hi);

/* Key parsers for scans; each returns false when the key does not have its column family's shape. */
/* meta: the collection id of a schema key */
bool qv_cat_parse_schema_key(const char *k, size_t kl, uint32_t *coll);
/* seg, idx: the parts of a chunk key */
bool qv_cat_parse_chunk_key(const char *k, size_t kl, uint32_t *coll, uint64_t *seg, uint32_t *chunk);
/* wal: the sequence number of a WAL key */
bool qv_cat_parse_wal_key(const char *k, size_t kl, uint64_t *seq);

/* WAL key of one record (for tests of the key order): 12 bytes. */
#define QV_CAT_WAL_KEY_LEN 12
void qv_cat_wal_key(uint8_t key[QV_CAT_WAL_KEY_LEN], uint32_t coll, uint64_t seq);

/* Reads the next collection id and the sequence floor from meta; each stays as it is when absent (a new store).
 * QV_EIO with a message when RocksDB fails. */
int qv_cat_read_counters(rocksdb_t *db, const rocksdb_readoptions_t *ro, const qv_catalog_t *cat,
                         uint32_t *next_coll, uint64_t *seq, qv_err_t *err);

#endif
