/* A learned unmasking order (loss.unmask_order: learned) against
 * independent computations: the two states of a sequence share their drawn
 * insertions and counts of clean tokens and differ only in which tokens
 * are clean; the REINFORCE value against the leave-one-out formula over the
 * traced per-sequence losses and log-probabilities; the auxiliary
 * network's gradients against central differences of that value at fixed
 * draws (the states are piecewise constant in the weights, so the
 * differences are taken where neither perturbation changes a state); the
 * configurations it cannot run with are refused by name; the weights
 * lf_model_query_unmask_log_weights reports for a sequence are those its
 * training step used (0 for fixed tokens). The race's draw
 * and its log-probability are checked against each other in test_noise.c
 * and by finite differences in test_gradcheck.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lflex/model.h"
#include "lflex/sampler.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

enum { N_SEQ = 8, MAX_TOK = N_SEQ * 12 };

#define RACE_YAML(loss)                                                                                              \
    "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\n"                                                  \
    "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 4}\n"                                                 \
    "loss: {unmask_order: learned" loss "}\n"                                                                       \
    "vocab: {size: 6}\ntrain: {threads: 1, seed: 3}\n"

/* the race rewarded by its states' loss terms, and by the next finisher's
 * (loss.order_reward next), with weights softplus(s), e^s
 * (aux.order_weights exp) and e^(span tanh(s / span)) (aux.order_span),
 * and with its two states drawn apart (loss.order_pair independent);
 * the auxiliary gradient is checked for each */
static const char *const yamls[] = {RACE_YAML(""), RACE_YAML(", order_reward: next"),
                                    RACE_YAML(", order_reward: next") "aux: {order_weights: exp}\n",
                                    RACE_YAML("") "aux: {order_weights: exp, order_span: 4}\n",
                                    RACE_YAML(", order_pair: independent")};
enum { N_YAMLS = sizeof yamls / sizeof yamls[0], PAIR_APART = N_YAMLS - 1 };

typedef struct {
    int32_t tok[MAX_TOK], off[N_SEQ + 1];
    uint8_t fx[MAX_TOK];
} toy_batch;

/* Random sequences of 3..11 tokens ending with EOS (fixed), the first
 * token fixed in every third sequence (a prompt). */
static void make_batch(toy_batch *b)
{
    lf_test_toy_batch(b->tok, b->fx, b->off, N_SEQ, 3, 29);
}

/* One loss (with gradients when `backward`) from the same random stream. */
static void loss_of(lf_model *m, const toy_batch *b, bool backward, lf_loss_parts *p)
{
    lf_rng_seed(&m->rng, 123);
    lf_batch bt = {b->tok, b->fx, b->off, N_SEQ, 0, 0};
    ck_assert_msg(lf_model_loss(m, &bt, NULL, backward, p) == LFLEX_OK, "%s", lflex_last_error());
}

/* A new model of `text`, the batch, and the model's first loss with its gradients. */
static void first_loss_of(const char *text, lf_model *m, toy_batch *b, lf_loss_parts *p)
{
    static lf_model_config cfg;
    lf_test_model_from_yaml(m, &cfg, text);
    make_batch(b);
    loss_of(m, b, true, p);
}

static void first_loss(lf_model *m, toy_batch *b, lf_loss_parts *p)
{
    first_loss_of(yamls[0], m, b, p);
}

