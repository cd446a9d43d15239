/* Fuzz target: request bytes as the server receives them (server/pbcheck.c + protobuf-c's unpack) for the two
 * messages with the deepest and widest nesting, quiver.v1.UpsertRequest (points, attribute maps, keyword lists) and
 * quiver.v1.SearchRequest (recursive filters).
 *
 * The server unpacks only what qv_pb_check accepts. For each message type: the walk must not crash or read out of
 * bounds; its estimate must bound what protobuf-c really allocates (counted by an allocator that charges malloc's
 * overhead as the walk does), so the decode budget holds; whatever it accepts and protobuf-c unpacks must pack
 * again to bytes that the walk does not call malformed (nesting is a property of the message, not of its encoding)
 * and that unpack to the same packed size (see the note on field number 0 below); and everything is freed
 * (LeakSanitizer). */
#include <string.h>

#include "fuzz.h"
#include "quiver/v1/quiver.pb-c.h"
#include "server/rpc.h"

typedef struct {
    size_t live, peak;
} counted_t;

/* Each block carries its size in front, so frees can be charged back. */
static void *counted_alloc(void *ud, size_t n)
{
    counted_t *c = ud;
    size_t *b = malloc(n + sizeof(size_t));
    if (!b)
        return NULL;
    *b = n;
    c->live += n + 16;
    if (c->live > c->peak)
        c->peak = c->live;
    return b + 1;
}

static void counted_free(void *ud, void *p)
{
    counted_t *c = ud;
    if (!p)
        return;
    size_t *b = (size_t *)p - 1;
    c->live -= *b + 16;
    free(b);
}

static void one(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    size_t estimate = 0;
    int verdict = qv_pb_check(d, data, size, &estimate);
    if (verdict == QV_PB_MALFORMED || verdict == QV_PB_NUL || verdict == QV_PB_UNKNOWN)
        return;
    counted_t cnt = {0, 0};
    ProtobufCAllocator al = {counted_alloc, counted_free, &cnt};
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &al, size, data);
    /* the estimate bounds the real peak, whether or not the budget would have admitted the request */
    FUZZ_CHECK(cnt.peak <= estimate);
    if (!m)
        return;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    FUZZ_CHECK(protobuf_c_message_pack(m, buf) == n);
    int again = qv_pb_check(d, buf, n, NULL);
    FUZZ_CHECK(again != QV_PB_MALFORMED && again != QV_PB_NUL);
    /* protobuf-c 1.4 accepts field number 0 when its key is a non-minimal varint (0x81 0x00) and keeps it as an
     * unknown field (at any nesting level), but rejects the minimal key it packs it back with; so the second unpack
     * may fail. Anything it does unpack packs to the same size. */
    ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n, buf);
    if (m2) {
        FUZZ_CHECK(protobuf_c_message_get_packed_size(m2) == n);
        protobuf_c_message_free_unpacked(m2, NULL);
    }
    free(buf);
    protobuf_c_message_free_unpacked(m, &al);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    one(&quiver__v1__upsert_request__descriptor, data, size);
    one(&quiver__v1__search_request__descriptor, data, size);
    return 0;
}

/* ---- seeds ---- */

static void add_packed(qv_fuzz_add_fn add, void *ctx, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    add(ctx, buf, n);
    free(buf);
}

