/* The embedder's threads: a parallel-for over the steps of one forward pass.
 *
 * A pass is a burst of short steps (per layer: four projections, attention per sequence and head, two LayerNorms and
 * a GELU), 0.05-5 ms each. OpenBLAS runs single-threaded (model.c sets it); the model keeps threads - 1 helpers of
 * its own, and each step is cut into tasks (ranges of output features, (sequence, head) pairs, ranges of rows) that
 * the caller and the helpers claim with an atomic counter, the caller too, so a job never waits for a helper to
 * start. Tasks of a job must be independent; each gets the index of the thread running it (0 = the caller,
 * 1..helpers), so a task can use that thread's slice of the caller's scratch.
 *
 * Hand-off: the caller publishes the job and bumps a generation counter; helpers spin on the counter for a short
 * while (QV_POOL_SPIN pauses, roughly 0.1 ms: longer than the gap between two steps of a pass, so a pass pays no
 * wake-ups) and then sleep on a condition variable, so an idle server burns no CPU. The generation is bumped under
 * the mutex the sleepers check it under, so no wake-up is lost. The caller, out of tasks, waits (spinning, then
 * yielding) until every helper that joined the job has left it; the job lives in the pool, so nothing dangles.
 *
 * Why not index/pool.c's qv_pool_parallel: its workers sleep between jobs, so every job pays a wake-up, and a pass
 * has over a hundred jobs. Measured with 2 threads on one-query passes (quiver-embed-bench, batch 1), splitting only
 * the projections: 233 texts/s through qv_pool (no better than one thread), 353 through this pool. And OpenBLAS's
 * own threads (which yield-spin) cost 18% of a 2-thread pass in the scheduler on 137-token passes and left the
 * attention and element-wise steps on one core. Spinning suits this one use, a burst of short jobs from one caller;
 * it would not suit qv_pool's long scans and builds from many submitters.
 *
 * Concurrent callers: one job at a time. A caller that finds the pool taken (trylock) runs all its tasks itself as
 * thread 0, which is what it would have done without a pool; its scratch is its own, so nothing is shared. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "query/embed/embed_int.h"

#define QV_POOL_SPIN 2000

struct qv_embed_pool {
    int helpers;
    pthread_t *tid;
    pthread_mutex_t busy;  /* held by the caller whose job is out */
    pthread_mutex_t lock;  /* guards sleeping: gen is bumped and stop set under it */
    pthread_cond_t wake;
    atomic_uint_fast64_t gen;
    atomic_int next;       /* the next task to claim */
    atomic_int inside;     /* helpers between joining the current job and leaving it */
    atomic_bool stop;
    /* the job: written before the generation bump (release), read by helpers after they see it (acquire) */
    qv_embed_task_fn fn;
    void *arg;
    int ntasks;
};

typedef struct {
    qv_embed_pool_t *p;
    int index;  /* 1..helpers */
} helper_arg_t;

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void claim_all(qv_embed_pool_t *p, int worker)
{
    for (int t; (t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < p->ntasks;)
        p->fn(p->arg, t, worker);
}

static void *helper_main(void *arg)
{
    helper_arg_t *a = arg;
    qv_embed_pool_t *p = a->p;
    const int index = a->index;
    free(a);
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < QV_POOL_SPIN) {
                cpu_pause();
                continue;
            }
            pthread_mutex_lock(&p->lock);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_acquire))
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
            spins = 0;
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        seen = g;
        /* The caller set inside = helpers before the bump and waits for it to reach 0, so the job cannot change
         * under us until we leave. */
        claim_all(p, index);
        atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release);
    }
}

int qv__embed_pool_start(int helpers, qv_embed_pool_t **out)
{
    *out = NULL;
    if (helpers < 1)
        return 0;
    qv_embed_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    p->tid = calloc((size_t)helpers, sizeof *p->tid);
    if (!p->tid) {
        free(p);
        return ENOMEM;
    }
    pthread_mutex_init(&p->busy, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->inside, 0);
    atomic_init(&p->stop, false);
    for (int i = 0; i < helpers; i++) {
        helper_arg_t *a = malloc(sizeof *a);
        int rc = a ? 0 : ENOMEM;
        if (a) {
            *a = (helper_arg_t){.p = p, .index = i + 1};
            if ((rc = pthread_create(&p->tid[i], NULL, helper_main, a)) != 0)
                free(a);
        }
        if (rc != 0) {
            p->helpers = i; /* stop the ones that started */
            qv__embed_pool_stop(p);
            return rc;
        }
    }
    p->helpers = helpers;
    *out = p;
    return 0;
}

void qv__embed_pool_stop(qv_embed_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store_explicit(&p->stop, true, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->helpers; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->busy);
    free(p->tid);
    free(p);
}

int qv__embed_pool_threads(const qv_embed_pool_t *p) { return p ? p->helpers + 1 : 1; }

void qv__embed_pool_for(qv_embed_pool_t *p, int ntasks, qv_embed_task_fn fn, void *arg)
{
    if (ntasks <= 0)
        return;
    if (!p || ntasks == 1 || pthread_mutex_trylock(&p->busy) != 0) {
        for (int t = 0; t < ntasks; t++)
            fn(arg, t, 0);
        return;
    }
    p->fn = fn, p->arg = arg, p->ntasks = ntasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->inside, p->helpers, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    claim_all(p, 0);
    for (int spins = 0; atomic_load_explicit(&p->inside, memory_order_acquire) > 0;)
        if (spins < QV_POOL_SPIN) {
            spins++;
            cpu_pause();
        } else {
            sched_yield(); /* a helper lost its core (a loaded machine): let it run */
        }
    pthread_mutex_unlock(&p->busy);
}

void qv__embed_task_range(size_t n, size_t unit, int task, size_t parts, size_t *a, size_t *b)
{
    size_t blocks = (n + unit - 1) / unit;
    *a = blocks * (size_t)task / parts * unit;
    *b = blocks * ((size_t)task + 1) / parts * unit;
    if (*a > n)
        *a = n;
    if (*b > n)
        *b = n;
}
