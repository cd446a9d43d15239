/* Filters (query/filter.c).
 *
 * Evaluation: a random segment (3000 rows, every field type, ~20% of rows lacking each attribute, values from small
 * domains so equality hits) and 1500 random filter trees (eq / any_of with short and long lists / range with open, closed, one-sided and
 * infinite bounds, INT64 values given for DOUBLE fields, nested all / any / negate up to depth 4). qv_filter_eval over
 * every block, and over odd-sized sub-blocks, must equal a naive per-row evaluator written here from the documented
 * semantics (a row lacking the field fails every condition on it; KEYWORDS match when any element matches; ranges
 * compare as doubles), bits past n must be cleared; the same holds on the segment after an encode/decode round trip,
 * and on that segment with inverted lists built for its KEYWORD / KEYWORDS columns (as sealed segments have them),
 * where eq / any_of take the postings path.
 *
 * Validation: every rejection rule (unknown field, wrong value type, range on a non-numeric field, no bound, NaN
 * bound or value, empty all / any / any_of, negate without exactly one child, a missing child, no operator, depth >
 * 32, > 4096 nodes, > 10000 values) with the field named in the message, and the limits themselves accepted. */
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
#include "query/filter.h"
#include "qvtest.h"

#define DIM 2
#define ROWS 3000

static const qv_str_t words[] = {{"", 0}, {"red", 3}, {"green", 5}, {"blue", 4}, {"re", 2}, {"a\0b", 3}};
#define NWORDS 6
static const int64_t ints[] = {-4, -3, -2, -1, 0, 1, 2, 3, 4, INT64_MIN, INT64_MAX, (1LL << 53) + 1};
#define NINTS 12
static const double dbls[] = {-2.5, -1, -0.0, 0, 0.5, 1, 2, 3.75, 1e300, -1e300};
#define NDBLS 10

/* The model of one row, independent of the segment's columns. */
typedef struct {
    bool has[F_COUNT];
    int64_t i;
    double d;
    int kw;
    bool b;
    int tags[4];
    int ntags;
} mrow_t;

static void gen_row(uint64_t *rng, mrow_t *r)
{
    memset(r, 0, sizeof *r);
    for (int f = 0; f < F_COUNT; f++)
        r->has[f] = !rng_chance(rng, 20);
    r->i = rng_chance(rng, 90) ? ints[rng_below(rng, 9)] : ints[rng_below(rng, NINTS)];
    r->d = dbls[rng_below(rng, NDBLS)];
    r->kw = (int)rng_below(rng, NWORDS);
    r->b = rng_below(rng, 2);
    r->ntags = (int)rng_below(rng, 5) % 4; /* 0..3, empty lists included */
    for (int e = 0; e < r->ntags; e++)
        r->tags[e] = (int)rng_below(rng, NWORDS);
}

static qv_segment_t *build_segment(const qv_schema_t *s, const mrow_t *rows, uint32_t n)
{
    qv_segment_t *seg = qv_seg_create(s, 1);
    assert_non_null(seg);
    for (uint32_t r = 0; r < n; r++) {
        const mrow_t *m = &rows[r];
        char id[16];
        float vec[DIM] = {(float)r, 1};
        qv_attr_t attrs[F_COUNT];
        qv_str_t items[4];
        uint32_t na = 0;
        for (int e = 0; e < m->ntags; e++)
            items[e] = words[m->tags[e]];
        if (m->has[F_INT])
            attrs[na++] = (qv_attr_t){.field = F_INT, .value = {.type = QV_FT_INT64, .i = m->i}};
        if (m->has[F_DBL])
            attrs[na++] = (qv_attr_t){.field = F_DBL, .value = {.type = QV_FT_DOUBLE, .d = m->d}};
        if (m->has[F_KW])
            attrs[na++] = (qv_attr_t){.field = F_KW, .value = {.type = QV_FT_KEYWORD, .kw = words[m->kw]}};
        if (m->has[F_BOOL])
            attrs[na++] = (qv_attr_t){.field = F_BOOL, .value = {.type = QV_FT_BOOL, .b = m->b}};
        if (m->has[F_TAGS])
            attrs[na++] = (qv_attr_t){.field = F_TAGS,
                                      .value = {.type = QV_FT_KEYWORDS, .kws = {items, (uint32_t)m->ntags}}};
        int l = snprintf(id, sizeof id, "r%u", r);
        qv_point_t pt = {.id = {id, (uint32_t)l}, .vector = vec, .nvector = DIM, .attrs = attrs, .nattrs = na};
        assert_int_equal(qv_seg_append(seg, &pt, NULL), QV_OK);
    }
    return seg;
}

