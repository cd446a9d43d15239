/* Fuzz target: sealed segment blob and delete bitmap decoders (storage/segment_io.c), schema with every field type.
 *
 * Input: one mode byte, then a blob without its trailing checksum (see fuzz.h). Mode even: a segment blob; a segment
 * that decodes must have ids of 1..256 bytes, finite vectors, bools 0/1 and monotonic KEYWORDS offsets within its
 * items, every byte it exposes must be readable (ASan), filters must evaluate over all of its blocks, the inverted
 * lists built for it must give the same filter answers as scanning, and it must re-encode to the same bytes. Mode odd: a delete bitmap for a fixed 100-row segment; one that decodes must leave no
 * bit set past the last row and count exactly the bits it set. */
#include <math.h>
#include <string.h>

#include "common/bitmap.h"
#include "fuzz.h"
#include "query/filter.h"
#include "storage/segment.h"
#include "tests/unit/qvtest.h"

#define DIM 3
#define DEL_ROWS 100

static const qv_schema_t *schema(void)
{
    static qv_schema_t *s;
    if (!s)
        s = test_schema_all("fuzz", 7, DIM, QV_METRIC_L2);
    return s;
}

/* A few filters touching every column type, validated once. */
static qv_filter_t *filters[4];

static qv_filter_t *cond(uint8_t kind, const char *field, qv_value_t v)
{
    qv_filter_t *f = qv_filter_new(kind);
    f->field_name = (qv_str_t){field, (uint32_t)strlen(field)};
    if (kind == QV_F_RANGE) {
        f->has_lo = f->lo_incl = true;
        f->lo = -1;
    } else {
        f->nvalues = 1;
        f->values = calloc(1, sizeof v);
        f->values[0] = v;
    }
    return f;
}

static void make_filters(void)
{
    if (filters[0])
        return;
    filters[0] = cond(QV_F_EQ, "tags", (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"alpha", 5}});
    filters[1] = cond(QV_F_EQ, "kw", (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"", 0}});
    filters[2] = cond(QV_F_RANGE, "n_dbl", (qv_value_t){0});
    qv_filter_t *any = qv_filter_new(QV_F_ANY);
    any->nkids = 3;
    any->kids = calloc(3, sizeof *any->kids);
    any->kids[0] = cond(QV_F_RANGE, "n_int", (qv_value_t){0});
    any->kids[1] = cond(QV_F_EQ, "flag", (qv_value_t){.type = QV_FT_BOOL, .b = true});
    qv_filter_t *neg = qv_filter_new(QV_F_NOT);
    neg->nkids = 1;
    neg->kids = calloc(1, sizeof *neg->kids);
    neg->kids[0] = cond(QV_F_EQ, "n_int", (qv_value_t){.type = QV_FT_INT64, .i = 0});
    any->kids[2] = neg;
    filters[3] = any;
    for (int i = 0; i < 4; i++)
        FUZZ_CHECK(qv_filter_validate(filters[i], schema(), NULL) == QV_OK);
}

