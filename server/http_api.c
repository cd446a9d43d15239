/* The HTTP/JSON API (http_api.h): a request is decoded from JSON into the method's message (server/pbjson.h), run by
 * the same handler gRPC calls run, and the answer encoded back. */
#include "server/http_api.h"

#include <grpc/status.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "server/console.h"
#include "server/pbjson.h"
#include "server/status.h"

int qv_http_status_of(int st)
{
    switch (st) {
    case GRPC_STATUS_OK: return 200;
    case GRPC_STATUS_INVALID_ARGUMENT: case GRPC_STATUS_FAILED_PRECONDITION: case GRPC_STATUS_OUT_OF_RANGE: return 400;
    case GRPC_STATUS_UNAUTHENTICATED: return 401;
    case GRPC_STATUS_PERMISSION_DENIED: return 403;
    case GRPC_STATUS_NOT_FOUND: return 404;
    case GRPC_STATUS_ALREADY_EXISTS: case GRPC_STATUS_ABORTED: return 409;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return 429;
    case GRPC_STATUS_CANCELLED: return 499;
    case GRPC_STATUS_UNIMPLEMENTED: return 501;
    case GRPC_STATUS_UNAVAILABLE: return 503;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return 504;
    default: return 500;
    }
}

static void reply_json(qv_http_reply_t *out, int status, json_t *j)
{
    out->status = status;
    out->content_type = "application/json";
    out->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!out->body) {
        out->status = 500;
        out->body = strdup("{\"code\":13,\"status\":\"INTERNAL\",\"message\":\"out of memory\"}");
    }
    out->len = out->body ? strlen(out->body) : 0;
}

static void reply_error(qv_http_reply_t *out, int grpc_status, const char *msg)
{
    reply_json(out, qv_http_status_of(grpc_status), json_pack("{s:i, s:s, s:s}", "code", grpc_status, "status",
                                                              qv_status_name(grpc_status), "message", msg));
}

/* The handler and descriptors of /v1/<Service>/<Method>; NULL when there is none. A watch (QV_STREAM_WATCH) is not
 * served over HTTP; a bidirectional stream (QV_STREAM_EACH, reflection) is, as one request and its one response. */
static const qv_handler_t *find(const qv_http_api_t *api, const char *svc, size_t svc_len, const char *meth,
                                const ProtobufCServiceDescriptor **sdp, const ProtobufCMethodDescriptor **md)
{
    for (size_t i = 0; api->services[i]; i++) {
        const ProtobufCServiceDescriptor *sd = api->services[i];
        if (strlen(sd->short_name) != svc_len || memcmp(sd->short_name, svc, svc_len) != 0)
            continue;
        *sdp = sd;
        *md = protobuf_c_service_descriptor_get_method_by_name(sd, meth);
        if (!*md)
            return NULL;
        char name[160];
        snprintf(name, sizeof name, "%s/%s", sd->short_name, meth);
        char path[200];
        snprintf(path, sizeof path, "/%s/%s", sd->name, meth);
        for (const qv_handler_t *h = api->handlers; h->name; h++)
            if (strcmp(h->name, name) == 0)
                return qv_rpc_stream_kind(path) == QV_STREAM_WATCH ? NULL : h;
    }
    return NULL;
}

