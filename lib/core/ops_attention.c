/* Rotary position embedding, multi-head self-attention over packed
 * variable-length sequences, and dropout. */
#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "core/fastmath.h"
#include "core/ops.h"

/* ---- rotary embedding (rotate-half form) -------------------------------- */

/* cos/sin table [max_pos + 1, half] for the positions in use. */
static lf_real *rope_table(lf_ctx *ctx, const int32_t *pos, int64_t T, int64_t half, double base,
                           int64_t *max_pos_out)
{
    int64_t max_pos = 0;
    for (int64_t t = 0; t < T; t++)
        max_pos = pos[t] > max_pos ? pos[t] : max_pos;
    lf_real *tab = lf_arena_alloc(&ctx->arena, (size_t)((max_pos + 1) * half * 2) * sizeof(lf_real));
    if (!tab)
        return NULL;
    for (int64_t i = 0; i < half; i++) {
        double theta = pow(base, -(double)(2 * i) / (double)(2 * half));
        for (int64_t p = 0; p <= max_pos; p++) {
            tab[(p * half + i) * 2] = (lf_real)cos((double)p * theta);
            tab[(p * half + i) * 2 + 1] = (lf_real)sin((double)p * theta);
        }
    }
    *max_pos_out = max_pos;
    return tab;
}

/* out = R(pos) x (sign = +1) or R(pos)^T x (sign = -1), accumulated when acc. */
LF_SIMD_CLONES static void rope_apply(const lf_real *x, lf_real *out, const int32_t *pos, const lf_real *tab, int64_t T,
                       int64_t H, int64_t half, int sign, bool acc)
{
    int64_t Dh = 2 * half, C = H * Dh;
    for (int64_t t = 0; t < T; t++) {
        const lf_real *cs = tab + (int64_t)pos[t] * half * 2;
        for (int64_t h = 0; h < H; h++) {
            const lf_real *xa = x + t * C + h * Dh, *xb = xa + half;
            lf_real *oa = out + t * C + h * Dh, *ob = oa + half;
            for (int64_t i = 0; i < half; i++) {
                lf_real c = cs[2 * i], s = sign * cs[2 * i + 1];
                lf_real a = xa[i] * c - xb[i] * s, b = xb[i] * c + xa[i] * s;
                if (acc) {
                    oa[i] += a;
                    ob[i] += b;
                } else {
                    oa[i] = a;
                    ob[i] = b;
                }
            }
        }
    }
}

static void rope_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *pos = n->in[1];
    lf_real *dx = lf_grad_buffer(ctx, x);
    if (!dx)
        return;
    rope_apply(n->out->grad, dx, lf_idata(pos), n->saved, lf_rows(x), n->ip[0], n->ip[1], -1, true);
}

const lf_op_def lf_op_rope = {"rope", rope_backward};

lf_tensor *lf_rope(lf_ctx *ctx, lf_tensor *x, lf_tensor *pos, int64_t n_heads, double base)
{
    if (!x || !pos)
        return NULL;
    int64_t T = lf_rows(x), C = lf_cols(x);
    if (x->dtype != LF_REAL || pos->dtype != LF_INT || pos->numel != T || n_heads < 1 || C % n_heads ||
        (C / n_heads) % 2 || !(base > 1))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope");
    const int32_t *P = lf_idata(pos);
    for (int64_t t = 0; t < T; t++)
        if (P[t] < 0)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope: negative position");
    int64_t half = C / n_heads / 2, max_pos;
    lf_real *tab = rope_table(ctx, P, T, half, base, &max_pos);
    if (!tab)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "rope");
    lf_tensor *in[2] = {x, pos};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_rope, in, 2, LF_REAL, x->ndim, x->shape, &node);
    if (!y)
        return NULL;
    rope_apply(lf_data(x), lf_data(y), P, tab, T, n_heads, half, 1, false);
    if (node) {
        node->ip[0] = n_heads;
        node->ip[1] = half;
        node->saved = tab;
    }
    return y;
}

/* ---- attention ----------------------------------------------------------- */

/* One (sequence, head) pair is one unit of work; pairs write disjoint parts
 * of every output, so the result does not depend on how they are split.
 * Within a pair the products are BLAS calls on strided views of q, k, v
 * (row stride C), and the softmax runs over rows of the saved
 * probabilities. */
