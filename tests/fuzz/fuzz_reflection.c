/* Fuzz target: a reflection stream's request message as the server receives it (server/pbcheck.c, protobuf-c's
 * unpack) and the answer server/reflection.c builds for it from the embedded descriptor set.
 *
 * Whatever the walk accepts and protobuf-c unpacks must get either an answer or QV_EINVAL (a request that names none
 * of the alternatives); an answer must pack, unpack again (but for protobuf-c's field-0 quirk) as a
 * ServerReflectionResponse whose original_request packs to the request's own size, and carry exactly one
 * alternative: files (each of which unpacks as a file of the set), services, extension numbers or a NOT_FOUND
 * error. Everything is freed (LeakSanitizer). */
#include <string.h>

#include "fuzz.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quiver/internal/descriptor_view.pb-c.h"
#include "server/reflection.h"

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest request_t;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse response_t;

static void check_answer(const request_t *req, const ProtobufCMessage *resp)
{
    size_t n = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(n ? n : 1);
    FUZZ_CHECK(buf && protobuf_c_message_pack(resp, buf) == n);
    response_t *r = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, n, buf);
    if (!r) {
        /* protobuf-c 1.4 keeps a field number 0 whose key is a non-minimal varint as an unknown field, then packs it
         * with the minimal key, which it refuses (see fuzz_request.c): only then may the echoed request not unpack */
        size_t qn = protobuf_c_message_get_packed_size(&req->base);
        uint8_t *q = malloc(qn ? qn : 1);
        protobuf_c_message_pack(&req->base, q);
        FUZZ_CHECK(!protobuf_c_message_unpack(req->base.descriptor, NULL, qn, q));
        free(q);
        free(buf);
        return;
    }
    FUZZ_CHECK(r->original_request);
    FUZZ_CHECK(protobuf_c_message_get_packed_size(&r->original_request->base) ==
               protobuf_c_message_get_packed_size(&req->base));
    switch (r->message_response_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE:
        FUZZ_CHECK(r->file_descriptor_response->n_file_descriptor_proto > 0);
        for (size_t i = 0; i < r->file_descriptor_response->n_file_descriptor_proto; i++) {
            const ProtobufCBinaryData *f = &r->file_descriptor_response->file_descriptor_proto[i];
            Quiver__Internal__FileView *v = quiver__internal__file_view__unpack(NULL, f->len, f->data);
            FUZZ_CHECK(v && v->name);
            quiver__internal__file_view__free_unpacked(v, NULL);
        }
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE:
        FUZZ_CHECK(r->list_services_response->n_service == 4);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE:
        FUZZ_CHECK(r->all_extension_numbers_response->n_extension_number == 0);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE:
        FUZZ_CHECK(r->error_response->error_code == 5 && r->error_response->error_message[0]);
        break;
    default:
        FUZZ_CHECK(0);
    }
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d = &grpc__reflection__v1alpha__server_reflection_request__descriptor;
    if (size > (1u << 16) || qv_pb_check(d, data, size, NULL) != QV_PB_OK)
        return 0;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
    if (!m)
        return 0;
    qv_call_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    qv_arena_init(&ctx.arena);
    ctx.resp_budget = 64u << 20;
    ProtobufCMessage *resp = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = qv_reflection_info(NULL, &ctx, m, &resp, &err);
    const request_t *req = (const void *)m;
    if (rc == QV_OK)
        check_answer(req, resp);
    else /* only a request that names none of the alternatives is refused */
        FUZZ_CHECK(rc == QV_EINVAL && req->message_request_case == 0);
    qv_arena_free(&ctx.arena);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    static const char *const symbols[] = {"quiver.v1.Quiver",      "quiver.v1.Quiver.Search",
                                          "quiver.v1.HealthResponse.Status", "grpc.health.v1.Health",
                                          "quiver.v1.Point",       "quiver"};
    for (int kind = 3; kind <= 7; kind++)
        for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
            request_t req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
            Grpc__Reflection__V1alpha__ExtensionRequest ext = GRPC__REFLECTION__V1ALPHA__EXTENSION_REQUEST__INIT;
            req.host = "h";
            req.message_request_case = (Grpc__Reflection__V1alpha__ServerReflectionRequest__MessageRequestCase)kind;
            if (kind == 5) {
                ext.containing_type = (char *)symbols[i];
                req.file_containing_extension = &ext;
            } else {
                req.file_by_filename = (char *)(kind == 3 ? "quiver/v1/quiver.proto" : symbols[i]);
            }
            size_t n = protobuf_c_message_get_packed_size(&req.base);
            uint8_t *buf = malloc(n ? n : 1);
            protobuf_c_message_pack(&req.base, buf);
            add(ctx, buf, n);
            free(buf);
        }
}
