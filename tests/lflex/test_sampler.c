/* The tau-leaping sampler: statistical laws of insertions and unmasking
 * under forced rates, invariants of generated sequences, determinism, token
 * selection (top-k, top-p), and rate queries against the training forward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/special.h"
#include "io/model_schema.h"
#include "io/sampler_schema.h"
#include "lf_error.h"
#include "lflex/sampler.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

static void make_model_sized(lf_model *m, const char *extra, int max_len, int vocab)
{
    static lf_model_config cfg;
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: %d}\nvocab: {size: %d}\ntrain: {threads: 1}\n%s",
             max_len, vocab, extra ? extra : "");
    lf_test_model_from_yaml(m, &cfg, yaml);
}

static void make_model(lf_model *m, const char *extra) { make_model_sized(m, extra, 24, 6); }

static lf_sampler_config sampler_cfg(const char *yaml)
{
    lf_sampler_config c;
    memset(&c, 0, sizeof c);
    lf_config_defaults(&lf_sampler_schema, &c);
    if (yaml)
        ck_assert_msg(lf_config_parse(&lf_sampler_schema, &c, sizeof c, yaml, strlen(yaml), NULL) == 0, "%s",
                      lflex_last_error());
    return c;
}

/* n copies of one template */
typedef struct {
    int32_t *tok;
    uint8_t *open;
    int64_t *off;
    int64_t n;
} tmpl_set;

static tmpl_set repeat_template(const int32_t *tok, const uint8_t *open, int64_t len, int64_t n)
{
    tmpl_set t = {malloc((size_t)(n * len) * sizeof(int32_t)), malloc((size_t)(n * len)),
                  malloc((size_t)(n + 1) * sizeof(int64_t)), n};
    for (int64_t j = 0; j < n; j++) {
        memcpy(t.tok + j * len, tok, (size_t)len * sizeof *tok);
        memcpy(t.open + j * len, open, (size_t)len);
        t.off[j] = j * len;
    }
    t.off[n] = n * len;
    return t;
}

static void free_tmpl(tmpl_set *t)
{
    free(t->tok);
    free(t->open);
    free(t->off);
}

typedef struct {
    int32_t *tok;
    int64_t *off;
    float *tin, *tum;
} gen_out;

static gen_out run(lf_sampler *s, const tmpl_set *t)
{
    int64_t cap = t->n * s->cfg.max_len;
    gen_out g = {malloc((size_t)cap * sizeof(int32_t)), malloc((size_t)(t->n + 1) * sizeof(int64_t)),
                 malloc((size_t)cap * sizeof(float)), malloc((size_t)cap * sizeof(float))};
    lf_templates tp = {t->tok, t->open, t->off, t->n};
    lf_generated out = {g.tok, cap, g.off, g.tin, g.tum};
    ck_assert_int_eq(lf_sampler_generate(s, &tp, &out), 0);
    return g;
}

static void free_gen(gen_out *g)
{
    free(g->tok);
    free(g->off);
    free(g->tin);
    free(g->tum);
}

/* The outputs, templates, samplers and model of a test comparing two samplers. */
static void free_two(gen_out *ga, gen_out *gb, tmpl_set *t, lf_sampler *a, lf_sampler *b, lf_model *m)
{
    free_gen(ga);
    free_gen(gb);
    free_tmpl(t);
    lf_sampler_destroy(a);
    lf_sampler_destroy(b);
    lf_model_destroy(m);
}

/* Upper 0.001 quantile of chi-square with df degrees of freedom
 * (Wilson-Hilferty; accurate to about 1% for df >= 3). */
static double chi2_crit(int df)
{
    double z = 3.0902, h = 2.0 / (9.0 * df);
    return df * pow(1 - h + z * sqrt(h), 3);
}

/* chi-square of observed counts against probabilities, bins with expected
 * count below 5 merged into their neighbour; returns the statistic and df */
static double chi2(const double *obs, const double *p, int k, double n, int *df)
{
    double stat = 0, o = 0, e = 0;
    int bins = 0;
    for (int i = 0; i < k; i++) {
        o += obs[i];
        e += p[i] * n;
        if (e >= 5 || i == k - 1) {
            stat += (o - e) * (o - e) / (e > 0 ? e : 1);
            bins++;
            o = e = 0;
        }
    }
    *df = bins - 1;
    return stat;
}

static double w_of(double t) { return t <= 0 ? 0 : -log1p(-t); } /* a = 1 */

/* One stochastic step over [0, T_END] then the closing pass: with
 * `insertion: poisson` the number of MASKs inserted into the single open gap
 * of [EOS] is Poisson(beta_in (w(T_END) - w(0))). Checked for a small and a
 * large mean (the two branches of the Poisson sampler). */
START_TEST(test_insertions_poisson)
{
    lf_model m;
    make_model_sized(&m, "schedule: {family: linear}", 200, 6);
    const double means[2] = {1.7, 45.0};
    for (int c = 0; c < 2; c++) {
        lf_sampler s;
        lf_sampler_config cfg = sampler_cfg("steps: 1\nbatch_size: 512\nseed: 11\ninsertion: poisson");
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        double G = w_of(1 - 1e-5);
        float logits[6] = {0};
        lf_forced_rates fr = {means[c] / G, 0.0, logits};
        s.forced = &fr;
        int32_t eos = LF_EOS;
        uint8_t open = 1;
        tmpl_set t = repeat_template(&eos, &open, 1, 3000);
        gen_out g = run(&s, &t);
        enum { K = 120 };
        double obs[K] = {0}, p[K], lam = means[c], sum = 0, sum2 = 0;
        for (int64_t j = 0; j < t.n; j++) {
            int64_t k = g.off[j + 1] - g.off[j] - 1;
            obs[k < K - 1 ? k : K - 1] += 1;
            sum += (double)k;
            sum2 += (double)k * k;
        }
        double tail = 1;
        for (int k = 0; k < K - 1; k++) {
            int sign;
            p[k] = exp(-lam + k * log(lam) - lgamma_r(k + 1, &sign));
            tail -= p[k];
        }
        p[K - 1] = tail > 0 ? tail : 0;
        int df;
        double stat = chi2(obs, p, K, (double)t.n, &df);
        double mean = sum / (double)t.n, var = sum2 / (double)t.n - mean * mean;
        printf("# insertions, mean %.1f: observed mean %.3f var %.3f, chi2 %.1f on %d df (0.001 critical %.1f)\n",
               lam, mean, var, stat, df, chi2_crit(df));
        ck_assert_msg(stat < chi2_crit(df), "insertion counts do not follow Poisson(%g)", lam);
        free_gen(&g);
        free_tmpl(&t);
        lf_sampler_destroy(&s);
    }
    lf_model_destroy(&m);
}
END_TEST

