/* A pre-unpack walk over protobuf wire bytes (the contract is in rpc.h, qv_pb_check).
 *
 * protobuf-c unpacks nested messages recursively with no depth limit, allocates every unknown field it meets, and
 * allocates a struct per repeated sub-message however small its encoding, so a request of a few MiB could cost
 * gigabytes (a body of `78 00` pairs: ~45 bytes of heap per 2 wire bytes). The walk follows the descriptors: a
 * length-delimited field whose descriptor says MESSAGE is entered one level deeper; everything else is skipped by
 * its wire type; every field is charged what protobuf-c would allocate for it. The estimate is an upper bound of
 * protobuf-c 1.4's unpack (message structs, string and bytes copies, repeated arrays, unknown-field records and
 * their copies, and the temporary per-field scan records it keeps while unpacking one message), each allocation
 * with malloc's overhead; exactness does not matter, proportionality to the wire size does.
 *
 * Scan records are temporary: protobuf-c scans a message's fields into them, unpacks the fields (sub-messages
 * recursively, its own records still alive) and frees them before it returns. So they are charged once for the
 * worst chain, not per message: at each depth the largest field count met there, summed over the depths (a bound
 * on any chain of nested messages being unpacked at once). Charging them per message made a valid Upsert of 10,000
 * small points (347 KB) look like 8 MB and fail the budget. */
#include <string.h>

#include "server/rpc.h"

#define MALLOC_OVERHEAD 16 /* glibc chunk header and alignment, per allocation */
/* protobuf-c's ScannedMember (32 bytes), one per field occurrence while it unpacks a message, kept in slabs that
 * double in size: up to twice that */
#define SCAN_RECORD 64
#define UNKNOWN_RECORD 24  /* sizeof(ProtobufCMessageUnknownField) */

typedef struct {
    size_t decoded;                    /* what stays allocated once unpacked */
    size_t unknown;
    size_t max_fields[QV_PB_MAX_DEPTH]; /* the most fields any message at each depth has (scan records) */
} walk_t;

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Elements a packed array of `bytes` wire bytes holds at most: fixed-width types exactly, varints one per byte. */
static size_t packed_count(const ProtobufCFieldDescriptor *f, size_t bytes)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32:
        return bytes / 4;
    case PROTOBUF_C_TYPE_DOUBLE: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64:
        return bytes / 8;
    default:
        return bytes;
    }
}

/* Bytes one element of a repeated field takes in protobuf-c's array. */
static size_t elt_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return 8;
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int depth, walk_t *w)
{
    if (depth <= 0)
        return QV_PB_MALFORMED;
    w->decoded += d->sizeof_message + MALLOC_OVERHEAD;
    const uint8_t *p = data, *end = data + len;
    size_t nrepeated = 0, nfields = 0; /* repeated fields met (each array is one allocation), and all fields */
    while (p < end) {
        const uint8_t *field_start = p;
        uint64_t key, v;
        if (varint(&p, end, &key))
            return QV_PB_MALFORMED;
        unsigned wt = (unsigned)(key & 7);
        uint64_t fieldno = key >> 3;
        const ProtobufCFieldDescriptor *f =
            fieldno <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)fieldno) : NULL;
        switch (wt) {
        case 0:
            if (varint(&p, end, &v))
                return QV_PB_MALFORMED;
            break;
        case 1:
            if (end - p < 8)
                return QV_PB_MALFORMED;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return QV_PB_MALFORMED;
            p += 4;
            break;
        case 2:
            if (varint(&p, end, &v) || v > (uint64_t)(end - p))
                return QV_PB_MALFORMED;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = walk(f->descriptor, p, (size_t)v, depth - 1, w);
                if (rc)
                    return rc;
            } else if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES)) {
                /* protobuf-c hands strings over NUL-terminated, so a NUL inside one would silently cut it short */
                if (f->type == PROTOBUF_C_TYPE_STRING && v && memchr(p, 0, (size_t)v))
                    return QV_PB_NUL;
                w->decoded += (size_t)v + 1 + MALLOC_OVERHEAD;
            } else if (f && f->label == PROTOBUF_C_LABEL_REPEATED) {
                w->decoded += packed_count(f, (size_t)v) * elt_size(f); /* a packed array */
            }
            p += v;
            break;
        default:
            return QV_PB_MALFORMED; /* groups (3, 4) are not used by proto3 */
        }
        nfields++;
        if (!f) {
            if (++w->unknown > QV_PB_MAX_UNKNOWN)
                return QV_PB_UNKNOWN;
            w->decoded += UNKNOWN_RECORD + (size_t)(p - field_start) + MALLOC_OVERHEAD;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            w->decoded += elt_size(f);
            nrepeated++;
        }
    }
    w->decoded += nrepeated * MALLOC_OVERHEAD;
    size_t level = QV_PB_MAX_DEPTH - (size_t)depth;
    if (nfields > w->max_fields[level])
        w->max_fields[level] = nfields;
    return QV_PB_OK;
}

int qv_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, size_t *decoded)
{
    walk_t w = {0};
    int rc = walk(d, data, len, QV_PB_MAX_DEPTH, &w);
    for (size_t i = 0; i < QV_PB_MAX_DEPTH; i++)
        w.decoded += w.max_fields[i] * SCAN_RECORD;
    if (decoded)
        *decoded = w.decoded;
    if (rc == QV_PB_OK && w.decoded > len * QV_PB_DECODE_FACTOR + QV_PB_DECODE_SLACK)
        rc = QV_PB_BUDGET;
    return rc;
}
