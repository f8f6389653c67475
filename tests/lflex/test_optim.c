/* The optimiser against a plain double-precision re-implementation: AdamW
 * with bias correction and decoupled decay on the decay group only, global
 * norm clipping, the EMA with its warm-up, the learning-rate schedules, and
 * a non-finite step that leaves everything untouched.
 *
 * The gradients are written straight into the parameter buffer (no loss is
 * evaluated), so the check isolates lf_model_apply_step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model_schema.h"
#include "lf_error.h"
#include "lflex/model.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

static void make_model(lf_model *m, lf_model_config *cfg, const char *train)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 8}\n"
             "schedule: {family: kumaraswamy}\nvocab: {size: 5}\ntrain: %s\n", train);
    lf_test_model_from_yaml(m, cfg, yaml);
}

/* The reference state, in double. */
typedef struct {
    int64_t n;
    double *w, *m, *v, *ema;
    unsigned char *decay;
} ref_state;

static void ref_init(ref_state *r, const lf_model *m)
{
    const lf_params *P = &m->params;
    r->n = P->total;
    r->w = calloc((size_t)r->n, sizeof(double));
    r->m = calloc((size_t)r->n, sizeof(double));
    r->v = calloc((size_t)r->n, sizeof(double));
    r->ema = calloc((size_t)r->n, sizeof(double));
    r->decay = calloc((size_t)r->n, 1);
    ck_assert(r->w && r->m && r->v && r->ema && r->decay);
    for (int64_t i = 0; i < r->n; i++)
        r->w[i] = r->ema[i] = P->data[i];
    for (int64_t k = 0; k < P->n; k++)
        memset(r->decay + P->items[k]->offset, P->items[k]->decay ? 1 : 0, (size_t)P->items[k]->numel);
}

static void ref_free(ref_state *r)
{
    free(r->w);
    free(r->m);
    free(r->v);
    free(r->ema);
    free(r->decay);
}

/* One AdamW step written from the formulas (not from optim.c). */
static void ref_step(ref_state *r, const lf_model_config *c, const float *g, uint64_t step)
{
    double ss = 0;
    for (int64_t i = 0; i < r->n; i++)
        ss += (double)g[i] * g[i];
    double norm = sqrt(ss), scale = (c->clip > 0 && norm > c->clip) ? c->clip / norm : 1;
    double lr;
    if (step <= (uint64_t)c->warmup)
        lr = c->lr * (double)step / (double)c->warmup;
    else
        lr = c->lr;
    double ema_d = fmin(c->ema, (1.0 + (double)step) / (10.0 + (double)step));
    for (int64_t i = 0; i < r->n; i++) {
        double gi = g[i] * scale;
        r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * gi;
        r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * gi * gi;
        double mh = r->m[i] / (1 - pow(c->beta1, (double)step)), vh = r->v[i] / (1 - pow(c->beta2, (double)step));
        if (r->decay[i])
            r->w[i] -= lr * c->weight_decay * r->w[i];
        r->w[i] -= lr * mh / (sqrt(vh) + c->adam_eps);
        r->ema[i] = ema_d * r->ema[i] + (1 - ema_d) * r->w[i];
    }
}

START_TEST(test_adamw_against_reference)
{
    static lf_model_config cfg;
    lf_model m;
    /* a large weight decay makes the decay-group split visible */
    make_model(&m, &cfg, "{lr: 0.01, warmup: 2, weight_decay: 0.5, clip: 1.0, ema: 0.9, threads: 2}");
    ref_state r;
    ref_init(&r, &m);
    lf_test_rng rng = {11};
    int n_decay = 0;
    for (int64_t i = 0; i < r.n; i++)
        n_decay += r.decay[i];
    ck_assert_msg(n_decay > 0 && n_decay < r.n, "both decay groups present (%d of %ld)", n_decay, (long)r.n);
    double max_w = 0, max_ema = 0, max_mom = 0, scale_mom = 0;
    for (uint64_t s = 1; s <= 6; s++) {
        /* steps 1, 3 and 5 have a norm far above the clip, the others below */
        double amp = (s % 2) ? 1.0 : 1e-3 / sqrt((double)r.n);
        for (int64_t i = 0; i < r.n; i++)
            m.params.grad[i] = (float)(amp * (2 * lf_test_uniform(&rng) - 1));
        double gn, lr;
        ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_OK);
        double want_lr = s <= 2 ? 0.01 * (double)s / 2 : 0.01;
        ck_assert_msg(fabs(lr - want_lr) < 1e-15, "step %d lr %g, want %g", (int)s, lr, want_lr);
        ref_step(&r, &cfg, m.params.grad, s);
        for (int64_t i = 0; i < r.n; i++) {
            max_w = fmax(max_w, fabs(m.params.data[i] - r.w[i]));
            max_ema = fmax(max_ema, fabs(m.ema[i] - r.ema[i]));
            max_mom = fmax(max_mom, fabs(m.adam_m[i] - r.m[i]));
            scale_mom = fmax(scale_mom, fabs(r.m[i]));
        }
    }
    printf("adamw: %ld weights, 6 steps: max |w - ref| %.2e, max |ema - ref| %.2e, max |m - ref| %.2e of %.2e\n",
           (long)r.n, max_w, max_ema, max_mom, scale_mom);
    ck_assert_msg(max_w < 2e-6, "weights differ from the reference by %g", max_w);
    ck_assert_msg(max_ema < 2e-6, "EMA differs from the reference by %g", max_ema);
    ck_assert_msg(max_mom < 1e-6 * scale_mom, "moments differ from the reference by %g (largest %g)", max_mom,
                  scale_mom);
    ck_assert_int_eq((int)m.step, 6);
    ref_free(&r);
    lf_model_destroy(&m);
}
END_TEST

