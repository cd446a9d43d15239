/* The persisted formats: schema blob (storage/schema.h), WAL record (storage/record.h), segment blob and delete
 * bitmap blob (storage/segment_io.c), and batch validation (qv_points_validate).
 *
 * For every format:
 *   - encode -> decode gives back every field, compared field by field (and byte-exact layout checks against the
 *     format comment where the layout is easy to restate);
 *   - every single-byte flip (three xor patterns) over the whole blob, every truncation and extra trailing bytes are
 *     rejected with QV_ECORRUPT and a message (the checksum covers every byte);
 *   - the same flips with the checksum recomputed ("valid checksum, damaged contents") never crash, and a blob that
 *     still decodes re-encodes to exactly the same bytes;
 *   - hand-crafted blobs with a valid checksum but one specific defect each (huge counts, offsets going backwards,
 *     id length 0 or > 256, NaN/Inf vector components, KEYWORDS offsets past the end, bool byte 2, type and schema
 *     mismatches, ...) are rejected, while the same blob without the defect is accepted, so each rejection is caused
 *     by the defect it names.
 * qv_points_validate: every rule, with the message naming the offending point by position and id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "qvtest.h"
#include "storage/catalog.h"
#include "storage/dynattr.h"
#include "storage/record.h"
#include "storage/segment.h"

#define DIM 4
#define COLL_ID 7

static const uint8_t flips[] = {0x01, 0x80, 0xff};

/* What the current check is about, for failure messages (cmocka reports only the line). */
static char what[96] = "";
#define WHAT(...) snprintf(what, sizeof what, __VA_ARGS__)

static void expect_code(int got, int want)
{
    if (got != want)
        fail_msg("%s: got %d (%s), want %d (%s)", what, got, qv_strerror(got), want, qv_strerror(want));
}

/* ---------------------------------------------------------------------------------------------------------------
 * Test points: every attribute type, present or absent, in varying order; ids of 1..256 bytes; text empty, long or
 * with NUL bytes; keyword strings including the empty string and one with an embedded NUL. */

static const qv_str_t words[] = {{"", 0}, {"red", 3}, {"green", 5}, {"blue", 4}, {"a\0b", 3}, {"x", 1}};
#define NWORDS (sizeof words / sizeof words[0])

typedef struct {
    qv_point_t pt;
    float vec[DIM];
    qv_attr_t attrs[F_COUNT];
    qv_str_t items[4];
    char id[QV_ID_MAX];
    char text[300];
} gen_t;

/* Point number i. mask chooses the attributes (bit f = field f); idlen 0 picks a length from i. */
static void gen_point(gen_t *g, uint64_t *rng, uint32_t i, unsigned mask, uint32_t idlen)
{
    memset(g, 0, sizeof *g);
    if (!idlen)
        idlen = 1 + (i * 7) % 40;
    for (uint32_t j = 0; j < idlen; j++)
        g->id[j] = (char)(j == 0 ? 'A' + i % 26 : j == 1 ? 'a' + (i / 26) % 26 : j == 2 ? '0' + (i / 676) % 10
                                                                                      : 'a' + (i + j) % 26);
    g->pt.id = (qv_str_t){g->id, idlen};
    for (int d = 0; d < DIM; d++)
        g->vec[d] = (float)(rng_unit(rng) * 2.0 - 1.0);
    g->pt.vector = g->vec;
    g->pt.nvector = DIM;
    uint32_t n = 0;
    for (int k = 0; k < F_COUNT; k++) {
        int f = (i & 1) ? F_COUNT - 1 - k : k; /* odd points list attributes in reverse schema order */
        if (!(mask >> f & 1))
            continue;
        qv_attr_t *a = &g->attrs[n++];
        a->field = (uint16_t)f;
        switch (f) {
        case F_INT:
            a->value.type = QV_FT_INT64;
            a->value.i = (i % 3 == 0) ? INT64_MIN + i : (int64_t)rng_next(rng);
            break;
        case F_DBL: {
            static const double pick[] = {-0.0, 1e300, 4.9e-324, -2.5, 0.1};
            a->value.type = QV_FT_DOUBLE;
            a->value.d = i < 5 ? pick[i] : rng_unit(rng) * 1000 - 500;
            break;
        }
        case F_KW:
            a->value.type = QV_FT_KEYWORD;
            a->value.kw = words[i % NWORDS];
            break;
        case F_BOOL:
            a->value.type = QV_FT_BOOL;
            a->value.b = i & 1;
            break;
        case F_TAGS: {
            uint32_t nk = i % 4;
            for (uint32_t e = 0; e < nk; e++)
                g->items[e] = words[(i + e * 2) % NWORDS];
            a->value.type = QV_FT_KEYWORDS;
            a->value.kws.items = g->items;
            a->value.kws.n = nk;
            break;
        }
        }
    }
    g->pt.attrs = g->attrs;
    g->pt.nattrs = n;
    uint32_t tl = i % 3 == 0 ? 0 : (i * 37) % sizeof g->text;
    for (uint32_t j = 0; j < tl; j++)
        g->text[j] = (char)(i * 31 + j * 7); /* includes NUL bytes */
    g->pt.text = (qv_str_t){tl ? g->text : NULL, tl};
}

static void assert_str_eq(qv_str_t a, qv_str_t b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.p, b.p, a.len);
}

static const qv_attr_t *find_attr(const qv_point_t *p, int f)
{
    for (uint32_t a = 0; a < p->nattrs; a++)
        if (p->attrs[a].field == f)
            return &p->attrs[a];
    return NULL;
}

static void assert_value_eq(const qv_value_t *a, const qv_value_t *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case QV_FT_INT64: assert_true(a->i == b->i); break;
    case QV_FT_DOUBLE: assert_memory_equal(&a->d, &b->d, sizeof(double)); break; /* bit-exact, -0.0 included */
    case QV_FT_BOOL: assert_int_equal(a->b, b->b); break;
    case QV_FT_KEYWORD: assert_str_eq(a->kw, b->kw); break;
    case QV_FT_KEYWORDS:
        assert_int_equal(a->kws.n, b->kws.n);
        for (uint32_t k = 0; k < a->kws.n; k++)
            assert_str_eq(a->kws.items[k], b->kws.items[k]);
        break;
    default: fail_msg("bad value type %u", a->type);
    }
}