/* `insertion: binomial` (the default, auto): in one step over
 * [0, T_END] a dropped token arrives with probability 1 - exp(-b_in G)
 * (1 - 1e-5^8 here), and the gap holds mu = beta_in / b_in of them rounded
 * at random, so the count is floor(mu) or floor(mu) + 1 with probabilities
 * 1 - frac(mu) and frac(mu): a model sure of a length gets that length,
 * where Poisson would spread it. Also with the linear family (b_in = 1,
 * arrival probability 1 - 1e-5), and with learned shapes, whose tokens are
 * counted with the mean shape loss.reg_b_in. Greedy decoding rounds to the
 * nearest. */
START_TEST(test_insertions_binomial)
{
    static const char *const schedules[3] = {"schedule: {family: kumaraswamy, learn_b_in: false, b_in: 8}",
                                             "schedule: {family: linear}",
                                             "schedule: {family: kumaraswamy}\nloss: {reg_b_in: 6}"};
    const double b_in[3] = {8, 1, 6}, mu = 4.3; /* learned shapes: counted with loss.reg_b_in */
    for (int c = 0; c < 3; c++) {
        lf_model m;
        make_model_sized(&m, schedules[c], 200, 6);
        lf_sampler s;
        lf_sampler_config cfg = sampler_cfg("steps: 1\nbatch_size: 512\nseed: 5");
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        float logits[6] = {0};
        lf_forced_rates fr = {mu * b_in[c], 0.0, logits};
        s.forced = &fr;
        int32_t eos = LF_EOS;
        uint8_t open = 1;
        tmpl_set t = repeat_template(&eos, &open, 1, 4000);
        gen_out g = run(&s, &t);
        double obs[3] = {0}; /* 4, 5, anything else */
        for (int64_t j = 0; j < t.n; j++) {
            int64_t k = g.off[j + 1] - g.off[j] - 1;
            obs[k == 4 ? 0 : k == 5 ? 1 : 2] += 1;
        }
        double p[2] = {0.7, 0.3};
        int df;
        double stat = chi2(obs, p, 2, (double)t.n, &df);
        printf("# binomial insertions, b_in %g, mu %.1f: %g x 4, %g x 5, %g other; chi2 %.1f on %d df\n", b_in[c], mu,
               obs[0], obs[1], obs[2], stat, df);
        ck_assert_msg(obs[2] <= 2, "binomial insertion gave %g counts outside {4, 5}", obs[2]);
        ck_assert(stat < chi2_crit(df > 0 ? df : 1));
        free_gen(&g);
        lf_sampler_destroy(&s);
        /* greedy decoding rounds to the nearest count: 4.3 -> 4, 4.6 -> 5 */
        const double greedy_mu[2] = {4.3, 4.6};
        for (int v = 0; v < 2; v++) {
            cfg = sampler_cfg("steps: 1\nbatch_size: 512\nseed: 5\ntemperature: 0");
            ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
            lf_forced_rates gr = {greedy_mu[v] * b_in[c], 0.0, logits};
            s.forced = &gr;
            g = run(&s, &t);
            int64_t want = v == 0 ? 4 : 5, other = 0;
            for (int64_t j = 0; j < t.n; j++)
                other += g.off[j + 1] - g.off[j] - 1 != want;
            printf("# greedy binomial insertions, b_in %g, mu %.1f: %ld of %ld not %ld\n", b_in[c], greedy_mu[v],
                   (long)other, (long)t.n, (long)want);
            ck_assert_msg(other <= 2, "greedy decoding of mu = %g gave %ld counts other than %ld", greedy_mu[v],
                          (long)other, (long)want);
            free_gen(&g);
            lf_sampler_destroy(&s);
        }
        free_tmpl(&t);
        lf_model_destroy(&m);
    }
}
END_TEST

enum { FIRST_STEP_SAMPLES = 20000 };

/* The share of FIRST_STEP_SAMPLES samples from [EOS] (its gap open, one dropped token
 * forced into it: beta_in = b) in which no token was inserted by the first
 * step, whose end is t1 (the insertion time of its tokens). */
static double share_without_first_step(lf_sampler *s, double b, double t1)
{
    float logits[6] = {0};
    lf_forced_rates fr = {b, 0.0, logits};
    s->forced = &fr;
    int32_t eos = LF_EOS;
    uint8_t open = 1;
    tmpl_set t = repeat_template(&eos, &open, 1, FIRST_STEP_SAMPLES);
    gen_out g = run(s, &t);
    double none = 0;
    for (int64_t j = 0; j < t.n; j++) {
        bool first = false;
        for (int64_t k = g.off[j]; k < g.off[j + 1]; k++)
            first |= fabs(g.tin[k] - (float)t1) < 1e-6;
        none += !first;
    }
    none /= (double)t.n;
    s->forced = NULL;
    free_gen(&g);
    free_tmpl(&t);
    return none;
}

/* schedule.late_fraction e: with a forced count of one dropped token in
 * the open gap of [EOS], the first of two stochastic steps (over [0, h],
 * h = (1 - 1e-5) / 2) inserts nothing with probability S_e(h) =
 * (1 - e) (1 - h)^b + e (1 - h), written out here: binomial insertions
 * (the token arrives with probability 1 - S_e(h)) and Poisson ones (no
 * arrival: exp(-(log S_e(0) - log S_e(h)))). Tokens of the first step carry
 * the insertion time h. */
START_TEST(test_insertions_late_fraction)
{
    const double b = 8, e = 0.2, h = (1.0 - 1e-5) / 2;
    const double S_h = (1 - e) * pow(1 - h, b) + e * (1 - h);
    static const char *const rules[2] = {"binomial", "poisson"};
    for (int r = 0; r < 2; r++) {
        lf_model m;
        make_model_sized(&m, "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 8, late_fraction: 0.2}", 50,
                         6);
        char yaml[128];
        snprintf(yaml, sizeof yaml, "steps: 2\nbatch_size: 512\nseed: 11\ninsertion: %s", rules[r]);
        lf_sampler s;
        lf_sampler_config cfg = sampler_cfg(yaml);
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        double f = share_without_first_step(&s, b, h); /* beta_in / b_in = one dropped token */
        double z = fabs(f - S_h) / sqrt(S_h * (1 - S_h) / FIRST_STEP_SAMPLES);
        printf("# late fraction 0.2, %s: no first-step insertion %.4f, expected %.4f (%.2f sd; without it %.4f)\n",
               rules[r], f, S_h, z, pow(1 - h, b));
        ck_assert_msg(z < 5, "%s insertions with a late fraction: %g, expected %g", rules[r], f, S_h);
        /* its expected insertion time: (1 - e) / (b + 1) + e / 2 (a = 1) */
        int32_t z2[2] = {LF_N_SPECIAL, LF_EOS};
        uint8_t fx[2] = {0, 1};
        float et[2];
        ck_assert_int_eq(lf_model_query_order(&m, z2, fx, 2, NULL, NULL, et), 0);
        LF_ASSERT_CLOSE(et[0], (1 - e) / (b + 1) + e / 2, 1e-6, 1e-6);
        ck_assert(et[1] == 0.0f);
        lf_sampler_destroy(&s);
        lf_model_destroy(&m);
    }
}
END_TEST

