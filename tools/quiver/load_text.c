/* The text formats of `quiver load`: jsonl, csv and tsv (specified at the top of load_input.c). Each parser takes one
 * line from the window (qv__next_line), so a record never spans lines: csv quotes may hold separators and doubled
 * quotes, not newlines. Values are typed by the collection's schema, looked up once per column for csv/tsv and per
 * key for jsonl; keys and columns that are not fields are ignored with one note each, except jsonl keys of a
 * collection with dynamic attributes, which are sent typed by their JSON values. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tools/quiver/cli.h"
#include "tools/quiver/load_int.h"

/* ---- jsonl ---- */
/* A KEYWORDS value from a JSON string or array of strings (checked by the caller); NULL when out of memory. */
static Quiver__V1__Keywords *keywords_of(qv_arena_t *a, json_t *v)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    Quiver__V1__Keywords *k = qv_arena_alloc(a, sizeof *k);
    char **vals = qv_arena_array(a, n ? n : 1, sizeof *vals);
    if (!k || !vals)
        return NULL;
    quiver__v1__keywords__init(k);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!(vals[i] = qv_arena_strndup(a, json_string_value(s), json_string_length(s))))
            return NULL;
    }
    k->n_values = n;
    k->values = vals;
    return k;
}

static int json_attr(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point *p, int fi, json_t *v, char *msg, size_t ml,
                     uint64_t line)
{
    const Quiver__V1__FieldSchema *f = in->o.info->fields[fi];
    if (json_is_null(v))
        return 0;
    Quiver__V1__Value *val = qv__point_attr(a, p, f->name);
    if (!val)
        return qv__say(msg, ml, "out of memory");
    switch (f->type) {
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64:
        if (json_is_integer(v)) {
            val->int_value = json_integer_value(v);
        } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
                   fabs(json_real_value(v)) < 9.2e18) {
            val->int_value = (int64_t)json_real_value(v);
        } else {
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": attribute '%s' (INT64) needs an integer", line, f->name);
        }
        val->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE:
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": attribute '%s' (DOUBLE) needs a number", line, f->name);
        val->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
        val->double_value = json_number_value(v);
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD:
        if (!json_is_string(v))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": attribute '%s' (KEYWORD) needs a string", line, f->name);
        val->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        val->keyword_value = qv_arena_strndup(a, json_string_value(v), json_string_length(v));
        return val->keyword_value ? 0 : qv__say(msg, ml, "out of memory");
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL:
        if (!json_is_boolean(v))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": attribute '%s' (BOOL) needs true or false", line, f->name);
        val->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
        val->bool_value = json_is_true(v);
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORDS: {
        if (!json_is_array(v) && !json_is_string(v))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": attribute '%s' (KEYWORDS) needs an array of strings", line,
                           f->name);
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i)))
                return qv__say(msg, ml,
                               "jsonl line %" PRIu64 ": attribute '%s' (KEYWORDS): element %zu is not a string", line,
                               f->name, i);
        val->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
        val->keywords_value = keywords_of(a, v);
        return val->keywords_value ? 0 : qv__say(msg, ml, "out of memory");
    }
    default: return qv__say(msg, ml, "jsonl line %" PRIu64 ": field '%s' has an unknown type", line, f->name);
    }
}

/* A key that is no field, in a collection with dynamic attributes: typed by its JSON value (integer INT64, other
 * number DOUBLE, string KEYWORD, true/false BOOL, array of strings KEYWORDS; null is no value). 1: a value of no
 * such type (objects, mixed arrays), left out with a note. */
