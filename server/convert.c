#include "server/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/dynattr.h"
#include "storage/read.h"

static qv_str_t str_of(const char *s)
{
    qv_str_t r = {s ? s : "", s ? (uint32_t)strlen(s) : 0};
    return r;
}

/* A request Value into a qv_value_t; strings and lists borrow from the message (lists need an arena array). */
static int conv_value(qv_arena_t *a, const Quiver__V1__Value *v, qv_value_t *out)
{
    if (!v)
        return QV_EINVAL;
    switch (v->kind_case) {
    case QUIVER__V1__VALUE__KIND_INT_VALUE: out->type = QV_FT_INT64; out->i = v->int_value; return QV_OK;
    case QUIVER__V1__VALUE__KIND_DOUBLE_VALUE: out->type = QV_FT_DOUBLE; out->d = v->double_value; return QV_OK;
    case QUIVER__V1__VALUE__KIND_BOOL_VALUE: out->type = QV_FT_BOOL; out->b = v->bool_value; return QV_OK;
    case QUIVER__V1__VALUE__KIND_KEYWORD_VALUE: out->type = QV_FT_KEYWORD; out->kw = str_of(v->keyword_value); return QV_OK;
    case QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE: {
        out->type = QV_FT_KEYWORDS;
        const Quiver__V1__Keywords *k = v->keywords_value;
        size_t n = k ? k->n_values : 0;
        qv_str_t *items = qv_arena_array(a, n ? n : 1, sizeof *items);
        if (!items)
            return QV_ENOMEM;
        for (size_t i = 0; i < n; i++)
            items[i] = str_of(k->values[i]);
        out->kws.items = items;
        out->kws.n = (uint32_t)n;
        return QV_OK;
    }
    default: return QV_EINVAL;
    }
}

int qv_conv_points(qv_arena_t *a, const qv_schema_t *s, Quiver__V1__Point *const *pts, size_t n, qv_point_t **out,
                   qv_err_t *err)
{
    if (n > QV_BATCH_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu points in one request exceeds the limit of %u", n, QV_BATCH_MAX);
    qv_point_t *p = qv_arena_array(a, n ? n : 1, sizeof *p);
    if (!p)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const Quiver__V1__Point *pp = pts[i];
        p[i].id = str_of(pp->id);
        p[i].vector = pp->vector;
        p[i].nvector = (uint32_t)pp->n_vector;
        p[i].text = str_of(pp->text);
        size_t most = s->nfields + (s->dynamic ? QV_DYN_ATTRS_MAX : 0);
        if (pp->n_attributes > most)
            return qv_err_set(err, QV_EINVAL, "point %zu (id '%.64s'): %zu attributes, the schema has %u fields%s",
                              i, p[i].id.p, pp->n_attributes, s->nfields,
                              s->dynamic ? " and a point at most 256 dynamic attributes" : "");
        p[i].attrs = qv_arena_array(a, pp->n_attributes ? pp->n_attributes : 1, sizeof *p[i].attrs);
        qv_dynattr_t *dyn = s->dynamic ? qv_arena_array(a, pp->n_attributes ? pp->n_attributes : 1, sizeof *dyn)
                                       : NULL;
        if (!p[i].attrs || (s->dynamic && !dyn))
            return qv_err_set(err, QV_ENOMEM, "out of memory");
        uint32_t ndyn = 0;
        for (size_t k = 0; k < pp->n_attributes; k++) {
            const Quiver__V1__Point__AttributesEntry *e = pp->attributes[k];
            int f = qv_schema_field(s, e->key, strlen(e->key));
            if (f < 0 && !s->dynamic)
                return qv_err_set(err, QV_EINVAL, "point %zu (id '%.64s'): attribute '%.64s' is not in the schema", i,
                                  p[i].id.p, e->key);
            qv_value_t *v = f < 0 ? &dyn[ndyn].value : &p[i].attrs[p[i].nattrs].value;
            int rc = conv_value(a, e->value, v);
            if (rc == QV_ENOMEM)
                return qv_err_set(err, rc, "out of memory");
            if (rc)
                return qv_err_set(err, QV_EINVAL, "point %zu (id '%.64s'): attribute '%.64s' has no value", i,
                                  p[i].id.p, e->key);
            if (f < 0)
                dyn[ndyn++].key = str_of(e->key);
            else
                p[i].attrs[p[i].nattrs++].field = (uint16_t)f;
        }
        if (ndyn) { /* an undeclared key of a dynamic collection: into the point's dyn blob (storage/dynattr.h) */
            char what[QV_ID_MAX + 64];
            snprintf(what, sizeof what, "point %zu (id '%.64s')", i, p[i].id.p);
            qv_wbuf_t b;
            qv_wbuf_init(&b);
            int rc = qv_dyn_encode(dyn, ndyn, what, &b, err);
            char *copy = rc == QV_OK ? qv_arena_alloc(a, b.len) : NULL;
            if (copy)
                memcpy(copy, b.data, b.len);
            p[i].dyn = (qv_str_t){copy, (uint32_t)b.len};
            qv_wbuf_free(&b);
            if (rc)
                return rc;
            if (!copy)
                return qv_err_set(err, QV_ENOMEM, "out of memory");
        }
    }
    *out = p;
    return QV_OK;
}

