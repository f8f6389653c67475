/* Exported schedule calls. */
#include <math.h>
#include <stdlib.h>

#include "api/api.h"
#include "io/config.h"
#include "lf_error.h"
#include "lflex/schedule_math.h"

typedef struct {
    int family;
    double a, b_um;
} schedule_cfg;

static const char *const family_choices[] = {"kumaraswamy", "linear", NULL};
static const lf_cfg_key schedule_keys[] = {
    LF_CFG_KEY_ENUM(schedule_cfg, family, "family", family_choices, 0, "kumaraswamy or linear"),
    LF_CFG_KEY_REAL(schedule_cfg, a, "a", LF_SHAPE_A_MIN, LF_SHAPE_A_MAX, 1, "Kumaraswamy shape a"),
    LF_CFG_KEY_REAL(schedule_cfg, b_um, "b_um", LF_B_UM_MIN, LF_B_UM_MAX, 1, "constant unmasking shape"),
};
const lf_cfg_schema lf_schedule_schema = {schedule_keys, sizeof schedule_keys / sizeof schedule_keys[0],
                                          "schedule"};

LFLEX_API int lflex_schedule_new(lflex_schedule_t **out, const char *yaml, size_t len)
{
    if (!out)
        return lf_error(LFLEX_EINVAL, "lflex_schedule_new: out is NULL");
    *out = NULL;
    if (!yaml && len)
        return lf_error(LFLEX_EINVAL, "lflex_schedule_new: yaml is NULL but len is %zu", len);
    schedule_cfg cfg;
    lf_config_defaults(&lf_schedule_schema, &cfg);
    if (yaml && len) {
        int st = lf_config_parse(&lf_schedule_schema, &cfg, sizeof cfg, yaml, len, "<schedule>");
        if (st)
            return st;
    }
    lflex_schedule_t *s = calloc(1, sizeof *s);
    if (!s)
        return lf_error_oom("lflex_schedule_new");
    s->family = cfg.family;
    s->a = cfg.family == LF_FAMILY_LINEAR ? 1.0 : cfg.a;
    s->b_um = cfg.family == LF_FAMILY_LINEAR ? 1.0 : cfg.b_um;
    *out = s;
    return LFLEX_OK;
}

LFLEX_API void lflex_schedule_free(lflex_schedule_t *s)
{
    if (s && !s->owned_by_model)
        free(s);
}

LFLEX_API const lflex_schedule_t *lflex_model_schedule(const lflex_model_t *m)
{
    return m ? &m->schedule : NULL;
}

LFLEX_API int lflex_schedule_eval(const lflex_schedule_t *s, double t, double b, double c, double *cdf,
                                  double *hazard, double log_p_state[3])
{
    if (!s)
        return lf_error(LFLEX_EINVAL, "lflex_schedule_eval: schedule is NULL");
    if (!(t >= 0 && t <= 1))
        return lf_error(LFLEX_EINVAL, "lflex_schedule_eval: t = %g is outside [0, 1]", t);
    if (s->family == LF_FAMILY_LINEAR) {
        b = 1;
        c = 1;
    } else if (!(b > 0 && isfinite(b) && c > 0 && isfinite(c))) {
        return lf_error(LFLEX_EINVAL, "lflex_schedule_eval: b = %g and c = %g must be positive and finite", b, c);
    }
    if (cdf)
        *cdf = lf_kuma_cdf(t, s->a, b);
    if (hazard)
        *hazard = b * lf_base_hazard(t, s->a);
    if (log_p_state)
        for (int k = 0; k < 3; k++)
            log_p_state[k] = lf_state_log_prob((lf_token_state)k, t, s->a, b, c, NULL, NULL);
    return LFLEX_OK;
}
