/* Conversions between quiver.v1 protobuf-c messages and the storage/query structs. Inputs borrow the request's
 * memory; outputs are allocated from the call's arena. Every function that can reject input returns a QV_E* code
 * with a message naming the offending point or field. */
#ifndef QV_CONVERT_H
#define QV_CONVERT_H

#include "common/arena.h"
#include "quiver/v1/quiver.pb-c.h"
#include "query/filter.h"
#include "storage/store.h"

int qv_conv_points(qv_arena_t *a, const qv_schema_t *s, Quiver__V1__Point *const *pts, size_t n, qv_point_t **out,
                   qv_err_t *err);

/* Builds a filter tree (NULL for an absent filter or one with no kind set at the top) and validates it against
 * the schema. Free with qv_filter_free. */
int qv_conv_filter(const Quiver__V1__Filter *pf, const qv_schema_t *s, qv_filter_t **out, qv_err_t *err);

/* Schema from a CreateCollectionRequest (validated). Free with free(). */
/* The set and unset of an UpdateAttributesRequest: declared fields by index, undeclared keys (a dynamic collection)
 * as dynamic attributes; values borrowed from the message. Checked with qv_store_check_change. */
int qv_conv_change(qv_arena_t *a, const qv_schema_t *s, const Quiver__V1__UpdateAttributesRequest *req,
                   qv_attr_change_t *out, qv_err_t *err);

int qv_conv_schema(const Quiver__V1__CreateCollectionRequest *req, qv_schema_t **out, qv_err_t *err);

/* Attribute map of one row (present fields only); returns the entry count via *n. NULL + *n = 0 on OOM/none.
 * entry_size/init select the Point or Hit entry message type, which have the same layout. */
void **qv_conv_row_attrs(qv_arena_t *a, const qv_schema_t *s, const qv_segment_t *seg, uint32_t row, size_t *n,
                         bool for_hit);

/* Collection description, from a read view of c. */
Quiver__V1__CollectionInfo *qv_conv_coll_info(qv_arena_t *a, qv_store_t *st, qv_coll_t *c);

#endif
