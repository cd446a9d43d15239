#include "server/auth.h"

#include <grpc/status.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char key[257];
    size_t len;
    int role;
    int line; /* where the key file holds it (for the duplicate message) */
} entry_t;

struct qv_keys {
    entry_t *e;
    size_t n;
};

const char *qv_role_name(int role)
{
    switch (role) {
    case QV_ROLE_READ: return "read";
    case QV_ROLE_WRITE: return "write";
    case QV_ROLE_ADMIN: return "admin";
    default: return "public";
    }
}

/* Reads at most max bytes of path into a malloc'd buffer with a NUL after them; *len gets the byte count. */
static char *read_all(const char *path, size_t max, size_t *len, qv_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        qv_err_set(err, QV_EINVAL, "cannot open %s", path);
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || n > max) {
        free(buf);
        qv_err_set(err, QV_EINVAL, "%s is larger than %zu bytes", path, max);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *qv_read_file(const char *path, size_t max, qv_err_t *err)
{
    size_t len;
    return read_all(path, max, &len, err);
}

/* The separators of a key file: what isspace() means in the C locale, minus '\n' (the line end). Spelled out rather
 * than isspace() so a locale cannot change what a key file means. */
static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* The next blank-separated token of line[*i..len): its start; *i moves past it, so its length is *i - start (0 at
 * the end of the line). */
static size_t token(const char *line, size_t len, size_t *i)
{
    while (*i < len && blank(line[*i]))
        (*i)++;
    size_t start = *i;
    while (*i < len && !blank(line[*i]))
        (*i)++;
    return start;
}

/* Parses one line (no '\n'): 0 with *role -1 for a blank or comment line, 0 with the key in e for a key line, or
 * QV_EINVAL with err set. */
static int parse_line(const char *line, size_t len, const char *name, int lineno, entry_t *e, int *role,
                      qv_err_t *err)
{
    *role = -1;
    size_t i = 0;
    size_t key = token(line, len, &i), klen = i - key;
    if (klen == 0 || line[key] == '#')
        return QV_OK;
    size_t r = token(line, len, &i), rlen = i - r;
    size_t extra = token(line, len, &i);
    if (rlen == 0)
        return qv_err_set(err, QV_EINVAL, "%s line %d: expected `KEY read|write|admin`, found no role", name, lineno);
    if (i > extra)
        return qv_err_set(err, QV_EINVAL, "%s line %d: unexpected text after the role", name, lineno);
    if (klen < 16 || klen > 256)
        return qv_err_set(err, QV_EINVAL, "%s line %d: the key is %zu bytes, keys are 16..256 bytes", name, lineno,
                          klen);
    for (size_t b = 0; b < klen; b++) {
        unsigned char c = (unsigned char)line[key + b];
        if (c < 0x21 || c > 0x7e)
            return qv_err_set(err, QV_EINVAL,
                              "%s line %d: byte %zu of the key is 0x%02x, keys are printable non-space ASCII", name,
                              lineno, b + 1, c);
    }
    const char *rs = line + r;
    int ro = rlen == 4 && memcmp(rs, "read", 4) == 0    ? QV_ROLE_READ
             : rlen == 5 && memcmp(rs, "write", 5) == 0 ? QV_ROLE_WRITE
             : rlen == 5 && memcmp(rs, "admin", 5) == 0 ? QV_ROLE_ADMIN
                                                        : -1;
    if (ro < 0)
        return qv_err_set(err, QV_EINVAL, "%s line %d: the role must be read, write or admin", name, lineno);
    memcpy(e->key, line + key, klen);
    e->key[klen] = '\0';
    e->len = klen;
    e->line = lineno;
    *role = ro;
    return QV_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = *(const entry_t *const *)a, *y = *(const entry_t *const *)b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int c = memcmp(x->key, y->key, x->len);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* QV_OK when no key appears twice (one role per key), else QV_EINVAL naming both lines. */
static int check_unique(const qv_keys_t *k, const char *name, qv_err_t *err)
{
    if (k->n < 2)
        return QV_OK;
    const entry_t **sorted = malloc(k->n * sizeof *sorted);
    if (!sorted)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < k->n; i++)
        sorted[i] = &k->e[i];
    qsort(sorted, k->n, sizeof *sorted, entry_cmp);
    int rc = QV_OK;
    for (size_t i = 1; i < k->n && rc == QV_OK; i++)
        if (sorted[i]->len == sorted[i - 1]->len && memcmp(sorted[i]->key, sorted[i - 1]->key, sorted[i]->len) == 0)
            rc = qv_err_set(err, QV_EINVAL, "%s line %d: the key of line %d again", name, sorted[i]->line,
                            sorted[i - 1]->line);
    free(sorted);
    return rc;
}

int qv_keys_parse(const char *text, size_t len, const char *name, qv_keys_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_keys_t *k = calloc(1, sizeof *k);
    if (!k)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    int rc = QV_OK, lineno = 0;
    for (size_t at = 0; rc == QV_OK && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (text + at)) : len - at;
        const char *line = text + at;
        at += ll + (nl != NULL);
        lineno++;
        if (memchr(line, '\0', ll)) {
            rc = qv_err_set(err, QV_EINVAL, "%s line %d: a NUL byte", name, lineno);
            break;
        }
        entry_t e;
        int role;
        rc = parse_line(line, ll, name, lineno, &e, &role, err);
        if (rc != QV_OK || role < 0)
            continue; /* an error ends the loop; a blank or comment line holds no key */
        entry_t *grown = realloc(k->e, (k->n + 1) * sizeof *grown);
        if (!grown) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            break;
        }
        k->e = grown;
        e.role = role;
        k->e[k->n++] = e;
    }
    if (rc == QV_OK && k->n == 0)
        rc = qv_err_set(err, QV_EINVAL, "%s holds no keys", name);
    if (rc == QV_OK)
        rc = check_unique(k, name, err);
    if (rc) {
        qv_keys_free(k);
        return rc;
    }
    *out = k;
    return QV_OK;
}

