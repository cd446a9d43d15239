/* Segments: the columnar in-memory form of a run of rows of one collection.
 *
 * A collection has one growing segment (append-only, covered by the write-ahead log) and any number of sealed
 * segments (immutable rows, persisted by storage/segment_io.c). Both use this structure; sealing only flips
 * `sealed` and writes the blob, the memory stays where it is. Rows are never removed: a delete or a replacing upsert
 * sets the row's bit in `deleted`. Row data (vectors, ids, attribute columns, text) is written once, on append.
 *
 * Locking: a segment belongs to a collection; appends and deletes happen in the commit leader under the
 * collection's write lock. Readers use a read view (storage/read.h) and take no lock while they scan: a sealed
 * segment's rows never change, the growing segment is read through a copy of its descriptor taken when the view
 * began (its rows then, its arrays then), delete bits are set and read atomically, and an array the growing segment
 * outgrows while views of it are open is retired instead of freed (the last such view frees it). Segments are
 * reference counted, so a collection can drop or replace them while a view still holds them. */
#ifndef QV_SEGMENT_H
#define QV_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>

#include "storage/schema.h"

/* A column of byte strings, one per item: item i is bytes[off[i] .. off[i+1]). */
typedef struct {
    uint64_t *off; /* n+1 offsets, off[0] = 0 */
    char *bytes;
    size_t cap_off;   /* entries allocated in off */
    size_t cap_bytes; /* bytes allocated */
} qv_strcol_t;

static inline qv_str_t qv_strcol_get(const qv_strcol_t *c, size_t i)
{
    qv_str_t s = {c->bytes + c->off[i], (uint32_t)(c->off[i + 1] - c->off[i])};
    return s;
}

/* Inverted lists of a KEYWORD or KEYWORDS column of a sealed segment: a dictionary of the distinct keywords (codes
 * 0..ncodes-1, strings borrowed from the column) and, per code, the ascending rows holding it. Built once when a
 * segment becomes immutable; a filter on the column then touches only the rows of the keywords it names. */
typedef struct {
    uint32_t ncodes;
    uint32_t cap;      /* hash slots, a power of two */
    uint32_t *slots;   /* code + 1, or 0 when empty */
    uint64_t *hash;    /* per code */
    qv_str_t *str;     /* per code */
    uint32_t *off;     /* ncodes + 1 offsets into rows */
    uint32_t *rows;    /* postings */
} qv_postings_t;

/* Code of a keyword, or -1. */
int64_t qv_postings_find(const qv_postings_t *p, qv_str_t s);

typedef struct {
    uint8_t type;      /* qv_ftype_t */
    uint64_t *present; /* bit per row: the row has a value for this field */
    int64_t *i64;      /* INT64 */
    double *f64;       /* DOUBLE */
    uint8_t *b;        /* BOOL */
    qv_strcol_t str;   /* KEYWORD: one item per row (empty when absent); KEYWORDS: all elements of all rows */
    uint32_t *kw_off;  /* KEYWORDS: row r owns items kw_off[r] .. kw_off[r+1] of str */
    size_t nitems;     /* KEYWORDS: items in str */
    qv_postings_t *post; /* sealed segments' KEYWORD/KEYWORDS columns; NULL otherwise (or if it could not be built) */
} qv_column_t;

struct qv_hnsw;

/* Index state of a segment (values match quiver.v1.IndexState). */
enum { QV_IDX_NONE = 1, QV_IDX_PENDING = 2, QV_IDX_BUILDING = 3, QV_IDX_READY = 4, QV_IDX_FAILED = 5 };

typedef struct qv_segment {
    uint64_t id;
    uint32_t dim;
    uint16_t nfields;
    bool sealed;
    uint32_t rows;      /* rows appended */
    uint32_t cap;       /* rows allocated */
    /* Set by a compaction's swap on each of its inputs (storage/compact.c): the merged segment its rows were copied
     * to, and where (fwd_rows[r]; owned, freed with the segment). Until the job has repointed them, id-map slots may
     * still name an input row; a writer resolves such a location with qv_idslot_where. Guarded by the collection's
     * lock. */
    struct qv_segment *fwd;
    uint32_t *fwd_rows;
    float *vectors;     /* rows x dim, row-major */
    qv_strcol_t ids;    /* point id of each row */
    qv_strcol_t text;   /* text of each row (empty when none) */
    qv_strcol_t dyn;    /* dynamic attributes of each row: a dyn blob (storage/dynattr.h), empty when none */
    qv_column_t *cols;  /* nfields columns, schema order */
    uint64_t *deleted;  /* bit per row, cap bits */
    uint32_t ndeleted;
    bool del_dirty;     /* deleted changed since the bitmap was last persisted */
    uint64_t blob_len;  /* sealed: size of the persisted blob (recorded in the manifest); commit leader only */
    /* Sealing is two steps (seal.c): the commit leader freezes the growing segment (sealed = true, searchable,
     * immutable rows) and later persists it (blob + manifest); until then the WAL still covers its rows. */
    bool persisted;     /* in the manifest; commit leader only (and recovery) */
    bool blob_written;  /* its blob chunks are already in the seg column family; commit leader only */
    uint64_t freeze_seq; /* last WAL seq applied when it was frozen */
    uint64_t wal_share;  /* bytes of WAL records it covers */
    atomic_int refs;
    /* The index of a sealed segment, published once by its index build (release) and read by searches
     * (acquire); freed with the segment. `building` is set only while a build runs, for progress reports. */
    _Atomic(struct qv_hnsw *) index;
    _Atomic(struct qv_hnsw *) building;
    atomic_int index_state;  /* QV_IDX_* */
    /* Read views of a growing segment (storage/read.c): while `views` > 0 an array the segment outgrows goes on
     * `retired` instead of being freed; the last view to end frees them. `snapshot_of`: this descriptor is a view's
     * copy of that segment's and owns none of the arrays it points at. Guarded by view_mu. */
    pthread_mutex_t view_mu;
    int views;
    struct qv_retired *retired;
    struct qv_segment *snapshot_of;
} qv_segment_t;