int qv_conv_change(qv_arena_t *a, const qv_schema_t *s, const Quiver__V1__UpdateAttributesRequest *req,
                   qv_attr_change_t *out, qv_err_t *err)
{
    memset(out, 0, sizeof *out);
    size_t n = req->n_set;
    if (n > (size_t)s->nfields + QV_DYN_ATTRS_MAX)
        return qv_err_set(err, QV_EINVAL, "set: %zu attributes exceeds what a point may hold", n);
    out->set = qv_arena_array(a, n ? n : 1, sizeof *out->set);
    out->set_dyn = qv_arena_array(a, n ? n : 1, sizeof *out->set_dyn);
    qv_str_t *unset = qv_arena_array(a, req->n_unset ? req->n_unset : 1, sizeof *unset);
    if (!out->set || !out->set_dyn || !unset)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const Quiver__V1__UpdateAttributesRequest__SetEntry *e = req->set[k];
        int f = qv_schema_field(s, e->key, strlen(e->key));
        qv_value_t *v = f < 0 ? &out->set_dyn[out->nset_dyn].value : &out->set[out->nset].value;
        int rc = conv_value(a, e->value, v);
        if (rc == QV_ENOMEM)
            return qv_err_set(err, rc, "out of memory");
        if (rc)
            return qv_err_set(err, QV_EINVAL, "set: attribute '%.64s' has no value", e->key);
        if (f < 0)
            out->set_dyn[out->nset_dyn++].key = str_of(e->key);
        else
            out->set[out->nset++].field = (uint16_t)f;
    }
    for (size_t u = 0; u < req->n_unset; u++)
        unset[u] = str_of(req->unset[u]);
    out->unset = unset;
    out->nunset = (uint32_t)req->n_unset;
    return qv_store_check_change(s, out, err);
}

