/* The autograd core: tensors, the per-step arena, the tape and the ops.
 *
 * Not public. Float tensors hold `lf_real`, which is float in the library and
 * double in the test build that checks gradients by finite differences.
 *
 * Error handling follows one rule: an op that cannot produce its result (out
 * of memory, shapes that do not fit) records the status in the context and
 * returns NULL, and every op given a NULL input returns NULL at once. A whole
 * forward pass can therefore be written without checks and the status looked
 * at once, at the end (lf_ctx_status()).
 */
#ifndef LF_CORE_H
#define LF_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lflex/lflex.h"

#ifdef LF_REAL_DOUBLE
typedef double lf_real;
#define LF_REAL_IS_DOUBLE 1
#else
typedef float lf_real;
#define LF_REAL_IS_DOUBLE 0
#endif

#define LF_MAX_DIMS 4
#define LF_MAX_INPUTS 6
#define LF_ALIGN 64

/* ------------------------------------------------------------------------ */
/* Arena: bump allocation for everything that lives for one step. */

typedef struct lf_arena_chunk lf_arena_chunk;

typedef struct lf_arena {
    lf_arena_chunk *head;   /* newest chunk first */
    size_t used_total;      /* bytes handed out since the last reset */
    size_t high_water;      /* largest used_total seen at a reset */
    size_t chunk_min;       /* smallest chunk to allocate */
    uint64_t n_chunk_allocs;/* how many times the arena called malloc */
} lf_arena;

void lf_arena_init(lf_arena *a, size_t initial_bytes);
void lf_arena_free(lf_arena *a);
/* 64-byte aligned, uninitialised; NULL when out of memory. */
void *lf_arena_alloc(lf_arena *a, size_t bytes);
void *lf_arena_calloc(lf_arena *a, size_t bytes);
/* Forget everything allocated. When the last step needed more than one chunk,
 * the chunks are replaced by a single one large enough for it, so a steady
 * state needs no further malloc. Returns a status (LFLEX_ENOMEM possible, in
 * which case the arena is still usable with its old chunks). */
int lf_arena_reset(lf_arena *a);
size_t lf_arena_capacity(const lf_arena *a);

/* ------------------------------------------------------------------------ */
/* Threads */

typedef void (*lf_range_fn)(void *arg, int64_t begin, int64_t end);

/* ------------------------------------------------------------------------ */
/* Tensors */

typedef enum lf_dtype { LF_REAL = 0, LF_INT = 1 } lf_dtype;

typedef struct lf_node lf_node;
typedef struct lf_ctx lf_ctx;
typedef struct lf_pool lf_pool;

typedef struct lf_tensor {
    void *data;            /* lf_real* or int32_t*, contiguous row-major */
    lf_real *grad;         /* NULL until the backward pass reaches it */
    lf_node *node;         /* the op that made it, NULL for leaves */
    int64_t shape[LF_MAX_DIMS];
    int64_t numel;
    int ndim;
    lf_dtype dtype;
    bool requires_grad;
    bool persistent;       /* data and grad live outside the arena (parameters) */
    bool view;             /* data belongs to another tensor (reshape) */
    bool keep;             /* the reverse pass must not reuse its buffers */
} lf_tensor;

