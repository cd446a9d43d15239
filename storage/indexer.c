/* Background index builds (see indexer.h), and the store's side of them: which segments get indexed, and the graph
 * blob write that the commit leader runs (W_INDEX). */
#include "storage/indexer.h"
#include "storage/worker.h"

#include <stdlib.h>
#include <string.h>

#include "index/hnsw.h"
#include "storage/commit.h"
#include "storage/store_int.h"

/* The segment a build is for, with the collection it belongs to (the worker holds references to both). */
typedef struct {
    qv_coll_t *coll;
    qv_segment_t *seg;
} job_t;

/* After the blob of a built index h was persisted (rc, err): serves h, or frees it when the collection is gone. */
static void publish(qv_store_t *st, job_t *j, qv_hnsw_t *h, int rc, const qv_err_t *err, double secs,
                    const char *builder)
{
    qv_segment_t *seg = j->seg;
    const qv_schema_t *s = j->coll->schema;
    if (rc == QV_ENOTFOUND) { /* dropped while building */
        qv_hnsw_free(h);
        return;
    }
    if (rc)
        qv__store_log(st, "index.persist_failed", "collection=%s segment=%llu msg=\"%s\" (serving it from memory)",
                      s->name, (unsigned long long)seg->id, err->msg);
    atomic_store_explicit(&seg->index, h, memory_order_release);
    atomic_store(&seg->index_state, QV_IDX_READY);
    qv__store_log(st, "index.ready", "collection=%s segment=%llu rows=%u seconds=%.2f builder=%s", s->name,
                  (unsigned long long)seg->id, seg->rows, secs, builder);
}

/* The graph from the store's other builder (the GPU plugin), checked by decoding it as untrusted input. Returns true
 * when the segment is served from it (or the collection went away meanwhile); false sends the caller to the CPU
 * build, after one log line saying why. There is no progress to report and no cancel: the builder runs to its end. */
static bool build_external(qv_store_t *st, qv_worker_t *w, job_t *j, const qv_hnsw_params_t *p)
{
    qv_segment_t *seg = j->seg;
    const qv_schema_t *s = j->coll->schema;
    const char *name = st->opts.graph_builder ? st->opts.graph_builder : "external";
    if (qv__worker_stopping(w))
        return false; /* the CPU path sees the stop and leaves the segment pending */
    atomic_store(&seg->index_state, QV_IDX_BUILDING);
    qv_err_t err;
    qv_err_clear(&err);
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    qv_hnsw_t *h = NULL;
    int64_t t0 = qv__now_ns();
    int rc = st->opts.graph_build(st->opts.graph_ctx, p, seg->vectors, seg->rows, seg->dim, &blob, &err);
    if (rc == QV_OK && (rc = qv_hnsw_decode(blob.data, blob.len, seg->vectors, seg->rows, seg->dim, 0, &err, &h)))
        h = NULL;
    if (rc == QV_OK) { /* the decode checked the rows and dim; the parameters must be the collection's too */
        qv_hnsw_info_t info;
        qv_hnsw_info(h, &info);
        if (info.metric != p->metric || info.M != p->M || info.quant != p->quant ||
            (p->quant == QV_HNSW_QUANT_PQ && p->pq_m && info.pq_m != p->pq_m)) {
            rc = qv_err_set(&err, QV_ECORRUPT, "graph of metric %d, M %u, quantisation %d/%u where the collection "
                            "has %d, %u, %d/%u", (int)info.metric, info.M, (int)info.quant, info.pq_m,
                            (int)p->metric, p->M, (int)p->quant, p->pq_m);
            qv_hnsw_free(h);
            h = NULL;
        }
    }
    if (rc) {
        qv_wbuf_free(&blob);
        *qv__worker_external_off(w) = rc == QV_EUNAVAIL; /* the build lane's own flag */
        qv__store_log(st, "index.builder_failed", "collection=%s segment=%llu builder=%s code=%s msg=\"%s\" "
                      "(building on the CPU instead%s)", s->name, (unsigned long long)seg->id, name, qv_strerror(rc),
                      err.msg, *qv__worker_external_off(w) ? ", and for every later segment" : "");
        return false;
    }
    double secs = (double)(qv__now_ns() - t0) / 1e9;
    rc = qv__store_put_index(st, j->coll, seg, blob.data, blob.len, &err);
    qv_wbuf_free(&blob);
    publish(st, j, h, rc, &err, secs, name);
    return true;
}

