/* The library's thread pool. One pool per context; the calling thread takes
 * the first share of every parallel loop and the workers the others.
 *
 * A share goes to whichever thread claims it first: worker i claims share i
 * when it wakes, and a thread whose own share is done claims the shares not
 * yet started, so that a worker that is asleep or waits for a core delays
 * nothing (the caller then runs its share). The split into shares does not
 * change, only which thread runs a share, so results stay the same. Claims
 * are marked with the job's generation; a worker that wakes after the job
 * it was woken for finds every share of it claimed and reads nothing else of
 * that job.
 *
 * Waiting: a thread that waits (a worker for the next loop, the caller for
 * the workers' shares) spins for at most SPIN_NS with a pause instruction,
 * since the next op or the last share usually comes within microseconds, and
 * then blocks on a condition variable of the pool's mutex. Blocking matters
 * more than the spin's length: on cores shared with another program, a
 * thread that spins or only yields keeps its core, and the thread it waits
 * for then waits behind the other program for a time slice, once per op; a
 * blocked thread leaves its core to the scheduler, which runs the awaited
 * thread there. The waker takes the mutex only when someone is blocked (a
 * counter and a flag, read and written sequentially consistent, say so), so
 * a hand-off between spinning threads makes no system call.
 *
 * pthread condition variables rather than futexes: portable (the library
 * builds wherever pthreads exist), understood by ThreadSanitizer, and a
 * futex would save only the mutex on a path that already sleeps.
 *
 * BLAS runs single-threaded inside the shares (see lf_gemm_ctx), so there is
 * exactly one set of threads doing the work. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kernels.h"
#include "core/threads.h"

/* the longest spin before blocking, and the pause instructions between
 * clock reads (a pause is 3-40 ns depending on the CPU) */
#define SPIN_NS 20000
#define SPIN_BATCH 16

struct lf_pool {
    int n_threads;              /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work;        /* workers block here for the next job */
    pthread_cond_t done;        /* the caller blocks here for the workers */
    atomic_uint_fast64_t generation;
    atomic_int pending;         /* shares 1.. of the current job not yet done */
    atomic_int sleepers;        /* workers blocked (or about to block) on `work` */
    atomic_bool caller_sleeps;  /* the caller is blocked (or about to block) on `done` */
    atomic_bool stop;
    /* claim[i]: the last generation whose share i a thread has claimed (or
     * that had no share i); i >= 1 */
    atomic_uint_fast64_t *claim;
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
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spin state: call spin_more() between two checks of the awaited condition;
 * it pauses and answers whether to keep spinning (false once SPIN_NS have
 * passed since the first call). The clock is read once per SPIN_BATCH. */
typedef struct {
    unsigned n;
    uint64_t t0;
} spin_state;

static bool spin_more(spin_state *s)
{
    cpu_relax();
    if (++s->n % SPIN_BATCH)
        return true;
    uint64_t t = now_ns();
    if (s->n == SPIN_BATCH)
        s->t0 = t;
    return t - s->t0 < SPIN_NS;
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

/* sequentially consistent loads: the handshake below depends on it */
static bool no_job(lf_pool *p, uint64_t seen)
{
    return atomic_load(&p->generation) == seen && !atomic_load(&p->stop);
}

/* Wait until the generation moves past `seen` or the pool stops. The
 * sleeper count is raised before the last check under the mutex and read
 * by pool_start after raising the generation, both sequentially consistent:
 * either the worker sees the new generation or pool_start sees the sleeper
 * and signals under the mutex, so no wake-up is lost. */
static void wait_for_job(lf_pool *p, uint64_t seen)
{
    spin_state sp = {0};
    while (no_job(p, seen))
        if (!spin_more(&sp))
            break;
    if (!no_job(p, seen))
        return;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (no_job(p, seen))
        pthread_cond_wait(&p->work, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

/* One share of the current job done: the last one wakes the caller if it
 * sleeps (the same handshake as wait_for_job's, on `pending` and
 * `caller_sleeps`). */
static void share_done(lf_pool *p)
{
    if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeps)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Whether this thread takes share i of job g: a share unclaimed in g means
 * job g is not finished, so its fields are still the current ones. */
static bool claim_share(lf_pool *p, int i, uint64_t g)
{
    uint_fast64_t v = atomic_load_explicit(&p->claim[i], memory_order_relaxed);
    return v < g && atomic_compare_exchange_strong_explicit(&p->claim[i], &v, g, memory_order_relaxed,
                                                            memory_order_relaxed);
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    lf_pool *p = wa->pool;
    int id = wa->id;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        wait_for_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        seen = g;
        /* its own share, then any other not yet started */
        for (int k = 0; k < p->n_threads - 1; k++) {
            int i = 1 + (id - 1 + k) % (p->n_threads - 1);
            if (claim_share(p, i, g)) {
                run_share(p, i);
                share_done(p);
            }
        }
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
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeps, false);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
    if (p->n_threads > 1) {
        p->threads = calloc((size_t)p->n_threads - 1, sizeof *p->threads);
        p->claim = calloc((size_t)p->n_threads, sizeof *p->claim);
        if (!p->threads || !p->claim) {
            lf_pool_free(p);
            return LFLEX_ENOMEM;
        }
        for (int i = 0; i < p->n_threads; i++)
            atomic_init(&p->claim[i], 0);
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
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free((void *)p->claim);
    free(p);
}

int lf_pool_threads(const lf_pool *p)
{
    return p ? p->n_threads : 1;
}

static void pool_start(lf_pool *p, int64_t n, int shares, int64_t chunk, lf_range_fn fn, void *arg)
{
    /* only this thread raises the generation */
    uint64_t g = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->shares = shares;
    p->chunk = chunk;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    /* with chunks every thread has a "share" (its turn at the chunks) */
    int used = chunk > 0 ? p->n_threads : shares;
    for (int i = used; i < p->n_threads; i++)
        atomic_store_explicit(&p->claim[i], g, memory_order_relaxed);
    atomic_store_explicit(&p->pending, used - 1, memory_order_relaxed);
    /* publishes the job (release); sequentially consistent against the
     * sleeper count, see wait_for_job */
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mu);
    }
    run_share(p, 0);
    /* the shares no worker has started yet, from the last */
    for (int i = used - 1; i >= 1; i--)
        if (claim_share(p, i, g)) {
            run_share(p, i);
            atomic_fetch_sub_explicit(&p->pending, 1, memory_order_relaxed);
        }
    spin_state sp = {0};
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
        if (!spin_more(&sp))
            break;
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeps, true);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_sleeps, false);
        pthread_mutex_unlock(&p->mu);
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
