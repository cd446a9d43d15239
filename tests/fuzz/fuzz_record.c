/* Fuzz target: WAL record decoder (storage/record.c) against a schema with every field type.
 *
 * Input: a record without its trailing checksum (see fuzz.h). A record that decodes must hold what the decoder
 * promises (count <= 10000, ids of 1..256 bytes, dim finite floats, attributes naming existing fields with the
 * field's type, bools 0/1, at most 4096 keywords, text <= 16 MiB) and must re-encode to the same bytes. Its points
 * are then appended to a segment (as recovery does), and that segment goes through the segment blob codec, which
 * must give back the same rows. */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "storage/dynattr.h"
#include "storage/record.h"
#include "storage/segment.h"
#include "tests/unit/qvtest.h"

#define DIM 3

static const qv_schema_t *schema(void)
{
    static qv_schema_t *s;
    if (!s) {
        s = test_schema_all("fuzz", 7, DIM, QV_METRIC_L2);
        s->dynamic = 1; /* so that records with dynamic attributes decode */
    }
    return s;
}

static void check_record(const qv_record_t *rec, const qv_schema_t *s, const uint8_t *blob, size_t len)
{
    FUZZ_CHECK(rec->count <= QV_BATCH_MAX);
    FUZZ_CHECK(rec->coll_id == s->id);
    qv_wbuf_t again;
    qv_wbuf_init(&again);
    bool current = blob[4] == 2; /* older versions re-encode as the current one */
    if (rec->op == QV_OP_DELETE) {
        for (uint32_t i = 0; i < rec->count; i++)
            FUZZ_CHECK(rec->ids[i].len >= 1 && rec->ids[i].len <= QV_ID_MAX);
        uint32_t dim;
        memcpy(&dim, blob + 22, 4);
        FUZZ_CHECK(qv_record_encode_delete(&again, rec->coll_id, rec->seq, rec->ids, rec->count) == QV_OK);
        FUZZ_CHECK(dim != 0 || !current || (again.len == len && memcmp(again.data, blob, len) == 0));
        qv_wbuf_free(&again);
        return;
    }
    FUZZ_CHECK(rec->op == QV_OP_UPSERT);
    for (uint32_t i = 0; i < rec->count; i++) {
        const qv_point_t *p = &rec->points[i];
        FUZZ_CHECK(p->id.len >= 1 && p->id.len <= QV_ID_MAX);
        FUZZ_CHECK(p->nvector == DIM);
        for (int d = 0; d < DIM; d++)
            FUZZ_CHECK(isfinite(p->vector[d]));
        FUZZ_CHECK(p->text.len <= QV_TEXT_MAX);
        FUZZ_CHECK(qv_dyn_valid(p->dyn.p, p->dyn.len));
        FUZZ_CHECK(p->nattrs <= s->nfields);
        for (uint32_t a = 0; a < p->nattrs; a++) {
            const qv_attr_t *at = &p->attrs[a];
            FUZZ_CHECK(at->field < s->nfields && at->value.type == s->fields[at->field].type);
            if (at->value.type == QV_FT_BOOL)
                FUZZ_CHECK(at->value.b == 0 || at->value.b == 1);
            if (at->value.type == QV_FT_KEYWORDS) {
                FUZZ_CHECK(at->value.kws.n <= QV_KEYWORDS_MAX);
                size_t sum = 0;
                for (uint32_t k = 0; k < at->value.kws.n; k++) /* every item readable */
                    sum += at->value.kws.items[k].len ? (uint8_t)at->value.kws.items[k].p[0] : 0;
                (void)sum;
            }
        }
    }
    FUZZ_CHECK(qv_record_encode_upsert(&again, rec->coll_id, rec->seq, DIM, rec->points, rec->count) == QV_OK);
    FUZZ_CHECK(!current || (again.len == len && memcmp(again.data, blob, len) == 0));
    qv_wbuf_free(&again);

    /* recovery's path: append every point to a growing segment, then seal it and load it back */
    qv_segment_t *seg = qv_seg_create(s, 3);
    FUZZ_CHECK(seg != NULL);
    for (uint32_t i = 0; i < rec->count; i++) {
        uint32_t row;
        FUZZ_CHECK(qv_seg_append(seg, &rec->points[i], &row) == QV_OK && row == i);
        FUZZ_CHECK(memcmp(qv_seg_vector(seg, row), rec->points[i].vector, DIM * sizeof(float)) == 0);
    }
    qv_wbuf_t blob2;
    qv_wbuf_init(&blob2);
    FUZZ_CHECK(qv_seg_encode(seg, &blob2) == QV_OK);
    qv_segment_t *loaded;
    qv_err_t err;
    FUZZ_CHECK(qv_seg_decode(blob2.data, blob2.len, s, &loaded, &err) == QV_OK);
    FUZZ_CHECK(loaded->rows == rec->count);
    for (uint32_t i = 0; i < rec->count; i++) {
        qv_str_t id = qv_strcol_get(&loaded->ids, i);
        FUZZ_CHECK(id.len == rec->points[i].id.len && memcmp(id.p, rec->points[i].id.p, id.len) == 0);
        qv_str_t t = qv_strcol_get(&loaded->text, i);
        FUZZ_CHECK(t.len == rec->points[i].text.len && (!t.len || memcmp(t.p, rec->points[i].text.p, t.len) == 0));
    }
    qv_seg_unref(loaded);
    qv_wbuf_free(&blob2);
    qv_seg_unref(seg);
}

