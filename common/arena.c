#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct qv_arena_chunk {
    qv_arena_chunk_t *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN (64u << 10)

void qv_arena_init(qv_arena_t *a)
{
    a->head = NULL;
    a->used = 0;
}

void qv_arena_free(qv_arena_t *a)
{
    for (qv_arena_chunk_t *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
    a->used = 0;
}

void *qv_arena_alloc(qv_arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    qv_arena_chunk_t *c = a->head;
    if (!c || c->size - c->used < size) {
        size_t cs = size > CHUNK_MIN ? size : CHUNK_MIN;
        if (cs > SIZE_MAX - sizeof *c)
            return NULL;
        c = malloc(sizeof *c + cs);
        if (!c)
            return NULL;
        c->size = cs;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->used += size;
    memset(p, 0, size);
    return p;
}

void *qv_arena_array(qv_arena_t *a, size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - 16) / size)
        return NULL;
    return qv_arena_alloc(a, n * size);
}

char *qv_arena_strndup(qv_arena_t *a, const char *p, size_t len)
{
    char *s = qv_arena_alloc(a, len + 1);
    if (s && len)
        memcpy(s, p, len);
    return s;
}
