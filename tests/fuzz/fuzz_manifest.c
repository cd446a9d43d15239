/* Fuzz target: the store manifest decoder (qv_cat_manifest_decode, storage/catalog.c; recovery reads each
 * collection's manifest with it before loading any segment).
 *
 * Input: a manifest blob without its trailing checksum (see fuzz.h). A manifest that decodes must list segment ids
 * in strictly ascending order, each below next_seg, with exactly the blob's bytes (25-byte header + 16 per segment +
 * checksum), and re-encode through the writer (qv_cat_manifest_encode) to the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "storage/catalog.h"

/* The writer takes a collection: one whose sealed segments carry just the ids and blob lengths to write. */
static void encode(qv_wbuf_t *out, uint64_t seal_seq, uint64_t next_seg, const uint64_t *segs, const uint64_t *lens,
                   uint32_t n)
{
    qv_segment_t *seg = calloc(n ? n : 1, sizeof *seg);
    qv_segment_t **list = calloc(n ? n : 1, sizeof *list);
    FUZZ_CHECK(seg && list);
    for (uint32_t i = 0; i < n; i++) {
        seg[i].id = segs[i];
        seg[i].blob_len = lens[i];
        seg[i].persisted = true;
        list[i] = &seg[i];
    }
    qv_coll_t c = {.sealed = list, .nsealed = n};
    FUZZ_CHECK(qv_cat_manifest_encode(out, &c, seal_seq, next_seg, NULL, NULL, 0, false, NULL) == QV_OK);
    free(list);
    free(seg);
}

static void decode(const uint8_t *blob, size_t len)
{
    uint64_t seal_seq, next_seg, *segs, *lens;
    uint32_t n;
    qv_err_t err = {0};
    int rc = qv_cat_manifest_decode(blob, len, &seal_seq, &next_seg, &segs, &lens, &n, &err);
    if (rc != QV_OK) {
        FUZZ_CHECK((rc == QV_ECORRUPT || rc == QV_ENOMEM) && !segs && !lens && err.code == rc && err.msg[0]);
        return;
    }
    FUZZ_CHECK(len == 25 + (size_t)n * 16 + 8);
    for (uint32_t i = 0; i < n; i++)
        FUZZ_CHECK(segs[i] < next_seg && (i == 0 || segs[i - 1] < segs[i]));
    qv_wbuf_t again;
    qv_wbuf_init(&again);
    encode(&again, seal_seq, next_seg, segs, lens, n);
    FUZZ_CHECK(again.len == len && memcmp(again.data, blob, len) == 0);
    qv_wbuf_free(&again);
    free(segs);
    free(lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    uint8_t *blob = qv_fuzz_checksummed(data, size);
    decode(data, size);
    decode(blob, size + 8);
    free(blob);
    return 0;
}

/* ---- seeds: manifests of 0, 1, 3 and 40 segments ---- */

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    const uint32_t counts[] = {0, 1, 3, 40};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        uint32_t n = counts[ci];
        uint64_t segs[40], lens[40];
        for (uint32_t i = 0; i < n; i++) {
            segs[i] = 2 * i + ci;
            lens[i] = 1000 * (i + 1);
        }
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        encode(&b, 100 * ci, 2 * n + ci + 1, segs, lens, n);
        add(ctx, b.data, b.len - 8);
        qv_wbuf_free(&b);
    }
}