static void check_segment(qv_segment_t *d, const uint8_t *blob, size_t len)
{
    FUZZ_CHECK(d->sealed && d->dim == DIM && d->nfields == F_COUNT && d->ndeleted == 0);
    size_t sum = 0;
    for (uint32_t r = 0; r < d->rows; r++) {
        qv_str_t id = qv_strcol_get(&d->ids, r);
        FUZZ_CHECK(id.len >= 1 && id.len <= QV_ID_MAX);
        sum += (uint8_t)id.p[id.len - 1];
        qv_str_t t = qv_strcol_get(&d->text, r);
        if (t.len)
            sum += (uint8_t)t.p[t.len - 1];
        for (int k = 0; k < DIM; k++)
            FUZZ_CHECK(isfinite(qv_seg_vector(d, r)[k]));
        for (int f = 0; f < F_COUNT; f++) {
            const qv_column_t *c = &d->cols[f];
            sum += qv_bm_get(c->present, r);
            switch (c->type) {
            case QV_FT_INT64: sum += (size_t)c->i64[r]; break;
            case QV_FT_DOUBLE: sum += c->f64[r] > 0; break;
            case QV_FT_BOOL: FUZZ_CHECK(c->b[r] <= 1); break;
            case QV_FT_KEYWORD: {
                qv_str_t s = qv_strcol_get(&c->str, r);
                if (s.len)
                    sum += (uint8_t)s.p[s.len - 1];
                break;
            }
            case QV_FT_KEYWORDS:
                FUZZ_CHECK(c->kw_off[r] <= c->kw_off[r + 1] && c->kw_off[r + 1] <= c->nitems);
                for (uint32_t e = c->kw_off[r]; e < c->kw_off[r + 1]; e++) {
                    qv_str_t s = qv_strcol_get(&c->str, e);
                    if (s.len)
                        sum += (uint8_t)s.p[s.len - 1];
                }
                break;
            }
        }
    }
    (void)sum;
    /* filters over every block, by scanning and then through inverted lists (the same answers) */
    make_filters();
    uint64_t out[QV_FILTER_BLOCK / 64], out2[QV_FILTER_BLOCK / 64];
    for (int i = 0; i < 4; i++)
        for (uint32_t begin = 0; begin < d->rows; begin += QV_FILTER_BLOCK) {
            uint32_t n = d->rows - begin < QV_FILTER_BLOCK ? d->rows - begin : QV_FILTER_BLOCK;
            qv_filter_eval(filters[i], d, begin, n, out);
            if (n & 63)
                FUZZ_CHECK((out[n / 64] >> (n & 63)) == 0);
        }
    qv_seg_build_postings(d);
    for (int i = 0; i < 4; i++)
        for (uint32_t begin = 0; begin < d->rows; begin += QV_FILTER_BLOCK) {
            uint32_t n = d->rows - begin < QV_FILTER_BLOCK ? d->rows - begin : QV_FILTER_BLOCK;
            qv_column_t *kw = &d->cols[F_KW], *tags = &d->cols[F_TAGS];
            qv_postings_t *saved[2] = {kw->post, tags->post};
            kw->post = tags->post = NULL;
            qv_filter_eval(filters[i], d, begin, n, out);
            kw->post = saved[0];
            tags->post = saved[1];
            qv_filter_eval(filters[i], d, begin, n, out2);
            FUZZ_CHECK(memcmp(out, out2, qv_bm_words(n) * 8) == 0);
        }
    qv_wbuf_t again;
    qv_wbuf_init(&again);
    FUZZ_CHECK(qv_seg_encode(d, &again) == QV_OK);
    FUZZ_CHECK(again.len == len && memcmp(again.data, blob, len) == 0);
    qv_wbuf_free(&again);
}

static void decode_segment(const uint8_t *blob, size_t len)
{
    qv_segment_t *d;
    qv_err_t err;
    int rc = qv_seg_decode(blob, len, schema(), &d, &err);
    if (rc == QV_OK) {
        check_segment(d, blob, len);
        qv_seg_unref(d);
    } else {
        FUZZ_CHECK((rc == QV_ECORRUPT || rc == QV_ENOMEM) && d == NULL);
    }
}

/* The fixed segment delete bitmaps are decoded into (rows of minimal content). */
static qv_segment_t *del_target(void)
{
    static qv_segment_t *seg;
    if (!seg) {
        seg = qv_seg_create(schema(), 9);
        float v[DIM] = {1, 2, 3};
        for (int r = 0; r < DEL_ROWS; r++) {
            char id[8];
            int l = snprintf(id, sizeof id, "d%d", r);
            qv_point_t p = {.id = {id, (uint32_t)l}, .vector = v, .nvector = DIM};
            FUZZ_CHECK(qv_seg_append(seg, &p, NULL) == QV_OK);
        }
    }
    return seg;
}

