/* Input formats of `quiver load`: records -> quiver.v1.Point.
 *
 * Bytes come from the reader (io_uring ring of 1 MiB chunks, reader.c) into a window: the unconsumed tail of the
 * previous chunk is moved to the front and the next chunk appended, so a record or line that straddles chunks is
 * always contiguous. Each format's parser takes one record from the window; the window grows (up to MAX_WINDOW) only
 * for a record or line longer than what it holds.
 *
 * Formats (byte-exact where binary; all little-endian):
 *   fvecs  per record: int32 d, then d float32.           id = record number.
 *   bvecs  per record: int32 d, then d uint8.             id = record number.
 *   npy    NumPy .npy v1/v2/v3: "\x93NUMPY", major, minor, header length (u16 for v1, u32 after), the header: a
 *          Python dict literal {'descr': '<f4'|'<f8'|'|u1'|'|i1', 'fortran_order': False, 'shape': (N, D)}
 *          padded with spaces and ending in '\n' (so at least 1 byte; the preamble and header within 1 MiB), then
 *          N*D items in C order.                          id = row number.
 *   jsonl  one JSON object per line: {"id": "a" | 7, "vector": [..], "text": "..", other keys = attributes typed by
 *          the collection's schema}; blank lines are skipped; strings may not hold \u0000. id absent: the record
 *          number.
 *   csv    a header row, then one row per record; RFC 4180 quoting ("a,b", "say ""hi""") within a line; the vector
 *          is one column of floats separated by spaces, commas or semicolons (optionally in brackets) or the
 *          columns v0..v{D-1}; other columns are attributes typed by the schema (KEYWORDS: values separated by '|';
 *          BOOL: true/false/1/0/yes/no; an empty cell is an absent attribute). No id column: the record number. A
 *          column the load uses (id, vector, text, v<d>, a field) appears once in the header; no NUL bytes.
 *   tsv    as csv with tabs and no quoting.
 * Record numbers count every record (bad ones included) from 0, so ids stay stable across --skip-bad and --resume.
 *
 * A bad record (wrong dimension, bad JSON, a non-numeric or non-finite value, a NUL byte in a csv/tsv line, a
 * truncated final record) is consumed and reported with its line number (text) or byte offset (binary); framing that
 * cannot be resynchronised (an fvecs dimension header that is negative or absurd) is fatal. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tools/quiver/cli.h"
#include "tools/quiver/load_int.h"

#define MAX_FVECS_DIM (1 << 20) /* a larger dimension header is corrupt framing */

/* ---------------------------------------------------------------------------------------------------------------- */
qv_fmt_t qv_fmt_parse(const char *s)
{
    static const char *const names[] = {"fvecs", "bvecs", "npy", "jsonl", "csv", "tsv"};
    for (int i = 0; i < 6; i++)
        if (strcasecmp(s, names[i]) == 0)
            return (qv_fmt_t)i;
    if (strcasecmp(s, "ndjson") == 0 || strcasecmp(s, "json") == 0)
        return QV_FMT_JSONL;
    return QV_FMT_NONE;
}

qv_fmt_t qv_fmt_from_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return QV_FMT_NONE;
    return qv_fmt_parse(dot + 1);
}

const char *qv_fmt_name(qv_fmt_t f)
{
    static const char *const names[] = {"fvecs", "bvecs", "npy", "jsonl", "csv", "tsv"};
    return f >= 0 && f <= QV_FMT_TSV ? names[f] : "?";
}

int qv__say(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- window ---- */

/* Makes at least `need` bytes available at win + pos, fewer only at the end of the input. Returns 0 or -errno. */
int qv__fill(qv_input_t *in, size_t need)
{
    while (in->end - in->pos < need && !in->eof) {
        if (in->pos > 0) {
            memmove(in->win, in->win + in->pos, in->end - in->pos);
            in->win_off += in->pos;
            in->end -= in->pos;
            in->pos = 0;
        }
        if (in->cap - in->end < QV_READER_CHUNK + 1) { /* +1: room for a NUL after the last line */
            size_t ncap = in->cap * 2 > in->end + QV_READER_CHUNK + 1 ? in->cap * 2 : in->end + QV_READER_CHUNK + 1;
            if (ncap > MAX_WINDOW + QV_READER_CHUNK + 1)
                return -E2BIG;
            uint8_t *w = realloc(in->win, ncap);
            if (!w)
                return -ENOMEM;
            in->win = w;
            in->cap = ncap;
        }
        const uint8_t *d;
        size_t n;
        int rc = qv_reader_next(in->rd, &d, &n);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            in->eof = true;
            break;
        }
        memcpy(in->win + in->end, d, n);
        in->end += n;
    }
    return 0;
}

