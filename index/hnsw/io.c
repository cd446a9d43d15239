/* HNSW graph blob: serialise (qv_hnsw_encode) and load as untrusted data (qv_hnsw_decode).
 *
 * The blob holds the graph and, for a quantised index, the quantiser (codebooks and every row's code); the vectors
 * stay in the segment, and decode is given them again (n and dim must match). Format version 2, every integer
 * little-endian:
 *
 *   offset  size  field
 *   0       8     magic: 'Q' 'V' 'H' 'N' 'S' 'W' 0x1A 0x0A (the last two catch text-mode and truncating transfers)
 *   8       1     version = 2 (version 1 blobs, written before quantisation existed, still load: see below)
 *   9       1     metric: 0 = squared L2, 1 = inner product
 *   10      1     quantisation: 0 = none, 1 = SQ8, 2 = PQ
 *   11      1     reserved, must be 0
 *   12      4     M: 2..128 (layer 0 holds up to 2M links, layers >= 1 up to M)
 *   16      4     ef_construction: >= 1 (informational: how the graph was built)
 *   20      4     dim: 1..65536, must equal the caller's
 *   24      8     seed the levels were drawn with (informational)
 *   32      8     n: rows, must equal the caller's, < 2^32 - 1
 *   40      4     max_level: 0..31 (0 when n == 0)
 *   44      4     entry: the entry point, < n (0xFFFFFFFF when n == 0)
 *   48      n     levels: one byte per node, each <= max_level; levels[entry] == max_level
 *   ...           layer 0, for each node 0..n-1 in order: u16 count (<= 2M), then count x u32 neighbour ids
 *   ...           layers >= 1, for each node i in order with levels[i] >= 1, for l = 1..levels[i]:
 *                 u16 count (<= M), then count x u32 neighbour ids, each with levels[id] >= l
 *   ...     8     only if quantisation != 0: qlen, the length of the quantiser blob that follows
 *   ...     qlen  only if quantisation != 0: the quantiser blob (qv_quant_encode_blob: its own magic, version,
 *                 n, dim, codebooks, n codes and checksum; format at the top of index/quant/sq8.c or pq.c). Its kind
 *                 and metric must equal the header's, its n and dim the caller's
 *   len-8   8     XXH3-64 (qv_checksum) of bytes [0, len-8)
 *
 * Version 1 is the same layout with bytes 10-11 a reserved u16 that must be 0 (so: no quantiser section). A version
 * 1 blob loads as an index without quantisation; version 2 with quantisation 0 is byte for byte a version 1 blob
 * but for the version byte. The quantiser blob is nested whole, with its own checksum, rather than flattened into
 * this format: the quantiser's loader (the one that checks its codebooks) is then the only code that parses it,
 * and the outer checksum still covers every byte. Loading it is a bounds-checked copy: no retraining.
 *
 * Every neighbour id must be < n, differ from its own node, and appear once per list. Nothing may follow the last
 * list but the checksum. A blob breaking any rule is QV_ECORRUPT with a message naming the first offence.
 *
 * Why variable-length lists (count + ids) and not the in-memory fixed slots: most nodes hold fewer than 2M links,
 * so the blob is smaller, and parsing each list is where the bounds checks happen anyway. Loading is O(n + links)
 * with one n-sized stamp array for the duplicate check (no O(degree^2) scans), so a 1M-row graph loads in well under
 * a second. The checksum is verified before anything is parsed, so a random corruption is caught by one comparison;
 * the structural checks are what stand between a forged or buggy blob (right checksum, wrong content) and an
 * out-of-bounds read during search. */
#include "index/hnsw/hnsw_int.h"

#include <stdlib.h>
#include <string.h>

#define HNSW_MAGIC "QVHNSW\x1a\n"
#define HNSW_VERSION 2
#define HNSW_HEADER 48

