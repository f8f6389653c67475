/* Every op's backward against central finite differences, in the double
 * precision build of the core (lf_real = double).
 *
 * A case builds a small graph from random inputs of random shapes. The
 * analytic gradient of L = sum_i w_i out_i (random weights w) with respect
 * to every real input is compared with (L(x + h) - L(x - h)) / 2h. The
 * coverage test fails when an op of the table appears in no case. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "lflex/sched_ops.h"
#include "tests/common/testutil.h"

_Static_assert(sizeof(lf_real) == sizeof(double), "gradcheck needs the double build");

#define GC_MAX_IN 4
#define GC_MAX_INT 6
#define GC_MAX_ELEMS 4096

typedef struct {
    int n_in;
    int ndim[GC_MAX_IN];
    int64_t shape[GC_MAX_IN][4];
    double x[GC_MAX_IN][GC_MAX_ELEMS];
    int n_int;
    int64_t int_n[GC_MAX_INT];
    int32_t ints[GC_MAX_INT][GC_MAX_ELEMS];
    int64_t p[8];     /* case parameters chosen in setup */
    double h_rel;     /* finite-difference step relative to |x| (0: default) */
    double h_floor;   /* smallest |x| the step is relative to (0: default 1) */
    double tol;       /* relative tolerance (0: default) */
} gc_state;

typedef struct {
    const char *name;
    void (*setup)(gc_state *st, lf_test_rng *r, int trial);
    lf_tensor *(*build)(lf_ctx *ctx, lf_tensor **x, lf_tensor **iv, gc_state *st);
} gc_case;

/* ---- helpers for setups ---------------------------------------------- */

static int64_t numel_of(const gc_state *st, int i)
{
    int64_t n = 1;
    for (int d = 0; d < st->ndim[i]; d++)
        n *= st->shape[i][d];
    return n;
}

static void add_input(gc_state *st, lf_test_rng *r, int ndim, const int64_t *shape, double lo, double hi)
{
    int i = st->n_in++;
    st->ndim[i] = ndim;
    memcpy(st->shape[i], shape, (size_t)ndim * sizeof *shape);
    for (int64_t j = 0; j < numel_of(st, i); j++)
        st->x[i][j] = lf_test_range(r, lo, hi);
}

static void add_input2(gc_state *st, lf_test_rng *r, int64_t n0, int64_t n1, double lo, double hi)
{
    int64_t s[2] = {n0, n1};
    add_input(st, r, 2, s, lo, hi);
}

/* values away from a kink at 0 (relu) */
static void push_from_zero(gc_state *st, int i, double gap)
{
    for (int64_t j = 0; j < numel_of(st, i); j++)
        if (fabs(st->x[i][j]) < gap)
            st->x[i][j] = st->x[i][j] < 0 ? -gap : gap;
}

static int32_t *add_ints(gc_state *st, int64_t n)
{
    int k = st->n_int++;
    st->int_n[k] = n;
    return st->ints[k];
}

/* random segment lengths summing to T, first entry forced to length 1 */
static int64_t random_offsets(gc_state *st, lf_test_rng *r, int64_t B, int64_t max_len, int32_t **off_out)
{
    int32_t *off = add_ints(st, B + 1);
    off[0] = 0;
    for (int64_t b = 0; b < B; b++)
        off[b + 1] = off[b] + (int32_t)(b == 0 ? 1 : lf_test_int(r, 1, max_len));
    *off_out = off;
    return off[B];
}

/* ---- cases -------------------------------------------------------------- */

static void su_matmul(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t M = lf_test_int(r, 1, 7), K = lf_test_int(r, 1, 7), N = lf_test_int(r, 1, 7);
    st->p[0] = trial & 1;
    st->p[1] = (trial >> 1) & 1;
    add_input2(st, r, st->p[0] ? K : M, st->p[0] ? M : K, -1, 1);
    add_input2(st, r, st->p[1] ? N : K, st->p[1] ? K : N, -1, 1);
}
static lf_tensor *bu_matmul(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_matmul(c, x[0], x[1], st->p[0], st->p[1]);
}

