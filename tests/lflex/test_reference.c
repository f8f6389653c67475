/* The library's model and objective against the PyTorch reference fixtures
 * in tests/fixtures/ (written by bench/reference/make_fixtures.py, names in
 * tests/fixtures/README.md). For each fixture: the model is created from the
 * config in the file, every parameter is overwritten with the stored
 * weights, lf_model_loss runs on the stored batch, times and states, and
 * every traced tensor, loss part and parameter gradient is compared with
 * the reference values (computed in float64). Each comparison prints its
 * largest absolute and relative difference as a TAP comment.
 *
 * The comparison is itself tested: one weight moved by 1e-3, or one token's
 * state changed, must make it fail.
 *
 * Keys a fixture's config leaves out take the paper's values (paper_values
 * below), not the library's defaults: the first three fixtures were written
 * before those keys existed, and the defaults may change. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"
#include "io/model_schema.h"
#include "io/safetensors.h"
#include "lflex/model.h"
#include "lflex/noise.h"
#include "tests/common/testutil.h"

#ifndef LF_TEST_SOURCE_ROOT
#error "LF_TEST_SOURCE_ROOT (the source tree, for the fixtures) must be defined by the build"
#endif
#define FIXTURE_DIR LF_TEST_SOURCE_ROOT "/tests/fixtures/"

/* Tolerances on max_i |library_i - reference_i| / max_i |reference_i| over
 * a tensor (one scale per tensor, since some entries are near 0). float32
 * rounds at 6e-8; the reference rerun in float32 reaches 9e-7 on values and
 * 1.4e-6 on gradients (tests/fixtures/README.md), so ~5x that allows for
 * another accumulation order and still sees a 1e-3 change of one weight
 * (test_detects_perturbed_weight). */
#define TOL_VALUE 5e-6
#define TOL_GRAD 1e-5

static const char *const fixture_names[] = {
    "ref_kumaraswamy_a1",
    "ref_kumaraswamy_a2_learned",
    "ref_linear",
    "ref_kumaraswamy_fixed",
    "ref_kumaraswamy_early",
    "ref_kumaraswamy_segpos",
    "ref_kumaraswamy_shift",
    "ref_kumaraswamy_trunkgrad",
};
#define N_FIXTURES ((int)(sizeof fixture_names / sizeof fixture_names[0]))


/* ---- recording the comparisons ------------------------------------------- */

/* kinds of tensors, for a per-fixture summary of the largest differences */
enum { K_ORDER, K_XT, K_LAMBDA, K_LOGITS, K_BETA, K_SEQ_LOSS, K_LOGP, K_LOSS, K_GRAD, N_KINDS };
static const char *const kind_names[N_KINDS] = {
    "b_in/b_um", "x_t (exact)", "lambda", "logits", "beta_in/beta_um", "L per sequence",
    "log p(S)", "loss parts", "gradients",
};

typedef struct report {
    const char *fixture;
    bool verbose;             /* one comment per tensor */
    int n_checked, n_failed;
    int n_failed_values;      /* failures outside x_t and gradients */
    char first_failed[160];
    double worst[N_KINDS];    /* largest relative difference per kind */
} report;

static void record(report *r, int kind, const char *name, double abs_diff, double rel_diff, bool ok)
{
    r->n_checked++;
    if (rel_diff > r->worst[kind] || isnan(rel_diff))
        r->worst[kind] = isnan(rel_diff) ? INFINITY : rel_diff;
    if (!ok) {
        if (!r->n_failed)
            snprintf(r->first_failed, sizeof r->first_failed, "%s (relative difference %.3g)", name, rel_diff);
        r->n_failed++;
        if (kind != K_XT && kind != K_GRAD)
            r->n_failed_values++;
    }
    if (r->verbose)
        fprintf(stderr, "# %s %-36s max |diff| %9.3g  relative %9.3g%s\n", r->fixture, name, abs_diff, rel_diff,
                ok ? "" : "  FAILED");
}

