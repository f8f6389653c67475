/* Softmax, log-softmax and cross-entropy over the last dimension. */
#include <math.h>

#include "core/fastmath.h"
#include "core/kernels.h"
#include "core/lanes.h"
#include "core/ops.h"

enum { SM_SOFTMAX, SM_LOG_SOFTMAX };

/* y = softmax or log-softmax of each row; lse (may be NULL) gets each row's
 * log-sum-exp. */
typedef struct {
    const lf_real *x;
    lf_real *y, *lse;
    int64_t C;
    int kind;
} sm_args;

LF_SIMD_CLONES static void sm_fwd_rows(void *p, int64_t r0, int64_t r1)
{
    const sm_args *q = p;
    int64_t C = q->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *x = q->x + r * C;
        lf_real *y = q->y ? q->y + r * C : NULL;
        lf_real mx, s;
        LF_MAX_LANES(mx, C, c, x[c]);
        LF_SUM_LANES(lf_real, s, C, c, lf_fast_exp(x[c] - mx));
        lf_real lse = mx + (lf_real)log((double)s);
        if (y) {
            if (q->kind == SM_SOFTMAX)
                for (int64_t c = 0; c < C; c++)
                    y[c] = lf_fast_exp(x[c] - lse);
            else
                for (int64_t c = 0; c < C; c++)
                    y[c] = x[c] - lse;
        }
        if (q->lse)
            q->lse[r] = (lf_real)lse;
    }
}

typedef struct {
    const lf_real *y, *dy;
    lf_real *dx;
    int64_t C;
    int kind;
} sm_bwd_args;

LF_SIMD_CLONES static void sm_bwd_rows(void *p, int64_t r0, int64_t r1)
{
    const sm_bwd_args *q = p;
    int64_t C = q->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *y = q->y + r * C, *dy = q->dy + r * C;
        lf_real *dx = q->dx + r * C;
        lf_real s;
        if (q->kind == SM_SOFTMAX) {
            LF_SUM_LANES(lf_real, s, C, c, dy[c] * y[c]);
            for (int64_t c = 0; c < C; c++)
                dx[c] += y[c] * (dy[c] - s);
        } else {
            LF_SUM_LANES(lf_real, s, C, c, dy[c]);
            for (int64_t c = 0; c < C; c++)
                dx[c] += dy[c] - lf_fast_exp(y[c]) * s;
        }
    }
}

static void softmax_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    sm_bwd_args q = {lf_data(n->out), n->out->grad, dx, lf_cols(n->out), (int)n->ip[0]};
    lf_parallel_for(ctx, lf_rows(n->out), 16, sm_bwd_rows, &q);
}

const lf_op_def lf_op_softmax = {"softmax", softmax_backward};
const lf_op_def lf_op_log_softmax = {"log_softmax", softmax_backward};

static lf_tensor *softmax_like(lf_ctx *ctx, int kind, lf_tensor *x)
{
    const lf_op_def *op = kind == SM_SOFTMAX ? &lf_op_softmax : &lf_op_log_softmax;
    if (!x)
        return NULL;
    if (x->dtype != LF_REAL || lf_cols(x) < 1)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, op, &x, 1, LF_REAL, x->ndim, x->shape, &node);
    if (!y)
        return NULL;
    sm_args q = {lf_data(x), lf_data(y), NULL, lf_cols(x), kind};
    lf_parallel_for(ctx, lf_rows(x), 16, sm_fwd_rows, &q);
    if (node)
        node->ip[0] = kind;
    return y;
}

lf_tensor *lf_softmax(lf_ctx *ctx, lf_tensor *x) { return softmax_like(ctx, SM_SOFTMAX, x); }
lf_tensor *lf_log_softmax(lf_ctx *ctx, lf_tensor *x) { return softmax_like(ctx, SM_LOG_SOFTMAX, x); }

/* ---- cross-entropy ------------------------------------------------------ */

typedef struct {
    const lf_real *x, *lse, *g;
    const int32_t *t;
    lf_real *dx;
    int64_t C;
} ce_bwd_args;

LF_SIMD_CLONES static void ce_bwd_rows(void *p, int64_t r0, int64_t r1)
{
    const ce_bwd_args *q = p;
    int64_t C = q->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *x = q->x + r * C;
        lf_real *dx = q->dx + r * C;
        lf_real g = q->g[r], lse = q->lse[r];
        if (g == 0)
            continue;
        for (int64_t c = 0; c < C; c++)
            dx[c] += g * lf_fast_exp(x[c] - lse);
        dx[q->t[r]] -= g;
    }
}

static void ce_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    ce_bwd_args q = {lf_data(n->in[0]), n->saved, n->out->grad, lf_idata(n->in[1]), dx, lf_cols(n->in[0])};
    lf_parallel_for(ctx, lf_rows(n->in[0]), 16, ce_bwd_rows, &q);
}

const lf_op_def lf_op_cross_entropy = {"cross_entropy", ce_backward};

lf_tensor *lf_cross_entropy(lf_ctx *ctx, lf_tensor *logits, lf_tensor *target)
{
    if (!logits || !target)
        return NULL;
    int64_t N = lf_rows(logits), C = lf_cols(logits);
    if (logits->dtype != LF_REAL || target->dtype != LF_INT || target->numel != N || C < 1)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "cross_entropy");
    const int32_t *T = lf_idata(target);
    for (int64_t i = 0; i < N; i++)
        if (T[i] < 0 || T[i] >= C)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "cross_entropy: target out of range");
    lf_tensor *in[2] = {logits, target};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_cross_entropy, in, 2, LF_REAL, 1, &N, &node);
    lf_real *lse = y ? lf_arena_alloc(&ctx->arena, (size_t)(N ? N : 1) * sizeof(lf_real)) : NULL;
    if (!lse)
        return y ? lf_ctx_fail(ctx, LFLEX_ENOMEM, "cross_entropy") : NULL;
    sm_args q = {lf_data(logits), NULL, lse, C, SM_LOG_SOFTMAX};
    lf_parallel_for(ctx, N, 16, sm_fwd_rows, &q);
    const lf_real *X = lf_data(logits);
    for (int64_t i = 0; i < N; i++)
        lf_data(y)[i] = lse[i] - X[i * C + T[i]];
    if (node)
        node->saved = lse;
    return y;
}
