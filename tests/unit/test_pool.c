/* Thread pool: every task runs exactly once and its writes are visible when qv_pool_parallel returns, for
 * nthreads 0/1/3 and a NULL pool; ntasks 0, 1 and negative; all pool threads plus the caller really run one job
 * concurrently (a barrier only they can pass); 8 submitter threads x 200 jobs at once; nested submission. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include "index/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ntasks;
    int *runs;         /* runs[task]: times fn ran for task (each task owns its slot: no atomics needed) */
    int64_t *squares;  /* squares[task] = task * task, written by the task, read by the caller after return */
    int64_t sum;       /* atomics: sum over tasks of task + 1 */
    int out_of_range;  /* atomics: calls with a task index outside [0, ntasks) */
} count_job_t;

static void count_task(void *arg, int task)
{
    count_job_t *j = arg;
    if (task < 0 || task >= j->ntasks) {  /* no cmocka assert here: this runs on pool threads */
        __atomic_fetch_add(&j->out_of_range, 1, __ATOMIC_RELAXED);
        return;
    }
    j->runs[task]++;
    j->squares[task] = (int64_t)task * task;
    __atomic_fetch_add(&j->sum, (int64_t)task + 1, __ATOMIC_RELAXED);
}

/* Runs one job of ntasks and checks every task ran exactly once. Returns the number of mismatches rather than
 * asserting, so that it can also be called from submitter threads (cmocka's asserts are main-thread only). */
static int run_and_check(qv_pool_t *pool, int ntasks)
{
    count_job_t j = {.ntasks = ntasks};
    size_t cap = ntasks > 0 ? (size_t)ntasks : 1;
    j.runs = calloc(cap, sizeof(int));
    j.squares = calloc(cap, sizeof(int64_t));
    if (!j.runs || !j.squares)
        return 1;
    qv_pool_parallel(pool, ntasks, count_task, &j);
    int bad = 0;
    for (int t = 0; t < ntasks; t++) {
        if (j.runs[t] != 1 || j.squares[t] != (int64_t)t * t)
            bad++;
    }
    int64_t n = ntasks > 0 ? ntasks : 0;
    if (__atomic_load_n(&j.sum, __ATOMIC_RELAXED) != n * (n + 1) / 2)
        bad++;
    bad += __atomic_load_n(&j.out_of_range, __ATOMIC_RELAXED);
    free(j.runs);
    free(j.squares);
    return bad;
}

static const int task_counts[] = {0, 1, 2, 3, 4, 5, 17, 100, 1000, 10000};

static void check_pool(int nthreads)
{
    qv_pool_t *pool = qv_pool_create(nthreads);
    assert_non_null(pool);
    assert_int_equal(qv_pool_width(pool), nthreads + 1);
    for (size_t i = 0; i < sizeof(task_counts) / sizeof(task_counts[0]); i++) {
        for (int rep = 0; rep < 5; rep++)
            assert_int_equal(run_and_check(pool, task_counts[i]), 0);
    }
    qv_pool_destroy(pool);
}

static void test_nthreads_0(void **state)
{
    (void)state;
    check_pool(0);
}

static void test_nthreads_1(void **state)
{
    (void)state;
    check_pool(1);
}

static void test_nthreads_3(void **state)
{
    (void)state;
    check_pool(3);
}

static void test_null_pool(void **state)
{
    (void)state;
    assert_int_equal(qv_pool_width(NULL), 1);
    for (size_t i = 0; i < sizeof(task_counts) / sizeof(task_counts[0]); i++)
        assert_int_equal(run_and_check(NULL, task_counts[i]), 0);
    qv_pool_destroy(NULL);
}

static void must_not_run(void *arg, int task)
{
    (void)arg;
    (void)task;
    fail_msg("task ran for an empty job");
}

static void test_no_tasks(void **state)
{
    (void)state;
    qv_pool_t *pool = qv_pool_create(2);
    assert_non_null(pool);
    qv_pool_parallel(pool, 0, must_not_run, NULL);
    qv_pool_parallel(pool, -5, must_not_run, NULL);
    qv_pool_parallel(NULL, 0, must_not_run, NULL);
    qv_pool_parallel(pool, 3, NULL, NULL);  /* no function: nothing to do */
    qv_pool_destroy(pool);
    assert_null(qv_pool_create(-1));
}

/* A single task runs on the caller's thread. */
static void record_thread(void *arg, int task)
{
    pthread_t *seen = arg;
    seen[task] = pthread_self();
}

