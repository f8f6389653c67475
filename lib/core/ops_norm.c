/* LayerNorm without bias, adaLN modulation and gated residuals. */
#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "core/lanes.h"
#include "core/ops.h"

/* ---- layernorm --------------------------------------------------------- */

typedef struct {
    const lf_real *x, *scale;
    lf_real *y, *mean, *rstd;
    int64_t C;
    double eps;
} ln_fwd_args;

LF_SIMD_CLONES static void ln_fwd_rows(void *p, int64_t r0, int64_t r1)
{
    const ln_fwd_args *q = p;
    int64_t C = q->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *x = q->x + r * C;
        lf_real *y = q->y + r * C;
        double s = 0, ss = 0;
        for (int64_t c = 0; c < C; c++)
            s += x[c];
        double mu = s / (double)C;
        for (int64_t c = 0; c < C; c++) {
            double d = x[c] - mu;
            ss += d * d;
        }
        double rstd = 1.0 / sqrt(ss / (double)C + q->eps);
        lf_real m = (lf_real)mu, rs = (lf_real)rstd;
        if (q->scale)
            for (int64_t c = 0; c < C; c++)
                y[c] = (x[c] - m) * rs * q->scale[c];
        else
            for (int64_t c = 0; c < C; c++)
                y[c] = (x[c] - m) * rs;
        q->mean[r] = m;
        q->rstd[r] = rs;
    }
}

typedef struct {
    const lf_real *x, *scale, *dy, *mean, *rstd;
    lf_real *dx;
    int64_t C;
} ln_bwd_args;

LF_SIMD_CLONES static void ln_bwd_rows(void *p, int64_t r0, int64_t r1)
{
    const ln_bwd_args *q = p;
    int64_t C = q->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *x = q->x + r * C, *dy = q->dy + r * C;
        lf_real *dx = q->dx + r * C;
        double m = q->mean[r], rs = q->rstd[r];
        double a = 0, b = 0; /* mean of dxhat and of dxhat * xhat */
        for (int64_t c = 0; c < C; c++) {
            double g = dy[c] * (q->scale ? q->scale[c] : 1);
            a += g;
            b += g * (x[c] - m) * rs;
        }
        a /= (double)C;
        b /= (double)C;
        for (int64_t c = 0; c < C; c++) {
            double g = dy[c] * (q->scale ? q->scale[c] : 1);
            double xh = (x[c] - m) * rs;
            dx[c] += (lf_real)(rs * (g - a - xh * b));
        }
    }
}

typedef struct {
    const lf_real *x, *dy, *mean, *rstd;
    lf_real *dscale;
    int64_t R, C;
} ln_scale_args;

LF_SIMD_CLONES static void ln_scale_cols(void *p, int64_t c0, int64_t c1)
{
    const ln_scale_args *q = p;
    for (int64_t c = c0; c < c1; c++) {
        double acc = 0;
        for (int64_t r = 0; r < q->R; r++)
            acc += q->dy[r * q->C + c] * (q->x[r * q->C + c] - q->mean[r]) * q->rstd[r];
        q->dscale[c] += (lf_real)acc;
    }
}

static void layernorm_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *scale = n->in[1];
    int64_t R = lf_rows(x), C = lf_cols(x);
    const lf_real *mean = n->saved, *rstd = mean + R;
    if (x->requires_grad) {
        lf_real *dx = lf_grad_buffer(ctx, x);
        if (!dx)
            return;
        ln_bwd_args q = {lf_data(x), scale ? lf_data(scale) : NULL, n->out->grad, mean, rstd, dx, C};
        lf_parallel_for(ctx, R, 16, ln_bwd_rows, &q);
    }
    if (scale && scale->requires_grad) {
        lf_real *ds = lf_grad_buffer(ctx, scale);
        if (!ds)
            return;
        ln_scale_args q = {lf_data(x), n->out->grad, mean, rstd, ds, R, C};
        lf_parallel_for(ctx, C, 16, ln_scale_cols, &q);
    }
}

const lf_op_def lf_op_layernorm = {"layernorm", layernorm_backward};

