/* The structs behind the public handles (internal). */
#ifndef LF_API_H
#define LF_API_H

#include <stdbool.h>

#include "io/vocab.h"
#include "lflex/lflex.h"
#include "lflex/model.h"

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
};

#endif
