/* safetensors reader: see safetensors.h for the format and every check.
 *
 * The header is parsed with jansson (JSON_REJECT_DUPLICATES; jansson also rejects invalid UTF-8, NULs in strings and
 * integers that overflow json_int_t). All size arithmetic is done in uint64_t with explicit overflow checks before
 * anything is compared with the buffer length. The tensor table is sorted by data offset once to check coverage (no
 * overlaps, no holes), then by name for lookups. */
#include "query/embed/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

struct qv_st {
    qv_st_tensor_t *tensors;  /* sorted by name */
    size_t ntensors;
    char *names;              /* every name, NUL-terminated, back to back */
    void *map;                /* qv_st_open's mapping, or NULL */
    size_t map_len;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [QV_ST_BOOL] = {"BOOL", 1},   [QV_ST_U8] = {"U8", 1},     [QV_ST_I8] = {"I8", 1},
    [QV_ST_F8_E5M2] = {"F8_E5M2", 1}, [QV_ST_F8_E4M3] = {"F8_E4M3", 1}, [QV_ST_I16] = {"I16", 2},
    [QV_ST_U16] = {"U16", 2},     [QV_ST_F16] = {"F16", 2},   [QV_ST_BF16] = {"BF16", 2},
    [QV_ST_I32] = {"I32", 4},     [QV_ST_U32] = {"U32", 4},   [QV_ST_F32] = {"F32", 4},
    [QV_ST_I64] = {"I64", 8},     [QV_ST_U64] = {"U64", 8},   [QV_ST_F64] = {"F64", 8},
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

const char *qv_st_dtype_name(qv_st_dtype_t dtype) { return (size_t)dtype < NDTYPES ? dtypes[dtype].name : "?"; }
size_t qv_st_dtype_size(qv_st_dtype_t dtype) { return (size_t)dtype < NDTYPES ? dtypes[dtype].size : 0; }

void qv_st_free(qv_st_t *st)
{
    if (!st)
        return;
    free(st->tensors);
    free(st->names);
    if (st->map)
        munmap(st->map, st->map_len);
    free(st);
}

size_t qv_st_count(const qv_st_t *st) { return st->ntensors; }
const qv_st_tensor_t *qv_st_at(const qv_st_t *st, size_t i) { return i < st->ntensors ? &st->tensors[i] : NULL; }

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qv_st_tensor_t *)a)->name, ((const qv_st_tensor_t *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const qv_st_tensor_t *x = a, *y = b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

const qv_st_tensor_t *qv_st_find(const qv_st_t *st, const char *name)
{
    qv_st_tensor_t key = {.name = name};
    return bsearch(&key, st->tensors, st->ntensors, sizeof key, by_name);
}

/* A non-negative JSON integer as uint64_t. */
static bool json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fills t from one header entry; data offsets are returned for the caller to bound. */
static int parse_entry(const char *name, json_t *v, qv_st_tensor_t *t, uint64_t *begin, uint64_t *end,
                       qv_err_t *err)
{
    if (!json_is_object(v))
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': entry is not an object", name);
    const json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
                 *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': no dtype", name);
    const char *ds = json_string_value(jd);
    size_t d = 0;
    while (d < NDTYPES && strcmp(ds, dtypes[d].name) != 0)
        d++;
    if (d == NDTYPES)
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': unknown dtype '%.16s'", name, ds);
    t->dtype = (qv_st_dtype_t)d;
    if (!json_is_array(js) || json_array_size(js) > QV_ST_MAX_DIMS)
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': shape is not an array of at most %d dims", name,
                          QV_ST_MAX_DIMS);
    t->ndim = (uint32_t)json_array_size(js);
    uint64_t n = 1;
    bool overflow = false;
    for (uint32_t i = 0; i < t->ndim; i++) {
        if (!json_u64(json_array_get(js, i), &t->shape[i]))
            return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': shape[%u] is not a non-negative integer", name, i);
        if (t->shape[i] && n > UINT64_MAX / t->shape[i])
            overflow = true;
        else
            n *= t->shape[i];
    }
    if (overflow || n > UINT64_MAX / dtypes[d].size)
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': shape overflows", name);
    t->nelems = n;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), begin) ||
        !json_u64(json_array_get(jo, 1), end))
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': data_offsets is not [begin, end]", name);
    if (*begin > *end || *end - *begin != n * dtypes[d].size)
        return qv_err_set(err, QV_ECORRUPT,
                          "tensor '%.64s': data_offsets [%llu, %llu] do not hold %llu elements of %s", name,
                          (unsigned long long)*begin, (unsigned long long)*end, (unsigned long long)n, ds);
    return QV_OK;
}

