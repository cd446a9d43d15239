/* Internal to storage/: the store structure and what its files share. Each declaration sits under the file that
 * defines it. The RocksDB layout is catalog.h's; the writer queue and the operations the commit leader runs are
 * commit.h's. */
#ifndef QV_STORE_INT_H
#define QV_STORE_INT_H

#include <rocksdb/c.h>

#include "storage/catalog.h"
#include "storage/store.h"

struct qv_writer;

struct qv_store {
    qv_store_opts_t opts;
    char *path;
    rocksdb_t *db;
    rocksdb_options_t *dbopts;
    qv_catalog_t cat;           /* column family handles */
    rocksdb_writeoptions_t *wsync;
    rocksdb_readoptions_t *ropts;

    pthread_mutex_t colls_mu;   /* guards colls, ncolls */
    qv_coll_t **colls;
    size_t ncolls, cap_colls;

    pthread_mutex_t q_mu;       /* guards the writer queue (commit.c) */
    struct qv_writer *q_head, *q_tail;

    struct qv_worker *worker;   /* background jobs: seals, compactions, index builds (worker.h) */

    pthread_mutex_t jobs_mu;    /* guards jobs, njobs, next_job_id */
    struct qv_cjob *jobs[32];   /* compaction jobs, newest first */
    size_t njobs;
    uint64_t next_job_id;

    /* owned by the commit leader (or by recovery, before any writer exists) */
    uint64_t seq;
    uint32_t next_coll_id;
    /* set once by qv__store_fail (any thread), read by every writer and by qv_store_failed */
    atomic_bool failed;
    atomic_flag fail_claimed;  /* the first qv__store_fail writes fail_reason, then sets failed (release) */
    char fail_reason[256];
    qv_store_salvage_t salvage; /* written by qv_store_open only */
    pthread_mutex_t backup_mu;  /* held by the one qv_store_backup at a time (storage/backup.c) */
    /* qv_store_apply's applied index per external log: written by the commit leader (and recovery), read by any
     * thread through qv_store_applied; guarded by applied_mu */
    struct {
        atomic_uint_fast64_t runs;
        atomic_int_fast64_t total_ns, max_ns;
    } op_time[16];              /* per writer kind (commit.h W_*): the leader's time running it (commit.c) */
    pthread_mutex_t applied_mu;
    struct qv_applied {
        uint64_t group, index;
    } *applied;
    size_t napplied, cap_applied;
};

/* ---- storage/store.c ---- */
/* storage/commit.c: records group's applied index (the leader, and recovery); QV_ENOMEM leaves it unrecorded */
int qv__applied_set(qv_store_t *st, uint64_t group, uint64_t index);

/* Marks the store failed (every later write gets QV_EUNAVAIL) and records why; the first reason wins. */
void qv__store_fail(qv_store_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes b with sync; on failure fails the store and returns QV_EIO with a message. */
int qv__rocks_write(qv_store_t *st, rocksdb_writebatch_t *b, const char *what, qv_err_t *err);
void qv__store_log(qv_store_t *st, const char *event, const char *fields, ...) __attribute__((format(printf, 3, 4)));
int64_t qv__now_ns(void);

/* ---- storage/collections.c ---- */
qv_coll_t *qv__coll_new(qv_schema_t *s);
void qv__coll_free(qv_coll_t *c);
/* Makes room for one more sealed segment (QV_ENOMEM, nothing changed, otherwise); under the write lock once readers
 * exist, since it may move c->sealed. */
int qv__coll_reserve_sealed(qv_coll_t *c);
/* Inserts seg in id order; the caller made room (qv__coll_reserve_sealed, or removed a segment first). */
void qv__coll_add_sealed(qv_coll_t *c, qv_segment_t *seg);
/* Adds c to the collection table (which takes the caller's reference); QV_ENOMEM. */
int qv__store_insert_coll(qv_store_t *st, qv_coll_t *c);
/* Applies one decoded WAL record of rec_bytes bytes; the caller holds the collection's write lock (or is
 * recovering). On QV_ENOMEM the points before the failing one stay applied: the caller must then stop accepting
 * writes. *count (may be NULL) gets the points written or ids deleted. */
int qv__coll_apply(qv_coll_t *c, const qv_record_t *rec, size_t rec_bytes, uint32_t *count);

/* ---- storage/seal.c ---- */
/* Seals after a write crossed a threshold: freeze now, persist in the background. Commit leader only. */
void qv__seal_async(qv_store_t *st, qv_coll_t *c);

/* ---- storage/store_recover.c ---- */
int qv__store_recover(qv_store_t *st, qv_err_t *err);
/* Loads the stored index blob of seg if there is a valid one; otherwise queues a build. */
void qv__load_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg);

/* ---- storage/commit.c ---- */
/* Writes an index blob for seg through the commit queue; QV_ENOTFOUND if c was dropped. */
int qv__store_put_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg, const void *blob, size_t len, qv_err_t *err);

/* ---- storage/indexer.c ---- */
/* Queues an index build for a just-sealed or just-loaded segment if the collection wants one. */
void qv__store_maybe_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg);

/* ---- storage/compact.c ---- */
void qv__maybe_auto_compact(qv_store_t *st, qv_coll_t *c);
void qv__compactions_free(qv_store_t *st);

#endif
