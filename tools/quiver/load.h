/* `quiver load` internals: input parsing (load_input.c), checkpoints (load_checkpoint.c), and the pipeline that
 * ties them to Upsert calls (load.c, which has the design notes). */
#ifndef QV_LOAD_H
#define QV_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/arena.h"
#include "quiver/v1/quiver.pb-c.h"

typedef enum {
    QV_FMT_NONE = -1,
    QV_FMT_FVECS,
    QV_FMT_BVECS,
    QV_FMT_NPY,
    QV_FMT_JSONL,
    QV_FMT_CSV,
    QV_FMT_TSV,
} qv_fmt_t;

qv_fmt_t qv_fmt_parse(const char *name);      /* "fvecs", ...; "ndjson"/"json" mean jsonl; QV_FMT_NONE if unknown */
qv_fmt_t qv_fmt_from_path(const char *path);  /* by extension; QV_FMT_NONE if unknown */
const char *qv_fmt_name(qv_fmt_t f);

/* Where the next record starts. */
typedef struct {
    uint64_t offset; /* byte offset in the input */
    uint64_t row;    /* records before it, bad ones included: the default id of the next record */
    uint64_t line;   /* 1-based line number of the next line (text formats; 0 for binary ones) */
} qv_pos_t;

typedef struct {
    qv_fmt_t fmt;
    const Quiver__V1__CollectionInfo *info; /* dim and schema (DescribeCollection); borrowed */
    const char *id_field, *vector_field, *text_field;
    bool id_field_set, vector_field_set, text_field_set; /* given on the command line (csv: must exist) */
    const char *id_prefix; /* records without an id get id_prefix + (record number + id_offset) */
    uint64_t id_offset;
} qv_input_opts_t;

typedef struct qv_input qv_input_t;

enum { QV_IN_ROW = 1, QV_IN_EOF = 0, QV_IN_BAD = -1, QV_IN_FATAL = -2 };

/* Opens the input and reads its header (npy, csv/tsv). Parsing starts at `resume` when given (a checkpoint's
 * position), else at the first record. Returns 0, or -1 with msg set (the input cannot be loaded at all). */
int qv_input_open(const char *path, const qv_input_opts_t *o, const qv_pos_t *resume, qv_input_t **out, char *msg,
                  size_t msglen);
/* Parses the next record into a Point allocated from a (the arena owns every byte of it). Returns
 *   QV_IN_ROW    *out set;
 *   QV_IN_EOF    no more records;
 *   QV_IN_BAD    a bad record, consumed: msg names it by line or byte offset; the next call continues after it;
 *   QV_IN_FATAL  the input cannot be read further (I/O error, corrupt framing): msg says why.
 * *before is the position of the record (or of the bad record) just parsed. */
int qv_input_next(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t msglen);
/* Position of the next record. */
qv_pos_t qv_input_pos(const qv_input_t *in);
uint64_t qv_input_size(const qv_input_t *in);
const char *qv_input_engine(const qv_input_t *in);
void qv_input_close(qv_input_t *in);

/* ---- checkpoints: see load_checkpoint.c for the format ---- */
typedef struct {
    char collection[128];
    char format[16];
    char input[4096];        /* absolute path, for the message when it does not match */
    uint64_t input_size;
    int64_t input_mtime_ns;
    qv_pos_t pos;            /* every record before pos is acknowledged (or was skipped as bad) */
    uint64_t loaded;         /* rows acknowledged, over all runs */
    uint64_t skipped;        /* bad records skipped, over all runs */
} qv_ckpt_t;

/* Writes c to path atomically: path.tmp, fsync, rename, fsync of the directory. Returns 0 or -errno (msg set). */
int qv_ckpt_write(const char *path, const qv_ckpt_t *c, char *msg, size_t msglen);
/* Reads and validates a checkpoint. Returns 0, -ENOENT when there is none, or another -errno with msg set. */
int qv_ckpt_read(const char *path, qv_ckpt_t *c, char *msg, size_t msglen);

/* The server's limits on what it embeds per request (server/embedder.h QV_EMBED_TEXTS_MAX, QV_EMBED_BYTES_MAX): a
 * batch of text-only points ends before it would pass them. */
#define QV_LOAD_TEXTS_MAX 1000
#define QV_LOAD_TEXT_BYTES_MAX (1u << 20)

#endif
