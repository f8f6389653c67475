/* Exported sampler and rate-query calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "io/sampler_schema.h"
#include "lf_error.h"

struct lflex_sampler {
    lf_sampler s;
};

LFLEX_API int lflex_sampler_new(lflex_sampler_t **out, const lflex_model_t *m, const char *yaml, size_t len)
{
    CHECK_ARG(out, "lflex_sampler_new: out is NULL");
    *out = NULL;
    CHECK_ARG(m, "lflex_sampler_new: model is NULL");
    CHECK_ARG(yaml || len == 0, "lflex_sampler_new: yaml is NULL but len is %zu", len);
    lf_sampler_config cfg;
    memset(&cfg, 0, sizeof cfg);
    lf_config_defaults(&lf_sampler_schema, &cfg);
    if (yaml && len) {
        int st = lf_config_parse(&lf_sampler_schema, &cfg, sizeof cfg, yaml, len, "<sampler>");
        if (st)
            return st;
    }
    char why[256];
    if (lf_sampler_check_config(&cfg, &m->m, why, sizeof why))
        return lf_error(LFLEX_EINVAL, "lflex_sampler_new: %s", why);
    lflex_sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return lf_error_oom("lflex_sampler_new");
    int st = lf_sampler_init(&s->s, &m->m, &cfg);
    if (st) {
        free(s);
        return st == LFLEX_ENOMEM ? lf_error_oom("lflex_sampler_new")
                                  : lf_error(st, "lflex_sampler_new: %s", lflex_strerror(st));
    }
    *out = s;
    return LFLEX_OK;
}

LFLEX_API void lflex_sampler_free(lflex_sampler_t *s)
{
    if (!s)
        return;
    lf_sampler_destroy(&s->s);
    free(s);
}

LFLEX_API int lflex_sampler_set_seed(lflex_sampler_t *s, uint64_t seed)
{
    CHECK_ARG(s, "lflex_sampler_set_seed: sampler is NULL");
    s->s.cfg.seed = (int64_t)seed;
    s->s.n_generated = 0;
    return LFLEX_OK;
}

LFLEX_API int lflex_sampler_set_progress(lflex_sampler_t *s, lflex_progress_fn fn, void *user)
{
    CHECK_ARG(s, "lflex_sampler_set_progress: sampler is NULL");
    s->s.progress = fn;
    s->s.progress_user = user;
    return LFLEX_OK;
}

/* Check every template; the default open-gap flags (only the final EOS) are
 * written into `flags` when open_gap is NULL. */
static int check_templates(const lflex_sampler_t *s, const char *fn, const int32_t *tmpl, const uint8_t *open_gap,
                           const size_t *offsets, size_t n_tmpl, uint8_t *flags)
{
    const int64_t V = s->s.m->vocab, L = s->s.cfg.max_len;
    for (size_t j = 0; j < n_tmpl; j++) {
        size_t b = offsets[j], e = offsets[j + 1];
        CHECK_ARG(e > b, "%s: template %zu is empty", fn, j);
        CHECK_ARG((int64_t)(e - b) <= L, "%s: template %zu has %zu tokens, more than max_len = %ld", fn, j, e - b,
                  (long)L);
        bool something = false;
        for (size_t i = b; i < e; i++) {
            int32_t id = tmpl[i];
            CHECK_ARG(id >= 0 && id < V, "%s: template %zu, position %zu: token id %d is outside [0, %ld)", fn, j,
                      i - b, id, (long)V);
            CHECK_ARG(id != LFLEX_TOKEN_PAD, "%s: template %zu, position %zu: PAD may not appear in a template", fn, j,
                      i - b);
            flags[i] = open_gap ? open_gap[i] != 0 : i == e - 1;
            something = something || flags[i] || id == LFLEX_TOKEN_MASK;
        }
        CHECK_ARG(tmpl[e - 1] == LFLEX_TOKEN_EOS, "%s: template %zu, position %zu: the last token is %d, not EOS (%d)",
                  fn, j, e - 1 - b, tmpl[e - 1], LFLEX_TOKEN_EOS);
        CHECK_ARG(something, "%s: template %zu has no open gap and no MASK: nothing to generate", fn, j);
    }
    return LFLEX_OK;
}