typedef struct {
    const lf_real *q, *k, *v, *o, *dout;
    lf_real *out, *P, *scratch, *dq, *dk, *dv;
    const int32_t *off, *valid;
    const int64_t *pofs; /* start of each sequence's probabilities in P */
    int64_t H, Dh, C;
    lf_real scale;
} attn_args;

/* Row-wise softmax of S [n, n] in place; keys with valid[j] == 0 get 0. A
 * row with no valid key is all zeros. */
LF_SIMD_CLONES static void softmax_rows_masked(lf_real *S, int64_t n, const int32_t *valid)
{
    for (int64_t i = 0; i < n; i++) {
        lf_real *row = S + i * n;
        lf_real mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
            if (valid && !valid[j])
                row[j] = -INFINITY;
            mx = row[j] > mx ? row[j] : mx;
        }
        if (mx == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        lf_real sum = 0;
        for (int64_t j = 0; j < n; j++) {
            lf_real e = lf_fast_exp(row[j] - mx); /* exp(-inf) = 0 through the clamp */
            row[j] = e;
            sum += e;
        }
        lf_real inv = 1 / sum;
        for (int64_t j = 0; j < n; j++)
            row[j] *= inv;
    }
}

static void attn_fwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const attn_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        if (n == 0)
            continue;
        lf_real *P = a->P + a->pofs[b] + h * n * n;
        const lf_real *q = a->q + s0 * C + h * Dh, *k = a->k + s0 * C + h * Dh, *v = a->v + s0 * C + h * Dh;
        lf_gemm(false, true, n, n, Dh, a->scale, q, C, k, C, 0, P, n);
        softmax_rows_masked(P, n, a->valid ? a->valid + s0 : NULL);
        lf_gemm(false, false, n, Dh, n, 1, P, n, v, C, 0, a->out + s0 * C + h * Dh, C);
    }
}

static void attn_bwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const attn_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        if (n == 0)
            continue;
        int64_t at = s0 * C + h * Dh;
        const lf_real *P = a->P + a->pofs[b] + h * n * n;
        lf_real *dS = a->scratch + a->pofs[b] + h * n * n;
        const lf_real *dO = a->dout + at, *O = a->o + at;
        /* dV += P^T dO */
        if (a->dv)
            lf_gemm(true, false, n, Dh, n, 1, P, n, dO, C, 1, a->dv + at, C);
        if (!a->dq && !a->dk)
            continue;
        /* dP = dO V^T, then dS = P (dP - D) scale with D_i = dO_i . O_i */
        lf_gemm(false, true, n, n, Dh, 1, dO, C, a->v + at, C, 0, dS, n);
        for (int64_t i = 0; i < n; i++) {
            lf_real D = 0;
            for (int64_t d = 0; d < Dh; d++)
                D += dO[i * C + d] * O[i * C + d];
            const lf_real *pi = P + i * n;
            lf_real *si = dS + i * n;
            for (int64_t j = 0; j < n; j++)
                si[j] = pi[j] * (si[j] - D) * a->scale;
        }
        if (a->dq) /* dQ += dS K */
            lf_gemm(false, false, n, Dh, n, 1, dS, n, a->k + at, C, 1, a->dq + at, C);
        if (a->dk) /* dK += dS^T Q */
            lf_gemm(true, false, n, Dh, n, 1, dS, n, a->q + at, C, 1, a->dk + at, C);
    }
}

typedef struct {
    int64_t *pofs;
    lf_real *P;
} attn_saved;

static void attention_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    lf_tensor *offsets = n->in[3];
    lf_real *dq = q->requires_grad ? lf_grad_buffer(ctx, q) : NULL;
    lf_real *dk = k->requires_grad ? lf_grad_buffer(ctx, k) : NULL;
    lf_real *dv = v->requires_grad ? lf_grad_buffer(ctx, v) : NULL;
    const attn_saved *sv = n->saved;
    int64_t B = offsets->numel - 1, H = n->ip[0], C = lf_cols(q);
    lf_real *scratch = lf_arena_alloc(&ctx->arena, (size_t)(sv->pofs[B] ? sv->pofs[B] : 1) * sizeof(lf_real));
    if (!scratch)
        lf_ctx_fail(ctx, LFLEX_ENOMEM, "attention backward");
    if (ctx->status)
        return;
    attn_args a = {lf_data(q), lf_data(k), lf_data(v), lf_data(n->out), n->out->grad,
                   NULL, sv->P, scratch, dq, dk, dv,
                   lf_idata(offsets), NULL, sv->pofs, H, C / H, C, (lf_real)n->fp[0]};
    lf_parallel_for(ctx, B * H, 1, attn_bwd_pairs, &a);
}

