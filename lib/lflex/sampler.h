/* Generation by tau-leaping (the paper's sampler, doc/sampling.md), and the rate queries of
 * section 6. A sampler borrows its model and reads it only, through a view
 * of its weights (live or EMA) and a context of its own, so that several
 * samplers may run on one model at the same time. */
#ifndef LF_SAMPLER_H
#define LF_SAMPLER_H

#include "lflex/model.h"

typedef enum { LF_CONF_NONE = 0, LF_CONF_TOP_PROB, LF_CONF_PROB_DIFF, LF_CONF_ENTROPY, LF_CONF_LEFT_TO_RIGHT, LF_CONF_RIGHT_TO_LEFT } lf_confidence;
/* how many MASKs a gap receives in a step: auto is binomial (learned shapes
 * counted with loss.reg_b_in) */
typedef enum { LF_INS_AUTO = 0, LF_INS_POISSON, LF_INS_BINOMIAL } lf_insertion;
/* where the steps fall in [0, 1): equal steps, or equal shares of a token's
 * expected insertion and unmasking events (lf_sampler_grid) */
typedef enum { LF_GRID_UNIFORM = 0, LF_GRID_EVENTS } lf_grid;
/* how a candidate's per-token log-probabilities make its score */
typedef enum { LF_SCORE_SUM = 0, LF_SCORE_MEAN, LF_SCORE_MIN } lf_candidate_score;

typedef struct lf_sampler_config {
    int64_t steps;        /* tau-leaping steps N; the last one only unmasks */
    double temperature;   /* 0: greedy */
    int64_t top_k;        /* 0: off */
    double top_p;         /* 1: off */
    int confidence;       /* lf_confidence */
    int insertion;        /* lf_insertion */
    int64_t max_len;      /* 0: the model's max_len */
    int64_t seed;
    bool use_ema;         /* use the EMA weights when the model keeps them */
    int64_t batch_size;   /* sequences per network pass */
    int64_t threads;      /* 0: all cores */
    int64_t candidates;   /* samples per template, the one the model scores highest kept (1: off) */
    int candidate_score;  /* lf_candidate_score */
    int64_t candidate_span; /* consecutive generated positions masked together per scored window */
    int64_t revise;       /* rounds of revision: the weakest window generated again (0: off) */
    int grid;             /* lf_grid */
} lf_sampler_config;

/* Test hook: replaces the generator by fixed outputs. */
typedef struct lf_forced_rates {
    double beta_in;            /* insertion scalar of every gap */
    double beta_um;            /* unmasking scalar of every masked position */
    const float *logits;       /* [V - 4] token logits of every masked position */
} lf_forced_rates;

/* What one thread needs to run sequences through their steps: a context
 * (its arena holds the network passes) and scratch of its own. */
typedef struct lf_sampler_worker {
    lf_ctx *ctx;
    float *probs;              /* token sampling */
    int32_t *order;
    int64_t *scratch_idx;      /* per position of a sequence */
    double *scratch_conf;
} lf_sampler_worker;

typedef struct lf_sampler {
    lf_sampler_config cfg;
    const lf_model *m;
    lf_nets_view view;
    lf_ctx ctx;                /* all threads; its pool runs the groups */
    /* Generation splits a chunk of sequences into one group per thread, each
     * run through all its steps by one worker with a single-threaded context:
     * sequences are independent, so there is no hand-off per op or step. */
    int n_workers;
    lf_sampler_worker *workers;
    lf_ctx *worker_ctx;
    uint64_t n_generated;      /* sequences generated so far: picks each one's random stream */
    const lf_forced_rates *forced;
    /* progress callback: called after every step; non-zero cancels */
    int (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
    /* scratch for token sampling (rate queries, single-group generation) */
    float *probs;
    int32_t *order;
} lf_sampler;

/* A batch of templates: tokens with open-gap flags, concatenated. */
typedef struct lf_templates {
    const int32_t *tokens;
    const uint8_t *open_gap;
    const int64_t *offsets;    /* [n + 1] */
    int64_t n;
} lf_templates;

/* Output: sequences concatenated into `tokens` (capacity `cap`), offsets
 * [n + 1]; per token the time it was inserted and unmasked (template tokens:
 * 0 and 0; tokens of MASK in a template: 0 and the time they were unmasked),
 * either array may be NULL. */
typedef struct lf_generated {
    int32_t *tokens;
    int64_t cap;
    int64_t *offsets;
    float *insert_time, *unmask_time;
} lf_generated;

/* Checks a config against the model (messages through `why`). */
int lf_sampler_check_config(const lf_sampler_config *cfg, const lf_model *m, char *why, size_t cap);
int lf_sampler_init(lf_sampler *s, const lf_model *m, const lf_sampler_config *cfg);
void lf_sampler_destroy(lf_sampler *s);
/* LFLEX_EINVAL when the output capacity is too small (nothing is generated
 * then; out->offsets[n] gets the worst-case need, n * max_len);
 * LFLEX_ECANCELED when the progress callback asked to stop. */
int lf_sampler_generate(lf_sampler *s, const lf_templates *tp, lf_generated *out);
/* The step times t[0 .. N] of N steps: t[0] = 0, t[N] = 1 - 1e-5 (the
 * closing pass's time; the uniform grid's N dt may differ from it in the
 * last bit), increasing. uniform: t[i] = i dt, dt = (1 - 1e-5) / N. events:
 * M(t[i]) = i / N for M(t) = (F_in(t) + F_um(t)) / 2, F_in the insertion CDF
 * of a dropped token under the model's reference shape (fixed b_in, or
 * loss.reg_b_in for learned shapes; schedule.late_fraction mixed in) and
 * F_um the unmasking CDF of a token present from t = 0 (b_um, a): the steps
 * crowd where the tokens arrive, which a uniform grid crosses in its first
 * steps when b_in is large. */
void lf_sampler_grid(const lf_model *m, int grid, int64_t N, double *t);
/* With `candidates` K, candidate k of a template is the sample a sampler
 * without candidates seeded with this seed generates for it (k = 0: the
 * sampler's own seed; every seed is below 2^53, as the key requires). */
int64_t lf_sampler_candidate_seed(int64_t seed, int64_t k);

/* Rate queries on the model's live weights, each with a context of its own.
 * x [n]: a partial sequence (MASK allowed), t in [0, 1].
 * token_probs [n x V] (zeros for reserved ids; rows of non-masked positions
 * too), unmask_rate [n] (beta_um g_a(t) at masked positions, 0 elsewhere),
 * insert_rate [n] (beta_in g_a(t), gap left of each position); any may be
 * NULL. */
int lf_model_query_rates(const lf_model *m, const int32_t *x, int64_t n, double t, float *token_probs,
                         float *unmask_rate, float *insert_rate);
/* b_in (and b_um) of every token of a clean sequence and the expected
 * insertion time; fixed tokens are present from time 0 (expected time 0). */
int lf_model_query_order(const lf_model *m, const int32_t *z, const uint8_t *fixed, int64_t n, float *b_in,
                         float *b_um, float *expected_insert_time);
/* The race log-weights of a learned unmasking order (m->learned_order) for
 * every token of a clean sequence, -INFINITY for fixed tokens; LFLEX_EINVAL
 * for a model without one. */
int lf_model_query_unmask_log_weights(const lf_model *m, const int32_t *z, const uint8_t *fixed, int64_t n,
                                      float *logw);

#endif