static void assert_point_eq(const qv_point_t *want, const qv_point_t *got)
{
    assert_str_eq(want->id, got->id);
    assert_int_equal(got->nvector, DIM);
    assert_memory_equal(want->vector, got->vector, DIM * sizeof(float));
    assert_int_equal(want->nattrs, got->nattrs);
    for (uint32_t a = 0; a < want->nattrs; a++) { /* order is preserved */
        assert_int_equal(want->attrs[a].field, got->attrs[a].field);
        assert_value_eq(&want->attrs[a].value, &got->attrs[a].value);
    }
    assert_str_eq(want->text, got->text);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Schema blob */

#define SCHEMA_EMBED_BYTE 1 /* the embedding-model byte after the index parameters (format version 2) */
#define SCHEMA_QUANT_BYTES 5 /* then the quantisation byte and the PQ sub-quantiser count */
#define SCHEMA_DYNAMIC_BYTE 1 /* then the dynamic-attributes flag (format version 3) */

static qv_wbuf_t encode_schema(const qv_schema_t *s)
{
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    assert_int_equal(qv_schema_encode(s, &b), QV_OK);
    return b;
}

static void expect_schema_corrupt(const uint8_t *p, size_t len)
{
    qv_schema_t *out = (qv_schema_t *)(uintptr_t)1;
    qv_err_t err;
    qv_err_clear(&err);
    expect_code(qv_schema_decode(p, len, &out, &err), QV_ECORRUPT);
    assert_null(out);
    assert_int_equal(err.code, QV_ECORRUPT);
    assert_true(strlen(err.msg) > 0);
}

static void test_schema_roundtrip(void **state)
{
    (void)state;
    for (uint8_t metric = QV_METRIC_L2; metric <= QV_METRIC_COSINE; metric++) {
        qv_schema_t *s = test_schema_all("coll-Name_9", 0xdeadbeef, 16384, metric);
        s->shards = 1024;
        qv_wbuf_t b = encode_schema(s);
        /* layout: magic | version | id | name | dim | metric | shards | nfields | fields | index kind | M |
         * ef_construction | [embedding model] | checksum */
        assert_memory_equal(b.data, "QVCS", 4);
        assert_int_equal(b.data[4], 3);
        assert_int_equal(b.data[9], strlen(s->name));
        size_t want_len = 4 + 1 + 4 + 1 + strlen(s->name) + 4 + 1 + 4 + 2 + 1 + 4 + 4 + SCHEMA_EMBED_BYTE +
                          SCHEMA_QUANT_BYTES + SCHEMA_DYNAMIC_BYTE + 8;
        for (int f = 0; f < s->nfields; f++)
            want_len += 1 + strlen(s->fields[f].name) + 1;
        assert_int_equal(b.len, want_len);
        uint32_t m, efc;
        size_t idx_at = b.len - 8 - SCHEMA_DYNAMIC_BYTE - SCHEMA_QUANT_BYTES - SCHEMA_EMBED_BYTE - 9;
        memcpy(&m, b.data + idx_at + 1, 4);
        memcpy(&efc, b.data + idx_at + 5, 4);
        assert_int_equal(b.data[idx_at], QV_INDEX_HNSW);
        assert_int_equal(m, 16);
        assert_int_equal(efc, 200);

        qv_schema_t *d;
        qv_err_t err;
        assert_int_equal(qv_schema_decode(b.data, b.len, &d, &err), QV_OK);
        assert_int_equal(d->id, s->id);
        assert_string_equal(d->name, s->name);
        assert_int_equal(d->dim, s->dim);
        assert_int_equal(d->metric, metric);
        assert_int_equal(d->shards, 1024);
        assert_int_equal(d->index_kind, QV_INDEX_HNSW);
        assert_int_equal(d->hnsw_m, 16);
        assert_int_equal(d->hnsw_efc, 200);
        assert_int_equal(d->embed, s->embed);
        assert_int_equal(d->nfields, s->nfields);
        for (int f = 0; f < s->nfields; f++) {
            assert_string_equal(d->fields[f].name, s->fields[f].name);
            assert_int_equal(d->fields[f].type, s->fields[f].type);
        }
        free(d);
        qv_wbuf_free(&b);
        free(s);
    }
    /* no fields at all; the maximum of 256 fields with 64-byte names */
    for (int nf = 0; nf <= QV_FIELDS_MAX; nf += QV_FIELDS_MAX) {
        qv_schema_t *s = qv_schema_alloc((uint16_t)nf);
        strcpy(s->name, "x");
        s->dim = 1;
        s->metric = QV_METRIC_IP;
        s->shards = 1;
        s->index_kind = QV_INDEX_FLAT;
        s->hnsw_m = QV_HNSW_M_MAX;
        s->hnsw_efc = QV_HNSW_EFC_MAX;
        s->nfields = (uint16_t)nf;
        for (int f = 0; f < nf; f++) {
            char *n = s->fields[f].name; /* 64 characters, unique by the first three */
            n[0] = (char)('0' + f / 100);
            n[1] = (char)('0' + f / 10 % 10);
            n[2] = (char)('0' + f % 10);
            memset(n + 3, 'x', QV_NAME_MAX - 3);
            n[QV_NAME_MAX] = '\0';
            s->fields[f].type = (uint8_t)(1 + f % 5);
        }
        qv_err_t err;
        assert_int_equal(qv_schema_validate(s, &err), QV_OK);
        qv_wbuf_t b = encode_schema(s);
        qv_schema_t *d;
        assert_int_equal(qv_schema_decode(b.data, b.len, &d, &err), QV_OK);
        assert_string_equal(d->name, "x");
        assert_int_equal(d->dim, 1);
        assert_int_equal(d->metric, QV_METRIC_IP);
        assert_int_equal(d->index_kind, QV_INDEX_FLAT);
        assert_int_equal(d->hnsw_m, QV_HNSW_M_MAX);
        assert_int_equal(d->hnsw_efc, QV_HNSW_EFC_MAX);
        assert_int_equal(d->nfields, nf);
        for (int f = 0; f < nf; f++) {
            assert_string_equal(d->fields[f].name, s->fields[f].name);
            assert_int_equal(d->fields[f].type, s->fields[f].type);
        }
        free(d);
        qv_wbuf_free(&b);
        free(s);
    }
}

static void test_schema_corruption(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("schema", 3, 128, QV_METRIC_COSINE);
    qv_wbuf_t b = encode_schema(s);
    uint8_t *m = test_dup(b.data, b.len);
    /* every single-byte flip, checksum left alone */
    for (size_t i = 0; i < b.len; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            m[i] ^= flips[x];
            expect_schema_corrupt(m, b.len);
            m[i] ^= flips[x];
        }
    /* every truncation */
    for (size_t l = 0; l < b.len; l++)
        expect_schema_corrupt(b.data, l);
    /* extra trailing bytes, both with the old checksum in place and re-sealed */
    uint8_t big[1024];
    for (size_t extra = 1; extra <= 16; extra++) {
        memcpy(big, b.data, b.len);
        memset(big + b.len, 0x5a, extra);
        expect_schema_corrupt(big, b.len + extra);
        memcpy(big, b.data, b.len - 8);
        memset(big + b.len - 8, 0, extra);
        test_reseal(big, b.len + extra);
        expect_schema_corrupt(big, b.len + extra);
    }
    /* flips with a recomputed checksum: never crash; anything accepted is a valid schema that re-encodes to the
     * same bytes */
    size_t accepted = 0;
    for (size_t i = 0; i < b.len - 8; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            memcpy(m, b.data, b.len);
            m[i] ^= flips[x];
            test_reseal(m, b.len);
            qv_schema_t *d;
            qv_err_t err;
            int rc = qv_schema_decode(m, b.len, &d, &err);
            if (rc == QV_OK) {
                accepted++;
                assert_int_equal(qv_schema_validate(d, &err), QV_OK);
                qv_wbuf_t again = encode_schema(d);
                assert_int_equal(again.len, b.len);
                assert_memory_equal(again.data, m, b.len);
                qv_wbuf_free(&again);
                free(d);
            } else {
                assert_int_equal(rc, QV_ECORRUPT);
                assert_null(d);
            }
        }
    assert_true(accepted > 0); /* e.g. a flipped id or a name character that stays legal */
    free(m);
    qv_wbuf_free(&b);
    free(s);
}

/* A schema blob written by hand from the format comment, with one defect. */
enum {
    SD_NONE, SD_MAGIC, SD_VERSION, SD_NAME_EMPTY, SD_NAME_65, SD_NAME_CHAR, SD_DIM_0, SD_DIM_BIG, SD_METRIC_0,
    SD_METRIC_4, SD_SHARDS_0, SD_SHARDS_BIG, SD_NFIELDS_257, SD_FIELD_NAME, SD_FTYPE_0, SD_FTYPE_6, SD_DUP_FIELD,
    SD_NFIELDS_MORE, SD_INDEX_0, SD_INDEX_3, SD_M_0, SD_M_1, SD_M_BIG, SD_EFC_0, SD_EFC_BIG, SD_NO_INDEX_PARAMS,
#if SCHEMA_EMBED_BYTE
    SD_EMBED_BAD, SD_EMBED_DIM,
#endif
    SD_QUANT_BAD, SD_PQ_M_BAD, SD_DYNAMIC_2,
    SD_TRAILING, SD_V2, SD_V2_WITH_DYNAMIC, SD_COUNT
};

static void craft_schema(qv_wbuf_t *b, int defect)
{
    qv_wbuf_u32(b, defect == SD_MAGIC ? 0x53435652u : 0x53435651u);
    /* version 1: the pre-release layout, refused; version 2: before dynamic attributes (no flag byte), read */
    qv_wbuf_u8(b, defect == SD_VERSION ? 1 : defect == SD_V2 || defect == SD_V2_WITH_DYNAMIC ? 2 : 3);
    qv_wbuf_u32(b, 42);
    const char *name = defect == SD_NAME_EMPTY ? ""
                       : defect == SD_NAME_65  ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                       : defect == SD_NAME_CHAR ? "bad name"
                                                : "good";
    qv_wbuf_u8(b, (uint8_t)strlen(name));
    qv_wbuf_put(b, name, strlen(name));
    qv_wbuf_u32(b, defect == SD_DIM_0 ? 0 : defect == SD_DIM_BIG ? QV_DIM_MAX + 1 : 96);
    qv_wbuf_u8(b, defect == SD_METRIC_0 ? 0 : defect == SD_METRIC_4 ? 4 : QV_METRIC_IP);
    qv_wbuf_u32(b, defect == SD_SHARDS_0 ? 0 : defect == SD_SHARDS_BIG ? QV_SHARDS_MAX + 1 : 2);
    qv_wbuf_u16(b, defect == SD_NFIELDS_257 ? 257 : defect == SD_NFIELDS_MORE ? 4 : 3);
    const char *fn[3] = {"alpha", defect == SD_FIELD_NAME ? "be.ta" : "beta", defect == SD_DUP_FIELD ? "alpha" : "gamma"};
    uint8_t ft[3] = {QV_FT_INT64, (uint8_t)(defect == SD_FTYPE_0 ? 0 : defect == SD_FTYPE_6 ? 6 : QV_FT_KEYWORDS),
                     QV_FT_BOOL};
    int nf = defect == SD_NFIELDS_257 ? 257 : 3;
    for (int f = 0; f < nf; f++) {
        char extra[16];
        const char *n = f < 3 ? fn[f] : (snprintf(extra, sizeof extra, "f%d", f), extra);
        qv_wbuf_u8(b, (uint8_t)strlen(n));
        qv_wbuf_put(b, n, strlen(n));
        qv_wbuf_u8(b, f < 3 ? ft[f] : QV_FT_INT64);
    }
    if (defect != SD_NO_INDEX_PARAMS) { /* the layout before index parameters existed */
        qv_wbuf_u8(b, defect == SD_INDEX_0 ? 0 : defect == SD_INDEX_3 ? 3 : QV_INDEX_FLAT);
        qv_wbuf_u32(b, defect == SD_M_0 ? 0 : defect == SD_M_1 ? 1 : defect == SD_M_BIG ? QV_HNSW_M_MAX + 1 : 24);
        qv_wbuf_u32(b, defect == SD_EFC_0 ? 0 : defect == SD_EFC_BIG ? QV_HNSW_EFC_MAX + 1 : 300);
#if SCHEMA_EMBED_BYTE
        /* no model; an unknown one; the known one with the wrong dim (96, it gives 384-d vectors) */
        qv_wbuf_u8(b, defect == SD_EMBED_BAD ? 2 : defect == SD_EMBED_DIM ? QV_EMBED_MINILM : QV_EMBED_NONE);
#endif
        qv_wbuf_u8(b, defect == SD_QUANT_BAD ? 3 : defect == SD_PQ_M_BAD ? QV_QUANT_PQ : QV_QUANT_NONE);
        qv_wbuf_u32(b, defect == SD_PQ_M_BAD ? 7 : 0); /* 7 does not divide dim 96 */
        if (defect != SD_V2) /* SD_V2_WITH_DYNAMIC: a version 2 blob with the byte is one byte too long */
            qv_wbuf_u8(b, defect == SD_DYNAMIC_2 ? 2 : 1);
    }
    if (defect == SD_TRAILING)
        qv_wbuf_u8(b, 0);
    qv_wbuf_u64(b, 0);
    test_reseal(b->data, b->len);
}

static void test_schema_crafted(void **state)
{
    (void)state;
    for (int defect = 0; defect < SD_COUNT; defect++) {
        WHAT("schema defect %d", defect);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        craft_schema(&b, defect);
        if (defect == SD_NONE || defect == SD_V2) {
            qv_schema_t *d;
            qv_err_t err;
            assert_int_equal(qv_schema_decode(b.data, b.len, &d, &err), QV_OK);
            assert_int_equal(d->id, 42);
            assert_string_equal(d->name, "good");
            assert_int_equal(d->dim, 96);
            assert_int_equal(d->metric, QV_METRIC_IP);
            assert_int_equal(d->shards, 2);
            assert_int_equal(d->nfields, 3);
            assert_string_equal(d->fields[1].name, "beta");
            assert_int_equal(d->fields[1].type, QV_FT_KEYWORDS);
            assert_int_equal(d->index_kind, QV_INDEX_FLAT);
            assert_int_equal(d->hnsw_m, 24);
            assert_int_equal(d->hnsw_efc, 300);
            assert_int_equal(d->dynamic, defect == SD_NONE); /* version 2 has no flag: not dynamic */
            if (defect == SD_NONE) { /* the encoder writes exactly the bytes the format comment describes */
                qv_wbuf_t again = encode_schema(d);
                assert_int_equal(again.len, b.len);
                assert_memory_equal(again.data, b.data, b.len);
                qv_wbuf_free(&again);
            }
            free(d);
        } else {
            expect_schema_corrupt(b.data, b.len);
        }
        qv_wbuf_free(&b);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * WAL records */

#define NPTS 24

static gen_t *make_points(uint32_t n, uint64_t seed)
{
    gen_t *g = calloc(n, sizeof *g);
    uint64_t rng = seed;
    for (uint32_t i = 0; i < n; i++) {
        unsigned mask = i == 0 ? 0x1f : i == 1 ? 0 : (unsigned)rng_below(&rng, 32);
        gen_point(&g[i], &rng, i, mask, i == 2 ? QV_ID_MAX : 0);
    }
    return g;
}

static qv_wbuf_t encode_upsert(gen_t *g, uint32_t n, uint64_t seq)
{
    qv_point_t *pts = calloc(n ? n : 1, sizeof *pts);
    for (uint32_t i = 0; i < n; i++)
        pts[i] = g[i].pt;
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    assert_int_equal(qv_record_encode_upsert(&b, COLL_ID, seq, DIM, pts, n), QV_OK);
    free(pts);
    return b;
}

static void expect_record_corrupt(const uint8_t *p, size_t len, const qv_schema_t *s)
{
    qv_record_t rec;
    qv_err_t err;
    qv_err_clear(&err);
    expect_code(qv_record_decode(p, len, s, &rec, &err), QV_ECORRUPT);
    assert_null(rec.points);
    assert_null(rec.ids);
    assert_null(rec.vectors);
    assert_int_equal(err.code, QV_ECORRUPT);
    assert_true(strlen(err.msg) > 0);
}

static void test_record_roundtrip(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("rec", COLL_ID, DIM, QV_METRIC_L2);
    gen_t *g = make_points(NPTS, 1);
    const uint32_t counts[] = {0, 1, 2, NPTS};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t n = counts[c];
        qv_wbuf_t b = encode_upsert(g, n, 0x0102030405060708ull + n);
        assert_memory_equal(b.data, "QVWR", 4);
        qv_record_t rec;
        qv_err_t err;
        assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
        assert_int_equal(rec.op, QV_OP_UPSERT);
        assert_int_equal(rec.coll_id, COLL_ID);
        assert_true(rec.seq == 0x0102030405060708ull + n);
        assert_int_equal(rec.count, n);
        assert_null(rec.ids);
        for (uint32_t i = 0; i < n; i++)
            assert_point_eq(&g[i].pt, &rec.points[i]);
        qv_record_free(&rec);
        qv_wbuf_free(&b);
    }
    /* deletes, ids of 1 and 256 bytes */
    qv_str_t ids[NPTS];
    for (uint32_t i = 0; i < NPTS; i++)
        ids[i] = g[i].pt.id;
    for (uint32_t n = 0; n <= NPTS; n += NPTS / 2) {
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        assert_int_equal(qv_record_encode_delete(&b, COLL_ID, 99, ids, n), QV_OK);
        size_t want = 26 + 8;
        for (uint32_t i = 0; i < n; i++)
            want += 2 + ids[i].len;
        assert_int_equal(b.len, want);
        qv_record_t rec;
        qv_err_t err;
        assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
        assert_int_equal(rec.op, QV_OP_DELETE);
        assert_int_equal(rec.coll_id, COLL_ID);
        assert_true(rec.seq == 99);
        assert_int_equal(rec.count, n);
        assert_null(rec.points);
        for (uint32_t i = 0; i < n; i++)
            assert_str_eq(ids[i], rec.ids[i]);
        qv_record_free(&rec);
        assert_null(rec.ids);
        qv_wbuf_free(&b);
    }
    free(g);
    free(s);
}

/* The WAL key is be32 collection | be64 seq, so byte order is (collection, seq) order. */
static void test_wal_key(void **state)
{
    (void)state;
    uint8_t k[QV_CAT_WAL_KEY_LEN], k2[QV_CAT_WAL_KEY_LEN];
    qv_cat_wal_key(k, 0x01020304, 0x05060708090a0b0cull);
    const uint8_t want[QV_CAT_WAL_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_memory_equal(k, want, QV_CAT_WAL_KEY_LEN);
    qv_cat_wal_key(k, 1, 0xffffffffffffffffull);
    qv_cat_wal_key(k2, 2, 0);
    assert_true(memcmp(k, k2, QV_CAT_WAL_KEY_LEN) < 0);
    qv_cat_wal_key(k, 2, 255);
    qv_cat_wal_key(k2, 2, 256);
    assert_true(memcmp(k, k2, QV_CAT_WAL_KEY_LEN) < 0);
}

/* Re-encoding a decoded record gives the same bytes (delete records write dim 0, so only compare those). */
static void assert_record_reencodes(const qv_record_t *rec, const uint8_t *blob, size_t len, const qv_schema_t *s)
{
    qv_wbuf_t again;
    qv_wbuf_init(&again);
    if (rec->op == QV_OP_UPSERT) {
        assert_int_equal(qv_record_encode_upsert(&again, rec->coll_id, rec->seq, s->dim, rec->points, rec->count),
                         QV_OK);
    } else {
        uint32_t dim;
        memcpy(&dim, blob + 22, 4);
        assert_int_equal(qv_record_encode_delete(&again, rec->coll_id, rec->seq, rec->ids, rec->count), QV_OK);
        if (dim != 0) {
            qv_wbuf_free(&again);
            return;
        }
    }
    assert_int_equal(again.len, len);
    assert_memory_equal(again.data, blob, len);
    qv_wbuf_free(&again);
}

static void check_record_damage(const qv_wbuf_t *b, const qv_schema_t *s)
{
    uint8_t *m = test_dup(b->data, b->len);
    for (size_t i = 0; i < b->len; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            m[i] ^= flips[x];
            expect_record_corrupt(m, b->len, s);
            m[i] ^= flips[x];
        }
    for (size_t l = 0; l < b->len; l++)
        expect_record_corrupt(b->data, l, s);
    uint8_t *big = malloc(b->len + 16);
    for (size_t extra = 1; extra <= 16; extra++) {
        memcpy(big, b->data, b->len);
        memset(big + b->len, 0xa5, extra);
        expect_record_corrupt(big, b->len + extra, s);
        memcpy(big, b->data, b->len - 8);
        memset(big + b->len - 8, 0, extra);
        test_reseal(big, b->len + extra);
        expect_record_corrupt(big, b->len + extra, s);
    }
    free(big);
    /* valid checksum, damaged contents */
    for (size_t i = 0; i < b->len - 8; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            memcpy(m, b->data, b->len);
            m[i] ^= flips[x];
            test_reseal(m, b->len);
            qv_record_t rec;
            qv_err_t err;
            int rc = qv_record_decode(m, b->len, s, &rec, &err);
            if (rc == QV_OK) {
                assert_true(rec.count <= QV_BATCH_MAX);
                for (uint32_t p = 0; rec.op == QV_OP_UPSERT && p < rec.count; p++) {
                    assert_true(rec.points[p].id.len >= 1 && rec.points[p].id.len <= QV_ID_MAX);
                    for (int d = 0; d < DIM; d++)
                        assert_true(isfinite(rec.points[p].vector[d]));
                    for (uint32_t a = 0; a < rec.points[p].nattrs; a++) {
                        const qv_attr_t *at = &rec.points[p].attrs[a];
                        assert_true(at->field < s->nfields);
                        assert_int_equal(at->value.type, s->fields[at->field].type);
                    }
                }
                assert_record_reencodes(&rec, m, b->len, s);
                qv_record_free(&rec);
            } else {
                assert_int_equal(rc, QV_ECORRUPT);
                assert_null(rec.points);
            }
        }
    free(m);
}

static void test_record_corruption(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("rec", COLL_ID, DIM, QV_METRIC_L2);
    gen_t *g = make_points(6, 2);
    qv_wbuf_t b = encode_upsert(g, 6, 1234);
    check_record_damage(&b, s);
    qv_wbuf_free(&b);
    qv_str_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = g[i].pt.id;
    qv_wbuf_init(&b);
    assert_int_equal(qv_record_encode_delete(&b, COLL_ID, 5, ids, 6), QV_OK);
    check_record_damage(&b, s);
    qv_wbuf_free(&b);
    free(g);
    free(s);
}

/* A count the record cannot hold is refused before anything is allocated for it: 10000 points of 16384 dims would
 * ask for 655 MB. */
static void test_record_count_vs_length(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("rec", COLL_ID, QV_DIM_MAX, QV_METRIC_L2);
    qv_wbuf_t b;
    for (uint8_t op = QV_OP_UPSERT; op <= QV_OP_DELETE; op++) {
        qv_wbuf_init(&b);
        qv_wbuf_u32(&b, 0x52575651u);
        qv_wbuf_u8(&b, 1);
        qv_wbuf_u8(&b, op);
        qv_wbuf_u32(&b, COLL_ID);
        qv_wbuf_u64(&b, 1);
        qv_wbuf_u32(&b, QV_BATCH_MAX);
        qv_wbuf_u32(&b, op == QV_OP_UPSERT ? QV_DIM_MAX : 0);
        for (int i = 0; i < 64; i++)
            qv_wbuf_u8(&b, 1);
        qv_wbuf_u64(&b, 0);
        test_reseal(b.data, b.len);
        WHAT("count %u without the bytes, op %u", QV_BATCH_MAX, op);
        expect_record_corrupt(b.data, b.len, s);
        qv_wbuf_free(&b);
    }
    /* exactly the minimum: 1-byte ids, no attributes, no text */
    free(s);
    s = test_schema_all("rec", COLL_ID, 1, QV_METRIC_L2);
    qv_point_t pts[3];
    float v[3] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        pts[i] = (qv_point_t){.id = {&"abc"[i], 1}, .vector = &v[i], .nvector = 1};
    qv_wbuf_init(&b);
    assert_int_equal(qv_record_encode_upsert(&b, COLL_ID, 1, 1, pts, 3), QV_OK);
    assert_int_equal(b.len, 26 + 3 * (9 + 4 + 4) + 8); /* + u32 dyn_len per point (version 2) */
    qv_record_t rec;
    qv_err_t err;
    assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
    assert_int_equal(rec.count, 3);
    assert_null(rec.points[1].attrs); /* no attributes anywhere: empty lists are NULL */
    qv_record_free(&rec);
    qv_wbuf_free(&b);
    qv_str_t ids[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    qv_wbuf_init(&b);
    assert_int_equal(qv_record_encode_delete(&b, COLL_ID, 2, ids, 3), QV_OK);
    assert_int_equal(b.len, 26 + 3 * 3 + 8);
    assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
    qv_record_free(&rec);
    qv_wbuf_free(&b);
    free(s);
}

/* A record decoded against the wrong collection schema is rejected. */
static void test_record_wrong_schema(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("rec", COLL_ID, DIM, QV_METRIC_L2);
    gen_t *g = make_points(4, 3);
    qv_wbuf_t b = encode_upsert(g, 4, 1);
    qv_record_t rec;
    qv_err_t err;
    assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK); /* baseline */
    qv_record_free(&rec);

    qv_schema_t *w = test_schema_all("rec", COLL_ID, DIM + 1, QV_METRIC_L2); /* dim */
    expect_record_corrupt(b.data, b.len, w);
    free(w);
    w = test_schema_all("rec", COLL_ID + 1, DIM, QV_METRIC_L2); /* another collection */
    expect_record_corrupt(b.data, b.len, w);
    free(w);
    w = test_schema_all("rec", COLL_ID, DIM, QV_METRIC_L2); /* INT64 and DOUBLE swapped: same value size */
    w->fields[F_INT].type = QV_FT_DOUBLE;
    w->fields[F_DBL].type = QV_FT_INT64;
    expect_record_corrupt(b.data, b.len, w);
    w->fields[F_INT].type = QV_FT_INT64;
    w->fields[F_DBL].type = QV_FT_DOUBLE;
    w->fields[F_KW].type = QV_FT_KEYWORDS; /* KEYWORD stored, schema says KEYWORDS */
    expect_record_corrupt(b.data, b.len, w);
    w->fields[F_KW].type = QV_FT_KEYWORD;
    w->nfields = F_TAGS; /* the last field does not exist */
    expect_record_corrupt(b.data, b.len, w);
    free(w);
    qv_wbuf_free(&b);
    free(g);
    free(s);
}

/* A one-point upsert (or one-id delete) record written by hand from the format comment, with one defect. */
enum {
    RD_NONE, RD_MAGIC, RD_VERSION, RD_OP_0, RD_OP_3, RD_COLL, RD_COUNT_10001, RD_COUNT_HUGE, RD_COUNT_2, RD_COUNT_0,
    RD_DIM, RD_ID_0, RD_ID_257, RD_ID_PAST_END, RD_VEC_NAN, RD_VEC_INF, RD_VEC_NEG_INF, RD_NATTRS_6, RD_FIELD_5,
    RD_TYPE_MISMATCH, RD_TYPE_0, RD_BOOL_2, RD_BOOL_255, RD_KW_PAST_END, RD_KWS_4097, RD_KWS_HUGE, RD_KWS_ITEM_PAST_END,
    RD_TEXT_BIG, RD_TEXT_PAST_END, RD_DYN_BAD, RD_DYN_BIG, RD_DYN_PAST_END, RD_TRAILING, RD_V1,
    RD_DEL_NONE, RD_DEL_ID_0, RD_DEL_ID_257, RD_DEL_TRUNC, RD_DEL_COUNT_10001, RD_COUNT
};

static void put_s32(qv_wbuf_t *b, const char *s)
{
    qv_wbuf_u32(b, (uint32_t)strlen(s));
    qv_wbuf_put(b, s, strlen(s));
}

static void craft_record(qv_wbuf_t *b, int d)
{
    bool del = d >= RD_DEL_NONE;
    qv_wbuf_u32(b, d == RD_MAGIC ? 0x52575650u : 0x52575651u);
    qv_wbuf_u8(b, d == RD_VERSION ? 0 : d == RD_V1 ? 1 : 2); /* version 1: no dynamic attributes, read */
    qv_wbuf_u8(b, d == RD_OP_0 ? 0 : d == RD_OP_3 ? 3 : del ? QV_OP_DELETE : QV_OP_UPSERT);
    qv_wbuf_u32(b, d == RD_COLL ? COLL_ID + 1 : COLL_ID);
    qv_wbuf_u64(b, 77);
    qv_wbuf_u32(b, d == RD_COUNT_10001 || d == RD_DEL_COUNT_10001 ? QV_BATCH_MAX + 1
                   : d == RD_COUNT_HUGE                           ? 0xffffffffu
                   : d == RD_COUNT_2                              ? 2
                   : d == RD_COUNT_0                              ? 0
                                                                  : 1);
    qv_wbuf_u32(b, del ? 0 : d == RD_DIM ? DIM + 1 : DIM);
    if (del) {
        uint16_t l = d == RD_DEL_ID_0 ? 0 : d == RD_DEL_ID_257 ? 257 : d == RD_DEL_TRUNC ? 40 : 5;
        qv_wbuf_u16(b, l);
        for (int i = 0; i < (d == RD_DEL_TRUNC ? 20 : l); i++)
            qv_wbuf_u8(b, 'd');
    } else {
        uint16_t l = d == RD_ID_0 ? 0 : d == RD_ID_257 ? 257 : d == RD_ID_PAST_END ? 200 : 3;
        qv_wbuf_u16(b, l);
        for (int i = 0; i < (d == RD_ID_PAST_END ? 3 : l); i++)
            qv_wbuf_u8(b, 'p');
        if (d == RD_ID_PAST_END) { /* the record ends inside the id */
            qv_wbuf_u64(b, 0);
            test_reseal(b->data, b->len);
            return;
        }
        float v[DIM] = {0.5f, -1.0f, 2.0f, 0.0f};
        if (d == RD_VEC_NAN)
            v[2] = NAN;
        if (d == RD_VEC_INF)
            v[0] = INFINITY;
        if (d == RD_VEC_NEG_INF)
            v[3] = -INFINITY;
        qv_wbuf_put(b, v, sizeof v);
        qv_wbuf_u16(b, d == RD_NATTRS_6 ? 6 : 5);
        /* INT64 */
        qv_wbuf_u16(b, d == RD_FIELD_5 ? 5 : F_INT);
        qv_wbuf_u8(b, d == RD_TYPE_MISMATCH ? QV_FT_DOUBLE : d == RD_TYPE_0 ? 0 : QV_FT_INT64);
        qv_wbuf_u64(b, (uint64_t)-5);
        /* KEYWORDS (out of schema order on purpose) */
        qv_wbuf_u16(b, F_TAGS);
        qv_wbuf_u8(b, QV_FT_KEYWORDS);
        qv_wbuf_u32(b, d == RD_KWS_4097 ? QV_KEYWORDS_MAX + 1 : d == RD_KWS_HUGE ? 0xfffffff0u : 3);
        put_s32(b, "one");
        put_s32(b, "");
        if (d == RD_KWS_ITEM_PAST_END)
            qv_wbuf_u32(b, 1000);
        else
            put_s32(b, "three");
        /* DOUBLE */
        qv_wbuf_u16(b, F_DBL);
        qv_wbuf_u8(b, QV_FT_DOUBLE);
        qv_wbuf_f64(b, 2.5);
        /* BOOL */
        qv_wbuf_u16(b, F_BOOL);
        qv_wbuf_u8(b, QV_FT_BOOL);
        qv_wbuf_u8(b, d == RD_BOOL_2 ? 2 : d == RD_BOOL_255 ? 255 : 1);
        /* KEYWORD */
        qv_wbuf_u16(b, F_KW);
        qv_wbuf_u8(b, QV_FT_KEYWORD);
        if (d == RD_KW_PAST_END)
            qv_wbuf_u32(b, 0xffffffffu);
        else
            put_s32(b, "kw");
        /* text */
        if (d == RD_TEXT_BIG)
            qv_wbuf_u32(b, QV_TEXT_MAX + 1);
        else if (d == RD_TEXT_PAST_END)
            qv_wbuf_u32(b, 10);
        else
            put_s32(b, "hello");
        /* dynamic attributes (version 2): {"page": 7} */
        static const uint8_t dyn[] = {1, 0, 4, 'p', 'a', 'g', 'e', QV_FT_INT64, 7, 0, 0, 0, 0, 0, 0, 0};
        if (d == RD_DYN_BAD) { /* the same with a key length past its end */
            qv_wbuf_u32(b, sizeof dyn);
            qv_wbuf_put(b, dyn, 2);
            qv_wbuf_u8(b, 40);
            qv_wbuf_put(b, dyn + 3, sizeof dyn - 3);
        } else if (d == RD_DYN_BIG) {
            qv_wbuf_u32(b, QV_DYN_BYTES_MAX + 1);
        } else if (d == RD_DYN_PAST_END) {
            qv_wbuf_u32(b, 100);
            qv_wbuf_put(b, dyn, sizeof dyn);
        } else if (d != RD_V1) {
            qv_wbuf_u32(b, sizeof dyn);
            qv_wbuf_put(b, dyn, sizeof dyn);
        }
    }
    if (d == RD_TRAILING)
        qv_wbuf_u8(b, 0);
    qv_wbuf_u64(b, 0);
    test_reseal(b->data, b->len);
}

static void test_record_crafted(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("rec", COLL_ID, DIM, QV_METRIC_L2);
    s->dynamic = 1;
    for (int d = 0; d < RD_COUNT; d++) {
        WHAT("record defect %d", d);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        craft_record(&b, d);
        if (d == RD_NONE || d == RD_V1) {
            qv_record_t rec;
            qv_err_t err;
            assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
            assert_int_equal(rec.count, 1);
            const qv_point_t *p = &rec.points[0];
            assert_str_eq(p->id, (qv_str_t){"ppp", 3});
            assert_true(p->vector[0] == 0.5f && p->vector[1] == -1.0f && p->vector[2] == 2.0f);
            assert_int_equal(p->nattrs, 5);
            assert_true(find_attr(p, F_INT)->value.i == -5);
            assert_true(find_attr(p, F_DBL)->value.d == 2.5);
            assert_true(find_attr(p, F_BOOL)->value.b);
            assert_str_eq(find_attr(p, F_KW)->value.kw, (qv_str_t){"kw", 2});
            const qv_value_t *t = &find_attr(p, F_TAGS)->value;
            assert_int_equal(t->kws.n, 3);
            assert_str_eq(t->kws.items[0], (qv_str_t){"one", 3});
            assert_str_eq(t->kws.items[1], (qv_str_t){"", 0});
            assert_str_eq(t->kws.items[2], (qv_str_t){"three", 5});
            assert_str_eq(p->text, (qv_str_t){"hello", 5});
            if (d == RD_NONE) {
                qv_value_t v;
                assert_true(qv_dyn_find(p->dyn, (qv_str_t){"page", 4}, &v, NULL));
                assert_true(v.type == QV_FT_INT64 && v.i == 7);
                assert_record_reencodes(&rec, b.data, b.len, s); /* the encoder writes the documented layout */
                /* a collection without dynamic attributes refuses a record that has them */
                s->dynamic = 0;
                expect_record_corrupt(b.data, b.len, s);
                s->dynamic = 1;
            } else {
                assert_int_equal(p->dyn.len, 0); /* version 1: none */
            }
            qv_record_free(&rec);
        } else if (d == RD_DEL_NONE) {
            qv_record_t rec;
            qv_err_t err;
            assert_int_equal(qv_record_decode(b.data, b.len, s, &rec, &err), QV_OK);
            assert_int_equal(rec.op, QV_OP_DELETE);
            assert_str_eq(rec.ids[0], (qv_str_t){"ddddd", 5});
            assert_record_reencodes(&rec, b.data, b.len, s);
            qv_record_free(&rec);
        } else {
            expect_record_corrupt(b.data, b.len, s);
        }
        qv_wbuf_free(&b);
    }
    free(s);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Segment blob */

#define SEG_ROWS 150

/* A growing segment of SEG_ROWS generated points (row 3 and 4 have 200-byte ids), every 7th row deleted. */
static qv_segment_t *make_segment(const qv_schema_t *s, uint32_t rows, uint64_t seed)
{
    qv_segment_t *seg = qv_seg_create(s, 0x1122334455667788ull);
    assert_non_null(seg);
    uint64_t rng = seed;
    gen_t g;
    for (uint32_t i = 0; i < rows; i++) {
        unsigned mask = i == 0 ? 0x1f : 0;
        if (i > 1)
            for (int f = 0; f < F_COUNT; f++)
                mask |= (unsigned)rng_chance(&rng, 75) << f;
        gen_point(&g, &rng, i, mask, i == 3 || i == 4 ? 200 : i == 5 ? QV_ID_MAX : 0);
        qv_wbuf_t dyn;
        qv_wbuf_init(&dyn);
        if (s->dynamic && i % 3 == 0) { /* every third row: {"page": i, "src": "doc<i % 5>", "ok": true} */
            char src[16];
            int n = snprintf(src, sizeof src, "doc%u", i % 5);
            qv_dynattr_t a[3] = {{{"page", 4}, {.type = QV_FT_INT64, .i = i}},
                                 {{"src", 3}, {.type = QV_FT_KEYWORD, .kw = {src, (uint32_t)n}}},
                                 {{"ok", 2}, {.type = QV_FT_BOOL, .b = true}}};
            qv_err_t err;
            assert_int_equal(qv_dyn_encode(a, 3, "row", &dyn, &err), QV_OK);
            g.pt.dyn = (qv_str_t){(const char *)dyn.data, (uint32_t)dyn.len};
        }
        uint32_t row;
        assert_int_equal(qv_seg_append(seg, &g.pt, &row), QV_OK);
        assert_int_equal(row, i);
        qv_wbuf_free(&dyn);
    }
    for (uint32_t i = 0; i < rows; i += 7)
        assert_true(qv_seg_delete(seg, i));
    return seg;
}

static size_t strcol_size(const qv_strcol_t *c, size_t n) { return 8 + (n + 1) * 8 + c->off[n]; }

static void assert_strcol_eq(const qv_strcol_t *a, const qv_strcol_t *b, size_t n)
{
    assert_memory_equal(a->off, b->off, (n + 1) * sizeof(uint64_t));
    if (a->off[n])
        assert_memory_equal(a->bytes, b->bytes, a->off[n]);
}

/* Every row of b equals a: vectors, ids, text, presence and value of every column. */
static void assert_seg_eq(const qv_segment_t *a, const qv_segment_t *b)
{
    assert_true(a->id == b->id);
    assert_int_equal(a->dim, b->dim);
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->nfields, b->nfields);
    uint32_t rows = a->rows;
    if (rows)
        assert_memory_equal(a->vectors, b->vectors, (size_t)rows * a->dim * sizeof(float));
    assert_strcol_eq(&a->ids, &b->ids, rows);
    assert_strcol_eq(&a->text, &b->text, rows);
    assert_strcol_eq(&a->dyn, &b->dyn, rows);
    for (int f = 0; f < a->nfields; f++) {
        const qv_column_t *x = &a->cols[f], *y = &b->cols[f];
        assert_int_equal(x->type, y->type);
        for (uint32_t r = 0; r < rows; r++) {
            bool present = qv_bm_get(x->present, r);
            assert_int_equal(present, qv_bm_get(y->present, r));
            switch (x->type) {
            case QV_FT_INT64: assert_true(x->i64[r] == y->i64[r]); break;
            case QV_FT_DOUBLE: assert_memory_equal(&x->f64[r], &y->f64[r], 8); break;
            case QV_FT_BOOL: assert_int_equal(x->b[r], y->b[r]); break;
            case QV_FT_KEYWORD: assert_str_eq(qv_strcol_get(&x->str, r), qv_strcol_get(&y->str, r)); break;
            case QV_FT_KEYWORDS:
                assert_int_equal(x->kw_off[r], y->kw_off[r]);
                assert_int_equal(x->kw_off[r + 1], y->kw_off[r + 1]);
                break;
            }
        }
        if (x->type == QV_FT_KEYWORDS) {
            assert_int_equal(x->nitems, y->nitems);
            assert_strcol_eq(&x->str, &y->str, x->nitems);
        }
    }
}

/* The original points behind make_segment()'s rows are what the decoded segment holds, read through the columns. */
static void assert_seg_holds_points(const qv_segment_t *seg, uint64_t seed)
{
    uint64_t rng = seed;
    gen_t g;
    for (uint32_t i = 0; i < seg->rows; i++) {
        unsigned mask = i == 0 ? 0x1f : 0;
        if (i > 1)
            for (int f = 0; f < F_COUNT; f++)
                mask |= (unsigned)rng_chance(&rng, 75) << f;
        gen_point(&g, &rng, i, mask, i == 3 || i == 4 ? 200 : i == 5 ? QV_ID_MAX : 0);
        assert_str_eq(g.pt.id, qv_strcol_get(&seg->ids, i));
        assert_memory_equal(g.vec, qv_seg_vector(seg, i), DIM * sizeof(float));
        assert_str_eq(g.pt.text, qv_strcol_get(&seg->text, i));
        for (int f = 0; f < F_COUNT; f++) {
            const qv_column_t *c = &seg->cols[f];
            const qv_attr_t *a = find_attr(&g.pt, f);
            assert_int_equal(a != NULL, qv_bm_get(c->present, i));
            switch (f) {
            case F_INT: assert_true(c->i64[i] == (a ? a->value.i : 0)); break;
            case F_DBL: {
                double want = a ? a->value.d : 0.0;
                assert_memory_equal(&c->f64[i], &want, 8);
                break;
            }
            case F_BOOL: assert_int_equal(c->b[i], a ? a->value.b : 0); break;
            case F_KW: assert_str_eq(qv_strcol_get(&c->str, i), a ? a->value.kw : (qv_str_t){NULL, 0}); break;
            case F_TAGS:
                assert_int_equal(c->kw_off[i + 1] - c->kw_off[i], a ? a->value.kws.n : 0);
                for (uint32_t e = 0; a && e < a->value.kws.n; e++)
                    assert_str_eq(qv_strcol_get(&c->str, c->kw_off[i] + e), a->value.kws.items[e]);
                break;
            }
        }
    }
}

static qv_wbuf_t encode_seg(const qv_segment_t *seg)
{
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    assert_int_equal(qv_seg_encode(seg, &b), QV_OK);
    return b;
}

static void expect_seg_corrupt(const uint8_t *p, size_t len, const qv_schema_t *s)
{
    qv_segment_t *out = (qv_segment_t *)(uintptr_t)1;
    qv_err_t err;
    qv_err_clear(&err);
    expect_code(qv_seg_decode(p, len, s, &out, &err), QV_ECORRUPT);
    assert_null(out);
    assert_int_equal(err.code, QV_ECORRUPT);
    assert_true(strlen(err.msg) > 0);
}

static void test_segment_roundtrip(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    const uint32_t row_counts[] = {0, 1, 63, 64, 65, SEG_ROWS, 1100};
    for (size_t rc = 0; rc < sizeof row_counts / sizeof row_counts[0]; rc++) {
        uint32_t rows = row_counts[rc];
        qv_segment_t *seg = make_segment(s, rows, 11 + rows);
        qv_wbuf_t b = encode_seg(seg);
        /* layout: the header fields at their documented offsets, and the documented total size */
        uint64_t id;
        uint32_t dim, nrows;
        uint16_t nf;
        assert_memory_equal(b.data, "QVSG", 4);
        assert_int_equal(b.data[4], 2);
        memcpy(&id, b.data + 5, 8);
        memcpy(&dim, b.data + 13, 4);
        memcpy(&nrows, b.data + 17, 4);
        memcpy(&nf, b.data + 21, 2);
        assert_true(id == seg->id);
        assert_int_equal(dim, DIM);
        assert_int_equal(nrows, rows);
        assert_int_equal(nf, F_COUNT);
        for (int f = 0; f < F_COUNT; f++)
            assert_int_equal(b.data[23 + f], s->fields[f].type);
        size_t words = qv_bm_words(rows);
        size_t want = 23 + F_COUNT + (size_t)rows * DIM * 4 + strcol_size(&seg->ids, rows) +
                      strcol_size(&seg->text, rows) + strcol_size(&seg->dyn, rows) + 8;
        for (int f = 0; f < F_COUNT; f++) {
            const qv_column_t *c = &seg->cols[f];
            want += words * 8;
            switch (c->type) {
            case QV_FT_INT64:
            case QV_FT_DOUBLE: want += (size_t)rows * 8; break;
            case QV_FT_BOOL: want += rows; break;
            case QV_FT_KEYWORD: want += strcol_size(&c->str, rows); break;
            case QV_FT_KEYWORDS: want += ((size_t)rows + 1) * 4 + strcol_size(&c->str, c->nitems); break;
            }
        }
        assert_int_equal(b.len, want);

        qv_segment_t *d;
        qv_err_t err;
        assert_int_equal(qv_seg_decode(b.data, b.len, s, &d, &err), QV_OK);
        assert_seg_eq(seg, d);
        assert_seg_holds_points(d, 11 + rows);
        assert_true(d->sealed);
        assert_true(d->blob_len == b.len);
        assert_int_equal(d->ndeleted, 0); /* deletes live in the delete bitmap blob */
        for (uint32_t r = 0; r < rows; r++)
            assert_false(qv_seg_is_deleted(d, r));
        gen_t g;
        uint64_t rng = 1;
        gen_point(&g, &rng, 0, 0, 0);
        assert_int_equal(qv_seg_append(d, &g.pt, NULL), QV_EINVAL); /* sealed segments are immutable */
        assert_int_equal(d->rows, rows);

        /* decode -> encode is the identity on bytes */
        qv_wbuf_t again = encode_seg(d);
        assert_int_equal(again.len, b.len);
        assert_memory_equal(again.data, b.data, b.len);
        qv_wbuf_free(&again);
        qv_seg_unref(d);
        qv_wbuf_free(&b);
        qv_seg_unref(seg);
    }
    free(s);
}

/* Walks every byte a decoded segment exposes (ASan checks the bounds) and its invariants. */
static void walk_segment(const qv_segment_t *d)
{
    size_t sum = 0;
    for (uint32_t r = 0; r < d->rows; r++) {
        qv_str_t id = qv_strcol_get(&d->ids, r);
        assert_true(id.len >= 1 && id.len <= QV_ID_MAX);
        for (uint32_t j = 0; j < id.len; j++)
            sum += (uint8_t)id.p[j];
        qv_str_t t = qv_strcol_get(&d->text, r);
        for (uint32_t j = 0; j < t.len; j++)
            sum += (uint8_t)t.p[j];
        for (uint32_t k = 0; k < d->dim; k++)
            assert_true(isfinite(qv_seg_vector(d, r)[k]));
        for (int f = 0; f < d->nfields; f++) {
            const qv_column_t *c = &d->cols[f];
            sum += qv_bm_get(c->present, r);
            switch (c->type) {
            case QV_FT_INT64: sum += (size_t)c->i64[r]; break;
            case QV_FT_DOUBLE: sum += (size_t)(c->f64[r] != 0); break;
            case QV_FT_BOOL: assert_true(c->b[r] <= 1); break;
            case QV_FT_KEYWORD: sum += qv_strcol_get(&c->str, r).len; break;
            case QV_FT_KEYWORDS:
                assert_true(c->kw_off[r] <= c->kw_off[r + 1] && c->kw_off[r + 1] <= c->nitems);
                for (uint32_t e = c->kw_off[r]; e < c->kw_off[r + 1]; e++) {
                    qv_str_t s = qv_strcol_get(&c->str, e);
                    for (uint32_t j = 0; j < s.len; j++)
                        sum += (uint8_t)s.p[j];
                }
                break;
            }
        }
    }
    (void)sum;
}

static void test_segment_corruption(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    qv_segment_t *seg = make_segment(s, SEG_ROWS, 5);
    qv_wbuf_t b = encode_seg(seg);
    uint8_t *m = test_dup(b.data, b.len);
    for (size_t i = 0; i < b.len; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            m[i] ^= flips[x];
            expect_seg_corrupt(m, b.len, s);
            m[i] ^= flips[x];
        }
    for (size_t l = 0; l < b.len; l++)
        expect_seg_corrupt(b.data, l, s);
    uint8_t *big = malloc(b.len + 16);
    for (size_t extra = 1; extra <= 16; extra++) {
        memcpy(big, b.data, b.len);
        memset(big + b.len, 0x33, extra);
        expect_seg_corrupt(big, b.len + extra, s);
        memcpy(big, b.data, b.len - 8);
        memset(big + b.len - 8, 0, extra);
        test_reseal(big, b.len + extra);
        expect_seg_corrupt(big, b.len + extra, s);
    }
    /* one byte fewer before a valid checksum */
    memcpy(big, b.data, b.len - 9);
    test_reseal(big, b.len - 1);
    expect_seg_corrupt(big, b.len - 1, s);
    free(big);
    /* valid checksum, damaged contents: no crash, and whatever decodes re-encodes to the same bytes */
    size_t accepted = 0;
    for (size_t i = 0; i < b.len - 8; i++)
        for (size_t x = 0; x < sizeof flips; x++) {
            memcpy(m, b.data, b.len);
            m[i] ^= flips[x];
            test_reseal(m, b.len);
            qv_segment_t *d;
            qv_err_t err;
            int rc = qv_seg_decode(m, b.len, s, &d, &err);
            if (rc == QV_OK) {
                accepted++;
                walk_segment(d);
                qv_wbuf_t again = encode_seg(d);
                assert_int_equal(again.len, b.len);
                assert_memory_equal(again.data, m, b.len);
                qv_wbuf_free(&again);
                qv_seg_unref(d);
            } else {
                assert_int_equal(rc, QV_ECORRUPT);
                assert_null(d);
            }
        }
    assert_true(accepted > 0); /* vector bits, values, id bytes */
    free(m);
    qv_wbuf_free(&b);
    qv_seg_unref(seg);
    free(s);
}

/* One defect per case with a valid checksum: most are made by damaging the in-memory segment and letting the encoder
 * write it faithfully, the header ones by patching the blob and re-sealing. */
enum {
    SG_NONE, SG_VEC_NAN, SG_VEC_INF, SG_ID_EMPTY, SG_ID_257, SG_ID_BACKWARDS, SG_ID_OFF0, SG_TEXT_BACKWARDS,
    SG_KW_BACKWARDS, SG_KW_OFF0, SG_BOOL_2, SG_KWS_BACKWARDS, SG_KWS_OFF0, SG_KWS_PAST_ITEMS, SG_KWS_HUGE,
    SG_KWS_ITEMS_BACKWARDS, SG_MEM_COUNT,
    SG_MAGIC = SG_MEM_COUNT, SG_VERSION, SG_ROWS_HUGE, SG_ROWS_PLUS1, SG_ROWS_MINUS1, SG_DIM, SG_NFIELDS, SG_FTYPE,
    SG_IDS_TOTAL_PLUS1, SG_IDS_TOTAL_HUGE, SG_COUNT
};

static void damage_segment(qv_segment_t *seg, int d)
{
    uint32_t rows = seg->rows;
    qv_column_t *kw = &seg->cols[F_KW], *tags = &seg->cols[F_TAGS];
    switch (d) {
    case SG_VEC_NAN: seg->vectors[7 * DIM + 2] = NAN; break;
    case SG_VEC_INF: seg->vectors[0] = -INFINITY; break;
    case SG_ID_EMPTY: seg->ids.off[2] = seg->ids.off[1]; break;                  /* row 1 has 0 bytes */
    case SG_ID_257: seg->ids.off[4] = seg->ids.off[3] + 257; break;              /* rows 3, 4: 200 bytes each */
    case SG_ID_BACKWARDS: seg->ids.off[9] = seg->ids.off[10] + 1; break;
    case SG_ID_OFF0: seg->ids.off[0] = 1; break;
    case SG_TEXT_BACKWARDS: seg->text.off[rows - 1] = seg->text.off[rows] + 1; break;
    case SG_KW_BACKWARDS: kw->str.off[20] = kw->str.off[21] + 3; break;
    case SG_KW_OFF0: kw->str.off[0] = 2; break;
    case SG_BOOL_2: seg->cols[F_BOOL].b[6] = 2; break;
    case SG_KWS_BACKWARDS: tags->kw_off[30] = tags->kw_off[31] + 1; break;
    case SG_KWS_OFF0: tags->kw_off[0] = 1; break;
    case SG_KWS_PAST_ITEMS: tags->kw_off[rows] = (uint32_t)tags->nitems + 1; break;
    case SG_KWS_HUGE: tags->kw_off[rows] = 0xffffffffu; break;
    case SG_KWS_ITEMS_BACKWARDS: tags->str.off[1] = tags->str.off[tags->nitems] + 1; break;
    default: break;
    }
}

static void patch_blob(qv_wbuf_t *b, int d)
{
    uint32_t v32;
    uint64_t v64;
    size_t ids_at = 23 + F_COUNT + (size_t)SEG_ROWS * DIM * 4; /* the ids strcol's total */
    switch (d) {
    case SG_MAGIC: b->data[3] ^= 0x20; break;
    case SG_VERSION: b->data[4] = 3; break;
    case SG_ROWS_HUGE: v32 = 0xffffffffu; memcpy(b->data + 17, &v32, 4); break;
    case SG_ROWS_PLUS1: v32 = SEG_ROWS + 1; memcpy(b->data + 17, &v32, 4); break;
    case SG_ROWS_MINUS1: v32 = SEG_ROWS - 1; memcpy(b->data + 17, &v32, 4); break;
    case SG_DIM: v32 = DIM + 1; memcpy(b->data + 13, &v32, 4); break;
    case SG_NFIELDS: b->data[21] = F_COUNT - 1; break;
    case SG_FTYPE: b->data[23 + F_BOOL] = QV_FT_INT64; break;
    case SG_IDS_TOTAL_PLUS1:
        memcpy(&v64, b->data + ids_at, 8);
        v64++;
        memcpy(b->data + ids_at, &v64, 8);
        break;
    case SG_IDS_TOTAL_HUGE: v64 = ~0ull; memcpy(b->data + ids_at, &v64, 8); break;
    default: break;
    }
    test_reseal(b->data, b->len);
}

/* Dynamic attributes survive a segment's blob; a blob with them does not load into a collection without them, nor a
 * damaged one; a version 1 blob (no dyn column) loads with none. */
static void test_segment_dynamic(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    s->dynamic = 1;
    qv_segment_t *seg = make_segment(s, SEG_ROWS, 5), *back = NULL;
    qv_wbuf_t b = encode_seg(seg);
    qv_err_t err;
    assert_int_equal(qv_seg_decode(b.data, b.len, s, &back, &err), QV_OK);
    assert_seg_eq(seg, back);
    qv_value_t v;
    assert_true(qv_dyn_find(qv_strcol_get(&back->dyn, 9), (qv_str_t){"page", 4}, &v, NULL) && v.i == 9);
    assert_false(qv_dyn_find(qv_strcol_get(&back->dyn, 10), (qv_str_t){"page", 4}, &v, NULL));
    qv_seg_unref(back);
    s->dynamic = 0;
    expect_seg_corrupt(b.data, b.len, s);
    s->dynamic = 1;
    /* row 0's blob: its first key's length byte (after the u16 count) made to run past the blob */
    size_t dyn_at = 23 + F_COUNT + (size_t)SEG_ROWS * DIM * 4 + strcol_size(&seg->ids, SEG_ROWS) +
                    strcol_size(&seg->text, SEG_ROWS);
    size_t row0 = dyn_at + 8 + (SEG_ROWS + 1) * 8;
    b.data[row0 + 2] = 200;
    test_reseal(b.data, b.len);
    expect_seg_corrupt(b.data, b.len, s);
    qv_wbuf_free(&b);
    qv_seg_unref(seg);
    /* version 1: the same layout without the dyn strcol */
    s->dynamic = 0;
    seg = make_segment(s, SEG_ROWS, 6);
    b = encode_seg(seg);
    size_t cut = 8 + (SEG_ROWS + 1) * 8; /* an empty strcol: total 0 and zero offsets */
    memmove(b.data + dyn_at, b.data + dyn_at + cut, b.len - dyn_at - cut);
    b.len -= cut;
    b.data[4] = 1;
    test_reseal(b.data, b.len);
    assert_int_equal(qv_seg_decode(b.data, b.len, s, &back, &err), QV_OK);
    assert_seg_eq(seg, back);
    qv_seg_unref(back);
    qv_wbuf_free(&b);
    qv_seg_unref(seg);
    free(s);
}

/* The dyn blob on its own: encoding sorts and checks, the validator refuses every malformed blob, lookups. */
static void test_dyn_blob(void **state)
{
    (void)state;
    qv_err_t err;
    qv_wbuf_t b;
    qv_wbuf_init(&b);
    qv_str_t items[2] = {{"x", 1}, {"yy", 2}};
    qv_dynattr_t a[5] = {{{"zeta", 4}, {.type = QV_FT_DOUBLE, .d = 0.5}},
                         {{"alpha", 5}, {.type = QV_FT_KEYWORDS, .kws = {items, 2}}},
                         {{"mid", 3}, {.type = QV_FT_KEYWORD, .kw = {"v", 1}}},
                         {{"b", 1}, {.type = QV_FT_BOOL, .b = false}},
                         {{"n", 1}, {.type = QV_FT_INT64, .i = -3}}};
    assert_int_equal(qv_dyn_encode(a, 5, "p", &b, &err), QV_OK);
    assert_true(qv_dyn_valid(b.data, b.len));
    qv_str_t blob = {(const char *)b.data, (uint32_t)b.len};
    qv_dyn_iter_t it;
    qv_dyn_iter(&it, blob);
    qv_str_t k, prev = {"", 0};
    qv_value_t v;
    qv_rbuf_t its;
    int n = 0;
    while (qv_dyn_next(&it, &k, &v, &its)) { /* ascending keys */
        assert_true(n == 0 || memcmp(prev.p, k.p, prev.len < k.len ? prev.len : k.len) <= 0);
        prev = k;
        n++;
    }
    assert_int_equal(n, 5);
    assert_true(qv_dyn_find(blob, (qv_str_t){"alpha", 5}, &v, &its) && v.type == QV_FT_KEYWORDS && v.kws.n == 2);
    qv_str_t e0 = qv_dyn_item(&its), e1 = qv_dyn_item(&its);
    assert_true(e0.len == 1 && e1.len == 2 && memcmp(e1.p, "yy", 2) == 0);
    assert_true(qv_dyn_find(blob, (qv_str_t){"n", 1}, &v, NULL) && v.i == -3);
    assert_false(qv_dyn_find(blob, (qv_str_t){"nope", 4}, &v, NULL));
    /* every single-byte change and every truncation is either refused or still a valid blob */
    for (size_t i = 0; i < b.len; i++) {
        uint8_t keep = b.data[i];
        for (int x = 1; x < 256; x += 37) {
            b.data[i] = (uint8_t)(keep ^ x);
            (void)qv_dyn_valid(b.data, b.len); /* must not read past the end (ASan build) */
        }
        b.data[i] = keep;
    }
    for (size_t i = 1; i < b.len; i++)
        assert_false(qv_dyn_valid(b.data, i));
    qv_wbuf_free(&b);
    /* encoding refuses: a repeated key, an empty or long key, a non-finite double, too many attributes */
    qv_dynattr_t dup[2] = {{{"k", 1}, {.type = QV_FT_INT64}}, {{"k", 1}, {.type = QV_FT_BOOL}}};
    qv_wbuf_init(&b);
    assert_int_equal(qv_dyn_encode(dup, 2, "point 0", &b, &err), QV_EINVAL);
    assert_string_equal(err.msg, "point 0: attribute 'k' given twice");
    qv_dynattr_t empty = {{"", 0}, {.type = QV_FT_INT64}};
    assert_int_equal(qv_dyn_encode(&empty, 1, "p", &b, &err), QV_EINVAL);
    char longk[QV_NAME_MAX + 1];
    memset(longk, 'k', sizeof longk);
    qv_dynattr_t lk = {{longk, sizeof longk}, {.type = QV_FT_INT64}};
    assert_int_equal(qv_dyn_encode(&lk, 1, "p", &b, &err), QV_EINVAL);
    qv_dynattr_t inf = {{"d", 1}, {.type = QV_FT_DOUBLE, .d = INFINITY}};
    assert_int_equal(qv_dyn_encode(&inf, 1, "p", &b, &err), QV_EINVAL);
    assert_string_equal(err.msg, "p: attribute 'd' is not finite");
    qv_dynattr_t *many = calloc(QV_DYN_ATTRS_MAX + 1, sizeof *many);
    assert_int_equal(qv_dyn_encode(many, QV_DYN_ATTRS_MAX + 1, "p", &b, &err), QV_EINVAL);
    free(many);
    qv_wbuf_free(&b);
    assert_true(qv_dyn_valid(NULL, 0)); /* no attributes */
}

static void test_segment_crafted(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    for (int d = 0; d < SG_COUNT; d++) {
        WHAT("segment defect %d", d);
        qv_segment_t *seg = make_segment(s, SEG_ROWS, 21);
        /* preconditions the damage relies on */
        assert_int_equal(qv_strcol_get(&seg->ids, 3).len, 200);
        assert_int_equal(qv_strcol_get(&seg->ids, 4).len, 200);
        assert_true(seg->cols[F_TAGS].nitems > 2);
        qv_segment_t *saved = NULL;
        if (d < SG_MEM_COUNT)
            damage_segment(seg, d);
        qv_wbuf_t b = encode_seg(seg);
        if (d >= SG_MEM_COUNT)
            patch_blob(&b, d);
        if (d == SG_NONE) {
            qv_err_t err;
            assert_int_equal(qv_seg_decode(b.data, b.len, s, &saved, &err), QV_OK);
            assert_seg_eq(seg, saved);
            qv_seg_unref(saved);
        } else {
            expect_seg_corrupt(b.data, b.len, s);
        }
        qv_wbuf_free(&b);
        qv_seg_unref(seg);
    }
    free(s);
}

static void test_segment_wrong_schema(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    qv_segment_t *seg = make_segment(s, 70, 8);
    qv_wbuf_t b = encode_seg(seg);
    qv_schema_t *w = test_schema_all("seg", COLL_ID, DIM + 1, QV_METRIC_L2);
    expect_seg_corrupt(b.data, b.len, w);
    free(w);
    w = test_schema_all("seg", COLL_ID, DIM - 1, QV_METRIC_L2);
    expect_seg_corrupt(b.data, b.len, w);
    free(w);
    w = test_schema_all("seg", COLL_ID, DIM, QV_METRIC_L2);
    w->fields[F_INT].type = QV_FT_DOUBLE; /* same column width: only the type check can notice */
    w->fields[F_DBL].type = QV_FT_INT64;
    expect_seg_corrupt(b.data, b.len, w);
    w->fields[F_INT].type = QV_FT_INT64;
    w->fields[F_DBL].type = QV_FT_DOUBLE;
    w->nfields = F_COUNT - 1;
    expect_seg_corrupt(b.data, b.len, w);
    free(w);
    qv_wbuf_free(&b);
    qv_seg_unref(seg);
    free(s);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Delete bitmap blob */

static qv_segment_t *sealed_copy(const qv_segment_t *seg, const qv_schema_t *s)
{
    qv_wbuf_t b = encode_seg(seg);
    qv_segment_t *d;
    qv_err_t err;
    assert_int_equal(qv_seg_decode(b.data, b.len, s, &d, &err), QV_OK);
    qv_wbuf_free(&b);
    return d;
}

static void expect_del_corrupt(qv_segment_t *seg, const uint8_t *p, size_t len)
{
    size_t words = qv_bm_words(seg->rows ? seg->rows : 1);
    uint64_t *before = malloc(words * 8);
    memcpy(before, seg->deleted, words * 8);
    uint32_t nd = seg->ndeleted;
    qv_err_t err;
    qv_err_clear(&err);
    expect_code(qv_seg_decode_deleted(seg, p, len, &err), QV_ECORRUPT);
    assert_int_equal(err.code, QV_ECORRUPT);
    assert_true(strlen(err.msg) > 0);
    assert_memory_equal(before, seg->deleted, words * 8); /* untouched on failure */
    assert_int_equal(seg->ndeleted, nd);
    free(before);
}

static void test_delete_bitmap(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("del", COLL_ID, DIM, QV_METRIC_L2);
    const uint32_t row_counts[] = {0, 1, 64, SEG_ROWS};
    for (size_t rc = 0; rc < sizeof row_counts / sizeof row_counts[0]; rc++) {
        uint32_t rows = row_counts[rc];
        qv_segment_t *seg = make_segment(s, rows, 31);
        if (rows > 100) {
            qv_seg_delete(seg, 63);
            qv_seg_delete(seg, 64);
            qv_seg_delete(seg, rows - 1);
        }
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        assert_int_equal(qv_seg_encode_deleted(seg, &b), QV_OK);
        assert_int_equal(b.len, 4 + 1 + 4 + qv_bm_words(rows) * 8 + 8);
        assert_memory_equal(b.data, "QVDB", 4);
        qv_segment_t *d = sealed_copy(seg, s);
        qv_err_t err;
        assert_int_equal(qv_seg_decode_deleted(d, b.data, b.len, &err), QV_OK);
        assert_int_equal(d->ndeleted, seg->ndeleted);
        assert_false(d->del_dirty);
        for (uint32_t r = 0; r < rows; r++)
            assert_int_equal(qv_seg_is_deleted(d, r), qv_seg_is_deleted(seg, r));
        qv_seg_unref(d);

        if (rows == SEG_ROWS) {
            d = sealed_copy(seg, s);
            uint8_t *m = test_dup(b.data, b.len);
            for (size_t i = 0; i < b.len; i++)
                for (size_t x = 0; x < sizeof flips; x++) {
                    m[i] ^= flips[x];
                    expect_del_corrupt(d, m, b.len);
                    m[i] ^= flips[x];
                }
            for (size_t l = 0; l < b.len; l++)
                expect_del_corrupt(d, b.data, l);
            uint8_t *big = malloc(b.len + 16);
            for (size_t extra = 1; extra <= 16; extra++) {
                memcpy(big, b.data, b.len);
                memset(big + b.len, 0, extra);
                expect_del_corrupt(d, big, b.len + extra);
                memcpy(big, b.data, b.len - 8);
                memset(big + b.len - 8, 0, extra);
                test_reseal(big, b.len + extra);
                expect_del_corrupt(d, big, b.len + extra);
            }
            free(big);
            /* valid checksum: bad magic, version, row count (the segment's rows must match) */
            memcpy(m, b.data, b.len);
            m[0] ^= 1;
            test_reseal(m, b.len);
            expect_del_corrupt(d, m, b.len);
            memcpy(m, b.data, b.len);
            m[4] = 2;
            test_reseal(m, b.len);
            expect_del_corrupt(d, m, b.len);
            memcpy(m, b.data, b.len);
            uint32_t r1 = rows - 1;
            memcpy(m + 5, &r1, 4); /* same number of words, different row count */
            test_reseal(m, b.len);
            expect_del_corrupt(d, m, b.len);
            free(m);
            qv_seg_unref(d);
            /* a bitmap of another segment size */
            qv_segment_t *other = make_segment(s, rows - 1, 31);
            expect_del_corrupt(other, b.data, b.len);
            qv_seg_unref(other);
            /* every bit set, including bits past the last row: accepted, the extra bits cleared */
            memset(b.data + 9, 0xff, qv_bm_words(rows) * 8);
            test_reseal(b.data, b.len);
            d = sealed_copy(seg, s);
            assert_int_equal(qv_seg_decode_deleted(d, b.data, b.len, &err), QV_OK);
            assert_int_equal(d->ndeleted, rows);
            assert_true(d->deleted[qv_bm_words(rows) - 1] >> (rows & 63) == 0);
            qv_seg_unref(d);
        }
        qv_wbuf_free(&b);
        qv_seg_unref(seg);
    }
    free(s);
}

/* ---------------------------------------------------------------------------------------------------------------
 * qv_points_validate */

typedef struct {
    qv_point_t pts[4];
    float vec[4][DIM];
    qv_attr_t attrs[4][F_COUNT];
    char ids[4][8];
} batch_t;

/* Four valid points p0..p3 with an INT64 and a KEYWORD attribute each. */
static void make_batch(batch_t *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 4; i++) {
        b->ids[i][0] = 'p';
        b->ids[i][1] = (char)('0' + i);
        b->pts[i].id = (qv_str_t){b->ids[i], 2};
        for (int d = 0; d < DIM; d++)
            b->vec[i][d] = (float)(i + d + 1);
        b->pts[i].vector = b->vec[i];
        b->pts[i].nvector = DIM;
        b->attrs[i][0] = (qv_attr_t){.field = F_INT, .value = {.type = QV_FT_INT64, .i = i}};
        b->attrs[i][1] = (qv_attr_t){.field = F_KW, .value = {.type = QV_FT_KEYWORD, .kw = {"k", 1}}};
        b->pts[i].attrs = b->attrs[i];
        b->pts[i].nattrs = 2;
    }
}

/* Validates b and expects QV_EINVAL with every needle in the message. */
static void expect_invalid(const qv_schema_t *s, batch_t *b, const char *n1, const char *n2)
{
    qv_err_t err;
    qv_err_clear(&err);
    assert_int_equal(qv_points_validate(s, b->pts, 4, &err), QV_EINVAL);
    assert_int_equal(err.code, QV_EINVAL);
    if (!strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
        fail_msg("message '%s' does not mention '%s' / '%s'", err.msg, n1, n2 ? n2 : "");
}

static void test_points_validate(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("val", COLL_ID, DIM, QV_METRIC_L2);
    qv_schema_t *cos = test_schema_all("valc", COLL_ID, DIM, QV_METRIC_COSINE);
    batch_t b;
    qv_err_t err;

    make_batch(&b);
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK);
    assert_int_equal(qv_points_validate(s, b.pts, 0, &err), QV_OK);
    assert_true(b.vec[0][0] == 1.0f); /* L2 leaves vectors alone */

    make_batch(&b);
    b.pts[2].nvector = DIM - 1;
    expect_invalid(s, &b, "point 2 (id 'p2')", "components");
    make_batch(&b);
    b.pts[3].nvector = DIM + 1;
    expect_invalid(s, &b, "point 3 (id 'p3')", "dim 4");

    make_batch(&b);
    b.vec[1][2] = NAN;
    expect_invalid(s, &b, "point 1 (id 'p1')", "component 2 is not finite");
    make_batch(&b);
    b.vec[0][3] = INFINITY;
    expect_invalid(s, &b, "point 0 (id 'p0')", "not finite");
    make_batch(&b);
    b.vec[2][0] = -INFINITY;
    expect_invalid(cos, &b, "point 2 (id 'p2')", "not finite");

    /* COSINE: zero vectors rejected, others normalised in place */
    make_batch(&b);
    memset(b.vec[3], 0, sizeof b.vec[3]);
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK); /* fine for L2 */
    expect_invalid(cos, &b, "point 3 (id 'p3')", "zero vector");
    make_batch(&b);
    b.vec[1][0] = 3;
    b.vec[1][1] = 4;
    b.vec[1][2] = 0;
    b.vec[1][3] = 0;
    assert_int_equal(qv_points_validate(cos, b.pts, 4, &err), QV_OK);
    assert_float_equal(b.vec[1][0], 0.6f, 1e-6f);
    assert_float_equal(b.vec[1][1], 0.8f, 1e-6f);
    for (int i = 0; i < 4; i++) {
        double n = 0;
        for (int d = 0; d < DIM; d++)
            n += (double)b.vec[i][d] * b.vec[i][d];
        assert_float_equal(n, 1.0, 1e-5);
    }
    make_batch(&b);
    for (int d = 0; d < DIM; d++)
        b.vec[0][d] = 1e-30f; /* squares underflow: no direction either */
    qv_err_clear(&err);
    int rc = qv_points_validate(cos, b.pts, 4, &err);
    if (rc == QV_OK) /* if the kernel scales first, the result must still be a unit vector */
        assert_float_equal(b.vec[0][0], 0.5f, 1e-5f);
    else
        assert_true(strstr(err.msg, "point 0") != NULL);

    /* ids */
    make_batch(&b);
    b.pts[1].id.len = 0;
    expect_invalid(s, &b, "point 1", "empty id");
    char long_id[QV_ID_MAX + 1];
    memset(long_id, 'z', sizeof long_id);
    make_batch(&b);
    b.pts[2].id = (qv_str_t){long_id, QV_ID_MAX + 1};
    expect_invalid(s, &b, "point 2", "257 bytes");
    make_batch(&b);
    b.pts[2].id = (qv_str_t){long_id, QV_ID_MAX};
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK);
    make_batch(&b);
    b.pts[3].id = b.pts[1].id;
    expect_invalid(s, &b, "points 1 and 3", "'p1'");
    make_batch(&b);
    b.pts[1].id = (qv_str_t){"p0x", 2}; /* same bytes as p0 through another pointer */
    expect_invalid(s, &b, "points 0 and 1", "'p0'");

    /* attributes */
    make_batch(&b);
    b.attrs[2][1].field = F_COUNT;
    expect_invalid(s, &b, "point 2 (id 'p2')", "not in the schema");
    make_batch(&b);
    b.attrs[1][1].field = F_INT;
    b.attrs[1][1].value = (qv_value_t){.type = QV_FT_INT64, .i = 5};
    expect_invalid(s, &b, "point 1 (id 'p1')", "'n_int' given twice");
    make_batch(&b);
    b.attrs[0][1].value.type = QV_FT_INT64; /* INT64 value for a KEYWORD field */
    b.attrs[0][1].value.i = 1;
    expect_invalid(s, &b, "point 0 (id 'p0')", "'kw' is KEYWORD, got a INT64");
    make_batch(&b);
    b.attrs[3][0].value = (qv_value_t){.type = QV_FT_DOUBLE, .d = 1.0}; /* DOUBLE for INT64: no conversion */
    expect_invalid(s, &b, "point 3 (id 'p3')", "'n_int' is INT64, got a DOUBLE");
    make_batch(&b);
    b.attrs[3][1] = (qv_attr_t){.field = F_TAGS, .value = {.type = QV_FT_KEYWORD, .kw = {"k", 1}}};
    expect_invalid(s, &b, "point 3 (id 'p3')", "'tags' is KEYWORDS, got a KEYWORD");
    make_batch(&b);
    b.attrs[2][1] = (qv_attr_t){.field = F_BOOL, .value = {.type = QV_FT_INT64, .i = 1}};
    expect_invalid(s, &b, "point 2 (id 'p2')", "'flag' is BOOL");
    /* an integer is accepted for a DOUBLE field, and converted */
    make_batch(&b);
    b.attrs[1][1] = (qv_attr_t){.field = F_DBL, .value = {.type = QV_FT_INT64, .i = -(1LL << 40)}};
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK);
    assert_int_equal(b.attrs[1][1].value.type, QV_FT_DOUBLE);
    assert_true(b.attrs[1][1].value.d == -1099511627776.0);
    make_batch(&b);
    b.attrs[0][1] = (qv_attr_t){.field = F_DBL, .value = {.type = QV_FT_DOUBLE, .d = NAN}};
    expect_invalid(s, &b, "point 0 (id 'p0')", "'n_dbl' is not finite");
    make_batch(&b);
    static qv_str_t many[QV_KEYWORDS_MAX + 1];
    for (size_t i = 0; i < QV_KEYWORDS_MAX + 1; i++)
        many[i] = (qv_str_t){"m", 1};
    b.attrs[1][1] = (qv_attr_t){.field = F_TAGS, .value = {.type = QV_FT_KEYWORDS, .kws = {many, QV_KEYWORDS_MAX + 1}}};
    expect_invalid(s, &b, "point 1 (id 'p1')", "more than 4096 keywords");
    b.attrs[1][1].value.kws.n = QV_KEYWORDS_MAX;
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK);

    /* text size (only the length is looked at) */
    make_batch(&b);
    b.pts[2].text = (qv_str_t){"t", QV_TEXT_MAX + 1};
    expect_invalid(s, &b, "point 2 (id 'p2')", "text");
    b.pts[2].text = (qv_str_t){"t", 1};
    assert_int_equal(qv_points_validate(s, b.pts, 4, &err), QV_OK);

    /* batch size: 10000 distinct points pass, 10001 are refused */
    uint32_t n = QV_BATCH_MAX + 1;
    qv_point_t *pts = calloc(n, sizeof *pts);
    char (*ids)[8] = calloc(n, 8);
    float *vecs = calloc((size_t)n * DIM, sizeof(float));
    for (uint32_t i = 0; i < n; i++) {
        int l = snprintf(ids[i], 8, "%u", i);
        pts[i].id = (qv_str_t){ids[i], (uint32_t)l};
        vecs[(size_t)i * DIM] = 1;
        pts[i].vector = vecs + (size_t)i * DIM;
        pts[i].nvector = DIM;
    }
    assert_int_equal(qv_points_validate(s, pts, QV_BATCH_MAX, &err), QV_OK);
    qv_err_clear(&err);
    assert_int_equal(qv_points_validate(s, pts, n, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "10001 points"));
    /* a duplicate far apart in a full batch */
    pts[9999].id = pts[17].id;
    qv_err_clear(&err);
    assert_int_equal(qv_points_validate(s, pts, QV_BATCH_MAX, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "points 17 and 9999"));
    free(pts);
    free(ids);
    free(vecs);
    free(cos);
    free(s);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_roundtrip),    cmocka_unit_test(test_schema_corruption),
        cmocka_unit_test(test_schema_crafted),      cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_wal_key),             cmocka_unit_test(test_record_corruption),
        cmocka_unit_test(test_record_wrong_schema), cmocka_unit_test(test_record_crafted),
        cmocka_unit_test(test_record_count_vs_length),
        cmocka_unit_test(test_segment_roundtrip),   cmocka_unit_test(test_segment_corruption),
        cmocka_unit_test(test_segment_crafted),     cmocka_unit_test(test_segment_dynamic),
        cmocka_unit_test(test_dyn_blob),     cmocka_unit_test(test_segment_wrong_schema),
        cmocka_unit_test(test_delete_bitmap),       cmocka_unit_test(test_points_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
