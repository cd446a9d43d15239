/* Splitting the small-pass projection across cores.
 *
 * A pass over few rows (one short query: ~22 tokens) spends 80% of its time in k->gemm_nt, which runs on the calling
 * thread; OpenBLAS's threads only help the larger passes that go to sgemm. So with threads > 1 the model keeps its
 * own helper threads, and each projection of a small pass is cut into contiguous ranges of output features (whole
 * blocks of 4), one per thread, the caller taking the first. Each range reads only its own rows of W, so the cores
 * also share the cost of streaming the weights.
 *
 * Hand-off: the caller publishes a job and bumps a generation counter; helpers spin on the counter for a short while
 * (QV_POOL_SPIN pauses, roughly 0.1 ms: longer than the gap between two projections of a pass, so a pass pays no
 * wake-ups) and then sleep on a condition variable, so an idle server burns no CPU and a big pass on sgemm gets its
 * cores back from OpenBLAS's point of view almost at once. The generation is bumped under the mutex the sleepers
 * check it under, so no wake-up is lost. The caller then waits, spinning, for the helpers' count to drop to zero; a
 * part is about as long as its own.
 *
 * Why not index/pool.c's qv_pool_parallel: its workers sleep between jobs, so every job pays a wake-up, and a pass
 * has 24 jobs of 0.05-0.2 ms. Measured with 2 threads on one-query passes (quiver-embed-bench, batch 1): 233 texts/s
 * through qv_pool (no better than one thread), 353 through this one. Spinning suits this one use, a burst of short
 * jobs from one caller; it would not suit qv_pool's long scans and builds from many submitters.
 *
 * Concurrent callers: one job at a time. A caller that finds the pool taken (trylock) runs its projection whole on
 * its own thread, which is what it would have done without a pool. */
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
    atomic_int pending;    /* helpers still on the current job */
    atomic_bool stop;
    /* the job: read by helpers after they see gen move (acquire), written before the bump (release) */
    const qv_embed_kernels_t *k;
    size_t rows, n, kk, ldx, ldc;
    const float *x, *w;
    float *c;
    int accumulate;
};

typedef struct {
    qv_embed_pool_t *p;
    int index;  /* 1..helpers: the part it runs (the caller runs part 0) */
} helper_arg_t;

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Part `part` of `parts`: output features [*o0, *o1), cut at multiples of 4. */
static void part_range(size_t n, int part, int parts, size_t *o0, size_t *o1)
{
    size_t blocks = (n + 3) / 4;
    *o0 = blocks * (size_t)part / (size_t)parts * 4;
    *o1 = blocks * (size_t)(part + 1) / (size_t)parts * 4;
    if (*o0 > n)
        *o0 = n;
    if (*o1 > n)
        *o1 = n;
}

static void run_part(const qv_embed_pool_t *p, int part)
{
    size_t o0, o1;
    part_range(p->n, part, p->helpers + 1, &o0, &o1);
    if (o1 > o0)
        p->k->gemm_nt(p->rows, o1 - o0, p->kk, p->x, p->ldx, p->w + o0 * p->kk, p->c + o0, p->ldc, p->accumulate);
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
        run_part(p, index);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
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
    atomic_init(&p->pending, 0);
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

void qv__embed_pool_gemm_nt(qv_embed_pool_t *p, const qv_embed_kernels_t *k, size_t rows, size_t n, size_t kk,
                            const float *x, size_t ldx, const float *w, float *c, size_t ldc, int accumulate)
{
    if (!p || n < 8 || pthread_mutex_trylock(&p->busy) != 0) {
        k->gemm_nt(rows, n, kk, x, ldx, w, c, ldc, accumulate);
        return;
    }
    p->k = k;
    p->rows = rows, p->n = n, p->kk = kk, p->ldx = ldx, p->ldc = ldc;
    p->x = x, p->w = w, p->c = c, p->accumulate = accumulate;
    atomic_store_explicit(&p->pending, p->helpers, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_part(p, 0);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++)
        if (spins < QV_POOL_SPIN)
            cpu_pause();
        else
            sched_yield(); /* a helper lost its core (a loaded machine): let it run */
    pthread_mutex_unlock(&p->busy);
}