START_TEST(test_ema_warmup)
{
    static lf_model_config cfg;
    lf_config_defaults(&lf_model_schema, &cfg);
    cfg.ema = 0.999;
    /* (1+s)/(10+s): 2/11 at step 1, 0.9 at 80, reaches 0.999 at step 8990 */
    ck_assert(fabs(lf_model_ema_decay(&cfg, 1) - 2.0 / 11) < 1e-15);
    ck_assert(fabs(lf_model_ema_decay(&cfg, 80) - 0.9) < 1e-15);
    ck_assert(lf_model_ema_decay(&cfg, 8989) < 0.999);
    ck_assert(fabs(lf_model_ema_decay(&cfg, 8991) - 0.999) < 1e-15);
    ck_assert(fabs(lf_model_ema_decay(&cfg, 1000000) - 0.999) < 1e-15);
    /* after 1000 steps the initial weights' share of the average is the
     * product of the decays, prod (1+s)/(10+s) = 10!/(1002*...*1010), about
     * 4e-21, while a constant 0.999 would leave 0.999^1000 = 37 % of them */
    double share = 1;
    for (uint64_t s = 1; s <= 1000; s++)
        share *= lf_model_ema_decay(&cfg, s);
    ck_assert_msg(share < 1e-20, "initial weights keep %g of the EMA after 1000 steps", share);
}
END_TEST

START_TEST(test_lr_schedules)
{
    static lf_model_config cfg;
    lf_config_defaults(&lf_model_schema, &cfg);
    cfg.lr = 2e-3;
    cfg.warmup = 10;
    cfg.lr_schedule = LF_LR_CONSTANT;
    ck_assert(fabs(lf_model_lr_at(&cfg, 5) - 1e-3) < 1e-15);
    ck_assert(fabs(lf_model_lr_at(&cfg, 10) - 2e-3) < 1e-15);
    ck_assert(fabs(lf_model_lr_at(&cfg, 12345) - 2e-3) < 1e-15);
    cfg.lr_schedule = LF_LR_COSINE;
    cfg.total_steps = 110;
    cfg.min_lr_ratio = 0.1;
    ck_assert(fabs(lf_model_lr_at(&cfg, 10) - 2e-3) < 1e-15);
    ck_assert(fabs(lf_model_lr_at(&cfg, 60) - 2e-3 * 0.55) < 1e-15); /* half-way: mean of the ends */
    ck_assert(fabs(lf_model_lr_at(&cfg, 110) - 2e-4) < 1e-15);
    ck_assert(fabs(lf_model_lr_at(&cfg, 500) - 2e-4) < 1e-15);
    /* monotone between the ends */
    for (uint64_t s = 11; s <= 110; s++)
        ck_assert(lf_model_lr_at(&cfg, s) <= lf_model_lr_at(&cfg, s - 1) + 1e-18);
}
END_TEST

START_TEST(test_nonfinite_step_changes_nothing)
{
    static lf_model_config cfg;
    lf_model m;
    make_model(&m, &cfg, "{ema: 0.9}");
    size_t bytes = (size_t)m.params.total * sizeof(lf_real);
    lf_real *w = malloc(bytes), *e = malloc(bytes);
    ck_assert(w && e);
    for (int64_t i = 0; i < m.params.total; i++)
        m.params.grad[i] = 0.1f;
    double gn, lr;
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_OK);
    memcpy(w, m.params.data, bytes);
    memcpy(e, m.ema, bytes);
    m.params.grad[m.params.total / 2] = NAN;
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_ENUMERIC);
    m.params.grad[m.params.total / 2] = 0.1f;
    ck_assert_int_eq(lf_model_apply_step(&m, INFINITY, &gn, &lr), LFLEX_ENUMERIC);
    ck_assert(memcmp(w, m.params.data, bytes) == 0);
    ck_assert(memcmp(e, m.ema, bytes) == 0);
    ck_assert_int_eq((int)m.step, 1);
    free(w);
    free(e);
    lf_model_destroy(&m);
}
END_TEST

