#include "bench/ann/vecio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Whole file into memory. */
static int slurp(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return fail(err, errlen, "%s: cannot seek", path);
    }
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fail(err, errlen, "%s: cannot size", path);
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return fail(err, errlen, "%s: out of memory for %ld bytes", path, size);
    }
    if (size && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return fail(err, errlen, "%s: short read", path);
    }
    fclose(f);
    *data = buf;
    *len = (size_t)size;
    return 0;
}

/* ---- TEXMEX ---- */

/* Parses rows of (int32 d, d values of `elem` bytes) into a packed n x d buffer of 4-byte values (uint8 widened to
 * float when widen_u8). */
static int texmex(const char *path, size_t elem, bool widen_u8, void **out, size_t *n, uint32_t *dim, char *err,
                  size_t errlen)
{
    uint8_t *buf;
    size_t len;
    if (slurp(path, &buf, &len, err, errlen))
        return -1;
    if (len < 4) {
        free(buf);
        return fail(err, errlen, "%s: empty or too short for a TEXMEX file", path);
    }
    int32_t d;
    memcpy(&d, buf, 4);
    if (d <= 0 || d > 1 << 20) {
        free(buf);
        return fail(err, errlen, "%s: bad dimension %d in the first row", path, d);
    }
    size_t row = 4 + (size_t)d * elem;
    if (len % row != 0) {
        free(buf);
        return fail(err, errlen, "%s: %zu bytes is not a whole number of %zu-byte rows", path, len, row);
    }
    size_t rows = len / row;
    float *data = malloc(rows * (size_t)d * 4);
    if (!data) {
        free(buf);
        return fail(err, errlen, "%s: out of memory", path);
    }
    for (size_t i = 0; i < rows; i++) {
        const uint8_t *r = buf + i * row;
        int32_t di;
        memcpy(&di, r, 4);
        if (di != d) {
            free(buf);
            free(data);
            return fail(err, errlen, "%s: row %zu has dimension %d, the first row %d", path, i, di, d);
        }
        if (widen_u8) {
            for (int32_t j = 0; j < d; j++)
                data[i * (size_t)d + (size_t)j] = (float)r[4 + j];
        } else {
            memcpy((uint8_t *)data + i * (size_t)d * 4, r + 4, (size_t)d * 4);
        }
    }
    free(buf);
    *out = data;
    *n = rows;
    *dim = (uint32_t)d;
    return 0;
}

/* ---- .npy ---- */

typedef struct {
    const char *p, *end;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool expect(cursor_t *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...", no escapes) into out (bounded). */
static bool parse_str(cursor_t *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    size_t i = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || i + 1 >= cap)
            return false;
        out[i++] = *c->p++;
    }
    if (c->p >= c->end)
        return false;
    c->p++;
    out[i] = 0;
    return true;
}

static bool parse_word(cursor_t *c, const char *w)
{
    skip_ws(c);
    size_t l = strlen(w);
    if ((size_t)(c->end - c->p) >= l && memcmp(c->p, w, l) == 0) {
        c->p += l;
        return true;
    }
    return false;
}

static bool parse_uint(cursor_t *c, uint64_t *v)
{
    skip_ws(c);
    uint64_t x = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*c->p++ - '0');
    }
    if (c->p < c->end && *c->p == 'L')  /* Python 2 longs */
        c->p++;
    *v = x;
    return c->p > start;
}

/* Parses the header dict: {'descr': STR, 'fortran_order': BOOL, 'shape': (INT, ...)}. */
static bool parse_npy_header(const char *h, size_t len, char *descr, size_t dcap, bool *fortran, uint64_t *shape,
                             int *ndims)
{
    cursor_t c = {h, h + len};
    bool got_d = false, got_f = false, got_s = false;
    if (!expect(&c, '{'))
        return false;
    for (;;) {
        skip_ws(&c);
        if (expect(&c, '}'))
            break;
        char key[32];
        if (!parse_str(&c, key, sizeof key) || !expect(&c, ':'))
            return false;
        if (strcmp(key, "descr") == 0) {
            if (!parse_str(&c, descr, dcap))
                return false;
            got_d = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "False"))
                *fortran = false;
            else if (parse_word(&c, "True"))
                *fortran = true;
            else
                return false;
            got_f = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!expect(&c, '('))
                return false;
            *ndims = 0;
            for (;;) {
                if (expect(&c, ')'))
                    break;
                if (*ndims >= 4 || !parse_uint(&c, &shape[*ndims]))
                    return false;
                (*ndims)++;
                if (!expect(&c, ',')) {
                    if (!expect(&c, ')'))
                        return false;
                    break;
                }
            }
            got_s = true;
        } else {
            return false;
        }
        if (!expect(&c, ',')) {
            if (!expect(&c, '}'))
                return false;
            break;
        }
    }
    skip_ws(&c);
    return got_d && got_f && got_s && c.p == c.end;
}

