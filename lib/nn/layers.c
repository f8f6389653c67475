#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"

#define INIT_STD 0.02

/* ---- registration -------------------------------------------------------- */

typedef struct {
    lf_params *p;
    const char *prefix;
    bool failed;
} reg_ctx;

static lf_tensor *reg(reg_ctx *r, const char *name, int64_t n0, int64_t n1, lf_init init, double v, bool decay)
{
    char full[LF_PARAM_NAME_MAX];
    snprintf(full, sizeof full, "%s.%s", r->prefix, name);
    lf_tensor *t = lf_params_add(r->p, full, n0, n1, init, v, decay);
    if (!t)
        r->failed = true;
    return t;
}

/* weights are decayed and normal(0.02); biases and scales are not decayed */
#define W(name, o, i) reg(r, name, o, i, LF_INIT_NORMAL, INIT_STD, true)
#define BIAS(name, n) reg(r, name, n, 0, LF_INIT_ZERO, 0, false)
#define SCALE(name, n) reg(r, name, n, 0, LF_INIT_ONE, 0, false)

int lf_backbone_register(lf_backbone *bb, const lf_backbone_cfg *cfg, lf_params *p, const char *prefix)
{
    memset(bb, 0, sizeof *bb);
    bb->cfg = *cfg;
    reg_ctx rc = {p, prefix, false}, *r = &rc;
    int64_t d = cfg->d, dc = cfg->d_cond, dff = cfg->d_ff;
    bb->tok_emb = reg(r, "tok_emb", cfg->vocab, d, LF_INIT_NORMAL, INIT_STD, false);
    if (cfg->n_pos > 0)
        bb->pos_emb = reg(r, "pos_emb", cfg->n_pos, d, LF_INIT_NORMAL, INIT_STD, false);
    if (cfg->seg_len > 0)
        bb->seg_pos = reg(r, "seg_pos", 4 * (cfg->seg_len + 1), d, LF_INIT_ZERO, 0, false);
    bb->time_w1 = W("time.w1", dc, 2 * LF_TIME_FREQS);
    bb->time_b1 = BIAS("time.b1", dc);
    bb->time_w2 = W("time.w2", dc, dc);
    bb->time_b2 = BIAS("time.b2", dc);
    bb->blocks = calloc((size_t)(cfg->n_layers ? cfg->n_layers : 1), sizeof *bb->blocks);
    if (!bb->blocks)
        return LFLEX_ENOMEM;
    for (int64_t i = 0; i < cfg->n_layers; i++) {
        lf_block *b = &bb->blocks[i];
        char name[48];
#define BLK(s) (snprintf(name, sizeof name, "blocks.%ld." s, (long)i), name)
        b->ada_w = reg(r, BLK("ada.w"), 6 * d, dc, LF_INIT_ZERO, 0, true);
        b->ada_b = reg(r, BLK("ada.b"), 6 * d, 0, LF_INIT_ZERO, 0, false);
        b->ln1 = SCALE(BLK("ln1.scale"), d);
        b->wqkv = W(BLK("attn.wqkv"), 3 * d, d);
        b->bqkv = BIAS(BLK("attn.bqkv"), 3 * d);
        b->wo = W(BLK("attn.wo"), d, d);
        b->bo = BIAS(BLK("attn.bo"), d);
        b->ln2 = SCALE(BLK("ln2.scale"), d);
        b->w1 = W(BLK("mlp.w1"), dff, d);
        b->b1 = BIAS(BLK("mlp.b1"), dff);
        b->w2 = W(BLK("mlp.w2"), d, dff);
        b->b2 = BIAS(BLK("mlp.b2"), d);
        if (cfg->token_shift) {
            /* 1/2 each: neighbours are visible from the start (zeros
             * learned no faster than no shift, EXPERIMENTS.md) */
            b->shift_prev = reg(r, BLK("shift.prev"), d, 0, LF_INIT_CONST, LF_SHIFT_INIT, false);
            b->shift_next = reg(r, BLK("shift.next"), d, 0, LF_INIT_CONST, LF_SHIFT_INIT, false);
        }
#undef BLK
    }
    return r->failed ? LFLEX_ENOMEM : LFLEX_OK;
}

void lf_backbone_free(lf_backbone *bb)
{
    free(bb->blocks);
    bb->blocks = NULL;
}

static void head_norm_register(lf_head_norm *hn, reg_ctx *r, int64_t d, int64_t dc)
{
    hn->ada_w = reg(r, "ada.w", 2 * d, dc, LF_INIT_ZERO, 0, true);
    hn->ada_b = reg(r, "ada.b", 2 * d, 0, LF_INIT_ZERO, 0, false);
    hn->ln = SCALE("ln.scale", d);
}

