/* Internal to storage/store*.c: the store structure and RocksDB helpers. */
#ifndef QV_STORE_INT_H
#define QV_STORE_INT_H

#include <rocksdb/c.h>

#include "storage/store.h"

enum { CF_DEFAULT, CF_META, CF_WAL, CF_SEG, CF_KEYS, CF_DEL, CF_IDX, CF_COUNT };

#define SEG_CHUNK (4u << 20)
#define MANIFEST_MAGIC 0x464d5651u /* "QVMF" */
#define MANIFEST_VERSION 1

struct qv_writer {
    int op;                 /* W_UPSERT, W_DELETE, W_CREATE, W_DROP, W_FLUSH, W_INDEX */
    qv_coll_t *coll;        /* UPSERT, DELETE, FLUSH (NULL: all) */
    qv_point_t *pts;
    const qv_str_t *ids;
    uint32_t n;
    qv_schema_t *schema;    /* CREATE */
    const char *name;       /* DROP */
    size_t name_len;
    void *job;              /* COMPACT */
    qv_segment_t *seg;      /* INDEX: the segment and its graph blob */
    const void *blob;
    size_t blob_len;
    /* results, written by the leader */
    int rc;
    qv_err_t *err;
    uint64_t seq;
    uint32_t count;
    bool done;
    pthread_cond_t cv;
    qv_writer_t *next;
};

enum { W_UPSERT = 1, W_DELETE, W_CREATE, W_DROP, W_FLUSH, W_INDEX, W_COMPACT, W_PERSIST };

struct qv_store {
    qv_store_opts_t opts;
    char *path;
    rocksdb_t *db;
    rocksdb_options_t *dbopts;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_writeoptions_t *wsync;
    rocksdb_readoptions_t *ropts;

    pthread_mutex_t colls_mu;   /* guards colls, ncolls */
    qv_coll_t **colls;
    size_t ncolls, cap_colls;

    pthread_mutex_t q_mu;       /* guards the writer queue */
    qv_writer_t *q_head, *q_tail;

    struct qv_indexer *indexer;
    struct qv_indexer *sealer;  /* one thread writing frozen segments' blobs, off the commit path */

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
};

/* Marks the store failed (every later write gets QV_EUNAVAIL) and records why; the first reason wins. */
void qv__store_fail(qv_store_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Key builders: return the key length. */
static inline size_t key_coll(uint8_t *k, char tag, uint32_t coll)
{
    k[0] = (uint8_t)tag;
    qv_be32(k + 1, coll);
    return 5;
}
static inline size_t key_seg(uint8_t *k, uint32_t coll, uint64_t seg, uint32_t chunk)
{
    qv_be32(k, coll);
    qv_be64(k + 4, seg);
    qv_be32(k + 12, chunk);
    return 16;
}

int qv__manifest_decode(const void *data, size_t len, uint64_t *seal_seq, uint64_t *next_seg, uint64_t **segs,
                        uint64_t **blob_lens, uint32_t *nsegs, qv_err_t *err);
void qv__coll_free(qv_coll_t *c);
/* The manifest of c's persisted sealed segments (and frozen ones too when include_frozen, and c->sealed[i] when
 * also[i]; also may be NULL), minus `drop`, plus `add`, in ascending id order. */
int qv__encode_manifest(qv_wbuf_t *out, const qv_coll_t *c, uint64_t seal_seq, uint64_t next_seg, qv_segment_t *add,
                        qv_segment_t *const *drop, size_t ndrop, bool include_frozen, const bool *also);
/* Splits a blob over SEG_CHUNK-sized values under be32 coll | be64 seg | be32 chunk in column family cf. */
void qv__put_chunks(qv_store_t *st, rocksdb_writebatch_t *b, int cf, uint32_t coll, uint64_t seg, const void *data,
                    size_t len);
/* id-map entries (`keys`) for every live row of g */
void qv__put_keys(qv_store_t *st, rocksdb_writebatch_t *b, uint32_t coll, const qv_segment_t *g);
int qv__rocks_write(qv_store_t *st, rocksdb_writebatch_t *b, qv_err_t *err);
int qv__commit(qv_store_t *st, qv_writer_t *w);
void qv__run_compact(qv_store_t *st, qv_writer_t *w);
void qv__maybe_auto_compact(qv_store_t *st, qv_coll_t *c);
void qv__compactions_free(qv_store_t *st);
bool qv__indexer_stopping(struct qv_indexer *ix);
/* Writes an index blob for seg through the commit queue; QV_ENOTFOUND if c was dropped. */
int qv__store_put_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg, const void *blob, size_t len, qv_err_t *err);
/* Queues an index build for a just-sealed or just-loaded segment if the collection wants one. */
void qv__store_maybe_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg);
void qv__store_log(qv_store_t *st, const char *event, const char *fields, ...) __attribute__((format(printf, 3, 4)));
int64_t qv__now_ns(void);
void qv__indexer_seg_info(struct qv_indexer *ix, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes);
/* Loads the stored index blob of seg if there is a valid one; otherwise queues a build. */
void qv__load_index(qv_store_t *st, qv_coll_t *c, qv_segment_t *seg);
int qv__store_insert_coll(qv_store_t *st, qv_coll_t *c);

#endif
