/* API-key file parsing (server/auth.c): roles of the keys a file holds; blank lines of any C-locale whitespace (a
 * line of only "\v" or "\f" once made the parser read an uninitialised key) and comments skipped; every malformed
 * line rejected with a message naming the file and line, never the key; duplicate keys rejected; the file reader's
 * limits. `test_x PATTERN` or $QV_TEST_FILTER (a cmocka glob) runs a subset (qvcase.h). */
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

#include "server/auth.h"

#define KEY_R "reader-key-0123456789"
#define KEY_W "writer-key-0123456789"
#define KEY_A "admin-key-01234567890"

/* A string literal and its length in bytes (NULs inside included). */
#define S(lit) lit, sizeof(lit) - 1

static int role(const qv_keys_t *k, const char *key) { return qv_keys_role(k, key, strlen(key)); }

static qv_keys_t *parse_ok(const char *text, size_t len)
{
    qv_keys_t *k = NULL;
    qv_err_t err = {0};
    int rc = qv_keys_parse(text, len, "keys", &k, &err);
    if (rc != QV_OK)
        fail_msg("parse failed: %s", err.msg);
    assert_non_null(k);
    return k;
}

/* Parses text (of len bytes) expecting failure whose message holds `want`. */
static void parse_bad(const char *text, size_t len, const char *want)
{
    qv_keys_t *k = (qv_keys_t *)1;
    qv_err_t err = {0};
    assert_int_equal(qv_keys_parse(text, len, "keys", &k, &err), QV_EINVAL);
    assert_null(k);
    assert_int_equal(err.code, QV_EINVAL);
    if (!strstr(err.msg, want))
        fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void test_roles(void **state)
{
    (void)state;
    const char *text = "# keys\n" KEY_R " read\r\n\t" KEY_W "\twrite \n\n   # indented comment\n" KEY_A " admin";
    qv_keys_t *k = parse_ok(text, strlen(text));
    assert_int_equal(role(k, KEY_R), QV_ROLE_READ);
    assert_int_equal(role(k, KEY_W), QV_ROLE_WRITE);
    assert_int_equal(role(k, KEY_A), QV_ROLE_ADMIN);
    assert_int_equal(role(k, "reader-key-012345678"), -1); /* a prefix */
    assert_int_equal(role(k, KEY_R "9"), -1);
    assert_int_equal(role(k, ""), -1);
    qv_keys_free(k);
}

/* Lines of whitespace that isspace() knows but a space/tab check does not: blank lines, skipped. Before the fix
 * sscanf() matched nothing on them and the parser went on with an uninitialised key (ASan/UBSan or valgrind). */
static void test_vt_ff_lines(void **state)
{
    (void)state;
    const char *lines[] = {"\v", "\f", "\v\f", " \v", "\t\f\r", "\r", "\v\v\v\v"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char text[128];
        int n = snprintf(text, sizeof text, "%s\n" KEY_R " read\n%s", lines[i], lines[i]);
        qv_keys_t *k = parse_ok(text, (size_t)n);
        assert_int_equal(role(k, KEY_R), QV_ROLE_READ);
        qv_keys_free(k);
        parse_bad(lines[i], strlen(lines[i]), "holds no keys");
    }
    /* \v and \f also separate the key from the role, as the other blanks do */
    const char *vt = KEY_W "\vwrite\f\n" KEY_A "\fadmin";
    qv_keys_t *k = parse_ok(vt, strlen(vt));
    assert_int_equal(role(k, KEY_W), QV_ROLE_WRITE);
    assert_int_equal(role(k, KEY_A), QV_ROLE_ADMIN);
    qv_keys_free(k);
    parse_bad("", 0, "holds no keys");
    parse_bad(S("# only a comment\n\n"), "holds no keys");
}

static void test_rejected_lines(void **state)
{
    (void)state;
    parse_bad(S(KEY_R "\n"), "line 1: expected `KEY read|write|admin`, found no role");
    parse_bad(S(KEY_R " owner\n"), "line 1: the role must be read, write or admin");
    parse_bad(S(KEY_R " Read\n"), "line 1: the role must be");
    parse_bad(S(KEY_R " reader\n"), "line 1: the role must be");
    parse_bad(S(KEY_R " read admin\n"), "line 1: unexpected text after the role");
    parse_bad(S(KEY_R " read # note\n"), "unexpected text after the role");
    parse_bad(S("0123456789abcde read\n"), "line 1: the key is 15 bytes, keys are 16..256 bytes");
    char long_key[300];
    memset(long_key, 'k', 257);
    strcpy(long_key + 257, " read");
    parse_bad(long_key, strlen(long_key), "the key is 257 bytes");
    long_key[256] = ' ';
    memcpy(long_key + 257, "read", 5);
    qv_keys_t *k = parse_ok(long_key, strlen(long_key)); /* 256 bytes: the longest key */
    long_key[256] = '\0';
    assert_int_equal(role(k, long_key), QV_ROLE_READ);
    qv_keys_free(k);
    k = parse_ok(S("0123456789abcdef read")); /* 16 bytes: the shortest */
    assert_int_equal(role(k, "0123456789abcdef"), QV_ROLE_READ);
    qv_keys_free(k);
    parse_bad(S("0123456789\x01" "abcdef read\n"), "line 1: byte 11 of the key is 0x01");
    parse_bad(S("0123456789abcdef\x80 read\n"), "byte 17 of the key is 0x80");
    parse_bad(S("0123456789abcdef\x7f read\n"), "byte 17 of the key is 0x7f");
    parse_bad(S(KEY_R " read\n" KEY_W "\0 write\n"), "line 2: a NUL byte");
    parse_bad(S(KEY_R " read\n\0\n"), "line 2: a NUL byte");
    /* line numbers count every line, blank ones included; the message never quotes the key */
    qv_err_t err = {0};
    const char *text = "\n\n# c\n" KEY_R " rdea\n";
    assert_int_equal(qv_keys_parse(text, strlen(text), "keys", &k, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "keys line 4:"));
    assert_null(strstr(err.msg, KEY_R));
    /* one key, one role */
    const char *dup = KEY_A " admin\n" KEY_W " write\n\n" KEY_A " read\n";
    parse_bad(dup, strlen(dup), "line 4: the key of line 1 again");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/qv_test_auth_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/keys", dir);
    const char *text = "\v\n" KEY_A " admin\r\n\f\n";
    write_file(path, text, strlen(text));
    qv_keys_t *k = NULL;
    qv_err_t err = {0};
    assert_int_equal(qv_keys_load(path, &k, &err), QV_OK);
    assert_int_equal(role(k, KEY_A), QV_ROLE_ADMIN);
    qv_keys_free(k);

    write_file(path, S("\v\n\f\n"));
    assert_int_equal(qv_keys_load(path, &k, &err), QV_EINVAL);
    assert_null(k);
    assert_non_null(strstr(err.msg, "holds no keys"));

    size_t big = (1u << 20) + 1;
    char *blank = malloc(big);
    assert_non_null(blank);
    memset(blank, '\n', big);
    write_file(path, blank, big);
    free(blank);
    assert_int_equal(qv_keys_load(path, &k, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "is larger than 1048576 bytes"));
    unlink(path);
    assert_int_equal(qv_keys_load(path, &k, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "cannot open"));
    rmdir(dir);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_vt_ff_lines),
        cmocka_unit_test(test_rejected_lines),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