static int json_dyn_attr(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point *p, const char *key, json_t *v, char *msg,
                         size_t ml, uint64_t line)
{
    if (json_is_null(v))
        return 0;
    bool kws = json_is_array(v);
    for (size_t i = 0; kws && i < json_array_size(v); i++)
        kws = json_is_string(json_array_get(v, i));
    if (!json_is_number(v) && !json_is_string(v) && !json_is_boolean(v) && !kws) {
        char where[48];
        snprintf(where, sizeof where, " (line %" PRIu64 ")", line);
        qv__warn_once(in, "key", key, where, "holds no attribute value (a number, string, boolean or list of strings)");
        return 1;
    }
    char *name = qv_arena_strndup(a, key, strlen(key)); /* the JSON object's keys go with it */
    Quiver__V1__Value *val = name ? qv__point_attr(a, p, name) : NULL;
    if (!val)
        return qv__say(msg, ml, "out of memory");
    if (json_is_integer(v)) {
        val->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
        val->int_value = json_integer_value(v);
    } else if (json_is_real(v)) {
        val->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
        val->double_value = json_real_value(v);
    } else if (json_is_boolean(v)) {
        val->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
        val->bool_value = json_is_true(v);
    } else if (json_is_string(v)) {
        val->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        if (!(val->keyword_value = qv_arena_strndup(a, json_string_value(v), json_string_length(v))))
            return qv__say(msg, ml, "out of memory");
    } else {
        val->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
        if (!(val->keywords_value = keywords_of(a, v)))
            return qv__say(msg, ml, "out of memory");
    }
    return 0;
}

static int parse_json_record(qv_input_t *in, json_t *o, uint64_t rec, uint64_t line, qv_arena_t *a,
                             Quiver__V1__Point **out, char *msg, size_t ml)
{
    if (!json_is_object(o))
        return qv__say(msg, ml, "jsonl line %" PRIu64 ": expected a JSON object", line);
    bool dynamic = in->o.info->dynamic_attributes;
    Quiver__V1__Point *p = qv__point_new(a, in->dim, in->o.info->n_fields + (dynamic ? json_object_size(o) : 0));
    if (!p)
        return qv__say(msg, ml, "out of memory");
    json_t *id = json_object_get(o, in->o.id_field);
    if (!id || json_is_null(id)) {
        p->id = qv__row_id(in, a, rec);
    } else if (json_is_string(id)) {
        if (json_string_length(id) == 0)
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": empty \"%s\"", line, in->o.id_field);
        p->id = qv_arena_strndup(a, json_string_value(id), json_string_length(id));
    } else if (json_is_integer(id)) {
        char b[24];
        int n = snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        p->id = qv_arena_strndup(a, b, (size_t)n);
    } else {
        return qv__say(msg, ml, "jsonl line %" PRIu64 ": \"%s\" must be a string or an integer", line, in->o.id_field);
    }
    if (!p->id)
        return qv__say(msg, ml, "out of memory");
    json_t *vec = json_object_get(o, in->o.vector_field);
    json_t *txt = json_object_get(o, in->o.text_field);
    if ((!vec || json_is_null(vec)) && qv__text_only_ok(in) && json_is_string(txt)) {
        p->n_vector = 0; /* a text-only point: the server embeds its text */
    } else if (!json_is_array(vec)) {
        return qv__say(msg, ml, "jsonl line %" PRIu64 ": %s \"%s\" array%s", line, vec ? "expected a" : "missing the",
                       in->o.vector_field, qv__text_only_ok(in) ? " (or a \"text\" to embed)" : "");
    } else if (json_array_size(vec) != in->dim)
        return qv__say(msg, ml, "jsonl line %" PRIu64 ": \"%s\" has %zu values, the collection has dim %u", line,
                       in->o.vector_field, json_array_size(vec), in->dim);
    for (uint32_t i = 0; i < p->n_vector; i++) {
        json_t *x = json_array_get(vec, i);
        if (!json_is_number(x) || !qv__float_ok(json_number_value(x)))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": \"%s\"[%u] is not a finite number", line,
                           in->o.vector_field, i);
        p->vector[i] = (float)json_number_value(x);
    }
    json_t *text = json_object_get(o, in->o.text_field);
    if (text && !json_is_null(text)) {
        if (!json_is_string(text))
            return qv__say(msg, ml, "jsonl line %" PRIu64 ": \"%s\" must be a string", line, in->o.text_field);
        if (!(p->text = qv_arena_strndup(a, json_string_value(text), json_string_length(text))))
            return qv__say(msg, ml, "out of memory");
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, in->o.id_field) == 0 || strcmp(key, in->o.vector_field) == 0 ||
            strcmp(key, in->o.text_field) == 0)
            continue;
        int fi = qv__field_index(in, key);
        if (fi < 0 && dynamic) {
            if (json_dyn_attr(in, a, p, key, v, msg, ml, line) < 0)
                return -1;
            continue;
        }
        if (fi < 0) {
            char where[48];
            snprintf(where, sizeof where, " (line %" PRIu64 ")", line);
            qv__warn_once(in, "key", key, where, NULL);
            continue;
        }
        if (json_attr(in, a, p, fi, v, msg, ml, line) != 0)
            return -1;
    }
    *out = p;
    return 0;
}

