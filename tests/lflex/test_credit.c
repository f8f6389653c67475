/* The REINFORCE credit of learned schedules (loss.credit_window) against
 * independent computations: each token's weight against a brute force
 * written here over the traced loss terms of the rows (the rows' clean
 * positions rebuilt from the drawn states, every row within the window
 * summed directly; -1: the whole sequence's difference, the
 * specification's estimator, which the PyTorch fixtures also check); a
 * window as wide as the sequences against -1 (same loss, same REINFORCE
 * value, same gradients); a narrow window changes only the auxiliary
 * network's gradients, since the generator's do not pass through the
 * REINFORCE weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lflex/model.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

enum { N_SEQ = 9, MAX_TOK = N_SEQ * 12 };

static const char *const base_yaml = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\n"
                                     "schedule: {family: kumaraswamy}\n"
                                     "vocab: {size: 6}\ntrain: {threads: 1, seed: 4}\n";

typedef struct {
    int32_t tok[MAX_TOK], off[N_SEQ + 1];
    uint8_t fx[MAX_TOK];
} toy_batch;

/* Random sequences of 2..11 tokens ending with EOS (fixed), the first
 * token fixed in every third sequence (a prompt). */
static void make_batch(toy_batch *b)
{
    lf_test_toy_batch(b->tok, b->fx, b->off, N_SEQ, 2, 17);
}

static void new_model(lf_model *m, lf_model_config *cfg, int window)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%sloss: {credit_window: %d}\n", base_yaml, window);
    lf_test_model_from_yaml(m, cfg, yaml);
}

/* One loss with its gradients; the model's random stream reset first, so
 * that every model draws the same times and states. */
static void loss_of(lf_model *m, const toy_batch *b, lf_loss_parts *p)
{
    lf_rng_seed(&m->rng, 99);
    lf_batch bt = {b->tok, b->fx, b->off, N_SEQ, 0, 0};
    ck_assert_msg(lf_model_loss(m, &bt, NULL, true, p) == LFLEX_OK, "%s", lflex_last_error());
}

START_TEST(test_weights_against_brute_force)
{
    static const int windows[] = {0, 1, 3, -1}; /* -1: the whole sequence */
    toy_batch b;
    make_batch(&b);
    for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++) {
        int W = windows[wi];
        static lf_model_config cfg;
        lf_model m;
        new_model(&m, &cfg, W);
        lf_loss_parts p;
        loss_of(&m, &b, &p);
        const lf_loss_trace *tr = &m.trace;
        ck_assert_ptr_nonnull(tr->credit);
        const int64_t Nz = b.off[N_SEQ];
        /* the terms of every row, in the order of x_t: state 0's sequences, then state 1's */
        double *row = calloc((size_t)tr->n_xt, sizeof *row);
        int64_t *src = calloc((size_t)tr->n_xt, sizeof *src);
        for (int64_t k = 0; k < tr->n_xt; k++)
            row[k] = lf_data(tr->ins_rows)[k];
        for (int64_t q = 0; q < tr->n_masked; q++)
            row[tr->masked_rows[q]] += lf_data(tr->um_rows)[q];
        int64_t k = 0;
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < N_SEQ; j++) {
                double sum = 0;
                for (int64_t i = b.off[j]; i < b.off[j + 1]; i++)
                    if (tr->state[s][i] != LF_STATE_DROPPED) {
                        src[k] = i;
                        sum += row[k++];
                    }
                /* the rows' terms make up the sequence's loss */
                LF_ASSERT_CLOSE(sum, lf_data(tr->L)[s * N_SEQ + j], 1e-6, 1e-5);
            }
        ck_assert_int_eq(k, tr->n_xt);
        int checked = 0;
        for (int j = 0; j < N_SEQ; j++)
            for (int64_t i = b.off[j]; i < b.off[j + 1]; i++) {
                double want = 0;
                if (!b.fx[i]) {
                    double r[2] = {0, 0};
                    int64_t q = 0;
                    for (int s = 0; s < 2; s++)
                        for (int jj = 0; jj < N_SEQ; jj++)
                            for (int64_t ii = b.off[jj]; ii < b.off[jj + 1]; ii++)
                                if (tr->state[s][ii] != LF_STATE_DROPPED) {
                                    if (jj == j && (W < 0 || llabs(src[q] - i) <= W))
                                        r[s] += row[q];
                                    q++;
                                }
                    want = 0.5 * (r[0] - r[1]) / N_SEQ;
                    checked += want != 0;
                }
                LF_ASSERT_CLOSE(lf_data(tr->credit)[i], want, 1e-7, 1e-5);
            }
        /* the draws differ between the two states somewhere */
        ck_assert_int_gt(checked, Nz / 4);
        free(row);
        free(src);
        lf_model_destroy(&m);
    }
}
END_TEST

