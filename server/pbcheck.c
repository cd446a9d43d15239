/* A pre-unpack walk over protobuf wire bytes that bounds message nesting. protobuf-c unpacks nested messages
 * recursively with no depth limit, so a 64 MiB request of nested `negate` filters would otherwise exhaust the
 * stack. The walk follows the descriptors: a length-delimited field whose descriptor says MESSAGE is entered one
 * level deeper; everything else is skipped by its wire type. Malformed framing is reported too, though protobuf-c
 * re-checks everything it unpacks. */
#include <string.h>

#include "server/rpc.h"

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

int qv_pb_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int max_depth)
{
    if (max_depth <= 0)
        return -1;
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        uint64_t key, v;
        if (varint(&p, end, &key))
            return -1;
        unsigned wt = (unsigned)(key & 7);
        uint64_t fieldno = key >> 3;
        switch (wt) {
        case 0:
            if (varint(&p, end, &v))
                return -1;
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        case 2: {
            if (varint(&p, end, &v) || v > (uint64_t)(end - p))
                return -1;
            const ProtobufCFieldDescriptor *f =
                fieldno <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)fieldno) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = qv_pb_depth_ok(f->descriptor, p, (size_t)v, max_depth - 1);
                if (rc)
                    return rc;
            }
            /* protobuf-c hands strings over NUL-terminated, so a NUL inside one would silently cut it short */
            if (f && f->type == PROTOBUF_C_TYPE_STRING && v && memchr(p, 0, (size_t)v))
                return -2;
            p += v;
            break;
        }
        default:
            return -1; /* groups (3, 4) are not used by proto3 */
        }
    }
    return 0;
}