int qv__next_jsonl(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t ml)
{
    for (;;) {
        *before = qv_input_pos(in);
        char *line;
        size_t len;
        int rc = qv__next_line(in, &line, &len);
        if (rc == 0)
            return QV_IN_EOF;
        if (rc < 0) {
            qv__say(msg, ml, "jsonl line %" PRIu64 ": %s", in->line + 1,
                    rc == -E2BIG ? "line longer than 256 MiB" : strerror(-rc));
            return QV_IN_FATAL;
        }
        size_t i = 0;
        while (i < len && isspace((unsigned char)line[i]))
            i++;
        if (i == len)
            continue; /* blank line: no record */
        uint64_t rec = in->row++, lineno = in->line;
        json_error_t je;
        /* No JSON_ALLOW_NUL: ids, text and keywords travel as C strings, which a \u0000 would cut short (an id
         * "a\u0000b" would silently become "a"), so such a record is bad JSON to us */
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            qv__say(msg, ml, "jsonl line %" PRIu64 ": bad JSON: %s (column %d)", lineno, je.text, je.column);
            return QV_IN_BAD;
        }
        rc = parse_json_record(in, o, rec, lineno, a, out, msg, ml);
        json_decref(o);
        if (rc != 0)
            return strcmp(msg, "out of memory") == 0 ? QV_IN_FATAL : QV_IN_BAD;
        return QV_IN_ROW;
    }
}

static bool has_column(const qv_input_t *in, const char *name)
{
    for (size_t i = 0; i < in->ncols; i++)
        if (strcmp(in->colnames[i], name) == 0)
            return true;
    return false;
}

/* ---- csv / tsv ---- */

/* Splits a NUL-terminated line in place into cells (quotes undone for csv). Returns the number of cells, or -1 with
 * msg set (an unterminated quote). */
static long split_line(char *line, char sep, bool quotes, char **cells, size_t max, char *msg, size_t ml)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *cell = p, *w = p;
        if (quotes && *p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return qv__say(msg, ml, "unterminated quoted field %zu", n + 1);
                if (*p == '"') {
                    if (p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            if (*p != sep && *p != '\0')
                return qv__say(msg, ml, "field %zu: characters after a closing quote", n + 1);
        } else {
            while (*p && *p != sep)
                p++;
            w = p;
        }
        char end = *p;
        *w = '\0';
        if (n < max)
            cells[n] = cell;
        n++;
        if (end == '\0')
            break;
        p++;
    }
    return (long)n;
}

static void trim(char **s)
{
    char *p = *s;
    while (isspace((unsigned char)*p))
        p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1]))
        p[--n] = '\0';
    *s = p;
}

