/* Fuzz target: schema blob decoder (storage/schema.c).
 *
 * Input: a schema blob without its trailing checksum (see fuzz.h). A schema that decodes must pass
 * qv_schema_validate unchanged (valid names, dim, metric, shards, field types, no duplicate field names), every field
 * must be found by name, and it must re-encode to the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "storage/schema.h"
#include "tests/unit/qvtest.h"

static void decode(const uint8_t *blob, size_t len)
{
    qv_schema_t *s;
    qv_err_t err;
    int rc = qv_schema_decode(blob, len, &s, &err);
    if (rc != QV_OK) {
        FUZZ_CHECK((rc == QV_ECORRUPT || rc == QV_ENOMEM) && s == NULL);
        return;
    }
    uint32_t shards = s->shards;
    FUZZ_CHECK(qv_schema_validate(s, &err) == QV_OK && s->shards == shards);
    FUZZ_CHECK(s->nfields <= QV_FIELDS_MAX);
    FUZZ_CHECK(qv_name_ok(s->name, strlen(s->name)));
    for (int f = 0; f < s->nfields; f++)
        FUZZ_CHECK(qv_schema_field(s, s->fields[f].name, strlen(s->fields[f].name)) == f);
    qv_wbuf_t again;
    qv_wbuf_init(&again);
    FUZZ_CHECK(qv_schema_encode(s, &again) == QV_OK);
    FUZZ_CHECK(blob[4] != 3 || (again.len == len && memcmp(again.data, blob, len) == 0)); /* older: re-encoded as 3 */
    qv_wbuf_free(&again);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    decode(data, size);
    uint8_t *blob = qv_fuzz_checksummed(data, size);
    decode(blob, size + 8);
    free(blob);
    return 0;
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    for (int variant = 0; variant < 3; variant++) {
        qv_schema_t *s = test_schema_all(variant == 1 ? "a" : "Collection-name_64", 3, variant == 2 ? 16384 : 128,
                                         (uint8_t)(1 + variant));
        if (variant == 1)
            s->nfields = 0;
        s->shards = variant == 2 ? 1024 : 1;
        qv_wbuf_t b;
        qv_wbuf_init(&b);
        qv_schema_encode(s, &b);
        add(ctx, b.data, b.len - 8);
        qv_wbuf_free(&b);
        free(s);
    }
}
