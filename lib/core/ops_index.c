/* Reductions and indexing: sum, mean, scatter-add of rows (segment sums),
 * embedding lookup, gather along the last axis, column slices. */
#include <string.h>

#include "core/kernels.h"
#include "core/ops.h"

/* ---- sum / mean -------------------------------------------------------- */

static void sum_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    lf_real g = (lf_real)(n->out->grad[0] * n->fp[0]);
    for (int64_t i = 0; i < n->in[0]->numel; i++)
        dx[i] += g;
}

const lf_op_def lf_op_sum = {"sum", sum_backward};
const lf_op_def lf_op_mean = {"mean", sum_backward};

static lf_tensor *reduce_all(lf_ctx *ctx, const lf_op_def *op, lf_tensor *x, bool mean)
{
    if (!x)
        return NULL;
    if (x->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    int64_t one = 1;
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, op, &x, 1, LF_REAL, 1, &one, &node);
    if (!y)
        return NULL;
    /* serial and in double: the result must not depend on the thread count */
    double acc = 0;
    const lf_real *X = lf_data(x);
    for (int64_t i = 0; i < x->numel; i++)
        acc += X[i];
    double f = mean ? (x->numel ? 1.0 / (double)x->numel : 0.0) : 1.0;
    lf_data(y)[0] = (lf_real)(acc * f);
    if (node)
        node->fp[0] = f;
    return y;
}

lf_tensor *lf_sum(lf_ctx *ctx, lf_tensor *x) { return reduce_all(ctx, &lf_op_sum, x, false); }
lf_tensor *lf_mean(lf_ctx *ctx, lf_tensor *x) { return reduce_all(ctx, &lf_op_mean, x, true); }

/* ---- scatter-add of rows / embedding (the same kernel both ways) ------- */

/* Rows of a tensor for the row-indexed ops: a 1-D tensor is a column. */
static int64_t row_len(const lf_tensor *x) { return x->ndim == 1 ? 1 : lf_cols(x); }

/* dst[idx[i], c] += src[i, c] for c in [c0, c1): splitting by columns keeps
 * the order of additions into each element fixed. */
typedef struct {
    const int32_t *idx;
    int64_t n, C, n_dst;
    const lf_real *src;
    lf_real *dst;
} scatter_args;

static void scatter_cols(void *p, int64_t c0, int64_t c1)
{
    const scatter_args *q = p;
    for (int64_t i = 0; i < q->n; i++) {
        int32_t r = q->idx[i];
        if (r < 0 || r >= q->n_dst)
            continue;
        const lf_real *s = q->src + i * q->C;
        lf_real *d = q->dst + (int64_t)r * q->C;
        for (int64_t c = c0; c < c1; c++)
            d[c] += s[c];
    }
}

/* dst[i, :] (+)= src[idx[i], :] */
static void gather_rows(const int32_t *idx, int64_t n, int64_t C, int64_t n_src, const lf_real *src,
                        lf_real *dst, bool accumulate)
{
    for (int64_t i = 0; i < n; i++) {
        int32_t r = idx[i];
        lf_real *d = dst + i * C;
        if (r < 0 || r >= n_src) {
            if (!accumulate)
                memset(d, 0, (size_t)C * sizeof *d);
            continue;
        }
        const lf_real *s = src + (int64_t)r * C;
        if (accumulate)
            for (int64_t c = 0; c < C; c++)
                d[c] += s[c];
        else
            memcpy(d, s, (size_t)C * sizeof *d);
    }
}

static void scatter_add_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *idx = n->in[1];
    lf_real *dx = lf_grad_buffer(ctx, x);
    if (!dx)
        return;
    gather_rows(lf_idata(idx), idx->numel, row_len(x), n->ip[0], n->out->grad, dx, true);
}

const lf_op_def lf_op_scatter_add_rows = {"scatter_add_rows", scatter_add_backward};

lf_tensor *lf_scatter_add_rows(lf_ctx *ctx, lf_tensor *x, lf_tensor *idx, int64_t n_out)
{
    if (!x || !idx)
        return NULL;
    int64_t C = row_len(x);
    if (x->dtype != LF_REAL || idx->dtype != LF_INT || idx->numel * C != x->numel || n_out < 0)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "scatter_add_rows");
    int64_t shape[2] = {n_out, C};
    lf_tensor *in[2] = {x, idx};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_scatter_add_rows, in, 2, LF_REAL, x->ndim == 1 ? 1 : 2,
                                x->ndim == 1 ? &n_out : shape, &node);
    if (!y)
        return NULL;
    memset(y->data, 0, (size_t)y->numel * sizeof(lf_real));
    scatter_args q = {lf_idata(idx), idx->numel, C, n_out, lf_data(x), lf_data(y)};
    lf_parallel_for(ctx, C, 32, scatter_cols, &q);
    if (node)
        node->ip[0] = n_out;
    return y;
}

