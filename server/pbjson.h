/* The proto3 JSON mapping, generic over protobuf-c descriptors, for the HTTP/JSON API (server/http_api.c): no
 * message is mapped by hand, so every method of quiver.v1 (and any message added later) has a JSON form.
 *
 * Encoding follows the canonical mapping: field names in lowerCamelCase (the proto name also accepted on input),
 * fields at their default value left out, 64-bit integers as decimal strings (numbers accepted on input), enums by
 * value name (numbers accepted), floats as numbers ("NaN", "Infinity", "-Infinity" as strings), maps as objects,
 * repeated fields as arrays, oneof members as plain fields (two members of one oneof is an error). Bytes fields are
 * not supported (quiver.v1 has none): a request naming one is refused.
 *
 * Decoding is of untrusted input: an unknown field, a wrong JSON type, an out-of-range number, a string with a NUL,
 * nesting deeper than QV_PB_MAX_DEPTH, or more memory than QV_PB_DECODE_FACTOR bytes per input byte (plus
 * QV_PB_DECODE_SLACK) is QV_EINVAL with a message naming the field path. The message and everything it points to
 * is allocated from the arena. */
#ifndef QV_PBJSON_H
#define QV_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "common/arena.h"
#include "common/err.h"

/* j (an object, or null for the default message) as a message of type d; input_bytes: the size of the JSON text j
 * came from (the memory budget). */
int qv_pbjson_decode(qv_arena_t *ar, const ProtobufCMessageDescriptor *d, json_t *j, size_t input_bytes,
                     ProtobufCMessage **out, qv_err_t *err);

/* m as a JSON object (a new reference), or NULL when out of memory. */
json_t *qv_pbjson_encode(const ProtobufCMessage *m);

/* lowerCamelCase of a proto field name ("with_vectors" -> "withVectors") into out (size bytes). */
void qv_pbjson_name(const char *proto_name, char *out, size_t size);

/* True when f is a map field (a repeated message whose type is a generated map entry: fields key = 1, value = 2). */
bool qv_pbjson_is_map(const ProtobufCFieldDescriptor *f);

#endif
