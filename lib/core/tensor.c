/* Tensors, the context and the reverse pass. */
#include <stdlib.h>
#include <string.h>

#include "lf_config.h"

#include "core/core.h"
#include "core/threads.h"

#include <pthread.h>

#if LF_HAVE_OPENBLAS
/* declared by OpenBLAS's cblas.h; repeated here to keep cblas.h out of this file */
void openblas_set_num_threads(int num_threads);

static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}
#endif

int lf_ctx_init(lf_ctx *ctx, size_t arena_bytes, int n_threads)
{
    memset(ctx, 0, sizeof *ctx);
    lf_arena_init(&ctx->arena, arena_bytes);
    ctx->grad_enabled = true;
    ctx->recycling = true;
    ctx->n_threads = n_threads > 0 ? n_threads : 1;
#if LF_HAVE_OPENBLAS
    /* one set of threads does the work: ours (a multi-threaded BLAS called
     * from our threads would fight them for the cores). Once per process,
     * so that contexts created while others compute never touch it again. */
    static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
    pthread_once(&blas_once, blas_single_thread);
#endif
    if (ctx->n_threads > 1 && lf_pool_create(&ctx->pool, ctx->n_threads) != LFLEX_OK) {
        lf_arena_free(&ctx->arena);
        return LFLEX_ENOMEM;
    }
    return LFLEX_OK;
}

void lf_ctx_free(lf_ctx *ctx)
{
    if (!ctx)
        return;
    lf_arena_free(&ctx->arena);
    for (int i = 0; i < LF_ROPE_TABLES; i++) {
        lf_real *t = ctx->rope[i].tab;
        while (t) { /* each block: LF_ALIGN bytes ending in the link, then the table */
            lf_real *prev = ((lf_real **)t)[-1];
            free((char *)t - LF_ALIGN);
            t = prev;
        }
        ctx->rope[i] = (lf_rope_table){0};
    }
    lf_pool_free(ctx->pool);
    ctx->pool = NULL;
    ctx->tape = NULL;
    ctx->n_nodes = 0;
}

int lf_ctx_reset(lf_ctx *ctx)
{
    ctx->n_recycle = 0; /* the lists point into the arena */
    ctx->flops = 0;
    ctx->tape = NULL;
    ctx->n_nodes = 0;
    ctx->status = LFLEX_OK;
    ctx->status_where = NULL;
    return lf_arena_reset(&ctx->arena);
}

lf_tensor *lf_ctx_fail(lf_ctx *ctx, int status, const char *where)
{
    if (ctx->status == LFLEX_OK) {
        ctx->status = status;
        ctx->status_where = where;
    }
    return NULL;
}

static bool shape_ok(int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 1 || ndim > LF_MAX_DIMS)
        return false;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / 8 / shape[i]))
            return false;
        n *= shape[i];
    }
    *numel = n;
    return true;
}

static size_t elem_size(lf_dtype dt) { return dt == LF_REAL ? sizeof(lf_real) : sizeof(int32_t); }

lf_tensor *lf_tensor_new(lf_ctx *ctx, lf_dtype dt, int ndim, const int64_t *shape)
{
    int64_t numel;
    if (!shape_ok(ndim, shape, &numel))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "tensor shape");
    lf_tensor *t = lf_arena_alloc(&ctx->arena, sizeof *t);
    void *data = t ? lf_arena_alloc(&ctx->arena, (size_t)numel * elem_size(dt)) : NULL;
    if (!data)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "tensor");
    memset(t, 0, sizeof *t);
    t->data = data;
    t->ndim = ndim;
    t->dtype = dt;
    t->numel = numel;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return t;
}

lf_tensor *lf_new1(lf_ctx *ctx, lf_dtype dt, int64_t n0)
{
    return lf_tensor_new(ctx, dt, 1, &n0);
}

lf_tensor *lf_new2(lf_ctx *ctx, lf_dtype dt, int64_t n0, int64_t n1)
{
    int64_t s[2] = {n0, n1};
    return lf_tensor_new(ctx, dt, 2, s);
}

lf_tensor *lf_zeros2(lf_ctx *ctx, int64_t n0, int64_t n1)
{
    lf_tensor *t = lf_new2(ctx, LF_REAL, n0, n1);
    if (t)
        memset(t->data, 0, (size_t)t->numel * sizeof(lf_real));
    return t;
}

lf_tensor *lf_const_real(lf_ctx *ctx, const lf_real *src, int ndim, const int64_t *shape)
{
    lf_tensor *t = lf_tensor_new(ctx, LF_REAL, ndim, shape);
    if (t && t->numel)
        memcpy(t->data, src, (size_t)t->numel * sizeof(lf_real));
    return t;
}

lf_tensor *lf_const_int(lf_ctx *ctx, const int32_t *src, int64_t n)
{
    lf_tensor *t = lf_new1(ctx, LF_INT, n);
    if (t && n)
        memcpy(t->data, src, (size_t)n * sizeof(int32_t));
    return t;
}

void lf_tensor_wrap(lf_tensor *t, lf_dtype dt, void *data, lf_real *grad, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->grad = grad;
    t->dtype = dt;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->requires_grad = grad != NULL;
    t->persistent = true;
}

/* the size the arena hands out for a request of `bytes` */
static size_t arena_size(size_t bytes) { return ((bytes ? bytes : 1) + LF_ALIGN - 1) / LF_ALIGN * LF_ALIGN; }