int lf_token_head_register(lf_token_head *h, int64_t d, int64_t d_cond, int64_t n_out, lf_params *p,
                           const char *prefix)
{
    reg_ctx rc = {p, prefix, false}, *r = &rc;
    head_norm_register(&h->norm, r, d, d_cond);
    h->w = W("w", n_out, d);
    h->b = BIAS("b", n_out);
    return r->failed ? LFLEX_ENOMEM : LFLEX_OK;
}

int lf_rate_head_register(lf_rate_head *h, int64_t d, int64_t d_cond, double min_rate, double max_rate,
                          lf_params *p, const char *prefix)
{
    reg_ctx rc = {p, prefix, false}, *r = &rc;
    head_norm_register(&h->norm, r, d, d_cond);
    h->w1 = W("w1", d, d);
    h->b1 = BIAS("b1", d);
    h->w2 = W("w2", 1, d);
    /* initial rate softplus(-4) (max - min) + min: small, never zero */
    h->b2 = reg(r, "b2", 1, 0, LF_INIT_CONST, -4.0, false);
    h->min_rate = min_rate;
    h->max_rate = max_rate;
    return r->failed ? LFLEX_ENOMEM : LFLEX_OK;
}

#undef W
#undef BIAS
#undef SCALE

/* ---- forward --------------------------------------------------------------- */

int lf_packed_make(lf_ctx *ctx, lf_packed *pk, const int32_t *ids, const int32_t *offsets, int64_t n_seq)
{
    int64_t T = offsets[n_seq];
    pk->n_seq = n_seq;
    pk->n_tok = T;
    pk->ids = ids ? lf_const_int(ctx, ids, T) : lf_new1(ctx, LF_INT, T);
    pk->seg = lf_new1(ctx, LF_INT, T);
    pk->pos = lf_new1(ctx, LF_INT, T);
    pk->offsets = lf_const_int(ctx, offsets, n_seq + 1);
    if (!pk->ids || !pk->seg || !pk->pos || !pk->offsets)
        return ctx->status ? ctx->status : LFLEX_ENOMEM;
    for (int64_t b = 0; b < n_seq; b++)
        for (int64_t i = offsets[b]; i < offsets[b + 1]; i++) {
            lf_idata(pk->seg)[i] = (int32_t)b;
            lf_idata(pk->pos)[i] = (int32_t)(i - offsets[b]);
        }
    return LFLEX_OK;
}

lf_tensor *lf_time_features(lf_ctx *ctx, const double *t, int64_t n_seq)
{
    lf_tensor *e = lf_new2(ctx, LF_REAL, n_seq, 2 * LF_TIME_FREQS);
    if (!e)
        return NULL;
    double f[LF_TIME_FREQS];
    for (int j = 0; j < LF_TIME_FREQS; j++)
        f[j] = exp(-log(10000.0) * j / LF_TIME_FREQS);
    for (int64_t b = 0; b < n_seq; b++) {
        lf_real *row = lf_data(e) + b * 2 * LF_TIME_FREQS;
        for (int j = 0; j < LF_TIME_FREQS; j++) {
            row[j] = (lf_real)cos(t[b] * f[j]);
            row[LF_TIME_FREQS + j] = (lf_real)sin(t[b] * f[j]);
        }
    }
    return e;
}

static lf_tensor *maybe_dropout(lf_ctx *ctx, lf_tensor *x, const lf_backbone_cfg *cfg, bool train, uint64_t seed)
{
    if (!train || cfg->dropout <= 0)
        return x;
    return lf_dropout(ctx, x, cfg->dropout, seed);
}

/* Rows of the segment position tables (model.seg_pos). A sequence has two
 * segments: the prompt (the tokens before its last BOS) and the rest (BOS,
 * the target, EOS; the whole sequence when there is no BOS). Every token
 * gets its index counted from the start of its segment and from its end:
 * prompt token i of P: i and P-1-i (tables 0 and 1); token i of the rest,
 * with BOS at index b (b = -1 without BOS) and n tokens in the sequence:
 * i-b and n-1-i (tables 2 and 3), so the first target token is 1 and EOS is
 * 0 from the end. Each table has L+1 rows, L = model.max_len. */
static int seg_pos_rows(lf_ctx *ctx, const lf_packed *pk, int64_t L, int32_t bos_id, lf_tensor **from_start, lf_tensor **from_end)
{
    const int64_t T = pk->n_tok, R = L + 1;
    *from_start = lf_new1(ctx, LF_INT, T);
    *from_end = lf_new1(ctx, LF_INT, T);
    if (!*from_start || !*from_end)
        return LFLEX_ENOMEM;
    const int32_t *ids = lf_idata(pk->ids), *off = lf_idata(pk->offsets);
    int32_t *fs = lf_idata(*from_start), *fe = lf_idata(*from_end);
    for (int64_t s = 0; s < pk->n_seq; s++) {
        int64_t b = off[s], e = off[s + 1], bos = -1;
        for (int64_t i = b; i < e; i++)
            if (ids[i] == bos_id)
                bos = i - b;
        for (int64_t i = 0; i < e - b; i++) {
            int64_t a, z;
            if (i < bos) {
                a = i;
                z = R + (bos - 1 - i);
            } else {
                a = 2 * R + (i - bos);
                z = 3 * R + (e - b - 1 - i);
            }
            fs[b + i] = (int32_t)a;
            fe[b + i] = (int32_t)z;
        }
    }
    return 0;
}