/* Gradients of the parameters whose names start with prefix: the largest
 * difference between two models, relative to the largest gradient. */
static double grad_diff(const lf_model *a, const lf_model *b, const char *prefix, double *scale)
{
    double worst = 0, big = 0;
    for (int q = 0; q < a->params.n; q++) {
        const lf_param *pa = a->params.items[q], *pb = b->params.items[q];
        ck_assert_str_eq(pa->name, pb->name);
        if (strncmp(pa->name, prefix, strlen(prefix)) != 0)
            continue;
        for (int64_t i = 0; i < pa->numel; i++) {
            double ga = a->params.grad[pa->offset + i], gb = b->params.grad[pb->offset + i];
            worst = fmax(worst, fabs(ga - gb));
            big = fmax(big, fabs(gb));
        }
    }
    *scale = big;
    return worst;
}

/* A model with loss.credit_window W and one with the specification's
 * estimator (-1), each with its loss and gradients on the same batch. */
static void against_specification(int W, lf_model *m, lf_model *spec, lf_loss_parts *pm, lf_loss_parts *ps)
{
    static lf_model_config cm, cs;
    toy_batch b;
    make_batch(&b);
    new_model(m, &cm, W);
    new_model(spec, &cs, -1);
    loss_of(m, &b, pm);
    loss_of(spec, &b, ps);
}

START_TEST(test_wide_window_is_the_sequence_estimator)
{
    lf_model wide, seq;
    lf_loss_parts pw, ps;
    against_specification(12, &wide, &seq, &pw, &ps); /* model.max_len: every sequence inside every window */
    LF_ASSERT_CLOSE(pw.total, ps.total, 1e-7, 1e-6);
    LF_ASSERT_CLOSE(pw.reinforce, ps.reinforce, 1e-8, 1e-5);
    ck_assert(ps.reinforce != 0);
    double scale, d = grad_diff(&wide, &seq, "", &scale);
    ck_assert_double_gt(scale, 0);
    ck_assert_msg(d <= 1e-5 * scale, "gradients differ by %g (largest %g)", d, scale);
    lf_model_destroy(&wide);
    lf_model_destroy(&seq);
}
END_TEST

START_TEST(test_narrow_window_moves_only_the_auxiliary_network)
{
    lf_model narrow, seq;
    lf_loss_parts pn, ps;
    against_specification(0, &narrow, &seq, &pn, &ps);
    LF_ASSERT_CLOSE(pn.unmask, ps.unmask, 1e-9, 1e-9);
    LF_ASSERT_CLOSE(pn.insert, ps.insert, 1e-9, 1e-9);
    double scale, d = grad_diff(&narrow, &seq, "gen", &scale);
    ck_assert_msg(d <= 1e-6 * scale, "generator gradients differ by %g (largest %g)", d, scale);
    d = grad_diff(&narrow, &seq, "aux", &scale);
    ck_assert_msg(d > 1e-3 * scale, "auxiliary gradients equal (difference %g, largest %g)", d, scale);
    lf_model_destroy(&narrow);
    lf_model_destroy(&seq);
}
END_TEST

START_TEST(test_fixed_schedule_rejected)
{
    static lf_model_config cfg;
    const char *yaml = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\nschedule: {family: linear}\n"
                       "loss: {credit_window: 2}\nvocab: {size: 6}\n";
    ck_assert_int_eq(lf_config_defaults(&lf_model_schema, &cfg), LFLEX_OK);
    ck_assert_int_eq(lf_config_parse(&lf_model_schema, &cfg, sizeof cfg, yaml, strlen(yaml), NULL), LFLEX_OK);
    char why[256] = "";
    ck_assert_int_ne(lf_model_check_config(&cfg, cfg.vocab_size, why, sizeof why), LFLEX_OK);
    ck_assert_msg(strstr(why, "loss.credit_window") != NULL, "%s", why);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_credit");
    TCase *tc = tcase_create("credit");
    tcase_add_test(tc, test_weights_against_brute_force);
    tcase_add_test(tc, test_wide_window_is_the_sequence_estimator);
    tcase_add_test(tc, test_narrow_window_moves_only_the_auxiliary_network);
    tcase_add_test(tc, test_fixed_schedule_rejected);
    suite_add_tcase(s, tc);
    return s;
}
