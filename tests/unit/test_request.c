/* The request rules both server roles share (server/request.h, query/request.h) and the status table between Quiver
 * codes and gRPC statuses (server/status.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <grpc/status.h>
#include <math.h>
#include <string.h>

#include "qvtest.h"
#include "query/group.h"
#include "server/request.h"
#include "server/status.h"

static void test_ids(void **state)
{
    (void)state;
    qv_err_t err;
    char long_id[QV_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    char *ok[] = {"a", "b", long_id + 1}; /* QV_ID_MAX bytes: the largest allowed */
    assert_int_equal(qv_req_ids(ok, 3, &err), QV_OK);
    assert_int_equal(qv_req_ids(NULL, 0, &err), QV_OK);
    char *empty[] = {"a", ""};
    assert_int_equal(qv_req_ids(empty, 2, &err), QV_EINVAL);
    assert_string_equal(err.msg, "id 1 is empty");
    char *big[] = {"a", "b", long_id};
    assert_int_equal(qv_req_ids(big, 3, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "id 2: 257 bytes exceeds 256"));
    assert_int_equal(qv_req_ids(ok, QV_BATCH_MAX + 1, &err), QV_EINVAL); /* the count is checked before any id */
    assert_non_null(strstr(err.msg, "exceeds the limit of 10000"));
}

static void test_scroll(void **state)
{
    (void)state;
    qv_err_t err;
    uint32_t eff = 0;
    assert_int_equal(qv_req_scroll(0, "", &eff, &err), QV_OK);
    assert_int_equal(eff, QV_SCROLL_DEFAULT_LIMIT);
    assert_int_equal(qv_req_scroll(QV_BATCH_MAX, "p17", &eff, &err), QV_OK);
    assert_int_equal(eff, QV_BATCH_MAX);
    assert_int_equal(qv_req_scroll(QV_BATCH_MAX + 1, "", &eff, &err), QV_EINVAL);
    assert_string_equal(err.msg, "limit = 10001 out of range: must be 0..10000");
    char cursor[QV_ID_MAX + 2];
    memset(cursor, 'c', sizeof cursor - 1);
    cursor[sizeof cursor - 1] = '\0';
    assert_int_equal(qv_req_scroll(10, cursor, &eff, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "cursor longer than 256 bytes"));
}

static void test_vectors_fit(void **state)
{
    (void)state;
    qv_err_t err;
    assert_int_equal(qv_req_vectors_fit(1024, 256, 1 << 20, &err), QV_OK); /* exactly 1 MiB */
    assert_int_equal(qv_req_vectors_fit(1025, 256, 1 << 20, &err), QV_ETOOBIG);
    assert_string_equal(err.msg, "1025 vectors of dim 256 exceed the 1048576 byte message limit");
    /* no overflow on huge products */
    assert_int_equal(qv_req_vectors_fit(SIZE_MAX / 8, QV_DIM_MAX, 64 << 20, &err), QV_ETOOBIG);
}

static void test_search_params(void **state)
{
    (void)state;
    qv_err_t err;
    assert_int_equal(qv_search_check_params(1, 0, 0, &err), QV_OK);
    assert_int_equal(qv_search_check_params(QV_K_MAX, QV_EF_MAX, QV_RERANK_MAX, &err), QV_OK);
    assert_int_equal(qv_search_check_params(0, 0, 0, &err), QV_EINVAL);
    assert_string_equal(err.msg, "k = 0 out of range: must be 1..10000");
    assert_int_equal(qv_search_check_params(QV_K_MAX + 1, 0, 0, &err), QV_EINVAL);
    assert_int_equal(qv_search_check_params(10, QV_EF_MAX + 1, 0, &err), QV_EINVAL);
    assert_string_equal(err.msg, "ef = 10001 out of range: must be 0..10000");
    assert_int_equal(qv_search_check_params(10, 0, QV_RERANK_MAX + 1, &err), QV_EINVAL);
    assert_string_equal(err.msg, "rerank = 1001 out of range: must be 0..1000");
    assert_int_equal(qv_search_check_batch(1, &err), QV_OK);
    assert_int_equal(qv_search_check_batch(QV_BATCH_QUERIES_MAX, &err), QV_OK);
    assert_int_equal(qv_search_check_batch(0, &err), QV_EINVAL);
    assert_string_equal(err.msg, "0 query vectors: must be 1..1000");
    assert_int_equal(qv_search_check_batch(QV_BATCH_QUERIES_MAX + 1, &err), QV_EINVAL);
}

