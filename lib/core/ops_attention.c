/* Rotary position embedding, multi-head self-attention over packed
 * variable-length sequences, and dropout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "core/fastmath.h"
#include "core/lanes.h"
#include "core/ops.h"

/* ---- rotary embedding (rotate-half form) -------------------------------- */

static void rope_fill(lf_real *tab, int64_t p0, int64_t p1, int64_t half, double base)
{
    for (int64_t i = 0; i < half; i++) {
        double theta = pow(base, -(double)(2 * i) / (double)(2 * half));
        for (int64_t p = p0; p < p1; p++) {
            tab[p * 2 * half + i] = (lf_real)cos((double)p * theta);
            tab[p * 2 * half + half + i] = (lf_real)sin((double)p * theta);
        }
    }
}

/* Table for the positions in use: for position p, half cosines then half
 * sines (row p of [max_pos + 1, 2 half]). Taken from the context's tables
 * (computed once, grown by doubling); in the arena when all are taken. */
static lf_real *rope_table(lf_ctx *ctx, const int32_t *pos, int64_t T, int64_t half, double base,
                           int64_t *max_pos_out)
{
    int64_t max_pos = 0;
    for (int64_t t = 0; t < T; t++)
        max_pos = pos[t] > max_pos ? pos[t] : max_pos;
    *max_pos_out = max_pos;
    lf_rope_table *rt = NULL;
    for (int i = 0; i < LF_ROPE_TABLES && !rt; i++)
        if (!ctx->rope[i].tab || (ctx->rope[i].half == half && ctx->rope[i].base == base))
            rt = &ctx->rope[i];
    if (!rt) {
        lf_real *tab = lf_arena_alloc(&ctx->arena, (size_t)((max_pos + 1) * half * 2) * sizeof(lf_real));
        if (tab)
            rope_fill(tab, 0, max_pos + 1, half, base);
        return tab;
    }
    if (rt->tab && max_pos < rt->n_pos)
        return rt->tab;
    int64_t n_pos = rt->n_pos * 2 > 128 ? rt->n_pos * 2 : 128;
    while (n_pos <= max_pos)
        n_pos *= 2;
    /* one aligned header block holding the link to the previous table */
    size_t head = LF_ALIGN, bytes = head + (size_t)(n_pos * half * 2) * sizeof(lf_real);
    char *blk = malloc(bytes);
    if (!blk)
        return NULL;
    lf_real *tab = (lf_real *)(blk + head);
    ((lf_real **)tab)[-1] = rt->tab;
    if (rt->tab)
        memcpy(tab, rt->tab, (size_t)(rt->n_pos * half * 2) * sizeof(lf_real));
    rope_fill(tab, rt->tab ? rt->n_pos : 0, n_pos, half, base);
    *rt = (lf_rope_table){half, n_pos, base, tab};
    return tab;
}

/* out = R(pos) x (sign = +1) or R(pos)^T x (sign = -1), accumulated when
 * acc; rows of x and out are xs and os elements apart (views into wider
 * tensors). */
