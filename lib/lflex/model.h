/* The LFlexMDM model: generator and (for learned schedules) auxiliary
 * network, their parameters, the optimiser state and the random stream.
 * Internal; the API room wraps it in lflex_model_t. */
#ifndef LF_MODEL_H
#define LF_MODEL_H

#include "core/core.h"
#include "core/rng.h"
#include "lflex/model_config.h"
#include "lflex/schedule_math.h"
#include "nn/layers.h"
#include "nn/params.h"

/* reserved ids (doc/model-layout.md) */
enum { LF_PAD = 0, LF_MASK = 1, LF_BOS = 2, LF_EOS = 3, LF_N_SPECIAL = 4 };

/* Handles to the tensors of the last lf_model_loss (for tests). */
typedef struct lf_loss_trace {
    lf_tensor *b_in, *b_um;         /* [Nz] (b_um NULL when constant) */
    lf_tensor *race_logw;           /* [Nz] a learned unmasking order's race log-weights (else NULL) */
    lf_tensor *beta_in, *beta_um;   /* [Nx] over both states (beta_um only on masked rows) */
    lf_tensor *lambda;              /* [Nx] */
    lf_tensor *ins_rows, *um_rows;  /* [Nx] insertion terms, [M] unmasking terms (weighted) */
    lf_tensor *credit;              /* [Nz] per-token REINFORCE weights (learned schedules) */
    lf_tensor *logits;              /* [M, V-4] masked rows */
    lf_tensor *L;                   /* [n_states * n_seq] per-sequence loss */
    lf_tensor *logp[2];             /* [n_seq] */
    int32_t *xt, *xt_offsets;       /* packed x_t of all states */
    int32_t *xt_src;                /* [Nx] the clean position of each x_t row */
    int32_t *masked_rows;           /* [M] rows of x_t that are masked */
    int32_t *state[LF_MAX_STATES];  /* [n_states][Nz] the token states of each draw */
    const double *t;                /* [n_states * n_seq] the time of each x_t sequence */
    int64_t n_xt, n_masked, n_states;
} lf_loss_trace;
struct lf_model;

/* The networks: layer structs whose tensors point into one weight buffer. */
typedef struct lf_nets {
    lf_backbone gen, aux;
    lf_token_head gen_out;
    lf_rate_head gen_ins, gen_um, aux_bin, aux_bum, aux_order;
    bool has_aux, has_um, has_bum, has_order;
} lf_nets;

/* Register the networks of a config into `p` (names and shapes of
 * doc/model-layout.md, in a fixed order). */
int lf_nets_register(lf_nets *n, const lf_model_config *cfg, int64_t vocab, lf_params *p);
void lf_nets_free(lf_nets *n);
/* A learned unmasking order's race log-weights [R] from the auxiliary
 * network's output h (conditioning c, rows seg, fixed tokens flagged): the
 * aux.order head's score s as log softplus(s), s, or span tanh((s - m) /
 * span) with m the mean s of the sequence's non-fixed tokens
 * (aux.order_weights, aux.order_span). */
lf_tensor *lf_nets_race_logw(lf_ctx *ctx, const lf_nets *n, const lf_model_config *cfg, lf_tensor *h, lf_tensor *c,
                             lf_tensor *seg, const uint8_t *fixed);

/* A read-only copy of a model's networks over other weights (the EMA
 * weights, or the live ones), for samplers and rate queries, which may run
 * concurrently with each other. */
typedef struct lf_nets_view {
    lf_params params;  /* same layout as the model's; data borrowed, no gradients */
    lf_nets nets;
} lf_nets_view;
int lf_nets_view_init(lf_nets_view *v, const struct lf_model *m, const lf_real *weights);
void lf_nets_view_free(lf_nets_view *v);