/* Largest |got - ref| over n values, relative to the largest |ref| (1 when
 * the reference is all 0). NaN anywhere counts as an infinite difference. */
static void compare(report *r, int kind, const char *name, const double *got, const double *ref, int64_t n)
{
    double ref_max = 0, diff_max = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        ref_max = fmax(ref_max, fabs(ref[i]));
        diff_max = isnan(d) ? INFINITY : fmax(diff_max, d);
    }
    double rel = diff_max / (ref_max > 0 ? ref_max : 1);
    record(r, kind, name, diff_max, rel, rel <= (kind == K_GRAD ? TOL_GRAD : TOL_VALUE));
}

static void compare_scalar(report *r, int kind, const char *name, double got, double ref)
{
    compare(r, kind, name, &got, &ref, 1);
}

/* Integers must agree exactly; the "difference" is the count of mismatches. */
static bool compare_exact(report *r, const char *name, const int32_t *got, int64_t n_got, const int32_t *ref,
                          int64_t n_ref)
{
    int64_t bad = n_got == n_ref ? 0 : (n_got > n_ref ? n_got : n_ref);
    for (int64_t i = 0; n_got == n_ref && i < n_got; i++)
        bad += got[i] != ref[i];
    record(r, K_XT, name, (double)bad, (double)bad, bad == 0);
    return bad == 0;
}

/* ---- reading a fixture ------------------------------------------------------- */

static int64_t entry_numel(const lf_st_entry *e)
{
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= e->shape[d];
    return n;
}

static const lf_st_entry *need(const lf_st_file *f, const char *name)
{
    const lf_st_entry *e = lf_st_find(f, name);
    ck_assert_msg(e != NULL, "the fixture has no tensor %s", name);
    return e;
}

/* A real tensor (F32 or F64) as doubles; the caller frees. */
static double *reals(const lf_st_file *f, const char *name, int64_t expect_numel)
{
    const lf_st_entry *e = need(f, name);
    int64_t n = entry_numel(e);
    ck_assert_msg(e->dtype == LF_ST_F32 || e->dtype == LF_ST_F64, "%s is not real", name);
    ck_assert_msg(expect_numel < 0 || n == expect_numel, "%s has %ld values, not %ld", name, (long)n,
                  (long)expect_numel);
    double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int64_t i = 0; i < n; i++) {
        if (e->dtype == LF_ST_F32) {
            float v;
            memcpy(&v, (const char *)e->data + i * 4, 4);
            out[i] = v;
        } else {
            memcpy(&out[i], (const char *)e->data + i * 8, 8);
        }
    }
    return out;
}

/* An integer tensor (I32, I64 or U8) as int32; the caller frees. */
static int32_t *ints(const lf_st_file *f, const char *name, int64_t *numel)
{
    const lf_st_entry *e = need(f, name);
    int64_t n = entry_numel(e);
    int32_t *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int64_t i = 0; i < n; i++) {
        if (e->dtype == LF_ST_I32) {
            memcpy(&out[i], (const char *)e->data + i * 4, 4);
        } else if (e->dtype == LF_ST_I64) {
            int64_t v;
            memcpy(&v, (const char *)e->data + i * 8, 8);
            ck_assert(v >= INT32_MIN && v <= INT32_MAX);
            out[i] = (int32_t)v;
        } else {
            ck_assert_msg(e->dtype == LF_ST_U8, "%s is not an integer tensor", name);
            out[i] = ((const uint8_t *)e->data)[i];
        }
    }
    if (numel)
        *numel = n;
    return out;
}

static double scalar(const lf_st_file *f, const char *name)
{
    double *v = reals(f, name, 1), x = v[0];
    free(v);
    return x;
}

/* lf_real buffer -> doubles */
static double *widen(const lf_real *src, int64_t n)
{
    double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int64_t i = 0; i < n; i++)
        out[i] = src[i];
    return out;
}