/* ---- the reference evaluator ---- */

static bool str_eq(qv_str_t a, qv_str_t b) { return a.len == b.len && memcmp(a.p, b.p, a.len) == 0; }

static bool ref_value_matches(int field, const mrow_t *r, const qv_value_t *v)
{
    switch (field) {
    case F_INT: return r->i == v->i;
    case F_DBL: return r->d == v->d;
    case F_KW: return str_eq(words[r->kw], v->kw);
    case F_BOOL: return r->b == v->b;
    case F_TAGS:
        for (int e = 0; e < r->ntags; e++)
            if (str_eq(words[r->tags[e]], v->kw))
                return true;
        return false;
    }
    return false;
}

static bool ref_eval(const qv_filter_t *f, const mrow_t *r)
{
    switch (f->kind) {
    case QV_F_ALL:
        for (uint32_t k = 0; k < f->nkids; k++)
            if (!ref_eval(f->kids[k], r))
                return false;
        return true;
    case QV_F_ANY:
        for (uint32_t k = 0; k < f->nkids; k++)
            if (ref_eval(f->kids[k], r))
                return true;
        return false;
    case QV_F_NOT: return !ref_eval(f->kids[0], r);
    case QV_F_EQ:
    case QV_F_IN:
        if (!r->has[f->field])
            return false;
        for (uint32_t v = 0; v < f->nvalues; v++)
            if (ref_value_matches(f->field, r, &f->values[v]))
                return true;
        return false;
    case QV_F_RANGE: {
        if (!r->has[f->field])
            return false;
        double x = f->field == F_INT ? (double)r->i : r->d;
        if (f->has_lo && (f->lo_incl ? x < f->lo : x <= f->lo))
            return false;
        if (f->has_hi && (f->hi_incl ? x > f->hi : x >= f->hi))
            return false;
        return true;
    }
    }
    fail_msg("bad filter kind %u", f->kind);
    return false;
}

/* ---- random trees ---- */

static const char *const field_names[F_COUNT] = {"n_int", "n_dbl", "kw", "flag", "tags"};

static qv_value_t gen_value(uint64_t *rng, int field)
{
    qv_value_t v = {0};
    switch (field) {
    case F_INT:
        v.type = QV_FT_INT64;
        v.i = rng_chance(rng, 90) ? ints[rng_below(rng, 9)] : ints[rng_below(rng, NINTS)];
        break;
    case F_DBL:
        if (rng_chance(rng, 30)) { /* integers are accepted for DOUBLE fields */
            v.type = QV_FT_INT64;
            v.i = ints[rng_below(rng, 9)];
        } else {
            v.type = QV_FT_DOUBLE;
            v.d = rng_chance(rng, 90) ? dbls[rng_below(rng, NDBLS)] : rng_unit(rng) * 8 - 4;
        }
        break;
    case F_KW:
    case F_TAGS:
        v.type = QV_FT_KEYWORD;
        v.kw = rng_chance(rng, 95) ? words[rng_below(rng, NWORDS)] : (qv_str_t){"nothere", 7};
        break;
    case F_BOOL:
        v.type = QV_FT_BOOL;
        v.b = rng_below(rng, 2);
        break;
    }
    return v;
}

static double gen_bound(uint64_t *rng)
{
    static const double b[] = {-4, -3.5, -1, -0.0, 0, 0.5, 1, 2, 2.5, 3.75, 4, 1e300, -INFINITY, INFINITY,
                               9223372036854775807.0};
    return b[rng_below(rng, sizeof b / sizeof b[0])];
}

