/* Thread pool for data-parallel loops.
 *
 * Protocol. A job lives on the submitting thread's stack (qv_pool_parallel does not return before the job is done,
 * so no allocation is needed and submission cannot fail). The submitter links it at the tail of a FIFO queue, wakes
 * workers, then runs tasks itself. Tasks are claimed with an atomic fetch-add on job->next, so claiming never takes
 * the lock; the lock is taken once per thread per job, to join and to leave it.
 *
 * Lifetime. Because the job is on the submitter's stack, no worker may touch it after the submitter returns. A worker
 * joins a job (users++) under the lock while the job is still queued, and leaves it (users--, finished += tasks it
 * ran) under the lock; it does not touch the job after leaving. The submitter, once no task is left to claim, unlinks
 * the job (so nobody new can join) and waits on the job's condvar until finished == ntasks and users == 0. Counting
 * only finished tasks would not be enough: a worker that joined but has not yet made its (failing) claim would read
 * job->next after the submitter returned.
 *
 * Whoever first finds the job exhausted unlinks it, so workers go on to the next job in FIFO order. Everything a
 * task wrote is visible to the submitter when it returns: each worker releases the pool mutex after its last task
 * and the submitter acquires it before returning.
 *
 * Nested calls (a task calling qv_pool_parallel on the same pool) cannot deadlock: the inner submitter runs its own
 * tasks and only waits for workers that are running inner tasks, which need nothing from it.
 *
 * Lock: pool->mu guards the queue (head, tail, job->prev/next/queued), job->users, job->finished and pool->stop.
 * job->next (the task counter) is only touched with atomics. No thread spins: idle workers sleep on pool->work,
 * submitters on their job's condvar. Rejected: one task per queue entry (a lock round trip per task), a pool-wide
 * "done" condvar (every completion would wake every waiting submitter). */
#include "index/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct job {
    void (*fn)(void *arg, int task);
    void *arg;
    int ntasks;
    int64_t next;            /* next task index to claim; atomics only (64-bit: overshoots past ntasks never wrap) */
    int finished;            /* tasks run to completion; pool->mu */
    int users;               /* workers that joined and have not left; pool->mu */
    bool queued;             /* linked in the pool queue; pool->mu */
    struct job *prev, *nxt;  /* queue links; pool->mu */
    pthread_cond_t done;     /* signalled when finished == ntasks && users == 0 */
} job_t;

struct qv_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a job was queued, or stop was set */
    job_t *head, *tail;   /* FIFO of jobs that may still have unclaimed tasks; mu */
    bool stop;            /* mu */
    int nthreads;
    pthread_t *threads;
};

static void enqueue(qv_pool_t *pool, job_t *job)
{
    job->prev = pool->tail;
    job->nxt = NULL;
    if (pool->tail)
        pool->tail->nxt = job;
    else
        pool->head = job;
    pool->tail = job;
    job->queued = true;
}

static void unlink_job(qv_pool_t *pool, job_t *job)
{
    if (!job->queued)
        return;
    if (job->prev)
        job->prev->nxt = job->nxt;
    else
        pool->head = job->nxt;
    if (job->nxt)
        job->nxt->prev = job->prev;
    else
        pool->tail = job->prev;
    job->prev = job->nxt = NULL;
    job->queued = false;
}

/* Claims and runs tasks until none is left; returns how many this thread ran. */
static int run_tasks(job_t *job)
{
    int ran = 0;
    for (;;) {
        int64_t task = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (task >= job->ntasks)
            return ran;
        job->fn(job->arg, (int)task);
        ran++;
    }
}

static void *worker_main(void *arg)
{
    qv_pool_t *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        job_t *job = pool->head;
        if (!job) {
            if (pool->stop)
                break;
            pthread_cond_wait(&pool->work, &pool->mu);
            continue;
        }
        job->users++;
        pthread_mutex_unlock(&pool->mu);

        int ran = run_tasks(job);

        pthread_mutex_lock(&pool->mu);
        unlink_job(pool, job);  /* exhausted: later workers go straight to the next job */
        job->finished += ran;
        job->users--;
        if (job->finished == job->ntasks && job->users == 0)
            pthread_cond_signal(&job->done);
        /* job may be gone once mu is released */
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

qv_pool_t *qv_pool_create(int nthreads)
{
    if (nthreads < 0)
        return NULL;
    qv_pool_t *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    if (nthreads > 0) {
        pool->threads = calloc((size_t)nthreads, sizeof(pthread_t));
        if (!pool->threads) {
            free(pool);
            return NULL;
        }
    }
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool->threads);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->work, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool->threads);
        free(pool);
        return NULL;
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            pool->nthreads = i;  /* destroy joins the ones that started */
            qv_pool_destroy(pool);
            return NULL;
        }
    }
    pool->nthreads = nthreads;
    return pool;
}

void qv_pool_destroy(qv_pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->mu);
    free(pool->threads);
    free(pool);
}

int qv_pool_width(const qv_pool_t *pool)
{
    return pool ? pool->nthreads + 1 : 1;
}

static void run_inline(int ntasks, void (*fn)(void *arg, int task), void *arg)
{
    for (int task = 0; task < ntasks; task++)
        fn(arg, task);
}

void qv_pool_parallel(qv_pool_t *pool, int ntasks, void (*fn)(void *arg, int task), void *arg)
{
    if (ntasks <= 0 || !fn)
        return;
    if (!pool || pool->nthreads == 0 || ntasks == 1) {
        run_inline(ntasks, fn, arg);
        return;
    }

    job_t job = {.fn = fn, .arg = arg, .ntasks = ntasks};
    if (pthread_cond_init(&job.done, NULL) != 0) {
        run_inline(ntasks, fn, arg);
        return;
    }

    pthread_mutex_lock(&pool->mu);
    enqueue(pool, &job);
    /* The caller takes one task itself, so at most ntasks - 1 workers are useful. */
    if (ntasks - 1 >= pool->nthreads) {
        pthread_cond_broadcast(&pool->work);
    } else {
        for (int i = 0; i < ntasks - 1; i++)
            pthread_cond_signal(&pool->work);
    }
    pthread_mutex_unlock(&pool->mu);

    int ran = run_tasks(&job);

    pthread_mutex_lock(&pool->mu);
    unlink_job(pool, &job);
    job.finished += ran;
    while (job.finished < job.ntasks || job.users > 0)
        pthread_cond_wait(&job.done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    pthread_cond_destroy(&job.done);
}