static void decode_deleted(const uint8_t *blob, size_t len)
{
    qv_segment_t *seg = del_target();
    size_t words = qv_bm_words(DEL_ROWS);
    memset(seg->deleted, 0, words * 8);
    seg->ndeleted = 0;
    qv_err_t err;
    int rc = qv_seg_decode_deleted(seg, blob, len, &err);
    if (rc == QV_OK) {
        FUZZ_CHECK((seg->deleted[words - 1] >> (DEL_ROWS & 63)) == 0);
        FUZZ_CHECK(seg->ndeleted == qv_bm_count(seg->deleted, DEL_ROWS));
        FUZZ_CHECK(len == 4 + 1 + 4 + words * 8 + 8);
    } else {
        FUZZ_CHECK(rc == QV_ECORRUPT && seg->ndeleted == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    bool del = data[0] & 1;
    data++;
    size--;
    uint8_t *blob = qv_fuzz_checksummed(data, size);
    if (del) {
        decode_deleted(data, size);
        decode_deleted(blob, size + 8);
    } else {
        decode_segment(data, size);
        decode_segment(blob, size + 8);
    }
    free(blob);
    return 0;
}

/* ---- seeds: segments of 0, 1, 70 and 130 rows with every attribute present or absent, and delete bitmaps ---- */

static void add_mode(qv_fuzz_add_fn add, void *ctx, uint8_t mode, qv_wbuf_t *b)
{
    uint8_t *in = malloc(b->len - 7);
    in[0] = mode;
    memcpy(in + 1, b->data, b->len - 8);
    add(ctx, in, b->len - 7);
    free(in);
    qv_wbuf_free(b);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    static const qv_str_t words[4] = {{"alpha", 5}, {"", 0}, {"beta", 4}, {"a\0b", 3}};
    const uint32_t sizes[] = {0, 1, 70, 130};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        qv_segment_t *seg = qv_seg_create(schema(), 100 + si);
        for (uint32_t r = 0; r < sizes[si]; r++) {
            char id[QV_ID_MAX], text[40];
            uint32_t idl = r % 50 == 7 ? QV_ID_MAX : 1 + r % 9;
            for (uint32_t j = 0; j < idl; j++)
                id[j] = (char)('a' + (r + j) % 26);
            uint32_t tl = r % 4 ? r % 40 : 0;
            memset(text, 't', tl);
            float v[DIM] = {(float)r, -1, 0.5f};
            qv_str_t items[3] = {words[r % 4], words[(r + 1) % 4], words[(r + 2) % 4]};
            qv_attr_t a[F_COUNT];
            uint32_t na = 0;
            if (r % 5 != 1)
                a[na++] = (qv_attr_t){F_INT, {.type = QV_FT_INT64, .i = (int64_t)r - 3}};
            if (r % 5 != 2)
                a[na++] = (qv_attr_t){F_DBL, {.type = QV_FT_DOUBLE, .d = r * 0.5 - 4}};
            if (r % 5 != 3)
                a[na++] = (qv_attr_t){F_KW, {.type = QV_FT_KEYWORD, .kw = words[r % 4]}};
            if (r % 5 != 4)
                a[na++] = (qv_attr_t){F_BOOL, {.type = QV_FT_BOOL, .b = r & 1}};
            if (r % 5 != 0)
                a[na++] = (qv_attr_t){F_TAGS, {.type = QV_FT_KEYWORDS, .kws = {items, r % 4}}};
            qv_point_t p = {.id = {id, idl}, .vector = v, .nvector = DIM, .attrs = a, .nattrs = na,
                            .text = {text, tl}};
            qv_seg_append(seg, &p, NULL);
        }
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        qv_seg_encode(seg, &b);
        add_mode(add, ctx, 0, &b);
        qv_seg_unref(seg);
    }
    qv_segment_t *t = del_target();
    for (int pattern = 0; pattern < 3; pattern++) {
        memset(t->deleted, 0, qv_bm_words(DEL_ROWS) * 8);
        t->ndeleted = 0;
        for (uint32_t r = 0; r < DEL_ROWS; r++)
            if (pattern == 2 || (pattern == 1 && r % 3 == 0))
                qv_seg_delete(t, r);
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        qv_seg_encode_deleted(t, &b);
        add_mode(add, ctx, 1, &b);
    }
}
