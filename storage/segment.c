/* In-memory segments: creation, appends, deletes. See segment.h for the model and locking. */
#include "storage/segment.h"

#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "common/hash.h"
#include "index/hnsw.h"

static void strcol_free(qv_strcol_t *c)
{
    free(c->off);
    free(c->bytes);
    memset(c, 0, sizeof *c);
}

/* ---- growth that read views survive ---- */

typedef struct qv_retired {
    struct qv_retired *next;
    void *p;
} qv_retired_t;

/* An array of old_bytes grown to new_bytes: like realloc, except that while views of seg are open the old array is
 * retired (kept until the last view ends: they may be reading it) rather than freed. NULL (seg unchanged) on OOM. */
static void *seg_grow(qv_segment_t *seg, void *old, size_t old_bytes, size_t new_bytes)
{
    pthread_mutex_lock(&seg->view_mu);
    bool viewed = seg->views > 0;
    pthread_mutex_unlock(&seg->view_mu);
    if (!viewed || !old) /* no view can start meanwhile: views begin under the collection's read lock, and growth
                          * happens under its write lock */
        return realloc(old, new_bytes);
    void *p = malloc(new_bytes);
    qv_retired_t *r = malloc(sizeof *r);
    if (!p || !r) {
        free(p);
        free(r);
        return NULL;
    }
    memcpy(p, old, old_bytes);
    r->p = old;
    pthread_mutex_lock(&seg->view_mu);
    r->next = seg->retired;
    seg->retired = r;
    pthread_mutex_unlock(&seg->view_mu);
    return p;
}

static void retired_free(qv_retired_t *r)
{
    while (r) {
        qv_retired_t *next = r->next;
        free(r->p);
        free(r);
        r = next;
    }
}

qv_segment_t *qv_seg_snapshot(qv_segment_t *seg)
{
    qv_segment_t *snap = calloc(1, sizeof *snap);
    qv_column_t *cols = calloc(seg->nfields ? seg->nfields : 1, sizeof *cols);
    if (!snap || !cols) {
        free(snap);
        free(cols);
        return NULL;
    }
    memcpy(cols, seg->cols, seg->nfields * sizeof *cols);
    snap->id = seg->id;
    snap->dim = seg->dim;
    snap->nfields = seg->nfields;
    snap->sealed = seg->sealed;
    snap->rows = seg->rows;
    snap->cap = seg->cap;
    snap->vectors = seg->vectors;
    snap->ids = seg->ids;
    snap->text = seg->text;
    snap->dyn = seg->dyn;
    snap->cols = cols;
    snap->deleted = seg->deleted;
    snap->ndeleted = qv_seg_ndeleted(seg);
    atomic_init(&snap->refs, 1);
    atomic_init(&snap->index, NULL);
    atomic_init(&snap->building, NULL);
    atomic_init(&snap->index_state, QV_IDX_NONE);
    pthread_mutex_init(&snap->view_mu, NULL);
    snap->snapshot_of = seg;
    qv_seg_ref(seg);
    pthread_mutex_lock(&seg->view_mu);
    seg->views++;
    pthread_mutex_unlock(&seg->view_mu);
    return snap;
}

void qv_seg_snapshot_free(qv_segment_t *snap)
{
    if (!snap)
        return;
    qv_segment_t *seg = snap->snapshot_of;
    qv_retired_t *free_now = NULL;
    pthread_mutex_lock(&seg->view_mu);
    if (--seg->views == 0) {
        free_now = seg->retired;
        seg->retired = NULL;
    }
    pthread_mutex_unlock(&seg->view_mu);
    retired_free(free_now);
    pthread_mutex_destroy(&snap->view_mu);
    free(snap->cols);
    free(snap);
    qv_seg_unref(seg);
}

