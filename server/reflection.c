/* server/reflection.h. The embedded set is indexed once, on the first call: FileSet keeps each file's bytes as they
 * are, and FileView (proto/quiver/internal/descriptor_view.proto) the names in it. The set is built with the binary,
 * but is loaded like any input: a set that does not unpack makes every call fail with INTERNAL, and never crashes. */
#include "server/reflection.h"

#include <grpc/status.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quiver/internal/descriptor_view.pb-c.h"
#include "server/asset.h"

extern const qv_asset_t qv_api_descriptors[]; /* generated: api_descriptors.c */

#define MAX_FILES 32

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest request_t;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse response_t;

static struct {
    pthread_once_t once;
    Quiver__Internal__FileSet *set;
    Quiver__Internal__FileView *view[MAX_FILES];
    size_t n;
    bool ok;
} idx = {.once = PTHREAD_ONCE_INIT};

static void index_set(void)
{
    const qv_asset_t *a = &qv_api_descriptors[0];
    idx.set = a->path ? quiver__internal__file_set__unpack(NULL, a->len, a->data) : NULL;
    if (!idx.set || idx.set->n_file > MAX_FILES)
        return;
    for (size_t i = 0; i < idx.set->n_file; i++) {
        idx.view[i] = quiver__internal__file_view__unpack(NULL, idx.set->file[i].len, idx.set->file[i].data);
        if (!idx.view[i] || !idx.view[i]->name)
            return;
        idx.n = i + 1;
    }
    idx.ok = true;
}