static qv_filter_t *gen_filter(uint64_t *rng, int depth)
{
    qv_filter_t *f;
    if (depth < 4 && rng_chance(rng, 45)) {
        uint32_t pick = rng_below(rng, 3);
        f = qv_filter_new(pick == 0 ? QV_F_ALL : pick == 1 ? QV_F_ANY : QV_F_NOT);
        f->nkids = f->kind == QV_F_NOT ? 1 : 1 + rng_below(rng, 4);
        f->kids = calloc(f->nkids, sizeof *f->kids);
        for (uint32_t k = 0; k < f->nkids; k++)
            f->kids[k] = gen_filter(rng, depth + 1);
        return f;
    }
    int field = (int)rng_below(rng, F_COUNT);
    bool numeric = field == F_INT || field == F_DBL;
    uint32_t kind = rng_below(rng, numeric ? 3 : 2);
    f = qv_filter_new(kind == 0 ? QV_F_EQ : kind == 1 ? QV_F_IN : QV_F_RANGE);
    f->field_name = (qv_str_t){field_names[field], (uint32_t)strlen(field_names[field])};
    if (f->kind == QV_F_RANGE) {
        uint32_t which = rng_below(rng, 3); /* 0: both, 1: lower only, 2: upper only */
        f->has_lo = which != 2;
        f->has_hi = which != 1;
        f->lo_incl = rng_below(rng, 2);
        f->hi_incl = rng_below(rng, 2);
        f->lo = gen_bound(rng);
        f->hi = rng_chance(rng, 70) ? gen_bound(rng) : f->lo; /* lo == hi: a point or an empty range */
        return f;
    }
    /* any_of: mostly short lists (linear probe), sometimes long ones (sorted at validation, binary search) */
    f->nvalues = f->kind == QV_F_EQ ? 1 : rng_chance(rng, 25) ? 9 + rng_below(rng, 40) : 1 + rng_below(rng, 4);
    f->values = calloc(f->nvalues, sizeof *f->values);
    for (uint32_t v = 0; v < f->nvalues; v++)
        f->values[v] = gen_value(rng, field);
    return f;
}

/* Evaluates f over rows [begin, begin+n) and compares with the reference; returns the number of matching rows. */
static uint32_t check_block(const qv_filter_t *f, const qv_segment_t *seg, const mrow_t *rows, uint32_t begin,
                            uint32_t n)
{
    uint64_t out[QV_FILTER_BLOCK / 64];
    memset(out, 0xaa, sizeof out); /* stale bits must not leak into the result */
    qv_filter_eval(f, seg, begin, n, out);
    uint32_t matches = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool got = qv_bm_get(out, i), want = ref_eval(f, &rows[begin + i]);
        if (got != want)
            fail_msg("row %u (block at %u, n %u): filter says %d, reference %d", begin + i, begin, n, got, want);
        matches += want;
    }
    for (uint32_t i = n; i < qv_bm_words(n) * 64; i++)
        if (qv_bm_get(out, i))
            fail_msg("bit %u past n = %u is set", i, n);
    return matches;
}

