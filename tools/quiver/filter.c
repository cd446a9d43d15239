/* JSON filters (the grammar is QV_FILTER_HELP in cli.h) -> quiver.v1.Filter, allocated from an arena.
 *
 * Values are typed by their JSON form alone, not by the collection's schema: the server validates types (and accepts
 * an integer for a DOUBLE field), so the CLI needs no extra DescribeCollection call and reports what the server says
 * about a mismatch. Nesting is bounded here as well (the server bounds it again) so a hostile argument cannot make
 * the recursion deep. */
#include <stdarg.h>
#include <string.h>

#include "tools/quiver/cli.h"

#define MAX_DEPTH 32

typedef struct {
    qv_arena_t *a;
    char *msg;
    size_t msglen;
} fctx_t;

__attribute__((format(printf, 2, 3))) static int fail(fctx_t *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, x->msglen, fmt, ap);
    va_end(ap);
    return -1;
}

static int value_of(fctx_t *x, json_t *j, const char *field, Quiver__V1__Value **out)
{
    Quiver__V1__Value *v = qv_arena_alloc(x->a, sizeof *v);
    if (!v)
        return fail(x, "out of memory");
    quiver__v1__value__init(v);
    if (json_is_integer(j)) {
        v->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
        v->int_value = json_integer_value(j);
    } else if (json_is_real(j)) {
        v->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
        v->double_value = json_real_value(j);
    } else if (json_is_string(j)) {
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        v->keyword_value = qv_arena_strndup(x->a, json_string_value(j), json_string_length(j));
        if (!v->keyword_value)
            return fail(x, "out of memory");
    } else if (json_is_boolean(j)) {
        v->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
        v->bool_value = json_is_true(j);
    } else {
        return fail(x, "filter on field '%s': a value must be a number, a string, true or false", field);
    }
    *out = v;
    return 0;
}

static int number_of(fctx_t *x, json_t *j, const char *what, double *out)
{
    if (!json_is_number(j))
        return fail(x, "filter: range bound '%s' must be a number", what);
    *out = json_number_value(j);
    return 0;
}

static int parse(fctx_t *x, json_t *j, int depth, Quiver__V1__Filter **out);

static int list_of(fctx_t *x, json_t *arr, const char *name, int depth, Quiver__V1__FilterList **out)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(x, "filter: \"%s\" needs a non-empty array of filters", name);
    Quiver__V1__FilterList *l = qv_arena_alloc(x->a, sizeof *l);
    size_t n = json_array_size(arr);
    Quiver__V1__Filter **kids = qv_arena_array(x->a, n, sizeof *kids);
    if (!l || !kids)
        return fail(x, "out of memory");
    quiver__v1__filter_list__init(l);
    for (size_t i = 0; i < n; i++)
        if (parse(x, json_array_get(arr, i), depth + 1, &kids[i]) != 0)
            return -1;
    l->n_filters = n;
    l->filters = kids;
    *out = l;
    return 0;
}

static int condition(fctx_t *x, json_t *j, Quiver__V1__Filter *f)
{
    json_t *field = json_object_get(j, "field");
    if (!json_is_string(field))
        return fail(x, "filter: a condition needs \"field\": NAME");
    const char *name = json_string_value(field);
    Quiver__V1__Condition *c = qv_arena_alloc(x->a, sizeof *c);
    if (!c)
        return fail(x, "out of memory");
    quiver__v1__condition__init(c);
    c->field = qv_arena_strndup(x->a, name, strlen(name));
    int ops = 0;
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
        if (strcmp(key, "field") == 0)
            continue;
        ops++;
        if (strcmp(key, "eq") == 0) {
            c->op_case = QUIVER__V1__CONDITION__OP_EQ;
            if (value_of(x, val, name, &c->eq) != 0)
                return -1;
        } else if (strcmp(key, "any_of") == 0 || strcmp(key, "in") == 0) {
            if (!json_is_array(val) || json_array_size(val) == 0)
                return fail(x, "filter on field '%s': any_of needs a non-empty array of values", name);
            Quiver__V1__ValueList *vl = qv_arena_alloc(x->a, sizeof *vl);
            size_t n = json_array_size(val);
            Quiver__V1__Value **vals = qv_arena_array(x->a, n, sizeof *vals);
            if (!vl || !vals)
                return fail(x, "out of memory");
            quiver__v1__value_list__init(vl);
            for (size_t i = 0; i < n; i++)
                if (value_of(x, json_array_get(val, i), name, &vals[i]) != 0)
                    return -1;
            vl->n_values = n;
            vl->values = vals;
            c->op_case = QUIVER__V1__CONDITION__OP_ANY_OF;
            c->any_of = vl;
        } else if (strcmp(key, "range") == 0) {
            if (!json_is_object(val) || json_object_size(val) == 0)
                return fail(x, "filter on field '%s': range needs an object with gt/gte and/or lt/lte", name);
            Quiver__V1__Range *r = qv_arena_alloc(x->a, sizeof *r);
            if (!r)
                return fail(x, "out of memory");
            quiver__v1__range__init(r);
            const char *bk;
            json_t *bv;
            json_object_foreach(val, bk, bv) {
                double d = 0;
                if (number_of(x, bv, bk, &d) != 0)
                    return -1;
                bool lower = strcmp(bk, "gt") == 0 || strcmp(bk, "gte") == 0;
                bool upper = strcmp(bk, "lt") == 0 || strcmp(bk, "lte") == 0;
                if (!lower && !upper)
                    return fail(x, "filter: unknown range bound '%s' (gt, gte, lt, lte)", bk);
                if ((lower && r->lower_case) || (upper && r->upper_case))
                    return fail(x, "filter on field '%s': a range takes one lower and one upper bound at most", name);
                if (strcmp(bk, "gt") == 0) {
                    r->lower_case = QUIVER__V1__RANGE__LOWER_GT;
                    r->gt = d;
                } else if (strcmp(bk, "gte") == 0) {
                    r->lower_case = QUIVER__V1__RANGE__LOWER_GTE;
                    r->gte = d;
                } else if (strcmp(bk, "lt") == 0) {
                    r->upper_case = QUIVER__V1__RANGE__UPPER_LT;
                    r->lt = d;
                } else {
                    r->upper_case = QUIVER__V1__RANGE__UPPER_LTE;
                    r->lte = d;
                }
            }
            c->op_case = QUIVER__V1__CONDITION__OP_RANGE;
            c->range = r;
        } else {
            return fail(x, "filter: unknown key '%s' in a condition (eq, any_of, range)", key);
        }
    }
    if (ops != 1)
        return fail(x, "filter on field '%s': a condition needs exactly one of eq, any_of, range", name);
    f->kind_case = QUIVER__V1__FILTER__KIND_COND;
    f->cond = c;
    return 0;
}

