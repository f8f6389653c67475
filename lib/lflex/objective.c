/* The training objective (the paper's, details in
 * doc/model-layout.md): auxiliary forward, noised states, one generator pass
 * over the x_t of every state, the per-sequence losses with Bregman terms,
 * REINFORCE with the leave-one-out baseline, and the schedule regulariser. */
#include <math.h>
#include <string.h>

#include "lflex/model.h"
#include "lflex/noise.h"
#include "lflex/sched_ops.h"

#define T_EPS 1e-4
#define REG_GRID 100

/* A constant real tensor [n] (or [n, 1] when col) filled by the caller. */
static lf_tensor *const_vec(lf_ctx *ctx, int64_t n, bool col)
{
    return col ? lf_new2(ctx, LF_REAL, n, 1) : lf_new1(ctx, LF_REAL, n);
}

static lf_tensor *int_vec(lf_ctx *ctx, const int32_t *src, int64_t n)
{
    return lf_const_int(ctx, src, n);
}

/* The fixed shape b of every token of the n_seq sequences of bt into dst (schedule.outside_in r
 * makes it fall from each run's ends; r 0: b for all), through scratch [Nz]. */
static void fixed_shapes(const lf_batch *bt, int64_t n_seq, double b, double r, double *scratch, lf_real *dst)
{
    for (int64_t j = 0; j < n_seq; j++) {
        int64_t i0 = bt->offsets[j], n = bt->offsets[j + 1] - i0;
        lf_noise_outside_in_shapes(bt->fixed + i0, n, b, r, scratch + i0);
        for (int64_t i = i0; i < i0 + n; i++)
            dst[i] = (lf_real)scratch[i];
    }
}

/* The regulariser R summed over the batch (the paper's schedule regulariser) for the learned
 * shapes b [Nz]: seq_nf maps each non-fixed token to its sequence (-1 for
 * fixed ones), inv_n [B,1] is 1 / (non-fixed tokens of the sequence) and
 * has_nf [B,1] is 1 when there is any. */
static lf_tensor *regulariser(lf_ctx *ctx, const lf_model *m, lf_tensor *b, lf_tensor *seq_nf, int64_t B,
                              lf_tensor *inv_n, lf_tensor *has_nf)
{
    const lf_model_config *cfg = &m->cfg;
    double a = m->a;
    double grid[REG_GRID];
    lf_tensor *grid_row = const_vec(ctx, REG_GRID, false);
    if (!grid_row)
        return NULL;
    for (int g = 0; g < REG_GRID; g++) { /* the target mean CDF 1 - (1 - t)^reg_b_in: t for 1 */
        grid[g] = (g + 0.5) / REG_GRID;
        lf_data(grid_row)[g] = (lf_real)(cfg->reg_b_in == 1 ? grid[g] : -expm1(cfg->reg_b_in * log1p(-grid[g])));
    }
    /* (a) sum_g (mean_i F(t_g; b_i) - target_g)^2 */
    lf_tensor *F = lf_kuma_cdf_grid(ctx, b, grid, REG_GRID, a);
    lf_tensor *mean_F = lf_mul(ctx, lf_scatter_add_rows(ctx, F, seq_nf, B), inv_n);
    lf_tensor *dev = lf_unary_op(ctx, LF_SQUARE, lf_sub(ctx, mean_F, grid_row));
    lf_tensor *r_grid = lf_sum(ctx, lf_mul(ctx, dev, has_nf));
    /* (b) relu(F(0.01) - 0.01)^2 + relu(1 - F(0.99) - 0.01)^2 per token */
    static const double tails[2] = {0.01, 0.99};
    lf_tensor *Ft = lf_kuma_cdf_grid(ctx, b, tails, 2, a);
    lf_tensor *h0 = lf_unary_op(ctx, LF_RELU, lf_affine(ctx, lf_slice_cols(ctx, Ft, 0, 1), 1, -0.01));
    lf_tensor *h1 = lf_unary_op(ctx, LF_RELU, lf_affine(ctx, lf_slice_cols(ctx, Ft, 1, 1), -1, 0.99));
    lf_tensor *tail_tok = lf_add(ctx, lf_unary_op(ctx, LF_SQUARE, h0), lf_unary_op(ctx, LF_SQUARE, h1));
    lf_tensor *r_tail = lf_sum(ctx, lf_scatter_add_rows(ctx, tail_tok, seq_nf, B));
    /* (c) KL(Kumaraswamy(a, b_i) || U(0,1)) per token, summed or averaged over the sequence */
    int64_t col[2] = {b->shape[0], 1};
    lf_tensor *kl_seq = lf_scatter_add_rows(ctx, lf_reshape(ctx, lf_kuma_kl(ctx, b, a), 2, col), seq_nf, B);
    lf_tensor *r_kl = lf_sum(ctx, cfg->kl_reduction == LF_REDUCE_MEAN ? lf_mul(ctx, kl_seq, inv_n) : kl_seq);
    lf_tensor *r = lf_scale(ctx, r_grid, cfg->w_grid);
    r = lf_add(ctx, r, lf_scale(ctx, r_tail, cfg->w_tail));
    return lf_add(ctx, r, lf_scale(ctx, r_kl, cfg->w_kl));
}

