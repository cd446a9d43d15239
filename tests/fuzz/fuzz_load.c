/* Fuzz target: the input parsers of `quiver load` (tools/quiver/load_input.c and load_text.c: fvecs, bvecs, npy,
 * jsonl, csv, tsv), through qv_input_open / qv_input_next as the CLI calls them.
 *
 * Input: one mode byte, then (mode bit 6) a resume position (u64 offset, u64 row, used as a checkpoint's), then the
 * input file's bytes. Mode bits 0-2 pick the format (modulo 6), bits 3-4 the collection's dim - 1, bit 5 marks the
 * id/vector/text field names as given on the command line. The collection has one field of every type. The bytes are
 * written to a memfd and opened by its /proc/self/fd path (the parsers read files: their header readers pread, the
 * reader streams chunks), with io_uring off so that every run reads the same way.
 *
 * Every record a parser returns must have a non-empty id, dim finite components and attributes that are distinct
 * schema fields with values of the field's type; bad records and fatal errors must say why; positions must move
 * forward within the file, every call must consume input (at most size + 3 calls before the end), and the end must
 * stay the end. Then, as `quiver load --resume` would, the input is reopened at the position of the last record
 * returned, which must parse to the same record. The parsers' notes on stderr (unknown columns, trailing bytes, the
 * pread fallback) are silenced by pointing stderr at /dev/null during the calls; sanitizer reports write to fd 2
 * directly and stay visible. */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "tools/quiver/load.h"

#define DIM_MAX 4

static Quiver__V1__FieldSchema fields[5];
static Quiver__V1__FieldSchema *field_list[5];
static Quiver__V1__CollectionInfo info;
static int memfd = -1;
static char path[64];
static FILE *quiet;