typedef struct lf_model {
    lf_model_config cfg;
    int64_t vocab;                 /* all ids: LF_N_SPECIAL + user tokens */
    bool learned;                  /* learned b_in (kumaraswamy, learn_b_in): an auxiliary network exists */
    bool learned_order;            /* loss.unmask_order learned: an auxiliary network weighs the race */
    double a;                      /* the shape in use (1 for the linear family) */
    double b_in, b_um;             /* the constant shapes where not learned (1 for the linear family) */
    double b_ins_ref;              /* binomial insertions: b_in, or loss.reg_b_in when b_in is learned */
    lf_params params;
    lf_nets net;
    /* optimiser: AdamW moments and the EMA copy, in the params' layout */
    lf_real *adam_m, *adam_v, *ema;
    /* loaded from a weights-only file (doc/checkpoints.md): "ema" or "raw",
     * the weights it holds; NULL for a model with its optimiser state. Such
     * a model generates and answers queries but does not train. */
    const char *weights_only;
    uint64_t step;
    lf_rng rng;
    lf_ctx ctx;
    lf_loss_trace trace;
    double last_flops;             /* FLOPs of the last objective evaluation */
} lf_model;

/* LFLEX_EINVAL when keys that are each valid do not fit together; `why`
 * (may be NULL) gets a sentence naming the keys. */
int lf_model_check_config(const lf_model_config *cfg, int64_t n_user_tokens, char *why, size_t cap);
/* Create with initialised weights (seeded from cfg->seed). */
int lf_model_create(lf_model *m, const lf_model_config *cfg, int64_t n_user_tokens);
void lf_model_destroy(lf_model *m);
/* Threads of the model's context (0: all cores); the trace is dropped. */
int lf_model_set_threads(lf_model *m, int n_threads);

/* A training batch as the API receives it. A shard (shard_count > 0) is
 * the part of the batch one process of a data-parallel run computes:
 * sequences [shard_first, shard_first + shard_count). Its times and states
 * are those the whole batch draws for these sequences, the random stream
 * ends where the whole batch leaves it, and the objective is scaled by the
 * whole batch's size, so that the shards' gradients and loss parts sum to
 * those of the whole batch. shard_count 0 is the whole batch. */
typedef struct lf_batch {
    const int32_t *tokens;
    const uint8_t *fixed;
    const int32_t *offsets;   /* [n_seq + 1] */
    int64_t n_seq;
    int64_t shard_first, shard_count;
} lf_batch;

/* Noised states given from outside (tests against the PyTorch reference):
 * per-sequence times and per-token states for one or two draws. */
typedef struct lf_given_states {
    const double *t;          /* [n_seq] */
    const int32_t *state[2];  /* [n_tokens] each; state[1] NULL for one draw */
} lf_given_states;

typedef struct lf_loss_parts {
    double total, unmask, insert, reinforce, reg;
    int64_t tokens;           /* clean tokens + noised tokens processed */
} lf_loss_parts;

/* Forward and backward of the objective on a batch into the parameters'
 * gradients (zeroed first). `given` NULL samples times and states from the
 * model's RNG. Leaves the context's tape and tensors for inspection until the
 * next call. */
int lf_model_loss(lf_model *m, const lf_batch *batch, const lf_given_states *given, bool backward,
                  lf_loss_parts *parts);

const lf_loss_trace *lf_model_last_trace(const lf_model *m);

/* The most optimiser steps a model counts: 2^53 - 1, the largest count a
 * double (the learning-rate schedule, the bias corrections) holds exactly.
 * Checkpoints with a larger lflex.step are refused. */
#define LF_STEP_MAX UINT64_C(9007199254740991)

/* One optimiser step from the gradients of the last lf_model_loss. Returns
 * LFLEX_ENUMERIC when the loss or a gradient is not finite, or when the
 * update would make a weight or moment non-finite, and LFLEX_ESTATE when
 * the step count is at LF_STEP_MAX; then nothing is changed (weights,
 * moments, EMA, step). Failures set the error message. Fills *grad_norm
 * (before clipping) and *lr. */
int lf_model_apply_step(lf_model *m, double loss, double *grad_norm, double *lr);

/* The learning rate at optimiser step `step` (1-based). */
double lf_model_lr_at(const lf_model_config *cfg, uint64_t step);
/* The EMA decay used at optimiser step `step` (1-based): min(train.ema,
 * (1 + step) / (10 + step)), a warm-up so that short runs are not averaged
 * with their initial weights. */
double lf_model_ema_decay(const lf_model_config *cfg, uint64_t step);

#endif