/* The weight of the generator's terms at time t. With the hazard weight
 * (the ELBO) and times drawn with density p(t) = k (1 - t)^(k - 1)
 * (loss.time_shape k), the importance weight 1 / p(t) keeps the ELBO's
 * expectation; the flat weight is the same minimiser at any time density. */
static double time_weight(const lf_model_config *cfg, double t, double a)
{
    if (cfg->time_weight == LF_TW_FLAT)
        return 1.0;
    double k = cfg->time_shape;
    return k == 1 ? lf_base_hazard(t, a) : lf_base_hazard(t, a) / (k * pow(1 - t, k - 1));
}

/* The sequences of a shard as a batch of their own (offsets from 0). */
static int shard_view(lf_ctx *ctx, const lf_batch *whole, int64_t j0, int64_t B, lf_batch *out)
{
    int32_t *off = lf_arena_alloc(&ctx->arena, (size_t)(B + 1) * sizeof *off);
    if (!off)
        return LFLEX_ENOMEM;
    const int32_t base = whole->offsets[j0];
    for (int64_t j = 0; j <= B; j++)
        off[j] = whole->offsets[j0 + j] - base;
    *out = (lf_batch){whole->tokens + base, whole->fixed + base, off, B, 0, 0};
    return LFLEX_OK;
}

/* The REINFORCE weight of each non-fixed clean token i of a learned
 * schedule, W = loss.credit_window: 1/2 (r_1(i) - r_2(i)) / Bn, where
 * r_s(i) sums the loss terms of the rows of state s's x_t whose clean
 * position lies within W of i (a row's terms: the insertion term of the
 * gap on its left and, masked, its unmasking term). A token's draw then
 * answers for the terms around it instead of the whole sequence's, whose
 * other tokens' draws are noise to it. W at least the sequence's length gives the sequence's difference to
 * every token (the specification's estimator). Fixed tokens get 0. */
static int local_credit(lf_ctx *ctx, const lf_batch *bt, int64_t B, int64_t W, int64_t Nx, const lf_tensor *seg,
                        const int32_t *src, const lf_tensor *ins_rows, int64_t M, const int32_t *masked,
                        const lf_tensor *um_rows, double Bn, lf_real *w)
{
    const int64_t Nz = bt->offsets[B];
    double *acc = lf_arena_calloc(&ctx->arena, (size_t)(2 * Nz + 1) * sizeof *acc);
    if (!acc)
        return LFLEX_ENOMEM;
    /* acc[s Nz + i]: the terms of state s's row at clean position i, then
     * their running sum over each sequence */
#define ROW_SLOT(k) ((lf_idata(seg)[k] / B) * Nz + src[k])
    for (int64_t k = 0; k < Nx; k++)
        acc[ROW_SLOT(k)] += lf_data(ins_rows)[k];
    for (int64_t q = 0; q < M; q++)
        acc[ROW_SLOT(masked[q])] += lf_data(um_rows)[q];
#undef ROW_SLOT
    for (int s = 0; s < 2; s++)
        for (int64_t j = 0; j < B; j++)
            for (int64_t i = bt->offsets[j] + 1; i < bt->offsets[j + 1]; i++)
                acc[s * Nz + i] += acc[s * Nz + i - 1];
    for (int64_t j = 0; j < B; j++) {
        const int64_t lo = bt->offsets[j], hi = bt->offsets[j + 1] - 1;
        for (int64_t i = lo; i <= hi; i++) {
            if (bt->fixed[i]) {
                w[i] = 0;
                continue;
            }
            int64_t first = i - W > lo ? i - W : lo, last = i + W < hi ? i + W : hi;
            double r[2];
            for (int s = 0; s < 2; s++)
                r[s] = acc[s * Nz + last] - (first > lo ? acc[s * Nz + first - 1] : 0);
            w[i] = (lf_real)(0.5 * (r[0] - r[1]) / Bn);
        }
    }
    return LFLEX_OK;
}