/* Room for `items` more items of `more` bytes in total after the n items already held. */
static int strcol_reserve(qv_segment_t *seg, qv_strcol_t *c, size_t n, size_t items, size_t more)
{
    if (n + items + 1 > c->cap_off) {
        size_t cap = c->cap_off ? c->cap_off : 64;
        while (cap < n + items + 1)
            cap *= 2;
        uint64_t *p = seg_grow(seg, c->off, c->cap_off * sizeof *p, cap * sizeof *p);
        if (!p)
            return QV_ENOMEM;
        if (!c->off)
            p[0] = 0;
        c->off = p;
        c->cap_off = cap;
    }
    size_t used = c->off[n];
    if (used + more > c->cap_bytes) {
        size_t cap = c->cap_bytes ? c->cap_bytes : 256;
        while (cap < used + more)
            cap *= 2;
        char *p = seg_grow(seg, c->bytes, c->cap_bytes, cap);
        if (!p)
            return QV_ENOMEM;
        c->bytes = p;
        c->cap_bytes = cap;
    }
    return QV_OK;
}

/* Appends item n; strcol_reserve() must have made room. */
static void strcol_push(qv_strcol_t *c, size_t n, const char *p, size_t len)
{
    if (len)
        memcpy(c->bytes + c->off[n], p, len);
    c->off[n + 1] = c->off[n] + len;
}

static void *grow_array(qv_segment_t *seg, void *arr, size_t old_cap, size_t cap, size_t size, int *rc)
{
    void *p = seg_grow(seg, arr, old_cap * size, cap * size);
    if (!p)
        *rc = QV_ENOMEM;
    return p ? p : arr;
}

int qv_seg_reserve(qv_segment_t *seg, uint32_t n)
{
    if (n > UINT32_MAX - seg->rows)
        return QV_ETOOBIG;
    uint32_t need = seg->rows + n;
    if (need <= seg->cap)
        return QV_OK;
    uint64_t cap = seg->cap ? seg->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    /* Arrays that grow before a later one fails keep their larger allocation; cap only moves once all have grown,
     * so the segment stays consistent. */
    int rc = QV_OK;
    /* old caps: what each array holds now (a failed earlier attempt may have grown some already: they are at
     * least this big, and copying the old size is all a move needs) */
    size_t oc = seg->cap;
    seg->vectors = grow_array(seg, seg->vectors, oc * seg->dim, cap * seg->dim, sizeof(float), &rc);
    size_t old_words = qv_bm_words(seg->cap), words = qv_bm_words(cap);
    if (rc == QV_OK)
        seg->deleted = grow_array(seg, seg->deleted, old_words, words, sizeof(uint64_t), &rc);
    if (rc == QV_OK)
        memset(seg->deleted + old_words, 0, (words - old_words) * sizeof(uint64_t));
    for (int f = 0; f < seg->nfields && rc == QV_OK; f++) {
        qv_column_t *c = &seg->cols[f];
        c->present = grow_array(seg, c->present, old_words, words, sizeof(uint64_t), &rc);
        if (rc)
            break;
        memset(c->present + old_words, 0, (words - old_words) * sizeof(uint64_t));
        switch (c->type) {
        case QV_FT_INT64: c->i64 = grow_array(seg, c->i64, oc, cap, sizeof(int64_t), &rc); break;
        case QV_FT_DOUBLE: c->f64 = grow_array(seg, c->f64, oc, cap, sizeof(double), &rc); break;
        case QV_FT_BOOL: c->b = grow_array(seg, c->b, oc, cap, 1, &rc); break;
        case QV_FT_KEYWORDS:
            c->kw_off = grow_array(seg, c->kw_off, oc ? oc + 1 : 0, cap + 1, sizeof(uint32_t), &rc);
            if (rc == QV_OK && seg->cap == 0)
                c->kw_off[0] = 0;
            break;
        default: break;
        }
    }
    if (rc)
        return rc;
    seg->cap = (uint32_t)cap;
    return QV_OK;
}

