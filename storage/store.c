/* The shard store: open and close (RocksDB options, column families, recovery, the background threads), the
 * failed state, and the event log. The design is described in store.h; where each part lives:
 *   catalog.c      the RocksDB layout: column families, keys, the manifest codec (specified in catalog.h)
 *   commit.c       the writer queue, the commit leader and group commit; the public write API
 *   collections.c  the collection table, applying WAL records to a collection, create and drop
 *   seal.c         freeze and persist of growing segments, Flush
 *   store_recover.c  start-up: rebuilding every collection from RocksDB
 *   worker.c                  the background worker: seals, compactions and index builds as typed jobs
 *   compact.c, indexer.c, backup.c  compaction, index builds, backups
 *
 * Locks, outermost first: the writer queue mutex is never held while doing I/O; colls_mu guards the collection
 * table only; a collection's rwlock guards its segments and id map. The commit leader takes a collection's write
 * lock only to apply already-durable writes and to swap segments at a seal, so readers wait at most that long. */
#include "storage/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fault.h"
#include "storage/commit.h"
#include "storage/worker.h"

#define DEFAULT_SEAL_ROWS 100000
#define DEFAULT_SEAL_WAL_BYTES (256ull << 20)

/* ---- events and time ---- */

int64_t qv__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void qv__store_log(qv_store_t *st, const char *event, const char *fields, ...)
{
    if (!st->opts.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fields);
    vsnprintf(buf, sizeof buf, fields, ap);
    va_end(ap);
    st->opts.log(strstr(event, "failed") ? 2 : 1, event, buf);
}

/* ---- the failed state ---- */

void qv__store_fail(qv_store_t *st, const char *fmt, ...)
{
    if (atomic_flag_test_and_set(&st->fail_claimed))
        return; /* the first failure is the cause; later ones are its consequences */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->fail_reason, sizeof st->fail_reason, fmt, ap);
    va_end(ap);
    atomic_store(&st->failed, true); /* seq_cst: publishes fail_reason to whoever sees the flag */
    qv__store_log(st, "store.failed", "reason=\"%s\" (writes are refused until a restart)", st->fail_reason);
}

bool qv_store_failed(qv_store_t *st, char *reason, size_t reason_len)
{
    if (!atomic_load(&st->failed))
        return false;
    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", st->fail_reason);
    return true;
}

void qv_store_salvage_report(qv_store_t *st, qv_store_salvage_t *out) { *out = st->salvage; }

/* A synced write of b for `what` (a fault point's last part, common/fault.h: "commit", "seal_persist", ...); a
 * failure fails the store (the outcome of the batch is unknown). */
int qv__rocks_write(qv_store_t *st, rocksdb_writebatch_t *b, const char *what, qv_err_t *err)
{
    char *e = NULL, point[64];
    snprintf(point, sizeof point, "quiver/storage/%s", what);
    if (qv_fault(point))
        e = strdup("IO error: injected fault");
    else
        rocksdb_write(st->db, st->wsync, b, &e);
    if (e) {
        qv__store_fail(st, "storage write failed (%s): %s", what, e);
        qv_err_set(err, QV_EIO, "storage write failed (%s): %s", what, e);
        free(e); /* rocksdb_free is free() */
        return QV_EIO;
    }
    return QV_OK;
}

/* ---- open / close ---- */

/* Names the damage RocksDB refused to open over, from our own reading of its logs. */
static void corruption_message(qv_store_t *st, const char *rocks_msg, qv_err_t *err)
{
    qv_rocks_log_report_t rep;
    qv_err_t serr;
    if (qv_rocks_log_scan_dir(st->path, &rep, &serr) == QV_OK && rep.file[0])
        qv_err_set(err, QV_ECORRUPT,
                   "DATA_LOSS: RocksDB log %s/%s is damaged at byte %llu with %llu intact write batches (%llu "
                   "operations) after it (%s); the store did not open. Restore from a copy, or start with --salvage "
                   "to recover everything before the damage and lose those batches",
                   st->path, rep.file, (unsigned long long)rep.offset, (unsigned long long)rep.batches_after,
                   (unsigned long long)rep.ops_after, rocks_msg);
    else
        qv_err_set(err, QV_ECORRUPT, "DATA_LOSS: the store at %s is damaged (%s); the store did not open. Restore "
                   "from a copy, or start with --salvage to recover what RocksDB can", st->path, rocks_msg);
}

/* --salvage: reads the logs; if they are damaged, keeps a copy of them and opens in point-in-time mode (recover up
 * to the damage). */
static int prepare_salvage(qv_store_t *st, qv_err_t *err)
{
    qv_store_salvage_t *sv = &st->salvage;
    struct stat sb;
    if (stat(st->path, &sb) != 0)
        return QV_OK; /* a new store */
    int rc = qv_rocks_log_scan_dir(st->path, &sv->damage, err);
    if (rc || !sv->damage.file[0])
        return rc;
    sv->salvaged = true;
    snprintf(sv->kept, sizeof sv->kept, "%s/salvage-%lld", st->opts.path, (long long)time(NULL));
    if ((rc = qv_rocks_log_keep(st->path, sv->kept, err)) != QV_OK)
        return rc;
    rocksdb_options_set_wal_recovery_mode(st->dbopts, 2 /* kPointInTimeRecovery */);
    return QV_OK;
}