static void su_linear(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t N = lf_test_int(r, 1, 6), in = lf_test_int(r, 1, 7), out = lf_test_int(r, 1, 7);
    st->p[0] = trial % 2; /* with bias */
    add_input2(st, r, N, in, -1, 1);
    add_input2(st, r, out, in, -1, 1);
    if (st->p[0])
        add_input(st, r, 1, &out, -1, 1);
}
static lf_tensor *bu_linear(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_linear(c, x[0], x[1], st->p[0] ? x[2] : NULL);
}

/* broadcast mode by trial: full, row, column [R,1], column [R], scalar */
static void su_binary(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 2, 5), C = lf_test_int(r, 2, 5);
    if (R == C)
        C++; /* keep row and column broadcasts distinguishable */
    add_input2(st, r, R, C, -2, 2);
    switch (trial % 5) {
    case 0: add_input2(st, r, R, C, -2, 2); break;
    case 1: add_input(st, r, 1, &C, -2, 2); break;
    case 2: add_input2(st, r, R, 1, -2, 2); break;
    case 3: add_input(st, r, 1, &R, -2, 2); break;
    default: { int64_t one = 1; add_input(st, r, 1, &one, -2, 2); } break;
    }
}
static lf_tensor *bu_add(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_add(c, x[0], x[1]); }
static lf_tensor *bu_sub(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_sub(c, x[0], x[1]); }
static lf_tensor *bu_mul(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_mul(c, x[0], x[1]); }
/* the same tensor on both sides */
static lf_tensor *bu_mul_self(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_mul(c, x[0], x[0]); }

static void su_one(gc_state *st, lf_test_rng *r, int trial)
{
    add_input2(st, r, lf_test_int(r, 1, 5), lf_test_int(r, 1, 6), -2, 2);
}
static lf_tensor *bu_affine(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_affine(c, x[0], -1.7, 0.3); }
static lf_tensor *bu_sum(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_sum(c, x[0]); }
static lf_tensor *bu_mean(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_mean(c, x[0]); }
static lf_tensor *bu_softmax(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_softmax(c, x[0]); }
static lf_tensor *bu_log_softmax(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_log_softmax(c, x[0]); }

static void su_pow(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 1, 4), C = lf_test_int(r, 1, 5);
    add_input2(st, r, R, C, 0.3, 3);
    add_input2(st, r, R, C, -2, 2);
}
static lf_tensor *bu_pow(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_pow(c, x[0], x[1]); }

static void su_logaddexp(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 1, 4), C = lf_test_int(r, 1, 5);
    double s = trial == 2 ? 300 : 5; /* large magnitudes too */
    add_input2(st, r, R, C, -s, s);
    add_input2(st, r, R, C, -s, s);
}
static lf_tensor *bu_logaddexp(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_log_add_exp(c, x[0], x[1]); }

static void su_bregman(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 1, 4), C = lf_test_int(r, 1, 5);
    add_input2(st, r, R, C, 0.05, 8);
    add_input2(st, r, R, C, 0.05, 8);
}
static lf_tensor *bu_bregman(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_bregman(c, x[0], x[1]); }

/* unary ops: p[0] = kind; the domain depends on the kind and the trial */
static void su_unary(gc_state *st, lf_test_rng *r, int trial, lf_unary kind)
{
    int64_t R = lf_test_int(r, 1, 4), C = lf_test_int(r, 1, 6);
    double lo = -3, hi = 3;
    st->p[0] = kind;
    switch (kind) {
    case LF_SOFTPLUS: if (trial == 2) { lo = -60; hi = 60; } break;   /* large magnitudes */
    case LF_SIGMOID: if (trial == 2) { lo = -30; hi = 30; } break;
    case LF_LOG: lo = 0.05; hi = 6; break;
    case LF_LOG1P: lo = -0.9; hi = 6; break;
    case LF_LOG_E:
        if (trial == 1) { lo = -1e-3; hi = 1e-3; st->h_floor = 1e-2; } /* the series branch */
        else if (trial == 2) { lo = -60; hi = 60; }        /* large |x| */
        else { lo = -8; hi = 8; }
        break;
    case LF_LOG1MEXP:
        if (trial == 1) { lo = -1e-3; hi = -1e-5; st->h_floor = 1e-6; } /* near 0 */
        else if (trial == 2) { lo = -300; hi = -20; }      /* large magnitudes */
        else { lo = -3; hi = -0.05; }
        break;
    case LF_DIGAMMA: lo = 0.05; hi = 25; break;
    case LF_LOG_SOFTPLUS:
        if (trial == 1) { lo = -60; hi = -30; }            /* the branch below -36 */
        else if (trial == 2) { lo = -10; hi = 60; }
        break;
    default: break;
    }
    add_input2(st, r, R, C, lo, hi);
    if (kind == LF_RELU)
        push_from_zero(st, 0, 1e-3);
}
#define UNARY_SETUP(K, NAME) \
    static void su_##NAME(gc_state *st, lf_test_rng *r, int trial) { su_unary(st, r, trial, K); }
