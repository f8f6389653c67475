/* Tests of the library's internals: a model from YAML text. */
#ifndef LF_TEST_MODEL_H
#define LF_TEST_MODEL_H

#include <string.h>

#include "io/model_schema.h"
#include "lf_error.h"
#include "lflex/model.h"
#include "tests/common/testutil.h"

/* The schema's defaults, then `yaml` over them, then the model; fails the
 * test (with the library's message) when any of it fails. */
static inline void lf_test_model_from_yaml(lf_model *m, lf_model_config *cfg, const char *yaml)
{
    ck_assert_int_eq(lf_config_defaults(&lf_model_schema, cfg), LFLEX_OK);
    ck_assert_msg(lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, yaml, strlen(yaml), NULL) == LFLEX_OK, "%s",
                  lflex_last_error());
    ck_assert_int_eq(lf_model_create(m, cfg, cfg->vocab_size), LFLEX_OK);
}

/* n_seq random sequences of min_len..11 tokens (user ids 0..5) ending with
 * a fixed EOS, the first token also fixed in every third sequence (a
 * prompt), from the test generator seeded with `seed`: tok and fx hold
 * 11 n_seq entries, off n_seq + 1. */
static inline void lf_test_toy_batch(int32_t *tok, uint8_t *fx, int32_t *off, int n_seq, int64_t min_len,
                                     uint64_t seed)
{
    lf_test_rng r = {seed};
    int n = 0;
    off[0] = 0;
    for (int j = 0; j < n_seq; j++) {
        int64_t len = lf_test_int(&r, min_len, 11);
        for (int64_t i = 0; i < len - 1; i++) {
            tok[n] = (int32_t)lf_test_int(&r, LF_N_SPECIAL, LF_N_SPECIAL + 5);
            fx[n++] = j % 3 == 0 && i == 0;
        }
        tok[n] = LF_EOS;
        fx[n++] = 1;
        off[j + 1] = n;
    }
}

#endif
