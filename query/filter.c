/* Filter validation and block evaluation; see filter.h. */
#include "query/filter.h"
#include "storage/dynattr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"

#define BLOCK_WORDS (QV_FILTER_BLOCK / 64)

qv_filter_t *qv_filter_new(uint8_t kind)
{
    qv_filter_t *f = calloc(1, sizeof *f);
    if (f) {
        f->kind = kind;
        f->field = -1;
    }
    return f;
}

void qv_filter_free(qv_filter_t *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->nkids; i++)
        qv_filter_free(f->kids[i]);
    free(f->kids);
    free(f->values);
    free(f);
}

typedef struct {
    const qv_schema_t *s;
    uint32_t nodes, values;
    qv_err_t *err;
} vctx_t;

static int check_value(vctx_t *x, qv_value_t *v, const qv_field_t *fd)
{
    uint8_t want = fd->type == QV_FT_KEYWORDS ? QV_FT_KEYWORD : fd->type;
    if (want == QV_FT_DOUBLE && v->type == QV_FT_INT64) {
        v->d = (double)v->i;
        v->type = QV_FT_DOUBLE;
    }
    if (v->type != want)
        return qv_err_set(x->err, QV_EINVAL, "filter on field '%s' (%s): value of type %s", fd->name,
                          qv_ftype_name(fd->type), qv_ftype_name(v->type));
    if (want == QV_FT_DOUBLE && isnan(v->d))
        return qv_err_set(x->err, QV_EINVAL, "filter on field '%s': NaN value", fd->name);
    return QV_OK;
}

static void sort_values(qv_filter_t *f, int type);

/* A condition on a key that is not a field, in a collection with dynamic attributes: any scalar values (INT64,
 * DOUBLE, KEYWORD, BOOL), numeric bounds for a range. */
static int validate_dynamic(vctx_t *x, qv_filter_t *f)
{
    int kl = (int)(f->field_name.len > 64 ? 64 : f->field_name.len);
    if (f->field_name.len == 0 || f->field_name.len > QV_NAME_MAX)
        return qv_err_set(x->err, QV_EINVAL, "filter on a field name of %u bytes (must be 1..%d)",
                          f->field_name.len, QV_NAME_MAX);
    f->dynamic = true;
    if (f->kind == QV_F_RANGE) {
        if (!f->has_lo && !f->has_hi)
            return qv_err_set(x->err, QV_EINVAL, "filter: range on '%.*s' has no bound", kl, f->field_name.p);
        if ((f->has_lo && isnan(f->lo)) || (f->has_hi && isnan(f->hi)))
            return qv_err_set(x->err, QV_EINVAL, "filter: range on '%.*s' has a NaN bound", kl, f->field_name.p);
        return QV_OK;
    }
    if (f->nvalues == 0)
        return qv_err_set(x->err, QV_EINVAL, "filter: any_of on '%.*s' has no values", kl, f->field_name.p);
    x->values += f->nvalues;
    if (x->values > QV_FILTER_VALUES_MAX)
        return qv_err_set(x->err, QV_EINVAL, "filter has more than %d values", QV_FILTER_VALUES_MAX);
    for (uint32_t i = 0; i < f->nvalues; i++) {
        const qv_value_t *v = &f->values[i];
        if (v->type == QV_FT_KEYWORDS)
            return qv_err_set(x->err, QV_EINVAL, "filter on '%.*s': a keyword list is not a value to compare with",
                              kl, f->field_name.p);
        if (v->type == QV_FT_DOUBLE && isnan(v->d))
            return qv_err_set(x->err, QV_EINVAL, "filter on '%.*s': NaN value", kl, f->field_name.p);
    }
    return QV_OK;
}