qv_segment_t *qv_seg_create(const qv_schema_t *s, uint64_t id)
{
    qv_segment_t *seg = calloc(1, sizeof *seg);
    if (!seg)
        return NULL;
    seg->id = id;
    seg->dim = s->dim;
    seg->nfields = s->nfields;
    atomic_init(&seg->refs, 1);
    atomic_init(&seg->index, NULL);
    atomic_init(&seg->building, NULL);
    atomic_init(&seg->index_state, QV_IDX_NONE);
    pthread_mutex_init(&seg->view_mu, NULL);
    seg->cols = calloc(s->nfields ? s->nfields : 1, sizeof *seg->cols);
    if (!seg->cols) {
        pthread_mutex_destroy(&seg->view_mu);
        free(seg);
        return NULL;
    }
    bool ok = true;
    for (int f = 0; f < s->nfields; f++) {
        seg->cols[f].type = s->fields[f].type;
        ok = ok && strcol_reserve(seg, &seg->cols[f].str, 0, 0, 0) == QV_OK;
    }
    if (!ok || qv_seg_reserve(seg, 1) != QV_OK || strcol_reserve(seg, &seg->ids, 0, 0, 0) ||
        strcol_reserve(seg, &seg->text, 0, 0, 0) || strcol_reserve(seg, &seg->dyn, 0, 0, 0)) {
        qv_seg_unref(seg);
        return NULL;
    }
    return seg;
}

static void postings_free(qv_postings_t *p)
{
    if (!p)
        return;
    free(p->slots);
    free(p->hash);
    free(p->str);
    free(p->off);
    free(p->rows);
    free(p);
}

int64_t qv_postings_find(const qv_postings_t *p, qv_str_t s)
{
    uint64_t h = qv_hash(s.p, s.len);
    for (uint32_t i = (uint32_t)h & (p->cap - 1);; i = (i + 1) & (p->cap - 1)) {
        uint32_t c = p->slots[i];
        if (!c)
            return -1;
        c--;
        if (p->hash[c] == h && p->str[c].len == s.len && memcmp(p->str[c].p, s.p, s.len) == 0)
            return c;
    }
}

/* Code of s, adding it if new; UINT32_MAX on allocation failure. */
static uint32_t postings_code(qv_postings_t *p, qv_str_t s, uint32_t *cap_codes)
{
    uint64_t h = qv_hash(s.p, s.len);
    uint32_t i = (uint32_t)h & (p->cap - 1);
    for (;; i = (i + 1) & (p->cap - 1)) {
        uint32_t c = p->slots[i];
        if (!c)
            break;
        c--;
        if (p->hash[c] == h && p->str[c].len == s.len && memcmp(p->str[c].p, s.p, s.len) == 0)
            return c;
    }
    if (p->ncodes == *cap_codes) {
        uint32_t cap = *cap_codes ? *cap_codes * 2 : 64;
        uint64_t *hh = realloc(p->hash, cap * sizeof *hh);
        if (hh)
            p->hash = hh;
        qv_str_t *ss = hh ? realloc(p->str, cap * sizeof *ss) : NULL;
        if (ss)
            p->str = ss;
        if (!hh || !ss)
            return UINT32_MAX;
        *cap_codes = cap;
    }
    uint32_t c = p->ncodes++;
    p->hash[c] = h;
    p->str[c] = s;
    p->slots[i] = c + 1;
    return c;
}

