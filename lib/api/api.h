/* The structs behind the public handles (internal). */
#ifndef LF_API_H
#define LF_API_H

#include <stdbool.h>

#include "io/vocab.h"
#include "lf_error.h"
#include "lflex/lflex.h"
#include "lflex/model.h"

/* Argument checks of the exported calls: LFLEX_EINVAL with a message that
 * names the call and the argument. */
#define CHECK_ARG(cond, ...)                            \
    do {                                                \
        if (!(cond))                                    \
            return lf_error(LFLEX_EINVAL, __VA_ARGS__); \
    } while (0)

struct lflex_schedule {
    int family;          /* lf_family */
    double a, b_um;
    bool owned_by_model; /* lflex_schedule_free() ignores the model's own */
};

struct lflex_model {
    lf_model m;
    lf_vocab vocab;
    struct lflex_schedule schedule;
    /* the last batch in the internal layout */
    uint8_t *batch_fixed;
    int32_t *batch_offsets;
    size_t batch_cap_tok, batch_cap_off;
    /* data-parallel training: the sum over the processes
     * (lflex_model_set_reduce), NULL when not set */
    lflex_reduce_fn reduce;
    void *reduce_user;
    size_t bucket_floats;
};

#endif