/* Runs handler h on req (NULL: the default message) and answers. */
static void call(const qv_http_api_t *api, const qv_handler_t *h, const ProtobufCMethodDescriptor *md,
                 const char *path, const char *auth, const char *timeout_ms, const char *body, size_t len,
                 qv_http_reply_t *out)
{
    int64_t t0 = qv_mono_ns();
    char msg[QV_ERR_MSG_MAX];
    int st = qv_keys_authorize(api->keys, h->role, path, auth, auth ? strlen(auth) : 0, msg, sizeof msg);
    qv_call_ctx_t ctx = {.method = path, .resp_budget = (size_t)api->max_message_bytes};
    qv_arena_init(&ctx.arena);
    if (st == GRPC_STATUS_OK && len > (size_t)api->max_message_bytes) {
        snprintf(msg, sizeof msg, "request of %zu bytes exceeds the %d byte message limit (--max-message-mb)", len,
                 api->max_message_bytes);
        st = GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (st == GRPC_STATUS_OK && timeout_ms) {
        char *end;
        long long ms = strtoll(timeout_ms, &end, 10);
        if (*end || ms <= 0 || ms > 86400000LL) {
            snprintf(msg, sizeof msg, "X-Timeout-Ms must be 1..86400000 milliseconds");
            st = GRPC_STATUS_INVALID_ARGUMENT;
        } else {
            ctx.deadline_ns = t0 + ms * 1000000LL;
        }
    }
    ProtobufCMessage *req = NULL, *resp = NULL;
    qv_err_t err;
    qv_err_clear(&err);
    if (st == GRPC_STATUS_OK) {
        json_error_t je;
        json_t *j = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : json_object();
        int rc = QV_OK;
        if (!j)
            rc = qv_err_set(&err, QV_EINVAL, "request is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                            je.column);
        else
            rc = qv_pbjson_decode(&ctx.arena, md->input, j, len, &req, &err);
        json_decref(j);
        if (rc == QV_OK)
            rc = h->fn(api->app, &ctx, req, &resp, &err);
        if (rc == QV_OK && resp && protobuf_c_message_get_packed_size(resp) > (size_t)api->max_message_bytes)
            rc = qv_err_set(&err, QV_ETOOBIG, "response exceeds the %d byte message limit", api->max_message_bytes);
        st = qv_status_of(rc);
        if (rc)
            snprintf(msg, sizeof msg, "%s", err.msg[0] ? err.msg : qv_strerror(rc));
    }
    if (st == GRPC_STATUS_OK)
        reply_json(out, 200, resp ? qv_pbjson_encode(resp) : json_object());
    else
        reply_error(out, st, msg);
    qv_arena_free(&ctx.arena);
    if (api->observe)
        api->observe(md->name, st, qv_mono_ns() - t0);
}

static json_t *schema_ref(const char *msg_name)
{
    char ref[256];
    snprintf(ref, sizeof ref, "#/components/schemas/%s", msg_name);
    return json_pack("{s:s}", "$ref", ref);
}

/* The JSON schema of one field's value. */
static json_t *field_schema(const ProtobufCFieldDescriptor *f, json_t *schemas);

static void add_message(const ProtobufCMessageDescriptor *d, json_t *schemas)
{
    if (json_object_get(schemas, d->name))
        return;
    json_t *props = json_object(), *s = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    json_object_set_new(schemas, d->name, s); /* before the fields: recursive messages stop here */
    for (unsigned i = 0; i < d->n_fields; i++) {
        char name[128];
        qv_pbjson_name(d->fields[i].name, name, sizeof name);
        json_object_set_new(props, name, field_schema(&d->fields[i], schemas));
    }
}

static json_t *scalar_schema(const ProtobufCFieldDescriptor *f, json_t *schemas)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return json_pack("{s:s, s:s}", "type", "integer", "format", "int32");
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return json_pack("{s:s, s:s}", "type", "string", "format", "int64");
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE:
        return json_pack("{s:s}", "type", "number");
    case PROTOBUF_C_TYPE_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        json_t *vals = json_array();
        for (unsigned i = 0; i < ed->n_values; i++)
            json_array_append_new(vals, json_string(ed->values[i].name));
        return json_pack("{s:s, s:o}", "type", "string", "enum", vals);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        add_message(f->descriptor, schemas);
        return schema_ref(((const ProtobufCMessageDescriptor *)f->descriptor)->name);
    default:
        return json_pack("{s:s}", "type", "string");
    }
}

static json_t *field_schema(const ProtobufCFieldDescriptor *f, json_t *schemas)
{
    if (qv_pbjson_is_map(f)) {
        const ProtobufCMessageDescriptor *e = f->descriptor;
        return json_pack("{s:s, s:o}", "type", "object", "additionalProperties", scalar_schema(&e->fields[1], schemas));
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return json_pack("{s:s, s:o}", "type", "array", "items", scalar_schema(f, schemas));
    return scalar_schema(f, schemas);
}

static void openapi(const qv_http_api_t *api, qv_http_reply_t *out)
{
    json_t *paths = json_object(), *schemas = json_object();
    json_t *err_schema = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}}", "type", "object", "properties", "code",
                                   "type", "integer", "status", "type", "string", "message", "type", "string");
    json_object_set_new(schemas, "Error", err_schema);
    for (size_t i = 0; api->services[i]; i++) {
        const ProtobufCServiceDescriptor *sd = api->services[i];
        for (unsigned k = 0; k < sd->n_methods; k++) {
            const ProtobufCMethodDescriptor *md = &sd->methods[k];
            const ProtobufCServiceDescriptor *found_sd;
            const ProtobufCMethodDescriptor *found;
            if (!find(api, sd->short_name, strlen(sd->short_name), md->name, &found_sd, &found))
                continue; /* not served (e.g. a watch) */
            add_message(md->input, schemas);
            add_message(md->output, schemas);
            char p[256];
            snprintf(p, sizeof p, "/v1/%s/%s", sd->short_name, md->name);
            json_t *op = json_pack(
                "{s:s, s:[s], s:{s:b, s:{s:{s:o}}}, s:{s:{s:s, s:{s:{s:o}}}, s:{s:s, s:{s:{s:o}}}}}", "operationId",
                md->name, "tags", sd->short_name, "requestBody", "required", 1, "content", "application/json",
                "schema", schema_ref(md->input->name), "responses", "200", "description", "OK", "content",
                "application/json", "schema", schema_ref(md->output->name), "default", "description",
                "an error: the gRPC status name and code, and a message", "content", "application/json", "schema",
                schema_ref("Error"));
            json_object_set_new(paths, p, json_pack("{s:o}", "post", op));
        }
    }
    json_t *doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:o, s:{s:{s:s, s:s}}}, s:[{s:[]}]}", "openapi",
                            "3.0.3", "info", "title", "Quiver", "version", "v1", "description",
                            "quiver.v1 over HTTP/JSON (the proto3 JSON mapping); the same methods as gRPC",
                            "paths", paths, "components", "schemas", schemas, "securitySchemes", "apiKey", "type",
                            "http", "scheme", "bearer", "security", "apiKey");
    reply_json(out, 200, doc);
}

