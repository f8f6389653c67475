/* Rotary position embedding, multi-head self-attention over packed
 * variable-length sequences, and dropout. */
#include <math.h>
#include <string.h>

#include "core/kernels.h"
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
static void rope_apply(const lf_real *x, lf_real *out, const int32_t *pos, const lf_real *tab, int64_t T,
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
 * of every output, so the result does not depend on how they are split. */
typedef struct {
    const lf_real *q, *k, *v, *o, *dout;
    lf_real *out, *P, *dq, *dk, *dv;
    const int32_t *off, *valid;
    const int64_t *pofs; /* start of each sequence's probabilities in P */
    int64_t H, Dh, C;
    double scale;
} attn_args;

static void attn_fwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const attn_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        lf_real *P = a->P + a->pofs[b] + h * n * n;
        for (int64_t i = 0; i < n; i++) {
            const lf_real *qi = a->q + (s0 + i) * C + h * Dh;
            lf_real *pi = P + i * n;
            double mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                if (a->valid && !a->valid[s0 + j]) {
                    pi[j] = -INFINITY;
                    continue;
                }
                const lf_real *kj = a->k + (s0 + j) * C + h * Dh;
                lf_real dot = 0;
                for (int64_t d = 0; d < Dh; d++)
                    dot += qi[d] * kj[d];
                pi[j] = (lf_real)(dot * a->scale);
                mx = pi[j] > mx ? pi[j] : mx;
            }
            lf_real *oi = a->out + (s0 + i) * C + h * Dh;
            memset(oi, 0, (size_t)Dh * sizeof *oi);
            if (mx == -INFINITY) { /* no key to attend to */
                memset(pi, 0, (size_t)n * sizeof *pi);
                continue;
            }
            double sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double e = pi[j] == -INFINITY ? 0 : exp(pi[j] - mx);
                pi[j] = (lf_real)e;
                sum += e;
            }
            lf_real inv = (lf_real)(1 / sum);
            for (int64_t j = 0; j < n; j++) {
                pi[j] *= inv;
                if (pi[j] == 0)
                    continue;
                const lf_real *vj = a->v + (s0 + j) * C + h * Dh;
                for (int64_t d = 0; d < Dh; d++)
                    oi[d] += pi[j] * vj[d];
            }
        }
    }
}

static void attn_bwd_pairs(void *p, int64_t w0, int64_t w1)
{
    const attn_args *a = p;
    int64_t H = a->H, Dh = a->Dh, C = a->C;
    lf_real scale = (lf_real)a->scale;
    for (int64_t w = w0; w < w1; w++) {
        int64_t b = w / H, h = w % H;
        int64_t s0 = a->off[b], n = a->off[b + 1] - s0;
        lf_real *P = a->P + a->pofs[b] + h * n * n;
        for (int64_t i = 0; i < n; i++) {
            const lf_real *doi = a->dout + (s0 + i) * C + h * Dh, *oi = a->o + (s0 + i) * C + h * Dh;
            const lf_real *qi = a->q + (s0 + i) * C + h * Dh;
            lf_real *pi = P + i * n;
            /* D_i = dO_i . O_i = sum_j p_ij dP_ij */
            lf_real Di = 0;
            for (int64_t d = 0; d < Dh; d++)
                Di += doi[d] * oi[d];
            lf_real *dqi = a->dq ? a->dq + (s0 + i) * C + h * Dh : NULL;
            for (int64_t j = 0; j < n; j++) {
                lf_real pij = pi[j];
                if (pij == 0)
                    continue;
                const lf_real *vj = a->v + (s0 + j) * C + h * Dh;
                if (a->dv) {
                    lf_real *dvj = a->dv + (s0 + j) * C + h * Dh;
                    for (int64_t d = 0; d < Dh; d++)
                        dvj[d] += pij * doi[d];
                }
                lf_real dpij = 0;
                for (int64_t d = 0; d < Dh; d++)
                    dpij += doi[d] * vj[d];
                lf_real ds = pij * (dpij - Di) * scale;
                const lf_real *kj = a->k + (s0 + j) * C + h * Dh;
                if (dqi)
                    for (int64_t d = 0; d < Dh; d++)
                        dqi[d] += ds * kj[d];
                if (a->dk) {
                    lf_real *dkj = a->dk + (s0 + j) * C + h * Dh;
                    for (int64_t d = 0; d < Dh; d++)
                        dkj[d] += ds * qi[d];
                }
            }
        }
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
    if (ctx->status)
        return;
    const attn_saved *sv = n->saved;
    int64_t B = offsets->numel - 1, H = n->ip[0], C = lf_cols(q);
    attn_args a = {lf_data(q), lf_data(k), lf_data(v), lf_data(n->out), n->out->grad,
                   NULL, sv->P, dq, dk, dv,
                   lf_idata(offsets), NULL, sv->pofs, H, C / H, C, n->fp[0]};
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
    attn_args a = {lf_data(q), lf_data(k), lf_data(v), NULL, NULL, lf_data(out), P, NULL, NULL, NULL,
                   off, key_valid ? lf_idata(key_valid) : NULL, pofs, n_heads, C / n_heads, C, scale};
    lf_parallel_for(ctx, B * n_heads, 1, attn_fwd_pairs, &a);
    if (node) {
        node->ip[0] = n_heads;
        node->fp[0] = scale;
        sv->pofs = pofs;
        sv->P = P;
        node->saved = sv;
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
