/* Elementwise ops: binary with broadcasting, affine, unary functions, and
 * the binary special functions (pow, logaddexp, Bregman divergence). */
#include <math.h>
#include <string.h>

#include "core/fastmath.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/special.h"

#define EW_GRAIN 16384

/* ---- broadcasting ------------------------------------------------------ */

typedef enum { BC_FULL, BC_ROW, BC_COL, BC_SCALAR } bc_mode;

/* How `b` is broadcast over `a` (see core.h); -1 when it does not fit. */
static int bc_of(const lf_tensor *a, const lf_tensor *b)
{
    int64_t R = lf_rows(a), C = lf_cols(a);
    if (b->numel == a->numel && lf_cols(b) == C)
        return BC_FULL;
    if (b->numel == 1)
        return BC_SCALAR;
    if (b->ndim == 1 && b->numel == C)
        return BC_ROW;
    if (b->numel == R && (b->ndim == 1 || (b->ndim == 2 && b->shape[1] == 1)))
        return BC_COL;
    return -1;
}

static inline int64_t bc_index(int mode, int64_t i, int64_t C)
{
    switch (mode) {
    case BC_FULL: return i;
    case BC_ROW: return i % C;
    case BC_COL: return i / C;
    default: return 0;
    }
}

enum { BIN_ADD, BIN_SUB, BIN_MUL };

typedef struct {
    int kind, mode;
    int64_t C;
    const lf_real *a, *b;
    lf_real *y;
} bin_fwd_args;

LF_SIMD_CLONES static void bin_fwd_range(void *p, int64_t i0, int64_t i1)
{
    const bin_fwd_args *q = p;
    const lf_real *a = q->a, *b = q->b;
    lf_real *y = q->y;
    if (q->mode == BC_FULL) {
        switch (q->kind) {
        case BIN_ADD: for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i]; break;
        case BIN_SUB: for (int64_t i = i0; i < i1; i++) y[i] = a[i] - b[i]; break;
        default:      for (int64_t i = i0; i < i1; i++) y[i] = a[i] * b[i]; break;
        }
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        lf_real bv = b[bc_index(q->mode, i, q->C)];
        y[i] = q->kind == BIN_ADD ? a[i] + bv : q->kind == BIN_SUB ? a[i] - bv : a[i] * bv;
    }
}

/* gradient of the broadcast operand: db[j] += sum over the elements i that
 * read b[j] of g[i] * f[i] (f = 1 for add, -1 for sub, a for mul). Each j is
 * summed by one thread in a fixed order. */
typedef struct {
    int mode;
    int64_t R, C;
    const lf_real *g, *f;
    double sign;
    lf_real *db;
} bc_reduce_args;

LF_SIMD_CLONES static void bc_reduce_range(void *p, int64_t j0, int64_t j1)
{
    const bc_reduce_args *q = p;
    for (int64_t j = j0; j < j1; j++) {
        double acc = 0;
        if (q->mode == BC_ROW) {
            for (int64_t r = 0; r < q->R; r++) {
                int64_t i = r * q->C + j;
                acc += (double)q->g[i] * (q->f ? q->f[i] : 1);
            }
        } else if (q->mode == BC_COL) {
            for (int64_t c = 0; c < q->C; c++) {
                int64_t i = j * q->C + c;
                acc += (double)q->g[i] * (q->f ? q->f[i] : 1);
            }
        } else { /* scalar */
            for (int64_t i = 0; i < q->R * q->C; i++)
                acc += (double)q->g[i] * (q->f ? q->f[i] : 1);
        }
        q->db[j] += (lf_real)(q->sign * acc);
    }
}

