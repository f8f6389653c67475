/* A model's parameters: named tensors in one contiguous data buffer with a
 * matching gradient buffer (and, for the optimiser, moment buffers of the
 * same layout). Registration happens once at model creation; tensors point
 * into the buffers after lf_params_alloc(). */
#ifndef LF_NN_PARAMS_H
#define LF_NN_PARAMS_H

#include <stdbool.h>

#include "core/core.h"
#include "core/rng.h"

#define LF_PARAM_NAME_MAX 64

typedef enum lf_init { LF_INIT_ZERO, LF_INIT_ONE, LF_INIT_NORMAL, LF_INIT_CONST } lf_init;

typedef struct lf_param {
    char name[LF_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[2];
    int64_t offset, numel;   /* place in the buffers */
    lf_init init;
    double init_value;       /* std for NORMAL, the value for CONST */
    bool decay;              /* AdamW weight decay applies */
    lf_tensor t;             /* data and grad in the buffers */
} lf_param;

typedef struct lf_params {
    lf_param **items;
    int n, cap;
    int64_t total;           /* elements in all parameters */
    lf_real *data, *grad;
    bool borrowed;           /* data belongs to someone else (lf_params_bind) */
} lf_params;

void lf_params_init(lf_params *p);
void lf_params_free(lf_params *p);
/* Register a parameter (1-D when n1 == 0); returns its tensor, valid after
 * lf_params_alloc(), or NULL when out of memory. */
lf_tensor *lf_params_add(lf_params *p, const char *name, int64_t n0, int64_t n1, lf_init init,
                         double init_value, bool decay);
/* Allocate the buffers (zeroed) and point every tensor into them. */
int lf_params_alloc(lf_params *p);
/* Point every tensor at `data` (same layout, caller-owned, read-only: no
 * gradients) instead of allocating; lf_params_free() then leaves it alone. */
void lf_params_bind(lf_params *p, const lf_real *data);
/* Fill the data by each parameter's initialiser, in registration order. */
void lf_params_initialise(lf_params *p, lf_rng *rng);
const lf_param *lf_params_find(const lf_params *p, const char *name);
void lf_params_zero_grad(lf_params *p, const lf_ctx *ctx);

#endif