static qv_postings_t *build_postings(const qv_segment_t *seg, const qv_column_t *c)
{
    size_t nitems = c->type == QV_FT_KEYWORDS ? c->kw_off[seg->rows] : seg->rows;
    qv_postings_t *p = calloc(1, sizeof *p);
    uint32_t *item_code = malloc((nitems ? nitems : 1) * sizeof *item_code);
    uint32_t cap_codes = 0;
    bool ok = p && item_code;
    if (ok) {
        p->cap = 64;
        while (p->cap < 2 * nitems + 2)
            p->cap *= 2;
        ok = (p->slots = calloc(p->cap, sizeof *p->slots)) != NULL;
    }
    /* pass 1: codes of every item held by a present row */
    for (uint32_t r = 0; ok && r < seg->rows; r++) {
        if (!((c->present[r >> 6] >> (r & 63)) & 1))
            continue;
        uint32_t b = c->type == QV_FT_KEYWORDS ? c->kw_off[r] : r, e = c->type == QV_FT_KEYWORDS ? c->kw_off[r + 1] : r + 1;
        for (uint32_t it = b; ok && it < e; it++)
            ok = (item_code[it] = postings_code(p, qv_strcol_get(&c->str, it), &cap_codes)) != UINT32_MAX;
    }
    if (ok)
        ok = (p->off = calloc((size_t)p->ncodes + 1, sizeof *p->off)) != NULL;
    size_t total = 0;
    for (uint32_t r = 0; ok && r < seg->rows; r++) {
        if (!((c->present[r >> 6] >> (r & 63)) & 1))
            continue;
        uint32_t b = c->type == QV_FT_KEYWORDS ? c->kw_off[r] : r, e = c->type == QV_FT_KEYWORDS ? c->kw_off[r + 1] : r + 1;
        for (uint32_t it = b; it < e; it++, total++)
            p->off[item_code[it] + 1]++;
    }
    if (ok)
        ok = (p->rows = malloc((total ? total : 1) * sizeof *p->rows)) != NULL;
    if (ok) {
        for (uint32_t k = 0; k < p->ncodes; k++)
            p->off[k + 1] += p->off[k];
        uint32_t *fill = calloc(p->ncodes ? p->ncodes : 1, sizeof *fill);
        ok = fill != NULL;
        /* pass 2: rows in ascending order per code (a row repeating a keyword is listed twice: harmless) */
        for (uint32_t r = 0; ok && r < seg->rows; r++) {
            if (!((c->present[r >> 6] >> (r & 63)) & 1))
                continue;
            uint32_t b = c->type == QV_FT_KEYWORDS ? c->kw_off[r] : r,
                     e = c->type == QV_FT_KEYWORDS ? c->kw_off[r + 1] : r + 1;
            for (uint32_t it = b; it < e; it++) {
                uint32_t code = item_code[it];
                p->rows[p->off[code] + fill[code]++] = r;
            }
        }
        free(fill);
    }
    free(item_code);
    if (!ok) {
        postings_free(p);
        return NULL;
    }
    return p;
}

void qv_seg_build_postings(qv_segment_t *seg)
{
    for (int f = 0; f < seg->nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        if ((c->type == QV_FT_KEYWORD || c->type == QV_FT_KEYWORDS) && !c->post)
            c->post = build_postings(seg, c);
    }
}

static void seg_free(qv_segment_t *seg)
{
    qv_hnsw_free(atomic_load(&seg->index));
    free(seg->fwd_rows);
    free(seg->vectors);
    free(seg->deleted);
    strcol_free(&seg->ids);
    strcol_free(&seg->text);
    strcol_free(&seg->dyn);
    for (int f = 0; seg->cols && f < seg->nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        free(c->present);
        free(c->i64);
        free(c->f64);
        free(c->b);
        free(c->kw_off);
        strcol_free(&c->str);
        postings_free(c->post);
    }
    free(seg->cols);
    retired_free(seg->retired); /* no view is left: each held a reference */
    pthread_mutex_destroy(&seg->view_mu);
    free(seg);
}

void qv_seg_ref(qv_segment_t *seg) { atomic_fetch_add_explicit(&seg->refs, 1, memory_order_relaxed); }

void qv_seg_unref(qv_segment_t *seg)
{
    if (seg && atomic_fetch_sub_explicit(&seg->refs, 1, memory_order_acq_rel) == 1)
        seg_free(seg);
}