/* The races of a learned unmasking order's two states: each one's
 * candidates in finishing order with their offsets and finished counts
 * (lf_noise_race_order), and the finishing times' scratch. */
typedef struct {
    int32_t *order[2], *order_off[2], *k[2];
    double *finish;
} race_draws;

static int race_draws_alloc(lf_ctx *ctx, int64_t Nz, int64_t B, race_draws *r)
{
    r->finish = lf_arena_alloc(&ctx->arena, (size_t)(Nz ? Nz : 1) * sizeof *r->finish);
    for (int s = 0; s < 2; s++) {
        r->order[s] = lf_arena_alloc(&ctx->arena, (size_t)(Nz ? Nz : 1) * sizeof(int32_t));
        r->order_off[s] = lf_arena_alloc(&ctx->arena, (size_t)(B + 1) * sizeof(int32_t));
        r->k[s] = lf_arena_alloc(&ctx->arena, (size_t)(B ? B : 1) * sizeof(int32_t));
        if (!r->order[s] || !r->order_off[s] || !r->k[s])
            return LFLEX_ENOMEM;
    }
    return r->finish ? LFLEX_OK : LFLEX_ENOMEM;
}

/* loss.order_reward next: the reward rows of the masked tokens, each one's
 * unmasking term u_q (time-weighted, not divided by M) times p_q, the
 * chance that its token finishes state s's race next (lf_race_next), in
 * place of the generator's u_q / M; and the term whose gradient is that of
 * the chances, sum over both states of p_q u_q / (2 Bn) with u_q held
 * constant (the leave-one-out estimate covers the draw of the race, this
 * the reward's own dependence on the weights). */
static int next_reward(lf_ctx *ctx, const lf_model_config *cfg, const race_draws *race, lf_tensor *race_logw, int64_t B,
                       int64_t Nz, int64_t M, const int32_t *masked, const lf_tensor *seg, const int32_t *src,
                       const double *t, const lf_tensor *um, double a, double Bn, lf_tensor **rew_rows,
                       lf_tensor **next_term)
{
    lf_tensor *rows = const_vec(ctx, M, false), *p[2], *cost[2];
    for (int s = 0; s < 2; s++) {
        p[s] = lf_race_next(ctx, race_logw, race->order[s], race->order_off[s], race->k[s], B);
        cost[s] = const_vec(ctx, Nz, false);
    }
    if (!rows || !p[0] || !p[1] || !cost[0] || !cost[1])
        return lf_ctx_status(ctx) ? lf_ctx_status(ctx) : LFLEX_ENOMEM;
    for (int s = 0; s < 2; s++)
        memset(lf_data(cost[s]), 0, (size_t)Nz * sizeof(lf_real));
    for (int64_t q = 0; q < M; q++) {
        int32_t seq = lf_idata(seg)[masked[q]], i = src[masked[q]];
        int s = (int)(seq / B);
        double u = (double)lf_data(um)[q] * time_weight(cfg, t[seq], a);
        lf_data(rows)[q] = (lf_real)(u * lf_data(p[s])[i]);
        lf_data(cost[s])[i] = (lf_real)(u / (2 * Bn));
    }
    *rew_rows = rows;
    *next_term = lf_add(ctx, lf_sum(ctx, lf_mul(ctx, p[0], cost[0])), lf_sum(ctx, lf_mul(ctx, p[1], cost[1])));
    return lf_ctx_status(ctx);
}

