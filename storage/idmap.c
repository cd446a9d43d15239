#include "storage/idmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

static bool slot_is(const qv_idslot_t *s, uint64_t h, qv_str_t id)
{
    if (!s->seg || s->hash != h)
        return false;
    qv_str_t cur = qv_strcol_get(&s->seg->ids, s->row);
    return cur.len == id.len && memcmp(cur.p, id.p, id.len) == 0;
}

int qv_idmap_init(qv_idmap_t *m)
{
    m->cap = 1024;
    m->n = 0;
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots ? QV_OK : QV_ENOMEM;
}

void qv_idmap_free(qv_idmap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int rehash(qv_idmap_t *m, size_t cap)
{
    qv_idslot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return QV_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].seg)
            continue;
        size_t h = m->slots[i].hash & (cap - 1);
        while (slots[h].seg)
            h = (h + 1) & (cap - 1);
        slots[h] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return QV_OK;
}

int qv_idmap_reserve(qv_idmap_t *m, size_t n)
{
    size_t cap = m->cap;
    while ((m->n + n) * 10 > cap * 7) /* load factor <= 0.7 */
        cap *= 2;
    return cap == m->cap ? QV_OK : rehash(m, cap);
}

qv_idslot_t *qv_idmap_get(const qv_idmap_t *m, qv_str_t id)
{
    uint64_t h = qv_hash(id.p, id.len);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        qv_idslot_t *s = &m->slots[i];
        if (!s->seg)
            return NULL;
        if (slot_is(s, h, id))
            return s;
    }
}

bool qv_idmap_put(qv_idmap_t *m, qv_str_t id, qv_segment_t *seg, uint32_t row, qv_idslot_t *old, int *rc)
{
    *rc = qv_idmap_reserve(m, 1);
    if (*rc)
        return false;
    uint64_t h = qv_hash(id.p, id.len);
    size_t i = h & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        qv_idslot_t *s = &m->slots[i];
        if (!s->seg)
            break;
        if (slot_is(s, h, id)) {
            if (old)
                *old = *s;
            s->seg = seg;
            s->row = row;
            return true;
        }
    }
    m->slots[i] = (qv_idslot_t){h, seg, row};
    m->n++;
    return false;
}

bool qv_idmap_del(qv_idmap_t *m, qv_str_t id, qv_idslot_t *old)
{
    qv_idslot_t *s = qv_idmap_get(m, id);
    if (!s)
        return false;
    if (old)
        *old = *s;
    /* Backward-shift deletion: pull later members of the probe run into the hole while their home slot allows. */
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots);
    for (size_t j = (hole + 1) & mask; m->slots[j].seg; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* j may move to hole if home is not in the cyclic range (hole, j]. */
        bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (qv_idslot_t){0, NULL, 0};
    m->n--;
    return true;
}

size_t qv_idmap_forward(qv_idmap_t *m, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t s = from; s < to && s < m->cap; s++) {
        qv_idslot_t *slot = &m->slots[s];
        if (slot->seg && slot->seg->fwd) {
            qv_idslot_where(slot, &slot->seg, &slot->row);
            n++;
        }
    }
    return n;
}
