/* API keys and roles.
 *
 * Key file (--api-keys FILE): one key per line, `KEY ROLE`, ROLE one of read, write, admin; blank lines and lines
 * starting with # are ignored; keys are 16..256 printable non-space ASCII bytes. Clients send
 * `authorization: Bearer KEY` metadata. Roles are ordered: write includes read, admin includes both. Without a key
 * file every call is allowed (a server on loopback for one application); with one, every method but Admin.Health
 * needs a key. */
#ifndef QV_AUTH_H
#define QV_AUTH_H

#include <stddef.h>

#include "common/err.h"

enum { QV_ROLE_PUBLIC = 0, QV_ROLE_READ = 1, QV_ROLE_WRITE = 2, QV_ROLE_ADMIN = 3 };

typedef struct qv_keys qv_keys_t;

int qv_keys_load(const char *path, qv_keys_t **out, qv_err_t *err);
void qv_keys_free(qv_keys_t *k);
/* Role of a presented key, or -1 if unknown. Compares against every key in constant time per key. */
int qv_keys_role(const qv_keys_t *k, const char *key, size_t len);
const char *qv_role_name(int role);

/* Reads a whole (PEM) file into a NUL-terminated malloc'd string; NULL with err set on failure. */
char *qv_read_file(const char *path, size_t max, qv_err_t *err);

#endif
