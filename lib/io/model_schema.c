/* The YAML keys of a model configuration. This table is the single
 * description of every key: parsing, checkpoint metadata, overrides and the
 * reference in doc/config.md all come from it. */
#include <math.h>
#include <stddef.h>

#include "io/model_schema.h"
#include "lflex/schedule_math.h"
#include "nn/layers.h"

static const char *const activation_choices[] = {"gelu", "relu", NULL};
static const char *const family_choices[] = {"kumaraswamy", "linear", NULL};
static const char *const lr_choices[] = {"constant", "cosine", NULL};
static const char *const tokenizer_choices[] = {"char", "words", NULL};
static const char *const norm_choices[] = {"masked", "tokens", "max_len", NULL};
static const char *const reduction_choices[] = {"sum", "mean", NULL};
static const char *const time_weight_choices[] = {"hazard", "flat", NULL};
static const char *const unmask_order_choices[] = {"random", "left_to_right", "right_to_left", "learned", NULL};
static const char *const order_reward_choices[] = {"state", "next", NULL};
static const char *const order_pair_choices[] = {"shared", "independent", NULL};
static const char *const order_weights_choices[] = {"softplus", "exp", NULL};

#define C lf_model_config
static const lf_cfg_key model_keys[] = {
    LF_CFG_KEY_INT(C, d_model, "model.d_model", 8, 8192, 128, "width of the generator's transformer"),
    LF_CFG_KEY_INT(C, n_heads, "model.n_heads", 1, 256, 4, "attention heads; d_model / n_heads must be even"),
    LF_CFG_KEY_INT(C, n_layers, "model.n_layers", 0, 256, 4, "transformer blocks of the generator"),
    LF_CFG_KEY_INT(C, d_cond, "model.d_cond", 0, 8192, 0, "width of the time conditioning (0: d_model)"),
    LF_CFG_KEY_INT(C, mlp_ratio, "model.mlp_ratio", 1, 16, 4, "MLP hidden width as a multiple of d_model"),
    LF_CFG_KEY_INT(C, max_len, "model.max_len", 2, 65536, 128,
                   "longest sequence in tokens (prompt, BOS and EOS included); also L_norm of the loss"),
    LF_CFG_KEY_ENUM(C, activation, "model.activation", activation_choices, LF_ACT_GELU, "MLP activation"),
    LF_CFG_KEY_REAL(C, dropout, "model.dropout", 0, 0.9, 0, "dropout on attention and MLP outputs while training"),
    LF_CFG_KEY_BOOL(C, pos_emb, "model.pos_emb", 0,
                    "add a learned absolute position embedding (model.max_len rows) to the token embedding of "
                    "both networks; rotary embeddings stay"),
    LF_CFG_KEY_BOOL(C, seg_pos, "model.seg_pos", 1,
                    "add learned embeddings of each token's index counted from the start and from the end of its "
                    "segment (the prompt before BOS; BOS, the target and EOS after it) to the token embedding of "
                    "both networks: a target token and the prompt token it copies or mirrors share an index"),
    LF_CFG_KEY_BOOL(C, token_shift, "model.token_shift", 0,
                    "every block of both networks starts by adding to each token its left and right neighbours "
                    "in the current sequence, times learned per-channel weights that start at 1/2: a lookup keyed "
                    "by a nearby token is learned in far fewer steps (doc/learning.md)"),
    LF_CFG_KEY_INT(C, aux_d_model, "aux.d_model", 0, 8192, 0, "width of the auxiliary network (0: model.d_model)"),
    LF_CFG_KEY_INT(C, aux_n_heads, "aux.n_heads", 0, 256, 0, "heads of the auxiliary network (0: model.n_heads)"),
    LF_CFG_KEY_INT(C, aux_n_layers, "aux.n_layers", -1, 256, -1,
                   "blocks of the auxiliary network (-1: model.n_layers)"),
    LF_CFG_KEY_ENUM(C, order_weights, "aux.order_weights", order_weights_choices, LF_OW_SOFTPLUS,
                    "loss.unmask_order learned: each token's race weight from the auxiliary head's score s: "
                    "softplus(s) (the first learned orders), or e^s (exp: the race reads s as a log-weight, so "
                    "weights pushed far down keep their order instead of shrinking towards a common 0)"),
    LF_CFG_KEY_REAL(C, order_span, "aux.order_span", 0, 1000, 0,
                    "loss.unmask_order learned, aux.order_weights exp: above 0, the log-weight is "
                    "span tanh((s - m) / span), m the mean s of the sequence's non-fixed tokens, so that no "
                    "token's weight is more than e^(2 span) times another's: the order stays soft and every "
                    "training state keeps targets next to clean tokens (0: unbounded)"),
    LF_CFG_KEY_ENUM(C, family, "schedule.family", family_choices, LF_FAMILY_KUMARASWAMY,
                    "kumaraswamy: learned insertion order (LFlexMDM); linear: F(t) = t (FlexMDM)"),
    LF_CFG_KEY_REAL(C, a, "schedule.a", LF_SHAPE_A_MIN, LF_SHAPE_A_MAX, 1,
                    "Kumaraswamy shape a shared by all tokens (kumaraswamy only)"),
    LF_CFG_KEY_REAL(C, b_um, "schedule.b_um", LF_B_UM_MIN, LF_B_UM_MAX, 1,
                    "constant unmasking shape b_um when it is not learned"),
    LF_CFG_KEY_BOOL(C, learn_b_in, "schedule.learn_b_in", 1,
                    "kumaraswamy: the auxiliary network learns b_in per token (LFlexMDM); false: every token "
                    "has the constant schedule.b_in and there is no auxiliary network"),
    LF_CFG_KEY_REAL(C, b_in, "schedule.b_in", 0.01, 1000, 1,
                    "constant insertion shape b_in when it is not learned (kumaraswamy only; larger: earlier)"),
    LF_CFG_KEY_REAL(C, late_fraction, "schedule.late_fraction", 0, 0.9, 0,
                    "the fraction of tokens whose insertion time is uniform on [0, 1] instead of Kumaraswamy(a, "
                    "b_in): training then shows states where a token is still missing among revealed ones, and "
                    "the sampler can add a token late where the revealed ones show a gap (fixed kumaraswamy "
                    "schedules with loss.time_weight: flat; doc/learning.md)"),
    LF_CFG_KEY_REAL(C, outside_in, "schedule.outside_in", 0, 0.999, 0,
                    "0: off; r in (0, 1): a fixed order from the ends inwards, the token d places from the nearer "
                    "end of its run of non-fixed tokens has the shapes b_in r^d and b_um r^d (never below 1, or "
                    "below the shape when it is under 1), so that the ends of an answer are inserted and revealed "
                    "first (fixed kumaraswamy schedules with generator.learn_unmask_rate; doc/learning.md)"),
    LF_CFG_KEY_BOOL(C, learn_b_um, "schedule.learn_b_um", 0,
                    "the auxiliary network also learns b_um (needs generator.learn_unmask_rate)"),
    LF_CFG_KEY_REAL(C, aux_min_rate, "schedule.min_rate", 0, 1000, 4,
                    "floor of the learned b_in (and b_um): min_rate + softplus(s) (max_rate - min_rate); 4 keeps insertion "
                    "early (the paper: 1.001); with a = 1 only a floor below 1 lets a token arrive later than "
                    "uniform (see doc/learning.md)"),
    LF_CFG_KEY_REAL(C, aux_max_rate, "schedule.max_rate", 0, 100000, 100, "scale of the learned rates (see min_rate)"),
    LF_CFG_KEY_BOOL(C, learn_unmask_rate, "generator.learn_unmask_rate", 0,
                    "the generator predicts its unmasking rate (otherwise the constant b_um)"),
    LF_CFG_KEY_REAL(C, gen_min_rate, "generator.min_rate", 0, 1000, 0, "floor of the generator's rate heads"),
    LF_CFG_KEY_REAL(C, gen_max_rate, "generator.max_rate", 0, 100000, 100,
                    "scale of the generator's rate heads: min_rate + softplus(s) (max_rate - min_rate)"),
    LF_CFG_KEY_REAL(C, w_reg, "loss.w_reg", 0, 1e6, 1, "weight of the schedule regulariser R"),
    LF_CFG_KEY_REAL(C, w_grid, "loss.w_grid", 0, 1e6, 1, "R: the mean schedule stays near uniform (100-point grid)"),
    LF_CFG_KEY_REAL(C, w_tail, "loss.w_tail", 0, 1e6, 0, "R: hinges keeping mass off t = 0 and t = 1 (the paper: 1)"),
    LF_CFG_KEY_REAL(C, w_kl, "loss.w_kl", 0, 1e6, 0, "R: KL(Kumaraswamy(a, b_i) || U(0, 1)) per token (the paper: 1)"),
    LF_CFG_KEY_ENUM(C, kl_reduction, "loss.kl_reduction", reduction_choices, LF_REDUCE_MEAN,
                    "R: the KL term summed over a sequence's tokens (the specification) or averaged over them (the "
                    "authors' code)"),
    LF_CFG_KEY_REAL(C, reg_b_in, "loss.reg_b_in", 0.01, 1000, 8,
                    "R: the grid term pulls the mean insertion CDF towards 1 - (1 - t)^reg_b_in (1: uniform, the paper)"),
    LF_CFG_KEY_BOOL(C, insert_closed_gaps, "loss.insert_closed_gaps", 0,
                    "the insertion term also covers the gaps no token can enter (the gap left of a fixed token "
                    "whose left neighbour in the clean sequence is fixed or absent: inside a prompt, before BOS); "
                    "their target is always 0 and the sampler never opens them (true: the paper's sum over every "
                    "gap)"),
    LF_CFG_KEY_REAL(C, insert_trunk_grad, "loss.insert_trunk_grad", 0, 1, 1,
                    "the insertion-rate term's gradient into the generator's trunk (and time conditioning), "
                    "multiplied by this (0: it trains only the insertion-rate head and cannot drown the unmasking "
                    "term's signal; 1: the gradient of the loss; doc/learning.md)"),
    LF_CFG_KEY_REAL(C, time_shape, "loss.time_shape", 1, 100, 1,
                    "training times are t = 1 - (1 - u)^(1/time_shape) for stratified uniform u: above 1, more early "
                    "times, where more of a target is still masked (with the hazard time weight, an importance "
                    "weight keeps the ELBO's expectation)"),
    LF_CFG_KEY_ENUM(C, unmask_order, "loss.unmask_order", unmask_order_choices, LF_UM_RANDOM,
                    "which present tokens of a training state are clean: those whose drawn unmasking time has "
                    "passed (random, the specification), or as many of them, the leftmost non-fixed ones "
                    "(left_to_right: the states an autoregressive order visits; sample with confidence: "
                    "left_to_right), the rightmost ones (right_to_left, sample with confidence: right_to_left), or "
                    "the first to finish a race whose weights an auxiliary network learns by REINFORCE (learned: "
                    "a learned unmasking order whose loss weights do not depend on it; sample with confidence: "
                    "top_prob); fixed schedules only; doc/learning.md)"),
    LF_CFG_KEY_INT(C, states, "loss.states", 1, LF_MAX_STATES, 1,
                   "noised states drawn per clean sequence in a training step, each at its own time (times "
                   "stratified over states and sequences; the loss is their mean): more signal per sequence "
                   "for a step that costs that many times more; fixed schedules only (a learned schedule "
                   "always draws two states at one time)"),
    LF_CFG_KEY_INT(C, credit_window, "loss.credit_window", -1, 65536, -1,
                   "learned schedules: the REINFORCE weight of a token's draw is the two states' difference in "
                   "the loss terms of the x_t rows within this many clean positions of it (a row: the insertion "
                   "term of its left gap and, masked, its unmasking term), not the whole sequence's (-1, the "
                   "specification); less noise from the other tokens' draws, but biased (doc/learning.md)"),
    LF_CFG_KEY_ENUM(C, order_reward, "loss.order_reward", order_reward_choices, LF_OR_STATE,
                    "loss.unmask_order learned: what the race is rewarded with: the state's loss terms (state), or "
                    "with each masked row's unmasking term counted by the chance that its token finishes the "
                    "race next instead of 1 / its masked positions (next: the expected cost of unmasking in the "
                    "learned order, which does not pay for hiding a hard token among the clean ones; the chances' "
                    "own gradient is added); the generator's loss is the same either way (doc/learning.md)"),
    LF_CFG_KEY_ENUM(C, order_pair, "loss.order_pair", order_pair_choices, LF_OP_SHARED,
                    "loss.unmask_order learned: the two states of a sequence that the REINFORCE baseline "
                    "compares: the same time, insertions and number of clean tokens, only the races differ "
                    "(shared: the least noise in the order's gradient), or each drawn at its own time as "
                    "loss.states draws them (independent: the generator sees two different states of each "
                    "sequence; the baseline stays unbiased but noisier) (doc/learning.md)"),
    LF_CFG_KEY_ENUM(C, time_weight, "loss.time_weight", time_weight_choices, LF_TW_FLAT,
                    "weight of the generator's loss terms at time t: the base hazard g_a(t) (the ELBO) or 1 "
                    "(flat; the same minimiser, far less variance; hazard is the paper's)"),
    LF_CFG_KEY_ENUM(C, unmask_norm, "loss.unmask_norm", norm_choices, LF_NORM_MASKED,
                    "the unmasking sum of a sequence divided by its masked positions, its non-fixed tokens, "
                    "or model.max_len"),
    LF_CFG_KEY_REAL(C, lr, "train.lr", 0, 10, 3e-4, "peak learning rate of AdamW"),
    LF_CFG_KEY_INT(C, warmup, "train.warmup", 0, 100000000, 100, "steps of linear warm-up from 0 to train.lr"),
    LF_CFG_KEY_ENUM(C, lr_schedule, "train.lr_schedule", lr_choices, LF_LR_CONSTANT, "learning rate after warm-up"),
    LF_CFG_KEY_INT(C, total_steps, "train.total_steps", 1, 1000000000, 10000,
                   "step at which the cosine decay reaches train.min_lr_ratio (warm-up included; cosine only)"),
    LF_CFG_KEY_REAL(C, min_lr_ratio, "train.min_lr_ratio", 0, 1, 0.1, "cosine: final learning rate / train.lr"),
    LF_CFG_KEY_REAL(C, weight_decay, "train.weight_decay", 0, 1, 0.01,
                    "AdamW decay of weight matrices (not biases, norm scales or embeddings)"),
    LF_CFG_KEY_REAL(C, beta1, "train.beta1", 0, 0.999999, 0.9, "AdamW first-moment decay"),
    LF_CFG_KEY_REAL(C, beta2, "train.beta2", 0, 0.9999999, 0.999, "AdamW second-moment decay"),
    LF_CFG_KEY_REAL(C, adam_eps, "train.eps", 1e-12, 1, 1e-8, "AdamW epsilon"),
    LF_CFG_KEY_REAL(C, clip, "train.clip", 0, 1e6, 1, "global gradient-norm clipping (0: off)"),
    LF_CFG_KEY_REAL(C, ema, "train.ema", 0, 0.999999, 0,
                    "decay of the exponential moving average of the weights used for sampling (0: off); step s uses min(train.ema, (1+s)/(10+s))"),
    LF_CFG_KEY_INT(C, seed, "train.seed", 0, 9007199254740991.0, 0,
                   "seed of the model's random numbers (initialisation, times, states, dropout)"),
    LF_CFG_KEY_INT(C, threads, "train.threads", 0, 1024, 0, "worker threads (0: all available cores)"),
    LF_CFG_KEY_ENUM(C, tokenizer, "vocab.tokenizer", tokenizer_choices, LF_TOKENIZER_WORDS,
                    "char: every UTF-8 character is a token; words: whitespace-separated tokens"),
    LF_CFG_KEY_STRING(C, tokens, "vocab.tokens", "",
                      "the user tokens in id order (ids 4, 5, ...): words separated by spaces, or characters"),
    LF_CFG_KEY_INT(C, vocab_size, "vocab.size", 0, 1000000, 0,
                   "number of user tokens when vocab.tokens is empty (ids only, no text)"),
};
#undef C

const lf_cfg_schema lf_model_schema = {model_keys, sizeof model_keys / sizeof model_keys[0], "model"};

/* Keys added after the first checkpoints, with what a stored configuration
 * without them meant. Every configuration the library stores lists every
 * key it knows, so a missing key means an older writer. Add a key here when
 * it is added with a default other than the old behaviour, or before its
 * default changes. */
static const char *const absent_values[][2] = {
    {"model.pos_emb", "false"},     {"model.seg_pos", "false"},     {"schedule.learn_b_in", "true"},
    {"schedule.b_in", "1"},         {"loss.time_weight", "hazard"}, {"loss.unmask_norm", "masked"},
    {"loss.kl_reduction", "sum"},   {"loss.reg_b_in", "1"},         {"model.token_shift", "false"},
    {"loss.insert_trunk_grad", "1"}, {"loss.time_shape", "1"},   {"loss.insert_closed_gaps", "true"},
};

int lf_model_config_absent_values(lf_model_config *cfg)
{
    for (size_t k = 0; k < sizeof absent_values / sizeof absent_values[0]; k++) {
        int st = lf_config_set(&lf_model_schema, cfg, absent_values[k][0], absent_values[k][1]);
        if (st)
            return st;
    }
    return 0;
}