qv_pos_t qv_input_pos(const qv_input_t *in)
{
    return (qv_pos_t){.offset = qv__offset(in), .row = in->row, .line = in->line};
}

uint64_t qv_input_size(const qv_input_t *in) { return in->size; }
const char *qv_input_engine(const qv_input_t *in) { return qv_reader_engine(in->rd); }

/* The next line, NUL-terminated in place without its '\n' (and a '\r' before it). Returns 1, 0 at the end of the
 * input, or -errno. The line stays valid until the next call. */
int qv__next_line(qv_input_t *in, char **line, size_t *len)
{
    size_t scanned = 0, n;
    char *start;
    for (;;) {
        start = (char *)in->win + in->pos;
        size_t a = qv__avail(in);
        char *nl = a > scanned ? memchr(start + scanned, '\n', a - scanned) : NULL;
        if (nl) {
            n = (size_t)(nl - start);
            in->pos += n + 1;
            break;
        }
        if (in->eof) {
            if (a == 0)
                return 0;
            n = a;
            in->pos += a;
            break;
        }
        if (a > MAX_WINDOW)
            return -E2BIG;
        scanned = a;
        int rc = qv__fill(in, a + 1);
        if (rc < 0)
            return rc;
    }
    if (n && start[n - 1] == '\r')
        n--;
    start[n] = '\0'; /* the '\n' or '\r' consumed, or the spare byte qv__fill() keeps after the end */
    in->line++;
    *line = start;
    *len = n;
    return 1;
}

/* ---- points ---- */
Quiver__V1__Point *qv__point_new(qv_arena_t *a, uint32_t dim, size_t max_attrs)
{
    Quiver__V1__Point *p = qv_arena_alloc(a, sizeof *p);
    float *v = qv_arena_array(a, dim, sizeof *v);
    Quiver__V1__Point__AttributesEntry **e = qv_arena_array(a, max_attrs ? max_attrs : 1, sizeof *e);
    if (!p || !v || !e)
        return NULL;
    quiver__v1__point__init(p);
    p->n_vector = dim;
    p->vector = v;
    p->attributes = e;
    return p;
}

char *qv__row_id(const qv_input_t *in, qv_arena_t *a, uint64_t row)
{
    char b[300];
    int n = snprintf(b, sizeof b, "%s%" PRIu64, in->o.id_prefix ? in->o.id_prefix : "", row + in->o.id_offset);
    return n > 0 && (size_t)n < sizeof b ? qv_arena_strndup(a, b, (size_t)n) : NULL;
}

Quiver__V1__Value *qv__point_attr(qv_arena_t *a, Quiver__V1__Point *p, const char *key)
{
    Quiver__V1__Point__AttributesEntry *e = qv_arena_alloc(a, sizeof *e);
    Quiver__V1__Value *v = qv_arena_alloc(a, sizeof *v);
    if (!e || !v)
        return NULL;
    quiver__v1__point__attributes_entry__init(e);
    quiver__v1__value__init(v);
    e->key = (char *)key; /* the schema's name: lives as long as the DescribeCollection response */
    e->value = v;
    p->attributes[p->n_attributes++] = e;
    return v;
}

int qv__field_index(const qv_input_t *in, const char *name)
{
    const Quiver__V1__CollectionInfo *c = in->o.info;
    for (size_t i = 0; i < c->n_fields; i++)
        if (strcmp(c->fields[i]->name, name) == 0)
            return (int)i;
    return -1;
}

void qv__warn_once(qv_input_t *in, const char *what, const char *name, const char *where, const char *why)
{
    for (int i = 0; i < in->nwarned; i++)
        if (strcmp(in->warned[i], name) == 0)
            return;
    if (in->nwarned < MAX_WARNED)
        in->warned[in->nwarned++] = strdup(name);
    if (why)
        fprintf(stderr, "quiver: note: %s '%s'%s %s; ignored\n", what, name, where, why);
    else
        fprintf(stderr, "quiver: note: %s '%s'%s is not a field of collection %s; ignored\n", what, name, where,
                in->o.info->name);
}

