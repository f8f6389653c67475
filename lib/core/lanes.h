/* Reductions in interleaved partial sums. A plain `s += x[i]` loop is a
 * chain of dependent scalar additions: without permission to reassociate
 * (which the library does not give the compiler, so that results do not
 * depend on flags) it neither vectorises nor pipelines. Summing into
 * LF_LANES independent partial sums, combined pairwise at the end, is a
 * fixed order too — the result depends only on n, not on the thread count or
 * the CPU — and vectorises as it stands. */
#ifndef LF_LANES_H
#define LF_LANES_H

#include <math.h>

#include "core/core.h"

#define LF_LANES 16

/* `s` (an lvalue of type T) = sum over i in [0, n) of EXPR, which may use
 * the int64_t index `i`. */
#define LF_SUM_LANES(T, s, n, i, EXPR)                                             \
    do {                                                                           \
        T lanes_[LF_LANES] = {0};                                                  \
        int64_t n_ = (n), b_ = 0;                                                  \
        for (; b_ + LF_LANES <= n_; b_ += LF_LANES)                                \
            for (int64_t l_ = 0; l_ < LF_LANES; l_++) {                            \
                int64_t i = b_ + l_;                                               \
                lanes_[l_] += (EXPR);                                              \
            }                                                                      \
        for (int64_t l_ = 0; b_ + l_ < n_; l_++) {                                 \
            int64_t i = b_ + l_;                                                   \
            lanes_[l_] += (EXPR);                                                  \
        }                                                                          \
        for (int w_ = LF_LANES / 2; w_ >= 1; w_ /= 2)                              \
            for (int l_ = 0; l_ < w_; l_++)                                        \
                lanes_[l_] += lanes_[l_ + w_];                                     \
        (s) = lanes_[0];                                                           \
    } while (0)

/* `m` = max over i in [0, n) of EXPR (-INFINITY when n is 0); exact in any
 * order. */
#define LF_MAX_LANES(m, n, i, EXPR)                                                \
    do {                                                                           \
        lf_real lanes_[LF_LANES];                                                  \
        for (int l_ = 0; l_ < LF_LANES; l_++)                                      \
            lanes_[l_] = -INFINITY;                                                \
        int64_t n_ = (n), b_ = 0;                                                  \
        for (; b_ + LF_LANES <= n_; b_ += LF_LANES)                                \
            for (int64_t l_ = 0; l_ < LF_LANES; l_++) {                            \
                int64_t i = b_ + l_;                                               \
                lf_real v_ = (EXPR);                                               \
                lanes_[l_] = v_ > lanes_[l_] ? v_ : lanes_[l_];                    \
            }                                                                      \
        for (int64_t l_ = 0; b_ + l_ < n_; l_++) {                                 \
            int64_t i = b_ + l_;                                                   \
            lf_real v_ = (EXPR);                                                   \
            lanes_[l_] = v_ > lanes_[l_] ? v_ : lanes_[l_];                        \
        }                                                                          \
        for (int w_ = LF_LANES / 2; w_ >= 1; w_ /= 2)                              \
            for (int l_ = 0; l_ < w_; l_++)                                        \
                lanes_[l_] = lanes_[l_ + w_] > lanes_[l_] ? lanes_[l_ + w_] : lanes_[l_]; \
        (m) = lanes_[0];                                                           \
    } while (0)

#endif