/* Creates an empty growing segment for the schema. NULL on allocation failure. refs = 1. */
qv_segment_t *qv_seg_create(const qv_schema_t *s, uint64_t id);
void qv_seg_ref(qv_segment_t *seg);
void qv_seg_unref(qv_segment_t *seg);

/* Appends one validated point; returns QV_ENOMEM (segment unchanged) if the arrays cannot grow. */
int qv_seg_append(qv_segment_t *seg, const qv_point_t *pt, uint32_t *row_out);

/* Ensures room for n more rows without reallocating during the appends (lets a whole batch fail up front). */
int qv_seg_reserve(qv_segment_t *seg, uint32_t n);

/* Gives back the room an append-built segment holds beyond its rows (capacity grows by doubling), so that its
 * size (qv_seg_bytes) is what it holds. Only for a segment no reader can see yet (a compaction's output before its
 * swap), before its postings are built (they borrow its strings): arrays move. A failed shrink leaves an array as
 * it was. */
void qv_seg_shrink(qv_segment_t *seg);

/* Marks a row deleted; returns true if it was live. */
bool qv_seg_delete(qv_segment_t *seg, uint32_t row);

static inline bool qv_seg_is_deleted(const qv_segment_t *seg, uint32_t row)
{
    return (__atomic_load_n(&seg->deleted[row >> 6], __ATOMIC_RELAXED) >> (row & 63)) & 1u; /* the leader sets bits */
}

/* Deleted rows; the leader counts them while views read (atomic). */
static inline uint32_t qv_seg_ndeleted(const qv_segment_t *seg)
{
    return __atomic_load_n(&seg->ndeleted, __ATOMIC_RELAXED);
}

/* A view's copy of a growing segment's descriptor (storage/read.c; call under the collection's read lock): its
 * rows and arrays now, readable without a lock until qv_seg_snapshot_free, which the segment's retired arrays
 * outlive. NULL on OOM. */
qv_segment_t *qv_seg_snapshot(qv_segment_t *seg);
void qv_seg_snapshot_free(qv_segment_t *snap);

/* A borrowed point view of row r: id, vector, text and dyn blob point into the segment; the attributes go into attrs
 * (room for every field) and a KEYWORDS value's items into *items (grown as needed, *cap its room; the caller frees
 * it). QV_ENOMEM when *items cannot grow. */
int qv_seg_row_point(const qv_segment_t *seg, uint32_t r, qv_point_t *pt, qv_attr_t *attrs, qv_str_t **items,
                     size_t *cap);

static inline const float *qv_seg_vector(const qv_segment_t *seg, uint32_t row)
{
    return seg->vectors + (size_t)row * seg->dim;
}

/* Builds the inverted lists of every KEYWORD/KEYWORDS column; call once the rows are immutable and before the
 * segment is shared with readers that may use them (a failed allocation leaves a column without lists: filters
 * then scan it). */
void qv_seg_build_postings(qv_segment_t *seg);

/* Bytes of memory the segment holds (for stats). */
size_t qv_seg_bytes(const qv_segment_t *seg);

/* ---- segment_io.c: the sealed segment blob ---- */
int qv_seg_encode(const qv_segment_t *seg, qv_wbuf_t *out);
/* Decodes an untrusted blob for a collection's schema. QV_ECORRUPT with a message on any inconsistency. */
int qv_seg_decode(const void *data, size_t len, const qv_schema_t *s, qv_segment_t **out, qv_err_t *err);

/* Delete bitmap blob. */
int qv_seg_encode_deleted(const qv_segment_t *seg, qv_wbuf_t *out);
int qv_seg_decode_deleted(qv_segment_t *seg, const void *data, size_t len, qv_err_t *err);

#endif
