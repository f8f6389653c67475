/* Noising (lib/lflex/noise.c) against independent computations:
 * lf_noise_build_xt on hand-built and random batches against a brute force
 * written here (each dropped token's gap found by scanning right to the next
 * present token, each Lambda_k by scanning left through gap k), and
 * lf_noise_draw_states against the state probabilities
 * exp(lf_state_log_prob(...)) by Monte-Carlo frequencies; the training times
 * of lf_model_loss against their stratification and the distribution
 * function 1 - (1 - t)^k of loss.time_shape k; the race of a learned
 * unmasking order against the Plackett-Luce probabilities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lflex/model.h"
#include "lflex/noise.h"
#include "lflex/sched_ops.h"
#include "tests/common/test_model.h"
#include "tests/common/testutil.h"

enum { D = LF_STATE_DROPPED, M = LF_STATE_MASKED, C = LF_STATE_CLEAN };

#define SENTINEL (-77)

/* ---- brute force of x_t ------------------------------------------------------ */

typedef struct xt_ref {
    int32_t ids[256], src[256], offsets[64], gap_row[256], masked[256];
    double lambda[256];
    int64_t n_rows, n_masked;
} xt_ref;

/* x_t of a batch from the paper's definitions, one token at a
 * time: row of a present token = row_base + present tokens before it; a
 * dropped token belongs to the gap left of the next present token of its
 * sequence; Lambda_k = sum of b over the dropped tokens directly left of
 * row k. */
static void brute_force_xt(const int32_t *tokens, const int32_t *offsets, int64_t n_seq, const int32_t *state,
                           const double *b, int64_t row_base, xt_ref *out)
{
    int64_t Nz = offsets[n_seq], rows = 0;
    int32_t row_of[256];
    ck_assert(Nz <= 256 && n_seq < 64);
    out->n_masked = 0;
    for (int64_t j = 0; j < n_seq; j++) {
        out->offsets[j] = (int32_t)(row_base + rows);
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            row_of[i] = -1;
            if (state[i] == D)
                continue;
            row_of[i] = (int32_t)(row_base + rows);
            out->ids[rows] = state[i] == M ? LF_MASK : tokens[i];
            out->src[rows] = (int32_t)i;
            if (state[i] == M)
                out->masked[out->n_masked++] = (int32_t)(row_base + rows);
            rows++;
        }
    }
    out->offsets[n_seq] = (int32_t)(row_base + rows);
    out->n_rows = rows;
    for (int64_t j = 0; j < n_seq; j++)
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            out->gap_row[i] = -1;
            if (state[i] != D)
                continue;
            for (int64_t r = i + 1; r < offsets[j + 1]; r++)
                if (state[r] != D) {
                    out->gap_row[i] = row_of[r];
                    break;
                }
        }
    for (int64_t j = 0; j < n_seq; j++)
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            if (state[i] == D)
                continue;
            double lam = 0;
            for (int64_t l = i - 1; l >= offsets[j] && state[l] == D; l--)
                lam += b[l];
            out->lambda[row_of[i] - row_base] = lam;
        }
}

