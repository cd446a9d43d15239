/* The shard store: one RocksDB instance holding every collection of a shard, plus the in-memory segments.
 *
 * Files (storage/): store.c opens and closes the store; catalog.h specifies the RocksDB layout (column families,
 * keys, the manifest) byte by byte and catalog.c is the only code that composes a key; commit.c runs the writer
 * queue and group commit; collections.c holds the collection table, the apply of WAL records, create and drop;
 * seal.c freezes and persists segments; store_recover.c rebuilds everything at start-up; compact.c, indexer.c and
 * backup.c are compaction, background index builds and backups. store_int.h is what those files share.
 *
 * Write path (group commit, commit.c): every mutation is a writer on one queue; the writer at the head leads and
 * commits the data writes queued behind it as one synced RocksDB write batch, then applies them to memory in sequence
 * order. A write is acknowledged only after its fsync and its apply: acknowledged writes are durable and visible to
 * every read that starts afterwards. Validation happens before a writer joins the queue, so a request that fails
 * validation has written nothing.
 *
 * Seal (seal.c): the growing segment becomes immutable. One batch writes its blob, the changed delete bitmaps, the
 * id-map changes since the last seal and the new manifest, and deletes the WAL records the segment now covers.
 * Recovery loads schemas, manifests, segment blobs, delete bitmaps and the id map, then replays each collection's
 * WAL.
 *
 * After a failed RocksDB write the store is marked failed: the outcome of that write is unknown, so every later
 * write gets QV_EUNAVAIL until a restart recovers from what is on disk; qv_store_failed says so and why (Health,
 * metrics and the etcd registration follow it).
 *
 * RocksDB opens with kTolerateCorruptedTailRecords: a torn last record (never acknowledged) is dropped, damage
 * anywhere else stops the open with QV_ECORRUPT, naming the log file, the byte offset and the intact batches after
 * it (storage/rocks_log.h); qv_store_opts_t.salvage opts into recovering up to the damage. */
#ifndef QV_STORE_H
#define QV_STORE_H

#include <pthread.h>

#include "common/buf.h"
#include "index/hnsw.h"
#include "storage/idmap.h"
#include "storage/record.h"
#include "storage/rocks_log.h"
#include "storage/segment.h"

typedef struct qv_store qv_store_t;

/* Where the store reports background events (index builds); level 1 = info, 2 = warning. */
typedef void (*qv_store_log_fn)(int level, const char *event, const char *fields);

/* Another builder for segment graphs (the GPU plugin: server/gpu.h). It gets a sealed segment's vectors (n rows of
 * dim floats) and the collection's index parameters and appends an HNSW blob (index/hnsw/io.c's format) to blob.
 * The indexer loads that blob with qv_hnsw_decode, as untrusted input, persists it as it would its own, and builds on
 * the CPU instead whenever the builder or the decode fails. Called from the worker's build lane only. */
typedef int (*qv_store_graph_fn)(void *ctx, const qv_hnsw_params_t *p, const float *x, size_t n, uint32_t dim,
                                 qv_wbuf_t *blob, qv_err_t *err);

typedef struct {
    const char *path;        /* data directory (RocksDB lives in path/db) */
    uint32_t seal_rows;      /* seal the growing segment at this many rows (0: default 100000) */
    uint64_t seal_wal_bytes; /* ... or once its WAL records reach this size (0: default 256 MiB) */
    int index_threads;       /* background index build threads (0: 1) */
    double compact_deleted_ratio;  /* auto-compact a segment once this fraction of its rows is deleted (0: off) */
    uint32_t compact_small_segments; /* auto-compact once this many sealed segments are small (0: off) */
    uint32_t index_min_rows; /* sealed segments with fewer rows are not indexed (exact scans are cheap) */
    qv_store_log_fn log;     /* may be NULL */
    qv_store_graph_fn graph_build; /* NULL: every graph is built on the CPU */
    void *graph_ctx;
    const char *graph_builder;     /* its name in logs, e.g. "gpu" */
    /* Open even when RocksDB's log is damaged before its tail: recover what precedes the damage, keep a copy of the
     * logs in path/salvage-<time>/ and report the loss (qv_store_salvage_report). Without it such a store refuses to
     * open with QV_ECORRUPT naming the file. */
    bool salvage;
    uint64_t backup_rate;    /* bytes/s qv_store_backup may write (0: as fast as it can); lowers its effect on writes */
    /* Upserts are refused (QV_ETOOBIG, nothing written) while the data directory's file system has less free space
     * than this, so that a disk filling up gives a clear error before RocksDB meets ENOSPC, and seals, index builds,
     * compactions and deletes keep room to run. 0: no check. */
    uint64_t min_free_bytes;
} qv_store_opts_t;