LF_SIMD_CLONES static void rope_apply(const lf_real *x, int64_t xs, lf_real *out, int64_t os, const int32_t *pos,
                                      const lf_real *tab, int64_t T, int64_t H, int64_t half, int sign, bool acc)
{
    int64_t Dh = 2 * half;
    lf_real sg = (lf_real)sign;
    for (int64_t t = 0; t < T; t++) {
        const lf_real *co = tab + (int64_t)pos[t] * 2 * half, *si = co + half;
        for (int64_t h = 0; h < H; h++) {
            const lf_real *xa = x + t * xs + h * Dh, *xb = xa + half;
            lf_real *oa = out + t * os + h * Dh, *ob = oa + half;
            if (acc)
                for (int64_t i = 0; i < half; i++) {
                    oa[i] += xa[i] * co[i] - xb[i] * sg * si[i];
                    ob[i] += xb[i] * co[i] + xa[i] * sg * si[i];
                }
            else
                for (int64_t i = 0; i < half; i++) {
                    oa[i] = xa[i] * co[i] - xb[i] * sg * si[i];
                    ob[i] = xb[i] * co[i] + xa[i] * sg * si[i];
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
    int64_t C = lf_cols(x);
    rope_apply(n->out->grad, C, dx, C, lf_idata(pos), n->saved, lf_rows(x), n->ip[0], n->ip[1], -1, true);
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
    rope_apply(lf_data(x), C, lf_data(y), C, P, tab, T, n_heads, half, 1, false);
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
 * row with no valid key is all zeros. Rows are short (a sequence's length):
 * the last partial block of 16 goes through a padded copy (-inf beyond the
 * row, whose exp is 0), so every step runs on whole vectors of 16 lanes. */
LF_SIMD_CLONES static void softmax_rows_masked(lf_real *S, int64_t n, const int32_t *valid)
{
    int64_t nb = n / LF_LANES * LF_LANES, nt = n - nb;
    for (int64_t i = 0; i < n; i++) {
        lf_real *row = S + i * n;
        lf_real lane[LF_LANES], tail[LF_LANES];
        if (valid)
            for (int64_t j = 0; j < n; j++)
                row[j] = valid[j] ? row[j] : -INFINITY;
        for (int l = 0; l < LF_LANES; l++) {
            lane[l] = -INFINITY;
            tail[l] = -INFINITY;
        }
        if (nt)
            memcpy(tail, row + nb, (size_t)nt * sizeof *row);
        for (int64_t b = 0; b < nb; b += LF_LANES)
            for (int l = 0; l < LF_LANES; l++)
                lane[l] = row[b + l] > lane[l] ? row[b + l] : lane[l];
        for (int l = 0; l < LF_LANES; l++)
            lane[l] = tail[l] > lane[l] ? tail[l] : lane[l];
        for (int w = LF_LANES / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                lane[l] = lane[l + w] > lane[l] ? lane[l + w] : lane[l];
        lf_real mx = lane[0];
        if (mx == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        /* exp(-inf) = 0 through the clamp */
        for (int l = 0; l < LF_LANES; l++)
            lane[l] = 0;
        for (int64_t b = 0; b < nb; b += LF_LANES)
            for (int l = 0; l < LF_LANES; l++) {
                lf_real e = lf_fast_exp(row[b + l] - mx);
                row[b + l] = e;
                lane[l] += e;
            }
        if (nt)
            for (int l = 0; l < LF_LANES; l++) {
                tail[l] = lf_fast_exp(tail[l] - mx);
                lane[l] += tail[l];
            }
        for (int w = LF_LANES / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                lane[l] += lane[l + w];
        lf_real inv = 1 / lane[0];
        for (int64_t b = 0; b < nb; b += LF_LANES)
            for (int l = 0; l < LF_LANES; l++)
                row[b + l] *= inv;
        if (nt) {
            for (int l = 0; l < LF_LANES; l++)
                tail[l] *= inv;
            memcpy(row + nb, tail, (size_t)nt * sizeof *row);
        }
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
        lf_gemm_small(false, true, n, n, Dh, a->scale, q, C, k, C, 0, P, n);
        softmax_rows_masked(P, n, a->valid ? a->valid + s0 : NULL);
        lf_gemm_small(false, false, n, Dh, n, 1, P, n, v, C, 0, a->out + s0 * C + h * Dh, C);
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
            lf_gemm_small(true, false, n, Dh, n, 1, P, n, dO, C, 1, a->dv + at, C);
        if (!a->dq && !a->dk)
            continue;
        /* dP = dO V^T, then dS = P (dP - D) scale with D_i = dO_i . O_i */
        lf_gemm_small(false, true, n, n, Dh, 1, dO, C, a->v + at, C, 0, dS, n);
        for (int64_t i = 0; i < n; i++) {
            lf_real D;
            LF_SUM_LANES(lf_real, D, Dh, d, dO[i * C + d] * O[i * C + d]);
            const lf_real *pi = P + i * n;
            lf_real *si = dS + i * n;
            for (int64_t j = 0; j < n; j++)
                si[j] = pi[j] * (si[j] - D) * a->scale;
        }
        if (a->dq) /* dQ += dS K */
            lf_gemm_small(false, false, n, Dh, n, 1, dS, n, a->k + at, C, 1, a->dq + at, C);
        if (a->dk) /* dK += dS^T Q */
            lf_gemm_small(true, false, n, Dh, n, 1, dS, n, a->q + at, C, 1, a->dk + at, C);
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
    lf_parallel_dynamic(ctx, B * H, 1, attn_bwd_pairs, &a); /* pairs cost n^2: uneven */
    ctx->flops += 8.0 * (double)sv->pofs[B] * (double)(C / H);
    if (ctx->recycling) { /* the probabilities and the scratch are dead now */
        lf_recycle(ctx, sv->P, (size_t)(sv->pofs[B] ? sv->pofs[B] : 1) * sizeof(lf_real));
        lf_recycle(ctx, scratch, (size_t)(sv->pofs[B] ? sv->pofs[B] : 1) * sizeof(lf_real));
    }
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
    lf_parallel_dynamic(ctx, B * n_heads, 1, attn_fwd_pairs, &a);
    ctx->flops += 4.0 * (double)pofs[B] * (double)(C / n_heads);
    if (node) {
        node->fp[0] = scale;
        sv->pofs = pofs;
        sv->P = P;
        node->saved = sv;
        node->ip[0] = n_heads;
    }
    return out;
}

/* ---- fused: rotary embedding + attention straight from a qkv tensor ------ */

/* The transformer's attention without the intermediate copies: q, k and v
 * are column blocks of qkv [T, 3C]; q and k are rotated into two saved
 * [T, C] buffers, v is read in place (row stride 3C), and the backward pass
 * writes d(qkv) directly. */
typedef struct {
    const lf_real *qkv, *qr, *kr, *o, *dout;
    lf_real *out, *P, *scratch, *dqkv, *dqr, *dkr;
    const int32_t *off, *valid;
    const int64_t *pofs;
    int64_t H, Dh, C;
    lf_real scale;
    lf_real beta;  /* backward: 0 when d(qkv) is a new buffer (store) */
} ra_args;

static void ra_fwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const ra_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        if (n == 0)
            continue;
        lf_real *P = a->P + a->pofs[b] + h * n * n;
        lf_gemm_small(false, true, n, n, Dh, a->scale, a->qr + s0 * C + h * Dh, C, a->kr + s0 * C + h * Dh, C, 0, P, n);
        softmax_rows_masked(P, n, a->valid ? a->valid + s0 : NULL);
        lf_gemm_small(false, false, n, Dh, n, 1, P, n, a->qkv + s0 * 3 * C + 2 * C + h * Dh, 3 * C, 0,
                a->out + s0 * C + h * Dh, C);
    }
}

static void ra_bwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const ra_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        if (n == 0)
            continue;
        int64_t at = s0 * C + h * Dh, at3 = s0 * 3 * C + h * Dh;
        const lf_real *P = a->P + a->pofs[b] + h * n * n;
        lf_real *dS = a->scratch + a->pofs[b] + h * n * n;
        const lf_real *dO = a->dout + at, *O = a->o + at;
        lf_gemm_small(true, false, n, Dh, n, 1, P, n, dO, C, a->beta, a->dqkv + at3 + 2 * C, 3 * C); /* dV += P^T dO */
        lf_gemm_small(false, true, n, n, Dh, 1, dO, C, a->qkv + at3 + 2 * C, 3 * C, 0, dS, n);  /* dP = dO V^T */
        for (int64_t i = 0; i < n; i++) {
            lf_real D;
            LF_SUM_LANES(lf_real, D, Dh, d, dO[i * C + d] * O[i * C + d]);
            const lf_real *pi = P + i * n;
            lf_real *si = dS + i * n;
            for (int64_t j = 0; j < n; j++)
                si[j] = pi[j] * (si[j] - D) * a->scale;
        }
        /* the pair is the only contribution to its block of dQr and dKr */
        lf_gemm_small(false, false, n, Dh, n, 1, dS, n, a->kr + at, C, 0, a->dqr + at, C); /* dQr = dS Kr */
        lf_gemm_small(true, false, n, Dh, n, 1, dS, n, a->qr + at, C, 0, a->dkr + at, C);  /* dKr = dS^T Qr */
    }
}

typedef struct {
    const lf_real *src, *tab;
    int64_t src_stride, dst_stride, H, half;
    const int32_t *pos;
    lf_real *dst;
    int sign;
    bool acc;
} rope_rows_args;

static void rope_rows(void *p, int64_t t0, int64_t t1)
{
    const rope_rows_args *r = p;
    rope_apply(r->src + t0 * r->src_stride, r->src_stride, r->dst + t0 * r->dst_stride, r->dst_stride, r->pos + t0,
               r->tab, t1 - t0, r->H, r->half, r->sign, r->acc);
}

typedef struct {
    lf_real *qr, *kr, *P, *tab;
    int64_t *pofs;
} ra_saved;

static void rope_attention_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *qkv = n->in[0], *pos = n->in[1], *offsets = n->in[2];
    const ra_saved *sv = n->saved;
    int64_t T = lf_rows(qkv), C = lf_cols(qkv) / 3, B = offsets->numel - 1, H = n->ip[0], half = C / H / 2;
    lf_real beta;
    lf_real *dqkv = lf_grad_buffer_beta(ctx, qkv, &beta);
    lf_real *scratch = lf_arena_alloc(&ctx->arena, (size_t)(sv->pofs[B] ? sv->pofs[B] : 1) * sizeof(lf_real));
    lf_real *dqr = lf_arena_alloc(&ctx->arena, (size_t)(2 * T * C + 1) * sizeof(lf_real));
    if (!scratch || !dqr)
        lf_ctx_fail(ctx, LFLEX_ENOMEM, "rope_attention backward");
    if (ctx->status)
        return;
    ra_args a = {lf_data(qkv), sv->qr, sv->kr, lf_data(n->out), n->out->grad, NULL, sv->P, scratch, dqkv, dqr,
                 dqr + T * C, lf_idata(offsets), NULL, sv->pofs, H, C / H, C, (lf_real)n->fp[0], beta};
    lf_parallel_dynamic(ctx, B * H, 1, ra_bwd_pairs, &a);
    ctx->flops += 8.0 * (double)sv->pofs[B] * (double)(C / H); /* four products of n x n x Dh per pair */
    /* back through the rotations into the q and k blocks of d(qkv) */
    rope_rows_args r = {dqr, sv->tab, C, 3 * C, H, half, lf_idata(pos), dqkv, -1, beta != 0}, rk = r;
    rk.src = dqr + T * C;
    rk.dst = dqkv + C;
    lf_task tasks[2] = {{rope_rows, &r, T, 64}, {rope_rows, &rk, T, 64}};
    lf_parallel_tasks(ctx, tasks, 2);
    if (ctx->recycling) { /* everything this op kept or made is dead now */
        size_t np = (size_t)(sv->pofs[B] ? sv->pofs[B] : 1) * sizeof(lf_real);
        lf_recycle(ctx, sv->P, np);
        lf_recycle(ctx, scratch, np);
        lf_recycle(ctx, sv->qr, (size_t)(2 * T * C + 1) * sizeof(lf_real));
        lf_recycle(ctx, dqr, (size_t)(2 * T * C + 1) * sizeof(lf_real));
    }
}

const lf_op_def lf_op_rope_attention = {"rope_attention", rope_attention_backward};

lf_tensor *lf_rope_attention(lf_ctx *ctx, lf_tensor *qkv, lf_tensor *pos, lf_tensor *offsets, lf_tensor *key_valid,
                             int64_t n_heads, double base)
{
    if (!qkv || !pos || !offsets)
        return NULL;
    int64_t T = lf_rows(qkv), C3 = lf_cols(qkv), C = C3 / 3, B = offsets->numel - 1;
    if (qkv->dtype != LF_REAL || C3 % 3 || n_heads < 1 || C % n_heads || (C / n_heads) % 2 || pos->dtype != LF_INT ||
        pos->numel != T || offsets->dtype != LF_INT || B < 0 || !(base > 1) ||
        (key_valid && (key_valid->dtype != LF_INT || key_valid->numel != T)))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope_attention");
    const int32_t *off = lf_idata(offsets), *P32 = lf_idata(pos);
    if (off[0] != 0 || off[B] != T)
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope_attention: offsets must cover the rows");
    for (int64_t t = 0; t < T; t++)
        if (P32[t] < 0)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope_attention: negative position");
    int64_t half = C / n_heads / 2, max_pos;
    ra_saved *sv = lf_arena_alloc(&ctx->arena, sizeof *sv);
    int64_t *pofs = lf_arena_alloc(&ctx->arena, (size_t)(B + 1) * sizeof(int64_t));
    lf_real *tab = rope_table(ctx, P32, T, half, base, &max_pos);
    lf_real *qr = lf_arena_alloc(&ctx->arena, (size_t)(2 * T * C + 1) * sizeof(lf_real));
    if (!sv || !pofs || !tab || !qr)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "rope_attention");
    pofs[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = off[b + 1] - off[b];
        if (n < 0)
            return lf_ctx_fail(ctx, LFLEX_EINVAL, "rope_attention: offsets must not decrease");
        pofs[b + 1] = pofs[b] + n * n * n_heads;
    }
    lf_real *P = lf_arena_alloc(&ctx->arena, (size_t)(pofs[B] ? pofs[B] : 1) * sizeof(lf_real));
    if (!P)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "rope_attention");
    lf_tensor *in[4] = {qkv, pos, offsets, key_valid};
    int64_t shape[2] = {T, C};
    lf_node *node;
    lf_tensor *out = lf_op_output(ctx, &lf_op_rope_attention, in, key_valid ? 4 : 3, LF_REAL, 2, shape, &node);
    if (!out)
        return NULL;
    rope_rows_args r = {lf_data(qkv), tab, C3, C, n_heads, half, P32, qr, 1, false}, rk = r;
    rk.src = lf_data(qkv) + C;
    rk.dst = qr + T * C;
    lf_task tasks[2] = {{rope_rows, &r, T, 64}, {rope_rows, &rk, T, 64}};
    lf_parallel_tasks(ctx, tasks, 2);
    double scale = 1.0 / sqrt((double)(C / n_heads));
    ra_args a = {lf_data(qkv), qr, qr + T * C, NULL, NULL, lf_data(out), P, NULL, NULL, NULL, NULL,
                 off, key_valid ? lf_idata(key_valid) : NULL, pofs, n_heads, C / n_heads, C, (lf_real)scale, 1};
    lf_parallel_dynamic(ctx, B * n_heads, 1, ra_fwd_pairs, &a); /* pairs cost n^2: uneven */
    ctx->flops += 4.0 * (double)pofs[B] * (double)(C / n_heads); /* q k^T and p v */
    if (node) {
        sv->qr = qr;
        sv->kr = qr + T * C;
        sv->P = P;
        sv->tab = tab;
        sv->pofs = pofs;
        node->saved = sv;
        node->ip[0] = n_heads;
        node->fp[0] = scale;
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