static void decode(const qv_schema_t *s, const uint8_t *blob, size_t len)
{
    qv_record_t rec;
    qv_err_t err;
    int rc = qv_record_decode(blob, len, s, &rec, &err);
    if (rc == QV_OK) {
        check_record(&rec, s, blob, len);
        qv_record_free(&rec);
    } else {
        FUZZ_CHECK(rc == QV_ECORRUPT || rc == QV_ENOMEM);
        FUZZ_CHECK(rec.points == NULL && rec.ids == NULL && rec.vectors == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    const qv_schema_t *s = schema();
    decode(s, data, size);
    uint8_t *blob = qv_fuzz_checksummed(data, size);
    decode(s, blob, size + 8);
    free(blob);
    return 0;
}

/* ---- seeds ---- */

static void add_body(qv_fuzz_add_fn add, void *ctx, qv_wbuf_t *b)
{
    add(ctx, b->data, b->len - 8); /* without the checksum */
    qv_wbuf_free(b);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    static const qv_str_t kws[3] = {{"alpha", 5}, {"", 0}, {"gamma", 5}};
    char longid[QV_ID_MAX];
    memset(longid, 'L', sizeof longid);
    float v[4][DIM] = {{1, 2, 3}, {-0.5f, 0, 1e-30f}, {3e38f, -3e38f, 0}, {0, 0, 0}};
    qv_attr_t all[5] = {
        {F_TAGS, {.type = QV_FT_KEYWORDS, .kws = {kws, 3}}}, {F_INT, {.type = QV_FT_INT64, .i = -42}},
        {F_DBL, {.type = QV_FT_DOUBLE, .d = 0.25}},           {F_KW, {.type = QV_FT_KEYWORD, .kw = {"kw", 2}}},
        {F_BOOL, {.type = QV_FT_BOOL, .b = true}},
    };
    qv_attr_t some[2] = {{F_BOOL, {.type = QV_FT_BOOL, .b = false}}, {F_TAGS, {.type = QV_FT_KEYWORDS, .kws = {kws, 0}}}};
    /* dynamic attributes {"n": 5, "tags": ["a", ""]} (storage/dynattr.h) */
    static const char dyn[] = "\x02\x00\x01n\x01\x05\x00\x00\x00\x00\x00\x00\x00"
                              "\x04tags\x05\x02\x00\x00\x00\x01\x00\x00\x00a\x00\x00\x00\x00";
    qv_point_t pts[4] = {
        {.id = {"p1", 2}, .vector = v[0], .nvector = DIM, .attrs = all, .nattrs = 5, .text = {"some text", 9},
         .dyn = {dyn, sizeof dyn - 1}},
        {.id = {longid, QV_ID_MAX}, .vector = v[1], .nvector = DIM},
        {.id = {"p\0x", 3}, .vector = v[2], .nvector = DIM, .attrs = some, .nattrs = 2, .text = {"t", 1}},
        {.id = {"z", 1}, .vector = v[3], .nvector = DIM, .attrs = all + 1, .nattrs = 1},
    };
    qv_wbuf_t b;
    for (uint32_t n = 0; n <= 4; n++) {
        qv_wbuf_init(&b);
        qv_record_encode_upsert(&b, 7, 1000 + n, DIM, pts, n);
        add_body(add, ctx, &b);
    }
    /* records in which no point has an attribute, or no KEYWORDS value has an item (empty arrays in the decoder) */
    qv_attr_t empty_tags = {F_TAGS, {.type = QV_FT_KEYWORDS, .kws = {kws, 0}}};
    qv_point_t bare[2] = {pts[1], pts[3]};
    bare[1].attrs = &empty_tags;
    for (uint32_t n = 1; n <= 2; n++) {
        qv_wbuf_init(&b);
        qv_record_encode_upsert(&b, 7, 2000 + n, DIM, bare, n);
        add_body(add, ctx, &b);
    }
    qv_str_t ids[3] = {{"p1", 2}, {longid, QV_ID_MAX}, {"q", 1}};
    for (uint32_t n = 0; n <= 3; n += 3) {
        qv_wbuf_init(&b);
        qv_record_encode_delete(&b, 7, 5, ids, n);
        add_body(add, ctx, &b);
    }
}
