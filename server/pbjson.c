/* The proto3 JSON mapping over protobuf-c descriptors (pbjson.h). */
#include "server/pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/rpc.h"

void qv_pbjson_name(const char *p, char *out, size_t size)
{
    size_t o = 0;
    bool up = false;
    for (; *p && o + 1 < size; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        out[o++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = false;
    }
    out[o] = '\0';
}

bool qv_pbjson_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t nl = strlen(e->name);
    /* quiver.v1's maps are all string-keyed; any other map would pass as a list of {key, value} entries */
    return e->n_fields == 2 && nl > 5 && strcmp(e->name + nl - 5, "Entry") == 0 && e->fields[0].id == 1 &&
           strcmp(e->fields[0].name, "key") == 0 && e->fields[0].type == PROTOBUF_C_TYPE_STRING &&
           e->fields[1].id == 2 && strcmp(e->fields[1].name, "value") == 0;
}

/* ---- decode ---- */

typedef struct {
    qv_arena_t *ar;
    size_t used, budget; /* bytes allocated for the message, and the most allowed */
    qv_err_t *err;
    char path[256];      /* the field being decoded, for messages */
} dctx_t;

static void *take(dctx_t *x, size_t n)
{
    x->used += n + 16;
    if (x->used > x->budget)
        return NULL;
    return qv_arena_alloc(x->ar, n ? n : 1);
}

static int bad(dctx_t *x, const char *what)
{
    if (x->used > x->budget)
        return qv_err_set(x->err, QV_EINVAL, "request would decode to more than %zu bytes (%dx its size); send "
                          "fewer, larger items", x->budget, QV_PB_DECODE_FACTOR);
    return qv_err_set(x->err, QV_EINVAL, "field '%s': %s", x->path[0] ? x->path : "(message)", what);
}

static int decode_msg(dctx_t *x, const ProtobufCMessageDescriptor *d, json_t *j, void *mem, int depth);

/* An integer from a JSON integer or a decimal string, within [lo, hi] (signed) or [0, uhi] (unsigned). */
static int get_int(dctx_t *x, json_t *v, bool is_signed, int64_t lo, int64_t hi, uint64_t uhi, int64_t *s,
                   uint64_t *u)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (is_signed ? (n < lo || n > hi) : (n < 0 || (uint64_t)n > uhi))
            return bad(x, "integer out of range");
        *s = (int64_t)n;
        *u = (uint64_t)n;
        return QV_OK;
    }
    if (json_is_real(v)) { /* 3.0 is an integer; 3.5 is not */
        double d = json_real_value(v);
        if (d != floor(d) || !(is_signed ? (d >= (double)lo && d <= (double)hi) : (d >= 0 && d <= (double)uhi)))
            return bad(x, "not an integer in range");
        *s = (int64_t)d;
        *u = (uint64_t)d;
        return QV_OK;
    }
    if (!json_is_string(v))
        return bad(x, "expected an integer");
    const char *t = json_string_value(v);
    char *end;
    errno = 0;
    if (is_signed) {
        long long n = strtoll(t, &end, 10);
        if (!*t || *end || errno || n < lo || n > hi)
            return bad(x, "expected an integer (a number or a decimal string) in range");
        *s = n;
        *u = (uint64_t)n;
    } else {
        if (*t == '-')
            return bad(x, "expected a non-negative integer");
        unsigned long long n = strtoull(t, &end, 10);
        if (!*t || *end || errno || n > uhi)
            return bad(x, "expected a non-negative integer (a number or a decimal string) in range");
        *s = (int64_t)n;
        *u = n;
    }
    return QV_OK;
}

static int get_double(dctx_t *x, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return QV_OK;
    }
    const char *t = json_string_value(v);
    if (t && strcmp(t, "NaN") == 0)
        *out = NAN;
    else if (t && strcmp(t, "Infinity") == 0)
        *out = INFINITY;
    else if (t && strcmp(t, "-Infinity") == 0)
        *out = -INFINITY;
    else
        return bad(x, "expected a number");
    return QV_OK;
}

