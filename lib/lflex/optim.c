/* AdamW with decoupled weight decay, global-norm clipping, warm-up then
 * constant or cosine learning rate, and an optional EMA of the weights. */
#include <float.h>
#include <inttypes.h>
#include <math.h>

#include "core/kernels.h"
#include "core/lanes.h"
#include "lf_error.h"
#include "lflex/model.h"

double lf_model_lr_at(const lf_model_config *cfg, uint64_t step)
{
    double s = (double)step;
    if (cfg->warmup > 0 && s <= (double)cfg->warmup)
        return cfg->lr * s / (double)cfg->warmup;
    if (cfg->lr_schedule == LF_LR_COSINE) {
        double span = (double)(cfg->total_steps - cfg->warmup);
        double p = span > 0 ? (s - (double)cfg->warmup) / span : 1.0;
        p = p < 0 ? 0 : (p > 1 ? 1 : p);
        return cfg->lr * (cfg->min_lr_ratio + (1 - cfg->min_lr_ratio) * 0.5 * (1 + cos(M_PI * p)));
    }
    return cfg->lr;
}

double lf_model_ema_decay(const lf_model_config *cfg, uint64_t step)
{
    double warm = (1.0 + (double)step) / (10.0 + (double)step);
    return cfg->ema < warm ? cfg->ema : warm;
}

/* AdamW on one parameter tensor (decoupled decay, then the Adam update).
 * With `commit` false nothing is written: the call only finds out whether
 * every new weight and moment would be finite (the same arithmetic, so the
 * answer holds for the committing call). Returns whether they are. */
LF_SIMD_CLONES static bool adamw_update(lf_real *w, const lf_real *g, lf_real *mm, lf_real *vv, int64_t n, float scale,
                                        float b1, float b2, float c1, float c2, float lr, float decay, float eps,
                                        bool commit)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        float mi = b1 * mm[i] + (1 - b1) * gi, vi = b2 * vv[i] + (1 - b2) * gi * gi;
        float wi = w[i] * (1 - decay) - lr * (mi / c1) / (sqrtf(vi / c2) + eps);
        bad |= (!(fabsf(mi) <= FLT_MAX)) | (!(fabsf(vi) <= FLT_MAX)) | (!(fabsf(wi) <= FLT_MAX));
        if (commit) {
            mm[i] = mi;
            vv[i] = vi;
            w[i] = wi;
        }
    }
    return !bad;
}

/* Sum of squares in fixed blocks (so the sum does not depend on the thread
 * count), the blocks spread over the pool. */
#define NORM_BLOCK 16384

typedef struct {
    const lf_real *g;
    int64_t n;
    double *partial;
} norm_args;

LF_SIMD_CLONES static void norm_blocks(void *p, int64_t b0, int64_t b1)
{
    const norm_args *a = p;
    for (int64_t b = b0; b < b1; b++) {
        int64_t i0 = b * NORM_BLOCK, i1 = i0 + NORM_BLOCK < a->n ? i0 + NORM_BLOCK : a->n;
        double s;
        const lf_real *g = a->g + i0;
        LF_SUM_LANES(double, s, i1 - i0, i, (double)g[i] * g[i]);
        a->partial[b] = s;
    }
}

typedef struct {
    const lf_model *m;
    float scale, b1, b2, c1, c2, lr;
    bool commit;
    unsigned char *finite; /* [parameter]: its update is (would be) finite */
} adam_args;

static void adam_params(void *p, int64_t k0, int64_t k1)
{
    const adam_args *a = p;
    const lf_model *m = a->m;
    const lf_params *P = &m->params;
    for (int64_t k = k0; k < k1; k++) {
        const lf_param *q = P->items[k];
        float decay = q->decay ? a->lr * (float)m->cfg.weight_decay : 0;
        a->finite[k] = adamw_update(P->data + q->offset, P->grad + q->offset, m->adam_m + q->offset,
                                    m->adam_v + q->offset, q->numel, a->scale, a->b1, a->b2, a->c1, a->c2, a->lr,
                                    decay, (float)m->cfg.adam_eps, a->commit);
    }
}

/* The first parameter whose update is not finite, or -1. */
static int first_nonfinite(const adam_args *a, int n)
{
    for (int k = 0; k < n; k++)
        if (!a->finite[k])
            return k;
    return -1;
}

int lf_model_apply_step(lf_model *m, double loss, double *grad_norm, double *lr_out)
{
    const lf_model_config *cfg = &m->cfg;
    lf_params *P = &m->params;
    if (m->step >= LF_STEP_MAX)
        return lf_error(LFLEX_ESTATE, "the optimiser has taken %" PRIu64 " steps, the most it counts; the step was "
                        "not applied", m->step);
    int64_t n_blocks = (P->total + NORM_BLOCK - 1) / NORM_BLOCK;
    double *partial = lf_arena_alloc(&m->ctx.arena, (size_t)(n_blocks + 1) * sizeof *partial);
    unsigned char *finite = lf_arena_alloc(&m->ctx.arena, (size_t)P->n + 1);
    if (!partial || !finite)
        return lf_error_oom("lf_model_apply_step");
    norm_args na = {P->grad, P->total, partial};
    lf_parallel_for(&m->ctx, n_blocks, 4, norm_blocks, &na);
    double ss = 0;
    for (int64_t b = 0; b < n_blocks; b++)
        ss += partial[b];
    double norm = sqrt(ss);
    if (grad_norm)
        *grad_norm = norm;
    if (!isfinite(loss) || !isfinite(norm)) /* nothing touched: weights, moments and step stay */
        return lf_error(LFLEX_ENUMERIC, "the loss (%g) or the gradient norm (%g) is not finite; the step was not "
                        "applied", loss, norm);
    double scale = cfg->clip > 0 && norm > cfg->clip ? cfg->clip / norm : 1.0;
    uint64_t step = m->step + 1;
    double lr = lf_model_lr_at(cfg, step);
    if (lr_out)
        *lr_out = lr;
    double b1 = cfg->beta1, b2 = cfg->beta2;
    double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
    /* each parameter tensor updated by one thread: the same result for any
     * split. A first pass only checks that the update keeps every weight and
     * moment finite (finite gradients can still overflow them, e.g. without
     * clipping, or from extreme moments), so that a step either happens
     * whole or not at all. */
    adam_args aa = {m, (float)scale, (float)b1, (float)b2, (float)c1, (float)c2, (float)lr, false, finite};
    lf_parallel_for(&m->ctx, P->n, 1, adam_params, &aa);
    int bad = first_nonfinite(&aa, P->n);
    if (bad >= 0)
        return lf_error(LFLEX_ENUMERIC, "step %" PRIu64 " would make parameter '%s' or its optimiser moments "
                        "non-finite (gradient norm %g); the step was not applied", step, P->items[bad]->name, norm);
    aa.commit = true;
    lf_parallel_for(&m->ctx, P->n, 1, adam_params, &aa);
    if ((bad = first_nonfinite(&aa, P->n)) >= 0)
        return lf_error(LFLEX_EINTERNAL, "step %" PRIu64 " made parameter '%s' non-finite although the check before "
                        "it found the update finite", step, P->items[bad]->name);
    if (m->ema) {
        /* warm-up of the average: early on the decay is lower, so that a
         * short run's EMA is not dominated by the initial weights */
        double d = lf_model_ema_decay(cfg, step);
        for (int64_t i = 0; i < P->total; i++)
            m->ema[i] = (lf_real)(d * m->ema[i] + (1 - d) * P->data[i]);
    }
    m->step = step;
    return LFLEX_OK;
}