static int validate(vctx_t *x, qv_filter_t *f, int depth)
{
    if (depth > QV_FILTER_DEPTH_MAX)
        return qv_err_set(x->err, QV_EINVAL, "filter nested deeper than %d levels", QV_FILTER_DEPTH_MAX);
    if (++x->nodes > QV_FILTER_NODES_MAX)
        return qv_err_set(x->err, QV_EINVAL, "filter has more than %d nodes", QV_FILTER_NODES_MAX);
    switch (f->kind) {
    case QV_F_ALL:
    case QV_F_ANY:
        if (f->nkids == 0)
            return qv_err_set(x->err, QV_EINVAL, "filter: empty %s list", f->kind == QV_F_ALL ? "all" : "any");
        /* fallthrough */
    case QV_F_NOT:
        if (f->kind == QV_F_NOT && f->nkids != 1)
            return qv_err_set(x->err, QV_EINVAL, "filter: negate needs exactly one filter");
        for (uint32_t i = 0; i < f->nkids; i++) {
            if (!f->kids[i])
                return qv_err_set(x->err, QV_EINVAL, "filter: empty filter inside a list");
            int rc = validate(x, f->kids[i], depth + 1);
            if (rc)
                return rc;
        }
        return QV_OK;
    case QV_F_EQ:
    case QV_F_IN:
    case QV_F_RANGE:
        break;
    default:
        return qv_err_set(x->err, QV_EINVAL, "filter: a filter or condition has no operator set");
    }
    f->field = qv_schema_field(x->s, f->field_name.p, f->field_name.len);
    if (f->field < 0 && x->s->dynamic)
        return validate_dynamic(x, f);
    if (f->field < 0)
        return qv_err_set(x->err, QV_EINVAL, "filter on unknown field '%.*s'",
                          (int)(f->field_name.len > 64 ? 64 : f->field_name.len), f->field_name.p);
    const qv_field_t *fd = &x->s->fields[f->field];
    if (f->kind == QV_F_RANGE) {
        if (fd->type != QV_FT_INT64 && fd->type != QV_FT_DOUBLE)
            return qv_err_set(x->err, QV_EINVAL, "filter: range on field '%s' of type %s (needs INT64 or DOUBLE)",
                              fd->name, qv_ftype_name(fd->type));
        if (!f->has_lo && !f->has_hi)
            return qv_err_set(x->err, QV_EINVAL, "filter: range on field '%s' has no bound", fd->name);
        if ((f->has_lo && isnan(f->lo)) || (f->has_hi && isnan(f->hi)))
            return qv_err_set(x->err, QV_EINVAL, "filter: range on field '%s' has a NaN bound", fd->name);
        return QV_OK;
    }
    if (f->nvalues == 0)
        return qv_err_set(x->err, QV_EINVAL, "filter: any_of on field '%s' has no values", fd->name);
    x->values += f->nvalues;
    if (x->values > QV_FILTER_VALUES_MAX)
        return qv_err_set(x->err, QV_EINVAL, "filter has more than %d values", QV_FILTER_VALUES_MAX);
    for (uint32_t i = 0; i < f->nvalues; i++) {
        int rc = check_value(x, &f->values[i], fd);
        if (rc)
            return rc;
    }
    sort_values(f, fd->type);
    return QV_OK;
}

int qv_filter_validate(qv_filter_t *f, const qv_schema_t *s, qv_err_t *err)
{
    vctx_t x = {.s = s, .err = err};
    return validate(&x, f, 1);
}

static bool str_eq(qv_str_t a, qv_str_t b) { return a.len == b.len && memcmp(a.p, b.p, a.len) == 0; }

/* any_of lists longer than this are sorted at validation and probed by binary search (up to QV_FILTER_VALUES_MAX
 * values, a row-by-row linear probe would cost 10,000 comparisons per row). */
#define PROBE_LINEAR_MAX 8

static int str_cmp(qv_str_t a, qv_str_t b)
{
    int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = ((const qv_value_t *)a)->i, y = ((const qv_value_t *)b)->i;
    return (x > y) - (x < y);
}

static int cmp_f64(const void *a, const void *b)
{
    double x = ((const qv_value_t *)a)->d, y = ((const qv_value_t *)b)->d;
    return (x > y) - (x < y);
}

static int cmp_kw(const void *a, const void *b) { return str_cmp(((const qv_value_t *)a)->kw, ((const qv_value_t *)b)->kw); }

static void sort_values(qv_filter_t *f, int type)
{
    if (f->nvalues <= PROBE_LINEAR_MAX)
        return;
    if (type == QV_FT_INT64)
        qsort(f->values, f->nvalues, sizeof *f->values, cmp_i64);
    else if (type == QV_FT_DOUBLE)
        qsort(f->values, f->nvalues, sizeof *f->values, cmp_f64);
    else if (type == QV_FT_KEYWORD || type == QV_FT_KEYWORDS)
        qsort(f->values, f->nvalues, sizeof *f->values, cmp_kw);
}

