/* tau-leaping generation and rate queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/special.h"
#include "core/threads.h"
#include "lflex/noise.h"
#include "lflex/sampler.h"

#define T_END (1.0 - 1e-5)

/* ---- configuration ------------------------------------------------------- */

static int reject(char *why, size_t cap, const char *text)
{
    if (why && cap)
        snprintf(why, cap, "%s", text);
    return LFLEX_EINVAL;
}

int lf_sampler_check_config(const lf_sampler_config *cfg, const lf_model *m, char *why, size_t cap)
{
    if (cfg->max_len > m->cfg.max_len)
        return reject(why, cap, "sampler max_len is larger than the model's model.max_len");
    if (cfg->top_k > m->vocab - LF_N_SPECIAL)
        return reject(why, cap, "top_k is larger than the number of user tokens");
    return LFLEX_OK;
}

int lf_sampler_init(lf_sampler *s, const lf_model *m, const lf_sampler_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->m = m;
    if (s->cfg.max_len == 0)
        s->cfg.max_len = m->cfg.max_len;
    const lf_real *weights = cfg->use_ema && m->ema ? m->ema : m->params.data;
    int st = lf_nets_view_init(&s->view, m, weights);
    if (st)
        return st;
    int threads = (int)(cfg->threads > 0 ? cfg->threads : m->ctx.n_threads);
    if (lf_ctx_init(&s->ctx, 1 << 20, threads) != LFLEX_OK) {
        lf_nets_view_free(&s->view);
        return LFLEX_ENOMEM;
    }
    s->ctx.grad_enabled = false;
    int64_t V = m->vocab - LF_N_SPECIAL;
    s->probs = malloc((size_t)V * sizeof *s->probs);
    s->order = malloc((size_t)V * sizeof *s->order);
    if (!s->probs || !s->order) {
        lf_sampler_destroy(s);
        return LFLEX_ENOMEM;
    }
    if (threads > 1) {
        s->workers = calloc((size_t)threads, sizeof *s->workers);
        s->worker_ctx = calloc((size_t)threads, sizeof *s->worker_ctx);
        if (!s->workers || !s->worker_ctx) {
            lf_sampler_destroy(s);
            return LFLEX_ENOMEM;
        }
        for (int i = 0; i < threads; i++) {
            lf_sampler_worker *w = &s->workers[i];
            if (lf_ctx_init(&s->worker_ctx[i], 1 << 20, 1) != LFLEX_OK) {
                lf_sampler_destroy(s);
                return LFLEX_ENOMEM;
            }
            s->n_workers = i + 1;
            s->worker_ctx[i].grad_enabled = false;
            w->ctx = &s->worker_ctx[i];
            w->probs = malloc((size_t)V * sizeof *w->probs);
            w->order = malloc((size_t)V * sizeof *w->order);
            w->scratch_idx = malloc((size_t)s->cfg.max_len * sizeof *w->scratch_idx);
            w->scratch_conf = malloc((size_t)s->cfg.max_len * sizeof *w->scratch_conf);
            if (!w->probs || !w->order || !w->scratch_idx || !w->scratch_conf) {
                lf_sampler_destroy(s);
                return LFLEX_ENOMEM;
            }
        }
    }
    return LFLEX_OK;
}

void lf_sampler_destroy(lf_sampler *s)
{
    for (int i = 0; s->workers && i < s->n_workers; i++) {
        lf_ctx_free(&s->worker_ctx[i]);
        free(s->workers[i].probs);
        free(s->workers[i].order);
        free(s->workers[i].scratch_idx);
        free(s->workers[i].scratch_conf);
    }
    free(s->workers);
    free(s->worker_ctx);
    lf_nets_view_free(&s->view);
    lf_ctx_free(&s->ctx);
    free(s->probs);
    free(s->order);
    memset(s, 0, sizeof *s);
}

/* ---- random draws ---------------------------------------------------------- */

/* Binomial(m, p) arrivals out of m dropped tokens. */
static int64_t binomial_arrivals(lf_rng *r, int64_t m, double p)
{
    int64_t n = 0;
    for (int64_t i = 0; i < m; i++)
        n += lf_rng_uniform(r) < p;
    return n;
}

/* Poisson(lambda): multiplication of uniforms below 30, otherwise the
 * transformed rejection method PTRS (Hormann, 1993). */
static int64_t poisson(lf_rng *r, double lam)
{
    if (!(lam > 0))
        return 0;
    if (lam < 30) {
        double L = exp(-lam), p = lf_rng_uniform(r);
        int64_t k = 0;
        while (p > L) {
            k++;
            p *= lf_rng_uniform(r);
        }
        return k;
    }
    double slam = sqrt(lam), loglam = log(lam);
    double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double U = lf_rng_uniform(r) - 0.5, V = lf_rng_uniform(r);
        double us = 0.5 - fabs(U);
        double k = floor((2 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= vr)
            return (int64_t)k;
        if (k < 0 || (us < 0.013 && V > us))
            continue;
        int sign;
        if (log(V) + log(inv_alpha) - log(a / (us * us) + b) <= -lam + k * loglam - lgamma_r(k + 1, &sign))
            return (int64_t)k;
    }
}

/* The sampling distribution of one position: softmax(logits / T), cut to
 * the top_k most likely, then to the smallest prefix of mass >= top_p, and
 * renormalised. Greedy (temperature 0 or top_k 1) puts all mass on the
 * most likely token (the first of equals). Returns the number of tokens
 * kept; their indices are s->order[0..kept) by decreasing probability when
 * sorted, else in index order. */