START_TEST(test_two_states_share_their_draws)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss(&m, &b, &p);
    const lf_loss_trace *tr = &m.trace;
    ck_assert_int_eq(tr->n_states, 2);
    int differ = 0, masked = 0;
    for (int j = 0; j < N_SEQ; j++) {
        int clean[2] = {0, 0};
        ck_assert(tr->t[j] == tr->t[N_SEQ + j]);
        for (int64_t i = b.off[j]; i < b.off[j + 1]; i++) {
            int32_t s0 = tr->state[0][i], s1 = tr->state[1][i];
            if (b.fx[i])
                ck_assert(s0 == LF_STATE_CLEAN && s1 == LF_STATE_CLEAN);
            ck_assert((s0 == LF_STATE_DROPPED) == (s1 == LF_STATE_DROPPED));
            clean[0] += !b.fx[i] && s0 == LF_STATE_CLEAN;
            clean[1] += !b.fx[i] && s1 == LF_STATE_CLEAN;
            differ += s0 != s1;
            masked += s0 == LF_STATE_MASKED;
        }
        ck_assert_int_eq(clean[0], clean[1]);
    }
    ck_assert_int_gt(masked, 0);
    ck_assert_int_gt(differ, 0); /* the two races differ somewhere */
    ck_assert(p.reg == 0);
    lf_model_destroy(&m);
}
END_TEST

/* With loss.order_pair independent each state has its own time
 * (stratified times: no two equal) and its own insertions. */
START_TEST(test_independent_pair_draws_apart)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss_of(yamls[PAIR_APART], &m, &b, &p);
    const lf_loss_trace *tr = &m.trace;
    ck_assert_int_eq(tr->n_states, 2);
    int dropped_differ = 0;
    for (int j = 0; j < N_SEQ; j++) {
        ck_assert(tr->t[j] != tr->t[N_SEQ + j]);
        for (int64_t i = b.off[j]; i < b.off[j + 1]; i++)
            dropped_differ += (tr->state[0][i] == LF_STATE_DROPPED) != (tr->state[1][i] == LF_STATE_DROPPED);
    }
    ck_assert_int_gt(dropped_differ, 0);
    lf_model_destroy(&m);
}
END_TEST

/* The REINFORCE value: sum over sequences of 1/2 (L_0 - L_1) / B times
 * (log p_0 - log p_1), log p of each state's race at most 0; the same
 * with the pair drawn apart. */
START_TEST(test_reinforce_is_leave_one_out)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss_of(yamls[_i ? PAIR_APART : 0], &m, &b, &p);
    const lf_loss_trace *tr = &m.trace;
    double want = 0;
    for (int j = 0; j < N_SEQ; j++) {
        double lp0 = lf_data(tr->logp[0])[j], lp1 = lf_data(tr->logp[1])[j];
        ck_assert(lp0 <= 0 && lp1 <= 0);
        want += 0.5 * (lf_data(tr->L)[j] - lf_data(tr->L)[N_SEQ + j]) / N_SEQ * (lp0 - lp1);
    }
    ck_assert(want != 0);
    LF_ASSERT_CLOSE(p.reinforce, want, 1e-9, 1e-4);
    lf_model_destroy(&m);
}
END_TEST

/* loss.order_reward next, credited over the whole sequence: the REINFORCE
 * value is sum over sequences of 1/2 (R_0 - R_1) / B (log p_0 - log p_1)
 * plus sum over states of sum over masked q of p_q u_q / (2 B), where
 * u_q is row q's unmasking term times its state's masked count (the
 * traced rows are divided by it: time weight flat, unmask_norm masked),
 * p_q = w_q / (the summed race weights e^l of the sequence's masked tokens),
 * and R_s the state's insertion terms plus its sum of p_q u_q. The
 * generator's loss is the state reward's (test_reinforce_is_leave_one_out
 * relies on the traced L, which stays the generator's). Each token's
 * REINFORCE weight is its sequence's 1/2 (R_0 - R_1) / B. */