static int conv_filter(const Quiver__V1__Filter *pf, qv_filter_t **out, qv_err_t *err)
{
    *out = NULL;
    if (!pf)
        return qv_err_set(err, QV_EINVAL, "filter: missing filter inside a list");
    qv_filter_t *f = NULL;
    int rc = QV_OK;
    switch (pf->kind_case) {
    case QUIVER__V1__FILTER__KIND_ALL:
    case QUIVER__V1__FILTER__KIND_ANY: {
        const Quiver__V1__FilterList *l = pf->kind_case == QUIVER__V1__FILTER__KIND_ALL ? pf->all : pf->any;
        f = qv_filter_new(pf->kind_case == QUIVER__V1__FILTER__KIND_ALL ? QV_F_ALL : QV_F_ANY);
        size_t n = l ? l->n_filters : 0;
        if (f && n && !(f->kids = calloc(n, sizeof *f->kids)))
            rc = QV_ENOMEM;
        for (size_t i = 0; f && rc == QV_OK && i < n; i++, f->nkids++)
            rc = conv_filter(l->filters[i], &f->kids[i], err);
        break;
    }
    case QUIVER__V1__FILTER__KIND_NEGATE:
        f = qv_filter_new(QV_F_NOT);
        if (f && !(f->kids = calloc(1, sizeof *f->kids)))
            rc = QV_ENOMEM;
        if (f && rc == QV_OK) {
            f->nkids = 1;
            rc = conv_filter(pf->negate, &f->kids[0], err);
        }
        break;
    case QUIVER__V1__FILTER__KIND_COND: {
        const Quiver__V1__Condition *c = pf->cond;
        switch (c->op_case) {
        case QUIVER__V1__CONDITION__OP_EQ: f = qv_filter_new(QV_F_EQ); break;
        case QUIVER__V1__CONDITION__OP_ANY_OF: f = qv_filter_new(QV_F_IN); break;
        case QUIVER__V1__CONDITION__OP_RANGE: f = qv_filter_new(QV_F_RANGE); break;
        default:
            return qv_err_set(err, QV_EINVAL, "filter: condition on field '%.64s' has no operator", c->field);
        }
        if (!f)
            break;
        f->field_name = str_of(c->field);
        if (c->op_case == QUIVER__V1__CONDITION__OP_RANGE) {
            const Quiver__V1__Range *r = c->range;
            f->has_lo = r->lower_case != QUIVER__V1__RANGE__LOWER__NOT_SET;
            f->lo_incl = r->lower_case == QUIVER__V1__RANGE__LOWER_GTE;
            f->lo = f->lo_incl ? r->gte : r->gt;
            f->has_hi = r->upper_case != QUIVER__V1__RANGE__UPPER__NOT_SET;
            f->hi_incl = r->upper_case == QUIVER__V1__RANGE__UPPER_LTE;
            f->hi = f->hi_incl ? r->lte : r->lt;
            break;
        }
        size_t n = c->op_case == QUIVER__V1__CONDITION__OP_EQ ? 1 : (c->any_of ? c->any_of->n_values : 0);
        if (n > QV_FILTER_VALUES_MAX) {
            qv_filter_free(f);
            return qv_err_set(err, QV_EINVAL, "filter has more than %d values", QV_FILTER_VALUES_MAX);
        }
        if (n && !(f->values = calloc(n, sizeof *f->values))) {
            rc = QV_ENOMEM;
            break;
        }
        for (size_t i = 0; i < n && rc == QV_OK; i++, f->nvalues++) {
            const Quiver__V1__Value *v = c->op_case == QUIVER__V1__CONDITION__OP_EQ ? c->eq : c->any_of->values[i];
            if (v && v->kind_case == QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE)
                rc = qv_err_set(err, QV_EINVAL, "filter on field '%.64s': a list is not a value to compare with",
                                c->field);
            else if (conv_value(NULL, v, &f->values[i]) != QV_OK)
                rc = qv_err_set(err, QV_EINVAL, "filter on field '%.64s': value not set", c->field);
        }
        break;
    }
    default:
        return qv_err_set(err, QV_EINVAL, "filter: a nested filter has no kind set");
    }
    if (!f && rc == QV_OK)
        rc = QV_ENOMEM;
    if (rc) {
        qv_filter_free(f);
        return rc == QV_ENOMEM ? qv_err_set(err, rc, "out of memory") : rc;
    }
    *out = f;
    return QV_OK;
}

int qv_conv_filter(const Quiver__V1__Filter *pf, const qv_schema_t *s, qv_filter_t **out, qv_err_t *err)
{
    *out = NULL;
    if (!pf || pf->kind_case == QUIVER__V1__FILTER__KIND__NOT_SET)
        return QV_OK;
    qv_filter_t *f;
    int rc = conv_filter(pf, &f, err);
    if (rc)
        return rc;
    if ((rc = qv_filter_validate(f, s, err)) != QV_OK) {
        qv_filter_free(f);
        return rc;
    }
    *out = f;
    return QV_OK;
}

