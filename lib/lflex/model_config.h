/* The configuration of a model: every key of the YAML a model is created
 * from (the schema, with documentation, defaults and ranges, is in
 * lib/io/model_schema.c; doc/config.md is generated from it). */
#ifndef LF_MODEL_CONFIG_H
#define LF_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define LF_VOCAB_TEXT_MAX 16384

typedef enum { LF_FAMILY_KUMARASWAMY = 0, LF_FAMILY_LINEAR = 1 } lf_family;
typedef enum { LF_LR_CONSTANT = 0, LF_LR_COSINE = 1 } lf_lr_schedule;
typedef enum { LF_TOKENIZER_CHAR = 0, LF_TOKENIZER_WORDS = 1 } lf_tokenizer;
/* per-sequence normalisation of the unmasking sum: 1/M (masked positions),
 * 1/n (non-fixed tokens of the clean sequence), 1/max_len */
typedef enum { LF_NORM_MASKED = 0, LF_NORM_TOKENS = 1, LF_NORM_MAX_LEN = 2 } lf_unmask_norm;
typedef enum { LF_REDUCE_SUM = 0, LF_REDUCE_MEAN = 1 } lf_reduction;
/* the time weight of the loss terms: the hazard g_a(t) (the ELBO) or 1 */
typedef enum { LF_TW_HAZARD = 0, LF_TW_FLAT = 1 } lf_time_weight;
typedef enum { LF_UM_RANDOM = 0, LF_UM_LEFT_TO_RIGHT = 1, LF_UM_RIGHT_TO_LEFT = 2, LF_UM_LEARNED = 3 } lf_unmask_order;
/* what a learned unmasking order's race is rewarded with: the state's loss
 * terms, or the expected unmasking term of the token that finishes next */
typedef enum { LF_OR_STATE = 0, LF_OR_NEXT = 1 } lf_order_reward;
/* the two states of a learned unmasking order's leave-one-out pair: the
 * same time, insertions and number of clean tokens (only the races differ),
 * or each drawn on its own as loss.states draws them */
typedef enum { LF_OP_SHARED = 0, LF_OP_INDEPENDENT = 1 } lf_order_pair;
/* a learned unmasking order's race weight from the aux.order head's score
 * s: softplus(s), or e^s */
typedef enum { LF_OW_SOFTPLUS = 0, LF_OW_EXP = 1 } lf_order_weights;

/* the most noised states a training step draws per clean sequence */
#define LF_MAX_STATES 8

typedef struct lf_model_config {
    /* model: the generator's backbone (and the auxiliary network's, unless
     * aux.* overrides a size) */
    int64_t d_model, n_heads, n_layers, d_cond, mlp_ratio, max_len;
    int activation;          /* lf_activation */
    double dropout;
    bool pos_emb;            /* a learned absolute position embedding besides rotary */
    bool seg_pos;            /* learned embeddings of the index from both ends of the token's segment */
    bool token_shift;        /* every block starts by adding each token's neighbours (per-channel weights) */
    /* aux: sizes of the auxiliary network; 0 means "as the generator" */
    int64_t aux_d_model, aux_n_heads, aux_n_layers;
    int order_weights;       /* lf_order_weights: a learned unmasking order's race weights */
    double order_span;       /* > 0: the race's log-weights squashed into (-span, span) */
    /* schedule */
    int family;              /* lf_family */
    double a, b_um, b_in;
    bool learn_b_in, learn_b_um;
    double late_fraction;    /* fixed kumaraswamy: the tokens whose insertion time is uniform instead */
    double outside_in;       /* fixed kumaraswamy: shapes fall by this factor per token from a run's ends (0: off) */
    double aux_min_rate, aux_max_rate;
    /* generator heads */
    bool learn_unmask_rate;
    double gen_min_rate, gen_max_rate;
    /* loss */
    double w_reg, w_grid, w_tail, w_kl;
    int unmask_norm;         /* lf_unmask_norm */
    int time_weight;         /* lf_time_weight */
    int kl_reduction;        /* lf_reduction */
    double reg_b_in;         /* target shape of the grid term: mean F(t) ~ 1 - (1 - t)^reg_b_in */
    bool insert_closed_gaps; /* the insertion term also covers gaps no token can enter (between fixed tokens) */
    double insert_trunk_grad; /* scale of the insertion-rate term's gradient into the generator's trunk */
    double time_shape;       /* training times t = 1 - (1 - u)^(1/time_shape), u stratified uniform */
    int unmask_order;        /* lf_unmask_order: which present tokens of a training state are clean */
    int64_t states;          /* noised states per clean sequence (fixed schedules) */
    int64_t credit_window;   /* REINFORCE credit: -1 the whole sequence, W >= 0 terms within W positions */
    int order_reward;        /* lf_order_reward: a learned unmasking order's reward */
    int order_pair;          /* lf_order_pair: how a learned order's two states are drawn */
    /* train (optimiser) */
    double lr, weight_decay, beta1, beta2, adam_eps, clip, ema;
    int64_t warmup, total_steps;
    int lr_schedule;         /* lf_lr_schedule */
    double min_lr_ratio;
    int64_t seed, threads;
    /* vocab */
    int tokenizer;           /* lf_tokenizer */
    char tokens[LF_VOCAB_TEXT_MAX];
    int64_t vocab_size;      /* user tokens when `tokens` is empty */
} lf_model_config;

/* An auxiliary network learns b_in (LFlexMDM): the Kumaraswamy family with
 * schedule.learn_b_in. */
static inline bool lf_config_learns_b_in(const lf_model_config *cfg)
{
    return cfg->family == LF_FAMILY_KUMARASWAMY && cfg->learn_b_in;
}

/* An auxiliary network learns which present tokens of a state are clean
 * (loss.unmask_order: learned), over a fixed schedule. */
static inline bool lf_config_learns_order(const lf_model_config *cfg)
{
    return cfg->unmask_order == LF_UM_LEARNED;
}

#endif
