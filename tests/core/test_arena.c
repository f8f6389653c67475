/* The per-step arena: alignment, reuse, growth, the steady state of a
 * training loop (no heap allocation after the first step, counted by
 * wrapping the allocator at link time) and recovery from allocation
 * failures. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "tests/common/testutil.h"
#include "toy_model.h"

/* Linked with -Wl,--wrap=malloc,... : every allocation made by the library's
 * objects comes through here. fail_countdown > 0 makes the n-th next one fail. */
static long n_allocs;
static long fail_countdown;
static int counting; /* only the library's calls are counted, not Check's */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static int should_fail(void)
{
    if (!counting)
        return 0;
    n_allocs++;
    return fail_countdown > 0 && --fail_countdown == 0;
}

static int counted_step(toy_model *m, const int32_t *tokens, const int32_t *targets, const int32_t *offsets,
                        int64_t n_seq, double *loss)
{
    counting = 1;
    int st = toy_train_step(m, tokens, targets, offsets, n_seq, 1e-3, loss);
    counting = 0;
    return st;
}
void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return should_fail() ? 12 : __real_posix_memalign(p, a, n); }

START_TEST(test_alignment_and_reuse)
{
    lf_arena a;
    lf_arena_init(&a, 1000);
    void *first = NULL;
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i < 200; i++) {
            void *p = lf_arena_alloc(&a, (size_t)i * 7);
            ck_assert_ptr_nonnull(p);
            ck_assert_int_eq((uintptr_t)p % LF_ALIGN, 0);
            memset(p, 0xab, (size_t)i * 7); /* ASan/valgrind catch overlap errors */
            if (i == 1 && round == 2)
                ck_assert_ptr_eq(p, first); /* after coalescing, the same chunk is reused */
            if (i == 1 && round == 1)
                first = p;
        }
        ck_assert_int_eq(lf_arena_reset(&a), 0);
    }
    ck_assert_uint_ge(lf_arena_capacity(&a), a.high_water);
    lf_arena_free(&a);
}
END_TEST

START_TEST(test_calloc_zeroes)
{
    lf_arena a;
    lf_arena_init(&a, 64);
    unsigned char *p = lf_arena_alloc(&a, 4096);
    memset(p, 0xff, 4096);
    lf_arena_reset(&a);
    unsigned char *q = lf_arena_calloc(&a, 4096);
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(q[i], 0);
    lf_arena_free(&a);
}
END_TEST

/* A training loop on fixed-size batches allocates only in its first step. */
START_TEST(test_steady_state_no_alloc)
{
    enum { V = 11, N_SEQ = 6, LEN = 9 };
    toy_model m;
    ck_assert_int_eq(toy_init(&m, V, 16, 2, 1), 0);
    int32_t tokens[N_SEQ * LEN], targets[N_SEQ * LEN], offsets[N_SEQ + 1];
    uint64_t rng = 3;
    double loss;
    long after_first = 0;
    for (int step = 0; step < 25; step++) {
        toy_batch(&rng, V, N_SEQ, LEN, LEN, tokens, targets, offsets);
        ck_assert_int_eq(counted_step(&m, tokens, targets, offsets, N_SEQ, &loss), 0);
        if (step == 0)
            after_first = n_allocs;
    }
    ck_assert_msg(n_allocs == after_first, "%ld allocations after the first step", n_allocs - after_first);
    toy_free(&m);
}
END_TEST

/* With variable lengths, once the largest batch has been seen, there are
 * no further allocations. */
START_TEST(test_variable_lengths_settle)
{
    enum { V = 11, N_SEQ = 6, LEN = 12 };
    toy_model m;
    ck_assert_int_eq(toy_init(&m, V, 16, 2, 1), 0);
    int32_t tokens[N_SEQ * LEN], targets[N_SEQ * LEN], offsets[N_SEQ + 1];
    uint64_t rng = 5;
    double loss;
    /* the largest batch first */
    toy_batch(&rng, V, N_SEQ, LEN, LEN, tokens, targets, offsets);
    ck_assert_int_eq(counted_step(&m, tokens, targets, offsets, N_SEQ, &loss), 0);
    ck_assert_int_eq(counted_step(&m, tokens, targets, offsets, N_SEQ, &loss), 0);
    long before = n_allocs;
    for (int step = 0; step < 30; step++) {
        toy_batch(&rng, V, N_SEQ, 1, LEN, tokens, targets, offsets);
        ck_assert_int_eq(counted_step(&m, tokens, targets, offsets, N_SEQ, &loss), 0);
    }
    ck_assert_int_eq(n_allocs, before);
    toy_free(&m);
}
END_TEST

/* Each allocation of a step fails in turn: the step reports ENOMEM, nothing
 * crashes, and the next step succeeds. */
START_TEST(test_alloc_failure_recovers)
{
    enum { V = 11, N_SEQ = 3, LEN = 5 };
    int32_t tokens[N_SEQ * LEN], targets[N_SEQ * LEN], offsets[N_SEQ + 1];
    uint64_t rng = 9;
    toy_batch(&rng, V, N_SEQ, LEN, LEN, tokens, targets, offsets);
    int failures_seen = 0;
    for (long k = 1; k < 400; k++) {
        toy_model m;
        ck_assert_int_eq(toy_init(&m, V, 8, 2, 1), 0);
        /* a tiny first chunk so that the step needs several */
        lf_arena_free(&m.ctx.arena);
        lf_arena_init(&m.ctx.arena, 1);
        m.ctx.arena.chunk_min = 256;
        double loss;
        fail_countdown = k;
        int st = counted_step(&m, tokens, targets, offsets, N_SEQ, &loss);
        long left = fail_countdown;
        fail_countdown = 0;
        if (left == 0) {
            ck_assert_int_eq(st, LFLEX_ENOMEM);
            failures_seen++;
        } else {
            ck_assert_int_eq(st, 0);
        }
        ck_assert_int_eq(counted_step(&m, tokens, targets, offsets, N_SEQ, &loss), 0);
        toy_free(&m);
        if (left > 0)
            break; /* the step needed fewer than k allocations: all were tried */
    }
    ck_assert_int_gt(failures_seen, 5);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, test_alignment_and_reuse);
    tcase_add_test(tc, test_calloc_zeroes);
    tcase_add_test(tc, test_steady_state_no_alloc);
    tcase_add_test(tc, test_variable_lengths_settle);
    tcase_add_test(tc, test_alloc_failure_recovers);
    suite_add_tcase(s, tc);
    return s;
}