const lf_op_def lf_op_attention = {"attention", attention_backward};

lf_tensor *lf_attention(lf_ctx *ctx, lf_tensor *q, lf_tensor *k, lf_tensor *v, lf_tensor *offsets,
                        lf_tensor *key_valid, int64_t n_heads)
{
    if (!q || !k || !v || !offsets)
        return NULL;
    int64_t T = lf_rows(q), C = lf_cols(q), B = offsets->numel - 1;
    if (q->dtype != LF_REAL || k->dtype != LF_REAL || v->dtype != LF_REAL || k->numel != q->numel ||
        v->numel != q->numel || lf_cols(k) != C || lf_cols(v) != C || n_heads < 1 || C % n_heads ||
        offsets->dtype != LF_INT || B < 0 ||
        (key_valid && (key_valid->dtype != LF_INT || key_valid->numel != T)))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "attention");
    const int32_t *off = lf_idata(offsets);
    if (off[0] != 0 || off[B] != T)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "attention: offsets must cover the rows");
    /* probability storage: prefix sums of n_b^2 * H, kept for backward */
    int64_t *pofs = lf_arena_alloc(&ctx->arena, (size_t)(B + 1) * sizeof(int64_t));
    if (!pofs)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "attention");
    pofs[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = off[b + 1] - off[b];
        if (n < 0)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "attention: offsets must not decrease");
        pofs[b + 1] = pofs[b] + n * n * n_heads;
    }
    lf_real *P = lf_arena_alloc(&ctx->arena, (size_t)(pofs[B] ? pofs[B] : 1) * sizeof(lf_real));
    attn_saved *sv = lf_arena_alloc(&ctx->arena, sizeof *sv);
    if (!P || !sv)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "attention");
    lf_tensor *in[5] = {q, k, v, offsets, key_valid};
    lf_node *node;
    lf_tensor *out = lf_op_output(ctx, &lf_op_attention, in, key_valid ? 5 : 4, LF_REAL, q->ndim, q->shape, &node);
    if (!out)
        return NULL;
    double scale = 1.0 / sqrt((double)(C / n_heads));
    attn_args a = {lf_data(q), lf_data(k), lf_data(v), NULL, NULL, lf_data(out), P, NULL, NULL, NULL, NULL,
                   off, key_valid ? lf_idata(key_valid) : NULL, pofs, n_heads, C / n_heads, C, (lf_real)scale};
    lf_parallel_for(ctx, B * n_heads, 1, attn_fwd_pairs, &a);
    if (node) {
        node->fp[0] = scale;
        sv->pofs = pofs;
        sv->P = P;
        node->saved = sv;
        node->ip[0] = n_heads;
    }
    return out;
}

/* ---- dropout ------------------------------------------------------------- */

/* A counter-based draw: the same element gets the same number whatever the
 * order or the thread that computes it. */
static inline double hash_uniform(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void dropout_backward(lf_ctx *ctx, lf_node *n)
{
    lf_real *dx = lf_grad_buffer(ctx, n->in[0]);
    if (!dx)
        return;
    uint64_t seed = (uint64_t)n->ip[0];
    double p = n->fp[0];
    lf_real keep = (lf_real)(1 / (1 - p));
    for (int64_t i = 0; i < n->out->numel; i++)
        if (hash_uniform(seed, (uint64_t)i) >= p)
            dx[i] += n->out->grad[i] * keep;
}

const lf_op_def lf_op_dropout = {"dropout", dropout_backward};

lf_tensor *lf_dropout(lf_ctx *ctx, lf_tensor *x, double p, uint64_t seed)
{
    if (!x)
        return NULL;
    if (x->dtype != LF_REAL || !(p >= 0 && p < 1))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "dropout");
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_dropout, &x, 1, LF_REAL, x->ndim, x->shape, &node);
    if (!y)
        return NULL;
    lf_real keep = (lf_real)(1 / (1 - p));
    const lf_real *X = lf_data(x);
    for (int64_t i = 0; i < x->numel; i++)
        lf_data(y)[i] = hash_uniform(seed, (uint64_t)i) >= p ? X[i] * keep : 0;
    if (node) {
        node->ip[0] = (int64_t)seed;
        node->fp[0] = p;
    }
    return y;
}
