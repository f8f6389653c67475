/* AdamW with decoupled weight decay, global-norm clipping, warm-up then
 * constant or cosine learning rate, and an optional EMA of the weights. */
#include <math.h>

#include "core/kernels.h"
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

/* AdamW on one parameter tensor (decoupled decay, then the Adam update). */
LF_SIMD_CLONES static void adamw_update(lf_real *w, const lf_real *g, lf_real *mm, lf_real *vv, int64_t n, float scale,
                                        float b1, float b2, float c1, float c2, float lr, float decay, float eps)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        float mi = b1 * mm[i] + (1 - b1) * gi, vi = b2 * vv[i] + (1 - b2) * gi * gi;
        mm[i] = mi;
        vv[i] = vi;
        w[i] = w[i] * (1 - decay) - lr * (mi / c1) / (sqrtf(vi / c2) + eps);
    }
}

int lf_model_apply_step(lf_model *m, double loss, double *grad_norm, double *lr_out)
{
    const lf_model_config *cfg = &m->cfg;
    lf_params *P = &m->params;
    double ss = 0;
    for (int64_t i = 0; i < P->total; i++)
        ss += (double)P->grad[i] * P->grad[i];
    double norm = sqrt(ss);
    if (grad_norm)
        *grad_norm = norm;
    if (!isfinite(loss) || !isfinite(norm))
        return LFLEX_ENUMERIC; /* nothing touched: weights, moments and step stay */
    double scale = cfg->clip > 0 && norm > cfg->clip ? cfg->clip / norm : 1.0;
    uint64_t step = m->step + 1;
    double lr = lf_model_lr_at(cfg, step);
    if (lr_out)
        *lr_out = lr;
    double b1 = cfg->beta1, b2 = cfg->beta2;
    double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
    for (int k = 0; k < P->n; k++) {
        const lf_param *p = P->items[k];
        lf_real *w = P->data + p->offset, *g = P->grad + p->offset;
        lf_real *mm = m->adam_m + p->offset, *vv = m->adam_v + p->offset;
        double decay = p->decay ? lr * cfg->weight_decay : 0;
        adamw_update(w, g, mm, vv, p->numel, (float)scale, (float)b1, (float)b2, (float)c1, (float)c2, (float)lr,
                     (float)decay, (float)cfg->adam_eps);
    }
    if (m->ema) {
        double d = cfg->ema;
        for (int64_t i = 0; i < P->total; i++)
            m->ema[i] = (lf_real)(d * m->ema[i] + (1 - d) * P->data[i]);
    }
    m->step = step;
    return LFLEX_OK;
}
