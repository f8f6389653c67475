/* The op definitions of the core, for the op table. */
#ifndef LF_OPS_H
#define LF_OPS_H

#include "core/core.h"

extern const lf_op_def lf_op_matmul, lf_op_linear;
extern const lf_op_def lf_op_add, lf_op_sub, lf_op_mul, lf_op_affine;
extern const lf_op_def lf_op_pow, lf_op_logaddexp, lf_op_bregman;
extern const lf_op_def lf_op_unary[LF_UNARY_COUNT];
extern const lf_op_def lf_op_sum, lf_op_mean, lf_op_scatter_add_rows;
extern const lf_op_def lf_op_embedding, lf_op_gather, lf_op_slice_cols, lf_op_reshape;
extern const lf_op_def lf_op_layernorm, lf_op_modulate, lf_op_ln_modulate, lf_op_gated_add;
extern const lf_op_def lf_op_softmax, lf_op_log_softmax, lf_op_cross_entropy;
extern const lf_op_def lf_op_rope, lf_op_attention, lf_op_rope_attention, lf_op_dropout;

/* Outputs (and tape nodes) of ops without their computation, for fused
 * forward passes that fill them in one hand-off; the backward passes stay
 * those of the separate ops. */
lf_tensor *lf_unary_output(lf_ctx *ctx, lf_unary kind, lf_tensor *x);
/* y[0..n) = kind(x[0..n)), on the calling thread */
void lf_unary_rows(lf_unary kind, const lf_real *x, lf_real *y, int64_t n);

#endif
