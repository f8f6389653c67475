/* Every op of the core, in one table: the gradient-check test walks it and
 * fails when an op has no check. */
#include "core/ops.h"

const lf_op_def *const lf_core_ops[] = {
    &lf_op_matmul, &lf_op_linear,
    &lf_op_add, &lf_op_sub, &lf_op_mul, &lf_op_affine,
    &lf_op_pow, &lf_op_logaddexp, &lf_op_bregman,
    &lf_op_unary[LF_GELU], &lf_op_unary[LF_RELU], &lf_op_unary[LF_SILU],
    &lf_op_unary[LF_SOFTPLUS], &lf_op_unary[LF_SIGMOID], &lf_op_unary[LF_EXP],
    &lf_op_unary[LF_LOG], &lf_op_unary[LF_LOG1P], &lf_op_unary[LF_SQUARE],
    &lf_op_unary[LF_LOG_E], &lf_op_unary[LF_LOG1MEXP], &lf_op_unary[LF_DIGAMMA],
    &lf_op_unary[LF_LOG_SOFTPLUS],
    &lf_op_sum, &lf_op_mean, &lf_op_scatter_add_rows,
    &lf_op_embedding, &lf_op_gather, &lf_op_slice_cols, &lf_op_reshape,
    &lf_op_layernorm, &lf_op_modulate, &lf_op_ln_modulate, &lf_op_gated_add,
    &lf_op_softmax, &lf_op_log_softmax, &lf_op_cross_entropy,
    &lf_op_rope, &lf_op_attention, &lf_op_rope_attention, &lf_op_dropout,
};
const int lf_core_n_ops = (int)(sizeof lf_core_ops / sizeof lf_core_ops[0]);
/* one entry per unary kind besides the 27 others */
_Static_assert(sizeof lf_core_ops / sizeof lf_core_ops[0] == 27 + LF_UNARY_COUNT, "op table");
