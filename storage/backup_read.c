/* Backups, the read side (storage/backup.h): listing, verification and restore, and the file-system helpers that
 * creation (backup.c) shares. Needs no store: `quiver restore` links it with backup_engine.cc alone. */
#define _GNU_SOURCE
#include "storage/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"

int qv__backup_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

/* ---- file-system helpers ---- */

static __thread uint64_t du_total; /* nftw takes no context pointer */

static int du_add(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (type == FTW_F)
        du_total += (uint64_t)sb->st_size;
    return 0;
}

uint64_t qv__backup_du(const char *path)
{
    du_total = 0;
    nftw(path, du_add, 16, FTW_PHYS);
    return du_total;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

int qv__backup_mkdirs(const char *path, qv_err_t *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return qv_err_set(err, QV_EINVAL, "backup directory path is empty or too long");
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return qv_err_set(err, QV_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return QV_OK;
}

/* RocksDB's messages name files by their full path; the part after dir is what says which file, and keeps the
 * message inside QV_ERR_MSG_MAX. */
int qv__backup_engine_error(qv_err_t *err, int code, const char *what, const char *dir, char *msg)
{
    char out[QV_ERR_MSG_MAX];
    size_t dl = strlen(dir), o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (dl && strncmp(p, dir, dl) == 0) {
            p += dl;
            if (*p == '/')
                p++;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    free(msg);
    return qv_err_set(err, code, "%s: %s", what, out);
}

/* ---- the read side ---- */

int qv_backup_list(const char *dir, qv_backup_info_t **out, size_t *n, qv_err_t *err)
{
    *out = NULL;
    *n = 0;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            return qv_err_set(err, QV_EIO, "cannot read %s: %s", dir, strerror(errno));
        *out = calloc(1, sizeof **out);
        return *out ? QV_OK : qv_err_set(err, QV_ENOMEM, "out of memory");
    }
    char *msg = NULL;
    if (qv__backup_engine_list(dir, out, n, &msg))
        return qv__backup_engine_error(err, QV_EIO, "cannot list the backups", dir, msg);
    return QV_OK;
}

/* QV_ENOTFOUND unless dir is a backup directory (it has meta/; RocksDB's own error for that is "NotFound: meta is
 * missing", which would read as damage). */
static int backup_dir(const char *dir, uint32_t id, qv_err_t *err)
{
    char meta[4200], which[32] = "";
    struct stat sb;
    snprintf(meta, sizeof meta, "%s/meta", dir);
    if (id)
        snprintf(which, sizeof which, "no backup %u: ", id);
    if (stat(meta, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qv_err_set(err, QV_ENOTFOUND, "%s%s holds no backup (no meta/ directory: is it a server's backup "
                          "directory, as `quiver backup list` shows it?)", which, dir);
    return QV_OK;
}

int qv_backup_verify(const char *dir, uint32_t id, uint64_t *bytes, uint32_t *files, qv_err_t *err)
{
    *bytes = 0;
    *files = 0;
    int rc = backup_dir(dir, id, err);
    if (rc)
        return rc;
    char *msg = NULL;
    bool notfound = false;
    if (qv__backup_engine_verify(dir, id, bytes, files, &notfound, &msg))
        return qv__backup_engine_error(err, notfound ? QV_ENOTFOUND : QV_ECORRUPT, "backup verification failed", dir,
                                       msg);
    return QV_OK;
}

typedef struct {
    const char *path;
    uint64_t total;
    qv_backup_progress_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} progress_t;

static void *progress_main(void *arg)
{
    progress_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->done) {
        struct timespec ts = qv_mono_ts(qv_mono_ns() + 200 * 1000000LL);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (!p->done)
            p->fn(p->ctx, qv__backup_du(p->path), p->total);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int qv_backup_restore(const char *dir, uint32_t id, const char *data, qv_backup_progress_fn progress, void *ctx,
                      uint32_t *restored_id, uint64_t *bytes, qv_err_t *err)
{
    struct stat sb;
    bool created = false;
    int brc = backup_dir(dir, id, err);
    if (brc)
        return brc;
    if (stat(data, &sb) == 0) {
        DIR *d = S_ISDIR(sb.st_mode) ? opendir(data) : NULL;
        if (!d)
            return qv_err_set(err, QV_EEXIST, "%s exists and is not a directory", data);
        struct dirent *de;
        bool empty = true;
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                empty = false;
        closedir(d);
        if (!empty)
            return qv_err_set(err, QV_EEXIST, "%s is not empty: restore writes a new data directory", data);
    } else if (errno == ENOENT) {
        if (mkdir(data, 0755) != 0)
            return qv_err_set(err, QV_EIO, "cannot create %s: %s", data, strerror(errno));
        created = true;
    } else {
        return qv_err_set(err, QV_EIO, "cannot read %s: %s", data, strerror(errno));
    }
    char tmp[4200], tmpdb[4300], db[4200];
    snprintf(tmp, sizeof tmp, "%s/.restore-%ld", data, (long)getpid());
    snprintf(tmpdb, sizeof tmpdb, "%s/db", tmp);
    snprintf(db, sizeof db, "%s/db", data);
    int rc = QV_OK;
    if (mkdir(tmp, 0755) != 0) {
        rc = qv_err_set(err, QV_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    progress_t p = {.path = tmp, .fn = progress, .ctx = ctx};
    pthread_t th;
    bool th_on = false;
    if (progress) {
        qv_backup_info_t *list;
        size_t n;
        if (qv_backup_list(dir, &list, &n, err) == QV_OK) {
            for (size_t i = 0; i < n; i++)
                if (list[i].id == id || (id == 0 && i == n - 1))
                    p.total = list[i].size_bytes;
            free(list);
        }
        pthread_mutex_init(&p.mu, NULL);
        qv_cond_init_mono(&p.cv);
        th_on = pthread_create(&th, NULL, progress_main, &p) == 0;
    }
    char *msg = NULL;
    bool notfound = false;
    uint32_t got = 0;
    uint64_t size = 0;
    if (qv__backup_engine_restore(dir, id, tmpdb, &got, &size, &notfound, &msg)) {
        /* RocksDB 7.8's restore reports a checksum mismatch without the file's name ("While restoring  -> :"):
         * the verification names it */
        char *vmsg = NULL;
        bool vnotfound = false;
        int code = notfound ? QV_ENOTFOUND : QV_EIO; /* EIO: the backup is intact, writing the copy failed */
        uint64_t vsize;
        uint32_t vfiles;
        if (!notfound && got && qv__backup_engine_verify(dir, got, &vsize, &vfiles, &vnotfound, &vmsg) != 0) {
            free(msg);
            msg = vmsg;
            code = QV_ECORRUPT;
        } else {
            free(vmsg);
        }
        rc = qv__backup_engine_error(err, code, "restore failed", dir, msg);
    }
    if (progress) {
        pthread_mutex_lock(&p.mu);
        p.done = true;
        pthread_cond_signal(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (th_on)
            pthread_join(th, NULL);
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
        if (rc == QV_OK)
            progress(ctx, size, size);
    }
    if (rc == QV_OK && rename(tmpdb, db) != 0)
        rc = qv_err_set(err, QV_EIO, "cannot move the restored store into %s: %s", db, strerror(errno));
    if (rc == QV_OK) { /* the rename is durable before the restore says it is done */
        int fd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        if (restored_id)
            *restored_id = got;
        if (bytes)
            *bytes = size;
    }
out:
    rm_rf(tmp);
    if (rc && created)
        rmdir(data);
    return rc;
}
