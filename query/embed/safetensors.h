/* safetensors reader (the format of Hugging Face's `safetensors`), for untrusted files.
 *
 * Format: u64 little-endian N, then N bytes of UTF-8 JSON (the header), then the data buffer. The header maps tensor
 * names to {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, offsets relative to the start of
 * the data buffer; an optional "__metadata__" entry maps strings to strings. Checked on parse: N fits in the file and
 * is at most QV_ST_HEADER_MAX; the JSON is one object with no duplicate keys; every dtype is known; a shape has at
 * most QV_ST_MAX_DIMS non-negative integer dims whose product (times the dtype size) does not overflow and equals
 * end - begin; 0 <= begin <= end <= data length; tensors neither overlap nor leave holes, and cover the whole data
 * buffer (as the reference library requires). Anything else is QV_ECORRUPT with a message naming the tensor. */
#ifndef QV_EMBED_SAFETENSORS_H
#define QV_EMBED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define QV_ST_HEADER_MAX (100u << 20) /* the reference library's limit */
#define QV_ST_MAX_DIMS 8
#define QV_ST_TENSORS_MAX 100000

typedef enum {
    QV_ST_BOOL,
    QV_ST_U8,
    QV_ST_I8,
    QV_ST_F8_E5M2,
    QV_ST_F8_E4M3,
    QV_ST_I16,
    QV_ST_U16,
    QV_ST_F16,
    QV_ST_BF16,
    QV_ST_I32,
    QV_ST_U32,
    QV_ST_F32,
    QV_ST_I64,
    QV_ST_U64,
    QV_ST_F64,
} qv_st_dtype_t;

typedef struct {
    const char *name;            /* owned by the qv_st_t */
    qv_st_dtype_t dtype;
    uint32_t ndim;
    uint64_t shape[QV_ST_MAX_DIMS];
    uint64_t nelems;             /* product of shape (1 for a scalar) */
    const uint8_t *data;         /* nbytes bytes inside the parsed buffer; no alignment guaranteed */
    size_t nbytes;
} qv_st_tensor_t;

typedef struct qv_st qv_st_t;

/* Parses and validates a safetensors image of len bytes. The result borrows buf (tensor data points into it): buf
 * must outlive it. This is the fuzzing entry point: it never reads outside buf. Errors: QV_ECORRUPT, QV_ENOMEM. On
 * success *out is owned by the caller: qv_st_free(). */
int qv_st_parse(const uint8_t *buf, size_t len, qv_st_t **out, qv_err_t *err);

/* Maps the file read-only and parses it; the result owns the mapping. Errors as qv_st_parse, plus QV_ENOTFOUND (no
 * such file) and QV_EIO; messages start with the path. (A file truncated by someone else while it is mapped would
 * raise SIGBUS on access: model files are written once by setup, before the server starts.) */
int qv_st_open(const char *path, qv_st_t **out, qv_err_t *err);

void qv_st_free(qv_st_t *st);

/* Tensors in name order; valid until qv_st_free. */
size_t qv_st_count(const qv_st_t *st);
const qv_st_tensor_t *qv_st_at(const qv_st_t *st, size_t i);
/* The named tensor, or NULL. */
const qv_st_tensor_t *qv_st_find(const qv_st_t *st, const char *name);

/* Name of a dtype as the format spells it ("F32"); size in bytes of one element. */
const char *qv_st_dtype_name(qv_st_dtype_t dtype);
size_t qv_st_dtype_size(qv_st_dtype_t dtype);

/* Copies the named tensor into dst as floats (F32 copied, F16 and BF16 widened exactly), after checking that its
 * shape is exactly shape[0..ndim). Errors (QV_ECORRUPT, naming the tensor): missing, another shape, a dtype that is
 * not F32/F16/BF16, or a value that is not finite (NaN or infinity in weights is corruption, not a model). */
int qv_st_read_f32(const qv_st_t *st, const char *name, uint32_t ndim, const uint64_t *shape, float *dst,
                   qv_err_t *err);

/* IEEE half -> float, exact (subnormals, infinities and NaNs included). */
float qv_f16_to_f32(uint16_t h);

#endif
