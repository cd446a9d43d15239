/* Collections, attribute values and points as the storage layer sees them: plain C structs, independent of the
 * wire format. server/ converts protobuf messages into these (borrowing the message's memory, no copies), the
 * validators here decide what is acceptable, and storage/record.c encodes accepted points into WAL records.
 *
 * Schema blob (meta column family; its key is specified in catalog.h), little-endian:
 *   u32 magic "QVCS" | u8 version (2) | u32 collection id | u8 name_len | name | u32 dim | u8 metric |
 *   u32 shards | u16 nfields | nfields x (u8 name_len | name | u8 type) |
 *   u8 index kind | u32 hnsw M | u32 hnsw ef_construction | u8 embedding model (0 none, 1 all-MiniLM-L6-v2) |
 *   u8 quantisation (0 none, 1 SQ8, 2 PQ) | u32 PQ sub-quantisers (0 unless PQ) | u8 dynamic attributes (0/1) |
 *   u64 xxh3 of everything before it
 * Version 2 (before dynamic attributes) is the same without the dynamic byte, and is read as dynamic = 0. */
#ifndef QV_SCHEMA_H
#define QV_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define QV_NAME_MAX 64          /* collection and field names: [A-Za-z0-9_-]{1,64} */
#define QV_DIM_MAX 16384
#define QV_ID_MAX 256           /* point id bytes */
#define QV_FIELDS_MAX 256
#define QV_SHARDS_MAX 1024
#define QV_BATCH_MAX 10000      /* points per Upsert, ids per Delete/Get */
#define QV_TEXT_MAX (16u << 20) /* text bytes per point */
#define QV_KEYWORDS_MAX 4096    /* elements of one KEYWORDS value */

typedef enum { QV_METRIC_L2 = 1, QV_METRIC_IP = 2, QV_METRIC_COSINE = 3 } qv_metric_t;

typedef enum {
    QV_FT_INT64 = 1,
    QV_FT_DOUBLE = 2,
    QV_FT_KEYWORD = 3,
    QV_FT_BOOL = 4,
    QV_FT_KEYWORDS = 5,
} qv_ftype_t;

typedef struct {
    char name[QV_NAME_MAX + 1];
    uint8_t type; /* qv_ftype_t */
} qv_field_t;

typedef enum { QV_INDEX_HNSW = 1, QV_INDEX_FLAT = 2 } qv_index_kind_t;
enum { QV_EMBED_NONE = 0, QV_EMBED_MINILM = 1 };
enum { QV_QUANT_NONE = 0, QV_QUANT_SQ8 = 1, QV_QUANT_PQ = 2 };
#define QV_EMBED_MINILM_NAME "all-MiniLM-L6-v2"
#define QV_EMBED_MINILM_DIM 384

#define QV_HNSW_M_MAX 128
#define QV_HNSW_EFC_MAX 4096

typedef struct {
    uint32_t id; /* assigned at creation, never reused */
    char name[QV_NAME_MAX + 1];
    uint32_t dim;
    uint8_t metric; /* qv_metric_t */
    uint32_t shards;
    uint8_t index_kind;     /* qv_index_kind_t; 0 in a request means HNSW */
    uint32_t hnsw_m;        /* 0 in a request means 16 */
    uint32_t hnsw_efc;      /* 0 in a request means 200 */
    uint8_t embed;          /* QV_EMBED_NONE / QV_EMBED_MINILM */
    uint8_t quant;          /* QV_QUANT_NONE / SQ8 / PQ (values of qv_hnsw_quant_t) */
    uint32_t pq_m;          /* PQ: sub-quantisers (a divisor of dim; 0 in a request: chosen) */
    uint8_t dynamic;        /* 1: points may carry attributes beyond the fields (storage/dynattr.h) */
    uint16_t nfields;
    qv_field_t fields[]; /* nfields */
} qv_schema_t;

/* A borrowed byte string (not NUL-terminated). */
typedef struct {
    const char *p;
    uint32_t len;
} qv_str_t;

typedef struct {
    uint8_t type; /* qv_ftype_t of the value as sent */
    union {
        int64_t i;
        double d;
        bool b;
        qv_str_t kw;
        struct {
            const qv_str_t *items;
            uint32_t n;
        } kws;
    };
} qv_value_t;

typedef struct {
    uint16_t field; /* index into schema fields */
    qv_value_t value;
} qv_attr_t;

/* A point as submitted; every pointer is borrowed from the request for the duration of the call. */
typedef struct {
    qv_str_t id;
    float *vector;     /* dim floats; COSINE collections normalise it in place during validation */
    uint32_t nvector;  /* as sent, checked against dim */
    qv_attr_t *attrs;  /* at most one per field, any order */
    uint32_t nattrs;
    qv_str_t text;
    qv_str_t dyn;      /* dynamic attributes: a dyn blob (storage/dynattr.h), empty when none */
} qv_point_t;

/* Allocates a schema for nfields fields (zeroed). Free with free(). */
qv_schema_t *qv_schema_alloc(uint16_t nfields);
size_t qv_schema_size(uint16_t nfields);

/* Validates a schema as a user submitted it (name, dim, metric, fields, shards; shards 0 becomes 1). */
int qv_schema_validate(qv_schema_t *s, qv_err_t *err);

/* Name rule shared by collections and fields. */
bool qv_name_ok(const char *p, size_t len);

/* Index of the field called name, or -1. */
int qv_schema_field(const qv_schema_t *s, const char *name, size_t len);

int qv_schema_encode(const qv_schema_t *s, qv_wbuf_t *out);
/* Decodes untrusted bytes; returns QV_ECORRUPT with a message on any inconsistency. *out is malloc'd. */
int qv_schema_decode(const void *data, size_t len, qv_schema_t **out, qv_err_t *err);

/* Validates one point of request position `pos` against the schema (vector length, finite components, non-zero
 * on COSINE, id length, attribute fields exist once and have the right type, text size) and normalises COSINE
 * vectors in place. Messages name the point by position and id. */
int qv_point_validate(const qv_schema_t *s, qv_point_t *pt, uint32_t pos, qv_err_t *err);

/* Validates a whole upsert batch: count bounds, every point, and duplicate ids. All-or-nothing: on error nothing
 * has been written anywhere. */
int qv_points_validate(const qv_schema_t *s, qv_point_t *pts, uint32_t n, qv_err_t *err);

/* Checks a vector of n components for s (length, finite; nonzero for COSINE) and normalises it in place for COSINE;
 * messages begin with `what` ("query", "point 3 (id 'a')"). Points use it through qv_point_validate, queries through
 * query/request.h. */
int qv_vector_check(const qv_schema_t *s, float *v, uint32_t n, const char *what, qv_err_t *err);

const char *qv_ftype_name(uint8_t t);

#endif
