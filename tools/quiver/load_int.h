/* Internals shared by the input parsers of `quiver load`: load_input.c (the window over the reader, helpers that
 * build points, fvecs/bvecs/npy, and the qv_input_* entry points) and load_text.c (jsonl, csv, tsv). The formats are
 * specified at the top of load_input.c. */
#ifndef QV_LOAD_INT_H
#define QV_LOAD_INT_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/quiver/load.h"
#include "tools/quiver/reader.h"

#define MAX_WINDOW (256u << 20)     /* longest line or record */
#define MAX_HEADER (1u << 20)       /* longest npy or csv header */
#define MAX_WARNED 64

enum { NPY_F4, NPY_F8, NPY_U1, NPY_I1 };

struct qv_input {
    qv_input_opts_t o;
    uint32_t dim;
    qv_reader_t *rd;
    /* window over the file: win[pos..end) holds the bytes at file offset win_off + pos ... */
    uint8_t *win;
    size_t cap, pos, end;
    uint64_t win_off;
    bool eof;
    uint64_t row, line;
    uint64_t size;
    /* npy */
    int npy_type;
    size_t npy_item;
    uint64_t npy_rows;
    bool npy_short_reported;
    /* csv / tsv */
    char sep;
    size_t ncols;
    char **colnames;
    int id_col, text_col, vec_col;
    int *vcols;     /* dim column indexes of v0..v{dim-1}, when vec_col < 0 */
    int *col_field; /* per column: schema field index, or -1 */
    bool text_only; /* csv/tsv: no vector columns; every row's text is embedded by the server */
    char **cells;
    /* keys/columns already warned about */
    char *warned[MAX_WARNED];
    int nwarned;
};


static inline size_t qv__avail(const qv_input_t *in) { return in->end - in->pos; }

/* Records may carry text instead of a vector: the collection has an embedding model (the server embeds them). */
static inline bool qv__text_only_ok(const qv_input_t *in)
{
    return in->o.info->embedding_model && in->o.info->embedding_model[0];
}
static inline uint64_t qv__offset(const qv_input_t *in) { return in->win_off + in->pos; }
/* A double that converts to a finite float. */
static inline bool qv__float_ok(double d) { return isfinite(d) && fabs(d) <= FLT_MAX; }

/* snprintf into msg; returns -1 so callers can `return qv__say(...)`. */
int qv__say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Makes at least `need` bytes available at win + pos, fewer only at the end of the input. Returns 0 or -errno. */
int qv__fill(qv_input_t *in, size_t need);
/* The next line, NUL-terminated in place without its '\n' (and a '\r' before it); counts it in in->line. Returns 1,
 * 0 at the end of the input, or -errno (-E2BIG: longer than MAX_WINDOW). Valid until the next window operation. */
int qv__next_line(qv_input_t *in, char **line, size_t *len);
/* A Point with a zeroed vector of dim floats and room for max_attrs attributes, all from a; NULL on OOM. */
Quiver__V1__Point *qv__point_new(qv_arena_t *a, uint32_t dim, size_t max_attrs);
/* The decimal record number as an id, from a. */
/* The id of a record that has none: --id-prefix + (its record number + --id-offset); NULL on OOM. */
char *qv__row_id(const qv_input_t *in, qv_arena_t *a, uint64_t row);
/* Appends an attribute entry named key (borrowed: a schema name) and returns its Value to fill; NULL on OOM. */
Quiver__V1__Value *qv__point_attr(qv_arena_t *a, Quiver__V1__Point *p, const char *key);
/* Index of the schema field called name, or -1. */
int qv__field_index(const qv_input_t *in, const char *name);
/* One note on stderr per key or column name left out of the points: "<what> '<name>'<where> <why>; ignored", why
 * NULL meaning "is not a field of collection C". */
void qv__warn_once(qv_input_t *in, const char *what, const char *name, const char *where, const char *why);

/* load_text.c */
int qv__csv_header(qv_input_t *in, int fd, char *msg, size_t ml, uint64_t *data_off);
int qv__next_jsonl(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t ml);
int qv__next_csv(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t ml);

#endif
