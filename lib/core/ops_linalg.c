/* matmul and linear, on cblas. */
#include <string.h>

#include "core/kernels.h"
#include "core/ops.h"

/* ---- matmul ------------------------------------------------------------ */

static void matmul_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *a = n->in[0], *b = n->in[1];
    bool ta = n->ip[0], tb = n->ip[1];
    int64_t M = n->ip[2], N = n->ip[3], K = n->ip[4];
    const lf_real *dc = n->out->grad;
    const lf_real *A = lf_data(a), *B = lf_data(b);
    int64_t lda = lf_cols(a), ldb = lf_cols(b);
    lf_task tasks[2];
    lf_gemm_args ga, gb;
    int nt = 0;
    lf_real beta;
    if (a == b && a->requires_grad && !a->grad)
        lf_grad_buffer(ctx, a); /* both products add into one buffer */
    if (a->requires_grad) {
        lf_real *da = lf_grad_buffer_beta(ctx, a, &beta);
        if (!da)
            return;
        if (!ta) /* dA [M,K] = dC op(B)^T */
            tasks[nt++] = lf_gemm_task(ctx, &ga, false, !tb, M, K, N, 1, dc, N, B, ldb, beta, da, lda);
        else     /* dA [K,M] = op(B) dC^T */
            tasks[nt++] = lf_gemm_task(ctx, &ga, tb, true, K, M, N, 1, B, ldb, dc, N, beta, da, lda);
    }
    if (a == b && nt) { /* same buffer: the second product must not race the first */
        lf_parallel_tasks(ctx, tasks, nt);
        nt = 0;
    }
    if (b->requires_grad) {
        lf_real *db = lf_grad_buffer_beta(ctx, b, &beta);
        if (!db)
            return;
        if (!tb) /* dB [K,N] = op(A)^T dC */
            tasks[nt++] = lf_gemm_task(ctx, &gb, !ta, false, K, N, M, 1, A, lda, dc, N, beta, db, ldb);
        else     /* dB [N,K] = dC^T op(A) */
            tasks[nt++] = lf_gemm_task(ctx, &gb, true, ta, N, K, M, 1, dc, N, A, lda, beta, db, ldb);
    }
    lf_parallel_tasks(ctx, tasks, nt);
}

const lf_op_def lf_op_matmul = {"matmul", matmul_backward};

lf_tensor *lf_matmul(lf_ctx *ctx, lf_tensor *a, lf_tensor *b, bool trans_a, bool trans_b)
{
    if (!a || !b)
        return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->dtype != LF_REAL || b->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "matmul: inputs must be real 2-D");
    int64_t M = trans_a ? a->shape[1] : a->shape[0];
    int64_t K = trans_a ? a->shape[0] : a->shape[1];
    int64_t Kb = trans_b ? b->shape[1] : b->shape[0];
    int64_t N = trans_b ? b->shape[0] : b->shape[1];
    if (K != Kb)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "matmul: inner dimensions differ");
    lf_tensor *in[2] = {a, b};
    int64_t shape[2] = {M, N};
    lf_node *node;
    lf_tensor *c = lf_op_output(ctx, &lf_op_matmul, in, 2, LF_REAL, 2, shape, &node);
    if (!c)
        return NULL;
    lf_gemm_ctx(ctx, trans_a, trans_b, M, N, K, 1, lf_data(a), a->shape[1], lf_data(b), b->shape[1], 0,
            lf_data(c), N);
    if (node) {
        node->ip[0] = trans_a;
        node->ip[1] = trans_b;
        node->ip[2] = M;
        node->ip[3] = N;
        node->ip[4] = K;
    }
    return c;
}

/* ---- linear ------------------------------------------------------------ */

typedef struct {
    const lf_real *dy;
    lf_real *db;
    lf_real beta;
    int64_t rows, cols;
} bias_grad_args;

LF_SIMD_CLONES static void bias_grad_range(void *p, int64_t c0, int64_t c1)
{
    const bias_grad_args *a = p;
    lf_real *restrict db = a->db;
    if (a->beta == 0)
        memset(db + c0, 0, (size_t)(c1 - c0) * sizeof *db);
    for (int64_t r = 0; r < a->rows; r++) {
        const lf_real *restrict row = a->dy + r * a->cols;
        for (int64_t c = c0; c < c1; c++)
            db[c] += row[c];
    }
}

