/* The thread pool (lib/core/threads.c): every index of a loop runs exactly
 * once, share i is always the range [n i / s, n (i + 1) / s) (the split the
 * results' independence of the thread count rests on), and hand-offs work
 * whatever the workers are doing when a loop arrives: spinning (loops back
 * to back), blocked (pauses longer than the spin between loops), or still
 * busy with a share (one share much longer than the others, so the caller
 * blocks for it). The test programs' timeout catches a lost wake-up. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/threads.h"
#include "tests/common/testutil.h"

enum { MAX_N = 4096, MAX_SHARES = 8 };

typedef struct {
    atomic_int hits[MAX_N];
    atomic_int_fast64_t begin[MAX_SHARES], end[MAX_SHARES];
    int64_t n;
    int shares;
    long slow_ns; /* the share holding index 0 sleeps this long */
} loop_state;

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void reset(loop_state *st, int64_t n, int shares)
{
    st->n = n;
    st->shares = shares;
    for (int64_t i = 0; i < n; i++)
        atomic_store(&st->hits[i], 0);
    for (int s = 0; s < MAX_SHARES; s++) {
        atomic_store(&st->begin[s], -1);
        atomic_store(&st->end[s], -1);
    }
}

static void count_range(void *arg, int64_t b, int64_t e)
{
    loop_state *st = arg;
    if (b == 0 && st->slow_ns)
        sleep_ns(st->slow_ns);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&st->hits[i], 1);
}

/* static shares: also record which range each share got */
static void record_range(void *arg, int64_t b, int64_t e)
{
    loop_state *st = arg;
    int s = 0;
    while (s < st->shares && (st->n * s / st->shares != b || st->n * (s + 1) / st->shares != e))
        s++;
    if (s == st->shares) {
        fprintf(stderr, "# range [%lld, %lld) is no share of %lld in %d\n", (long long)b, (long long)e,
                (long long)st->n, st->shares);
        count_range(arg, b, e);
        return; /* check_split reports it */
    }
    if (atomic_exchange(&st->begin[s], b) != -1)
        atomic_store(&st->begin[s], -2);
    atomic_store(&st->end[s], e);
    count_range(arg, b, e);
}

/* (assertions that pass cost a message to Check's parent process each, so
 * the loops look first and assert once) */
static void check_once(loop_state *st, const char *what, int run)
{
    int64_t bad = -1;
    for (int64_t i = 0; i < st->n && bad < 0; i++)
        if (atomic_load(&st->hits[i]) != 1)
            bad = i;
    if (bad >= 0)
        ck_abort_msg("%s, run %d: index %lld of %lld ran %d times", what, run, (long long)bad, (long long)st->n,
                     atomic_load(&st->hits[bad]));
}

static void check_split(loop_state *st, int run)
{
    int shares = st->shares;
    for (int s = 0; s < shares; s++) {
        int64_t b = st->n * s / shares, e = st->n * (s + 1) / shares;
        if (b == e)
            continue; /* empty shares are not called */
        if (atomic_load(&st->begin[s]) != b || atomic_load(&st->end[s]) != e)
            ck_abort_msg("run %d: share %d of %d over %lld was [%lld, %lld), not [%lld, %lld) (-1: not run, -2: "
                         "run twice)",
                         run, s, shares, (long long)st->n, (long long)atomic_load(&st->begin[s]),
                         (long long)atomic_load(&st->end[s]), (long long)b, (long long)e);
    }
}

/* `runs` static and dynamic loops of varying sizes on a pool of `threads`,
 * with `pause_ns` between loops */
static void exercise(int threads, int runs, long pause_ns, long slow_ns)
{
    lf_pool *p;
    ck_assert_int_eq(lf_pool_create(&p, threads), LFLEX_OK);
    ck_assert_int_eq(lf_pool_threads(p), threads);
    loop_state *st = calloc(1, sizeof *st);
    st->slow_ns = slow_ns;
    uint64_t rng = 99;
    for (int r = 0; r < runs; r++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t n = 1 + (int64_t)((rng >> 33) % MAX_N);
        int shares = 1 + (int)((rng >> 20) % (uint64_t)(threads + 1)); /* up to threads + 1 */
        if (r % 2 == 0) {
            int eff = shares > threads ? threads : shares;
            reset(st, n, eff);
            lf_pool_run(p, n, shares, record_range, st);
            check_once(st, "lf_pool_run", r);
            check_split(st, r);
        } else {
            int64_t chunk = 1 + (int64_t)((rng >> 40) % 64);
            reset(st, n, 1);
            lf_pool_run_dynamic(p, n, chunk, count_range, st);
            check_once(st, "lf_pool_run_dynamic", r);
        }
        if (pause_ns)
            sleep_ns(pause_ns);
    }
    free(st);
    lf_pool_free(p);
}

START_TEST(test_back_to_back)
{
    for (int threads = 1; threads <= 4; threads++)
        exercise(threads, 2000, 0, 0);
}
END_TEST

/* 2 ms between loops: the workers have stopped spinning and block */
START_TEST(test_after_pauses)
{
    for (int threads = 2; threads <= 3; threads++)
        exercise(threads, 60, 2000000, 0);
}
END_TEST

/* one share 2 ms longer than the others: the caller blocks for it (and the
 * workers that finished block for the next loop) */
START_TEST(test_uneven_shares)
{
    for (int threads = 2; threads <= 3; threads++)
        exercise(threads, 60, 0, 2000000);
}
END_TEST

/* pools freed at once after their creation, after a loop, and after their
 * workers have blocked */
START_TEST(test_create_free)
{
    loop_state *st = calloc(1, sizeof *st);
    for (int r = 0; r < 200; r++) {
        lf_pool *p;
        ck_assert_int_eq(lf_pool_create(&p, 2 + r % 3), LFLEX_OK);
        if (r % 3 >= 1) {
            reset(st, 100, lf_pool_threads(p));
            lf_pool_run(p, 100, lf_pool_threads(p), count_range, st);
            check_once(st, "lf_pool_run", r);
        }
        if (r % 3 == 2 && r % 30 == 2)
            sleep_ns(2000000);
        lf_pool_free(p);
    }
    free(st);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_back_to_back);
    tcase_add_test(tc, test_after_pauses);
    tcase_add_test(tc, test_uneven_shares);
    tcase_add_test(tc, test_create_free);
    suite_add_tcase(s, tc);
    return s;
}
