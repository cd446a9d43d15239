/* The one table between Quiver's error codes (common/err.h) and gRPC status codes, read both ways: a handler's code
 * becomes the status a client sees (qv_status_of), and a shard's status becomes the code the coordinator answers with
 * (qv_code_of_status), so the shard's status and message pass through unchanged. */
#ifndef QV_SERVER_STATUS_H
#define QV_SERVER_STATUS_H

/* The gRPC status of a QV_E* code; unknown codes are INTERNAL. */
int qv_status_of(int qv_code);

/* The QV_E* code whose status is grpc_status (the first row of the table that has it); statuses no Quiver code
 * produces are QV_EIO (INTERNAL). qv_status_of(qv_code_of_status(s)) == s for every status a server produces. */
int qv_code_of_status(int grpc_status);

/* "OK", "CANCELLED", ... "UNAUTHENTICATED" for gRPC codes 0..16; "UNKNOWN" otherwise. */
const char *qv_status_name(int grpc_status);

#endif