lf_tensor *lf_layernorm(lf_ctx *ctx, lf_tensor *x, lf_tensor *scale, double eps)
{
    if (!x || (scale && !scale->data))
        return NULL;
    int64_t R = lf_rows(x), C = lf_cols(x);
    if (x->dtype != LF_REAL || C < 1 || (scale && (scale->dtype != LF_REAL || scale->numel != C)))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "layernorm");
    lf_tensor *in[2] = {x, scale};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_layernorm, in, scale ? 2 : 1, LF_REAL, x->ndim, x->shape, &node);
    if (!y)
        return NULL;
    lf_real *stats = lf_arena_alloc(&ctx->arena, (size_t)(2 * R) * sizeof(lf_real));
    if (!stats)
        return lf_ctx_fail(ctx, LFLEX_ENOMEM, "layernorm");
    ln_fwd_args q = {lf_data(x), scale ? lf_data(scale) : NULL, lf_data(y), stats, stats + R, C, eps};
    lf_parallel_for(ctx, R, 16, ln_fwd_rows, &q);
    if (node)
        node->saved = stats;
    return y;
}

/* ---- adaLN modulation and gates ---------------------------------------- */

static bool cond_ok(const lf_tensor *x, const lf_tensor *mod, const lf_tensor *seg, int64_t col, int64_t col2)
{
    int64_t R = lf_rows(x), C = lf_cols(x), M = lf_cols(mod), B = lf_rows(mod);
    if (x->dtype != LF_REAL || mod->dtype != LF_REAL || seg->dtype != LF_INT || seg->numel != R)
        return false;
    if (col < 0 || col + C > M || col2 < 0 || col2 + C > M)
        return false;
    const int32_t *S = lf_idata(seg);
    for (int64_t r = 0; r < R; r++)
        if (S[r] < 0 || S[r] >= B)
            return false;
    return true;
}

/* Gradient of a per-sequence vector mod[seg[r], col + c]:
 * dmod[b, col + c] += sum over rows r of sequence b of g[r, c] * f[r, c]
 * (f NULL means 1). Split by columns for a fixed summation order. */
typedef struct {
    const lf_real *g, *f;
    const int32_t *seg;
    lf_real *dmod;
    int64_t R, C, M, col;
} mod_grad_args;

/* Columns are taken in blocks of COLB with the sums for the current sequence
 * kept in local arrays, flushed into dmod when the sequence changes (rows of
 * a sequence are contiguous in packed batches, so that is once per
 * sequence). Each column's sum runs over the rows in order: the result does
 * not depend on how the columns are split. */
#define COLB 32

LF_SIMD_CLONES static void mod_grad_cols(void *p, int64_t c0, int64_t c1)
{
    const mod_grad_args *q = p;
    for (int64_t b0 = c0; b0 < c1; b0 += COLB) {
        int64_t nb = c1 - b0 < COLB ? c1 - b0 : COLB;
        lf_real acc[COLB];
        int64_t cur = -1;
        for (int64_t r = 0; r <= q->R; r++) {
            int64_t sg = r < q->R ? q->seg[r] : -1;
            if (sg != cur) {
                if (cur >= 0) {
                    lf_real *restrict d = q->dmod + cur * q->M + q->col + b0;
                    for (int64_t c = 0; c < nb; c++)
                        d[c] += acc[c];
                }
                if (r == q->R)
                    break;
                cur = sg;
                for (int64_t c = 0; c < COLB; c++)
                    acc[c] = 0;
            }
            const lf_real *restrict g = q->g + r * q->C + b0;
            if (q->f) {
                const lf_real *restrict f = q->f + r * q->C + b0;
                for (int64_t c = 0; c < nb; c++)
                    acc[c] += g[c] * f[c];
            } else {
                for (int64_t c = 0; c < nb; c++)
                    acc[c] += g[c];
            }
        }
    }
}

static void modulate_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *mod = n->in[1], *seg = n->in[2];
    int64_t R = lf_rows(x), C = lf_cols(x), M = lf_cols(mod);
    int64_t shift_col = n->ip[0], scale_col = n->ip[1];
    const lf_real *g = n->out->grad, *X = lf_data(x), *MOD = lf_data(mod);
    const int32_t *S = lf_idata(seg);
    if (x->requires_grad) {
        lf_real *dx = lf_grad_buffer(ctx, x);
        if (!dx)
            return;
        for (int64_t r = 0; r < R; r++) {
            const lf_real *sc = MOD + (int64_t)S[r] * M + scale_col;
            for (int64_t c = 0; c < C; c++)
                dx[r * C + c] += g[r * C + c] * (1 + sc[c]);
        }
    }
    if (mod->requires_grad) {
        lf_real *dm = lf_grad_buffer(ctx, mod);
        if (!dm)
            return;
        mod_grad_args q = {g, NULL, S, dm, R, C, M, shift_col};
        lf_parallel_for(ctx, C, 32, mod_grad_cols, &q);
        q.f = X;
        q.col = scale_col;
        lf_parallel_for(ctx, C, 32, mod_grad_cols, &q);
    }
}

