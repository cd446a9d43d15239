/* API keys and roles.
 *
 * Key file (--api-keys FILE): one key per line, `KEY ROLE`, ROLE one of read, write, admin, separated by whitespace
 * (space, \t, \r, \v, \f: the C locale's isspace, so "\r\n" line ends work); blank lines (whitespace only) and lines
 * whose first non-blank byte is # are ignored; keys are 16..256 printable non-space ASCII bytes (0x21..0x7e), each
 * key at most once. Any other line (a missing or unknown role, text after the role, a short, long or non-ASCII key,
 * a NUL byte) fails the whole file with a message naming its line, never the key. Clients send
 * `authorization: Bearer KEY` metadata. Roles are ordered: write includes read, admin includes both. Without a key
 * file every call is allowed (a server on loopback for one application); with one, every method but Admin.Health
 * needs a key. */
#ifndef QV_AUTH_H
#define QV_AUTH_H

#include <stddef.h>

#include "common/err.h"

enum { QV_ROLE_PUBLIC = 0, QV_ROLE_READ = 1, QV_ROLE_WRITE = 2, QV_ROLE_ADMIN = 3 };

typedef struct qv_keys qv_keys_t;

/* Reads and parses a key file (at most 1 MiB). On success *out is owned by the caller (qv_keys_free). Returns QV_OK,
 * QV_EINVAL (unreadable, or a bad line: err names the file and line), QV_ENOMEM. */
int qv_keys_load(const char *path, qv_keys_t **out, qv_err_t *err);
/* Parses key-file text of len bytes (need not be NUL-terminated; NUL bytes are rejected); `name` labels messages.
 * Same results as qv_keys_load. */
int qv_keys_parse(const char *text, size_t len, const char *name, qv_keys_t **out, qv_err_t *err);
void qv_keys_free(qv_keys_t *k);
/* Role of a presented key, or -1 if unknown. Compares against every key in constant time per key. */
int qv_keys_role(const qv_keys_t *k, const char *key, size_t len);
const char *qv_role_name(int role);

/* The one check of a caller's key, for gRPC metadata and HTTP headers alike: `header` (len bytes, may be NULL) is the
 * value of its authorization header, "Bearer <key>"; `need` the method's role (QV_ROLE_PUBLIC: anyone). Returns a
 * gRPC status: OK, UNAUTHENTICATED (no or unknown key) or PERMISSION_DENIED (a lesser role), with msg saying which.
 * keys NULL: everything is allowed. */
int qv_keys_authorize(const qv_keys_t *keys, int need, const char *method, const char *header, size_t len, char *msg,
                      size_t msglen);

/* Reads a whole (PEM) file into a NUL-terminated malloc'd string; NULL with err set on failure. */
char *qv_read_file(const char *path, size_t max, qv_err_t *err);

#endif