int qv_st_parse(const uint8_t *buf, size_t len, qv_st_t **out, qv_err_t *err)
{
    *out = NULL;
    if (len < 8)
        return qv_err_set(err, QV_ECORRUPT, "file of %zu bytes has no header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > QV_ST_HEADER_MAX || hlen > len - 8)
        return qv_err_set(err, QV_ECORRUPT, "header of %llu bytes does not fit (file %zu bytes, limit %u)",
                          (unsigned long long)hlen, len, QV_ST_HEADER_MAX);
    if (hlen < 2 || buf[8] != '{')
        return qv_err_set(err, QV_ECORRUPT, "header is not a JSON object");
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return qv_err_set(err, QV_ECORRUPT, "header JSON: %.120s (at byte %d)", jerr.text, jerr.position);
    int rc = QV_OK;
    qv_st_t *st = calloc(1, sizeof *st);
    size_t nentries = json_is_object(root) ? json_object_size(root) : 0;
    if (!json_is_object(root)) {
        rc = qv_err_set(err, QV_ECORRUPT, "header is not a JSON object");
        goto out;
    }
    if (nentries > QV_ST_TENSORS_MAX) {
        rc = qv_err_set(err, QV_ECORRUPT, "header lists %zu tensors (limit %d)", nentries, QV_ST_TENSORS_MAX);
        goto out;
    }
    size_t names_len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) names_len += strlen(key) + 1;
    if (st) {
        st->tensors = calloc(nentries ? nentries : 1, sizeof *st->tensors);
        st->names = malloc(names_len ? names_len : 1);
    }
    if (!st || !st->tensors || !st->names) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for %zu tensors", nentries);
        goto out;
    }
    size_t npos = 0;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) {
                rc = qv_err_set(err, QV_ECORRUPT, "__metadata__ is not an object");
                goto out;
            }
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = qv_err_set(err, QV_ECORRUPT, "__metadata__['%.64s'] is not a string", mk);
                    goto out;
                }
            }
            continue;
        }
        qv_st_tensor_t *t = &st->tensors[st->ntensors];
        uint64_t begin, end;
        if ((rc = parse_entry(key, v, t, &begin, &end, err)) != QV_OK)
            goto out;
        if (end > data_len) {
            rc = qv_err_set(err, QV_ECORRUPT, "tensor '%.64s': data_offsets end %llu is past the data (%llu bytes)",
                            key, (unsigned long long)end, (unsigned long long)data_len);
            goto out;
        }
        size_t klen = strlen(key) + 1;
        memcpy(st->names + npos, key, klen);
        t->name = st->names + npos;
        npos += klen;
        t->data = data + begin;
        t->nbytes = (size_t)(end - begin);
        st->ntensors++;
    }
    /* Coverage: sorted by offset, each tensor must start where the previous one ended. */
    qsort(st->tensors, st->ntensors, sizeof *st->tensors, by_offset);
    const uint8_t *at = data;
    for (size_t i = 0; i < st->ntensors; i++) {
        const qv_st_tensor_t *t = &st->tensors[i];
        if (t->data != at) {
            rc = qv_err_set(err, QV_ECORRUPT, "tensor '%.64s' at data offset %zu: %s at offset %zu", t->name,
                            (size_t)(t->data - data), t->data < at ? "overlaps the previous tensor" : "hole",
                            (size_t)(at - data));
            goto out;
        }
        at += t->nbytes;
    }
    if ((uint64_t)(at - data) != data_len) {
        rc = qv_err_set(err, QV_ECORRUPT, "%llu bytes after the last tensor",
                        (unsigned long long)(data_len - (uint64_t)(at - data)));
        goto out;
    }
    qsort(st->tensors, st->ntensors, sizeof *st->tensors, by_name);