int qv_keys_load(const char *path, qv_keys_t **out, qv_err_t *err)
{
    *out = NULL;
    size_t len;
    char *text = read_all(path, 1 << 20, &len, err);
    if (!text)
        return QV_EINVAL;
    int rc = qv_keys_parse(text, len, path, out, err);
    explicit_bzero(text, len); /* the file's keys: not left behind in freed memory */
    free(text);
    return rc;
}

void qv_keys_free(qv_keys_t *k)
{
    if (!k)
        return;
    if (k->e)
        explicit_bzero(k->e, k->n * sizeof *k->e); /* a memset before free() may be optimised away */
    free(k->e);
    free(k);
}

int qv_keys_role(const qv_keys_t *k, const char *key, size_t len)
{
    int role = -1;
    for (size_t i = 0; i < k->n; i++) {
        /* every key is compared over its full length, whatever matches, so timing says nothing about keys */
        const entry_t *e = &k->e[i];
        unsigned diff = (unsigned)(e->len ^ len);
        for (size_t b = 0; b < e->len; b++)
            diff |= (unsigned char)e->key[b] ^ (unsigned char)(b < len ? key[b] : 0);
        if (diff == 0)
            role = e->role;
    }
    return role;
}

int qv_keys_authorize(const qv_keys_t *keys, int need, const char *method, const char *header, size_t len, char *msg,
                      size_t msglen)
{
    if (!keys || need == QV_ROLE_PUBLIC)
        return GRPC_STATUS_OK;
    if (!header || len < 7 || memcmp(header, "Bearer ", 7) != 0) {
        snprintf(msg, msglen, "missing 'authorization: Bearer <API key>' metadata");
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    int role = qv_keys_role(keys, header + 7, len - 7);
    if (role < 0) {
        snprintf(msg, msglen, "unknown API key");
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    if (role < need) {
        snprintf(msg, msglen, "this API key has the %s role; %s needs %s", qv_role_name(role), method,
                 qv_role_name(need));
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    return GRPC_STATUS_OK;
}