UNARY_SETUP(LF_GELU, gelu)
UNARY_SETUP(LF_RELU, relu)
UNARY_SETUP(LF_SILU, silu)
UNARY_SETUP(LF_SOFTPLUS, softplus)
UNARY_SETUP(LF_SIGMOID, sigmoid)
UNARY_SETUP(LF_EXP, exp)
UNARY_SETUP(LF_LOG, log)
UNARY_SETUP(LF_LOG1P, log1p)
UNARY_SETUP(LF_SQUARE, square)
UNARY_SETUP(LF_LOG_E, log_e)
UNARY_SETUP(LF_LOG1MEXP, log1mexp)
UNARY_SETUP(LF_DIGAMMA, digamma)
UNARY_SETUP(LF_LOG_SOFTPLUS, log_softplus)
static lf_tensor *bu_unary(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_unary_op(c, (lf_unary)st->p[0], x[0]);
}

static void su_scatter(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t N = lf_test_int(r, 1, 8), C = lf_test_int(r, 1, 4), n_out = lf_test_int(r, 1, 4);
    st->p[0] = n_out;
    if (trial == 1)
        add_input(st, r, 1, &N, -1, 1); /* a 1-D column */
    else
        add_input2(st, r, N, C, -1, 1);
    int32_t *idx = add_ints(st, N);
    for (int64_t i = 0; i < N; i++)
        idx[i] = (int32_t)lf_test_int(r, -1, n_out - 1); /* -1: skipped */
}
static lf_tensor *bu_scatter(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_scatter_add_rows(c, x[0], iv[0], st->p[0]);
}

static void su_embedding(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t V = lf_test_int(r, 1, 6), C = lf_test_int(r, 1, 5), N = lf_test_int(r, 1, 9);
    add_input2(st, r, V, C, -1, 1);
    int32_t *ids = add_ints(st, N);
    for (int64_t i = 0; i < N; i++)
        ids[i] = (int32_t)lf_test_int(r, 0, V - 1); /* repeats are likely */
}
static lf_tensor *bu_embedding(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_embedding(c, x[0], iv[0]);
}

static void su_gather(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t N = lf_test_int(r, 1, 6), C = lf_test_int(r, 1, 6);
    add_input2(st, r, N, C, -1, 1);
    int32_t *idx = add_ints(st, N);
    for (int64_t i = 0; i < N; i++)
        idx[i] = (int32_t)lf_test_int(r, 0, C - 1);
}
static lf_tensor *bu_gather(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st) { return lf_gather(c, x[0], iv[0]); }

static void su_cross_entropy(gc_state *st, lf_test_rng *r, int trial)
{
    su_gather(st, r, trial);
    if (trial == 2)
        for (int64_t j = 0; j < numel_of(st, 0); j++)
            st->x[0][j] *= 40; /* peaked distributions */
}
static lf_tensor *bu_cross_entropy(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_cross_entropy(c, x[0], iv[0]);
}

static void su_slice(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 1, 4), C = lf_test_int(r, 1, 7);
    add_input2(st, r, R, C, -1, 1);
    st->p[0] = lf_test_int(r, 0, C - 1);
    st->p[1] = lf_test_int(r, 1, C - st->p[0]);
}
static lf_tensor *bu_slice(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_slice_cols(c, x[0], st->p[0], st->p[1]);
}

static lf_tensor *bu_reshape(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    int64_t shape[1] = {x[0]->numel};
    /* square afterwards, so that a wrong gradient mapping would show */
    return lf_unary_op(c, LF_SQUARE, lf_reshape(c, x[0], 1, shape));
}

static void su_layernorm(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t R = lf_test_int(r, 1, 5), C = trial == 3 ? 1 : lf_test_int(r, 2, 9);
    st->p[0] = trial % 2 == 0; /* with scale */
    add_input2(st, r, R, C, -3, 3);
    if (st->p[0])
        add_input(st, r, 1, &C, 0.5, 1.5);
}
static lf_tensor *bu_layernorm(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_layernorm(c, x[0], st->p[0] ? x[1] : NULL, 1e-5);
}

