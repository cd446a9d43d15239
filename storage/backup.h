/* Backups of a store: RocksDB's BackupEngine over the store's one RocksDB instance.
 *
 * What is copied. Everything the store keeps is in RocksDB (catalog.h: schemas, manifests, the WAL column family,
 * segment blobs, delete bitmaps, the id map, index blobs), so a backup of RocksDB is a backup of the whole store,
 * segments and graphs included: a restored store rebuilds nothing. The backup flushes the memtables first
 * (flush_before_backup = 1: a memtable switch; writes go on meanwhile), so that what is new since the last backup
 * is in new SST files, the only ones a later backup copies (without the flush every backup would copy the whole
 * live RocksDB log again, up to max_total_wal_size). RocksDB then stops deleting files, lists the live SST files
 * and the log files still needed with their sizes at one instant, and copies them, the last log only up to that
 * size. Restoring replays those logs, so the restored store is RocksDB's state at that instant: a prefix of the
 * acknowledged writes in the order they were acknowledged (every write is one synced RocksDB batch, acknowledged
 * after it), and every write acknowledged before qv_store_backup was called. What recovery does with that state is
 * what it does after a kill -9 at the same instant (store_recover.c).
 *
 * Directory layout (RocksDB's, specified in its utilities/backup/backup_engine.cc; nothing of ours is added but the
 * lock file):
 *   DIR/meta/<id>            one text file per complete backup: time, sequence, and each file with its crc32c; it
 *                            is written (to a temporary name, then renamed) only after every file is copied and
 *                            synced, so a backup interrupted at any point is never listed, and its partial files
 *                            are removed the next time the directory is opened
 *   DIR/shared_checksum/     SST files shared by every backup that references them, named <number>_<crc32c>_<size>:
 *                            a backup copies only the SST files no earlier backup has (incremental)
 *   DIR/private/<id>/        the backup's own files: MANIFEST, CURRENT, OPTIONS and the live log files
 *   DIR/quiver-backup.lock   held (flock) by whoever opens the directory here, so that a server taking a backup
 *                            and `quiver restore` reading one never open it at the same time (BackupEngine allows
 *                            one writer and removes files it does not know of)
 *
 * Checksums: qv_backup_verify reads every byte of every file of a backup against the crc32c recorded in its meta
 * file; qv_backup_restore does the same while copying, into a temporary directory that becomes DATA/db only when
 * every file matched. Errors name the damaged file. */
#ifndef QV_BACKUP_H
#define QV_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct qv_store qv_store_t;


typedef struct {
    uint32_t id;
    int64_t created_unix; /* seconds */
    uint64_t size_bytes;  /* every file it references, shared ones included */
    uint32_t files;
} qv_backup_info_t;

/* Takes a backup of st into dir (created if missing) and returns its description; *copied (may be NULL) gets the
 * bytes it added to dir. QV_EPRECOND while another backup of st runs, QV_EUNAVAIL if the store has failed, QV_EIO
 * when RocksDB or the file system fails. Any thread; writes and reads go on meanwhile. */
int qv_store_backup(qv_store_t *st, const char *dir, qv_backup_info_t *out, uint64_t *copied, qv_err_t *err);

/* A point-in-time copy of the whole store at dir/db (dir must not exist; its parent must), which qv_store_open of
 * dir opens as it was at that instant: RocksDB's checkpoint of every column family (hard links to the immutable SST
 * files where dir is on the same file system, copies elsewhere; the memtables are flushed first, a memtable switch
 * that does not stop writes), so segments, index blobs and qv_store_apply's applied indexes come along and the copy
 * rebuilds nothing. For replication's snapshots; a backup (qv_store_backup) is the checksummed, incremental kind. */
int qv_store_checkpoint(qv_store_t *st, const char *dir, qv_err_t *err);

/* The complete backups in dir, oldest first (*out: free()). A missing dir has none. */
int qv_backup_list(const char *dir, qv_backup_info_t **out, size_t *n, qv_err_t *err);

/* Reads every file of backup id against its recorded checksum: QV_ENOTFOUND for an id dir does not hold,
 * QV_ECORRUPT naming the file that does not match (or is missing, or has another size). */
int qv_backup_verify(const char *dir, uint32_t id, uint64_t *bytes, uint32_t *files, qv_err_t *err);

/* Progress of a restore: bytes written so far of about total. */
typedef void (*qv_backup_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Writes backup id of dir (0: the latest) as a store in data/db, for `quiverd --data data`. data must be missing or
 * an empty directory (QV_EEXIST otherwise). The files are copied and checked into data/.restore-<pid>/ first and
 * renamed into place only when every checksum matched; on any failure data is left as it was (a directory this call
 * created is removed). progress (may be NULL) is called from another thread about every 200 ms. *restored_id and
 * *bytes (may be NULL) get what was restored. */
int qv_backup_restore(const char *dir, uint32_t id, const char *data, qv_backup_progress_fn progress, void *ctx,
                      uint32_t *restored_id, uint64_t *bytes, qv_err_t *err);

/* ---- internal, shared by backup.c and backup_read.c ---- */
/* Files copied (backup, restore) or checked (verify) at once: the online CPUs, 1..4. RocksDB's default of one left
 * a backup at a third of `cp -r`'s speed (bench/backup); more threads than CPUs only take them from the writers. */
int qv__backup_threads(void);
uint64_t qv__backup_du(const char *path); /* bytes of the regular files under path (0 when it does not exist) */
int qv__backup_mkdirs(const char *path, qv_err_t *err); /* mkdir -p */
/* Sets err to "what: msg" with dir's prefix taken off the paths in msg (RocksDB names files by their full path; the
 * rest says which file and fits QV_ERR_MSG_MAX); frees msg. */
int qv__backup_engine_error(qv_err_t *err, int code, const char *what, const char *dir, char *msg);

/* ---- internal: the read side on RocksDB's C++ BackupEngineReadOnly (storage/backup_engine.cc), which the C API
 * lacks. Each returns 0, or -1 with a malloc'd message in *msg (*notfound set when the id is not a backup of dir). */
int qv__backup_engine_list(const char *dir, qv_backup_info_t **out, size_t *n, char **msg);
/* *size and *files: what the backup's meta file lists */
int qv__backup_engine_verify(const char *dir, uint32_t id, uint64_t *size, uint32_t *files, bool *notfound,
                             char **msg);
/* id 0: the latest; *restored and *size get the backup restored and its size */
int qv__backup_engine_restore(const char *dir, uint32_t id, const char *db_dir, uint32_t *restored, uint64_t *size,
                              bool *notfound, char **msg);

#endif