/* One value of field f (a repeated field's element, or the field itself) into dst. */
static int decode_value(dctx_t *x, const ProtobufCFieldDescriptor *f, json_t *v, void *dst, int depth)
{
    int64_t s = 0;
    uint64_t u = 0;
    int rc = QV_OK;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if ((rc = get_int(x, v, true, INT32_MIN, INT32_MAX, 0, &s, &u)) == QV_OK)
            *(int32_t *)dst = (int32_t)s;
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = get_int(x, v, false, 0, 0, UINT32_MAX, &s, &u)) == QV_OK)
            *(uint32_t *)dst = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = get_int(x, v, true, INT64_MIN, INT64_MAX, 0, &s, &u)) == QV_OK)
            *(int64_t *)dst = s;
        break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = get_int(x, v, false, 0, 0, UINT64_MAX, &s, &u)) == QV_OK)
            *(uint64_t *)dst = u;
        break;
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if ((rc = get_double(x, v, &d)) == QV_OK)
            *(float *)dst = (float)d;
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = get_double(x, v, (double *)dst);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return bad(x, "expected true or false");
        *(protobuf_c_boolean *)dst = json_is_true(v);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
            if (!ev)
                return bad(x, "not a value of the enum");
            *(int *)dst = ev->value;
        } else if ((rc = get_int(x, v, true, INT32_MIN, INT32_MAX, 0, &s, &u)) == QV_OK) {
            *(int *)dst = (int)s;
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return bad(x, "expected a string");
        size_t n = json_string_length(v);
        if (memchr(json_string_value(v), 0, n))
            return bad(x, "a string may not hold a NUL character");
        char *c = take(x, n + 1);
        if (!c)
            return bad(x, "too large");
        memcpy(c, json_string_value(v), n + 1);
        *(char **)dst = c;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        void *m = take(x, md->sizeof_message);
        if (!m)
            return bad(x, "too large");
        protobuf_c_message_init(md, m);
        if ((rc = decode_msg(x, md, v, m, depth + 1)) == QV_OK)
            *(void **)dst = m;
        break;
    }
    default:
        return bad(x, "bytes fields are not supported in JSON");
    }
    return rc;
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d, const char *key)
{
    char camel[128];
    for (unsigned i = 0; i < d->n_fields; i++) {
        qv_pbjson_name(d->fields[i].name, camel, sizeof camel);
        if (strcmp(key, camel) == 0 || strcmp(key, d->fields[i].name) == 0)
            return &d->fields[i];
    }
    return NULL;
}

static int decode_field(dctx_t *x, const ProtobufCFieldDescriptor *f, json_t *v, uint8_t *mem, int depth)
{
    if (json_is_null(v))
        return QV_OK; /* null: the default */
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *c = (uint32_t *)(mem + f->quantifier_offset);
            if (*c && *c != f->id)
                return bad(x, "two members of one oneof");
            *c = f->id;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   f->type != PROTOBUF_C_TYPE_STRING) {
            *(protobuf_c_boolean *)(mem + f->quantifier_offset) = 1;
        }
        return decode_value(x, f, v, mem + f->offset, depth);
    }
    size_t n;
    bool map = qv_pbjson_is_map(f);
    if (map && !json_is_object(v))
        return bad(x, "expected an object (a map)");
    if (!map && !json_is_array(v))
        return bad(x, "expected an array");
    n = map ? json_object_size(v) : json_array_size(v);
    size_t es = elem_size(f);
    uint8_t *arr = take(x, n * es);
    if (!arr)
        return bad(x, "too large");
    if (map) {
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const char *k;
        json_t *val;
        size_t i = 0;
        json_object_foreach(v, k, val)
        {
            uint8_t *e = take(x, ed->sizeof_message);
            if (!e)
                return bad(x, "too large");
            protobuf_c_message_init(ed, e);
            json_t *key = json_string(k);
            int rc = key ? decode_value(x, &ed->fields[0], key, e + ed->fields[0].offset, depth + 1) : QV_ENOMEM;
            json_decref(key);
            if (rc == QV_OK)
                rc = decode_value(x, &ed->fields[1], val, e + ed->fields[1].offset, depth + 1);
            if (rc)
                return rc == QV_ENOMEM ? qv_err_set(x->err, rc, "out of memory") : rc;
            ((void **)arr)[i++] = e;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (json_is_null(e))
                return bad(x, "null inside an array");
            int rc = decode_value(x, f, e, arr + i * es, depth);
            if (rc)
                return rc;
        }
    }
    *(size_t *)(mem + f->quantifier_offset) = n;
    *(void **)(mem + f->offset) = arr;
    return QV_OK;
}

