/* Reads RocksDB's own write-ahead log files (db/NNNNNN.log) to tell what a recovery would drop.
 *
 * The store opens RocksDB with kTolerateCorruptedTailRecords: a record torn at the very end of a log (a crash in
 * the middle of a write) is dropped, as it was never acknowledged, but a damaged record anywhere else stops the
 * open. This module explains such a stop — which file, at which byte, and how many intact write batches lie after
 * the damage (acknowledged writes that a point-in-time recovery, the --salvage opt-in, would lose) — so start-up can
 * refuse with a precise DATA_LOSS message and --salvage can report what it gave up.
 *
 * The file format is RocksDB's (db/log_format.h, stable since LevelDB): 32 KiB blocks of physical records, each
 * `crc32c (4, masked) | length (2, LE) | type (1)` then `length` payload bytes, or the recyclable form with a
 * 4-byte log number after the type (types 5-8, header 11 bytes). Types: 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST (and
 * +4 recyclable); 0 with length 0 is preallocated/padding space. The checksum covers the type byte, the log number
 * (recyclable) and the payload. A block's last < header bytes are zero padding. A logical record is one
 * WriteBatch: `sequence (8, LE) | count (4, LE) | entries`. Types this reader does not know (e.g. RocksDB's
 * metadata records) are skipped by their length when their checksum holds. */
#ifndef QV_ROCKS_LOG_H
#define QV_ROCKS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct {
    char file[64];          /* base name of the first damaged log, "" when every log is intact */
    uint64_t offset;        /* byte offset of the damage in that file */
    uint64_t batches_after; /* intact write batches after the damage, in that file and every later one */
    uint64_t ops_after;     /* the write operations (WriteBatch counts) of those batches */
    uint64_t last_good_seq; /* sequence number of the last intact batch before the damage */
    uint64_t batches;       /* intact write batches read in all */
} qv_rocks_log_report_t;

/* Scans one log file's bytes. The report accumulates, so call it on the logs in ascending number order. */
void qv_rocks_log_scan(const char *name, const uint8_t *data, size_t len, qv_rocks_log_report_t *rep);

/* Scans every *.log file of a RocksDB directory in ascending order. QV_EIO if the directory or a file cannot be
 * read. */
int qv_rocks_log_scan_dir(const char *dbdir, qv_rocks_log_report_t *rep, qv_err_t *err);

/* Copies every *.log file of dbdir into dest (created), so what a salvage drops can still be examined. */
int qv_rocks_log_keep(const char *dbdir, const char *dest, qv_err_t *err);

#endif
