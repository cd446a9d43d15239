/* gRPC reflection's answers from the embedded descriptor set (server/reflection.h) and the health service's Check and
 * Watch rules (server/grpc_health.h), called as the server loop calls them: no network, no server started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <grpc/status.h>
#include <stdbool.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quiver/internal/descriptor_view.pb-c.h"
#include "quiver/v1/quiver.pb-c.h"
#include "server/grpc_health.h"
#include "server/reflection.h"

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest request_t;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse response_t;

static qv_call_ctx_t ctx;

static int setup(void **state)
{
    (void)state;
    memset(&ctx, 0, sizeof ctx);
    qv_arena_init(&ctx.arena);
    ctx.resp_budget = 1 << 20;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    qv_arena_free(&ctx.arena);
    return 0;
}

static const response_t *ask(request_t *req)
{
    ProtobufCMessage *resp = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    assert_int_equal(qv_reflection_info(NULL, &ctx, &req->base, &resp, &err), QV_OK);
    assert_non_null(resp);
    /* what the server loop does next: the answer packs, and points at the request it answers */
    uint8_t buf[1 << 16];
    assert_true(protobuf_c_message_get_packed_size(resp) <= sizeof buf);
    protobuf_c_message_pack(resp, buf);
    const response_t *r = (const void *)resp;
    assert_ptr_equal(r->original_request, req);
    return r;
}

/* The names of the files in a file_descriptor_response, in order, joined with spaces. */
static void file_names(const response_t *r, char *out, size_t size)
{
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    out[0] = '\0';
    const Grpc__Reflection__V1alpha__FileDescriptorResponse *f = r->file_descriptor_response;
    for (size_t i = 0; i < f->n_file_descriptor_proto; i++) {
        Quiver__Internal__FileView *v = quiver__internal__file_view__unpack(NULL, f->file_descriptor_proto[i].len,
                                                                             f->file_descriptor_proto[i].data);
        assert_non_null(v);
        strncat(out, i ? " " : "", size - strlen(out) - 1);
        strncat(out, v->name, size - strlen(out) - 1);
        quiver__internal__file_view__free_unpacked(v, NULL);
    }
}