/* ---- one fixture ------------------------------------------------------------- */

/* A change made before the loss, to show that the comparison catches it. */
typedef struct change {
    const char *param;        /* add `by` to entry `index` of this parameter */
    int64_t index;
    double by;
    int flip_seq;             /* >= 0: change the state of the first non-fixed
                               * token of this sequence in state 1 */
} change;

static const change no_change = {NULL, 0, 0, -1};

static lf_param *find_param(lf_model *m, const char *name)
{
    for (int k = 0; k < m->params.n; k++)
        if (!strcmp(m->params.items[k]->name, name))
            return m->params.items[k];
    return NULL;
}

/* Every model parameter is in the file as param.<name> with its shape, and
 * every param.* / grad.* of the file is a model parameter. */
static void load_params(lf_model *m, const lf_st_file *f)
{
    char key[LF_PARAM_NAME_MAX + 8];
    for (int k = 0; k < m->params.n; k++) {
        lf_param *p = m->params.items[k];
        snprintf(key, sizeof key, "param.%s", p->name);
        const lf_st_entry *e = lf_st_find(f, key);
        ck_assert_msg(e != NULL, "model parameter %s is not in the fixture", p->name);
        ck_assert_msg(e->dtype == LF_ST_F32 && e->ndim == p->ndim && e->shape[0] == p->shape[0] &&
                          (p->ndim == 1 || e->shape[1] == p->shape[1]),
                      "%s: shape or dtype differs from the model's", key);
        for (int64_t i = 0; i < p->numel; i++) {
            float v;
            memcpy(&v, (const char *)e->data + i * 4, 4);
            lf_data(&p->t)[i] = (lf_real)v;
        }
    }
    int n_param = 0, n_grad = 0;
    for (size_t i = 0; i < lf_st_count(f); i++) {
        const char *name = lf_st_at(f, i)->name;
        const char *base = !strncmp(name, "param.", 6) ? name + 6 : !strncmp(name, "grad.", 5) ? name + 5 : NULL;
        if (!base)
            continue;
        ck_assert_msg(find_param(m, base) != NULL, "fixture tensor %s is not a parameter of the model", name);
        n_param += name[0] == 'p';
        n_grad += name[0] == 'g';
    }
    ck_assert_int_eq(n_param, m->params.n);
    ck_assert_int_eq(n_grad, m->params.n);
}

static void print_summary(const report *r)
{
    fprintf(stderr, "# %s: %d comparisons, %d failed; largest relative difference per kind:", r->fixture,
            r->n_checked, r->n_failed);
    for (int k = 0; k < N_KINDS; k++)
        fprintf(stderr, "%s %s %.2g", k ? "," : "", kind_names[k], r->worst[k]);
    fprintf(stderr, "\n");
}

