/* The .npy reader of `quiver load` (tools/quiver/load_input.c), through qv_input_open / qv_input_next on files
 * written here: rows of every supported dtype; headers that are empty (length 0 once made the parser read before
 * and past its buffer), shorter than their preamble, longer than the file or than 1 MiB, not ending in '\n', not a
 * dict, or holding a NUL, each rejected with a message saying which; shapes that are not (rows, dim) or whose size
 * overflows; and data shorter than the shape. `test_x PATTERN` or $QV_TEST_FILTER (a cmocka glob) runs a subset (qvcase.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/quiver/load.h"

#define DIM 3

static char dir[] = "/tmp/qv_test_load_XXXXXX";
static char path[128];
static Quiver__V1__CollectionInfo info;

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/in.npy", dir);
    quiver__v1__collection_info__init(&info);
    info.name = "t";
    info.dim = DIM;
    setenv("QUIVER_NO_IO_URING", "1", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return rmdir(dir);
}

static void write_file(const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes an .npy file: magic, version, the header length field `hlen` as given (not necessarily the header's), the
 * header bytes, then the data. */
static void write_npy(int version, uint32_t hlen, const char *header, size_t header_len, const void *data,
                      size_t data_len)
{
    uint8_t buf[4096];
    size_t n = 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)version;
    buf[7] = 0;
    n = 8;
    memcpy(buf + n, &hlen, version == 1 ? 2 : 4);
    n += version == 1 ? 2 : 4;
    memcpy(buf + n, header, header_len);
    n += header_len;
    if (data_len)
        memcpy(buf + n, data, data_len);
    n += data_len;
    write_file(buf, n);
}