/* x [T, C], mod [B, 3C] and seg: p[0] = C */
static void su_cond(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t B = lf_test_int(r, 1, 3), T = lf_test_int(r, 1, 7), C = lf_test_int(r, 1, 5);
    st->p[0] = C;
    add_input2(st, r, T, C, -2, 2);
    add_input2(st, r, B, 3 * C, -1, 1);
    add_input2(st, r, T, C, -2, 2);
    int32_t *seg = add_ints(st, T);
    for (int64_t t = 0; t < T; t++)
        seg[t] = (int32_t)lf_test_int(r, 0, B - 1);
}
static lf_tensor *bu_modulate(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_modulate(c, x[0], x[1], 2 * st->p[0], 0, iv[0]);
}
static lf_tensor *bu_gated_add(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_gated_add(c, x[0], x[2], x[1], st->p[0], iv[0]);
}

/* x [T, C], mod [B, 3C], seg, and a LayerNorm scale unless trial 1 */
static void su_ln_mod(gc_state *st, lf_test_rng *r, int trial)
{
    su_cond(st, r, trial);
    int64_t C = st->p[0];
    st->p[1] = trial != 1;
    if (trial == 3) /* constant rows: LayerNorm of a constant is 0 */
        for (int64_t j = 0; j < numel_of(st, 0); j++)
            st->x[0][j] = 0.25;
    add_input(st, r, 1, &C, 0.5, 1.5);
}
static lf_tensor *bu_ln_mod(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_ln_modulate(c, x[0], st->p[1] ? x[3] : NULL, 1e-5, x[1], st->p[0], 2 * st->p[0], iv[0]);
}

static void su_rope(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t T = lf_test_int(r, 1, 6), H = lf_test_int(r, 1, 3), Dh = 2 * lf_test_int(r, 1, 3);
    st->p[0] = H;
    add_input2(st, r, T, H * Dh, -1, 1);
    int32_t *pos = add_ints(st, T);
    for (int64_t t = 0; t < T; t++)
        pos[t] = (int32_t)lf_test_int(r, 0, 40);
}
static lf_tensor *bu_rope(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_rope(c, x[0], iv[0], st->p[0], 10000);
}

/* trial 0: no mask; 1: random mask; 2: every key but one padded in every
 * sequence; 3: all length-1 sequences */
static void su_attention(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t B = lf_test_int(r, 1, 3), H = lf_test_int(r, 1, 2), Dh = lf_test_int(r, 1, 4);
    int32_t *off;
    int64_t T = random_offsets(st, r, B, trial == 3 ? 1 : 5, &off);
    st->p[0] = H;
    st->p[1] = trial == 1 || trial == 2;
    for (int i = 0; i < 3; i++)
        add_input2(st, r, T, H * Dh, -1.5, 1.5);
    int32_t *valid = add_ints(st, T);
    for (int64_t b = 0; b < B; b++) {
        int64_t n = off[b + 1] - off[b], keep = lf_test_int(r, 0, n - 1);
        for (int64_t j = 0; j < n; j++)
            valid[off[b] + j] = trial == 2 ? j == keep : (trial == 1 ? lf_test_int(r, 0, 3) > 0 : 1);
    }
}
static lf_tensor *bu_attention(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_attention(c, x[0], x[1], x[2], iv[0], st->p[1] ? iv[1] : NULL, st->p[0]);
}

/* qkv [T, 3C] with positions; trials as for attention */
static void su_rope_attention(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t B = lf_test_int(r, 1, 3), H = lf_test_int(r, 1, 2), Dh = 2 * lf_test_int(r, 1, 2);
    int32_t *off;
    int64_t T = random_offsets(st, r, B, trial == 3 ? 1 : 5, &off);
    st->p[0] = H;
    st->p[1] = trial == 1 || trial == 2;
    add_input2(st, r, T, 3 * H * Dh, -1.5, 1.5);
    int32_t *valid = add_ints(st, T), *pos = add_ints(st, T);
    for (int64_t b = 0; b < B; b++) {
        int64_t n = off[b + 1] - off[b], keep = lf_test_int(r, 0, n - 1);
        for (int64_t j = 0; j < n; j++) {
            valid[off[b] + j] = trial == 2 ? j == keep : (trial == 1 ? lf_test_int(r, 0, 3) > 0 : 1);
            pos[off[b] + j] = (int32_t)(j + lf_test_int(r, 0, 2)); /* not necessarily 0..n-1 */
        }
    }
}
static lf_tensor *bu_rope_attention(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_rope_attention(c, x[0], iv[2], iv[0], st->p[1] ? iv[1] : NULL, st->p[0], 10000);
}