/* Row indices and 0/1 masks of each row's left and right neighbour within its
 * sequence (model.token_shift); a row without one points at itself, masked. */
typedef struct {
    lf_tensor *prev, *next, *prev_mask, *next_mask;
} shift_rows;

static int token_shift_rows(lf_ctx *ctx, const lf_packed *pk, shift_rows *s)
{
    const int64_t T = pk->n_tok;
    const int64_t col[2] = {T, 1};
    s->prev = lf_new1(ctx, LF_INT, T);
    s->next = lf_new1(ctx, LF_INT, T);
    s->prev_mask = lf_tensor_new(ctx, LF_REAL, 2, col);
    s->next_mask = lf_tensor_new(ctx, LF_REAL, 2, col);
    if (!s->prev || !s->next || !s->prev_mask || !s->next_mask)
        return LFLEX_ENOMEM;
    const int32_t *off = lf_idata(pk->offsets);
    for (int64_t q = 0; q < pk->n_seq; q++)
        for (int64_t i = off[q]; i < off[q + 1]; i++) {
            bool has_prev = i > off[q], has_next = i + 1 < off[q + 1];
            lf_idata(s->prev)[i] = (int32_t)(has_prev ? i - 1 : i);
            lf_idata(s->next)[i] = (int32_t)(has_next ? i + 1 : i);
            lf_data(s->prev_mask)[i] = has_prev ? 1 : 0;
            lf_data(s->next_mask)[i] = has_next ? 1 : 0;
        }
    return 0;
}

/* h + w_prev * h[left] + w_next * h[right] */
static lf_tensor *token_shift(lf_ctx *ctx, lf_tensor *h, const lf_block *b, const shift_rows *s)
{
    lf_tensor *l = lf_mul(ctx, lf_mul(ctx, lf_embedding(ctx, h, s->prev), s->prev_mask), b->shift_prev);
    lf_tensor *r = lf_mul(ctx, lf_mul(ctx, lf_embedding(ctx, h, s->next), s->next_mask), b->shift_next);
    return lf_add(ctx, lf_add(ctx, h, l), r);
}