static inline lf_real *lf_data(const lf_tensor *t) { return (lf_real *)t->data; }
static inline int32_t *lf_idata(const lf_tensor *t) { return (int32_t *)t->data; }
/* Last dimension, and the number of rows when the tensor is seen as 2-D. */
static inline int64_t lf_cols(const lf_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static inline int64_t lf_rows(const lf_tensor *t) { int64_t c = lf_cols(t); return c ? t->numel / c : 0; }

/* ------------------------------------------------------------------------ */
/* Ops and the tape */

typedef struct lf_op_def {
    const char *name;
    /* Accumulate into the inputs' gradients from n->out->grad. */
    void (*backward)(lf_ctx *ctx, lf_node *n);
} lf_op_def;

struct lf_node {
    const lf_op_def *op;
    lf_tensor *out;
    lf_tensor *in[LF_MAX_INPUTS];
    int n_in;
    int64_t ip[8];         /* integer parameters of the op */
    double fp[4];          /* real parameters of the op */
    void *saved;           /* op-specific data kept for backward (arena) */
    lf_node *prev;         /* tape order, newest last */
};

/* Buffers freed during the reverse pass, by size, for reuse by later
 * gradient buffers of the same size (a transformer has few distinct sizes). */
#define LF_RECYCLE_BUCKETS 64
typedef struct lf_recycle_bucket {
    size_t bytes;
    void *head;            /* singly linked through the first word of each buffer */
} lf_recycle_bucket;

/* Rotary-embedding tables (cosines and sines by position), kept across
 * steps: a table only grows, and the tables it replaced stay allocated until
 * lf_ctx_free because saved nodes may still point into them. */
#define LF_ROPE_TABLES 4
typedef struct lf_rope_table {
    int64_t half, n_pos;   /* rows 0 .. n_pos - 1 */
    double base;
    lf_real *tab;          /* after a link to the table it replaced */
} lf_rope_table;

struct lf_ctx {
    lf_arena arena;
    lf_rope_table rope[LF_ROPE_TABLES];
    lf_recycle_bucket recycle[LF_RECYCLE_BUCKETS];
    int n_recycle;
    bool recycling;        /* reuse dead buffers in the reverse pass (default on) */
    lf_node *tape;         /* the newest node */
    int64_t n_nodes;
    double flops;          /* matrix-product and attention FLOPs since the reset */
    int status;            /* first failure of this step, 0 if none */
    const char *status_where; /* the op that failed */
    bool grad_enabled;
    int n_threads;
    lf_pool *pool;         /* NULL when single-threaded */
};

/* n_threads threads in all (the caller and n_threads - 1 workers). BLAS is
 * used single-threaded: the library splits large products itself. */
int lf_ctx_init(lf_ctx *ctx, size_t arena_bytes, int n_threads);
void lf_ctx_free(lf_ctx *ctx);
/* Drop the tape and everything in the arena (start of a step). */
int lf_ctx_reset(lf_ctx *ctx);
static inline int lf_ctx_status(const lf_ctx *ctx) { return ctx->status; }
/* Record a failure (keeps the first one). Returns NULL for convenience. */
lf_tensor *lf_ctx_fail(lf_ctx *ctx, int status, const char *where);

/* New tensors in the arena. Shapes have 1..4 dims. */
lf_tensor *lf_tensor_new(lf_ctx *ctx, lf_dtype dt, int ndim, const int64_t *shape);
lf_tensor *lf_new1(lf_ctx *ctx, lf_dtype dt, int64_t n0);
lf_tensor *lf_new2(lf_ctx *ctx, lf_dtype dt, int64_t n0, int64_t n1);
lf_tensor *lf_zeros2(lf_ctx *ctx, int64_t n0, int64_t n1);
/* A constant (no gradient) copied from `src`. */
lf_tensor *lf_const_real(lf_ctx *ctx, const lf_real *src, int ndim, const int64_t *shape);
lf_tensor *lf_const_int(lf_ctx *ctx, const int32_t *src, int64_t n);
/* A tensor over caller-owned storage (a parameter, or an input); `grad` may be
 * NULL for a constant. Nothing is copied; the struct itself is `t`. */
void lf_tensor_wrap(lf_tensor *t, lf_dtype dt, void *data, lf_real *grad, int ndim, const int64_t *shape);

/* Gradient buffer of `t`, allocated zeroed in the arena on first use. */
lf_real *lf_grad_buffer(lf_ctx *ctx, lf_tensor *t);
/* The same for an op that writes every element of the gradient: on first use
 * the buffer is not zeroed and *beta is 0 (the op stores its contribution);
 * otherwise *beta is 1 (the op adds it). Saves a pass over the buffer. */
lf_real *lf_grad_buffer_beta(lf_ctx *ctx, lf_tensor *t, lf_real *beta);
/* For an op whose output gradient is also the gradient of its input x
 * (x + ...): when x has no gradient buffer yet and nobody keeps the output,
 * x takes over the output's buffer (nothing copied). Returns whether it did;
 * the op must then not add that term itself. */
bool lf_grad_pass_through(lf_node *n, lf_tensor *x);
/* p[0..n) = 0, split over the context's threads when large. */
void lf_zero(const lf_ctx *ctx, lf_real *p, int64_t n);

/* During the reverse pass, once an op's backward has run, its output's
 * gradient and data are dead (every consumer ran before it) and their memory
 * is reused for later gradient buffers; that halves the peak memory of a
 * training step. A tensor the caller still reads after lf_backward() must be
 * marked with lf_keep() (leaves and parameters are never reused). */
static inline lf_tensor *lf_keep(lf_tensor *t)
{
    if (t)
        t->keep = true;
    return t;
}
/* Hand a dead arena buffer of `bytes` to the reuse lists / take one. */
void lf_recycle(lf_ctx *ctx, void *p, size_t bytes);
void *lf_reuse(lf_ctx *ctx, size_t bytes);

/* Allocate the output of an op and, if any input needs a gradient, record a
 * node for it. Used by op implementations. */
lf_tensor *lf_op_output(lf_ctx *ctx, const lf_op_def *op, lf_tensor *const *in, int n_in,
                        lf_dtype dt, int ndim, const int64_t *shape, lf_node **node_out);

/* Reverse pass from a scalar `loss` (d loss / d loss = 1), accumulating into
 * every tensor that requires a gradient. Returns the context status. */
int lf_backward(lf_ctx *ctx, lf_tensor *loss);
/* Same, seeding with an arbitrary output gradient of the shape of `out`. */
int lf_backward_from(lf_ctx *ctx, lf_tensor *out, const lf_real *seed);

/* Table of every op of the core (for the gradient-check coverage test). */
extern const lf_op_def *const lf_core_ops[];
extern const int lf_core_n_ops;

/* ------------------------------------------------------------------------ */
/* Op constructors. All return NULL (and set ctx->status) on failure. */

/* Linear algebra */
lf_tensor *lf_matmul(lf_ctx *ctx, lf_tensor *a, lf_tensor *b, bool trans_a, bool trans_b);
/* y = x W^T + bias, x [N, in], W [out, in], bias [out] or NULL. */
lf_tensor *lf_linear(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias);

/* Elementwise binary ops. `b` has the shape of `a`, or is a row vector [C]
 * broadcast over the rows of `a`, or a column [R] / [R,1] broadcast over the
 * columns, or a single element. */
lf_tensor *lf_add(lf_ctx *ctx, lf_tensor *a, lf_tensor *b);
lf_tensor *lf_sub(lf_ctx *ctx, lf_tensor *a, lf_tensor *b);
lf_tensor *lf_mul(lf_ctx *ctx, lf_tensor *a, lf_tensor *b);
/* a * s + c for scalars s, c. */
lf_tensor *lf_affine(lf_ctx *ctx, lf_tensor *a, double s, double c);
static inline lf_tensor *lf_scale(lf_ctx *ctx, lf_tensor *a, double s) { return lf_affine(ctx, a, s, 0.0); }
/* y = x, with the gradient that reaches x multiplied by g (0: a constant
 * copy; between 0 and 1: a branch that trains what feeds it more gently). */
lf_tensor *lf_grad_scale(lf_ctx *ctx, lf_tensor *a, double g);
/* x^y elementwise, both tensors of one shape, x > 0. */
lf_tensor *lf_pow(lf_ctx *ctx, lf_tensor *x, lf_tensor *y);
/* log(e^a + e^b), same shapes. */
lf_tensor *lf_log_add_exp(lf_ctx *ctx, lf_tensor *a, lf_tensor *b);
/* Bregman divergence of x log x: D(u, v) = v - u + u log(u/v), 0 log 0 = 0;
 * u >= 0, v > 0, same shapes. */
lf_tensor *lf_bregman(lf_ctx *ctx, lf_tensor *u, lf_tensor *v);

/* Elementwise unary ops */
typedef enum lf_unary {
    LF_GELU = 0,     /* tanh form */
    LF_RELU,
    LF_SILU,
    LF_SOFTPLUS,
    LF_SIGMOID,
    LF_EXP,
    LF_LOG,
    LF_LOG1P,
    LF_SQUARE,
    LF_LOG_E,        /* log(expm1(x)/x), log e(0) = 0 */
    LF_LOG1MEXP,     /* log(1 - e^x), x < 0 */
    LF_DIGAMMA,      /* psi(x), x > 0 */
    LF_LOG_SOFTPLUS, /* log(softplus(x)), x - e^x/2 far below 0 */
    LF_UNARY_COUNT
} lf_unary;
lf_tensor *lf_unary_op(lf_ctx *ctx, lf_unary kind, lf_tensor *x);
const char *lf_unary_name(lf_unary kind);
/* lf_unary_op(act, lf_linear(x, W, bias)) with the activation applied by
 * each thread to the rows it has just computed (GELU, ReLU, SiLU; other
 * kinds are composed). The tape holds the two ops. */
lf_tensor *lf_linear_act(lf_ctx *ctx, lf_tensor *x, lf_tensor *w, lf_tensor *bias, lf_unary act);

/* Reductions */
lf_tensor *lf_sum(lf_ctx *ctx, lf_tensor *x);   /* all elements -> [1] */
lf_tensor *lf_mean(lf_ctx *ctx, lf_tensor *x);  /* all elements -> [1] */
/* out[idx[i], :] += x[i, :] for rows i; out has n_out rows (segment sums).
 * Rows with idx < 0 are skipped. */
lf_tensor *lf_scatter_add_rows(lf_ctx *ctx, lf_tensor *x, lf_tensor *idx, int64_t n_out);

/* Indexing */
/* Rows of `table` [V, C] selected by ids [N] -> [N, C]; the gradient is
 * scatter-added back (embedding lookup). */
lf_tensor *lf_embedding(lf_ctx *ctx, lf_tensor *table, lf_tensor *ids);
/* out[i] = x[i, idx[i]] for x [N, C] -> [N]. */
lf_tensor *lf_gather(lf_ctx *ctx, lf_tensor *x, lf_tensor *idx);
/* The same data seen with another shape of as many elements (no copy). */
lf_tensor *lf_reshape(lf_ctx *ctx, lf_tensor *x, int ndim, const int64_t *shape);
/* Columns [start, start+len) of a 2-D tensor. */
lf_tensor *lf_slice_cols(lf_ctx *ctx, lf_tensor *x, int64_t start, int64_t len);

/* Normalisation and conditioning */
/* LayerNorm over the last dim without bias; scale [C] or NULL. */
lf_tensor *lf_layernorm(lf_ctx *ctx, lf_tensor *x, lf_tensor *scale, double eps);
/* adaLN: x * (1 + mod[seg, scale_col:+C]) + mod[seg, shift_col:+C] where
 * x [T, C], mod [B, M], seg [T] gives each row's sequence. */
lf_tensor *lf_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *mod, int64_t shift_col,
                       int64_t scale_col, lf_tensor *seg);
