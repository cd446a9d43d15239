/* Sequential file reader for `quiver load`: io_uring with a ring of large read-ahead buffers, pread as a fallback.
 *
 * The file is read from a start offset to the size it had when opened (a file that grows while loading is read up to
 * that size; one that shrinks ends early). Chunks are returned strictly in file order. */
#ifndef QV_READER_H
#define QV_READER_H

#include <stddef.h>
#include <stdint.h>

#define QV_READER_DEPTH 8            /* reads in flight (io_uring queue depth) */
#define QV_READER_CHUNK (1u << 20)   /* bytes per read */

typedef struct qv_reader qv_reader_t;

/* Opens path for reading from byte `start`. io_uring is used unless io_uring_queue_init fails (-EPERM in many
 * containers, -ENOSYS on old kernels) or QUIVER_NO_IO_URING=1 is set; then the reader falls back to pread and writes
 * one line saying so to stderr. Returns 0, or a negative errno with msg set. */
int qv_reader_open(const char *path, uint64_t start, qv_reader_t **out, char *msg, size_t msglen);
/* The next chunk: returns 1 with *data and *len set (valid until the next call), 0 at the end, or a negative errno.
 * Chunks are at most QV_READER_CHUNK bytes. */
int qv_reader_next(qv_reader_t *r, const uint8_t **data, size_t *len);
/* File size at open. */
uint64_t qv_reader_size(const qv_reader_t *r);
/* "io_uring" or "pread". */
const char *qv_reader_engine(const qv_reader_t *r);
void qv_reader_close(qv_reader_t *r);

#endif