static void test_eval_random(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("filt", 1, DIM, QV_METRIC_L2);
    uint64_t rng = 2024;
    mrow_t *rows = calloc(ROWS, sizeof *rows);
    for (uint32_t r = 0; r < ROWS; r++)
        gen_row(&rng, &rows[r]);
    qv_segment_t *seg = build_segment(s, rows, ROWS);
    /* the same rows as a sealed segment loaded from its blob */
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    assert_int_equal(qv_seg_encode(seg, &blob), QV_OK);
    qv_segment_t *loaded, *indexed;
    qv_err_t err;
    assert_int_equal(qv_seg_decode(blob.data, blob.len, s, &loaded, &err), QV_OK);
    /* and once more with inverted lists on its KEYWORD and KEYWORDS columns, as sealed segments have them */
    assert_int_equal(qv_seg_decode(blob.data, blob.len, s, &indexed, &err), QV_OK);
    qv_wbuf_free(&blob);
    qv_seg_build_postings(indexed);
    assert_non_null(indexed->cols[F_KW].post);
    assert_non_null(indexed->cols[F_TAGS].post);
    assert_null(indexed->cols[F_INT].post);
    assert_null(loaded->cols[F_KW].post);

    uint32_t selective = 0, ntrees = 1500;
    for (uint32_t t = 0; t < ntrees; t++) {
        qv_filter_t *f = gen_filter(&rng, 1);
        if (qv_filter_validate(f, s, &err) != QV_OK)
            fail_msg("tree %u rejected: %s", t, err.msg);
        qv_segment_t *target = t % 3 == 0 ? seg : t % 3 == 1 ? loaded : indexed;
        uint32_t total = 0;
        for (uint32_t begin = 0; begin < ROWS; begin += QV_FILTER_BLOCK) {
            uint32_t n = ROWS - begin < QV_FILTER_BLOCK ? ROWS - begin : QV_FILTER_BLOCK;
            total += check_block(f, target, rows, begin, n);
        }
        /* a sub-block of odd size at a 64-row boundary */
        uint32_t begin = 64 * rng_below(&rng, ROWS / 64);
        uint32_t room = ROWS - begin < QV_FILTER_BLOCK ? ROWS - begin : QV_FILTER_BLOCK;
        check_block(f, target, rows, begin, 1 + rng_below(&rng, room));
        selective += total > 0 && total < ROWS;
        qv_filter_free(f);
    }
    /* the generator must produce informative trees, not only all-or-nothing ones */
    assert_true(selective > ntrees / 2);
    qv_seg_unref(indexed);
    qv_seg_unref(loaded);
    qv_seg_unref(seg);
    free(rows);
    free(s);
}

static uint64_t eval_both(qv_filter_t *f, const qv_schema_t *s, const qv_segment_t *seg, const qv_segment_t *post,
                          uint64_t *out)
{
    qv_err_t err;
    if (qv_filter_validate(f, s, &err) != QV_OK)
        fail_msg("%s", err.msg);
    qv_filter_eval(f, seg, 0, 5, out);
    uint64_t plain = out[0];
    memset(out, 0xff, 8);
    qv_filter_eval(f, post, 0, 5, out);
    if (out[0] != plain)
        fail_msg("growing segment %#llx, sealed with inverted lists %#llx", (unsigned long long)plain,
                 (unsigned long long)out[0]);
    return plain;
}

