/* io_uring sequential reader; see reader.h.
 *
 * Chunk k of the file (offset start + k * CHUNK) is read into slot k % DEPTH. At open the first DEPTH reads are
 * submitted; when the consumer asks for chunk k+1, slot k % DEPTH is free again and chunk k + DEPTH is submitted into
 * it before waiting for chunk k+1. So up to DEPTH-1 reads are always in flight ahead of the parser, and the buffers
 * form a ring that needs no copying inside the reader. Completions may arrive in any order: each records its result in
 * its slot (user_data = slot index) and the consumer waits until its slot is done. A short read (legal, if rare, for
 * regular files) is resubmitted for the remainder; a read of 0 bytes means the file shrank and ends the stream there.
 *
 * Rejected: O_DIRECT (needs aligned offsets, and a resume offset is arbitrary; the page cache read-ahead plus DEPTH
 * outstanding 1 MiB reads already saturate a disk for a parser-bound consumer), and registered buffers (a gain only
 * at rates far above what protobuf packing and gRPC sustain). */
#include "tools/quiver/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SLOT_FREE, SLOT_INFLIGHT, SLOT_DONE };

typedef struct {
    uint8_t *buf;
    uint64_t off;  /* file offset of buf[0] */
    size_t want;   /* bytes this chunk should hold */
    size_t got;    /* bytes read so far */
    int state;
    int err;       /* negative errno of a failed read */
} slot_t;

struct qv_reader {
    int fd;
    uint64_t size;
    uint64_t next_issue;    /* offset of the next chunk to submit */
    uint64_t next_deliver;  /* offset of the next chunk to hand out */
    uint64_t issued_chunks, delivered_chunks;
    int held;               /* slot the consumer holds, -1 when none */
    bool uring;
    struct io_uring ring;
    slot_t slots[QV_READER_DEPTH];
    uint8_t *pbuf;          /* pread mode */
};

uint64_t qv_reader_size(const qv_reader_t *r) { return r->size; }
const char *qv_reader_engine(const qv_reader_t *r) { return r->uring ? "io_uring" : "pread"; }

static int submit_read(qv_reader_t *r, int s)
{
    slot_t *sl = &r->slots[s];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe)
        return -EBUSY; /* cannot happen: at most DEPTH reads are outstanding on a ring of DEPTH entries */
    io_uring_prep_read(sqe, r->fd, sl->buf + sl->got, (unsigned)(sl->want - sl->got), sl->off + sl->got);
    io_uring_sqe_set_data64(sqe, (uint64_t)s);
    sl->state = SLOT_INFLIGHT;
    int rc = io_uring_submit(&r->ring);
    return rc < 0 ? rc : 0;
}

/* Issues the next chunk into its slot, if any remain and the slot is free. */
static int issue_next(qv_reader_t *r)
{
    if (r->next_issue >= r->size)
        return 0;
    int s = (int)(r->issued_chunks % QV_READER_DEPTH);
    slot_t *sl = &r->slots[s];
    if (sl->state != SLOT_FREE)
        return 0;
    sl->off = r->next_issue;
    sl->want = r->size - r->next_issue < QV_READER_CHUNK ? (size_t)(r->size - r->next_issue) : QV_READER_CHUNK;
    sl->got = 0;
    sl->err = 0;
    r->next_issue += sl->want;
    r->issued_chunks++;
    return submit_read(r, s);
}

int qv_reader_open(const char *path, uint64_t start, qv_reader_t **out, char *msg, size_t msglen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(msg, msglen, "cannot open '%s': %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno ? errno : EINVAL;
        snprintf(msg, msglen, "'%s' is not a regular file", path);
        close(fd);
        return -e;
    }
    qv_reader_t *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    r->fd = fd;
    r->size = (uint64_t)st.st_size;
    r->next_issue = r->next_deliver = start > r->size ? r->size : start;
    r->held = -1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    const char *off = getenv("QUIVER_NO_IO_URING");
    int rc = -EPERM;
    if (off && *off && strcmp(off, "0") != 0) {
        fprintf(stderr, "quiver: io_uring disabled by QUIVER_NO_IO_URING; reading with pread\n");
    } else {
        rc = io_uring_queue_init(QV_READER_DEPTH, &r->ring, 0);
        if (rc < 0)
            fprintf(stderr, "quiver: io_uring unavailable (io_uring_queue_init: %s); reading with pread\n",
                    strerror(-rc));
    }
    if (rc == 0) {
        r->uring = true;
        for (int i = 0; i < QV_READER_DEPTH; i++) {
            r->slots[i].buf = malloc(QV_READER_CHUNK);
            if (!r->slots[i].buf) {
                qv_reader_close(r);
                snprintf(msg, msglen, "out of memory");
                return -ENOMEM;
            }
        }
        for (int i = 0; i < QV_READER_DEPTH; i++) {
            rc = issue_next(r);
            if (rc < 0) {
                qv_reader_close(r);
                snprintf(msg, msglen, "io_uring submit: %s", strerror(-rc));
                return rc;
            }
        }
    } else {
        r->pbuf = malloc(QV_READER_CHUNK);
        if (!r->pbuf) {
            qv_reader_close(r);
            snprintf(msg, msglen, "out of memory");
            return -ENOMEM;
        }
    }
    *out = r;
    return 0;
}

