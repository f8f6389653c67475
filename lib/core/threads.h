/* The library's own thread pool (see threads.c). */
#ifndef LF_THREADS_H
#define LF_THREADS_H

#include "core/core.h"

typedef struct lf_pool lf_pool;

/* A pool of n_threads threads in all: the caller plus n_threads - 1 workers. */
int lf_pool_create(lf_pool **out, int n_threads);
void lf_pool_free(lf_pool *p);
int lf_pool_threads(const lf_pool *p);
/* Split [0, n) into `shares` contiguous ranges (at most the thread count);
 * range i runs on thread i (0 = the caller), or on another thread of the
 * pool when thread i has not started it by the time that one is free (a
 * worker that sleeps or waits for a core). Returns when all are done. */
void lf_pool_run(lf_pool *p, int64_t n, int shares, lf_range_fn fn, void *arg);
/* The same with the threads taking chunks of `chunk` indices in turn until
 * none are left: for items of uneven cost (attention over sequences of
 * different lengths). Which thread runs an item varies from run to run, so
 * fn must compute each item independently of the others. */
void lf_pool_run_dynamic(lf_pool *p, int64_t n, int64_t chunk, lf_range_fn fn, void *arg);

#endif
