/* Write-ahead log records (the `wal` column family; their keys are catalog.h's).
 *
 * Layout, little-endian:
 *   u32 magic "QVWR" | u8 version (2) | u8 op (1 = upsert, 2 = delete) | u32 collection id | u64 seq |
 *   u32 count | u32 dim | body | u64 xxh3-64 of every byte before it
 * upsert body, count times:
 *   u16 id_len | id | dim x f32 | u16 nattrs | nattrs x (u16 field | u8 type | value) | u32 text_len | text |
 *   u32 dyn_len | dyn (the point's dynamic attributes, storage/dynattr.h; 0 bytes when none)
 *   value: INT64 i64 | DOUBLE f64 | BOOL u8 (0/1) | KEYWORD u32 len, bytes | KEYWORDS u32 n, n x (u32 len, bytes)
 * delete body, count times:
 *   u16 id_len | id
 * Version 1 (before dynamic attributes) has no dyn_len and dyn, and is read as points without them.
 * Vectors are stored as accepted (COSINE: already unit length), so replay reproduces them bit for bit. */
#ifndef QV_RECORD_H
#define QV_RECORD_H

#include "storage/schema.h"

enum { QV_OP_UPSERT = 1, QV_OP_DELETE = 2 };

/* An upsert record holds at most QV_BATCH_MAX points; a delete record at most QV_DELETE_RECORD_MAX ids (a delete by
 * filter is one record). */
#define QV_DELETE_RECORD_MAX 100000

/* A decoded record. Strings point into the record bytes, which must outlive it; vectors and arrays are owned. */
typedef struct {
    uint8_t op;
    uint32_t coll_id;
    uint64_t seq;
    uint32_t count;
    qv_point_t *points; /* op == UPSERT: count points */
    qv_str_t *ids;      /* op == DELETE: count ids */
    /* owned storage behind points */
    float *vectors;
    qv_attr_t *attrs;
    qv_str_t *items;
} qv_record_t;

int qv_record_encode_upsert(qv_wbuf_t *out, uint32_t coll_id, uint64_t seq, uint32_t dim, const qv_point_t *pts,
                            uint32_t n);
int qv_record_encode_delete(qv_wbuf_t *out, uint32_t coll_id, uint64_t seq, const qv_str_t *ids, uint32_t n);

/* Decodes and checks untrusted bytes against the collection schema (dim, field indexes and types, id and text
 * sizes, finite vectors). QV_ECORRUPT with a message on any failure; rec is then empty. */
int qv_record_decode(const void *data, size_t len, const qv_schema_t *s, qv_record_t *rec, qv_err_t *err);
void qv_record_free(qv_record_t *rec);

#endif