START_TEST(test_next_reward_is_leave_one_out)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss_of(yamls[1], &m, &b, &p);
    const lf_loss_trace *tr = &m.trace;
    const int S = 2 * N_SEQ;
    double R[2 * N_SEQ] = {0}, Wm[2 * N_SEQ] = {0}, path = 0;
    int n_masked[2 * N_SEQ] = {0};
    int32_t seq_of[2 * MAX_TOK];
    ck_assert_int_le(tr->n_xt, 2 * MAX_TOK);
    for (int sj = 0; sj < S; sj++)
        for (int32_t r = tr->xt_offsets[sj]; r < (sj + 1 < S ? tr->xt_offsets[sj + 1] : tr->n_xt); r++) {
            seq_of[r] = sj;
            R[sj] += lf_data(tr->ins_rows)[r];
        }
    for (int64_t q = 0; q < tr->n_masked; q++) {
        int32_t r = tr->masked_rows[q];
        n_masked[seq_of[r]]++;
        Wm[seq_of[r]] += exp(lf_data(tr->race_logw)[tr->xt_src[r]]);
    }
    for (int64_t q = 0; q < tr->n_masked; q++) {
        int32_t r = tr->masked_rows[q], sj = seq_of[r];
        double u = lf_data(tr->um_rows)[q] * n_masked[sj];
        double pq = exp(lf_data(tr->race_logw)[tr->xt_src[r]]) / Wm[sj];
        R[sj] += pq * u;
        path += pq * u / (2.0 * N_SEQ);
    }
    double want = path;
    int credited = 0;
    for (int j = 0; j < N_SEQ; j++) {
        double c = 0.5 * (R[j] - R[N_SEQ + j]) / N_SEQ;
        want += c * (lf_data(tr->logp[0])[j] - lf_data(tr->logp[1])[j]);
        for (int32_t i = b.off[j]; i < b.off[j + 1]; i++) /* each token's weight: its sequence's */
            if (!b.fx[i]) {
                LF_ASSERT_CLOSE(lf_data(tr->credit)[i], c, 1e-9, 1e-4);
                credited += c != 0;
            }
    }
    ck_assert(path > 0);
    ck_assert_int_gt(credited, 0);
    LF_ASSERT_CLOSE(p.reinforce, want, 1e-9, 1e-4);
    lf_model_destroy(&m);
}
END_TEST

/* aux.order_weights exp reads the head's score s as the log-weight, the
 * default (softplus) as log softplus(s), aux.order_span c as
 * c tanh((s - m) / c) with m the mean s of the sequence's non-fixed
 * tokens: models of one seed (the same networks) report log-weights
 * related so, computed here in long double. A new network's scores differ
 * by about 1e-3 between tokens, so c = 0.002 puts them where tanh bends. */
START_TEST(test_order_weights_modes)
{
    /* softplus, exp, exp bounded */
    static const char *const texts[3] = {RACE_YAML(""), RACE_YAML("") "aux: {order_weights: exp}\n",
                                         RACE_YAML("") "aux: {order_weights: exp, order_span: 0.002}\n"};
    static lf_model_config cfgs[3];
    lf_model ms[3];
    for (int k = 0; k < 3; k++)
        lf_test_model_from_yaml(&ms[k], &cfgs[k], texts[k]);
    toy_batch b;
    make_batch(&b);
    int checked = 0, bent = 0;
    for (int j = 0; j < N_SEQ; j++) {
        int64_t n = b.off[j + 1] - b.off[j];
        float lw[3][12], *l_sp = lw[0], *l_exp = lw[1], *l_span = lw[2];
        const int32_t *z = b.tok + b.off[j];
        const uint8_t *fx = b.fx + b.off[j];
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(lf_model_query_unmask_log_weights(&ms[k], z, fx, n, lw[k]), LFLEX_OK);
        long double mean = 0;
        int n_nf = 0;
        for (int64_t i = 0; i < n; i++)
            if (!fx[i]) {
                mean += l_exp[i];
                n_nf++;
            }
        mean /= n_nf;
        for (int64_t i = 0; i < n; i++)
            if (!fx[i]) {
                long double s = l_exp[i];
                LF_ASSERT_CLOSE(l_sp[i], (double)logl(log1pl(expl(s))), 1e-6, 1e-5);
                LF_ASSERT_CLOSE(l_span[i], (double)(0.002L * tanhl((s - mean) / 0.002L)), 3e-6, 1e-3);
                ck_assert(fabsf(l_span[i]) < 0.002f);
                bent += fabsl(s - mean) > 0.001L; /* tanh at least 8 % below its argument there */
                checked++;
            }
    }
    ck_assert_int_gt(checked, 10);
    ck_assert_int_gt(bent, 3);
    for (int k = 0; k < 3; k++)
        lf_model_destroy(&ms[k]);
}
END_TEST