void qv__index_build(qv_store_t *st, qv_worker_t *w, qv_coll_t *c, qv_segment_t *seg)
{
    job_t jj = {c, seg}, *j = &jj;
    const qv_schema_t *s = j->coll->schema;
    qv_hnsw_params_t p = {.metric = s->metric == QV_METRIC_L2 ? QV_HNSW_L2 : QV_HNSW_IP,
                          .M = s->hnsw_m,
                          .ef_construction = s->hnsw_efc,
                          .seed = seg->id,
                          .quant = (qv_hnsw_quant_t)s->quant,
                          .pq_m = s->pq_m};
    qv_err_t err;
    qv_hnsw_t *h = NULL;
    if (st->opts.graph_build && !*qv__worker_external_off(w) && build_external(st, w, j, &p))
        return;
    int rc = qv_hnsw_create(&p, seg->vectors, seg->rows, seg->dim, 0, &err, &h);
    if (rc) {
        atomic_store(&seg->index_state, QV_IDX_FAILED);
        qv__store_log(st, "index.create_failed", "collection=%s segment=%llu msg=\"%s\"", s->name,
                      (unsigned long long)seg->id, err.msg);
        return;
    }
    int64_t t0 = qv__now_ns();
    if (qv__worker_build_begin(w, seg, h)) {
        rc = qv_hnsw_build(h, qv__worker_pool(w));
        qv__worker_build_end(w, seg);
    } else {
        rc = QV_ECANCELLED; /* stopping, or a compaction will replace the segment */
    }
    if (rc == QV_ECANCELLED && !qv__worker_stopping(w))
        qv__store_log(st, "index.cancelled", "collection=%s segment=%llu (a compaction replaces the segment)",
                      s->name, (unsigned long long)seg->id);
    if (rc) {
        atomic_store(&seg->index_state, rc == QV_ECANCELLED ? QV_IDX_PENDING : QV_IDX_FAILED);
        if (rc != QV_ECANCELLED)
            qv__store_log(st, "index.build_failed", "collection=%s segment=%llu code=%s", s->name,
                          (unsigned long long)seg->id, qv_strerror(rc));
        qv_hnsw_free(h);
        return;
    }
    double secs = (double)(qv__now_ns() - t0) / 1e9;
    qv_wbuf_t blob;
    qv_wbuf_init(&blob);
    rc = qv_hnsw_encode(h, &blob);
    if (rc == QV_OK)
        rc = qv__store_put_index(st, j->coll, seg, blob.data, blob.len, &err);
    qv_wbuf_free(&blob);
    publish(st, j, h, rc, &err, secs, "cpu");
}

/* ---- the store's side: what gets indexed, and the graph blob write (commit leader: W_INDEX) ---- */

void qv__store_maybe_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg)
{
    if (st->worker && c->schema->index_kind == QV_INDEX_HNSW && seg->rows >= st->opts.index_min_rows &&
        seg->rows > 0)
        qv__worker_index(st->worker, c, seg);
    else
        atomic_store(&seg->index_state, QV_IDX_NONE);
}

void qv_store_seg_index_info(qv_store_t *st, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes)
{
    qv__worker_seg_info(st->worker, seg, state, progress, bytes);
}

/* Replaces the stored index blob of a segment (chunked like segment blobs). */
void qv__run_index(qv_store_t *st, qv_writer_t *w)
{
    if (w->coll->dropped) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "collection was dropped");
        return;
    }
    bool present = false; /* a compaction may have replaced the segment while its graph was being built */
    for (size_t i = 0; i < w->coll->nsealed && !present; i++)
        present = w->coll->sealed[i] == w->seg;
    if (!present) {
        w->rc = qv_err_set(w->err, QV_ENOTFOUND, "segment was compacted away");
        return;
    }
    uint32_t coll = w->coll->schema->id;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    qv_cat_put_index(&st->cat, b, coll, w->seg->id, w->blob, w->blob_len);
    w->rc = qv__rocks_write(st, b, "index", w->err);
    rocksdb_writebatch_destroy(b);
}
