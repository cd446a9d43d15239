/* Fuzz target: the embedder's decoders of untrusted bytes (query/embed): the safetensors reader, the vocab.txt
 * reader and the tokenizer. Built like the targets in tests/fuzz (tests/fuzz/fuzz.h, with tests/fuzz/driver.c).
 *
 * Input: one selector byte, then the payload.
 *   selector % 3 == 0: payload is a safetensors image for qv_st_parse. Only QV_OK or QV_ECORRUPT may come back; on
 *                      success every tensor lies inside the payload, its byte size equals its element count times
 *                      the dtype size, the tensors are sorted by name and each is found by qv_st_find, and reading
 *                      any F32/F16/BF16 tensor as floats succeeds or reports a non-finite value.
 *   selector % 3 == 1: payload is a vocab.txt for qv_tokenizer_from_buf: QV_OK or QV_ECORRUPT; on success every
 *                      line's token maps back to its id, and encoding the vocabulary's own bytes as text works.
 *   selector % 3 == 2: payload is text for qv_tokenizer_encode with a small fixed vocabulary, at a max_ids from the
 *                      selector: QV_OK (ids in range, [CLS] first, [SEP] last, count <= max_ids) or QV_EINVAL
 *                      (invalid UTF-8) only. */
#include <stdbool.h>
#include <string.h>

#include "query/embed/safetensors.h"
#include "query/embed/tokenizer.h"
#include "tests/fuzz/fuzz.h"

static const char small_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nvector\n##s\n##ing\nun\n##aff\n##able\n"
                                  "!\n.\n,\n中\na\n##a\n\xc3\xa9\n";

static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    qv_st_t *st;
    qv_err_t err;
    int rc = qv_st_parse(data, size, &st, &err);
    FUZZ_CHECK(rc == QV_OK || rc == QV_ECORRUPT);
    if (rc != QV_OK) {
        FUZZ_CHECK(st == NULL);
        return;
    }
    for (size_t i = 0; i < qv_st_count(st); i++) {
        const qv_st_tensor_t *t = qv_st_at(st, i);
        FUZZ_CHECK(t->data >= data && t->nbytes <= size && t->data + t->nbytes <= data + size);
        FUZZ_CHECK(t->nbytes == t->nelems * qv_st_dtype_size(t->dtype));
        FUZZ_CHECK(t->ndim <= QV_ST_MAX_DIMS);
        FUZZ_CHECK(qv_st_find(st, t->name) == t);
        if (i)
            FUZZ_CHECK(strcmp(qv_st_at(st, i - 1)->name, t->name) < 0);
        if ((t->dtype == QV_ST_F32 || t->dtype == QV_ST_F16 || t->dtype == QV_ST_BF16) && t->nelems <= (1u << 16)) {
            float buf[1u << 16];
            int r = qv_st_read_f32(st, t->name, t->ndim, t->shape, buf, &err);
            FUZZ_CHECK(r == QV_OK || (r == QV_ECORRUPT && strstr(err.msg, "not finite")));
        }
    }
    qv_st_free(st);
}

static void fuzz_vocab(const uint8_t *data, size_t size)
{
    qv_tokenizer_t *tok;
    qv_err_t err;
    int rc = qv_tokenizer_from_buf((const char *)data, size, &tok, &err);
    FUZZ_CHECK(rc == QV_OK || rc == QV_ECORRUPT);
    if (rc != QV_OK) {
        FUZZ_CHECK(tok == NULL);
        return;
    }
    size_t pos = 0;
    for (uint32_t id = 0; id < qv_tokenizer_vocab_size(tok); id++) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)((const uint8_t *)nl - data) : size, len = end - pos;
        if (len && data[pos + len - 1] == '\r')
            len--;
        FUZZ_CHECK(qv_tokenizer_id(tok, (const char *)data + pos, len) == (int32_t)id);
        pos = end + 1;
    }
    int32_t ids[64];
    size_t n;
    FUZZ_CHECK(qv_tokenizer_encode(tok, (const char *)data, size, 64, ids, &n, &err) == QV_OK);
    FUZZ_CHECK(n >= 2 && n <= 64);
    qv_tokenizer_free(tok);
}

static void fuzz_text(const uint8_t *data, size_t size, size_t max_ids)
{
    static qv_tokenizer_t *tok;
    qv_err_t err;
    if (!tok)
        FUZZ_CHECK(qv_tokenizer_from_buf(small_vocab, strlen(small_vocab), &tok, &err) == QV_OK);
    int32_t ids[QV_TOK_MAX_LEN];
    size_t n;
    int rc = qv_tokenizer_encode(tok, (const char *)data, size, max_ids, ids, &n, &err);
    FUZZ_CHECK(rc == QV_OK || rc == QV_EINVAL);
    if (rc != QV_OK)
        return;
    FUZZ_CHECK(n >= 2 && n <= max_ids);
    FUZZ_CHECK(ids[0] == qv_tokenizer_id(tok, "[CLS]", 5) && ids[n - 1] == qv_tokenizer_id(tok, "[SEP]", 5));
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < qv_tokenizer_vocab_size(tok));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t sel = data[0];
    /* the payload in a buffer of exactly its size, so that AddressSanitizer sees any read past it */
    size_t n = size - 1;
    uint8_t *payload = malloc(n ? n : 1);
    if (n)
        memcpy(payload, data + 1, n);
    switch (sel % 3) {
    case 0: fuzz_safetensors(payload, n); break;
    case 1: fuzz_vocab(payload, n); break;
    default: fuzz_text(payload, n, 2 + (size_t)(sel / 3) % (QV_TOK_MAX_LEN - 1)); break;
    }
    free(payload);
    return 0;
}

static void add_with(qv_fuzz_add_fn add, void *ctx, uint8_t sel, const void *payload, size_t n)
{
    uint8_t *buf = malloc(n + 1);
    buf[0] = sel;
    memcpy(buf + 1, payload, n);
    add(ctx, buf, n + 1);
    free(buf);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    /* safetensors: two tensors (F32 and F16) and metadata, header padded to 8 bytes as writers do */
    static const char header[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                                 "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                                 "\"b.bias\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                                 "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[22,30]}}";
    size_t hl = strlen(header), padded = (hl + 7) & ~(size_t)7, len = 8 + padded + 30;
    uint8_t *st = calloc(1, len);
    for (int i = 0; i < 8; i++)
        st[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(st + 8, header, hl);
    memset(st + 8 + hl, ' ', padded - hl);
    float f[4] = {1, -2, 0.5f, 3};
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001};
    memcpy(st + 8 + padded, f, 16);
    memcpy(st + 8 + padded + 16, h, 6);
    add_with(add, ctx, 0, st, len);
    free(st);
    add_with(add, ctx, 1, small_vocab, strlen(small_vocab));
    static const char *const texts[] = {"The vectors unaffable!", "h\xc3\xa9llo [SEP] w\xc3\xb6rld [MASK]",
                                        "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82 a\xcc\x81"};
    for (int i = 0; i < 3; i++)
        add_with(add, ctx, (uint8_t)(2 + 3 * i * 20), texts[i], strlen(texts[i]));
    static const char controls[4] = {'\t', '\n', '\0', '\x01'}; /* NULs included */
    add_with(add, ctx, 2, controls, sizeof controls);
}