static int file_named(const char *name)
{
    for (size_t i = 0; i < idx.n; i++)
        if (strcmp(idx.view[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* Does `sym` equal prefix + "." + name (prefix may be empty)? Returns the length matched (0: no) so that a caller
 * can look for members after it. */
static size_t match(const char *sym, const char *prefix, const char *name)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    if (pl) {
        if (strncmp(sym, prefix, pl) != 0 || sym[pl] != '.')
            return 0;
        pl++;
    }
    if (strncmp(sym + pl, name, nl) != 0 || (sym[pl + nl] != '\0' && sym[pl + nl] != '.'))
        return 0;
    return pl + nl;
}

/* Is `rest` (what follows a matched message name: "" or ".Nested...") declared inside message t: the message
 * itself, a nested message, or (with enums) a nested enum? */
static bool in_type(const Quiver__Internal__TypeView *t, const char *rest, bool enums)
{
    if (!*rest)
        return true;
    for (size_t i = 0; enums && i < t->n_enum_type; i++)
        if (t->enum_type[i]->name && strcmp(rest + 1, t->enum_type[i]->name) == 0)
            return true;
    for (size_t i = 0; i < t->n_nested_type; i++) {
        size_t m = t->nested_type[i]->name ? match(rest + 1, "", t->nested_type[i]->name) : 0;
        if (m && in_type(t->nested_type[i], rest + 1 + m, enums))
            return true;
    }
    return false;
}

static bool declares(const Quiver__Internal__FileView *f, const char *sym, bool messages_only)
{
    const char *pkg = f->package ? f->package : "";
    for (size_t i = 0; i < f->n_message_type; i++) {
        size_t m = f->message_type[i]->name ? match(sym, pkg, f->message_type[i]->name) : 0;
        if (m && in_type(f->message_type[i], sym + m, !messages_only))
            return true;
    }
    if (messages_only)
        return false;
    for (size_t i = 0; i < f->n_enum_type; i++) {
        size_t m = f->enum_type[i]->name ? match(sym, pkg, f->enum_type[i]->name) : 0;
        if (m && sym[m] == '\0')
            return true;
    }
    for (size_t i = 0; i < f->n_service; i++) {
        const Quiver__Internal__ServiceView *s = f->service[i];
        size_t m = s->name ? match(sym, pkg, s->name) : 0;
        if (!m)
            continue;
        if (sym[m] == '\0')
            return true;
        for (size_t k = 0; k < s->n_method; k++)
            if (s->method[k]->name && strcmp(sym + m + 1, s->method[k]->name) == 0)
                return true;
    }
    return false;
}

static int file_declaring(const char *sym, bool messages_only)
{
    for (size_t i = 0; i < idx.n; i++)
        if (declares(idx.view[i], sym, messages_only))
            return (int)i;
    return -1;
}

static int error_response(qv_call_ctx_t *ctx, response_t *r, const char *what, const char *name, qv_err_t *err)
{
    Grpc__Reflection__V1alpha__ErrorResponse *e = qv_arena_alloc(&ctx->arena, sizeof *e);
    char msg[300];
    snprintf(msg, sizeof msg, "%s '%.200s'", what, name);
    char *copy = qv_arena_strndup(&ctx->arena, msg, strlen(msg));
    if (!e || !copy)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__reflection__v1alpha__error_response__init(e);
    e->error_message = copy;
    e->error_code = GRPC_STATUS_NOT_FOUND;
    r->message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = e;
    return QV_OK;
}

/* File `first`, then its imports breadth first, each once. */
static int file_response(qv_call_ctx_t *ctx, response_t *r, int first, qv_err_t *err)
{
    Grpc__Reflection__V1alpha__FileDescriptorResponse *fr = qv_arena_alloc(&ctx->arena, sizeof *fr);
    ProtobufCBinaryData *out = qv_arena_array(&ctx->arena, idx.n, sizeof *out);
    if (!fr || !out)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__reflection__v1alpha__file_descriptor_response__init(fr);
    int order[MAX_FILES];
    bool seen[MAX_FILES] = {false};
    size_t n = 0;
    order[n++] = first;
    seen[first] = true;
    for (size_t q = 0; q < n; q++) {
        const Quiver__Internal__FileView *f = idx.view[order[q]];
        for (size_t d = 0; d < f->n_dependency; d++) {
            int k = file_named(f->dependency[d]);
            if (k >= 0 && !seen[k]) {
                seen[k] = true;
                order[n++] = k;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        out[i] = idx.set->file[order[i]];
    fr->n_file_descriptor_proto = n;
    fr->file_descriptor_proto = out;
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = fr;
    return QV_OK;
}

static int list_services(qv_call_ctx_t *ctx, response_t *r, qv_err_t *err)
{
    Grpc__Reflection__V1alpha__ListServiceResponse *l = qv_arena_alloc(&ctx->arena, sizeof *l);
    if (!l)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__reflection__v1alpha__list_service_response__init(l);
    size_t total = 0;
    for (size_t i = 0; i < idx.n; i++)
        total += idx.view[i]->n_service;
    l->service = qv_arena_array(&ctx->arena, total ? total : 1, sizeof *l->service);
    if (!l->service)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < idx.n; i++)
        for (size_t k = 0; k < idx.view[i]->n_service; k++) {
            const char *pkg = idx.view[i]->package ? idx.view[i]->package : "";
            const char *name = idx.view[i]->service[k]->name ? idx.view[i]->service[k]->name : "";
            char full[256];
            snprintf(full, sizeof full, "%s%s%s", pkg, *pkg ? "." : "", name);
            Grpc__Reflection__V1alpha__ServiceResponse *s = qv_arena_alloc(&ctx->arena, sizeof *s);
            char *copy = qv_arena_strndup(&ctx->arena, full, strlen(full));
            if (!s || !copy)
                return qv_err_set(err, QV_ENOMEM, "out of memory");
            grpc__reflection__v1alpha__service_response__init(s);
            s->name = copy;
            l->service[l->n_service++] = s;
        }
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r->list_services_response = l;
    return QV_OK;
}

static int extension_numbers(qv_call_ctx_t *ctx, response_t *r, const char *type, qv_err_t *err)
{
    if (file_declaring(type, true) < 0)
        return error_response(ctx, r, "no message type", type, err);
    Grpc__Reflection__V1alpha__ExtensionNumberResponse *e = qv_arena_alloc(&ctx->arena, sizeof *e);
    if (!e)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__reflection__v1alpha__extension_number_response__init(e);
    e->base_type_name = (char *)type;
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    r->all_extension_numbers_response = e;
    return QV_OK;
}

int qv_reflection_info(void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                       qv_err_t *err)
{
    (void)app;
    pthread_once(&idx.once, index_set);
    if (!idx.ok)
        return qv_err_set(err, QV_EIO, "the embedded descriptor set does not unpack: reflection is unavailable");
    const request_t *req = (const void *)msg;
    response_t *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__reflection__v1alpha__server_reflection_response__init(r);
    r->valid_host = req->host;
    r->original_request = (request_t *)req; /* packed before the request is freed (server/rpc.h) */
    int rc, k;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        rc = list_services(ctx, r, err);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        k = file_named(req->file_by_filename);
        rc = k < 0 ? error_response(ctx, r, "no file", req->file_by_filename, err) : file_response(ctx, r, k, err);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        k = file_declaring(req->file_containing_symbol, false);
        rc = k < 0 ? error_response(ctx, r, "no symbol", req->file_containing_symbol, err)
                   : file_response(ctx, r, k, err);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        rc = extension_numbers(ctx, r, req->all_extension_numbers_of_type, err);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        rc = error_response(ctx, r, "the API declares no extensions; none extends",
                            req->file_containing_extension ? req->file_containing_extension->containing_type : "",
                            err);
        break;
    default:
        return qv_err_set(err, QV_EINVAL, "a reflection request names none of its message_request fields");
    }
    if (rc == QV_OK)
        *resp = &r->base;
    return rc;
}