static void binary_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *a = n->in[0], *b = n->in[1];
    int kind = (int)n->ip[0], mode = (int)n->ip[1];
    int64_t N = a->numel, C = lf_cols(a);
    const lf_real *g = n->out->grad;
    if (a->requires_grad) {
        lf_real *da = lf_grad_buffer(ctx, a);
        if (!da)
            return;
        if (kind == BIN_MUL) {
            const lf_real *B = lf_data(b);
            for (int64_t i = 0; i < N; i++)
                da[i] += g[i] * B[bc_index(mode, i, C)];
        } else {
            for (int64_t i = 0; i < N; i++)
                da[i] += g[i];
        }
    }
    if (b->requires_grad) {
        lf_real *db = lf_grad_buffer(ctx, b);
        if (!db)
            return;
        double sign = kind == BIN_SUB ? -1 : 1;
        const lf_real *f = kind == BIN_MUL ? lf_data(a) : NULL;
        if (mode == BC_FULL) {
            for (int64_t i = 0; i < N; i++)
                db[i] += (lf_real)(sign * g[i] * (f ? f[i] : 1));
        } else {
            bc_reduce_args q = {mode, lf_rows(a), C, g, f, sign, db};
            lf_parallel_for(ctx, b->numel, mode == BC_COL ? 256 : 64, bc_reduce_range, &q);
        }
    }
}

const lf_op_def lf_op_add = {"add", binary_backward};
const lf_op_def lf_op_sub = {"sub", binary_backward};
const lf_op_def lf_op_mul = {"mul", binary_backward};

static lf_tensor *binary(lf_ctx *ctx, int kind, const lf_op_def *op, lf_tensor *a, lf_tensor *b)
{
    if (!a || !b)
        return NULL;
    if (a->dtype != LF_REAL || b->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    int mode = bc_of(a, b);
    if (mode < 0)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    lf_tensor *in[2] = {a, b};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, op, in, 2, LF_REAL, a->ndim, a->shape, &node);
    if (!y)
        return NULL;
    bin_fwd_args q = {kind, mode, lf_cols(a), lf_data(a), lf_data(b), lf_data(y)};
    lf_parallel_for(ctx, a->numel, EW_GRAIN, bin_fwd_range, &q);
    if (node) {
        node->ip[0] = kind;
        node->ip[1] = mode;
    }
    return y;
}

lf_tensor *lf_add(lf_ctx *ctx, lf_tensor *a, lf_tensor *b) { return binary(ctx, BIN_ADD, &lf_op_add, a, b); }
lf_tensor *lf_sub(lf_ctx *ctx, lf_tensor *a, lf_tensor *b) { return binary(ctx, BIN_SUB, &lf_op_sub, a, b); }
lf_tensor *lf_mul(lf_ctx *ctx, lf_tensor *a, lf_tensor *b) { return binary(ctx, BIN_MUL, &lf_op_mul, a, b); }

/* ---- affine ------------------------------------------------------------ */

static void affine_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    const lf_real *g = n->out->grad;
    lf_real s = (lf_real)n->fp[0];
    for (int64_t i = 0; i < n->out->numel; i++)
        dx[i] += s * g[i];
}

const lf_op_def lf_op_affine = {"affine", affine_backward};

/* y = s x + c, whose backward multiplies the gradient by `g` (s, except
 * for lf_grad_scale). */
static lf_tensor *affine_op(lf_ctx *ctx, lf_tensor *a, double s, double c, double g, const char *name)
{
    if (!a)
        return NULL;
    if (a->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, name);
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_affine, &a, 1, LF_REAL, a->ndim, a->shape, &node);
    if (!y)
        return NULL;
    const lf_real *x = lf_data(a);
    lf_real *Y = lf_data(y), S = (lf_real)s, Cc = (lf_real)c;
    for (int64_t i = 0; i < a->numel; i++)
        Y[i] = x[i] * S + Cc;
    if (node)
        node->fp[0] = g;
    return y;
}

lf_tensor *lf_affine(lf_ctx *ctx, lf_tensor *a, double s, double c) { return affine_op(ctx, a, s, c, s, "affine"); }

lf_tensor *lf_grad_scale(lf_ctx *ctx, lf_tensor *a, double g) { return affine_op(ctx, a, 1, 0, g, "grad_scale"); }

/* ---- unary ------------------------------------------------------------- */

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_C 0.044715