/* ---- fvecs / bvecs ---- */
static int next_vecs(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, char *msg, size_t ml)
{
    size_t elem = in->o.fmt == QV_FMT_FVECS ? 4 : 1;
    const char *fmt = qv_fmt_name(in->o.fmt);
    uint64_t off = qv__offset(in);
    int rc = qv__fill(in, 4);
    if (rc < 0) {
        qv__say(msg, ml, "%s: read error at byte offset %" PRIu64 ": %s", fmt, off, strerror(-rc));
        return QV_IN_FATAL;
    }
    if (qv__avail(in) == 0)
        return QV_IN_EOF;
    uint64_t rec = in->row;
    if (qv__avail(in) < 4) {
        size_t got = qv__avail(in);
        in->pos = in->end;
        in->row++;
        qv__say(msg, ml, "%s: truncated final record %" PRIu64 " at byte offset %" PRIu64 ": %zu of 4 header bytes",
                fmt, rec, off, got);
        return QV_IN_BAD;
    }
    int32_t d;
    memcpy(&d, in->win + in->pos, 4);
    if (d <= 0 || d > MAX_FVECS_DIM) {
        qv__say(msg, ml, "%s: corrupt record %" PRIu64 " at byte offset %" PRIu64 ": dimension header %d", fmt, rec,
                off, (int)d);
        return QV_IN_FATAL;
    }
    size_t size = 4 + (size_t)d * elem;
    rc = qv__fill(in, size);
    if (rc < 0) {
        qv__say(msg, ml, "%s: read error at byte offset %" PRIu64 ": %s", fmt, off, strerror(-rc));
        return QV_IN_FATAL;
    }
    in->row++;
    if (qv__avail(in) < size) {
        size_t got = qv__avail(in);
        in->pos = in->end;
        qv__say(msg, ml, "%s: truncated final record %" PRIu64 " at byte offset %" PRIu64 ": %zu of %zu bytes", fmt,
                rec, off, got, size);
        return QV_IN_BAD;
    }
    const uint8_t *body = in->win + in->pos + 4;
    in->pos += size;
    if ((uint32_t)d != in->dim) {
        qv__say(msg, ml, "%s: record %" PRIu64 " at byte offset %" PRIu64 ": dimension %d, the collection has %u", fmt,
                rec, off, (int)d, in->dim);
        return QV_IN_BAD;
    }
    Quiver__V1__Point *p = qv__point_new(a, in->dim, 0);
    if (!p || !(p->id = qv__row_id(in, a, rec))) {
        qv__say(msg, ml, "out of memory");
        return QV_IN_FATAL;
    }
    if (elem == 4) {
        memcpy(p->vector, body, (size_t)d * 4);
        for (uint32_t i = 0; i < in->dim; i++)
            if (!isfinite(p->vector[i])) {
                qv__say(msg, ml, "%s: record %" PRIu64 " at byte offset %" PRIu64 ": component %u is not finite", fmt,
                        rec, off, i);
                return QV_IN_BAD;
            }
    } else {
        for (uint32_t i = 0; i < in->dim; i++)
            p->vector[i] = body[i];
    }
    *out = p;
    return QV_IN_ROW;
}

/* ---- npy ---- */

/* The value of 'key' in the header dict: the first non-blank byte after `'key'`, blanks and a ':'; NULL when the dict
 * has no such key or no ':' after it. */
