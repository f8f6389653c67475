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

#endif