/* grid: events puts step i at M(t_i) = M(1 - 1e-5) i / N, M(t) = (F_in(t) +
 * F_um(t)) / 2, written out here for a = 1: F_in = 1 - (1 - t)^b (b the
 * fixed b_in, or loss.reg_b_in for learned shapes; the late fraction e mixes
 * in e t), F_um = 1 - (1 - t)^b_um. The linear schedule (b = b_um = 1) makes
 * it the uniform grid. The generation uses it: with one dropped token in the
 * open gap of [EOS] (binomial count), the first of 4 steps inserts nothing
 * with probability S(t_1) = (1 - t_1)^32, about 1/2, where the uniform
 * grid's first step (to 1/4) leaves (3/4)^32 = 1e-4. */
static double events_mass(double t, double b, double e, double b_um)
{
    double f_in = (1 - e) * (1 - pow(1 - t, b)) + e * t;
    return 0.5 * (f_in + 1 - pow(1 - t, b_um));
}

START_TEST(test_grid_events)
{
    static const char *const schedules[4] = {
        "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 32}",
        "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 8, b_um: 2, late_fraction: 0.2}",
        "schedule: {family: kumaraswamy}\nloss: {reg_b_in: 6}", "schedule: {family: linear}"};
    const double b[4] = {32, 8, 6, 1}, e[4] = {0, 0.2, 0, 0}, b_um[4] = {1, 2, 1, 1};
    const double T = 1.0 - 1e-5;
    enum { N = 16 };
    for (int c = 0; c < 4; c++) {
        lf_model m;
        make_model(&m, schedules[c]);
        double tu[N + 1], te[N + 1];
        lf_sampler_grid(&m, LF_GRID_UNIFORM, N, tu);
        lf_sampler_grid(&m, LF_GRID_EVENTS, N, te);
        double m_end = events_mass(T, b[c], e[c], b_um[c]);
        ck_assert(te[0] == 0 && te[N] == T && tu[0] == 0);
        LF_ASSERT_CLOSE(tu[N], T, 1e-15, 1e-15);
        for (int i = 1; i <= N; i++) {
            LF_ASSERT_CLOSE(tu[i], T * i / N, 1e-15, 1e-12);
            ck_assert_msg(te[i] > te[i - 1], "events grid not increasing at step %d", i);
            if (i < N)
                LF_ASSERT_CLOSE(events_mass(te[i], b[c], e[c], b_um[c]), m_end * i / N, 1e-12, 1e-9);
            if (c == 3)
                LF_ASSERT_CLOSE(te[i], tu[i], 1e-12, 1e-9);
        }
        printf("# events grid, b %g, e %g, b_um %g: t_1 %.5f, t_%d %.4f (uniform %.4f, %.4f)\n", b[c], e[c], b_um[c],
               te[1], N / 2, te[N / 2], tu[1], tu[N / 2]);
        lf_model_destroy(&m);
    }

    lf_model m;
    make_model_sized(&m, schedules[0], 50, 6);
    double te[5];
    lf_sampler_grid(&m, LF_GRID_EVENTS, 4, te);
    lf_sampler s;
    lf_sampler_config cfg = sampler_cfg("steps: 4\nbatch_size: 512\nseed: 3\ngrid: events");
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    double S1 = pow(1 - te[1], 32), f = share_without_first_step(&s, 32, te[1]); /* one dropped token */
    double z = fabs(f - S1) / sqrt(S1 * (1 - S1) / FIRST_STEP_SAMPLES);
    printf("# events grid, 4 steps, b_in 32: no first-step insertion %.4f, expected %.4f (%.2f sd)\n", f, S1, z);
    ck_assert_msg(z < 5, "events grid: no first-step insertion %g, expected %g", f, S1);
    lf_sampler_destroy(&s);
    lf_model_destroy(&m);
}
END_TEST

/* schedule.outside_in r (b_in 16, b_um 8, r 1/2): lf_model_query_order
 * gives the token d places from the nearer end of its run b_in r^d and
 * b_um r^d (floored at 1) and E[T_in] = 1 / (b + 1) (a = 1); the events grid
 * averages M(t) over the tiers (16, 8), (8, 4), (4, 2), (2, 1), (1, 1),
 * written out here; `insertion: auto` draws Poisson counts: with beta_in 1
 * forced into the open gap of [EOS] and 2 uniform steps, the first
 * (to h) inserts nothing with probability exp(-w(h)) = 1 - h, where the
 * binomial rule (beta / b_in = 1/16 of a token, arriving by h with
 * probability 1 - (1 - h)^16) gives 1 - (1 - (1 - h)^16) / 16. */