typedef struct qv_coll {
    qv_schema_t *schema;          /* immutable */
    atomic_int refs;              /* store's reference + one per qv_store_get() */
    pthread_rwlock_t lock;        /* guards every field below */
    qv_segment_t **sealed;        /* sealed segments, ascending id; each holds a reference */
    size_t nsealed, cap_sealed;
    qv_segment_t *growing;        /* the append target; holds a reference */
    qv_idmap_t ids;               /* live id -> location */
    uint64_t fwd_slots;           /* slots of ids that still name a compacted input (storage/compact.c) */
    uint64_t live;                /* live rows (= ids.n) */
    uint64_t seal_seq;            /* WAL records with seq <= seal_seq are covered by sealed segments */
    uint64_t last_seq;            /* seq of the last applied WAL record */
    uint64_t next_seg_id;
    uint64_t wal_bytes;           /* bytes of WAL records after seal_seq (frozen segments' and the growing one's) */
    uint64_t wal_growing;         /* bytes of WAL records applied to the growing segment (the seal trigger) */
    atomic_bool dropped;          /* set by DropCollection (in the commit leader) */
    atomic_bool compacting;       /* a compaction job is queued or running for this collection */
} qv_coll_t;

int qv_store_open(const qv_store_opts_t *opts, qv_store_t **out, qv_err_t *err);
/* Closes RocksDB and frees every collection. No call may be running. */
void qv_store_close(qv_store_t *st);

/* True once a storage error has failed the store; reason (may be NULL) gets why. Any thread. */
bool qv_store_failed(qv_store_t *st, char *reason, size_t reason_len);

/* What --salvage gave up at open (all zero when the logs were intact or salvage was not asked for). */
typedef struct {
    bool salvaged;                 /* the logs were damaged and the store opened anyway */
    qv_rocks_log_report_t damage;  /* where, and the intact write batches after it that are lost */
    char kept[512];                /* where the original logs were copied */
} qv_store_salvage_t;
void qv_store_salvage_report(qv_store_t *st, qv_store_salvage_t *out);

/* Creates a collection from a validated schema (qv_schema_validate); the store takes ownership of s on success.
 * QV_EEXIST if the name is taken. */
int qv_store_create(qv_store_t *st, qv_schema_t *s, qv_err_t *err);
int qv_store_drop(qv_store_t *st, const char *name, size_t len, qv_err_t *err);

/* Finds a collection and returns a reference to it (release with qv_coll_release); QV_ENOTFOUND otherwise. */
int qv_store_get(qv_store_t *st, const char *name, size_t len, qv_coll_t **out, qv_err_t *err);
void qv_coll_release(qv_coll_t *c);

/* References to every collection, in name order; free the array with qv_store_list_free. */
int qv_store_list(qv_store_t *st, qv_coll_t ***out, size_t *n);
void qv_store_list_free(qv_coll_t **list, size_t n);

/* Validates, logs durably and applies an upsert of n points. pts are modified (COSINE normalisation). */
int qv_store_upsert(qv_store_t *st, qv_coll_t *c, qv_point_t *pts, uint32_t n, uint64_t *seq, qv_err_t *err);
/* Deletes ids; *deleted = ids that were live. */
int qv_store_delete(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, uint32_t *deleted,
                    qv_err_t *err);

/* ---- writes resolved against the current rows (storage/rewrite.c) ----
 * The caller names candidate points (ids, e.g. those a filter matched in a read view); the commit leader, when it
 * reaches the write, keeps the candidates that are live and, with a `match` function, still match (the caller's
 * filter, evaluated on the row as it is now), and writes one WAL record for all of them: a delete, or an upsert of
 * the rewritten points. So the write is atomic and ordered with every other, and a point changed between the
 * caller's look and the write is judged by what it has become. At most QV_REWRITE_MAX candidates. */
#define QV_REWRITE_MAX QV_DELETE_RECORD_MAX
typedef bool (*qv_row_match_fn)(void *ctx, const qv_segment_t *seg, uint32_t row);

/* A change of attributes: set (declared fields by index, in `set`; undeclared keys of a dynamic collection in
 * `set_dyn`) and unset (names, declared or not). The values are checked against the schema by
 * qv_store_check_change first. */
typedef struct qv_dynattr qv_dynattr_t;
typedef struct {
    qv_attr_t *set;
    uint32_t nset;
    qv_dynattr_t *set_dyn;
    uint32_t nset_dyn;
    const qv_str_t *unset;
    uint32_t nunset;
} qv_attr_change_t;

/* QV_EINVAL naming the attribute for a value of the wrong type for its field, an undeclared key in a collection
 * without dynamic attributes, a name both set and unset, nothing to change. Converts INT64 to DOUBLE for DOUBLE
 * fields, as upserts do. */
int qv_store_check_change(const qv_schema_t *s, qv_attr_change_t *ch, qv_err_t *err);

/* Deletes the live candidates (that match, when match is given); *deleted counts them, *seq is the record's (0 when
 * none was written). */
int qv_store_delete_where(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_row_match_fn match,
                          void *match_ctx, uint32_t *deleted, uint64_t *seq, qv_err_t *err);
/* Applies ch to the live candidates (that match, when match is given), keeping their vectors and text: one upsert
 * record of the rewritten points. *updated counts them. At most QV_BATCH_MAX candidates (each rewritten point
 * carries its vector into the WAL). */