int qv__csv_header(qv_input_t *in, int fd, char *msg, size_t ml, uint64_t *data_off)
{
    const char *fmt = qv_fmt_name(in->o.fmt);
    char *h = malloc(MAX_HEADER + 1);
    if (!h)
        return qv__say(msg, ml, "out of memory");
    int *field_col = NULL; /* per schema field: the column holding it, or -1 */
    ssize_t n = pread(fd, h, MAX_HEADER, 0);
    int rc = -1;
    if (n <= 0) {
        qv__say(msg, ml, "%s: empty file (a header row is required)", fmt);
        goto out;
    }
    h[n] = '\0';
    char *nl = memchr(h, '\n', (size_t)n);
    if (!nl && n == MAX_HEADER) {
        qv__say(msg, ml, "%s: header row longer than 1 MiB", fmt);
        goto out;
    }
    size_t hl = nl ? (size_t)(nl - h) : (size_t)n;
    *data_off = nl ? hl + 1 : (uint64_t)n;
    h[hl] = '\0';
    if (hl && h[hl - 1] == '\r')
        h[--hl] = '\0';
    if (memchr(h, '\0', hl)) {
        qv__say(msg, ml, "%s line 1 (header): a NUL byte", fmt);
        goto out;
    }
    char *line = h;
    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 byte order mark */
        line += 3;
    size_t maxc = strlen(line) + 1; /* every byte a separator */
    char **names = calloc(maxc, sizeof *names);
    if (!names) {
        qv__say(msg, ml, "out of memory");
        goto out;
    }
    long nc = split_line(line, in->sep, in->sep == ',', names, maxc, msg, ml);
    if (nc < 0) {
        char m2[256];
        snprintf(m2, sizeof m2, "%s", msg);
        qv__say(msg, ml, "%s line 1 (header): %s", fmt, m2);
        free(names);
        goto out;
    }
    in->ncols = (size_t)nc;
    in->colnames = calloc(in->ncols, sizeof *in->colnames);
    in->cells = calloc(in->ncols + 1, sizeof *in->cells);
    in->col_field = calloc(in->ncols, sizeof *in->col_field);
    for (size_t i = 0; in->colnames && i < in->ncols; i++) {
        char *c = names[i];
        trim(&c);
        in->colnames[i] = strdup(c);
        if (!in->colnames[i])
            break;
    }
    free(names);
    if (!in->colnames || !in->cells || !in->col_field || (in->ncols && !in->colnames[in->ncols - 1])) {
        qv__say(msg, ml, "out of memory");
        goto out;
    }
    /* A column that the load uses (id, text, vector, v<d>, a schema field) may appear once: with two, one of them
     * would be dropped silently (or, for a field, sent twice in one point). Unused names may repeat. */
    in->id_col = in->text_col = in->vec_col = -1;
    for (size_t i = 0; i < in->ncols; i++) {
        const char *c = in->colnames[i];
        in->col_field[i] = -1;
        int *role = strcmp(c, in->o.id_field) == 0       ? &in->id_col
                    : strcmp(c, in->o.text_field) == 0   ? &in->text_col
                    : strcmp(c, in->o.vector_field) == 0 ? &in->vec_col
                                                         : NULL;
        if (role && *role >= 0) {
            qv__say(msg, ml, "%s: column '%s' appears twice in the header (columns %d and %zu)", fmt, c, *role + 1,
                    i + 1);
            goto out;
        }
        if (role)
            *role = (int)i;
    }
    if (in->id_col < 0 && in->o.id_field_set) {
        qv__say(msg, ml, "%s: no column '%s' (--id-field) in the header", fmt, in->o.id_field);
        goto out;
    }
    if (in->text_col < 0 && in->o.text_field_set) {
        qv__say(msg, ml, "%s: no column '%s' (--text-field) in the header", fmt, in->o.text_field);
        goto out;
    }
    if (in->vec_col < 0 && !in->o.vector_field_set && in->text_col >= 0 && qv__text_only_ok(in) &&
        !has_column(in, "v0")) {
        in->text_only = true; /* no vector columns, a text column, a model: every row is embedded by the server */
    } else if (in->vec_col < 0) {
        if (in->o.vector_field_set) {
            qv__say(msg, ml, "%s: no column '%s' (--vector-field) in the header", fmt, in->o.vector_field);
            goto out;
        }
        in->vcols = calloc(in->dim, sizeof *in->vcols);
        if (!in->vcols) {
            qv__say(msg, ml, "out of memory");
            goto out;
        }
        for (uint32_t d = 0; d < in->dim; d++) {
            char name[16];
            snprintf(name, sizeof name, "v%u", d);
            in->vcols[d] = -1;
            for (size_t i = 0; i < in->ncols; i++) {
                if (strcmp(in->colnames[i], name) != 0)
                    continue;
                if (in->vcols[d] >= 0) {
                    qv__say(msg, ml, "%s: column '%s' appears twice in the header (columns %d and %zu)", fmt, name,
                            in->vcols[d] + 1, i + 1);
                    goto out;
                }
                in->vcols[d] = (int)i;
            }
            if (in->vcols[d] < 0) {
                qv__say(msg, ml,
                        "%s: no vector column: the header needs a column '%s' or the columns v0..v%u (no '%s')", fmt,
                        in->o.vector_field, in->dim - 1, name);
                goto out;
            }
        }
    }
    field_col = malloc((in->o.info->n_fields ? in->o.info->n_fields : 1) * sizeof *field_col);
    if (!field_col) {
        qv__say(msg, ml, "out of memory");
        goto out;
    }
    for (size_t f = 0; f < in->o.info->n_fields; f++)
        field_col[f] = -1;
    for (size_t i = 0; i < in->ncols; i++) {
        if ((int)i == in->id_col || (int)i == in->text_col || (int)i == in->vec_col)
            continue;
        bool is_v = false;
        for (uint32_t d = 0; in->vcols && d < in->dim; d++)
            is_v |= in->vcols[d] == (int)i;
        if (is_v)
            continue;
        int fi = qv__field_index(in, in->colnames[i]);
        if (fi < 0) {
            qv__warn_once(in, "column", in->colnames[i], "", NULL);
            continue;
        }
        if (field_col[fi] >= 0) {
            qv__say(msg, ml, "%s: column '%s' appears twice in the header (columns %d and %zu)", fmt,
                    in->colnames[i], field_col[fi] + 1, i + 1);
            goto out;
        }
        in->col_field[i] = fi;
        field_col[fi] = (int)i;
    }
    rc = 0;
out:
    free(field_col);
    free(h);
    return rc;
}