out:
    json_decref(root);
    if (rc != QV_OK) {
        qv_st_free(st);
        return rc;
    }
    *out = st;
    return QV_OK;
}

static void prefix_path(qv_err_t *err, const char *path)
{
    if (!err)
        return;
    char msg[QV_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%.100s: %.150s", path, err->msg);
    memcpy(err->msg, msg, sizeof msg);
}

int qv_st_open(const char *path, qv_st_t **out, qv_err_t *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qv_err_set(err, errno == ENOENT ? QV_ENOTFOUND : QV_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qv_err_set(err, QV_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        qv_err_set(err, QV_ECORRUPT, "file of %zu bytes has no header length", len);
        prefix_path(err, path);
        return QV_ECORRUPT;
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (map == MAP_FAILED)
        return qv_err_set(err, saved == ENOMEM ? QV_ENOMEM : QV_EIO, "%s: mmap: %s", path, strerror(saved));
    qv_st_t *st;
    int rc = qv_st_parse(map, len, &st, err);
    if (rc != QV_OK) {
        munmap(map, len);
        prefix_path(err, path);
        return rc;
    }
    st->map = map;
    st->map_len = len;
    *out = st;
    return QV_OK;
}

float qv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: renormalise */
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int qv_st_read_f32(const qv_st_t *st, const char *name, uint32_t ndim, const uint64_t *shape, float *dst,
                   qv_err_t *err)
{
    const qv_st_tensor_t *t = qv_st_find(st, name);
    if (!t)
        return qv_err_set(err, QV_ECORRUPT, "no tensor '%.100s'", name);
    bool same = t->ndim == ndim;
    for (uint32_t i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[96] = "", want[96] = "";
        for (uint32_t i = 0, o = 0; i < t->ndim && o < sizeof got - 24; i++)
            o += (uint32_t)snprintf(got + o, sizeof got - o, "%s%llu", i ? "," : "", (unsigned long long)t->shape[i]);
        for (uint32_t i = 0, o = 0; i < ndim && o < sizeof want - 24; i++)
            o += (uint32_t)snprintf(want + o, sizeof want - o, "%s%llu", i ? "," : "", (unsigned long long)shape[i]);
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s' has shape [%s], want [%s]", name, got, want);
    }
    if (t->dtype != QV_ST_F32 && t->dtype != QV_ST_F16 && t->dtype != QV_ST_BF16)
        return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s' is %s, want F32, F16 or BF16", name,
                          qv_st_dtype_name(t->dtype));
    const uint8_t *p = t->data;
    if (t->dtype == QV_ST_F32 && t->nbytes) /* little-endian host: the bytes are the floats */
        memcpy(dst, p, t->nbytes);
    for (uint64_t i = 0; i < t->nelems; i++) {
        float f;
        if (t->dtype == QV_ST_F32) {
            f = dst[i];
        } else if (t->dtype == QV_ST_F16) {
            f = qv_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        } else { /* BF16 */
            uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&f, &bits, 4);
        }
        if (!isfinite(f))
            return qv_err_set(err, QV_ECORRUPT, "tensor '%.64s' element %llu is not finite", name,
                              (unsigned long long)i);
        dst[i] = f;
    }
    return QV_OK;
}
