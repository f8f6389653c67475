#ifndef LF_IO_MODEL_SCHEMA_H
#define LF_IO_MODEL_SCHEMA_H

#include "io/config.h"
#include "lflex/model_config.h"

/* Every key of a model configuration (lf_model_config). */
extern const lf_cfg_schema lf_model_schema;

#endif