static int decode_msg(dctx_t *x, const ProtobufCMessageDescriptor *d, json_t *j, void *mem, int depth)
{
    if (depth > QV_PB_MAX_DEPTH)
        return bad(x, "nested too deeply");
    if (json_is_null(j))
        return QV_OK;
    if (!json_is_object(j))
        return bad(x, "expected an object");
    const char *key;
    json_t *v;
    size_t plen = strlen(x->path);
    json_object_foreach(j, key, v)
    {
        snprintf(x->path + plen, sizeof x->path - plen, "%s%s", plen ? "." : "", key);
        const ProtobufCFieldDescriptor *f = field_named(d, key);
        if (!f) {
            int rc = qv_err_set(x->err, QV_EINVAL, "unknown field '%s' in %s", x->path, d->name);
            x->path[plen] = '\0';
            return rc;
        }
        int rc = decode_field(x, f, v, mem, depth);
        if (rc)
            return rc;
        x->path[plen] = '\0';
    }
    return QV_OK;
}

int qv_pbjson_decode(qv_arena_t *ar, const ProtobufCMessageDescriptor *d, json_t *j, size_t input_bytes,
                     ProtobufCMessage **out, qv_err_t *err)
{
    dctx_t x = {.ar = ar, .budget = input_bytes * QV_PB_DECODE_FACTOR + QV_PB_DECODE_SLACK, .err = err};
    void *m = take(&x, d->sizeof_message);
    if (!m)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    protobuf_c_message_init(d, m);
    int rc = decode_msg(&x, d, j, m, 1);
    if (rc)
        return rc;
    *out = m;
    return QV_OK;
}

/* ---- encode ---- */

static json_t *encode_msg(const ProtobufCMessage *m);

static json_t *encode_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
        double d = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)p : *(const double *)p;
        if (isnan(d))
            return json_string("NaN");
        if (isinf(d))
            return json_string(d > 0 ? "Infinity" : "-Infinity");
        return json_real(d);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return ev ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p ? encode_msg(*(const ProtobufCMessage *const *)p) : json_null();
    default:
        return json_null(); /* bytes: none in quiver.v1 */
    }
}

/* Is a singular field at its default (left out of the JSON)? */
static bool is_default(const ProtobufCFieldDescriptor *f, const uint8_t *mem)
{
    const void *p = mem + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(mem + f->quantifier_offset) != f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        return !*(const protobuf_c_boolean *)(mem + f->quantifier_offset);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return !*(char *const *)p || !**(char *const *)p;
    case PROTOBUF_C_TYPE_MESSAGE: return !*(void *const *)p;
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p == 0 && !signbit(*(const double *)p);
    default: return elem_size(f) == 8 ? *(const uint64_t *)p == 0 : *(const uint32_t *)p == 0;
    }
}

static json_t *encode_msg(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const uint8_t *mem = (const uint8_t *)m;
    json_t *o = json_object();
    for (unsigned i = 0; o && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char name[128];
        qv_pbjson_name(f->name, name, sizeof name);
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(mem + f->quantifier_offset);
            if (!n)
                continue;
            const uint8_t *arr = *(const uint8_t *const *)(mem + f->offset);
            if (qv_pbjson_is_map(f)) {
                const ProtobufCFieldDescriptor *kf = &((const ProtobufCMessageDescriptor *)f->descriptor)->fields[0];
                const ProtobufCFieldDescriptor *vf = &((const ProtobufCMessageDescriptor *)f->descriptor)->fields[1];
                v = json_object();
                for (size_t k = 0; v && k < n; k++) {
                    const uint8_t *e = ((const uint8_t *const *)arr)[k];
                    const char *key = *(char *const *)(e + kf->offset); /* a string key (qv_pbjson_is_map) */
                    if (json_object_set_new(v, key ? key : "", encode_value(vf, e + vf->offset)) != 0) {
                        json_decref(v);
                        v = NULL;
                    }
                }
            } else {
                v = json_array();
                for (size_t k = 0; v && k < n; k++)
                    if (json_array_append_new(v, encode_value(f, arr + k * elem_size(f))) != 0) {
                        json_decref(v);
                        v = NULL;
                    }
            }
        } else {
            if (is_default(f, mem))
                continue;
            v = encode_value(f, mem + f->offset);
        }
        if (!v || json_object_set_new(o, name, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *qv_pbjson_encode(const ProtobufCMessage *m) { return encode_msg(m); }