static int csv_attr(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point *p, int fi, char *cell, char *msg, size_t ml,
                    uint64_t line, const char *fmt)
{
    const Quiver__V1__FieldSchema *f = in->o.info->fields[fi];
    char *s = cell;
    trim(&s);
    if (!*s)
        return 0; /* empty cell: the attribute is absent */
    Quiver__V1__Value *v = qv__point_attr(a, p, f->name);
    if (!v)
        return qv__say(msg, ml, "out of memory");
    char *end;
    errno = 0;
    switch (f->type) {
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64:
        v->int_value = strtoll(s, &end, 10);
        if (*end || errno)
            return qv__say(msg, ml, "%s line %" PRIu64 ": column '%s' (INT64): '%.40s' is not an integer", fmt, line,
                           f->name, s);
        v->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE:
        v->double_value = strtod(s, &end);
        if (*end || !isfinite(v->double_value))
            return qv__say(msg, ml, "%s line %" PRIu64 ": column '%s' (DOUBLE): '%.40s' is not a finite number", fmt,
                           line, f->name, s);
        v->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD:
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        v->keyword_value = qv_arena_strndup(a, s, strlen(s));
        return v->keyword_value ? 0 : qv__say(msg, ml, "out of memory");
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL:
        if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes"))
            v->bool_value = 1;
        else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no"))
            v->bool_value = 0;
        else
            return qv__say(msg, ml, "%s line %" PRIu64 ": column '%s' (BOOL): '%.40s' is not true/false", fmt, line,
                           f->name, s);
        v->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
        return 0;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORDS: {
        size_t n = 1;
        for (const char *c = s; *c; c++)
            n += *c == '|';
        Quiver__V1__Keywords *k = qv_arena_alloc(a, sizeof *k);
        char **vals = qv_arena_array(a, n, sizeof *vals);
        if (!k || !vals)
            return qv__say(msg, ml, "out of memory");
        quiver__v1__keywords__init(k);
        size_t i = 0;
        for (char *tok = s;; i++) {
            char *bar = strchr(tok, '|');
            size_t tl = bar ? (size_t)(bar - tok) : strlen(tok);
            if (!(vals[i] = qv_arena_strndup(a, tok, tl)))
                return qv__say(msg, ml, "out of memory");
            if (!bar)
                break;
            tok = bar + 1;
        }
        k->n_values = n;
        k->values = vals;
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
        v->keywords_value = k;
        return 0;
    }
    default: return qv__say(msg, ml, "%s line %" PRIu64 ": field '%s' has an unknown type", fmt, line, f->name);
    }
}