static void setup(void)
{
    if (memfd >= 0)
        return;
    static const struct {
        const char *name;
        Quiver__V1__FieldType type;
    } f[5] = {
        {"n_int", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64}, {"n_dbl", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE},
        {"kw", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD},  {"flag", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL},
        {"tags", QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORDS},
    };
    for (int i = 0; i < 5; i++) {
        quiver__v1__field_schema__init(&fields[i]);
        fields[i].name = (char *)f[i].name;
        fields[i].type = f[i].type;
        field_list[i] = &fields[i];
    }
    quiver__v1__collection_info__init(&info);
    info.name = "fuzz";
    info.fields = field_list;
    info.n_fields = 5;
    setenv("QUIVER_NO_IO_URING", "1", 1);
    memfd = memfd_create("fuzz_load", MFD_CLOEXEC);
    FUZZ_CHECK(memfd >= 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    quiet = fopen("/dev/null", "w");
    FUZZ_CHECK(quiet);
}

static int kind_of(Quiver__V1__FieldType t)
{
    switch (t) {
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_INT64: return QUIVER__V1__VALUE__KIND_INT_VALUE;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_DOUBLE: return QUIVER__V1__VALUE__KIND_DOUBLE_VALUE;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_KEYWORD: return QUIVER__V1__VALUE__KIND_KEYWORD_VALUE;
    case QUIVER__V1__FIELD_TYPE__FIELD_TYPE_BOOL: return QUIVER__V1__VALUE__KIND_BOOL_VALUE;
    default: return QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE;
    }
}

static void check_point(const Quiver__V1__Point *p, uint32_t dim)
{
    FUZZ_CHECK(p && p->id && p->id[0] && p->n_vector == dim);
    for (uint32_t i = 0; i < dim; i++)
        FUZZ_CHECK(isfinite(p->vector[i]));
    FUZZ_CHECK(p->n_attributes <= info.n_fields);
    for (size_t a = 0; a < p->n_attributes; a++) {
        const Quiver__V1__Point__AttributesEntry *e = p->attributes[a];
        int fi = -1;
        for (size_t f = 0; f < info.n_fields; f++)
            if (e->key == fields[f].name)
                fi = (int)f;
        FUZZ_CHECK(fi >= 0 && e->value && (int)e->value->kind_case == kind_of(fields[fi].type));
        for (size_t b = 0; b < a; b++)
            FUZZ_CHECK(p->attributes[b]->key != e->key);
        const Quiver__V1__Value *v = e->value;
        if (v->kind_case == QUIVER__V1__VALUE__KIND_DOUBLE_VALUE)
            FUZZ_CHECK(isfinite(v->double_value));
        if (v->kind_case == QUIVER__V1__VALUE__KIND_KEYWORD_VALUE)
            FUZZ_CHECK(v->keyword_value && strlen(v->keyword_value) < (1u << 20));
        if (v->kind_case == QUIVER__V1__VALUE__KIND_KEYWORDS_VALUE) {
            FUZZ_CHECK(v->keywords_value);
            for (size_t k = 0; k < v->keywords_value->n_values; k++)
                FUZZ_CHECK(v->keywords_value->values[k] && strlen(v->keywords_value->values[k]) < (1u << 20));
        }
    }
    FUZZ_CHECK(!p->text || strlen(p->text) < (1u << 20));
}

typedef struct {
    bool have;
    qv_pos_t before;
    char *id;
    float vector[DIM_MAX];
} last_row_t;

/* Opens the file at resume (may be NULL) and reads it to the end, checking every result; the last record returned
 * goes into *last. */
static void read_all(const qv_input_opts_t *o, const qv_pos_t *resume, size_t size, last_row_t *last)
{
    uint32_t dim = o->info->dim;
    qv_input_t *in;
    char msg[512] = "";
    FILE *real = stderr;
    stderr = quiet;
    int rc = qv_input_open(path, o, resume, &in, msg, sizeof msg);
    stderr = real;
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && !in && msg[0]);
        return;
    }
    FUZZ_CHECK(qv_input_size(in) == size);
    qv_pos_t prev = qv_input_pos(in);
    FUZZ_CHECK(prev.offset <= size && (!resume || prev.offset == resume->offset));
    qv_arena_t a;
    qv_arena_init(&a);
    for (size_t calls = 1;; calls++) {
        FUZZ_CHECK(calls <= size + 3);
        Quiver__V1__Point *p;
        qv_pos_t before;
        stderr = quiet;
        int r = qv_input_next(in, &a, &p, &before, msg, sizeof msg);
        stderr = real;
        qv_pos_t now = qv_input_pos(in);
        FUZZ_CHECK(now.offset <= size && now.offset >= prev.offset && now.row >= prev.row);
        if (r == QV_IN_EOF) {
            FUZZ_CHECK(!p);
            stderr = quiet;
            r = qv_input_next(in, &a, &p, &before, msg, sizeof msg);
            stderr = real;
            FUZZ_CHECK(r == QV_IN_EOF);
            break;
        }
        FUZZ_CHECK(before.offset >= prev.offset && before.offset <= now.offset);
        if (r == QV_IN_FATAL) {
            FUZZ_CHECK(!p && msg[0]);
            break;
        }
        FUZZ_CHECK(now.row > before.row && before.row >= prev.row);
        if (r == QV_IN_BAD) {
            FUZZ_CHECK(!p && msg[0]);
        } else {
            FUZZ_CHECK(r == QV_IN_ROW);
            check_point(p, dim);
            free(last->id);
            last->have = true;
            last->before = before;
            last->id = strdup(p->id);
            FUZZ_CHECK(last->id);
            memcpy(last->vector, p->vector, dim * sizeof(float));
        }
        prev = now;
    }
    qv_input_close(in);
    qv_arena_free(&a);
}

/* Reopens the file where `last` started, as a resumed load would, and checks that it parses to the same record. */
static void reread(const qv_input_opts_t *o, const last_row_t *last)
{
    qv_input_t *in;
    char msg[512] = "";
    FILE *real = stderr;
    stderr = quiet;
    int rc = qv_input_open(path, o, &last->before, &in, msg, sizeof msg);
    stderr = real;
    if (rc != 0) {
        fprintf(stderr, "resuming at offset %llu: %s\n", (unsigned long long)last->before.offset, msg);
        FUZZ_CHECK(!"a record's position can be resumed from");
    }
    qv_arena_t a;
    qv_arena_init(&a);
    Quiver__V1__Point *p;
    qv_pos_t before;
    stderr = quiet;
    int r = qv_input_next(in, &a, &p, &before, msg, sizeof msg);
    stderr = real;
    FUZZ_CHECK(r == QV_IN_ROW && before.offset == last->before.offset && before.row == last->before.row);
    FUZZ_CHECK(strcmp(p->id, last->id) == 0 && memcmp(p->vector, last->vector, o->info->dim * sizeof(float)) == 0);
    qv_input_close(in);
    qv_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    qv_pos_t resume = {0};
    bool resumed = mode & 0x40;
    if (resumed) {
        if (size < 16)
            return 0;
        memcpy(&resume.offset, data, 8);
        memcpy(&resume.row, data + 8, 8);
        resume.line = resume.row;
        data += 16;
        size -= 16;
    }
    FUZZ_CHECK(ftruncate(memfd, 0) == 0);
    FUZZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);
    info.dim = 1 + ((mode >> 3) & 3);
    bool set = mode & 0x20;
    qv_input_opts_t o = {.fmt = (qv_fmt_t)((mode & 7) % 6), .info = &info, .id_field = "id",
                         .vector_field = "vector", .text_field = "text", .id_field_set = set,
                         .vector_field_set = set, .text_field_set = set};
    last_row_t last = {0};
    read_all(&o, resumed ? &resume : NULL, size, &last);
    if (last.have)
        reread(&o, &last);
    free(last.id);
    return 0;
}

