/* Backups of a store, creation (storage/backup.h): RocksDB's C API on the store's rocksdb_t. The read side is in
 * backup_read.c and backup_engine.cc, a library of its own that `quiver restore` links without the store. */
#define _GNU_SOURCE
#include "storage/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store_int.h"

#define LOCK_NAME "quiver-backup.lock" /* backup.h: the directory's one appender */

/* ---- creation ---- */

int qv_store_backup(qv_store_t *st, const char *dir, qv_backup_info_t *out, uint64_t *copied, qv_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (pthread_mutex_trylock(&st->backup_mu) != 0)
        return qv_err_set(err, QV_EPRECOND, "a backup of this server is already running; retry when it has finished");
    int rc = QV_OK, lockfd = -1;
    rocksdb_backup_engine_t *be = NULL;
    rocksdb_env_t *env = NULL;
    char *e = NULL;
    if (atomic_load(&st->failed)) {
        char why[200];
        qv_store_failed(st, why, sizeof why);
        rc = qv_err_set(err, QV_EUNAVAIL, "no backup of a failed store (%s)", why);
        goto out;
    }
    if ((rc = qv__backup_mkdirs(dir, err)))
        goto out;
    /* another process (a second server given the same directory) must not append at the same time */
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/" LOCK_NAME, dir);
    lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lockfd < 0) {
        rc = qv_err_set(err, QV_EIO, "cannot open %s: %s", lock, strerror(errno));
        goto out;
    }
    if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = qv_err_set(err, QV_EPRECOND, "backup directory %s is in use by another process", dir);
        goto out;
    }
    uint64_t before = qv__backup_du(dir);
    rocksdb_backup_engine_options_t *bo = rocksdb_backup_engine_options_create(dir);
    rocksdb_backup_engine_options_set_max_background_operations(bo, qv__backup_threads());
    if (st->opts.backup_rate)
        rocksdb_backup_engine_options_set_backup_rate_limit(bo, st->opts.backup_rate);
    env = rocksdb_create_default_env();
    be = rocksdb_backup_engine_open_opts(bo, env, &e);
    rocksdb_backup_engine_options_destroy(bo);
    if (e) {
        rc = qv_err_set(err, QV_EIO, "cannot open the backup directory %s: %s", dir, e);
        goto out;
    }
    /* flush first (backup.h): the memtables become SST files, which later backups share */
    rocksdb_backup_engine_create_new_backup_flush(be, st->db, 1, &e);
    if (e) {
        rc = qv_err_set(err, QV_EIO, "backup into %s failed: %s", dir, e);
        goto out;
    }
    const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
    int n = rocksdb_backup_engine_info_count(info);
    if (n > 0) {
        out->id = rocksdb_backup_engine_info_backup_id(info, n - 1);
        out->created_unix = rocksdb_backup_engine_info_timestamp(info, n - 1);
        out->size_bytes = rocksdb_backup_engine_info_size(info, n - 1);
        out->files = rocksdb_backup_engine_info_number_files(info, n - 1);
    }
    rocksdb_backup_engine_info_destroy(info);
    if (n <= 0)
        rc = qv_err_set(err, QV_EIO, "backup into %s reported success but is not listed", dir);
    else if (copied)
        *copied = qv__backup_du(dir) - before;
    if (rc == QV_OK)
        qv__store_log(st, "backup.created", "dir=%s id=%u files=%u size=%llu", dir, out->id, out->files,
                      (unsigned long long)out->size_bytes);
out:
    if (e)
        rocksdb_free(e);
    if (be)
        rocksdb_backup_engine_close(be);
    if (env)
        rocksdb_env_destroy(env); /* after the engine, which uses it */
    if (lockfd >= 0)
        close(lockfd); /* releases the flock */
    pthread_mutex_unlock(&st->backup_mu);
    return rc;
}


/* ---- checkpoints ---- */

int qv_store_checkpoint(qv_store_t *st, const char *dir, qv_err_t *err)
{
    if (atomic_load(&st->failed))
        return qv_err_set(err, QV_EUNAVAIL, "no checkpoint of a failed store");
    if (mkdir(dir, 0755) != 0)
        return qv_err_set(err, errno == EEXIST ? QV_EEXIST : QV_EIO, "cannot create %s: %s", dir, strerror(errno));
    char db[4200];
    snprintf(db, sizeof db, "%s/db", dir);
    char *e = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(st->db, &e);
    if (!e)
        rocksdb_checkpoint_create(cp, db, 0 /* log_size_for_flush: always flush first */, &e);
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    if (e) {
        int rc = qv_err_set(err, QV_EIO, "checkpoint into %s failed: %s", db, e);
        rocksdb_free(e);
        rmdir(dir); /* RocksDB builds db in a temporary directory and removes it on failure */
        return rc;
    }
    return QV_OK;
}