int lf_model_loss(lf_model *m, const lf_batch *whole, const lf_given_states *given, bool backward,
                  lf_loss_parts *parts)
{
    lf_ctx *ctx = &m->ctx;
    const lf_model_config *cfg = &m->cfg;
    int st = lf_ctx_reset(ctx);
    if (st)
        return st;
    memset(&m->trace, 0, sizeof m->trace);
    /* the sequences computed here, [j0, j0 + B) of the Bg of the whole
     * batch; every mean over sequences divides by Bg */
    const int64_t Bg = whole->n_seq, j0 = whole->shard_count ? whole->shard_first : 0;
    const int64_t B = whole->shard_count ? whole->shard_count : Bg;
    const bool sharded = B != Bg;
    const double Bn = (double)Bg;
    lf_batch shard;
    const lf_batch *bt = whole;
    if (sharded) {
        if ((st = shard_view(ctx, whole, j0, B, &shard)))
            return st;
        bt = &shard;
    }
    const int64_t Nz = bt->offsets[B];
    /* learned schedules and orders: two states (the leave-one-out
     * baseline) at the same time; fixed ones: loss.states, each at its own
     * time */
    const bool reinforced = m->learned || m->learned_order; /* an auxiliary network learns by REINFORCE */
    if (given && m->learned_order)
        return LFLEX_EINVAL; /* given states carry no race order */
    const int n_states = reinforced ? 2 : given ? (given->state[1] ? 2 : 1) : (int)cfg->states;
    const int64_t SB = n_states * B;
    const double a = m->a, c_const = m->b_um;
    ctx->grad_enabled = backward;

    /* ---- times, and which sequence each non-fixed token belongs to ---- */
    double *t = lf_arena_alloc(&ctx->arena, (size_t)SB * sizeof *t);
    double *t_tok = lf_arena_alloc(&ctx->arena, (size_t)(Nz ? Nz : 1) * sizeof *t_tok);
    int64_t *n_nf = lf_arena_alloc(&ctx->arena, (size_t)B * sizeof *n_nf);
    lf_tensor *seq_nf = lf_new1(ctx, LF_INT, Nz);
    lf_tensor *inv_n = const_vec(ctx, B, true), *has_nf = const_vec(ctx, B, true);
    if (!t || !t_tok || !n_nf || !seq_nf || !inv_n || !has_nf)
        return LFLEX_ENOMEM;
    /* stratified times over the whole batch: state s of sequence j of Bg
     * (s < n_t) in slice s Bg + j of n_t Bg equal slices of u,
     * t = 1 - (1 - u)^(1/time_shape) */
    const bool pair_apart = m->learned_order && cfg->order_pair == LF_OP_INDEPENDENT;
    const int n_t = (reinforced && !pair_apart) || given ? 1 : n_states;
    for (int64_t q = 0; !given && q < n_t * Bg; q++) {
        int64_t s = q / Bg, jg = q % Bg;
        double u = ((double)q + lf_rng_uniform(&m->rng)) / (n_t * Bn);
        if (cfg->time_shape != 1)
            u = -expm1(log1p(-u) / cfg->time_shape);
        if (jg >= j0 && jg < j0 + B)
            t[s * B + jg - j0] = T_EPS + u * (1 - 2 * T_EPS);
    }
    for (int64_t j = 0; j < B; j++) {
        if (given)
            t[j] = given->t[j0 + j];
        n_nf[j] = 0;
        for (int64_t i = bt->offsets[j]; i < bt->offsets[j + 1]; i++) {
            t_tok[i] = t[j];
            lf_idata(seq_nf)[i] = bt->fixed[i] ? -1 : (int32_t)j;
            n_nf[j] += !bt->fixed[i];
        }
        lf_data(inv_n)[j] = (lf_real)(n_nf[j] ? 1.0 / (double)n_nf[j] : 0.0);
        lf_data(has_nf)[j] = (lf_real)(n_nf[j] ? 1 : 0);
    }
    for (int s = n_t; s < n_states; s++)
        memcpy(t + s * B, t, (size_t)B * sizeof *t);
    uint64_t seed_aux = lf_rng_next(&m->rng), seed_gen = lf_rng_next(&m->rng);
    if (sharded) {
        /* dropout masks follow the rows of the packed tensors, which differ
         * between a shard and the whole batch: each shard its own masks */
        uint64_t key = (uint64_t)j0;
        seed_aux ^= lf_splitmix64(&key);
        seed_gen ^= lf_splitmix64(&key);
    }

    /* ---- auxiliary network: b_in (and b_um), or the race's weights, of
     * every clean token ---- */
    lf_tensor *b_in = NULL, *b_um = NULL, *race_logw = NULL;
    if (reinforced) {
        lf_packed pz;
        if ((st = lf_packed_make(ctx, &pz, bt->tokens, bt->offsets, B)))
            return st;
        double *t0 = lf_arena_calloc(&ctx->arena, (size_t)B * sizeof *t0);
        lf_tensor *cz;
        lf_tensor *hz = lf_backbone_forward(ctx, &m->net.aux, &pz, t0, backward, seed_aux, &cz);
        if (m->learned_order)
            race_logw = lf_nets_race_logw(ctx, &m->net, cfg, hz, cz, pz.seg, bt->fixed);
        else
            b_in = lf_rate_head_forward(ctx, &m->net.aux_bin, hz, cz, pz.seg);
        if (cfg->learn_b_um)
            b_um = lf_rate_head_forward(ctx, &m->net.aux_bum, hz, cz, pz.seg);
    }
    if (!m->learned) { /* fixed shapes: one for every token, or falling from each run's ends (schedule.outside_in) */
        b_in = const_vec(ctx, Nz, false);
        if (cfg->outside_in > 0)
            b_um = const_vec(ctx, Nz, false);
        double *shape = lf_arena_alloc(&ctx->arena, (size_t)(Nz ? Nz : 1) * sizeof *shape);
        if (!b_in || (cfg->outside_in > 0 && !b_um) || !shape)
            return LFLEX_ENOMEM;
        fixed_shapes(bt, B, m->b_in, cfg->outside_in, shape, lf_data(b_in));
        if (b_um)
            fixed_shapes(bt, B, c_const, cfg->outside_in, shape, lf_data(b_um));
    }
    if ((st = lf_ctx_status(ctx)))
        return st;

    /* ---- states and the packed x_t of every state ---- */
    int32_t *state[LF_MAX_STATES] = {NULL};
    int32_t *xt = lf_arena_alloc(&ctx->arena, (size_t)(n_states * Nz) * sizeof(int32_t));
    int32_t *src = lf_arena_alloc(&ctx->arena, (size_t)(n_states * Nz) * sizeof(int32_t));
    int32_t *xt_off = lf_arena_alloc(&ctx->arena, (size_t)(SB + 1) * sizeof(int32_t));
    int32_t *masked = lf_arena_alloc(&ctx->arena, (size_t)(n_states * Nz) * sizeof(int32_t));
    lf_tensor *gap_row[LF_MAX_STATES] = {NULL};
    if (!xt || !src || !xt_off || !masked)
        return LFLEX_ENOMEM;
    /* loss.unmask_order learned: both states share the drawn insertions and
     * counts of clean tokens, and each runs its own race for which are clean
     * (loss.order_pair independent: each draws its own, at its own time) */
    race_draws race = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}, NULL};
    if (m->learned_order && (st = race_draws_alloc(ctx, Nz, B, &race)))
        return st;
    for (int s = 0; s < n_states; s++) {
        state[s] = lf_arena_alloc(&ctx->arena, (size_t)(Nz ? Nz : 1) * sizeof(int32_t));
        gap_row[s] = lf_new1(ctx, LF_INT, Nz);
        if (!state[s] || !gap_row[s])
            return LFLEX_ENOMEM;
    }
    int64_t Nx = 0, M = 0;
    for (int s = 0; s < n_states; s++) {
        /* the draws of the other shards' tokens are skipped; a learned
         * order's state 1 is state 0 as drawn, copied before state 0's race,
         * unless the pair is drawn apart */
        if (given) {
            memcpy(state[s], given->state[s] + whole->offsets[j0], (size_t)Nz * sizeof(int32_t));
        } else if (!m->learned_order || s == 0 || pair_apart) {
            lf_noise_skip(&m->rng, whole->fixed, 0, whole->offsets[j0]);
            lf_noise_draw_states(&m->rng, bt->offsets, B, bt->fixed, t + s * B, lf_data(b_in), b_um ? lf_data(b_um) : NULL,
                                 c_const, a, cfg->late_fraction, state[s]);
            if (cfg->unmask_order == LF_UM_LEFT_TO_RIGHT || cfg->unmask_order == LF_UM_RIGHT_TO_LEFT)
                lf_noise_clean_end(bt->offsets, B, bt->fixed, cfg->unmask_order == LF_UM_RIGHT_TO_LEFT, state[s]);
            lf_noise_skip(&m->rng, whole->fixed, whole->offsets[j0 + B], whole->offsets[Bg]);
        }
        if (m->learned_order) {
            if (s == 0 && !pair_apart)
                memcpy(state[1], state[0], (size_t)Nz * sizeof(int32_t));
            lf_noise_skip(&m->rng, whole->fixed, 0, whole->offsets[j0]);
            lf_noise_race_order(&m->rng, bt->offsets, B, bt->fixed, lf_data(race_logw), state[s], race.order[s],
                                race.order_off[s], race.k[s], race.finish);
            lf_noise_skip(&m->rng, whole->fixed, whole->offsets[j0 + B], whole->offsets[Bg]);
        }
        int64_t nm;
        Nx += lf_noise_build_xt(bt->tokens, bt->offsets, B, state[s], LF_MASK, Nx, xt + Nx, src + Nx,
                                xt_off + s * B, lf_idata(gap_row[s]), masked + M, &nm);
        M += nm;
    }

    /* ---- generator over x_t ---- */
    lf_packed px;
    if ((st = lf_packed_make(ctx, &px, xt, xt_off, SB)))
        return st;
    lf_tensor *cx;
    lf_tensor *hx = lf_backbone_forward(ctx, &m->net.gen, &px, t, backward, seed_gen, &cx);
    /* the insertion-rate head reads the trunk's output (and the time
     * conditioning) with its gradient scaled by loss.insert_trunk_grad */
    lf_tensor *h_ins = hx, *c_ins = cx;
    if (backward && cfg->insert_trunk_grad != 1) {
        h_ins = lf_grad_scale(ctx, hx, cfg->insert_trunk_grad);
        c_ins = lf_grad_scale(ctx, cx, cfg->insert_trunk_grad);
    }
    lf_tensor *beta_in = lf_rate_head_forward(ctx, &m->net.gen_ins, h_ins, c_ins, px.seg);

    /* insertion: D(Lambda_k, beta_in^k) g_a(t) / L_norm over every row but
     * the closed gaps (unless loss.insert_closed_gaps) */
    lf_tensor *lambda = NULL;
    for (int s = 0; s < n_states; s++) {
        lf_tensor *ls = lf_scatter_add_rows(ctx, b_in, gap_row[s], Nx);
        lambda = s ? lf_add(ctx, lambda, ls) : ls;
    }
    lf_tensor *w_ins = const_vec(ctx, Nx, false);
    if (!w_ins)
        return LFLEX_ENOMEM;
    for (int64_t k = 0; k < Nx; k++) {
        int32_t seq = lf_idata(px.seg)[k], i = src[k];
        /* a closed gap: left of a fixed token whose clean left neighbour is fixed or absent */
        bool closed = bt->fixed[i] && (i == bt->offsets[seq % B] || bt->fixed[i - 1]);
        double w = closed && !cfg->insert_closed_gaps ? 0.0 : time_weight(cfg, t[seq], a) / (double)cfg->max_len;
        lf_data(w_ins)[k] = (lf_real)w;
    }
    lf_tensor *ins_rows = lf_mul(ctx, lf_bregman(ctx, lambda, beta_in), w_ins);
    lf_tensor *L_ins = lf_scatter_add_rows(ctx, ins_rows, px.seg, SB);

    /* unmasking over the masked rows only:
     * g_a(t)/M_seq (b_um CE + D(b_um, beta_um)) */
    lf_tensor *L = L_ins, *L_um = NULL, *um = NULL, *um_rows = NULL, *logits = NULL, *beta_um = NULL;
    if (M > 0) {
        lf_tensor *rows = int_vec(ctx, masked, M);
        lf_tensor *seg_m = lf_new1(ctx, LF_INT, M), *target = lf_new1(ctx, LF_INT, M);
        lf_tensor *src_m = lf_new1(ctx, LF_INT, M), *w_um = const_vec(ctx, M, false);
        int64_t *m_seq = lf_arena_calloc(&ctx->arena, (size_t)SB * sizeof *m_seq);
        if (!rows || !seg_m || !target || !src_m || !w_um || !m_seq)
            return LFLEX_ENOMEM;
        if (cfg->unmask_norm == LF_NORM_MASKED)
            for (int64_t q = 0; q < M; q++)
                m_seq[lf_idata(px.seg)[masked[q]]]++;
        else
            for (int64_t j = 0; j < SB; j++)
                m_seq[j] = cfg->unmask_norm == LF_NORM_MAX_LEN ? cfg->max_len : n_nf[j % B];
        for (int64_t q = 0; q < M; q++) {
            int32_t row = masked[q], seq = lf_idata(px.seg)[row];
            lf_idata(seg_m)[q] = seq;
            lf_idata(src_m)[q] = src[row];
            lf_idata(target)[q] = bt->tokens[src[row]] - LF_N_SPECIAL;
            lf_data(w_um)[q] = (lf_real)(time_weight(cfg, t[seq], a) / (double)m_seq[seq]);
        }
        lf_tensor *h_m = lf_embedding(ctx, hx, rows);
        logits = lf_token_head_forward(ctx, &m->net.gen_out, h_m, cx, seg_m);
        lf_tensor *ce = lf_cross_entropy(ctx, logits, target);
        lf_tensor *bum_m;
        if (b_um) {
            int64_t col[2] = {Nz, 1};
            bum_m = lf_embedding(ctx, lf_reshape(ctx, b_um, 2, col), src_m);
            bum_m = bum_m ? lf_reshape(ctx, bum_m, 1, &M) : NULL;
        } else {
            bum_m = const_vec(ctx, M, false);
            if (bum_m)
                for (int64_t q = 0; q < M; q++)
                    lf_data(bum_m)[q] = (lf_real)c_const;
        }
        um = lf_mul(ctx, ce, bum_m);
        if (cfg->learn_unmask_rate) {
            beta_um = lf_rate_head_forward(ctx, &m->net.gen_um, h_m, cx, seg_m);
            um = lf_add(ctx, um, lf_bregman(ctx, bum_m, beta_um));
        }
        um_rows = lf_mul(ctx, um, w_um);
        L_um = lf_scatter_add_rows(ctx, um_rows, seg_m, SB);
        L = lf_add(ctx, L_ins, L_um);
    }
    if ((st = lf_ctx_status(ctx)))
        return st;

    /* ---- the objective ---- */
    lf_tensor *total, *reinforce = NULL, *reg = NULL, *logp[2] = {NULL, NULL};
    if (n_states == 2) {
        total = lf_scale(ctx, lf_sum(ctx, L), 1.0 / (double)(n_states * Bg));
        /* leave-one-out REINFORCE: 1/2 stopgrad(L1 - L2) (log p(S1) - log p(S2)), averaged, the
         * differences taken token by token (local_credit) */
        lf_tensor *lp[2];
        for (int s = 0; s < 2; s++) {
            lp[s] = m->learned_order
                        ? lf_race_logprob(ctx, race_logw, race.order[s], race.order_off[s], race.k[s], B)
                        : lf_state_logprob(ctx, b_in, b_um, c_const, t_tok, int_vec(ctx, state[s], Nz), a);
            logp[s] = lf_scatter_add_rows(ctx, lp[s], seq_nf, B);
        }
        if ((st = lf_ctx_status(ctx)))
            return st;
        /* each token's weight: the difference of the loss terms within
         * loss.credit_window of it; -1, the specification: of its whole
         * sequence (a window of Nz holds any sequence) */
        lf_tensor *w = const_vec(ctx, Nz, false);
        if (!w)
            return LFLEX_ENOMEM;
        const int64_t W = cfg->credit_window >= 0 ? cfg->credit_window : Nz;
        lf_tensor *rew_rows = um_rows, *next_term = NULL;
        if (m->learned_order && cfg->order_reward == LF_OR_NEXT && M > 0 &&
            (st = next_reward(ctx, cfg, &race, race_logw, B, Nz, M, masked, px.seg, src, t, um, a, Bn, &rew_rows,
                              &next_term)))
            return st;
        if ((st = local_credit(ctx, bt, B, W, Nx, px.seg, src, ins_rows, M, masked, rew_rows, Bn, lf_data(w))))
            return st;
        reinforce = lf_sum(ctx, lf_mul(ctx, lf_sub(ctx, lp[0], lp[1]), w));
        if (next_term)
            reinforce = lf_add(ctx, reinforce, next_term);
        m->trace.credit = lf_keep(w);
        total = lf_add(ctx, total, reinforce);
        if (m->learned) { /* the schedule's regulariser; a learned order has none */
            reg = regulariser(ctx, m, b_in, seq_nf, B, inv_n, has_nf);
            if (b_um)
                reg = lf_add(ctx, reg, regulariser(ctx, m, b_um, seq_nf, B, inv_n, has_nf));
            reg = lf_scale(ctx, reg, cfg->w_reg / Bn);
            total = lf_add(ctx, total, reg);
        }
    } else {
        total = sharded ? lf_scale(ctx, lf_sum(ctx, L), 1.0 / ((double)n_states * Bn)) : lf_mean(ctx, L);
    }
    if ((st = lf_ctx_status(ctx)))
        return st;

    if (parts) {
        double s_ins = 0, s_um = 0;
        for (int64_t j = 0; j < SB; j++) {
            s_ins += lf_data(L_ins)[j];
            s_um += L_um ? lf_data(L_um)[j] : 0;
        }
        parts->total = lf_data(total)[0];
        parts->insert = s_ins / (double)(n_states * Bg);
        parts->unmask = s_um / (double)(n_states * Bg);
        parts->reinforce = reinforce ? lf_data(reinforce)[0] : 0;
        parts->reg = reg ? lf_data(reg)[0] : 0;
        parts->tokens = (reinforced ? Nz : 0) + Nx;
    }
    /* the trace stays readable after the reverse pass */
    lf_loss_trace *tr = &m->trace;
    tr->b_in = lf_keep(b_in);
    tr->b_um = lf_keep(b_um);
    tr->race_logw = lf_keep(race_logw);
    tr->beta_in = lf_keep(beta_in);
    tr->beta_um = lf_keep(beta_um);
    tr->lambda = lf_keep(lambda);
    tr->ins_rows = lf_keep(ins_rows);
    tr->um_rows = lf_keep(um_rows);
    tr->logits = lf_keep(logits);
    tr->L = lf_keep(L);
    tr->logp[0] = lf_keep(logp[0]);
    tr->logp[1] = lf_keep(logp[1]);
    tr->xt = xt;
    tr->xt_offsets = xt_off;
    tr->xt_src = src;
    tr->masked_rows = masked;
    memcpy(tr->state, state, sizeof state);
    tr->t = t;
    tr->n_xt = Nx;
    tr->n_masked = M;
    tr->n_states = n_states;

    if (!backward) {
        m->last_flops = ctx->flops;
        return LFLEX_OK;
    }
    lf_params_zero_grad(&m->params, ctx);
    st = lf_backward(ctx, total);
    m->last_flops = ctx->flops;
    return st;
}