static inline double unary_f(int kind, double x)
{
    switch (kind) {
    case LF_GELU: return 0.5 * x * (1 + tanh(GELU_K * (x + GELU_C * x * x * x)));
    case LF_RELU: return x > 0 ? x : 0;
    case LF_SILU: return x * lf_sigmoid(x);
    case LF_SOFTPLUS: return lf_softplus(x);
    case LF_SIGMOID: return lf_sigmoid(x);
    case LF_EXP: return exp(x);
    case LF_LOG: return log(x);
    case LF_LOG1P: return log1p(x);
    case LF_SQUARE: return x * x;
    case LF_LOG_E: return lf_log_e(x);
    case LF_LOG1MEXP: return lf_log1mexp(x);
    case LF_DIGAMMA: return lf_digamma(x);
    case LF_LOG_SOFTPLUS: return lf_log_softplus(x);
    default: return NAN;
    }
}

/* derivative at x, given y = f(x) */
static inline double unary_df(int kind, double x, double y)
{
    switch (kind) {
    case LF_GELU: {
        double u = GELU_K * (x + GELU_C * x * x * x), th = tanh(u);
        return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_K * (1 + 3 * GELU_C * x * x);
    }
    case LF_RELU: return x > 0 ? 1 : 0;
    case LF_SILU: {
        double s = lf_sigmoid(x);
        return s + x * s * (1 - s);
    }
    case LF_SOFTPLUS: return lf_sigmoid(x);
    case LF_SIGMOID: return y * (1 - y);
    case LF_EXP: return y;
    case LF_LOG: return 1 / x;
    case LF_LOG1P: return 1 / (1 + x);
    case LF_SQUARE: return 2 * x;
    case LF_LOG_E: return lf_log_e_deriv(x);
    case LF_LOG1MEXP: return lf_log1mexp_deriv(x);
    case LF_DIGAMMA: return lf_trigamma(x);
    case LF_LOG_SOFTPLUS: return lf_log_softplus_deriv(x);
    default: return NAN;
    }
}

static const char *const unary_names[LF_UNARY_COUNT] = {
    [LF_GELU] = "gelu", [LF_RELU] = "relu", [LF_SILU] = "silu", [LF_SOFTPLUS] = "softplus",
    [LF_SIGMOID] = "sigmoid", [LF_EXP] = "exp", [LF_LOG] = "log", [LF_LOG1P] = "log1p",
    [LF_SQUARE] = "square", [LF_LOG_E] = "log_e", [LF_LOG1MEXP] = "log1mexp",
    [LF_DIGAMMA] = "digamma", [LF_LOG_SOFTPLUS] = "log_softplus",
};
_Static_assert(sizeof unary_names / sizeof unary_names[0] == LF_UNARY_COUNT, "unary name table");

const char *lf_unary_name(lf_unary kind)
{
    return (unsigned)kind < LF_UNARY_COUNT ? unary_names[kind] : "unknown";
}

typedef struct {
    int kind;
    const lf_real *x, *y, *g;
    lf_real *out;
    lf_real beta; /* backward: 0 when out is a new gradient buffer */
} unary_args;

/* The switch is hoisted out of the loop by writing one loop per kind. */
#define UNARY_LOOP(EXPR)                              \
    for (int64_t i = i0; i < i1; i++) {               \
        double x = q->x[i];                           \
        (void)x;                                      \
        q->out[i] = (lf_real)(EXPR);                  \
    }

/* The activations of the networks in lf_real arithmetic with the fast
 * exp/tanh (they dominate the elementwise time); the others in double. */
/* 0.5 (1 + tanh u) = sigmoid(2u) = 1 / (1 + e^{-2u}): one exp and one
 * division, no sign handling (e^{-2u} is clamped finite for large -u, and
 * goes to 0 for large u) */
static inline lf_real gelu_fast(lf_real x)
{
    const lf_real k2 = (lf_real)(2 * GELU_K), c = (lf_real)GELU_C;
    return x / (1 + lf_fast_exp(-k2 * (x + c * x * x * x)));
}

