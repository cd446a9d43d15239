#include "server/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char key[257];
    size_t len;
    int role;
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

char *qv_read_file(const char *path, size_t max, qv_err_t *err)
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
    return buf;
}

int qv_keys_load(const char *path, qv_keys_t **out, qv_err_t *err)
{
    *out = NULL;
    char *text = qv_read_file(path, 1 << 20, err);
    if (!text)
        return QV_EINVAL;
    qv_keys_t *k = calloc(1, sizeof *k);
    int rc = k ? QV_OK : qv_err_set(err, QV_ENOMEM, "out of memory");
    int lineno = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); rc == QV_OK && line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char key[300], role[32], extra[2];
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '#' || *line == '\0' || *line == '\r')
            continue;
        int f = sscanf(line, "%299s %31s %1s", key, role, extra);
        size_t len = strlen(key);
        int r = strcmp(role, "read") == 0 ? QV_ROLE_READ : strcmp(role, "write") == 0 ? QV_ROLE_WRITE
                : strcmp(role, "admin") == 0 ? QV_ROLE_ADMIN : -1;
        if (f != 2 || r < 0 || len < 16 || len > 256) {
            rc = qv_err_set(err, QV_EINVAL, "%s line %d: expected `KEY read|write|admin` with a 16..256 byte key",
                            path, lineno);
            break;
        }
        entry_t *e = realloc(k->e, (k->n + 1) * sizeof *e);
        if (!e) {
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
            break;
        }
        k->e = e;
        memcpy(e[k->n].key, key, len + 1);
        e[k->n].len = len;
        e[k->n].role = r;
        k->n++;
    }
    free(text);
    if (rc == QV_OK && k->n == 0)
        rc = qv_err_set(err, QV_EINVAL, "%s holds no keys", path);
    if (rc) {
        qv_keys_free(k);
        return rc;
    }
    *out = k;
    return QV_OK;
}

void qv_keys_free(qv_keys_t *k)
{
    if (!k)
        return;
    if (k->e)
        memset(k->e, 0, k->n * sizeof *k->e);
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
