#include <math.h>
#include <string.h>

#include "core/fastmath.h"
#include "core/kernels.h"
#include "core/special.h"
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

/* ---- the race of a learned unmasking order ---------------------------------- */

/* The race ops read log-weights l_i = log w_i: any real, so that a token
 * pushed far back keeps its own place instead of tying at a floor. */

/* What the backward pass needs: the race's candidates in finishing order and
 * how many of each sequence's finished (copied into the arena). */
typedef struct {
    int32_t *order, *order_off, *k;
    int64_t n_seq;
} race_saved;

/* lz[r] = log of the summed weights of the candidates o[r..nc), summed from
 * the end. */
static void race_suffix(const lf_real *l, const int32_t *o, int64_t nc, double *lz)
{
    double z = -INFINITY;
    for (int64_t r = nc - 1; r >= 0; r--)
        lz[r] = z = lf_logaddexp(z, (double)l[o[r]]);
}

/* The longest sequence of candidates. */
static int64_t race_longest(const int32_t *order_off, int64_t n_seq)
{
    int64_t L = 1;
    for (int64_t j = 0; j < n_seq; j++)
        if (order_off[j + 1] - order_off[j] > L)
            L = order_off[j + 1] - order_off[j];
    return L;
}

/* y[order[m]] = l_order[m] - lz_m for the first k of a sequence's
 * candidates, lz_m the log of the suffix sum of weights from rank m:
 * d sum_m g_m y_m / d l_i = g_i [rank(i) < k] - sum_{m <= min(rank(i), k - 1)} g_m e^(l_i - lz_m).
 * The sum runs as S_r = sum_m g_m e^(lz_r - lz_m), each step scaled by
 * e^(lz_r - lz_(r-1)) <= 1 (no overflow however the weights spread). */
static void race_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *w = n->in[0];
    const race_saved *sv = n->saved;
    lf_real *gl = lf_grad_buffer(ctx, w);
    if (!gl)
        return;
    double *lz = lf_arena_alloc(&ctx->arena, (size_t)race_longest(sv->order_off, sv->n_seq) * sizeof *lz);
    if (!lz) {
        lf_ctx_fail(ctx, LFLEX_ENOMEM, "race_logprob backward");
        return;
    }
    const lf_real *l = lf_data(w), *g = n->out->grad;
    for (int64_t j = 0; j < sv->n_seq; j++) {
        const int32_t *o = sv->order + sv->order_off[j];
        int64_t nc = sv->order_off[j + 1] - sv->order_off[j], k = sv->k[j];
        race_suffix(l, o, nc, lz);
        double S = 0;
        for (int64_t r = 0; r < nc; r++) {
            int32_t i = o[r];
            if (r > 0)
                S *= exp(lz[r] - lz[r - 1]);
            if (r < k)
                S += g[i];
            gl[i] += (lf_real)((r < k ? g[i] : 0.0) - exp((double)l[i] - lz[r]) * S);
        }
    }
}

const lf_op_def lf_op_race_logprob = {"race_logprob", race_backward};

/* Is a race (order, order_off, k over n_seq sequences) one of w's tokens? */
static bool race_valid(const lf_tensor *w, const int32_t *order, const int32_t *order_off, const int32_t *k,
                       int64_t n_seq)
{
    if (w->dtype != LF_REAL || n_seq < 0 || !order_off || order_off[0] != 0 || order_off[n_seq] > w->numel)
        return false;
    for (int64_t j = 0; j < n_seq; j++)
        if (order_off[j + 1] < order_off[j] || k[j] < 0 || k[j] > order_off[j + 1] - order_off[j])
            return false;
    for (int64_t m = 0; m < order_off[n_seq]; m++)
        if (order[m] < 0 || order[m] >= w->numel)
            return false;
    return true;
}

/* The race kept for the backward pass (copied into the arena). */
static bool race_save(lf_ctx *ctx, lf_node *node, const int32_t *order, const int32_t *order_off, const int32_t *k,
                      int64_t n_seq)
{
    if (!node)
        return true;
    int64_t n_order = order_off[n_seq];
    race_saved *sv = lf_arena_alloc(&ctx->arena, sizeof *sv);
    int32_t *buf = lf_arena_alloc(&ctx->arena, (size_t)(n_order + 2 * n_seq + 2) * sizeof(int32_t));
    if (!sv || !buf)
        return false;
    sv->order = buf;
    sv->order_off = buf + n_order;
    sv->k = buf + n_order + n_seq + 1;
    sv->n_seq = n_seq;
    memcpy(sv->order, order, (size_t)n_order * sizeof(int32_t));
    memcpy(sv->order_off, order_off, (size_t)(n_seq + 1) * sizeof(int32_t));
    memcpy(sv->k, k, (size_t)n_seq * sizeof(int32_t));
    node->saved = sv;
    return true;
}