/* Hand-picked cases whose answers are known without the reference. */
static void test_eval_semantics(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("filt", 1, DIM, QV_METRIC_L2);
    mrow_t rows[5] = {0};
    /* row 0: everything, row 1: nothing, row 2: tags [] (present, empty), row 3: int 2^53+1, row 4: d -0.0 */
    rows[0] = (mrow_t){.has = {1, 1, 1, 1, 1}, .i = 3, .d = 2.5, .kw = 1, .b = true, .tags = {2, 3}, .ntags = 2};
    rows[2] = (mrow_t){.has = {0, 0, 0, 0, 1}, .ntags = 0};
    rows[3] = (mrow_t){.has = {1, 0, 0, 1, 0}, .i = (1LL << 53) + 1, .b = false};
    rows[4] = (mrow_t){.has = {0, 1, 1, 0, 0}, .d = -0.0, .kw = 0};
    qv_segment_t *seg = build_segment(s, rows, 5), *post;
    qv_err_t err;
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    assert_int_equal(qv_seg_encode(seg, &blob), QV_OK);
    assert_int_equal(qv_seg_decode(blob.data, blob.len, s, &post, &err), QV_OK);
    qv_wbuf_free(&blob);
    qv_seg_build_postings(post);
    uint64_t out[QV_FILTER_BLOCK / 64];

/* The answer (5 rows: bits 0..4) on the growing segment, checked equal on the sealed copy with inverted lists. */
#define EVAL(f) eval_both((f), s, seg, post, out)
    qv_value_t v;
    qv_filter_t *f = qv_filter_new(QV_F_EQ);
    f->field_name = (qv_str_t){"tags", 4};
    f->nvalues = 1;
    f->values = calloc(1, sizeof v);
    f->values[0] = (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"blue", 4}};
    assert_true(EVAL(f) == 0x1); /* any element matches; empty list and absent never */
    assert_int_equal(f->field, F_TAGS);
    qv_filter_t *neg = qv_filter_new(QV_F_NOT);
    neg->kids = calloc(1, sizeof *neg->kids);
    neg->kids[0] = f;
    neg->nkids = 1;
    assert_true(EVAL(neg) == 0x1e); /* rows lacking the value pass the negation; no bit past row 4 */
    qv_filter_free(neg);

    f = qv_filter_new(QV_F_EQ); /* exact INT64 equality beyond 2^53 */
    f->field_name = (qv_str_t){"n_int", 5};
    f->nvalues = 1;
    f->values = calloc(1, sizeof v);
    f->values[0] = (qv_value_t){.type = QV_FT_INT64, .i = 1LL << 53};
    assert_true(EVAL(f) == 0);
    f->values[0].i = (1LL << 53) + 1;
    assert_true(EVAL(f) == 0x8);
    qv_filter_free(f);

    f = qv_filter_new(QV_F_RANGE); /* ranges compare as doubles: 2^53+1 rounds to 2^53 */
    f->field_name = (qv_str_t){"n_int", 5};
    f->has_lo = f->lo_incl = true;
    f->lo = 9007199254740992.0;
    f->has_hi = f->hi_incl = true;
    f->hi = 9007199254740992.0;
    assert_true(EVAL(f) == 0x8);
    f->hi_incl = false; /* [x, x) is empty */
    assert_true(EVAL(f) == 0);
    f->has_lo = false; /* (-inf, 2^53): 3 */
    assert_true(EVAL(f) == 0x1);
    qv_filter_free(f);

    f = qv_filter_new(QV_F_EQ); /* DOUBLE: -0.0 == 0, an INT64 value is converted */
    f->field_name = (qv_str_t){"n_dbl", 5};
    f->nvalues = 1;
    f->values = calloc(1, sizeof v);
    f->values[0] = (qv_value_t){.type = QV_FT_INT64, .i = 0};
    assert_true(EVAL(f) == 0x10);
    assert_int_equal(f->values[0].type, QV_FT_DOUBLE);
    assert_true(f->values[0].d == 0.0);
    qv_filter_free(f);

    f = qv_filter_new(QV_F_IN); /* KEYWORD "" matches the empty keyword, not absent ones */
    f->field_name = (qv_str_t){"kw", 2};
    f->nvalues = 2;
    f->values = calloc(2, sizeof v);
    f->values[0] = (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"", 0}};
    f->values[1] = (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"zzz", 3}};
    assert_true(EVAL(f) == 0x10);
    qv_filter_free(f);

    f = qv_filter_new(QV_F_EQ); /* BOOL false matches only rows that have the field */
    f->field_name = (qv_str_t){"flag", 4};
    f->nvalues = 1;
    f->values = calloc(1, sizeof v);
    f->values[0] = (qv_value_t){.type = QV_FT_BOOL, .b = false};
    assert_true(EVAL(f) == 0x8);
    qv_filter_free(f);
#undef EVAL
    qv_seg_unref(post);
    qv_seg_unref(seg);
    free(s);
}

/* ---- validation ---- */

static qv_filter_t *leaf(uint8_t kind, const char *field, uint32_t nvalues)
{
    qv_filter_t *f = qv_filter_new(kind);
    f->field_name = (qv_str_t){field, (uint32_t)strlen(field)};
    f->nvalues = nvalues;
    f->values = nvalues ? calloc(nvalues, sizeof *f->values) : NULL;
    for (uint32_t v = 0; v < nvalues; v++)
        f->values[v] = (qv_value_t){.type = QV_FT_INT64, .i = (int64_t)v};
    return f;
}

static qv_filter_t *node(uint8_t kind, uint32_t nkids)
{
    qv_filter_t *f = qv_filter_new(kind);
    f->nkids = nkids;
    f->kids = calloc(nkids ? nkids : 1, sizeof *f->kids);
    return f;
}

static qv_filter_t *range(const char *field, bool has_lo, double lo, bool has_hi, double hi)
{
    qv_filter_t *f = leaf(QV_F_RANGE, field, 0);
    f->has_lo = has_lo;
    f->lo = lo;
    f->has_hi = has_hi;
    f->hi = hi;
    return f;
}