void lf_recycle(lf_ctx *ctx, void *p, size_t bytes)
{
    if (!p)
        return;
    bytes = arena_size(bytes);
    for (int i = 0; i < ctx->n_recycle; i++)
        if (ctx->recycle[i].bytes == bytes) {
            *(void **)p = ctx->recycle[i].head;
            ctx->recycle[i].head = p;
            return;
        }
    if (ctx->n_recycle == LF_RECYCLE_BUCKETS)
        return; /* too many sizes: the buffer just stays unused until the reset */
    lf_recycle_bucket *b = &ctx->recycle[ctx->n_recycle++];
    b->bytes = bytes;
    *(void **)p = NULL;
    b->head = p;
}

void *lf_reuse(lf_ctx *ctx, size_t bytes)
{
    bytes = arena_size(bytes);
    for (int i = 0; i < ctx->n_recycle; i++)
        if (ctx->recycle[i].bytes == bytes && ctx->recycle[i].head) {
            void *p = ctx->recycle[i].head;
            ctx->recycle[i].head = *(void **)p;
            return p;
        }
    return NULL;
}

static lf_real *new_grad(lf_ctx *ctx, lf_tensor *t, bool zero)
{
    size_t bytes = (size_t)t->numel * sizeof(lf_real);
    lf_real *p = lf_reuse(ctx, bytes);
    if (!p)
        p = lf_arena_alloc(&ctx->arena, bytes);
    if (!p) {
        lf_ctx_fail(ctx, LFLEX_ENOMEM, "gradient buffer");
        return NULL;
    }
    if (zero)
        lf_zero(ctx, p, t->numel);
    t->grad = p;
    return p;
}

lf_real *lf_grad_buffer(lf_ctx *ctx, lf_tensor *t)
{
    return t->grad ? t->grad : new_grad(ctx, t, true);
}

lf_real *lf_grad_buffer_beta(lf_ctx *ctx, lf_tensor *t, lf_real *beta)
{
    *beta = t->grad ? 1 : 0;
    return t->grad ? t->grad : new_grad(ctx, t, false);
}

bool lf_grad_pass_through(lf_node *n, lf_tensor *x)
{
    lf_tensor *o = n->out;
    if (!x->requires_grad || x->grad || !o->grad || o->keep || o->persistent || x->numel != o->numel)
        return false;
    x->grad = o->grad;
    o->grad = NULL;
    return true;
}

/* After the backward of the node that made `o`: its gradient and data are
 * dead, unless the caller keeps them. */
static void release_output(lf_ctx *ctx, lf_tensor *o)
{
    if (o->keep || o->persistent)
        return;
    lf_recycle(ctx, o->grad, (size_t)o->numel * sizeof(lf_real));
    o->grad = NULL;
    if (!o->view && o->dtype == LF_REAL) {
        lf_recycle(ctx, o->data, (size_t)o->numel * sizeof(lf_real));
        o->data = NULL;
    }
}

lf_tensor *lf_op_output(lf_ctx *ctx, const lf_op_def *op, lf_tensor *const *in, int n_in,
                        lf_dtype dt, int ndim, const int64_t *shape, lf_node **node_out)
{
    bool need_grad = false;
    if (node_out)
        *node_out = NULL;
    if (n_in > LF_MAX_INPUTS)
        return lf_ctx_fail(ctx, LFLEX_EINTERNAL, op->name);
    for (int i = 0; i < n_in; i++) {
        if (in[i] && in[i]->requires_grad)
            need_grad = true;
    }
    need_grad = need_grad && ctx->grad_enabled && dt == LF_REAL;
    lf_tensor *out = lf_tensor_new(ctx, dt, ndim, shape);
    if (!out)
        return NULL;
    if (need_grad) {
        lf_node *n = lf_arena_calloc(&ctx->arena, sizeof *n);
        if (!n)
            return lf_ctx_fail(ctx, LFLEX_ENOMEM, op->name);
        n->op = op;
        n->out = out;
        n->n_in = n_in;
        for (int i = 0; i < n_in; i++)
            n->in[i] = in[i];
        n->prev = ctx->tape;
        ctx->tape = n;
        ctx->n_nodes++;
        out->node = n;
        out->requires_grad = true;
        if (node_out)
            *node_out = n;
    }
    return out;
}

static int run_backward(lf_ctx *ctx)
{
    for (lf_node *n = ctx->tape; n && ctx->status == LFLEX_OK; n = n->prev) {
        if (n->out->grad)
            n->op->backward(ctx, n);
        if (ctx->recycling)
            release_output(ctx, n->out);
    }
    return ctx->status;
}

int lf_backward(lf_ctx *ctx, lf_tensor *loss)
{
    if (ctx->status != LFLEX_OK)
        return ctx->status;
    if (!loss || loss->numel != 1 || loss->dtype != LF_REAL) {
        lf_ctx_fail(ctx, LFLEX_EINVAL, "backward: loss must be a single real number");
        return ctx->status;
    }
    lf_real *g = lf_grad_buffer(ctx, loss);
    if (!g)
        return ctx->status;
    g[0] += 1;
    return run_backward(ctx);
}

int lf_backward_from(lf_ctx *ctx, lf_tensor *out, const lf_real *seed)
{
    if (ctx->status != LFLEX_OK)
        return ctx->status;
    if (!out || out->dtype != LF_REAL) {
        lf_ctx_fail(ctx, LFLEX_EINVAL, "backward: output must be real");
        return ctx->status;
    }
    lf_real *g = lf_grad_buffer(ctx, out);
    if (!g)
        return ctx->status;
    for (int64_t i = 0; i < out->numel; i++)
        g[i] += seed[i];
    return run_backward(ctx);
}