/* Run lf_noise_build_xt and compare everything with the brute force. */
static void check_build_xt(const int32_t *tokens, const int32_t *offsets, int64_t n_seq, const int32_t *state,
                           const double *b, int64_t row_base)
{
    int64_t Nz = offsets[n_seq];
    int32_t ids[256 + 1], src[256 + 1], off[64], gap[256], masked[256 + 1];
    for (int i = 0; i <= 256; i++)
        ids[i] = src[i] = masked[i] = SENTINEL;
    int64_t n_masked = -1;
    int64_t n = lf_noise_build_xt(tokens, offsets, n_seq, state, LF_MASK, row_base, ids, src, off, gap, masked,
                                  &n_masked);
    xt_ref *ref = malloc(sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    brute_force_xt(tokens, offsets, n_seq, state, b, row_base, ref);

    ck_assert_int_eq(n, ref->n_rows);
    ck_assert_int_eq(n_masked, ref->n_masked);
    for (int64_t k = 0; k < n; k++) {
        ck_assert_msg(ids[k] == ref->ids[k], "row %ld: id %d, expected %d", (long)k, ids[k], ref->ids[k]);
        ck_assert_msg(src[k] == ref->src[k], "row %ld: src %d, expected %d", (long)k, src[k], ref->src[k]);
    }
    ck_assert_int_eq(ids[n], SENTINEL); /* nothing written past the rows */
    ck_assert_int_eq(src[n], SENTINEL);
    for (int64_t j = 0; j <= n_seq; j++)
        ck_assert_msg(off[j] == ref->offsets[j], "offset %ld: %d, expected %d", (long)j, off[j], ref->offsets[j]);
    for (int64_t q = 0; q < n_masked; q++)
        ck_assert_int_eq(masked[q], ref->masked[q]);
    ck_assert_int_eq(masked[n_masked], SENTINEL);
    for (int64_t i = 0; i < Nz; i++)
        ck_assert_msg(gap[i] == ref->gap_row[i], "token %ld (state %d): gap row %d, expected %d", (long)i, state[i],
                      gap[i], ref->gap_row[i]);
    /* Lambda as the objective forms it from gap_row (a scatter-add of b)
     * against the scan of each gap */
    double lam[256] = {0};
    for (int64_t i = 0; i < Nz; i++)
        if (gap[i] >= 0) {
            ck_assert(gap[i] >= row_base && gap[i] < row_base + n);
            lam[gap[i] - row_base] += b[i];
        }
    for (int64_t k = 0; k < n; k++)
        LF_ASSERT_CLOSE(lam[k], ref->lambda[k], 0, 1e-14);
    free(ref);
}

/* Hand-built: runs of dropped tokens, a conditional sequence (prompt and BOS
 * fixed), a sequence with every token dropped, one with none dropped, one
 * that is only EOS, a prompt followed by a dropped target. */
START_TEST(test_build_xt_hand_built)
{
    enum { BOS = LF_BOS, EOS = LF_EOS };
    static const int32_t tokens[] = {
        5,  6,  7, 8, 9, 10, 11, EOS, /* 0: D D M C D D D | EOS */
        12, 13, BOS, 5, 6, 7, EOS,    /* 1: prompt, BOS, D M D | EOS */
        4,  5,  6, EOS,               /* 2: all dropped */
        7,  8,  9, EOS,               /* 3: none dropped */
        EOS,                          /* 4: only EOS */
        9,  BOS, 4, 4, EOS,           /* 5: prompt, BOS, D D | EOS */
    };
    static const int32_t state[] = {
        D, D, M, C, D, D, D, C,
        C, C, C, D, M, D, C,
        D, D, D, C,
        M, C, M, C,
        C,
        C, C, D, D, C,
    };
    static const int32_t offsets[] = {0, 8, 15, 19, 23, 24, 29};
    const int64_t B = 6, Nz = offsets[6];
    ck_assert_int_eq(Nz, (int64_t)(sizeof tokens / sizeof tokens[0]));
    ck_assert_int_eq(Nz, (int64_t)(sizeof state / sizeof state[0]));
    double b[64];
    for (int64_t i = 0; i < Nz; i++)
        b[i] = 1.0 + 0.125 * (double)i; /* distinct, so a wrong gap shows in Lambda */
    check_build_xt(tokens, offsets, B, state, b, 0);
    check_build_xt(tokens, offsets, B, state, b, 37); /* appended after 37 rows of another state */

    /* the expected layout of sequence 0 spelt out, independently of both */
    int32_t ids[64], src[64], off[8], gap[64], masked[64];
    int64_t n_masked;
    int64_t n = lf_noise_build_xt(tokens, offsets, B, state, LF_MASK, 0, ids, src, off, gap, masked, &n_masked);
    ck_assert_int_eq(off[1], 3);
    ck_assert(ids[0] == LF_MASK && ids[1] == 8 && ids[2] == EOS);
    ck_assert(gap[0] == 0 && gap[1] == 0 && gap[4] == 2 && gap[5] == 2 && gap[6] == 2 && gap[2] == -1);
    /* sequence 2: x_t = [EOS], every token in its gap */
    ck_assert(gap[15] == off[2] && gap[16] == off[2] && gap[17] == off[2] && off[3] == off[2] + 1);
    /* sequence 4: one row, EOS */
    ck_assert(off[5] == off[4] + 1 && ids[off[4]] == EOS && src[off[4]] == 23);
    ck_assert_int_eq(n, 3 + 5 + 1 + 4 + 1 + 3);
    ck_assert_int_eq(n_masked, 1 + 1 + 2);
}
END_TEST

/* Random batches: prompts with BOS, targets in random states (some batches
 * mostly dropped, some mostly present), EOS fixed. */
START_TEST(test_build_xt_random)
{
    lf_test_rng rng = {20240611};
    for (int trial = 0; trial < 300; trial++) {
        int32_t tokens[256], state[256], offsets[9];
        double b[256];
        int64_t B = lf_test_int(&rng, 1, 8), Nz = 0;
        double p_drop = lf_test_uniform(&rng), p_mask = lf_test_uniform(&rng) * (1 - p_drop);
        offsets[0] = 0;
        for (int64_t j = 0; j < B; j++) {
            int64_t n_prompt = lf_test_int(&rng, 0, 3), n_target = lf_test_int(&rng, 0, 20);
            for (int64_t i = 0; i < n_prompt; i++) {
                tokens[Nz] = (int32_t)lf_test_int(&rng, 4, 20);
                state[Nz++] = C;
            }
            if (n_prompt) {
                tokens[Nz] = LF_BOS;
                state[Nz++] = C;
            }
            for (int64_t i = 0; i < n_target; i++) {
                double u = lf_test_uniform(&rng);
                tokens[Nz] = (int32_t)lf_test_int(&rng, 4, 20);
                state[Nz++] = u < p_drop ? D : (u < p_drop + p_mask ? M : C);
            }
            tokens[Nz] = LF_EOS;
            state[Nz++] = C;
            offsets[j + 1] = (int32_t)Nz;
        }
        for (int64_t i = 0; i < Nz; i++)
            b[i] = lf_test_range(&rng, 0.5, 5);
        check_build_xt(tokens, offsets, B, state, b, lf_test_int(&rng, 0, 100));
    }
}
END_TEST

/* ---- state frequencies ------------------------------------------------------------ */

typedef struct { double a, b, c, t; } state_case;

static const state_case cases[] = {
    {1.0, 1.0, 1.0, 0.3},     /* linear family */
    {1.0, 2.5, 1.0, 0.5},     /* the default: a = 1, constant b_um = 1 */
    {2.0, 3.0, 3.0, 0.4},     /* b = c */
    {0.7, 1.2, 4.0, 0.6},     /* b < c */
    {1.5, 6.0, 0.8, 0.2},     /* b > c, early insertion */
    {1.0, 1.001, 1.5, 0.95},  /* late t */
    {3.0, 0.6, 2.0, 0.05},    /* early t, late insertion */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
#define N_DRAWS 20000
#define FIXED_EVERY 97       /* a fixed token among the non-fixed ones now and then */

/* Largest deviation in standard deviations of the state counts of the
 * non-fixed tokens [begin, end) from n p. Fixed tokens must be clean. */
static double deviation(const int32_t *state, const uint8_t *fixed, int64_t begin, int64_t end, const state_case *cs)
{
    int64_t count[3] = {0, 0, 0}, n = 0;
    for (int64_t i = begin; i < end; i++) {
        if (fixed[i]) {
            ck_assert_int_eq(state[i], C);
            continue;
        }
        ck_assert(state[i] >= D && state[i] <= C);
        count[state[i]]++;
        n++;
    }
    double worst = 0, sum_p = 0;
    for (int s = 0; s < 3; s++) {
        double p = exp(lf_state_log_prob((lf_token_state)s, cs->t, cs->a, cs->b, cs->c, NULL, NULL));
        sum_p += p;
        double sd = sqrt((double)n * p * (1 - p));
        double z = fabs((double)count[s] - (double)n * p) / (sd > 0 ? sd : 1);
        worst = fmax(worst, z);
    }
    ck_assert(fabs(sum_p - 1) < 1e-12);
    return worst;
}

/* A batch with one sequence per case: N_DRAWS non-fixed tokens with a fixed
 * one every FIXED_EVERY, then the fixed EOS. */
typedef struct mc_batch {
    int32_t offsets[N_CASES + 1];
    uint8_t *fixed;
    lf_real *b_in, *b_um;
    double t[N_CASES];
    int32_t *state;
    int64_t Nz;
} mc_batch;

static void mc_batch_make(mc_batch *mb)
{
    const int64_t per_seq = N_DRAWS + N_DRAWS / FIXED_EVERY + 8;
    mb->fixed = calloc((size_t)(N_CASES * per_seq), 1);
    mb->b_in = calloc((size_t)(N_CASES * per_seq), sizeof(lf_real));
    mb->b_um = calloc((size_t)(N_CASES * per_seq), sizeof(lf_real));
    mb->state = calloc((size_t)(N_CASES * per_seq), sizeof(int32_t));
    ck_assert(mb->fixed && mb->b_in && mb->b_um && mb->state);
    int64_t i = 0;
    mb->offsets[0] = 0;
    for (int j = 0; j < N_CASES; j++) {
        for (int64_t k = 0; k < N_DRAWS; i++) {
            bool fx = i % FIXED_EVERY == 0;
            mb->fixed[i] = fx;
            /* fixed tokens get shapes far from the case's: they must not matter */
            mb->b_in[i] = (lf_real)(fx ? 50.0 : cases[j].b);
            mb->b_um[i] = (lf_real)(fx ? 0.02 : cases[j].c);
            k += !fx;
        }
        mb->fixed[i] = 1; /* EOS */
        mb->b_in[i] = mb->b_um[i] = 1;
        i++;
        mb->offsets[j + 1] = (int32_t)i;
        mb->t[j] = cases[j].t;
    }
    mb->Nz = i;
}

static void mc_batch_free(mc_batch *mb)
{
    free(mb->fixed);
    free(mb->b_in);
    free(mb->b_um);
    free(mb->state);
}

/* Shapes are lf_real (float) in the library: compare with the probabilities
 * of the shapes actually used. */
static state_case rounded(const state_case *cs)
{
    state_case r = *cs;
    r.b = (lf_real)cs->b;
    r.c = (lf_real)cs->c;
    return r;
}

/* Per-token b_in and b_um, one call per case (a is shared by a call): 5
 * standard deviations per count, 3 x N_CASES counts, fixed seed. */
START_TEST(test_draw_states_frequencies)
{
    mc_batch mb;
    mc_batch_make(&mb);
    lf_rng rng;
    lf_rng_seed(&rng, 12345);
    double worst = 0;
    for (int j = 0; j < N_CASES; j++) {
        int32_t off[2] = {0, mb.offsets[j + 1] - mb.offsets[j]};
        int64_t o = mb.offsets[j];
        lf_noise_draw_states(&rng, off, 1, mb.fixed + o, &mb.t[j], mb.b_in + o, mb.b_um + o, 999.0, cases[j].a, 0.0,
                             mb.state + o);
        state_case cs = rounded(&cases[j]);
        double z = deviation(mb.state, mb.fixed, o, mb.offsets[j + 1], &cs);
        ck_assert_msg(z < 5, "case %d (a %g, b %g, c %g, t %g): state counts %.2f standard deviations off", j,
                      cs.a, cs.b, cs.c, cs.t, z);
        worst = fmax(worst, z);
    }
    fprintf(stderr, "# per-token b_um: largest deviation %.2f standard deviations (%d draws x %d cases)\n", worst,
            N_DRAWS, N_CASES);
    mc_batch_free(&mb);
}
END_TEST

/* The constant b_um (b_um NULL, c_const) path, and several sequences at
 * different times in one call (the cases with a = 1). */
START_TEST(test_draw_states_constant_c)
{
    mc_batch mb;
    mc_batch_make(&mb);
    lf_rng rng;
    lf_rng_seed(&rng, 777);
    double worst = 0;
    for (int j = 0; j < N_CASES; j++) {
        int32_t off[2] = {0, mb.offsets[j + 1] - mb.offsets[j]};
        int64_t o = mb.offsets[j];
        lf_noise_draw_states(&rng, off, 1, mb.fixed + o, &mb.t[j], mb.b_in + o, NULL, cases[j].c, cases[j].a, 0.0,
                             mb.state + o);
        state_case cs = rounded(&cases[j]);
        cs.c = cases[j].c; /* c_const is used as given, in double */
        double z = deviation(mb.state, mb.fixed, o, mb.offsets[j + 1], &cs);
        ck_assert_msg(z < 5, "case %d, constant c: %.2f standard deviations off", j, z);
        worst = fmax(worst, z);
    }
    /* cases 0, 1 and 5 have a = 1: one call over three sequences, each at its
     * own t, with c = 1.5 for all */
    static const int pick[3] = {0, 1, 5};
    int32_t off[4] = {0};
    int64_t total = 0;
    for (int q = 0; q < 3; q++)
        total += mb.offsets[pick[q] + 1] - mb.offsets[pick[q]];
    uint8_t *fixed = malloc((size_t)total);
    lf_real *b_in = malloc((size_t)total * sizeof *b_in);
    int32_t *state = malloc((size_t)total * sizeof *state);
    double t[3];
    ck_assert(fixed && b_in && state);
    for (int q = 0; q < 3; q++) {
        int64_t o = mb.offsets[pick[q]], n = mb.offsets[pick[q] + 1] - o;
        memcpy(fixed + off[q], mb.fixed + o, (size_t)n);
        memcpy(b_in + off[q], mb.b_in + o, (size_t)n * sizeof *b_in);
        off[q + 1] = off[q] + (int32_t)n;
        t[q] = cases[pick[q]].t;
    }
    lf_noise_draw_states(&rng, off, 3, fixed, t, b_in, NULL, 1.5, 1.0, 0.0, state);
    for (int q = 0; q < 3; q++) {
        state_case cs = rounded(&cases[pick[q]]);
        cs.c = 1.5;
        double z = deviation(state, fixed, off[q], off[q + 1], &cs);
        ck_assert_msg(z < 5, "sequence %d of the joint call: %.2f standard deviations off", q, z);
        worst = fmax(worst, z);
    }
    fprintf(stderr, "# constant b_um: largest deviation %.2f standard deviations\n", worst);
    free(fixed);
    free(b_in);
    free(state);
    mc_batch_free(&mb);
}
END_TEST

/* schedule.late_fraction e: a token is dropped at t with probability
 * 1 - F_e(t) = (1 - e) (1 - t^a)^b + e (1 - t) (Monte-Carlo frequency
 * within 5 standard deviations), and e = 0.3 drops visibly more late
 * tokens than e = 0. */
START_TEST(test_draw_states_late_fraction)
{
    enum { N = 200000 };
    static int32_t off[2] = {0, N};
    static uint8_t fixed[N];
    static lf_real b_in[N];
    static int32_t st[N];
    const double a = 1, b = 32, lates[2] = {0, 0.3}, times[3] = {0.02, 0.2, 0.7};
    for (int i = 0; i < N; i++)
        b_in[i] = (lf_real)b;
    double late_share[2][3];
    for (int ei = 0; ei < 2; ei++)
        for (int ti = 0; ti < 3; ti++) {
            lf_rng rng;
            lf_rng_seed(&rng, 99 + (uint64_t)(3 * ei + ti));
            double t = times[ti], e = lates[ei];
            lf_noise_draw_states(&rng, off, 1, fixed, &t, b_in, NULL, 1.0, a, e, st);
            int64_t dropped = 0;
            for (int i = 0; i < N; i++)
                dropped += st[i] == D;
            double p = (1 - e) * pow(1 - pow(t, a), b) + e * (1 - t), f = (double)dropped / N;
            double z = fabs(f - p) / sqrt(p * (1 - p) / N + 1e-300);
            printf("# late fraction %g, t %g: dropped %.5f, expected %.5f (%.2f sd)\n", e, t, f, p, z);
            ck_assert_msg(z < 5, "late fraction %g at t %g: dropped share %g, expected %g", e, t, f, p);
            late_share[ei][ti] = f;
        }
    ck_assert(late_share[1][2] > 0.05 && late_share[0][2] < 1e-4);
}
END_TEST

/* schedule.outside_in r: lf_noise_outside_in_shapes against a plain
 * reference that counts, for every non-fixed token, the non-fixed tokens
 * on each side up to the nearest fixed token or sequence end, and
 * multiplies r in d = min(left, right) times; with floors at 1 (b > 1) and
 * at b (b < 1), r = 0 (off) and no fixed flags at all. */
static double outside_in_reference(const uint8_t *fixed, int64_t n, int64_t i, double b, double r)
{
    if ((fixed && fixed[i]) || r == 0)
        return b;
    int64_t left = 0, right = 0;
    for (int64_t k = i - 1; k >= 0 && !(fixed && fixed[k]); k--)
        left++;
    for (int64_t k = i + 1; k < n && !(fixed && fixed[k]); k++)
        right++;
    double s = b;
    for (int64_t d = left < right ? left : right; d > 0; d--)
        s *= r;
    double floor = b < 1 ? b : 1;
    return s < floor ? floor : s;
}

START_TEST(test_outside_in_shapes)
{
    enum { N = 40 };
    uint8_t fixed[N];
    for (int i = 0; i < N; i++) /* a prompt, BOS, a run of 21, a fixed token, a run of 9, EOS, one more */
        fixed[i] = i < 6 || i == 27 || i == 37 || i == 38;
    const double shapes[3] = {100, 8, 0.5}, ratios[3] = {0.5, 0.9, 0};
    double out[N];
    for (int bi = 0; bi < 3; bi++)
        for (int ri = 0; ri < 3; ri++)
            for (int f = 0; f < 2; f++) {
                const uint8_t *fx = f ? fixed : NULL;
                lf_noise_outside_in_shapes(fx, N, shapes[bi], ratios[ri], out);
                for (int64_t i = 0; i < N; i++)
                    LF_ASSERT_CLOSE(out[i], outside_in_reference(fx, N, i, shapes[bi], ratios[ri]), 1e-14, 1e-12);
            }
    /* the ends of a run have b, the middle of the run of 21 (10 from either end) the floor */
    lf_noise_outside_in_shapes(fixed, N, 100, 0.5, out);
    ck_assert(out[6] == 100 && out[26] == 100 && out[7] == 50 && out[16] == 1 && out[28] == 100 && out[32] == 100 / 16.0);
}
END_TEST

/* The loss of a schedule.outside_in model (b_in 16, b_um 8, r 1/2) on
 * given states: every token's shapes are the reference's (above), and each
 * row's insertion target lambda is the sum of the shapes b_in of the
 * dropped tokens just left of it, summed here from the states. */
START_TEST(test_outside_in_targets)
{
    static lf_model_config cfg;
    lf_model m;
    lf_test_model_from_yaml(&m, &cfg,
                            "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 24}\nvocab: {size: 6}\n"
                            "train: {threads: 1}\ngenerator: {learn_unmask_rate: true}\n"
                            "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 16, b_um: 8, outside_in: 0.5}\n");
    enum { NZ = 13 };
    const int32_t A = LF_N_SPECIAL, Z = LF_N_SPECIAL + 1;
    int32_t tokens[NZ] = {A, LF_BOS, Z, A, Z, A, Z, A, LF_EOS, Z, Z, A, LF_EOS}, off[3] = {0, 9, NZ};
    uint8_t fixed[NZ] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1};
    int32_t state[NZ] = {C, C, D, M, D, D, C, D, C, D, D, M, C};
    double t[2] = {0.3, 0.6};
    lf_batch batch = {tokens, fixed, off, 2, 0, 0};
    lf_given_states given = {t, {state, NULL}};
    lf_loss_parts parts;
    ck_assert_int_eq(lf_model_loss(&m, &batch, &given, false, &parts), LFLEX_OK);
    const lf_loss_trace *tr = lf_model_last_trace(&m);
    ck_assert_ptr_nonnull(tr->b_um);
    double want_b[NZ], want_c[NZ];
    for (int j = 0; j < 2; j++)
        for (int64_t i = off[j]; i < off[j + 1]; i++) {
            want_b[i] = outside_in_reference(fixed + off[j], off[j + 1] - off[j], i - off[j], 16, 0.5);
            want_c[i] = outside_in_reference(fixed + off[j], off[j + 1] - off[j], i - off[j], 8, 0.5);
        }
    for (int64_t i = 0; i < NZ; i++) {
        LF_ASSERT_CLOSE(lf_data(tr->b_in)[i], want_b[i], 1e-6, 1e-6);
        LF_ASSERT_CLOSE(lf_data(tr->b_um)[i], want_c[i], 1e-6, 1e-6);
    }
    int64_t row = 0;
    for (int j = 0; j < 2; j++) {
        double gap = 0;
        for (int64_t i = off[j]; i < off[j + 1]; i++) {
            if (state[i] == D) {
                gap += want_b[i];
                continue;
            }
            LF_ASSERT_CLOSE(lf_data(tr->lambda)[row], gap, 1e-5, 1e-6);
            row++;
            gap = 0;
        }
    }
    ck_assert_int_eq(row, tr->n_xt);
    lf_model_destroy(&m);
}
END_TEST

/* loss.unmask_order left_to_right and right_to_left (the loop's _i):
 * lf_noise_clean_end keeps every dropped and fixed token and the number of
 * clean tokens of each sequence, and the clean non-fixed tokens come before
 * (after) every masked one. */
START_TEST(test_clean_end)
{
    int from_right = _i;
    enum { N = 300, S = 6 };
    uint8_t fixed[N];
    lf_real b_in[N];
    int32_t off[S + 1], st[N], before[N];
    double t[S];
    for (int j = 0; j <= S; j++)
        off[j] = j * N / S;
    for (int i = 0; i < N; i++) {
        fixed[i] = i % 7 == 3 || i + 1 == N || (i + 1) % (N / S) == 0; /* a few inside, EOS at each end */
        b_in[i] = (lf_real)(0.5 + (i % 5));
    }
    for (int j = 0; j < S; j++)
        t[j] = (j + 0.5) / S;
    lf_rng rng;
    lf_rng_seed(&rng, 5);
    lf_noise_draw_states(&rng, off, S, fixed, t, b_in, NULL, 1.0, 1.0, 0.0, st);
    memcpy(before, st, sizeof st);
    lf_noise_clean_end(off, S, fixed, from_right, st);
    int64_t moved = 0;
    for (int j = 0; j < S; j++) {
        int n_clean[2] = {0, 0};
        bool seen_masked = false;
        for (int k = 0; k < off[j + 1] - off[j]; k++) {
            int i = from_right ? off[j + 1] - 1 - k : off[j] + k; /* walking from the clean end */
            if (fixed[i] || before[i] == D) {
                ck_assert_int_eq(st[i], before[i]);
                continue;
            }
            ck_assert(st[i] == M || st[i] == C);
            n_clean[0] += before[i] == C;
            n_clean[1] += st[i] == C;
            ck_assert_msg(!(seen_masked && st[i] == C), "sequence %d (from_right %d): clean token %d beyond a masked one",
                          j, from_right, i);
            seen_masked |= st[i] == M;
            moved += st[i] != before[i];
        }
        ck_assert_int_eq(n_clean[0], n_clean[1]);
    }
    ck_assert_int_gt(moved, 0); /* the drawn states were not already prefixes (suffixes) */
}
END_TEST

/* loss.unmask_order learned: lf_noise_race_order against the Plackett-Luce
 * probabilities of lf_race_logprob by Monte-Carlo frequencies. One sequence
 * of six tokens: a fixed one (no draws), a dropped one (draws, no place in
 * the race), four candidates with weights 0.5, 1, 2 and 5 of which two are
 * clean. Every draw keeps the fixed and dropped tokens and the count of
 * clean ones, makes the first two finishers clean, and advances the
 * generator as lf_noise_skip does; the frequency of each ordered pair of
 * first finishers matches w_i / W * w_j / (W - w_i) (W the candidates'
 * summed weight) within 5 standard errors, and so does exp(the summed
 * log-probabilities of lf_race_logprob) to rounding. Both read
 * log-weights. */
START_TEST(test_race_order)
{
    enum { N = 6, DRAWS = 40000 };
    const uint8_t fixed[N] = {1, 0, 0, 0, 0, 0};
    const double w[N] = {9, 9, 0.5, 1, 2, 5};
    lf_real lw[N];
    for (int i = 0; i < N; i++)
        lw[i] = (lf_real)log(w[i]);
    const int32_t drawn[N] = {C, D, C, M, C, M};
    const int32_t off[2] = {0, N};
    static int pair_count[N][N];
    memset(pair_count, 0, sizeof pair_count);
    lf_rng rng, skip;
    lf_rng_seed(&rng, 21);
    for (int d = 0; d < DRAWS; d++) {
        int32_t st[N], order[N], order_off[2], k;
        double finish[N];
        memcpy(st, drawn, sizeof st);
        skip = rng;
        lf_noise_race_order(&rng, off, 1, fixed, lw, st, order, order_off, &k, finish);
        lf_noise_skip(&skip, fixed, 0, N);
        ck_assert(memcmp(&rng, &skip, sizeof rng) == 0);
        ck_assert_int_eq(order_off[0], 0);
        ck_assert_int_eq(order_off[1], 4);
        ck_assert_int_eq(k, 2);
        ck_assert_int_eq(st[0], C);
        ck_assert_int_eq(st[1], D);
        int n_clean = 0;
        for (int r = 0; r < 4; r++) {
            ck_assert_int_ge(order[r], 2);
            ck_assert_int_eq(st[order[r]], r < 2 ? C : M);
            if (r > 0)
                ck_assert(finish[order[r]] >= finish[order[r - 1]]);
        }
        for (int i = 2; i < N; i++)
            n_clean += st[i] == C;
        ck_assert_int_eq(n_clean, 2);
        pair_count[order[0]][order[1]]++;
    }
    lf_ctx ctx;
    ck_assert_int_eq(lf_ctx_init(&ctx, 1 << 16, 1), 0);
    int64_t n = N;
    for (int i = 2; i < N; i++)
        for (int j = 2; j < N; j++) {
            if (i == j)
                continue;
            int32_t order[4] = {i, j}, order_off[2] = {0, 4}, k = 2, q = 2;
            for (int x = 2; x < N; x++)
                if (x != i && x != j)
                    order[q++] = x;
            lf_ctx_reset(&ctx);
            lf_tensor *lp = lf_race_logprob(&ctx, lf_const_real(&ctx, lw, 1, &n), order, order_off, &k, 1);
            ck_assert_ptr_nonnull(lp);
            const double W = 0.5 + 1 + 2 + 5, p = w[i] / W * w[j] / (W - w[i]);
            LF_ASSERT_CLOSE(exp((double)lf_data(lp)[i] + (double)lf_data(lp)[j]), p, 0, 1e-6);
            double freq = (double)pair_count[i][j] / DRAWS, se = sqrt(p * (1 - p) / DRAWS);
            ck_assert_msg(fabs(freq - p) <= 5 * se, "first %d then %d: frequency %.4f, Plackett-Luce %.4f", i, j, freq, p);
        }
    lf_ctx_free(&ctx);
}
END_TEST

/* Fixed tokens draw no random numbers: the states of the non-fixed tokens
 * are the same with or without fixed tokens between them. */
START_TEST(test_draw_states_fixed_use_no_draws)
{
    enum { N = 400 };
    uint8_t fixed_mixed[2 * N], fixed_none[N];
    lf_real b_mixed[2 * N], b_none[N];
    int32_t st_mixed[2 * N], st_none[N], off_mixed[2] = {0, 2 * N}, off_none[2] = {0, N};
    for (int i = 0; i < 2 * N; i++) {
        fixed_mixed[i] = (i % 2 == 0) || i == 2 * N - 1;
        b_mixed[i] = (lf_real)(0.5 + (i % 7));
    }
    int k = 0;
    for (int i = 0; i < 2 * N; i++)
        if (!fixed_mixed[i]) {
            fixed_none[k] = 0;
            b_none[k++] = b_mixed[i];
        }
    fixed_none[k] = 1;
    b_none[k++] = 1;
    ck_assert_int_eq(k, N);
    double t = 0.5;
    lf_rng r1, r2;
    lf_rng_seed(&r1, 99);
    lf_rng_seed(&r2, 99);
    lf_noise_draw_states(&r1, off_mixed, 1, fixed_mixed, &t, b_mixed, NULL, 1.0, 1.0, 0.0, st_mixed);
    lf_noise_draw_states(&r2, off_none, 1, fixed_none, &t, b_none, NULL, 1.0, 1.0, 0.0, st_none);
    int n_states[3] = {0, 0, 0};
    k = 0;
    for (int i = 0; i < 2 * N; i++) {
        if (fixed_mixed[i]) {
            ck_assert_int_eq(st_mixed[i], C);
            continue;
        }
        ck_assert_int_eq(st_mixed[i], st_none[k++]);
        n_states[st_mixed[i]]++;
    }
    ck_assert(n_states[D] > 0 && n_states[M] > 0 && n_states[C] > 0);
    ck_assert(r1.s[0] == r2.s[0] && r1.s[1] == r2.s[1] && r1.s[2] == r2.s[2] && r1.s[3] == r2.s[3]);
}
END_TEST

/* ---- training times ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times of TB sequences with S states each over TR objective evaluations:
 * state s of sequence j has u = 1 - (1 - t)^k (t rescaled from [eps, 1 -
 * eps]) in [(s TB + j)/(S TB), (s TB + j + 1)/(S TB)), and the empirical
 * distribution of t is 1 - (1 - t)^k. */
static void check_times(double k, int S)
{
    enum { TB = 16, TR = 250 };
    char yaml[256];
    snprintf(yaml, sizeof yaml,
             "model: {d_model: 8, n_heads: 2, n_layers: 0, max_len: 8}\nschedule: {family: linear}\n"
             "loss: {time_shape: %.17g, states: %d}\ntrain: {threads: 1, seed: 5}\nvocab: {size: 3}\n", k, S);
    static lf_model_config cfg;
    lf_model m;
    lf_test_model_from_yaml(&m, &cfg, yaml);
    int32_t tok[TB * 3], off[TB + 1];
    uint8_t fx[TB * 3];
    for (int j = 0; j < TB; j++) {
        off[j] = 3 * j;
        tok[3 * j] = tok[3 * j + 1] = LF_N_SPECIAL + j % 3;
        tok[3 * j + 2] = LF_EOS;
        fx[3 * j] = fx[3 * j + 1] = 0;
        fx[3 * j + 2] = 1;
    }
    off[TB] = 3 * TB;
    lf_batch bt = {tok, fx, off, TB, 0, 0};
    static double all[3 * TB * TR];
    const int N = S * TB * TR;
    ck_assert_int_le(S, 3);
    for (int r = 0; r < TR; r++) {
        ck_assert_int_eq(lf_model_loss(&m, &bt, NULL, false, NULL), 0);
        ck_assert_int_eq(m.trace.n_states, S);
        for (int q0 = 0; q0 < S * TB; q0++) {
            double t = m.trace.t[q0], q = (t - 1e-4) / (1 - 2e-4);
            ck_assert(q > 0 && q < 1);
            double u = 1 - pow(1 - q, k);
            ck_assert_msg(u >= (double)q0 / (S * TB) - 1e-9 && u < (double)(q0 + 1) / (S * TB) + 1e-9,
                          "k %g: state %d of sequence %d has t %g (u %g)", k, q0 / TB, q0 % TB, t, u);
            all[r * S * TB + q0] = t;
        }
    }
    qsort(all, (size_t)N, sizeof all[0], cmp_double);
    double worst = 0, mean = 0;
    for (int i = 0; i < N; i++) {
        double F = 1 - pow(1 - all[i], k);
        worst = fmax(worst, fmax(fabs(F - (double)i / N), fabs(F - (double)(i + 1) / N)));
        mean += all[i] / N;
    }
    printf("# time_shape %g, %d state(s): largest |F - empirical| %.4f, mean t %.4f (expected %.4f)\n", k, S,
           worst, mean, 1 / (k + 1));
    ck_assert_msg(worst < 0.01, "k %g: empirical distribution of t off by %g", k, worst);
    ck_assert_msg(fabs(mean - 1 / (k + 1)) < 0.005, "k %g: mean t %g, expected %g", k, mean, 1 / (k + 1));
    lf_model_destroy(&m);
}

START_TEST(test_training_times)
{
    check_times(1, 1);
    check_times(3, 1);
    check_times(1.5, 1);
    check_times(1, 3);
    check_times(3, 2);
}
END_TEST

/* loss.states 3: the loss is the mean of the three states' losses, and
 * each state's loss is what the objective gives for that state alone (the
 * same time and token states, given from outside). */
START_TEST(test_several_states)
{
    enum { B = 5, S = 3 };
    static lf_model_config cfg;
    lf_model m;
    lf_test_model_from_yaml(&m, &cfg,
                            "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 10}\n"
                            "schedule: {family: kumaraswamy, learn_b_in: false, b_in: 3}\n"
                            "loss: {states: 3, time_weight: hazard}\ntrain: {threads: 1, seed: 9}\nvocab: {size: 5}\n");
    int32_t tok[B * 6], off[B + 1];
    uint8_t fx[B * 6];
    for (int j = 0; j < B; j++) {
        off[j] = 6 * j;
        for (int i = 0; i < 6; i++) {
            tok[6 * j + i] = i == 5 ? LF_EOS : LF_N_SPECIAL + (i * 7 + j) % 5;
            fx[6 * j + i] = i == 5 || (j == 2 && i == 0); /* one fixed prompt token */
        }
    }
    off[B] = 6 * B;
    lf_batch bt = {tok, fx, off, B, 0, 0};
    lf_loss_parts parts;
    ck_assert_int_eq(lf_model_loss(&m, &bt, NULL, false, &parts), 0);
    ck_assert_int_eq(m.trace.n_states, S);
    double t[S * B], L[S * B], mean = 0;
    int32_t state[S][B * 6];
    for (int q = 0; q < S * B; q++) {
        t[q] = m.trace.t[q];
        L[q] = lf_data(m.trace.L)[q];
        mean += L[q] / (S * B);
    }
    for (int s = 0; s < S; s++)
        memcpy(state[s], m.trace.state[s], sizeof state[s]);
    ck_assert_double_eq_tol(parts.total, mean, 1e-6 * fabs(mean));
    for (int s = 0; s < S; s++) {
        lf_given_states given = {t + s * B, {state[s], NULL}};
        ck_assert_int_eq(lf_model_loss(&m, &bt, &given, false, NULL), 0);
        ck_assert_int_eq(m.trace.n_states, 1);
        for (int j = 0; j < B; j++)
            ck_assert_msg(fabs(lf_data(m.trace.L)[j] - L[s * B + j]) <= 1e-6 * fmax(1, fabs(L[s * B + j])),
                          "state %d, sequence %d: %g alone, %g among three", s, j, (double)lf_data(m.trace.L)[j],
                          L[s * B + j]);
    }
    lf_model_destroy(&m);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("lflex_noise");
    TCase *tc = tcase_create("noise");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_build_xt_hand_built);
    tcase_add_test(tc, test_build_xt_random);
    tcase_add_test(tc, test_draw_states_frequencies);
    tcase_add_test(tc, test_draw_states_constant_c);
    tcase_add_test(tc, test_draw_states_fixed_use_no_draws);
    tcase_add_test(tc, test_training_times);
    tcase_add_loop_test(tc, test_clean_end, 0, 2);
    tcase_add_test(tc, test_race_order);
    tcase_add_test(tc, test_outside_in_shapes);
    tcase_add_test(tc, test_outside_in_targets);
    tcase_add_test(tc, test_draw_states_late_fraction);
    tcase_add_test(tc, test_several_states);
    suite_add_tcase(s, tc);
    return s;
}