static inline lf_real gelu_fast_deriv(lf_real x)
{
    const lf_real k2 = (lf_real)(2 * GELU_K), c = (lf_real)GELU_C;
    lf_real s = 1 / (1 + lf_fast_exp(-k2 * (x + c * x * x * x))); /* sigmoid(2u) */
    return s + x * s * (1 - s) * k2 * (1 + 3 * c * x * x);
}

static inline lf_real sigmoid_fast(lf_real x) { return 1 / (1 + lf_fast_exp(-x)); }

LF_SIMD_CLONES static void unary_fwd_range(void *p, int64_t i0, int64_t i1)
{
    const unary_args *q = p;
    const lf_real *X = q->x;
    lf_real *Y = q->out;
    switch (q->kind) {
    case LF_GELU:
        for (int64_t i = i0; i < i1; i++)
            Y[i] = gelu_fast(X[i]);
        break;
    case LF_RELU:
        for (int64_t i = i0; i < i1; i++)
            Y[i] = X[i] > 0 ? X[i] : 0;
        break;
    case LF_SILU:
        for (int64_t i = i0; i < i1; i++)
            Y[i] = X[i] * sigmoid_fast(X[i]);
        break;
    default: UNARY_LOOP(unary_f(q->kind, x)); break;
    }
}

/* dx = beta dx + g f'(x): beta is 0 or 1, so the new buffer case stores */
#define UNARY_BWD(EXPR)                                   \
    do {                                                  \
        if (q->beta == 0)                                 \
            for (int64_t i = i0; i < i1; i++) {           \
                lf_real x = q->x[i];                      \
                q->out[i] = (EXPR);                       \
            }                                             \
        else                                              \
            for (int64_t i = i0; i < i1; i++) {           \
                lf_real x = q->x[i];                      \
                q->out[i] += (EXPR);                      \
            }                                             \
    } while (0)

static inline lf_real silu_deriv(lf_real x)
{
    lf_real s = sigmoid_fast(x);
    return s + x * s * (1 - s);
}

LF_SIMD_CLONES static void unary_bwd_range(void *p, int64_t i0, int64_t i1)
{
    const unary_args *q = p;
    switch (q->kind) {
    case LF_GELU: UNARY_BWD(q->g[i] * gelu_fast_deriv(x)); break;
    case LF_SILU: UNARY_BWD(q->g[i] * silu_deriv(x)); break;
    case LF_RELU: UNARY_BWD(x > 0 ? q->g[i] : 0); break;
    default: UNARY_BWD((lf_real)(q->g[i] * unary_df(q->kind, x, q->y[i]))); break;
    }
}

static void unary_backward(lf_ctx *ctx, lf_node *n)
{
    unary_args q = {(int)n->ip[0], lf_data(n->in[0]), lf_data(n->out), n->out->grad, NULL, 1};
    q.out = lf_grad_buffer_beta(ctx, n->in[0], &q.beta);
    if (!q.out)
        return;
    lf_parallel_for(ctx, n->out->numel, EW_GRAIN, unary_bwd_range, &q);
}

const lf_op_def lf_op_unary[LF_UNARY_COUNT] = {
    [LF_GELU] = {"gelu", unary_backward},         [LF_RELU] = {"relu", unary_backward},
    [LF_SILU] = {"silu", unary_backward},         [LF_SOFTPLUS] = {"softplus", unary_backward},
    [LF_SIGMOID] = {"sigmoid", unary_backward},   [LF_EXP] = {"exp", unary_backward},
    [LF_LOG] = {"log", unary_backward},           [LF_LOG1P] = {"log1p", unary_backward},
    [LF_SQUARE] = {"square", unary_backward},     [LF_LOG_E] = {"log_e", unary_backward},
    [LF_LOG1MEXP] = {"log1mexp", unary_backward}, [LF_DIGAMMA] = {"digamma", unary_backward},
    [LF_LOG_SOFTPLUS] = {"log_softplus", unary_backward},
};

void lf_unary_rows(lf_unary kind, const lf_real *x, lf_real *y, int64_t n)
{
    unary_args q = {kind, x, NULL, NULL, y, 1};
    unary_fwd_range(&q, 0, n);
}