/* lf_modulate(lf_layernorm(x, scale, eps), mod, shift_col, scale_col, seg)
 * in one op. */
lf_tensor *lf_ln_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *scale, double eps, lf_tensor *mod, int64_t shift_col,
                          int64_t scale_col, lf_tensor *seg);
/* Gated residual: x + mod[seg, gate_col:+C] * y. */
lf_tensor *lf_gated_add(lf_ctx *ctx, lf_tensor *x, lf_tensor *y, lf_tensor *mod,
                        int64_t gate_col, lf_tensor *seg);
/* h = lf_gated_add(x, y, mod, gate_col, seg) (returned in *h_out), then
 * lf_ln_modulate(h, scale, eps, mod2, shift_col, scale_col, seg), with each
 * thread normalising the rows of h it has just written. The tape holds the
 * two ops. */
lf_tensor *lf_gated_add_ln_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *y, lf_tensor *mod, int64_t gate_col,
                                    lf_tensor *seg, lf_tensor *scale, double eps, lf_tensor *mod2,
                                    int64_t shift_col, int64_t scale_col, lf_tensor **h_out);

/* Softmax family over the last dim */
lf_tensor *lf_softmax(lf_ctx *ctx, lf_tensor *x);
lf_tensor *lf_log_softmax(lf_ctx *ctx, lf_tensor *x);
/* -log softmax(logits)[target] per row -> [N]. */
lf_tensor *lf_cross_entropy(lf_ctx *ctx, lf_tensor *logits, lf_tensor *target);

