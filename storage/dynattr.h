/* Dynamic attributes: what a point of a collection created with `dynamic_attributes` carries beyond its schema,
 * each attribute typed by its value (as Qdrant payloads and Milvus's dynamic field). A point keeps them as one byte
 * string, its dyn blob, stored beside its text: in WAL records (record.h), in segments (a byte column, segment.h and
 * segment_io.c), and so through seals, compactions and restarts. Declared fields keep their columns, types and
 * checks; a key that names a declared field is never dynamic.
 *
 * Dyn blob (this file writes and checks it), little-endian:
 *   u16 n | n x (u8 key_len | key | u8 type | value)
 *   keys: 1..QV_NAME_MAX bytes without NUL, strictly ascending in byte order (so each key once)
 *   value as in WAL records: INT64 i64 | DOUBLE f64 (finite) | BOOL u8 (0/1) | KEYWORD u32 len, bytes |
 *   KEYWORDS u32 n (at most QV_KEYWORDS_MAX), n x (u32 len, bytes)
 * No attributes: the empty blob (0 bytes). A blob holds at most QV_DYN_ATTRS_MAX entries and QV_DYN_BYTES_MAX bytes.
 *
 * Filters on an undeclared key (query/filter.c) read a row's blob with qv_dyn_find and match the rows that have the
 * key with a comparable value: numbers with numbers (INT64 and DOUBLE compare as doubles), keywords with a KEYWORD
 * or any element of a KEYWORDS value, booleans with booleans. */
#ifndef QV_DYNATTR_H
#define QV_DYNATTR_H

#include "common/buf.h"
#include "common/err.h"
#include "storage/schema.h"

#define QV_DYN_ATTRS_MAX 256
#define QV_DYN_BYTES_MAX (64u << 10)

typedef struct qv_dynattr {
    qv_str_t key;
    qv_value_t value;
} qv_dynattr_t;

/* Appends the blob of n attributes to out (they are sorted by key here). QV_EINVAL naming the key for an empty,
 * over-long or repeated key, a non-finite double, more than QV_KEYWORDS_MAX keywords, or more than
 * QV_DYN_ATTRS_MAX attributes or QV_DYN_BYTES_MAX bytes; `what` begins messages ("point 3 (id 'a')"). n == 0
 * appends nothing. */
int qv_dyn_encode(qv_dynattr_t *attrs, uint32_t n, const char *what, qv_wbuf_t *out, qv_err_t *err);

/* True when the bytes are a well-formed dyn blob (every rule above); the loaders call it on untrusted bytes. */
bool qv_dyn_valid(const void *p, size_t len);

/* Reading a valid blob entry by entry. A KEYWORDS value comes with its items undecoded: v->kws.n says how many,
 * and qv_dyn_item reads them one by one from *items. */
typedef struct {
    qv_rbuf_t r;
    uint32_t left;
} qv_dyn_iter_t;

void qv_dyn_iter(qv_dyn_iter_t *it, qv_str_t blob);
bool qv_dyn_next(qv_dyn_iter_t *it, qv_str_t *key, qv_value_t *v, qv_rbuf_t *items);
qv_str_t qv_dyn_item(qv_rbuf_t *items);

/* The value of key in a valid blob (items as in qv_dyn_next); false when absent. */
bool qv_dyn_find(qv_str_t blob, qv_str_t key, qv_value_t *v, qv_rbuf_t *items);

#endif