static int generate(lflex_sampler_t *s, const char *fn, const int32_t *tmpl, const uint8_t *open_gap,
                    const size_t *tmpl_offsets, size_t n_tmpl, int32_t *out, size_t cap, size_t *out_offsets,
                    float *insert_time, float *unmask_time)
{
    CHECK_ARG(s, "%s: sampler is NULL", fn);
    CHECK_ARG(n_tmpl >= 1, "%s: no template (n = 0)", fn);
    CHECK_ARG(tmpl && tmpl_offsets && out && out_offsets, "%s: a required pointer is NULL", fn);
    CHECK_ARG(tmpl_offsets[0] == 0, "%s: tmpl_offsets[0] is %zu, must be 0", fn, tmpl_offsets[0]);
    for (size_t j = 0; j < n_tmpl; j++)
        CHECK_ARG(tmpl_offsets[j + 1] >= tmpl_offsets[j], "%s: tmpl_offsets decrease at %zu", fn, j + 1);
    size_t need = n_tmpl * (size_t)s->s.cfg.max_len;
    CHECK_ARG(cap >= need, "%s: output capacity %zu is too small, need %zu (templates x max_len)", fn, cap, need);
    size_t total = tmpl_offsets[n_tmpl];
    uint8_t *flags = malloc(total ? total : 1);
    int64_t *toff = malloc((n_tmpl + 1) * sizeof *toff), *ooff = malloc((n_tmpl + 1) * sizeof *ooff);
    int st = flags && toff && ooff ? LFLEX_OK : lf_error_oom(fn);
    if (!st)
        st = check_templates(s, fn, tmpl, open_gap, tmpl_offsets, n_tmpl, flags);
    if (!st) {
        for (size_t j = 0; j <= n_tmpl; j++)
            toff[j] = (int64_t)tmpl_offsets[j];
        lf_templates tp = {tmpl, flags, toff, (int64_t)n_tmpl};
        lf_generated g = {out, (int64_t)cap, ooff, insert_time, unmask_time};
        st = lf_sampler_generate(&s->s, &tp, &g);
        if (st == LFLEX_ECANCELED)
            st = lf_error(st, "%s: canceled by the progress callback", fn);
        else if (st == LFLEX_ENOMEM)
            st = lf_error_oom(fn);
        else if (st)
            st = lf_error(st, "%s: %s in %s", fn, lflex_strerror(st),
                          s->s.ctx.status_where ? s->s.ctx.status_where : "the network pass");
        else
            for (size_t j = 0; j <= n_tmpl; j++)
                out_offsets[j] = (size_t)ooff[j];
    }
    free(flags);
    free(toff);
    free(ooff);
    return st;
}

LFLEX_API int lflex_sampler_generate(lflex_sampler_t *s, const int32_t *tmpl, const uint8_t *open_gap, size_t n,
                                     int32_t *out, size_t cap, size_t *n_out)
{
    CHECK_ARG(n_out, "lflex_sampler_generate: n_out is NULL");
    size_t toff[2] = {0, n}, ooff[2];
    int st = generate(s, "lflex_sampler_generate", tmpl, open_gap, toff, 1, out, cap, ooff, NULL, NULL);
    if (!st)
        *n_out = ooff[1];
    return st;
}

LFLEX_API int lflex_sampler_generate_batch(lflex_sampler_t *s, const int32_t *tmpl, const uint8_t *open_gap,
                                           const size_t *tmpl_offsets, size_t n_tmpl, int32_t *out, size_t cap,
                                           size_t *out_offsets, float *insert_time, float *unmask_time)
{
    return generate(s, "lflex_sampler_generate_batch", tmpl, open_gap, tmpl_offsets, n_tmpl, out, cap, out_offsets,
                    insert_time, unmask_time);
}