const lf_op_def lf_op_modulate = {"modulate", modulate_backward};

lf_tensor *lf_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *mod, int64_t shift_col, int64_t scale_col,
                       lf_tensor *seg)
{
    if (!x || !mod || !seg)
        return NULL;
    if (!cond_ok(x, mod, seg, shift_col, scale_col))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "modulate");
    lf_tensor *in[3] = {x, mod, seg};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_modulate, in, 3, LF_REAL, x->ndim, x->shape, &node);
    if (!y)
        return NULL;
    int64_t R = lf_rows(x), C = lf_cols(x), M = lf_cols(mod);
    const lf_real *X = lf_data(x), *MOD = lf_data(mod);
    const int32_t *S = lf_idata(seg);
    lf_real *Y = lf_data(y);
    for (int64_t r = 0; r < R; r++) {
        const lf_real *sh = MOD + (int64_t)S[r] * M + shift_col, *sc = MOD + (int64_t)S[r] * M + scale_col;
        for (int64_t c = 0; c < C; c++)
            Y[r * C + c] = X[r * C + c] * (1 + sc[c]) + sh[c];
    }
    if (node) {
        node->ip[0] = shift_col;
        node->ip[1] = scale_col;
    }
    return y;
}

/* rows of the gated residual: forward out = x + gate y, backward dx += g and
 * dy += g gate (either pointer may be NULL) */
typedef struct {
    const lf_real *x, *y, *g, *mod;
    const int32_t *seg;
    lf_real *out, *dx, *dy;
    int64_t C, M, gate_col;
    lf_real beta_x, beta_y; /* 0: the gradient buffer is new, store */
} gate_args;

LF_SIMD_CLONES static void gate_rows(void *p, int64_t r0, int64_t r1)
{
    const gate_args *a = p;
    int64_t C = a->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *gt = a->mod + (int64_t)a->seg[r] * a->M + a->gate_col;
        if (a->out) {
            const lf_real *x = a->x + r * C, *y = a->y + r * C;
            lf_real *o = a->out + r * C;
            for (int64_t c = 0; c < C; c++)
                o[c] = x[c] + gt[c] * y[c];
            continue;
        }
        const lf_real *restrict g = a->g + r * C;
        lf_real *dx = a->dx ? a->dx + r * C : NULL, *dy = a->dy ? a->dy + r * C : NULL; /* may be one buffer */
        if (dx && a->beta_x == 0)
            memcpy(dx, g, (size_t)C * sizeof *dx);
        else if (dx)
            for (int64_t c = 0; c < C; c++)
                dx[c] += g[c];
        if (dy && a->beta_y == 0)
            for (int64_t c = 0; c < C; c++)
                dy[c] = g[c] * gt[c];
        else if (dy)
            for (int64_t c = 0; c < C; c++)
                dy[c] += g[c] * gt[c];
    }
}

static void gated_add_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *yv = n->in[1], *mod = n->in[2], *seg = n->in[3];
    int64_t R = lf_rows(x), C = lf_cols(x), M = lf_cols(mod), gate_col = n->ip[0];
    const lf_real *g = n->out->grad;
    const int32_t *S = lf_idata(seg);
    gate_args a = {NULL, NULL, g, lf_data(mod), S, NULL, NULL, NULL, C, M, gate_col, 1, 1};
    if (x == yv && x->requires_grad && !x->grad)
        lf_grad_buffer(ctx, x); /* one buffer: both terms add */
    /* the residual's gradient is the output's: hand the buffer over */
    bool passed = x != yv && lf_grad_pass_through(n, x);
    a.dx = x->requires_grad && !passed ? lf_grad_buffer_beta(ctx, x, &a.beta_x) : NULL;
    a.dy = yv->requires_grad ? lf_grad_buffer_beta(ctx, yv, &a.beta_y) : NULL;
    lf_real *dm = mod->requires_grad ? lf_grad_buffer(ctx, mod) : NULL;
    if (ctx->status)
        return;
    mod_grad_args q = {g, lf_data(yv), S, dm, R, C, M, gate_col};
    lf_task tasks[2];
    int nt = 0;
    if (a.dx || a.dy)
        tasks[nt++] = (lf_task){gate_rows, &a, R, 32};
    if (dm)
        tasks[nt++] = (lf_task){mod_grad_cols, &q, C, 32};
    lf_parallel_tasks(ctx, tasks, nt);
}

