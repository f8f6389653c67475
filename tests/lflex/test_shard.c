/* Data-parallel steps (lflex_model_train_step_shard) without MPI: threads
 * stand for the processes, each with its own model, and the reduction is
 * a sum over the threads behind a barrier. After a few steps every
 * thread's weights equal those of one model trained on the whole batches
 * with lflex_model_train_step (to float rounding), its random stream is
 * the same bit for bit, and so are the statistics; failures change nothing
 * and are the same in every thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "tests/common/testutil.h"

#define MAX_PROCS 3
#define N_SEQ 7
#define STEPS 4
#define V 10

/* A large AdamW epsilon: with the default 1e-8, a gradient at the level of
 * rounding becomes a full step of lr times its sign, so two sums of the
 * same gradients in another order could move a weight by 2 lr. With 1e-3 a
 * difference d in a gradient moves a weight by at most lr d / 1e-3 a step,
 * and the weights compare the summed gradients. */
static const char *const configs[] = {
    /* LFlexMDM: learned order, two states, REINFORCE and the regulariser */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: kumaraswamy}\n"
    "vocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, clip: 0.5, eps: 1.0e-3}\n",
    /* LFlexMDM with each token's REINFORCE weight from the terms near it */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: kumaraswamy}\n"
    "loss: {credit_window: 1}\nvocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, clip: 0.5, eps: 1.0e-3}\n",
    /* FlexMDM: one state, fixed schedules */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: linear}\n"
    "vocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, eps: 1.0e-3}\n",
    /* FlexMDM with three states per sequence at their own times, left-to-right states */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: linear}\n"
    "loss: {states: 3, unmask_order: left_to_right, time_shape: 2}\n"
    "vocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, eps: 1.0e-3}\n",
    /* a learned unmasking order: two states that share their draws, each its own race */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: kumaraswamy, learn_b_in: false}\n"
    "loss: {unmask_order: learned}\nvocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, clip: 0.5, eps: 1.0e-3}\n",
    /* the race rewarded by the next token, on bounded log-weights */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: kumaraswamy, learn_b_in: false}\n"
    "loss: {unmask_order: learned, order_reward: next}\naux: {order_weights: exp, order_span: 3}\n"
    "vocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, clip: 0.5, eps: 1.0e-3}\n",
    /* a learned unmasking order whose two states are drawn apart */
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: kumaraswamy, learn_b_in: false}\n"
    "loss: {unmask_order: learned, order_pair: independent}\n"
    "vocab: {size: 6}\ntrain: {threads: 1, lr: 1.0e-2, warmup: 0, clip: 0.5, eps: 1.0e-3}\n",
};

/* The batches of every step: random tokens, each sequence ends with EOS. */
typedef struct {
    int32_t tokens[STEPS][N_SEQ * 12];
    size_t offsets[STEPS][N_SEQ + 1];
} batches;

static void make_batches(batches *b)
{
    lf_test_rng r = {42};
    for (int s = 0; s < STEPS; s++) {
        size_t at = 0;
        b->offsets[s][0] = 0;
        for (int j = 0; j < N_SEQ; j++) {
            int64_t len = lf_test_int(&r, 2, 11);
            for (int64_t i = 0; i < len - 1; i++)
                b->tokens[s][at++] = (int32_t)lf_test_int(&r, LFLEX_TOKEN_FIRST_USER, V - 1);
            b->tokens[s][at++] = LFLEX_TOKEN_EOS;
            b->offsets[s][j + 1] = at;
        }
    }
}

/* The "processes": threads that meet in the reduction. Rank 0 sums the
 * posted arrays in rank order, so every rank gets the same sums. */
typedef struct {
    pthread_barrier_t bar;
    int n;
    float *grad[MAX_PROCS];
    double *stats[MAX_PROCS];
    float *gsum;
    double ssum[LFLEX_REDUCE_STATS];
    int fail_rank; /* this rank's callback fails (-1: none) */
} group;

typedef struct {
    group *g;
    int rank;
    const char *config;
    const batches *b;
    lflex_model_t *m;
    int status[STEPS];
    lflex_train_stats st[STEPS];
} member;

static int sum_over_threads(void *user, float *grad, size_t n, double *stats, size_t n_stats)
{
    member *me = user;
    group *g = me->g;
    g->grad[me->rank] = grad;
    g->stats[me->rank] = stats;
    pthread_barrier_wait(&g->bar);
    if (me->rank == 0) {
        for (size_t i = 0; i < n; i++) {
            float s = 0;
            for (int r = 0; r < g->n; r++)
                s += g->grad[r][i];
            g->gsum[i] = s;
        }
        for (size_t i = 0; i < n_stats; i++) {
            double s = 0;
            for (int r = 0; r < g->n; r++)
                s += g->stats[r][i];
            g->ssum[i] = s;
        }
    }
    pthread_barrier_wait(&g->bar);
    if (grad)
        memcpy(grad, g->gsum, n * sizeof *grad);
    if (stats)
        memcpy(stats, g->ssum, n_stats * sizeof *stats);
    pthread_barrier_wait(&g->bar);
    return me->rank == g->fail_rank && stats ? 1 : 0;
}