lf_tensor *lf_backbone_forward(lf_ctx *ctx, const lf_backbone *bb, const lf_packed *pk, const double *t,
                               bool train, uint64_t seed, lf_tensor **cond)
{
    const lf_backbone_cfg *cfg = &bb->cfg;
    int64_t d = cfg->d, H = cfg->n_heads;
    /* When every sequence is at one time (generation; the auxiliary network,
     * which reads none) the conditioning is computed for one row and the
     * rows are copies of it (gathered, so the gradients add up). */
    bool one_time = pk->n_seq > 1;
    for (int64_t b = 1; b < pk->n_seq && one_time; b++)
        one_time = t[b] == t[0];
    int64_t n_t = one_time ? 1 : pk->n_seq;
    lf_tensor *same = NULL;
    if (one_time) {
        if (!(same = lf_new1(ctx, LF_INT, pk->n_seq)))
            return NULL;
        memset(lf_idata(same), 0, (size_t)pk->n_seq * sizeof(int32_t));
    }
#define ROWS(x) (same ? lf_embedding(ctx, (x), same) : (x))
    lf_tensor *e = lf_time_features(ctx, t, n_t);
    lf_tensor *c1 = lf_linear_act(ctx, e, bb->time_w1, bb->time_b1, LF_SILU);
    c1 = lf_linear_act(ctx, c1, bb->time_w2, bb->time_b2, LF_SILU);
    *cond = ROWS(c1);
    lf_tensor *h = lf_embedding(ctx, bb->tok_emb, pk->ids);
    if (bb->pos_emb)
        h = lf_add(ctx, h, lf_embedding(ctx, bb->pos_emb, pk->pos));
    if (bb->seg_pos) {
        lf_tensor *from_start = NULL, *from_end = NULL;
        if (seg_pos_rows(ctx, pk, cfg->seg_len, cfg->bos_id, &from_start, &from_end))
            return NULL;
        h = lf_add(ctx, h, lf_embedding(ctx, bb->seg_pos, from_start));
        h = lf_add(ctx, h, lf_embedding(ctx, bb->seg_pos, from_end));
    }
    shift_rows sr = {0};
    if (cfg->token_shift && token_shift_rows(ctx, pk, &sr))
        return NULL;
    /* chunks of m: shift_a, scale_a, gate_a, shift_m, scale_m, gate_m; each
     * gated residual is computed in one pass with the norm that follows it */
    lf_tensor *m = cfg->n_layers > 0 ? ROWS(lf_linear(ctx, c1, bb->blocks[0].ada_w, bb->blocks[0].ada_b)) : NULL;
    /* model.token_shift: each block starts by adding to every row of the
     * residual stream its neighbours in the sequence (so the reach grows by
     * one token a block); the norm follows it */
    if (cfg->token_shift && cfg->n_layers > 0)
        h = token_shift(ctx, h, &bb->blocks[0], &sr);
    lf_tensor *a = cfg->n_layers > 0 ? lf_ln_modulate(ctx, h, bb->blocks[0].ln1, LF_LN_EPS, m, 0, d, pk->seg) : NULL;
    for (int64_t i = 0; i < cfg->n_layers; i++) {
        const lf_block *b = &bb->blocks[i];
        lf_tensor *qkv = lf_linear(ctx, a, b->wqkv, b->bqkv);
        lf_tensor *o = lf_rope_attention(ctx, qkv, pk->pos, pk->offsets, NULL, H, LF_ROPE_BASE);
        o = maybe_dropout(ctx, lf_linear(ctx, o, b->wo, b->bo), cfg, train, seed + (uint64_t)(2 * i));
        a = lf_gated_add_ln_modulate(ctx, h, o, m, 2 * d, pk->seg, b->ln2, LF_LN_EPS, m, 3 * d, 4 * d, &h);
        lf_tensor *u = lf_linear_act(ctx, a, b->w1, b->b1, cfg->act == LF_ACT_RELU ? LF_RELU : LF_GELU);
        u = maybe_dropout(ctx, lf_linear(ctx, u, b->w2, b->b2), cfg, train, seed + (uint64_t)(2 * i + 1));
        if (i + 1 == cfg->n_layers) {
            h = lf_gated_add(ctx, h, u, m, 5 * d, pk->seg);
            break;
        }
        const lf_block *nb = &bb->blocks[i + 1];
        lf_tensor *m_next = ROWS(lf_linear(ctx, c1, nb->ada_w, nb->ada_b));
        if (cfg->token_shift) {
            h = token_shift(ctx, lf_gated_add(ctx, h, u, m, 5 * d, pk->seg), nb, &sr);
            a = lf_ln_modulate(ctx, h, nb->ln1, LF_LN_EPS, m_next, 0, d, pk->seg);
        } else
            a = lf_gated_add_ln_modulate(ctx, h, u, m, 5 * d, pk->seg, nb->ln1, LF_LN_EPS, m_next, 0, d, &h);
        m = m_next;
    }
    return h;
#undef ROWS
}

lf_tensor *lf_head_norm_forward(lf_ctx *ctx, const lf_head_norm *hn, lf_tensor *h, lf_tensor *c, lf_tensor *seg)
{
    int64_t d = h ? lf_cols(h) : 0;
    lf_tensor *m = lf_linear(ctx, c, hn->ada_w, hn->ada_b); /* shift, scale */
    return lf_ln_modulate(ctx, h, hn->ln, LF_LN_EPS, m, 0, d, seg);
}

lf_tensor *lf_token_head_forward(lf_ctx *ctx, const lf_token_head *th, lf_tensor *h, lf_tensor *c, lf_tensor *seg)
{
    return lf_linear(ctx, lf_head_norm_forward(ctx, &th->norm, h, c, seg), th->w, th->b);
}

lf_tensor *lf_rate_head_score(lf_ctx *ctx, const lf_rate_head *rh, lf_tensor *h, lf_tensor *c, lf_tensor *seg)
{
    lf_tensor *a = lf_head_norm_forward(ctx, &rh->norm, h, c, seg);
    lf_tensor *s = lf_linear(ctx, lf_linear_act(ctx, a, rh->w1, rh->b1, LF_GELU), rh->w2, rh->b2);
    if (!s)
        return NULL;
    int64_t n = s->numel;
    return lf_reshape(ctx, s, 1, &n);
}

lf_tensor *lf_rate_head_forward(lf_ctx *ctx, const lf_rate_head *rh, lf_tensor *h, lf_tensor *c, lf_tensor *seg)
{
    lf_tensor *s = lf_rate_head_score(ctx, rh, h, c, seg);
    if (!s)
        return NULL;
    return lf_affine(ctx, lf_unary_op(ctx, LF_SOFTPLUS, s), rh->max_rate - rh->min_rate, rh->min_rate);
}
