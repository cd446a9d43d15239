/* The commit path (internal to storage/): every mutation of the store is a writer on one queue, and the writer at the
 * head (the leader) runs it. The design (group commit, why our own grouping) is in commit.c.
 *
 * Each kind of writer (W_*) has one entry in commit.c's operation table: its name, whether it groups with data
 * writes, and the function the leader runs for it. The run functions live where their logic does (declared below,
 * each under the file that defines it); they run in the leader only, so they are totally ordered with each other
 * and with the writes, and report through w->rc and w->err. */
#ifndef QV_COMMIT_H
#define QV_COMMIT_H

#include <pthread.h>

#include "storage/store.h"

enum {
    W_UPSERT = 1, W_DELETE, W_APPLY, W_DELETE_WHERE, W_UPDATE, W_CREATE, W_DROP, W_FLUSH, W_INDEX, W_SEG_ID, W_COMPACT,
    W_PERSIST, W_COUNT
};

typedef struct qv_writer qv_writer_t;

struct qv_writer {
    int op;                 /* W_* */
    qv_coll_t *coll;        /* UPSERT, DELETE, FLUSH (NULL: all), INDEX, COMPACT, PERSIST */
    qv_point_t *pts;        /* UPSERT */
    const qv_str_t *ids;    /* DELETE, DELETE_WHERE, UPDATE (the candidates) */
    uint32_t n;
    qv_row_match_fn match;  /* DELETE_WHERE, UPDATE: NULL, or the condition a candidate's row must meet */
    void *match_ctx;
    const qv_attr_change_t *change; /* UPDATE */
    qv_schema_t *schema;    /* CREATE */
    const char *name;       /* DROP */
    size_t name_len;
    void *job;              /* COMPACT */
    qv_segment_t *seg;      /* INDEX: the segment and its graph blob; PERSIST: the segment and (non-NULL) its blob
                             * chunks are written */
    const void *blob;       /* INDEX, PERSIST; APPLY: the entry's write record */
    size_t blob_len;
    uint64_t group, index;  /* APPLY: the external log and the entry's position in it */
    bool skipped;           /* APPLY, set by the leader: at or below the group's applied index, nothing done */
    /* results, written by the leader */
    int rc;
    qv_err_t *err;
    uint64_t seq;
    uint32_t count;
    /* queue state, guarded by the store's q_mu */
    bool done;
    pthread_cond_t cv;
    qv_writer_t *next;
};

/* Queues w, waits until it is done or leads (then runs it, and the data writes behind it), and returns its status.
 * w lives on the caller's stack; the leader writes its results before waking it. */
int qv__commit(qv_store_t *st, qv_writer_t *w);

/* ---- the operations' run functions (commit leader only) ---- */

/* storage/collections.c: W_CREATE (schema, manifest, next collection id; then the collection table) */
void qv__run_create(qv_store_t *st, qv_writer_t *w);
/* storage/collections.c: W_DROP (every key of the collection; then out of the table) */
void qv__run_drop(qv_store_t *st, qv_writer_t *w);
/* storage/seal.c: W_FLUSH (freeze and persist one collection, or all) */
void qv__run_flush(qv_store_t *st, qv_writer_t *w);
/* storage/seal.c: W_PERSIST (persist frozen segments: a seal job's turn, or close) */
void qv__run_persist(qv_store_t *st, qv_writer_t *w);
/* storage/indexer.c: W_INDEX (replace a segment's stored graph blob) */
void qv__run_index(qv_store_t *st, qv_writer_t *w);
/* storage/compact.c: W_SEG_ID (a segment id for a compaction output, in w->seq: taken from the collection's counter,
 * so the job can write the output's blob before the swap) */
void qv__run_seg_id(qv_store_t *st, qv_writer_t *w);
/* storage/compact.c: W_COMPACT (the swap phase of a compaction job) */
void qv__run_compact(qv_store_t *st, qv_writer_t *w);
/* storage/rewrite.c, in the group of data writes: the WAL record of a DELETE_WHERE or UPDATE at sequence seq,
 * appended to buf, from the candidates' rows as they are now. *none: no candidate qualified (nothing appended). */
int qv__rewrite_encode(qv_store_t *st, qv_writer_t *w, uint64_t seq, qv_wbuf_t *buf, bool *none);


#endif
