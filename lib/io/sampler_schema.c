/* The YAML keys of a sampler (lflex_sampler_new). */
#include <stddef.h>

#include "io/sampler_schema.h"

static const char *const confidence_choices[] = {"none", "top_prob", "prob_diff", "entropy", "left_to_right", "right_to_left", NULL};
static const char *const insertion_choices[] = {"auto", "poisson", "binomial", NULL};
static const char *const score_choices[] = {"sum", "mean", "min", NULL};
static const char *const grid_choices[] = {"uniform", "events", NULL};

#define C lf_sampler_config
static const lf_cfg_key sampler_keys[] = {
    LF_CFG_KEY_INT(C, steps, "steps", 1, 100000, 64,
                   "tau-leaping steps from t = 0 to 1, then a closing pass that turns every MASK left into its most likely token"),
    LF_CFG_KEY_REAL(C, temperature, "temperature", 0, 100, 1, "softmax temperature of token sampling (0: greedy)"),
    LF_CFG_KEY_INT(C, top_k, "top_k", 0, 1000000, 0, "sample among the k most likely tokens (0: all; 1: greedy)"),
    LF_CFG_KEY_REAL(C, top_p, "top_p", 0.000001, 1, 1,
                    "sample from the smallest set of most likely tokens whose probability reaches top_p (1: all)"),
    LF_CFG_KEY_ENUM(C, confidence, "confidence", confidence_choices, LF_CONF_NONE,
                    "which masked positions unmask: the random events (none), or as many of the most confident ones "
                    "(or the leftmost: left_to_right; the rightmost: right_to_left)"),
    LF_CFG_KEY_ENUM(C, insertion, "insertion", insertion_choices, LF_INS_AUTO,
                    "MASKs a gap receives in a step: poisson(rate), the specification's rule, or binomial(the "
                    "expected number of dropped tokens rounded at random, or to the nearest when decoding "
                    "greedily; their chance to arrive in the step), which keeps lengths exact when the model is "
                    "sure of them; learned shapes are counted with loss.reg_b_in; auto: binomial"),
    LF_CFG_KEY_INT(C, max_len, "max_len", 0, 65536, 0,
                   "longest output in tokens (0: the model's max_len; at most the model's)"),
    LF_CFG_KEY_INT(C, seed, "seed", 0, 9007199254740991.0, 0, "seed of the sampler's random numbers"),
    LF_CFG_KEY_BOOL(C, use_ema, "use_ema", 1, "use the EMA weights when the model keeps them (train.ema > 0)"),
    LF_CFG_KEY_INT(C, batch_size, "batch_size", 1, 65536, 32, "sequences generated together in one network pass"),
    LF_CFG_KEY_INT(C, threads, "threads", 0, 1024, 0, "worker threads (0: as the model)"),
    LF_CFG_KEY_INT(C, candidates, "candidates", 1, 1024, 1,
                   "samples drawn per template; the one with the highest pseudo-log-likelihood under the model "
                   "(each generated token scored with only itself masked, at t = 0.95, or windows of "
                   "candidate_span tokens) is returned: the model "
                   "checks whole answers, which is easier than writing them (candidates differ through the "
                   "sampler's randomness: use a temperature above 0; doc/sampling.md)"),
    LF_CFG_KEY_ENUM(C, candidate_score, "candidate_score", score_choices, LF_SCORE_SUM,
                    "how a candidate's scored tokens make its score: the sum of their log-probabilities (the "
                    "pseudo-log-likelihood; prefers short answers when lengths differ), their mean, or their "
                    "minimum (the least likely token)"),
    LF_CFG_KEY_INT(C, candidate_span, "candidate_span", 1, 64, 1,
                   "generated positions masked together when a candidate is scored: every generated position "
                   "starts a window of this many (fewer at the end), scored by the sum of the log-probabilities "
                   "of the window's tokens with the whole window masked; candidate_score combines the windows "
                   "(1: each token with only itself masked; wider windows stop a token being read off a copy "
                   "of it next to it)"),
    LF_CFG_KEY_INT(C, revise, "revise", 0, 64, 0,
                   "rounds of revision after generation: each round takes out every output's weakest window "
                   "(the lowest window term of candidate_span positions not tried since it last changed; "
                   "inserted tokens deleted, their gap opened, template MASKs masked again), generates it anew "
                   "with the sampler's candidates and keeps the result when its score (candidate_score) is "
                   "higher; each round costs about one generation (doc/sampling.md)"),
    LF_CFG_KEY_ENUM(C, grid, "grid", grid_choices, LF_GRID_UNIFORM,
                    "where the steps fall in [0, 1): equal steps (uniform), or steps that carry equal shares of a "
                    "token's expected insertion and unmasking events under the model's reference schedules "
                    "(events: short steps where insertions crowd, as with a large b_in or learned shapes; "
                    "doc/sampling.md)"),
};
#undef C

const lf_cfg_schema lf_sampler_schema = {sampler_keys, sizeof sampler_keys / sizeof sampler_keys[0], "sampler"};
