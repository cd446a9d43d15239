/* The single mapping between Quiver error codes and gRPC status codes (server/status.h). */
#include <grpc/status.h>

#include "common/err.h"
#include "server/status.h"

/* Where two codes share a status, the first row is the one a status maps back to: a shard's RESOURCE_EXHAUSTED
 * (a size limit or "server busy") is QV_ETOOBIG at the coordinator, not an out-of-memory of its own. */
static const struct {
    int code;
    grpc_status_code status;
} table[] = {
    {QV_OK, GRPC_STATUS_OK},
    {QV_EINVAL, GRPC_STATUS_INVALID_ARGUMENT},
    {QV_ENOTFOUND, GRPC_STATUS_NOT_FOUND},
    {QV_EEXIST, GRPC_STATUS_ALREADY_EXISTS},
    {QV_ETOOBIG, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {QV_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {QV_ECORRUPT, GRPC_STATUS_DATA_LOSS},
    {QV_ECANCELLED, GRPC_STATUS_CANCELLED},
    {QV_ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED},
    {QV_EUNAVAIL, GRPC_STATUS_UNAVAILABLE},
    {QV_EPRECOND, GRPC_STATUS_FAILED_PRECONDITION},
    {QV_EIO, GRPC_STATUS_INTERNAL},
};

int qv_status_of(int qv_code)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == qv_code)
            return table[i].status;
    return GRPC_STATUS_INTERNAL;
}

int qv_code_of_status(int grpc_status)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if ((int)table[i].status == grpc_status)
            return table[i].code;
    return QV_EIO;
}

const char *qv_status_name(int st)
{
    static const char *names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                  "UNAUTHENTICATED"};
    return st >= 0 && st < (int)(sizeof names / sizeof names[0]) ? names[st] : "UNKNOWN";
}