int qv_hnsw_encode(const qv_hnsw_t *h, qv_wbuf_t *out)
{
    if (!h || !out || !__atomic_load_n(&h->built, __ATOMIC_ACQUIRE))
        return QV_EINVAL;
    size_t start = out->len;
    uint64_t e = __atomic_load_n(&h->entry, __ATOMIC_ACQUIRE);
    qv_wbuf_put(out, HNSW_MAGIC, 8);
    qv_wbuf_u8(out, HNSW_VERSION);
    qv_wbuf_u8(out, (uint8_t)h->metric);
    qv_wbuf_u8(out, h->qz ? (uint8_t)qv_quant_kind(h->qz) : 0);
    qv_wbuf_u8(out, 0);
    qv_wbuf_u32(out, h->M);
    qv_wbuf_u32(out, h->efc);
    qv_wbuf_u32(out, h->dim);
    qv_wbuf_u64(out, h->seed);
    qv_wbuf_u64(out, (uint64_t)h->n);
    qv_wbuf_u32(out, e == QV_HNSW_ENTRY_EMPTY ? 0 : (uint32_t)(e >> 32));
    qv_wbuf_u32(out, e == QV_HNSW_ENTRY_EMPTY ? UINT32_MAX : (uint32_t)e);
    qv_wbuf_put(out, h->levels, h->n);
    for (size_t i = 0; i < h->n; i++) {
        const uint32_t *ll = qv__links(h, (uint32_t)i, 0);
        qv_wbuf_u16(out, (uint16_t)ll[0]);
        qv_wbuf_put(out, ll + 1, (size_t)ll[0] * sizeof(uint32_t));
    }
    for (size_t i = 0; i < h->n; i++) {
        for (unsigned l = 1; l <= h->levels[i]; l++) {
            const uint32_t *ll = qv__links(h, (uint32_t)i, l);
            qv_wbuf_u16(out, (uint16_t)ll[0]);
            qv_wbuf_put(out, ll + 1, (size_t)ll[0] * sizeof(uint32_t));
        }
    }
    if (h->qz) {
        size_t at = out->len;
        qv_wbuf_u64(out, 0);  /* qlen, patched below */
        if (out->oom || qv_quant_encode_blob(h->qz, out) != QV_OK)
            return QV_ENOMEM;
        qv_wbuf_patch_u64(out, at, (uint64_t)(out->len - at - 8));
    }
    return qv_wbuf_seal(out, start);
}

/* Reads one list (count + ids) into dst (count word + ids), checking every id. stamp marks ids already in this
 * list. Returns QV_OK or QV_ECORRUPT. */
static int read_list(qv_rbuf_t *rd, const qv_hnsw_t *h, uint32_t node, unsigned layer, uint32_t *dst,
                     uint32_t *stamps, uint32_t stamp, qv_err_t *err)
{
    uint32_t cap = layer ? h->M : h->M0;
    uint16_t count = qv_rbuf_u16(rd);
    if (rd->failed)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: truncated in the list of node %u layer %u", node, layer);
    if (count > cap)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %u layer %u has %u links (max %u)", node, layer,
                          count, cap);
    const uint8_t *ids = qv_rbuf_take_array(rd, count, sizeof(uint32_t));
    if (!ids)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: truncated in the links of node %u layer %u", node, layer);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t id;
        memcpy(&id, ids + (size_t)i * 4, 4);
        if (id >= h->n)
            return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %u layer %u links to %u, out of range (n=%zu)",
                              node, layer, id, h->n);
        if (id == node)
            return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %u layer %u links to itself", node, layer);
        if (h->levels[id] < layer)
            return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %u layer %u links to node %u of level %u", node,
                              layer, id, h->levels[id]);
        if (stamps[id] == stamp)
            return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %u layer %u links twice to %u", node, layer, id);
        stamps[id] = stamp;
        dst[1 + i] = id;
    }
    dst[0] = count;
    return QV_OK;
}

/* The quantiser section: qlen, then the quantiser's own blob, loaded (and checked) by index/quant. */
static int read_quantiser(qv_rbuf_t *rd, qv_hnsw_t *h, uint8_t kind, qv_err_t *err)
{
    uint64_t qlen = qv_rbuf_u64(rd);
    if (rd->failed || qlen > qv_rbuf_left(rd))
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: truncated quantiser section");
    const uint8_t *qb = qv_rbuf_take(rd, (size_t)qlen);
    qv_quant_t *qz = NULL;
    int rc = qv_quant_decode_blob(qb, (size_t)qlen, h->n, h->dim, err, &qz);
    if (rc)
        return rc == QV_EINVAL ? qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad quantiser section") : rc;
    if ((uint8_t)qv_quant_kind(qz) != kind || (int)qv_quant_metric(qz) != (int)h->metric) {
        qv_quant_free(qz);
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: the quantiser's kind or metric differs from the header's");
    }
    return qv__quant_attach(h, qz);
}