int qv_store_update(qv_store_t *st, qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_row_match_fn match,
                    void *match_ctx, const qv_attr_change_t *ch, uint32_t *updated, uint64_t *seq, qv_err_t *err);
/* ---- log-driven apply: the store as a state machine fed by an external ordered log (a replication group) ----
 * The write records (record.h) of an external log are made by qv_store_encode_*, which validate as qv_store_upsert
 * and qv_store_delete do; qv_store_apply then applies entry `index` of log `group` exactly once: an entry at or
 * below the group's applied index is skipped (*applied false, nothing written), any other is logged and applied
 * like an upsert or delete, with the group's new applied index in the same RocksDB batch as its WAL record (catalog.h
 * meta "a"), so a crash can never leave an entry applied without its index or the reverse. Entries need not be
 * contiguous (a log's configuration entries apply nothing here). The record is untrusted: decoded and checked
 * against c's schema first. The standalone path and apply share the commit leader's one write path (commit.c). */
int qv_store_encode_upsert(qv_coll_t *c, qv_point_t *pts, uint32_t n, qv_wbuf_t *out, qv_err_t *err);
int qv_store_encode_delete(qv_coll_t *c, const qv_str_t *ids, uint32_t n, qv_wbuf_t *out, qv_err_t *err);
int qv_store_apply(qv_store_t *st, qv_coll_t *c, uint64_t group, uint64_t index, const void *rec, size_t len,
                   bool *applied, uint32_t *count, qv_err_t *err);
/* The last index of log group that qv_store_apply applied (0: none). Any thread. */
uint64_t qv_store_applied(qv_store_t *st, uint64_t group);

/* Seals the growing segment of c (every collection when c is NULL) now; *sealed = segments sealed. */
int qv_store_flush(qv_store_t *st, qv_coll_t *c, uint32_t *sealed, qv_err_t *err);

/* Read access: hold the read lock while touching segments or the id map. */
static inline void qv_coll_rdlock(qv_coll_t *c) { pthread_rwlock_rdlock(&c->lock); }
static inline void qv_coll_unlock(qv_coll_t *c) { pthread_rwlock_unlock(&c->lock); }

/* How long the commit leader ran each kind of operation since the store opened (a group of data writes counts
 * once, as its first writer's kind): the longest is the longest any queued write waited behind it. */
typedef struct {
    const char *name; /* "upsert", "delete", "apply", "create", "drop", "flush", "index", "segment_id", "compact",
                       * "persist" */
    uint64_t runs;
    int64_t total_ns, max_ns;
} qv_commit_stat_t;
/* Fills up to max entries; returns how many. Any thread. */
size_t qv_store_commit_stats(qv_store_t *st, qv_commit_stat_t *out, size_t max);

/* Sum of wal_bytes over collections. */
uint64_t qv_store_wal_bytes(qv_store_t *st);

/* ---- compaction (storage/compact.c) ----
 * A job merges sealed segments (small ones, and ones with deleted rows) into one new segment holding only their
 * live rows, then swaps it in with one atomic batch (new blob, id-map entries, manifest, old blobs deleted), so a
 * crash leaves either the old segments or the new one. The copy runs on the background thread while reads and
 * writes go on; deletes that land on the inputs meanwhile are carried over at the swap, which runs in the commit
 * leader. The new segment then gets its index built like any sealed segment. */
enum { QV_CJ_QUEUED = 1, QV_CJ_RUNNING, QV_CJ_DONE, QV_CJ_FAILED, QV_CJ_ABANDONED };

typedef struct {
    uint64_t id;
    char collection[QV_NAME_MAX + 1];
    int state;          /* QV_CJ_* */
    uint64_t inputs[64];
    uint32_t ninputs;
    uint64_t output;
    uint64_t rows_in, rows_out;
    double progress;
    bool automatic;
    char error[QV_ERR_MSG_MAX];
    int64_t started_ms, finished_ms; /* unix time */
    char waiting_for[160]; /* QUEUED: what runs ahead of it (the worker's build lane), in words */
} qv_compaction_info_t;

#define QV_COMPACT_MAX_INPUTS 64

/* Chooses segments of c to merge into outputs of at most target_rows live rows (0: 4 x seal_rows) and queues the
 * job. *job_id = 0 when nothing qualifies. QV_EEXIST if c already has a job queued or running. */
int qv_store_compact(qv_store_t *st, qv_coll_t *c, uint64_t target_rows, bool automatic, uint64_t *job_id,
                     uint32_t *ninputs, qv_err_t *err);
/* Running and recent jobs, newest first; free() the array. */
int qv_store_compactions(qv_store_t *st, qv_compaction_info_t **out, size_t *n);

/* Index state of a segment (QV_IDX_*), build progress 0..1 and index bytes; the caller holds the read lock. */
void qv_store_seg_index_info(qv_store_t *st, qv_segment_t *seg, int *state, double *progress, uint64_t *bytes);

#endif
