#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lflex/model.h"

static int heads_ok(int64_t d, int64_t h) { return h >= 1 && d % h == 0 && (d / h) % 2 == 0; }

static int reject(char *why, size_t cap, const char *text)
{
    if (why && cap)
        snprintf(why, cap, "%s", text);
    return LFLEX_EINVAL;
}

int lf_model_check_config(const lf_model_config *cfg, int64_t n_user_tokens, char *why, size_t cap)
{
    if (n_user_tokens < 1)
        return reject(why, cap, "the vocabulary has no user token (set vocab.tokens or vocab.size)");
    if (!heads_ok(cfg->d_model, cfg->n_heads))
        return reject(why, cap, "model.d_model / model.n_heads must be an even whole number");
    if (lf_config_learns_b_in(cfg) || lf_config_learns_order(cfg)) {
        int64_t d = cfg->aux_d_model ? cfg->aux_d_model : cfg->d_model;
        int64_t h = cfg->aux_n_heads ? cfg->aux_n_heads : cfg->n_heads;
        if (!heads_ok(d, h))
            return reject(why, cap, "aux.d_model / aux.n_heads must be an even whole number");
    }
    if (cfg->learn_b_um && !lf_config_learns_b_in(cfg))
        return reject(why, cap, "schedule.learn_b_um needs schedule.family: kumaraswamy and schedule.learn_b_in");
    if (cfg->learn_b_um && !cfg->learn_unmask_rate)
        return reject(why, cap,
                      "schedule.learn_b_um needs generator.learn_unmask_rate: true (the generator must predict "
                      "the per-token unmasking rates it is trained on)");
    if (cfg->states != 1 && (lf_config_learns_b_in(cfg) || lf_config_learns_order(cfg)))
        return reject(why, cap,
                      "loss.states needs a fixed schedule and order (schedule.family: linear or schedule.learn_b_in: "
                      "false; loss.unmask_order not learned): a learned one draws two states for its REINFORCE "
                      "baseline");
    if (cfg->credit_window >= 0 && !lf_config_learns_b_in(cfg) && !lf_config_learns_order(cfg))
        return reject(why, cap,
                      "loss.credit_window needs a learned schedule (schedule.family: kumaraswamy, "
                      "schedule.learn_b_in: true) or loss.unmask_order: learned: it credits the REINFORCE term, "
                      "which only these have");
    if (cfg->order_span > 0 && cfg->order_weights != LF_OW_EXP)
        return reject(why, cap, "aux.order_span needs aux.order_weights: exp (it bounds the log-weight s)");
    if (cfg->order_weights != LF_OW_SOFTPLUS && !lf_config_learns_order(cfg))
        return reject(why, cap, "aux.order_weights needs loss.unmask_order: learned (it shapes the race's weights)");
    if (cfg->order_reward != LF_OR_STATE && !lf_config_learns_order(cfg))
        return reject(why, cap,
                      "loss.order_reward needs loss.unmask_order: learned (it rewards a learned unmasking order's "
                      "race)");
    if (cfg->order_pair != LF_OP_SHARED && !lf_config_learns_order(cfg))
        return reject(why, cap,
                      "loss.order_pair needs loss.unmask_order: learned (it draws a learned unmasking order's two "
                      "states)");
    if (cfg->unmask_order != LF_UM_RANDOM && lf_config_learns_b_in(cfg))
        return reject(why, cap,
                      "loss.unmask_order other than random needs a fixed schedule (schedule.family: linear or "
                      "schedule.learn_b_in: false): the REINFORCE term of a learned schedule needs the "
                      "probability of a state, which the reordering changes");
    if (cfg->late_fraction > 0 && (cfg->family != LF_FAMILY_KUMARASWAMY || cfg->learn_b_in))
        return reject(why, cap,
                      "schedule.late_fraction needs a fixed Kumaraswamy schedule (schedule.family: kumaraswamy, "
                      "schedule.learn_b_in: false)");
    if (cfg->late_fraction > 0 && cfg->time_weight != LF_TW_FLAT)
        return reject(why, cap,
                      "schedule.late_fraction needs loss.time_weight: flat (the hazard weight is the plain "
                      "Kumaraswamy schedule's)");
    if (cfg->outside_in > 0 && (cfg->family != LF_FAMILY_KUMARASWAMY || cfg->learn_b_in))
        return reject(why, cap,
                      "schedule.outside_in needs a fixed Kumaraswamy schedule (schedule.family: kumaraswamy, "
                      "schedule.learn_b_in: false)");
    if (cfg->outside_in > 0 && !cfg->learn_unmask_rate)
        return reject(why, cap,
                      "schedule.outside_in needs generator.learn_unmask_rate: true (the unmasking shapes differ "
                      "from token to token, so the generator must predict them)");
    if (cfg->outside_in > 0 && cfg->late_fraction > 0)
        return reject(why, cap, "schedule.outside_in and schedule.late_fraction cannot be combined");
    if (cfg->gen_max_rate < cfg->gen_min_rate)
        return reject(why, cap, "generator.max_rate must not be below generator.min_rate");
    if (cfg->aux_max_rate < cfg->aux_min_rate)
        return reject(why, cap, "schedule.max_rate must not be below schedule.min_rate");
    return LFLEX_OK;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static lf_backbone_cfg backbone_cfg(const lf_model_config *cfg, int64_t vocab, bool aux)
{
    lf_backbone_cfg b;
    memset(&b, 0, sizeof b);
    b.vocab = vocab;
    b.d = aux && cfg->aux_d_model ? cfg->aux_d_model : cfg->d_model;
    b.n_heads = aux && cfg->aux_n_heads ? cfg->aux_n_heads : cfg->n_heads;
    b.n_layers = aux && cfg->aux_n_layers >= 0 ? cfg->aux_n_layers : cfg->n_layers;
    b.d_cond = cfg->d_cond ? cfg->d_cond : b.d;
    b.d_ff = cfg->mlp_ratio * b.d;
    b.act = (lf_activation)cfg->activation;
    b.dropout = cfg->dropout;
    b.n_pos = cfg->pos_emb ? cfg->max_len : 0;
    b.seg_len = cfg->seg_pos ? cfg->max_len : 0;
    b.token_shift = cfg->token_shift;
    b.bos_id = LF_BOS;
    return b;
}

int lf_nets_register(lf_nets *n, const lf_model_config *cfg, int64_t vocab, lf_params *p)
{
    memset(n, 0, sizeof *n);
    int64_t n_user = vocab - LF_N_SPECIAL;
    n->has_order = lf_config_learns_order(cfg);
    n->has_aux = lf_config_learns_b_in(cfg) || n->has_order;
    n->has_um = cfg->learn_unmask_rate;
    n->has_bum = lf_config_learns_b_in(cfg) && cfg->learn_b_um;
    lf_backbone_cfg g = backbone_cfg(cfg, vocab, false);
    int st = lf_backbone_register(&n->gen, &g, p, "gen");
    if (!st)
        st = lf_token_head_register(&n->gen_out, g.d, g.d_cond, n_user, p, "gen.out");
    if (!st)
        st = lf_rate_head_register(&n->gen_ins, g.d, g.d_cond, cfg->gen_min_rate, cfg->gen_max_rate, p, "gen.ins");
    if (!st && n->has_um)
        st = lf_rate_head_register(&n->gen_um, g.d, g.d_cond, cfg->gen_min_rate, cfg->gen_max_rate, p, "gen.um");
    if (!st && n->has_aux) {
        lf_backbone_cfg x = backbone_cfg(cfg, vocab, true);
        st = lf_backbone_register(&n->aux, &x, p, "aux");
        /* the race's log-weights: lf_nets_race_logw reads this head's score
         * s (its min and max go unused) */
        if (!st && n->has_order)
            st = lf_rate_head_register(&n->aux_order, x.d, x.d_cond, 0.0, 1.0, p, "aux.order");
        else if (!st)
            st = lf_rate_head_register(&n->aux_bin, x.d, x.d_cond, cfg->aux_min_rate, cfg->aux_max_rate, p,
                                       "aux.bin");
        if (!st && n->has_bum)
            st = lf_rate_head_register(&n->aux_bum, x.d, x.d_cond, cfg->aux_min_rate, cfg->aux_max_rate, p,
                                       "aux.bum");
    }
    return st;
}

lf_tensor *lf_nets_race_logw(lf_ctx *ctx, const lf_nets *n, const lf_model_config *cfg, lf_tensor *h, lf_tensor *c,
                             lf_tensor *seg, const uint8_t *fixed)
{
    lf_tensor *s = lf_rate_head_score(ctx, &n->aux_order, h, c, seg);
    if (cfg->order_weights != LF_OW_EXP)
        return lf_unary_op(ctx, LF_LOG_SOFTPLUS, s);
    if (cfg->order_span <= 0 || !s)
        return s;
    /* centred on the mean score of each sequence's non-fixed tokens (a race
     * ignores a shift common to a sequence, and the score drifts along it
     * until the bound would hold every token at one end), then
     * span tanh(x / span) = span (2 sigmoid(2 x / span) - 1) */
    const int64_t N = s->numel, B = N ? lf_idata(seg)[N - 1] + 1 : 0;
    lf_tensor *inv = lf_new1(ctx, LF_REAL, B ? B : 1), *nf = lf_new1(ctx, LF_INT, N);
    if (!inv || !nf)
        return NULL;
    memset(lf_data(inv), 0, (size_t)(B ? B : 1) * sizeof(lf_real));
    for (int64_t i = 0; i < N; i++) {
        lf_idata(nf)[i] = fixed[i] ? -1 : lf_idata(seg)[i];
        lf_data(inv)[lf_idata(seg)[i]] += !fixed[i];
    }
    for (int64_t j = 0; j < B; j++)
        lf_data(inv)[j] = lf_data(inv)[j] > 0 ? 1 / lf_data(inv)[j] : 0;
    int64_t col[2] = {B, 1};
    lf_tensor *mean = lf_mul(ctx, lf_scatter_add_rows(ctx, s, nf, B), inv);
    mean = lf_embedding(ctx, lf_reshape(ctx, mean, 2, col), seg);
    lf_tensor *x = lf_sub(ctx, s, mean ? lf_reshape(ctx, mean, 1, &N) : NULL);
    double span = cfg->order_span;
    return lf_affine(ctx, lf_unary_op(ctx, LF_SIGMOID, lf_affine(ctx, x, 2 / span, 0)), 2 * span, -span);
}

void lf_nets_free(lf_nets *n)
{
    lf_backbone_free(&n->gen);
    lf_backbone_free(&n->aux);
}

int lf_nets_view_init(lf_nets_view *v, const lf_model *m, const lf_real *weights)
{
    memset(v, 0, sizeof *v);
    lf_params_init(&v->params);
    int st = lf_nets_register(&v->nets, &m->cfg, m->vocab, &v->params);
    if (st || v->params.total != m->params.total) {
        lf_nets_view_free(v);
        return st ? st : LFLEX_EINTERNAL;
    }
    lf_params_bind(&v->params, weights);
    return LFLEX_OK;
}

void lf_nets_view_free(lf_nets_view *v)
{
    lf_nets_free(&v->nets);
    lf_params_free(&v->params);
}

int lf_model_create(lf_model *m, const lf_model_config *cfg, int64_t n_user_tokens)
{
    memset(m, 0, sizeof *m);
    int st = lf_model_check_config(cfg, n_user_tokens, NULL, 0);
    if (st)
        return st;
    m->cfg = *cfg;
    m->vocab = LF_N_SPECIAL + n_user_tokens;
    bool kuma = cfg->family == LF_FAMILY_KUMARASWAMY;
    m->learned = lf_config_learns_b_in(cfg);
    m->learned_order = lf_config_learns_order(cfg);
    m->a = kuma ? cfg->a : 1.0;
    m->b_in = kuma ? cfg->b_in : 1.0;
    m->b_um = kuma ? cfg->b_um : 1.0;
    /* learned shapes differ per token and the sampler does not know them:
     * binomial insertions count a gap's tokens with the mean shape that the
     * regulariser holds the schedule to */
    m->b_ins_ref = m->learned ? cfg->reg_b_in : m->b_in;
    lf_params_init(&m->params);
    lf_ctx_init(&m->ctx, 1 << 20, cfg->threads ? (int)cfg->threads : default_threads());

    st = lf_nets_register(&m->net, cfg, m->vocab, &m->params);
    if (!st)
        st = lf_params_alloc(&m->params);
    if (!st) {
        size_t bytes = (size_t)m->params.total * sizeof(lf_real);
        m->adam_m = calloc(1, bytes ? bytes : 1);
        m->adam_v = calloc(1, bytes ? bytes : 1);
        if (cfg->ema > 0)
            m->ema = calloc(1, bytes ? bytes : 1);
        if (!m->adam_m || !m->adam_v || (cfg->ema > 0 && !m->ema))
            st = LFLEX_ENOMEM;
    }
    if (st) {
        lf_model_destroy(m);
        return st == LFLEX_EINVAL ? LFLEX_EINVAL : LFLEX_ENOMEM;
    }
    lf_rng_seed(&m->rng, (uint64_t)cfg->seed);
    lf_params_initialise(&m->params, &m->rng);
    if (m->ema)
        memcpy(m->ema, m->params.data, (size_t)m->params.total * sizeof(lf_real));
    return LFLEX_OK;
}

void lf_model_destroy(lf_model *m)
{
    lf_nets_free(&m->net);
    lf_params_free(&m->params);
    free(m->adam_m);
    free(m->adam_v);
    free(m->ema);
    lf_ctx_free(&m->ctx);
    memset(m, 0, sizeof *m);
}

const lf_loss_trace *lf_model_last_trace(const lf_model *m)
{
    return &m->trace;
}

int lf_model_set_threads(lf_model *m, int n_threads)
{
    int n = n_threads > 0 ? n_threads : default_threads();
    if (n == m->ctx.n_threads)
        return LFLEX_OK;
    lf_ctx fresh;
    if (lf_ctx_init(&fresh, lf_arena_capacity(&m->ctx.arena), n) != LFLEX_OK)
        return LFLEX_ENOMEM;
    lf_ctx_free(&m->ctx);
    m->ctx = fresh; /* a run-time setting: the saved configuration keeps train.threads */
    return LFLEX_OK;
}
