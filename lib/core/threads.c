/* The library's thread pool. One pool per context; the calling thread takes
 * the first share of every parallel loop and the workers the others.
 *
 * Workers spin briefly after a loop (the next op usually follows within
 * microseconds) and then sleep on a condition variable, so an idle pool costs
 * nothing and never competes with other threads for the cores. BLAS runs
 * single-threaded inside the shares (see lf_gemm_ctx), so there is exactly
 * one set of threads doing the work. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "core/threads.h"

/* about 10-50 microseconds of spinning before sleeping or yielding: long
 * enough to catch the next op, short enough not to steal a busy core */
#define SPIN_ITERS 20000

struct lf_pool {
    int n_threads;              /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint_fast64_t generation;
    atomic_int pending;         /* workers still running the current job */
    atomic_int sleepers;
    atomic_bool stop;
    /* the current job */
    lf_range_fn fn;
    void *arg;
    int64_t n;
    int shares;
    int64_t chunk;              /* > 0: threads take chunks from `next` */
    atomic_int_fast64_t next;
};

typedef struct {
    lf_pool *pool;
    int id;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_share(lf_pool *p, int id)
{
    if (p->chunk > 0) {
        for (;;) {
            int64_t b = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed);
            if (b >= p->n)
                return;
            p->fn(p->arg, b, b + p->chunk < p->n ? b + p->chunk : p->n);
        }
    }
    if (id < p->shares) {
        int64_t b = p->n * id / p->shares, e = p->n * (id + 1) / p->shares;
        if (b < e)
            p->fn(p->arg, b, e);
    }
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    lf_pool *p = wa->pool;
    int id = wa->id;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_acquire))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        seen = g;
        run_share(p, id);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

int lf_pool_create(lf_pool **out, int n_threads)
{
    *out = NULL;
    lf_pool *p = calloc(1, sizeof *p);
    if (!p)
        return LFLEX_ENOMEM;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
    if (p->n_threads > 1) {
        p->threads = calloc((size_t)p->n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            lf_pool_free(p);
            return LFLEX_ENOMEM;
        }
        for (int i = 1; i < p->n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) {
                wa->pool = p;
                wa->id = i;
            }
            if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                p->n_threads = i; /* the workers started so far are joined by free */
                lf_pool_free(p);
                return LFLEX_ENOMEM;
            }
        }
    }
    *out = p;
    return LFLEX_OK;
}

void lf_pool_free(lf_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int lf_pool_threads(const lf_pool *p)
{
    return p ? p->n_threads : 1;
}

static void pool_start(lf_pool *p, int64_t n, int shares, int64_t chunk, lf_range_fn fn, void *arg)
{
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->shares = shares;
    p->chunk = chunk;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_share(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield();
    }
}

void lf_pool_run(lf_pool *p, int64_t n, int shares, lf_range_fn fn, void *arg)
{
    if (!p || shares <= 1 || p->n_threads <= 1) {
        fn(arg, 0, n);
        return;
    }
    pool_start(p, n, shares > p->n_threads ? p->n_threads : shares, 0, fn, arg);
}

void lf_pool_run_dynamic(lf_pool *p, int64_t n, int64_t chunk, lf_range_fn fn, void *arg)
{
    if (chunk < 1)
        chunk = 1;
    if (!p || p->n_threads <= 1 || n <= chunk) {
        fn(arg, 0, n);
        return;
    }
    pool_start(p, n, p->n_threads, chunk, fn, arg);
}
