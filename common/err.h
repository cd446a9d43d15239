/* One error convention for every Quiver library: functions return int, 0 on success, a negative QV_E* code on
 * failure. When a user must see why, the detail goes into a caller-provided qv_err_t. The mapping to gRPC status
 * codes lives in exactly one place: server/status.c. */
#ifndef QV_ERR_H
#define QV_ERR_H

#include <stddef.h>

enum {
    QV_OK = 0,
    QV_EINVAL = -1,      /* bad argument from the caller: INVALID_ARGUMENT */
    QV_ENOTFOUND = -2,   /* no such collection: NOT_FOUND */
    QV_EEXIST = -3,      /* already exists: ALREADY_EXISTS */
    QV_ENOMEM = -4,      /* allocation failed or a user-sized request is too large: RESOURCE_EXHAUSTED */
    QV_EIO = -5,         /* the storage engine failed: INTERNAL */
    QV_ECORRUPT = -6,    /* stored or received bytes failed a format, bounds or checksum check: DATA_LOSS */
    QV_ETOOBIG = -7,     /* over a configured limit: RESOURCE_EXHAUSTED */
    QV_ECANCELLED = -8,  /* the caller went away: CANCELLED */
    QV_ETIMEDOUT = -9,   /* the caller's deadline passed: DEADLINE_EXCEEDED */
    QV_EUNAVAIL = -10,   /* the server cannot take this now (shutting down, store failed): UNAVAILABLE */
    QV_EPRECOND = -11,   /* the system is not in a state for this request: FAILED_PRECONDITION */
};

#define QV_ERR_MSG_MAX 1024 /* room for a shard's message inside a coordinator's, uncut (part of the GPU ABI) */

typedef struct {
    int code;                  /* the last QV_E* code set, QV_OK when none */
    char msg[QV_ERR_MSG_MAX];  /* human-readable detail naming the offending input */
} qv_err_t;

/* A short constant description of a code ("invalid argument", ...). */
const char *qv_strerror(int code);

/* Records code and a printf-style message in err (which may be NULL) and returns code, so callers can write
 * `return qv_err_set(err, QV_EINVAL, "point %u: ...", i);`. */
int qv_err_set(qv_err_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Clears err to QV_OK with an empty message. */
void qv_err_clear(qv_err_t *err);

#endif