/* ---- rate queries ---------------------------------------------------------- */

static int check_sequence(const lflex_model_t *m, const char *fn, const int32_t *x, size_t n, bool allow_mask)
{
    CHECK_ARG(m, "%s: model is NULL", fn);
    CHECK_ARG(x && n >= 1, "%s: the sequence is NULL or empty", fn);
    CHECK_ARG((int64_t)n <= m->m.cfg.max_len, "%s: %zu tokens, more than model.max_len = %ld", fn, n,
              (long)m->m.cfg.max_len);
    for (size_t i = 0; i < n; i++) {
        CHECK_ARG(x[i] >= 0 && x[i] < m->m.vocab, "%s: position %zu: token id %d is outside [0, %ld)", fn, i, x[i],
                  (long)m->m.vocab);
        CHECK_ARG(x[i] != LFLEX_TOKEN_PAD, "%s: position %zu: PAD may not appear", fn, i);
        CHECK_ARG(allow_mask || x[i] != LFLEX_TOKEN_MASK, "%s: position %zu: MASK in a clean sequence", fn, i);
    }
    return LFLEX_OK;
}

LFLEX_API int lflex_model_rates(const lflex_model_t *m, const int32_t *x, size_t n, double t, float *token_probs,
                                float *unmask_rate, float *insert_rate)
{
    int st = check_sequence(m, "lflex_model_rates", x, n, true);
    if (st)
        return st;
    CHECK_ARG(t >= 0 && t < 1, "lflex_model_rates: t = %g is outside [0, 1)", t);
    st = lf_model_query_rates(&m->m, x, (int64_t)n, t, token_probs, unmask_rate, insert_rate);
    return st ? lf_error(st, "lflex_model_rates: %s", lflex_strerror(st)) : LFLEX_OK;
}

/* The fixed flags of an order query: the caller's, or (NULL), as for
 * training, only the final token (the EOS); *own is what to free. */
static const uint8_t *order_flags(const uint8_t *fixed, size_t n, uint8_t **own)
{
    *own = NULL;
    if (fixed)
        return fixed;
    *own = calloc(n, 1);
    if (*own)
        (*own)[n - 1] = 1;
    return *own;
}

LFLEX_API int lflex_model_order(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n, float *b_in,
                                float *b_um, float *expected_insert_time)
{
    int st = check_sequence(m, "lflex_model_order", z, n, false);
    if (st)
        return st;
    uint8_t *own;
    const uint8_t *flags = order_flags(fixed, n, &own);
    if (!flags)
        return lf_error_oom("lflex_model_order");
    st = lf_model_query_order(&m->m, z, flags, (int64_t)n, b_in, b_um, expected_insert_time);
    free(own);
    return st ? lf_error(st, "lflex_model_order: %s", lflex_strerror(st)) : LFLEX_OK;
}

LFLEX_API int lflex_model_unmask_log_weights(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n,
                                             float *log_weights)
{
    int st = check_sequence(m, "lflex_model_unmask_log_weights", z, n, false);
    if (st)
        return st;
    CHECK_ARG(log_weights, "lflex_model_unmask_log_weights: log_weights is NULL");
    CHECK_ARG(m->m.learned_order,
              "lflex_model_unmask_log_weights: the model has no learned unmasking order (loss.unmask_order: learned)");
    uint8_t *own;
    const uint8_t *flags = order_flags(fixed, n, &own);
    if (!flags)
        return lf_error_oom("lflex_model_unmask_log_weights");
    st = lf_model_query_unmask_log_weights(&m->m, z, flags, (int64_t)n, log_weights);
    free(own);
    return st ? lf_error(st, "lflex_model_unmask_log_weights: %s", lflex_strerror(st)) : LFLEX_OK;
}