static int64_t token_distribution(const lf_sampler_config *c, float *p, int32_t *order, const lf_real *logits,
                                  int64_t V)
{
    int64_t best = 0;
    for (int64_t j = 1; j < V; j++)
        if (logits[j] > logits[best])
            best = j;
    if (c->temperature == 0 || c->top_k == 1) {
        memset(p, 0, (size_t)V * sizeof *p);
        p[best] = 1;
        order[0] = (int32_t)best;
        return 1;
    }
    double sum = 0, inv_t = 1 / c->temperature;
    for (int64_t j = 0; j < V; j++) {
        p[j] = (float)exp((logits[j] - logits[best]) * inv_t);
        sum += p[j];
    }
    for (int64_t j = 0; j < V; j++) {
        p[j] = (float)(p[j] / sum);
        order[j] = (int32_t)j;
    }
    if ((c->top_k <= 0 || c->top_k >= V) && c->top_p >= 1)
        return V;
    /* sort indices by decreasing probability (insertion sort: V is small in
     * practice, and stable, so equal probabilities keep index order) */
    for (int64_t i = 1; i < V; i++) {
        int32_t o = order[i];
        int64_t k = i;
        while (k > 0 && p[order[k - 1]] < p[o]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = o;
    }
    int64_t kept = c->top_k > 0 && c->top_k < V ? c->top_k : V;
    if (c->top_p < 1) {
        double mass = 0;
        int64_t n = 0;
        while (n < kept && mass < c->top_p)
            mass += p[order[n++]];
        kept = n;
    }
    double kept_mass = 0;
    for (int64_t i = 0; i < kept; i++)
        kept_mass += p[order[i]];
    for (int64_t i = kept; i < V; i++)
        p[order[i]] = 0;
    for (int64_t i = 0; i < kept; i++)
        p[order[i]] = (float)(p[order[i]] / kept_mass);
    return kept;
}

static int32_t draw_token(const float *probs, const int32_t *order, int64_t kept, double u)
{
    double acc = 0;
    for (int64_t i = 0; i < kept; i++) {
        acc += probs[order[i]];
        if (u < acc)
            return order[i];
    }
    return order[kept - 1];
}

static double confidence_of(const float *p, int64_t V, int kind)
{
    double top1 = 0, top2 = 0, ent = 0;
    for (int64_t j = 0; j < V; j++) {
        double q = p[j];
        if (q > top1) {
            top2 = top1;
            top1 = q;
        } else if (q > top2) {
            top2 = q;
        }
        if (q > 0)
            ent -= q * log(q);
    }
    switch (kind) {
    case LF_CONF_TOP_PROB: return top1;
    case LF_CONF_PROB_DIFF: return top1 - top2;
    default: return -ent; /* low entropy = confident */
    }
}

/* ---- one sequence being generated ------------------------------------------ */

typedef struct {
    int32_t *tok;
    uint8_t *open;
    float *t_ins, *t_um;
    int64_t n;
    lf_rng rng;
    /* where its rows are in the current pass */
    int64_t row0;
} seq_state;

/* w(t) = -log(1 - t^a): the integral of g_a from 0 to t; the expected number
 * of events of a rate beta g_a over [t0, t1] is beta (w(t1) - w(t0)), finite
 * even where g_a is not (t = 0 with a < 1). */
static double cum_base_hazard(double t, double a)
{
    if (t <= 0)
        return 0;
    return -lf_log1mexp(a * log(t));
}

/* The tiers of schedule.outside_in r the events grid averages over: the
 * shapes b r^d for d = 0, 1, ... up to the first that reaches the floor
 * (every deeper token has it too), at most LF_OUTSIDE_IN_TIERS. */
#define LF_OUTSIDE_IN_TIERS 64

/* M(t) of lf_sampler_grid's events grid */
static double grid_events_mass(const lf_model *m, double t)
{
    double r = m->cfg.outside_in;
    if (r > 0) { /* the mean over the tiers, each with its own shapes */
        double w = cum_base_hazard(t, m->a), sum = 0;
        double b_floor = lf_noise_outside_in_shape(m->b_in, r, LF_OUTSIDE_IN_TIERS);
        double c_floor = lf_noise_outside_in_shape(m->b_um, r, LF_OUTSIDE_IN_TIERS);
        int n = 0;
        while (n < LF_OUTSIDE_IN_TIERS) {
            double bd = lf_noise_outside_in_shape(m->b_in, r, n), cd = lf_noise_outside_in_shape(m->b_um, r, n);
            sum += 0.5 * (-expm1(-bd * w) - expm1(-cd * w));
            n++;
            if (bd <= b_floor && cd <= c_floor)
                break;
        }
        return sum / n;
    }
    double f_in = -expm1(lf_mix_log_survival(t, m->a, m->b_ins_ref, m->cfg.late_fraction));
    double f_um = -expm1(-m->b_um * cum_base_hazard(t, m->a));
    return 0.5 * (f_in + f_um);
}

void lf_sampler_grid(const lf_model *m, int grid, int64_t N, double *t)
{
    if (grid != LF_GRID_EVENTS) { /* i dt, as generation computes it */
        for (int64_t i = 0; i <= N; i++)
            t[i] = (double)i * (T_END / (double)N);
        return;
    }
    t[0] = 0;
    t[N] = T_END;
    double m_end = grid_events_mass(m, T_END);
    for (int64_t i = 1; i < N; i++) {
        /* M increases from 0 to m_end: bisection for M(t) = m_end i / N */
        double goal = m_end * (double)i / (double)N, lo = t[i - 1], hi = T_END;
        for (int it = 0; it < 100 && hi - lo > 1e-15; it++) {
            double mid = 0.5 * (lo + hi);
            if (grid_events_mass(m, mid) < goal)
                lo = mid;
            else
                hi = mid;
        }
        t[i] = 0.5 * (lo + hi);
    }
}

/* The network pass over every sequence of the chunk at time t: fills
 * beta_in [rows], and for the masked rows (in row order) their logits
 * [M, V-4] and beta_um [M]. */
typedef struct {
    lf_tensor *beta_in, *logits, *beta_um;
    int32_t *masked_rows;
    int64_t n_masked;
} pass_out;

static int network_pass(lf_sampler *s, lf_ctx *ctx, seq_state *seqs, int64_t B, double t, pass_out *po)
{
    const lf_model *m = s->m;
    int st = lf_ctx_reset(ctx);
    if (st)
        return st;
    int64_t T = 0;
    for (int64_t j = 0; j < B; j++) {
        seqs[j].row0 = T;
        T += seqs[j].n;
    }
    int32_t *ids = lf_arena_alloc(&ctx->arena, (size_t)T * sizeof *ids);
    int32_t *off = lf_arena_alloc(&ctx->arena, (size_t)(B + 1) * sizeof *off);
    int32_t *masked = lf_arena_alloc(&ctx->arena, (size_t)T * sizeof *masked);
    double *tt = lf_arena_alloc(&ctx->arena, (size_t)B * sizeof *tt);
    if (!ids || !off || !masked || !tt)
        return LFLEX_ENOMEM;
    int64_t M = 0;
    off[0] = 0;
    for (int64_t j = 0; j < B; j++) {
        memcpy(ids + seqs[j].row0, seqs[j].tok, (size_t)seqs[j].n * sizeof *ids);
        for (int64_t k = 0; k < seqs[j].n; k++)
            if (seqs[j].tok[k] == LF_MASK)
                masked[M++] = (int32_t)(seqs[j].row0 + k);
        off[j + 1] = (int32_t)(seqs[j].row0 + seqs[j].n);
        tt[j] = t;
    }
    po->masked_rows = masked;
    po->n_masked = M;
    int64_t V = m->vocab - LF_N_SPECIAL;
    if (s->forced) {
        po->beta_in = lf_new1(ctx, LF_REAL, T);
        po->beta_um = lf_new1(ctx, LF_REAL, M);
        po->logits = lf_new2(ctx, LF_REAL, M, V);
        if (!po->beta_in || !po->beta_um || !po->logits)
            return LFLEX_ENOMEM;
        for (int64_t r = 0; r < T; r++)
            lf_data(po->beta_in)[r] = (lf_real)s->forced->beta_in;
        for (int64_t q = 0; q < M; q++) {
            lf_data(po->beta_um)[q] = (lf_real)s->forced->beta_um;
            for (int64_t v = 0; v < V; v++)
                lf_data(po->logits)[q * V + v] = s->forced->logits[v];
        }
        return LFLEX_OK;
    }
    const lf_nets *net = &s->view.nets;
    lf_packed pk;
    if ((st = lf_packed_make(ctx, &pk, ids, off, B)))
        return st;
    lf_tensor *c;
    lf_tensor *h = lf_backbone_forward(ctx, &net->gen, &pk, tt, false, 0, &c);
    po->beta_in = lf_rate_head_forward(ctx, &net->gen_ins, h, c, pk.seg);
    po->logits = po->beta_um = NULL;
    if (M > 0) {
        lf_tensor *rows = lf_const_int(ctx, masked, M), *seg_m = lf_new1(ctx, LF_INT, M);
        if (!rows || !seg_m)
            return LFLEX_ENOMEM;
        for (int64_t q = 0; q < M; q++)
            lf_idata(seg_m)[q] = lf_idata(pk.seg)[masked[q]];
        lf_tensor *h_m = lf_embedding(ctx, h, rows);
        po->logits = lf_token_head_forward(ctx, &net->gen_out, h_m, c, seg_m);
        if (net->has_um)
            po->beta_um = lf_rate_head_forward(ctx, &net->gen_um, h_m, c, seg_m);
    }
    if ((st = lf_ctx_status(ctx)))
        return st;
    if (M > 0 && !po->beta_um) { /* the constant schedule rate b_um */
        po->beta_um = lf_new1(ctx, LF_REAL, M);
        if (!po->beta_um)
            return LFLEX_ENOMEM;
        double c_um = m->b_um;
        for (int64_t q = 0; q < M; q++)
            lf_data(po->beta_um)[q] = (lf_real)c_um;
    }
    return LFLEX_OK;
}

/* One tau-leaping step of sequence j from the pass outputs (its masked rows
 * are po->masked_rows[q0 .. q1)). */
static void step_sequence(const lf_sampler *s, const lf_sampler_worker *wk, seq_state *sq, const pass_out *po,
                          int64_t q0, int64_t q1, double t, double dt, bool last)
{
    int64_t *scratch_idx = wk->scratch_idx;
    double *scratch_conf = wk->scratch_conf;
    const lf_model *m = s->m;
    int64_t V = m->vocab - LF_N_SPECIAL;
    float t_next = (float)(t + dt);
    const lf_real *logits = po->logits ? lf_data(po->logits) : NULL;
    if (last) { /* every MASK becomes its most likely token */
        for (int64_t q = q0; q < q1; q++) {
            int64_t k = po->masked_rows[q] - sq->row0, best = 0;
            const lf_real *row = logits + q * V;
            for (int64_t v = 1; v < V; v++)
                if (row[v] > row[best])
                    best = v;
            sq->tok[k] = (int32_t)(LF_N_SPECIAL + best);
            sq->t_um[k] = (float)t;
        }
        return;
    }
    double G = cum_base_hazard(t + dt, m->a) - cum_base_hazard(t, m->a);
    /* unmasking events */
    int64_t n_fire = 0;
    for (int64_t q = q0; q < q1; q++) {
        double p = -expm1(-(double)lf_data(po->beta_um)[q] * G);
        bool fire = lf_rng_uniform(&sq->rng) < p;
        scratch_idx[q - q0] = fire;
        n_fire += fire;
    }
    if (s->cfg.confidence == LF_CONF_LEFT_TO_RIGHT || s->cfg.confidence == LF_CONF_RIGHT_TO_LEFT) {
        /* the same number of positions, the leftmost (rightmost) ones: masked rows are in sequence order */
        bool left = s->cfg.confidence == LF_CONF_LEFT_TO_RIGHT;
        for (int64_t q = q0; q < q1; q++)
            scratch_idx[q - q0] = left ? q - q0 < n_fire : q1 - q <= n_fire;
    } else if (s->cfg.confidence != LF_CONF_NONE && n_fire > 0) {
        /* the same number of positions, the most confident ones */
        int64_t nq = q1 - q0;
        for (int64_t q = q0; q < q1; q++) {
            token_distribution(&s->cfg, wk->probs, wk->order, logits + q * V, V);
            scratch_conf[q - q0] = confidence_of(wk->probs, V, s->cfg.confidence);
            scratch_idx[q - q0] = 0;
        }
        for (int64_t f = 0; f < n_fire; f++) {
            int64_t best = -1;
            for (int64_t i = 0; i < nq; i++)
                if (!scratch_idx[i] && (best < 0 || scratch_conf[i] > scratch_conf[best]))
                    best = i;
            scratch_idx[best] = 1;
        }
    }
    for (int64_t q = q0; q < q1; q++) {
        if (!scratch_idx[q - q0])
            continue;
        int64_t kept = token_distribution(&s->cfg, wk->probs, wk->order, logits + q * V, V);
        int64_t k = po->masked_rows[q] - sq->row0;
        sq->tok[k] = LF_N_SPECIAL + draw_token(wk->probs, wk->order, kept, lf_rng_uniform(&sq->rng));
        sq->t_um[k] = t_next;
    }
    /* insertions into open gaps */
    int64_t total = 0;
    int64_t *n_ins = scratch_idx; /* reuse: sized for the sequence */
    /* auto: binomial, but Poisson for schedule.outside_in, whose gaps hold
     * tokens of different shapes (a gap's rate is not a count times one b) */
    bool binomial = s->cfg.insertion == LF_INS_BINOMIAL ||
                    (s->cfg.insertion == LF_INS_AUTO && !(m->cfg.outside_in > 0));
    double b_ref = m->b_ins_ref;
    /* a dropped token's chance to arrive in this step (shape b_ref; the late
     * fraction's mixture), and G_in, its cumulative hazard over the step per
     * unit of beta_in */
    double late = m->cfg.late_fraction;
    double G_in = late > 0 ? (lf_mix_log_survival(t, m->a, b_ref, late) -
                              lf_mix_log_survival(t + dt, m->a, b_ref, late)) / b_ref
                           : G;
    double p_arrive = -expm1(-b_ref * G_in);
    /* binomial: the dropped tokens of the gaps, m_k, are the expected numbers
     * mu_k = beta_in / b_ref rounded by one systematic draw u over the sequence
     * (E[m_k] = mu_k, and their sum is the sum of the mu_k rounded down or
     * up), so that a model sure of the length gets exactly that length */
    /* greedy decoding (temperature 0 or top_k 1) also decodes the length
     * greedily: u = 1/2 rounds the running sums to the nearest whole number,
     * so the small expected counts a trained model leaves in gaps that are
     * complete add no tokens (a random u adds one with probability sum mu,
     * step after step, and an inserted token is never removed) */
    bool greedy = s->cfg.temperature == 0 || s->cfg.top_k == 1;
    double u_sys = !binomial ? 0 : greedy ? 0.5 : lf_rng_uniform(&sq->rng), cum = 0, cap = (double)s->cfg.max_len;
    int64_t prev = 0;
    for (int64_t k = 0; k < sq->n; k++) {
        double beta = sq->open[k] ? (double)lf_data(po->beta_in)[sq->row0 + k] : 0;
        if (binomial) {
            double mu = beta > 0 ? beta / b_ref : 0;
            cum += mu < cap ? mu : cap;
            int64_t cur = (int64_t)floor(cum + u_sys);
            n_ins[k] = binomial_arrivals(&sq->rng, cur - prev, p_arrive);
            prev = cur;
        } else {
            n_ins[k] = poisson(&sq->rng, beta * G_in);
        }
        total += n_ins[k];
    }
    if (total == 0 || sq->n + total > s->cfg.max_len)
        return; /* too long: this step's insertions are dropped */
    /* spread from the back so that nothing is overwritten before it moves */
    int64_t w = sq->n + total;
    for (int64_t k = sq->n - 1; k >= 0; k--) {
        w--;
        sq->tok[w] = sq->tok[k];
        sq->open[w] = sq->open[k];
        sq->t_ins[w] = sq->t_ins[k];
        sq->t_um[w] = sq->t_um[k];
        for (int64_t i = 0; i < n_ins[k]; i++) {
            w--;
            sq->tok[w] = LF_MASK;
            sq->open[w] = 1;
            sq->t_ins[w] = t_next;
            sq->t_um[w] = NAN;
        }
    }
    sq->n += total;
}

/* ---- generation ---------------------------------------------------------------- */

static lf_rng sequence_stream(int64_t seed, uint64_t index)
{
    uint64_t x = (uint64_t)seed ^ (0x9e3779b97f4a7c15ULL * (index + 1));
    lf_rng r;
    lf_rng_seed(&r, lf_splitmix64(&x));
    return r;
}

/* The stream of candidate k of the sequence `index`: candidate 0 has the
 * stream of a plain sample, so that `candidates: 1` generates what a sampler
 * without candidates does, and a template's first candidate is that sample. */
int64_t lf_sampler_candidate_seed(int64_t seed, int64_t k)
{
    if (k == 0)
        return seed;
    uint64_t x = (uint64_t)k * 0xd1342543de82ef95ULL; /* a seed a sampler accepts: below 2^53 */
    return (int64_t)(((uint64_t)seed ^ lf_splitmix64(&x)) & ((UINT64_C(1) << 53) - 1));
}

static lf_rng candidate_stream(int64_t seed, uint64_t index, int64_t k)
{
    return sequence_stream(lf_sampler_candidate_seed(seed, k), index);
}

/* Candidates are scored at this time, where a state of a trained model has
 * nearly every token in place and a few masked, and packed up to this many
 * rows per network pass. */
#define PLL_T 0.95
#define PLL_ROWS 8192

/* The window of sq that starts at position k0: k0 and the next W - 1
 * generated positions (t_um > 0) after it, fewer at the end, at most
 * MAX_SPAN (the key's bound); their positions into pos[], their number
 * returned. */
#define MAX_SPAN 64
static int64_t window_positions(const seq_state *sq, int64_t k0, int64_t W, int64_t pos[MAX_SPAN])
{
    int64_t w = 0;
    for (int64_t k = k0; k < sq->n && w < W && w < MAX_SPAN; k++)
        if (k == k0 || sq->t_um[k] > 0)
            pos[w++] = k;
    return w;
}

/* One scoring pass: copies q < n of the sequences seqs[seq[q]], each with
 * the window starting at position pos[q] masked (that position and the next
 * candidate_span - 1 generated ones, t_um > 0), rows in all, through the
 * generator at t = PLL_T; lp[q] = the sum of log p(masked token) over the
 * window. */
static int pll_pass(lf_sampler *s, lf_ctx *ctx, const seq_state *seqs, const int64_t *seq, const int64_t *pos,
                    int64_t n, int64_t rows, double *lp)
{
    int st = lf_ctx_reset(ctx);
    if (st)
        return st;
    const int64_t W = s->cfg.candidate_span > 1 ? s->cfg.candidate_span : 1;
    int32_t *ids = lf_arena_alloc(&ctx->arena, (size_t)rows * sizeof *ids);
    int32_t *off = lf_arena_alloc(&ctx->arena, (size_t)(n + 1) * sizeof *off);
    int32_t *row = lf_arena_alloc(&ctx->arena, (size_t)(n * W) * sizeof *row);
    int32_t *tok = lf_arena_alloc(&ctx->arena, (size_t)(n * W) * sizeof *tok);
    int32_t *win = lf_arena_alloc(&ctx->arena, (size_t)(n * W) * sizeof *win);
    double *tt = lf_arena_alloc(&ctx->arena, (size_t)n * sizeof *tt);
    if (!ids || !off || !row || !tok || !win || !tt)
        return LFLEX_ENOMEM;
    off[0] = 0;
    int64_t m = 0; /* masked rows */
    for (int64_t q = 0; q < n; q++) {
        const seq_state *sq = &seqs[seq[q]];
        memcpy(ids + off[q], sq->tok, (size_t)sq->n * sizeof *ids);
        int64_t wp[MAX_SPAN];
        for (int64_t i = 0, nw = window_positions(sq, pos[q], W, wp); i < nw; i++) {
            int64_t k = wp[i];
            row[m] = (int32_t)(off[q] + k);
            tok[m] = sq->tok[k];
            win[m++] = (int32_t)q;
            ids[off[q] + k] = LF_MASK;
        }
        off[q + 1] = (int32_t)(off[q] + sq->n);
        tt[q] = PLL_T;
    }
    lf_tensor *seg = lf_new1(ctx, LF_INT, m);
    if (!seg)
        return LFLEX_ENOMEM;
    memcpy(lf_idata(seg), win, (size_t)m * sizeof *win);
    const lf_nets *net = &s->view.nets;
    lf_packed pk;
    if ((st = lf_packed_make(ctx, &pk, ids, off, n)))
        return st;
    lf_tensor *cond;
    lf_tensor *h = lf_backbone_forward(ctx, &net->gen, &pk, tt, false, 0, &cond);
    lf_tensor *h_m = lf_embedding(ctx, h, lf_const_int(ctx, row, m));
    lf_tensor *logp = lf_log_softmax(ctx, lf_token_head_forward(ctx, &net->gen_out, h_m, cond, seg));
    if ((st = lf_ctx_status(ctx)))
        return st;
    const int64_t V = s->m->vocab - LF_N_SPECIAL;
    for (int64_t q = 0; q < n; q++)
        lp[q] = 0;
    for (int64_t r = 0; r < m; r++)
        lp[win[r]] += tok[r] >= LF_N_SPECIAL ? (double)lf_data(logp)[r * V + tok[r] - LF_N_SPECIAL] : -INFINITY;
    return LFLEX_OK;
}

/* Window terms of the sequences j with same[j] < 0 (same may be NULL): one
 * copy per generated position k of sequence j (t_um > 0), seq[q] = j and
 * pos[q] = k, consecutive per sequence, with lp[q] the sum of log p(token |
 * the sequence with the window masked) at t = PLL_T over the window's
 * positions (k and the next candidate_span - 1 generated ones; with span 1
 * log p of the token with only itself masked); *n copies. The copies are
 * packed into passes of at most PLL_ROWS rows (at least one copy). The
 * caller frees *seq, *pos and *lp. */
static int window_terms(lf_sampler *s, lf_ctx *ctx, const seq_state *seqs, int64_t n_seq, const int64_t *same,
                        int64_t **seq_out, int64_t **pos_out, double **lp_out, int64_t *n_out)
{
    int64_t cap = 0;
    for (int64_t j = 0; j < n_seq; j++)
        cap += seqs[j].n;
    int64_t *seq = malloc((size_t)(cap ? cap : 1) * sizeof *seq), *pos = malloc((size_t)(cap ? cap : 1) * sizeof *pos);
    double *lp = malloc((size_t)(cap ? cap : 1) * sizeof *lp);
    int st = seq && pos && lp ? LFLEX_OK : LFLEX_ENOMEM;
    int64_t n = 0;
    for (int64_t j = 0; j < n_seq && !st; j++)
        for (int64_t k = 0; k < seqs[j].n && (!same || same[j] < 0); k++)
            if (seqs[j].t_um[k] > 0) {
                seq[n] = j;
                pos[n++] = k;
            }
    for (int64_t c0 = 0, c1; c0 < n && !st; c0 = c1) {
        int64_t rows = 0;
        for (c1 = c0; c1 < n && (c1 == c0 || rows + seqs[seq[c1]].n <= PLL_ROWS); c1++)
            rows += seqs[seq[c1]].n;
        st = pll_pass(s, ctx, seqs, seq + c0, pos + c0, c1 - c0, rows, lp + c0);
    }
    *seq_out = seq;
    *pos_out = pos;
    *lp_out = lp;
    *n_out = n;
    return st;
}

/* The score of n > 0 window terms: their sum, mean or minimum. */
static double combine_terms(int mode, const double *lp, int64_t n)
{
    double sum = 0, lo = INFINITY;
    for (int64_t q = 0; q < n; q++) {
        sum += lp[q];
        lo = fmin(lo, lp[q]);
    }
    return mode == LF_SCORE_MIN ? lo : mode == LF_SCORE_MEAN ? sum / (double)n : sum;
}

/* score[j] from the n window terms of window_terms (copies consecutive per
 * sequence): the sum (the pseudo-log-likelihood), mean or minimum, by
 * mode, of sequence j's terms; without generated positions 0 for the sum,
 * -inf (ranked last) for the mean and minimum. Sequences with same[j] >= 0
 * (same may be NULL) take the score of sequence same[j] < j. With first
 * (may be NULL), first[j] = the copy index of sequence j's first term (of
 * same[j]'s for a repeat; -1 without terms). */
static void sequence_scores(int mode, const int64_t *seq, const double *lp, int64_t n, int64_t n_seq,
                            const int64_t *same, double *score, int64_t *first)
{
    for (int64_t j = 0; j < n_seq; j++) {
        score[j] = mode == LF_SCORE_SUM ? 0 : -INFINITY;
        if (first)
            first[j] = -1;
    }
    for (int64_t q0 = 0, q1; q0 < n; q0 = q1) {
        for (q1 = q0; q1 < n && seq[q1] == seq[q0]; q1++)
            ;
        score[seq[q0]] = combine_terms(mode, lp + q0, q1 - q0);
        if (first)
            first[seq[q0]] = q0;
    }
    for (int64_t j = 0; j < n_seq && same; j++)
        if (same[j] >= 0) {
            score[j] = score[same[j]];
            if (first)
                first[j] = first[same[j]];
        }
}

/* Candidate scores: score[j] of sequence j over its window terms
 * (window_terms, sequence_scores); sequences with same[j] >= 0 take the
 * score of same[j] without a pass. With forced rates (tests) every score is
 * 0. */
static int pll_scores(lf_sampler *s, lf_ctx *ctx, const seq_state *seqs, int64_t n_seq, const int64_t *same,
                      double *score)
{
    if (s->forced) {
        for (int64_t j = 0; j < n_seq; j++)
            score[j] = 0;
        return LFLEX_OK;
    }
    int64_t *seq, *pos, n;
    double *lp;
    int st = window_terms(s, ctx, seqs, n_seq, same, &seq, &pos, &lp, &n);
    if (!st)
        sequence_scores(s->cfg.candidate_score, seq, lp, n, n_seq, same, score, NULL);
    free(seq);
    free(pos);
    free(lp);
    return st;
}

/* The window terms of the n_out outputs of out (both time arrays) by
 * position, term[j L + k] for the generated positions k of output j, and
 * their scores score[j] (sequence_scores). */
static int output_terms(lf_sampler *s, const lf_generated *out, int64_t n_out, double *term, double *score)
{
    const int64_t L = s->cfg.max_len;
    seq_state *cur = calloc((size_t)(n_out ? n_out : 1), sizeof *cur);
    if (!cur)
        return LFLEX_ENOMEM;
    for (int64_t j = 0; j < n_out; j++) {
        int64_t b = out->offsets[j];
        cur[j] = (seq_state){.tok = out->tokens + b, .t_ins = out->insert_time + b, .t_um = out->unmask_time + b,
                             .n = out->offsets[j + 1] - b};
    }
    int64_t *seq, *pos, n;
    double *lp;
    int st = window_terms(s, &s->ctx, cur, n_out, NULL, &seq, &pos, &lp, &n);
    if (!st) {
        sequence_scores(s->cfg.candidate_score, seq, lp, n, n_out, NULL, score, NULL);
        for (int64_t q = 0; q < n; q++)
            term[seq[q] * L + pos[q]] = lp[q];
    }
    free(cur);
    free(seq);
    free(pos);
    free(lp);
    return st;
}

/* One step of a group of sequences, by one worker. */
typedef struct {
    lf_sampler *s;
    lf_sampler_worker *wk;
    seq_state *seqs;
    int64_t B, i, N;
    double t, dt;
    int status;
} group_job;

static void run_group_step(group_job *g)
{
    double t = g->t;
    if (g->i == g->N) { /* the closing pass: nothing to do without masks */
        bool any = false;
        for (int64_t j = 0; j < g->B && !any; j++)
            for (int64_t k = 0; k < g->seqs[j].n && !any; k++)
                any = g->seqs[j].tok[k] == LF_MASK;
        if (!any) {
            g->status = LFLEX_OK;
            return;
        }
    }
    pass_out po;
    g->status = g->B > 0 ? network_pass(g->s, g->wk->ctx, g->seqs, g->B, t, &po) : LFLEX_OK;
    if (g->status || g->B == 0)
        return;
    int64_t q = 0;
    for (int64_t j = 0; j < g->B; j++) {
        int64_t q0 = q, end = g->seqs[j].row0 + g->seqs[j].n;
        while (q < po.n_masked && po.masked_rows[q] < end)
            q++;
        step_sequence(g->s, g->wk, &g->seqs[j], &po, q0, q, t, g->dt, g->i == g->N);
    }
}

static void run_groups(void *p, int64_t g0, int64_t g1)
{
    group_job *jobs = p;
    for (int64_t g = g0; g < g1; g++)
        run_group_step(&jobs[g]);
}

/* Step i of the chunk's B sequences. With several workers the sequences are
 * split into one group per worker of about equal rows (the cost of a pass),
 * each group running its pass and draws in a single-threaded context: one
 * hand-off per step instead of one per op. Each sequence's step depends
 * only on its own rows of the pass, so the grouping does not change what is
 * generated. */
static int chunk_step(lf_sampler *s, lf_sampler_worker *whole, group_job *jobs, seq_state *seqs, int64_t B,
                      int64_t i, int64_t N, double t, double dt)
{
    int64_t G = s->n_workers > 1 && B >= s->n_workers ? s->n_workers : 1;
    if (G == 1) {
        jobs[0] = (group_job){s, whole, seqs, B, i, N, t, dt, LFLEX_OK};
        run_group_step(&jobs[0]);
        return jobs[0].status;
    }
    int64_t rows = 0;
    for (int64_t j = 0; j < B; j++)
        rows += seqs[j].n;
    int64_t j = 0, acc = 0;
    for (int64_t g = 0; g < G; g++) {
        int64_t j0 = j;
        /* take sequences while the group's end stays nearest its share of the
         * rows (at least one: B >= G) */
        while (j < B && (g == G - 1 || (2 * acc + seqs[j].n) * G <= 2 * rows * (g + 1) || j == j0) &&
               B - j > G - 1 - g) {
            acc += seqs[j].n;
            j++;
        }
        jobs[g] = (group_job){s, &s->workers[g], seqs + j0, j - j0, i, N, t, dt, LFLEX_OK};
    }
    lf_pool_run(s->ctx.pool, G, (int)G, run_groups, jobs);
    for (int64_t g = 0; g < G; g++)
        if (jobs[g].status) {
            /* report the failing group's place through the sampler's context */
            s->ctx.status = jobs[g].wk->ctx->status;
            s->ctx.status_where = jobs[g].wk->ctx->status_where;
            return jobs[g].status;
        }
    return LFLEX_OK;
}

/* same[j] = the first earlier sequence of j's group of K (j - j % K ...)
 * with the same tokens, or -1: candidates equal to an earlier one of their
 * template are scored once. */
static void mark_repeats(const seq_state *seqs, int64_t n, int64_t K, int64_t *same)
{
    for (int64_t j = 0; j < n; j++) {
        same[j] = -1;
        for (int64_t i = j - j % K; i < j && same[j] < 0; i++)
            if (seqs[i].n == seqs[j].n && !memcmp(seqs[i].tok, seqs[j].tok, (size_t)seqs[j].n * sizeof(int32_t)))
                same[j] = i;
    }
}

/* Templates per chunk of a generation of n_templates with K candidates
 * each: at most batch_size sequences, at least one template (0 without
 * templates). */
static int64_t chunk_templates(const lf_sampler *s, int64_t n_templates, int64_t K)
{
    int64_t B_max = s->cfg.batch_size > 0 ? s->cfg.batch_size : 1;
    B_max = B_max / K > 0 ? B_max / K : 1;
    return B_max < n_templates ? B_max : n_templates;
}

/* Steps of a generation of n_templates with K candidates each: one per step
 * and closing pass of every chunk. */
static uint64_t generation_steps(const lf_sampler *s, int64_t n_templates, int64_t K)
{
    int64_t chunk_cap = chunk_templates(s, n_templates, K);
    return (uint64_t)((n_templates + chunk_cap - 1) / (chunk_cap ? chunk_cap : 1)) * (uint64_t)(s->cfg.steps + 1);
}

/* Generates the templates into out (capacity checked by the caller), with
 * K candidates each (1: plain samples); the progress callback sees *done,
 * counted on, of total. */
static int generate_pass(lf_sampler *s, const lf_templates *tp, lf_generated *out, int64_t K, uint64_t *done,
                         uint64_t total)
{
    const int64_t L = s->cfg.max_len, N = s->cfg.steps;
    /* a chunk: chunk_cap templates, K candidates of each (sequence j K + k) */
    int64_t chunk_cap = chunk_templates(s, tp->n, K);
    const int64_t S_cap = (chunk_cap ? chunk_cap : 1) * K;
    seq_state *seqs = calloc((size_t)S_cap, sizeof *seqs);
    int32_t *tok = malloc((size_t)(S_cap * L) * sizeof *tok);
    uint8_t *open = malloc((size_t)(S_cap * L));
    float *tin = malloc((size_t)(S_cap * L) * sizeof *tin), *tum = malloc((size_t)(S_cap * L) * sizeof *tum);
    int64_t *scratch_idx = malloc((size_t)L * sizeof *scratch_idx);
    double *scratch_conf = malloc((size_t)L * sizeof *scratch_conf);
    double *score = malloc((size_t)S_cap * sizeof *score);
    int64_t *same = malloc((size_t)S_cap * sizeof *same);
    group_job *jobs = malloc((size_t)(s->n_workers > 1 ? s->n_workers : 1) * sizeof *jobs);
    double *grid = malloc((size_t)(N + 1) * sizeof *grid);
    int st = LFLEX_OK;
    if (!seqs || !tok || !open || !tin || !tum || !scratch_idx || !scratch_conf || !score || !same || !jobs || !grid)
        st = LFLEX_ENOMEM;
    /* the whole-context worker: one group, the ops split over the threads */
    lf_sampler_worker whole = {&s->ctx, s->probs, s->order, scratch_idx, scratch_conf};
    /* N steps insert and unmask over [0, T_END]; one more pass at T_END turns
     * the masks left (those inserted last among them) into their most likely
     * tokens */
    if (!st)
        lf_sampler_grid(s->m, s->cfg.grid, N, grid);
    int64_t written = 0;
    out->offsets[0] = 0;
    for (int64_t c0 = 0; c0 < tp->n && !st; c0 += chunk_cap) {
        int64_t B = tp->n - c0 < chunk_cap ? tp->n - c0 : chunk_cap;
        for (int64_t j = 0; j < B * K; j++) {
            seq_state *sq = &seqs[j];
            int64_t b = tp->offsets[c0 + j / K], e = tp->offsets[c0 + j / K + 1];
            sq->tok = tok + j * L;
            sq->open = open + j * L;
            sq->t_ins = tin + j * L;
            sq->t_um = tum + j * L;
            sq->n = e - b;
            memcpy(sq->tok, tp->tokens + b, (size_t)sq->n * sizeof *sq->tok);
            for (int64_t k = 0; k < sq->n; k++) {
                sq->open[k] = tp->open_gap[b + k] != 0;
                sq->t_ins[k] = 0;
                sq->t_um[k] = sq->tok[k] == LF_MASK ? NAN : 0;
            }
            sq->rng = candidate_stream(s->cfg.seed, s->n_generated + (uint64_t)(c0 + j / K), j % K);
        }
        for (int64_t i = 0; i <= N && !st; i++) {
            /* the uniform grid's steps are all T_END / N (bit for bit what
             * it always was); the closing pass has no step */
            double dt = s->cfg.grid != LF_GRID_EVENTS ? T_END / (double)N : i < N ? grid[i + 1] - grid[i] : 0;
            st = chunk_step(s, &whole, jobs, seqs, B * K, i, N, grid[i], dt);
            ++*done;
            if (!st && s->progress && s->progress(s->progress_user, *done, total) != 0)
                st = LFLEX_ECANCELED;
        }
        if (!st && K > 1) {
            mark_repeats(seqs, B * K, K, same);
            st = pll_scores(s, &s->ctx, seqs, B * K, same, score);
        }
        for (int64_t j = 0; j < B && !st; j++) {
            int64_t best = j * K; /* the highest score; the first of ties */
            for (int64_t k = 1; k < K; k++)
                if (score[j * K + k] > score[best])
                    best = j * K + k;
            const seq_state *sq = &seqs[best];
            memcpy(out->tokens + written, sq->tok, (size_t)sq->n * sizeof *sq->tok);
            if (out->insert_time)
                memcpy(out->insert_time + written, sq->t_ins, (size_t)sq->n * sizeof(float));
            if (out->unmask_time)
                memcpy(out->unmask_time + written, sq->t_um, (size_t)sq->n * sizeof(float));
            written += sq->n;
            out->offsets[c0 + j + 1] = written;
        }
    }
    if (!st)
        s->n_generated += (uint64_t)tp->n;
    free(seqs);
    free(tok);
    free(open);
    free(tin);
    free(tum);
    free(scratch_idx);
    free(scratch_conf);
    free(score);
    free(same);
    free(jobs);
    free(grid);
    return st;
}

/* ---- revision ------------------------------------------------------------------ */

/* One round of revision (cfg.revise). For every output sequence j, the
 * window (as the candidates' scores have them: a generated position and the
 * next candidate_span - 1) with the lowest term (term[j L + k]) among those
 * not tried since the sequence last changed (tried[j L + k]) is taken out:
 * its inserted tokens are deleted, opening the gap they leave, its template
 * MASKs are masked again, and every other token stays as a template token.
 * The sampler generates each such template K = candidates times (as K
 * plain samples: their scores must count the whole sequence, not only what
 * the revision generated), and the revision of the highest score
 * (candidate_score over its window terms) replaces its sequence when it
 * scores higher than the sequence (score[j]), its terms and score taking
 * the old ones' places; otherwise the window counts as tried. Kept tokens
 * keep their times; the new ones carry the times of the revision's
 * generation. out holds n_out sequences with both time arrays. */
static int revise_round(lf_sampler *s, lf_generated *out, int64_t n_out, uint8_t *tried, double *term,
                        double *score, uint64_t *done, uint64_t total)
{
    const int64_t L = s->cfg.max_len, W = s->cfg.candidate_span > 1 ? s->cfg.candidate_span : 1;
    const int64_t K = s->cfg.candidates > 1 ? s->cfg.candidates : 1;
    const size_t n1 = (size_t)(n_out ? n_out : 1), nk = n1 * (size_t)K, cap = nk * (size_t)L;
    seq_state *cur = calloc(n1, sizeof *cur), *rev = calloc(nk, sizeof *rev);
    double *rev_score = malloc(nk * sizeof *rev_score);
    int64_t *pick = malloc(n1 * sizeof *pick), *owner = malloc(nk * sizeof *owner), *same = malloc(nk * sizeof *same);
    int64_t *first = malloc(nk * sizeof *first);
    int64_t *r_off = malloc((nk + 1) * sizeof *r_off), *g_off = malloc((nk + 1) * sizeof *g_off);
    int32_t *r_tok = malloc(cap * sizeof *r_tok), *g_tok = malloc(cap * sizeof *g_tok);
    uint8_t *r_open = malloc(cap);
    float *g_tin = malloc(cap * sizeof *g_tin), *g_tum = malloc(cap * sizeof *g_tum);
    uint8_t *in_win = calloc(n1 * (size_t)L, 1);
    int64_t *seq = NULL, *pos = NULL, n = 0;
    double *lp = NULL;
    int st = cur && rev && rev_score && pick && owner && same && first && r_off && g_off && r_tok && g_tok &&
                     r_open && g_tin && g_tum && in_win
                 ? LFLEX_OK
                 : LFLEX_ENOMEM;
    /* each sequence's weakest window not yet tried */
    for (int64_t j = 0; j < n_out && !st; j++) {
        int64_t b = out->offsets[j];
        cur[j] = (seq_state){.tok = out->tokens + b, .t_ins = out->insert_time + b, .t_um = out->unmask_time + b,
                             .n = out->offsets[j + 1] - b};
        pick[j] = -1;
        for (int64_t k = 0; k < cur[j].n; k++)
            if (cur[j].t_um[k] > 0 && !tried[j * L + k] && (pick[j] < 0 || term[j * L + k] < term[j * L + pick[j]]))
                pick[j] = k;
    }
    /* the revision templates, K copies of each (revisions r K .. r K + K - 1
     * of sequence owner[r K]) */
    int64_t R = 0;
    r_off[0] = 0;
    for (int64_t j = 0; j < n_out && !st; j++) {
        if (pick[j] < 0)
            continue;
        const seq_state *sq = &cur[j];
        uint8_t *in = in_win + j * L; /* 1: in the window, 2: in it and deleted */
        int64_t wp[MAX_SPAN], e = r_off[R];
        for (int64_t i = 0, nw = window_positions(sq, pick[j], W, wp); i < nw; i++)
            in[wp[i]] = sq->t_ins[wp[i]] > 0 ? 2 : 1; /* inserted tokens go, template MASKs stay */
        bool open = false;
        for (int64_t k = 0; k < sq->n; k++) {
            if (in[k] == 2) { /* deleted: its gap open */
                open = true;
                continue;
            }
            r_tok[e] = in[k] ? LF_MASK : sq->tok[k];
            r_open[e++] = open;
            open = false;
        }
        const int64_t base = r_off[R], len = e - base;
        for (int64_t c = 0; c < K; c++) {
            if (c > 0) {
                memcpy(r_tok + r_off[R], r_tok + base, (size_t)len * sizeof *r_tok);
                memcpy(r_open + r_off[R], r_open + base, (size_t)len);
            }
            owner[R] = j;
            r_off[R + 1] = r_off[R] + len;
            R++;
        }
    }
    if (!st && R > 0) {
        lf_templates rt = {r_tok, r_open, r_off, R};
        lf_generated g = {g_tok, (int64_t)cap, g_off, g_tin, g_tum};
        st = generate_pass(s, &rt, &g, 1, done, total); /* the copies are the candidates */
        /* kept tokens (the revision's template tokens other than its MASKs)
         * take back their times */
        for (int64_t r = 0; r < R && !st; r++) {
            const seq_state *sq = &cur[owner[r]];
            const uint8_t *in = in_win + owner[r] * L;
            for (int64_t i = g_off[r], k = 0; i < g_off[r + 1]; i++) {
                if (g_tin[i] > 0)
                    continue; /* inserted by the revision */
                while (in[k] == 2) /* the next position the template kept */
                    k++;
                if (!in[k]) {
                    g_tin[i] = sq->t_ins[k];
                    g_tum[i] = sq->t_um[k];
                }
                k++;
            }
            rev[r] = (seq_state){.tok = g_tok + g_off[r], .t_ins = g_tin + g_off[r], .t_um = g_tum + g_off[r],
                                 .n = g_off[r + 1] - g_off[r]};
        }
        if (!st) {
            mark_repeats(rev, R, K, same);
            st = window_terms(s, &s->ctx, rev, R, same, &seq, &pos, &lp, &n);
        }
        if (!st)
            sequence_scores(s->cfg.candidate_score, seq, lp, n, R, same, rev_score, first);
    }
    /* the outputs again, revised where the revision scores higher */
    if (!st && R > 0) {
        int32_t *tok = malloc((size_t)cap * sizeof *tok);
        float *tin = malloc((size_t)cap * sizeof *tin), *tum = malloc((size_t)cap * sizeof *tum);
        if (!tok || !tin || !tum)
            st = LFLEX_ENOMEM;
        int64_t written = 0;
        for (int64_t j = 0, r = 0; j < n_out && !st; j++) {
            const seq_state *src = &cur[j];
            if (r < R && owner[r] == j) {
                int64_t best = r; /* the highest score of the K; the first of ties */
                for (int64_t c = 1; c < K; c++)
                    if (rev_score[r + c] > rev_score[best])
                        best = r + c;
                if (rev_score[best] > score[j]) {
                    src = &rev[best];
                    memset(tried + j * L, 0, (size_t)L);
                    score[j] = rev_score[best];
                    for (int64_t q = first[best]; q >= 0 && q < n && seq[q] == seq[first[best]]; q++)
                        term[j * L + pos[q]] = lp[q];
                } else {
                    tried[j * L + pick[j]] = 1;
                }
                r += K;
            }
            memcpy(tok + written, src->tok, (size_t)src->n * sizeof *tok);
            memcpy(tin + written, src->t_ins, (size_t)src->n * sizeof *tin);
            memcpy(tum + written, src->t_um, (size_t)src->n * sizeof *tum);
            written += src->n;
            r_off[j + 1] = written; /* the new offsets (the templates' are no longer needed) */
        }
        if (!st) {
            memcpy(out->tokens, tok, (size_t)written * sizeof *tok);
            memcpy(out->insert_time, tin, (size_t)written * sizeof *tin);
            memcpy(out->unmask_time, tum, (size_t)written * sizeof *tum);
            for (int64_t j = 0; j < n_out; j++)
                out->offsets[j + 1] = r_off[j + 1];
        }
        free(tok);
        free(tin);
        free(tum);
    }
    free(seq);
    free(pos);
    free(lp);
    free(cur);
    free(rev);
    free(rev_score);
    free(pick);
    free(owner);
    free(same);
    free(first);
    free(r_off);
    free(g_off);
    free(r_tok);
    free(g_tok);
    free(r_open);
    free(g_tin);
    free(g_tum);
    free(in_win);
    return st;
}

int lf_sampler_generate(lf_sampler *s, const lf_templates *tp, lf_generated *out)
{
    const int64_t L = s->cfg.max_len, R = s->forced ? 0 : s->cfg.revise;
    if (out->cap < tp->n * L) {
        out->offsets[tp->n] = tp->n * L;
        return LFLEX_EINVAL;
    }
    /* the generation, then rounds of at most K plain copies of every template */
    const int64_t K = s->cfg.candidates > 1 ? s->cfg.candidates : 1;
    const uint64_t first = generation_steps(s, tp->n, K), per = generation_steps(s, tp->n * K, 1),
                   total = first + per * (uint64_t)R;
    uint64_t done = 0;
    if (R == 0)
        return generate_pass(s, tp, out, K, &done, total);
    /* revision reads both times: the caller's arrays or ours */
    lf_generated o = *out;
    const size_t cells = (size_t)(tp->n > 0 ? tp->n * L : 1);
    float *tin = out->insert_time ? NULL : malloc(cells * sizeof *tin);
    float *tum = out->unmask_time ? NULL : malloc(cells * sizeof *tum);
    uint8_t *tried = calloc(cells, 1);
    double *term = malloc(cells * sizeof *term), *score = malloc((size_t)(tp->n ? tp->n : 1) * sizeof *score);
    o.insert_time = out->insert_time ? out->insert_time : tin;
    o.unmask_time = out->unmask_time ? out->unmask_time : tum;
    int st = o.insert_time && o.unmask_time && tried && term && score ? LFLEX_OK : LFLEX_ENOMEM;
    if (!st)
        st = generate_pass(s, tp, &o, K, &done, total);
    if (!st) /* the outputs' window terms, kept up to date by the rounds */
        st = output_terms(s, &o, tp->n, term, score);
    for (int64_t r = 0; r < R && !st; r++) {
        st = revise_round(s, &o, tp->n, tried, term, score, &done, total);
        /* a round revises at most every sequence: the rest of its share */
        if (!st && done < first + per * (uint64_t)(r + 1)) {
            done = first + per * (uint64_t)(r + 1);
            if (s->progress && s->progress(s->progress_user, done, total) != 0)
                st = LFLEX_ECANCELED;
        }
    }
    free(tin);
    free(tum);
    free(tried);
    free(term);
    free(score);
    return st;
}

/* ---- rate queries -------------------------------------------------------------- */

/* A query reads the model's live weights through a view and computes in a
 * context of its own, so queries may run concurrently; the backbone (gen or
 * aux) is run over one sequence at time t. */
typedef struct {
    lf_nets_view view;
    lf_ctx ctx;
    lf_packed pk;
    lf_tensor *h, *c;
} query;

static int query_open(query *q, const lf_model *m, const lf_backbone *(*which)(const lf_nets *), const int32_t *x,
                      int64_t n, double t)
{
    int st = lf_nets_view_init(&q->view, m, m->params.data);
    if (st)
        return st;
    if ((st = lf_ctx_init(&q->ctx, 1 << 16, 1))) {
        lf_nets_view_free(&q->view);
        return st;
    }
    q->ctx.grad_enabled = false;
    int32_t off[2] = {0, (int32_t)n};
    st = lf_packed_make(&q->ctx, &q->pk, x, off, 1);
    q->h = st ? NULL : lf_backbone_forward(&q->ctx, which(&q->view.nets), &q->pk, &t, false, 0, &q->c);
    return LFLEX_OK; /* failures show in the context's status */
}

static void query_close(query *q)
{
    lf_ctx_free(&q->ctx);
    lf_nets_view_free(&q->view);
}

static const lf_backbone *generator(const lf_nets *n) { return &n->gen; }
static const lf_backbone *auxiliary(const lf_nets *n) { return &n->aux; }

int lf_model_query_rates(const lf_model *m, const int32_t *x, int64_t n, double t, float *token_probs,
                         float *unmask_rate, float *insert_rate)
{
    query q;
    int st = query_open(&q, m, generator, x, n, t);
    if (st)
        return st;
    lf_ctx *ctx = &q.ctx;
    const lf_nets *nets = &q.view.nets;
    lf_tensor *h = q.h, *c = q.c, *seg = q.pk.seg;
    lf_tensor *b_in = lf_rate_head_forward(ctx, &nets->gen_ins, h, c, seg);
    lf_tensor *probs = lf_softmax(ctx, lf_token_head_forward(ctx, &nets->gen_out, h, c, seg));
    lf_tensor *b_um = nets->has_um ? lf_rate_head_forward(ctx, &nets->gen_um, h, c, seg) : NULL;
    st = lf_ctx_status(ctx);
    if (!st) {
        /* insertion: beta_in / b_ref dropped tokens, each at the insertion hazard */
        double g = lf_base_hazard(t, m->a), c_um = m->b_um;
        double g_in = lf_mix_hazard(t, m->a, m->b_ins_ref, m->cfg.late_fraction) / m->b_ins_ref;
        int64_t V = m->vocab, U = V - LF_N_SPECIAL;
        for (int64_t k = 0; k < n; k++) {
            bool is_mask = x[k] == LF_MASK;
            if (insert_rate)
                insert_rate[k] = (float)(lf_data(b_in)[k] * g_in);
            if (unmask_rate)
                unmask_rate[k] = is_mask ? (float)((b_um ? lf_data(b_um)[k] : c_um) * g) : 0.0f;
            if (token_probs) {
                memset(token_probs + k * V, 0, LF_N_SPECIAL * sizeof(float));
                for (int64_t v = 0; v < U; v++)
                    token_probs[k * V + LF_N_SPECIAL + v] = (float)lf_data(probs)[k * U + v];
            }
        }
    }
    query_close(&q);
    return st;
}

int lf_model_query_unmask_log_weights(const lf_model *m, const int32_t *z, const uint8_t *fixed, int64_t n,
                                      float *logw)
{
    if (!m->learned_order)
        return LFLEX_EINVAL;
    query q;
    int st = query_open(&q, m, auxiliary, z, n, 0.0); /* the auxiliary network reads no time */
    if (st)
        return st;
    lf_tensor *lw = lf_nets_race_logw(&q.ctx, &q.view.nets, &m->cfg, q.h, q.c, q.pk.seg, fixed);
    st = lf_ctx_status(&q.ctx);
    for (int64_t i = 0; !st && i < n; i++)
        logw[i] = fixed[i] ? -INFINITY : (float)lf_data(lw)[i];
    query_close(&q);
    return st;
}

int lf_model_query_order(const lf_model *m, const int32_t *z, const uint8_t *fixed, int64_t n, float *b_in,
                         float *b_um, float *expected_insert_time)
{
    double c_um = m->b_um;
    if (!m->learned) { /* fixed schedules: the same shapes for every token, or falling from the runs' ends */
        double *sb = malloc((size_t)(n ? n : 1) * sizeof *sb), *sc = malloc((size_t)(n ? n : 1) * sizeof *sc);
        if (!sb || !sc) {
            free(sb);
            free(sc);
            return LFLEX_ENOMEM;
        }
        lf_noise_outside_in_shapes(fixed, n, m->b_in, m->cfg.outside_in, sb); /* outside_in 0: b_in for all */
        lf_noise_outside_in_shapes(fixed, n, c_um, m->cfg.outside_in, sc);
        /* a late fraction e mixes in uniform times, whose mean is 1/2 */
        double e = m->cfg.late_fraction;
        for (int64_t i = 0; i < n; i++) {
            if (b_in)
                b_in[i] = (float)sb[i];
            if (b_um)
                b_um[i] = (float)sc[i];
            if (expected_insert_time)
                expected_insert_time[i] =
                    fixed && fixed[i] ? 0.0f : (float)((1 - e) * lf_kuma_expected_time(m->a, sb[i]) + e * 0.5);
        }
        free(sb);
        free(sc);
        return LFLEX_OK;
    }
    query q;
    int st = query_open(&q, m, auxiliary, z, n, 0.0); /* the auxiliary network reads no time */
    if (st)
        return st;
    const lf_nets *nets = &q.view.nets;
    lf_tensor *bi = lf_rate_head_forward(&q.ctx, &nets->aux_bin, q.h, q.c, q.pk.seg);
    lf_tensor *bu = nets->has_bum ? lf_rate_head_forward(&q.ctx, &nets->aux_bum, q.h, q.c, q.pk.seg) : NULL;
    st = lf_ctx_status(&q.ctx);
    if (!st) {
        for (int64_t i = 0; i < n; i++) {
            double b = lf_data(bi)[i];
            if (b_in)
                b_in[i] = (float)b;
            if (b_um)
                b_um[i] = (float)(bu ? lf_data(bu)[i] : c_um);
            if (expected_insert_time)
                expected_insert_time[i] = fixed && fixed[i] ? 0.0f : (float)lf_kuma_expected_time(m->a, b);
        }
    }
    query_close(&q);
    return st;
}
