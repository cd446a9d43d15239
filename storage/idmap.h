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

/* Where a slot's row lives now: the slot's location, or, when that is a compacted input (segment.h fwd), the row it
 * was copied to. Returns true when the slot still named an input. */
static inline bool qv_idslot_where(const qv_idslot_t *s, qv_segment_t **seg, uint32_t *row)
{
    qv_segment_t *g = s->seg;
    uint32_t r = s->row;
    bool moved = false;
    for (; g->fwd; moved = true) {
        r = g->fwd_rows[r];
        g = g->fwd;
    }
    *seg = g;
    *row = r;
    return moved;
}

/* Repoints the slots of [from, to) (slot positions, to <= cap) that name a compacted input to where their rows
 * went (qv_idslot_where). One pass, no hashing: slots stay where they are. Returns how many it repointed. */
size_t qv_idmap_forward(qv_idmap_t *m, size_t from, size_t to);

/* Makes sure n more inserts will not need to grow the table. */
int qv_idmap_reserve(qv_idmap_t *m, size_t n);

#endif
