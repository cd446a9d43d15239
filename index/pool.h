/* A fixed pool of worker threads for data-parallel loops (exact scans, index builds).
 *
 * qv_pool_parallel() runs fn(arg, task) for task in [0, ntasks) and returns when all have finished. The calling
 * thread works on the job too, so a pool of N-1 threads plus the caller uses N cores, and a job never waits for a
 * free pool thread to make progress. Many threads may submit jobs at once: jobs are queued FIFO and each pool
 * thread takes tasks from the oldest unfinished job. Tasks of a job run in any order, possibly concurrently. */
#ifndef QV_POOL_H
#define QV_POOL_H

typedef struct qv_pool qv_pool_t;

/* Creates a pool with nthreads workers (0 is allowed: everything then runs on the caller).
 * Returns NULL on allocation or thread-creation failure. */
qv_pool_t *qv_pool_create(int nthreads);

/* Stops and joins the workers. No job may be running. */
void qv_pool_destroy(qv_pool_t *pool);

/* Number of threads that can work on one job: pool threads + the caller. */
int qv_pool_width(const qv_pool_t *pool);

/* Runs fn(arg, task) for every task in [0, ntasks); blocks until all are done. pool may be NULL (runs inline). */
void qv_pool_parallel(qv_pool_t *pool, int ntasks, void (*fn)(void *arg, int task), void *arg);

#endif