static lf_tensor *bu_dropout(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_dropout(c, x[0], 0.3, 12345);
}

/* A small transformer-like graph: every op feeding the next, as in a block. */
static void su_block(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t V = 7, d = 4, H = 2, B = 2;
    int32_t *off;
    int64_t T = random_offsets(st, r, B, 4, &off);
    add_input2(st, r, V, d, -1, 1);        /* embedding */
    add_input2(st, r, B, 3 * d, -0.5, 0.5); /* modulation */
    add_input2(st, r, 3 * d, d, -0.7, 0.7); /* qkv */
    add_input2(st, r, V - 2, d, -1, 1);    /* output layer */
    int32_t *ids = add_ints(st, T), *seg = add_ints(st, T), *pos = add_ints(st, T), *tgt = add_ints(st, T);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = off[b]; j < off[b + 1]; j++) {
            seg[j] = (int32_t)b;
            pos[j] = (int32_t)(j - off[b]);
        }
    for (int64_t t = 0; t < T; t++) {
        ids[t] = (int32_t)lf_test_int(r, 0, V - 1);
        tgt[t] = (int32_t)lf_test_int(r, 0, V - 3);
    }
    st->p[0] = d;
    st->p[1] = H;
}
static lf_tensor *bu_block(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    int64_t d = st->p[0], H = st->p[1];
    lf_tensor *h = lf_embedding(c, x[0], iv[1]);
    lf_tensor *a = lf_modulate(c, lf_layernorm(c, h, NULL, 1e-5), x[1], 0, d, iv[2]);
    lf_tensor *qkv = lf_linear(c, a, x[2], NULL);
    lf_tensor *q = lf_rope(c, lf_slice_cols(c, qkv, 0, d), iv[3], H, 10000);
    lf_tensor *k = lf_rope(c, lf_slice_cols(c, qkv, d, d), iv[3], H, 10000);
    lf_tensor *o = lf_attention(c, q, k, lf_slice_cols(c, qkv, 2 * d, d), iv[0], NULL, H);
    h = lf_gated_add(c, h, lf_unary_op(c, LF_GELU, o), x[1], 2 * d, iv[2]);
    lf_tensor *ce = lf_cross_entropy(c, lf_linear(c, h, x[3], NULL), iv[4]);
    return lf_mean(c, ce);
}

/* schedule ops: b (and c) positive; states drawn at random */
static void su_logprob(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t N = lf_test_int(r, 1, 8);
    st->p[0] = trial % 2;                    /* c is a tensor */
    st->p[1] = trial >= 2 ? 2 : 1;           /* a = 1 or 2 (as p[1]) */
    add_input(st, r, 1, &N, 0.3, 6);
    add_input(st, r, 1, &N, 0.3, 6);
    if (trial == 3) /* b = c: the removable singularity of P_mask */
        for (int64_t i = 0; i < N; i++)
            st->x[1][i] = st->x[0][i];
    int32_t *state = add_ints(st, N);
    for (int64_t i = 0; i < N; i++)
        state[i] = (int32_t)lf_test_int(r, 0, 2);
    int32_t *t_pct = add_ints(st, N); /* times in hundredths, 0.01 .. 0.99 */
    for (int64_t i = 0; i < N; i++)
        t_pct[i] = (int32_t)lf_test_int(r, 1, 99);
}
static lf_tensor *bu_logprob(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    double t[GC_MAX_ELEMS];
    for (int64_t i = 0; i < iv[1]->numel; i++)
        t[i] = lf_idata(iv[1])[i] / 100.0;
    return lf_state_logprob(c, x[0], st->p[0] ? x[1] : NULL, 1.7, t, iv[0], (double)st->p[1]);
}