/* A snapshot of everything a step may change. */
typedef struct {
    size_t bytes;
    lf_real *w, *m, *v, *ema;
    uint64_t step;
} snapshot;

static void snap(snapshot *s, const lf_model *m)
{
    s->bytes = (size_t)m->params.total * sizeof(lf_real);
    const lf_real *src[4] = {m->params.data, m->adam_m, m->adam_v, m->ema};
    lf_real **dst[4] = {&s->w, &s->m, &s->v, &s->ema};
    for (int k = 0; k < 4; k++) {
        *dst[k] = malloc(s->bytes);
        ck_assert_ptr_nonnull(*dst[k]);
        memcpy(*dst[k], src[k], s->bytes);
    }
    s->step = m->step;
}

static void assert_unchanged(snapshot *s, const lf_model *m)
{
    ck_assert(memcmp(s->w, m->params.data, s->bytes) == 0);
    ck_assert(memcmp(s->m, m->adam_m, s->bytes) == 0);
    ck_assert(memcmp(s->v, m->adam_v, s->bytes) == 0);
    ck_assert(memcmp(s->ema, m->ema, s->bytes) == 0);
    ck_assert_uint_eq(m->step, s->step);
    free(s->w);
    free(s->m);
    free(s->v);
    free(s->ema);
}

static bool all_finite(const lf_model *m)
{
    for (int64_t i = 0; i < m->params.total; i++)
        if (!isfinite(m->params.data[i]) || !isfinite(m->adam_m[i]) || !isfinite(m->adam_v[i]) ||
            !isfinite(m->ema[i]))
            return false;
    return true;
}

/* Finite loss and gradients do not make a step safe: a step count at its
 * end (the bias corrections 1 - beta^0 are 0 after 2^64 - 1 wraps), extreme
 * moments or an unclipped huge gradient overflow the update. The step is
 * then refused whole, with a message; it never returns LFLEX_OK with a
 * non-finite weight or moment. */
START_TEST(test_step_never_leaves_nonfinite_state)
{
    static lf_model_config cfg;
    lf_model m;
    make_model(&m, &cfg, "{ema: 0.9, clip: 0}");
    double gn, lr;
    for (int64_t i = 0; i < m.params.total; i++)
        m.params.grad[i] = 0.1f;
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_OK);
    const lf_param *q = m.params.items[m.params.n - 1];
    int64_t k = q->offset + q->numel - 1; /* the last element of the last parameter */
    snapshot s;

    /* the step counter at its end */
    const uint64_t counts[] = {UINT64_MAX, LF_STEP_MAX};
    for (int c = 0; c < 2; c++) {
        m.step = counts[c];
        snap(&s, &m);
        ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_ESTATE);
        ck_assert_msg(strstr(lflex_last_error(), "the step was not applied"), "%s", lflex_last_error());
        assert_unchanged(&s, &m);
    }
    m.step = LF_STEP_MAX - 1; /* the last step that can be taken */
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_OK);
    ck_assert(all_finite(&m));
    m.step = 1;

    /* a first moment far beyond its second: the update is -inf */
    m.adam_m[k] = 1e38f;
    m.adam_v[k] = 0;
    snap(&s, &m);
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_ENUMERIC);
    ck_assert_msg(strstr(lflex_last_error(), q->name), "'%s' does not name %s", lflex_last_error(), q->name);
    assert_unchanged(&s, &m);
    m.adam_m[k] = 0;

    /* a gradient whose square overflows a float (no clipping) */
    m.params.grad[k] = 1e30f;
    snap(&s, &m);
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_ENUMERIC);
    ck_assert(isfinite(gn));
    ck_assert_msg(strstr(lflex_last_error(), q->name), "'%s' does not name %s", lflex_last_error(), q->name);
    assert_unchanged(&s, &m);

    /* and with the gradient back to normal, steps go on */
    m.params.grad[k] = 0.1f;
    ck_assert_int_eq(lf_model_apply_step(&m, 1.0, &gn, &lr), LFLEX_OK);
    ck_assert(all_finite(&m));
    ck_assert_uint_eq(m.step, 2);
    lf_model_destroy(&m);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_adamw_against_reference);
    tcase_add_test(tc, test_ema_warmup);
    tcase_add_test(tc, test_lr_schedules);
    tcase_add_test(tc, test_nonfinite_step_changes_nothing);
    tcase_add_test(tc, test_step_never_leaves_nonfinite_state);
    suite_add_tcase(s, tc);
    return s;
}