static int parse(fctx_t *x, json_t *j, int depth, Quiver__V1__Filter **out)
{
    if (depth > MAX_DEPTH)
        return fail(x, "filter: nested deeper than %d levels", MAX_DEPTH);
    if (!json_is_object(j))
        return fail(x, "filter: expected a JSON object");
    Quiver__V1__Filter *f = qv_arena_alloc(x->a, sizeof *f);
    if (!f)
        return fail(x, "out of memory");
    quiver__v1__filter__init(f);
    json_t *v;
    if (json_object_get(j, "field")) {
        if (condition(x, j, f) != 0)
            return -1;
    } else if (json_object_size(j) != 1) {
        return fail(x, "filter: an object needs exactly one of all, any, not, or a \"field\" condition");
    } else if ((v = json_object_get(j, "all"))) {
        f->kind_case = QUIVER__V1__FILTER__KIND_ALL;
        if (list_of(x, v, "all", depth, &f->all) != 0)
            return -1;
    } else if ((v = json_object_get(j, "any"))) {
        f->kind_case = QUIVER__V1__FILTER__KIND_ANY;
        if (list_of(x, v, "any", depth, &f->any) != 0)
            return -1;
    } else if ((v = json_object_get(j, "not")) || (v = json_object_get(j, "negate"))) {
        f->kind_case = QUIVER__V1__FILTER__KIND_NEGATE;
        if (parse(x, v, depth + 1, &f->negate) != 0)
            return -1;
    } else {
        return fail(x, "filter: unknown key '%s' (all, any, not, field)", json_object_iter_key(json_object_iter(j)));
    }
    *out = f;
    return 0;
}

int qv_cli_filter_parse(qv_arena_t *a, const char *text, Quiver__V1__Filter **out, char *msg, size_t msglen)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(msg, msglen, "filter is not valid JSON: %s (column %d)", je.text, je.column);
        return -1;
    }
    fctx_t x = {.a = a, .msg = msg, .msglen = msglen};
    int rc = parse(&x, j, 1, out);
    json_decref(j);
    return rc;
}

int qv_cli_attrs_parse(qv_arena_t *a, const char *text, Quiver__V1__UpdateAttributesRequest__SetEntry ***out,
                       size_t *n, char *msg, size_t msglen)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        snprintf(msg, msglen, "attributes must be a JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return -1;
    }
    fctx_t x = {.a = a, .msg = msg, .msglen = msglen};
    size_t k = 0;
    *out = qv_arena_array(a, json_object_size(j) ? json_object_size(j) : 1, sizeof **out);
    int rc = *out ? 0 : fail(&x, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (rc)
            break;
        Quiver__V1__UpdateAttributesRequest__SetEntry *e = qv_arena_alloc(a, sizeof *e);
        if (!e || !(e->key = qv_arena_strndup(a, key, strlen(key)))) {
            rc = fail(&x, "out of memory");
            break;
        }
        char *name = e->key;
        quiver__v1__update_attributes_request__set_entry__init(e);
        e->key = name;
        if (json_is_array(v)) { /* KEYWORDS */
            Quiver__V1__Value *val = qv_arena_alloc(a, sizeof *val);
            Quiver__V1__Keywords *kw = qv_arena_alloc(a, sizeof *kw);
            char **items = qv_arena_array(a, json_array_size(v) ? json_array_size(v) : 1, sizeof *items);
            if (!val || !kw || !items) {
                rc = fail(&x, "out of memory");
                break;
            }
            quiver__v1__value__init(val);
            quiver__v1__keywords__init(kw);
            for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
                json_t *s = json_array_get(v, i);
                if (!json_is_string(s))
                    rc = fail(&x, "attribute '%s': a list must hold strings only", key);
                else if (!(items[i] = qv_arena_strndup(a, json_string_value(s), json_string_length(s))))
                    rc = fail(&x, "out of memory");
            }
            kw->values = items;
            kw->n_values = json_array_size(v);
            val->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
            val->keywords_value = kw;
            e->value = val;
        } else {
            rc = value_of(&x, v, key, &e->value);
        }
        (*out)[k++] = e;
    }
    *n = k;
    json_decref(j);
    return rc;
}
