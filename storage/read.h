/* Read views: what a reader of a collection may use, and for how long, in the type.
 *
 * qv_read_begin(c) takes, under the collection's read lock and only for as long as the copy takes, a view: a
 * reference to every sealed segment, a copy of the growing segment's descriptor (its rows and arrays at that
 * instant: storage/segment.h qv_seg_snapshot) and the live row count. Everything reachable from the view's segments
 * (rows, ids, text, attributes, graphs) stays valid and unchanged, without any lock, until qv_read_end: sealed rows
 * never change, the growing segment's rows past the copy are not in it, and an array the growing segment outgrows
 * meanwhile is kept for the view. So a long Search, Count or Scroll never holds a lock the commit leader needs, and
 * seals, index swaps, compaction swaps and drops that happen meanwhile do not disturb it.
 *
 * What a view sees: every write acknowledged before qv_read_begin; no write applied after it, except that a delete
 * (or a replacing upsert) applied meanwhile may already hide a row (delete bits are shared and read atomically), so
 * a view never returns a row its collection no longer holds once the view's reads happen after the delete. */
#ifndef QV_READ_H
#define QV_READ_H

#include "storage/store.h"

typedef struct qv_read {
    qv_coll_t *coll;            /* referenced; its schema is immutable */
    const qv_schema_t *schema;
    qv_segment_t **segs;        /* nsegs segments: the sealed ones (referenced), then the growing copy if it has rows */
    size_t nsegs;
    uint64_t live;              /* live rows at qv_read_begin */
    uint64_t wal_bytes;         /* the collection's WAL bytes then (store.h qv_coll_t) */
    qv_segment_t *growing;      /* the copy of the growing segment's descriptor (qv_seg_snapshot), or NULL */
    qv_segment_t **extra;       /* segments qv_read_lookup found ids in that are not in segs (referenced) */
    size_t nextra;
} qv_read_t;

/* A view of c (c keeps its own reference; the view takes another). QV_ENOMEM. */
int qv_read_begin(qv_coll_t *c, qv_read_t **out, qv_err_t *err);
/* Where each of ids[0..n) lives now (by the id map, read under the collection's read lock for the one pass),
 * as a row of a segment the view holds until qv_read_end: seg[i] NULL when the id is not live, or was written to
 * the growing segment after the view began. An id that a compaction or a seal moved since the view began is found
 * in its new segment, which the view then holds too. QV_ENOMEM. */
int qv_read_lookup(qv_read_t *r, const qv_str_t *ids, size_t n, qv_segment_t **seg, uint32_t *row, qv_err_t *err);

/* Ends the view: after this, nothing reached through it may be used. NULL is allowed. */
void qv_read_end(qv_read_t *r);

#endif