static void embedding_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *table = n->in[0], *ids = n->in[1];
    lf_real *dt = lf_grad_buffer(ctx, table);
    if (!dt)
        return;
    scatter_args q = {lf_idata(ids), ids->numel, lf_cols(table), table->shape[0], n->out->grad, dt};
    lf_parallel_for(ctx, lf_cols(table), 32, scatter_cols, &q);
}

const lf_op_def lf_op_embedding = {"embedding", embedding_backward};

lf_tensor *lf_embedding(lf_ctx *ctx, lf_tensor *table, lf_tensor *ids)
{
    if (!table || !ids)
        return NULL;
    if (table->ndim != 2 || table->dtype != LF_REAL || ids->dtype != LF_INT)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "embedding");
    const int32_t *I = lf_idata(ids);
    for (int64_t i = 0; i < ids->numel; i++)
        if (I[i] < 0 || I[i] >= table->shape[0])
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "embedding: id out of range");
    int64_t shape[2] = {ids->numel, table->shape[1]};
    lf_tensor *in[2] = {table, ids};
    lf_tensor *y = lf_op_output(ctx, &lf_op_embedding, in, 2, LF_REAL, 2, shape, NULL);
    if (!y)
        return NULL;
    gather_rows(I, ids->numel, shape[1], table->shape[0], lf_data(table), lf_data(y), false);
    return y;
}

/* ---- gather along the last axis ---------------------------------------- */

static void gather_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *idx = n->in[1];
    lf_real *dx = lf_grad_buffer(ctx, x);
    if (!dx)
        return;
    int64_t C = lf_cols(x);
    const int32_t *I = lf_idata(idx);
    for (int64_t i = 0; i < idx->numel; i++)
        dx[i * C + I[i]] += n->out->grad[i];
}

const lf_op_def lf_op_gather = {"gather", gather_backward};

lf_tensor *lf_gather(lf_ctx *ctx, lf_tensor *x, lf_tensor *idx)
{
    if (!x || !idx)
        return NULL;
    int64_t N = lf_rows(x), C = lf_cols(x);
    if (x->dtype != LF_REAL || idx->dtype != LF_INT || idx->numel != N)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "gather");
    const int32_t *I = lf_idata(idx);
    for (int64_t i = 0; i < N; i++)
        if (I[i] < 0 || I[i] >= C)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "gather: index out of range");
    lf_tensor *in[2] = {x, idx};
    lf_tensor *y = lf_op_output(ctx, &lf_op_gather, in, 2, LF_REAL, 1, &N, NULL);
    if (!y)
        return NULL;
    const lf_real *X = lf_data(x);
    for (int64_t i = 0; i < N; i++)
        lf_data(y)[i] = X[i * C + I[i]];
    return y;
}

/* ---- column slice ------------------------------------------------------ */

static void slice_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0];
    lf_real *dx = lf_grad_buffer(ctx, x);
    if (!dx)
        return;
    int64_t R = lf_rows(x), C = lf_cols(x), start = n->ip[0], len = n->ip[1];
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < len; c++)
            dx[r * C + start + c] += n->out->grad[r * len + c];
}

const lf_op_def lf_op_slice_cols = {"slice_cols", slice_backward};

lf_tensor *lf_slice_cols(lf_ctx *ctx, lf_tensor *x, int64_t start, int64_t len)
{
    if (!x)
        return NULL;
    int64_t R = lf_rows(x), C = lf_cols(x);
    if (x->dtype != LF_REAL || start < 0 || len < 0 || start + len > C)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "slice_cols");
    int64_t shape[2] = {R, len};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_slice_cols, &x, 1, LF_REAL, 2, shape, &node);
    if (!y)
        return NULL;
    for (int64_t r = 0; r < R; r++)
        memcpy(lf_data(y) + r * len, lf_data(x) + r * C + start, (size_t)len * sizeof(lf_real));
    if (node) {
        node->ip[0] = start;
        node->ip[1] = len;
    }
    return y;
}

/* ---- reshape (a view: the output shares the input's data) -------------- */

static void reshape_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    for (int64_t i = 0; i < n->out->numel; i++)
        dx[i] += n->out->grad[i];
}

const lf_op_def lf_op_reshape = {"reshape", reshape_backward};

lf_tensor *lf_reshape(lf_ctx *ctx, lf_tensor *x, int ndim, const int64_t *shape)
{
    if (!x)
        return NULL;
    int64_t n = 1;
    for (int i = 0; i < ndim && ndim <= LF_MAX_DIMS; i++)
        n *= shape[i];
    if (ndim < 1 || ndim > LF_MAX_DIMS || n != x->numel)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "reshape: element counts differ");
    lf_tensor *in[1] = {x};
    lf_node *node;
    /* a zero-size allocation of the output's own data would be wasted: make
     * the output with one element, then point it at the input */
    int64_t one = 1;
    lf_tensor *y = lf_op_output(ctx, &lf_op_reshape, in, 1, x->dtype, 1, &one, &node);
    if (!y)
        return NULL;
    y->data = x->data;
    y->view = true;
    y->ndim = ndim;
    y->numel = n;
    for (int i = 0; i < ndim; i++)
        y->shape[i] = shape[i];
    return y;
}