/* dx, dW and db are independent: one hand-off to the threads for the three */
static void linear_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2];
    int64_t N = lf_rows(x), in = lf_cols(x), out = w->shape[0];
    const lf_real *dy = n->out->grad;
    lf_task tasks[3];
    int nt = 0;
    lf_gemm_args gx, gw;
    bias_grad_args a;
    lf_real beta;
    if (x->requires_grad) {
        lf_real *dx = lf_grad_buffer_beta(ctx, x, &beta);
        if (!dx)
            return;
        tasks[nt++] = lf_gemm_task(ctx, &gx, false, false, N, in, out, 1, dy, out, lf_data(w), in, beta, dx, in);
        if (x == w) { /* one buffer for both products: no race between them */
            lf_parallel_tasks(ctx, tasks, nt);
            nt = 0;
        }
    }
    if (w->requires_grad) {
        lf_real *dw = lf_grad_buffer_beta(ctx, w, &beta);
        if (!dw)
            return;
        tasks[nt++] = lf_gemm_task(ctx, &gw, true, false, out, in, N, 1, dy, out, lf_data(x), in, beta, dw, in);
    }
    if (bias && bias->requires_grad) {
        lf_real *db = lf_grad_buffer_beta(ctx, bias, &beta);
        if (!db)
            return;
        a = (bias_grad_args){dy, db, beta, N, out};
        tasks[nt++] = (lf_task){bias_grad_range, &a, out, 64};
    }
    lf_parallel_tasks(ctx, tasks, nt);
}

const lf_op_def lf_op_linear = {"linear", linear_backward};

static lf_tensor *linear_output(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias)
{
    if (!x || !w || (bias && !bias->data))
        return NULL;
    if (w->ndim != 2 || x->dtype != LF_REAL || w->dtype != LF_REAL || lf_cols(x) != w->shape[1])
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "linear: x [N, in] and W [out, in] do not fit");
    int64_t out = w->shape[0];
    if (bias && (bias->numel != out || bias->dtype != LF_REAL))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "linear: bias must have `out` elements");
    int64_t shape[LF_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    lf_tensor *in_t[3] = {x, w, bias};
    return lf_op_output(ctx, &lf_op_linear, in_t, bias ? 3 : 2, LF_REAL, x->ndim, shape, NULL);
}

lf_tensor *lf_linear(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias)
{
    lf_tensor *y = linear_output(ctx, x, w, bias);
    if (!y)
        return NULL;
    int64_t out = w->shape[0], in = w->shape[1], N = lf_rows(x);
    if (bias)
        lf_gemm_bias_ctx(ctx, false, true, N, out, in, lf_data(x), in, lf_data(w), in, lf_data(bias), lf_data(y), out);
    else
        lf_gemm_ctx(ctx, false, true, N, out, in, 1, lf_data(x), in, lf_data(w), in, 0, lf_data(y), out);
    return y;
}

/* ---- linear + activation: one forward pass ------------------------------ */

typedef struct {
    lf_gemm_args g;
    lf_unary act;
    const lf_real *pre;
    lf_real *y;
} linear_act_args;

/* each share applies the activation to the rows it has just computed */
static void linear_act_rows(void *p, int64_t m0, int64_t m1)
{
    linear_act_args *a = p;
    lf_gemm_rows(&a->g, m0, m1);
    lf_unary_rows(a->act, a->pre + m0 * a->g.ldc, a->y + m0 * a->g.ldc, (m1 - m0) * a->g.ldc);
}

lf_tensor *lf_linear_act(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias, lf_unary act)
{
    if (act != LF_GELU && act != LF_RELU && act != LF_SILU)
        return lf_unary_op(ctx, act, lf_linear(ctx, x, w, bias));
    lf_tensor *pre = linear_output(ctx, x, w, bias);
    lf_tensor *y = lf_unary_output(ctx, act, pre);
    if (!y)
        return NULL;
    int64_t out = w->shape[0], in = w->shape[1], N = lf_rows(x);
    linear_act_args a = {.act = act, .pre = lf_data(pre), .y = lf_data(y)};
    lf_task t = lf_gemm_task(ctx, &a.g, false, true, N, out, in, 1, lf_data(x), in, lf_data(w), in, 0,
                             lf_data(pre), out);
    a.g.bias = bias ? lf_data(bias) : NULL;
    lf_parallel_for(ctx, N, t.grain, linear_act_rows, &a);
    return y;
}