int qv_seg_append(qv_segment_t *seg, const qv_point_t *pt, uint32_t *row_out)
{
    if (seg->sealed)
        return QV_EINVAL;
    int rc = qv_seg_reserve(seg, 1);
    if (rc)
        return rc;
    uint32_t r = seg->rows;
    /* Reserve every variable-size part first so that a failure leaves the segment exactly as it was. */
    if (strcol_reserve(seg, &seg->ids, r, 1, pt->id.len) || strcol_reserve(seg, &seg->text, r, 1, pt->text.len) ||
        strcol_reserve(seg, &seg->dyn, r, 1, pt->dyn.len))
        return QV_ENOMEM;
    for (int f = 0; f < seg->nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        const qv_attr_t *at = NULL;
        for (uint32_t a = 0; a < pt->nattrs; a++)
            if (pt->attrs[a].field == f)
                at = &pt->attrs[a];
        if (c->type == QV_FT_KEYWORD && strcol_reserve(seg, &c->str, r, 1, at ? at->value.kw.len : 0))
            return QV_ENOMEM;
        if (c->type == QV_FT_KEYWORDS && at) {
            size_t bytes = 0;
            for (uint32_t k = 0; k < at->value.kws.n; k++)
                bytes += at->value.kws.items[k].len;
            if (strcol_reserve(seg, &c->str, c->nitems, at->value.kws.n, bytes))
                return QV_ENOMEM;
        }
    }
    memcpy(seg->vectors + (size_t)r * seg->dim, pt->vector, (size_t)seg->dim * sizeof(float));
    strcol_push(&seg->ids, r, pt->id.p, pt->id.len);
    strcol_push(&seg->text, r, pt->text.p, pt->text.len);
    strcol_push(&seg->dyn, r, pt->dyn.p, pt->dyn.len);
    for (int f = 0; f < seg->nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        const qv_attr_t *at = NULL;
        for (uint32_t a = 0; a < pt->nattrs; a++)
            if (pt->attrs[a].field == f)
                at = &pt->attrs[a];
        if (at)
            qv_bm_set(c->present, r);
        switch (c->type) {
        case QV_FT_INT64: c->i64[r] = at ? at->value.i : 0; break;
        case QV_FT_DOUBLE: c->f64[r] = at ? at->value.d : 0.0; break;
        case QV_FT_BOOL: c->b[r] = at ? at->value.b : 0; break;
        case QV_FT_KEYWORD:
            strcol_push(&c->str, r, at ? at->value.kw.p : NULL, at ? at->value.kw.len : 0);
            break;
        case QV_FT_KEYWORDS:
            if (at)
                for (uint32_t k = 0; k < at->value.kws.n; k++, c->nitems++)
                    strcol_push(&c->str, c->nitems, at->value.kws.items[k].p, at->value.kws.items[k].len);
            c->kw_off[r + 1] = (uint32_t)c->nitems;
            break;
        }
    }
    seg->rows = r + 1;
    if (row_out)
        *row_out = r;
    return QV_OK;
}

bool qv_seg_delete(qv_segment_t *seg, uint32_t row)
{
    if (row >= seg->rows || qv_seg_is_deleted(seg, row))
        return false;
    qv_bm_set(seg->deleted, row);
    __atomic_fetch_add(&seg->ndeleted, 1, __ATOMIC_RELAXED); /* views read it (qv_seg_ndeleted) */
    seg->del_dirty = true;
    return true;
}

size_t qv_seg_bytes(const qv_segment_t *seg)
{
    size_t n = (size_t)seg->cap * seg->dim * sizeof(float) + seg->ids.cap_bytes + seg->text.cap_bytes +
               seg->dyn.cap_bytes + (seg->ids.cap_off + seg->text.cap_off + seg->dyn.cap_off) * sizeof(uint64_t) +
               qv_bm_words(seg->cap) * 8;
    for (int f = 0; f < seg->nfields; f++) {
        const qv_column_t *c = &seg->cols[f];
        n += qv_bm_words(seg->cap) * 8 + c->str.cap_bytes + c->str.cap_off * sizeof(uint64_t);
        n += (size_t)seg->cap * (c->type == QV_FT_BOOL ? 1 : c->type == QV_FT_KEYWORDS ? 4 : 8);
        if (c->post)
            n += (size_t)c->post->cap * 4 + (size_t)c->post->ncodes * 28 + (size_t)c->post->off[c->post->ncodes] * 4;
    }
    return n;
}