static void test_query_vector(void **state)
{
    (void)state;
    qv_err_t err;
    qv_schema_t *s = test_schema_all("q", 1, 3, QV_METRIC_COSINE);
    float v[3] = {3.0f, 0.0f, 4.0f};
    assert_int_equal(qv_query_validate(s, v, 3, &err), QV_OK);
    assert_float_equal(v[0], 0.6f, 1e-6); /* normalised in place for COSINE */
    assert_float_equal(v[2], 0.8f, 1e-6);
    assert_int_equal(qv_query_validate(s, v, 2, &err), QV_EINVAL);
    assert_string_equal(err.msg, "query: vector has 2 components, collection 'q' has dim 3");
    float zero[3] = {0};
    assert_int_equal(qv_query_validate(s, zero, 3, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "zero vector"));
    float nan[3] = {1.0f, NAN, 0.0f};
    assert_int_equal(qv_query_validate(s, nan, 3, &err), QV_EINVAL);
    assert_string_equal(err.msg, "query: vector component 1 is not finite");
    s->metric = QV_METRIC_L2;
    float l2[3] = {3.0f, 0.0f, 4.0f};
    assert_int_equal(qv_query_validate(s, l2, 3, &err), QV_OK);
    assert_float_equal(l2[0], 3.0f, 0); /* left alone for L2 */
    free(s);
}

/* Every code maps to a status and back to itself, except QV_ENOMEM, which shares RESOURCE_EXHAUSTED with QV_ETOOBIG
 * and comes back as that; statuses no server produces come back as INTERNAL's code. */
static void test_status_table(void **state)
{
    (void)state;
    static const int codes[] = {QV_OK,       QV_EINVAL,     QV_ENOTFOUND,  QV_EEXIST,   QV_ENOMEM, QV_EIO,
                                QV_ECORRUPT, QV_ETOOBIG,    QV_ECANCELLED, QV_ETIMEDOUT, QV_EUNAVAIL, QV_EPRECOND};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int st = qv_status_of(codes[i]);
        int back = qv_code_of_status(st);
        assert_int_equal(back, codes[i] == QV_ENOMEM ? QV_ETOOBIG : codes[i]);
        assert_int_equal(qv_status_of(back), st);
    }
    assert_int_equal(qv_status_of(QV_EINVAL), GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qv_status_of(QV_ECORRUPT), GRPC_STATUS_DATA_LOSS);
    assert_int_equal(qv_status_of(QV_EUNAVAIL), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(qv_status_of(-999), GRPC_STATUS_INTERNAL);
    assert_int_equal(qv_code_of_status(GRPC_STATUS_UNKNOWN), QV_EIO);
    assert_int_equal(qv_code_of_status(GRPC_STATUS_UNAUTHENTICATED), QV_EIO);
    assert_int_equal(qv_code_of_status(GRPC_STATUS_RESOURCE_EXHAUSTED), QV_ETOOBIG);
}

/* query/group.h: the first k groups to appear, at most size hits each, hits without a group left out; full only when
 * k groups of size were found. */
static void test_group_select(void **state)
{
    (void)state;
    static const char *const g[] = {"a", "b", NULL, "a", "c", "a", "b", "d", "c", ""};
    qv_str_t keys[10];
    for (int i = 0; i < 10; i++)
        keys[i] = g[i] ? (qv_str_t){g[i], (uint32_t)strlen(g[i])} : (qv_str_t){NULL, 0};
    uint32_t keep[10];
    size_t n;
    bool full;
    assert_int_equal(qv_group_select(keys, 10, 2, 2, keep, &n, &full), QV_OK);
    uint32_t want1[] = {0, 1, 3, 6}; /* a, b, a, b: c and d come after two groups are open */
    assert_int_equal(n, 4);
    assert_memory_equal(keep, want1, sizeof want1);
    assert_true(full);
    assert_int_equal(qv_group_select(keys, 10, 3, 2, keep, &n, &full), QV_OK);
    uint32_t want2[] = {0, 1, 3, 4, 6, 8}; /* the third 'a' (5) is over the size */
    assert_int_equal(n, 6);
    assert_memory_equal(keep, want2, sizeof want2);
    assert_true(full);
    assert_int_equal(qv_group_select(keys, 10, 6, 1, keep, &n, &full), QV_OK);
    uint32_t want3[] = {0, 1, 4, 7, 9}; /* "" is a group of its own; only 5 groups exist */
    assert_int_equal(n, 5);
    assert_memory_equal(keep, want3, sizeof want3);
    assert_false(full);
    assert_int_equal(qv_group_select(keys, 0, 3, 1, keep, &n, &full), QV_OK);
    assert_int_equal(n, 0);
    assert_false(full);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),           cmocka_unit_test(test_scroll),       cmocka_unit_test(test_vectors_fit),
        cmocka_unit_test(test_search_params), cmocka_unit_test(test_query_vector), cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_group_select),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