START_TEST(test_query_reports_the_training_weights)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss(&m, &b, &p);
    ck_assert_ptr_nonnull(m.trace.race_logw);
    for (int j = 0; j < N_SEQ; j++) {
        int64_t n = b.off[j + 1] - b.off[j];
        float w[12];
        ck_assert_int_eq(lf_model_query_unmask_log_weights(&m, b.tok + b.off[j], b.fx + b.off[j], n, w), LFLEX_OK);
        for (int64_t i = 0; i < n; i++) {
            if (b.fx[b.off[j] + i]) {
                ck_assert(w[i] == -INFINITY);
                continue;
            }
            double want = (double)lf_data(m.trace.race_logw)[b.off[j] + i];
            ck_assert(want < 0); /* log softplus(s), s near the head's initial -4 */
            LF_ASSERT_CLOSE(w[i], want, 1e-7, 1e-5);
        }
    }
    lf_model_destroy(&m);
    static lf_model_config cfg; /* a model without a learned order has no weights to report */
    lf_test_model_from_yaml(&m, &cfg, "vocab: {size: 6}\nschedule: {family: linear}\n");
    float w[3];
    const int32_t z[3] = {LF_N_SPECIAL, LF_N_SPECIAL + 1, LF_EOS};
    const uint8_t fx[3] = {0, 0, 1};
    ck_assert_int_eq(lf_model_query_unmask_log_weights(&m, z, fx, 3, w), LFLEX_EINVAL);
    lf_model_destroy(&m);
}
END_TEST

/* Does the last loss have the same states as `ref`? */
static bool same_states(const lf_model *m, const int32_t *ref0, const int32_t *ref1, int64_t Nz)
{
    return memcmp(m->trace.state[0], ref0, (size_t)Nz * sizeof(int32_t)) == 0 &&
           memcmp(m->trace.state[1], ref1, (size_t)Nz * sizeof(int32_t)) == 0;
}

START_TEST(test_auxiliary_gradient_against_differences)
{
    lf_model m;
    toy_batch b;
    lf_loss_parts p;
    first_loss_of(yamls[_i], &m, &b, &p);
    const int64_t Nz = b.off[N_SEQ];
    int32_t *ref0 = malloc((size_t)Nz * sizeof *ref0), *ref1 = malloc((size_t)Nz * sizeof *ref1);
    ck_assert(ref0 && ref1);
    memcpy(ref0, m.trace.state[0], (size_t)Nz * sizeof *ref0);
    memcpy(ref1, m.trace.state[1], (size_t)Nz * sizeof *ref1);
    double *grad = malloc((size_t)m.params.total * sizeof *grad);
    ck_assert(grad);
    double big = 0;
    for (int64_t i = 0; i < m.params.total; i++) {
        grad[i] = m.params.grad[i];
        big = fmax(big, fabs(grad[i]));
    }
    int checked = 0, aux_moved = 0;
    for (int q = 0; q < m.params.n; q++) {
        const lf_param *pr = m.params.items[q];
        bool aux = strncmp(pr->name, "aux.", 4) == 0;
        ck_assert_msg(strncmp(pr->name, "aux.bin", 7) != 0, "a learned order has no aux.bin (%s)", pr->name);
        if (!aux)
            continue;
        for (int64_t e = 0; e < pr->numel; e += 1 + pr->numel / 5) {
            int64_t at = pr->offset + e;
            lf_real v = m.params.data[at];
            const double h = 1e-2;
            m.params.data[at] = (lf_real)(v + h);
            lf_loss_parts pp, pm;
            loss_of(&m, &b, false, &pp);
            bool kept = same_states(&m, ref0, ref1, Nz);
            m.params.data[at] = (lf_real)(v - h);
            loss_of(&m, &b, false, &pm);
            kept = kept && same_states(&m, ref0, ref1, Nz);
            m.params.data[at] = v;
            if (!kept)
                continue; /* a perturbation reordered a race: no derivative there */
            double fd = (pp.reinforce - pm.reinforce) / (2 * h), an = grad[at];
            ck_assert_msg(fabs(fd - an) <= 0.02 * fabs(an) + 1e-4 * big, "%s[%lld]: analytic %g, differences %g",
                          pr->name, (long long)e, an, fd);
            checked++;
            aux_moved += an != 0;
        }
    }
    ck_assert_int_gt(checked, 10);
    ck_assert_int_gt(aux_moved, 10); /* (some, like the time conditioning of a network that reads no time, have none) */
    free(grad);
    free(ref0);
    free(ref1);
    lf_model_destroy(&m);
}
END_TEST