/* Binary search over values sorted by sort_values; cmp(key, vals[m]) < 0 when key sorts first. */
#define BSEARCH_VALUES(vals, nv, CMP)          \
    do {                                       \
        uint32_t lo = 0, hi = (nv);            \
        while (lo < hi) {                      \
            uint32_t m = lo + (hi - lo) / 2;   \
            int c = CMP(&(vals)[m]);           \
            if (c == 0)                        \
                return true;                   \
            if (c < 0)                         \
                hi = m;                        \
            else                               \
                lo = m + 1;                    \
        }                                      \
        return false;                          \
    } while (0)

static bool has_i64(const qv_value_t *vals, uint32_t nv, int64_t key)
{
#define CMP_I64(v) ((key > (v)->i) - (key < (v)->i))
    BSEARCH_VALUES(vals, nv, CMP_I64);
#undef CMP_I64
}

static bool has_f64(const qv_value_t *vals, uint32_t nv, double key)
{
#define CMP_F64(v) ((key > (v)->d) - (key < (v)->d))
    BSEARCH_VALUES(vals, nv, CMP_F64);
#undef CMP_F64
}

static bool has_kw(const qv_value_t *vals, uint32_t nv, qv_str_t key)
{
#define CMP_KW(v) str_cmp(key, (v)->kw)
    BSEARCH_VALUES(vals, nv, CMP_KW);
#undef CMP_KW
}

/* Does the value of column c at row r equal one of vals? The row has a value (present bit checked by caller). */
static bool match_any(const qv_column_t *c, uint32_t r, const qv_value_t *vals, uint32_t nv)
{
    if (nv > PROBE_LINEAR_MAX) { /* sorted at validation */
        switch (c->type) {
        case QV_FT_INT64: return has_i64(vals, nv, c->i64[r]);
        case QV_FT_DOUBLE: return has_f64(vals, nv, c->f64[r]);
        case QV_FT_KEYWORD: return has_kw(vals, nv, qv_strcol_get(&c->str, r));
        case QV_FT_KEYWORDS:
            for (uint32_t e = c->kw_off[r]; e < c->kw_off[r + 1]; e++)
                if (has_kw(vals, nv, qv_strcol_get(&c->str, e)))
                    return true;
            return false;
        default: break;
        }
    }
    switch (c->type) {
    case QV_FT_INT64:
        for (uint32_t i = 0; i < nv; i++)
            if (c->i64[r] == vals[i].i)
                return true;
        return false;
    case QV_FT_DOUBLE:
        for (uint32_t i = 0; i < nv; i++)
            if (c->f64[r] == vals[i].d)
                return true;
        return false;
    case QV_FT_BOOL:
        for (uint32_t i = 0; i < nv; i++)
            if ((c->b[r] != 0) == vals[i].b)
                return true;
        return false;
    case QV_FT_KEYWORD: {
        qv_str_t s = qv_strcol_get(&c->str, r);
        for (uint32_t i = 0; i < nv; i++)
            if (str_eq(s, vals[i].kw))
                return true;
        return false;
    }
    case QV_FT_KEYWORDS:
        for (uint32_t e = c->kw_off[r]; e < c->kw_off[r + 1]; e++) {
            qv_str_t s = qv_strcol_get(&c->str, e);
            for (uint32_t i = 0; i < nv; i++)
                if (str_eq(s, vals[i].kw))
                    return true;
        }
        return false;
    }
    return false;
}

static bool in_range(const qv_filter_t *f, double v)
{
    if (f->has_lo && (f->lo_incl ? !(v >= f->lo) : !(v > f->lo)))
        return false;
    if (f->has_hi && (f->hi_incl ? !(v <= f->hi) : !(v < f->hi)))
        return false;
    return true;
}

/* Does a row's dynamic value equal filter value w (comparable types only)? items: a KEYWORDS value's items. */
static bool dyn_equal(const qv_value_t *v, const qv_rbuf_t *items, const qv_value_t *w)
{
    bool vnum = v->type == QV_FT_INT64 || v->type == QV_FT_DOUBLE;
    bool wnum = w->type == QV_FT_INT64 || w->type == QV_FT_DOUBLE;
    if (vnum && wnum) {
        if (v->type == QV_FT_INT64 && w->type == QV_FT_INT64)
            return v->i == w->i;
        return (v->type == QV_FT_INT64 ? (double)v->i : v->d) == (w->type == QV_FT_INT64 ? (double)w->i : w->d);
    }
    if (w->type == QV_FT_BOOL)
        return v->type == QV_FT_BOOL && v->b == w->b;
    if (w->type != QV_FT_KEYWORD)
        return false;
    if (v->type == QV_FT_KEYWORD)
        return str_eq(v->kw, w->kw);
    if (v->type == QV_FT_KEYWORDS) {
        qv_rbuf_t it = *items;
        for (uint32_t e = 0; e < v->kws.n; e++)
            if (str_eq(qv_dyn_item(&it), w->kw))
                return true;
    }
    return false;
}