/* The zeroed output [N] of a race op over l, its input checked. */
static lf_tensor *race_output(lf_ctx *ctx, const lf_op_def *op, lf_tensor *l, const int32_t *order,
                              const int32_t *order_off, const int32_t *k, int64_t n_seq, lf_node **node)
{
    if (!l)
        return NULL;
    if (!race_valid(l, order, order_off, k, n_seq))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    int64_t N = l->numel;
    lf_tensor *y = lf_op_output(ctx, op, &l, 1, LF_REAL, 1, &N, node);
    if (y)
        memset(lf_data(y), 0, (size_t)N * sizeof(lf_real));
    return y;
}

lf_tensor *lf_race_logprob(lf_ctx *ctx, lf_tensor *l, const int32_t *order, const int32_t *order_off,
                           const int32_t *k, int64_t n_seq)
{
    lf_node *node;
    lf_tensor *y = race_output(ctx, &lf_op_race_logprob, l, order, order_off, k, n_seq, &node);
    if (!y)
        return NULL;
    double *lz = lf_arena_alloc(&ctx->arena, (size_t)race_longest(order_off, n_seq) * sizeof *lz);
    if (!lz)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "race_logprob");
    const lf_real *L = lf_data(l);
    for (int64_t j = 0; j < n_seq; j++) {
        const int32_t *o = order + order_off[j];
        race_suffix(L, o, order_off[j + 1] - order_off[j], lz);
        for (int64_t r = 0; r < k[j]; r++)
            lf_data(y)[o[r]] = (lf_real)((double)L[o[r]] - lz[r]);
    }
    if (!race_save(ctx, node, order, order_off, k, n_seq))
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "race_logprob");
    return y;
}

/* The log of the summed weights of sequence j's unfinished candidates
 * (ranks >= k). */
static double race_unfinished(const lf_real *l, const int32_t *order, const int32_t *order_off, const int32_t *k,
                              int64_t j)
{
    double z = -INFINITY;
    for (int64_t r = order_off[j] + k[j]; r < order_off[j + 1]; r++)
        z = lf_logaddexp(z, (double)l[order[r]]);
    return z;
}

/* y_i = e^(l_i - lz), a softmax over the unfinished candidates of a
 * sequence: d sum_i g_i y_i / d l_j = y_j (g_j - sum_i g_i y_i). */
static void race_next_backward(lf_ctx *ctx, lf_node *n)
{
    const race_saved *sv = n->saved;
    lf_real *gl = lf_grad_buffer(ctx, n->in[0]);
    if (!gl)
        return;
    const lf_real *y = lf_data(n->out), *g = n->out->grad;
    const int32_t *o = sv->order;
    for (int64_t j = 0; j < sv->n_seq; j++) {
        double gy = 0;
        for (int64_t r = sv->order_off[j] + sv->k[j]; r < sv->order_off[j + 1]; r++)
            gy += (double)g[o[r]] * y[o[r]];
        for (int64_t r = sv->order_off[j] + sv->k[j]; r < sv->order_off[j + 1]; r++)
            gl[o[r]] += (lf_real)((double)y[o[r]] * ((double)g[o[r]] - gy));
    }
}

const lf_op_def lf_op_race_next = {"race_next", race_next_backward};

lf_tensor *lf_race_next(lf_ctx *ctx, lf_tensor *l, const int32_t *order, const int32_t *order_off, const int32_t *k,
                        int64_t n_seq)
{
    lf_node *node;
    lf_tensor *y = race_output(ctx, &lf_op_race_next, l, order, order_off, k, n_seq, &node);
    if (!y)
        return NULL;
    const lf_real *L = lf_data(l);
    for (int64_t j = 0; j < n_seq; j++) {
        double lz = race_unfinished(L, order, order_off, k, j);
        for (int64_t r = order_off[j] + k[j]; r < order_off[j + 1]; r++)
            lf_data(y)[order[r]] = (lf_real)exp((double)L[order[r]] - lz);
    }
    if (!race_save(ctx, node, order, order_off, k, n_seq))
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "race_next");
    return y;
}

const lf_op_def *const lf_sched_ops[] = {&lf_op_state_logprob, &lf_op_kuma_cdf_grid, &lf_op_kuma_kl,
                                         &lf_op_race_logprob, &lf_op_race_next};
const int lf_sched_n_ops = (int)(sizeof lf_sched_ops / sizeof lf_sched_ops[0]);