static void run_fixture(const char *fixture, const change *chg, report *r)
{
    char path[1024];
    snprintf(path, sizeof path, FIXTURE_DIR "%s.safetensors", fixture);
    lf_st_file *f = NULL;
    int st = lf_st_read_file(&f, path);
    ck_assert_msg(st == LFLEX_OK, "%s: %s", path, lflex_last_error());
    const char *format = lf_st_meta_get(f, "format"), *version = lf_st_meta_get(f, "format_version");
    ck_assert_msg(format && !strcmp(format, "lflex-reference-fixture"), "%s: not a reference fixture", path);
    ck_assert_msg(version && !strcmp(version, "2"), "%s: fixture format version %s, this test reads 2", path,
                  version ? version : "(none)");

    /* the config, in the library's own keys */
    const char *yaml = lf_st_meta_get(f, "config");
    ck_assert_ptr_nonnull(yaml);
    lf_model_config *cfg = calloc(1, sizeof *cfg);
    lf_model *m = calloc(1, sizeof *m);
    ck_assert(cfg && m);
    ck_assert_int_eq(lf_config_defaults(&lf_model_schema, cfg), LFLEX_OK);
    /* fixtures written before a key existed lack it: it holds the value its
     * absence meant (the paper's, bench/reference/lflex_ref.py PAPER_VALUES) */
    ck_assert_int_eq(lf_model_config_absent_values(cfg), LFLEX_OK);
    st = lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, yaml, strlen(yaml), path);
    ck_assert_msg(st == LFLEX_OK, "config: %s", lflex_last_error());
    cfg->threads = 1;
    st = lf_model_create(m, cfg, cfg->vocab_size);
    ck_assert_msg(st == LFLEX_OK, "lf_model_create: %d %s", st, lflex_last_error());
    load_params(m, f);
    if (chg->param) {
        lf_param *p = find_param(m, chg->param);
        ck_assert_msg(p && chg->index < p->numel, "no parameter entry %s[%ld]", chg->param, (long)chg->index);
        lf_data(&p->t)[chg->index] += (lf_real)chg->by;
    }

    /* the batch, its times and states */
    int64_t n_tok, n_off;
    int32_t *tokens = ints(f, "batch.tokens", &n_tok), *offsets = ints(f, "batch.offsets", &n_off);
    int32_t *fixed32 = ints(f, "batch.fixed", NULL);
    const int64_t B = n_off - 1, Nz = n_tok;
    ck_assert_int_eq(offsets[B], Nz);
    uint8_t *fixed = malloc((size_t)Nz);
    ck_assert_ptr_nonnull(fixed);
    for (int64_t i = 0; i < Nz; i++)
        fixed[i] = (uint8_t)fixed32[i];
    double *t = reals(f, "batch.t", B);
    const int n_states = m->learned ? 2 : 1;
    ck_assert_int_eq(lf_st_find(f, "state2") != NULL, n_states == 2);
    int32_t *state[2] = {NULL, NULL};
    for (int s = 0; s < n_states; s++) {
        char key[32];
        snprintf(key, sizeof key, "state%d", s + 1);
        int64_t n;
        state[s] = ints(f, key, &n);
        ck_assert_int_eq(n, Nz);
        for (int64_t i = 0; i < Nz; i++)
            ck_assert(state[s][i] >= LF_STATE_DROPPED && state[s][i] <= LF_STATE_CLEAN &&
                      (!fixed[i] || state[s][i] == LF_STATE_CLEAN));
    }
    if (chg->flip_seq >= 0) {
        int64_t i = offsets[chg->flip_seq];
        while (fixed[i])
            i++;
        ck_assert(i < offsets[chg->flip_seq + 1]);
        state[0][i] = state[0][i] == LF_STATE_MASKED ? LF_STATE_CLEAN : LF_STATE_MASKED;
    }

    lf_batch batch = {tokens, fixed, offsets, B, 0, 0};
    lf_given_states given = {t, {state[0], state[1]}};
    lf_loss_parts parts;
    st = lf_model_loss(m, &batch, &given, true, &parts);
    ck_assert_msg(st == LFLEX_OK, "lf_model_loss: %d %s", st, lflex_last_error());
    const lf_loss_trace *tr = lf_model_last_trace(m);
    ck_assert_int_eq(tr->n_states, n_states);

    /* auxiliary outputs */
    if (m->learned) {
        double *ref = reals(f, "aux.b_in", Nz), *got = widen(lf_data(tr->b_in), Nz);
        compare(r, K_ORDER, "aux.b_in", got, ref, Nz);
        free(ref);
        free(got);
        if (cfg->learn_b_um) {
            ck_assert_ptr_nonnull(tr->b_um);
            ref = reals(f, "aux.b_um", Nz);
            got = widen(lf_data(tr->b_um), Nz);
            compare(r, K_ORDER, "aux.b_um", got, ref, Nz);
            free(ref);
            free(got);
        }
    }

    /* per state: x_t, the map s, lambda, beta_in, logits and beta_um of the
     * masked rows, L and log p(S) */
    const int64_t V = m->vocab - LF_N_SPECIAL;
    int64_t q_base = 0; /* masked rows of earlier states in the trace */
    for (int s = 0; s < n_states; s++) {
        char key[64];
        int64_t row0 = tr->xt_offsets[s * B], n_rows = tr->xt_offsets[(s + 1) * B] - row0, n_ref;
        snprintf(key, sizeof key, "s%d.xt", s + 1);
        int32_t *xt_ref = ints(f, key, &n_ref);
        bool same_xt = compare_exact(r, key, tr->xt + row0, n_rows, xt_ref, n_ref);
        int32_t off_got[64];
        ck_assert(B + 1 <= 64);
        for (int64_t j = 0; j <= B; j++)
            off_got[j] = tr->xt_offsets[s * B + j] - (int32_t)row0;
        snprintf(key, sizeof key, "s%d.xt_offsets", s + 1);
        int32_t *off_ref = ints(f, key, NULL);
        same_xt = compare_exact(r, key, off_got, B + 1, off_ref, B + 1) && same_xt;
        free(off_ref);

        /* the map s is not traced: lf_noise_build_xt on this state */
        int32_t *ids = malloc((size_t)Nz * sizeof(int32_t)), *src = malloc((size_t)Nz * sizeof(int32_t));
        int32_t *gap = malloc((size_t)Nz * sizeof(int32_t)), *mrows = malloc((size_t)Nz * sizeof(int32_t));
        int32_t *xoff = malloc((size_t)(B + 1) * sizeof(int32_t));
        ck_assert(ids && src && gap && mrows && xoff);
        int64_t n_masked, n_built = lf_noise_build_xt(tokens, offsets, B, state[s], LF_MASK, 0, ids, src, xoff,
                                                      gap, mrows, &n_masked);
        /* the fixture's s(k) is the index within the token's own sequence */
        for (int64_t j = 0; j < B; j++)
            for (int64_t k = xoff[j]; k < xoff[j + 1]; k++)
                src[k] -= offsets[j];
        snprintf(key, sizeof key, "s%d.src", s + 1);
        int64_t n_src;
        int32_t *src_ref = ints(f, key, &n_src);
        compare_exact(r, key, src, n_built, src_ref, n_src);
        free(src_ref);

        /* masked rows of this state in the trace, as local rows */
        int64_t M_s = 0;
        while (q_base + M_s < tr->n_masked && tr->masked_rows[q_base + M_s] < row0 + n_rows)
            M_s++;
        if (same_xt) {
            int64_t M_ref = 0;
            for (int64_t k = 0; k < n_ref; k++)
                M_ref += xt_ref[k] == LF_MASK;
            ck_assert_int_eq(M_s, M_ref);

            snprintf(key, sizeof key, "s%d.lambda", s + 1);
            double *ref = reals(f, key, n_rows), *got = widen(lf_data(tr->lambda) + row0, n_rows);
            compare(r, K_LAMBDA, key, got, ref, n_rows);
            free(ref);
            free(got);
            snprintf(key, sizeof key, "s%d.beta_in", s + 1);
            ref = reals(f, key, n_rows);
            got = widen(lf_data(tr->beta_in) + row0, n_rows);
            compare(r, K_BETA, key, got, ref, n_rows);
            free(ref);
            free(got);

            snprintf(key, sizeof key, "s%d.logits", s + 1);
            double *logits_ref = reals(f, key, n_rows * V);
            snprintf(key, sizeof key, "s%d.beta_um", s + 1);
            double *bum_ref = reals(f, key, n_rows);
            double *lg_got = malloc((size_t)(M_s * V + 1) * sizeof(double));
            double *lg_ref = malloc((size_t)(M_s * V + 1) * sizeof(double));
            double *bu_got = malloc((size_t)(M_s + 1) * sizeof(double));
            double *bu_ref = malloc((size_t)(M_s + 1) * sizeof(double));
            ck_assert(lg_got && lg_ref && bu_got && bu_ref);
            for (int64_t q = 0; q < M_s; q++) {
                int64_t row = tr->masked_rows[q_base + q], local = row - row0;
                ck_assert_int_eq(xt_ref[local], LF_MASK);
                for (int64_t v = 0; v < V; v++) {
                    lg_got[q * V + v] = lf_data(tr->logits)[(q_base + q) * V + v];
                    lg_ref[q * V + v] = logits_ref[local * V + v];
                }
                bu_ref[q] = bum_ref[local];
                bu_got[q] = tr->beta_um ? lf_data(tr->beta_um)[q_base + q] : m->b_um;
            }
            snprintf(key, sizeof key, "s%d.logits (masked rows)", s + 1);
            compare(r, K_LOGITS, key, lg_got, lg_ref, M_s * V);
            snprintf(key, sizeof key, "s%d.beta_um (masked rows)%s", s + 1, tr->beta_um ? "" : " const");
            compare(r, K_BETA, key, bu_got, bu_ref, M_s);
            free(logits_ref);
            free(bum_ref);
            free(lg_got);
            free(lg_ref);
            free(bu_got);
            free(bu_ref);
        } else {
            record(r, K_XT, "(x_t differs: per-row comparisons skipped)", 0, 0, true);
        }
        q_base += M_s;
        free(xt_ref);
        free(ids);
        free(src);
        free(gap);
        free(mrows);
        free(xoff);

        snprintf(key, sizeof key, "s%d.L", s + 1);
        double *ref = reals(f, key, B), *got = widen(lf_data(tr->L) + s * B, B);
        compare(r, K_SEQ_LOSS, key, got, ref, B);
        free(ref);
        free(got);
        snprintf(key, sizeof key, "s%d.logp", s + 1);
        ref = reals(f, key, B);
        if (tr->logp[s]) {
            got = widen(lf_data(tr->logp[s]), B);
        } else {
            /* the one-state objective (linear, or constant b_in) has no
             * log p(S); the fixture has it from the state probabilities with
             * the constant shapes (a = b = c = 1 for the linear family) */
            snprintf(key, sizeof key, "s%d.logp (lf_state_log_prob)", s + 1);
            got = calloc((size_t)B, sizeof *got);
            ck_assert_ptr_nonnull(got);
            for (int64_t j = 0; j < B; j++)
                for (int64_t i = offsets[j]; i < offsets[j + 1]; i++)
                    if (!fixed[i])
                        got[j] += lf_state_log_prob((lf_token_state)state[s][i], t[j], m->a, m->b_in, m->b_um,
                                                  NULL, NULL);
        }
        compare(r, K_LOGP, key, got, ref, B);
        free(ref);
        free(got);
    }
    ck_assert_int_eq(q_base, tr->n_masked);

    compare_scalar(r, K_LOSS, "loss.total", parts.total, scalar(f, "loss.total"));
    compare_scalar(r, K_LOSS, "loss.unmask", parts.unmask, scalar(f, "loss.unmask"));
    compare_scalar(r, K_LOSS, "loss.insert", parts.insert, scalar(f, "loss.insert"));
    compare_scalar(r, K_LOSS, "loss.reinforce", parts.reinforce, scalar(f, "loss.reinforce"));
    compare_scalar(r, K_LOSS, "loss.reg", parts.reg, scalar(f, "loss.reg"));

    for (int k = 0; k < m->params.n; k++) {
        const lf_param *p = m->params.items[k];
        char key[LF_PARAM_NAME_MAX + 8];
        snprintf(key, sizeof key, "grad.%s", p->name);
        double *ref = reals(f, key, p->numel), *got = widen(p->t.grad, p->numel);
        compare(r, K_GRAD, key, got, ref, p->numel);
        free(ref);
        free(got);
    }

    for (int s = 0; s < n_states; s++)
        free(state[s]);
    free(t);
    free(fixed);
    free(fixed32);
    free(tokens);
    free(offsets);
    lf_model_destroy(m);
    free(m);
    free(cfg);
    lf_st_free(f);
}