int qv_hnsw_decode(const void *blob, size_t len, const float *vectors, size_t n, uint32_t dim, size_t stride,
                   qv_err_t *err, qv_hnsw_t **out)
{
    if (!out || (!blob && len))
        return qv_err_set(err, QV_EINVAL, "hnsw decode: NULL argument");
    *out = NULL;
    if (len < HNSW_HEADER + 8)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: %zu bytes, shorter than the header", len);
    const uint8_t *b = blob;
    qv_rbuf_t rd;
    if (!qv_rbuf_open_sealed(&rd, b, len))
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: checksum mismatch");

    const uint8_t *magic = qv_rbuf_take(&rd, 8);
    if (!magic || memcmp(magic, HNSW_MAGIC, 8) != 0)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad magic");
    uint8_t version = qv_rbuf_u8(&rd);
    if (version != 1 && version != HNSW_VERSION)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: unsupported version %u", version);
    uint8_t metric = qv_rbuf_u8(&rd);
    uint8_t quant = qv_rbuf_u8(&rd);  /* version 1: the low byte of a reserved u16 */
    uint8_t reserved = qv_rbuf_u8(&rd);
    uint32_t M = qv_rbuf_u32(&rd);
    uint32_t efc = qv_rbuf_u32(&rd);
    uint32_t bdim = qv_rbuf_u32(&rd);
    uint64_t seed = qv_rbuf_u64(&rd);
    uint64_t bn = qv_rbuf_u64(&rd);
    uint32_t max_level = qv_rbuf_u32(&rd);
    uint32_t entry = qv_rbuf_u32(&rd);
    if (rd.failed)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: truncated header");
    if (metric > QV_HNSW_IP || reserved != 0)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad metric %u or reserved field", metric);
    if ((version == 1 && quant != 0) || quant > QV_HNSW_QUANT_PQ)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad quantisation %u for version %u", quant, version);
    if (M < 2 || M > QV_HNSW_MAX_M || efc == 0 || efc > (1u << 20))
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad M=%u or ef_construction=%u", M, efc);
    if (bdim == 0 || bdim > QV_HNSW_MAX_DIM || bn > QV_HNSW_MAX_ROWS)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad dim=%u or n=%llu", bdim, (unsigned long long)bn);
    if (bdim != dim || bn != n)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: built for %llu x %u, the segment has %zu x %u",
                          (unsigned long long)bn, bdim, n, dim);
    if (max_level > QV_HNSW_MAX_LEVEL || (n == 0 && (max_level != 0 || entry != UINT32_MAX)) ||
        (n > 0 && entry >= n))
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: bad max_level=%u or entry=%u", max_level, entry);
    /* Every node takes at least its level byte and a 2-byte layer-0 count: a huge n in a small blob fails here,
     * before anything n-sized is allocated. */
    if (n > qv_rbuf_left(&rd) / 3)
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: n=%zu does not fit in %zu bytes", n, len);

    qv_hnsw_params_t p = {.metric = (qv_hnsw_metric_t)metric, .M = M, .ef_construction = efc, .seed = seed};
    qv_hnsw_t *h;
    int rc = qv__new(&p, vectors, n, dim, stride, err, &h);
    if (rc)
        return rc;
    h->efc = efc;  /* qv__new raises ef_construction to M; keep what the blob says */
    const uint8_t *levels = qv_rbuf_take(&rd, n);
    if (!levels) {
        qv_hnsw_free(h);
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: truncated levels");
    }
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        if (levels[i] > max_level) {
            qv_hnsw_free(h);
            return qv_err_set(err, QV_ECORRUPT, "hnsw blob: node %zu has level %u above max_level %u", i, levels[i],
                              max_level);
        }
        if (levels[i] > top)
            top = levels[i];
    }
    if (n > 0 && (levels[entry] != max_level || top != max_level)) {
        qv_hnsw_free(h);
        return qv_err_set(err, QV_ECORRUPT, "hnsw blob: entry %u has level %u, max_level %u, highest level %u",
                          entry, levels[entry], max_level, top);
    }
    memcpy(h->levels, levels, n);
    rc = qv__alloc_graph(h, err);
    uint32_t *stamps = NULL;
    if (rc == QV_OK) {
        stamps = calloc(n ? n : 1, sizeof(uint32_t));
        if (!stamps)
            rc = qv_err_set(err, QV_ENOMEM, "hnsw decode: out of memory");
    }
    uint32_t stamp = 0;
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        if (++stamp == 0) {
            memset(stamps, 0, n * sizeof(uint32_t));
            stamp = 1;
        }
        rc = read_list(&rd, h, (uint32_t)i, 0, qv__links(h, (uint32_t)i, 0), stamps, stamp, err);
    }
    for (size_t i = 0; rc == QV_OK && i < n; i++) {
        for (unsigned l = 1; rc == QV_OK && l <= h->levels[i]; l++) {
            if (++stamp == 0) {
                memset(stamps, 0, n * sizeof(uint32_t));
                stamp = 1;
            }
            rc = read_list(&rd, h, (uint32_t)i, l, qv__links(h, (uint32_t)i, l), stamps, stamp, err);
        }
    }
    free(stamps);
    if (rc == QV_OK && quant != QV_HNSW_QUANT_NONE)
        rc = read_quantiser(&rd, h, quant, err);
    if (rc == QV_OK && qv_rbuf_left(&rd) != 0)
        rc = qv_err_set(err, QV_ECORRUPT, "hnsw blob: %zu unexpected bytes after the last list", qv_rbuf_left(&rd));
    if (rc) {
        qv_hnsw_free(h);
        return rc;
    }
    h->entry = n ? ((uint64_t)max_level << 32) | entry : QV_HNSW_ENTRY_EMPTY;
    h->progress = n;
    __atomic_store_n(&h->built, 1, __ATOMIC_RELEASE);
    *out = h;
    return QV_OK;
}
