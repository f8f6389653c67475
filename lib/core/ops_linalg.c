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
    if (a->requires_grad) {
        lf_real *da = lf_grad_buffer(ctx, a);
        if (!da)
            return;
        if (!ta) /* dA [M,K] = dC op(B)^T */
            lf_gemm_ctx(ctx, false, !tb, M, K, N, 1, dc, N, B, ldb, 1, da, lda);
        else     /* dA [K,M] = op(B) dC^T */
            lf_gemm_ctx(ctx, tb, true, K, M, N, 1, B, ldb, dc, N, 1, da, lda);
    }
    if (b->requires_grad) {
        lf_real *db = lf_grad_buffer(ctx, b);
        if (!db)
            return;
        if (!tb) /* dB [K,N] = op(A)^T dC */
            lf_gemm_ctx(ctx, !ta, false, K, N, M, 1, A, lda, dc, N, 1, db, ldb);
        else     /* dB [N,K] = dC^T op(A) */
            lf_gemm_ctx(ctx, true, ta, N, K, M, 1, dc, N, A, lda, 1, db, ldb);
    }
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
    int64_t rows, cols;
} bias_grad_args;

LF_SIMD_CLONES static void bias_grad_range(void *p, int64_t c0, int64_t c1)
{
    const bias_grad_args *a = p;
    for (int64_t r = 0; r < a->rows; r++) {
        const lf_real *row = a->dy + r * a->cols;
        for (int64_t c = c0; c < c1; c++)
            a->db[c] += row[c];
    }
}

static void linear_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2];
    int64_t N = lf_rows(x), in = lf_cols(x), out = w->shape[0];
    const lf_real *dy = n->out->grad;
    if (x->requires_grad) {
        lf_real *dx = lf_grad_buffer(ctx, x);
        if (!dx)
            return;
        lf_gemm_ctx(ctx, false, false, N, in, out, 1, dy, out, lf_data(w), in, 1, dx, in);
    }
    if (w->requires_grad) {
        lf_real *dw = lf_grad_buffer(ctx, w);
        if (!dw)
            return;
        lf_gemm_ctx(ctx, true, false, out, in, N, 1, dy, out, lf_data(x), in, 1, dw, in);
    }
    if (bias && bias->requires_grad) {
        lf_real *db = lf_grad_buffer(ctx, bias);
        if (!db)
            return;
        bias_grad_args a = {dy, db, N, out};
        lf_parallel_for(ctx, out, 64, bias_grad_range, &a);
    }
}

const lf_op_def lf_op_linear = {"linear", linear_backward};

lf_tensor *lf_linear(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias)
{
    if (!x || !w || (bias && !bias->data))
        return NULL;
    if (w->ndim != 2 || x->dtype != LF_REAL || w->dtype != LF_REAL || lf_cols(x) != w->shape[1])
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "linear: x [N, in] and W [out, in] do not fit");
    int64_t out = w->shape[0], in = w->shape[1], N = lf_rows(x);
    if (bias && (bias->numel != out || bias->dtype != LF_REAL))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "linear: bias must have `out` elements");
    int64_t shape[LF_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    lf_tensor *in_t[3] = {x, w, bias};
    lf_tensor *y = lf_op_output(ctx, &lf_op_linear, in_t, bias ? 3 : 2, LF_REAL, x->ndim, shape, NULL);
    if (!y)
        return NULL;
    lf_real *Y = lf_data(y);
    if (bias) {
        const lf_real *B = lf_data(bias);
        for (int64_t r = 0; r < N; r++)
            memcpy(Y + r * out, B, (size_t)out * sizeof *Y);
    }
    lf_gemm_ctx(ctx, false, true, N, out, in, 1, lf_data(x), in, lf_data(w), in, bias ? 1 : 0, Y, out);
    return y;
}