/* ---- tests ----------------------------------------------------------------------- */

START_TEST(test_fixture)
{
    report r = {.fixture = fixture_names[_i], .verbose = true};
    run_fixture(fixture_names[_i], &no_change, &r);
    print_summary(&r);
    ck_assert_msg(r.n_failed == 0, "%s: %d of %d comparisons exceed the tolerance, first %s", r.fixture,
                  r.n_failed, r.n_checked, r.first_failed);
}
END_TEST

/* One weight moved by 1e-3 (about 0.1-1% of a typical weight here) in each
 * network and kind of layer: the forward values, not only the gradients,
 * must show it. */
static const struct {
    int fixture;
    change chg;
} perturbed[] = {
    {0, {"aux.blocks.1.mlp.w2", 5, 1e-3, -1}},
    {0, {"gen.blocks.0.attn.wqkv", 100, 1e-3, -1}},
    {1, {"aux.bum.w1", 17, 1e-3, -1}},
    {1, {"gen.time.w1", 3, 1e-3, -1}},
    {2, {"gen.blocks.1.ln2.scale", 9, 1e-3, -1}},
    {2, {"gen.tok_emb", 70, 1e-3, -1}},
    {3, {"gen.pos_emb", 40, 1e-3, -1}},
    {3, {"gen.blocks.0.attn.wqkv", 100, 1e-3, -1}},
    {4, {"aux.bin.w1", 23, 1e-3, -1}},
    {4, {"gen.blocks.0.ada.w", 7, 1e-3, -1}},
    /* seg_pos rows of 32: row 17 = the last prompt token counted from the
     * prompt's end, row 51 = EOS counted from the sequence's end */
    {5, {"gen.seg_pos", 17 * 32 + 5, 1e-3, -1}},
    {5, {"aux.seg_pos", 51 * 32 + 7, 1e-3, -1}},
};

