#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *qv_strerror(int code)
{
    switch (code) {
    case QV_OK: return "ok";
    case QV_EINVAL: return "invalid argument";
    case QV_ENOTFOUND: return "not found";
    case QV_EEXIST: return "already exists";
    case QV_ENOMEM: return "out of memory";
    case QV_EIO: return "storage i/o error";
    case QV_ECORRUPT: return "corrupt data";
    case QV_ETOOBIG: return "over a configured limit";
    case QV_ECANCELLED: return "cancelled";
    case QV_ETIMEDOUT: return "deadline exceeded";
    case QV_EUNAVAIL: return "unavailable";
    case QV_EPRECOND: return "failed precondition";
    default: return "unknown error";
    }
}

int qv_err_set(qv_err_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void qv_err_clear(qv_err_t *err)
{
    if (err) {
        err->code = QV_OK;
        err->msg[0] = '\0';
    }
}