/* Validates and frees f; expects QV_EINVAL with needle in the message. */
static void reject(qv_filter_t *f, const qv_schema_t *s, const char *needle)
{
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_filter_validate(f, s, &err);
    if (rc != QV_EINVAL || err.code != QV_EINVAL || !strstr(err.msg, needle))
        fail_msg("expected QV_EINVAL mentioning '%s', got %d '%s'", needle, rc, err.msg);
    qv_filter_free(f);
}

static void accept(qv_filter_t *f, const qv_schema_t *s)
{
    qv_err_t err;
    qv_err_clear(&err);
    if (qv_filter_validate(f, s, &err) != QV_OK)
        fail_msg("unexpected rejection: %s", err.msg);
    qv_filter_free(f);
}

/* A chain of depth levels: depth-1 negations over one condition. */
static qv_filter_t *chain(int depth)
{
    qv_filter_t *f = leaf(QV_F_EQ, "n_int", 1);
    for (int d = 1; d < depth; d++) {
        qv_filter_t *n = node(QV_F_NOT, 1);
        n->kids[0] = f;
        f = n;
    }
    return f;
}

static void test_validate(void **state)
{
    (void)state;
    qv_schema_t *s = test_schema_all("filt", 1, DIM, QV_METRIC_L2);
    qv_filter_t *f;

    reject(leaf(QV_F_EQ, "nope", 1), s, "unknown field 'nope'");
    reject(leaf(QV_F_IN, "n_in", 2), s, "unknown field 'n_in'");
    reject(range("", true, 1, false, 0), s, "unknown field");

    /* value types */
    f = leaf(QV_F_EQ, "n_int", 1);
    f->values[0] = (qv_value_t){.type = QV_FT_DOUBLE, .d = 1};
    reject(f, s, "'n_int' (INT64): value of type DOUBLE");
    f = leaf(QV_F_EQ, "kw", 1);
    reject(f, s, "'kw' (KEYWORD): value of type INT64");
    f = leaf(QV_F_IN, "flag", 2);
    f->values[0] = (qv_value_t){.type = QV_FT_BOOL, .b = true};
    reject(f, s, "'flag' (BOOL): value of type INT64"); /* the second value is the bad one */
    f = leaf(QV_F_EQ, "tags", 1);
    f->values[0] = (qv_value_t){.type = QV_FT_KEYWORDS};
    reject(f, s, "'tags' (KEYWORDS): value of type KEYWORDS"); /* elements are compared to KEYWORD values */
    f = leaf(QV_F_EQ, "n_dbl", 1);
    f->values[0] = (qv_value_t){.type = QV_FT_BOOL, .b = true};
    reject(f, s, "'n_dbl' (DOUBLE): value of type BOOL");
    f = leaf(QV_F_EQ, "n_dbl", 1);
    f->values[0] = (qv_value_t){.type = QV_FT_DOUBLE, .d = NAN};
    reject(f, s, "'n_dbl': NaN value");
    f = leaf(QV_F_EQ, "n_dbl", 1);
    f->values[0] = (qv_value_t){.type = 0};
    reject(f, s, "'n_dbl' (DOUBLE): value of type UNSPECIFIED");

    /* ranges */
    reject(range("kw", true, 1, true, 2), s, "range on field 'kw' of type KEYWORD");
    reject(range("flag", true, 0, false, 0), s, "range on field 'flag' of type BOOL");
    reject(range("tags", false, 0, true, 1), s, "range on field 'tags' of type KEYWORDS");
    reject(range("n_int", false, 1, false, 2), s, "range on field 'n_int' has no bound");
    reject(range("n_dbl", true, NAN, true, 1), s, "range on field 'n_dbl' has a NaN bound");
    reject(range("n_int", true, 0, true, NAN), s, "range on field 'n_int' has a NaN bound");
    accept(range("n_int", false, NAN, true, 3), s);  /* an unused bound is not looked at */
    accept(range("n_int", true, -1, false, NAN), s);
    accept(range("n_dbl", true, 5, true, 1), s);       /* empty, but well-formed */
    accept(range("n_dbl", true, -INFINITY, true, 0), s);

    /* empty lists and bad structure */
    reject(node(QV_F_ALL, 0), s, "empty all list");
    reject(node(QV_F_ANY, 0), s, "empty any list");
    reject(leaf(QV_F_IN, "kw", 0), s, "any_of on field 'kw' has no values");
    reject(leaf(QV_F_EQ, "n_int", 0), s, "field 'n_int' has no values");
    reject(node(QV_F_NOT, 0), s, "negate needs exactly one filter");
    f = node(QV_F_NOT, 2);
    f->kids[0] = leaf(QV_F_EQ, "n_int", 1);
    f->kids[1] = leaf(QV_F_EQ, "n_int", 1);
    reject(f, s, "negate needs exactly one filter");
    f = node(QV_F_ALL, 3);
    f->kids[0] = leaf(QV_F_EQ, "n_int", 1);
    f->kids[2] = leaf(QV_F_EQ, "n_int", 1); /* kids[1] missing */
    reject(f, s, "empty filter inside a list");
    f = node(QV_F_NOT, 1);
    reject(f, s, "empty filter inside a list");
    reject(qv_filter_new(0), s, "no operator set");
    reject(qv_filter_new(77), s, "no operator set");
    f = node(QV_F_ANY, 2); /* errors deep inside a tree are found too */
    f->kids[0] = leaf(QV_F_EQ, "n_int", 1);
    f->kids[1] = node(QV_F_ALL, 1);
    f->kids[1]->kids[0] = range("kw", true, 0, false, 0);
    reject(f, s, "range on field 'kw'");

    /* depth: 32 levels are fine, 33 are not */
    accept(chain(QV_FILTER_DEPTH_MAX), s);
    reject(chain(QV_FILTER_DEPTH_MAX + 1), s, "deeper than 32 levels");
    reject(chain(1000), s, "deeper than 32 levels");

    /* nodes: 4096 in all are fine, 4097 are not */
    f = node(QV_F_ALL, QV_FILTER_NODES_MAX - 1);
    for (uint32_t k = 0; k < f->nkids; k++)
        f->kids[k] = leaf(QV_F_EQ, "n_int", 1);
    accept(f, s);
    f = node(QV_F_ANY, QV_FILTER_NODES_MAX);
    for (uint32_t k = 0; k < f->nkids; k++)
        f->kids[k] = leaf(QV_F_EQ, "n_int", 1);
    reject(f, s, "more than 4096 nodes");

    /* values: 10000 in all are fine, 10001 are not, also when spread over conditions */
    accept(leaf(QV_F_IN, "n_int", QV_FILTER_VALUES_MAX), s);
    reject(leaf(QV_F_IN, "n_int", QV_FILTER_VALUES_MAX + 1), s, "more than 10000 values");
    f = node(QV_F_ALL, 2);
    f->kids[0] = leaf(QV_F_IN, "n_int", 5000);
    f->kids[1] = leaf(QV_F_IN, "n_int", 5001);
    reject(f, s, "more than 10000 values");

    /* what validation resolves and converts */
    f = node(QV_F_ALL, 2);
    f->kids[0] = leaf(QV_F_IN, "n_dbl", 3);
    f->kids[1] = leaf(QV_F_EQ, "tags", 1);
    f->kids[1]->values[0] = (qv_value_t){.type = QV_FT_KEYWORD, .kw = {"x", 1}};
    qv_err_t err;
    assert_int_equal(qv_filter_validate(f, s, &err), QV_OK);
    assert_int_equal(f->kids[0]->field, F_DBL);
    assert_int_equal(f->kids[1]->field, F_TAGS);
    for (uint32_t v = 0; v < 3; v++) {
        assert_int_equal(f->kids[0]->values[v].type, QV_FT_DOUBLE);
        assert_true(f->kids[0]->values[v].d == (double)v);
    }
    qv_filter_free(f);
    qv_filter_free(NULL);
    free(s);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_semantics),
        cmocka_unit_test(test_eval_random),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