const lf_op_def lf_op_gated_add = {"gated_add", gated_add_backward};

static lf_tensor *gated_output(lf_ctx *ctx, lf_tensor *x, lf_tensor *y, lf_tensor *mod, int64_t gate_col,
                               lf_tensor *seg, gate_args *a)
{
    if (!x || !y || !mod || !seg)
        return NULL;
    if (y->dtype != LF_REAL || y->numel != x->numel || !cond_ok(x, mod, seg, gate_col, gate_col))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "gated_add");
    lf_tensor *in[4] = {x, y, mod, seg};
    lf_node *node;
    lf_tensor *out = lf_op_output(ctx, &lf_op_gated_add, in, 4, LF_REAL, x->ndim, x->shape, &node);
    if (!out)
        return NULL;
    *a = (gate_args){lf_data(x), lf_data(y), NULL, lf_data(mod), lf_idata(seg), lf_data(out), NULL, NULL,
                     lf_cols(x), lf_cols(mod), gate_col, 1, 1};
    if (node)
        node->ip[0] = gate_col;
    return out;
}

lf_tensor *lf_gated_add(lf_ctx *ctx, lf_tensor *x, lf_tensor *y, lf_tensor *mod, int64_t gate_col,
                        lf_tensor *seg)
{
    gate_args a;
    lf_tensor *out = gated_output(ctx, x, y, mod, gate_col, seg, &a);
    if (out)
        lf_parallel_for(ctx, lf_rows(x), 32, gate_rows, &a);
    return out;
}

/* ---- fused LayerNorm + adaLN modulation ------------------------------- */

/* y = LN(x; s) (1 + mod[seg, scale_col:]) + mod[seg, shift_col:], one pass
 * and one saved tensor fewer than layernorm followed by modulate. */
typedef struct {
    const lf_real *x, *s, *mod, *dy, *mean, *rstd;
    const int32_t *seg;
    lf_real *y, *dx, *ds, *dmod, *stat_mean, *stat_rstd;
    int64_t R, C, M, shift_col, scale_col;
    double eps;
    lf_real beta; /* backward: 0 when dx is a new buffer (store, not add) */
} lnm_args;

LF_SIMD_CLONES static void lnm_fwd_rows(void *p, int64_t r0, int64_t r1)
{
    const lnm_args *a = p;
    int64_t C = a->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *x = a->x + r * C;
        const lf_real *sh = a->mod + (int64_t)a->seg[r] * a->M + a->shift_col;
        const lf_real *sc = a->mod + (int64_t)a->seg[r] * a->M + a->scale_col;
        lf_real *y = a->y + r * C;
        /* two passes in lf_real: vectorises, and the centred second pass
         * keeps the variance accurate */
        lf_real sum, ss;
        LF_SUM_LANES(lf_real, sum, C, c, x[c]);
        lf_real m = sum / (lf_real)C;
        LF_SUM_LANES(lf_real, ss, C, c, (x[c] - m) * (x[c] - m));
        lf_real rs = (lf_real)(1.0 / sqrt((double)ss / (double)C + a->eps));
        if (a->s)
            for (int64_t c = 0; c < C; c++)
                y[c] = (x[c] - m) * rs * a->s[c] * (1 + sc[c]) + sh[c];
        else
            for (int64_t c = 0; c < C; c++)
                y[c] = (x[c] - m) * rs * (1 + sc[c]) + sh[c];
        a->stat_mean[r] = m;
        a->stat_rstd[r] = rs;
    }
}