/* The configurations a learned order cannot run with are refused, naming
 * the key; given states (which carry no race) are refused too. */
START_TEST(test_refused_configurations)
{
    static const struct {
        const char *yaml, *key;
    } bad[] = {
        {"schedule: {family: kumaraswamy}\nloss: {unmask_order: learned}\n", "loss.unmask_order"},
        {"schedule: {family: linear}\nloss: {unmask_order: learned, states: 2}\n", "loss.states"},
        {"schedule: {family: linear}\nloss: {order_reward: next}\n", "loss.order_reward"},
        {"schedule: {family: linear}\naux: {order_weights: exp}\n", "aux.order_weights"},
        {"schedule: {family: linear}\nloss: {unmask_order: learned}\naux: {order_span: 2}\n", "aux.order_span"},
        {"schedule: {family: linear}\nloss: {order_pair: independent}\n", "loss.order_pair"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        static lf_model_config cfg;
        char text[512];
        snprintf(text, sizeof text, "vocab: {size: 6}\n%s", bad[k].yaml);
        ck_assert_int_eq(lf_config_defaults(&lf_model_schema, &cfg), LFLEX_OK);
        ck_assert_int_eq(lf_config_parse(&lf_model_schema, &cfg, sizeof cfg, text, strlen(text), NULL), LFLEX_OK);
        char why[512] = "";
        ck_assert_int_ne(lf_model_check_config(&cfg, cfg.vocab_size, why, sizeof why), LFLEX_OK);
        ck_assert_msg(strstr(why, bad[k].key) != NULL, "%s", why);
    }
    static lf_model_config cfg;
    lf_model m;
    lf_test_model_from_yaml(&m, &cfg, yamls[0]);
    toy_batch b;
    make_batch(&b);
    int32_t state[MAX_TOK];
    double t[N_SEQ];
    for (int i = 0; i < MAX_TOK; i++)
        state[i] = LF_STATE_CLEAN;
    for (int j = 0; j < N_SEQ; j++)
        t[j] = 0.5;
    lf_given_states given = {t, {state, state}};
    lf_batch bt = {b.tok, b.fx, b.off, N_SEQ, 0, 0};
    ck_assert_int_eq(lf_model_loss(&m, &bt, &given, false, NULL), LFLEX_EINVAL);
    lf_model_destroy(&m);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_race");
    TCase *tc = tcase_create("race");
    tcase_add_test(tc, test_two_states_share_their_draws);
    tcase_add_test(tc, test_independent_pair_draws_apart);
    tcase_add_loop_test(tc, test_reinforce_is_leave_one_out, 0, 2);
    tcase_add_test(tc, test_next_reward_is_leave_one_out);
    tcase_add_loop_test(tc, test_auxiliary_gradient_against_differences, 0, N_YAMLS);
    tcase_add_test(tc, test_refused_configurations);
    tcase_add_test(tc, test_query_reports_the_training_weights);
    tcase_add_test(tc, test_order_weights_modes);
    suite_add_tcase(s, tc);
    return s;
}