START_TEST(test_outside_in)
{
    const char *sch = "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 16, b_um: 8, outside_in: 0.5}\n"
                      "generator: {learn_unmask_rate: true}";
    lf_model m;
    make_model_sized(&m, sch, 50, 6);
    int32_t z[8] = {LF_N_SPECIAL, LF_BOS, LF_N_SPECIAL, LF_N_SPECIAL, LF_N_SPECIAL + 1, LF_N_SPECIAL,
                    LF_N_SPECIAL + 1, LF_EOS};
    uint8_t fx[8] = {1, 1, 0, 0, 0, 0, 0, 1};
    const float want_b[8] = {16, 16, 16, 8, 4, 8, 16, 16}, want_c[8] = {8, 8, 8, 4, 2, 4, 8, 8};
    float b_in[8], b_um[8], et[8];
    ck_assert_int_eq(lf_model_query_order(&m, z, fx, 8, b_in, b_um, et), 0);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(b_in[i] == want_b[i] && b_um[i] == want_c[i], "token %d: shapes %g %g, expected %g %g", i,
                      b_in[i], b_um[i], want_b[i], want_c[i]);
        LF_ASSERT_CLOSE(et[i], fx[i] ? 0.0 : 1.0 / (want_b[i] + 1), 1e-6, 1e-6);
    }

    enum { N = 12 };
    const double tb[5] = {16, 8, 4, 2, 1}, tc[5] = {8, 4, 2, 1, 1}, T = 1.0 - 1e-5;
    double te[N + 1];
    lf_sampler_grid(&m, LF_GRID_EVENTS, N, te);
    double mass[N + 1];
    for (int i = 0; i <= N; i++) {
        double t = i == N ? T : te[i];
        mass[i] = 0;
        for (int d = 0; d < 5; d++)
            mass[i] += 0.5 * (2 - pow(1 - t, tb[d]) - pow(1 - t, tc[d])) / 5;
    }
    ck_assert(te[0] == 0 && te[N] == T);
    for (int i = 1; i < N; i++) {
        ck_assert(te[i] > te[i - 1]);
        LF_ASSERT_CLOSE(mass[i], mass[N] * i / N, 1e-12, 1e-9);
    }
    printf("# outside-in events grid: t_1 %.5f, t_%d %.4f\n", te[1], N / 2, te[N / 2]);
    lf_model_destroy(&m);

    const double h = (1.0 - 1e-5) / 2, want[2] = {1 - h, 1 - (1 - pow(1 - h, 16)) / 16};
    static const char *const rules[2] = {"auto", "binomial"};
    for (int r = 0; r < 2; r++) {
        make_model_sized(&m, sch, 50, 6);
        char yaml[128];
        snprintf(yaml, sizeof yaml, "steps: 2\nbatch_size: 512\nseed: 5\ninsertion: %s", rules[r]);
        lf_sampler s;
        lf_sampler_config cfg = sampler_cfg(yaml);
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        double f = share_without_first_step(&s, 1.0, h);
        double zs = fabs(f - want[r]) / sqrt(want[r] * (1 - want[r]) / FIRST_STEP_SAMPLES);
        printf("# outside-in, insertion %s: no first-step insertion %.4f, expected %.4f (%.2f sd)\n", rules[r], f,
               want[r], zs);
        ck_assert_msg(zs < 5, "outside_in, insertion %s: %g, expected %g", rules[r], f, want[r]);
        lf_sampler_destroy(&s);
        lf_model_destroy(&m);
    }
}
END_TEST

/* A lone MASK with no open gap: it unmasks in stochastic step i with
 * probability exp(-c w(t_i)) - exp(-c w(t_{i+1})) (the exponential law of
 * rate c g_a in the time w), and in the final step otherwise. */