LF_SIMD_CLONES static void lnm_bwd_rows(void *p, int64_t r0, int64_t r1)
{
    const lnm_args *a = p;
    int64_t C = a->C;
    for (int64_t r = r0; r < r1; r++) {
        const lf_real *restrict x = a->x + r * C, *restrict dy = a->dy + r * C;
        const lf_real *restrict sc = a->mod + (int64_t)a->seg[r] * a->M + a->scale_col;
        lf_real *restrict dx = a->dx + r * C;
        lf_real m = a->mean[r], rs = a->rstd[r];
        lf_real u, v; /* sums of dxhat and dxhat * xhat */
        if (a->s) {
            LF_SUM_LANES(lf_real, u, C, c, dy[c] * (1 + sc[c]) * a->s[c]);
            LF_SUM_LANES(lf_real, v, C, c, dy[c] * (1 + sc[c]) * a->s[c] * ((x[c] - m) * rs));
        } else {
            LF_SUM_LANES(lf_real, u, C, c, dy[c] * (1 + sc[c]));
            LF_SUM_LANES(lf_real, v, C, c, dy[c] * (1 + sc[c]) * ((x[c] - m) * rs));
        }
        u /= (lf_real)C;
        v /= (lf_real)C;
        if (a->beta == 0)
            for (int64_t c = 0; c < C; c++) {
                lf_real g = dy[c] * (1 + sc[c]) * (a->s ? a->s[c] : 1), xh = (x[c] - m) * rs;
                dx[c] = rs * (g - u - xh * v);
            }
        else
            for (int64_t c = 0; c < C; c++) {
                lf_real g = dy[c] * (1 + sc[c]) * (a->s ? a->s[c] : 1), xh = (x[c] - m) * rs;
                dx[c] += rs * (g - u - xh * v);
            }
    }
}

/* parameter gradients by columns: the LayerNorm scale and the modulation
 * (local sums per sequence, as in mod_grad_cols) */
LF_SIMD_CLONES static void lnm_bwd_cols(void *p, int64_t c0, int64_t c1)
{
    const lnm_args *a = p;
    int64_t C = a->C;
    for (int64_t b0 = c0; b0 < c1; b0 += COLB) {
        int64_t nb = c1 - b0 < COLB ? c1 - b0 : COLB;
        lf_real ash[COLB], asc[COLB], as[COLB], sv[COLB];
        for (int64_t c = 0; c < COLB; c++) {
            as[c] = 0;
            sv[c] = a->s && c < nb ? a->s[b0 + c] : 1;
        }
        int64_t cur = -1;
        for (int64_t r = 0; r <= a->R; r++) {
            int64_t sg = r < a->R ? a->seg[r] : -1;
            if (sg != cur) {
                if (cur >= 0 && a->dmod) {
                    lf_real *restrict dsh = a->dmod + cur * a->M + a->shift_col + b0;
                    lf_real *restrict dsc = a->dmod + cur * a->M + a->scale_col + b0;
                    for (int64_t c = 0; c < nb; c++) {
                        dsh[c] += ash[c];
                        dsc[c] += asc[c] * sv[c];
                    }
                }
                if (r == a->R)
                    break;
                cur = sg;
                for (int64_t c = 0; c < COLB; c++)
                    ash[c] = asc[c] = 0;
            }
            const lf_real *restrict x = a->x + r * C + b0, *restrict dy = a->dy + r * C + b0;
            const lf_real *restrict sc = a->mod + sg * a->M + a->scale_col + b0;
            lf_real m = a->mean[r], rs = a->rstd[r];
            for (int64_t c = 0; c < nb; c++) {
                lf_real xh = (x[c] - m) * rs, gx = dy[c] * xh;
                ash[c] += dy[c];
                asc[c] += gx;
                as[c] += gx * (1 + sc[c]);
            }
        }
        if (a->ds)
            for (int64_t c = 0; c < nb; c++)
                a->ds[b0 + c] += as[c];
    }
}

