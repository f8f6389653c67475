/* A toy model on the autograd core: one attention layer with rotary
 * positions and an MLP that learns to map each token of a sequence to a
 * function of its neighbours. It exists to exercise the core end to end
 * (the first demo, and the steady-state allocation test). */
#ifndef LF_TOY_MODEL_H
#define LF_TOY_MODEL_H

#include "core/core.h"

typedef struct toy_model {
    int64_t V, d, H, n_params;
    lf_real *data, *grad, *m, *v; /* parameters, gradients, Adam moments */
    lf_tensor emb, wqkv, wo, w1, w2, wout, ln_scale;
    lf_ctx ctx;
    int64_t step;
} toy_model;

int toy_init(toy_model *m, int64_t V, int64_t d, int64_t H, uint64_t seed);
void toy_free(toy_model *m);
/* Make a batch of n_seq sequences of lengths in [min_len, max_len]:
 * tokens, offsets [n_seq + 1] and targets; returns the token count. */
int64_t toy_batch(uint64_t *rng, int64_t V, int64_t n_seq, int64_t min_len, int64_t max_len,
                  int32_t *tokens, int32_t *targets, int32_t *offsets);
/* One Adam step on the batch; returns the status, the loss in *loss. */
int toy_train_step(toy_model *m, const int32_t *tokens, const int32_t *targets, const int32_t *offsets,
                   int64_t n_seq, double lr, double *loss);

#endif