/* ---- seeds: every format with records good and bad, every attribute type, and resumed reads ---- */

enum { F_FVECS, F_BVECS, F_NPY, F_JSONL, F_CSV, F_TSV };
#define DIM3 (2 << 3)
#define SET 0x20
#define RESUME 0x40

typedef struct {
    uint8_t b[4096];
    size_t n;
} file_t;

static void put(file_t *f, const void *p, size_t n)
{
    FUZZ_CHECK(f->n + n <= sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void put_i32(file_t *f, int32_t v) { put(f, &v, 4); }
static void put_f32(file_t *f, float v) { put(f, &v, 4); }

/* A mode byte, the resume position when mode has RESUME, then the file. */
static void add_file(qv_fuzz_add_fn add, void *ctx, uint8_t mode, uint64_t offset, uint64_t row, const file_t *f)
{
    file_t in = {.n = 0};
    put(&in, &mode, 1);
    if (mode & RESUME) {
        put(&in, &offset, 8);
        put(&in, &row, 8);
    }
    put(&in, f->b, f->n);
    add(ctx, in.b, in.n);
}

static void add_text(qv_fuzz_add_fn add, void *ctx, uint8_t mode, const char *text)
{
    file_t f = {.n = 0};
    put(&f, text, strlen(text));
    add_file(add, ctx, mode, 0, 0, &f);
}

/* An .npy file: version, dtype, shape, then `count` items of `item` bytes from values. */
static void add_npy(qv_fuzz_add_fn add, void *ctx, uint8_t mode, int version, const char *descr, const char *shape,
                    const void *values, size_t bytes)
{
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t pre = version == 1 ? 10 : 12, hlen = 64 - pre;
    while ((size_t)dl + 1 > hlen)
        hlen += 64;
    file_t f = {.n = 0};
    put(&f, "\x93NUMPY", 6);
    uint8_t ver[2] = {(uint8_t)version, 0};
    put(&f, ver, 2);
    uint32_t hl = (uint32_t)hlen;
    put(&f, &hl, version == 1 ? 2 : 4);
    put(&f, dict, (size_t)dl);
    for (size_t i = (size_t)dl; i + 1 < hlen; i++)
        put(&f, " ", 1);
    put(&f, "\n", 1);
    put(&f, values, bytes);
    add_file(add, ctx, mode, 0, 0, &f);
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    setup();
    file_t f = {.n = 0};
    const float rows[4][3] = {{1, 2, 3}, {-1, 0.5f, 7}, {0, 0, 0}, {4, 5, 6}};
    for (int r = 0; r < 4; r++) {
        put_i32(&f, r == 2 ? 2 : 3);
        for (int k = 0; k < (r == 2 ? 2 : 3); k++)
            put_f32(&f, rows[r][k]);
    }
    add_file(add, ctx, F_FVECS | DIM3, 0, 0, &f);
    add_file(add, ctx, F_FVECS | DIM3 | RESUME, 16, 1, &f);
    f.n = 0;
    for (int r = 0; r < 3; r++) {
        put_i32(&f, 3);
        uint8_t b[3] = {(uint8_t)r, 200, 7};
        put(&f, b, 3);
    }
    add_file(add, ctx, F_BVECS | DIM3, 0, 0, &f);

    const float f4[9] = {1, 2, 3, 4, 5, 6, -7, 8.5f, 9};
    const double f8[6] = {1, 2, 3, 1e300, 5, 6};
    const uint8_t u1[6] = {0, 1, 2, 253, 254, 255};
    add_npy(add, ctx, F_NPY | DIM3, 1, "<f4", "(3, 3)", f4, sizeof f4);
    add_npy(add, ctx, F_NPY | DIM3, 2, "<f8", "(2, 3)", f8, sizeof f8);
    add_npy(add, ctx, F_NPY | DIM3, 3, "|u1", "(2,3)", u1, sizeof u1);
    add_npy(add, ctx, F_NPY, 1, "|i1", "(6, 1)", u1, sizeof u1);
    add_npy(add, ctx, F_NPY | DIM3, 1, "<f4", "(4, 3)", f4, sizeof f4); /* truncated data */

    const char *jsonl =
        "{\"id\": \"a\", \"vector\": [1, 2, 3], \"text\": \"hello\", \"n_int\": 5, \"n_dbl\": 2.5, \"kw\": \"x\", "
        "\"flag\": true, \"tags\": [\"p\", \"q\"]}\n"
        "\n"
        "{\"vector\": [0.5, -1, 2e3], \"kw\": null, \"tags\": \"solo\", \"other\": 1}\r\n"
        "{\"id\": 17, \"vector\": [1, 2]}\n"
        "{\"id\": \"b\", \"vector\": [1, 2, 3], \"n_int\": 3.0, \"flag\": false}\n"
        "not json\n"
        "{\"id\": \"c\", \"vector\": [1e39, 2, 3]}\n"
        "{\"id\": \"a\\u0000b\", \"vector\": [1, 2, 3]}\n"
        "{\"id\": \"d\", \"vector\": [1, 2, 3], \"text\": null}";
    add_text(add, ctx, F_JSONL | DIM3, jsonl);
    file_t j = {.n = 0};
    put(&j, jsonl, strlen(jsonl));
    add_file(add, ctx, F_JSONL | DIM3 | RESUME, (uint64_t)(strchr(jsonl, '\n') - jsonl) + 1, 1, &j);
    add_file(add, ctx, F_JSONL | DIM3 | RESUME, (uint64_t)(strchr(jsonl, '\n') - jsonl) + 1, UINT64_MAX, &j);

    const char *csv = "id,vector,text,n_int,n_dbl,kw,flag,tags,other\n"
                      "a,\"[1, 2, 3]\",\"say \"\"hi\"\"\",5,2.5,x,true,p|q,z\n"
                      "b,1 2 3,,,,,,,\n"
                      "c,\"1;2\",t,1,1,1,1,1,1\n"
                      "\n"
                      "d,1 2 3,t,x,y,z,maybe,,\n"
                      "e,\"1,2,3\",\"unterminated\n"
                      "f,[4;5;6],text,-9,1e308,k,NO,a||b,\n";
    add_text(add, ctx, F_CSV | DIM3, csv);
    add_text(add, ctx, F_CSV | DIM3 | SET, csv);
    file_t c = {.n = 0};
    put(&c, csv, strlen(csv));
    add_file(add, ctx, F_CSV | DIM3 | RESUME, (uint64_t)(strchr(csv, '\n') - csv) + 1, 0, &c);
    add_text(add, ctx, F_CSV | DIM3, "\xEF\xBB\xBFv0,v1,v2,kw\r\n1,2,3,a\r\n4, 5 ,6,\"b,c\"\r\n7,8\r\n");
    add_text(add, ctx, F_TSV | DIM3, "id\tv0\tv1\tv2\tflag\ttags\nx\t1\t2\t3\tyes\tq|r\ny\t1\t2\tnan\tno\t\n");
    add_text(add, ctx, F_CSV | DIM3, "kw,v0,v1,v2,,note,,note,kw\nx,1,2,3,,,,,y\n");
    add_text(add, ctx, F_CSV | DIM3, "id,v0,v1,v0,v2\nx,1,2,3,4\n");
    static const char nul_csv[] = "id,v0,v1,v2,text\na,1,2,3,t\0u\nb\0,1,2,3,\n";
    file_t nul = {.n = 0};
    put(&nul, nul_csv, sizeof nul_csv - 1);
    add_file(add, ctx, F_CSV | DIM3, 0, 0, &nul);
}