static void ln_modulate_backward(lf_ctx *ctx, lf_node *n)
{
    lf_tensor *x = n->in[0], *mod = n->in[1], *seg = n->in[2], *s = n->n_in > 3 ? n->in[3] : NULL;
    int64_t R = lf_rows(x), C = lf_cols(x);
    const lf_real *stats = n->saved;
    lnm_args a = {lf_data(x), s ? lf_data(s) : NULL, lf_data(mod), n->out->grad, stats, stats + R, lf_idata(seg),
                  NULL, NULL, NULL, NULL, NULL, NULL, R, C, lf_cols(mod), n->ip[0], n->ip[1], 0, 1};
    a.dx = x->requires_grad ? lf_grad_buffer_beta(ctx, x, &a.beta) : NULL;
    a.ds = s && s->requires_grad ? lf_grad_buffer(ctx, s) : NULL;
    a.dmod = mod->requires_grad ? lf_grad_buffer(ctx, mod) : NULL;
    if (ctx->status)
        return;
    /* the rows (dx) and the columns (ds, dmod) in one hand-off */
    lf_task tasks[2];
    int nt = 0;
    if (a.dx)
        tasks[nt++] = (lf_task){lnm_bwd_rows, &a, R, 16};
    if (a.ds || a.dmod)
        tasks[nt++] = (lf_task){lnm_bwd_cols, &a, C, 16};
    lf_parallel_tasks(ctx, tasks, nt);
}

const lf_op_def lf_op_ln_modulate = {"ln_modulate", ln_modulate_backward};

static lf_tensor *ln_mod_output(lf_ctx *ctx, lf_tensor *x, lf_tensor *scale, double eps, lf_tensor *mod,
                                int64_t shift_col, int64_t scale_col, lf_tensor *seg, lnm_args *a)
{
    if (!x || !mod || !seg || (scale && !scale->data))
        return NULL;
    int64_t R = lf_rows(x), C = lf_cols(x);
    if (!cond_ok(x, mod, seg, shift_col, scale_col) || C < 1 ||
        (scale && (scale->dtype != LF_REAL || scale->numel != C)))
        return lf_ctx_fail(ctx, LFLEX_EINVAL, "ln_modulate");
    lf_tensor *in[4] = {x, mod, seg, scale};
    lf_node *node;
    lf_tensor *y = lf_op_output(ctx, &lf_op_ln_modulate, in, scale ? 4 : 3, LF_REAL, x->ndim, x->shape, &node);
    lf_real *stats = y ? lf_arena_alloc(&ctx->arena, (size_t)(2 * R + 1) * sizeof(lf_real)) : NULL;
    if (!stats)
        return y ? lf_ctx_fail(ctx, LFLEX_ENOMEM, "ln_modulate") : NULL;
    *a = (lnm_args){lf_data(x), scale ? lf_data(scale) : NULL, lf_data(mod), NULL, NULL, NULL, lf_idata(seg),
                    lf_data(y), NULL, NULL, NULL, stats, stats + R, R, C, lf_cols(mod), shift_col, scale_col, eps, 1};
    if (node) {
        node->saved = stats;
        node->ip[0] = shift_col;
        node->ip[1] = scale_col;
    }
    return y;
}

lf_tensor *lf_ln_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *scale, double eps, lf_tensor *mod, int64_t shift_col,
                          int64_t scale_col, lf_tensor *seg)
{
    lnm_args a;
    lf_tensor *y = ln_mod_output(ctx, x, scale, eps, mod, shift_col, scale_col, seg, &a);
    if (y)
        lf_parallel_for(ctx, lf_rows(x), 16, lnm_fwd_rows, &a);
    return y;
}

/* ---- gated residual followed by LayerNorm + adaLN: one forward pass ----- */

typedef struct {
    gate_args g;
    lnm_args n;
} gate_lnm_args;

/* each share normalises the rows of the residual it has just written */
static void gate_lnm_rows(void *p, int64_t r0, int64_t r1)
{
    gate_lnm_args *a = p;
    gate_rows(&a->g, r0, r1);
    lnm_fwd_rows(&a->n, r0, r1);
}

lf_tensor *lf_gated_add_ln_modulate(lf_ctx *ctx, lf_tensor *x, lf_tensor *y, lf_tensor *mod, int64_t gate_col,
                                    lf_tensor *seg, lf_tensor *scale, double eps, lf_tensor *mod2,
                                    int64_t shift_col, int64_t scale_col, lf_tensor **h_out)
{
    gate_lnm_args a;
    lf_tensor *h = gated_output(ctx, x, y, mod, gate_col, seg, &a.g);
    lf_tensor *out = ln_mod_output(ctx, h, scale, eps, mod2, shift_col, scale_col, seg, &a.n);
    if (h_out)
        *h_out = out ? h : NULL;
    if (!out)
        return NULL;
    lf_parallel_for(ctx, lf_rows(x), 32, gate_lnm_rows, &a);
    return out;
}