static void su_kuma(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t N = lf_test_int(r, 1, 6);
    st->p[1] = trial >= 2 ? 2 : 1;
    add_input(st, r, 1, &N, 0.2, 8);
}
static lf_tensor *bu_cdf_grid(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    static const double grid[5] = {0.01, 0.2, 0.5, 0.8, 0.99};
    return lf_kuma_cdf_grid(c, x[0], grid, 5, (double)st->p[1]);
}
static lf_tensor *bu_kuma_kl(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_kuma_kl(c, x[0], (double)st->p[1] * 0.75);
}

/* the race of a learned order: up to 4 sequences of tokens, some not
 * candidates (a fixed or dropped token), the candidates in a random
 * finishing order, a random number of them finished (in the first
 * sequence, all of at least 3 candidates, at least one and two left: both ops have a
 * gradient there); log-weights in [-2.3, 2.3] (trial 3: [-12, 12], as a
 * sharp order has) */
static void su_race(gc_state *st, lf_test_rng *r, int trial)
{
    int64_t S = lf_test_int(r, 1, 4);
    st->p[0] = S;
    int32_t *order = add_ints(st, 64), *off = add_ints(st, S + 1), *k = add_ints(st, S);
    int64_t N = 0, n_order = 0;
    off[0] = 0;
    for (int64_t j = 0; j < S; j++) {
        int64_t n = lf_test_int(r, j ? 1 : 3, 8), first = n_order;
        for (int64_t i = 0; i < n; i++)
            if (j == 0 || lf_test_int(r, 0, 4) > 0) /* a candidate */
                order[n_order++] = (int32_t)(N + i);
        for (int64_t i = n_order - 1; i > first; i--) { /* shuffle into a finishing order */
            int64_t q = first + lf_test_int(r, 0, i - first);
            int32_t tmp = order[i];
            order[i] = order[q];
            order[q] = tmp;
        }
        off[j + 1] = (int32_t)n_order;
        k[j] = (int32_t)(j ? lf_test_int(r, 0, n_order - first) : lf_test_int(r, 1, n_order - first - 2));
        N += n;
    }
    add_input(st, r, 1, &N, trial == 3 ? -12 : -2.3, trial == 3 ? 12 : 2.3);
}
static lf_tensor *bu_race(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_race_logprob(c, x[0], lf_idata(iv[0]), lf_idata(iv[1]), lf_idata(iv[2]), st->p[0]);
}
static lf_tensor *bu_race_next(lf_ctx *c, lf_tensor **x, lf_tensor **iv, gc_state *st)
{
    return lf_race_next(c, x[0], lf_idata(iv[0]), lf_idata(iv[1]), lf_idata(iv[2]), st->p[0]);
}