lf_tensor *lf_unary_output(lf_ctx *ctx, lf_unary kind, lf_tensor *x)
{
    if (!x)
        return NULL;
    if ((unsigned)kind >= LF_UNARY_COUNT || x->dtype != LF_REAL)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "unary op");
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_unary[kind], &x, 1, LF_REAL, x->ndim, x->shape, &node);
    if (node)
        node->ip[0] = kind;
    return y;
}

lf_tensor *lf_unary_op(lf_ctx *ctx, lf_unary kind, lf_tensor *x)
{
    lf_tensor *y = lf_unary_output(ctx, kind, x);
    if (!y)
        return NULL;
    unary_args q = {kind, lf_data(x), NULL, NULL, lf_data(y), 1};
    lf_parallel_for(ctx, x->numel, EW_GRAIN, unary_fwd_range, &q);
    return y;
}

/* ---- pow, logaddexp, bregman (same-shape binary special functions) ----- */

enum { SP_POW, SP_LOGADDEXP, SP_BREGMAN };

static void special2_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *a = n->in[0], *b = n->in[1];
    const lf_real *A = lf_data(a), *B = lf_data(b), *Y = lf_data(n->out), *g = n->out->grad;
    lf_real *da = a->requires_grad ? lf_grad_buffer(ctx, a) : NULL;
    lf_real *db = b->requires_grad ? lf_grad_buffer(ctx, b) : NULL;
    if (ctx->status)
        return;
    for (int64_t i = 0; i < n->out->numel; i++) {
        double x = A[i], z = B[i], y = Y[i], ga, gb;
        switch (n->ip[0]) {
        case SP_POW: /* y = x^z */
            ga = z * pow(x, z - 1);
            gb = y * log(x);
            break;
        case SP_LOGADDEXP:
            ga = exp(x - y);
            gb = exp(z - y);
            break;
        default: /* D(u = x, v = z) = v - u + u log(u/v); dD/du at u = 0 taken as 0 */
            ga = x > 0 ? log(x / z) : 0;
            gb = 1 - x / z;
            break;
        }
        if (da)
            da[i] += (lf_real)(g[i] * ga);
        if (db)
            db[i] += (lf_real)(g[i] * gb);
    }
}

const lf_op_def lf_op_pow = {"pow", special2_backward};
const lf_op_def lf_op_logaddexp = {"logaddexp", special2_backward};
const lf_op_def lf_op_bregman = {"bregman", special2_backward};

static lf_tensor *special2(lf_ctx *ctx, int kind, const lf_op_def *op, lf_tensor *a, lf_tensor *b)
{
    if (!a || !b)
        return NULL;
    if (a->dtype != LF_REAL || b->dtype != LF_REAL || a->numel != b->numel)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, op->name);
    lf_tensor *in[2] = {a, b};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, op, in, 2, LF_REAL, a->ndim, a->shape, &node);
    if (!y)
        return NULL;
    const lf_real *A = lf_data(a), *B = lf_data(b);
    lf_real *Y = lf_data(y);
    for (int64_t i = 0; i < a->numel; i++) {
        double x = A[i], z = B[i];
        switch (kind) {
        case SP_POW: Y[i] = (lf_real)pow(x, z); break;
        case SP_LOGADDEXP: Y[i] = (lf_real)lf_logaddexp(x, z); break;
        default: Y[i] = (lf_real)(z - x + (x > 0 ? x * log(x / z) : 0)); break;
        }
    }
    if (node)
        node->ip[0] = kind;
    return y;
}

lf_tensor *lf_pow(lf_ctx *ctx, lf_tensor *x, lf_tensor *y) { return special2(ctx, SP_POW, &lf_op_pow, x, y); }
lf_tensor *lf_log_add_exp(lf_ctx *ctx, lf_tensor *a, lf_tensor *b)
{
    return special2(ctx, SP_LOGADDEXP, &lf_op_logaddexp, a, b);
}
lf_tensor *lf_bregman(lf_ctx *ctx, lf_tensor *u, lf_tensor *v) { return special2(ctx, SP_BREGMAN, &lf_op_bregman, u, v); }
