/* Autograd ops of the schedules: the state log-probabilities, the CDF on a
 * grid and the KL term of the regulariser, each differentiable in the
 * per-token shapes b (and c), formulas in schedule_math.h; and the
 * log-probability of a learned unmasking order's race. */
#ifndef LF_SCHED_OPS_H
#define LF_SCHED_OPS_H

#include "core/core.h"
#include "lflex/schedule_math.h"

/* log P(state_i | t_i) for every token i: b [N] (b_in), c [N] (b_um) or NULL
 * for the constant c_const, t [N] real constants, state [N] int (lf_token_state). */
lf_tensor *lf_state_logprob(lf_ctx *ctx, lf_tensor *b, lf_tensor *c, double c_const, const double *t,
                            lf_tensor *state, double a);
/* F(grid_g; a, b_i) -> [N, G]. */
lf_tensor *lf_kuma_cdf_grid(lf_ctx *ctx, lf_tensor *b, const double *grid, int64_t G, double a);
/* KL(Kumaraswamy(a, b_i) || U(0,1)) -> [N]. */
lf_tensor *lf_kuma_kl(lf_ctx *ctx, lf_tensor *b, double a);
/* The log-probability of a race's first finishers (loss.unmask_order:
 * learned), Plackett-Luce with log-weights l [N] (any real): sequence j's
 * candidates are order[order_off[j] .. order_off[j + 1]) (token indices
 * into l, in finishing order) and its first k[j] finished. Output [N]: for
 * the m-th finisher i (m < k[j]), l_i - log(the summed weights e^l of the
 * candidates not finished before it); 0 for every other token. */
lf_tensor *lf_race_logprob(lf_ctx *ctx, lf_tensor *l, const int32_t *order, const int32_t *order_off,
                           const int32_t *k, int64_t n_seq);
/* The chance that each unfinished candidate of a race finishes next (the
 * race as for lf_race_logprob): output [N], for a candidate i of rank at
 * least k[j], e^(l_i) / (the summed weights of sequence j's unfinished
 * candidates); 0 for every other token. */
lf_tensor *lf_race_next(lf_ctx *ctx, lf_tensor *l, const int32_t *order, const int32_t *order_off, const int32_t *k,
                        int64_t n_seq);

extern const lf_op_def *const lf_sched_ops[];
extern const int lf_sched_n_ops;

#endif
