#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "toy_model.h"

static uint64_t toy_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double toy_uniform(uint64_t *s) { return (double)(toy_rand(s) >> 11) * (1.0 / 9007199254740992.0); }

static void wrap_param(toy_model *m, lf_tensor *t, int64_t *at, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    lf_tensor_wrap(t, LF_REAL, m->data + *at, m->grad + *at, cols ? 2 : 1, cols ? shape : &rows);
    *at += rows * (cols ? cols : 1);
}

int toy_init(toy_model *m, int64_t V, int64_t d, int64_t H, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->V = V;
    m->d = d;
    m->H = H;
    m->n_params = V * d + 3 * d * d + d * d + 4 * d * d + 4 * d * d + V * d + d;
    m->data = calloc((size_t)m->n_params, sizeof(lf_real));
    m->grad = calloc((size_t)m->n_params, sizeof(lf_real));
    m->m = calloc((size_t)m->n_params, sizeof(lf_real));
    m->v = calloc((size_t)m->n_params, sizeof(lf_real));
    if (!m->data || !m->grad || !m->m || !m->v) {
        toy_free(m);
        return LFLEX_ENOMEM;
    }
    int64_t at = 0;
    wrap_param(m, &m->emb, &at, V, d);
    wrap_param(m, &m->wqkv, &at, 3 * d, d);
    wrap_param(m, &m->wo, &at, d, d);
    wrap_param(m, &m->w1, &at, 4 * d, d);
    wrap_param(m, &m->w2, &at, d, 4 * d);
    wrap_param(m, &m->wout, &at, V, d);
    wrap_param(m, &m->ln_scale, &at, d, 0);
    for (int64_t i = 0; i < at - d; i++) /* normal-ish init, std ~ 1/sqrt(d) */
        m->data[i] = (lf_real)((toy_uniform(&seed) - 0.5) * sqrt(12.0 / (double)d));
    for (int64_t i = at - d; i < at; i++)
        m->data[i] = 1;
    return lf_ctx_init(&m->ctx, 1 << 20, 1);
}

void toy_free(toy_model *m)
{
    free(m->data);
    free(m->grad);
    free(m->m);
    free(m->v);
    lf_ctx_free(&m->ctx);
    memset(m, 0, sizeof *m);
}

int64_t toy_batch(uint64_t *rng, int64_t V, int64_t n_seq, int64_t min_len, int64_t max_len,
                  int32_t *tokens, int32_t *targets, int32_t *offsets)
{
    offsets[0] = 0;
    for (int64_t b = 0; b < n_seq; b++) {
        int64_t n = min_len + (int64_t)(toy_rand(rng) % (uint64_t)(max_len - min_len + 1));
        int32_t *x = tokens + offsets[b], *y = targets + offsets[b];
        for (int64_t i = 0; i < n; i++)
            x[i] = (int32_t)(toy_rand(rng) % (uint64_t)V);
        /* target: the sum of the token and its left neighbour, mod V */
        for (int64_t i = 0; i < n; i++)
            y[i] = (x[i] + (i ? x[i - 1] : 0)) % (int32_t)V;
        offsets[b + 1] = offsets[b] + (int32_t)n;
    }
    return offsets[n_seq];
}

int toy_train_step(toy_model *m, const int32_t *tokens, const int32_t *targets, const int32_t *offsets,
                   int64_t n_seq, double lr, double *loss)
{
    lf_ctx *c = &m->ctx;
    int st = lf_ctx_reset(c);
    if (st)
        return st;
    int64_t T = offsets[n_seq], d = m->d;
    lf_tensor *ids = lf_const_int(c, tokens, T), *tgt = lf_const_int(c, targets, T);
    lf_tensor *off = lf_const_int(c, offsets, n_seq + 1), *pos = lf_new1(c, LF_INT, T);
    if (!pos)
        return lf_ctx_status(c);
    for (int64_t b = 0; b < n_seq; b++)
        for (int64_t i = offsets[b]; i < offsets[b + 1]; i++)
            lf_idata(pos)[i] = (int32_t)(i - offsets[b]);
    memset(m->grad, 0, (size_t)m->n_params * sizeof(lf_real));

    lf_tensor *h = lf_embedding(c, &m->emb, ids);
    lf_tensor *a = lf_layernorm(c, h, &m->ln_scale, 1e-5);
    lf_tensor *qkv = lf_linear(c, a, &m->wqkv, NULL);
    lf_tensor *q = lf_rope(c, lf_slice_cols(c, qkv, 0, d), pos, m->H, 10000);
    lf_tensor *k = lf_rope(c, lf_slice_cols(c, qkv, d, d), pos, m->H, 10000);
    lf_tensor *o = lf_attention(c, q, k, lf_slice_cols(c, qkv, 2 * d, d), off, NULL, m->H);
    h = lf_add(c, h, lf_linear(c, o, &m->wo, NULL));
    lf_tensor *u = lf_unary_op(c, LF_GELU, lf_linear(c, lf_layernorm(c, h, NULL, 1e-5), &m->w1, NULL));
    h = lf_add(c, h, lf_linear(c, u, &m->w2, NULL));
    lf_tensor *L = lf_mean(c, lf_cross_entropy(c, lf_linear(c, h, &m->wout, NULL), tgt));
    if (!L)
        return lf_ctx_status(c);
    *loss = lf_data(L)[0]; /* before the reverse pass, which reuses L's memory */
    st = lf_backward(c, L);
    if (st)
        return st;
    /* Adam */
    m->step++;
    double b1 = 0.9, b2 = 0.999, c1 = 1 - pow(b1, (double)m->step), c2 = 1 - pow(b2, (double)m->step);
    for (int64_t i = 0; i < m->n_params; i++) {
        double g = m->grad[i];
        m->m[i] = (lf_real)(b1 * m->m[i] + (1 - b1) * g);
        m->v[i] = (lf_real)(b2 * m->v[i] + (1 - b2) * g * g);
        m->data[i] -= (lf_real)(lr * (m->m[i] / c1) / (sqrt(m->v[i] / c2) + 1e-8));
    }
    return LFLEX_OK;
}
