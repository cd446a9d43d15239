/* Filter trees: all / any / negate over conditions on attribute fields, evaluated to bitmaps over segment rows.
 *
 * server/ builds a tree from the request (field names and values borrowed from the request message), then
 * qv_filter_validate() resolves names against the schema and checks every rule, so a tree that passes validation can
 * be evaluated without further checks. Evaluation works on blocks of at most QV_FILTER_BLOCK rows so temporaries
 * live on the stack and the scan threads each evaluate their own blocks.
 *
 * Semantics: a row without a value for the field fails every condition on it (and so passes its negation).
 * eq/any_of on KEYWORDS match when any element matches. Ranges apply to INT64 and DOUBLE fields and compare as
 * doubles. In a collection with dynamic attributes (storage/dynattr.h) a condition may name a key that is not a
 * field: it reads each row's dyn blob and matches the rows that have the key with a comparable value (numbers with
 * numbers, as doubles; a keyword with a KEYWORD or any element of a KEYWORDS value; booleans with booleans); its
 * values may be of any scalar type, and a range needs a numeric value. */
#ifndef QV_FILTER_H
#define QV_FILTER_H

#include "storage/segment.h"

#define QV_FILTER_BLOCK 1024
#define QV_FILTER_DEPTH_MAX 32
#define QV_FILTER_NODES_MAX 4096
#define QV_FILTER_VALUES_MAX 10000

typedef enum { QV_F_ALL = 1, QV_F_ANY, QV_F_NOT, QV_F_EQ, QV_F_IN, QV_F_RANGE } qv_fkind_t;

typedef struct qv_filter {
    uint8_t kind;
    /* ALL / ANY / NOT */
    struct qv_filter **kids;
    uint32_t nkids;
    /* conditions */
    qv_str_t field_name;  /* borrowed */
    int field;            /* resolved by qv_filter_validate; -1 with `dynamic` */
    bool dynamic;         /* a key of the rows' dynamic attributes, not a field */
    qv_value_t *values;   /* EQ: 1, IN: nvalues; borrowed strings, owned array */
    uint32_t nvalues;
    bool has_lo, lo_incl, has_hi, hi_incl;
    double lo, hi;
} qv_filter_t;

/* Allocates a zeroed node; NULL on failure. */
qv_filter_t *qv_filter_new(uint8_t kind);
/* Frees a tree (kids and value arrays, never the borrowed strings). */
void qv_filter_free(qv_filter_t *f);

/* Resolves field names and checks the tree against the schema: known fields, value types matching the field,
 * non-empty lists, ranges only on numeric fields with at least one finite bound, depth and size limits.
 * Messages name the field. */
int qv_filter_validate(qv_filter_t *f, const qv_schema_t *s, qv_err_t *err);

/* Evaluates rows [begin, begin+n) of seg, n <= QV_FILTER_BLOCK, begin a multiple of 64: bit i of out is row
 * begin+i. Bits past n are cleared. seg is one of a read view's segments (storage/read.h). */
void qv_filter_eval(const qv_filter_t *f, const qv_segment_t *seg, uint32_t begin, uint32_t n, uint64_t *out);

/* Does row `row` of seg match? (One row, for the commit leader's re-check of a conditional write: store.h
 * qv_row_match_fn, with f as ctx.) */
bool qv_filter_row(void *f, const qv_segment_t *seg, uint32_t row);

#endif