START_TEST(test_unmask_times_exponential)
{
    lf_model m;
    make_model(&m, "schedule: {family: linear}");
    enum { N = 12 };
    lf_sampler s;
    lf_sampler_config cfg = sampler_cfg("steps: 12\nbatch_size: 1000\nseed: 3");
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    float logits[6] = {0, 1, 0, 0, 0, 0};
    const double c = 0.8;
    lf_forced_rates fr = {0.0, c, logits};
    s.forced = &fr;
    int32_t tok[2] = {LF_MASK, LF_EOS};
    uint8_t open[2] = {0, 0};
    tmpl_set t = repeat_template(tok, open, 2, 4000);
    gen_out g = run(&s, &t);
    double dt = (1 - 1e-5) / N, obs[N] = {0}, p[N]; /* the closing pass shares bin N - 1 */
    for (int64_t j = 0; j < t.n; j++) {
        ck_assert_int_eq(g.off[j + 1] - g.off[j], 2);
        ck_assert(g.tok[g.off[j]] >= LF_N_SPECIAL);
        int bin = (int)lround(g.tum[g.off[j]] / dt) - 1;
        ck_assert(bin >= 0 && bin < N);
        obs[bin] += 1;
    }
    for (int i = 0; i < N - 1; i++)
        p[i] = exp(-c * w_of(i * dt)) - exp(-c * w_of((i + 1) * dt));
    p[N - 1] = exp(-c * w_of((N - 1) * dt));
    int df;
    double stat = chi2(obs, p, N, (double)t.n, &df);
    printf("# unmasking times: chi2 %.1f on %d df (0.001 critical %.1f)\n", stat, df, chi2_crit(df));
    ck_assert(stat < chi2_crit(df));
    free_gen(&g);
    free_tmpl(&t);
    lf_sampler_destroy(&s);
    lf_model_destroy(&m);
}
END_TEST

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* confidence left_to_right (right_to_left, the loop's _i = 1) keeps the
 * number of positions that fire in a step (the events' count) and fires the
 * leftmost (rightmost): with closed gaps (no insertion) and the same seed,
 * each sequence gets the unmasking times of the event rule, sorted from left
 * to right (right to left). */
START_TEST(test_end_to_end_order)
{
    bool from_right = _i;
    lf_model m;
    make_model(&m, "schedule: {family: linear}");
    enum { L = 6 };
    lf_sampler a, b;
    lf_sampler_config ca = sampler_cfg("steps: 10\nseed: 12"),
                      cb = sampler_cfg(from_right ? "steps: 10\nseed: 12\nconfidence: right_to_left"
                                                  : "steps: 10\nseed: 12\nconfidence: left_to_right");
    ck_assert_int_eq(lf_sampler_init(&a, &m, &ca), 0);
    ck_assert_int_eq(lf_sampler_init(&b, &m, &cb), 0);
    float logits[6] = {0, 1, 0, 0, 0, 0};
    lf_forced_rates fr = {0.0, 0.7, logits};
    a.forced = &fr;
    b.forced = &fr;
    int32_t tok[L + 1] = {LF_MASK, LF_MASK, LF_MASK, LF_MASK, LF_MASK, LF_MASK, LF_EOS};
    uint8_t open[L + 1] = {0};
    tmpl_set t = repeat_template(tok, open, L + 1, 200);
    gen_out ga = run(&a, &t), gb = run(&b, &t);
    int64_t out_of_order = 0; /* of the event rule: there must be some, or the check below is empty */
    for (int64_t j = 0; j < t.n; j++) {
        ck_assert_int_eq(gb.off[j + 1] - gb.off[j], L + 1);
        float *ta = ga.tum + ga.off[j], *tb = gb.tum + gb.off[j], sorted[L];
        memcpy(sorted, ta, sizeof sorted);
        qsort(sorted, L, sizeof sorted[0], cmp_float);
        for (int i = 1; i < L; i++)
            out_of_order += ta[i] < ta[i - 1];
        for (int i = 0; i < L; i++)
            ck_assert_msg(tb[i] == sorted[from_right ? L - 1 - i : i],
                          "sequence %lld, position %d: unmasked at %g, expected %g", (long long)j, i, (double)tb[i],
                          (double)sorted[from_right ? L - 1 - i : i]);
    }
    ck_assert_int_gt(out_of_order, 0);
    free_two(&ga, &gb, &t, &a, &b, &m);
}
END_TEST

/* top_p keeps the smallest most-likely prefix reaching the mass: with
 * probabilities (0.5, 0.3, 0.15, 0.05, ...) and top_p 0.6 only the first two
 * tokens are drawn, in the ratio 5 : 3. */
START_TEST(test_top_p_set)
{
    lf_model m;
    make_model_sized(&m, "schedule: {family: linear}", 24, 4);
    lf_sampler s;
    lf_sampler_config cfg = sampler_cfg("steps: 2\nbatch_size: 2000\ntop_p: 0.6\nseed: 77");
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    float logits[4] = {(float)log(0.5), (float)log(0.3), (float)log(0.15), (float)log(0.05)};
    lf_forced_rates fr = {0.0, 1e6, logits}; /* every MASK unmasks in the first step */
    s.forced = &fr;
    int32_t tok[2] = {LF_MASK, LF_EOS};
    uint8_t open[2] = {0, 0};
    tmpl_set t = repeat_template(tok, open, 2, 4000);
    gen_out g = run(&s, &t);
    double first = 0;
    for (int64_t j = 0; j < t.n; j++) {
        int32_t v = g.tok[g.off[j]];
        ck_assert_msg(v == LF_N_SPECIAL || v == LF_N_SPECIAL + 1, "token %d outside the top-p set", v);
        first += v == LF_N_SPECIAL;
    }
    double f = first / (double)t.n, expect = 0.5 / 0.8, sd = sqrt(expect * (1 - expect) / (double)t.n);
    printf("# top_p 0.6: first token frequency %.4f, expected %.4f\n", f, expect);
    ck_assert(fabs(f - expect) < 5 * sd);
    free_gen(&g);
    free_tmpl(&t);
    lf_sampler_destroy(&s);
    lf_model_destroy(&m);
}
END_TEST

static bool same_output(const gen_out *a, const gen_out *b, int64_t n)
{
    if (memcmp(a->off, b->off, (size_t)(n + 1) * sizeof *a->off) != 0)
        return false;
    int64_t T = a->off[n];
    return memcmp(a->tok, b->tok, (size_t)T * sizeof *a->tok) == 0 &&
           memcmp(a->tin, b->tin, (size_t)T * sizeof *a->tin) == 0;
}

/* Mixed templates: unconditional, prompt + BOS + EOS, infilling, a MASK. */
static tmpl_set mixed_templates(void)
{
    static const int32_t tok[] = {LF_EOS, 4, 5, LF_BOS, LF_EOS, 6, 7, 8, LF_EOS, 4, LF_MASK, 9, LF_EOS, LF_EOS, 5, LF_EOS};
    static const uint8_t open[] = {1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    static const int64_t off[] = {0, 1, 5, 9, 13, 14, 16};
    tmpl_set t = {malloc(sizeof tok), malloc(sizeof open), malloc(sizeof off), 6};
    memcpy(t.tok, tok, sizeof tok);
    memcpy(t.open, open, sizeof open);
    memcpy(t.off, off, sizeof off);
    return t;
}

/* The candidate and revision tests' setup: a small model with weights
 * perturbed so that scores differ and insertion into open gaps likely
 * (outputs of several lengths), and nt templates: the first half `5 7 BOS
 * MASK MASK MASK EOS` with every gap closed (three tokens to fill), the
 * other half unconditional (EOS, its gap open). */
static tmpl_set scoring_setup(lf_model *m, int64_t nt)
{
    make_model_sized(m, "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 8}", 24, 6);
    lf_rng r;
    lf_rng_seed(&r, 3);
    for (int64_t i = 0; i < m->params.total; i++)
        m->params.data[i] += (lf_real)(0.3 * lf_rng_normal(&r));
    lf_data(m->net.gen_ins.b2)[0] += 5;
    const int32_t tmpl1[7] = {5, 7, LF_BOS, LF_MASK, LF_MASK, LF_MASK, LF_EOS};
    const uint8_t open1[7] = {0};
    tmpl_set t = repeat_template(tmpl1, open1, 7, nt);
    for (int64_t j = nt / 2; j < nt; j++) {
        t.off[j + 1] = t.off[j] + 1;
        t.tok[t.off[j]] = LF_EOS;
        t.open[t.off[j]] = 1;
    }
    return t;
}

/* A candidate's score computed through the rate queries (a separate
 * forward) from window terms at t = 0.95 over the generated positions
 * [g0, g1) of x [n] (vocabulary V <= 10, n <= 16): the sum of log p over
 * the span positions from each one on (fewer at the end) with all of them
 * masked; mode 0, 1, 2: the terms' sum, mean or minimum (no generated
 * positions: 0 for the sum, -inf otherwise). */
static double reference_score(const lf_model *m, const int32_t *x, int64_t n, int64_t g0, int64_t g1, int span,
                              int mode)
{
    enum { V = 10 };
    double sum = 0, lo = INFINITY;
    for (int64_t i = g0; i < g1; i++) {
        int32_t xi[16];
        float probs[16 * V];
        memcpy(xi, x, (size_t)n * sizeof *xi);
        int64_t e = i + span < g1 ? i + span : g1;
        for (int64_t p = i; p < e; p++)
            xi[p] = LF_MASK;
        ck_assert_int_eq(lf_model_query_rates(m, xi, n, 0.95, probs, NULL, NULL), 0);
        double lp = 0;
        for (int64_t p = i; p < e; p++)
            lp += log(probs[p * V + x[p]]);
        sum += lp;
        lo = fmin(lo, lp);
    }
    if (g1 == g0)
        return mode == 0 ? 0 : -INFINITY; /* no tokens: ranked last by the mean and minimum */
    return mode == 0 ? sum : mode == 1 ? sum / (double)(g1 - g0) : lo;
}

/* `candidates: K`: the output for each template is, of the K samples that
 * plain samplers seeded with lf_sampler_candidate_seed(seed, k) generate,
 * the one with the highest score, computed here through the rate queries
 * (a separate forward) from window terms at t = 0.95: with candidate_span 1
 * log p(token) with only that position masked, with span W the sum of log p
 * over the W generated positions from it on (fewer at the end) with all of
 * them masked; over the generated positions: their sum (the
 * pseudo-log-likelihood), mean or minimum by candidate_score. Half the
 * templates have three MASKs to fill (every candidate three tokens), half
 * are unconditional (lengths differ, so the mean can choose otherwise than
 * the sum); an empty candidate scores 0 in the sum and below every other
 * in the mean and minimum. Candidate 0 is the plain sample, and K = 1
 * changes nothing. */
START_TEST(test_candidates_best_score)
{
    enum { K = 4, NT = 40, V = 10 };
    static const char *const modes[3] = {"sum", "mean", "min"};
    lf_model m;
    tmpl_set t = scoring_setup(&m, NT);
    lf_sampler s;
    lf_sampler_config cfg;
    gen_out cand[K];
    static double score[2][3][K][NT]; /* span 1 and 2 */
    for (int k = 0; k < K; k++) {
        char yaml[160];
        snprintf(yaml, sizeof yaml, "steps: 8\ntemperature: 1\nuse_ema: false\nmax_len: 16\nseed: %lld",
                 (long long)lf_sampler_candidate_seed(7, k));
        cfg = sampler_cfg(yaml);
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        cand[k] = run(&s, &t);
        lf_sampler_destroy(&s);
        for (int64_t j = 0; j < NT; j++) {
            const int32_t *x = cand[k].tok + cand[k].off[j];
            int64_t n = cand[k].off[j + 1] - cand[k].off[j];
            /* generated: the three MASKs after prompt 5 7 and BOS, or all but EOS */
            int64_t g0 = j < NT / 2 ? 3 : 0, g1 = n - 1;
            for (int span = 1; span <= 2; span++)
                for (int mode = 0; mode < 3; mode++)
                    score[span - 1][mode][k][j] = reference_score(&m, x, n, g0, g1, span, mode);
        }
    }
    int kept[2][3][NT];
    for (int span = 1; span <= 2; span++)
        for (int mode = 0; mode < 3; mode++) {
            char yaml[200];
            snprintf(yaml, sizeof yaml,
                     "steps: 8\ntemperature: 1\nuse_ema: false\nseed: 7\ncandidates: 4\nmax_len: 16\n"
                     "candidate_score: %s\ncandidate_span: %d",
                     modes[mode], span);
            cfg = sampler_cfg(yaml);
            ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
            gen_out best = run(&s, &t);
            lf_sampler_destroy(&s);
            int distinct = 0;
            for (int64_t j = 0; j < NT; j++) {
                int kb = 0;
                for (int k = 1; k < K; k++)
                    kb = score[span - 1][mode][k][j] > score[span - 1][mode][kb][j] ? k : kb;
                int64_t n = best.off[j + 1] - best.off[j], nb = cand[kb].off[j + 1] - cand[kb].off[j];
                ck_assert_msg(n == nb && !memcmp(best.tok + best.off[j], cand[kb].tok + cand[kb].off[j], (size_t)n * 4),
                              "%s, span %d, template %lld: not the candidate of the highest score (%d)", modes[mode],
                              span, (long long)j, kb);
                kept[span - 1][mode][j] = kb;
                distinct += kb != 0;
            }
            printf("# candidate_score %s, span %d: %d of %d templates kept a candidate other than the first\n",
                   modes[mode], span, distinct, NT);
            ck_assert_int_gt(distinct, 0); /* the choice mattered somewhere */
            free_gen(&best);
        }
    int by_span = 0;
    for (int64_t j = 0; j < NT; j++)
        for (int mode = 0; mode < 3; mode++)
            by_span += kept[1][mode][j] != kept[0][mode][j];
    printf("# span 2 chose otherwise than span 1 for %d template-rules\n", by_span);
    ck_assert_int_gt(by_span, 0); /* the windows change the choice */
    int differ[3] = {0, 0, 0};
    for (int64_t j = 0; j < NT; j++)
        for (int mode = 1; mode < 3; mode++)
            differ[mode] += kept[0][mode][j] != kept[0][0][j];
    printf("# mean and min chose otherwise than sum for %d and %d templates\n", differ[1], differ[2]);
    ck_assert_int_gt(differ[1] + differ[2], 0); /* the modes are not one rule */
    /* candidates: 1 is the plain sampler (candidate 0) */
    cfg = sampler_cfg("steps: 8\ntemperature: 1\nuse_ema: false\nseed: 7\ncandidates: 1\nmax_len: 16");
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    gen_out one = run(&s, &t);
    ck_assert(same_output(&one, &cand[0], NT));
    lf_sampler_destroy(&s);
    free_gen(&one);
    for (int k = 0; k < K; k++)
        free_gen(&cand[k]);
    free_tmpl(&t);
    lf_model_destroy(&m);
}
END_TEST

static int count_progress(void *user, uint64_t done, uint64_t total)
{
    uint64_t *seen = user; /* [0]: calls, [1]: last done, [2]: total, [3]: steps back */
    seen[3] += done < seen[1];
    seen[0]++;
    seen[1] = done;
    seen[2] = total;
    return 0;
}

/* `revise: R`: every round takes out an output's weakest window, generates
 * it anew and keeps the result only when it scores higher. Checked against
 * scores computed through the rate queries (reference_score, mean of span-2
 * windows): no output scores lower than the unrevised sample of the same
 * seed, every output that changed scores higher, some did; templates with
 * closed gaps keep their length and their fixed tokens; template tokens keep
 * times 0, generated ones carry times; the outputs are the same without the
 * time arrays; the progress count rises to its total, (1 + R) generations. */
START_TEST(test_revise_keeps_higher_scores)
{
    enum { NT = 40 };
    lf_model m;
    tmpl_set t = scoring_setup(&m, NT);
    const char *base = "steps: 8\ntemperature: 1\nuse_ema: false\nseed: 7\nmax_len: 16\ncandidates: 2\n"
                       "candidate_span: 2\ncandidate_score: mean\n";
    char yaml[256];
    lf_sampler s;
    snprintf(yaml, sizeof yaml, "%srevise: 0", base);
    lf_sampler_config cfg = sampler_cfg(yaml);
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    gen_out plain = run(&s, &t);
    lf_sampler_destroy(&s);
    snprintf(yaml, sizeof yaml, "%srevise: 3", base);
    cfg = sampler_cfg(yaml);
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    uint64_t seen[4] = {0};
    s.progress = count_progress;
    s.progress_user = seen;
    gen_out rev = run(&s, &t);
    lf_sampler_destroy(&s);
    ck_assert_int_eq(seen[3], 0);
    ck_assert_uint_eq(seen[1], seen[2]);
    ck_assert_uint_eq(seen[2], 4 * 3 * 9); /* 4 generations of 3 chunks (16 templates: batch 32 / 2 candidates) of 9 passes */
    int changed = 0;
    for (int64_t j = 0; j < NT; j++) {
        const int32_t *a = plain.tok + plain.off[j], *b = rev.tok + rev.off[j];
        int64_t na = plain.off[j + 1] - plain.off[j], nb = rev.off[j + 1] - rev.off[j];
        int64_t g0 = j < NT / 2 ? 3 : 0;
        double sa = reference_score(&m, a, na, g0, na - 1, 2, 1), sb = reference_score(&m, b, nb, g0, nb - 1, 2, 1);
        bool same = na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
        ck_assert_msg(same ? sb == sa : sb > sa + 1e-9 * fabs(sa), "template %lld: revised score %g, first %g",
                      (long long)j, sb, sa);
        changed += !same;
        if (j < NT / 2) { /* closed gaps: the length and the prompt stay */
            ck_assert_int_eq(nb, 7);
            ck_assert(b[0] == 5 && b[1] == 7 && b[2] == LF_BOS && b[6] == LF_EOS);
        }
        for (int64_t k = 0; k < nb; k++) {
            const float ti = rev.tin[rev.off[j] + k], tu = rev.tum[rev.off[j] + k];
            bool generated = k >= g0 && k < nb - 1;
            ck_assert_msg(generated ? tu > 0 && (j < NT / 2 ? ti == 0 : ti > 0) : ti == 0 && tu == 0,
                          "template %lld, position %lld: times %g %g", (long long)j, (long long)k, ti, tu);
        }
    }
    printf("# revise 3: %d of %d outputs revised\n", changed, NT);
    ck_assert_int_gt(changed, 0);
    /* without the time arrays: the same outputs */
    ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
    int64_t cap = NT * 16;
    int32_t *tok = malloc((size_t)cap * sizeof *tok);
    int64_t *off = malloc((NT + 1) * sizeof *off);
    lf_templates tp = {t.tok, t.open, t.off, t.n};
    lf_generated out = {tok, cap, off, NULL, NULL};
    ck_assert_int_eq(lf_sampler_generate(&s, &tp, &out), 0);
    ck_assert(off[NT] == rev.off[NT] && !memcmp(tok, rev.tok, (size_t)off[NT] * sizeof *tok));
    lf_sampler_destroy(&s);
    free(tok);
    free(off);
    free_gen(&plain);
    free_gen(&rev);
    free_tmpl(&t);
    lf_model_destroy(&m);
}
END_TEST

/* Same seed, same sequences: one by one or in batches, 1 or 2 threads. */
START_TEST(test_determinism)
{
    lf_model m;
    make_model(&m, NULL);
    tmpl_set t = mixed_templates();
    lf_sampler a, b;
    lf_sampler_config ca = sampler_cfg("steps: 16\nbatch_size: 4\nthreads: 2\nseed: 9");
    lf_sampler_config cb = sampler_cfg("steps: 16\nbatch_size: 1\nthreads: 1\nseed: 9");
    ck_assert_int_eq(lf_sampler_init(&a, &m, &ca), 0);
    ck_assert_int_eq(lf_sampler_init(&b, &m, &cb), 0);
    gen_out ga = run(&a, &t);
    /* one by one with the other sampler */
    gen_out gb = {malloc((size_t)(t.n * 24) * sizeof(int32_t)), malloc((size_t)(t.n + 1) * sizeof(int64_t)),
                  malloc((size_t)(t.n * 24) * sizeof(float)), malloc((size_t)(t.n * 24) * sizeof(float))};
    gb.off[0] = 0;
    for (int64_t j = 0; j < t.n; j++) {
        int64_t off1[2] = {0, t.off[j + 1] - t.off[j]}, o[2];
        lf_templates one = {t.tok + t.off[j], t.open + t.off[j], off1, 1};
        lf_generated out = {gb.tok + gb.off[j], 24, o, gb.tin + gb.off[j], gb.tum + gb.off[j]};
        ck_assert_int_eq(lf_sampler_generate(&b, &one, &out), 0);
        gb.off[j + 1] = gb.off[j] + o[1];
    }
    ck_assert_msg(same_output(&ga, &gb, t.n), "batched (2 threads) and one-by-one (1 thread) outputs differ");
    /* the same seed again gives the same, a new seed something else */
    lf_sampler_destroy(&a);
    ck_assert_int_eq(lf_sampler_init(&a, &m, &ca), 0);
    gen_out gc = run(&a, &t);
    ck_assert(same_output(&ga, &gc, t.n));
    gen_out gd = run(&a, &t); /* the next sequences of the stream */
    ck_assert(!same_output(&ga, &gd, t.n));
    free_gen(&ga);
    free_gen(&gb);
    free_gen(&gc);
    free_gen(&gd);
    free_tmpl(&t);
    lf_sampler_destroy(&a);
    lf_sampler_destroy(&b);
    lf_model_destroy(&m);
}
END_TEST

/* Invariants on a random model, every confidence mode and a tight max_len:
 * template tokens keep their order and values (MASKs become user tokens),
 * nothing is inserted into a closed gap, no MASK, PAD or new reserved token
 * remains, the length never exceeds max_len. */
START_TEST(test_invariants)
{
    lf_model m;
    make_model(&m, NULL);
    tmpl_set t = mixed_templates();
    const char *modes[] = {"none", "top_prob", "prob_diff", "entropy", "left_to_right", "right_to_left"};
    for (int mode = 0; mode < 6; mode++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, "steps: 10\nconfidence: %s\nmax_len: %d\nseed: %d", modes[mode], 8 + 4 * mode,
                 mode);
        lf_sampler s;
        lf_sampler_config cfg = sampler_cfg(yaml);
        ck_assert_int_eq(lf_sampler_init(&s, &m, &cfg), 0);
        gen_out g = run(&s, &t);
        for (int64_t j = 0; j < t.n; j++) {
            const int32_t *o = g.tok + g.off[j];
            int64_t n = g.off[j + 1] - g.off[j], i = t.off[j];
            const float *tin = g.tin + g.off[j];
            ck_assert_int_le(n, cfg.max_len);
            bool pending_insert = false;
            /* template tokens (inserted at time 0) appear in order; inserted
             * ones (time > 0) only in front of a template token with an open
             * gap */
            for (int64_t q = 0; q < n; q++) {
                if (tin[q] > 0) {
                    pending_insert = true;
                    continue;
                }
                ck_assert_msg(i < t.off[j + 1], "more template tokens than in the template");
                if (t.tok[i] == LF_MASK)
                    ck_assert_int_ge(o[q], LF_N_SPECIAL);
                else
                    ck_assert_int_eq(o[q], t.tok[i]);
                ck_assert_msg(!pending_insert || t.open[i], "insertion into a closed gap");
                pending_insert = false;
                i++;
            }
            ck_assert_int_eq(i, t.off[j + 1]);
            ck_assert(!pending_insert);
            for (int64_t q = 0; q < n; q++) {
                ck_assert(o[q] != LF_MASK && o[q] != LF_PAD);
                if (g.tin[g.off[j] + q] > 0) /* inserted: a user token, unmasked after it was inserted */
                    ck_assert(o[q] >= LF_N_SPECIAL && g.tum[g.off[j] + q] >= g.tin[g.off[j] + q]);
            }
        }
        free_gen(&g);
        lf_sampler_destroy(&s);
    }
    free_tmpl(&t);
    lf_model_destroy(&m);
}
END_TEST

/* top_k = 1 is greedy: the same sequences as temperature 0. */
START_TEST(test_top_k_one_is_greedy)
{
    lf_model m;
    make_model(&m, NULL);
    tmpl_set t = mixed_templates();
    lf_sampler a, b;
    lf_sampler_config ca = sampler_cfg("steps: 12\ntop_k: 1\nseed: 4"), cb = sampler_cfg("steps: 12\ntemperature: 0\nseed: 4");
    ck_assert_int_eq(lf_sampler_init(&a, &m, &ca), 0);
    ck_assert_int_eq(lf_sampler_init(&b, &m, &cb), 0);
    gen_out ga = run(&a, &t), gb = run(&b, &t);
    ck_assert(same_output(&ga, &gb, t.n));
    free_two(&ga, &gb, &t, &a, &b, &m);
}
END_TEST

/* The rate query gives the numbers of the training forward on the same
 * partial sequence and time: insert_rate = beta_in g_a(t), the token
 * distribution = softmax of the masked rows' logits. */
START_TEST(test_rates_match_training_forward)
{
    /* 0: linear; 1: learned shapes; 2: fixed b_in 8 with a late fraction
     * 0.3, whose insertion rate is beta_in / 8 times the hazard of
     * (1 - e) F(t; 1, 8) + e t, written out here */
    static const char *const configs[3] = {"schedule: {family: linear}",
                                           "schedule: {a: 2, learn_b_um: true}\ngenerator: {learn_unmask_rate: true}",
                                           "schedule: {learn_b_in: false, b_in: 8, late_fraction: 0.3}"};
    for (int c = 0; c < 3; c++) {
        const bool learned = c == 1;
        lf_model m;
        make_model(&m, configs[c]);
        /* perturb the zero-initialised adaLN weights so every part matters */
        lf_rng r;
        lf_rng_seed(&r, 1);
        for (int64_t i = 0; i < m.params.total; i++)
            m.params.data[i] += (lf_real)(0.05 * lf_rng_normal(&r));
        const int32_t z[6] = {4, 5, 6, 7, 8, LF_EOS};
        const uint8_t fixed[6] = {0, 0, 0, 0, 0, 1};
        const int32_t off[2] = {0, 6};
        const int32_t state[6] = {LF_STATE_CLEAN, LF_STATE_DROPPED, LF_STATE_MASKED, LF_STATE_DROPPED,
                                  LF_STATE_MASKED, LF_STATE_CLEAN};
        const double t = 0.37;
        lf_batch bt = {z, fixed, off, 1, 0, 0};
        lf_given_states gs = {&t, {state, learned ? state : NULL}};
        ck_assert_int_eq(lf_model_loss(&m, &bt, &gs, false, NULL), 0);
        const lf_loss_trace *tr = lf_model_last_trace(&m);
        int64_t n = tr->xt_offsets[1];
        ck_assert_int_eq(n, 4);
        float probs[4 * 10], um[4], ins[4];
        ck_assert_int_eq(lf_model_query_rates(&m, tr->xt, n, t, probs, um, ins), 0);
        double g = lf_base_hazard(t, m.a), g_in = g;
        if (c == 2) {
            const double e = 0.3, S = (1 - e) * pow(1 - t, 8) + e * (1 - t), f = (1 - e) * 8 * pow(1 - t, 7) + e;
            g_in = f / S / 8;
        }
        for (int64_t k = 0; k < n; k++)
            LF_ASSERT_CLOSE(ins[k], lf_data(tr->beta_in)[k] * g_in, 1e-6, 1e-5);
        for (int64_t q = 0; q < tr->n_masked; q++) {
            int64_t row = tr->masked_rows[q];
            if (q < 2) /* the first state's masked rows */
                ck_assert_int_eq(tr->xt[row], LF_MASK);
            if (row >= n)
                continue;
            const lf_real *lg = lf_data(tr->logits) + q * 6;
            double mx = lg[0], sum = 0;
            for (int v = 1; v < 6; v++)
                mx = lg[v] > mx ? lg[v] : mx;
            for (int v = 0; v < 6; v++)
                sum += exp(lg[v] - mx);
            for (int v = 0; v < 6; v++)
                LF_ASSERT_CLOSE(probs[row * 10 + LF_N_SPECIAL + v], exp(lg[v] - mx) / sum, 1e-6, 1e-5);
            double bum = tr->beta_um ? lf_data(tr->beta_um)[q] : 1.0;
            LF_ASSERT_CLOSE(um[row], bum * g, 1e-6, 1e-5);
        }
        lf_model_destroy(&m);
    }
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_insertions_poisson);
    tcase_add_test(tc, test_insertions_binomial);
    tcase_add_test(tc, test_insertions_late_fraction);
    tcase_add_test(tc, test_grid_events);
    tcase_add_test(tc, test_outside_in);
    tcase_add_test(tc, test_unmask_times_exponential);
    tcase_add_loop_test(tc, test_end_to_end_order, 0, 2);
    tcase_add_test(tc, test_top_p_set);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_candidates_best_score);
    tcase_add_test(tc, test_revise_keeps_higher_scores);
    tcase_add_test(tc, test_invariants);
    tcase_add_test(tc, test_top_k_one_is_greedy);
    tcase_add_test(tc, test_rates_match_training_forward);
    suite_add_tcase(s, tc);
    return s;
}