static int next_pread(qv_reader_t *r, const uint8_t **data, size_t *len)
{
    if (r->next_deliver >= r->size)
        return 0;
    size_t want = r->size - r->next_deliver < QV_READER_CHUNK ? (size_t)(r->size - r->next_deliver) : QV_READER_CHUNK;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(r->fd, r->pbuf + got, want - got, (off_t)(r->next_deliver + got));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) { /* the file shrank */
            r->size = r->next_deliver + got;
            break;
        }
        got += (size_t)n;
    }
    if (got == 0)
        return 0;
    *data = r->pbuf;
    *len = got;
    r->next_deliver += got;
    return 1;
}

int qv_reader_next(qv_reader_t *r, const uint8_t **data, size_t *len)
{
    if (!r->uring)
        return next_pread(r, data, len);
    if (r->held >= 0) { /* the consumer is done with the previous chunk: refill its slot */
        r->slots[r->held].state = SLOT_FREE;
        r->held = -1;
        int rc = issue_next(r);
        if (rc < 0)
            return rc;
    }
    if (r->next_deliver >= r->size || r->delivered_chunks >= r->issued_chunks)
        return 0;
    int s = (int)(r->delivered_chunks % QV_READER_DEPTH);
    slot_t *sl = &r->slots[s];
    while (sl->state != SLOT_DONE) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&r->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return rc;
        int idx = (int)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&r->ring, cqe);
        if (idx < 0 || idx >= QV_READER_DEPTH)
            continue;
        slot_t *c = &r->slots[idx];
        if (res == -EINTR || res == -EAGAIN) {
            rc = submit_read(r, idx);
        } else if (res < 0) {
            c->err = res;
            c->state = SLOT_DONE;
        } else if (res == 0) { /* end of file before `want`: the file shrank */
            c->want = c->got;
            c->state = SLOT_DONE;
        } else {
            c->got += (size_t)res;
            if (c->got < c->want)
                rc = submit_read(r, idx); /* short read: ask for the rest */
            else
                c->state = SLOT_DONE;
        }
        if (rc < 0)
            return rc;
    }
    r->delivered_chunks++;
    r->held = s;
    if (sl->err)
        return sl->err;
    if (sl->want < QV_READER_CHUNK && sl->off + sl->want < r->size) { /* shrank: stop after this chunk */
        r->size = sl->off + sl->want;
    }
    r->next_deliver = sl->off + sl->got;
    if (sl->got == 0)
        return 0;
    *data = sl->buf;
    *len = sl->got;
    return 1;
}

void qv_reader_close(qv_reader_t *r)
{
    if (!r)
        return;
    if (r->uring) {
        /* Reads still in flight write into our buffers: wait for them before freeing anything. */
        for (int i = 0; i < QV_READER_DEPTH; i++) {
            while (r->slots[i].state == SLOT_INFLIGHT) {
                struct io_uring_cqe *cqe;
                if (io_uring_wait_cqe(&r->ring, &cqe) < 0)
                    break;
                int idx = (int)io_uring_cqe_get_data64(cqe);
                if (idx >= 0 && idx < QV_READER_DEPTH)
                    r->slots[idx].state = SLOT_DONE;
                io_uring_cqe_seen(&r->ring, cqe);
            }
        }
        io_uring_queue_exit(&r->ring);
    }
    for (int i = 0; i < QV_READER_DEPTH; i++)
        free(r->slots[i].buf);
    free(r->pbuf);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}