bool qv_http_api_serve(const qv_http_api_t *api, const char *method, const char *path, const char *auth,
                       const char *timeout_ms, const char *body, size_t len, qv_http_reply_t *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (strcmp(method, "GET") != 0)
            return false;
        if (path[1] == 'h') {
            reply_json(out, 200, json_pack("{s:s}", "status", "ok"));
            return true;
        }
        /* ready: what Admin.Health says (a failed store, or a coordinator that reaches no shard: 503) */
        const ProtobufCServiceDescriptor *sd;
        const ProtobufCMethodDescriptor *md;
        const qv_handler_t *h = find(api, "Admin", 5, "Health", &sd, &md);
        qv_call_ctx_t ctx = {.method = path, .resp_budget = (size_t)api->max_message_bytes};
        qv_arena_init(&ctx.arena);
        ProtobufCMessage *resp = NULL;
        qv_err_t err;
        qv_err_clear(&err);
        ProtobufCMessage *req = qv_arena_alloc(&ctx.arena, md ? md->input->sizeof_message : 1);
        int rc = QV_EIO;
        if (h && req) {
            protobuf_c_message_init(md->input, req);
            rc = h->fn(api->app, &ctx, req, &resp, &err);
        }
        json_t *j = rc == QV_OK && resp ? qv_pbjson_encode(resp) : NULL;
        const char *status = j ? json_string_value(json_object_get(j, "status")) : NULL;
        bool ok = status && strcmp(status, "STATUS_SERVING") == 0;
        reply_json(out, ok ? 200 : 503, j ? j : json_pack("{s:s}", "reason", err.msg));
        qv_arena_free(&ctx.arena);
        return true;
    }
    if (strcmp(path, "/openapi.json") == 0 && strcmp(method, "GET") == 0) {
        openapi(api, out);
        return true;
    }
    if (strcmp(method, "GET") == 0) { /* the web console (server/console.h) */
        const char *want = strcmp(path, "/") == 0 ? "/console/index.html" : path;
        for (const qv_asset_t *a = qv_assets; a->path; a++)
            if (strcmp(a->path, want) == 0) {
                out->status = 200;
                out->content_type = a->content_type;
                out->body = malloc(a->len ? a->len : 1);
                if (!out->body) {
                    reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
                    return true;
                }
                memcpy(out->body, a->data, a->len);
                out->len = a->len;
                return true;
            }
    }
    if (strncmp(path, "/v1/", 4) != 0)
        return false;
    const char *svc = path + 4, *slash = strchr(svc, '/');
    const ProtobufCServiceDescriptor *sd = NULL;
    const ProtobufCMethodDescriptor *md = NULL;
    const qv_handler_t *h = slash ? find(api, svc, (size_t)(slash - svc), slash + 1, &sd, &md) : NULL;
    if (!h) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "no method %.200s (POST /v1/<Service>/<Method>; GET /openapi.json lists them; Health/Watch is a "
                 "gRPC stream only)",
                 path);
        reply_error(out, GRPC_STATUS_UNIMPLEMENTED, msg);
        return true;
    }
    if (strcmp(method, "POST") != 0) {
        reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "API methods are called with POST and a JSON body");
        out->status = 405;
        return true;
    }
    char grpc_path[300];
    snprintf(grpc_path, sizeof grpc_path, "/%s/%s", sd->name, md->name);
    call(api, h, md, grpc_path, auth, timeout_ms, body, len, out);
    return true;
}
