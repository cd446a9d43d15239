/* Schema and point validation, and the schema blob codec (format in schema.h). */
#include "storage/schema.h"
#include "storage/dynattr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "index/distance.h"

#define SCHEMA_MAGIC 0x53435651u /* "QVCS" */
/* 2: index parameters and the embedding model joined the format (version 1 was a pre-release layout; such stores
 * are refused with a message rather than read wrongly). */
#define SCHEMA_VERSION 3
#define SCHEMA_VERSION_NO_DYNAMIC 2

size_t qv_schema_size(uint16_t nfields) { return sizeof(qv_schema_t) + (size_t)nfields * sizeof(qv_field_t); }

qv_schema_t *qv_schema_alloc(uint16_t nfields) { return calloc(1, qv_schema_size(nfields)); }

bool qv_name_ok(const char *p, size_t len)
{
    if (len < 1 || len > QV_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const char *qv_ftype_name(uint8_t t)
{
    switch (t) {
    case QV_FT_INT64: return "INT64";
    case QV_FT_DOUBLE: return "DOUBLE";
    case QV_FT_KEYWORD: return "KEYWORD";
    case QV_FT_BOOL: return "BOOL";
    case QV_FT_KEYWORDS: return "KEYWORDS";
    default: return "UNSPECIFIED";
    }
}

int qv_schema_field(const qv_schema_t *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nfields; i++)
        if (strlen(s->fields[i].name) == len && memcmp(s->fields[i].name, name, len) == 0)
            return i;
    return -1;
}

int qv_schema_validate(qv_schema_t *s, qv_err_t *err)
{
    if (!qv_name_ok(s->name, strlen(s->name)))
        return qv_err_set(err, QV_EINVAL, "collection name '%.80s' must match [A-Za-z0-9_-]{1,64}", s->name);
    if (s->dim == 0 || s->dim > QV_DIM_MAX)
        return qv_err_set(err, QV_EINVAL, "dim %u out of range: must be 1..%u", s->dim, QV_DIM_MAX);
    if (s->metric < QV_METRIC_L2 || s->metric > QV_METRIC_COSINE)
        return qv_err_set(err, QV_EINVAL, "metric must be METRIC_L2, METRIC_IP or METRIC_COSINE");
    if (s->shards == 0)
        s->shards = 1;
    if (s->shards > QV_SHARDS_MAX)
        return qv_err_set(err, QV_EINVAL, "shards %u out of range: must be 1..%u", s->shards, QV_SHARDS_MAX);
    if (s->embed > QV_EMBED_MINILM)
        return qv_err_set(err, QV_EINVAL, "unknown embedding model");
    if (s->embed == QV_EMBED_MINILM && s->dim != QV_EMBED_MINILM_DIM)
        return qv_err_set(err, QV_EINVAL, "dim %u does not match %s, which gives %u-d vectors", s->dim,
                          QV_EMBED_MINILM_NAME, QV_EMBED_MINILM_DIM);
    if (s->index_kind == 0)
        s->index_kind = QV_INDEX_HNSW;
    if (s->index_kind != QV_INDEX_HNSW && s->index_kind != QV_INDEX_FLAT)
        return qv_err_set(err, QV_EINVAL, "index kind %u unknown", s->index_kind);
    if (s->hnsw_m == 0)
        s->hnsw_m = 16;
    if (s->hnsw_efc == 0)
        s->hnsw_efc = 200;
    if (s->hnsw_m < 2 || s->hnsw_m > QV_HNSW_M_MAX)
        return qv_err_set(err, QV_EINVAL, "index m = %u out of range: must be 2..%u", s->hnsw_m, QV_HNSW_M_MAX);
    if (s->quant > QV_QUANT_PQ)
        return qv_err_set(err, QV_EINVAL, "quantization %u unknown", s->quant);
    if (s->quant == QV_QUANT_PQ) {
        if (s->pq_m == 0) /* the largest divisor of dim <= dim / 4: codes at most 1/16 of the float bytes */
            for (uint32_t m = s->dim / 4; m >= 1 && !s->pq_m; m--)
                if (s->dim % m == 0)
                    s->pq_m = m;
        if (s->pq_m == 0 || s->dim % s->pq_m != 0 || s->pq_m > s->dim)
            return qv_err_set(err, QV_EINVAL, "pq_m = %u must divide dim %u", s->pq_m, s->dim);
    } else if (s->pq_m) {
        return qv_err_set(err, QV_EINVAL, "pq_m is only for PQ quantization");
    }
    if (s->hnsw_efc > QV_HNSW_EFC_MAX)
        return qv_err_set(err, QV_EINVAL, "index ef_construction = %u out of range: must be 1..%u", s->hnsw_efc,
                          QV_HNSW_EFC_MAX);
    for (int i = 0; i < s->nfields; i++) {
        const qv_field_t *f = &s->fields[i];
        if (!qv_name_ok(f->name, strlen(f->name)))
            return qv_err_set(err, QV_EINVAL, "field %d name '%.80s' must match [A-Za-z0-9_-]{1,64}", i, f->name);
        if (f->type < QV_FT_INT64 || f->type > QV_FT_KEYWORDS)
            return qv_err_set(err, QV_EINVAL, "field '%s': type must be specified", f->name);
        for (int j = 0; j < i; j++)
            if (strcmp(s->fields[j].name, f->name) == 0)
                return qv_err_set(err, QV_EINVAL, "duplicate field name '%s'", f->name);
    }
    return QV_OK;
}

int qv_schema_encode(const qv_schema_t *s, qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_u32(out, SCHEMA_MAGIC);
    qv_wbuf_u8(out, SCHEMA_VERSION);
    qv_wbuf_u32(out, s->id);
    qv_wbuf_u8(out, (uint8_t)strlen(s->name));
    qv_wbuf_put(out, s->name, strlen(s->name));
    qv_wbuf_u32(out, s->dim);
    qv_wbuf_u8(out, s->metric);
    qv_wbuf_u32(out, s->shards);
    qv_wbuf_u16(out, s->nfields);
    for (int i = 0; i < s->nfields; i++) {
        qv_wbuf_u8(out, (uint8_t)strlen(s->fields[i].name));
        qv_wbuf_put(out, s->fields[i].name, strlen(s->fields[i].name));
        qv_wbuf_u8(out, s->fields[i].type);
    }
    qv_wbuf_u8(out, s->index_kind);
    qv_wbuf_u32(out, s->hnsw_m);
    qv_wbuf_u32(out, s->hnsw_efc);
    qv_wbuf_u8(out, s->embed);
    qv_wbuf_u8(out, s->quant);
    qv_wbuf_u32(out, s->pq_m);
    qv_wbuf_u8(out, s->dynamic);
    return qv_wbuf_seal(out, start);
}

static bool read_name(qv_rbuf_t *r, char *dst)
{
    uint8_t n = qv_rbuf_u8(r);
    const uint8_t *p = qv_rbuf_take(r, n);
    if (!p || !qv_name_ok((const char *)p, n))
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

int qv_schema_decode(const void *data, size_t len, qv_schema_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_rbuf_t r;
    if (!qv_rbuf_open_sealed(&r, data, len))
        return qv_err_set(err, QV_ECORRUPT, "schema blob of %zu bytes: too short or checksum mismatch", len);
    uint32_t magic = qv_rbuf_u32(&r);
    uint8_t version = qv_rbuf_u8(&r);
    if (magic != SCHEMA_MAGIC)
        return qv_err_set(err, QV_ECORRUPT, "schema blob: bad magic");
    if (version != SCHEMA_VERSION && version != SCHEMA_VERSION_NO_DYNAMIC)
        return qv_err_set(err, QV_ECORRUPT, "schema blob version %u; this build reads version %u (a data directory "
                          "from a pre-release build: recreate it)", version, SCHEMA_VERSION);
    uint32_t id = qv_rbuf_u32(&r);
    char name[QV_NAME_MAX + 1];
    if (!read_name(&r, name))
        return qv_err_set(err, QV_ECORRUPT, "schema blob: bad collection name");
    uint32_t dim = qv_rbuf_u32(&r);
    uint8_t metric = qv_rbuf_u8(&r);
    uint32_t shards = qv_rbuf_u32(&r);
    uint16_t nfields = qv_rbuf_u16(&r);
    if (r.failed || nfields > QV_FIELDS_MAX)
        return qv_err_set(err, QV_ECORRUPT, "schema blob: truncated header");
    qv_schema_t *s = qv_schema_alloc(nfields);
    if (!s)
        return qv_err_set(err, QV_ENOMEM, "schema: out of memory");
    s->id = id;
    memcpy(s->name, name, sizeof name);
    s->dim = dim;
    s->metric = metric;
    s->shards = shards;
    s->nfields = nfields;
    for (int i = 0; i < nfields; i++) {
        if (!read_name(&r, s->fields[i].name)) {
            free(s);
            return qv_err_set(err, QV_ECORRUPT, "schema blob: bad field %d name", i);
        }
        s->fields[i].type = qv_rbuf_u8(&r);
    }
    s->index_kind = qv_rbuf_u8(&r);
    s->hnsw_m = qv_rbuf_u32(&r);
    s->hnsw_efc = qv_rbuf_u32(&r);
    s->embed = qv_rbuf_u8(&r);
    s->quant = qv_rbuf_u8(&r);
    s->pq_m = qv_rbuf_u32(&r);
    s->dynamic = version == SCHEMA_VERSION ? qv_rbuf_u8(&r) : 0;
    qv_err_t verr;
    uint32_t stored_pq_m = s->pq_m;
    if (r.failed || qv_rbuf_left(&r) != 0 || s->shards == 0 || s->dynamic > 1 || s->index_kind == 0 || s->hnsw_m == 0 ||
        s->hnsw_efc == 0 || (s->quant == QV_QUANT_PQ && stored_pq_m == 0) || qv_schema_validate(s, &verr) != QV_OK) {
        free(s);
        return qv_err_set(err, QV_ECORRUPT, "schema blob: inconsistent contents");
    }
    *out = s;
    return QV_OK;
}

int qv_vector_check(const qv_schema_t *s, float *v, uint32_t n, const char *what, qv_err_t *err)
{
    if (n != s->dim)
        return qv_err_set(err, QV_EINVAL, "%s: vector has %u components, collection '%s' has dim %u", what, n,
                          s->name, s->dim);
    for (uint32_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return qv_err_set(err, QV_EINVAL, "%s: vector component %u is not finite", what, i);
    if (s->metric == QV_METRIC_COSINE) {
        float norm = qv_normalize(v, n);
        if (!(norm > 0.0f) || !isfinite(norm))
            return qv_err_set(err, QV_EINVAL, "%s: zero vector has no direction (COSINE collection)", what);
    }
    return QV_OK;
}

int qv_point_validate(const qv_schema_t *s, qv_point_t *pt, uint32_t pos, qv_err_t *err)
{
    char what[QV_ID_MAX + 64];
    if (pt->id.len == 0)
        return qv_err_set(err, QV_EINVAL, "point %u: empty id", pos);
    if (pt->id.len > QV_ID_MAX)
        return qv_err_set(err, QV_EINVAL, "point %u: id of %u bytes exceeds %u", pos, pt->id.len, QV_ID_MAX);
    snprintf(what, sizeof what, "point %u (id '%.*s')", pos, (int)pt->id.len, pt->id.p);
    int rc = qv_vector_check(s, pt->vector, pt->nvector, what, err);
    if (rc)
        return rc;
    if (pt->text.len > QV_TEXT_MAX)
        return qv_err_set(err, QV_EINVAL, "%s: text of %u bytes exceeds %u", what, pt->text.len, QV_TEXT_MAX);
    if (pt->dyn.len && !s->dynamic)
        return qv_err_set(err, QV_EINVAL, "%s: attributes beyond the schema, and collection '%s' was not created "
                          "with dynamic_attributes", what, s->name);
    if (!qv_dyn_valid(pt->dyn.p, pt->dyn.len))
        return qv_err_set(err, QV_EINVAL, "%s: malformed dynamic attributes", what);
    uint64_t seen[(QV_FIELDS_MAX + 63) / 64] = {0};
    for (uint32_t a = 0; a < pt->nattrs; a++) {
        qv_attr_t *at = &pt->attrs[a];
        if (at->field >= s->nfields)
            return qv_err_set(err, QV_EINVAL, "%s: attribute not in the schema", what);
        const qv_field_t *f = &s->fields[at->field];
        if (seen[at->field / 64] >> (at->field % 64) & 1)
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%s' given twice", what, f->name);
        seen[at->field / 64] |= (uint64_t)1 << (at->field % 64);
        /* An integer is accepted for a DOUBLE field (clients that build values from JSON numbers cannot tell);
         * every other mismatch is an error. */
        if (f->type == QV_FT_DOUBLE && at->value.type == QV_FT_INT64) {
            at->value.d = (double)at->value.i;
            at->value.type = QV_FT_DOUBLE;
        }
        if (at->value.type != f->type)
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%s' is %s, got a %s value", what, f->name,
                              qv_ftype_name(f->type), qv_ftype_name(at->value.type));
        if (f->type == QV_FT_DOUBLE && !isfinite(at->value.d))
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%s' is not finite", what, f->name);
        if (f->type == QV_FT_KEYWORDS && at->value.kws.n > QV_KEYWORDS_MAX)
            return qv_err_set(err, QV_EINVAL, "%s: attribute '%s' has more than %u keywords", what, f->name,
                              QV_KEYWORDS_MAX);
    }
    return QV_OK;
}

/* Duplicate-id detection for one batch: open addressing over indexes into pts, sized to a power of two at least
 * twice the batch, so probing stays short. */
int qv_points_validate(const qv_schema_t *s, qv_point_t *pts, uint32_t n, qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%u points in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    for (uint32_t i = 0; i < n; i++) {
        int rc = qv_point_validate(s, &pts[i], i, err);
        if (rc)
            return rc;
    }
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap <<= 1;
    uint32_t *slots = malloc(cap * sizeof *slots);
    if (!slots)
        return qv_err_set(err, QV_ENOMEM, "out of memory checking ids");
    memset(slots, 0xff, cap * sizeof *slots);
    int rc = QV_OK;
    for (uint32_t i = 0; i < n && rc == QV_OK; i++) {
        size_t h = qv_hash(pts[i].id.p, pts[i].id.len) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            uint32_t j = slots[h];
            if (j == UINT32_MAX) {
                slots[h] = i;
                break;
            }
            if (pts[j].id.len == pts[i].id.len && memcmp(pts[j].id.p, pts[i].id.p, pts[i].id.len) == 0) {
                rc = qv_err_set(err, QV_EINVAL, "points %u and %u have the same id '%.*s'", j, i,
                                (int)pts[i].id.len, pts[i].id.p);
                break;
            }
        }
    }
    free(slots);
    return rc;
}
