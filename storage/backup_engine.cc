// The read side of backups on RocksDB's C++ BackupEngineReadOnly (storage/backup.h): listing, checksum verification
// and restore. The C API (rocksdb/c.h) has none of the three in the form needed: its verify checks only that files
// exist with the recorded sizes, and its engine is the read-write one, which must not be opened on a directory a
// server is writing a backup into while `quiver restore` reads it (RocksDB's own concurrency table, in
// utilities/backup_engine.h: a read-only engine's Open and reads are safe beside another engine's append).
// Creation stays on the C API (storage/backup.c), which owns the rocksdb_t. No exception leaves this file.
#include <rocksdb/env.h>
#include <rocksdb/utilities/backup_engine.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "storage/backup.h"
}

using ROCKSDB_NAMESPACE::BackupEngineOptions;
using ROCKSDB_NAMESPACE::BackupEngineReadOnly;
using ROCKSDB_NAMESPACE::BackupInfo;
using ROCKSDB_NAMESPACE::Env;
using ROCKSDB_NAMESPACE::IOStatus;
using ROCKSDB_NAMESPACE::RestoreOptions;

namespace {

char *dup(const std::string &s)
{
    char *m = strdup(s.c_str());
    return m ? m : strdup("out of memory");
}

IOStatus open_ro(const char *dir, std::unique_ptr<BackupEngineReadOnly> &out)
{
    BackupEngineOptions o(dir);
    o.max_background_operations = qv__backup_threads();
    BackupEngineReadOnly *be = nullptr;
    IOStatus s = BackupEngineReadOnly::Open(o, Env::Default(), &be);
    out.reset(be);
    return s;
}

// The backup's description, or *notfound. A backup whose files are missing or have other sizes than recorded is
// listed by RocksDB as corrupted rather than found: that is reported as such, not as missing.
int find(BackupEngineReadOnly *be, uint32_t id, BackupInfo *info, bool *notfound, char **msg)
{
    ROCKSDB_NAMESPACE::Status s = be->GetBackupInfo(id, info);
    if (s.ok())
        return 0;
    std::vector<uint32_t> bad;
    be->GetCorruptedBackups(&bad);
    for (uint32_t b : bad)
        if (b == id) {
            *msg = dup("backup " + std::to_string(id) + " is damaged: a file it lists is missing or has another size "
                       "than recorded (" + s.ToString() + ")");
            return -1;
        }
    *notfound = true;
    *msg = dup("no backup " + std::to_string(id));
    return -1;
}

}  // namespace

extern "C" int qv__backup_engine_list(const char *dir, qv_backup_info_t **out, size_t *n, char **msg)
{
    *out = nullptr;
    *n = 0;
    try {
        std::unique_ptr<BackupEngineReadOnly> be;
        IOStatus s = open_ro(dir, be);
        if (!s.ok()) {
            *msg = dup(s.ToString());
            return -1;
        }
        std::vector<BackupInfo> infos;
        be->GetBackupInfo(&infos);  // oldest first; corrupted and incomplete backups are not listed
        *out = static_cast<qv_backup_info_t *>(calloc(infos.size() ? infos.size() : 1, sizeof **out));
        if (!*out) {
            *msg = dup("out of memory");
            return -1;
        }
        for (const BackupInfo &i : infos)
            (*out)[(*n)++] = qv_backup_info_t{i.backup_id, i.timestamp, i.size, i.number_files};
        return 0;
    } catch (const std::exception &e) {
        free(*out);
        *out = nullptr;
        *n = 0;
        *msg = dup(e.what());
        return -1;
    }
}

extern "C" int qv__backup_engine_verify(const char *dir, uint32_t id, uint64_t *size, uint32_t *files, bool *notfound,
                                        char **msg)
{
    *notfound = false;
    try {
        std::unique_ptr<BackupEngineReadOnly> be;
        IOStatus s = open_ro(dir, be);
        if (!s.ok()) {
            *msg = dup(s.ToString());
            return -1;
        }
        BackupInfo info;
        if (find(be.get(), id, &info, notfound, msg))
            return -1;
        *size = info.size;
        *files = info.number_files;
        s = be->VerifyBackup(id, true /* read every byte against the crc32c in the backup's meta file */);
        if (!s.ok()) {
            *msg = dup(s.ToString());
            return -1;
        }
        return 0;
    } catch (const std::exception &e) {
        *msg = dup(e.what());
        return -1;
    }
}

extern "C" int qv__backup_engine_restore(const char *dir, uint32_t id, const char *db_dir, uint32_t *restored,
                                         uint64_t *size, bool *notfound, char **msg)
{
    *notfound = false;
    try {
        std::unique_ptr<BackupEngineReadOnly> be;
        IOStatus s = open_ro(dir, be);
        if (!s.ok()) {
            *msg = dup(s.ToString());
            return -1;
        }
        if (id == 0) {  // the latest
            std::vector<BackupInfo> infos;
            be->GetBackupInfo(&infos);
            if (infos.empty()) {
                *notfound = true;
                *msg = dup(std::string("no complete backup in ") + dir);
                return -1;
            }
            id = infos.back().backup_id;
        }
        BackupInfo info;
        if (find(be.get(), id, &info, notfound, msg))
            return -1;
        *restored = id;
        *size = info.size;
        // RocksDB computes each file's crc32c while copying it and fails on the first mismatch, naming the file
        s = be->RestoreDBFromBackup(RestoreOptions(), id, db_dir, db_dir);
        if (!s.ok()) {
            *msg = dup(s.ToString());
            return -1;
        }
        return 0;
    } catch (const std::exception &e) {
        *msg = dup(e.what());
        return -1;
    }
}