/* A chain of `depth` negations around a condition. */
static Quiver__V1__Filter *negations(int depth, Quiver__V1__Filter *pool, Quiver__V1__Filter *leaf)
{
    Quiver__V1__Filter *f = leaf;
    for (int i = 0; i < depth; i++) {
        quiver__v1__filter__init(&pool[i]);
        pool[i].kind_case = QUIVER__V1__FILTER__KIND_NEGATE;
        pool[i].negate = f;
        f = &pool[i];
    }
    return f;
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    /* UpsertRequest: two points, every Value kind in the attribute map */
    char *kw_items[2] = {"red", ""};
    Quiver__V1__Keywords kws = QUIVER__V1__KEYWORDS__INIT;
    kws.n_values = 2;
    kws.values = kw_items;
    Quiver__V1__Value vals[5];
    for (int i = 0; i < 5; i++)
        quiver__v1__value__init(&vals[i]);
    vals[0].kind_case = QUIVER__V1__VALUE__KIND_INT_VALUE;
    vals[0].int_value = -7;
    vals[1].kind_case = QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
    vals[1].double_value = 2.5;
    vals[2].kind_case = QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
    vals[2].keyword_value = "blue";
    vals[3].kind_case = QUIVER__V1__VALUE__KIND_BOOL_VALUE;
    vals[3].bool_value = 1;
    vals[4].kind_case = QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
    vals[4].keywords_value = &kws;
    static char *names[5] = {"n_int", "n_dbl", "kw", "flag", "tags"};
    Quiver__V1__Point__AttributesEntry entries[5], *entry_ptrs[5];
    for (int i = 0; i < 5; i++) {
        quiver__v1__point__attributes_entry__init(&entries[i]);
        entries[i].key = names[i];
        entries[i].value = &vals[i];
        entry_ptrs[i] = &entries[i];
    }
    float vec[4] = {0.5f, -1, 2, 0};
    Quiver__V1__Point pts[2], *pt_ptrs[2];
    for (int i = 0; i < 2; i++) {
        quiver__v1__point__init(&pts[i]);
        pts[i].id = i ? "second" : "p1";
        pts[i].n_vector = 4;
        pts[i].vector = vec;
        pt_ptrs[i] = &pts[i];
    }
    pts[0].n_attributes = 5;
    pts[0].attributes = entry_ptrs;
    pts[0].text = "hello";
    Quiver__V1__UpsertRequest up = QUIVER__V1__UPSERT_REQUEST__INIT;
    up.collection = "coll";
    up.n_points = 2;
    up.points = pt_ptrs;
    add_packed(add, ctx, &up.base);

    /* SearchRequest: all(cond eq, any(cond any_of, negate(cond range))) */
    Quiver__V1__Condition c_eq = QUIVER__V1__CONDITION__INIT, c_in = QUIVER__V1__CONDITION__INIT,
                          c_rg = QUIVER__V1__CONDITION__INIT;
    c_eq.field = "kw";
    c_eq.op_case = QUIVER__V1__CONDITION__OP_EQ;
    c_eq.eq = &vals[2];
    Quiver__V1__Value *list_vals[2] = {&vals[0], &vals[1]};
    Quiver__V1__ValueList vl = QUIVER__V1__VALUE_LIST__INIT;
    vl.n_values = 2;
    vl.values = list_vals;
    c_in.field = "n_int";
    c_in.op_case = QUIVER__V1__CONDITION__OP_ANY_OF;
    c_in.any_of = &vl;
    Quiver__V1__Range rg = QUIVER__V1__RANGE__INIT;
    rg.lower_case = QUIVER__V1__RANGE__LOWER_GTE;
    rg.gte = -1;
    rg.upper_case = QUIVER__V1__RANGE__UPPER_LT;
    rg.lt = 3;
    c_rg.field = "n_dbl";
    c_rg.op_case = QUIVER__V1__CONDITION__OP_RANGE;
    c_rg.range = &rg;
    Quiver__V1__Filter f_eq = QUIVER__V1__FILTER__INIT, f_in = QUIVER__V1__FILTER__INIT,
                       f_rg = QUIVER__V1__FILTER__INIT, f_neg = QUIVER__V1__FILTER__INIT,
                       f_any = QUIVER__V1__FILTER__INIT, f_all = QUIVER__V1__FILTER__INIT;
    f_eq.kind_case = f_in.kind_case = f_rg.kind_case = QUIVER__V1__FILTER__KIND_COND;
    f_eq.cond = &c_eq;
    f_in.cond = &c_in;
    f_rg.cond = &c_rg;
    f_neg.kind_case = QUIVER__V1__FILTER__KIND_NEGATE;
    f_neg.negate = &f_rg;
    Quiver__V1__Filter *any_kids[2] = {&f_in, &f_neg}, *all_kids[2] = {&f_eq, &f_any};
    Quiver__V1__FilterList any_list = QUIVER__V1__FILTER_LIST__INIT, all_list = QUIVER__V1__FILTER_LIST__INIT;
    any_list.n_filters = 2;
    any_list.filters = any_kids;
    all_list.n_filters = 2;
    all_list.filters = all_kids;
    f_any.kind_case = QUIVER__V1__FILTER__KIND_ANY;
    f_any.any = &any_list;
    f_all.kind_case = QUIVER__V1__FILTER__KIND_ALL;
    f_all.all = &all_list;
    Quiver__V1__SearchParams params = QUIVER__V1__SEARCH_PARAMS__INIT;
    params.ef = 64;
    params.exact = 1;
    Quiver__V1__SearchRequest sr = QUIVER__V1__SEARCH_REQUEST__INIT;
    sr.collection = "coll";
    sr.n_vector = 4;
    sr.vector = vec;
    sr.k = 10;
    sr.filter = &f_all;
    sr.params = &params;
    sr.with_attributes = sr.with_text = 1;
    add_packed(add, ctx, &sr.base);

    /* nesting just under and just over the limit (the request itself is level 1) */
    static Quiver__V1__Filter chain[80];
    sr.filter = negations(QV_PB_MAX_DEPTH - 4, chain, &f_eq);
    add_packed(add, ctx, &sr.base);
    sr.filter = negations(QV_PB_MAX_DEPTH + 4, chain, &f_eq);
    add_packed(add, ctx, &sr.base);

    /* unknown fields (field 15, varint 0) inside the request and inside a point: just under the limit */
    uint8_t unk[2 * 200 + 8];
    size_t n = 0;
    unk[n++] = 0x12; /* points = 2, length-delimited */
    unk[n++] = 2 * 50;
    for (int i = 0; i < 50; i++)
        unk[n++] = 0x78, unk[n++] = 0;
    for (int i = 0; i < 150; i++)
        unk[n++] = 0x78, unk[n++] = 0;
    add(ctx, unk, n);
}
