#include <math.h>
#include <string.h>

#include "core/fastmath.h"
#include "core/kernels.h"
#include "lflex/sched_ops.h"

/* ---- state log-probabilities ------------------------------------------- */

typedef struct {
    double a, c_const;
    double *t;       /* per token (copied into the arena) */
    double *db, *dc; /* derivatives saved by the forward pass */
} logprob_saved;

static void logprob_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *b = n->in[0], *state = n->in[1], *c = n->n_in > 2 ? n->in[2] : NULL;
    const logprob_saved *sv = n->saved;
    const lf_real *g = n->out->grad;
    (void)state;
    if (b->requires_grad) {
        lf_real *gb = lf_grad_buffer(ctx, b);
        if (!gb)
            return;
        for (int64_t i = 0; i < b->numel; i++)
            gb[i] += (lf_real)(g[i] * sv->db[i]);
    }
    if (c && c->requires_grad) {
        lf_real *gc = lf_grad_buffer(ctx, c);
        if (!gc)
            return;
        for (int64_t i = 0; i < c->numel; i++)
            gc[i] += (lf_real)(g[i] * sv->dc[i]);
    }
}

const lf_op_def lf_op_state_logprob = {"state_logprob", logprob_backward};

lf_tensor *lf_state_logprob(lf_ctx *ctx, lf_tensor *b, lf_tensor *c, double c_const, const double *t,
                            lf_tensor *state, double a)
{
    if (!b || !state || (c && !c->data))
        return NULL;
    int64_t N = b->numel;
    if (b->dtype != LF_REAL || state->dtype != LF_INT || state->numel != N ||
        (c && (c->dtype != LF_REAL || c->numel != N)))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "state_logprob");
    lf_tensor *in[3] = {b, state, c};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_state_logprob, in, c ? 3 : 2, LF_REAL, 1, &N, &node);
    logprob_saved *sv = y ? lf_arena_alloc(&ctx->arena, sizeof *sv) : NULL;
    double *buf = sv ? lf_arena_alloc(&ctx->arena, (size_t)(3 * (N ? N : 1)) * sizeof(double)) : NULL;
    if (!buf)
        return y ? lf_ctx_fail(ctx, LFLEX_ENOMEM, "state_logprob") : NULL;
    sv->a = a;
    sv->c_const = c_const;
    sv->t = buf;
    sv->db = buf + N;
    sv->dc = buf + 2 * N;
    memcpy(sv->t, t, (size_t)N * sizeof(double));
    const lf_real *B = lf_data(b), *Cv = c ? lf_data(c) : NULL;
    const int32_t *S = lf_idata(state);
    for (int64_t i = 0; i < N; i++) {
        double ci = Cv ? Cv[i] : c_const;
        lf_data(y)[i] = (lf_real)lf_state_log_prob((lf_token_state)S[i], t[i], a, B[i], ci, &sv->db[i], &sv->dc[i]);
    }
    if (node)
        node->saved = sv;
    return y;
}

/* ---- CDF on a grid ------------------------------------------------------- */

/* dF/db = (1 - F) w with w = -log(1 - t^a): saved as w per grid point. */
static void cdf_grid_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *b = n->in[0];
    lf_real *gb = lf_grad_buffer(ctx, b);
    if (!gb)
        return;
    const double *w = n->saved;
    int64_t G = n->ip[0];
    const lf_real *F = lf_data(n->out), *g = n->out->grad;
    for (int64_t i = 0; i < b->numel; i++) {
        double acc = 0;
        for (int64_t j = 0; j < G; j++)
            acc += g[i * G + j] * (1 - (double)F[i * G + j]) * w[j];
        gb[i] += (lf_real)acc;
    }
}

const lf_op_def lf_op_kuma_cdf_grid = {"kuma_cdf_grid", cdf_grid_backward};

/* 1 - (1 - t^a)^b = -expm1(-b w) for every token and grid point: a short
 * series where b w is small (where 1 - e^-x would cancel), 1 - e^-x
 * elsewhere; branch-free so that the loop vectorises (N x G terms per
 * learned schedule and step). */
LF_SIMD_CLONES static void cdf_grid_rows(const lf_real *b, int64_t N, const lf_real *wr, int64_t G, lf_real *F)
{
    for (int64_t i = 0; i < N; i++) {
        lf_real bi = b[i], *row = F + i * G;
        for (int64_t j = 0; j < G; j++) {
            lf_real x = bi * wr[j];
#if LF_REAL_IS_DOUBLE
            row[j] = -expm1(-x); /* exact, for the finite-difference checks */
#else
            lf_real series = x * (1 - x * ((lf_real)0.5 - x * ((lf_real)(1.0 / 6) - x * ((lf_real)(1.0 / 24) -
                                                                                           x * (lf_real)(1.0 / 120)))));
            row[j] = x < (lf_real)0.05 ? series : 1 - lf_fast_exp(-x);
#endif
        }
    }
}

lf_tensor *lf_kuma_cdf_grid(lf_ctx *ctx, lf_tensor *b, const double *grid, int64_t G, double a)
{
    if (!b)
        return NULL;
    if (b->dtype != LF_REAL || G < 1)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "kuma_cdf_grid");
    int64_t N = b->numel, shape[2] = {N, G};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_kuma_cdf_grid, &b, 1, LF_REAL, 2, shape, &node);
    double *w = y ? lf_arena_alloc(&ctx->arena, (size_t)G * sizeof(double)) : NULL;
    if (!w)
        return y ? lf_ctx_fail(ctx, LFLEX_ENOMEM, "kuma_cdf_grid") : NULL;
    for (int64_t j = 0; j < G; j++)
        w[j] = -log1p(-pow(grid[j], a));
    lf_real *wr = lf_arena_alloc(&ctx->arena, (size_t)G * sizeof *wr);
    if (!wr)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "kuma_cdf_grid");
    for (int64_t j = 0; j < G; j++)
        wr[j] = (lf_real)w[j];
    cdf_grid_rows(lf_data(b), N, wr, G, lf_data(y));
    if (node) {
        node->saved = w;
        node->ip[0] = G;
    }
    return y;
}

/* ---- KL to uniform --------------------------------------------------------- */

static void kl_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *b = n->in[0];
    lf_real *gb = lf_grad_buffer(ctx, b);
    if (!gb)
        return;
    for (int64_t i = 0; i < b->numel; i++) {
        double d;
        lf_kuma_kl_uniform(n->fp[0], lf_data(b)[i], &d);
        gb[i] += (lf_real)(n->out->grad[i] * d);
    }
}

const lf_op_def lf_op_kuma_kl = {"kuma_kl", kl_backward};

lf_tensor *lf_kuma_kl(lf_ctx *ctx, lf_tensor *b, double a)
{
    if (!b)
        return NULL;
    if (b->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "kuma_kl");
    int64_t N = b->numel;
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_kuma_kl, &b, 1, LF_REAL, 1, &N, &node);
    if (!y)
        return NULL;
    for (int64_t i = 0; i < N; i++)
        lf_data(y)[i] = (lf_real)lf_kuma_kl_uniform(a, lf_data(b)[i], NULL);
    if (node)
        node->fp[0] = a;
    return y;
}

const lf_op_def *const lf_sched_ops[] = {&lf_op_state_logprob, &lf_op_kuma_cdf_grid, &lf_op_kuma_kl};
const int lf_sched_n_ops = (int)(sizeof lf_sched_ops / sizeof lf_sched_ops[0]);