static void test_one_task_on_caller(void **state)
{
    (void)state;
    qv_pool_t *pool = qv_pool_create(3);
    assert_non_null(pool);
    pthread_t seen[1];
    memset(seen, 0, sizeof(seen));
    qv_pool_parallel(pool, 1, record_thread, seen);
    assert_true(pthread_equal(seen[0], pthread_self()));
    qv_pool_destroy(pool);
}

/* ntasks == width tasks that each wait on a barrier of width threads: it is only passed if every pool thread and the
 * caller each hold one task at the same time. A pool that did not use its threads, or a caller that did not take
 * part, would hang here (ctest's timeout catches that). */
typedef struct {
    pthread_barrier_t barrier;
    pthread_t who[8];
} barrier_job_t;

static void barrier_task(void *arg, int task)
{
    barrier_job_t *j = arg;
    j->who[task] = pthread_self();
    pthread_barrier_wait(&j->barrier);
}

static void test_all_threads_participate(void **state)
{
    (void)state;
    const int nthreads = 3, width = nthreads + 1;
    qv_pool_t *pool = qv_pool_create(nthreads);
    assert_non_null(pool);
    for (int rep = 0; rep < 20; rep++) {
        barrier_job_t j;
        memset(&j, 0, sizeof(j));
        assert_int_equal(pthread_barrier_init(&j.barrier, NULL, (unsigned)width), 0);
        qv_pool_parallel(pool, width, barrier_task, &j);
        pthread_barrier_destroy(&j.barrier);
        int caller_seen = 0;
        for (int a = 0; a < width; a++) {
            caller_seen += pthread_equal(j.who[a], pthread_self()) != 0;
            for (int b = a + 1; b < width; b++)
                assert_false(pthread_equal(j.who[a], j.who[b]));
        }
        assert_int_equal(caller_seen, 1);
    }
    qv_pool_destroy(pool);
}

/* Many submitters at once, each checking its own jobs; job sizes vary so jobs finish out of order. */
typedef struct {
    qv_pool_t *pool;
    int id;
    int bad;
} submitter_t;

static void *submitter_main(void *arg)
{
    submitter_t *s = arg;
    for (int i = 0; i < 200; i++) {
        int ntasks = (int)((unsigned)(s->id * 131 + i * 17) % 97);  /* 0..96, includes 0 and 1 */
        s->bad += run_and_check(s->pool, ntasks);
    }
    return NULL;
}

static void run_submitters(int nthreads, int nsubmitters)
{
    qv_pool_t *pool = qv_pool_create(nthreads);
    assert_non_null(pool);
    pthread_t th[16];
    submitter_t sub[16];
    assert_true(nsubmitters <= 16);
    for (int i = 0; i < nsubmitters; i++) {
        sub[i] = (submitter_t){.pool = pool, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, submitter_main, &sub[i]), 0);
    }
    for (int i = 0; i < nsubmitters; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(sub[i].bad, 0);
    }
    /* The pool is still usable afterwards. */
    assert_int_equal(run_and_check(pool, 1000), 0);
    qv_pool_destroy(pool);
}

static void test_concurrent_submitters(void **state)
{
    (void)state;
    run_submitters(3, 8);
    run_submitters(3, 16);
    run_submitters(1, 8);
    run_submitters(0, 8);
}

/* A task that itself submits to the same pool must not deadlock, even when every worker is busy in outer tasks. */
typedef struct {
    qv_pool_t *pool;
    int bad;  /* atomics */
} nested_t;

static void outer_task(void *arg, int task)
{
    (void)task;
    nested_t *n = arg;
    int bad = run_and_check(n->pool, 50);
    __atomic_fetch_add(&n->bad, bad, __ATOMIC_RELAXED);
}

static void test_nested(void **state)
{
    (void)state;
    qv_pool_t *pool = qv_pool_create(3);
    assert_non_null(pool);
    nested_t n = {.pool = pool};
    qv_pool_parallel(pool, 16, outer_task, &n);
    assert_int_equal(n.bad, 0);
    qv_pool_destroy(pool);
}

/* Create and destroy repeatedly, with and without work in between: destroy joins idle and just-woken workers. */
static void test_create_destroy(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        qv_pool_t *pool = qv_pool_create(i % 4);
        assert_non_null(pool);
        if (i % 2)
            assert_int_equal(run_and_check(pool, 8), 0);
        qv_pool_destroy(pool);
    }
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nthreads_0),
        cmocka_unit_test(test_nthreads_1),
        cmocka_unit_test(test_nthreads_3),
        cmocka_unit_test(test_null_pool),
        cmocka_unit_test(test_no_tasks),
        cmocka_unit_test(test_one_task_on_caller),
        cmocka_unit_test(test_all_threads_participate),
        cmocka_unit_test(test_concurrent_submitters),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_create_destroy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