int qv_store_open(const qv_store_opts_t *opts, qv_store_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    st->opts = *opts;
    if (!st->opts.seal_rows)
        st->opts.seal_rows = DEFAULT_SEAL_ROWS;
    if (!st->opts.seal_wal_bytes)
        st->opts.seal_wal_bytes = DEFAULT_SEAL_WAL_BYTES;
    pthread_mutex_init(&st->colls_mu, NULL);
    pthread_mutex_init(&st->q_mu, NULL);
    pthread_mutex_init(&st->jobs_mu, NULL);
    pthread_mutex_init(&st->backup_mu, NULL);
    pthread_mutex_init(&st->applied_mu, NULL);
    st->next_coll_id = 1;
    st->next_job_id = 1;

    size_t plen = strlen(opts->path);
    st->path = malloc(plen + 4);
    if (!st->path) {
        free(st);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    memcpy(st->path, opts->path, plen);
    memcpy(st->path + plen, "/db", 4);
    mkdir(opts->path, 0755);

    st->dbopts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->dbopts, 1);
    rocksdb_options_set_create_missing_column_families(st->dbopts, 1);
    rocksdb_options_increase_parallelism(st->dbopts, 2);
    /* RocksDB keeps its log files until every column family with data in them has flushed, and replays them after
     * a crash. By default that may be ~4x the column families' write buffers (hundreds of MB holding segment and
     * index blobs); 6.2 s of a 1M x 128 store's open after kill -9 went to that replay (bench/restart). A bound on
     * the total makes RocksDB flush the oldest column family instead, so recovery replays at most this much. */
    rocksdb_options_set_max_total_wal_size(st->dbopts, (uint64_t)128 << 20);
    /* A torn last record was never acknowledged and is dropped; damage anywhere else in the log would silently drop
     * every acknowledged write after it under RocksDB's default (point-in-time) mode, so it stops the open instead
     * unless the operator asked to salvage. */
    rocksdb_options_set_wal_recovery_mode(st->dbopts, 0 /* kTolerateCorruptedTailRecords */);
    int rc = QV_OK;
    if (opts->salvage)
        rc = prepare_salvage(st, err);
    const rocksdb_options_t *cfopts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cfopts[i] = st->dbopts;
    char *e = NULL;
    if (rc == QV_OK)
        st->db = rocksdb_open_column_families(st->dbopts, st->path, CF_COUNT, qv_cat_cf_names, cfopts,
                                             st->cat.cf, &e);
    if (e || rc) {
        if (e && strstr(e, "Corruption"))
            corruption_message(st, e, err);
        else if (e)
            qv_err_set(err, QV_EIO, "cannot open the store at %s: %s", st->path, e);
        rc = rc ? rc : strstr(e, "Corruption") ? QV_ECORRUPT : QV_EIO;
        rocksdb_free(e);
        rocksdb_options_destroy(st->dbopts);
        free(st->path);
        free(st);
        return rc;
    }
    st->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wsync, 1);
    st->ropts = rocksdb_readoptions_create();
    st->worker = qv__worker_create(st, st->opts.index_threads > 0 ? st->opts.index_threads : 1);
    if (!st->worker) {
        qv_store_close(st);
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    rc = qv__store_recover(st, err);
    if (rc == QV_OK && qv__worker_start(st->worker) != QV_OK)
        rc = qv_err_set(err, QV_ENOMEM, "cannot start the background worker's threads");
    if (rc) {
        qv_store_close(st);
        return rc;
    }
    *out = st;
    return QV_OK;
}

void qv_store_close(qv_store_t *st)
{
    if (!st)
        return;
    qv__worker_stop_seals(st->worker); /* first: a seal in flight may still write through the store */
    /* Persist what is frozen but not yet written, so the next start replays only the growing segments' WAL. */
    for (size_t i = 0; st->db && !atomic_load(&st->failed) && i < st->ncolls; i++) {
        qv_coll_t *c = st->colls[i];
        bool pending = false;
        qv_coll_rdlock(c); /* a compaction finishing on the worker's build lane may swap the list */
        for (size_t k = 0; k < c->nsealed; k++)
            pending = pending || !c->sealed[k]->persisted;
        qv_coll_unlock(c);
        if (pending) {
            qv_err_t err;
            qv_writer_t w = {.op = W_PERSIST, .coll = c, .err = &err};
            if (qv__commit(st, &w) != QV_OK)
                qv__store_log(st, "close.persist_failed", "collection=%s msg=\"%s\"", c->schema->name, err.msg);
        }
    }
    qv__worker_destroy(st->worker);
    qv__compactions_free(st);
    for (size_t i = 0; i < st->ncolls; i++)
        qv_coll_release(st->colls[i]);
    free(st->colls);
    for (int i = 0; i < CF_COUNT; i++)
        if (st->cat.cf[i])
            rocksdb_column_family_handle_destroy(st->cat.cf[i]);
    if (st->db)
        rocksdb_close(st->db);
    rocksdb_writeoptions_destroy(st->wsync);
    rocksdb_readoptions_destroy(st->ropts);
    rocksdb_options_destroy(st->dbopts);
    pthread_mutex_destroy(&st->colls_mu);
    pthread_mutex_destroy(&st->q_mu);
    pthread_mutex_destroy(&st->jobs_mu);
    pthread_mutex_destroy(&st->backup_mu);
    pthread_mutex_destroy(&st->applied_mu);
    free(st->applied);
    free(st->path);
    free(st);
}
