/* A bump allocator for objects that live exactly as long as one request (response messages, converted filters'
 * borrowed views). Everything is freed at once by qv_arena_free. Allocations are 16-byte aligned. */
#ifndef QV_ARENA_H
#define QV_ARENA_H

#include <stddef.h>

typedef struct qv_arena_chunk qv_arena_chunk_t;

typedef struct {
    qv_arena_chunk_t *head;
    size_t used;      /* bytes handed out (for size limits) */
} qv_arena_t;

void qv_arena_init(qv_arena_t *a);
void qv_arena_free(qv_arena_t *a);
/* Zeroed memory, or NULL on allocation failure. */
void *qv_arena_alloc(qv_arena_t *a, size_t size);
/* Zeroed array of n items (overflow-checked). */
void *qv_arena_array(qv_arena_t *a, size_t n, size_t size);
/* NUL-terminated copy of len bytes. */
char *qv_arena_strndup(qv_arena_t *a, const char *p, size_t len);

#endif