START_TEST(test_detects_perturbed_weight)
{
    const char *fixture = fixture_names[perturbed[_i].fixture];
    const change *chg = &perturbed[_i].chg;
    report r = {.fixture = fixture};
    run_fixture(fixture, chg, &r);
    fprintf(stderr, "# %s, %s[%ld] + %g: %d of %d comparisons fail (%d of them values), first %s\n", fixture,
            chg->param, (long)chg->index, chg->by, r.n_failed, r.n_checked, r.n_failed_values, r.first_failed);
    ck_assert_msg(r.n_failed_values > 0, "%s: moving %s[%ld] by %g goes unnoticed by the value comparisons",
                  fixture, chg->param, (long)chg->index, chg->by);
}
END_TEST

/* One token's state in state 1 changed (to masked, or from masked to clean):
 * x_t differs, and so must the losses, log p(S) and gradients. */
START_TEST(test_detects_flipped_state)
{
    const char *fixture = fixture_names[_i];
    change chg = {NULL, 0, 0, 1};
    report r = {.fixture = fixture};
    run_fixture(fixture, &chg, &r);
    fprintf(stderr, "# %s, one state of sequence 1 changed: %d of %d comparisons fail (%d of them values)\n",
            fixture, r.n_failed, r.n_checked, r.n_failed_values);
    ck_assert_msg(r.n_failed_values > 0, "%s: a changed state goes unnoticed by the value comparisons", fixture);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_reference");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fixture, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_detects_perturbed_weight, 0, (int)(sizeof perturbed / sizeof perturbed[0]));
    tcase_add_loop_test(tc, test_detects_flipped_state, 0, N_FIXTURES);
    suite_add_tcase(s, tc);
    return s;
}