/* A condition on a dynamic key at row r of seg. */
static bool dyn_match(const qv_filter_t *f, const qv_segment_t *seg, uint32_t r)
{
    qv_str_t blob = qv_strcol_get(&seg->dyn, r);
    qv_value_t v;
    qv_rbuf_t items;
    if (blob.len == 0 || !qv_dyn_find(blob, f->field_name, &v, &items))
        return false;
    if (f->kind == QV_F_RANGE)
        return (v.type == QV_FT_INT64 || v.type == QV_FT_DOUBLE) &&
               in_range(f, v.type == QV_FT_INT64 ? (double)v.i : v.d);
    for (uint32_t i = 0; i < f->nvalues; i++)
        if (dyn_equal(&v, &items, &f->values[i]))
            return true;
    return false;
}

static void eval(const qv_filter_t *f, const qv_segment_t *seg, uint32_t begin, uint32_t n, uint64_t *out)
{
    size_t words = qv_bm_words(n);
    switch (f->kind) {
    case QV_F_ALL:
    case QV_F_ANY: {
        uint64_t tmp[BLOCK_WORDS];
        eval(f->kids[0], seg, begin, n, out);
        for (uint32_t k = 1; k < f->nkids; k++) {
            eval(f->kids[k], seg, begin, n, tmp);
            for (size_t w = 0; w < words; w++)
                out[w] = f->kind == QV_F_ALL ? out[w] & tmp[w] : out[w] | tmp[w];
        }
        return;
    }
    case QV_F_NOT:
        eval(f->kids[0], seg, begin, n, out);
        for (size_t w = 0; w < words; w++)
            out[w] = ~out[w];
        if (n & 63)
            out[words - 1] &= ((uint64_t)1 << (n & 63)) - 1;
        return;
    default:
        break;
    }
    memset(out, 0, words * 8);
    if (f->dynamic) {
        for (uint32_t i = 0; i < n; i++)
            if (dyn_match(f, seg, begin + i))
                out[i >> 6] |= (uint64_t)1 << (i & 63);
        return;
    }
    const qv_column_t *c = &seg->cols[f->field];
    if (c->post && f->kind != QV_F_RANGE) {
        /* inverted lists: only the rows of the named keywords, found by binary search into [begin, begin+n) */
        const qv_postings_t *p = c->post;
        for (uint32_t v = 0; v < f->nvalues; v++) {
            int64_t code = qv_postings_find(p, f->values[v].kw);
            if (code < 0)
                continue;
            const uint32_t *lo = p->rows + p->off[code], *hi = p->rows + p->off[code + 1];
            while (lo < hi) {
                const uint32_t *mid = lo + (hi - lo) / 2;
                if (*mid < begin)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (hi = p->rows + p->off[code + 1]; lo < hi && *lo < begin + n; lo++)
                out[(*lo - begin) >> 6] |= (uint64_t)1 << ((*lo - begin) & 63);
        }
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = begin + i;
        if (!qv_bm_get(c->present, r))
            continue;
        bool m;
        if (f->kind == QV_F_RANGE)
            m = in_range(f, c->type == QV_FT_INT64 ? (double)c->i64[r] : c->f64[r]);
        else
            m = match_any(c, r, f->values, f->nvalues);
        if (m)
            out[i >> 6] |= (uint64_t)1 << (i & 63);
    }
}

void qv_filter_eval(const qv_filter_t *f, const qv_segment_t *seg, uint32_t begin, uint32_t n, uint64_t *out)
{
    eval(f, seg, begin, n, out);
}

bool qv_filter_row(void *f, const qv_segment_t *seg, uint32_t row)
{
    uint32_t begin = row & ~63u, n = seg->rows - begin < 64 ? seg->rows - begin : 64;
    uint64_t bits[BLOCK_WORDS];
    eval(f, seg, begin, n, bits);
    return (bits[0] >> (row & 63)) & 1;
}