static const gc_case cases[] = {
    {"matmul", su_matmul, bu_matmul},
    {"linear", su_linear, bu_linear},
    {"add", su_binary, bu_add},
    {"sub", su_binary, bu_sub},
    {"mul", su_binary, bu_mul},
    {"mul_self", su_one, bu_mul_self},
    {"affine", su_one, bu_affine},
    {"pow", su_pow, bu_pow},
    {"logaddexp", su_logaddexp, bu_logaddexp},
    {"bregman", su_bregman, bu_bregman},
    {"gelu", su_gelu, bu_unary},
    {"relu", su_relu, bu_unary},
    {"silu", su_silu, bu_unary},
    {"softplus", su_softplus, bu_unary},
    {"sigmoid", su_sigmoid, bu_unary},
    {"exp", su_exp, bu_unary},
    {"log", su_log, bu_unary},
    {"log1p", su_log1p, bu_unary},
    {"square", su_square, bu_unary},
    {"log_e", su_log_e, bu_unary},
    {"log1mexp", su_log1mexp, bu_unary},
    {"digamma", su_digamma, bu_unary},
    {"log_softplus", su_log_softplus, bu_unary},
    {"sum", su_one, bu_sum},
    {"mean", su_one, bu_mean},
    {"scatter_add_rows", su_scatter, bu_scatter},
    {"embedding", su_embedding, bu_embedding},
    {"gather", su_gather, bu_gather},
    {"slice_cols", su_slice, bu_slice},
    {"reshape", su_one, bu_reshape},
    {"layernorm", su_layernorm, bu_layernorm},
    {"modulate", su_cond, bu_modulate},
    {"gated_add", su_cond, bu_gated_add},
    {"ln_modulate", su_ln_mod, bu_ln_mod},
    {"softmax", su_one, bu_softmax},
    {"log_softmax", su_one, bu_log_softmax},
    {"cross_entropy", su_cross_entropy, bu_cross_entropy},
    {"rope", su_rope, bu_rope},
    {"attention", su_attention, bu_attention},
    {"rope_attention", su_rope_attention, bu_rope_attention},
    {"dropout", su_one, bu_dropout},
    {"block", su_block, bu_block},
    {"state_logprob", su_logprob, bu_logprob},
    {"kuma_cdf_grid", su_kuma, bu_cdf_grid},
    {"kuma_kl", su_kuma, bu_kuma_kl},
    {"race_logprob", su_race, bu_race},
    {"race_next", su_race, bu_race_next},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
#define N_TRIALS 4

/* ---- the harness -------------------------------------------------------- */

typedef struct {
    lf_ctx ctx;
    lf_tensor *x[GC_MAX_IN], *iv[GC_MAX_INT];
} gc_run;

static lf_tensor *forward(gc_run *run, const gc_case *cs, gc_state *st, bool need_grad)
{
    lf_ctx *ctx = &run->ctx;
    lf_ctx_reset(ctx);
    for (int i = 0; i < st->n_in; i++) {
        run->x[i] = lf_const_real(ctx, st->x[i], st->ndim[i], st->shape[i]);
        ck_assert_ptr_nonnull(run->x[i]);
        run->x[i]->requires_grad = need_grad;
    }
    for (int k = 0; k < st->n_int; k++)
        run->iv[k] = lf_const_int(ctx, st->ints[k], st->int_n[k]);
    lf_tensor *out = cs->build(ctx, run->x, run->iv, st);
    ck_assert_msg(out != NULL, "%s: forward failed (status %d in %s)", cs->name, ctx->status,
                  ctx->status_where ? ctx->status_where : "?");
    return out;
}

static double weighted(const lf_tensor *out, const double *w)
{
    double L = 0;
    for (int64_t i = 0; i < out->numel; i++)
        L += w[i] * lf_data(out)[i];
    return L;
}

static double worst_error_seen = 0;

static void check_case(const gc_case *cs, int trial)
{
    lf_test_rng r = {0x5eed0000ULL + (uint64_t)trial * 7919 + (uint64_t)(cs - cases) * 104729};
    static gc_state st;
    memset(&st, 0, sizeof st);
    cs->setup(&st, &r, trial);
    gc_run run;
    lf_ctx_init(&run.ctx, 1 << 16, 1);
    lf_tensor *out = forward(&run, cs, &st, true);
    int64_t n_out = out->numel;
    double *w = malloc((size_t)n_out * sizeof *w);
    for (int64_t i = 0; i < n_out; i++)
        w[i] = lf_test_range(&r, -1, 1);
    ck_assert_int_eq(lf_backward_from(&run.ctx, out, w), 0);
    /* keep the analytic gradients before the arena is reused */
    static double grad[GC_MAX_IN][GC_MAX_ELEMS];
    for (int i = 0; i < st.n_in; i++) {
        int64_t n = numel_of(&st, i);
        for (int64_t j = 0; j < n; j++)
            grad[i][j] = run.x[i]->grad ? run.x[i]->grad[j] : 0.0;
    }
    double h_rel = st.h_rel > 0 ? st.h_rel : 1e-6, tol = st.tol > 0 ? st.tol : 1e-7;
    double h_floor = st.h_floor > 0 ? st.h_floor : 1.0;
    double worst = 0;
    for (int i = 0; i < st.n_in; i++) {
        int64_t n = numel_of(&st, i);
        for (int64_t j = 0; j < n; j++) {
            double v = st.x[i][j], h = h_rel * fmax(fabs(v), h_floor);
            st.x[i][j] = v + h;
            double Lp = weighted(forward(&run, cs, &st, false), w);
            st.x[i][j] = v - h;
            double Lm = weighted(forward(&run, cs, &st, false), w);
            st.x[i][j] = v;
            double fd = (Lp - Lm) / (2 * h), an = grad[i][j];
            double scale = fmax(fmax(fabs(fd), fabs(an)), 1.0);
            double err = fabs(fd - an) / scale;
            if (err > worst)
                worst = err;
            ck_assert_msg(err <= tol, "%s trial %d: input %d element %ld: analytic %.12g, finite difference %.12g",
                          cs->name, trial, i, (long)j, an, fd);
        }
    }
    if (worst > worst_error_seen)
        worst_error_seen = worst;
    printf("# gradcheck %-16s trial %d: largest relative error %.3g\n", cs->name, trial, worst);
    free(w);
    lf_ctx_free(&run.ctx);
}

START_TEST(test_case)
{
    for (int trial = 0; trial < N_TRIALS; trial++)
        check_case(&cases[_i], trial);
}
END_TEST

/* Every op of the table appears in the tape of at least one case. */
START_TEST(test_coverage)
{
    /* the core's ops, then the schedule ops */
    const lf_op_def *table[128];
    int n_table = 0, seen[128] = {0};
    ck_assert_int_le(lf_core_n_ops + lf_sched_n_ops, 128);
    for (int k = 0; k < lf_core_n_ops; k++)
        table[n_table++] = lf_core_ops[k];
    for (int k = 0; k < lf_sched_n_ops; k++)
        table[n_table++] = lf_sched_ops[k];
    for (int c = 0; c < N_CASES; c++) {
        for (int trial = 0; trial < N_TRIALS; trial++) {
            lf_test_rng r = {0x5eed0000ULL + (uint64_t)trial * 7919 + (uint64_t)c * 104729};
            static gc_state st;
            memset(&st, 0, sizeof st);
            cases[c].setup(&st, &r, trial);
            gc_run run;
            lf_ctx_init(&run.ctx, 1 << 16, 1);
            forward(&run, &cases[c], &st, true);
            for (lf_node *n = run.ctx.tape; n; n = n->prev) {
                int found = 0;
                for (int k = 0; k < n_table; k++)
                    if (table[k] == n->op) {
                        seen[k] = 1;
                        found = 1;
                    }
                ck_assert_msg(found, "op %s is missing from the op table", n->op->name);
            }
            lf_ctx_free(&run.ctx);
        }
    }
    for (int k = 0; k < n_table; k++)
        ck_assert_msg(seen[k], "op %s has no gradient check", table[k]->name);
}
END_TEST

/* lf_grad_scale: the value of its input, and g times the gradient of the
 * same function without it (checked against central differences of
 * sum(w * x * x), whose gradient is 2 w x). */
START_TEST(test_grad_scale)
{
    static const double gs[3] = {0.0, 0.25, 1.0};
    for (int k = 0; k < 3; k++) {
        lf_ctx ctx;
        ck_assert_int_eq(lf_ctx_init(&ctx, 1 << 16, 1), 0);
        lf_real xv[5] = {0.5f, -1.25f, 2.0f, 0.0f, 3.5f}, wv[5] = {1.0f, -2.0f, 0.5f, 3.0f, 0.25f};
        int64_t n = 5;
        lf_tensor *x = lf_const_real(&ctx, xv, 1, &n), *w = lf_const_real(&ctx, wv, 1, &n);
        x->requires_grad = true;
        lf_tensor *y = lf_grad_scale(&ctx, x, gs[k]);
        ck_assert_ptr_nonnull(y);
        for (int i = 0; i < 5; i++)
            ck_assert(lf_data(y)[i] == xv[i]);
        /* the scaled branch y and an unscaled one x: d/dx = (1 + g) (w x) */
        lf_tensor *L = lf_sum(&ctx, lf_mul(&ctx, lf_mul(&ctx, y, x), w));
        ck_assert_int_eq(lf_backward(&ctx, L), 0);
        for (int i = 0; i < 5; i++) {
            double h = 1e-3, v = xv[i], fd = ((v + h) * (v + h) - (v - h) * (v - h)) / (2 * h) * wv[i];
            double want = (1 + gs[k]) / 2 * fd; /* d/dx of w x^2 is 2 w x: half from each branch */
            ck_assert_msg(fabs(x->grad[i] - want) <= 1e-5 * fmax(1, fabs(want)), "g %g element %d: %g, expected %g",
                          gs[k], i, (double)x->grad[i], want);
        }
        lf_ctx_free(&ctx);
    }
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_case, 0, N_CASES);
    tcase_add_test(tc, test_coverage);
    tcase_add_test(tc, test_grad_scale);
    suite_add_tcase(s, tc);
    return s;
}