static lflex_model_t *new_model(const char *config)
{
    lflex_model_t *m = NULL;
    ck_assert_msg(lflex_model_new(&m, config, strlen(config)) == LFLEX_OK, "%s", lflex_last_error());
    return m;
}

static void *run_member(void *p)
{
    member *me = p;
    size_t first = (size_t)me->rank * N_SEQ / (size_t)me->g->n, end = (size_t)(me->rank + 1) * N_SEQ / (size_t)me->g->n;
    for (int s = 0; s < STEPS; s++) {
        me->st[s].struct_size = sizeof me->st[s];
        me->status[s] = lflex_model_train_step_shard(me->m, me->b->tokens[s], NULL, me->b->offsets[s], N_SEQ, first,
                                                     end - first, &me->st[s]);
    }
    return NULL;
}

/* Train n_procs models on shards of the batches; members[r].m keeps the
 * models (the caller frees them). */
static void run_group(group *g, member *members, int n_procs, const char *config, const batches *b, int fail_rank,
                      size_t bucket)
{
    memset(g, 0, sizeof *g);
    g->n = n_procs;
    g->fail_rank = fail_rank;
    pthread_barrier_init(&g->bar, NULL, (unsigned)n_procs);
    pthread_t th[MAX_PROCS];
    for (int r = 0; r < n_procs; r++) {
        members[r] = (member){.g = g, .rank = r, .config = config, .b = b, .m = new_model(config)};
        ck_assert_int_eq(lflex_model_set_reduce(members[r].m, sum_over_threads, &members[r], bucket), LFLEX_OK);
        if (!g->gsum)
            g->gsum = malloc((size_t)members[r].m->m.params.total * sizeof *g->gsum);
    }
    for (int r = 0; r < n_procs; r++)
        ck_assert_int_eq(pthread_create(&th[r], NULL, run_member, &members[r]), 0);
    for (int r = 0; r < n_procs; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&g->bar);
    free(g->gsum);
}

static void check_equivalence(const char *config, int n_procs, size_t bucket)
{
    batches *b = calloc(1, sizeof *b);
    make_batches(b);
    lflex_model_t *ref = new_model(config);
    lflex_train_stats rs[STEPS];
    for (int s = 0; s < STEPS; s++) {
        rs[s].struct_size = sizeof rs[s];
        ck_assert_msg(lflex_model_train_step(ref, b->tokens[s], NULL, b->offsets[s], N_SEQ, &rs[s]) == LFLEX_OK, "%s",
                      lflex_last_error());
    }
    group g;
    member mb[MAX_PROCS];
    run_group(&g, mb, n_procs, config, b, -1, bucket);
    const lf_params *P = &ref->m.params;
    for (int r = 0; r < n_procs; r++) {
        for (int s = 0; s < STEPS; s++) {
            ck_assert_msg(mb[r].status[s] == LFLEX_OK, "rank %d step %d: %s", r, s, lflex_strerror(mb[r].status[s]));
            LF_ASSERT_CLOSE(mb[r].st[s].loss, rs[s].loss, 1e-5, 1e-5);
            LF_ASSERT_CLOSE(mb[r].st[s].unmask_loss, rs[s].unmask_loss, 1e-5, 1e-5);
            LF_ASSERT_CLOSE(mb[r].st[s].insert_loss, rs[s].insert_loss, 1e-5, 1e-5);
            LF_ASSERT_CLOSE(mb[r].st[s].grad_norm, rs[s].grad_norm, 1e-5, 1e-4);
            ck_assert_uint_eq(mb[r].st[s].tokens, rs[s].tokens);
            ck_assert_uint_eq(mb[r].st[s].step, rs[s].step);
        }
        const lf_model *mm = &mb[r].m->m;
        ck_assert_msg(!memcmp(&mm->rng, &ref->m.rng, sizeof mm->rng), "rank %d: the random stream differs", r);
        double worst = 0;
        int64_t at = 0;
        for (int64_t i = 0; i < P->total; i++) {
            double d = fabs((double)mm->params.data[i] - (double)P->data[i]);
            if (d > worst) {
                worst = d;
                at = i;
            }
        }
        /* lr 1e-2 over 4 Adam steps: rounding of the sums moves a weight by
         * far less than one step (lr) */
        printf("# %d ranks: max |w - w_ref| %.3g\n", n_procs, worst);
        ck_assert_msg(worst <= 1e-5, "rank %d of %d: weight %ld differs by %g", r, n_procs, (long)at, worst);
        /* every rank applied the same sums: identical weights */
        ck_assert(!memcmp(mm->params.data, mb[0].m->m.params.data, (size_t)P->total * sizeof *P->data));
    }
    for (int r = 0; r < n_procs; r++)
        lflex_model_free(mb[r].m);
    lflex_model_free(ref);
    free(b);
}