static void test_list_services(void **state)
{
    (void)state;
    request_t req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = "*";
    req.host = "db1";
    const response_t *r = ask(&req);
    assert_string_equal(r->valid_host, "db1");
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    const char *want[] = {"quiver.v1.Quiver", "quiver.v1.Admin", "grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection"};
    assert_int_equal(r->list_services_response->n_service, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(r->list_services_response->service[i]->name, want[i]);
}

static void test_symbols(void **state)
{
    (void)state;
    static const struct {
        const char *sym;
        const char *files; /* NULL: NOT_FOUND */
    } cases[] = {
        {"quiver.v1.Quiver", "quiver/v1/quiver.proto"},
        {"quiver.v1.Admin.Stats", "quiver/v1/quiver.proto"},          /* a method */
        {"quiver.v1.SearchRequest", "quiver/v1/quiver.proto"},        /* a message */
        {"quiver.v1.HealthResponse.Status", "quiver/v1/quiver.proto"}, /* an enum in a message */
        {"quiver.v1.Metric", "quiver/v1/quiver.proto"},               /* a top-level enum */
        {"grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"},
        {"grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"},
        {"quiver.v1", NULL},                  /* a package is not a symbol */
        {"quiver.v1.Quive", NULL},            /* a prefix of a name */
        {"quiver.v1.QuiverX", NULL},          /* a name and more */
        {"quiver.v1.Quiver.Nope", NULL},      /* no such method */
        {"quiver.v1.SearchRequest.k", NULL},  /* fields are not looked up */
        {"Quiver", NULL},                     /* not package-qualified */
        {"", NULL},
        {"quiver.internal.FileView", NULL},   /* internal: not in the served set */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request_t req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
        req.message_request_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        req.file_containing_symbol = (char *)cases[i].sym;
        const response_t *r = ask(&req);
        if (!cases[i].files) {
            assert_int_equal(r->message_response_case,
                             GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
            assert_int_equal(r->error_response->error_code, GRPC_STATUS_NOT_FOUND);
            continue;
        }
        char names[256];
        file_names(r, names, sizeof names);
        assert_string_equal(names, cases[i].files);
    }
}

static void test_files_and_extensions(void **state)
{
    (void)state;
    request_t req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    req.file_by_filename = "grpc/health/v1/health.proto";
    char names[256];
    file_names(ask(&req), names, sizeof names);
    assert_string_equal(names, "grpc/health/v1/health.proto");
    req.file_by_filename = "health.proto";
    assert_int_equal(ask(&req)->error_response->error_code, GRPC_STATUS_NOT_FOUND);

    req.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
    req.all_extension_numbers_of_type = "quiver.v1.Point";
    const response_t *r = ask(&req);
    assert_string_equal(r->all_extension_numbers_response->base_type_name, "quiver.v1.Point");
    assert_int_equal(r->all_extension_numbers_response->n_extension_number, 0);
    req.all_extension_numbers_of_type = "quiver.v1.Metric"; /* an enum, not a message */
    assert_int_equal(ask(&req)->message_response_case,
                     GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);

    Grpc__Reflection__V1alpha__ExtensionRequest ext = GRPC__REFLECTION__V1ALPHA__EXTENSION_REQUEST__INIT;
    ext.containing_type = "quiver.v1.Point";
    ext.extension_number = 100;
    req.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
    req.file_containing_extension = &ext;
    assert_int_equal(ask(&req)->error_response->error_code, GRPC_STATUS_NOT_FOUND);

    /* a request that names none of the alternatives is a bad request, which ends the stream */
    request_t none = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    qv_err_t err;
    assert_int_equal(qv_reflection_info(NULL, &ctx, &none.base, &resp, &err), QV_EINVAL);
}

/* A fake Admin.Health: *(int *)app is what it does (0 serving, 1 not serving, 2 fails). */
static int fake_health(void *app, qv_call_ctx_t *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                       qv_err_t *err)
{
    (void)req;
    int mode = *(int *)app;
    if (mode == 2)
        return qv_err_set(err, QV_ETIMEDOUT, "no shard answered in time");
    Quiver__V1__HealthResponse *h = qv_arena_alloc(&c->arena, sizeof *h);
    quiver__v1__health_response__init(h);
    h->status = mode == 0 ? QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING
                          : QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_NOT_SERVING;
    *resp = &h->base;
    return QV_OK;
}

static int health(bool watch, int mode, const char *service, int *status)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    int rc = (watch ? qv_grpc_health_watch : qv_grpc_health_check)(fake_health, &mode, &ctx, &req.base, &resp, &err);
    *status = rc ? -1 : (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status;
    return rc;
}

static void test_health_check_and_watch(void **state)
{
    (void)state;
    int st;
    assert_int_equal(health(false, 0, "", &st), QV_OK);
    assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(health(false, 1, "quiver.v1.Quiver", &st), QV_OK);
    assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    assert_int_equal(health(false, 0, "x.Y", &st), QV_ENOTFOUND);
    assert_int_equal(health(false, 2, "", &st), QV_ETIMEDOUT);
    /* Watch: an unknown service and a failing Admin.Health are answers, not errors that would end the stream */
    assert_int_equal(health(true, 0, "grpc.reflection.v1alpha.ServerReflection", &st), QV_OK);
    assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(health(true, 0, "x.Y", &st), QV_OK);
    assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
    assert_int_equal(health(true, 2, "", &st), QV_OK);
    assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
}

static void test_stream_kinds(void **state)
{
    (void)state;
    assert_int_equal(qv_rpc_stream_kind("/grpc.health.v1.Health/Watch"), QV_STREAM_WATCH);
    assert_int_equal(qv_rpc_stream_kind("/grpc.health.v1.Health/Check"), QV_STREAM_NONE);
    assert_int_equal(qv_rpc_stream_kind("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
                     QV_STREAM_EACH);
    assert_int_equal(qv_rpc_stream_kind("/quiver.v1.Quiver/Search"), QV_STREAM_NONE);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbols, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_and_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_check_and_watch, setup, teardown),
        cmocka_unit_test(test_stream_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
