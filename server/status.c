/* The single mapping from Quiver error codes to gRPC status codes. */
#include <grpc/status.h>

#include "server/rpc.h"

int qv_status_of(int qv_code)
{
    switch (qv_code) {
    case QV_OK: return GRPC_STATUS_OK;
    case QV_EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
    case QV_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
    case QV_EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
    case QV_ENOMEM:
    case QV_ETOOBIG: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case QV_ECORRUPT: return GRPC_STATUS_DATA_LOSS;
    case QV_ECANCELLED: return GRPC_STATUS_CANCELLED;
    case QV_ETIMEDOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case QV_EUNAVAIL: return GRPC_STATUS_UNAVAILABLE;
    case QV_EPRECOND: return GRPC_STATUS_FAILED_PRECONDITION;
    case QV_EIO:
    default: return GRPC_STATUS_INTERNAL;
    }
}