START_TEST(test_two_shards_equal_one_process)
{
    check_equivalence(configs[_i], 2, 0);
}
END_TEST

START_TEST(test_three_uneven_shards_small_buckets)
{
    /* 7 sequences as 2 + 2 + 3, the gradient in buckets of 1000 values */
    check_equivalence(configs[_i], 3, 1000);
}
END_TEST

START_TEST(test_bad_calls)
{
    batches *b = calloc(1, sizeof *b);
    make_batches(b);
    lflex_model_t *m = new_model(configs[0]);
    ck_assert_int_eq(lflex_model_train_step_shard(m, b->tokens[0], NULL, b->offsets[0], N_SEQ, 0, 3, NULL),
                     LFLEX_ESTATE);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "lflex_model_set_reduce"));
    ck_assert_int_eq(lflex_model_set_reduce(NULL, sum_over_threads, NULL, 0), LFLEX_EINVAL);
    group g = {.n = 1, .fail_rank = -1};
    member me = {.g = &g, .rank = 0};
    pthread_barrier_init(&g.bar, NULL, 1);
    g.gsum = malloc((size_t)m->m.params.total * sizeof *g.gsum);
    ck_assert_int_eq(lflex_model_set_reduce(m, sum_over_threads, &me, 0), LFLEX_OK);
    ck_assert_int_eq(lflex_model_train_step_shard(m, b->tokens[0], NULL, b->offsets[0], N_SEQ, 5, 3, NULL),
                     LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "runs past the batch of 7"));
    ck_assert_int_eq(lflex_model_train_step_shard(m, b->tokens[0], NULL, b->offsets[0], N_SEQ, 2, 0, NULL),
                     LFLEX_EINVAL);
    /* one process over the whole batch is the plain step */
    ck_assert_int_eq(lflex_model_train_step_shard(m, b->tokens[0], NULL, b->offsets[0], N_SEQ, 0, N_SEQ, NULL),
                     LFLEX_OK);
    lflex_model_t *ref = new_model(configs[0]);
    ck_assert_int_eq(lflex_model_train_step(ref, b->tokens[0], NULL, b->offsets[0], N_SEQ, NULL), LFLEX_OK);
    ck_assert(!memcmp(m->m.params.data, ref->m.params.data, (size_t)m->m.params.total * sizeof(float)));
    ck_assert(!memcmp(&m->m.rng, &ref->m.rng, sizeof ref->m.rng));
    pthread_barrier_destroy(&g.bar);
    free(g.gsum);
    lflex_model_free(ref);
    lflex_model_free(m);
    free(b);
}
END_TEST

START_TEST(test_failed_reduction_changes_nothing)
{
    batches *b = calloc(1, sizeof *b);
    make_batches(b);
    lflex_model_t *fresh = new_model(configs[0]);
    group g;
    member mb[2];
    run_group(&g, mb, 2, configs[0], b, 1, 0); /* rank 1's callback fails at every step */
    for (int r = 0; r < 2; r++) {
        for (int s = 0; s < STEPS; s++)
            ck_assert_int_eq(mb[r].status[s], r == 1 ? LFLEX_EIO : LFLEX_OK);
        if (r == 1) {
            ck_assert(!memcmp(mb[r].m->m.params.data, fresh->m.params.data,
                              (size_t)fresh->m.params.total * sizeof(float)));
            ck_assert(!memcmp(&mb[r].m->m.rng, &fresh->m.rng, sizeof fresh->m.rng));
            ck_assert_uint_eq(mb[r].m->m.step, 0);
        }
        lflex_model_free(mb[r].m);
    }
    lflex_model_free(fresh);
    free(b);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_two_shards_equal_one_process, 0, (int)(sizeof configs / sizeof configs[0]));
    tcase_add_loop_test(tc, test_three_uneven_shards_small_buckets, 0, (int)(sizeof configs / sizeof configs[0]));
    tcase_add_test(tc, test_bad_calls);
    tcase_add_test(tc, test_failed_reduction_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}
