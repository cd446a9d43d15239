/* Monotonic time, and condition variables whose timed waits are measured on it.
 *
 * Every wait the servers time (the request-read reaper, the coordinator's shard slots, the etcd poller and lease
 * renewal, the embedder's batch window, shutdown grace) uses these, so a wall-clock step neither stalls nor hurries
 * it: a condvar from qv_cond_init_mono takes absolute deadlines from qv_mono_ts. */
#ifndef QV_CLOCK_H
#define QV_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC now, in ns. */
static inline int64_t qv_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A CLOCK_MONOTONIC instant in ns as the absolute time pthread_cond_timedwait takes on a qv_cond_init_mono cv. */
static inline struct timespec qv_mono_ts(int64_t ns)
{
    return (struct timespec){(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
}

/* Initialises cv so that its timed waits run on CLOCK_MONOTONIC. Returns pthread_cond_init's result. */
static inline int qv_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

#endif