int qv_seg_row_point(const qv_segment_t *seg, uint32_t r, qv_point_t *pt, qv_attr_t *attrs, qv_str_t **items,
                     size_t *cap)
{
    pt->id = qv_strcol_get(&seg->ids, r);
    pt->text = qv_strcol_get(&seg->text, r);
    pt->dyn = qv_strcol_get(&seg->dyn, r);
    pt->vector = (float *)qv_seg_vector(seg, r);
    pt->nvector = seg->dim;
    pt->attrs = attrs;
    pt->nattrs = 0;
    size_t need = 0;
    for (int f = 0; f < seg->nfields; f++)
        if (seg->cols[f].type == QV_FT_KEYWORDS)
            need += seg->cols[f].kw_off[r + 1] - seg->cols[f].kw_off[r];
    if (need > *cap) {
        qv_str_t *p = realloc(*items, need * sizeof *p);
        if (!p)
            return QV_ENOMEM;
        *items = p;
        *cap = need;
    }
    size_t used = 0;
    for (int f = 0; f < seg->nfields; f++) {
        const qv_column_t *c = &seg->cols[f];
        if (!qv_bm_get(c->present, r))
            continue;
        qv_attr_t *a = &attrs[pt->nattrs++];
        a->field = (uint16_t)f;
        a->value.type = c->type;
        switch (c->type) {
        case QV_FT_INT64: a->value.i = c->i64[r]; break;
        case QV_FT_DOUBLE: a->value.d = c->f64[r]; break;
        case QV_FT_BOOL: a->value.b = c->b[r] != 0; break;
        case QV_FT_KEYWORD: a->value.kw = qv_strcol_get(&c->str, r); break;
        case QV_FT_KEYWORDS:
            a->value.kws.items = *items + used;
            a->value.kws.n = c->kw_off[r + 1] - c->kw_off[r];
            for (uint32_t e = c->kw_off[r]; e < c->kw_off[r + 1]; e++)
                (*items)[used++] = qv_strcol_get(&c->str, e);
            break;
        }
    }
    return QV_OK;
}

/* realloc to n bytes (at least 1), keeping the old array when it fails */
static void *fit(void *p, size_t n)
{
    void *q = p ? realloc(p, n ? n : 1) : NULL;
    return q ? q : p;
}

static void strcol_fit(qv_strcol_t *c, size_t items)
{
    if (!c->off)
        return;
    c->off = fit(c->off, (items + 1) * sizeof *c->off);
    c->cap_off = items + 1;
    size_t used = c->off[items];
    c->bytes = fit(c->bytes, used);
    c->cap_bytes = used ? used : 1;
}

void qv_seg_shrink(qv_segment_t *seg)
{
    size_t rows = seg->rows, words = qv_bm_words(rows ? rows : 1);
    seg->vectors = fit(seg->vectors, rows * seg->dim * sizeof(float));
    seg->deleted = fit(seg->deleted, words * 8);
    strcol_fit(&seg->ids, rows);
    strcol_fit(&seg->text, rows);
    strcol_fit(&seg->dyn, rows);
    for (int f = 0; f < seg->nfields; f++) {
        qv_column_t *c = &seg->cols[f];
        c->present = fit(c->present, words * 8);
        c->i64 = fit(c->i64, rows * 8);
        c->f64 = fit(c->f64, rows * 8);
        c->b = fit(c->b, rows);
        if (c->type == QV_FT_KEYWORDS) {
            c->kw_off = fit(c->kw_off, (rows + 1) * 4);
            strcol_fit(&c->str, c->nitems);
        } else if (c->type == QV_FT_KEYWORD) {
            strcol_fit(&c->str, rows);
        }
    }
    seg->cap = (uint32_t)(rows ? rows : 1);
}
