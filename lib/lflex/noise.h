/* Noising (the paper's noising process): token states from sampled insertion and
 * unmasking times, and the partial sequence x_t with its position map, gaps
 * and targets. Plain arrays in, plain arrays out; the caller owns memory. */
#ifndef LF_NOISE_H
#define LF_NOISE_H

#include <stdint.h>

#include "core/core.h"
#include "core/rng.h"
#include "lflex/schedule_math.h"

/* Draw the state of every token. Fixed tokens are clean. For the others
 * u, v ~ U(0,1) (two draws per non-fixed token, in token order):
 * T_in = F_in^-1(u) (lf_mix_inv_cdf with the late fraction `late`), T_um
 * from F_um truncated to [T_in, 1] by v; the state at t = t_seq[j] of the
 * token's sequence j. b_um NULL means c_const for all. */
void lf_noise_draw_states(lf_rng *rng, const int32_t *offsets, int64_t n_seq, const uint8_t *fixed,
                          const double *t_seq, const lf_real *b_in, const lf_real *b_um, double c_const,
                          double a, double late, int32_t *state);

/* schedule.outside_in r: the shape of token i of one sequence of n tokens
 * is b r^d, d its distance in tokens from the nearer end of its run of
 * consecutive non-fixed tokens (0 for a run's first and last token), never
 * below min(b, 1); r = 0 gives every token b. Fixed tokens (fixed NULL:
 * none) get b. Writes out[0..n). */
void lf_noise_outside_in_shapes(const uint8_t *fixed, int64_t n, double b, double r, double *out);

/* The shape of a token d places from the nearer end of its run:
 * max(b r^d, min(b, 1)), b for r = 0. */
double lf_noise_outside_in_shape(double b, double r, int64_t d);

/* loss.unmask_order left_to_right (from_right 0) and right_to_left (1): in
 * each sequence, as many of the present non-fixed tokens as are clean become
 * the leftmost (rightmost) ones, the others masked (the count of each state
 * kept, the clean ones a prefix, or a suffix). */
void lf_noise_clean_end(const int32_t *offsets, int64_t n_seq, const uint8_t *fixed, int from_right, int32_t *state);

/* loss.unmask_order learned: in each sequence the present non-fixed tokens
 * (the race's candidates) finish a race at times E_i / e^(l_i), E_i ~ Exp(1)
 * (l: log-weights, compared as log E_i - l_i)
 * (two draws per non-fixed token, present or not, in token order, as
 * lf_noise_draw_states makes), and as many of the first finishers as the
 * state has clean tokens become clean, the others masked. Out: the
 * candidates in finishing order, order[order_off[j] .. order_off[j + 1])
 * for sequence j (capacity: the batch's tokens; order_off n_seq + 1), and
 * k[j], how many of them finished (are clean). `finish` is scratch of the
 * batch's size. */
void lf_noise_race_order(lf_rng *rng, const int32_t *offsets, int64_t n_seq, const uint8_t *fixed, const lf_real *l,
                         int32_t *state, int32_t *order, int32_t *order_off, int32_t *k, double *finish);

/* Advance `rng` past the draws lf_noise_draw_states makes for the tokens
 * [begin, end) of a batch (two per non-fixed token), without drawing states:
 * a process that computes a shard of a batch skips the other sequences'
 * draws, so that its shard gets the numbers the whole batch would give it. */
void lf_noise_skip(lf_rng *rng, const uint8_t *fixed, int64_t begin, int64_t end);

/* x_t of one state, appended at row `row_base` of a packed x_t.
 * In: the clean batch (tokens, offsets, n_seq) and the states.
 * Out (capacity: the number of clean tokens each):
 *   ids[k]       token of x_t row k (MASK for masked tokens)
 *   src[k]       index in the clean batch of the token at row k (the map s)
 *   offsets_out  [n_seq + 1], starting at row_base
 *   gap_row[i]   for a dropped clean token i: the x_t row whose left gap holds
 *                it (the next present token of its sequence); -1 otherwise
 *   masked[m]    rows of masked tokens, in row order; *n_masked their count
 * Returns the number of rows written. Every sequence must end with a token
 * that is present (the fixed EOS), which the API checks. */
int64_t lf_noise_build_xt(const int32_t *tokens, const int32_t *offsets, int64_t n_seq, const int32_t *state,
                          int32_t mask_id, int64_t row_base, int32_t *ids, int32_t *src, int32_t *offsets_out,
                          int32_t *gap_row, int32_t *masked, int64_t *n_masked);

#endif
