/* Learning: on a small deterministic toy dataset the model's loss falls by
 * a stated factor within a few hundred steps, for the learned-order
 * (Kumaraswamy) and the FlexMDM (linear) configurations.
 *
 * Data: "counting" sequences x, x+1, ..., x+n-1 (mod 8) over 8 user tokens,
 * 3 to 10 tokens long, then EOS: every token follows from its neighbours, so
 * a working model drives the unmasking loss down. The measured quantity is
 * the mean of unmask + insert loss (the objective without the REINFORCE
 * surrogate and the regulariser) over 16 fixed validation batches with fixed
 * times and states, before and after training, always with the hazard time
 * weight of the specification (the ELBO's), whatever weight trains. */
#include <stdio.h>
#include <string.h>

#include "io/model_schema.h"
#include "lf_error.h"
#include "lflex/model.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

enum { BATCH = 32, MAX_TOK = BATCH * 11, EVAL_BATCHES = 16, STEPS = 300 };

static void counting_batch(lf_rng *r, int32_t *tok, uint8_t *fx, int32_t *off)
{
    int n = 0;
    off[0] = 0;
    for (int b = 0; b < BATCH; b++) {
        int len = 3 + (int)(lf_rng_next(r) % 8), x = (int)(lf_rng_next(r) % 8);
        for (int i = 0; i < len; i++) {
            tok[n] = LF_N_SPECIAL + (x + i) % 8;
            fx[n++] = 0;
        }
        tok[n] = LF_EOS;
        fx[n++] = 1;
        off[b + 1] = n;
    }
}

static double validation_loss(lf_model *m)
{
    static int32_t tok[MAX_TOK], off[BATCH + 1];
    static uint8_t fx[MAX_TOK];
    lf_rng saved = m->rng;
    int weight = m->cfg.time_weight;
    m->cfg.time_weight = LF_TW_HAZARD;
    double sum = 0;
    for (int k = 0; k < EVAL_BATCHES; k++) {
        lf_rng data;
        lf_rng_seed(&data, 1000 + (uint64_t)k);
        counting_batch(&data, tok, fx, off);
        lf_batch bt = {tok, fx, off, BATCH, 0, 0};
        lf_loss_parts p;
        lf_rng_seed(&m->rng, 77 + (uint64_t)k); /* the same times and states every time */
        ck_assert_int_eq(lf_model_loss(m, &bt, NULL, false, &p), 0);
        sum += p.unmask + p.insert;
    }
    m->rng = saved;
    m->cfg.time_weight = weight;
    return sum / EVAL_BATCHES;
}

static void check_learns(const char *schedule, double factor)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "model: {d_model: 64, n_heads: 4, n_layers: 2, max_len: 16}\n"
             "train: {lr: 0.001, warmup: 50, threads: 2, seed: 3}\n"
             "schedule: {%s}\nvocab: {size: 8}\n", schedule);
    const char *family = schedule;
    static lf_model_config cfg;
    lf_model m;
    lf_test_model_from_yaml(&m, &cfg, yaml);
    double before = validation_loss(&m);
    static int32_t tok[MAX_TOK], off[BATCH + 1];
    static uint8_t fx[MAX_TOK];
    lf_rng data;
    lf_rng_seed(&data, 5);
    for (int s = 1; s <= STEPS; s++) {
        counting_batch(&data, tok, fx, off);
        lf_batch bt = {tok, fx, off, BATCH, 0, 0};
        lf_loss_parts p;
        double gn, lr;
        ck_assert_int_eq(lf_model_loss(&m, &bt, NULL, true, &p), 0);
        ck_assert_int_eq(lf_model_apply_step(&m, p.total, &gn, &lr), 0);
        if (s % 100 == 0)
            printf("# %s step %d: validation loss %.4f\n", family, s, validation_loss(&m));
    }
    double after = validation_loss(&m);
    printf("# %s: validation loss %.4f -> %.4f after %d steps (factor %.2f, required %.1f)\n", family, before,
           after, STEPS, before / after, factor);
    ck_assert_msg(before / after >= factor, "%s: loss fell only from %.4f to %.4f", family, before, after);
    lf_model_destroy(&m);
}

START_TEST(test_learned_order_learns) { check_learns("family: kumaraswamy", 3.0); }
END_TEST

START_TEST(test_flexmdm_learns) { check_learns("family: linear", 3.0); }
END_TEST

START_TEST(test_fixed_early_learns) { check_learns("family: kumaraswamy, learn_b_in: false, b_in: 8", 3.0); }
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("learning");
    TCase *tc = tcase_create("learning");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_learned_order_learns);
    tcase_add_test(tc, test_flexmdm_learns);
    tcase_add_test(tc, test_fixed_early_learns);
    suite_add_tcase(s, tc);
    return s;
}
