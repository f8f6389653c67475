#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "core/kernels.h"

void lf_params_init(lf_params *p)
{
    memset(p, 0, sizeof *p);
}

void lf_params_free(lf_params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    if (!p->borrowed)
        free(p->data);
    free(p->grad);
    memset(p, 0, sizeof *p);
}

lf_tensor *lf_params_add(lf_params *p, const char *name, int64_t n0, int64_t n1, lf_init init,
                         double init_value, bool decay)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        lf_param **items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items)
            return NULL;
        p->items = items;
        p->cap = cap;
    }
    lf_param *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    strncpy(q->name, name, sizeof q->name - 1);
    q->ndim = n1 ? 2 : 1;
    q->shape[0] = n0;
    q->shape[1] = n1;
    q->numel = n0 * (n1 ? n1 : 1);
    q->offset = p->total;
    q->init = init;
    q->init_value = init_value;
    q->decay = decay;
    p->total += q->numel;
    p->items[p->n++] = q;
    return &q->t;
}

int lf_params_alloc(lf_params *p)
{
    size_t bytes = (size_t)(p->total ? p->total : 1) * sizeof(lf_real);
    p->data = calloc(1, bytes);
    p->grad = calloc(1, bytes);
    if (!p->data || !p->grad)
        return LFLEX_ENOMEM;
    for (int i = 0; i < p->n; i++) {
        lf_param *q = p->items[i];
        lf_tensor_wrap(&q->t, LF_REAL, p->data + q->offset, p->grad + q->offset, q->ndim, q->shape);
    }
    return LFLEX_OK;
}

void lf_params_bind(lf_params *p, const lf_real *data)
{
    p->data = (lf_real *)data;
    p->borrowed = true;
    for (int i = 0; i < p->n; i++) {
        lf_param *q = p->items[i];
        lf_tensor_wrap(&q->t, LF_REAL, p->data + q->offset, NULL, q->ndim, q->shape);
    }
}

void lf_params_initialise(lf_params *p, lf_rng *rng)
{
    for (int i = 0; i < p->n; i++) {
        lf_param *q = p->items[i];
        lf_real *d = p->data + q->offset;
        for (int64_t j = 0; j < q->numel; j++) {
            switch (q->init) {
            case LF_INIT_ZERO: d[j] = 0; break;
            case LF_INIT_ONE: d[j] = 1; break;
            case LF_INIT_NORMAL: d[j] = (lf_real)(q->init_value * lf_rng_normal(rng)); break;
            default: d[j] = (lf_real)q->init_value; break;
            }
        }
    }
}

const lf_param *lf_params_find(const lf_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i]->name, name) == 0)
            return p->items[i];
    return NULL;
}

void lf_params_zero_grad(lf_params *p, const lf_ctx *ctx)
{
    lf_zero(ctx, p->grad, p->total);
}