static const char *npy_value(const char *dict, const char *key)
{
    const char *k = strstr(dict, key);
    if (!k)
        return NULL;
    const char *p = k + strlen(key);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

/* Whether *p is c; if so, advances *p past it and the blanks after it. */
static bool npy_char(const char **p, char c)
{
    if (**p != c)
        return false;
    for ((*p)++; **p == ' ';)
        (*p)++;
    return true;
}

/* A decimal count at *p (digits only: no sign), advancing *p past it and the blanks after it. */
static bool npy_count(const char **p, unsigned long long *out)
{
    const char *s = *p;
    if (!isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (errno)
        return false;
    while (*end == ' ')
        end++;
    *p = end;
    return true;
}

/* The preamble and header dict of an .npy file (format in the comment at the top). Every length is checked against
 * the bytes read before the dict is looked at, and the dict is parsed as a NUL-terminated string of exactly its
 * declared length: a header length of 0, one that runs past the file or past MAX_HEADER, or a header that does not
 * end with '\n' is rejected with a message saying which. */
static int npy_header(qv_input_t *in, int fd, char *msg, size_t ml, uint64_t *data_off)
{
    uint8_t *h = malloc(MAX_HEADER);
    if (!h)
        return qv__say(msg, ml, "out of memory");
    ssize_t n = pread(fd, h, MAX_HEADER, 0);
    int rc = -1;
    if (n < 0) {
        qv__say(msg, ml, "npy: read error: %s", strerror(errno));
        goto out;
    }
    if (n < 8 || memcmp(h, "\x93NUMPY", 6) != 0) {
        qv__say(msg, ml, "npy: not a NumPy .npy file (bad magic)");
        goto out;
    }
    size_t hlen, pre;
    if (h[6] == 1) {
        pre = 10;
    } else if (h[6] == 2 || h[6] == 3) {
        pre = 12;
    } else {
        qv__say(msg, ml, "npy: unsupported format version %u.%u", h[6], h[7]);
        goto out;
    }
    if ((size_t)n < pre) {
        qv__say(msg, ml, "npy: the file ends inside the %zu-byte preamble (%zd bytes)", pre, n);
        goto out;
    }
    hlen = (size_t)h[8] | (size_t)h[9] << 8;
    if (pre == 12)
        hlen |= (size_t)h[10] << 16 | (size_t)h[11] << 24;
    if (hlen == 0) {
        qv__say(msg, ml, "npy: header length 0 (a header holds at least the dict and a '\\n')");
        goto out;
    }
    if (hlen > MAX_HEADER - pre) {
        qv__say(msg, ml, "npy: header of %zu bytes, over the 1 MiB this loader accepts", hlen);
        goto out;
    }
    if (pre + hlen > (size_t)n) {
        qv__say(msg, ml, "npy: header of %zu bytes runs past the end of the file (%zd bytes)", hlen, n);
        goto out;
    }
    char *dict = (char *)h + pre;
    if (dict[hlen - 1] != '\n') {
        qv__say(msg, ml, "npy: the %zu-byte header does not end with '\\n'", hlen);
        goto out;
    }
    dict[hlen - 1] = '\0';
    if (memchr(dict, '\0', hlen - 1)) {
        qv__say(msg, ml, "npy: NUL byte in the header");
        goto out;
    }
    const char *descr = npy_value(dict, "'descr'");
    const char *fo = npy_value(dict, "'fortran_order'");
    const char *shape = npy_value(dict, "'shape'");
    if (dict[0] != '{' || !descr || !fo || !shape) {
        qv__say(msg, ml, "npy: header is not a dict with descr, fortran_order and shape: %.200s", dict);
        goto out;
    }
    if (strncmp(descr, "'<f4'", 5) == 0) {
        in->npy_type = NPY_F4;
        in->npy_item = 4;
    } else if (strncmp(descr, "'<f8'", 5) == 0) {
        in->npy_type = NPY_F8;
        in->npy_item = 8;
    } else if (strncmp(descr, "'|u1'", 5) == 0) {
        in->npy_type = NPY_U1;
        in->npy_item = 1;
    } else if (strncmp(descr, "'|i1'", 5) == 0) {
        in->npy_type = NPY_I1;
        in->npy_item = 1;
    } else {
        in->npy_item = 0;
    }
    const char *after = descr + 5;
    while (*after == ' ')
        after++;
    if (in->npy_item == 0 || (*after != ',' && *after != '}')) {
        qv__say(msg, ml, "npy: unsupported dtype %.8s (supported: '<f4', '<f8', '|u1', '|i1')", descr);
        goto out;
    }
    if (strncmp(fo, "False", 5) != 0 || isalnum((unsigned char)fo[5])) {
        qv__say(msg, ml, "npy: fortran_order arrays are not supported (save with np.ascontiguousarray)");
        goto out;
    }
    /* (rows, cols) with an optional trailing comma; anything else (1-D, 3-D, a sign) is not a matrix we load */
    const char *p = shape;
    unsigned long long rows = 0, cols = 0;
    bool ok = npy_char(&p, '(') && npy_count(&p, &rows) && npy_char(&p, ',') && npy_count(&p, &cols);
    if (ok)
        npy_char(&p, ',');
    if (!ok || *p != ')') {
        qv__say(msg, ml, "npy: expected a 2-D array of shape (rows, %u), header says %.60s", in->dim, shape);
        goto out;
    }
    if (cols != in->dim) {
        qv__say(msg, ml, "npy: the array has %llu columns, the collection has dim %u", cols, in->dim);
        goto out;
    }
    uint64_t row_bytes = (uint64_t)in->dim * in->npy_item;
    *data_off = pre + hlen;
    if (row_bytes && rows > (UINT64_MAX - *data_off) / row_bytes) {
        qv__say(msg, ml, "npy: shape (%llu, %llu) is larger than any file", rows, cols);
        goto out;
    }
    in->npy_rows = rows;
    uint64_t want = *data_off + rows * row_bytes;
    if (in->size > want)
        fprintf(stderr, "quiver: note: npy: %" PRIu64 " bytes after the %llu rows the header declares; ignored\n",
                in->size - want, rows);
    rc = 0;
out:
    free(h);
    return rc;
}

static int next_npy(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, char *msg, size_t ml)
{
    if (in->row >= in->npy_rows)
        return QV_IN_EOF;
    size_t size = (size_t)in->dim * in->npy_item;
    uint64_t off = qv__offset(in), rec = in->row;
    int rc = qv__fill(in, size);
    if (rc < 0) {
        qv__say(msg, ml, "npy: read error at byte offset %" PRIu64 ": %s", off, strerror(-rc));
        return QV_IN_FATAL;
    }
    if (qv__avail(in) == 0) {
        if (in->npy_short_reported)
            return QV_IN_EOF;
        in->npy_short_reported = true;
        in->row = in->npy_rows;
        {
            qv__say(msg, ml,
                    "npy: truncated file: the header declares %" PRIu64 " rows, the data ends at row %" PRIu64
                    " (byte offset %" PRIu64 ")",
                    in->npy_rows, rec, off);
            return QV_IN_BAD;
        }
    }
    in->row++;
    if (qv__avail(in) < size) {
        size_t got = qv__avail(in);
        in->pos = in->end;
        {
            qv__say(msg, ml, "npy: truncated final row %" PRIu64 " at byte offset %" PRIu64 ": %zu of %zu bytes", rec,
                    off, got, size);
            return QV_IN_BAD;
        }
    }
    const uint8_t *b = in->win + in->pos;
    in->pos += size;
    Quiver__V1__Point *p = qv__point_new(a, in->dim, 0);
    if (!p || !(p->id = qv__row_id(in, a, rec))) {
        qv__say(msg, ml, "out of memory");
        return QV_IN_FATAL;
    }
    for (uint32_t i = 0; i < in->dim; i++) {
        double d;
        switch (in->npy_type) {
        case NPY_F4: {
            float f;
            memcpy(&f, b + (size_t)i * 4, 4);
            d = f;
            break;
        }
        case NPY_F8: memcpy(&d, b + (size_t)i * 8, 8); break;
        case NPY_U1: d = b[i]; break;
        default: d = (int8_t)b[i]; break;
        }
        if (!qv__float_ok(d)) {
            qv__say(msg, ml, "npy: row %" PRIu64 " at byte offset %" PRIu64 ": component %u is not a finite float", rec,
                    off, i);
            return QV_IN_BAD;
        }
        p->vector[i] = (float)d;
    }
    *out = p;
    return QV_IN_ROW;
}
/* ---------------------------------------------------------------------------------------------------------------- */
int qv_input_open(const char *path, const qv_input_opts_t *o, const qv_pos_t *resume, qv_input_t **out, char *msg,
                  size_t msglen)
{
    *out = NULL;
    qv_input_t *in = calloc(1, sizeof *in);
    if (!in)
        return qv__say(msg, msglen, "out of memory");
    in->o = *o;
    in->dim = o->info->dim;
    in->sep = o->fmt == QV_FMT_TSV ? '\t' : ',';
    in->id_col = in->text_col = in->vec_col = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        qv__say(msg, msglen, "cannot open '%s': %s", path, strerror(errno));
        qv_input_close(in);
        return -1;
    }
    off_t sz = lseek(fd, 0, SEEK_END);
    in->size = sz > 0 ? (uint64_t)sz : 0;
    uint64_t data_off = 0;
    int rc = 0;
    if (o->fmt == QV_FMT_NPY)
        rc = npy_header(in, fd, msg, msglen, &data_off);
    else if (o->fmt == QV_FMT_CSV || o->fmt == QV_FMT_TSV)
        rc = qv__csv_header(in, fd, msg, msglen, &data_off);
    close(fd);
    if (rc != 0) {
        qv_input_close(in);
        return -1;
    }
    bool text = o->fmt == QV_FMT_JSONL || o->fmt == QV_FMT_CSV || o->fmt == QV_FMT_TSV;
    uint64_t start = data_off;
    in->line = text ? (data_off > 0 ? 1 : 0) : 0; /* lines consumed so far: the csv header */
    if (resume) {
        if (resume->offset < data_off || resume->offset > in->size) {
            qv__say(msg, msglen, "the checkpoint's offset %" PRIu64 " is outside the data (%" PRIu64 "..%" PRIu64 ")",
                    resume->offset, data_off, in->size);
            qv_input_close(in);
            return -1;
        }
        /* Every record and every line before the offset took at least one of its bytes, so a checkpoint with more
         * is corrupt (and a row near 2^64 would wrap the default ids). npy rows are checked exactly below. */
        if ((o->fmt != QV_FMT_NPY && resume->row > resume->offset - data_off) || resume->line > resume->offset) {
            qv__say(msg, msglen,
                    "the checkpoint's row %" PRIu64 " or line %" PRIu64 " cannot come before byte offset %" PRIu64,
                    resume->row, resume->line, resume->offset);
            qv_input_close(in);
            return -1;
        }
        start = resume->offset;
        in->row = resume->row;
        in->line = resume->line;
    }
    if (o->fmt == QV_FMT_NPY && start != data_off) {
        size_t rb = (size_t)in->dim * in->npy_item;
        if ((start - data_off) % rb != 0 || (start - data_off) / rb != in->row) {
            qv__say(msg, msglen, "the checkpoint's offset %" PRIu64 " is not the start of row %" PRIu64, start,
                    in->row);
            qv_input_close(in);
            return -1;
        }
    }
    if (qv_reader_open(path, start, &in->rd, msg, msglen) < 0) {
        qv_input_close(in);
        return -1;
    }
    in->win_off = start;
    in->cap = 2 * (size_t)QV_READER_CHUNK + 1;
    in->win = malloc(in->cap);
    if (!in->win) {
        qv_input_close(in);
        return qv__say(msg, msglen, "out of memory");
    }
    *out = in;
    return 0;
}

int qv_input_next(qv_input_t *in, qv_arena_t *a, Quiver__V1__Point **out, qv_pos_t *before, char *msg, size_t msglen)
{
    *out = NULL;
    msg[0] = '\0';
    switch (in->o.fmt) {
    case QV_FMT_FVECS:
    case QV_FMT_BVECS: *before = qv_input_pos(in); return next_vecs(in, a, out, msg, msglen);
    case QV_FMT_NPY: *before = qv_input_pos(in); return next_npy(in, a, out, msg, msglen);
    case QV_FMT_JSONL: return qv__next_jsonl(in, a, out, before, msg, msglen);
    case QV_FMT_CSV:
    case QV_FMT_TSV: return qv__next_csv(in, a, out, before, msg, msglen);
    default: qv__say(msg, msglen, "unknown format"); return QV_IN_FATAL;
    }
}

void qv_input_close(qv_input_t *in)
{
    if (!in)
        return;
    qv_reader_close(in->rd);
    free(in->win);
    for (size_t i = 0; in->colnames && i < in->ncols; i++)
        free(in->colnames[i]);
    free(in->colnames);
    free(in->cells);
    free(in->col_field);
    free(in->vcols);
    for (int i = 0; i < in->nwarned; i++)
        free(in->warned[i]);
    free(in);
}
