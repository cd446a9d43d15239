/* Blobs a GPU-built index is delivered in: index/hnsw/io.c's graph format (version 2) and index/quant's SQ8 and PQ
 * formats, written field for field as qv_hnsw_encode and qv_quant_encode_blob write them (the formats are specified
 * byte by byte at the top of those files; this file only writes them). Nothing here trusts itself: the loaders of
 * index/ check every blob these functions produce, and the unit test loads each one through them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kcpu.h"

#define HNSW_MAGIC "QVHNSW\x1a\n"
#define HNSW_VERSION 2
#define SQ8_MAGIC "QVSQ8\0\x1a\n"
#define PQ_MAGIC "QVPQ8\0\x1a\n"

static void put_f32s(qv_wbuf_t *out, const float *v, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, v + i, 4);
        qv_wbuf_u32(out, bits);
    }
}

static void put_list(qv_wbuf_t *out, const uint32_t *ids, uint32_t count)
{
    qv_wbuf_u16(out, (uint16_t)count);
    for (uint32_t i = 0; i < count; i++)
        qv_wbuf_u32(out, ids[i]);
}

int qv_kgraph_blob(const qv_kgraph_t *g, int qkind, const uint8_t *qblob, size_t qlen, qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_put(out, HNSW_MAGIC, 8);
    qv_wbuf_u8(out, HNSW_VERSION);
    qv_wbuf_u8(out, (uint8_t)g->metric);
    qv_wbuf_u8(out, (uint8_t)qkind);
    qv_wbuf_u8(out, 0);
    qv_wbuf_u32(out, g->M);
    qv_wbuf_u32(out, g->efc);
    qv_wbuf_u32(out, g->dim);
    qv_wbuf_u64(out, g->seed);
    qv_wbuf_u64(out, (uint64_t)g->n);
    qv_wbuf_u32(out, g->n ? g->max_level : 0);
    qv_wbuf_u32(out, g->n ? g->entry : UINT32_MAX);
    if (g->n)
        qv_wbuf_put(out, g->levels, g->n);
    const qv_klayer_t *l0 = &g->layer[0];
    for (size_t i = 0; i < g->n; i++)
        put_list(out, l0->links + i * l0->deg, l0->nlinks[i]);
    /* upper layers node by node; each layer's node list is ascending, so one cursor per layer finds node i */
    uint32_t cursor[QV_KGRAPH_MAX_LEVEL + 1] = {0};
    for (size_t i = 0; i < g->n; i++) {
        for (unsigned l = 1; l <= g->levels[i]; l++) {
            const qv_klayer_t *L = &g->layer[l];
            uint32_t c = cursor[l]++;
            if (c >= L->count || L->nodes[c] != i) {
                out->oom = true;  /* a driver bug, not an input: never write a blob that would not load */
                return QV_EINVAL;
            }
            put_list(out, L->links + (size_t)c * L->deg, L->nlinks[c]);
        }
    }
    if (qkind) {
        qv_wbuf_u64(out, (uint64_t)qlen);
        qv_wbuf_put(out, qblob, qlen);
    }
    return qv_wbuf_seal(out, start);
}

int qv_kblob_sq8(int metric, uint32_t dim, size_t n, const float *vmin, const float *scale, const uint8_t *codes,
                 qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_put(out, SQ8_MAGIC, 8);
    qv_wbuf_u8(out, 1);
    qv_wbuf_u8(out, (uint8_t)metric);
    qv_wbuf_u16(out, 0);
    qv_wbuf_u32(out, dim);
    qv_wbuf_u64(out, (uint64_t)n);
    put_f32s(out, vmin, dim);
    put_f32s(out, scale, dim);
    if (n)
        qv_wbuf_put(out, codes, n * dim);
    return qv_wbuf_seal(out, start);
}

int qv_kblob_pq(int metric, uint32_t dim, uint32_t m, size_t n, const float *cent, const uint8_t *codes,
                qv_wbuf_t *out)
{
    size_t start = out->len;
    qv_wbuf_put(out, PQ_MAGIC, 8);
    qv_wbuf_u8(out, 1);
    qv_wbuf_u8(out, (uint8_t)metric);
    qv_wbuf_u8(out, 8);
    qv_wbuf_u8(out, 0);
    qv_wbuf_u32(out, dim);
    qv_wbuf_u32(out, m);
    qv_wbuf_u32(out, 256);
    qv_wbuf_u64(out, (uint64_t)n);
    put_f32s(out, cent, (size_t)dim * 256);
    if (n)
        qv_wbuf_put(out, codes, n * m);
    return qv_wbuf_seal(out, start);
}
