/* The in-memory id map of one collection: point id -> (segment, row) of its live row.
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones, so lookups stay short under
 * churn). A slot stores the id's 64-bit hash and its location; the id bytes themselves live once, in the segment's
 * id column, and are compared from there. Guarded by the collection's rwlock like the segments. */
#ifndef QV_IDMAP_H
#define QV_IDMAP_H

#include "storage/segment.h"

typedef struct {
    uint64_t hash;
    qv_segment_t *seg; /* NULL: empty slot; borrowed, the collection holds the segment */
    uint32_t row;
} qv_idslot_t;

typedef struct {
    qv_idslot_t *slots;
    size_t cap; /* power of two */
    size_t n;
} qv_idmap_t;

int qv_idmap_init(qv_idmap_t *m);
void qv_idmap_free(qv_idmap_t *m);

/* Looks an id up; returns the slot or NULL. */
qv_idslot_t *qv_idmap_get(const qv_idmap_t *m, qv_str_t id);

/* Inserts or replaces. If the id was present, *old (when non-NULL) receives its previous location and true is
 * returned. QV_ENOMEM is reported through *rc when the table cannot grow (nothing changed). */
bool qv_idmap_put(qv_idmap_t *m, qv_str_t id, qv_segment_t *seg, uint32_t row, qv_idslot_t *old, int *rc);

/* Removes an id; returns true (and its location in *old) if it was present. */
bool qv_idmap_del(qv_idmap_t *m, qv_str_t id, qv_idslot_t *old);

/* Moves every id that lives in one of from[0..n) to segment `to`: an id at row r of from[i] moves to row rows[i][r],
 * which must hold the same id (compaction's swap: `to` is the merged copy of the inputs `from`). One pass over the
 * table and no hashing (slots stay where they are), so its cost is the table's size, not the ids' lookups. */
void qv_idmap_move(qv_idmap_t *m, qv_segment_t *const *from, const uint32_t *const *rows, size_t n, qv_segment_t *to);

/* Makes sure n more inserts will not need to grow the table. */
int qv_idmap_reserve(qv_idmap_t *m, size_t n);

#endif