int qv_conv_schema(const Quiver__V1__CreateCollectionRequest *req, qv_schema_t **out, qv_err_t *err)
{
    *out = NULL;
    if (req->n_fields > QV_FIELDS_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu fields exceeds the limit of %d", req->n_fields, QV_FIELDS_MAX);
    size_t nl = strlen(req->name);
    if (!qv_name_ok(req->name, nl))
        return qv_err_set(err, QV_EINVAL, "collection name '%.80s' must match [A-Za-z0-9_-]{1,64}", req->name);
    qv_schema_t *s = qv_schema_alloc((uint16_t)req->n_fields);
    if (!s)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    memcpy(s->name, req->name, nl + 1);
    s->dim = req->dim;
    s->metric = req->metric >= 0 && req->metric <= 255 ? (uint8_t)req->metric : 0;
    s->shards = req->shards;
    s->nfields = (uint16_t)req->n_fields;
    s->dynamic = req->dynamic_attributes;
    if (req->embedding_model[0]) {
        if (strcmp(req->embedding_model, QV_EMBED_MINILM_NAME) != 0) {
            free(s);
            return qv_err_set(err, QV_EINVAL, "unknown embedding model '%.64s' (this server has %s)",
                              req->embedding_model, QV_EMBED_MINILM_NAME);
        }
        s->embed = QV_EMBED_MINILM;
        if (s->dim == 0)
            s->dim = QV_EMBED_MINILM_DIM;
        if (s->metric == 0) /* the model's vectors are unit length: cosine, as the CLI and the clients default */
            s->metric = QV_METRIC_COSINE;
    }
    if (req->index) {
        int k = req->index->kind;
        s->index_kind = k == QUIVER__V1__INDEX_KIND__INDEX_KIND_UNSPECIFIED ? QV_INDEX_HNSW
                        : k == QUIVER__V1__INDEX_KIND__INDEX_KIND_HNSW      ? QV_INDEX_HNSW
                        : k == QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT      ? QV_INDEX_FLAT
                                                                            : 255;
        s->hnsw_m = req->index->m;
        s->hnsw_efc = req->index->ef_construction;
        int q = req->index->quantization;
        s->quant = q <= QUIVER__V1__QUANTIZATION__QUANTIZATION_NONE ? QV_QUANT_NONE
                   : q == QUIVER__V1__QUANTIZATION__QUANTIZATION_SQ8 ? QV_QUANT_SQ8
                   : q == QUIVER__V1__QUANTIZATION__QUANTIZATION_PQ  ? QV_QUANT_PQ
                                                                     : 255;
        s->pq_m = req->index->pq_m;
    }
    for (size_t i = 0; i < req->n_fields; i++) {
        const char *fn = req->fields[i]->name;
        size_t fl = strlen(fn);
        if (!qv_name_ok(fn, fl)) {
            free(s);
            return qv_err_set(err, QV_EINVAL, "field %zu name '%.80s' must match [A-Za-z0-9_-]{1,64}", i, fn);
        }
        memcpy(s->fields[i].name, fn, fl + 1);
        int t = req->fields[i]->type;
        s->fields[i].type = t >= 0 && t <= 255 ? (uint8_t)t : 0;
    }
    int rc = qv_schema_validate(s, err);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return QV_OK;
}

/* A Keywords message with room for n values (filled by the caller); NULL when out of memory. */
static Quiver__V1__Keywords *keywords_new(qv_arena_t *a, uint32_t n)
{
    Quiver__V1__Keywords *k = qv_arena_alloc(a, sizeof *k);
    if (!k)
        return NULL;
    quiver__v1__keywords__init(k);
    k->values = qv_arena_array(a, n ? n : 1, sizeof(char *));
    k->n_values = n;
    return k->values ? k : NULL;
}

static Quiver__V1__Value *value_out(qv_arena_t *a, const qv_column_t *c, uint32_t row)
{
    Quiver__V1__Value *v = qv_arena_alloc(a, sizeof *v);
    if (!v)
        return NULL;
    quiver__v1__value__init(v);
    switch (c->type) {
    case QV_FT_INT64:
        v->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
        v->int_value = c->i64[row];
        break;
    case QV_FT_DOUBLE:
        v->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
        v->double_value = c->f64[row];
        break;
    case QV_FT_BOOL:
        v->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
        v->bool_value = c->b[row];
        break;
    case QV_FT_KEYWORD: {
        qv_str_t s = qv_strcol_get(&c->str, row);
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        if (!(v->keyword_value = qv_arena_strndup(a, s.p, s.len)))
            return NULL;
        break;
    }
    case QV_FT_KEYWORDS: {
        uint32_t b = c->kw_off[row], e = c->kw_off[row + 1];
        Quiver__V1__Keywords *k = keywords_new(a, e - b);
        if (!k)
            return NULL;
        for (uint32_t i = b; i < e; i++) {
            qv_str_t s = qv_strcol_get(&c->str, i);
            if (!(k->values[i - b] = qv_arena_strndup(a, s.p, s.len)))
                return NULL;
        }
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
        v->keywords_value = k;
        break;
    }
    }
    return v;
}

/* A dynamic attribute's value (items: a KEYWORDS value's encoded items, storage/dynattr.h). */
static Quiver__V1__Value *dyn_value_out(qv_arena_t *a, const qv_value_t *d, qv_rbuf_t *items)
{
    Quiver__V1__Value *v = qv_arena_alloc(a, sizeof *v);
    if (!v)
        return NULL;
    quiver__v1__value__init(v);
    switch (d->type) {
    case QV_FT_INT64: v->kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE; v->int_value = d->i; break;
    case QV_FT_DOUBLE: v->kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE; v->double_value = d->d; break;
    case QV_FT_BOOL: v->kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE; v->bool_value = d->b; break;
    case QV_FT_KEYWORD:
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
        if (!(v->keyword_value = qv_arena_strndup(a, d->kw.p, d->kw.len)))
            return NULL;
        break;
    case QV_FT_KEYWORDS: {
        Quiver__V1__Keywords *k = keywords_new(a, d->kws.n);
        if (!k)
            return NULL;
        for (uint32_t i = 0; i < d->kws.n; i++) {
            qv_str_t e = qv_dyn_item(items);
            if (!(k->values[i] = qv_arena_strndup(a, e.p, e.len)))
                return NULL;
        }
        v->kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
        v->keywords_value = k;
        break;
    }
    default: return NULL;
    }
    return v;
}

/* Point and Hit attribute entries are distinct message types with the same fields. */
static void *attr_entry(qv_arena_t *a, bool for_hit, char *key, Quiver__V1__Value *v)
{
    if (for_hit) {
        Quiver__V1__Hit__AttributesEntry *e = qv_arena_alloc(a, sizeof *e);
        if (e) {
            quiver__v1__hit__attributes_entry__init(e);
            e->key = key;
            e->value = v;
        }
        return e;
    }
    Quiver__V1__Point__AttributesEntry *e = qv_arena_alloc(a, sizeof *e);
    if (e) {
        quiver__v1__point__attributes_entry__init(e);
        e->key = key;
        e->value = v;
    }
    return e;
}

void **qv_conv_row_attrs(qv_arena_t *a, const qv_schema_t *s, const qv_segment_t *seg, uint32_t row, size_t *n,
                         bool for_hit)
{
    *n = 0;
    qv_str_t dyn = qv_strcol_get(&seg->dyn, row);
    qv_dyn_iter_t it;
    qv_dyn_iter(&it, dyn);
    void **entries = qv_arena_array(a, s->nfields + it.left ? s->nfields + it.left : 1, sizeof(void *));
    if (!entries)
        return NULL;
    size_t k = 0;
    for (int f = 0; f < s->nfields; f++) {
        const qv_column_t *c = &seg->cols[f];
        if (!((c->present[row >> 6] >> (row & 63)) & 1))
            continue;
        Quiver__V1__Value *v = value_out(a, c, row);
        if (!v || !(entries[k++] = attr_entry(a, for_hit, (char *)s->fields[f].name, v)))
            return NULL;
    }
    qv_str_t key;
    qv_value_t dv;
    qv_rbuf_t items;
    while (qv_dyn_next(&it, &key, &dv, &items)) { /* the row's dynamic attributes, after the declared ones */
        char *name = qv_arena_strndup(a, key.p, key.len);
        Quiver__V1__Value *v = name ? dyn_value_out(a, &dv, &items) : NULL;
        if (!v || !(entries[k++] = attr_entry(a, for_hit, name, v)))
            return NULL;
    }
    *n = k;
    return entries;
}

Quiver__V1__CollectionInfo *qv_conv_coll_info(qv_arena_t *a, qv_store_t *st, qv_coll_t *c)
{
    const qv_schema_t *s = c->schema;
    Quiver__V1__CollectionInfo *ci = qv_arena_alloc(a, sizeof *ci);
    if (!ci)
        return NULL;
    quiver__v1__collection_info__init(ci);
    ci->name = (char *)s->name;
    ci->dim = s->dim;
    ci->metric = (Quiver__V1__Metric)s->metric;
    ci->shards = s->shards;
    ci->embedding_model = s->embed == QV_EMBED_MINILM ? QV_EMBED_MINILM_NAME : "";
    ci->dynamic_attributes = s->dynamic;
    ci->n_fields = s->nfields;
    Quiver__V1__IndexParams *ip = qv_arena_alloc(a, sizeof *ip);
    if (!ip)
        return NULL;
    quiver__v1__index_params__init(ip);
    ip->kind = s->index_kind == QV_INDEX_FLAT ? QUIVER__V1__INDEX_KIND__INDEX_KIND_FLAT
                                              : QUIVER__V1__INDEX_KIND__INDEX_KIND_HNSW;
    ip->m = s->hnsw_m;
    ip->ef_construction = s->hnsw_efc;
    ip->quantization = s->quant == QV_QUANT_SQ8  ? QUIVER__V1__QUANTIZATION__QUANTIZATION_SQ8
                       : s->quant == QV_QUANT_PQ ? QUIVER__V1__QUANTIZATION__QUANTIZATION_PQ
                                                 : QUIVER__V1__QUANTIZATION__QUANTIZATION_NONE;
    ip->pq_m = s->pq_m;
    ci->index = ip;
    ci->fields = qv_arena_array(a, s->nfields ? s->nfields : 1, sizeof *ci->fields);
    if (!ci->fields)
        return NULL;
    for (int i = 0; i < s->nfields; i++) {
        Quiver__V1__FieldSchema *f = qv_arena_alloc(a, sizeof *f);
        if (!f)
            return NULL;
        quiver__v1__field_schema__init(f);
        f->name = (char *)s->fields[i].name;
        f->type = (Quiver__V1__FieldType)s->fields[i].type;
        ci->fields[i] = f;
    }
    qv_read_t *v;
    qv_err_t verr;
    if (qv_read_begin(c, &v, &verr) != QV_OK)
        return NULL;
    ci->live_rows = v->live;
    ci->wal_bytes = v->wal_bytes;
    size_t nseg = v->nsegs;
    ci->segments = qv_arena_array(a, nseg ? nseg : 1, sizeof *ci->segments);
    for (size_t i = 0; ci->segments && i < nseg; i++) {
        const qv_segment_t *g = v->segs[i];
        Quiver__V1__SegmentInfo *si = qv_arena_alloc(a, sizeof *si);
        if (!si) {
            ci->segments = NULL;
            break;
        }
        quiver__v1__segment_info__init(si);
        si->id = g->id;
        si->state = g->sealed ? QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_SEALED
                              : QUIVER__V1__SEGMENT_STATE__SEGMENT_STATE_GROWING;
        si->rows = g->rows;
        si->deleted_rows = qv_seg_ndeleted(g);
        si->bytes = qv_seg_bytes(g);
        int state;
        qv_store_seg_index_info(st, (qv_segment_t *)g, &state, &si->index_progress, &si->index_bytes);
        si->index_state = (Quiver__V1__IndexState)state;
        ci->segments[i] = si;
    }
    ci->n_segments = ci->segments ? nseg : 0;
    qv_read_end(v);
    return ci->segments ? ci : NULL;
}