/* Reads a 2-D C-order .npy; *descr_out gets the dtype string; data points into *file (caller frees *file). */
static int npy(const char *path, uint8_t **file, const uint8_t **data, size_t *n, uint32_t *dim, char *descr,
               size_t dcap, size_t *elem, char *err, size_t errlen)
{
    size_t len;
    if (slurp(path, file, &len, err, errlen))
        return -1;
    const uint8_t *b = *file;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        free(*file);
        return fail(err, errlen, "%s: not a .npy file (bad magic)", path);
    }
    uint8_t major = b[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            free(*file);
            return fail(err, errlen, "%s: truncated .npy header", path);
        }
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hoff = 12;
    } else {
        free(*file);
        return fail(err, errlen, "%s: unsupported .npy version %u", path, major);
    }
    if (hlen > 1 << 20 || hoff + hlen > len) {
        free(*file);
        return fail(err, errlen, "%s: .npy header length %zu out of bounds", path, hlen);
    }
    bool fortran = false;
    uint64_t shape[4];
    int ndims = 0;
    if (!parse_npy_header((const char *)b + hoff, hlen, descr, dcap, &fortran, shape, &ndims)) {
        free(*file);
        return fail(err, errlen, "%s: cannot parse the .npy header", path);
    }
    if (fortran || ndims != 2) {
        free(*file);
        return fail(err, errlen, "%s: need a 2-D C-order array (fortran_order=%d, %d dims)", path, fortran, ndims);
    }
    if (strcmp(descr, "<f4") == 0 || strcmp(descr, "<i4") == 0)
        *elem = 4;
    else if (strcmp(descr, "<i8") == 0)
        *elem = 8;
    else {
        free(*file);
        return fail(err, errlen, "%s: dtype %s not supported (float32 '<f4'; int32/int64 for ground truth)", path,
                    descr);
    }
    if (shape[1] == 0 || shape[1] > 1 << 20 || shape[0] > ((uint64_t)1 << 40) ||
        shape[0] * shape[1] * *elem != len - hoff - hlen) {
        free(*file);
        return fail(err, errlen, "%s: shape (%llu, %llu) does not match %zu data bytes", path,
                    (unsigned long long)shape[0], (unsigned long long)shape[1], len - hoff - hlen);
    }
    *data = b + hoff + hlen;
    *n = (size_t)shape[0];
    *dim = (uint32_t)shape[1];
    return 0;
}

int vec_read_f32(const char *path, vec_f32_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    void *data;
    if (ends_with(path, ".fvecs")) {
        if (texmex(path, 4, false, &data, &out->n, &out->dim, err, errlen))
            return -1;
        out->data = data;
        return 0;
    }
    if (ends_with(path, ".bvecs")) {
        if (texmex(path, 1, true, &data, &out->n, &out->dim, err, errlen))
            return -1;
        out->data = data;
        return 0;
    }
    if (ends_with(path, ".npy")) {
        uint8_t *file;
        const uint8_t *p;
        char descr[16];
        size_t elem;
        if (npy(path, &file, &p, &out->n, &out->dim, descr, sizeof descr, &elem, err, errlen))
            return -1;
        if (strcmp(descr, "<f4") != 0) {
            free(file);
            return fail(err, errlen, "%s: vectors must be float32 ('<f4'), not %s", path, descr);
        }
        out->data = malloc(out->n * out->dim * sizeof(float) + 1);
        if (!out->data) {
            free(file);
            return fail(err, errlen, "%s: out of memory", path);
        }
        memcpy(out->data, p, out->n * out->dim * sizeof(float));
        free(file);
        return 0;
    }
    return fail(err, errlen, "%s: unknown extension (want .fvecs, .bvecs or .npy)", path);
}

int vec_read_i32(const char *path, vec_i32_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ends_with(path, ".ivecs")) {
        void *data;
        if (texmex(path, 4, false, &data, &out->n, &out->dim, err, errlen))
            return -1;
        out->data = data;
        return 0;
    }
    if (ends_with(path, ".npy")) {
        uint8_t *file;
        const uint8_t *p;
        char descr[16];
        size_t elem;
        if (npy(path, &file, &p, &out->n, &out->dim, descr, sizeof descr, &elem, err, errlen))
            return -1;
        if (strcmp(descr, "<f4") == 0) {
            free(file);
            return fail(err, errlen, "%s: ground truth must be int32 or int64", path);
        }
        size_t cnt = out->n * out->dim;
        out->data = malloc(cnt * sizeof(int32_t) + 1);
        if (!out->data) {
            free(file);
            return fail(err, errlen, "%s: out of memory", path);
        }
        for (size_t i = 0; i < cnt; i++) {
            int64_t v;
            if (elem == 8) {
                memcpy(&v, p + i * 8, 8);
            } else {
                int32_t v32;
                memcpy(&v32, p + i * 4, 4);
                v = v32;
            }
            if (v < INT32_MIN || v > INT32_MAX) {
                free(file);
                free(out->data);
                out->data = NULL;
                return fail(err, errlen, "%s: id %lld out of range", path, (long long)v);
            }
            out->data[i] = (int32_t)v;
        }
        free(file);
        return 0;
    }
    return fail(err, errlen, "%s: unknown extension (want .ivecs or .npy)", path);
}