/* A well-formed header for descr and shape, padded with spaces so preamble + header is a multiple of 64. */
static size_t make_header(char *out, int version, const char *descr, const char *shape)
{
    size_t pre = version == 1 ? 10 : 12;
    int n = sprintf(out, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t len = (size_t)n + 1;
    while ((pre + len) % 64)
        len++;
    memset(out + n, ' ', len - 1 - (size_t)n);
    out[len - 1] = '\n';
    return len;
}

static void write_good(int version, const char *descr, const char *shape, const void *data, size_t data_len)
{
    char h[256];
    size_t hl = make_header(h, version, descr, shape);
    write_npy(version, (uint32_t)hl, h, hl, data, data_len);
}

/* Opening must fail with a message holding `want`. */
static void open_fails(const char *want)
{
    qv_input_opts_t o = {.fmt = QV_FMT_NPY, .info = &info};
    qv_input_t *in = (qv_input_t *)1;
    char msg[512] = "";
    assert_int_equal(qv_input_open(path, &o, NULL, &in, msg, sizeof msg), -1);
    assert_null(in);
    if (!strstr(msg, want))
        fail_msg("message '%s' lacks '%s'", msg, want);
}

/* Opens the file and reads every record: returns the number of rows, their vectors in v (room for max rows), and
 * the number of bad records in *bad. */
static size_t read_rows(float *v, size_t max, size_t *bad)
{
    qv_input_opts_t o = {.fmt = QV_FMT_NPY, .info = &info};
    qv_input_t *in;
    char msg[512] = "";
    if (qv_input_open(path, &o, NULL, &in, msg, sizeof msg) != 0)
        fail_msg("open: %s", msg);
    qv_arena_t a;
    qv_arena_init(&a);
    size_t rows = 0;
    *bad = 0;
    for (;;) {
        Quiver__V1__Point *p;
        qv_pos_t before;
        int rc = qv_input_next(in, &a, &p, &before, msg, sizeof msg);
        if (rc == QV_IN_EOF)
            break;
        assert_int_not_equal(rc, QV_IN_FATAL);
        if (rc == QV_IN_BAD) {
            (*bad)++;
            continue;
        }
        assert_int_equal(p->n_vector, DIM);
        char id[24];
        snprintf(id, sizeof id, "%zu", rows + *bad);
        assert_string_equal(p->id, id);
        assert_true(rows < max);
        memcpy(v + rows * DIM, p->vector, DIM * sizeof(float));
        rows++;
    }
    qv_input_close(in);
    qv_arena_free(&a);
    return rows;
}

static void test_npy_rows(void **state)
{
    (void)state;
    const float f4[6] = {1, 2, 3, -4, 5.5f, 6};
    const double f8[6] = {1, 2, 3, -4, 5.5, 6};
    const uint8_t u1[6] = {1, 2, 3, 252, 5, 6};
    float v[6];
    size_t bad;
    for (int version = 1; version <= 3; version++) {
        write_good(version, "<f4", "(2, 3)", f4, sizeof f4);
        assert_int_equal(read_rows(v, 2, &bad), 2);
        assert_int_equal(bad, 0);
        assert_memory_equal(v, f4, sizeof f4);
    }
    write_good(1, "<f8", "(2,3)", f8, sizeof f8);
    assert_int_equal(read_rows(v, 2, &bad), 2);
    assert_memory_equal(v, f4, sizeof f4);
    write_good(2, "|u1", "(2, 3,)", u1, sizeof u1);
    assert_int_equal(read_rows(v, 2, &bad), 2);
    assert_true(v[3] == 252.0f && v[5] == 6.0f);
    write_good(1, "|i1", "( 2 , 3 )", u1, sizeof u1);
    assert_int_equal(read_rows(v, 2, &bad), 2);
    assert_true(v[3] == -4.0f);
    write_good(1, "<f4", "(0, 3)", NULL, 0);
    assert_int_equal(read_rows(v, 2, &bad), 0);
    /* fewer rows than the shape says: the missing ones are one bad record */
    write_good(1, "<f4", "(5, 3)", f4, sizeof f4);
    assert_int_equal(read_rows(v, 2, &bad), 2);
    assert_int_equal(bad, 1);
}

static void test_npy_header_length_zero(void **state)
{
    (void)state;
    const float f4[3] = {1, 2, 3};
    write_npy(1, 0, "", 0, NULL, 0); /* exactly the preamble */
    open_fails("npy: header length 0");
    write_npy(1, 0, "", 0, f4, sizeof f4);
    open_fails("npy: header length 0");
    write_npy(2, 0, "", 0, f4, sizeof f4);
    open_fails("npy: header length 0");
    write_npy(3, 0, "", 0, NULL, 0);
    open_fails("npy: header length 0");
}

static void test_npy_header_bounds(void **state)
{
    (void)state;
    char h[256];
    size_t hl = make_header(h, 1, "<f4", "(1, 3)");
    const float f4[3] = {1, 2, 3};
    write_file("\x93NUMPY\x01\x00\x10", 9); /* the file ends inside the preamble */
    open_fails("npy: the file ends inside the 10-byte preamble (9 bytes)");
    write_file("\x93NUMPY\x02\x00\x10\x00\x00", 11);
    open_fails("npy: the file ends inside the 12-byte preamble (11 bytes)");
    write_file("\x93NUMPY", 6);
    open_fails("npy: not a NumPy .npy file (bad magic)");
    write_file("\x93NUMPX\x01\x00\x10\x00", 10);
    open_fails("bad magic");
    write_npy(4, (uint32_t)hl, h, hl, f4, sizeof f4);
    open_fails("npy: unsupported format version 4.0");
    /* a header longer than what follows the preamble */
    write_npy(1, (uint32_t)hl + 1, h, hl, NULL, 0);
    open_fails("npy: header of 119 bytes runs past the end of the file (128 bytes)");
    /* longer than the loader reads, whatever the file's size */
    write_npy(2, 0xFFFFFFFFu, h, hl, f4, sizeof f4);
    open_fails("npy: header of 4294967295 bytes, over the 1 MiB this loader accepts");
    write_npy(2, (1u << 20) - 11, h, hl, f4, sizeof f4);
    open_fails("over the 1 MiB");
    /* the last header byte must be the '\n' */
    write_npy(1, (uint32_t)hl - 1, h, hl - 1, NULL, 0);
    open_fails("npy: the 117-byte header does not end with '\\n'");
    write_npy(1, (uint32_t)hl, h, hl, f4, sizeof f4);
    size_t bad;
    float v[3];
    assert_int_equal(read_rows(v, 1, &bad), 1);
    /* too short to be the dict, or not one */
    write_npy(1, 1, "\n", 1, NULL, 0);
    open_fails("npy: header is not a dict with descr, fortran_order and shape");
    write_npy(1, 3, "{}\n", 3, NULL, 0);
    open_fails("header is not a dict");
    const char *nodict = "'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), \n";
    write_npy(1, (uint32_t)strlen(nodict), nodict, strlen(nodict), f4, sizeof f4);
    open_fails("header is not a dict");
    memcpy(h, "{'descr'\0", 9);
    write_npy(1, (uint32_t)hl, h, hl, f4, sizeof f4);
    open_fails("npy: NUL byte in the header");
}

static void test_npy_shape_and_dtype(void **state)
{
    (void)state;
    const float f4[6] = {1, 2, 3, 4, 5, 6};
    static const struct {
        const char *descr, *shape, *want;
    } cases[] = {
        {"<f4", "(6,)", "npy: expected a 2-D array of shape (rows, 3), header says (6,)"},
        {"<f4", "(1, 2, 3)", "expected a 2-D array"},
        {"<f4", "(-1, 3)", "expected a 2-D array"},
        {"<f4", "(2, -3)", "expected a 2-D array"},
        {"<f4", "(+2, 3)", "expected a 2-D array"},
        {"<f4", "2, 3", "expected a 2-D array"},
        {"<f4", "(99999999999999999999999, 3)", "expected a 2-D array"},
        {"<f4", "(2, 4)", "npy: the array has 4 columns, the collection has dim 3"},
        {"<f4", "(6148914691236517853, 3)", "npy: shape (6148914691236517853, 3) is larger than any file"},
        {"<f8", "(768614336404564650, 3)", "is larger than any file"},
        {">f4", "(2, 3)", "npy: unsupported dtype '>f4'"},
        {"<i4", "(2, 3)", "unsupported dtype"},
        {"<f4'x", "(2, 3)", "unsupported dtype"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_good(1, cases[i].descr, cases[i].shape, f4, sizeof f4);
        open_fails(cases[i].want);
    }
    const char *fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n";
    write_npy(1, (uint32_t)strlen(fortran), fortran, strlen(fortran), f4, sizeof f4);
    open_fails("npy: fortran_order arrays are not supported");
    const char *falsey = "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }\n";
    write_npy(1, (uint32_t)strlen(falsey), falsey, strlen(falsey), f4, sizeof f4);
    open_fails("fortran_order arrays are not supported");
    /* the value after the key, not the next quote anywhere */
    const char *late = "{'descr': 1, 'x': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    write_npy(1, (uint32_t)strlen(late), late, strlen(late), f4, sizeof f4);
    open_fails("unsupported dtype");
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_rows),
        cmocka_unit_test(test_npy_header_length_zero),
        cmocka_unit_test(test_npy_header_bounds),
        cmocka_unit_test(test_npy_shape_and_dtype),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