/* Returns 0 with *out set, or -1 with msg set. */
static int parse_csv_record(qv_input_t *in, char *line, uint64_t rec, uint64_t lineno, qv_arena_t *a,
                            Quiver__V1__Point **out, char *msg, size_t ml)
{
    const char *fmt = qv_fmt_name(in->o.fmt);
    char m2[200];
    long n = split_line(line, in->sep, in->sep == ',', in->cells, in->ncols, m2, sizeof m2);
    if (n < 0)
        return qv__say(msg, ml, "%s line %" PRIu64 ": %s", fmt, lineno, m2);
    if ((size_t)n != in->ncols)
        return qv__say(msg, ml, "%s line %" PRIu64 ": %ld fields, the header has %zu", fmt, lineno, n, in->ncols);
    Quiver__V1__Point *p = qv__point_new(a, in->dim, in->ncols);
    if (!p)
        return qv__say(msg, ml, "out of memory");
    if (in->id_col >= 0) {
        char *id = in->cells[in->id_col];
        trim(&id);
        if (!*id)
            return qv__say(msg, ml, "%s line %" PRIu64 ": empty id in column '%s'", fmt, lineno, in->o.id_field);
        p->id = qv_arena_strndup(a, id, strlen(id));
    } else {
        p->id = qv__row_id(in, a, rec);
    }
    if (!p->id)
        return qv__say(msg, ml, "out of memory");
    if (in->text_only) {
        p->n_vector = 0;
        if (!*in->cells[in->text_col])
            return qv__say(msg, ml, "%s line %" PRIu64 ": empty text in column '%s' (nothing to embed)", fmt, lineno,
                           in->o.text_field);
    } else if (in->vec_col >= 0) {
        const char *s = in->cells[in->vec_col];
        size_t cnt = 0;
        float *v;
        if (qv_parse_floats(a, s, strlen(s), &v, &cnt, m2, sizeof m2) != 0)
            return qv__say(msg, ml, "%s line %" PRIu64 ": column '%s': %s", fmt, lineno, in->o.vector_field, m2);
        if (cnt != in->dim)
            return qv__say(msg, ml, "%s line %" PRIu64 ": column '%s' has %zu values, the collection has dim %u", fmt,
                           lineno, in->o.vector_field, cnt, in->dim);
        memcpy(p->vector, v, (size_t)in->dim * sizeof *v);
    } else {
        for (uint32_t d = 0; d < in->dim; d++) {
            char *s = in->cells[in->vcols[d]], *end;
            trim(&s);
            errno = 0;
            double x = strtod(s, &end);
            if (!*s || *end || !qv__float_ok(x))
                return qv__say(msg, ml, "%s line %" PRIu64 ": column 'v%u': '%.40s' is not a finite number", fmt,
                               lineno, d, s);
            p->vector[d] = (float)x;
        }
    }
    if (in->text_col >= 0 && !(p->text = qv_arena_strndup(a, in->cells[in->text_col], strlen(in->cells[in->text_col]))))
        return qv__say(msg, ml, "out of memory");
    for (size_t i = 0; i < in->ncols; i++)
        if (in->col_field[i] >= 0 && csv_attr(in, a, p, in->col_field[i], in->cells[i], msg, ml, lineno, fmt) != 0)
            return -1;
    *out = p;
    return 0;
}

int qv__next_csv(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t ml)
{
    for (;;) {
        *before = qv_input_pos(in);
        char *line;
        size_t len;
        int rc = qv__next_line(in, &line, &len);
        if (rc == 0)
            return QV_IN_EOF;
        if (rc < 0) {
            qv__say(msg, ml, "%s line %" PRIu64 ": %s", qv_fmt_name(in->o.fmt), in->line + 1,
                    rc == -E2BIG ? "line longer than 256 MiB" : strerror(-rc));
            return QV_IN_FATAL;
        }
        size_t i = 0;
        while (i < len && isspace((unsigned char)line[i]))
            i++;
        if (i == len)
            continue;
        uint64_t rec = in->row++;
        if (memchr(line, '\0', len)) { /* cells are C strings: it would cut the line short */
            qv__say(msg, ml, "%s line %" PRIu64 ": a NUL byte", qv_fmt_name(in->o.fmt), in->line);
            return QV_IN_BAD;
        }
        if (parse_csv_record(in, line, rec, in->line, a, out, msg, ml) != 0)
            return strcmp(msg, "out of memory") == 0 ? QV_IN_FATAL : QV_IN_BAD;
        return QV_IN_ROW;
    }
}