/* Attention over packed variable-length sequences.
 * offsets [B+1]: sequence b occupies rows offsets[b] .. offsets[b+1]-1. */
/* Rotary embedding, rotate-half form, on each head of x [T, H*Dh] at the
 * positions pos [T]. */
lf_tensor *lf_rope(lf_ctx *ctx, lf_tensor *x, lf_tensor *pos, int64_t n_heads, double base);
/* softmax(q k^T / sqrt(Dh)) v per head and sequence; key_valid [T] (non-zero
 * = may be attended to) or NULL. A row whose sequence has no valid key gets
 * zeros. */
lf_tensor *lf_attention(lf_ctx *ctx, lf_tensor *q, lf_tensor *k, lf_tensor *v,
                        lf_tensor *offsets, lf_tensor *key_valid, int64_t n_heads);

/* rope on q and k, then attention, for qkv [T, 3C] = [q | k | v] -> [T, C]:
 * the same as lf_attention(rope(q), rope(k), v) without the copies. */
lf_tensor *lf_rope_attention(lf_ctx *ctx, lf_tensor *qkv, lf_tensor *pos, lf_tensor *offsets, lf_tensor *key_valid,
                             int64_t n_heads, double base);

/* Dropout with a keep mask drawn from `seed` (inverted scaling). */
lf_tensor *lf_dropout(lf_ctx *ctx, lf_tensor *x, double p, uint64_t seed);

#endif /* LF_CORE_H */
